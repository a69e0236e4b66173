//! rs2p's `SyncSocket` with real js2p 0.7.870 `SyncSocket` nodes
//! (`tests/js2p/peer.js --module=sync`, each in its own Node.js process),
//! over real loopback sockets; rs2p nodes are in-process. What works in
//! both directions (sets, deltas, catch-up, both dialling directions), the
//! lease decisions of each side, what js2p gets wrong and that rs2p
//! survives it, and a mixed network py2p – rs2p – js2p.
//!
//! What js2p does that shapes these tests (read `js_src/sync.js`):
//! - its catch-up sends keys as msgpack **str** (its data is a JS object;
//!   keys are property names), while its sets and deltas send them as bin;
//! - its `leasing` is undefined unless passed: it joins `sync1` but its
//!   lease rule then acts as if leasing were off;
//! - its `del` always throws (`null.toString()`, sync.js:118), and so does
//!   a remote delete that passes its lease check: it then drops the
//!   connection the delete came on;
//! - it applies deltas onto anything that is a JS object (arrays, Buffers);
//! - it stamps writes with `Math.floor(Date.now() / 1000)`.
//!
//! Needs `RS2P_JS2P_DIR` (and `RS2P_PYTHON` for the mixed network).

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rs2p::protocol::sync::{SyncError, SyncKey, SyncStats};
use rs2p::protocol::Packet;
use rs2p::sync::SyncSocket;
use rs2p::{Error, Event};
use serde_json::{json, Value};
use support::mesh::{wait_event, wait_peer};
use support::process::NodeProcess;
use support::wait::{wait_until, WAIT};

/// The JSON form of a bin key (or value) as the drivers print it.
fn bin_key(key: &str) -> Value {
    json!({ "$bin": support::hex(key.as_bytes()) })
}

/// A js2p sync node on subnet `sync` with leasing left undefined, as a
/// user who does not pass it (it joins `sync1`).
fn js(name: &str) -> NodeProcess {
    NodeProcess::js2p_sync(name, "sync", None)
}

/// An rs2p sync node (leasing on, so `sync1`) that neither dials from peer
/// lists nor redials lost peers: the topologies stay as built.
async fn rs() -> SyncSocket {
    rs_leasing(true).await
}

async fn rs_leasing(leasing: bool) -> SyncSocket {
    SyncSocket::builder()
        .leasing(leasing)
        .mesh(|m| m.max_outgoing(0).reconnect(false))
        .bind("127.0.0.1:0")
        .await
        .unwrap()
}

/// Who dials.
#[derive(Clone, Copy, Debug)]
enum Dial {
    RsToJs,
    JsToRs,
}

/// Links `r` and `j`; returns once both list each other.
async fn link(r: &SyncSocket, j: &mut NodeProcess, dial: Dial) {
    match dial {
        Dial::RsToJs => {
            let id = r.mesh().connect("127.0.0.1", j.port, None).await.unwrap();
            assert_eq!(id.to_string(), j.id);
        }
        Dial::JsToRs => {
            j.connect_force(r.mesh().addr().port());
            wait_peer(r.mesh(), &j.peer_id(), "js2p dials rs2p").await;
        }
    }
    wait_js_lists(j, r);
}

/// Waits until js2p's routing table holds `r` (a js2p node answers a dial
/// with its handshake before it has read the dialler's, so the dialler's
/// `connect` may return before js2p would forward anything to it).
fn wait_js_lists(j: &mut NodeProcess, r: &SyncSocket) {
    let id = r.mesh().id().to_string();
    let deadline = std::time::Instant::now() + WAIT;
    while !j.peers().contains(&id) {
        assert!(
            std::time::Instant::now() < deadline,
            "js2p never listed {id}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

async fn wait_value(node: &SyncSocket, key: impl Into<SyncKey>, want: Packet) {
    let key = key.into();
    let w = want.clone();
    node.wait_for(key.clone(), move |v| v == Some(&w), WAIT)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "rs2p never had {key:?} = {want:?}: {e}; has {:?}",
                node.get(key.clone())
            )
        });
}

/// Takes js2p's next `updated` event for `key` (JSON, as the driver prints
/// it: `{"$bin":…}` or a string) with `value`.
fn wait_js_updated(j: &mut NodeProcess, key: Value, value: Value) -> Value {
    j.wait_for(&format!("js2p updated {key} = {value}"), move |v| {
        v["event"] == "updated" && v["key"] == key && v["value"] == value
    })
}

