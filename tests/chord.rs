//! The DHT (`rs2p::protocol::chord`) in the in-memory rig: placement by
//! the ring rule, reads from every node, deletes, deltas, join and unjoin
//! moving data, a killed storing node's slots restored, bounds, and what a
//! peer's odd messages cost (nothing but a count).

mod support;

use bytes::Bytes;
use rs2p::protocol::chord::{ChordConfig, ChordError, ChordState, Position, Slot};
use rs2p::protocol::mesh::{MeshConfig, MeshState};
use rs2p::protocol::{py2p_addr_text, IdWire, Packet, PeerId, Protocol, SubFlag};
use rs2p::sim::rig::{rig_addr, Rig};

/// `n` chord nodes with real (base58) ids, every pair connected.
fn ring(n: usize, config: ChordConfig) -> Rig<ChordState> {
    let proto = Protocol::new("chord", "Plaintext");
    let mut rig = Rig::with_nodes(n, |i| {
        let addr = rig_addr(i);
        let id = PeerId::derive(
            &py2p_addr_text(&addr.host, addr.port),
            proto.id(),
            &format!("salt-{i}"),
        );
        let mesh = MeshState::new(
            id,
            addr,
            MeshConfig {
                protocol: proto.clone(),
                // As a ChordSocket: ids as bin (str ids are js2p's, which
                // rs2p does not let store).
                id_wire: IdWire::Bin,
                ..MeshConfig::default()
            },
        );
        (mesh, ChordState::new(config.clone()))
    });
    for i in 0..n {
        for j in 0..i {
            rig.connect(i, j);
        }
    }
    rig.settle();
    rig
}

fn join_all(rig: &mut Rig<ChordState>, nodes: impl IntoIterator<Item = usize>) {
    for i in nodes {
        rig.with_layer(i, |s, ctx| s.join(ctx)).unwrap();
    }
    rig.settle();
}

fn set(rig: &mut Rig<ChordState>, i: usize, key: &str, value: impl Into<Packet>) {
    let value = value.into();
    rig.with_layer(i, |s, ctx| s.set(ctx, Bytes::from(key.to_owned()), value))
        .unwrap();
}

/// A get from node `i`, settled (and, if need be, ticked) to its result.
fn get(rig: &mut Rig<ChordState>, i: usize, key: &str) -> Result<Packet, ChordError> {
    let id = rig
        .with_layer(i, |s, ctx| s.get(ctx, key.as_bytes()))
        .unwrap();
    for _ in 0..60 {
        rig.settle();
        let results = rig.node_mut(i).layer_mut().take_results();
        if let Some((_, r)) = results.into_iter().find(|(g, _)| *g == id) {
            return r;
        }
        rig.advance(250);
    }
    panic!("get {key} from node {i} never finished");
}

/// The storing node responsible for `slot` by the ring rule, from the
/// outside: the smallest distance(node, hash); ties to the lower index.
fn responsible(rig: &Rig<ChordState>, storing: &[usize], slot: &Slot) -> usize {
    let h = slot.position();
    *storing
        .iter()
        .min_by_key(|&&i| Position::of_id(&rig.id(i)).unwrap().distance_to(&h))
        .unwrap()
}

/// Every slot of every key is held by its responsible node, with
/// `value`, and by no other node.
fn assert_placed(rig: &Rig<ChordState>, storing: &[usize], keys: &[(String, Packet)]) {
    assert_placed_among(rig, storing, &[], keys)
}

/// As [`assert_placed`], ignoring the `dead` nodes.
fn assert_placed_among(
    rig: &Rig<ChordState>,
    storing: &[usize],
    dead: &[usize],
    keys: &[(String, Packet)],
) {
    for (key, value) in keys {
        for slot in Slot::all_of(key.as_bytes()) {
            let r = responsible(rig, storing, &slot);
            for i in (0..rig.len()).filter(|i| !dead.contains(i)) {
                let held = rig.node(i).layer().held_at(&slot).map(|e| &e.value);
                if i == r {
                    assert_eq!(held, Some(value), "{key} {slot:?} missing on node {r}");
                } else {
                    assert_eq!(held, None, "{key} {slot:?} also on node {i} (owner {r})");
                }
            }
        }
    }
}

fn keys(n: usize) -> Vec<(String, Packet)> {
    (0..n)
        .map(|k| (format!("key-{k}"), Packet::from(format!("value {k}"))))
        .collect()
}

