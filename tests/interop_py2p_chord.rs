//! rs2p's `ChordSocket` with real py2p 0.7.878 `ChordSocket` nodes
//! (tests/py2p/chord_peer.py) in one ring: writes and reads in both
//! directions, deletes, deltas, and join/unjoin handing data across
//! implementations.

mod support;

use std::time::Duration;

use rs2p::chord::ChordSocket;
use rs2p::protocol::Packet;
use serde_json::{json, Value};
use support::process::NodeProcess;
use support::wait::{wait_until, WAIT};

/// The JSON form of a bin value as chord_peer.py prints it.
fn bin(text: &str) -> Value {
    json!({ "$bin": text.bytes().map(|b| format!("{b:02x}")).collect::<String>() })
}

async fn rs_chord() -> ChordSocket {
    ChordSocket::builder()
        .joined(true)
        .request_timeout(Duration::from_secs(5))
        .bind("127.0.0.1:0")
        .await
        .unwrap()
}

/// py2p's view of its peers: how many it believes store, and the list.
fn py_storing_peers(p: &mut NodeProcess) -> (usize, Value) {
    let mark = p.mark();
    p.op(json!({"op": "peers"}));
    let peers = p.wait_since(mark, "peers", |v| v["event"] == "peers");
    let n = peers["peers"]
        .as_array()
        .map_or(0, |a| a.iter().filter(|p| p["leeching"] == false).count());
    (n, peers)
}

/// A py2p get of `key` (timeout `secs`): its value event or error event.
fn py_get(p: &mut NodeProcess, key: &str, secs: u64) -> Value {
    let mark = p.mark();
    p.op(json!({"op": "get", "key": key, "timeout": secs}));
    let k = bin(key);
    p.wait_since(mark, &format!("get {key}"), move |v| {
        v["key"] == k && (v["event"] == "value" || v["event"] == "error")
    })
}