/// js2p's answer to `get`: what its data holds (`found`, `value`) and what
/// its own `get()` returns (`get_found`, `get`).
fn js_get(j: &mut NodeProcess, key: &str) -> Value {
    let tag = format!("get {key} {}", j.mark());
    j.op(json!({"op": "get", "key": key, "tag": tag}));
    j.wait_for("js2p value", move |v| {
        v["event"] == "value" && v["tag"] == tag
    })
}

/// js2p's whole data object: `{"key","value","owner","owner_type","time","listed"}`.
fn js_entries(j: &mut NodeProcess) -> Vec<Value> {
    let tag = format!("keys {}", j.mark());
    j.op(json!({"op": "keys", "tag": tag}));
    let v = j.wait_for("js2p keys", move |v| {
        v["event"] == "keys" && v["tag"] == tag
    });
    v["entries"].as_array().cloned().unwrap_or_default()
}

/// Sends a js2p op that must fail; returns its error event.
fn js_refused(j: &mut NodeProcess, op: Value) -> Value {
    let tag = format!("refused {}", j.mark());
    let mut op = op;
    op["tag"] = json!(tag);
    j.op(op);
    j.wait_for("js2p refuses the op", move |v| {
        v["event"] == "error" && v["tag"] == tag
    })
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Waits (at most three seconds) until the wall clock is 50 ms into the
/// second after `secs`, so the next write of either side carries a later
/// timestamp than one made at `secs` (a write in the same second falls
/// under the lease rule's tie-break instead). js2p stamps with
/// `Math.floor(Date.now() / 1000)`, rs2p with the system clock; the margin
/// is the one interop_py2p_sync.rs needs for py2p's coarse clock.
async fn next_second(secs: u64) {
    let target = Duration::from_secs(secs + 1) + Duration::from_millis(50);
    tokio::time::timeout(Duration::from_secs(3), async {
        while SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            < target
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the clock moves");
}

/// Waits until rs2p's refused-write counters are `want`.
async fn wait_stats(r: &SyncSocket, what: &str, want: SyncStats) {
    wait_until(what, WAIT, || async {
        let got = r.stats().await.unwrap();
        if got == want {
            Ok(())
        } else {
            Err(format!("{got:?}"))
        }
    })
    .await;
}

fn map(pairs: &[(&str, u64)]) -> Packet {
    Packet::Map(
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect(),
    )
}

/// Sets, deltas and catch-up in both directions, with `dial` making the
/// link.
async fn exchange(dial: Dial) {
    let mut j = js("js2p-sync");
    let r = rs().await;
    let rid = r.mesh().id().to_string();

    // Before they meet, each holds keys of its own.
    j.op(json!({"op": "set", "key": "js-before", "value": "from js2p"}));
    let before = wait_js_updated(&mut j, bin_key("js-before"), json!("from js2p"));
    j.op(json!({"op": "set", "key": "js-obj", "value": {"a": [1, 2]}}));
    wait_js_updated(&mut j, bin_key("js-obj"), json!({"a": [1, 2]}));
    r.set("rs-before", "from rs2p").await.unwrap();
    r.set("rs-bin", Packet::bin(&b"\x00\x01"[..]))
        .await
        .unwrap();

    link(&r, &mut j, dial).await;

    // js2p's catch-up: its keys arrive as msgpack str (sync.js iterates
    // the property names of its data object), with js2p's owner and time.
    wait_value(&r, SyncKey::text("js-before"), "from js2p".into()).await;
    wait_value(
        &r,
        SyncKey::text("js-obj"),
        Packet::Map(vec![(
            "a".into(),
            Packet::Array(vec![1u64.into(), 2u64.into()]),
        )]),
    )
    .await;
    assert_eq!(r.get("js-before"), None, "no bin key from a catch-up");
    let (owner, time) = r.owner(SyncKey::text("js-before")).unwrap();
    assert_eq!(owner.to_string(), j.id);
    assert_eq!(Some(time), before["time"].as_u64());
    // rs2p's catch-up: bin keys, which js2p takes as Buffers; owner rs2p.
    let u = wait_js_updated(&mut j, bin_key("rs-before"), json!("from rs2p"));
    assert_eq!(
        (u["owner"].as_str(), u["local"].as_bool()),
        (Some(&*rid), Some(false))
    );
    assert_eq!(
        u["owner_type"], "bin",
        "rs2p sync nodes send their id as bin"
    );
    wait_js_updated(&mut j, bin_key("rs-bin"), json!({"$bin": "0001"}));

    // Live sets both ways.
    j.op(json!({"op": "set", "key": "js-live", "value": {"n": 1, "s": "x"}}));
    wait_value(
        &r,
        "js-live",
        Packet::Map(vec![("n".into(), 1u64.into()), ("s".into(), "x".into())]),
    )
    .await;
    assert_eq!(r.owner("js-live").unwrap().0.to_string(), j.id);
    r.set("rs-live", 7u64).await.unwrap();
    let u = wait_js_updated(&mut j, bin_key("rs-live"), json!(7));
    assert_eq!(u["owner"].as_str(), Some(&*rid));
    j.op(json!({"op": "update", "map": {"u1": 1, "u2": "two"}}));
    wait_value(&r, "u1", 1u64.into()).await;
    wait_value(&r, "u2", "two".into()).await;

    // Deltas both ways, onto new keys (an absent key is an empty map) and
    // onto maps.
    r.apply_delta("rs-map", map(&[("a", 1)])).await.unwrap();
    wait_js_updated(&mut j, bin_key("rs-map"), json!({"a": 1}));
    r.apply_delta("rs-map", map(&[("b", 2)])).await.unwrap();
    wait_js_updated(&mut j, bin_key("rs-map"), json!({"a": 1, "b": 2}));
    j.op(json!({"op": "delta", "key": "js-map", "map": {"c": 3}}));
    wait_value(&r, "js-map", map(&[("c", 3)])).await;
    j.op(json!({"op": "delta", "key": "js-map", "map": {"d": 4, "c": 5}}));
    wait_value(&r, "js-map", map(&[("c", 5), ("d", 4)])).await;

    // js2p's whole dictionary: one entry per key, rs2p's with rs2p's id.
    let entries = js_entries(&mut j);
    let keys: Vec<&str> = entries.iter().filter_map(|e| e["key"].as_str()).collect();
    for k in [
        "js-before",
        "js-obj",
        "rs-before",
        "rs-bin",
        "js-live",
        "rs-live",
    ] {
        assert!(keys.contains(&k), "js2p lacks {k}: {entries:?}");
    }
    for k in ["u1", "u2", "rs-map", "js-map"] {
        assert!(keys.contains(&k), "js2p lacks {k}: {entries:?}");
    }
    assert_eq!(entries.len(), 10, "{entries:?}");
    let rs_live = entries.iter().find(|e| e["key"] == "rs-live").unwrap();
    assert_eq!(rs_live["owner"].as_str(), Some(&*rid));

    // rs2p holds the same ten: js2p's two from before as str, the rest bin.
    assert_eq!(r.len(), 10, "{:?}", r.keys());
    assert_eq!(
        r.keys()
            .iter()
            .filter(|k| matches!(k, SyncKey::Str(_)))
            .count(),
        2
    );
    // Nothing was refused, nothing broke the link.
    assert_eq!(r.stats().await.unwrap(), SyncStats::default());
    assert_eq!(r.mesh().routing_table().await.unwrap().len(), 1);
    assert!(j.js2p_errors().is_empty(), "{:?}", j.js2p_errors());
    r.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sets_deltas_and_catch_up_both_ways_rs2p_dials() {
    exchange(Dial::RsToJs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sets_deltas_and_catch_up_both_ways_js2p_dials() {
    exchange(Dial::JsToRs).await;
}

/// js2p's catch-up sends every key as str, its sets as bin: an rs2p node
/// that already holds a key js2p set (bin) gets its str twin when js2p
/// catches it up again. rs2p keeps bin and str keys apart (as on the wire,
/// and as py2p), so the key is then there twice, and js2p's later writes
/// (bin) reach only one of the two: the str twin goes stale. js2p's fault:
/// it changes a key's type between its two ways of sending it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js2p_catch_up_str_keys_sit_beside_its_bin_keys_on_rs2p() {
    let mut j = js("js2p-sync");
    let r = rs().await;
    // A map js2p holds before rs2p joins comes as str in the catch-up; a
    // delta js2p then applies to it comes as bin, onto no key rs2p holds:
    // rs2p's bin key gets the delta alone.
    j.op(json!({"op": "set", "key": "m", "value": {"a": 1}}));
    wait_js_updated(&mut j, bin_key("m"), json!({"a": 1}));
    link(&r, &mut j, Dial::RsToJs).await;
    wait_value(&r, SyncKey::text("m"), map(&[("a", 1)])).await;
    j.op(json!({"op": "delta", "key": "m", "map": {"b": 2}}));
    wait_js_updated(&mut j, bin_key("m"), json!({"a": 1, "b": 2}));
    wait_value(&r, "m", map(&[("b", 2)])).await;
    assert_eq!(r.get(SyncKey::text("m")), Some(map(&[("a", 1)])));

    j.op(json!({"op": "set", "key": "k", "value": "v1"}));
    wait_value(&r, "k", "v1".into()).await;
    assert_eq!(r.len(), 3);

    // rs2p leaves and comes back: js2p's catch-up sends "k" as str.
    let mut events = r.mesh().events();
    assert!(r.mesh().disconnect(&j.peer_id()).await.unwrap());
    wait_event(
        &mut events,
        WAIT,
        "js2p leaves",
        |e| matches!(e, Event::PeerLeft(id) if id.to_string() == j.id),
    )
    .await;
    j.wait_for("js2p sees the link close", |v| v["event"] == "closed");
    link(&r, &mut j, Dial::RsToJs).await;
    wait_value(&r, SyncKey::text("k"), "v1".into()).await;
    assert_eq!(
        r.keys(),
        vec![
            SyncKey::from("k"),
            SyncKey::from("m"),
            SyncKey::text("k"),
            SyncKey::text("m"),
        ]
    );
    assert_eq!(r.owner("k"), r.owner(SyncKey::text("k")));
    // (The str "m" came again and was skipped: rs2p holds it.)
    assert_eq!(
        r.stats().await.unwrap(),
        SyncStats {
            catch_up_skipped: 1,
            ..SyncStats::default()
        }
    );

    // js2p writes "k" again, as bin: the bin key follows, the str twin
    // keeps the old value.
    j.op(json!({"op": "set", "key": "k", "value": "v2"}));
    wait_value(&r, "k", "v2".into()).await;
    assert_eq!(r.get(SyncKey::text("k")), Some("v1".into()));

    // js2p itself holds one "k" (bin and str keys are one property name
    // there); rs2p's catch-up sent it both twins and js2p skipped both (it
    // skips a catch-up entry for a key holding a truthy value).
    let entries = js_entries(&mut j);
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert_eq!(
        (&entries[1]["key"], &entries[1]["value"]),
        (&json!("k"), &json!("v2"))
    );
    let updates = j
        .lines()
        .iter()
        .filter(|l| l.value["event"] == "updated" && l.value["local"] == false)
        .count();
    assert_eq!(updates, 0, "js2p took a catch-up entry from rs2p");
    r.close().await;
}

/// js2p with its default (undefined) leasing against rs2p with leasing on:
/// rs2p never lets js2p take an rs2p-owned key, js2p lets rs2p take one it
/// holds as its own, and rs2p's own rule holds on rs2p.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_decisions_with_js2p_default_leasing() {
    let mut j = js("js2p-default-leasing");
    let ready = j.lines()[0].value.clone();
    assert_eq!(
        (&ready["subnet"], &ready["leasing"]),
        (&json!("sync1"), &Value::Null)
    );
    let r = rs().await;
    let rid = r.mesh().id().to_string();
    link(&r, &mut j, Dial::JsToRs).await;

    r.set("rs-key", "rs1").await.unwrap();
    wait_js_updated(&mut j, bin_key("rs-key"), json!("rs1"));
    r.apply_delta("rs-map", map(&[("a", 1)])).await.unwrap();
    wait_js_updated(&mut j, bin_key("rs-map"), json!({"a": 1}));
    j.op(json!({"op": "set", "key": "js-key", "value": "js1"}));
    wait_value(&r, "js-key", "js1".into()).await;

    // A second later (a write in the same second falls under the tie
    // rule, which lets the smaller id win), rs2p's lease rule on rs2p:
    // js2p's key is not rs2p's to write (an error, nothing sent).
    next_second(now_secs()).await;
    let refused = r.set("js-key", "rs2p takes it").await;
    assert!(
        matches!(refused, Err(Error::Sync(SyncError::Leased { ref owner, .. })) if *owner == j.id),
        "{refused:?}"
    );

    // js2p's rule lets any delta through (leasing undefined acts as off),
    // whoever owns the key: js2p merges into rs2p's map and sends the
    // delta; rs2p refuses it (counted) and keeps its map.
    j.op(json!({"op": "delta", "key": "rs-map", "map": {"b": 2}}));
    wait_js_updated(&mut j, bin_key("rs-map"), json!({"a": 1, "b": 2}));
    wait_stats(
        &r,
        "rs2p refuses js2p's delta",
        SyncStats {
            leased: 1,
            ..SyncStats::default()
        },
    )
    .await;
    assert_eq!(r.get("rs-map"), Some(map(&[("a", 1)])));

    // js2p writes rs2p's key: js2p's rule (leasing undefined acts as off)
    // lets the newer write through, so js2p stores it and sends it...
    j.op(json!({"op": "set", "key": "rs-key", "value": "js2p takes it"}));
    let u = wait_js_updated(&mut j, bin_key("rs-key"), json!("js2p takes it"));
    assert_eq!(u["local"], true);
    // ... and rs2p refuses it (counted) and keeps its value and owner.
    wait_stats(
        &r,
        "rs2p refuses js2p's write",
        SyncStats {
            leased: 2,
            ..SyncStats::default()
        },
    )
    .await;
    assert_eq!(r.get("rs-key"), Some("rs1".into()));
    assert_eq!(r.owner("rs-key").unwrap().0.to_string(), rid);
    // js2p holds its own value and thinks the key its own now.
    let entries = js_entries(&mut j);
    let e = entries.iter().find(|e| e["key"] == "rs-key").unwrap();
    assert_eq!(
        (e["value"].as_str(), e["owner"].as_str()),
        (Some("js2p takes it"), Some(&*j.id)),
        "the two disagree now"
    );

    // rs2p still owns the key in its own store, so it may write it; js2p
    // takes that newer write from another owner, and the two agree again.
    next_second(now_secs()).await;
    r.set("rs-key", "rs2").await.unwrap();
    let u = wait_js_updated(&mut j, bin_key("rs-key"), json!("rs2"));
    assert_eq!(
        (u["owner"].as_str(), u["local"].as_bool()),
        (Some(&*rid), Some(false))
    );
    // rs2p's refused attempt on js-key never reached js2p (it would have
    // come before "rs2" on the one connection).
    assert_eq!(js_get(&mut j, "js-key")["value"], "js1");
    assert_eq!(r.get("js-key"), Some("js1".into()));
    assert_eq!(r.mesh().routing_table().await.unwrap().len(), 1);
    r.close().await;
}

/// js2p with leasing passed as true agrees with rs2p: neither takes the
/// other's key, and each refuses locally (nothing is sent).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_decisions_agree_with_js2p_leasing_on() {
    let mut j = NodeProcess::js2p_sync("js2p-leasing-on", "sync", Some(true));
    let r = rs().await;
    link(&r, &mut j, Dial::RsToJs).await;
    r.set("rs-key", "rs1").await.unwrap();
    wait_js_updated(&mut j, bin_key("rs-key"), json!("rs1"));
    j.op(json!({"op": "set", "key": "js-key", "value": "js1"}));
    wait_value(&r, "js-key", "js1".into()).await;

    next_second(now_secs()).await;
    let err = js_refused(
        &mut j,
        json!({"op": "set", "key": "rs-key", "value": "js2p takes it"}),
    );
    assert!(
        err["error"].as_str().unwrap_or("").contains("permission"),
        "{err}"
    );
    assert!(matches!(
        r.set("js-key", "rs2p takes it").await,
        Err(Error::Sync(SyncError::Leased { .. }))
    ));
    // js2p sent nothing: a marker set after the refusal arrives, and rs2p
    // counted no refused write before it.
    j.op(json!({"op": "set", "key": "marker", "value": 1}));
    wait_value(&r, "marker", 1u64.into()).await;
    assert_eq!(r.stats().await.unwrap(), SyncStats::default());
    assert_eq!(r.get("rs-key"), Some("rs1".into()));
    assert_eq!(js_get(&mut j, "rs-key")["value"], "rs1");
    assert_eq!(js_get(&mut j, "js-key")["value"], "js1");
    r.close().await;
}

/// Without leasing (`sync0` on both sides) the later write wins on both,
/// and deltas from both merge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_leasing_the_later_write_wins_on_both_sides() {
    let mut j = NodeProcess::js2p_sync("js2p-sync0", "sync", Some(false));
    assert_eq!(j.lines()[0].value["subnet"], "sync0");
    let r = rs_leasing(false).await;
    assert_eq!(r.mesh().protocol().subnet(), "sync0");
    link(&r, &mut j, Dial::JsToRs).await;

    r.set("k", "rs2p first").await.unwrap();
    let first = now_secs();
    wait_js_updated(&mut j, bin_key("k"), json!("rs2p first"));
    next_second(first).await;
    j.op(json!({"op": "set", "key": "k", "value": "js2p later"}));
    wait_value(&r, "k", "js2p later".into()).await;
    let (owner, time) = r.owner("k").unwrap();
    assert_eq!(owner.to_string(), j.id);
    next_second(time).await;
    r.set("k", "rs2p last").await.unwrap();
    wait_js_updated(&mut j, bin_key("k"), json!("rs2p last"));

    j.op(json!({"op": "delta", "key": "m", "map": {"j": 1}}));
    wait_value(&r, "m", map(&[("j", 1)])).await;
    r.apply_delta("m", map(&[("r", 2)])).await.unwrap();
    wait_js_updated(&mut j, bin_key("m"), json!({"j": 1, "r": 2}));
    assert_eq!(r.stats().await.unwrap(), SyncStats::default());
    r.close().await;
}

/// js2p's `del` always throws (it calls `set(key, null)`, whose store does
/// `null.toString()`): the driver reports the TypeError, js2p deletes
/// nothing and sends nothing. Falsy values: js2p holds them, but its `get`
/// returns the fallback and its `keys()` skips them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js2p_del_throws_and_sends_nothing() {
    let mut j = js("js2p-sync");
    let r = rs().await;
    link(&r, &mut j, Dial::RsToJs).await;
    j.op(json!({"op": "set", "key": "js-key", "value": "v"}));
    wait_value(&r, "js-key", "v".into()).await;

    let err = js_refused(&mut j, json!({"op": "delete", "key": "js-key"}));
    assert_eq!(err["op"], "delete");
    let text = err["error"].as_str().unwrap_or_default();
    assert!(
        text.starts_with("TypeError") && text.contains("toString"),
        "{err}"
    );
    let trace = err["trace"].as_str().unwrap_or_default();
    assert!(
        trace.contains("sync.js:118") && trace.contains("SyncSocket.del"),
        "{trace}"
    );
    // Nothing went out: a marker set afterwards arrives with the key
    // still there (a delete would have come first on this connection).
    j.op(json!({"op": "set", "key": "marker", "value": 1}));
    wait_value(&r, "marker", 1u64.into()).await;
    assert_eq!(r.get("js-key"), Some("v".into()));
    assert_eq!(js_get(&mut j, "js-key")["found"], true);
    assert!(!j.lines().iter().any(|l| l.value["event"] == "deleted"));

    // rs2p's falsy values reach js2p, which holds them but hides them.
    r.set("zero", 0u64).await.unwrap();
    r.set("empty", "").await.unwrap();
    wait_js_updated(&mut j, bin_key("zero"), json!(0));
    wait_js_updated(&mut j, bin_key("empty"), json!(""));
    let got = js_get(&mut j, "zero");
    assert_eq!(
        (&got["found"], &got["value"], &got["get_found"]),
        (&json!(true), &json!(0), &json!(false))
    );
    let entries = js_entries(&mut j);
    let hidden: Vec<&Value> = entries
        .iter()
        .filter(|e| e["listed"] == false)
        .map(|e| &e["key"])
        .collect();
    assert_eq!(hidden, vec!["zero", "empty"]);
    assert_eq!(r.mesh().routing_table().await.unwrap().len(), 1);
    r.close().await;
}

/// An rs2p delete reaching js2p: js2p forwards it (its flooding runs
/// before its handlers), then its store throws on the nil value
/// (`null.toString()`, sync.js:118), it keeps the key, and it drops the
/// connection the delete came on. rs2p loses that one peer and nothing
/// else: it keeps serving its other peers, nothing counts against js2p,
/// and it can reconnect, when js2p's catch-up hands back the deleted key
/// as a str key (js2p never deleted it).
///
/// Line: R2 – R – J – R3 (R2, R3 rs2p).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rs2p_survives_js2p_dropping_it_over_a_delete() {
    let mut j = js("js2p-sync");
    let r = rs().await;
    let r2 = rs().await;
    let r3 = rs().await;
    r2.mesh()
        .connect("127.0.0.1", r.mesh().addr().port(), None)
        .await
        .unwrap();
    link(&r, &mut j, Dial::RsToJs).await;
    r3.mesh().connect("127.0.0.1", j.port, None).await.unwrap();
    wait_js_lists(&mut j, &r3);

    r.set("doomed", "x").await.unwrap();
    r.set("kept", "y").await.unwrap();
    wait_value(&r3, "kept", "y".into()).await;
    wait_value(&r2, "kept", "y".into()).await;
    assert_eq!(r3.get("doomed"), Some("x".into()));

    let mut events = r.mesh().events();
    assert_eq!(r.delete("doomed").await.unwrap(), Some("x".into()));
    // What js2p did: forwarded the delete to R3, threw, dropped R.
    r3.wait_for("doomed", |v| v.is_none(), WAIT).await.unwrap();
    let err = j.wait_for("js2p throws on the remote delete", |v| {
        v["event"] == "error" && v["source"] == "js2p"
    });
    let text = err["error"].as_str().unwrap_or_default();
    assert!(
        text.contains("toString")
            && text.contains("sync.js:118")
            && text.contains("__handle_store"),
        "{err}"
    );
    let rid = r.mesh().id().to_string();
    j.wait_for("js2p drops R", move |v| {
        v["event"] == "closed" && v["peer"] == rid.as_str()
    });
    wait_event(
        &mut events,
        WAIT,
        "R loses J",
        |e| matches!(e, Event::PeerLeft(id) if id.to_string() == j.id),
    )
    .await;
    assert_eq!(js_get(&mut j, "doomed")["value"], "x", "js2p kept it");
    // ... and kept R3.
    assert!(j.peers().contains(&r3.mesh().id().to_string()));

    // R keeps serving its other peer; nothing counted against anyone.
    r2.wait_for("doomed", |v| v.is_none(), WAIT).await.unwrap();
    r.set("after", "z").await.unwrap();
    wait_value(&r2, "after", "z".into()).await;
    assert_eq!(r.stats().await.unwrap(), SyncStats::default());
    assert_eq!(r.mesh().routing_table().await.unwrap().len(), 1);

    // R reconnects: js2p's catch-up brings "doomed" back, as a str key.
    link(&r, &mut j, Dial::RsToJs).await;
    wait_value(&r, SyncKey::text("doomed"), "x".into()).await;
    assert_eq!(r.get("doomed"), None);
    // Live writes flow again both ways.
    j.op(json!({"op": "set", "key": "again", "value": 2}));
    wait_value(&r, "again", 2u64.into()).await;
    wait_js_updated(&mut j, bin_key("after"), json!("z"));
    r.close().await;
    r2.close().await;
    r3.close().await;
}