#[test]
fn keys_land_on_their_responsible_nodes_and_every_node_reads_them() {
    let mut rig = ring(9, ChordConfig::default());
    join_all(&mut rig, 0..9);
    let data = keys(40);
    for (k, (key, value)) in data.iter().enumerate() {
        set(&mut rig, k % 9, key, value.clone());
    }
    rig.settle();
    let storing: Vec<usize> = (0..9).collect();
    assert_placed(&rig, &storing, &data);
    // Every node knows every key and reads every value.
    for i in 0..9 {
        assert_eq!(rig.node(i).layer().keys().count(), 40, "node {i}");
        for (key, value) in data.iter().step_by(3) {
            assert_eq!(get(&mut rig, i, key).as_ref(), Ok(value), "{key} from {i}");
        }
    }
    // The load is spread: no node holds every slot.
    let held: Vec<usize> = (0..9).map(|i| rig.node(i).layer().held().count()).collect();
    assert_eq!(held.iter().sum::<usize>(), 200);
    assert!(held.iter().all(|&h| h < 200), "{held:?}");
    assert_eq!(get(&mut rig, 4, "never-set"), Err(ChordError::NotFound));
}

#[test]
fn overwrite_delete_and_delta() {
    let mut rig = ring(8, ChordConfig::default());
    join_all(&mut rig, 0..8);
    set(&mut rig, 0, "k", "one");
    rig.settle();
    set(&mut rig, 5, "k", "two");
    rig.settle();
    assert_eq!(get(&mut rig, 3, "k"), Ok(Packet::from("two")));
    // Delete: gone from every table and every key list.
    rig.with_layer(2, |s, ctx| s.delete(ctx, b"k")).unwrap();
    rig.settle();
    assert_eq!(get(&mut rig, 6, "k"), Err(ChordError::NotFound));
    for i in 0..8 {
        assert!(!rig.node(i).layer().has_key(b"k"), "node {i}");
        assert_eq!(rig.node(i).layer().held().count(), 0);
        assert!(rig
            .node_mut(i)
            .layer_mut()
            .take_events()
            .iter()
            .any(|e| matches!(e, rs2p::protocol::chord::ChordEvent::Removed { .. })));
    }
    assert_eq!(
        rig.with_layer(2, |s, ctx| s.delete(ctx, b"k")),
        Err(ChordError::UnknownKey("k".into()))
    );
    // Deltas merge into maps, from two nodes.
    let delta = |k: &str, v: u64| Packet::Map(vec![(Packet::from(k), Packet::from(v))]);
    let d1 = delta("a", 1);
    rig.with_layer(1, |s, ctx| s.apply_delta(ctx, Bytes::from_static(b"m"), d1))
        .unwrap();
    let d2 = delta("b", 2);
    rig.with_layer(7, |s, ctx| s.apply_delta(ctx, Bytes::from_static(b"m"), d2))
        .unwrap();
    rig.settle();
    let want = Packet::Map(vec![
        (Packet::from("a"), Packet::from(1u64)),
        (Packet::from("b"), Packet::from(2u64)),
    ]);
    assert_eq!(get(&mut rig, 4, "m"), Ok(want));
    assert_eq!(
        rig.with_layer(1, |s, ctx| s.apply_delta(
            ctx,
            Bytes::from_static(b"m"),
            5u64.into()
        )),
        Err(ChordError::DeltaNotAMap)
    );
}

#[test]
fn join_and_unjoin_move_data() {
    let mut rig = ring(8, ChordConfig::default());
    join_all(&mut rig, 0..7);
    let data = keys(30);
    for (k, (key, value)) in data.iter().enumerate() {
        set(&mut rig, k % 8, key, value.clone());
    }
    rig.settle();
    assert_placed(&rig, &(0..7).collect::<Vec<_>>(), &data);
    assert_eq!(rig.node(7).layer().held().count(), 0);
    // Node 7 joins: its neighbours hand over what is now its.
    join_all(&mut rig, [7]);
    assert_placed(&rig, &(0..8).collect::<Vec<_>>(), &data);
    assert!(rig.node(7).layer().held().count() > 0);
    // Node 3 leaves the ring: what it held goes to the new owners.
    rig.with_layer(3, |s, ctx| s.unjoin(ctx));
    rig.settle();
    assert_eq!(rig.node(3).layer().held().count(), 0);
    let storing = [0, 1, 2, 4, 5, 6, 7];
    assert_placed(&rig, &storing, &data);
    for (key, value) in &data {
        assert_eq!(get(&mut rig, 3, key).as_ref(), Ok(value));
    }
}

