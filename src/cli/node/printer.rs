//! Prints what happens to the node, in the order it happened: one task
//! reads the node's event channel, and each [`Event::Message`] (raised just
//! after its message was queued) takes the oldest message from the queue
//! and prints it there and then. So a peer's `message` always comes after
//! its `peer_joined` and before its `peer_left`, on every transport.
//!
//! Closes are sorted out here too. The node raises [`Event::Rejected`] for
//! every connection it closes; when that connection was a peer's, a
//! [`Event::PeerLeft`] follows at once, and the two are printed as one
//! `peer_left` with the reason. A close that loses the race between two
//! connections to the same peer (simultaneous dials: the peer stays
//! connected on the other) is not a refusal and is only logged at debug
//! level. Everything else is a `rejected`.

use std::time::Duration;

use rs2p::protocol::mesh::CloseReason;
use rs2p::{Event, MeshSocket};
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::out::Out;

/// How long a rejection waits for the `PeerLeft` that would make it a
/// departure (the node raises both in one step, so this is only scheduling
/// slack).
const PAIRING: Duration = Duration::from_millis(100);

/// How long [`Printer::finish`] may take to print what is left.
const FINISH: Duration = Duration::from_secs(2);

/// The printing task.
pub struct Printer {
    finish: CancellationToken,
    task: JoinHandle<()>,
}

impl Printer {
    /// Starts printing the events of `events` (subscribed before anything
    /// could happen) and the messages of `node`'s queue.
    pub fn spawn(node: MeshSocket, events: broadcast::Receiver<Event>, out: Out) -> Printer {
        let finish = CancellationToken::new();
        let task = tokio::spawn(print_loop(
            State {
                node,
                out,
                held: None,
            },
            events,
            finish.clone(),
        ));
        Printer { finish, task }
    }

    /// Prints what the node raised before now (the node is closed by then)
    /// and ends, bounded by [`FINISH`].
    pub async fn finish(self) {
        self.finish.cancel();
        let mut task = self.task;
        if tokio::time::timeout(FINISH, &mut task).await.is_err() {
            task.abort();
        }
    }
}

struct State {
    node: MeshSocket,
    out: Out,
    /// A rejection waiting to see whether a `PeerLeft` follows.
    held: Option<(String, CloseReason)>,
}

async fn print_loop(
    mut state: State,
    mut events: broadcast::Receiver<Event>,
    finish: CancellationToken,
) {
    loop {
        let received = if state.held.is_some() {
            match tokio::time::timeout(PAIRING, events.recv()).await {
                Ok(received) => received,
                Err(_) => {
                    state.flush();
                    continue;
                }
            }
        } else {
            tokio::select! {
                biased;
                received = events.recv() => received,
                () = finish.cancelled() => break,
            }
        };
        match received {
            Ok(event) => state.on_event(event),
            Err(RecvError::Lagged(n)) => state.lagged(n),
            Err(RecvError::Closed) => break,
        }
    }
    // Whatever was raised before the node closed.
    loop {
        match events.try_recv() {
            Ok(event) => state.on_event(event),
            Err(TryRecvError::Lagged(n)) => state.lagged(n),
            Err(_) => break,
        }
    }
    state.flush();
    while let Some(msg) = state.node.recv() {
        state.out.message(&msg);
    }
}

impl State {
    fn on_event(&mut self, event: Event) {
        match event {
            Event::PeerLeft(id) => {
                let reason = match self.held.take() {
                    Some((_, reason)) => reason,
                    None => CloseReason::Disconnected,
                };
                self.out.peer_left(&id, &reason.to_string());
                return;
            }
            Event::Rejected {
                remote,
                reason: CloseReason::Conflict,
            } => {
                tracing::debug!(%remote, "closed a duplicate connection to a connected peer");
                return;
            }
            _ => {}
        }
        self.flush();
        match event {
            Event::Rejected { remote, reason } => self.held = Some((remote, reason)),
            Event::Message => {
                if let Some(msg) = self.node.recv() {
                    self.out.message(&msg);
                }
            }
            Event::Connect => self.out.connect_event(),
            Event::PeerJoined(id) => self.out.peer_joined(&id),
            // Peer lists have no output.
            _ => {}
        }
    }

    /// Prints a held rejection as such.
    fn flush(&mut self) {
        if let Some((remote, reason)) = self.held.take() {
            self.out.rejected(&remote, &reason.to_string());
        }
    }

    /// Events were lost: say so, and print the messages queued so far
    /// (their events may be among those lost).
    fn lagged(&mut self, n: u64) {
        self.flush();
        self.out.error(format!(
            "{n} node events were missed (output is not read fast enough); \
             the messages queued so far follow"
        ));
        while let Some(msg) = self.node.recv() {
            self.out.message(&msg);
        }
    }
}
