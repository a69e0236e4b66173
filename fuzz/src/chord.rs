//! `chord_state`: the DHT (`Stack<ChordState>`) under the shared driver.

use std::collections::BTreeSet;

use bytes::Bytes;
use rs2p::protocol::chord::{ChordConfig, ChordError, ChordEvent, ChordState, GetId, Method, Slot};
use rs2p::protocol::mesh::{ConnId, Stack};
use rs2p::protocol::{base58, msgpack, IdWire, InternalMessage, MainFlag, Packet, SubFlag};

use crate::driver::{mesh_command, run, Harness, Scenario};
use crate::gen::{finish, header, map_packet, packet, value_packet, IDS, ME};
use crate::Input;

/// The keys most messages and commands use, so that writes meet.
const KEYS: [&str; 4] = ["a", "b", "key", "test"];

fn key(inp: &mut Input) -> Bytes {
    match inp.byte() % 8 {
        0..=5 => Bytes::from_static(KEYS[usize::from(inp.byte()) % KEYS.len()].as_bytes()),
        _ => {
            let n = usize::from(inp.byte() % 8);
            Bytes::copy_from_slice(inp.bytes(n))
        }
    }
}

/// A table name as a packet: a known one as bin or str, or anything.
fn method_packet(inp: &mut Input, method: Method) -> Packet {
    match inp.byte() % 8 {
        0..=3 => method.to_packet(IdWire::Bin),
        4..=6 => method.to_packet(IdWire::Str),
        _ => packet(inp, 2),
    }
}

/// `[method, hash]`: a known key's slot (as bin or str, now and then with
/// leading zeros), a peer's or our own place on the ring, a random hash,
/// one too long, or not base58 at all.
fn slot_packets(inp: &mut Input) -> [Packet; 2] {
    let method = Method::ALL[usize::from(inp.byte()) % Method::ALL.len()];
    let text = match inp.byte() % 8 {
        0..=3 => Slot::of_key(method, &key(inp)).hash_text(),
        4 => {
            let i = usize::from(inp.byte());
            if i % 5 == 4 {
                ME.to_owned()
            } else {
                IDS[i % IDS.len()].to_owned()
            }
        }
        5 => {
            let n = usize::from(inp.byte() % 72);
            base58::encode_be_bytes(inp.bytes(n))
        }
        6 => format!("11{}", Slot::of_key(method, &key(inp)).hash_text()),
        _ => {
            let n = usize::from(inp.byte() % 12);
            String::from_utf8_lossy(inp.bytes(n)).into_owned()
        }
    };
    let hash = match inp.byte() % 8 {
        0..=3 => Packet::bin(Bytes::from(text.into_bytes())),
        4..=6 => Packet::Str(text),
        _ => packet(inp, 2),
    };
    [method_packet(inp, method), hash]
}

/// The DHT, with its key list as the events tell it and the gets asked.
pub struct Chord {
    config: ChordConfig,
    /// The key list rebuilt from the events alone.
    from_events: BTreeSet<Bytes>,
    /// Gets started, and those whose result came.
    started: BTreeSet<GetId>,
    ended: BTreeSet<GetId>,
    /// Slots we asked peers for (`[method, hash]` as sent), to answer.
    asked: Vec<[Packet; 2]>,
    /// Writes, retrieves and answers we sent.
    pub chord_sent: usize,
    pub results: usize,
    pub found: usize,
}

impl Scenario for Chord {
    type Layer = ChordState;

    /// Header: `[flags, max keys, max entries, max value length, max
    /// pending, timeout, intervals]`.
    fn new(inp: &mut Input) -> (Self, ChordState) {
        let flags = inp.byte();
        let max_keys = 1 + usize::from(inp.byte() % 8);
        let max_entries = 1 + usize::from(inp.byte() % 24);
        let max_value_len = 8 + usize::from(inp.byte()) * 4;
        let max_pending = 1 + usize::from(inp.byte() % 6);
        let timeout = 1000 * (1 + u64::from(inp.byte() % 16));
        let intervals = inp.byte();
        let config = ChordConfig {
            max_keys,
            max_entries,
            max_value_len,
            max_pending,
            request_timeout_ms: timeout,
            late_answer_ms: 300,
            repair_delay_ms: 500,
            repair_interval_ms: u64::from(intervals & 3) * 5_000,
            ring_interval_ms: u64::from(intervals >> 2 & 3) * 2_000,
            max_repairs: 1 + usize::from(intervals >> 4 & 3),
            str_peers_store: flags & 2 != 0,
        };
        let sc = Chord {
            config: config.clone(),
            from_events: BTreeSet::new(),
            started: BTreeSet::new(),
            ended: BTreeSet::new(),
            asked: Vec::new(),
            chord_sent: 0,
            results: 0,
            found: 0,
        };
        (sc, ChordState::new(config))
    }

