//! [`ChordState`]: the DHT as a protocol [`Layer`] — the ring view (which
//! peers store), the meta message, join and unjoin, the key list, and the
//! tick. Storing is in `tables`, lookups in `lookup`.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use super::config::{ChordConfig, ChordEvent, ChordStats, GetId, GetResult};
use super::lookup::{Get, Pending};
use super::ring::{Position, Slot};
use crate::protocol::mesh::{ConnId, Delivery, Layer, LayerCtx};
use crate::protocol::{IdWire, InternalMessage, Packet, PeerId, SubFlag};

/// A peer as the ring sees it.
#[derive(Clone, Debug)]
pub(super) struct RingPeer {
    pub(super) conn: ConnId,
    /// Whether it told us it stores (its meta said `"0"`); the references
    /// assume a peer leeches until told otherwise.
    pub(super) storing: bool,
    /// What its last meta said (it stores), allowed or not.
    pub(super) said_storing: bool,
    /// Its position (`None`: its id is not base58; it never stores).
    pub(super) pos: Option<Position>,
}

/// A value held in one of the five tables.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// The value.
    pub value: Packet,
    /// The key it is stored under, when known (from rs2p's store messages
    /// or the key list): what lets this node repair the key's other slots.
    pub key: Option<Bytes>,
}

/// Where a slot should go, as this node sees the ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Target {
    /// This node is responsible.
    Me,
    /// The storing peer on this connection is nearer.
    Peer(ConnId),
    /// Nobody stores: this node leeches and knows no storing peer.
    Nobody,
}

/// Notify bytes whispered to one new peer per call (greeting, then each
/// tick), so a long key list does not overflow its send buffer.
const GREET_BURST: usize = 256 << 10;

/// The DHT's protocol logic: a [`Layer`] on the mesh. Pure and
/// deterministic; the [`ChordSocket`](crate::chord::ChordSocket) runs it in
/// a node, the rig and the simulator run it in memory. See the [module
/// documentation](super) for the protocol.
#[derive(Debug)]
pub struct ChordState {
    pub(super) config: ChordConfig,
    pub(super) storing: bool,
    pub(super) peers: BTreeMap<PeerId, RingPeer>,
    pub(super) tables: BTreeMap<Slot, Entry>,
    /// Every key of the DHT we heard of, with its five slots.
    pub(super) keys: BTreeMap<Bytes, [Slot; 5]>,
    /// The key of every slot of `keys`.
    pub(super) slot_keys: BTreeMap<Slot, Bytes>,
    pub(super) gets: BTreeMap<GetId, Get>,
    pub(super) pending: BTreeMap<Slot, Pending>,
    pub(super) next_get: GetId,
    pub(super) results: Vec<(GetId, GetResult)>,
    pub(super) events: Vec<ChordEvent>,
    pub(super) stats: ChordStats,
    /// Peers still to be sent the key list, from which key on.
    greet: BTreeMap<ConnId, Option<Bytes>>,
    pub(super) repair_at: Option<u64>,
    pub(super) last_sweep_ms: u64,
    /// Keys whose repair is under way.
    pub(super) repairs: BTreeSet<Bytes>,
    /// Backup copies of other nodes' slots (see `replica`).
    pub(super) replicas: BTreeMap<Slot, Entry>,
    /// Where each held slot's backup was sent.
    pub(super) backups: BTreeMap<Slot, ConnId>,
    /// Nodes dialled for a ring place, and when.
    pub(super) link_tries: BTreeMap<PeerId, u64>,
    pub(super) link_round: u64,
    last_links_ms: u64,
    /// This node's position (decoding a base58 id is not free).
    me: std::cell::OnceCell<Option<Position>>,
    /// Positions of ids the mesh knows, decoded once.
    pub(super) positions: std::cell::RefCell<BTreeMap<PeerId, Option<Position>>>,
}

