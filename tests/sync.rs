//! The replicated dictionary (`rs2p::protocol::sync`, `rs2p::sync`):
//! convergence, the lease rule, catch-up, deltas, deletes, bounds, and
//! what a peer's odd writes cost (nothing but a count). The rules run in
//! the in-memory rig with a controllable clock; real nodes show the same
//! over sockets.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rs2p::protocol::mesh::{MeshConfig, MeshState};
use rs2p::protocol::sync::{SyncConfig, SyncError, SyncEvent, SyncKey, SyncState, LEASE_SECS};
use rs2p::protocol::{Packet, PeerId, SubFlag};
use rs2p::sim::rig::{rig_addr, Rig};
use rs2p::sync::SyncSocket;
use rs2p::Error;
use support::wait::WAIT;

/// Node ids in the rig: base58 text whose byte order is the index order
/// (`s0` < `s1` < …), so "the smaller id wins" is "the lower index wins".
fn sync_rig(n: usize, config: SyncConfig) -> Rig<SyncState> {
    Rig::with_nodes(n, |i| {
        let mesh = MeshState::new(
            PeerId::from(format!("s{i}")),
            rig_addr(i),
            MeshConfig::default(),
        );
        (mesh, SyncState::new(config.clone()))
    })
}

fn dict(rig: &Rig<SyncState>, i: usize) -> BTreeMap<SyncKey, Packet> {
    rig.node(i)
        .layer()
        .store()
        .iter()
        .map(|(k, e)| (k.clone(), (*e.value).clone()))
        .collect()
}

fn set(
    rig: &mut Rig<SyncState>,
    i: usize,
    key: &str,
    value: impl Into<Packet>,
) -> Result<(), SyncError> {
    let value = value.into();
    rig.with_layer(i, |s, ctx| s.set(ctx, key.into(), value))
}

fn assert_converged(rig: &Rig<SyncState>, n: usize) -> BTreeMap<SyncKey, Packet> {
    let first = dict(rig, 0);
    for i in 1..n {
        assert_eq!(dict(rig, i), first, "node {i} differs from node 0");
    }
    first
}

#[test]
fn concurrent_writes_from_several_nodes_converge() {
    let mut rig = sync_rig(6, SyncConfig::default()).auto_dial(true);
    for i in 1..6 {
        rig.connect(i, i - 1);
    }
    rig.settle();
    // Every node writes its own keys and one shared key, before anyone
    // hears from anyone (all in flight at once).
    for i in 0..6 {
        set(&mut rig, i, &format!("own-{i}"), i as u64).unwrap();
        set(&mut rig, i, "shared", format!("from {i}")).unwrap();
    }
    rig.settle();
    let d = assert_converged(&rig, 6);
    assert_eq!(d.len(), 7);
    // Same second, same key: the smallest id (node 0) wins everywhere.
    assert_eq!(d[&SyncKey::from("shared")], Packet::from("from 0"));
    assert_eq!(
        rig.node(3)
            .layer()
            .store()
            .get(&"shared".into())
            .unwrap()
            .meta
            .owner,
        rig.id(0)
    );
}

#[test]
fn lease_holder_keeps_its_key_until_the_lease_ends() {
    let mut rig = sync_rig(3, SyncConfig::default());
    rig.connect(1, 0);
    rig.connect(2, 1);
    rig.settle();
    set(&mut rig, 1, "k", "mine").unwrap();
    rig.settle();
    rig.advance(1_000);
    // Another node may not overwrite or delete it: a typed error, nothing sent.
    let err = set(&mut rig, 2, "k", "theirs").unwrap_err();
    assert!(matches!(err, SyncError::Leased { ref owner, .. } if *owner == rig.id(1).to_string()));
    let del = rig.with_layer(0, |s, ctx| s.delete(ctx, &"k".into()));
    assert!(matches!(del, Err(SyncError::Leased { .. })));
    assert_eq!(rig.settle(), 0, "a refused write sends nothing");
    // The holder may.
    set(&mut rig, 1, "k", "mine again").unwrap();
    rig.settle();
    assert_eq!(
        assert_converged(&rig, 3)[&SyncKey::from("k")],
        Packet::from("mine again")
    );
    // An hour later (virtual time) the lease has lapsed.
    rig.advance(LEASE_SECS * 1000 + 2_000);
    set(&mut rig, 2, "k", "theirs").unwrap();
    rig.settle();
    assert_eq!(
        assert_converged(&rig, 3)[&SyncKey::from("k")],
        Packet::from("theirs")
    );
}