/// Reads `key` at `r` until it is `want` (py2p sends its writes over a
/// while: a read right after its `set` returned may come too early).
async fn rs_read(r: &ChordSocket, key: String, want: Packet) {
    let r = r.clone();
    wait_until(&format!("{key} = {want:?} at rs2p"), WAIT, move || {
        let (r, key, want) = (r.clone(), key.clone(), want.clone());
        async move {
            match r.get(&key).await {
                Ok(v) if v == want => Ok(()),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await;
}

async fn wait_storing(r: &ChordSocket, n: usize) {
    let r = r.clone();
    wait_until("storing peers at rs2p", WAIT, move || {
        let r = r.clone();
        async move {
            let s = r.storing_peers().await.map_err(|e| e.to_string())?;
            if s == n {
                Ok(())
            } else {
                Err(format!("{s}"))
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_ring_reads_writes_joins_and_unjoins() {
    let mut p1 = NodeProcess::py2p_chord("P1", true);
    let mut p2 = NodeProcess::py2p_chord("P2", true);
    let r1 = rs_chord().await;
    let r2 = rs_chord().await;
    // Every kind dials and is dialled: R1→P1, R1→P2, P2→R2, P2→P1, R2→R1.
    r1.mesh().connect("127.0.0.1", p1.port, None).await.unwrap();
    r1.mesh().connect("127.0.0.1", p2.port, None).await.unwrap();
    p2.connect(r2.mesh().addr().port());
    p2.connect(p1.port);
    r2.mesh()
        .connect("127.0.0.1", r1.mesh().addr().port(), None)
        .await
        .unwrap();
    r2.mesh().connect("127.0.0.1", p1.port, None).await.unwrap();
    wait_storing(&r1, 3).await;
    wait_storing(&r2, 3).await;
    for p in [&mut p1, &mut p2] {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let (n, peers) = py_storing_peers(p);
            if n == 3 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{}: {peers}", p.name);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    // rs2p writes, py2p reads (bin keys, as py2p's API makes them).
    for k in 0..8 {
        r1.set(format!("rs-{k}"), format!("from rs2p {k}"))
            .await
            .unwrap();
    }
    for k in 0..8 {
        let got = py_get(&mut p1, &format!("rs-{k}"), 5);
        assert_eq!(got["value"], json!(format!("from rs2p {k}")), "{got}");
    }
    // py2p writes, rs2p reads.
    for k in 0..8 {
        p2.op(json!({"op": "set", "key": format!("py-{k}"), "value": k}));
    }
    let k7 = bin("py-7");
    p1.wait_for("added py-7", move |v| {
        v["event"] == "added" && v["key"] == k7
    });
    for k in 0..8 {
        rs_read(&r2, format!("py-{k}"), Packet::from(k as u64)).await;
    }
    assert_eq!(r1.keys().await.unwrap().len(), 16);

    // A delta from py2p, read by rs2p; one from rs2p, read by py2p. (py2p
    // reads the key before its delta: an empty map set first spares its
    // ten-second timeout on a missing key.)
    r1.set("m", Packet::Map(vec![])).await.unwrap();
    let km = bin("m");
    p1.wait_for("added m", move |v| v["event"] == "added" && v["key"] == km);
    p1.op(json!({"op": "delta", "key": "m", "map": {"a": 1}}));
    p1.wait_for("delta", |v| v["event"] == "delta");
    // py2p sends its five deltas over a while after its promise resolved:
    // read until all arrived.
    let reader = r2.clone();
    wait_until("py2p's delta at rs2p", WAIT, move || {
        let reader = reader.clone();
        async move {
            match reader.get("m").await {
                Ok(Packet::Map(m)) if m.len() == 1 => Ok(()),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await;
    let merged = r1
        .apply_delta("m", Packet::Map(vec![("b".into(), 2u64.into())]))
        .await
        .unwrap();
    assert_eq!(merged.as_map().map(<[_]>::len), Some(2), "{merged:?}");
    let got = py_get(&mut p2, "m", 5);
    assert_eq!(got["value"], json!({"a": 1, "b": 2}), "{got}");

    // rs2p deletes a key py2p wrote: gone from py2p's key list and tables.
    r2.delete("py-0").await.unwrap();
    let k0 = bin("py-0");
    p1.wait_for("deleted py-0", move |v| {
        v["event"] == "deleted" && v["key"] == k0
    });
    let got = py_get(&mut p1, "py-0", 2);
    assert_eq!(got["event"], "error", "{got}");

    // py2p leaves the ring, then rs2p does: every key still reads on both
    // sides, from the nodes that remain (py2p hands its entries over
    // within a while of its unjoin).
    p2.op(json!({"op": "unjoin"}));
    wait_storing(&r1, 2).await;
    for k in 1..8 {
        rs_read(&r1, format!("py-{k}"), Packet::from(k as u64)).await;
        rs_read(&r1, format!("rs-{k}"), format!("from rs2p {k}").into()).await;
    }
    r2.unjoin().await.unwrap();
    wait_storing(&r1, 1).await;
    for k in 1..8 {
        let got = py_get(&mut p1, &format!("rs-{k}"), 5);
        assert_eq!(got["value"], json!(format!("from rs2p {k}")), "{got}");
        rs_read(&r2, format!("py-{k}"), Packet::from(k as u64)).await;
    }
    // And rs2p joins again: the nodes hand its share over (py2p over a
    // while, and a py2p get never asks again after a nil: retry it).
    r2.join().await.unwrap();
    wait_storing(&r1, 2).await;
    for k in 1..8 {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let got = py_get(&mut p2, &format!("py-{k}"), 2);
            if got["value"] == json!(k) {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{got}");
        }
    }
    let stats = r1.stats().await.unwrap();
    assert_eq!(
        stats.malformed + stats.bad_slots + stats.bad_meta,
        0,
        "{stats:?}"
    );
    p1.quit();
    p2.quit();
    r1.close().await;
    r2.close().await;
}