impl ChordState {
    /// A leeching node (it stores nothing until [`join`](Self::join)) with
    /// these bounds.
    pub fn new(config: ChordConfig) -> Self {
        ChordState {
            config,
            storing: false,
            peers: BTreeMap::new(),
            tables: BTreeMap::new(),
            keys: BTreeMap::new(),
            slot_keys: BTreeMap::new(),
            gets: BTreeMap::new(),
            pending: BTreeMap::new(),
            next_get: 0,
            results: Vec::new(),
            events: Vec::new(),
            stats: ChordStats::default(),
            greet: BTreeMap::new(),
            repair_at: None,
            last_sweep_ms: 0,
            repairs: BTreeSet::new(),
            replicas: BTreeMap::new(),
            backups: BTreeMap::new(),
            link_tries: BTreeMap::new(),
            link_round: 0,
            last_links_ms: 0,
            me: std::cell::OnceCell::new(),
            positions: std::cell::RefCell::default(),
        }
    }

    /// The bounds and timings.
    pub fn config(&self) -> &ChordConfig {
        &self.config
    }

    /// Whether this node stores data (joined).
    pub fn is_storing(&self) -> bool {
        self.storing
    }

    /// Every key of the DHT this node heard of, in order.
    pub fn keys(&self) -> impl Iterator<Item = &Bytes> {
        self.keys.keys()
    }

    /// Whether `key` is in the key list.
    pub fn has_key(&self, key: &[u8]) -> bool {
        self.keys.contains_key(key)
    }

    /// The slots this node holds, with their values.
    pub fn held(&self) -> impl Iterator<Item = (&Slot, &Entry)> {
        self.tables.iter()
    }

    /// The value this node holds at `slot`.
    pub fn held_at(&self, slot: &Slot) -> Option<&Entry> {
        self.tables.get(slot)
    }

    /// Peers that told us they store, in routing-table order.
    pub fn storing_peers(&self) -> impl Iterator<Item = &PeerId> {
        self.peers
            .iter()
            .filter(|(_, p)| p.storing)
            .map(|(id, _)| id)
    }

    /// Lookups under way: our gets, and the retrieves forwarded for peers.
    pub fn pending_len(&self) -> usize {
        self.gets.len() + self.pending.len()
    }

    /// What peers sent that was not applied, and the ring's work.
    pub fn stats(&self) -> ChordStats {
        self.stats
    }

    /// Key list changes since the last call, oldest first.
    pub fn take_events(&mut self) -> Vec<ChordEvent> {
        std::mem::take(&mut self.events)
    }

    /// Gets that finished since the last call.
    pub fn take_results(&mut self) -> Vec<(GetId, GetResult)> {
        std::mem::take(&mut self.results)
    }

    /// The node responsible for `slot` as this node sees the ring: itself
    /// (`Some(own id)`), a storing peer, or `None` when nobody stores.
    pub fn responsible(&self, ctx: &LayerCtx<'_>, slot: &Slot) -> Option<PeerId> {
        match self.find(ctx, slot, self.storing, None) {
            Target::Me => Some(ctx.id().clone()),
            Target::Peer(conn) => ctx.mesh().peer_of(conn).cloned(),
            Target::Nobody => None,
        }
    }

    /// This node's place on the ring (`None` if its id is not base58).
    pub(super) fn me(&self, ctx: &LayerCtx<'_>) -> Option<Position> {
        *self.me.get_or_init(|| Position::of_id(ctx.id()))
    }

    /// The place of a node on the ring, decoded once.
    pub(super) fn position_of(&self, id: &PeerId) -> Option<Position> {
        let mut cache = self.positions.borrow_mut();
        if let Some(p) = cache.get(id) {
            return *p;
        }
        if cache.len() >= 1 << 14 {
            cache.clear();
        }
        let p = Position::of_id(id);
        cache.insert(id.clone(), p);
        p
    }

    /// `find` of the references: among this node (if `with_me`) and its
    /// storing peers (but the one on `skip`), the one with the smallest
    /// `distance(node, slot)`; strictly smaller wins, so ties go to this
    /// node, then to routing-table order.
    pub(super) fn find(
        &self,
        ctx: &LayerCtx<'_>,
        slot: &Slot,
        with_me: bool,
        skip: Option<ConnId>,
    ) -> Target {
        let h = slot.position();
        let mut best = None;
        if with_me {
            if let Some(me) = self.me(ctx) {
                best = Some((me.distance_to(&h), Target::Me));
            }
        }
        for p in self.peers.values() {
            let Some(pos) = p.pos.filter(|_| p.storing && Some(p.conn) != skip) else {
                continue;
            };
            let d = pos.distance_to(&h);
            if best.as_ref().is_none_or(|(gap, _)| d < *gap) {
                best = Some((d, Target::Peer(p.conn)));
            }
        }
        best.map_or(Target::Nobody, |(_, t)| t)
    }

