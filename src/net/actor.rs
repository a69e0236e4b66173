//! The actor: one task that owns the [`MeshState`], feeds it events from
//! the connection tasks and commands from the handles, and carries out the
//! actions it returns. It never awaits a single peer: sends use `try_send`
//! on bounded per-connection queues, and a peer whose queue is full is
//! disconnected.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc, oneshot, Notify};

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
            let sends_blocked = !sends.is_empty() && self.peer_queues_high();
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

    /// Whether some peer's send queue holds more than half its bound.
    fn peer_queues_high(&self) -> bool {
        let high = self.spawner.settings.send_buffer / 2;
        self.conns
            .values()
            .any(|c| c.handle.queued.load(Ordering::Relaxed) > high)
    }

    fn adopt_stream(
        &self,
        tcp: TcpStream,
        outgoing: bool,
        dial: Option<DialId>,
        waiter: Option<ConnectWaiter>,
    ) {
        let spawner = self.spawner.clone();
        let timeout = self.dial_timeout;
        let accepting = self.accepting.clone();
        accepting.fetch_add(1, Ordering::Relaxed);
        self.spawner.tracker.spawn(async move {
            // Counts as accepting until the actor knows the connection.
            let _guard = CountGuard(accepting);
            let remote = crate::transport::peer_addr(&tcp);
            let ours = spawner.transport.name();
            // The transport's own handshake (TLS, WebSocket) runs here, off
            // the actor, and is bounded in time.
            let accepted = tokio::select! {
                _ = spawner.cancel.cancelled() => return,
                r = tokio::time::timeout(timeout, spawner.transport.accept(tcp)) => r,
            };
            let refusal = match accepted {
                Ok(Ok(stream)) => {
                    connection::start(stream, outgoing, dial, waiter, &spawner).await;
                    return;
                }
                Ok(Err(e)) => {
                    tracing::debug!(%e, "transport handshake failed");
                    Refusal::from_io(&e)
                        .cloned()
                        .unwrap_or_else(|| Refusal::Handshake {
                            remote: remote.clone(),
                            ours,
                            error: e.to_string(),
                        })
                }
                Err(_) => {
                    tracing::debug!("transport handshake timed out");
                    Refusal::Handshake {
                        remote: remote.clone(),
                        ours,
                        error: format!("not done within {timeout:?}"),
                    }
                }
            };
            let _ = spawner
                .internal
                .send(Internal::Refused { remote, refusal })
                .await;
        });
    }

    fn dial(&mut self, dial: DialId, addr: PeerAddr, waiter: Option<ConnectWaiter>) {
        self.probes.dial();
        let spawner = self.spawner.clone();
        let timeout = self.dial_timeout;
        self.spawner.tracker.spawn(async move {
            let result = tokio::select! {
                _ = spawner.cancel.cancelled() => return,
                r = tokio::time::timeout(timeout, spawner.transport.connect(&addr.host, addr.port)) => r,
            };
            match result {
                Ok(Ok(stream)) => {
                    connection::start(stream, true, Some(dial), waiter, &spawner).await;
                }
                Ok(Err(_)) | Err(_) => {
                    let error = match result {
                        Ok(Err(e)) => match Refusal::from_io(&e) {
                            Some(refusal) => Error::Refused(refusal.clone()),
                            None => Error::io(format!("cannot connect to {addr}"), e),
                        },
                        _ => Error::Timeout(timeout),
                    };
                    let _ = spawner
                        .internal
                        .send(Internal::DialFailed {
                            dial,
                            error,
                            waiter,
                        })
                        .await;
                }
            }
        });
    }

    fn on_internal(&mut self, event: Internal, out: &mut Vec<Action>) {
        let now_ms = unix_now_ms();
        match event {
            Internal::Opened {
                conn,
                outgoing,
                remote,
                dial,
                handle,
                waiter,
            } => {
                if let Some(w) = waiter {
                    self.waiters.insert(conn, w);
                }
                self.probes.opened(outgoing);
                self.conns.insert(
                    conn,
                    ConnEntry {
                        handle,
                        remote: remote.clone(),
                        outgoing,
                    },
                );
                self.node.on_open(now_ms, conn, outgoing, remote, dial, out);
            }
            Internal::Frames {
                conn,
                frames,
                arrived,
            } => {
                self.arrived = Some(arrived);
                for frame in frames {
                    self.node.on_frame(now_ms, conn, frame, out);
                }
            }
            Internal::Closed { conn, error } => {
                if let Some(reason) = error {
                    self.node
                        .with_mesh(now_ms, out, |m, out| m.close(now_ms, conn, reason, out));
                }
                self.node.on_closed(now_ms, conn, out);
                // Forget the connection after the events above have read it.
                out.push(Action::Close {
                    conn,
                    reason: CloseReason::Disconnected,
                });
            }
            Internal::Drained { conn } => {
                if self.conns.contains_key(&conn) {
                    self.node.on_writable(now_ms, conn, out);
                }
            }
            Internal::DialFailed {
                dial,
                error,
                waiter,
            } => {
                tracing::debug!(%error, "dial failed");
                self.probes.dial_failed();
                self.node.on_dial_failed(now_ms, dial);
                if let Some(w) = waiter {
                    let _ = w.send(Err(error));
                }
            }
            Internal::Refused { remote, refusal } => {
                let reason = CloseReason::Transport(refusal);
                tracing::debug!(%remote, %reason, "refused during the transport handshake");
                self.probes.closed(&reason);
                let _ = self.events.send(Event::Rejected { remote, reason });
            }
        }
    }

    fn on_command(&mut self, command: Command, out: &mut Vec<Action>) {
        let now_ms = unix_now_ms();
        let node = &mut self.node;
        match command {
            Command::Whisper { to, packets, done } => {
                let r = node.with_mesh(now_ms, out, |m, out| m.whisper(now_ms, &to, packets, out));
                if r.is_ok() {
                    self.probes.sent(Sent::Whisper);
                }
                let _ = done.send(r.map_err(Error::from));
            }
            Command::WhisperConn { conn, packets } => {
                if let Some(peer) = node.mesh().peer_of(conn).cloned() {
                    let r = node
                        .with_mesh(now_ms, out, |m, out| m.whisper(now_ms, &peer, packets, out));
                    if r.is_ok() {
                        self.probes.sent(Sent::Whisper);
                    }
                }
            }
            Command::Reply { to, packets, done } => {
                let r = node
                    .with_mesh(now_ms, out, |m, out| m.reply(now_ms, &to, packets, out))
                    .map_err(Error::from);
                if r.is_ok() {
                    self.probes.sent(Sent::Reply);
                }
                match done {
                    Some(done) => {
                        let _ = done.send(r);
                    }
                    None => {
                        if let Err(e) = r {
                            tracing::warn!(%e, "reply failed");
                        }
                    }
                }
            }
            Command::Connect {
                addr,
                expected_id,
                done,
            } => {
                if let Some(id) = &expected_id {
                    if node.mesh().is_connected(id) {
                        let _ = done.send(Err(Error::AlreadyConnected(id.to_string())));
                        return;
                    }
                }
                let dial = node.with_mesh(now_ms, out, |m, _| {
                    m.note_dialling(expected_id.as_ref(), addr.clone())
                });
                self.dial(dial, addr, Some(done));
            }
            Command::Disconnect { peer, done } => {
                let r = node.with_mesh(now_ms, out, |m, out| m.disconnect(now_ms, &peer, out));
                let _ = done.send(r);
            }
            Command::RequestPeers => {
                node.with_mesh(now_ms, out, |m, out| m.request_peers(now_ms, out));
            }
            Command::Renegotiate {
                peer,
                methods,
                done,
            } => {
                let r = node.with_mesh(now_ms, out, |m, out| {
                    m.renegotiate(now_ms, &peer, &methods, out)
                });
                let _ = done.send(r.map_err(Error::from));
            }
            Command::RequestResend { peer, done } => {
                let r = node.with_mesh(now_ms, out, |m, out| m.request_resend(now_ms, &peer, out));
                let _ = done.send(r.map_err(Error::from));
            }
            Command::RegisterHandler(h) => self.handlers.push(h),
            Command::Validated { ticket, verdict } => {
                node.on_validated(now_ms, ticket, verdict, out);
            }
            Command::Layer(f) => node.with_layer(now_ms, out, |layer, ctx| f(&mut **layer, ctx)),
            Command::Snapshot(done) => {
                let mesh = node.mesh();
                let _ = done.send(Snapshot {
                    peers: mesh.peers(),
                    awaiting: mesh.awaiting_count(),
                    errors: mesh.errors().map(str::to_owned).collect(),
                    waterfall: mesh.waterfall_len(),
                    pending_requests: mesh.pending_len(),
                    slow_peers_dropped: self.slow_dropped,
                    queue_dropped: self.queue_dropped,
                    refused: self.refused,
                    connections: self.conns.len(),
                    known_addresses: mesh.known_addresses(),
                    dials_started: mesh.dials_started(),
                });
            }
            Command::Close(_) => {}
        }
    }

    fn carry_out(&mut self, out: &mut Vec<Action>) {
        // Actions may produce more actions (a slow peer's close): loop until
        // none are left.
        while !out.is_empty() {
            let batch = std::mem::take(out);
            for action in batch {
                self.carry_out_one(action, out);
            }
        }
    }

    fn carry_out_one(&mut self, action: Action, out: &mut Vec<Action>) {
        match action {
            Action::Send { conn, frame } => {
                let limit = self.spawner.settings.send_buffer;
                let full = match self.conns.get(&conn) {
                    Some(entry) => !entry.handle.try_queue(frame, limit),
                    None => false,
                };
                if full {
                    self.slow_dropped += 1;
                    self.probes.dropped(Dropped::SlowPeer);
                    let now_ms = unix_now_ms();
                    self.node.with_mesh(now_ms, out, |m, out| {
                        m.close(now_ms, conn, CloseReason::TooSlow, out)
                    });
                }
            }
            Action::Close { conn, reason } => {
                if let Some(entry) = self.conns.remove(&conn) {
                    entry.handle.cancel.cancel();
                    self.probes.forgotten(entry.outgoing);
                    self.probes.closed(&reason);
                    if let CloseReason::Protocol(e) = &reason {
                        self.probes.dropped(if too_big(e) {
                            Dropped::TooBig
                        } else {
                            Dropped::ProtocolError
                        });
                    }
                }
                if let Some(w) = self.waiters.remove(&conn) {
                    let ours = self.node.mesh().config().protocol.id().to_owned();
                    let _ = w.send(Err(Error::from_close(reason, &ours)));
                }
            }
            Action::Dial {
                dial,
                addr,
                expected_id: _,
            } => self.dial(dial, addr, None),
            Action::Deliver(delivery) => self.deliver(delivery),
            Action::Validate { ticket, delivery } => self.validate(ticket, delivery, out),
            Action::Event(event) => self.on_event(event),
        }
    }

    fn on_event(&mut self, event: MeshEvent) {
        let public = match event {
            MeshEvent::Connect => Event::Connect,
            // A dialled connection's `connect()` resolves on the peer's
            // peer list, not on its handshake: the peer sends that list
            // only once it has adopted us, so from then on every broadcast
            // it receives is relayed to us too.
            MeshEvent::PeerJoined { id, .. } => Event::PeerJoined(id),
            MeshEvent::PeerLeft { id, .. } => Event::PeerLeft(id),
            MeshEvent::Rebound { id, conn } | MeshEvent::Duplicate { id, conn } => {
                if let Some(w) = self.waiters.remove(&conn) {
                    let _ = w.send(Ok(id));
                }
                return;
            }
            MeshEvent::PeerList { from, peers, conn } => {
                if let Some(w) = self.waiters.remove(&conn) {
                    let _ = w.send(Ok(from.clone()));
                }
                Event::PeerList { from, peers }
            }
            MeshEvent::Closing { conn, reason } => {
                let remote = self
                    .conns
                    .get(&conn)
                    .map(|c| c.remote.clone())
                    .unwrap_or_default();
                tracing::debug!(%remote, %reason, "closing connection");
                Event::Rejected { remote, reason }
            }
            MeshEvent::ReplyUnrouted { to } => {
                self.probes.dropped(Dropped::Unrouted);
                Event::ReplyFailed { to }
            }
        };
        let _ = self.events.send(public);
    }

    /// The application's view of a delivery: the message and the
    /// connection it came on.
    fn message_and_connection(&self, delivery: Delivery) -> (Message, Connection) {
        let Delivery { message, id, conn } = delivery;
        let (remote, outgoing) = self
            .conns
            .get(&conn)
            .map(|c| (c.remote.clone(), c.outgoing))
            .unwrap_or_default();
        let peer = self.node.mesh().peer_of(conn).cloned();
        let msg = Message {
            inner: message,
            id,
            commands: self.commands_weak.clone(),
        };
        let connection = Connection {
            conn,
            peer,
            remote,
            outgoing,
            commands: self.commands_weak.clone(),
        };
        (msg, connection)
    }

    /// Asks the validator about a held broadcast: at once (synchronous),
    /// or by handing it to the application (asynchronous; ignored when
    /// the application's queue is full or gone).
    fn validate(&mut self, ticket: ValidationId, delivery: Delivery, out: &mut Vec<Action>) {
        let (message, connection) = self.message_and_connection(delivery);
        let now_ms = unix_now_ms();
        let verdict = match &self.validation {
            Some(ValidationMode::Sync(f)) => {
                let verdict = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    f(&message, &connection)
                }));
                verdict.unwrap_or_else(|_| {
                    tracing::error!("a validator panicked");
                    Validation::Ignore
                })
            }
            Some(ValidationMode::Async(tx)) => {
                let pending = PendingValidation {
                    message,
                    connection,
                    ticket,
                    commands: self.commands_weak.clone(),
                    decided: false,
                };
                match tx.try_send(pending) {
                    Ok(()) => return,
                    Err(e) => {
                        // Decided right here, not by its drop.
                        e.into_inner().decided = true;
                        Validation::Ignore
                    }
                }
            }
            None => Validation::Accept,
        };
        self.node.on_validated(now_ms, ticket, verdict, out);
    }

    fn deliver(&mut self, delivery: Delivery) {
        if let Some(arrived) = self.arrived {
            self.probes.delivered(arrived);
        }
        let (msg, connection) = self.message_and_connection(delivery);
        for handler in &self.handlers {
            let handled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                handler(&msg, &connection)
            }));
            match handled {
                Ok(true) => return,
                Ok(false) => {}
                Err(_) => tracing::error!("a message handler panicked"),
            }
        }
        let queued = matches!(
            msg.flag()
                .as_u64()
                .and_then(|v| u8::try_from(v).ok())
                .and_then(SubFlag::from_u8),
            Some(SubFlag::Broadcast | SubFlag::Whisper)
        );
        if !queued {
            return;
        }
        let overflowed = {
            let mut queue = self.inbox.queue.lock().unwrap_or_else(|e| e.into_inner());
            let full = queue.len() >= self.inbox.capacity;
            if full {
                queue.pop_front();
            }
            queue.push_back(msg);
            full
        };
        self.inbox.notify.notify_waiters();
        self.inbox.notify.notify_one();
        let _ = self.events.send(Event::Message);
        if overflowed {
            self.queue_dropped += 1;
            self.overflow.unreported += 1;
            self.probes.dropped(Dropped::QueueFull);
            self.report_overflow(unix_now_ms());
        }
    }

    /// Raises [`Event::QueueOverflow`] for receive-queue drops not yet
    /// reported, unless one was raised less than a second ago (the tick
    /// reports the rest).
    fn report_overflow(&mut self, now_ms: u64) {
        let o = &mut self.overflow;
        if o.unreported == 0 || now_ms.saturating_sub(o.reported_ms) < OVERFLOW_EVERY_MS {
            return;
        }
        let dropped = std::mem::take(&mut o.unreported);
        o.reported_ms = now_ms;
        tracing::warn!(dropped, "receive queue full: oldest messages dropped");
        let _ = self.events.send(Event::QueueOverflow {
            dropped,
            total: self.queue_dropped,
        });
    }

    /// Brings the metrics up to date with the state machine's counts and
    /// the node's levels (on the tick).
    fn mirror_metrics(&mut self) {
        if !cfg!(feature = "metrics") {
            return;
        }
        let mesh = self.node.mesh();
        let (duplicates, stale, future) = mesh.waterfall_drops();
        let (validation_rejected, validation_overflow) = mesh.validation_counts();
        let now = MeshCounts {
            received: [
                MainFlag::Broadcast,
                MainFlag::Renegotiate,
                MainFlag::Whisper,
                MainFlag::Ping,
                MainFlag::Pong,
            ]
            .map(|kind| mesh.messages_received(kind)),
            duplicates,
            stale,
            future,
            validation_rejected,
            validation_overflow,
            replies_refused: mesh.replies_refused(),
        };
        let levels = Levels {
            peers: mesh.peer_count(),
            awaiting: mesh.awaiting_count(),
            send_queue_bytes: self
                .conns
                .values()
                .map(|c| c.handle.queued.load(Ordering::Relaxed))
                .sum(),
            receive_queue: self
                .inbox
                .queue
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .len(),
            pending_replies: mesh.pending_len(),
            waterfall: mesh.waterfall_len(),
        };
        self.probes.mirror(&now, &mut self.mirrored, &levels);
    }
}

/// Whether a codec error is a size limit (rather than malformed data).
fn too_big(e: &CodecError) -> bool {
    matches!(
        e,
        CodecError::FrameTooLarge { .. } | CodecError::DecompressedTooLarge { .. }
    )
}
