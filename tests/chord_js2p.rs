//! js2p `ChordSocket` nodes (tests/js2p/chord_peer.js) next to rs2p chord
//! nodes: js2p's chord module is largely broken, and whatever it sends
//! must neither crash nor stall an rs2p node — reads and writes between
//! rs2p nodes keep working, with bounded waits, while js2p nodes join,
//! write, read and leave.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use rs2p::chord::ChordSocket;
use rs2p::protocol::Packet;
use serde_json::json;
use support::process::{Kind, NodeProcess};

/// Where js2p is installed (`RS2P_JS2P_DIR`, default tests/js2p).
fn js2p_dir() -> PathBuf {
    std::env::var_os("RS2P_JS2P_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/js2p"),
        PathBuf::from,
    )
}

fn js_chord(name: &str) -> NodeProcess {
    let dir = js2p_dir();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/js2p/chord_peer.js");
    let mut cmd = Command::new("node");
    cmd.current_dir(&dir)
        .env("NODE_PATH", dir.join("node_modules"))
        .arg(script)
        .arg("0");
    let mut node = NodeProcess::start(name, Kind::Py2p, cmd);
    node.fail_on_error = false;
    node
}

async fn rs_chord() -> ChordSocket {
    ChordSocket::builder()
        .joined(true)
        .request_timeout(Duration::from_secs(3))
        .bind("127.0.0.1:0")
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js2p_chord_nodes_neither_crash_nor_stall_rs2p() {
    let r1 = rs_chord().await;
    let r2 = rs_chord().await;
    r2.mesh()
        .connect("127.0.0.1", r1.mesh().addr().port(), None)
        .await
        .unwrap();
    let mut js = [js_chord("J1"), js_chord("J2")];
    // The js2p nodes dial the rs2p nodes, and rs2p dials one of them.
    for j in js.iter_mut() {
        j.op(json!({"op": "connect", "host": "127.0.0.1", "port": r1.mesh().addr().port()}));
        j.op(json!({"op": "connect", "host": "127.0.0.1", "port": r2.mesh().addr().port()}));
    }
    let _ = r2.mesh().connect("127.0.0.1", js[1].port, None).await;
    // Everything js2p's chord does, while rs2p writes and reads.
    for (i, j) in js.iter_mut().enumerate() {
        j.op(json!({"op": "join"}));
        j.op(json!({"op": "set", "key": format!("js-{i}"), "value": "from js2p"}));
        j.op(json!({"op": "get", "key": "rs-0", "timeout": 1}));
        j.op(json!({"op": "delete", "key": "nothing"}));
    }
    for k in 0..10 {
        r1.set(format!("rs-{k}"), k as u64).await.unwrap();
    }
    for j in js.iter_mut() {
        j.op(json!({"op": "get", "key": "rs-1", "timeout": 1}));
        j.op(json!({"op": "unjoin"}));
    }
    // rs2p answers every read in bounded time (a value or a typed error,
    // never a hang); every key reads back once r1's writes have arrived.
    let mut ok = 0;
    for k in 0..10 {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let got = tokio::time::timeout(Duration::from_secs(10), r2.get(format!("rs-{k}")))
                .await
                .expect("a get never stalls");
            if got.ok() == Some(Packet::from(k as u64)) {
                ok += 1;
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // js2p nodes may not store (rs2p refuses them), so nothing was lost.
    assert_eq!(ok, 10, "rs2p lost keys to js2p");
    // The js2p nodes go; the rs2p pair reads and writes as before.
    for j in js.iter_mut() {
        j.quit();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    r1.set("after", "js2p left").await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(v) = r2.get("after").await {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("rs2p still works");
    assert_eq!(got, Packet::from("js2p left"));
    // Whatever js2p sent was counted, not fatal.
    let stats = r1.stats().await.unwrap();
    eprintln!("rs2p r1 after js2p: {stats:?}");
    assert!(stats.refused_storers >= 1, "{stats:?}");
    assert_eq!(stats.handed_over, 0, "{stats:?}");
    r1.close().await;
    r2.close().await;
}
