//! The actor: one task that owns the [`MeshState`], feeds it events from
//! the connection tasks and commands from the handles, and carries out the
//! actions it returns. It never awaits a single peer: sends use `try_queue`
//! on bounded per-connection queues; a queue over half its bound makes the
//! node congested (see `congestion.rs`), and a peer that does not drain in
//! time, or whose queue overflows, is disconnected as too slow.
//!
//! `input.rs` takes in connections, the connection tasks' reports and the
//! handles' commands; `output.rs` carries out actions and events.

mod input;
mod output;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc, oneshot, Notify};

use super::congestion::Congestion;
use super::connection::{self, ConnHandle, Spawner};
use super::error::Error;
use super::message::{Connection, Event, Message};
use super::metrics::{Dropped, Levels, MeshCounts, Probes, Sent};
use super::validation::{PendingValidation, ValidationMode};
use crate::protocol::mesh::{
    Action, CloseReason, ConnId, Delivery, DialId, Layer, LayerCtx, MeshEvent, PeerInfo, Prepared,
    Stack, Validation, ValidationId,
};
use crate::protocol::{
    CodecError, Compression, MainFlag, MessageId, Packet, PeerAddr, PeerId, SubFlag,
};
use crate::transport::Refusal;

/// A message handler: returns `true` when it handled the message, which
/// stops the chain and keeps the message out of the queue.
pub type Handler = Arc<dyn Fn(&Message, &Connection) -> bool + Send + Sync + 'static>;

/// Resolved when a dialled connection completes (or fails) its handshake.
pub(crate) type ConnectWaiter = oneshot::Sender<Result<PeerId, Error>>;

/// A command for the node's protocol layer, run inside the actor.
pub(crate) type LayerCommand = Box<dyn FnOnce(&mut dyn Layer, &mut LayerCtx<'_>) + Send>;

/// Commands from handles to the actor.
pub(crate) enum Command {
    Whisper {
        to: PeerId,
        packets: Vec<Packet>,
        done: oneshot::Sender<Result<MessageId, Error>>,
    },
    WhisperConn {
        conn: ConnId,
        packets: Vec<Packet>,
    },
    Reply {
        to: PeerId,
        packets: Vec<Packet>,
        done: Option<oneshot::Sender<Result<(), Error>>>,
    },
    Connect {
        addr: PeerAddr,
        expected_id: Option<PeerId>,
        done: ConnectWaiter,
    },
    Disconnect {
        peer: PeerId,
        done: oneshot::Sender<bool>,
    },
    RequestPeers,
    Renegotiate {
        peer: PeerId,
        methods: Vec<Compression>,
        done: oneshot::Sender<Result<(), Error>>,
    },
    RequestResend {
        peer: PeerId,
        done: oneshot::Sender<Result<(), Error>>,
    },
    RegisterHandler(Handler),
    Layer(LayerCommand),
    Validated {
        ticket: ValidationId,
        verdict: Validation,
    },
    Snapshot(oneshot::Sender<Snapshot>),
    Close(oneshot::Sender<()>),
}

/// A point-in-time view of a node.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// The routing table.
    pub peers: Vec<PeerInfo>,
    /// Connections waiting for a handshake.
    pub awaiting: usize,
    /// Recent errors, oldest first.
    pub errors: Vec<String>,
    /// Broadcasts remembered for deduplication.
    pub waterfall: usize,
    /// Replies waiting for a route.
    pub pending_requests: usize,
    /// Peers disconnected because their send queue stayed full.
    pub slow_peers_dropped: u64,
    /// Messages dropped from a full receive queue.
    pub queue_dropped: u64,
    /// Incoming connections refused because a connection limit was reached.
    pub refused: u64,
    /// Open connections (handshaken or not).
    pub connections: usize,
    /// Addresses remembered for reconnecting.
    pub known_addresses: usize,
    /// Dials started by peer lists, reconnects and route responses.
    pub dials_started: u64,
}

/// Events from connection and dial tasks to the actor.
pub(crate) enum Internal {
    Opened {
        conn: ConnId,
        outgoing: bool,
        remote: String,
        dial: Option<DialId>,
        handle: ConnHandle,
        waiter: Option<ConnectWaiter>,
    },
    /// The whole frames of one read, in order.
    Frames {
        conn: ConnId,
        frames: Vec<crate::protocol::Frame>,
        /// Their bytes, counted in the connection's backlog.
        bytes: usize,
        /// When the read loop split them.
        arrived: Instant,
    },
    Closed {
        conn: ConnId,
        /// Why, when the read loop knows better than "closed by the peer".
        error: Option<CloseReason>,
    },
    /// An accepted connection failed its transport's handshake.
    Refused { remote: String, refusal: Refusal },
    DialFailed {
        dial: DialId,
        error: Error,
        waiter: Option<ConnectWaiter>,
    },
    /// A connection's send queue emptied after holding a burst.
    Drained { conn: ConnId },
}

/// The queue behind `recv`, shared with the handles.
#[derive(Debug)]
pub(crate) struct Inbox {
    pub(crate) queue: Mutex<VecDeque<Message>>,
    pub(crate) notify: Notify,
    pub(crate) capacity: usize,
}

/// What the actor keeps for each open connection.
pub(crate) struct ConnEntry {
    pub(crate) handle: ConnHandle,
    /// The remote socket address, as text.
    pub(crate) remote: String,
    /// Whether we dialled it.
    pub(crate) outgoing: bool,
}