    /// Starts storing: tells every peer (meta `"0"`); peers hand over what
    /// is now ours, and a repair pass pulls what nobody handed over.
    ///
    /// # Errors
    /// Never for a node whose id is base58 (every derived id); a node whose
    /// id is not cannot take a place on the ring and stays leeching.
    pub fn join(&mut self, ctx: &mut LayerCtx<'_>) -> Result<(), super::ChordError> {
        if self.me(ctx).is_none() {
            return Err(super::ChordError::NotOnRing);
        }
        if self.storing {
            return Ok(());
        }
        self.storing = true;
        self.send_meta_to_all(ctx);
        self.ring_changed(ctx);
        self.schedule_repair(ctx.now_ms());
        Ok(())
    }

    /// Stops storing: tells every peer (meta `"1"`), then hands every entry
    /// to the storing peer now responsible for it. With no storing peer the
    /// entries stay here (py2p loses them) and go to the first storing peer
    /// that appears.
    pub fn unjoin(&mut self, ctx: &mut LayerCtx<'_>) {
        if !self.storing {
            return;
        }
        self.storing = false;
        self.send_meta_to_all(ctx);
        self.ring_changed(ctx);
        self.replicas.clear();
    }

    fn send_meta_to_all(&mut self, ctx: &mut LayerCtx<'_>) {
        let conns: Vec<ConnId> = ctx.mesh().peers().iter().map(|p| p.conn).collect();
        for conn in conns {
            self.send_meta(ctx, conn);
        }
    }

    /// `[whisper, handshake (0x05), "0"|"1"]`: "1" means leeching.
    fn send_meta(&self, ctx: &mut LayerCtx<'_>, conn: ConnId) {
        let flag = if self.storing { "0" } else { "1" };
        let _ = ctx.whisper(conn, SubFlag::Handshake.as_u8(), vec![flag.into()]);
    }

    /// A peer's meta: whether it leeches. If it changed what we believed,
    /// we answer with ours (so a peer that dialled us learns it too); a peer
    /// that starts storing gets what it is now responsible for.
    fn on_meta(&mut self, ctx: &mut LayerCtx<'_>, conn: ConnId, flag: &Packet) {
        let Some(leeching) = parse_meta(flag) else {
            self.stats.bad_meta += 1;
            return;
        };
        let Some(id) = ctx.mesh().peer_of(conn).cloned() else {
            return;
        };
        // Only the connection the mesh reaches the peer on speaks for it
        // (and its id form decides whether it may store). A standby — the
        // losing end of a double dial, or a newcomer claiming a connected
        // peer's id — neither moves the peer's ring entry nor makes it
        // store; when a standby takes over, both ends greet again
        // (`on_peer_ready`).
        if ctx.mesh().conn_of(&id) != Some(conn) {
            self.stats.standby_metas += 1;
            return;
        }
        let pos = self.position_of(&id);
        let allowed = self.may_store(ctx, conn);
        let peer = self.peers.entry(id.clone()).or_insert_with(|| RingPeer {
            conn,
            storing: false,
            said_storing: false,
            pos,
        });
        peer.conn = conn;
        if peer.said_storing != leeching {
            return;
        }
        peer.said_storing = !leeching;
        if !leeching && !allowed {
            self.stats.refused_storers += 1;
        }
        peer.storing = !leeching && peer.pos.is_some() && allowed;
        self.send_meta(ctx, conn);
        self.ring_changed(ctx);
        if leeching {
            self.schedule_repair(ctx.now_ms());
        }
    }

    /// Whether the peer on `conn` may store: its id came as bin (py2p,
    /// rs2p), or `str_peers_store` allows js2p's too.
    fn may_store(&self, ctx: &LayerCtx<'_>, conn: ConnId) -> bool {
        self.config.str_peers_store || ctx.mesh().wire_of(conn) == IdWire::Bin
    }

