//! Interop over the `SSL` transport with the real py2p 0.7.878 (its
//! `ssl_wrapper`: a self-signed RSA certificate on the listener, no
//! verification by the dialler), each py2p node in its own process, rs2p
//! in compatibility mode.

mod support;

use std::time::Duration;

use rs2p::protocol::Protocol;
use rs2p::{packets, Error, MessageKind, Packet};
use serde_json::json;
use support::mesh::{next, rs_node};
use support::process::{text_of, NodeProcess};
use support::py2p::{assert_no_more_anywhere, mixed_line, MixedLine};
use support::wait::WAIT;

fn py2p(name: &str, subnet: &str, max_outgoing: Option<usize>) -> NodeProcess {
    NodeProcess::py2p_on(name, subnet, "SSL", None, max_outgoing)
}

/// Waits (bounded) until py2p node `p`'s routing table holds `n` peers.
async fn wait_py2p_peers(p: &mut NodeProcess, n: usize) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let peers = p.peers();
        if peers.len() == n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{}: {} peers, expected {n}",
            p.name,
            peers.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// P1 – R1 – P2 – R2 in a line over TLS, each link dialled by a different
/// kind of node: every broadcast reaches every other node exactly once,
/// through py2p and rs2p relays alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssl_mixed_line_delivers_every_broadcast_once() {
    // rs2p dials py2p (R1 → P1: rs2p is the TLS client), py2p dials rs2p
    // (P2 → R1: py2p is the TLS client).
    let MixedLine {
        mut p1,
        mut p2,
        r1,
        r2,
    } = mixed_line("SSL").await;
    wait_py2p_peers(&mut p2, 2).await;
    assert_eq!(p1.peers(), vec![r1.id().to_string()]);

    // One broadcast at a time, each awaited everywhere before the next:
    // py2p's SSL transport uses one OpenSSL object from two threads (the
    // caller's `send` and its reading daemon), and a send that overlaps a
    // read corrupts the TLS stream (bad record MAC, bad length), between
    // two py2p nodes just as well. mesh_peer.py serializes the two with a
    // lock; pacing keeps py2p's own send path out of the way as well.
    p1.broadcast(json!(["from-P1", {"$bin": "00ff10"}, -7, [1, [2, "x"]], {"k": 1.5}]));
    for (node, name) in [(&r1, "R1"), (&r2, "R2")] {
        let m = next(node, &format!("from-P1 at {name}")).await;
        assert_eq!(m.packets()[0].as_str(), Some("from-P1"));
        assert_eq!(m.packets()[1], Packet::bin(vec![0, 0xff, 0x10]));
        assert_eq!(m.packets()[2].as_i64(), Some(-7));
        assert_eq!(m.sender().to_string(), p1.id);
        assert_eq!(m.kind(), MessageKind::Broadcast);
    }
    let m = p2.wait_message("from-P1");
    assert_eq!(m["sender"], p1.id);

    p2.broadcast(json!(["from-P2"]));
    for (node, name) in [(&r1, "R1"), (&r2, "R2")] {
        let m = next(node, &format!("from-P2 at {name}")).await;
        assert_eq!(m.packets()[0].as_str(), Some("from-P2"));
        assert_eq!(m.sender().to_string(), p2.id);
    }
    p1.wait_message("from-P2");

    r1.send(packets![
        "from-R1",
        Packet::bin(&b"\x01\x02"[..]),
        1u64 << 40
    ])
    .await
    .unwrap();
    let m = next(&r2, "from-R1 at R2").await;
    assert_eq!(m.packets()[0].as_str(), Some("from-R1"));
    assert_eq!(m.sender(), r1.id());
    for node in [&mut p1, &mut p2] {
        let m = node.wait_message("from-R1");
        assert_eq!(m["packets"][1], json!({"$bin": "0102"}));
        assert_eq!(m["packets"][2], json!(1u64 << 40));
    }

    // Large enough to span several TLS records (uncompressible).
    let big: String = (0..40_000u32)
        .map(|i| char::from(b'a' + (i.wrapping_mul(2_654_435_761) >> 27) as u8 % 26))
        .collect();
    r2.send(packets!["from-R2", big.clone(), Packet::Nil])
        .await
        .unwrap();
    let m = next(&r1, "from-R2 at R1").await;
    assert_eq!(m.packets()[0].as_str(), Some("from-R2"));
    assert_eq!(m.packets()[1].as_str(), Some(big.as_str()));
    for node in [&mut p1, &mut p2] {
        let m = node.wait_message("from-R2");
        assert_eq!(m["packets"][1].as_str(), Some(big.as_str()));
        assert_eq!(m["kind"], "broadcast");
    }

    // Nothing arrives twice (a bounded check of absence).
    let window = Duration::from_millis(500);
    assert_no_more_anywhere(&[&r1, &r2], &mut [&mut p1, &mut p2], window).await;
    r1.close().await;
    r2.close().await;
}

