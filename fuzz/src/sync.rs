//! `sync_state`: the replicated dictionary (`Stack<SyncState>`) under the
//! shared driver.

use std::collections::BTreeMap;

use bytes::Bytes;
use rs2p::protocol::mesh::{Action, ConnId, MeshConfig, MeshState, Stack};
use rs2p::protocol::sync::{Meta, SyncConfig, SyncEvent, SyncKey, SyncState, LEASE_SECS};
use rs2p::protocol::{
    msgpack, packet_to_id, FrameDecoder, IdWire, InternalMessage, MainFlag, Packet, PeerAddr,
    PeerId, SubFlag,
};

use crate::driver::{mesh_command, run, Harness, Scenario};
use crate::gen::{
    finish, handshake_message, header, id_packet, map_packet, packet, peer_id, value_packet, IDS,
    ME, NOW,
};
use crate::Input;

/// The keys most messages and commands use, so that writes meet.
const KEYS: [&str; 4] = ["a", "b", "key", "test"];

/// A key: one of [`KEYS`] as bin (py2p) or str (js2p), arbitrary bytes,
/// or now and then one too long for a frame.
fn key(inp: &mut Input) -> SyncKey {
    match inp.byte() % 16 {
        0..=8 => SyncKey::from(KEYS[usize::from(inp.byte()) % KEYS.len()]),
        9..=12 => SyncKey::text(KEYS[usize::from(inp.byte()) % KEYS.len()]),
        13 | 14 => {
            let n = usize::from(inp.byte() % 8);
            SyncKey::from(inp.bytes(n))
        }
        _ => SyncKey::from(Bytes::from(vec![
            b'k';
            60_000 + usize::from(inp.u16() % 8192)
        ])),
    }
}

/// A key packet: mostly a key, sometimes anything.
fn key_packet(inp: &mut Input) -> Packet {
    match inp.byte() % 8 {
        0 => packet(inp, 1),
        _ => key(inp).to_packet(),
    }
}

/// A value as msgpack: packets compare by these bytes here, so a NaN
/// equals itself.
fn enc(value: &Packet) -> Vec<u8> {
    let mut bytes = Vec::new();
    msgpack::encode(value, &mut bytes);
    bytes
}

/// The dictionary's contents (values as msgpack) with their metadata.
type Snapshot = BTreeMap<SyncKey, (Vec<u8>, Meta)>;

fn snapshot(st: &Stack<SyncState>) -> Snapshot {
    st.layer()
        .store()
        .iter()
        .map(|(k, e)| (k.clone(), (enc(&e.value), e.meta.clone())))
        .collect()
}

/// The replicated dictionary, with the dictionary as its events tell it
/// and as it was after the previous input.
pub struct Sync {
    config: SyncConfig,
    /// The dictionary rebuilt from the events alone.
    from_events: Snapshot,
    previous: Snapshot,
    /// Catch-up entries and forwards whispered.
    pub whispered: usize,
    /// Local writes that were applied.
    pub local_writes: usize,
}

impl Scenario for Sync {
    type Layer = SyncState;

    /// Header: `[leasing, max keys, max value length]`.
    fn new(inp: &mut Input) -> (Self, SyncState) {
        let leasing = inp.byte();
        let max_keys = 1 + usize::from(inp.byte() % 16);
        let len = inp.byte();
        let config = SyncConfig {
            leasing: leasing & 1 == 1,
            max_keys,
            // Past the frame limit now and then, so a value can pass the
            // bound and still not fit in a message.
            max_value_len: if len == 0xff {
                1 << 20
            } else {
                8 + usize::from(len) * 4
            },
        };
        let sc = Sync {
            config: config.clone(),
            from_events: BTreeMap::new(),
            previous: Snapshot::new(),
            whispered: 0,
            local_writes: 0,
        };
        (sc, SyncState::new(config))
    }

    /// Mostly sync's own messages: sets and deletes, catch-up entries,
    /// deltas, and malformed ones.
    fn message(h: &mut Harness<Self>, inp: &mut Input) -> InternalMessage {
        if inp.byte() % 4 == 0 {
            return h.mesh_message(inp);
        }
        let now = h.now_secs();
        let header = header(inp, now);
        let store = Packet::from(SubFlag::Store.as_u8());
        let payload = match inp.byte() % 8 {
            0..=2 => vec![store, key_packet(inp), value_packet(inp)],
            3 | 4 => {
                let time = match inp.byte() % 4 {
                    0 => packet(inp, 2),
                    1 => Packet::from(inp.u64()),
                    _ => Packet::from(now.saturating_sub(u64::from(inp.u16()))),
                };
                vec![
                    store,
                    key_packet(inp),
                    value_packet(inp),
                    id_packet(inp),
                    time,
                ]
            }
            5 | 6 => {
                let delta = match inp.byte() % 4 {
                    0 => packet(inp, 1),
                    _ => map_packet(inp),
                };
                vec![Packet::from(SubFlag::Delta.as_u8()), key_packet(inp), delta]
            }
            _ => {
                let flag = if inp.byte() & 1 == 0 {
                    SubFlag::Store
                } else {
                    SubFlag::Delta
                };
                let n = inp.byte() % 6;
                let mut p = vec![Packet::from(flag.as_u8())];
                p.extend((0..n).map(|_| packet(inp, 1)));
                p
            }
        };
        finish(inp, header, payload)
    }