/// js2p applies a delta onto anything that is a JS object: a Buffer (bin)
/// or an array, not only a map; it then sends the delta. rs2p holds a
/// value that is no map there, so it drops the delta, counts it, and keeps
/// the link. Onto a str, js2p refuses locally, as rs2p.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js2p_delta_onto_a_non_map_is_counted_not_fatal() {
    let mut j = js("js2p-sync");
    let r = rs().await;
    link(&r, &mut j, Dial::JsToRs).await;
    j.op(json!({"op": "set", "key": "blob", "value": {"$bin": "0001"}}));
    j.op(json!({"op": "set", "key": "list", "value": [1, 2]}));
    j.op(json!({"op": "set", "key": "text", "value": "abc"}));
    wait_value(&r, "text", "abc".into()).await;

    j.op(json!({"op": "delta", "key": "blob", "map": {"a": 1}}));
    j.op(json!({"op": "delta", "key": "list", "map": {"0": 9}}));
    let err = js_refused(
        &mut j,
        json!({"op": "delta", "key": "text", "map": {"a": 1}}),
    );
    assert!(
        err["error"].as_str().unwrap_or("").contains("non-mapping"),
        "{err}"
    );
    // js2p took both deltas itself: the list is [9, 2] there now.
    wait_js_updated(&mut j, bin_key("list"), json!([9, 2]));
    j.op(json!({"op": "set", "key": "marker", "value": 1}));
    wait_value(&r, "marker", 1u64.into()).await;

    let stats = r.stats().await.unwrap();
    assert_eq!(
        stats,
        SyncStats {
            bad_deltas: 2,
            ..SyncStats::default()
        }
    );
    assert_eq!(r.get("blob"), Some(Packet::bin(&b"\x00\x01"[..])));
    assert_eq!(
        r.get("list"),
        Some(Packet::Array(vec![1u64.into(), 2u64.into()]))
    );
    assert_eq!(r.get("text"), Some("abc".into()));
    assert_eq!(r.mesh().routing_table().await.unwrap().len(), 1);
    assert!(j.js2p_errors().iter().all(|e| e["source"] == "op"));
    r.close().await;
}