    pub(super) fn schedule_repair(&mut self, now_ms: u64) {
        let at = now_ms + self.config.repair_delay_ms;
        self.repair_at = Some(self.repair_at.map_or(at, |t| t.min(at)));
    }

    /// A key joins the key list (room permitting); entries held under its
    /// slots learn their key.
    pub(super) fn add_key(&mut self, key: Bytes) -> bool {
        if self.keys.contains_key(&key) {
            return true;
        }
        if self.keys.len() >= self.config.max_keys {
            return false;
        }
        let slots = Slot::all_of(&key);
        for slot in &slots {
            if let Some(e) = self.tables.get_mut(slot) {
                e.key.get_or_insert_with(|| key.clone());
            }
            self.slot_keys.insert(slot.clone(), key.clone());
        }
        self.keys.insert(key.clone(), slots);
        self.events.push(ChordEvent::Added { key });
        true
    }

    pub(super) fn remove_key(&mut self, key: &[u8]) {
        if let Some((key, slots)) = self.keys.remove_entry(key) {
            for slot in &slots {
                self.slot_keys.remove(slot);
            }
            self.events.push(ChordEvent::Removed { key });
        }
    }

    /// `[notify (0x06), key]` adds a key; `[notify, key, anything]` deletes
    /// it (py2p looks only at the packet count).
    fn on_notify(&mut self, message: &InternalMessage) {
        let p = &message.payload;
        let Some(key) = p.get(1).and_then(Packet::as_bytes) else {
            self.stats.malformed += 1;
            return;
        };
        let key = Bytes::copy_from_slice(key);
        if p.len() == 2 {
            if !self.add_key(key) {
                self.stats.over_bounds += 1;
            }
        } else {
            self.remove_key(&key);
        }
    }

    /// Whispers the key list to a new peer from where it stopped, up to the
    /// burst; forgets the greeting once every key went.
    fn pump_greeting(&mut self, ctx: &mut LayerCtx<'_>, conn: ConnId) {
        let Some(next) = self.greet.get_mut(&conn) else {
            return;
        };
        let from = next.take();
        let mut range = match &from {
            Some(k) => self.keys.range(k.clone()..),
            None => self.keys.range::<Bytes, _>(..),
        };
        let mut sent = 0;
        loop {
            let Some((key, _)) = range.next() else {
                self.greet.remove(&conn);
                return;
            };
            if sent >= GREET_BURST {
                if let Some(n) = self.greet.get_mut(&conn) {
                    *n = Some(key.clone());
                }
                return;
            }
            sent += key.len() + 64;
            let packets = vec![Packet::bin(key.clone())];
            let _ = ctx.whisper(conn, SubFlag::Notify.as_u8(), packets);
        }
    }

    /// The table name and hash as packets in the form `conn`'s peer uses.
    pub(super) fn slot_packets(ctx: &LayerCtx<'_>, conn: ConnId, slot: &Slot) -> [Packet; 2] {
        let wire = ctx.mesh().wire_of(conn);
        [slot.method.to_packet(wire), slot.hash_packet(wire)]
    }
}

/// The meta flag as py2p reads it, `bool(int(flag))`: whether the peer
/// leeches. `None` when it is not an integer.
fn parse_meta(flag: &Packet) -> Option<bool> {
    if let Some(n) = flag.as_i64() {
        return Some(n != 0);
    }
    let text = std::str::from_utf8(flag.as_bytes()?).ok()?.trim();
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || digits.len() > 32 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(digits.bytes().any(|b| b != b'0'))
}

impl Layer for ChordState {
    fn claims(&self, message: &InternalMessage) -> bool {
        matches!(
            message.sub_flag(),
            Some(
                SubFlag::Handshake
                    | SubFlag::Notify
                    | SubFlag::Store
                    | SubFlag::Retrieve
                    | SubFlag::Retrieved
                    | SubFlag::Delta
            )
        )
    }