    /// The mesh's commands now and then; otherwise the dictionary's own,
    /// each checked: applied as asked, or refused with nothing stored or
    /// sent.
    fn command(h: &mut Harness<Self>, inp: &mut Input) {
        let op = inp.byte() % 8;
        if op == 0 {
            return mesh_command(h, inp);
        }
        let before = snapshot(&h.st);
        let now = h.now_ms;
        let me = Meta {
            owner: PeerId::from(ME),
            time: h.now_secs(),
        };
        let mut out = Vec::new();
        match op {
            1..=3 => {
                let n = if op == 3 { inp.byte() % 4 } else { 1 };
                let items: Vec<(SyncKey, Packet)> =
                    (0..n).map(|_| (key(inp), value_packet(inp))).collect();
                let r = h.st.with_layer(now, &mut out, |l, ctx| {
                    if op == 3 {
                        l.update(ctx, items.clone())
                    } else {
                        let (k, v) = items[0].clone();
                        l.set(ctx, k, v)
                    }
                });
                if r.is_ok() {
                    // The last write of each key holds, as ours.
                    let last: BTreeMap<_, _> = items.into_iter().collect();
                    let after = snapshot(&h.st);
                    for (k, v) in last {
                        let (value, meta) = after.get(&k).expect("a key set is held");
                        assert_eq!(value, &enc(&v), "{k:?} does not hold what was set");
                        assert_eq!(meta, &me, "{k:?} is not ours after a set");
                    }
                    h.sc.local_writes += 1;
                }
                refused_means_untouched(h, &before, &out, r.is_err());
            }
            4 | 5 => {
                let k = key(inp);
                let r = h.st.with_layer(now, &mut out, |l, ctx| l.delete(ctx, &k));
                if let Ok(old) = &r {
                    assert_eq!(
                        old.as_deref().map(enc),
                        before.get(&k).map(|e| e.0.clone()),
                        "delete returned another value"
                    );
                    assert!(h.st.layer().store().get(&k).is_none(), "deleted {k:?} held");
                    h.sc.local_writes += usize::from(old.is_some());
                }
                let nothing = matches!(r, Err(_) | Ok(None));
                refused_means_untouched(h, &before, &out, nothing);
            }
            _ => {
                let k = key(inp);
                let delta = match inp.byte() % 4 {
                    0 => value_packet(inp),
                    _ => map_packet(inp),
                };
                let r =
                    h.st.with_layer(now, &mut out, |l, ctx| l.apply_delta(ctx, k.clone(), delta));
                if let Ok(merged) = &r {
                    let held = h.st.layer().store().get(&k).map(|e| enc(&e.value));
                    assert_eq!(held, Some(enc(merged)), "delta result not held");
                    h.sc.local_writes += 1;
                }
                refused_means_untouched(h, &before, &out, r.is_err());
            }
        }
        h.apply(out);
    }

    /// What we whisper (catch-up entries, forwarded ones) is what we would
    /// accept: `[store, key, value, owner, time]`, the value within the
    /// bound.
    fn sent(&mut self, _: ConnId, m: &InternalMessage) {
        let ours = m.sender.as_bytes() == ME.as_bytes() && m.msg_type == MainFlag::Whisper;
        if !ours || m.sub_flag() != Some(SubFlag::Store) {
            return;
        }
        self.whispered += 1;
        let p = &m.payload;
        assert_eq!(p.len(), 5, "a catch-up entry of {} packets", p.len());
        assert!(
            SyncKey::from_packet(&p[1]).is_some(),
            "catch-up key {:?}",
            p[1]
        );
        assert!(msgpack::encoded_len(&p[2]) <= self.config.max_value_len);
        assert!(
            packet_to_id(p[3].clone()).is_some(),
            "catch-up owner {:?}",
            p[3]
        );
        assert!(p[4].as_u64().is_some(), "catch-up time {:?}", p[4]);
    }