/// Takes py2p's next `updated` event for `key` (bin, as py2p's keys are)
/// with `value`.
fn wait_py_updated(p: &mut NodeProcess, key: &str, value: Value) -> Value {
    let k = bin_key(key);
    p.wait_for(&format!("py2p updated {key} = {value}"), move |v| {
        v["event"] == "updated" && v["key"] == k && v["value"] == value
    })
}

/// py2p – rs2p – js2p, all on `sync1` (py2p with leasing on, js2p with its
/// default): the rs2p node bridges the two references, which cannot link
/// to each other. Sets and deltas cross it both ways, live and in
/// catch-up, with their writer's id as owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn py2p_and_js2p_sync_through_rs2p() {
    let mut p = NodeProcess::py2p_sync("py2p-sync", "sync", true);
    let mut j = js("js2p-sync");
    assert_eq!(p.lines()[0].value["subnet"], j.lines()[0].value["subnet"]);
    let r = rs().await;
    let rid = r.mesh().id().to_string();

    // py2p holds a key before anyone joins; rs2p dials py2p, then js2p
    // dials rs2p. (py2p and js2p cannot link: py2p refuses js2p's str
    // subnet id.)
    p.op(json!({"op": "set", "key": "py-early", "value": "early"}));
    wait_py_updated(&mut p, "py-early", json!("early"));
    r.mesh().connect("127.0.0.1", p.port, None).await.unwrap();
    wait_value(&r, "py-early", "early".into()).await;
    link(&r, &mut j, Dial::JsToRs).await;
    // py2p's entry reaches js2p in rs2p's catch-up, owner py2p (bin).
    let u = wait_js_updated(&mut j, bin_key("py-early"), json!("early"));
    assert_eq!(
        (u["owner"].as_str(), u["owner_type"].as_str()),
        (Some(&*p.id), Some("bin"))
    );

    // Live: py2p → js2p and js2p → py2p.
    p.op(json!({"op": "set", "key": "from-py", "value": {"n": 1}}));
    let u = wait_js_updated(&mut j, bin_key("from-py"), json!({"n": 1}));
    assert_eq!(u["owner"].as_str(), Some(&*p.id));
    j.op(json!({"op": "set", "key": "from-js", "value": [1, "two"]}));
    let u = wait_py_updated(&mut p, "from-js", json!([1, "two"]));
    assert_eq!(
        (u["owner"].as_str(), u["owner_type"].as_str()),
        (Some(&*j.id), Some("str"))
    );
    // Deltas both ways.
    p.op(json!({"op": "delta", "key": "py-map", "map": {"x": 1}}));
    wait_js_updated(&mut j, bin_key("py-map"), json!({"x": 1}));
    j.op(json!({"op": "delta", "key": "js-map", "map": {"y": 2}}));
    wait_py_updated(&mut p, "js-map", json!({"y": 2}));
    // And rs2p's own writes reach both.
    r.set("from-rs", 3u64).await.unwrap();
    wait_py_updated(&mut p, "from-rs", json!(3));
    wait_js_updated(&mut j, bin_key("from-rs"), json!(3));

    // Everything went through rs2p: each reference lists only rs2p.
    assert_eq!(p.peers(), vec![rid.clone()]);
    assert_eq!(j.peers(), vec![rid.clone()]);
    assert_eq!(r.len(), 6);
    assert_eq!(r.stats().await.unwrap(), SyncStats::default());
    assert!(j.js2p_errors().is_empty(), "{:?}", j.js2p_errors());
    assert!(p.errors().is_empty(), "{:?}", p.errors());
    r.close().await;
}

