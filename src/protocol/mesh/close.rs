//! Why things end or fail: [`CloseReason`] for connections, [`SendError`]
//! for messages the application could not send.

use crate::protocol::CodecError;

/// Why a connection is closed.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The peer belongs to another subnet.
    SubnetMismatch {
        /// The protocol id it sent.
        theirs: String,
    },
    /// The peer is this node.
    SelfConnection,
    /// Two connections to one peer: this one lost the conflict resolution.
    Conflict,
    /// The peer sent bytes that are not a valid frame or message.
    Protocol(CodecError),
    /// The peer sent a protocol message whose fields make no sense.
    BadMessage(&'static str),
    /// The application asked for it.
    Requested,
    /// No handshake arrived in time.
    HandshakeTimeout,
    /// The peer misbehaved too often (see `MeshConfig::max_offences`).
    Misbehaving(&'static str),
    /// The peer's send queue stayed full: it does not read fast enough.
    TooSlow,
    /// The peer or the network closed the connection.
    Disconnected,
    /// The transport refused the connection, in a way it could name: the
    /// peer speaks another transport, or a certificate was refused
    /// (verified TLS). Raised by the driver, not the state machine.
    Transport(crate::transport::Refusal),
}

impl CloseReason {
    /// Every value of [`kind`](Self::kind), e.g. for metrics labels.
    pub const KINDS: [&'static str; 11] = [
        "subnet_mismatch",
        "self_connection",
        "conflict",
        "protocol",
        "bad_message",
        "requested",
        "handshake_timeout",
        "misbehaving",
        "too_slow",
        "disconnected",
        "transport",
    ];

    /// The variant's name in snake case (`"subnet_mismatch"`,
    /// `"too_slow"`, …), without its details: a bounded set, one of
    /// [`KINDS`](Self::KINDS).
    ///
    /// # Examples
    /// ```
    /// use rs2p::protocol::mesh::CloseReason;
    /// assert_eq!(CloseReason::TooSlow.kind(), "too_slow");
    /// assert!(CloseReason::KINDS.contains(&CloseReason::Conflict.kind()));
    /// ```
    pub fn kind(&self) -> &'static str {
        match self {
            CloseReason::SubnetMismatch { .. } => "subnet_mismatch",
            CloseReason::SelfConnection => "self_connection",
            CloseReason::Conflict => "conflict",
            CloseReason::Protocol(_) => "protocol",
            CloseReason::BadMessage(_) => "bad_message",
            CloseReason::Requested => "requested",
            CloseReason::HandshakeTimeout => "handshake_timeout",
            CloseReason::Misbehaving(_) => "misbehaving",
            CloseReason::TooSlow => "too_slow",
            CloseReason::Disconnected => "disconnected",
            CloseReason::Transport(_) => "transport",
        }
    }
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CloseReason::SubnetMismatch { theirs } => {
                write!(f, "peer is on another subnet (its protocol id is {theirs})")
            }
            CloseReason::SelfConnection => f.write_str("connected to itself"),
            CloseReason::Conflict => f.write_str("duplicate connection to the same peer"),
            CloseReason::Protocol(e) => write!(f, "protocol error: {e}"),
            CloseReason::BadMessage(what) => write!(f, "bad message: {what}"),
            CloseReason::Requested => f.write_str("closed on request"),
            CloseReason::HandshakeTimeout => f.write_str("no handshake in time"),
            CloseReason::Misbehaving(what) => write!(f, "misbehaving peer: {what}"),
            CloseReason::TooSlow => f.write_str("peer too slow: its send queue stayed full"),
            CloseReason::Disconnected => f.write_str("the connection was closed by the peer"),
            CloseReason::Transport(refusal) => refusal.fmt(f),
        }
    }
}

/// Why a message could not be sent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The peer is not in the routing table.
    #[error("peer {0} is not connected")]
    NotConnected(String),
    /// `send` was asked for a main flag other than broadcast or whisper.
    #[error("only broadcast and whisper may be sent by the application")]
    ReservedType,
    /// The message would exceed the frame size limit.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// Too many replies are already waiting for a route.
    #[error("too many replies are waiting for a route")]
    TooManyPending,
}
