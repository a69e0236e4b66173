//! What the application receives: [`Message`], [`Connection`] and [`Event`].

use std::fmt;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::actor::Command;
use super::error::Error;
use crate::protocol::mesh::{CloseReason, ConnId};
use crate::protocol::{InternalMessage, MainFlag, MessageId, Packet, PeerAddr, PeerId};

/// How a message reached us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageKind {
    /// Flooded to the whole mesh.
    Broadcast,
    /// Sent to us directly.
    Whisper,
}

/// A message for the application.
///
/// It keeps only a weak link to its node: holding messages does not keep a
/// node alive.
#[derive(Clone)]
pub struct Message {
    pub(crate) inner: Arc<InternalMessage>,
    pub(crate) id: MessageId,
    pub(crate) commands: mpsc::WeakUnboundedSender<Command>,
}

impl Message {
    /// Broadcast or whisper.
    ///
    /// # Examples
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rs2p::Error> {
    /// use rs2p::{packets, MeshSocket};
    /// let a = MeshSocket::bind("127.0.0.1:0").await?;
    /// let b = MeshSocket::bind("127.0.0.1:0").await?;
    /// b.connect("127.0.0.1", a.addr().port(), None).await?;
    /// b.send(packets!["hello", 7]).await?;
    /// let msg = a.next_message().await?;
    /// assert_eq!(msg.kind(), rs2p::MessageKind::Broadcast);
    /// # Ok(()) }
    /// ```
    pub fn kind(&self) -> MessageKind {
        match self.inner.msg_type {
            MainFlag::Whisper => MessageKind::Whisper,
            _ => MessageKind::Broadcast,
        }
    }

    /// The id of the node that sent it (as it claims).
    ///
    /// # Examples
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rs2p::Error> {
    /// use rs2p::{packets, MeshSocket};
    /// let a = MeshSocket::bind("127.0.0.1:0").await?;
    /// let b = MeshSocket::bind("127.0.0.1:0").await?;
    /// b.connect("127.0.0.1", a.addr().port(), None).await?;
    /// b.send(packets!["hello", 7]).await?;
    /// let msg = a.next_message().await?;
    /// assert_eq!(msg.sender(), b.id());
    /// # Ok(()) }
    /// ```
    pub fn sender(&self) -> &PeerId {
        &self.inner.sender
    }

    /// Unix time in seconds when it was sent.
    ///
    /// # Examples
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rs2p::Error> {
    /// use rs2p::{packets, MeshSocket};
    /// let a = MeshSocket::bind("127.0.0.1:0").await?;
    /// let b = MeshSocket::bind("127.0.0.1:0").await?;
    /// b.connect("127.0.0.1", a.addr().port(), None).await?;
    /// b.send(packets!["hello", 7]).await?;
    /// let msg = a.next_message().await?;
    /// assert!(msg.time() <= a.now());
    /// # Ok(()) }
    /// ```
    pub fn time(&self) -> u64 {
        self.inner.time
    }

    /// The message id (SHA-256 of its packed form).
    ///
    /// # Examples
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rs2p::Error> {
    /// use rs2p::{packets, MeshSocket};
    /// let a = MeshSocket::bind("127.0.0.1:0").await?;
    /// let b = MeshSocket::bind("127.0.0.1:0").await?;
    /// b.connect("127.0.0.1", a.addr().port(), None).await?;
    /// b.send(packets!["hello", 7]).await?;
    /// let msg = a.next_message().await?;
    /// assert_eq!(msg.id_hex().len(), 64);
    /// assert_eq!(msg.id()[0], u8::from_str_radix(&msg.id_hex()[..2], 16).unwrap());
    /// # Ok(()) }
    /// ```
    pub fn id(&self) -> MessageId {
        self.id
    }

    /// The message id as lowercase hex.
    ///
    /// # Examples
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rs2p::Error> {
    /// use rs2p::{packets, MeshSocket};
    /// let a = MeshSocket::bind("127.0.0.1:0").await?;
    /// let b = MeshSocket::bind("127.0.0.1:0").await?;
    /// b.connect("127.0.0.1", a.addr().port(), None).await?;
    /// b.send(packets!["hello", 7]).await?;
    /// let msg = a.next_message().await?;
    /// println!("{}", msg.id_hex());
    /// # Ok(()) }
    /// ```
    pub fn id_hex(&self) -> String {
        self.id.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The sub-flag packet (`0` for broadcast, `2` for whisper, or the
    /// application's own flag).
    ///
    /// # Examples
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rs2p::Error> {
    /// use rs2p::{packets, MeshSocket};
    /// let a = MeshSocket::bind("127.0.0.1:0").await?;
    /// let b = MeshSocket::bind("127.0.0.1:0").await?;
    /// b.connect("127.0.0.1", a.addr().port(), None).await?;
    /// b.send(packets!["hello", 7]).await?;
    /// let msg = a.next_message().await?;
    /// assert_eq!(msg.flag().as_u64(), Some(0)); // broadcast
    /// # Ok(()) }
    /// ```
    pub fn flag(&self) -> &Packet {
        &self.inner.payload[0]
    }

    /// The user packets, without the sub-flag.
    ///
    /// # Examples
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rs2p::Error> {
    /// use rs2p::{packets, MeshSocket};
    /// let a = MeshSocket::bind("127.0.0.1:0").await?;
    /// let b = MeshSocket::bind("127.0.0.1:0").await?;
    /// b.connect("127.0.0.1", a.addr().port(), None).await?;
    /// b.send(packets!["hello", 7]).await?;
    /// let msg = a.next_message().await?;
    /// assert_eq!(msg.packets()[0].as_str(), Some("hello"));
    /// assert_eq!(msg.packets()[1].as_i64(), Some(7));
    /// # Ok(()) }
    /// ```
    pub fn packets(&self) -> &[Packet] {
        self.inner.payload.get(1..).unwrap_or_default()
    }

    /// Replies to the sender: a direct whisper when connected to it,
    /// otherwise a route request through the mesh, the reply following once
    /// a connection to the sender is up. Returns at once; failures are
    /// recorded in [`MeshSocket::status`](super::MeshSocket::status).
    ///
    /// # Errors
    /// [`Error::Shutdown`] if the node has shut down.
    ///
    /// # Examples
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rs2p::Error> {
    /// use rs2p::{packets, MeshSocket};
    /// let a = MeshSocket::bind("127.0.0.1:0").await?;
    /// let b = MeshSocket::bind("127.0.0.1:0").await?;
    /// b.connect("127.0.0.1", a.addr().port(), None).await?;
    /// b.send(packets!["hello", 7]).await?;
    /// let msg = a.next_message().await?;
    /// msg.reply(packets!["hello back"])?;
    /// let answer = b.next_message().await?;
    /// assert_eq!(answer.packets()[0].as_str(), Some("hello back"));
    /// # Ok(()) }
    /// ```
    pub fn reply(&self, packets: Vec<Packet>) -> Result<(), Error> {
        let tx = self.commands.upgrade().ok_or(Error::Shutdown)?;
        tx.send(Command::Reply {
            to: self.inner.sender.clone(),
            packets,
            done: None,
        })
        .map_err(|_| Error::Shutdown)
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("kind", &self.kind())
            .field("sender", &self.inner.sender)
            .field("time", &self.inner.time)
            .field("packets", &self.packets())
            .finish()
    }
}

/// The connection a message arrived on, as handlers see it.
#[derive(Clone)]
pub struct Connection {
    pub(crate) conn: ConnId,
    pub(crate) peer: Option<PeerId>,
    pub(crate) remote: String,
    pub(crate) outgoing: bool,
    pub(crate) commands: mpsc::WeakUnboundedSender<Command>,
}

impl Connection {
    /// The peer's id.
    pub fn peer(&self) -> Option<&PeerId> {
        self.peer.as_ref()
    }

    /// The remote socket address.
    pub fn remote(&self) -> &str {
        &self.remote
    }

    /// Whether this node dialled the connection.
    pub fn outgoing(&self) -> bool {
        self.outgoing
    }

    /// Whispers `packets` on this connection. Returns at once.
    ///
    /// # Errors
    /// [`Error::Shutdown`] if the node has shut down.
    pub fn whisper(&self, packets: Vec<Packet>) -> Result<(), Error> {
        let tx = self.commands.upgrade().ok_or(Error::Shutdown)?;
        tx.send(Command::WhisperConn {
            conn: self.conn,
            packets,
        })
        .map_err(|_| Error::Shutdown)
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("peer", &self.peer)
            .field("remote", &self.remote)
            .field("outgoing", &self.outgoing)
            .finish()
    }
}

/// Something that happened to a node, for subscribers of
/// [`MeshSocket::events`](super::MeshSocket::events).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// The routing table grew from zero peers to one.
    Connect,
    /// A message was queued for [`recv`](super::MeshSocket::recv).
    Message,
    /// A peer completed its handshake.
    PeerJoined(PeerId),
    /// A peer left the routing table.
    PeerLeft(PeerId),
    /// A peer sent its peer list: on every new connection, and in answer
    /// to [`request_peers`](super::MeshSocket::request_peers).
    PeerList {
        /// The peer that sent it.
        from: PeerId,
        /// The nodes it listed: id and advertised address, without this
        /// node itself.
        peers: Vec<(PeerId, PeerAddr)>,
    },
    /// A connection was refused or dropped before or outside the routing
    /// table (subnet mismatch, protocol error, self-connection, a peer
    /// on another transport, a refused certificate, …).
    Rejected {
        /// The remote address.
        remote: String,
        /// Why.
        reason: CloseReason,
    },
    /// The receive queue was full and dropped its oldest messages to make
    /// room (see [`MeshBuilder::recv_queue`](super::MeshBuilder::recv_queue)).
    /// Raised at most once a second while it overflows, never lost: each
    /// event counts the messages dropped since the previous one.
    QueueOverflow {
        /// Messages dropped since the previous `QueueOverflow` event.
        dropped: u64,
        /// Messages dropped since the node started.
        total: u64,
    },
    /// A reply to a node this node is not connected to was dropped: no
    /// peer knew a route to it within the request timeout, or dialling it
    /// failed. One event per reply.
    ReplyFailed {
        /// The node the reply was for.
        to: PeerId,
    },
}
