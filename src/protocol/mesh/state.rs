//! [`MeshState`]: routing table, handshakes, peer lists, waterfall and
//! route requests, driven by events and the current time.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;

use super::address_book::{AddressBook, SplitMix64};
use super::config::MeshConfig;
use super::waterfall::{Verdict, Waterfall};
use crate::protocol::{
    base58, compression, decode_body, frame_from_body, id_to_packet, packet_to_id, request_id,
    CodecError, Compression, Frame, IdWire, InternalMessage, MainFlag, MessageId, Packet, PeerId,
    SubFlag,
};

/// Identifies one connection for the lifetime of a node.
pub type ConnId = u64;

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
    pub out_addr: (String, u16),
    /// Whether we dialled it.
    pub outgoing: bool,
    /// The compression methods it advertised, in its order.
    pub compression: Vec<Compression>,
}

/// Why the state machine asks for a connection to be closed.
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
        }
    }
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
        /// The entries that parsed: each node's id and advertised address,
        /// without this node itself.
        peers: Vec<(PeerId, (String, u16))>,
    },
    /// A connection is being closed (it may never have been a peer).
    Closing {
        /// The connection.
        conn: ConnId,
        /// Why.
        reason: CloseReason,
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

/// What the I/O layer must do.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Action {
    /// Write these frame bytes to the connection.
    Send {
        /// Target connection.
        conn: ConnId,
        /// A whole frame, length prefix included.
        frame: Bytes,
    },
    /// Close the connection.
    Close {
        /// Target connection.
        conn: ConnId,
        /// Why.
        reason: CloseReason,
    },
    /// Open a connection to this address; report the result with
    /// [`MeshState::on_open`] or [`MeshState::on_dial_failed`].
    Dial {
        /// Host to dial.
        host: String,
        /// Port to dial.
        port: u16,
        /// The id the peer is expected to have.
        expected_id: Option<PeerId>,
    },
    /// Hand a user message to the application.
    Deliver(Delivery),
    /// Raise an event.
    Event(MeshEvent),
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

#[derive(Debug)]
struct Conn {
    outgoing: bool,
    remote: String,
    expected_id: Option<PeerId>,
    /// Set once the handshake arrived.
    peer: Option<Handshaken>,
    /// The last whisper or broadcast sent here, for `resend`.
    last_sent: Option<Arc<InternalMessage>>,
    /// When it opened (ms), for the handshake timeout.
    opened_ms: u64,
    /// Misbehaviours counted so far.
    offences: u32,
}

#[derive(Debug, Clone)]
struct Handshaken {
    id: PeerId,
    out_addr: (String, u16),
    compression: Vec<Compression>,
}

#[derive(Debug)]
struct PendingReply {
    target: PeerId,
    packets: Vec<Packet>,
    created: u64,
}

/// The mesh protocol logic of one node.
///
/// # Examples
/// Two state machines wired back to back:
/// ```
/// use rs2p::protocol::mesh::{Action, MeshConfig, MeshState, MeshEvent};
/// use rs2p::protocol::{FrameDecoder, PeerId};
///
/// let mut a = MeshState::new(PeerId::from("A"), ("127.0.0.1".into(), 1), MeshConfig::default());
/// let mut b = MeshState::new(PeerId::from("B"), ("127.0.0.1".into(), 2), MeshConfig::default());
/// let mut out_a = Vec::new();
/// let mut out_b = Vec::new();
/// a.on_open(100, 1, true, "127.0.0.1:2".into(), None, &mut out_a);
/// b.on_open(100, 1, false, "127.0.0.1:1".into(), None, &mut out_b);
/// // Each sent its handshake; feed it to the other side.
/// for (from, to, out) in [(&out_a, &mut b, &mut Vec::new()), (&out_b, &mut a, &mut Vec::new())] {
///     for action in from.clone() {
///         if let Action::Send { frame, .. } = action {
///             let mut dec = FrameDecoder::new(1 << 20);
///             dec.feed(&frame);
///             let frame = dec.next_frame().unwrap().unwrap();
///             to.on_frame(100, 1, frame, out);
///         }
///     }
///     assert!(out.iter().any(|a| matches!(a, Action::Event(MeshEvent::Connect))));
/// }
/// assert_eq!(a.peers().len(), 1);
/// ```
#[derive(Debug)]
pub struct MeshState {
    me: PeerId,
    out_addr: (String, u16),
    config: MeshConfig,
    // `conns` and `routing` are ordered maps: the order in which peers are
    // relayed to, listed in peer lists and timed out is then a function of
    // the inputs alone, so the simulator (`crate::sim`) is reproducible
    // from its seed. An ordered map also cannot be hash-flooded by ids a
    // peer chooses.
    conns: BTreeMap<ConnId, Conn>,
    routing: BTreeMap<PeerId, ConnId>,
    /// Ids we are dialling (expected id → address), not yet open.
    dialling: HashMap<PeerId, (String, u16)>,
    /// Dials without an expected id that are under way.
    /// Addresses dialled without an expected id, not yet open.
    anonymous_dials: Vec<(String, u16)>,
    waterfall: Waterfall,
    /// request id → the reply waiting for a route.
    pending: HashMap<Vec<u8>, PendingReply>,
    pending_order: VecDeque<Vec<u8>>,
    /// Replies whose route is known, waiting for the connection's handshake.
    awaiting_route: HashMap<PeerId, Vec<Vec<Packet>>>,
    errors: VecDeque<String>,
    book: AddressBook,
    rng: SplitMix64,
    dial_tokens: f64,
    dial_tokens_at_ms: u64,
    dials_started: u64,
}

const MAX_ERRORS_KEPT: usize = 64;

impl MeshState {
    /// A node with id `me`, advertising `out_addr`.
    pub fn new(me: PeerId, out_addr: (String, u16), config: MeshConfig) -> Self {
        let waterfall = Waterfall::new(
            config.waterfall_window,
            config.max_clock_skew,
            config.max_waterfall_entries,
        );
        MeshState {
            me: me.with_wire(IdWire::Bin),
            out_addr,
            conns: BTreeMap::new(),
            routing: BTreeMap::new(),
            dialling: HashMap::new(),
            anonymous_dials: Vec::new(),
            waterfall,
            pending: HashMap::new(),
            pending_order: VecDeque::new(),
            awaiting_route: HashMap::new(),
            errors: VecDeque::new(),
            book: AddressBook::new(
                config.address_book_capacity,
                config.reconnect_base_ms,
                config.reconnect_max_ms,
                config.reconnect_give_up_ms,
            ),
            rng: SplitMix64::new(config.seed),
            dial_tokens: f64::from(config.dial_burst),
            dial_tokens_at_ms: 0,
            dials_started: 0,
            config,
        }
    }

    /// This node's id.
    pub fn id(&self) -> &PeerId {
        &self.me
    }

    /// The configuration.
    pub fn config(&self) -> &MeshConfig {
        &self.config
    }

    /// The outward address advertised in handshakes.
    pub fn out_addr(&self) -> &(String, u16) {
        &self.out_addr
    }

    /// The routing table.
    pub fn peers(&self) -> Vec<PeerInfo> {
        let mut peers: Vec<PeerInfo> = self
            .routing
            .iter()
            .filter_map(|(id, &conn)| {
                let c = self.conns.get(&conn)?;
                let h = c.peer.as_ref()?;
                Some(PeerInfo {
                    id: id.clone(),
                    conn,
                    remote: c.remote.clone(),
                    out_addr: h.out_addr.clone(),
                    outgoing: c.outgoing,
                    compression: h.compression.clone(),
                })
            })
            .collect();
        peers.sort_by(|a, b| a.id.cmp(&b.id));
        peers
    }

    /// The connection a peer is reached on.
    pub fn conn_of(&self, peer: &PeerId) -> Option<ConnId> {
        self.routing.get(peer).copied()
    }

    /// The id of the peer on a connection, once it has handshaken.
    pub fn peer_of(&self, conn: ConnId) -> Option<&PeerId> {
        self.conns.get(&conn)?.peer.as_ref().map(|h| &h.id)
    }

    /// Whether a peer is in the routing table.
    pub fn is_connected(&self, peer: &PeerId) -> bool {
        self.routing.contains_key(peer)
    }

    /// Connections still waiting for a handshake.
    pub fn awaiting_count(&self) -> usize {
        self.conns.values().filter(|c| c.peer.is_none()).count()
    }

    /// Open connections that we dialled.
    pub fn outgoing_count(&self) -> usize {
        self.conns.values().filter(|c| c.outgoing).count()
    }

    /// Open connections that peers dialled.
    pub fn incoming_count(&self) -> usize {
        self.conns.values().filter(|c| !c.outgoing).count()
    }

    /// Broadcasts remembered for deduplication.
    pub fn waterfall_len(&self) -> usize {
        self.waterfall.len()
    }

    /// Replies waiting for a route.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Addresses remembered.
    pub fn known_addresses(&self) -> usize {
        self.book.len()
    }

    /// Dials started by peer lists, reconnects and route responses.
    pub fn dials_started(&self) -> u64 {
        self.dials_started
    }

    /// The most recent errors seen (newest last), like the references'
    /// `status`.
    pub fn errors(&self) -> impl Iterator<Item = &str> {
        self.errors.iter().map(String::as_str)
    }

    fn record_error(&mut self, text: String) {
        if self.errors.len() == MAX_ERRORS_KEPT {
            self.errors.pop_front();
        }
        self.errors.push_back(text);
    }

    // ----- connection lifecycle -------------------------------------------

    /// A connection opened (accepted, or a dial succeeded). Sends our
    /// handshake on it.
    pub fn on_open(
        &mut self,
        now: u64,
        conn: ConnId,
        outgoing: bool,
        remote: String,
        expected_id: Option<PeerId>,
        out: &mut Vec<Action>,
    ) {
        if outgoing {
            match &expected_id {
                Some(id) => {
                    self.dialling.remove(id);
                }
                None => {
                    let at = self
                        .anonymous_dials
                        .iter()
                        .position(|(h, p)| format!("{h}:{p}") == remote)
                        .unwrap_or(0);
                    if at < self.anonymous_dials.len() {
                        self.anonymous_dials.remove(at);
                    }
                }
            }
        }
        self.conns.insert(
            conn,
            Conn {
                outgoing,
                remote,
                expected_id,
                peer: None,
                last_sent: None,
                opened_ms: now.saturating_mul(1000),
                offences: 0,
            },
        );
        let handshake = self.handshake_message(now);
        // Handshakes always travel uncompressed.
        self.send_message(conn, &handshake, None, out);
    }

    /// A dial requested by [`Action::Dial`] failed (`now` in seconds).
    pub fn on_dial_failed(&mut self, now: u64, expected_id: Option<&PeerId>) {
        match expected_id {
            Some(id) => {
                self.dialling.remove(id);
                self.awaiting_route.remove(id);
                self.book
                    .failed(id, now.saturating_mul(1000), &mut self.rng);
            }
            None => {
                if !self.anonymous_dials.is_empty() {
                    self.anonymous_dials.remove(0);
                }
            }
        }
    }

    /// A connection closed, for whatever reason. If it was a peer, the
    /// remaining peers are asked for their peer lists so the mesh heals.
    pub fn on_closed(&mut self, now: u64, conn: ConnId, out: &mut Vec<Action>) {
        self.remove_conn(now, conn, true, out);
    }

    fn remove_conn(&mut self, now: u64, conn: ConnId, lost: bool, out: &mut Vec<Action>) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        let Some(h) = c.peer else {
            if let (true, Some(id)) = (lost, c.expected_id) {
                // A dialled connection that died before its handshake.
                self.book
                    .failed(&id, now.saturating_mul(1000), &mut self.rng);
            }
            return;
        };
        if self.routing.get(&h.id) == Some(&conn) {
            self.routing.remove(&h.id);
            // A second, standby connection to the same peer takes over.
            let standby = self
                .conns
                .iter()
                .find(|(_, c)| c.peer.as_ref().is_some_and(|p| p.id == h.id))
                .map(|(&c, _)| c);
            if let Some(standby) = standby {
                self.routing.insert(h.id.clone(), standby);
                out.push(Action::Event(MeshEvent::Rebound {
                    id: h.id,
                    conn: standby,
                }));
                return;
            }
            if lost && self.config.reconnect {
                self.book
                    .lost(&h.id, now.saturating_mul(1000), &mut self.rng);
            }
            out.push(Action::Event(MeshEvent::PeerLeft { id: h.id, conn }));
            self.request_peers(now, out);
        }
    }

    /// Asks for a connection to be closed and forgets it at once.
    pub fn close(&mut self, now: u64, conn: ConnId, reason: CloseReason, out: &mut Vec<Action>) {
        if !self.conns.contains_key(&conn) {
            return;
        }
        out.push(Action::Event(MeshEvent::Closing {
            conn,
            reason: reason.clone(),
        }));
        if matches!(
            reason,
            CloseReason::SubnetMismatch { .. } | CloseReason::SelfConnection
        ) {
            if let Some(id) = self.conns.get(&conn).and_then(|c| c.expected_id.clone()) {
                self.book.forget(&id);
            }
        }
        out.push(Action::Close { conn, reason });
        self.remove_conn(now, conn, false, out);
    }

    /// Periodic housekeeping, `now_ms` in milliseconds: expires waterfall
    /// entries and pending replies, closes connections whose handshake is
    /// overdue, and redials lost or known peers (rate-limited, with backoff).
    pub fn on_tick(&mut self, now_ms: u64, out: &mut Vec<Action>) {
        let now = now_ms / 1000;
        self.waterfall.expire(now);
        self.expire_pending(now);
        let limit = self.config.handshake_timeout_ms;
        let overdue: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.peer.is_none() && now_ms.saturating_sub(c.opened_ms) > limit)
            .map(|(&id, _)| id)
            .collect();
        for conn in overdue {
            self.close(now, conn, CloseReason::HandshakeTimeout, out);
        }
        if self.config.reconnect {
            self.redial(now_ms, out);
        }
    }

    fn expire_pending(&mut self, now: u64) {
        let ttl = self.config.request_ttl;
        while let Some(key) = self.pending_order.front() {
            match self.pending.get(key) {
                Some(p) if p.created.saturating_add(ttl) > now => break,
                _ => {
                    if let Some(key) = self.pending_order.pop_front() {
                        self.pending.remove(&key);
                    }
                }
            }
        }
    }

    fn take_dial_token(&mut self, now_ms: u64) -> bool {
        let elapsed = now_ms.saturating_sub(self.dial_tokens_at_ms) as f64 / 1000.0;
        self.dial_tokens_at_ms = now_ms.max(self.dial_tokens_at_ms);
        self.dial_tokens = (self.dial_tokens + elapsed * f64::from(self.config.dial_rate))
            .min(f64::from(self.config.dial_burst));
        if self.dial_tokens >= 1.0 {
            self.dial_tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn dial_budget(&self) -> usize {
        self.config.max_outgoing.saturating_sub(
            self.outgoing_count() + self.dialling.len() + self.anonymous_dials.len(),
        )
    }

    fn redial(&mut self, now_ms: u64, out: &mut Vec<Action>) {
        let budget = self.dial_budget();
        if budget == 0 {
            return;
        }
        let (routing, dialling, me) = (&self.routing, &self.dialling, &self.me);
        let skip = |id: &PeerId| id == me || routing.contains_key(id) || dialling.contains_key(id);
        let mut due = self.book.due_lost(now_ms, budget, skip);
        if due.len() < budget {
            let (routing, dialling, me) = (&self.routing, &self.dialling, &self.me);
            let taken: Vec<PeerId> = due.iter().map(|(id, _)| id.clone()).collect();
            let skip = |id: &PeerId| {
                id == me
                    || routing.contains_key(id)
                    || dialling.contains_key(id)
                    || taken.contains(id)
            };
            due.extend(self.book.due_known(now_ms, budget - due.len(), skip));
        }
        for (id, addr) in due {
            if !self.take_dial_token(now_ms) {
                break;
            }
            self.book.dialling(&id, now_ms);
            self.start_dial(id, addr, out);
        }
    }

    fn start_dial(&mut self, id: PeerId, addr: (String, u16), out: &mut Vec<Action>) {
        self.dialling.insert(id.clone(), addr.clone());
        self.dials_started += 1;
        out.push(Action::Dial {
            host: addr.0,
            port: addr.1,
            expected_id: Some(id),
        });
    }

    // ----- incoming frames ------------------------------------------------

    /// A whole frame arrived on a connection.
    pub fn on_frame(&mut self, now: u64, conn: ConnId, frame: Frame, out: &mut Vec<Action>) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        // The peer's advertised methods first, then ours: after a
        // renegotiation the peer may still use a method from the list it
        // had before our answer reaches it.
        let mut methods: Vec<Compression> = c
            .peer
            .as_ref()
            .map(|h| h.compression.clone())
            .unwrap_or_default();
        if c.peer.is_some() {
            for m in &self.config.compression {
                if !methods.contains(m) {
                    methods.push(*m);
                }
            }
        }
        let decoded = match decode_body(frame.body(), &methods, &self.config.limits) {
            Ok(d) => d,
            Err(e) => {
                self.record_error(format!("connection {conn}: {e}"));
                self.close(now, conn, CloseReason::Protocol(e), out);
                return;
            }
        };
        let message = Arc::new(decoded.message);
        let handshaken = self.conns.get(&conn).is_some_and(|c| c.peer.is_some());
        let sub = message.sub_flag();
        if !handshaken && sub != Some(SubFlag::Handshake) {
            // Nothing but a handshake is meaningful before the handshake.
            self.offence(now, conn, "messages before the handshake", out);
            return;
        }
        match message.msg_type {
            MainFlag::Renegotiate => self.on_renegotiate(now, conn, &message, out),
            MainFlag::Broadcast => {
                match self
                    .waterfall
                    .check_and_record(decoded.id, message.time, now)
                {
                    Verdict::New => {}
                    Verdict::FromTheFuture => {
                        self.offence(now, conn, "broadcasts stamped in the future", out);
                        return;
                    }
                    Verdict::Duplicate | Verdict::Expired => return,
                }
                self.relay(conn, &frame, decoded.compression, &message, out);
                self.dispatch(now, conn, decoded.id, message, out);
            }
            MainFlag::Whisper => self.dispatch(now, conn, decoded.id, message, out),
            MainFlag::Ping | MainFlag::Pong => {}
        }
    }

    fn offence(&mut self, now: u64, conn: ConnId, what: &'static str, out: &mut Vec<Action>) {
        let max = self.config.max_offences;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.offences = c.offences.saturating_add(1);
        if c.offences > max {
            self.record_error(format!("connection {conn}: {what}"));
            self.close(now, conn, CloseReason::Misbehaving(what), out);
        }
    }

    fn dispatch(
        &mut self,
        now: u64,
        conn: ConnId,
        id: MessageId,
        message: Arc<InternalMessage>,
        out: &mut Vec<Action>,
    ) {
        match message.sub_flag() {
            Some(SubFlag::Handshake) if message.msg_type == MainFlag::Whisper => {
                self.on_handshake(now, conn, &message, out)
            }
            Some(SubFlag::Handshake) => {}
            Some(SubFlag::Peers) => self.on_peers(now, conn, &message, out),
            Some(SubFlag::Request) => self.on_request(now, conn, &message, out),
            Some(SubFlag::Response) => self.on_response(&message, out),
            // Reserved keep-alive flags: nothing to do.
            Some(SubFlag::Ping | SubFlag::Pong) => {}
            _ => out.push(Action::Deliver(Delivery { message, id, conn })),
        }
    }

    /// Forwards a new broadcast to every peer but the one it came from and
    /// its original sender, passing the received bytes on where the
    /// target's compression matches.
    fn relay(
        &mut self,
        from: ConnId,
        frame: &Frame,
        incoming: Option<Compression>,
        message: &Arc<InternalMessage>,
        out: &mut Vec<Action>,
    ) {
        let mut plain: Option<Bytes> = None;
        let mut by_method: Vec<(Option<Compression>, Bytes)> = Vec::new();
        let targets: Vec<ConnId> = self
            .routing
            .iter()
            .filter(|(id, &c)| c != from && **id != message.sender)
            .map(|(_, &c)| c)
            .collect();
        for target in targets {
            let method = self.send_method(target);
            let bytes = if method == incoming {
                frame.raw().clone()
            } else if let Some((_, b)) = by_method.iter().find(|(m, _)| *m == method) {
                b.clone()
            } else {
                let body = match &plain {
                    Some(p) => p.clone(),
                    None => {
                        let p = match incoming {
                            None => Bytes::copy_from_slice(frame.body()),
                            Some(m) => match compression::decompress(
                                m,
                                frame.body(),
                                self.config.limits.max_decompressed_len,
                            ) {
                                Ok(v) => Bytes::from(v),
                                Err(_) => return,
                            },
                        };
                        plain = Some(p.clone());
                        p
                    }
                };
                let compressed = match method {
                    Some(m) => compression::compress(m, &body),
                    None => body.to_vec(),
                };
                match frame_from_body(&compressed, &self.config.limits) {
                    Ok(f) => {
                        by_method.push((method, f.clone()));
                        f
                    }
                    Err(_) => continue,
                }
            };
            if let Some(c) = self.conns.get_mut(&target) {
                c.last_sent = Some(message.clone());
            }
            out.push(Action::Send {
                conn: target,
                frame: bytes,
            });
        }
    }

    fn on_renegotiate(
        &mut self,
        now: u64,
        conn: ConnId,
        message: &InternalMessage,
        out: &mut Vec<Action>,
    ) {
        match message.sub_flag() {
            Some(SubFlag::Compression) => {
                let Some(list) = message.payload.get(1).and_then(Packet::as_array) else {
                    self.close(
                        now,
                        conn,
                        CloseReason::BadMessage("compression list is not an array"),
                        out,
                    );
                    return;
                };
                let methods = parse_methods(list);
                let ours = self.config.compression.clone();
                let Some(h) = self.conns.get_mut(&conn).and_then(|c| c.peer.as_mut()) else {
                    return;
                };
                let changed = h.compression != methods;
                h.compression = methods.clone();
                if changed {
                    let common: Vec<Packet> = ours
                        .iter()
                        .filter(|m| methods.contains(m))
                        .map(|m| Packet::from(m.as_u8()))
                        .collect();
                    self.send_own(
                        now,
                        conn,
                        MainFlag::Renegotiate,
                        vec![SubFlag::Compression.as_u8().into(), Packet::Array(common)],
                        out,
                    );
                }
            }
            Some(SubFlag::Resend) => {
                let last = self.conns.get(&conn).and_then(|c| c.last_sent.clone());
                if let Some(last) = last {
                    let method = self.send_method(conn);
                    self.send_message(conn, &last, method, out);
                }
            }
            _ => {}
        }
    }

    fn on_handshake(
        &mut self,
        now: u64,
        conn: ConnId,
        message: &InternalMessage,
        out: &mut Vec<Action>,
    ) {
        let p = &message.payload;
        if p.len() != 5 {
            self.close(
                now,
                conn,
                CloseReason::BadMessage("handshake needs exactly 5 packets"),
                out,
            );
            return;
        }
        let Some(their_protocol) = p[2].as_bytes() else {
            self.close(
                now,
                conn,
                CloseReason::BadMessage("handshake protocol id is not str or bin"),
                out,
            );
            return;
        };
        if their_protocol != self.config.protocol.id().as_bytes() {
            let theirs = String::from_utf8_lossy(their_protocol).into_owned();
            self.record_error(format!("connection {conn}: subnet mismatch ({theirs})"));
            self.close(now, conn, CloseReason::SubnetMismatch { theirs }, out);
            return;
        }
        let Some(id) = packet_to_id(p[1].clone()) else {
            self.close(
                now,
                conn,
                CloseReason::BadMessage("handshake id is not str or bin"),
                out,
            );
            return;
        };
        let Some(out_addr) = parse_addr(&p[3]) else {
            self.close(
                now,
                conn,
                CloseReason::BadMessage("handshake address is not [host, port]"),
                out,
            );
            return;
        };
        let Some(methods) = p[4].as_array().map(parse_methods) else {
            self.close(
                now,
                conn,
                CloseReason::BadMessage("handshake compression list is not an array"),
                out,
            );
            return;
        };
        if id == self.me {
            self.close(now, conn, CloseReason::SelfConnection, out);
            return;
        }
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let outgoing = c.outgoing;
        if let Some(h) = &c.peer {
            // A repeated handshake on a live connection (js2p sends one):
            // refresh what it tells us, nothing else.
            if h.id == id {
                if let Some(h) = self.conns.get_mut(&conn).and_then(|c| c.peer.as_mut()) {
                    h.out_addr = out_addr;
                    h.compression = methods;
                }
            }
            return;
        }
        if let Some(&existing) = self.routing.get(&id) {
            let existing_outgoing = self.conns.get(&existing).map(|c| c.outgoing);
            if existing != conn && existing_outgoing == Some(outgoing) {
                // Two connections dialled from the same end. The dialler
                // keeps the one it adopted first and closes this one; the
                // accepting end keeps both until then, routing over the
                // first and failing over if that is the one closed.
                if outgoing {
                    out.push(Action::Event(MeshEvent::Duplicate { id, conn }));
                    self.close(now, conn, CloseReason::Conflict, out);
                } else if let Some(c) = self.conns.get_mut(&conn) {
                    c.expected_id = None;
                    c.peer = Some(Handshaken {
                        id,
                        out_addr,
                        compression: methods,
                    });
                }
                return;
            }
            if existing != conn {
                // Both ends dialled each other. Decide as py2p does, so both
                // ends keep the same connection.
                let keep_existing = (id_greater(&self.me, &id)) ^ outgoing;
                if keep_existing {
                    out.push(Action::Event(MeshEvent::Duplicate { id, conn }));
                    self.close(now, conn, CloseReason::Conflict, out);
                    return;
                }
                // Replace silently: the peer stays, only its connection changes.
                self.routing.remove(&id);
                self.conns.remove(&existing);
                out.push(Action::Event(MeshEvent::Closing {
                    conn: existing,
                    reason: CloseReason::Conflict,
                }));
                out.push(Action::Close {
                    conn: existing,
                    reason: CloseReason::Conflict,
                });
                self.adopt(conn, id.clone(), out_addr, methods);
                out.push(Action::Event(MeshEvent::Rebound { id, conn }));
                self.send_peers(now, conn, out);
                self.flush_awaiting_route(now, conn, out);
                return;
            }
        }
        let was_empty = self.routing.is_empty();
        self.adopt(conn, id.clone(), out_addr, methods);
        if was_empty {
            out.push(Action::Event(MeshEvent::Connect));
        }
        out.push(Action::Event(MeshEvent::PeerJoined { id, conn }));
        self.send_peers(now, conn, out);
        self.flush_awaiting_route(now, conn, out);
    }

    fn adopt(
        &mut self,
        conn: ConnId,
        id: PeerId,
        out_addr: (String, u16),
        compression: Vec<Compression>,
    ) {
        // A peer we are dialling may reach us first, on an incoming
        // connection. Our dial is still under way and counts against
        // `max_outgoing` until `on_open` or `on_dial_failed` settles it;
        // forgetting it here would let the freed budget start one dial too
        // many (found by the simulator: 5 outgoing with `max_outgoing` 4).
        if self.conns.get(&conn).is_some_and(|c| c.outgoing) {
            self.dialling.remove(&id);
        }
        self.book.learn(&id, out_addr.clone());
        self.book.connected(&id);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.expected_id = None;
            c.peer = Some(Handshaken {
                id: id.clone(),
                out_addr,
                compression,
            });
        }
        self.routing.insert(id, conn);
    }

    fn on_peers(
        &mut self,
        now: u64,
        conn: ConnId,
        message: &InternalMessage,
        out: &mut Vec<Action>,
    ) {
        let Some(list) = message.payload.get(1).and_then(Packet::as_array) else {
            return;
        };
        if list.len() > self.config.max_peer_list {
            self.record_error(format!(
                "connection {conn}: peer list of {} entries",
                list.len()
            ));
            self.close(
                now,
                conn,
                CloseReason::BadMessage("peer list too long"),
                out,
            );
            return;
        }
        let now_ms = now.saturating_mul(1000);
        let mut listed = Vec::new();
        // Linear in the list: the budget and what the connections still
        // waiting for their handshake are (expected ids, remote addresses)
        // are computed once, not per entry (per entry, a node with hundreds
        // of peers spent its time here).
        let mut budget = self.dial_budget();
        let (awaiting_ids, awaiting_remotes): (Vec<PeerId>, Vec<String>) = if budget > 0 {
            (
                self.conns
                    .values()
                    .filter_map(|c| c.expected_id.clone())
                    .collect(),
                self.conns
                    .values()
                    .filter(|c| c.peer.is_none())
                    .map(|c| c.remote.clone())
                    .collect(),
            )
        } else {
            (Vec::new(), Vec::new())
        };
        for entry in list {
            let Some([addr, id]) = entry
                .as_array()
                .and_then(|e| <&[Packet; 2]>::try_from(e).ok())
            else {
                continue;
            };
            let (Some(addr), Some(id)) = (parse_addr(addr), packet_to_id(id.clone())) else {
                continue;
            };
            if id == self.me || addr == self.out_addr {
                continue;
            }
            listed.push((id.clone(), addr.clone()));
            self.book.learn(&id, addr.clone());
            if budget == 0 {
                continue;
            }
            let addr_text = format!("{}:{}", addr.0, addr.1);
            if self.routing.contains_key(&id)
                || self.anonymous_dials.contains(&addr)
                || awaiting_remotes.contains(&addr_text)
                || self.dialling.contains_key(&id)
                || awaiting_ids.contains(&id)
            {
                continue;
            }
            if !self.take_dial_token(now_ms) {
                // Remembered: the refill on later ticks may dial it.
                continue;
            }
            budget -= 1;
            self.book.dialling(&id, now_ms);
            self.start_dial(id, addr, out);
        }
        let from = self
            .conns
            .get(&conn)
            .and_then(|c| c.peer.as_ref())
            .map(|h| h.id.clone());
        if let Some(from) = from {
            out.push(Action::Event(MeshEvent::PeerList {
                from,
                peers: listed,
            }));
        }
    }

    fn on_request(
        &mut self,
        now: u64,
        conn: ConnId,
        message: &InternalMessage,
        out: &mut Vec<Action>,
    ) {
        let p = &message.payload;
        match (p.get(1), p.get(2)) {
            (Some(star), None) if star.as_bytes() == Some(b"*") => self.send_peers(now, conn, out),
            (Some(req), Some(target)) => {
                let (Some(req_bytes), Some(target)) = (req.as_bytes(), target.as_bytes()) else {
                    return;
                };
                let target = PeerId::new(Bytes::copy_from_slice(target), IdWire::Bin);
                let Some(&tconn) = self.routing.get(&target) else {
                    return;
                };
                let Some(h) = self.conns.get(&tconn).and_then(|c| c.peer.clone()) else {
                    return;
                };
                let wire = self.wire_of(conn);
                let addr = Packet::Array(vec![h.out_addr.0.clone().into(), h.out_addr.1.into()]);
                let req_packet = match req {
                    Packet::Str(_) => req.clone(),
                    _ => Packet::bin(Bytes::copy_from_slice(req_bytes)),
                };
                let payload = vec![
                    SubFlag::Response.as_u8().into(),
                    req_packet,
                    Packet::Array(vec![addr, id_to_packet(&h.id.with_wire(wire))]),
                ];
                let msg = self.own_message(MainFlag::Broadcast, now, payload, conn);
                let (id, _) = msg.encode_body(None);
                self.waterfall.record_own(id, now, now);
                let method = self.send_method(conn);
                self.send_message(conn, &msg, method, out);
            }
            _ => {}
        }
    }

    fn on_response(&mut self, message: &InternalMessage, out: &mut Vec<Action>) {
        let p = &message.payload;
        let Some(req) = p.get(1).and_then(Packet::as_bytes) else {
            return;
        };
        let Some(pending) = self.pending.remove(req) else {
            return;
        };
        self.pending_order.retain(|k| k.as_slice() != req);
        let Some([addr, id]) = p
            .get(2)
            .and_then(Packet::as_array)
            .and_then(|e| <&[Packet; 2]>::try_from(e).ok())
        else {
            return;
        };
        let (Some(addr), Some(id)) = (parse_addr(addr), packet_to_id(id.clone())) else {
            return;
        };
        if id != pending.target {
            return;
        }
        self.awaiting_route
            .entry(id.clone())
            .or_default()
            .push(pending.packets);
        if let Some(&conn) = self.routing.get(&id) {
            // Connected meanwhile: deliver now.
            self.flush_awaiting_route(0, conn, out);
        } else if !self.dialling.contains_key(&id) {
            self.book.learn(&id, addr.clone());
            self.start_dial(id, addr, out);
        }
    }

    fn flush_awaiting_route(&mut self, now: u64, conn: ConnId, out: &mut Vec<Action>) {
        let Some(id) = self
            .conns
            .get(&conn)
            .and_then(|c| c.peer.as_ref())
            .map(|h| h.id.clone())
        else {
            return;
        };
        let Some(replies) = self.awaiting_route.remove(&id) else {
            return;
        };
        for packets in replies {
            let _ = self.whisper_on(now, conn, packets, out);
        }
    }

    // ----- commands from the application ----------------------------------

    /// Sends `packets` to every peer: `[msg_type, me, now, flag, packets…]`.
    /// With `MainFlag::Broadcast` it floods the mesh; with `Whisper` it
    /// reaches direct peers only. Returns the message id.
    ///
    /// # Errors
    /// [`SendError::ReservedType`] for other main flags;
    /// [`SendError::Codec`] if the message exceeds the frame limit.
    pub fn send(
        &mut self,
        now: u64,
        flag: Packet,
        msg_type: MainFlag,
        packets: Vec<Packet>,
        out: &mut Vec<Action>,
    ) -> Result<MessageId, SendError> {
        if !matches!(msg_type, MainFlag::Broadcast | MainFlag::Whisper) {
            return Err(SendError::ReservedType);
        }
        let mut payload = Vec::with_capacity(packets.len() + 1);
        payload.push(flag);
        payload.extend(packets);
        let message = Arc::new(InternalMessage::new(
            msg_type,
            self.me.clone(),
            now,
            payload,
        ));
        let (id, plain) = message.encode_body(None);
        if plain.len() > self.config.limits.max_frame_len {
            return Err(CodecError::FrameTooLarge {
                len: plain.len() as u64,
                max: self.config.limits.max_frame_len,
            }
            .into());
        }
        if msg_type == MainFlag::Broadcast {
            self.waterfall.record_own(id, now, now);
        }
        let mut by_method: Vec<(Option<Compression>, Bytes)> = Vec::new();
        let targets: Vec<ConnId> = self.routing.values().copied().collect();
        for conn in targets {
            let method = self.send_method(conn);
            let frame = match by_method.iter().find(|(m, _)| *m == method) {
                Some((_, f)) => f.clone(),
                None => {
                    let body = match method {
                        Some(m) => compression::compress(m, &plain),
                        None => plain.clone(),
                    };
                    let f = frame_from_body(&body, &self.config.limits)?;
                    by_method.push((method, f.clone()));
                    f
                }
            };
            if let Some(c) = self.conns.get_mut(&conn) {
                c.last_sent = Some(message.clone());
            }
            out.push(Action::Send { conn, frame });
        }
        Ok(id)
    }

    /// Sends a user whisper `[whisper, me, now, whisper, packets…]` to one
    /// connected peer.
    ///
    /// # Errors
    /// [`SendError::NotConnected`] if the peer is not in the routing table.
    pub fn whisper(
        &mut self,
        now: u64,
        peer: &PeerId,
        packets: Vec<Packet>,
        out: &mut Vec<Action>,
    ) -> Result<MessageId, SendError> {
        let conn = self
            .routing
            .get(peer)
            .copied()
            .ok_or_else(|| SendError::NotConnected(peer.to_string()))?;
        self.whisper_on(now, conn, packets, out)
    }

    fn whisper_on(
        &mut self,
        now: u64,
        conn: ConnId,
        packets: Vec<Packet>,
        out: &mut Vec<Action>,
    ) -> Result<MessageId, SendError> {
        let mut payload = Vec::with_capacity(packets.len() + 1);
        payload.push(SubFlag::Whisper.as_u8().into());
        payload.extend(packets);
        let message = Arc::new(self.own_message(MainFlag::Whisper, now, payload, conn));
        let method = self.send_method(conn);
        let (id, body) = message.encode_body(method);
        let frame = frame_from_body(&body, &self.config.limits)?;
        if let Some(c) = self.conns.get_mut(&conn) {
            c.last_sent = Some(message);
        }
        out.push(Action::Send { conn, frame });
        Ok(id)
    }

    /// Replies to `to`: a direct whisper when it is connected, otherwise a
    /// route request flooded to the mesh; the reply is sent once a peer
    /// answers with the target's address and the connection is up.
    ///
    /// # Errors
    /// [`SendError::TooManyPending`] if the pending-reply bound is reached;
    /// [`SendError::Codec`] if the message exceeds the frame limit.
    pub fn reply(
        &mut self,
        now: u64,
        to: &PeerId,
        packets: Vec<Packet>,
        out: &mut Vec<Action>,
    ) -> Result<(), SendError> {
        if let Some(&conn) = self.routing.get(to) {
            self.whisper_on(now, conn, packets, out)?;
            return Ok(());
        }
        if self.pending.len() >= self.config.max_pending_requests {
            self.expire_pending(now);
            if self.pending.len() >= self.config.max_pending_requests {
                return Err(SendError::TooManyPending);
            }
        }
        let mut rid = request_id(to.as_bytes(), now);
        // Two replies to one target in the same second share the hash; make
        // the key unique.
        let mut n = 0u32;
        while self.pending.contains_key(rid.as_bytes()) {
            n += 1;
            rid = request_id(to.as_bytes(), now.wrapping_add(u64::from(n) << 40));
        }
        let key = rid.clone().into_bytes();
        self.pending.insert(
            key.clone(),
            PendingReply {
                target: to.clone(),
                packets,
                created: now,
            },
        );
        self.pending_order.push_back(key);
        self.send(
            now,
            SubFlag::Request.as_u8().into(),
            MainFlag::Broadcast,
            vec![Packet::Str(rid), id_to_packet(&to.with_wire(IdWire::Bin))],
            out,
        )?;
        Ok(())
    }

    /// Sends a keep-alive (`[whisper, ping]`, ignored by every peer) on
    /// every connection, so idle links stay open through idle timeouts.
    pub fn keepalive(&mut self, now: u64, out: &mut Vec<Action>) {
        let targets: Vec<ConnId> = self.routing.values().copied().collect();
        for conn in targets {
            self.send_own(
                now,
                conn,
                MainFlag::Whisper,
                vec![SubFlag::Ping.as_u8().into()],
                out,
            );
        }
    }

    /// Asks every peer for its peer list (`[whisper, request, "*"]`).
    pub fn request_peers(&mut self, now: u64, out: &mut Vec<Action>) {
        let targets: Vec<ConnId> = self.routing.values().copied().collect();
        for conn in targets {
            // py2p compares the star with bytes, js2p with text: answer in kind.
            let star = match self.wire_of(conn) {
                IdWire::Bin => Packet::bin(Bytes::from_static(b"*")),
                IdWire::Str => Packet::from("*"),
            };
            self.send_own(
                now,
                conn,
                MainFlag::Whisper,
                vec![SubFlag::Request.as_u8().into(), star],
                out,
            );
        }
    }

    /// Asks a peer to use these compression methods from now on.
    pub fn renegotiate(
        &mut self,
        now: u64,
        peer: &PeerId,
        methods: &[Compression],
        out: &mut Vec<Action>,
    ) -> Result<(), SendError> {
        let conn = self
            .routing
            .get(peer)
            .copied()
            .ok_or_else(|| SendError::NotConnected(peer.to_string()))?;
        let list = Packet::Array(methods.iter().map(|m| Packet::from(m.as_u8())).collect());
        self.send_own(
            now,
            conn,
            MainFlag::Renegotiate,
            vec![SubFlag::Compression.as_u8().into(), list],
            out,
        );
        Ok(())
    }

    /// Asks a peer to re-send the last message it sent us.
    pub fn request_resend(
        &mut self,
        now: u64,
        peer: &PeerId,
        out: &mut Vec<Action>,
    ) -> Result<(), SendError> {
        let conn = self
            .routing
            .get(peer)
            .copied()
            .ok_or_else(|| SendError::NotConnected(peer.to_string()))?;
        self.send_own(
            now,
            conn,
            MainFlag::Renegotiate,
            vec![SubFlag::Resend.as_u8().into()],
            out,
        );
        Ok(())
    }

    /// Closes the connection to a peer.
    pub fn disconnect(&mut self, now: u64, peer: &PeerId, out: &mut Vec<Action>) -> bool {
        match self.routing.get(peer).copied() {
            Some(conn) => {
                self.close(now, conn, CloseReason::Requested, out);
                true
            }
            None => false,
        }
    }

    /// Notes that the application is dialling `id` itself (so peer lists
    /// do not dial it again).
    pub fn note_dialling(&mut self, id: Option<&PeerId>, addr: (String, u16)) {
        match id {
            Some(id) => {
                self.dialling.insert(id.clone(), addr);
            }
            None => self.anonymous_dials.push(addr),
        }
    }

    // ----- building messages ----------------------------------------------

    fn wire_of(&self, conn: ConnId) -> IdWire {
        self.conns
            .get(&conn)
            .and_then(|c| c.peer.as_ref())
            .map_or(IdWire::Bin, |h| h.id.wire())
    }

    /// Builds a message from us for one connection and sends it there,
    /// compressed as that connection's peer reads.
    fn send_own(
        &mut self,
        now: u64,
        conn: ConnId,
        msg_type: MainFlag,
        payload: Vec<Packet>,
        out: &mut Vec<Action>,
    ) {
        let msg = self.own_message(msg_type, now, payload, conn);
        let method = self.send_method(conn);
        self.send_message(conn, &msg, method, out);
    }

    /// A message from us on one connection: our id in the form that peer uses.
    fn own_message(
        &self,
        msg_type: MainFlag,
        now: u64,
        payload: Vec<Packet>,
        conn: ConnId,
    ) -> InternalMessage {
        InternalMessage::new(
            msg_type,
            self.me.with_wire(self.wire_of(conn)),
            now,
            payload,
        )
    }

    fn handshake_message(&self, now: u64) -> InternalMessage {
        let methods = Packet::Array(
            self.config
                .compression
                .iter()
                .map(|m| Packet::from(m.as_u8()))
                .collect(),
        );
        InternalMessage::new(
            MainFlag::Whisper,
            self.me.clone(),
            now,
            vec![
                SubFlag::Handshake.as_u8().into(),
                id_to_packet(&self.me),
                Packet::bin(Bytes::copy_from_slice(self.config.protocol.id().as_bytes())),
                Packet::Array(vec![self.out_addr.0.clone().into(), self.out_addr.1.into()]),
                methods,
            ],
        )
    }

    fn send_peers(&mut self, now: u64, conn: ConnId, out: &mut Vec<Action>) {
        let wire = self.wire_of(conn);
        let mut list: Vec<Packet> = self
            .routing
            .iter()
            .filter(|(_, &c)| c != conn)
            .filter_map(|(id, c)| {
                let h = self.conns.get(c)?.peer.as_ref()?;
                Some(Packet::Array(vec![
                    Packet::Array(vec![h.out_addr.0.clone().into(), h.out_addr.1.into()]),
                    id_to_packet(&id.with_wire(wire)),
                ]))
            })
            .collect();
        // Shuffled, as py2p does: nodes that are sent the same peers then
        // dial different ones. In routing-table order every newcomer would
        // dial the same few nodes, which grow into hubs that fill up and
        // refuse the next newcomers (seen with 1,000 nodes on loopback).
        // The node's own seeded RNG keeps the simulator reproducible.
        for i in (1..list.len()).rev() {
            let j = self.rng.below(i as u64 + 1) as usize;
            list.swap(i, j);
        }
        list.truncate(self.config.max_peer_list);
        self.send_own(
            now,
            conn,
            MainFlag::Whisper,
            vec![SubFlag::Peers.as_u8().into(), Packet::Array(list)],
            out,
        );
    }

    /// The compression used towards a connection.
    fn send_method(&self, conn: ConnId) -> Option<Compression> {
        let theirs = &self.conns.get(&conn)?.peer.as_ref()?.compression;
        Compression::select(&self.config.compression, theirs)
    }

    fn send_message(
        &mut self,
        conn: ConnId,
        message: &InternalMessage,
        method: Option<Compression>,
        out: &mut Vec<Action>,
    ) {
        let (_, body) = message.encode_body(method);
        match frame_from_body(&body, &self.config.limits) {
            Ok(frame) => out.push(Action::Send { conn, frame }),
            Err(e) => self.record_error(format!("not sent: {e}")),
        }
    }
}