    fn on_peer_ready(&mut self, ctx: &mut LayerCtx<'_>, peer: &PeerId, conn: ConnId) {
        let pos = self.position_of(peer);
        let allowed = self.may_store(ctx, conn);
        let ring = self.peers.entry(peer.clone()).or_insert_with(|| RingPeer {
            conn,
            storing: false,
            said_storing: false,
            pos,
        });
        ring.conn = conn;
        // A known peer on a new connection (a standby took over): whether
        // it may store follows the id form of that connection.
        let storing = ring.said_storing && ring.pos.is_some() && allowed;
        let changed = std::mem::replace(&mut ring.storing, storing) != storing;
        // Our meta, then the key list, from both ends (py2p sends them only
        // from the accepting end, so a storing node that dials never says
        // it stores).
        self.send_meta(ctx, conn);
        self.greet.insert(conn, None);
        self.pump_greeting(ctx, conn);
        if changed {
            self.ring_changed(ctx);
            if !storing {
                self.schedule_repair(ctx.now_ms());
            }
        }
    }

    fn on_message(&mut self, ctx: &mut LayerCtx<'_>, delivery: Delivery) {
        let message = &delivery.message;
        let conn = delivery.conn;
        let p = &message.payload;
        match message.sub_flag() {
            Some(SubFlag::Handshake) => match (p.len(), p.get(1)) {
                (2, Some(flag)) => self.on_meta(ctx, conn, flag),
                _ => self.stats.malformed += 1,
            },
            Some(SubFlag::Notify) => self.on_notify(message),
            Some(SubFlag::Store) => self.on_store(ctx, conn, p),
            Some(SubFlag::Delta) => self.on_delta(ctx, conn, p),
            Some(SubFlag::Retrieve) => self.on_retrieve(ctx, conn, p),
            Some(SubFlag::Retrieved) => match p.as_slice() {
                [_, method, hash, value, key, marker, ..]
                    if marker.as_bytes() == Some(super::replica::REPLICA) =>
                {
                    match Slot::from_packets(method, hash) {
                        Some(slot) => self.on_replica(slot, value, key.as_bytes()),
                        None => self.stats.bad_slots += 1,
                    }
                }
                _ => self.on_retrieved(ctx, p),
            },
            _ => {}
        }
    }

    fn on_peer_left(&mut self, ctx: &mut LayerCtx<'_>, peer: &PeerId) {
        let Some(gone) = self.peers.remove(peer) else {
            return;
        };
        self.greet.remove(&gone.conn);
        self.backups.retain(|_, c| *c != gone.conn);
        self.peer_gone(ctx, gone.conn);
        if gone.storing {
            self.ring_changed(ctx);
            // Its slots are lost: the nodes now responsible for them pull
            // them from the key's other tables.
            self.schedule_repair(ctx.now_ms());
        }
    }