#[test]
fn a_killed_storing_node_loses_nothing_readable() {
    let mut rig = ring(8, ChordConfig::default());
    join_all(&mut rig, 0..8);
    let data = keys(40);
    for (k, (key, value)) in data.iter().enumerate() {
        set(&mut rig, k % 8, key, value.clone());
    }
    rig.settle();
    let victim = 5;
    let lost = rig.node(victim).layer().held().count();
    assert!(lost > 0);
    rig.kill(victim);
    rig.settle();
    let storing: Vec<usize> = (0..8).filter(|&i| i != victim).collect();
    // Before any repair: three of five tables still answer every key.
    for (key, value) in &data {
        assert_eq!(get(&mut rig, 0, key).as_ref(), Ok(value), "{key}");
    }
    // After the repair delay, the new owners restore the lost slots: five
    // copies again, each where the ring rule puts it.
    rig.advance(1_000);
    rig.settle();
    rig.advance(1_000);
    rig.settle();
    assert_placed_among(&rig, &storing, &[victim], &data);
    // The victim's backups took over at once; nothing was left to pull.
    let taken: u64 = storing
        .iter()
        .map(|&i| rig.node(i).layer().stats())
        .map(|s| s.promoted + s.repaired)
        .sum();
    assert_eq!(taken, lost as u64);
}

#[test]
fn bounds_are_typed_errors() {
    let config = ChordConfig {
        max_keys: 3,
        max_value_len: 100,
        max_pending: 1,
        ..ChordConfig::default()
    };
    let mut rig = ring(3, config);
    join_all(&mut rig, 0..3);
    let big = Packet::from("x".repeat(200));
    assert!(matches!(
        rig.with_layer(0, |s, ctx| s.set(ctx, Bytes::from_static(b"big"), big)),
        Err(ChordError::ValueTooLarge { .. })
    ));
    for k in ["a", "b", "c"] {
        set(&mut rig, 0, k, 1u64);
    }
    rig.settle();
    assert_eq!(
        rig.with_layer(1, |s, ctx| s.set(
            ctx,
            Bytes::from_static(b"d"),
            1u64.into()
        )),
        Err(ChordError::TooManyKeys { max: 3 })
    );
    assert_eq!(
        rig.with_layer(1, |s, ctx| s.set(
            ctx,
            Bytes::from_static(b"a"),
            Packet::Nil
        )),
        Err(ChordError::NilValue)
    );
    // One get at a time: a second one before the first ends is refused.
    let r = rig.with_layer(2, |s, ctx| {
        let first = s.get(ctx, b"a");
        (first.is_ok(), s.get(ctx, b"b"))
    });
    assert!(r.0);
    assert!(r.1.is_ok() || r.1 == Err(ChordError::Busy { max: 1 }));
}

/// Whispers `payload` from node `from` to node `to`'s connection with it.
fn whisper(rig: &mut Rig<ChordState>, from: usize, to: usize, payload: Vec<Packet>) {
    let to_id = rig.id(to);
    let conn = rig.mesh(from).conn_of(&to_id).unwrap();
    rig.with_mesh(from, |m, now, out| {
        m.whisper_flag(now, conn, payload[0].clone(), payload[1..].to_vec(), out)
    })
    .unwrap();
    rig.settle();
}

#[test]
fn odd_messages_are_counted_not_fatal() {
    let mut rig = ring(3, ChordConfig::default());
    join_all(&mut rig, 0..3);
    set(&mut rig, 0, "k", "v");
    rig.settle();
    let bin = |s: &str| Packet::bin(Bytes::from(s.to_owned()));
    let odd: Vec<Vec<Packet>> = vec![
        vec![SubFlag::Handshake.as_u8().into(), "yes".into()],
        vec![SubFlag::Handshake.as_u8().into(), Packet::Nil],
        vec![
            SubFlag::Store.as_u8().into(),
            bin("md5"),
            bin("21"),
            1u64.into(),
        ],
        vec![
            SubFlag::Store.as_u8().into(),
            bin("sha1"),
            bin("0OIl"),
            1u64.into(),
        ],
        vec![SubFlag::Store.as_u8().into(), bin("sha1")],
        vec![
            SubFlag::Store.as_u8().into(),
            bin("sha1"),
            bin("21"),
            Packet::Nil,
        ],
        vec![
            SubFlag::Delta.as_u8().into(),
            bin("sha1"),
            bin("21"),
            5u64.into(),
        ],
        vec![SubFlag::Retrieve.as_u8().into(), 7u64.into(), bin("21")],
        vec![
            SubFlag::Retrieved.as_u8().into(),
            bin("sha1"),
            bin("21"),
            1u64.into(),
        ],
        vec![SubFlag::Notify.as_u8().into(), Packet::Array(vec![])],
    ];
    for payload in odd {
        whisper(&mut rig, 1, 0, payload);
    }
    let stats = rig.node(0).layer().stats();
    assert_eq!(stats.bad_meta, 2);
    assert!(stats.bad_slots >= 3, "{stats:?}");
    assert!(stats.malformed >= 2, "{stats:?}");
    assert_eq!(stats.bad_deltas, 1);
    assert_eq!(stats.unsolicited, 1);
    assert!(rig.closed.is_empty(), "{:?}", rig.closed);
    assert!(rig.is_peer(0, 1));
    assert_eq!(get(&mut rig, 1, "k"), Ok(Packet::from("v")));
}