#[test]
fn without_leasing_the_newer_write_wins_and_ties_go_to_the_smaller_id() {
    let cfg = SyncConfig {
        leasing: false,
        ..SyncConfig::default()
    };
    let mut rig = sync_rig(3, cfg);
    rig.connect(1, 0);
    rig.connect(2, 1);
    rig.settle();
    set(&mut rig, 2, "k", "first").unwrap();
    rig.settle();
    rig.advance(1_000);
    set(&mut rig, 0, "k", "newer").unwrap();
    rig.settle();
    assert_eq!(
        assert_converged(&rig, 3)[&SyncKey::from("k")],
        Packet::from("newer")
    );
    // Same second from two nodes: node 1 beats node 2 everywhere.
    rig.advance(1_000);
    set(&mut rig, 2, "t", "two").unwrap();
    set(&mut rig, 1, "t", "one").unwrap();
    rig.settle();
    assert_eq!(
        assert_converged(&rig, 3)[&SyncKey::from("t")],
        Packet::from("one")
    );
}

#[test]
fn a_late_joiner_catches_up_on_1000_keys() {
    let mut rig = sync_rig(3, SyncConfig::default());
    rig.connect(1, 0);
    rig.settle();
    let items: Vec<(SyncKey, Packet)> = (0..1000)
        .map(|i| (SyncKey::from(format!("key-{i:04}")), Packet::from(i as u64)))
        .collect();
    rig.with_layer(0, |s, ctx| s.update(ctx, items)).unwrap();
    rig.settle();
    rig.advance(1_000);
    let mut events = 0;
    rig.connect(2, 1);
    rig.settle();
    events += rig.with_layer(2, |s, _| s.take_events().len());
    let d = assert_converged(&rig, 3);
    assert_eq!(d.len(), 1000);
    assert_eq!(events, 1000, "one update event per caught-up key");
    // Catch-up keeps the original owner and time.
    let entry = rig
        .node(2)
        .layer()
        .store()
        .get(&"key-0007".into())
        .cloned()
        .unwrap();
    assert_eq!(entry.meta.owner, rig.id(0));
    assert_eq!(entry.meta.time, rig.now_ms() / 1000 - 1);
}

#[test]
fn a_large_catch_up_goes_on_as_the_send_queue_drains() {
    // 12,000 entries of about 300 bytes: several bursts (256 KiB each).
    let mut rig = sync_rig(2, SyncConfig::default());
    let value = Packet::bin(vec![0x5a; 200]);
    let items: Vec<(SyncKey, Packet)> = (0..12_000)
        .map(|i| (SyncKey::from(format!("key-{i:05}")), value.clone()))
        .collect();
    rig.with_layer(0, |s, ctx| s.update(ctx, items)).unwrap();
    let (_, at_0) = rig.connect(1, 0);
    rig.settle();
    let mut held = vec![dict(&rig, 1).len()];
    assert!(held[0] > 0 && held[0] < 12_000, "one burst first: {held:?}");
    // No tick: each drained queue brings the next burst.
    while held.last() != Some(&12_000) {
        assert!(held.len() < 40, "stuck: {held:?}");
        rig.writable(at_0);
        rig.settle();
        held.push(dict(&rig, 1).len());
        assert!(held[held.len() - 1] > held[held.len() - 2], "{held:?}");
    }
    assert_converged(&rig, 2);
    // Once it is done, a drained queue sends nothing more.
    rig.writable(at_0);
    assert_eq!(rig.settle(), 0);
}