    /// The bounds; no nil values; the events tell exactly what the store
    /// holds; with leasing on, every key that changed obeyed the lease
    /// rule.
    fn check(&mut self, st: &mut Stack<SyncState>, now_ms: u64) {
        for event in st.layer_mut().take_events() {
            match event {
                SyncEvent::Updated {
                    key,
                    value,
                    owner,
                    time,
                } => {
                    self.from_events
                        .insert(key, (enc(&value), Meta { owner, time }));
                }
                SyncEvent::Deleted { key } => {
                    assert!(
                        self.from_events.remove(&key).is_some(),
                        "deleted {key:?}, never set"
                    );
                }
                _ => {}
            }
        }
        let now = snapshot(st);
        assert!(now.len() <= self.config.max_keys, "{} keys", now.len());
        assert_eq!(now.len(), self.from_events.len(), "events and store differ");
        for (k, e) in &now {
            assert_ne!(e.0, enc(&Packet::Nil), "{k:?} holds nil");
            let len = e.0.len();
            assert!(len <= self.config.max_value_len, "{k:?} holds {len} bytes");
            let from_events = self.from_events.get(k).expect("a key no event set");
            assert_eq!(from_events, e, "events and store differ");
            if let (true, Some(old)) = (self.config.leasing, self.previous.get(k)) {
                if old != e {
                    assert!(
                        lease_allows(&old.1, &e.1, now_ms / 1000),
                        "{k:?}: {:?} overwrote {:?} under lease",
                        e.1,
                        old.1
                    );
                }
            }
        }
        self.previous = now;
    }
}

/// The lease rule with leasing on (module docs of `rs2p::protocol::sync`),
/// owners compared by their bytes.
fn lease_allows(old: &Meta, new: &Meta, now: u64) -> bool {
    let (o, n) = (old.owner.as_bytes(), new.owner.as_bytes());
    o == n || old.time < now.saturating_sub(LEASE_SECS) || (old.time == new.time && o > n)
}

/// A local write refused (or with nothing to do) leaves the dictionary as
/// it was and sends nothing.
fn refused_means_untouched(h: &Harness<Sync>, before: &Snapshot, out: &[Action], refused: bool) {
    if refused {
        assert_eq!(
            &snapshot(&h.st),
            before,
            "a refused write changed the store"
        );
        assert!(
            !out.iter().any(|a| matches!(a, Action::Send { .. })),
            "a refused write sent something"
        );
    }
}

/// Input layout: `[mode, mesh config ×5, sync config ×3, events…]` for
/// the single node; the same bytes are then read again as a set of writes
/// for [`run_converge`].
pub fn sync_state(data: &[u8]) {
    run_sync_state(data);
    run_converge(data);
}

/// One write of the convergence check: a peer's `[store, key, value]`
/// broadcast.
#[derive(Clone, Debug)]
struct Write {
    key: SyncKey,
    value: Packet,
    meta: Meta,
}

impl Write {
    /// Whether this write takes the key from `old` under the lease rule,
    /// with both written within the hour (the check's times are).
    fn beats(&self, old: &Meta, leasing: bool) -> bool {
        let (o, n) = (old.owner.as_bytes(), self.meta.owner.as_bytes());
        o == n || (old.time == self.meta.time && o > n) || (!leasing && old.time < self.meta.time)
    }
}

/// A replica of the dictionary: a node (`Stack<SyncState>`) with one
/// handshaken peer, through which every write arrives as a frame.
fn replica(config: &SyncConfig) -> Stack<SyncState> {
    let mesh_cfg = MeshConfig::default();
    let protocol = mesh_cfg.protocol.id().as_bytes().to_vec();
    let mesh = MeshState::new(PeerId::from(ME), PeerAddr::new("127.0.0.1", 4444), mesh_cfg);
    let mut st = Stack::new(mesh, SyncState::new(config.clone()));
    let mut out = Vec::new();
    st.on_open(
        NOW * 1000,
        1,
        false,
        "127.0.0.1:50001".into(),
        None,
        &mut out,
    );
    let peer = peer_id(0, IdWire::Bin);
    let hello = handshake_message(&peer, &protocol, ("127.0.0.1", 6000), &[], NOW);
    feed(&mut st, &hello);
    assert_eq!(
        st.mesh().peers().len(),
        1,
        "the replica's peer did not join"
    );
    st
}

fn feed(st: &mut Stack<SyncState>, message: &InternalMessage) {
    let (_, body) = message.encode_body(None);
    let mut dec = FrameDecoder::new(usize::MAX);
    dec.feed(&(body.len() as u32).to_be_bytes());
    dec.feed(&body);
    let frame = dec.next_frame().unwrap().unwrap();
    let mut out = Vec::new();
    st.on_frame(NOW * 1000, 1, frame, &mut out);
}

