//! Errors of the networking layer.

use crate::protocol::mesh::{CloseReason, SendError};

/// What went wrong in a [`MeshSocket`](super::MeshSocket) call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Binding, dialling or another socket operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// An address given as text could not be understood.
    #[error("bad address {0:?}: expected HOST:PORT")]
    BadAddress(String),
    /// `connect` was asked to dial this node itself.
    #[error("refusing to connect to this node itself")]
    SelfConnection,
    /// `connect` was asked to dial a peer that is already connected.
    #[error("already connected to {0}")]
    AlreadyConnected(String),
    /// The peer belongs to another subnet.
    #[error("subnet mismatch: this node is on subnet id {ours}, the peer on {theirs}")]
    SubnetMismatch {
        /// Our protocol id.
        ours: String,
        /// Theirs.
        theirs: String,
    },
    /// The connection was closed before its handshake completed.
    #[error("connection closed before the handshake completed: {0}")]
    Closed(CloseReason),
    /// The peer was refused, or refused us, at the transport level for a
    /// reason that names the fix: it speaks another transport, or a
    /// certificate was refused (verified TLS).
    #[error(transparent)]
    Refused(#[from] crate::transport::Refusal),
    /// The operation did not complete in time.
    #[error("timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// The node has shut down.
    #[error("the node has shut down")]
    Shutdown,
    /// [`MeshSocket::with_layer`](super::MeshSocket::with_layer) named a
    /// layer type that is not the node's.
    #[error("the node has no protocol layer of type {0}")]
    NoSuchLayer(&'static str),
    /// The transport the protocol names could not be set up (unknown
    /// `encryption`, unusable certificates or keys).
    #[error(transparent)]
    Transport(#[from] crate::transport::TransportError),
    /// The message could not be sent.
    #[error(transparent)]
    Send(#[from] SendError),
    /// A write to the replicated dictionary was refused (lease, bounds,
    /// not a map).
    #[error(transparent)]
    Sync(#[from] crate::protocol::sync::SyncError),
    /// A DHT operation failed (no value, no quorum, timeout, bounds).
    #[error(transparent)]
    Chord(#[from] crate::protocol::chord::ChordError),
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn from_close(reason: CloseReason, ours: &str) -> Self {
        match reason {
            CloseReason::SubnetMismatch { theirs } => Error::SubnetMismatch {
                ours: ours.to_owned(),
                theirs,
            },
            CloseReason::SelfConnection => Error::SelfConnection,
            CloseReason::Transport(refusal) => Error::Refused(refusal),
            other => Error::Closed(other),
        }
    }
}