/// `[host, port]` with a str (or bin) host and an integer port.
fn parse_addr(packet: &Packet) -> Option<(String, u16)> {
    let [host, port] = <&[Packet; 2]>::try_from(packet.as_array()?).ok()?;
    let host = std::str::from_utf8(host.as_bytes()?).ok()?.to_owned();
    let port = u16::try_from(port.as_u64()?).ok()?;
    Some((host, port))
}

/// The methods of a compression list that rs2p knows, in the given order.
fn parse_methods(list: &[Packet]) -> Vec<Compression> {
    list.iter()
        .filter_map(|p| p.as_u64())
        .filter_map(|v| u8::try_from(v).ok())
        .filter_map(Compression::from_u8)
        .take(16)
        .collect()
}

/// `int(a) > int(b)` for base58 ids, as py2p decides conflicts; ids that
/// are not base58 fall back to comparing bytes.
fn id_greater(a: &PeerId, b: &PeerId) -> bool {
    let as_int = |id: &PeerId| {
        std::str::from_utf8(id.as_bytes())
            .ok()
            .and_then(base58::decode_to_be_bytes)
    };
    match (as_int(a), as_int(b)) {
        (Some(x), Some(y)) => (x.len(), x) > (y.len(), y),
        _ => a.as_bytes() > b.as_bytes(),
    }
}
