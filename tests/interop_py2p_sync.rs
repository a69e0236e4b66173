//! rs2p's `SyncSocket` with real py2p 0.7.878 `SyncSocket` nodes
//! (tests/py2p/sync_peer.py) in one network: writes, catch-up, deletes and
//! deltas in both directions, and both sides taking the same lease
//! decisions, with leasing on and off.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rs2p::protocol::sync::{SyncError, SyncKey};
use rs2p::protocol::Packet;
use rs2p::sync::SyncSocket;
use rs2p::Error;
use serde_json::{json, Value};
use support::process::NodeProcess;
use support::wait::WAIT;

/// The JSON form of a bin key as sync_peer.py prints it.
fn bin_key(key: &str) -> Value {
    json!({ "$bin": key.bytes().map(|b| format!("{b:02x}")).collect::<String>() })
}

async fn rs_sync(leasing: bool) -> SyncSocket {
    SyncSocket::builder()
        .leasing(leasing)
        .bind("127.0.0.1:0")
        .await
        .unwrap()
}

async fn wait_value(node: &SyncSocket, key: &str, want: Packet) {
    let w = want.clone();
    node.wait_for(key, move |v| v == Some(&w), WAIT)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "rs2p never had {key} = {want:?}: {e}; has {:?}",
                node.get(key)
            )
        });
}

