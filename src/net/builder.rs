//! [`MeshBuilder`]: configures a mesh node and starts it (the listener,
//! the node id, the state machine and its actor).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::actor::{Actor, Inbox, NodeLimits};
use super::connection::{ConnIds, ConnSettings, Spawner};
use super::error::Error;
use super::message::{Connection, Message};
use super::metrics::Probes;
use super::socket::{MeshSocket, Shared};
use super::validation::{ValidationMode, Validations, Validator};
use crate::protocol::mesh::{Layer, MeshConfig, MeshState, Stack, Validation};
use crate::protocol::{
    py2p_addr_text, uuid4_text, CodecLimits, Compression, IdWire, PeerAddr, PeerId, Protocol,
};
use crate::transport::{for_protocol, TlsOptions, Transport, TransportOptions};

/// Configures and starts a [`MeshSocket`].
///
/// # Examples
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), rs2p::Error> {
/// use rs2p::{MeshSocket, protocol::Protocol};
/// let node = MeshSocket::builder()
///     .protocol(Protocol::new("chat", "Plaintext"))
///     .max_outgoing(8)
///     .bind("127.0.0.1:0")
///     .await?;
/// assert_eq!(node.protocol().subnet(), "chat");
/// node.close().await;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct MeshBuilder {
    config: MeshConfig,
    out_addr: Option<PeerAddr>,
    send_buffer: usize,
    recv_queue: usize,
    dial_timeout: Duration,
    handshake_timeout: Duration,
    transport: Option<Arc<dyn Transport>>,
    tls: TlsOptions,
    max_connections: usize,
    max_awaiting: usize,
    stall_timeout: Duration,
    idle_timeout: Option<Duration>,
    keepalive: Option<Duration>,
    validation: Option<ValidationChoice>,
    #[cfg(feature = "metrics")]
    metrics_group: Option<(super::metrics::MetricsGroup, String)>,
}

/// Which validation the builder sets up.
#[derive(Clone)]
enum ValidationChoice {
    Sync(Validator),
    Async,
}

impl std::fmt::Debug for ValidationChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ValidationChoice::Sync(_) => "Sync",
            ValidationChoice::Async => "Async",
        })
    }
}

impl Default for MeshBuilder {
    fn default() -> Self {
        MeshBuilder {
            config: MeshConfig::default(),
            out_addr: None,
            send_buffer: 4 << 20,
            recv_queue: 65_536,
            dial_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(10),
            transport: None,
            tls: TlsOptions::Compatibility,
            max_connections: 512,
            max_awaiting: 64,
            stall_timeout: Duration::from_secs(60),
            idle_timeout: None,
            keepalive: None,
            validation: None,
            #[cfg(feature = "metrics")]
            metrics_group: None,
        }
    }
}