/// js2p's catch-up str keys reach py2p through rs2p: rs2p passes a
/// catch-up entry new to it on to its other peers (py2p and js2p never
/// link directly — py2p refuses js2p's str subnet id — so only a bridge
/// carries them). py2p keeps the entry under the str key, and from then
/// on its own catch-up fails for every newcomer (`self[key]` turns the str
/// back into bytes and raises KeyError), so py2p drops each node that
/// dials it — an rs2p node included, which survives that as any dropped
/// connection. rs2p keeps str and bin keys apart by design; this is the
/// price (see docs/protocol.md §12).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js2p_str_keys_reach_py2p_through_rs2p() {
    let mut p = NodeProcess::py2p_sync("py2p-sync", "sync", true);
    let mut j = js("js2p-sync");
    let r = rs().await;
    j.op(json!({"op": "set", "key": "js-early", "value": "early"}));
    wait_js_updated(&mut j, bin_key("js-early"), json!("early"));
    r.mesh().connect("127.0.0.1", p.port, None).await.unwrap();
    link(&r, &mut j, Dial::JsToRs).await;
    wait_value(&r, SyncKey::text("js-early"), "early".into()).await;
    // py2p's entry is a str key (a JSON string in its driver's events).
    let u = p.wait_for("py2p takes the str key", |v| {
        v["event"] == "updated" && v["key"] == "js-early"
    });
    assert_eq!(
        (u["value"].as_str(), u["owner"].as_str()),
        (Some("early"), Some(&*j.id))
    );

    // A newcomer dialling py2p is dropped right after the handshake,
    // having had no entry.
    let r4 = rs().await;
    let mut events = r4.mesh().events();
    r4.mesh().connect("127.0.0.1", p.port, None).await.unwrap();
    wait_event(
        &mut events,
        WAIT,
        "py2p drops the newcomer",
        |e| matches!(e, Event::PeerLeft(id) if id.to_string() == p.id),
    )
    .await;
    assert!(r4.is_empty(), "{:?}", r4.keys());
    let r4_id = r4.mesh().id().to_string();
    let stderr = p.stderr();
    assert!(
        stderr.contains(&format!("unhandled exception with peer id b'{r4_id}'")),
        "{stderr}"
    );
    // rs2p's first link to py2p (made before py2p held the str key) lives.
    p.op(json!({"op": "set", "key": "still", "value": 1}));
    wait_value(&r, "still", 1u64.into()).await;
    r.close().await;
    r4.close().await;
}