    fn on_tick(&mut self, ctx: &mut LayerCtx<'_>) {
        let conns: Vec<ConnId> = self.greet.keys().copied().collect();
        for conn in conns {
            if ctx.mesh().peer_of(conn).is_none() {
                self.greet.remove(&conn);
            } else {
                self.pump_greeting(ctx, conn);
            }
        }
        self.expire(ctx);
        let now = ctx.now_ms();
        let every = self.config.ring_interval_ms;
        if self.storing && every > 0 && now >= self.last_links_ms + every {
            self.last_links_ms = now;
            self.keep_links(ctx);
        }
        let interval = self.config.repair_interval_ms;
        let due = self.repair_at.is_some_and(|t| now >= t)
            || (interval > 0 && now >= self.last_sweep_ms + interval);
        if due {
            self.repair_at = None;
            self.last_sweep_ms = now;
            self.sweep(ctx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_meta;
    use super::*;
    use crate::protocol::mesh::{MeshConfig, MeshState, Stack};
    use crate::protocol::{FrameDecoder, MainFlag, PeerAddr};

    const NOW_MS: u64 = 1_700_000_000_000;

    fn frame(st: &mut Stack<ChordState>, conn: ConnId, payload: Vec<Packet>, from: &PeerId) {
        let message = InternalMessage::new(MainFlag::Whisper, from.clone(), NOW_MS / 1000, payload);
        let (_, body) = message.encode_body(None);
        let mut dec = FrameDecoder::new(1 << 20);
        dec.feed(&(body.len() as u32).to_be_bytes());
        dec.feed(&body);
        let frame = dec.next_frame().unwrap().unwrap();
        st.on_frame(NOW_MS, conn, frame, &mut Vec::new());
    }

    fn hello(st: &mut Stack<ChordState>, conn: ConnId, id: &PeerId) {
        let protocol = st.mesh().config().protocol.id().as_bytes().to_vec();
        let payload = vec![
            SubFlag::Handshake.as_u8().into(),
            crate::protocol::id_to_packet(id),
            Packet::bin(protocol),
            Packet::Array(vec!["127.0.0.1".into(), 6000u64.into()]),
            Packet::Array(vec![]),
        ];
        frame(st, conn, payload, id);
    }

    /// A chord node with two incoming connections (1 and 2) open, no
    /// handshake yet.
    fn two_open_connections() -> Stack<ChordState> {
        let me = PeerId::from("4MeMeMeMeMeMe");
        let mesh = MeshState::new(me, PeerAddr::new("127.0.0.1", 4444), MeshConfig::default());
        let mut st = Stack::new(mesh, ChordState::new(ChordConfig::default()));
        for conn in [1, 2] {
            st.on_open(
                NOW_MS,
                conn,
                false,
                format!("127.0.0.1:{conn}"),
                None,
                &mut Vec::new(),
            );
        }
        st
    }

    /// Found by the `chord_state` fuzzer: a meta on a second connection
    /// claiming a connected peer's id moved the peer's ring entry to that
    /// connection and judged it by that connection's id form, so a js2p
    /// peer (str id, not allowed to store) became a storing peer.
    #[test]
    fn a_meta_on_a_standby_connection_changes_nothing() {
        let mut st = two_open_connections();
        let bytes = Bytes::from_static(b"5fk3UgXbCxfH");
        let (js, py) = (
            PeerId::new(bytes.clone(), IdWire::Str),
            PeerId::new(bytes, IdWire::Bin),
        );
        hello(&mut st, 1, &js);
        hello(&mut st, 2, &py);
        assert_eq!(st.mesh().conn_of(&js), Some(1), "the mesh keeps the first");
        let stores = vec![SubFlag::Handshake.as_u8().into(), "0".into()];
        frame(&mut st, 2, stores.clone(), &py);
        assert_eq!(st.layer().storing_peers().count(), 0);
        assert_eq!(st.layer().stats().standby_metas, 1);
        // On the peer's own connection the meta counts: refused, str id.
        frame(&mut st, 1, stores, &js);
        assert_eq!(st.layer().storing_peers().count(), 0);
        assert_eq!(st.layer().stats().refused_storers, 1);
    }

    /// Found by the `chord_state` fuzzer: when a standby took over a
    /// storing peer (its first connection closed), the peer kept storing
    /// even though the standby's id came as str (js2p's, not allowed to
    /// store).
    #[test]
    fn a_standby_that_takes_over_is_judged_by_its_own_id_form() {
        let mut st = two_open_connections();
        let bytes = Bytes::from_static(b"2ZKAafyLC1r6");
        let (py, js) = (
            PeerId::new(bytes.clone(), IdWire::Bin),
            PeerId::new(bytes, IdWire::Str),
        );
        hello(&mut st, 1, &py);
        frame(
            &mut st,
            1,
            vec![SubFlag::Handshake.as_u8().into(), "0".into()],
            &py,
        );
        assert_eq!(st.layer().storing_peers().count(), 1, "a py2p peer stores");
        hello(&mut st, 2, &js);
        st.on_closed(NOW_MS, 1, &mut Vec::new());
        assert_eq!(st.mesh().conn_of(&py), Some(2), "the standby took over");
        assert_eq!(st.layer().storing_peers().count(), 0);
    }

    #[test]
    fn meta_reads_as_python_int() {
        assert_eq!(parse_meta(&"1".into()), Some(true));
        assert_eq!(parse_meta(&"0".into()), Some(false));
        assert_eq!(parse_meta(&Packet::bin(&b" 00 "[..])), Some(false));
        assert_eq!(parse_meta(&Packet::from(2u64)), Some(true));
        assert_eq!(parse_meta(&"yes".into()), None);
        assert_eq!(parse_meta(&Packet::Nil), None);
        assert_eq!(parse_meta(&"".into()), None);
    }
}
