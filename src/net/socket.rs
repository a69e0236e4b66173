//! [`MeshSocket`]: the cheap, cloneable handle to a running mesh node, and
//! [`MeshBuilder`] to configure one.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, oneshot, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::actor::{unix_now, Actor, Command, Handler, Inbox, NodeLimits, Snapshot};
use super::connection::{ConnIds, ConnSettings, Spawner};
use super::error::Error;
use super::message::{Connection, Event, Message};
use crate::protocol::mesh::{Layer, LayerCtx, MeshConfig, MeshState, PeerInfo, Stack};
use crate::protocol::{
    py2p_addr_text, uuid4_text, CodecLimits, Compression, MainFlag, MessageId, Packet, PeerAddr,
    PeerId, Protocol, SubFlag,
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
    /// this. Default 65,536.
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

        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (internal_tx, internal_rx) = mpsc::channel(1024);
        let (events, _) = broadcast::channel(1024);
        let inbox = Arc::new(Inbox {
            queue: Mutex::new(Default::default()),
            notify: Notify::new(),
            capacity: self.recv_queue.max(1),
        });
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
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
        };
        let done = CancellationToken::new();
        let done_signal = done.clone();
        tokio::spawn(async move {
            actor.run(listener, cmd_rx, internal_rx).await;
            done_signal.cancel();
        });
        tracing::info!(id = %id.short(12), %local, "mesh node listening");
        Ok(MeshSocket {
            shared: Arc::new(Shared {
                commands: cmd_tx,
                id,
                local,
                out_addr,
                protocol,
                inbox,
                events,
                cancel,
                done,
                handshake_timeout: self.handshake_timeout,
            }),
        })
    }
}

#[derive(Debug)]
struct Shared {
    commands: mpsc::UnboundedSender<Command>,
    id: PeerId,
    local: SocketAddr,
    out_addr: PeerAddr,
    protocol: Protocol,
    inbox: Arc<Inbox>,
    events: broadcast::Sender<Event>,
    cancel: CancellationToken,
    done: CancellationToken,
    handshake_timeout: Duration,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // The last handle is gone: stop the node.
        self.cancel.cancel();
    }
}

/// A handle to a running mesh node. Cheap to clone; dropping the last clone
/// shuts the node down.
///
/// # Examples
/// Two nodes, one broadcast:
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), rs2p::Error> {
/// use rs2p::{packets, MeshSocket};
/// let a = MeshSocket::bind("127.0.0.1:0").await?;
/// let b = MeshSocket::bind("127.0.0.1:0").await?;
/// b.connect("127.0.0.1", a.addr().port(), None).await?;
/// b.send(packets!["hello", 42]).await?;
/// let msg = a.next_message().await?;
/// assert_eq!(msg.packets()[0].as_str(), Some("hello"));
/// assert_eq!(msg.sender(), b.id());
/// # a.close().await; b.close().await;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct MeshSocket {
    shared: Arc<Shared>,
}

impl MeshSocket {
    /// Starts a node with default settings on `addr` (`HOST:PORT`; port 0
    /// picks a free one).
    ///
    /// # Errors
    /// As [`MeshBuilder::bind`].
    ///
    /// # Examples
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rs2p::Error> {
    /// let node = rs2p::MeshSocket::bind("127.0.0.1:0").await?;
    /// assert_ne!(node.addr().port(), 0);
    /// node.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn bind(addr: &str) -> Result<MeshSocket, Error> {
        MeshBuilder::default().bind(addr).await
    }