#[test]
fn deltas_merge_maps_and_deletes_remove_everywhere() {
    let mut rig = sync_rig(4, SyncConfig::default());
    for i in 1..4 {
        rig.connect(i, i - 1);
    }
    rig.settle();
    let delta = |pairs: &[(&str, u64)]| {
        Packet::Map(
            pairs
                .iter()
                .map(|(k, v)| (Packet::from(*k), Packet::from(*v)))
                .collect(),
        )
    };
    let merged = rig
        .with_layer(0, |s, ctx| {
            s.apply_delta(ctx, "m".into(), delta(&[("a", 1), ("b", 2)]))
        })
        .unwrap();
    assert_eq!(*merged, delta(&[("a", 1), ("b", 2)]));
    rig.with_layer(0, |s, ctx| {
        s.apply_delta(ctx, "m".into(), delta(&[("b", 3), ("c", 4)]))
    })
    .unwrap();
    set(&mut rig, 0, "gone", "soon").unwrap();
    rig.settle();
    assert_eq!(
        assert_converged(&rig, 4)[&SyncKey::from("m")],
        delta(&[("a", 1), ("b", 3), ("c", 4)])
    );
    // A delta onto a value that is not a map is a typed local error.
    set(&mut rig, 0, "n", 5u64).unwrap();
    let err = rig.with_layer(0, |s, ctx| {
        s.apply_delta(ctx, "n".into(), delta(&[("x", 1)]))
    });
    assert!(matches!(err, Err(SyncError::NotAMap(_))));
    let removed = rig
        .with_layer(0, |s, ctx| s.delete(ctx, &"gone".into()))
        .unwrap();
    assert_eq!(removed.as_deref(), Some(&Packet::from("soon")));
    // Deleting what is not there: nothing sent.
    assert_eq!(
        rig.with_layer(0, |s, ctx| s.delete(ctx, &"never".into()))
            .unwrap(),
        None
    );
    rig.settle();
    let d = assert_converged(&rig, 4);
    assert!(!d.contains_key(&SyncKey::from("gone")));
    let deleted = rig
        .with_layer(3, |s, _| s.take_events())
        .into_iter()
        .filter(|e| matches!(e, SyncEvent::Deleted { key } if *key == SyncKey::from("gone")))
        .count();
    assert_eq!(deleted, 1);
}

#[test]
fn odd_writes_from_a_peer_cost_it_nothing_but_a_count() {
    let mut rig = sync_rig(2, SyncConfig::default());
    rig.connect(1, 0);
    rig.settle();
    // Node 1's own key, so its delta passes the lease and meets a number.
    set(&mut rig, 1, "n", 5u64).unwrap();
    rig.settle();
    let store = SubFlag::Store.as_u8();
    let delta_flag = SubFlag::Delta.as_u8();
    rig.with_layer(1, |_, ctx| {
        // A delete of a key nobody holds (py2p raises on it).
        ctx.broadcast(store, vec![Packet::bin(&b"unknown"[..]), Packet::Nil])
            .unwrap();
        // A delta onto a number (py2p raises), and a delta that is no map.
        ctx.broadcast(
            delta_flag,
            vec![Packet::bin(&b"n"[..]), Packet::Map(vec![])],
        )
        .unwrap();
        ctx.broadcast(delta_flag, vec![Packet::bin(&b"x"[..]), 3u64.into()])
            .unwrap();
        // Malformed: no key, a key that is a number, too many packets.
        ctx.broadcast(store, vec![]).unwrap();
        ctx.broadcast(store, vec![1u64.into(), 2u64.into()])
            .unwrap();
        ctx.broadcast(store, vec!["k".into(), 1u64.into(), 2u64.into()])
            .unwrap();
        // A str key next to the bin one with the same bytes: two keys.
        ctx.broadcast(store, vec!["n".into(), "str key".into()])
            .unwrap();
    });
    rig.settle();
    assert!(rig.is_peer(0, 1), "no write costs the link");
    let stats = rig.node(0).layer().stats();
    assert_eq!(stats.unknown_deletes, 1);
    assert_eq!(stats.bad_deltas, 2);
    assert_eq!(stats.malformed, 3);
    let d = dict(&rig, 0);
    assert_eq!(d[&SyncKey::from("n")], Packet::from(5u64));
    assert_eq!(d[&SyncKey::text("n")], Packet::from("str key"));
}

