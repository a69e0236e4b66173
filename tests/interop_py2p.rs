//! Interop with the real py2p 0.7.878 (from PyPI), each py2p node in its own
//! process, over real loopback sockets.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use rs2p::protocol::{Compression, Protocol};
use rs2p::{packets, Error, Packet, PeerId};
use serde_json::json;
use support::mesh::{next, rs_node};
use support::process::NodeProcess;
use support::py2p::{assert_no_more_anywhere, mixed_line, MixedLine};
use support::wait::WAIT;

/// py2p–rs2p–py2p–rs2p in a line: every broadcast reaches every other node
/// exactly once, whoever relays it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_line_delivers_every_broadcast_once() {
    let MixedLine {
        mut p1,
        mut p2,
        r1,
        r2,
    } = mixed_line("Plaintext").await;
    // The line holds: py2p nodes have exactly their two (or one) neighbours.
    assert_eq!(p1.wait_peer_count(1), vec![r1.id().to_string()]);
    p2.wait_peer_count(2);

    p1.broadcast(json!(["from-P1", {"$bin": "00ff10"}, -7, [1, [2, "x"]], {"k": 1.5}]));
    p2.broadcast(json!(["from-P2"]));
    r1.send(packets![
        "from-R1",
        Packet::bin(&b"\x01\x02"[..]),
        1u64 << 40
    ])
    .await
    .unwrap();
    r2.send(packets!["from-R2", true, Packet::Nil])
        .await
        .unwrap();

    let all = ["from-P1", "from-P2", "from-R1", "from-R2"];
    for (node, me) in [(&r1, "from-R1"), (&r2, "from-R2")] {
        let mut seen: HashMap<String, usize> = HashMap::new();
        while seen.len() < 3 {
            let m = next(node, me).await;
            let text = m.packets()[0].as_str().unwrap().to_owned();
            if text == "from-P1" {
                assert_eq!(m.packets()[1], Packet::bin(vec![0, 0xff, 0x10]));
                assert_eq!(m.packets()[2].as_i64(), Some(-7));
                assert_eq!(m.sender().to_string(), p1.id);
            }
            *seen.entry(text).or_default() += 1;
        }
        assert!(!seen.contains_key(me), "{me} saw its own broadcast");
        for other in all.iter().filter(|t| **t != me) {
            assert_eq!(seen.get(*other), Some(&1), "{me} got {other}: {seen:?}");
        }
    }
    for (node, me) in [(&mut p1, "from-P1"), (&mut p2, "from-P2")] {
        for other in all.iter().filter(|t| **t != me) {
            let m = node.wait_message(other);
            assert_eq!(m["kind"], "broadcast");
        }
    }
    // Nothing arrives twice (a bounded check of absence).
    let window = Duration::from_millis(500);
    assert_no_more_anywhere(&[&r1, &r2], &mut [&mut p1, &mut p2], window).await;
    // The typed packets from rs2p arrived as py2p values.
    r1.close().await;
    r2.close().await;
}