pub(crate) struct Actor {
    pub(crate) node: Stack<Box<dyn Layer>>,
    pub(crate) conns: HashMap<ConnId, ConnEntry>,
    pub(crate) waiters: HashMap<ConnId, ConnectWaiter>,
    pub(crate) handlers: Vec<Handler>,
    pub(crate) inbox: Arc<Inbox>,
    pub(crate) events: broadcast::Sender<Event>,
    pub(crate) commands_weak: mpsc::WeakUnboundedSender<Command>,
    pub(crate) spawner: Spawner,
    pub(crate) dial_timeout: Duration,
    pub(crate) slow_dropped: u64,
    pub(crate) queue_dropped: u64,
    pub(crate) limits: NodeLimits,
    pub(crate) accepting: Arc<AtomicUsize>,
    pub(crate) refused: u64,
    pub(crate) validation: Option<ValidationMode>,
    pub(crate) probes: Probes,
    /// The state machine's counts as last mirrored into the metrics.
    pub(crate) mirrored: MeshCounts,
    /// When the frame being handled arrived, for the delivery latency.
    pub(crate) arrived: Option<Instant>,
    /// Receive-queue drops not reported yet, and when they last were.
    pub(crate) overflow: Overflow,
    /// Which peers' send queues are over half their bound.
    pub(crate) congestion: Congestion,
}

/// Rate-limits [`Event::QueueOverflow`].
#[derive(Debug, Default)]
pub(crate) struct Overflow {
    unreported: u64,
    reported_ms: u64,
}

/// At most one [`Event::QueueOverflow`] in this long.
const OVERFLOW_EVERY_MS: u64 = 1000;

/// Limits the actor enforces on connections.
#[derive(Clone, Debug)]
pub(crate) struct NodeLimits {
    pub(crate) max_connections: usize,
    pub(crate) max_awaiting: usize,
    pub(crate) keepalive: Option<Duration>,
}

/// Decrements a counter when dropped.
struct CountGuard(Arc<AtomicUsize>);

impl Drop for CountGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Prepared sends taken from the channel in one turn of the actor.
const SEND_BURST: usize = 256;

pub(crate) fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub(crate) fn unix_now() -> u64 {
    unix_now_ms() / 1000
}

impl Actor {
    pub(crate) async fn run(
        mut self,
        listener: TcpListener,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut internal: mpsc::Receiver<Internal>,
        mut sends: mpsc::Receiver<Prepared>,
    ) {
        let cancel = self.spawner.cancel.clone();
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut keepalive =
            tokio::time::interval(self.limits.keepalive.unwrap_or(Duration::from_secs(3600)));
        keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut out: Vec<Action> = Vec::new();
        let mut close_waiters: Vec<oneshot::Sender<()>> = Vec::new();
        loop {
            let sends_blocked = !sends.is_empty() && self.congestion.is_congested();
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                event = internal.recv() => match event {
                    Some(event) => self.on_internal(event, &mut out),
                    None => break,
                },
                // The application's sends wait (in their bounded channel,
                // so `send().await` waits) while a peer's queue is over half
                // its bound: our own traffic never makes a peer "too slow".
                // The write loop reports when it drains below half
                // (`Internal::Drained`), which wakes this loop.
                prepared = sends.recv(), if !sends_blocked => {
                    // A burst of the application's sends in one go.
                    let mut next = prepared;
                    let mut taken = 0;
                    while let Some(p) = next {
                        self.probes.sent(match p.msg_type() {
                            MainFlag::Whisper => Sent::Whisper,
                            _ => Sent::Broadcast,
                        });
                        self.node.with_mesh(unix_now_ms(), &mut out, |m, out| m.send_prepared(p, out));
                        taken += 1;
                        next = if taken < SEND_BURST { sends.try_recv().ok() } else { None };
                    }
                }
                command = commands.recv() => match command {
                    Some(Command::Close(done)) => {
                        close_waiters.push(done);
                        break;
                    }
                    Some(command) => self.on_command(command, &mut out),
                    // Every handle is gone: shut down.
                    None => break,
                },
                accepted = listener.accept() => {
                    if let Ok((stream, remote)) = accepted {
                        let accepting = self.accepting.load(Ordering::Relaxed);
                        if self.conns.len() + accepting >= self.limits.max_connections
                            || self.node.mesh().awaiting_count() + accepting >= self.limits.max_awaiting
                        {
                            // Over a limit: refuse at once, before any work.
                            self.refused += 1;
                            self.probes.refused();
                            tracing::debug!(%remote, "connection refused: limit reached");
                            drop(stream);
                        } else {
                            self.adopt_stream(stream, false, None, None);
                        }
                    }
                }
                _ = keepalive.tick(), if self.limits.keepalive.is_some() => {
                    let now_ms = unix_now_ms();
                    self.node.with_mesh(now_ms, &mut out, |m, out| m.keepalive(now_ms, out));
                }
                _ = tick.tick() => {
                    let now_ms = unix_now_ms();
                    self.node.on_tick(now_ms, &mut out);
                    self.close_overdue_slow_peers(now_ms, &mut out);
                    self.report_overflow(now_ms);
                    self.mirror_metrics();
                }
            }
            self.carry_out(&mut out);
            self.arrived = None;
        }
        cancel.cancel();
        drop(listener);
        // Close every connection now; tasks end on the cancelled token.
        for (_, entry) in self.conns.drain() {
            entry.handle.cancel.cancel();
        }
        for (_, waiter) in self.waiters.drain() {
            let _ = waiter.send(Err(Error::Shutdown));
        }
        self.spawner.tracker.close();
        // Drain the internal channel so tasks blocked on it can finish.
        internal.close();
        while internal.recv().await.is_some() {}
        self.spawner.tracker.wait().await;
        for done in close_waiters {
            let _ = done.send(());
        }
    }
}

/// Whether a codec error is a size limit (rather than malformed data).
fn too_big(e: &CodecError) -> bool {
    matches!(
        e,
        CodecError::FrameTooLarge { .. } | CodecError::DecompressedTooLarge { .. }
    )
}