/// Convergence: three replicas are fed the same peers' writes (sets of a
/// few keys by distinct writers, ids in bin or str form, some messages
/// twice) in three orders — as sent, reversed, shuffled by the input.
/// Each replica ends with exactly what the lease rule gives for its order
/// (every write applied or refused by the rule alone, nothing lost, no
/// duplicate applied twice); without leasing, or with every write of a key
/// made in the same second, all replicas hold the same dictionary, values
/// and metadata: the newest write of each key, ties to the smallest id.
/// Returns how many keys had more than one writer (for tests of the
/// harness itself).
pub fn run_converge(data: &[u8]) -> usize {
    let mut inp = Input::new(data);
    let leasing = inp.byte() & 1 == 1;
    let same_second = inp.byte() & 1 == 1;
    let config = SyncConfig {
        leasing,
        ..SyncConfig::default()
    };
    let mut writes: Vec<Write> = Vec::new();
    let mut taken = std::collections::BTreeSet::new();
    for _ in 0..usize::from(inp.byte() % 13) {
        let key = SyncKey::from(KEYS[usize::from(inp.byte() % 3)]);
        let who = usize::from(inp.byte());
        let wire = if who & 0x80 == 0 {
            IdWire::Bin
        } else {
            IdWire::Str
        };
        let owner = peer_id(who % IDS.len(), wire);
        // One write per writer and key: a writer's own writes replace
        // each other in arrival order (the lease rule), which no order
        // can make agree.
        if !taken.insert((key.clone(), owner.as_bytes().to_vec())) {
            continue;
        }
        let time = if same_second {
            NOW
        } else {
            NOW - u64::from(inp.byte() % 3)
        };
        let value = match packet(&mut inp, 1) {
            Packet::Nil => Packet::from(0u64),
            v => v,
        };
        writes.push(Write {
            key,
            value,
            meta: Meta { owner, time },
        });
    }
    let messages: Vec<InternalMessage> = writes
        .iter()
        .map(|w| {
            InternalMessage::new(
                MainFlag::Broadcast,
                w.meta.owner.clone(),
                w.meta.time,
                vec![
                    Packet::from(SubFlag::Store.as_u8()),
                    w.key.to_packet(),
                    w.value.clone(),
                ],
            )
        })
        .collect();
    let n = writes.len();
    let mut shuffled: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        shuffled.swap(i, usize::from(inp.byte()) % (i + 1));
    }
    let orders = [(0..n).collect(), (0..n).rev().collect(), shuffled];

    let mut results = Vec::new();
    for order in orders {
        let mut st = replica(&config);
        let mut model: BTreeMap<SyncKey, Write> = BTreeMap::new();
        for &i in &order {
            feed(&mut st, &messages[i]);
            // Now and then the same message again (a flood's echo).
            if inp.byte() % 4 == 0 {
                feed(&mut st, &messages[i]);
            }
            let w = &writes[i];
            let wins = model
                .get(&w.key)
                .is_none_or(|old| w.beats(&old.meta, leasing));
            if wins {
                model.insert(w.key.clone(), w.clone());
            }
        }
        let held = snapshot(&st);
        let expected: Snapshot = model
            .into_iter()
            .map(|(k, w)| (k, (enc(&w.value), w.meta)))
            .collect();
        assert_eq!(held, expected, "replica fed {order:?} of {writes:?}");
        let stats = st.layer().stats();
        assert_eq!(stats.over_bounds + stats.malformed, 0, "{stats:?}");
        results.push(held);
    }
    if !leasing || same_second {
        assert_eq!(results[0], results[1], "replicas differ: {writes:?}");
        assert_eq!(results[0], results[2], "replicas differ: {writes:?}");
        // The newest write of each key, ties to the smallest id.
        for (key, entry) in &results[0] {
            let newest = writes
                .iter()
                .filter(|w| &w.key == key)
                .max_by(|a, b| {
                    (a.meta.time, b.meta.owner.as_bytes())
                        .cmp(&(b.meta.time, a.meta.owner.as_bytes()))
                })
                .unwrap();
            assert_eq!(entry.1, newest.meta, "{key:?} not held by the newest write");
        }
    }
    let mut writers = BTreeMap::new();
    for w in &writes {
        *writers.entry(&w.key).or_insert(0) += 1;
    }
    writers.values().filter(|&&n| n > 1).count()
}

/// What one `sync_state` run reached (for tests of the harness itself).
#[derive(Debug, Default)]
pub struct SyncRun {
    pub max_peers: usize,
    pub keys: usize,
    pub whispered: usize,
    pub local_writes: usize,
    pub remote_applied: bool,
}

/// [`sync_state`], telling what the run reached.
pub fn run_sync_state(data: &[u8]) -> SyncRun {
    let h = run::<Sync>(data);
    let store = snapshot(&h.st);
    SyncRun {
        max_peers: h.max_peers,
        keys: store.len(),
        whispered: h.sc.whispered,
        local_writes: h.sc.local_writes,
        remote_applied: store
            .values()
            .any(|e| e.1.owner.as_bytes() != ME.as_bytes()),
    }
}