#[test]
fn owners_of_either_form_are_one_owner() {
    // A catch-up entry names its owner as bin (py2p) for a key a str
    // write (js2p, rs2p) then updates: same bytes, same owner, no error.
    let mut rig = sync_rig(2, SyncConfig::default());
    rig.connect(1, 0);
    rig.settle();
    let now = rig.now_ms() / 1000;
    let owner = rig.id(1);
    rig.with_layer(1, |_, ctx| {
        let conn = ctx.mesh().peers()[0].conn;
        ctx.whisper(
            conn,
            SubFlag::Store.as_u8(),
            vec![
                Packet::bin(&b"k"[..]),
                "v1".into(),
                Packet::bin(owner.bytes().clone()),
                now.into(),
            ],
        )
        .unwrap();
    });
    rig.settle();
    assert_eq!(dict(&rig, 0)[&SyncKey::from("k")], Packet::from("v1"));
    set(&mut rig, 1, "k", "v2").unwrap();
    rig.settle();
    assert_eq!(dict(&rig, 0)[&SyncKey::from("k")], Packet::from("v2"));
    assert_eq!(rig.node(0).layer().stats().leased, 0);
}

#[test]
fn bounds_refuse_local_writes_and_drop_remote_ones() {
    let small = SyncConfig {
        max_keys: 3,
        max_value_len: 64,
        ..SyncConfig::default()
    };
    let mut rig = Rig::with_nodes(2, |i| {
        let cfg = if i == 0 {
            small.clone()
        } else {
            SyncConfig::default()
        };
        let mesh = MeshState::new(
            PeerId::from(format!("b{i}")),
            rig_addr(i),
            MeshConfig::default(),
        );
        (mesh, SyncState::new(cfg))
    });
    rig.connect(1, 0);
    rig.settle();
    let big = Packet::bin(vec![0u8; 100]);
    assert!(matches!(
        rig.with_layer(0, |s, ctx| s.set(ctx, "big".into(), big.clone())),
        Err(SyncError::ValueTooLarge { max: 64, .. })
    ));
    for i in 0..3 {
        set(&mut rig, 0, &format!("k{i}"), i as u64).unwrap();
    }
    assert!(matches!(
        set(&mut rig, 0, "k3", 3u64),
        Err(SyncError::TooManyKeys { max: 3 })
    ));
    // An update past the bound stores nothing at all.
    let many = vec![("k0".into(), 9u64.into()), ("k9".into(), 9u64.into())];
    assert!(rig.with_layer(0, |s, ctx| s.update(ctx, many)).is_err());
    assert_eq!(dict(&rig, 0)[&SyncKey::from("k0")], Packet::from(0u64));
    rig.settle();
    // Node 1 has no such bounds; what it sends past node 0's is dropped.
    set(&mut rig, 1, "big", big).unwrap();
    set(&mut rig, 1, "k4", 4u64).unwrap();
    rig.settle();
    assert!(rig.is_peer(0, 1));
    assert_eq!(dict(&rig, 0).len(), 3);
    assert_eq!(rig.node(0).layer().stats().over_bounds, 2);
    assert_eq!(dict(&rig, 1).len(), 5);
}

// ----- real nodes over sockets --------------------------------------------

async fn sync_nodes(n: usize) -> Vec<SyncSocket> {
    let mut nodes = Vec::new();
    for _ in 0..n {
        let node = SyncSocket::builder()
            .subnet("synctest")
            .mesh(|m| m.max_outgoing(2))
            .bind("127.0.0.1:0")
            .await
            .unwrap();
        if let Some(prev) = nodes.last() {
            let prev: &SyncSocket = prev;
            node.mesh()
                .connect("127.0.0.1", prev.mesh().addr().port(), None)
                .await
                .unwrap();
        }
        nodes.push(node);
    }
    nodes
}

