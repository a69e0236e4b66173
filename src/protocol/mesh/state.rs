//! [`MeshState`]: the state of one node's mesh logic, its constructor, the
//! read-only views of it, and the periodic tick. The inputs and commands
//! live in the sibling files, one concern each.

use std::collections::{BTreeMap, VecDeque};

use super::address_book::AddressBook;
use super::config::MeshConfig;
use super::conns::ConnEntry;
use super::dial::Dials;
use super::output::{Action, ConnId, MeshEvent, PeerInfo};
use super::routes::Routes;
use super::validation::Validations;
use super::waterfall::Waterfall;
use crate::protocol::{IdWire, MainFlag, PeerAddr, PeerId, Rng};

/// The mesh protocol logic of one node: routing table, handshakes, peer
/// lists, waterfall, route requests and redials. See the [module
/// documentation](super) for how to drive it.
///
/// # Examples
/// Two state machines wired back to back (the in-memory rig in
/// `rs2p::sim::rig` does this for any number of nodes):
/// ```
/// use rs2p::protocol::mesh::{Action, MeshConfig, MeshState, MeshEvent};
/// use rs2p::protocol::{FrameDecoder, PeerAddr, PeerId};
///
/// let now_ms = 100_000;
/// let mut a = MeshState::new(PeerId::from("A"), PeerAddr::new("127.0.0.1", 1), MeshConfig::default());
/// let mut b = MeshState::new(PeerId::from("B"), PeerAddr::new("127.0.0.1", 2), MeshConfig::default());
/// let mut out_a = Vec::new();
/// let mut out_b = Vec::new();
/// let dial = a.note_dialling(None, PeerAddr::new("127.0.0.1", 2));
/// a.on_open(now_ms, 1, true, "127.0.0.1:2".into(), Some(dial), &mut out_a);
/// b.on_open(now_ms, 1, false, "127.0.0.1:1".into(), None, &mut out_b);
/// // Each sent its handshake; feed it to the other side.
/// for (from, to, out) in [(&out_a, &mut b, &mut Vec::new()), (&out_b, &mut a, &mut Vec::new())] {
///     for action in from.clone() {
///         if let Action::Send { frame, .. } = action {
///             let mut dec = FrameDecoder::new(1 << 20);
///             dec.feed(&frame);
///             let frame = dec.next_frame().unwrap().unwrap();
///             to.on_frame(now_ms, 1, frame, out);
///         }
///     }
///     assert!(out.iter().any(|a| matches!(a, Action::Event(MeshEvent::Connect))));
/// }
/// assert_eq!(a.peers().len(), 1);
/// ```
#[derive(Debug)]
pub struct MeshState {
    pub(super) me: PeerId,
    pub(super) out_addr: PeerAddr,
    pub(super) config: MeshConfig,
    // `conns` and `routing` are ordered maps: the order in which peers are
    // relayed to, listed in peer lists and timed out is then a function of
    // the inputs alone, so the simulator (`crate::sim`) is reproducible
    // from its seed. An ordered map also cannot be hash-flooded by ids a
    // peer chooses.
    pub(super) conns: BTreeMap<ConnId, ConnEntry>,
    pub(super) routing: BTreeMap<PeerId, ConnId>,
    pub(super) dials: Dials,
    pub(super) waterfall: Waterfall,
    pub(super) routes: Routes,
    pub(super) errors: VecDeque<String>,
    pub(super) book: AddressBook,
    pub(super) rng: Rng,
    pub(super) replies_refused: u64,
    pub(super) validations: Validations,
    /// Messages decoded from peers, by main flag (its value is the index).
    pub(super) received: [u64; 5],
}

const MAX_ERRORS_KEPT: usize = 64;

/// Unix seconds of a time in milliseconds: what message headers carry.
pub(super) fn secs(now_ms: u64) -> u64 {
    now_ms / 1000
}