impl MeshBuilder {
    /// The subnet to join. Default `("mesh", "Plaintext")`.
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.config.protocol = protocol;
        self
    }

    /// The address advertised to peers. Default: the bound address (for
    /// `0.0.0.0`, this host's address on its default route).
    pub fn out_addr(mut self, host: impl Into<String>, port: u16) -> Self {
        self.out_addr = Some(PeerAddr::new(host, port));
        self
    }

    /// Outgoing connections that peer lists may fill. Default 4.
    pub fn max_outgoing(mut self, n: usize) -> Self {
        self.config.max_outgoing = n;
        self
    }

    /// Compression methods offered, in order of preference. Default: all
    /// five. An empty list means frames go uncompressed.
    pub fn compression(mut self, methods: Vec<Compression>) -> Self {
        self.config.compression = methods;
        self
    }

    /// Frame size bounds (both directions).
    pub fn limits(mut self, limits: CodecLimits) -> Self {
        self.config.limits = limits;
        self
    }

    /// Bytes that may wait to be written to one peer; a peer that lets
    /// more pile up is too slow and is disconnected, so it can neither stall
    /// the node nor grow its memory. Default 4 MiB.
    pub fn send_buffer(mut self, bytes: usize) -> Self {
        self.send_buffer = bytes;
        self
    }

    /// Messages kept for [`MeshSocket::recv`]; the oldest is dropped past
    /// this, and the drop reported: [`Event::QueueOverflow`](super::Event::QueueOverflow)
    /// (at most once a second) and the `queue_full` reason of the
    /// `rs2p_messages_dropped_total` metric. Default 65,536.
    pub fn recv_queue(mut self, messages: usize) -> Self {
        self.recv_queue = messages;
        self
    }

    /// How long a new connection may go without the peer's handshake
    /// before it is closed, and how long [`MeshSocket::connect`] waits for
    /// it. Default 10 s.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self.config.handshake_timeout_ms = timeout.as_millis() as u64;
        self
    }

    /// How long dialling a peer (TCP connect plus the transport's own
    /// handshake) may take, and how long an accepted connection may take to
    /// complete the transport's handshake. Default 5 s.
    pub fn dial_timeout(mut self, timeout: Duration) -> Self {
        self.dial_timeout = timeout;
        self
    }

    /// Most open connections; further incoming ones are refused at once.
    /// Default 512.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n;
        self
    }

    /// Most connections waiting for their handshake; further incoming ones
    /// are refused at once. Default 64.
    pub fn max_awaiting(mut self, n: usize) -> Self {
        self.max_awaiting = n;
        self
    }

    /// A connection that stays part-way through a frame this long is
    /// closed. Default 60 s, as the references.
    pub fn stall_timeout(mut self, timeout: Duration) -> Self {
        self.stall_timeout = timeout;
        self
    }

    /// A connection that sends nothing for this long is closed. Default:
    /// none. Pair it with [`keepalive`](Self::keepalive) on every node.
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Sends a keep-alive message to every peer at this interval (peers,
    /// py2p included, ignore it). Default: none.
    pub fn keepalive(mut self, interval: Option<Duration>) -> Self {
        self.keepalive = interval;
        self
    }

    /// The msgpack form of this node's id on the wire. Default str (see
    /// [`MeshConfig::id_wire`]).
    pub fn id_wire(mut self, wire: IdWire) -> Self {
        self.config.id_wire = wire;
        self
    }

    /// Validates every new broadcast from a peer before it is relayed or
    /// delivered: `f` is called in the node (keep it quick) and decides
    /// (see [`crate::net::validation`]). A peer whose broadcasts are
    /// rejected more than `max_rejections` times is disconnected.
    ///
    /// # Examples
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rs2p::Error> {
    /// use rs2p::protocol::mesh::Validation;
    /// let node = rs2p::MeshSocket::builder()
    ///     .validator(|msg, _conn| {
    ///         if msg.packets().first().and_then(|p| p.as_str()) == Some("spam") {
    ///             Validation::Reject
    ///         } else {
    ///             Validation::Accept
    ///         }
    ///     })
    ///     .bind("127.0.0.1:0")
    ///     .await?;
    /// # node.close().await;
    /// # Ok(()) }
    /// ```
    pub fn validator<F>(mut self, f: F) -> Self
    where
        F: Fn(&Message, &Connection) -> Validation + Send + Sync + 'static,
    {
        self.config.validate = true;
        self.validation = Some(ValidationChoice::Sync(Arc::new(f)));
        self
    }

    /// Validates every new broadcast from a peer before it is relayed or
    /// delivered, asynchronously: take the broadcasts with
    /// [`MeshSocket::validations`] and decide about each when ready. At
    /// most `max_pending` wait at once (past that new ones are dropped
    /// until you catch up); undecided ones are ignored after 10 s.
    pub fn async_validation(mut self, max_pending: usize) -> Self {
        self.config.validate = true;
        self.config.max_pending_validations = max_pending.max(1);
        self.validation = Some(ValidationChoice::Async);
        self
    }

    /// Rejected broadcasts tolerated from one connection before it is
    /// closed. Default 10.
    pub fn max_rejections(mut self, n: u32) -> Self {
        self.config.max_rejections = n;
        self
    }

    /// Whether lost peers are redialled (exponential backoff with jitter)
    /// and remembered addresses used to refill the routing table up to
    /// `max_outgoing`. Default true.
    pub fn reconnect(mut self, on: bool) -> Self {
        self.config.reconnect = on;
        self
    }

    /// The transport frames travel on. Default: the one the protocol's
    /// `encryption` names (see [`for_protocol`]), which should match it.
    pub fn transport(mut self, transport: Arc<dyn Transport>) -> Self {
        self.transport = Some(transport);
        self
    }

    /// The TLS mode of the `SSL` and `wss` transports when the transport
    /// is picked from the protocol. Default: compatibility mode (as py2p;
    /// encrypts, authenticates no one — see [`TlsOptions`]).
    pub fn tls(mut self, options: TlsOptions) -> Self {
        self.tls = options;
        self
    }

    /// Keeps the node's metrics in `group`, its series labelled
    /// `node=<label>`, so several nodes share one set of metric families
    /// (see [`MetricsGroup`](super::metrics::MetricsGroup)). Default: a
    /// group of its own, without the label.
    #[cfg(feature = "metrics")]
    pub fn metrics_group(
        mut self,
        group: &super::metrics::MetricsGroup,
        label: impl Into<String>,
    ) -> Self {
        self.metrics_group = Some((group.clone(), label.into()));
        self
    }

    /// Every protocol setting at once.
    pub fn config(mut self, config: MeshConfig) -> Self {
        self.config = config;
        self
    }

    /// Binds the listener and starts the node. Must be called inside a
    /// tokio runtime.
    ///
    /// # Errors
    /// [`Error::BadAddress`] if `addr` is not `HOST:PORT`; [`Error::Io`] if
    /// it cannot be bound (in use, not local, no permission);
    /// [`Error::Transport`] if the protocol's transport cannot be set up.
    pub async fn bind(self, addr: &str) -> Result<MeshSocket, Error> {
        self.bind_with_layer(addr, Box::new(())).await
    }

    /// As [`bind`](Self::bind), with a protocol [`Layer`] on top of the
    /// mesh: it sees handshakes, departures, ticks and the messages it
    /// claims, inside the node's actor (see [`crate::protocol::mesh::layer`]).
    /// Reach it afterwards with [`MeshSocket::with_layer`].
    ///
    /// # Examples
    /// A layer that claims nothing leaves the mesh as it is:
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rs2p::Error> {
    /// use rs2p::protocol::mesh::{Layer, LayerCtx};
    /// use rs2p::protocol::InternalMessage;
    ///
    /// #[derive(Default)]
    /// struct Quiet { ticks: u64 }
    /// impl Layer for Quiet {
    ///     fn claims(&self, _: &InternalMessage) -> bool { false }
    ///     fn on_tick(&mut self, _: &mut LayerCtx<'_>) { self.ticks += 1; }
    /// }
    ///
    /// let node = rs2p::MeshSocket::builder()
    ///     .bind_with_layer("127.0.0.1:0", Box::new(Quiet::default()))
    ///     .await?;
    /// let ticks = node.with_layer(|q: &mut Quiet, _ctx| q.ticks).await?;
    /// assert!(ticks < 1_000);
    /// node.close().await;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`bind`](Self::bind).
    pub async fn bind_with_layer(
        self,
        addr: &str,
        layer: Box<dyn Layer>,
    ) -> Result<MeshSocket, Error> {
        let PeerAddr { host, port } = split_host_port(addr)?;
        let transport = match &self.transport {
            Some(transport) => transport.clone(),
            None => for_protocol(
                &self.config.protocol,
                &TransportOptions {
                    tls: self.tls.clone(),
                    max_frame_len: self.config.limits.max_frame_len,
                },
            )?,
        };
        let listener = TcpListener::bind((host.as_str(), port))
            .await
            .map_err(|e| Error::io(format!("cannot listen on {addr}"), e))?;
        let local = listener
            .local_addr()
            .map_err(|e| Error::io("cannot read the bound address", e))?;
        let out_addr = self
            .out_addr
            .clone()
            .unwrap_or_else(|| PeerAddr::new(reachable_ip(local.ip()).to_string(), local.port()));
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt).map_err(|e| {
            Error::io(
                "no randomness for the node id",
                std::io::Error::other(e.to_string()),
            )
        })?;
        let id = PeerId::derive(
            &py2p_addr_text(&out_addr.host, out_addr.port),
            self.config.protocol.id(),
            &uuid4_text(salt),
        );
        let protocol = self.config.protocol.clone();
        let limits = self.config.limits;
        let mut config = self.config;
        let mut seed = [0u8; 8];
        if getrandom::fill(&mut seed).is_ok() {
            config.seed = u64::from_le_bytes(seed);
        }
        let node = Stack::new(MeshState::new(id.clone(), out_addr.clone(), config), layer);

        let (validation, validations) = match self.validation.clone() {
            None => (None, None),
            Some(ValidationChoice::Sync(f)) => (Some(ValidationMode::Sync(f)), None),
            Some(ValidationChoice::Async) => {
                let (tx, rx) = mpsc::channel(config_pending(node.mesh().config()));
                (Some(ValidationMode::Async(tx)), Some(Validations { rx }))
            }
        };
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        // The application's broadcasts, prepared in its own tasks; bounded,
        // so a sender faster than the node waits instead of piling up.
        let (sends_tx, sends_rx) = mpsc::channel(SENDS_QUEUE);
        let sender_id = node.mesh().id().clone();
        let (internal_tx, internal_rx) = mpsc::channel(1024);
        let (events, _) = broadcast::channel(1024);
        let inbox = Arc::new(Inbox {
            queue: Mutex::new(Default::default()),
            notify: Notify::new(),
            capacity: self.recv_queue.max(1),
        });
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        #[cfg(feature = "metrics")]
        let probes = match &self.metrics_group {
            Some((group, label)) => Probes::in_group(group, Some(label), transport.name()),
            None => Probes::new(transport.name()),
        };
        #[cfg(not(feature = "metrics"))]
        let probes = Probes::new(transport.name());
        let actor = Actor {
            node,
            conns: HashMap::new(),
            waiters: HashMap::new(),
            handlers: Vec::new(),
            inbox: inbox.clone(),
            events: events.clone(),
            commands_weak: cmd_tx.downgrade(),
            spawner: Spawner {
                internal: internal_tx,
                cancel: cancel.clone(),
                tracker: tracker.clone(),
                settings: ConnSettings {
                    max_frame_len: limits.max_frame_len,
                    send_buffer: self.send_buffer,
                    stall_timeout: self.stall_timeout,
                    idle_timeout: self.idle_timeout,
                },
                ids: Arc::new(ConnIds::default()),
                transport,
                probes: probes.clone(),
            },
            dial_timeout: self.dial_timeout,
            slow_dropped: 0,
            queue_dropped: 0,
            limits: NodeLimits {
                max_connections: self.max_connections.max(1),
                max_awaiting: self.max_awaiting.max(1),
                keepalive: self.keepalive,
            },
            accepting: Arc::new(AtomicUsize::new(0)),
            refused: 0,
            validation,
            probes: probes.clone(),
            mirrored: Default::default(),
            arrived: None,
            overflow: Default::default(),
        };
        let done = CancellationToken::new();
        let done_signal = done.clone();
        let stop_tasks = cancel.clone();
        tokio::spawn(async move {
            // Dropped when the actor ends, normally or by a panic (a bug):
            // either way every connection task stops and every handle sees
            // the node as shut down instead of waiting forever.
            let _stop = stop_tasks.drop_guard();
            let _done = done_signal.drop_guard();
            actor.run(listener, cmd_rx, internal_rx, sends_rx).await;
        });
        tracing::info!(id = %id.short(12), %local, "mesh node listening");
        Ok(MeshSocket {
            shared: Arc::new(Shared {
                commands: cmd_tx,
                sends: sends_tx,
                sender_id,
                limits,
                id,
                local,
                out_addr,
                protocol,
                inbox,
                events,
                cancel,
                done,
                handshake_timeout: self.handshake_timeout,
                validations: std::sync::Mutex::new(validations),
                probes,
            }),
        })
    }
}

/// Splits `HOST:PORT` (IPv6 as `[::1]:PORT`).
///
/// # Errors
/// [`Error::BadAddress`] when it is not of that form.
pub fn split_host_port(addr: &str) -> Result<PeerAddr, Error> {
    PeerAddr::parse(addr).ok_or_else(|| Error::BadAddress(addr.to_owned()))
}

/// For a wildcard bind, the address of the default route's interface (found
/// by a UDP `connect`, which sends nothing); loopback if there is none.
fn reachable_ip(bound: IpAddr) -> IpAddr {
    if !bound.is_unspecified() {
        return bound;
    }
    let probe = || -> std::io::Result<IpAddr> {
        let s = std::net::UdpSocket::bind("0.0.0.0:0")?;
        // TEST-NET-1: nothing is sent; the kernel only picks a route.
        s.connect("192.0.2.1:9")?;
        Ok(s.local_addr()?.ip())
    };
    probe().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// Room for broadcasts waiting for the application's decision.
fn config_pending(config: &MeshConfig) -> usize {
    config.max_pending_validations.max(1)
}

/// Prepared sends that may wait for the node at once.
const SENDS_QUEUE: usize = 1024;