/// Whisper and reply in both directions, direct and routed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whisper_and_reply_both_ways() {
    // P1 – R1 – P2 – R2, a line again (P2 only relays).
    let MixedLine {
        mut p1,
        p2: _p2,
        r1,
        r2,
    } = mixed_line("Plaintext").await;

    // rs2p → py2p whisper, py2p → rs2p whisper.
    r1.whisper(&PeerId::from(p1.id.as_str()), packets!["psst", 1])
        .await
        .unwrap();
    let m = p1.wait_message("psst");
    assert_eq!(m["kind"], "whisper");
    assert_eq!(m["sender"], r1.id().to_string());
    p1.op(json!({"op": "whisper", "to": r1.id().to_string(), "packets": ["psst-back"]}));
    let m = next(&r1, "whisper from P1").await;
    assert_eq!(m.packets()[0].as_str(), Some("psst-back"));
    assert_eq!(m.kind(), rs2p::MessageKind::Whisper);

    // py2p replies (directly) to an rs2p broadcast.
    r1.send(packets!["question"]).await.unwrap();
    let q = p1.wait_message("question");
    p1.op(json!({"op": "reply", "to_msg": q["n"], "packets": ["answer"]}));
    // R2 also gets the broadcast; drain it.
    let _ = next(&r2, "question at R2").await;
    let m = next(&r1, "py2p reply").await;
    assert_eq!(m.packets()[0].as_str(), Some("answer"));
    assert_eq!(m.kind(), rs2p::MessageKind::Whisper);

    // rs2p replies directly to a py2p broadcast.
    p1.broadcast(json!(["hello from P1"]));
    let m = next(&r1, "P1 broadcast at R1").await;
    m.reply(packets!["direct reply"]).unwrap();
    let r = p1.wait_message("direct reply");
    assert_eq!(r["kind"], "whisper");

    // rs2p replies to P1 from R2, which is not connected to it: a route
    // request crosses P2 (py2p relays it) and R1 answers with P1's address.
    let m = next(&r2, "P1 broadcast at R2").await;
    assert_eq!(m.packets()[0].as_str(), Some("hello from P1"));
    m.reply(packets!["routed reply"]).unwrap();
    let r = p1.wait_message("routed reply");
    assert_eq!(r["kind"], "whisper");
    assert_eq!(r["sender"], r2.id().to_string());

    // R1 replies to R2 (not connected): py2p node P2 answers the route request.
    r2.send(packets!["from R2"]).await.unwrap();
    let m = loop {
        let m = next(&r1, "R2 broadcast at R1").await;
        if m.packets()[0].as_str() == Some("from R2") {
            break m;
        }
    };
    m.reply(packets!["via py2p route"]).unwrap();
    let got = loop {
        let m = next(&r2, "routed reply at R2").await;
        if m.packets()[0].as_str() == Some("via py2p route") {
            break m;
        }
    };
    assert_eq!(got.sender(), r1.id());
    assert_eq!(got.kind(), rs2p::MessageKind::Whisper);
    r1.close().await;
    r2.close().await;
}

/// A node on another subnet is refused, whichever side dials.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subnet_mismatch_is_refused_both_ways() {
    let mut p = NodeProcess::py2p("P", "other", None, None);
    let r = rs_node("mesh", "Plaintext", 4).await;
    match r.connect("127.0.0.1", p.port, None).await {
        Err(Error::SubnetMismatch { ours, theirs }) => {
            assert_eq!(ours, Protocol::new("mesh", "Plaintext").id());
            assert_eq!(theirs, Protocol::new("other", "Plaintext").id());
        }
        other => panic!("expected a subnet mismatch, got {other:?}"),
    }
    let mut events = r.events();
    p.connect(r.addr().port());
    let reason = tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(rs2p::Event::Rejected { reason, .. }) = events.recv().await {
                return reason;
            }
        }
    })
    .await
    .expect("rejection event");
    assert!(
        matches!(
            reason,
            rs2p::protocol::mesh::CloseReason::SubnetMismatch { .. }
        ),
        "{reason}"
    );
    assert!(r.routing_table().await.unwrap().is_empty());
    assert!(p.peers().is_empty());
    r.close().await;
}

/// Each compression method in turn, py2p restricted to it, with payloads
/// that really compress.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_compression_method_interoperates() {
    let big = "abcdefgh".repeat(2000);
    for method in Compression::ALL {
        let name = method.name();
        let mut p = NodeProcess::py2p(name, "mesh", Some(&[method.as_u8()]), None);
        let r = rs_node("mesh", "Plaintext", 4).await;
        r.connect("127.0.0.1", p.port, None).await.expect("connect");
        let table = r.routing_table().await.unwrap();
        assert_eq!(table[0].compression, vec![method], "{name}");
        r.send(packets![format!("rs-{name}"), big.clone()])
            .await
            .unwrap();
        let m = p.wait_message(&format!("rs-{name}"));
        assert_eq!(
            m["packets"][1].as_str().map(str::len),
            Some(big.len()),
            "{name}"
        );
        p.broadcast(json!([format!("py-{name}"), big]));
        let m = next(&r, name).await;
        assert_eq!(m.packets()[0].as_str(), Some(format!("py-{name}").as_str()));
        assert_eq!(m.packets()[1].as_str(), Some(big.as_str()));
        let stats = r.snapshot().await.unwrap();
        assert!(stats.errors.is_empty(), "{name}: {:?}", stats.errors);
        r.close().await;
    }
}
