//! What the state machine hands back to its driver: [`Action`]s to carry
//! out, [`MeshEvent`]s for the application, [`Delivery`]s of user messages,
//! and the identifiers the driver and the state machine share.

use std::sync::Arc;

use bytes::Bytes;

use super::close::CloseReason;
use crate::protocol::{Compression, InternalMessage, MessageId, PeerAddr, PeerId};

/// Identifies one connection for the lifetime of a node. The driver
/// allocates it when a connection opens and uses it in every later input
/// about that connection.
pub type ConnId = u64;

/// Identifies one dial: [`Action::Dial`] carries it, and the driver echoes
/// it back in [`MeshState::on_open`](super::MeshState::on_open) or
/// [`MeshState::on_dial_failed`](super::MeshState::on_dial_failed), so the
/// state machine knows which dial settled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DialId(pub u64);

/// Identifies a broadcast held for validation: [`Action::Validate`]
/// carries it, [`MeshState::on_validated`](super::MeshState::on_validated)
/// takes it back with the decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ValidationId(pub u64);

/// A peer in the routing table, as the application sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct PeerInfo {
    /// The peer's node id.
    pub id: PeerId,
    /// The connection it is reached on.
    pub conn: ConnId,
    /// The remote socket address as text (`host:port`).
    pub remote: String,
    /// The outward address the peer advertised in its handshake.
    pub out_addr: PeerAddr,
    /// Whether we dialled it.
    pub outgoing: bool,
    /// The compression methods it advertised, in its order.
    pub compression: Vec<Compression>,
    /// Broadcasts from it that validation rejected.
    pub rejected: u32,
}

/// Events for the application.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum MeshEvent {
    /// The routing table grew from zero peers to one.
    Connect,
    /// A peer completed its handshake.
    PeerJoined {
        /// Its id.
        id: PeerId,
        /// Its connection.
        conn: ConnId,
    },
    /// A peer that was already in the routing table is now reached on
    /// another connection (two connections raced; this one was kept).
    Rebound {
        /// Its id.
        id: PeerId,
        /// The connection kept.
        conn: ConnId,
    },
    /// A connection turned out to duplicate one the peer is already
    /// reached on, and is being closed; the peer stays connected.
    Duplicate {
        /// The peer's id.
        id: PeerId,
        /// The duplicate connection.
        conn: ConnId,
    },
    /// A peer in the routing table went away.
    PeerLeft {
        /// Its id.
        id: PeerId,
        /// Its connection.
        conn: ConnId,
    },
    /// A peer sent its peer list (it does on every handshake, and when
    /// asked). Sent after the list has been acted on (dials started).
    PeerList {
        /// The peer that sent it.
        from: PeerId,
        /// The connection it came on.
        conn: ConnId,
        /// The entries that parsed: each node's id and advertised address,
        /// without this node itself.
        peers: Vec<(PeerId, PeerAddr)>,
    },
    /// A connection is being closed (it may never have been a peer).
    Closing {
        /// The connection.
        conn: ConnId,
        /// Why.
        reason: CloseReason,
    },
    /// A reply to a node we are not connected to was dropped: no route
    /// to it was found within `MeshConfig::request_ttl`, or the dial to
    /// the address a peer named failed. One event per reply.
    ReplyUnrouted {
        /// The node the reply was for.
        to: PeerId,
    },
}

/// A user message for the application: its handlers first, then its queue.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    /// The decoded message (`payload[0]` is the sub-flag).
    pub message: Arc<InternalMessage>,
    /// Its id.
    pub id: MessageId,
    /// The connection it arrived on.
    pub conn: ConnId,
}

/// What the driver must do, in the order given.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Action {
    /// Write these frame bytes to the connection (queue them behind what
    /// is already queued there; never block the state machine on it).
    Send {
        /// Target connection.
        conn: ConnId,
        /// A whole frame, length prefix included.
        frame: Bytes,
    },
    /// Close the connection. The state machine has already forgotten it;
    /// do not report it back with `on_closed`.
    Close {
        /// Target connection.
        conn: ConnId,
        /// Why.
        reason: CloseReason,
    },
    /// Open a connection to this address; report the result with
    /// [`MeshState::on_open`](super::MeshState::on_open) or
    /// [`MeshState::on_dial_failed`](super::MeshState::on_dial_failed),
    /// passing `dial` back.
    Dial {
        /// Echo this back when the dial settles.
        dial: DialId,
        /// Where to dial.
        addr: PeerAddr,
        /// The id the peer is expected to have.
        expected_id: Option<PeerId>,
    },
    /// Hand a user message to the application.
    Deliver(Delivery),
    /// Ask the application whether to relay and deliver this broadcast
    /// (validation is on); answer with
    /// [`MeshState::on_validated`](super::MeshState::on_validated).
    Validate {
        /// Echo this back with the decision.
        ticket: ValidationId,
        /// The broadcast and the connection it came on.
        delivery: Delivery,
    },
    /// Raise an event.
    Event(MeshEvent),
}