impl MeshState {
    /// A node with id `me`, advertising `out_addr`.
    pub fn new(me: PeerId, out_addr: PeerAddr, config: MeshConfig) -> Self {
        let waterfall = Waterfall::new(
            config.waterfall_window,
            config.max_clock_skew,
            config.max_waterfall_entries,
        );
        MeshState {
            // Our id travels in one form (str unless configured), in every
            // message, to every peer: js2p keys its routing table by the id
            // object it got in our handshake and only str keys match later
            // lookups, while py2p keys by whatever form arrived. One form
            // everywhere also keeps every broadcast of ours byte-identical
            // on every link. See docs/protocol.md.
            me: me.with_wire(config.id_wire),
            out_addr,
            conns: BTreeMap::new(),
            routing: BTreeMap::new(),
            dials: Dials::new(config.dial_burst),
            waterfall,
            routes: Routes::default(),
            errors: VecDeque::new(),
            book: AddressBook::new(
                config.address_book_capacity,
                config.reconnect_base_ms,
                config.reconnect_max_ms,
                config.reconnect_give_up_ms,
            ),
            rng: Rng::new(config.seed),
            replies_refused: 0,
            validations: Validations::default(),
            received: [0; 5],
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
    pub fn out_addr(&self) -> &PeerAddr {
        &self.out_addr
    }

    /// The routing table, sorted by peer id.
    pub fn peers(&self) -> Vec<PeerInfo> {
        // `routing` is ordered by id already.
        self.routing
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
                    rejected: c.rejected,
                })
            })
            .collect()
    }

    /// The connection of every peer in the routing table, in id order (as
    /// [`peers`](Self::peers), without building their descriptions).
    pub fn peer_conns(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.routing
            .values()
            .copied()
            .filter(|conn| self.conns.get(conn).is_some_and(|c| c.peer.is_some()))
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

    /// The msgpack type the peer on `conn` used for its id (bin for py2p,
    /// str for js2p); rs2p writes ids to that peer in the same form.
    /// Bin for a connection without a handshake yet.
    pub fn wire_of(&self, conn: ConnId) -> IdWire {
        self.conns
            .get(&conn)
            .and_then(|c| c.peer.as_ref())
            .map_or(IdWire::Bin, |h| h.id.wire())
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
        self.routes.pending_len()
    }

    /// Addresses remembered.
    pub fn known_addresses(&self) -> usize {
        self.book.len()
    }

    /// Dials started by peer lists, reconnects and route responses.
    pub fn dials_started(&self) -> u64 {
        self.dials.started()
    }

    /// Answers to peers' requests not sent because the peer's reply budget
    /// was spent (`MeshConfig::reply_rate`).
    pub fn replies_refused(&self) -> u64 {
        self.replies_refused
    }

    /// Peers in the routing table.
    pub fn peer_count(&self) -> usize {
        self.routing.len()
    }

    /// Messages decoded from peers so far with this main flag (broadcasts
    /// count every copy, duplicates included).
    pub fn messages_received(&self, kind: MainFlag) -> u64 {
        self.received[kind as usize]
    }

    /// Broadcasts the waterfall dropped so far: `(duplicates, stale,
    /// from the future)` — already seen, older than the window, stamped
    /// beyond the allowed clock skew.
    pub fn waterfall_drops(&self) -> (u64, u64, u64) {
        self.waterfall.drops()
    }

    /// The most recent errors seen (newest last), like the references'
    /// `status`.
    pub fn errors(&self) -> impl Iterator<Item = &str> {
        self.errors.iter().map(String::as_str)
    }

    pub(super) fn record_error(&mut self, text: String) {
        if self.errors.len() == MAX_ERRORS_KEPT {
            self.errors.pop_front();
        }
        self.errors.push_back(text);
    }

    /// Periodic housekeeping; call it every few hundred milliseconds.
    /// Expires waterfall entries and pending replies (raising
    /// [`MeshEvent::ReplyUnrouted`] for each reply dropped without a
    /// route), closes connections whose handshake is overdue, forgets
    /// addresses given up or not heard of for `reconnect_give_up_ms`, and
    /// redials lost or known peers (rate-limited, with backoff).
    pub fn on_tick(&mut self, now_ms: u64, out: &mut Vec<Action>) {
        self.waterfall.expire(secs(now_ms));
        self.routes.expire(now_ms, self.config.request_ttl);
        for to in self.routes.unrouted.drain(..) {
            out.push(Action::Event(MeshEvent::ReplyUnrouted { to }));
        }
        self.expire_validations(now_ms);
        self.close_overdue_handshakes(now_ms, out);
        self.close_stale_superseded(now_ms, out);
        let (routing, dials) = (&self.routing, &self.dials);
        self.book
            .prune(now_ms, |id| routing.contains_key(id) || dials.has_id(id));
        if self.config.reconnect {
            self.redial(now_ms, out);
        }
    }
}
