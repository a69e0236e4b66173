//! [`MeshSocket`]: the cheap, cloneable handle to a running mesh node —
//! its identity, connecting, the protocol layer, and shutting down. What
//! it sends and receives is in `messaging.rs`; what it shows of the node
//! and how it steers peers, in `inspect.rs`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::actor::{unix_now, Command, Inbox};
use super::builder::{split_host_port, MeshBuilder};
use super::error::Error;
use super::message::Event;
use super::metrics::Probes;
use super::validation::Validations;
use crate::protocol::mesh::{Layer, LayerCtx, Prepared};
use crate::protocol::{CodecLimits, PeerAddr, PeerId, Protocol};

#[derive(Debug)]
pub(super) struct Shared {
    pub(super) commands: mpsc::UnboundedSender<Command>,
    /// Broadcasts and whispers to all, prepared by the caller.
    pub(super) sends: mpsc::Sender<Prepared>,
    /// Our id in the form the node sends it.
    pub(super) sender_id: PeerId,
    pub(super) limits: CodecLimits,
    pub(super) id: PeerId,
    pub(super) local: SocketAddr,
    pub(super) out_addr: PeerAddr,
    pub(super) protocol: Protocol,
    pub(super) inbox: Arc<Inbox>,
    pub(super) events: broadcast::Sender<Event>,
    pub(super) cancel: CancellationToken,
    pub(super) done: CancellationToken,
    pub(super) handshake_timeout: Duration,
    pub(super) validations: std::sync::Mutex<Option<Validations>>,
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(super) probes: Probes,
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
    pub(super) shared: Arc<Shared>,
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

    pub(super) fn command(&self, command: Command) -> Result<(), Error> {
        self.shared
            .commands
            .send(command)
            .map_err(|_| Error::Shutdown)
    }

    pub(super) async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, Error> {
        let (tx, rx) = oneshot::channel();
        self.command(make(tx))?;
        rx.await.map_err(|_| Error::Shutdown)
    }

    /// Connects to the node at `host:port` and waits until both ends have
    /// adopted each other: our handshake is done and the peer has sent its
    /// peer list, which it does only after taking us into its routing
    /// table. From then on every broadcast the peer receives is relayed to
    /// us. Returns the peer's id. Peers it tells us about are dialled as
    /// well, up to `max_outgoing`.
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

    /// The broadcasts waiting for your decision, when the node was built
    /// with [`MeshBuilder::async_validation`]. The first call takes them;
    /// later calls (and nodes without asynchronous validation) get `None`.
    ///
    /// # Examples
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rs2p::Error> {
    /// use rs2p::{packets, MeshSocket};
    /// let a = MeshSocket::builder().async_validation(64).bind("127.0.0.1:0").await?;
    /// let b = MeshSocket::bind("127.0.0.1:0").await?;
    /// b.connect("127.0.0.1", a.addr().port(), None).await?;
    /// let mut pending = a.validations().expect("asynchronous validation");
    /// b.send(packets!["hello"]).await?;
    /// let p = pending.next().await.expect("a broadcast to decide about");
    /// assert_eq!(p.message().packets()[0].as_str(), Some("hello"));
    /// p.accept(); // relayed and delivered from here on
    /// assert_eq!(a.next_message().await?.packets()[0].as_str(), Some("hello"));
    /// # Ok(()) }
    /// ```
    pub fn validations(&self) -> Option<Validations> {
        self.shared
            .validations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// This node's Prometheus metrics (feature `metrics`, on by default):
    /// connections, messages and bytes in and out, drops by reason,
    /// closes by reason, dials, queue depths and the delivery latency.
    /// See [`crate::net::metrics`] for the list, and for putting several
    /// nodes into one registry of your own.
    ///
    /// # Examples
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rs2p::Error> {
    /// use rs2p::{packets, MeshSocket};
    /// let a = MeshSocket::bind("127.0.0.1:0").await?;
    /// let b = MeshSocket::bind("127.0.0.1:0").await?;
    /// b.connect("127.0.0.1", a.addr().port(), None).await?;
    /// b.send(packets!["hello"]).await?;
    /// a.next_message().await?;
    /// let text = b.metrics().encode();
    /// assert!(text.contains(r#"rs2p_messages_sent_total{kind="broadcast"} 1"#));
    /// assert!(text.contains(r#"rs2p_connections{direction="outgoing",transport="Plaintext"} 1"#));
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "metrics")]
    pub fn metrics(&self) -> super::metrics::Metrics {
        self.shared.probes.clone()
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