    /// A builder for a node with non-default settings.
    ///
    /// # Examples
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rs2p::Error> {
    /// let node = rs2p::MeshSocket::builder().max_outgoing(2).bind("127.0.0.1:0").await?;
    /// # node.close().await;
    /// # Ok(()) }
    /// ```
    pub fn builder() -> MeshBuilder {
        MeshBuilder::default()
    }

    /// This node's id.
    ///
    /// # Examples
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rs2p::Error> {
    /// let node = rs2p::MeshSocket::bind("127.0.0.1:0").await?;
    /// println!("my id is {}", node.id());
    /// assert!(!node.id().as_bytes().is_empty());
    /// # Ok(()) }
    /// ```
    pub fn id(&self) -> &PeerId {
        &self.shared.id
    }

    /// The address the listener is bound to.
    ///
    /// # Examples
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rs2p::Error> {
    /// let node = rs2p::MeshSocket::bind("127.0.0.1:0").await?;
    /// assert!(node.addr().ip().is_loopback());
    /// # Ok(()) }
    /// ```
    pub fn addr(&self) -> SocketAddr {
        self.shared.local
    }

    /// The address advertised to peers.
    ///
    /// # Examples
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rs2p::Error> {
    /// let node = rs2p::MeshSocket::bind("127.0.0.1:0").await?;
    /// assert_eq!(node.out_addr().host, "127.0.0.1");
    /// assert_eq!(node.out_addr().port, node.addr().port());
    /// # Ok(()) }
    /// ```
    pub fn out_addr(&self) -> &PeerAddr {
        &self.shared.out_addr
    }

    /// The subnet.
    ///
    /// # Examples
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rs2p::Error> {
    /// let node = rs2p::MeshSocket::bind("127.0.0.1:0").await?;
    /// assert_eq!(node.protocol().subnet(), "mesh");
    /// # Ok(()) }
    /// ```
    pub fn protocol(&self) -> &Protocol {
        &self.shared.protocol
    }

    fn command(&self, command: Command) -> Result<(), Error> {
        self.shared
            .commands
            .send(command)
            .map_err(|_| Error::Shutdown)
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, Error> {
        let (tx, rx) = oneshot::channel();
        self.command(make(tx))?;
        rx.await.map_err(|_| Error::Shutdown)
    }

    /// Connects to the node at `host:port` and waits for its handshake.
    /// Returns the peer's id. Peers it tells us about are dialled as well,
    /// up to `max_outgoing`.
    ///
    /// Cancel safety: dropping the future leaves the dial running; the peer
    /// still joins if it answers.
    ///
    /// # Errors
    /// [`Error::SelfConnection`] for our own address or id;
    /// [`Error::AlreadyConnected`] if `expected_id` is already a peer;
    /// [`Error::Io`] if the dial fails; [`Error::SubnetMismatch`] if the
    /// peer is on another subnet; [`Error::Timeout`] without a handshake.
    ///
    /// # Examples
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rs2p::Error> {
    /// let a = rs2p::MeshSocket::bind("127.0.0.1:0").await?;
    /// let b = rs2p::MeshSocket::bind("127.0.0.1:0").await?;
    /// let id = b.connect("127.0.0.1", a.addr().port(), None).await?;
    /// assert_eq!(&id, a.id());
    /// assert!(matches!(a.connect("127.0.0.1", a.addr().port(), None).await,
    ///     Err(rs2p::Error::SelfConnection)));
    /// # Ok(()) }
    /// ```
    pub async fn connect(
        &self,
        host: &str,
        port: u16,
        expected_id: Option<PeerId>,
    ) -> Result<PeerId, Error> {
        if expected_id.as_ref() == Some(&self.shared.id) || self.is_own_address(host, port).await {
            return Err(Error::SelfConnection);
        }
        let timeout = self.shared.handshake_timeout;
        let fut = self.ask(|done| Command::Connect {
            addr: PeerAddr::new(host, port),
            expected_id,
            done,
        });
        match tokio::time::timeout(timeout, fut).await {
            Ok(r) => r?,
            Err(_) => Err(Error::Timeout(timeout)),
        }
    }

    /// Connects to `HOST:PORT` given as one string.
    ///
    /// # Errors
    /// [`Error::BadAddress`], then those of [`connect`](Self::connect).
    ///
    /// # Examples
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rs2p::Error> {
    /// use rs2p::{packets, MeshSocket};
    /// let a = MeshSocket::bind("127.0.0.1:0").await?;
    /// let b = MeshSocket::bind("127.0.0.1:0").await?;
    /// b.connect("127.0.0.1", a.addr().port(), None).await?;
    /// let c = MeshSocket::bind("127.0.0.1:0").await?;
    /// let id = c.connect_addr(&a.addr().to_string()).await?;
    /// assert_eq!(&id, a.id());
    /// assert!(matches!(c.connect_addr("no-port").await, Err(rs2p::Error::BadAddress(_))));
    /// # Ok(()) }
    /// ```
    pub async fn connect_addr(&self, addr: &str) -> Result<PeerId, Error> {
        let addr = split_host_port(addr)?;
        self.connect(&addr.host, addr.port, None).await
    }

    async fn is_own_address(&self, host: &str, port: u16) -> bool {
        let out = self.out_addr();
        if host == out.host && port == out.port {
            return true;
        }
        let local = self.shared.local;
        if port != local.port() {
            return false;
        }
        match tokio::net::lookup_host((host, port)).await {
            Ok(mut addrs) => addrs.any(|a| {
                a.ip() == local.ip()
                    || local.ip().is_unspecified()
                    || (a.ip().is_loopback() && local.ip().is_loopback())
            }),
            Err(_) => false,
        }
    }

    /// Broadcasts `packets` to every node of the mesh. Returns the message id.
    ///
    /// # Errors
    /// [`Error::Send`] if the message exceeds the frame limit;
    /// [`Error::Shutdown`] if the node has stopped.
    ///
    /// # Examples
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rs2p::Error> {
    /// use rs2p::{packets, MeshSocket};
    /// let a = MeshSocket::bind("127.0.0.1:0").await?;
    /// let b = MeshSocket::bind("127.0.0.1:0").await?;
    /// b.connect("127.0.0.1", a.addr().port(), None).await?;
    /// let id = b.send(packets!["hello", 1, true]).await?;
    /// let msg = a.next_message().await?;
    /// assert_eq!(msg.id(), id);
    /// # Ok(()) }
    /// ```
    pub async fn send(&self, packets: Vec<Packet>) -> Result<MessageId, Error> {
        self.send_with(
            packets,
            SubFlag::Broadcast.as_u8().into(),
            MainFlag::Broadcast,
        )
        .await
    }

    /// Sends with an explicit sub-flag (packet 0) and main flag, as the
    /// references' `send(packets, flag, type)`. `msg_type` must be
    /// `Broadcast` (flood the mesh) or `Whisper` (direct peers only).
    ///
    /// # Errors
    /// [`Error::Send`] with [`SendError::ReservedType`](crate::protocol::mesh::SendError::ReservedType)
    /// for other main flags; otherwise as [`send`](Self::send).
    ///
    /// # Examples
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rs2p::Error> {
    /// use rs2p::{packets, MeshSocket};
    /// let a = MeshSocket::bind("127.0.0.1:0").await?;
    /// let b = MeshSocket::bind("127.0.0.1:0").await?;
    /// b.connect("127.0.0.1", a.addr().port(), None).await?;
    /// use rs2p::protocol::MainFlag;
    /// // Packet 0 is the application's own flag, above the reserved range.
    /// b.send_with(packets!["x"], 0x40.into(), MainFlag::Whisper).await?;
    /// assert!(b.send_with(packets![], 0.into(), MainFlag::Renegotiate).await.is_err());
    /// # Ok(()) }
    /// ```
    pub async fn send_with(
        &self,
        packets: Vec<Packet>,
        flag: Packet,
        msg_type: MainFlag,
    ) -> Result<MessageId, Error> {
        self.ask(|done| Command::Send {
            flag,
            msg_type,
            packets,
            done,
        })
        .await?
    }

    /// Sends `packets` directly to one connected peer.
    ///
    /// # Errors
    /// [`Error::Send`] if the peer is not connected.
    ///
    /// # Examples
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rs2p::Error> {
    /// use rs2p::{packets, MeshSocket};
    /// let a = MeshSocket::bind("127.0.0.1:0").await?;
    /// let b = MeshSocket::bind("127.0.0.1:0").await?;
    /// b.connect("127.0.0.1", a.addr().port(), None).await?;
    /// b.whisper(a.id(), packets!["just for you"]).await?;
    /// let msg = a.next_message().await?;
    /// assert_eq!(msg.kind(), rs2p::MessageKind::Whisper);
    /// # Ok(()) }
    /// ```
    pub async fn whisper(&self, peer: &PeerId, packets: Vec<Packet>) -> Result<MessageId, Error> {
        self.ask(|done| Command::Whisper {
            to: peer.clone(),
            packets,
            done,
        })
        .await?
    }

    /// Replies to a node by id, as [`Message::reply`] does: directly if
    /// connected, otherwise through a route request.
    ///
    /// # Errors
    /// [`Error::Send`] if too many replies are waiting for routes.
    ///
    /// # Examples
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rs2p::Error> {
    /// use rs2p::{packets, MeshSocket};
    /// let a = MeshSocket::bind("127.0.0.1:0").await?;
    /// let b = MeshSocket::bind("127.0.0.1:0").await?;
    /// b.connect("127.0.0.1", a.addr().port(), None).await?;
    /// b.reply_to(a.id(), packets!["answer"]).await?;
    /// assert_eq!(a.next_message().await?.packets()[0].as_str(), Some("answer"));
    /// # Ok(()) }
    /// ```
    pub async fn reply_to(&self, peer: &PeerId, packets: Vec<Packet>) -> Result<(), Error> {
        self.ask(|done| Command::Reply {
            to: peer.clone(),
            packets,
            done: Some(done),
        })
        .await?
    }

    /// Takes the oldest queued message, if any.
    ///
    /// # Examples
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rs2p::Error> {
    /// use rs2p::{packets, MeshSocket};
    /// let a = MeshSocket::bind("127.0.0.1:0").await?;
    /// let b = MeshSocket::bind("127.0.0.1:0").await?;
    /// b.connect("127.0.0.1", a.addr().port(), None).await?;
    /// assert!(a.recv().is_none());
    /// b.send(packets!["one"]).await?;
    /// let _ = a.next_message().await?; // or poll recv() until it returns Some
    /// assert!(a.recv().is_none());
    /// # Ok(()) }
    /// ```
    pub fn recv(&self) -> Option<Message> {
        self.shared
            .inbox
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front()
    }

    /// Takes up to `n` queued messages, oldest first.
    ///
    /// # Examples
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rs2p::Error> {
    /// use rs2p::{packets, MeshSocket};
    /// let a = MeshSocket::bind("127.0.0.1:0").await?;
    /// let b = MeshSocket::bind("127.0.0.1:0").await?;
    /// b.connect("127.0.0.1", a.addr().port(), None).await?;
    /// for i in 0..3 { b.send(packets![i]).await?; }
    /// let mut got = vec![a.next_message().await?];
    /// while got.len() < 3 {
    ///     got.extend(a.recv_many(3 - got.len()));
    ///     if got.len() < 3 {
    ///         got.push(a.next_message().await?);
    ///     }
    /// }
    /// assert_eq!(got[2].packets()[0].as_i64(), Some(2));
    /// # Ok(()) }
    /// ```
    pub fn recv_many(&self, n: usize) -> Vec<Message> {
        let mut queue = self
            .shared
            .inbox
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let take = n.min(queue.len());
        queue.drain(..take).collect()
    }

    /// Waits for the next queued message.
    ///
    /// Cancel safety: cancel-safe; no message is lost if the future is dropped.
    ///
    /// # Errors
    /// [`Error::Shutdown`] once the node has stopped and the queue is empty.
    ///
    /// # Examples
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rs2p::Error> {
    /// use rs2p::{packets, MeshSocket};
    /// let a = MeshSocket::bind("127.0.0.1:0").await?;
    /// let b = MeshSocket::bind("127.0.0.1:0").await?;
    /// b.connect("127.0.0.1", a.addr().port(), None).await?;
    /// b.send(packets!["hi"]).await?;
    /// let msg = tokio::time::timeout(std::time::Duration::from_secs(5), a.next_message()).await.expect("in time")?;
    /// assert_eq!(msg.sender(), b.id());
    /// # Ok(()) }
    /// ```
    pub async fn next_message(&self) -> Result<Message, Error> {
        loop {
            let notified = self.shared.inbox.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(m) = self.recv() {
                return Ok(m);
            }
            if self.shared.done.is_cancelled() {
                return Err(Error::Shutdown);
            }
            tokio::select! {
                _ = notified => {}
                _ = self.shared.done.cancelled() => {}
            }
        }
    }

    /// A subscription to this node's events. Each subscriber sees every
    /// event raised after it subscribed; a subscriber that falls more than
    /// 1,024 events behind gets `RecvError::Lagged`.
    ///
    /// # Examples
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rs2p::Error> {
    /// use rs2p::{Event, MeshSocket};
    /// let a = MeshSocket::bind("127.0.0.1:0").await?;
    /// let mut events = a.events();
    /// let b = MeshSocket::bind("127.0.0.1:0").await?;
    /// b.connect("127.0.0.1", a.addr().port(), None).await?;
    /// assert_eq!(events.recv().await.unwrap(), Event::Connect);
    /// assert_eq!(events.recv().await.unwrap(), Event::PeerJoined(b.id().clone()));
    /// # Ok(()) }
    /// ```
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.shared.events.subscribe()
    }

    /// Adds a message handler. Handlers run on the node's task, in
    /// registration order, after the protocol's own; the first to return
    /// `true` handles the message, which then is not queued. Handlers must
    /// not block.
    ///
    /// # Errors
    /// [`Error::Shutdown`] if the node has stopped.
    ///
    /// # Examples
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rs2p::Error> {
    /// let node = rs2p::MeshSocket::bind("127.0.0.1:0").await?;
    /// node.register_handler(|msg, _conn| {
    ///     // Answer pings, let everything else through to recv().
    ///     if msg.packets().first().and_then(|p| p.as_str()) == Some("ping") {
    ///         let _ = msg.reply(rs2p::packets!["pong"]);
    ///         return true;
    ///     }
    ///     false
    /// })?;
    /// # Ok(()) }
    /// ```
    pub fn register_handler<F>(&self, handler: F) -> Result<(), Error>
    where
        F: Fn(&Message, &Connection) -> bool + Send + Sync + 'static,
    {
        let handler: Handler = Arc::new(handler);
        self.command(Command::RegisterHandler(handler))
    }

    /// A snapshot of the node's state.
    ///
    /// # Errors
    /// [`Error::Shutdown`] if the node has stopped.
    ///
    /// # Examples
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rs2p::Error> {
    /// let node = rs2p::MeshSocket::bind("127.0.0.1:0").await?;
    /// let snap = node.snapshot().await?;
    /// assert!(snap.peers.is_empty() && snap.errors.is_empty());
    /// # Ok(()) }
    /// ```
    pub async fn snapshot(&self) -> Result<Snapshot, Error> {
        self.ask(Command::Snapshot).await
    }

    /// The routing table: every peer that completed its handshake.
    ///
    /// # Errors
    /// [`Error::Shutdown`] if the node has stopped.
    ///
    /// # Examples
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rs2p::Error> {
    /// use rs2p::{packets, MeshSocket};
    /// let a = MeshSocket::bind("127.0.0.1:0").await?;
    /// let b = MeshSocket::bind("127.0.0.1:0").await?;
    /// b.connect("127.0.0.1", a.addr().port(), None).await?;
    /// let table = b.routing_table().await?;
    /// assert_eq!(&table[0].id, a.id());
    /// assert!(table[0].outgoing);
    /// # Ok(()) }
    /// ```
    pub async fn routing_table(&self) -> Result<Vec<PeerInfo>, Error> {
        Ok(self.snapshot().await?.peers)
    }

    /// Connections waiting for their handshake.
    ///
    /// # Errors
    /// [`Error::Shutdown`] if the node has stopped.
    ///
    /// # Examples
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rs2p::Error> {
    /// let node = rs2p::MeshSocket::bind("127.0.0.1:0").await?;
    /// assert_eq!(node.awaiting_ids().await?, 0);
    /// # Ok(()) }
    /// ```
    pub async fn awaiting_ids(&self) -> Result<usize, Error> {
        Ok(self.snapshot().await?.awaiting)
    }

    /// Ids of the peers this node dialled.
    ///
    /// # Errors
    /// [`Error::Shutdown`] if the node has stopped.
    ///
    /// # Examples
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rs2p::Error> {
    /// use rs2p::{packets, MeshSocket};
    /// let a = MeshSocket::bind("127.0.0.1:0").await?;
    /// let b = MeshSocket::bind("127.0.0.1:0").await?;
    /// b.connect("127.0.0.1", a.addr().port(), None).await?;
    /// assert_eq!(b.outgoing().await?, vec![a.id().clone()]);
    /// # Ok(()) }
    /// ```
    pub async fn outgoing(&self) -> Result<Vec<PeerId>, Error> {
        Ok(self
            .routing_table()
            .await?
            .into_iter()
            .filter(|p| p.outgoing)
            .map(|p| p.id)
            .collect())
    }

    /// Ids of the peers that dialled this node.
    ///
    /// # Errors
    /// [`Error::Shutdown`] if the node has stopped.
    ///
    /// # Examples
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rs2p::Error> {
    /// use rs2p::{packets, MeshSocket};
    /// let a = MeshSocket::bind("127.0.0.1:0").await?;
    /// let b = MeshSocket::bind("127.0.0.1:0").await?;
    /// b.connect("127.0.0.1", a.addr().port(), None).await?;
    /// assert_eq!(a.incoming().await?, vec![b.id().clone()]);
    /// # Ok(()) }
    /// ```
    pub async fn incoming(&self) -> Result<Vec<PeerId>, Error> {
        Ok(self
            .routing_table()
            .await?
            .into_iter()
            .filter(|p| !p.outgoing)
            .map(|p| p.id)
            .collect())
    }

    /// Closes the connection to a peer. Returns whether it was connected.
    ///
    /// # Errors
    /// [`Error::Shutdown`] if the node has stopped.
    ///
    /// # Examples
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rs2p::Error> {
    /// use rs2p::{packets, MeshSocket};
    /// let a = MeshSocket::bind("127.0.0.1:0").await?;
    /// let b = MeshSocket::bind("127.0.0.1:0").await?;
    /// b.connect("127.0.0.1", a.addr().port(), None).await?;
    /// assert!(b.disconnect(a.id()).await?);
    /// assert!(b.routing_table().await?.is_empty());
    /// # Ok(()) }
    /// ```
    pub async fn disconnect(&self, peer: &PeerId) -> Result<bool, Error> {
        self.ask(|done| Command::Disconnect {
            peer: peer.clone(),
            done,
        })
        .await
    }

    /// Asks every peer for its peer list; new peers are dialled up to
    /// `max_outgoing`. Each list also comes out as an
    /// [`Event::PeerList`].
    ///
    /// # Errors
    /// [`Error::Shutdown`] if the node has stopped.
    ///
    /// # Examples
    /// Ask a node whom it knows, without dialling them (`max_outgoing(0)`):
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rs2p::Error> {
    /// use rs2p::{Event, MeshSocket};
    /// let a = MeshSocket::bind("127.0.0.1:0").await?;
    /// let b = MeshSocket::bind("127.0.0.1:0").await?;
    /// b.connect("127.0.0.1", a.addr().port(), None).await?;
    ///
    /// let asker = MeshSocket::builder().max_outgoing(0).bind("127.0.0.1:0").await?;
    /// let mut events = asker.events();
    /// let b_id = asker.connect("127.0.0.1", b.addr().port(), None).await?;
    /// asker.request_peers()?;
    /// let peers = loop {
    ///     if let Event::PeerList { from, peers } = events.recv().await.expect("events") {
    ///         assert_eq!(from, b_id);
    ///         break peers;
    ///     }
    /// };
    /// assert_eq!(peers.len(), 1, "b lists a, not the asker");
    /// assert_eq!(&peers[0].0, a.id());
    /// assert_eq!(peers[0].1, rs2p::protocol::PeerAddr::new("127.0.0.1", a.addr().port()));
    /// # Ok(()) }
    /// ```
    pub fn request_peers(&self) -> Result<(), Error> {
        self.command(Command::RequestPeers)
    }

    /// Asks a peer to switch to these compression methods.
    ///
    /// # Errors
    /// [`Error::Send`] if the peer is not connected.
    ///
    /// # Examples
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rs2p::Error> {
    /// use rs2p::{packets, MeshSocket};
    /// let a = MeshSocket::bind("127.0.0.1:0").await?;
    /// let b = MeshSocket::bind("127.0.0.1:0").await?;
    /// b.connect("127.0.0.1", a.addr().port(), None).await?;
    /// use rs2p::protocol::Compression;
    /// b.renegotiate(a.id(), vec![Compression::Zlib]).await?;
    /// # Ok(()) }
    /// ```
    pub async fn renegotiate(&self, peer: &PeerId, methods: Vec<Compression>) -> Result<(), Error> {
        self.ask(|done| Command::Renegotiate {
            peer: peer.clone(),
            methods,
            done,
        })
        .await?
    }

    /// Asks a peer to re-send the last message it sent on our connection.
    ///
    /// # Errors
    /// [`Error::Send`] if the peer is not connected.
    ///
    /// # Examples
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rs2p::Error> {
    /// use rs2p::{packets, MeshSocket};
    /// let a = MeshSocket::bind("127.0.0.1:0").await?;
    /// let b = MeshSocket::bind("127.0.0.1:0").await?;
    /// b.connect("127.0.0.1", a.addr().port(), None).await?;
    /// b.request_resend(a.id()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn request_resend(&self, peer: &PeerId) -> Result<(), Error> {
        self.ask(|done| Command::RequestResend {
            peer: peer.clone(),
            done,
        })
        .await?
    }

    /// Runs `f` on the node's protocol layer (installed with
    /// [`MeshBuilder::bind_with_layer`]) inside the node's actor, with a
    /// [`LayerCtx`] to send through, and returns what it returns.
    ///
    /// # Errors
    /// [`Error::NoSuchLayer`] if the node's layer is not an `L`;
    /// [`Error::Shutdown`] if the node has shut down.
    ///
    /// # Cancel safety
    /// If the future is dropped, `f` may still run.
    pub async fn with_layer<L, R>(
        &self,
        f: impl FnOnce(&mut L, &mut LayerCtx<'_>) -> R + Send + 'static,
    ) -> Result<R, Error>
    where
        L: Layer,
        R: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let command = Command::Layer(Box::new(move |layer, ctx| {
            let any: &mut dyn std::any::Any = layer;
            let result = any.downcast_mut::<L>().map(|layer| f(layer, ctx));
            let _ = tx.send(result);
        }));
        self.command(command)?;
        rx.await
            .map_err(|_| Error::Shutdown)?
            .ok_or(Error::NoSuchLayer(std::any::type_name::<L>()))
    }

    /// The errors recorded recently; empty means nominal.
    ///
    /// # Errors
    /// [`Error::Shutdown`] if the node has stopped.
    ///
    /// # Examples
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rs2p::Error> {
    /// let node = rs2p::MeshSocket::bind("127.0.0.1:0").await?;
    /// assert!(node.status().await?.is_empty()); // nominal
    /// # Ok(()) }
    /// ```
    pub async fn status(&self) -> Result<Vec<String>, Error> {
        Ok(self.snapshot().await?.errors)
    }

    /// Unix time now, in seconds, as the node stamps messages.
    ///
    /// # Examples
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rs2p::Error> {
    /// let node = rs2p::MeshSocket::bind("127.0.0.1:0").await?;
    /// assert!(node.now() > 1_600_000_000);
    /// # Ok(()) }
    /// ```
    pub fn now(&self) -> u64 {
        unix_now()
    }

    /// Shuts the node down: closes every connection and the listener and
    /// waits until every task has ended. Other handles see
    /// [`Error::Shutdown`] afterwards.
    ///
    /// # Examples
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rs2p::Error> {
    /// let node = rs2p::MeshSocket::bind("127.0.0.1:0").await?;
    /// let other = node.clone();
    /// node.close().await;
    /// assert!(matches!(other.snapshot().await, Err(rs2p::Error::Shutdown)));
    /// # Ok(()) }
    /// ```
    pub async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.command(Command::Close(tx)).is_ok() {
            let _ = rx.await;
        }
        self.shared.cancel.cancel();
        self.shared.done.cancelled().await;
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