/// Waits for py2p's `updated` event for `key` with `value`.
fn wait_updated(p: &mut NodeProcess, key: &str, value: Value) -> Value {
    let k = bin_key(key);
    p.wait_for(&format!("updated {key}"), move |v| {
        v["event"] == "updated" && v["key"] == k && v["value"] == value
    })
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Waits (at most two seconds) until the wall clock has passed `secs` by
/// a margin, so the next write carries a later timestamp than one made at
/// `secs`. The margin is for py2p: it stamps writes with `gmtime()`, a
/// coarse clock that can still show the old second for a few milliseconds
/// after the precise clock has moved on (seen here: up to about 4 ms).
async fn next_second(secs: u64) {
    let past = Duration::from_secs(secs + 1) + Duration::from_millis(50);
    tokio::time::timeout(Duration::from_secs(2), async {
        while now() < past {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the clock moves");
}

fn now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_catch_up_deletes_deltas_and_leases_with_py2p() {
    let mut p = NodeProcess::py2p_sync("py2p-sync", "sync", true);
    let r = rs_sync(true).await;

    // Before they meet: each holds keys of its own, 100 on the py2p side.
    for i in 0..100 {
        p.op(json!({"op": "set", "key": format!("py-{i:03}"), "value": i}));
    }
    wait_updated(&mut p, "py-099", json!(99));
    r.set("rs-before", "from rs2p").await.unwrap();
    r.set("rs-bin", Packet::bin(&b"\x00\x01"[..]))
        .await
        .unwrap();

    // They meet: catch-up both ways.
    r.mesh().connect("127.0.0.1", p.port, None).await.unwrap();
    wait_value(&r, "py-099", 99u64.into()).await;
    wait_value(&r, "py-000", 0u64.into()).await;
    assert_eq!(r.len(), 102);
    wait_updated(&mut p, "rs-before", json!("from rs2p"));
    wait_updated(&mut p, "rs-bin", json!({"$bin": "0001"}));
    // Catch-up kept the py2p owner; py2p's entries came with its bin id.
    let (owner, _) = r.owner("py-042").unwrap();
    assert_eq!(owner.to_string(), p.id);

    // Live writes both ways.
    p.op(json!({"op": "set", "key": "py-live", "value": {"n": 1, "s": "x"}}));
    wait_value(
        &r,
        "py-live",
        Packet::Map(vec![("n".into(), 1u64.into()), ("s".into(), "x".into())]),
    )
    .await;
    r.set("rs-live", 7u64).await.unwrap();
    wait_updated(&mut p, "rs-live", json!(7));

    // Deltas both ways (onto new keys: an absent key is an empty map).
    r.apply_delta("rs-map", Packet::Map(vec![("a".into(), 1u64.into())]))
        .await
        .unwrap();
    wait_updated(&mut p, "rs-map", json!({"a": 1}));
    r.apply_delta("rs-map", Packet::Map(vec![("b".into(), 2u64.into())]))
        .await
        .unwrap();
    wait_updated(&mut p, "rs-map", json!({"a": 1, "b": 2}));
    p.op(json!({"op": "delta", "key": "py-map", "map": {"c": 3}}));
    wait_value(&r, "py-map", Packet::Map(vec![("c".into(), 3u64.into())])).await;

    // Deletes both ways.
    p.op(json!({"op": "delete", "key": "py-live"}));
    r.wait_for("py-live", |v| v.is_none(), WAIT).await.unwrap();
    assert_eq!(r.delete("rs-live").await.unwrap(), Some(7u64.into()));
    let k = bin_key("rs-live");
    p.wait_for("deleted rs-live", move |v| {
        v["event"] == "deleted" && v["key"] == k
    });

    // Leases: neither may take the other's key, and both agree. (A write
    // in the same second as the lease holder's falls under the tie rule
    // instead; wait the second out.)
    next_second(now_secs()).await;
    let refused = r.set("py-001", "taken").await;
    assert!(
        matches!(refused, Err(Error::Sync(SyncError::Leased { .. }))),
        "{refused:?}"
    );
    p.op(json!({"op": "set", "key": "rs-before", "value": "taken", "tag": "steal"}));
    let err = p.wait_for("py2p refuses", |v| {
        v["event"] == "error" && v["tag"] == "steal"
    });
    assert!(
        err["error"].as_str().unwrap_or("").contains("permission"),
        "{err}"
    );
    p.op(json!({"op": "get", "key": "rs-before", "tag": "g"}));
    let got = p.wait_for("value", |v| v["event"] == "value" && v["tag"] == "g");
    assert_eq!(got["value"], json!("from rs2p"));
    assert_eq!(r.get("py-001"), Some(1u64.into()));

    // Nothing rs2p sent made py2p drop the connection.
    assert_eq!(r.mesh().routing_table().await.unwrap().len(), 1);
    assert!(r.stats().await.unwrap().malformed == 0);
    r.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_leasing_the_later_write_wins_on_both_sides() {
    let mut p = NodeProcess::py2p_sync("py2p-sync0", "sync", false);
    let r = rs_sync(false).await;
    assert_eq!(r.mesh().protocol().subnet(), "sync0");
    r.mesh().connect("127.0.0.1", p.port, None).await.unwrap();

    r.set("k", "rs2p first").await.unwrap();
    let first = now_secs();
    wait_updated(&mut p, "k", json!("rs2p first"));
    next_second(first).await;
    p.op(json!({"op": "set", "key": "k", "value": "py2p later"}));
    wait_value(&r, "k", "py2p later".into()).await;
    let (owner, time) = r.owner("k").unwrap();
    assert_eq!(owner.to_string(), p.id);
    next_second(time).await;
    r.set("k", "rs2p last").await.unwrap();
    wait_updated(&mut p, "k", json!("rs2p last"));
    // Deltas from both sides onto one map merge (leasing off lets them).
    p.op(json!({"op": "delta", "key": "m", "map": {"p": 1}}));
    wait_value(&r, "m", Packet::Map(vec![("p".into(), 1u64.into())])).await;
    r.apply_delta("m", Packet::Map(vec![("r".into(), 2u64.into())]))
        .await
        .unwrap();
    wait_updated(&mut p, "m", json!({"p": 1, "r": 2}));
    r.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leasing_settings_are_separate_networks() {
    let p = NodeProcess::py2p_sync("py2p-sync0", "sync", false);
    let r = rs_sync(true).await;
    let e = r.mesh().connect("127.0.0.1", p.port, None).await;
    assert!(
        matches!(e, Err(Error::SubnetMismatch { .. }) | Err(Error::Closed(_))),
        "{e:?}"
    );
    assert!(r.mesh().routing_table().await.unwrap().is_empty());
    // A str key is a key of its own on rs2p (py2p would turn it into bytes).
    r.set(SyncKey::text("k"), 1u64).await.unwrap();
    r.set("k", 2u64).await.unwrap();
    assert_eq!(r.len(), 2);
    r.close().await;
}