/// Replies in both directions over TLS, direct and routed through a route
/// request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssl_reply_both_ways() {
    // P1 – R1 – P2 – R2 again.
    let MixedLine {
        mut p1,
        mut p2,
        r1,
        r2,
    } = mixed_line("SSL").await;
    wait_py2p_peers(&mut p2, 2).await;

    // py2p replies to an rs2p broadcast.
    r1.send(packets!["question"]).await.unwrap();
    let q = p1.wait_message("question");
    p1.op(json!({"op": "reply", "to_msg": q["n"], "packets": ["answer"]}));
    // R2 gets the broadcast too.
    let at_r2 = next(&r2, "question at R2").await;
    assert_eq!(at_r2.packets()[0].as_str(), Some("question"));
    let m = next(&r1, "py2p reply").await;
    assert_eq!(m.packets()[0].as_str(), Some("answer"));
    assert_eq!(m.kind(), MessageKind::Whisper);
    assert_eq!(m.sender().to_string(), p1.id);

    // rs2p replies directly to a py2p broadcast.
    p1.broadcast(json!(["hello from P1"]));
    let m = next(&r1, "P1 broadcast at R1").await;
    m.reply(packets!["direct reply"]).unwrap();
    let r = p1.wait_message("direct reply");
    assert_eq!(r["kind"], "whisper");
    assert_eq!(r["sender"], r1.id().to_string());

    // rs2p replies to P1 from R2, which has no link to it: the route
    // request crosses P2 (py2p relays it), R1 answers with P1's address and
    // R2 dials P1 over TLS to deliver.
    let m = next(&r2, "P1 broadcast at R2").await;
    assert_eq!(m.packets()[0].as_str(), Some("hello from P1"));
    m.reply(packets!["routed reply"]).unwrap();
    let r = p1.wait_message("routed reply");
    assert_eq!(r["kind"], "whisper");
    assert_eq!(r["sender"], r2.id().to_string());

    r1.close().await;
    r2.close().await;
}

/// A burst of broadcasts from rs2p into py2p over TLS all arrive: each
/// frame travels in TLS records of its own, so py2p's select-then-read
/// loop never leaves a decrypted frame waiting inside its SSL object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssl_burst_into_py2p_arrives_whole() {
    let mut p = py2p("P", "mesh", None);
    let r = rs_node("mesh", "SSL", 4).await;
    r.connect("127.0.0.1", p.port, None).await.expect("R→P");
    const N: usize = 200;
    for i in 0..N {
        r.send(packets![format!("burst-{i}"), "x".repeat(i * 37 % 3000)])
            .await
            .unwrap();
    }
    let mut seen = [false; N];
    for _ in 0..N {
        let m = p.wait_for("a burst message", |v| {
            v["event"] == "message" && text_of(v).starts_with("burst-")
        });
        let i: usize = text_of(&m)["burst-".len()..].parse().unwrap();
        assert!(!seen[i], "burst-{i} twice");
        seen[i] = true;
    }
    r.close().await;
}

/// A py2p node on another subnet is refused over TLS too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssl_subnet_mismatch_is_refused() {
    let mut p = py2p("P", "other", None);
    let r = rs_node("mesh", "SSL", 4).await;
    match r.connect("127.0.0.1", p.port, None).await {
        Err(Error::SubnetMismatch { ours, theirs }) => {
            assert_eq!(ours, Protocol::new("mesh", "SSL").id());
            assert_eq!(theirs, Protocol::new("other", "SSL").id());
        }
        other => panic!("expected a subnet mismatch, got {other:?}"),
    }
    assert!(r.routing_table().await.unwrap().is_empty());
    assert!(p.peers().is_empty());
    r.close().await;
}
