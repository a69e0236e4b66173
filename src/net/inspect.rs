//! What a [`MeshSocket`] shows of its node (routing table, snapshot,
//! errors) and how it steers peers (disconnect, peer lists, compression,
//! resends).

use super::actor::{Command, Snapshot};
use super::error::Error;
use super::socket::MeshSocket;
use crate::protocol::mesh::PeerInfo;
use crate::protocol::{Compression, PeerId};

impl MeshSocket {
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
    /// [`Event::PeerList`](super::Event::PeerList).
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
}