async fn wait_value(node: &SyncSocket, key: &str, value: &Packet) {
    let want = value.clone();
    node.wait_for(key, move |v| v == Some(&want), WAIT)
        .await
        .unwrap_or_else(|e| panic!("{key}: {e}; has {:?}", node.get(key)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_real_nodes_converge_and_a_restarted_node_catches_up() {
    let nodes = sync_nodes(6).await;
    // Concurrent writes from four nodes.
    let writes = nodes
        .iter()
        .take(4)
        .enumerate()
        .map(|(i, node)| async move {
            for k in 0..25u64 {
                node.set(format!("n{i}-{k}"), k).await.unwrap();
            }
            node.apply_delta(
                "tally",
                Packet::Map(vec![(format!("n{i}").into(), 1u64.into())]),
            )
            .await
        });
    let results = futures_util::future::join_all(writes).await;
    // Deltas from several nodes onto one key: the first applies, the
    // others are leased to its writer, as the references decide.
    assert!(results.iter().filter(|r| r.is_ok()).count() >= 1);
    for node in &nodes {
        for i in 0..4 {
            wait_value(node, &format!("n{i}-24"), &24u64.into()).await;
        }
    }
    // Deletes propagate.
    nodes[2].delete("n2-0").await.unwrap();
    for node in &nodes {
        node.wait_for("n2-0", |v| v.is_none(), WAIT).await.unwrap();
    }
    // Every node holds the same dictionary.
    let first = nodes[0].snapshot();
    for node in &nodes[1..] {
        let mut other = node.snapshot();
        // Wait out in-flight tally writes, if any, by comparing keys.
        if other.len() != first.len() {
            node.wait_for("tally", |_| true, WAIT).await.unwrap();
            other = node.snapshot();
        }
        assert_eq!(
            other.keys().collect::<Vec<_>>(),
            first.keys().collect::<Vec<_>>()
        );
    }
    // A node restarts: closed, and a new one (new id) on the same port
    // joins through node 0 and catches up on everything.
    let port = nodes[5].mesh().addr().port();
    nodes[5].close().await;
    let again = SyncSocket::builder()
        .subnet("synctest")
        .bind(&format!("127.0.0.1:{port}"))
        .await
        .unwrap();
    again
        .mesh()
        .connect("127.0.0.1", nodes[0].mesh().addr().port(), None)
        .await
        .unwrap();
    let expect = nodes[0].len();
    let probe = nodes[0].keys().pop().unwrap();
    again.wait_for(probe, |v| v.is_some(), WAIT).await.unwrap();
    tokio::time::timeout(WAIT, async {
        while again.len() < expect {
            let mut ev = again.events();
            let _ = tokio::time::timeout(Duration::from_millis(200), ev.recv()).await;
        }
    })
    .await
    .expect("the restarted node catches up");
    assert_eq!(again.len(), expect);
    // The lease is enforced over sockets too. The holder has the smallest
    // id of the five, so not even a write in the same second may take the
    // key from it (the tie goes to the smaller id).
    let holder = (0..5)
        .min_by_key(|&i| nodes[i].mesh().id().clone())
        .unwrap();
    let other = (holder + 1) % 5;
    nodes[holder].set("leased", "held").await.unwrap();
    wait_value(&nodes[other], "leased", &"held".into()).await;
    let refused = nodes[other].set("leased", 99u64).await;
    assert!(
        matches!(refused, Err(Error::Sync(SyncError::Leased { .. }))),
        "{refused:?}"
    );
    for node in nodes.iter().take(5) {
        node.close().await;
    }
    again.close().await;
}

#[tokio::test]
async fn events_and_reads_through_the_handle() {
    let nodes = sync_nodes(2).await;
    let mut events = nodes[1].events();
    nodes[0].set("k", "v").await.unwrap();
    let ev = tokio::time::timeout(WAIT, events.recv())
        .await
        .unwrap()
        .unwrap();
    match ev {
        SyncEvent::Updated {
            key,
            value,
            owner,
            time,
        } => {
            assert_eq!(key, SyncKey::from("k"));
            assert_eq!(value, Arc::new(Packet::from("v")));
            assert_eq!(&owner, nodes[0].mesh().id());
            assert!(time > 1_700_000_000);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(nodes[1].get("k"), Some(Packet::from("v")));
    assert_eq!(
        nodes[1].owner("k").map(|o| o.0),
        Some(nodes[0].mesh().id().clone())
    );
    assert_eq!(nodes[1].keys(), vec![SyncKey::from("k")]);
    assert_eq!(nodes[1].values(), vec![Packet::from("v")]);
    assert_eq!(nodes[1].iter().count(), 1);
    assert!(!nodes[1].is_empty());
    // The mesh underneath is an alert network too.
    nodes[0].mesh().send(rs2p::packets!["alert"]).await.unwrap();
    let msg = tokio::time::timeout(WAIT, nodes[1].mesh().next_message())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(msg.packets()[0].as_str(), Some("alert"));
    // A wait that cannot succeed ends with a timeout.
    let r = nodes[1]
        .wait_for("never", |v| v.is_some(), Duration::from_millis(100))
        .await;
    assert!(matches!(r, Err(Error::Timeout(_))));
    for n in nodes {
        n.close().await;
    }
}