    /// Mostly the DHT's own messages: metas, notifies, stores, deltas,
    /// retrieves, answers (to what we asked, mostly) and backup copies.
    fn message(h: &mut Harness<Self>, inp: &mut Input) -> InternalMessage {
        if inp.byte() % 4 == 0 {
            return h.mesh_message(inp);
        }
        let header = header(inp, h.now_secs());
        let flag = |f: SubFlag| Packet::from(f.as_u8());
        let payload = match inp.byte() % 10 {
            0 | 1 => {
                let meta = match inp.byte() % 6 {
                    0 | 1 => Packet::from("0"),
                    2 | 3 => Packet::from("1"),
                    4 => Packet::bin(&b"0"[..]),
                    _ => packet(inp, 2),
                };
                vec![flag(SubFlag::Handshake), meta]
            }
            2 => {
                let mut p = vec![flag(SubFlag::Notify), Packet::bin(key(inp))];
                if inp.byte() % 4 == 0 {
                    p.push("del".into());
                }
                p
            }
            3 | 4 => {
                let (f, value) = if inp.byte() % 3 == 0 {
                    (SubFlag::Delta, map_packet(inp))
                } else {
                    (SubFlag::Store, value_packet(inp))
                };
                let [m, s] = slot_packets(inp);
                let mut p = vec![flag(f), m, s, value];
                if inp.byte() & 1 == 0 {
                    p.push(Packet::bin(key(inp)));
                }
                p
            }
            5 => {
                let [m, s] = slot_packets(inp);
                vec![flag(SubFlag::Retrieve), m, s]
            }
            6 | 7 => {
                let n = h.sc.asked.len();
                let [m, s] = match n {
                    0 => slot_packets(inp),
                    _ => h.sc.asked[usize::from(inp.byte()) % n].clone(),
                };
                vec![flag(SubFlag::Retrieved), m, s, value_packet(inp)]
            }
            8 => {
                let [m, s] = slot_packets(inp);
                vec![
                    flag(SubFlag::Retrieved),
                    m,
                    s,
                    value_packet(inp),
                    Packet::bin(key(inp)),
                    Packet::bin(&b"replica"[..]),
                ]
            }
            _ => {
                let f = [
                    SubFlag::Handshake,
                    SubFlag::Notify,
                    SubFlag::Store,
                    SubFlag::Retrieve,
                    SubFlag::Retrieved,
                    SubFlag::Delta,
                ][usize::from(inp.byte() % 6)];
                let n = inp.byte() % 7;
                let mut p = vec![flag(f)];
                p.extend((0..n).map(|_| packet(inp, 1)));
                p
            }
        };
        finish(inp, header, payload)
    }

    /// The mesh's commands now and then; otherwise the DHT's.
    fn command(h: &mut Harness<Self>, inp: &mut Input) {
        let op = inp.byte() % 10;
        if op == 0 {
            return mesh_command(h, inp);
        }
        let k = key(inp);
        match op {
            1 | 2 => {
                let v = value_packet(inp);
                let _ = h.with_layer(|l, ctx| l.set(ctx, k, v));
            }
            3 => {
                let known = h.st.layer().has_key(&k);
                let r = h.with_layer(|l, ctx| l.delete(ctx, &k));
                assert_eq!(
                    matches!(r, Err(ChordError::UnknownKey(_))),
                    !known,
                    "delete of {k:?}: {r:?}"
                );
                if r.is_ok() {
                    assert!(!h.st.layer().has_key(&k), "deleted {k:?} still known");
                }
            }
            4 => {
                let d = match inp.byte() % 4 {
                    0 => value_packet(inp),
                    _ => map_packet(inp),
                };
                let _ = h.with_layer(|l, ctx| l.apply_delta(ctx, k, d));
            }
            5..=7 => {
                if let Ok(id) = h.with_layer(|l, ctx| l.get(ctx, &k)) {
                    assert!(h.sc.started.insert(id), "get id {id} twice");
                }
            }
            8 => {
                let _ = h.with_layer(|l, ctx| l.join(ctx));
            }
            _ => h.with_layer(|l, ctx| l.unjoin(ctx)),
        }
    }

    /// What we send of the DHT's is well formed: a slot that parses, a
    /// value within the bound.
    fn sent(&mut self, conn: ConnId, m: &InternalMessage) {
        if m.sender.as_bytes() != ME.as_bytes() || m.msg_type != MainFlag::Whisper {
            return;
        }
        let p = &m.payload;
        let flag = m.sub_flag();
        if let Some(SubFlag::Store | SubFlag::Delta | SubFlag::Retrieve | SubFlag::Retrieved) = flag
        {
            self.chord_sent += 1;
            assert!(p.len() >= 3, "{flag:?} of {} packets", p.len());
            assert!(
                Slot::from_packets(&p[1], &p[2]).is_some(),
                "sent {flag:?} with a bad slot {:?} {:?}",
                p[1],
                p[2]
            );
        }
        match flag {
            Some(SubFlag::Store | SubFlag::Delta) => {
                let v = p.get(3).expect("a write without a value");
                assert!(msgpack::encoded_len(v) <= self.config.max_value_len);
            }
            Some(SubFlag::Retrieve) => {
                if self.asked.len() >= 16 {
                    self.asked.remove(0);
                }
                self.asked.push([p[1].clone(), p[2].clone()]);
            }
            _ => {}
        }
        let _ = conn;
    }

    /// The bounds; held values within them, under the slot of their key;
    /// the events tell exactly the key list; storing peers are connected
    /// (and send bin ids unless allowed); every get ends once.
    fn check(&mut self, st: &mut Stack<ChordState>, _: u64) {
        for event in st.layer_mut().take_events() {
            match event {
                ChordEvent::Added { key } => {
                    assert!(self.from_events.insert(key), "added twice");
                }
                ChordEvent::Removed { key } => {
                    assert!(self.from_events.remove(&key), "removed, never added");
                }
                _ => {}
            }
        }
        self.collect(st);
        let c = &self.config;
        let layer = st.layer();
        let keys: BTreeSet<Bytes> = layer.keys().cloned().collect();
        assert!(keys.len() <= c.max_keys, "{} keys", keys.len());
        assert_eq!(keys, self.from_events, "events and key list differ");
        let mut held = 0;
        for (slot, e) in layer.held() {
            held += 1;
            assert!(!e.value.is_nil(), "{slot:?} holds nil");
            assert!(msgpack::encoded_len(&e.value) <= c.max_value_len);
            if let Some(k) = &e.key {
                assert_eq!(&Slot::of_key(slot.method, k), slot, "key of another slot");
            }
        }
        assert!(held <= c.max_entries, "{held} entries held");
        let most = 2 * c.max_pending + c.max_repairs;
        assert!(
            layer.pending_len() <= most,
            "{} lookups",
            layer.pending_len()
        );
        let mesh = st.mesh();
        for id in layer.storing_peers() {
            let conn = mesh.conn_of(id).expect("a storing peer that is gone");
            assert!(c.str_peers_store || mesh.wire_of(conn) == IdWire::Bin);
        }
    }

    /// An hour on, every get has ended.
    fn finish(h: &mut Harness<Self>) {
        let sc = &h.sc;
        let open: Vec<_> = sc.started.difference(&sc.ended).collect();
        assert!(open.is_empty(), "gets never ended: {open:?}");
        // (A get that ends at once reports before its id is returned, so
        // only here can every result be matched to a get.)
        let unasked: Vec<_> = sc.ended.difference(&sc.started).collect();
        assert!(
            unasked.is_empty(),
            "results of gets never started: {unasked:?}"
        );
    }
}

impl Chord {
    /// Takes the results of gets: one each.
    fn collect(&mut self, st: &mut Stack<ChordState>) {
        for (id, r) in st.layer_mut().take_results() {
            assert!(self.ended.insert(id), "get {id} ended twice");
            self.results += 1;
            self.found += usize::from(r.is_ok());
        }
    }
}

/// Input layout: `[mode, mesh config ×5, chord config ×7, events…]`.
pub fn chord_state(data: &[u8]) {
    run_chord_state(data);
}

/// What one `chord_state` run reached (for tests of the harness itself).
#[derive(Debug, Default)]
pub struct ChordRun {
    pub max_peers: usize,
    pub keys: usize,
    pub held: usize,
    pub chord_sent: usize,
    pub results: usize,
    pub found: usize,
}

/// [`chord_state`], telling what the run reached.
pub fn run_chord_state(data: &[u8]) -> ChordRun {
    let h = run::<Chord>(data);
    let layer = h.st.layer();
    ChordRun {
        max_peers: h.max_peers,
        keys: layer.keys().count(),
        held: layer.held().count(),
        chord_sent: h.sc.chord_sent,
        results: h.sc.results,
        found: h.sc.found,
    }
}
