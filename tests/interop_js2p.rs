//! Interop with the real js2p 0.7.870 (from npm, `tests/js2p`), each js2p
//! node in its own Node.js process (`tests/js2p/peer.js`), over real
//! loopback sockets; rs2p nodes are in-process `MeshSocket`s. The last test
//! adds real py2p 0.7.878 nodes: one mesh of all three implementations.
//!
//! Needs `RS2P_JS2P_DIR` (and `RS2P_PYTHON` for the three-implementation
//! mesh); fails without them (see `tests/support/js2p.rs`).
//!
//! What js2p does that shapes these tests (tests/js2p/README.md):
//! - on one loopback address its `connect` dials only while no peer shares
//!   the host or the port, so topologies are built by explicit connects
//!   (`connect_force` where a js2p node dials a second time), and js2p
//!   never dials from peer lists here; rs2p nodes get `max_outgoing` 0 so
//!   that lines stay lines;
//! - its routed reply path throws (see
//!   [`rs2p_survives_js2p_broken_routed_reply`]), so js2p is only ever the
//!   *answerer* of route requests or the *target* of a routed reply;
//! - it cannot do wss at all (see the two `wss_` tests).

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rs2p::protocol::compression::decompress;
use rs2p::protocol::mesh::CloseReason;
use rs2p::protocol::{Compression, Protocol};
use rs2p::{packets, Error, Event, MeshSocket, Message, MessageKind, Packet};
use serde_json::{json, Value};
use support::mesh::{
    collect_until, drain_now, next_with, rs_node, wait_event, wait_no_peer, wait_peer,
    wait_peers_exact,
};
use support::process::{text_of, NodeProcess};
use support::wait::WAIT;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

/// How long the tests wait for a duplicate that should never come.
const QUIET: Duration = Duration::from_millis(500);

fn js(name: &str, transport: &str) -> NodeProcess {
    NodeProcess::js2p(name, "mesh", transport, None)
}

/// Collects messages at `node` until one carrying each text of `want` (as
/// its first packet) has arrived; asserts that nothing else arrived and
/// nothing twice. Returns the messages by text.
async fn expect_each_once(node: &MeshSocket, who: &str, want: &[&str]) -> HashMap<String, Message> {
    let what = format!("{who} waiting for {want:?}");
    let got = collect_until(node, WAIT, &what, |ms| {
        want.iter()
            .all(|w| ms.iter().any(|m| m.packets()[0].as_str() == Some(*w)))
    })
    .await;
    let mut by_text = HashMap::new();
    for m in got {
        let t = m.packets()[0].as_str().unwrap_or_default().to_owned();
        assert!(want.contains(&t.as_str()), "{who}: unexpected {m:?}");
        assert!(
            by_text.insert(t, m.clone()).is_none(),
            "{who}: twice: {m:?}"
        );
    }
    by_text
}

/// Waits for one message event carrying each text of `want` at a process
/// node; asserts none of them arrived twice so far. Returns them by text.
fn expect_each_once_proc(node: &mut NodeProcess, want: &[&str]) -> HashMap<String, Value> {
    let mut by_text = HashMap::new();
    for w in want {
        let m = node.wait_message(w);
        by_text.insert((*w).to_owned(), m);
    }
    for w in want {
        let n = node.messages().filter(|l| text_of(&l.value) == *w).count();
        assert_eq!(n, 1, "{}: {w} arrived {n} times", node.name);
    }
    by_text
}

/// Waits [`QUIET`] once, then asserts that no further message arrived at
/// any of the rs2p nodes `rs` or the process nodes `procs` (a bounded check
/// of absence: a late duplicate would show here).
async fn assert_quiet(rs: &[(&MeshSocket, &str)], procs: &mut [&mut NodeProcess]) {
    tokio::time::sleep(QUIET).await;
    for (node, who) in rs {
        let extra = drain_now(node);
        assert!(extra.is_empty(), "{who}: more messages: {extra:?}");
    }
    for node in procs {
        node.assert_no_more_messages(Duration::ZERO);
    }
}

/// Asserts that js2p reported no exception of its own.
fn assert_js2p_clean(nodes: &mut [&mut NodeProcess]) {
    for node in nodes {
        let errors = node.js2p_errors();
        assert!(errors.is_empty(), "{}: js2p errors: {errors:?}", node.name);
    }
}

/// Asserts that js2p node `j` keys rs2p node `r` by a str id (what makes
/// its lookups by id work; bin ids would miss).
fn assert_keyed_by_str(j: &mut NodeProcess, r: &MeshSocket) {
    let table = j.js2p_table();
    let rid = r.id().to_string();
    let entries: Vec<&Value> = table.iter().filter(|e| e["id"] == rid.as_str()).collect();
    assert_eq!(entries.len(), 1, "{}: entries for {rid}: {table:?}", j.name);
    assert_eq!(entries[0]["type"], "str", "{}: {table:?}", j.name);
}

/// `len` pseudo-random lowercase letters (compress poorly).
fn noise(len: u32) -> String {
    (0..len)
        .map(|i| char::from(b'a' + (i.wrapping_mul(2_654_435_761) >> 27) as u8 % 26))
        .collect()
}

/// J1 – R – J2 over `transport`: J1 dials R (js2p is the client), R dials
/// J2 (rs2p is the client). Every node broadcasts; every other node gets
/// each broadcast exactly once, with its sender and typed packets intact.
async fn js_rs_js_line(transport: &str) {
    let mut j1 = js("J1", transport);
    let mut j2 = js("J2", transport);
    let r = rs_node("mesh", transport, 0).await;

    j1.connect(r.addr().port());
    wait_peer(&r, &j1.peer_id(), "J1 at R").await;
    let got = r
        .connect("127.0.0.1", j2.port, None)
        .await
        .unwrap_or_else(|e| panic!("R → J2 over {transport}: {e}"));
    assert_eq!(got.to_string(), j2.id);
    assert_eq!(j1.wait_peer_count(1), vec![r.id().to_string()]);
    assert_eq!(j2.wait_peer_count(1), vec![r.id().to_string()]);
    assert_keyed_by_str(&mut j1, &r);
    assert_keyed_by_str(&mut j2, &r);
    let table = r.routing_table().await.unwrap();
    let j1_entry = table.iter().find(|p| p.id == j1.peer_id()).expect("J1");
    assert!(!j1_entry.outgoing, "J1 dialled R");
    let j2_entry = table.iter().find(|p| p.id == j2.peer_id()).expect("J2");
    assert!(j2_entry.outgoing, "R dialled J2");

    j1.broadcast(json!(["from-J1", {"$bin": "00ff10"}, -7, [1, [2, "x"]], {"k": 1.5}]));
    // Large enough to span many TLS records and TCP segments, and not
    // compressible.
    let big = noise(100_000);
    j2.broadcast(json!(["from-J2", "é ∑", null, true, big]));
    r.send(packets![
        "from-R",
        Packet::bin(&b"\x01\x02"[..]),
        1u64 << 40,
        -3,
        big.clone()
    ])
    .await
    .unwrap();

    let at_r = expect_each_once(&r, "R", &["from-J1", "from-J2"]).await;
    let m = &at_r["from-J1"];
    assert_eq!(m.sender().to_string(), j1.id);
    assert_eq!(m.kind(), MessageKind::Broadcast);
    assert_eq!(m.packets()[1], Packet::bin(vec![0, 0xff, 0x10]));
    assert_eq!(m.packets()[2].as_i64(), Some(-7));
    let m = &at_r["from-J2"];
    assert_eq!(m.sender().to_string(), j2.id);
    assert_eq!(m.packets()[1].as_str(), Some("é ∑"));
    assert_eq!(m.packets()[2], Packet::Nil);
    assert_eq!(m.packets()[4].as_str(), Some(big.as_str()));

    let (j1_id, j2_id) = (j1.id.clone(), j2.id.clone());
    for (node, me, other, other_id) in [
        (&mut j1, "from-J1", "from-J2", j2_id),
        (&mut j2, "from-J2", "from-J1", j1_id),
    ] {
        let got = expect_each_once_proc(node, &["from-R", other]);
        let m = &got["from-R"];
        assert_eq!(m["kind"], "broadcast");
        assert_eq!(m["sender"], r.id().to_string());
        assert_eq!(m["sender_type"], "str");
        assert_eq!(m["packets"][1], json!({"$bin": "0102"}));
        assert_eq!(m["packets"][2], json!(1u64 << 40));
        assert_eq!(m["packets"][3], json!(-3));
        assert_eq!(m["packets"][4].as_str(), Some(big.as_str()));
        // Relayed by R, byte for byte: still the other js2p node's.
        assert_eq!(got[other]["sender"], other_id.as_str());
        assert_eq!(got[other]["sender_type"], "str");
        if other == "from-J2" {
            assert_eq!(got[other]["packets"][4].as_str(), Some(big.as_str()));
        }
        assert!(
            node.messages().all(|l| text_of(&l.value) != me),
            "{} got its own broadcast back",
            node.name
        );
    }
    if transport == "Plaintext" {
        let m = &j2
            .messages()
            .find(|l| text_of(&l.value) == "from-J1")
            .unwrap()
            .value;
        assert_eq!(m["packets"][3], json!([1, [2, "x"]]));
        assert_eq!(m["packets"][4], json!({"k": 1.5}));
    }
    assert_quiet(&[(&r, "R")], &mut [&mut j1, &mut j2]).await;
    assert_js2p_clean(&mut [&mut j1, &mut j2]);
    r.close().await;
}

/// Plaintext: J1 – R – J2, each kind of node dialling once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_broadcasts_both_ways_once() {
    js_rs_js_line("Plaintext").await;
}

/// SSL both ways: js2p dials rs2p's TLS listener, and rs2p (compatibility
/// mode) dials js2p's, which presents a self-signed 1024-bit RSA
/// certificate (rustls's verifier would refuse that key size: compatibility
/// mode accepts any certificate and handshake signature).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssl_broadcasts_both_ways_once() {
    js_rs_js_line("SSL").await;
}

/// WebSocket both ways (each frame one binary message). An accepting js2p
/// says nothing until the dialler's handshake arrives; rs2p's dialler
/// sends its handshake at once, so this works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_broadcasts_both_ways_once() {
    js_rs_js_line("ws").await;
}

/// Every node broadcasts; each of `rs` and `procs` must get every other
/// node's broadcast exactly once. `origin` names are `from-<name>`.
async fn every_broadcast_once(rs: &[(&MeshSocket, &str)], procs: &mut [&mut NodeProcess]) {
    let mut all: Vec<String> = rs.iter().map(|(_, n)| format!("from-{n}")).collect();
    all.extend(procs.iter().map(|p| format!("from-{}", p.name)));
    for p in procs.iter_mut() {
        let text = format!("from-{}", p.name);
        p.broadcast(json!([text, p.id.clone()]));
    }
    for (node, name) in rs {
        node.send(packets![format!("from-{name}"), node.id().to_string()])
            .await
            .unwrap();
    }
    for (node, name) in rs {
        let me = format!("from-{name}");
        let want: Vec<&str> = all
            .iter()
            .map(String::as_str)
            .filter(|t| *t != me)
            .collect();
        let got = expect_each_once(node, name, &want).await;
        for m in got.values() {
            // The sender is the originator, whoever relayed it.
            assert_eq!(
                m.packets()[1].as_str(),
                Some(m.sender().to_string().as_str())
            );
        }
    }
    for p in procs.iter_mut() {
        let me = format!("from-{}", p.name);
        let want: Vec<&str> = all
            .iter()
            .map(String::as_str)
            .filter(|t| *t != me)
            .collect();
        let got = expect_each_once_proc(p, &want);
        for m in got.values() {
            assert_eq!(m["packets"][1], m["sender"], "{}: {m}", p.name);
            assert_eq!(m["kind"], "broadcast");
        }
    }
    assert_quiet(rs, procs).await;
}

/// js2p – rs2p – js2p – rs2p in a line (J1 – R1 – J2 – R2): every
/// broadcast from every node reaches every other node exactly once, relayed
/// by rs2p and by js2p nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_line_jrjr_delivers_every_broadcast_once() {
    let mut j1 = js("J1", "Plaintext");
    let mut j2 = js("J2", "Plaintext");
    let r1 = rs_node("mesh", "Plaintext", 0).await;
    let r2 = rs_node("mesh", "Plaintext", 0).await;
    // J1 → R1 and J2 → R1 (js2p dials), R2 → J2 (rs2p dials).
    j1.connect(r1.addr().port());
    j2.connect(r1.addr().port());
    r2.connect("127.0.0.1", j2.port, None)
        .await
        .expect("R2 → J2");
    wait_peers_exact(&r1, &[j1.peer_id(), j2.peer_id()].into(), "R1").await;
    wait_peers_exact(&r2, &[j2.peer_id()].into(), "R2").await;
    assert_eq!(j1.wait_peer_count(1), vec![r1.id().to_string()]);
    j2.wait_peer_count(2);

    every_broadcast_once(&[(&r1, "R1"), (&r2, "R2")], &mut [&mut j1, &mut j2]).await;
    // The line held: no node learnt a shortcut from a peer list.
    wait_peers_exact(&r1, &[j1.peer_id(), j2.peer_id()].into(), "R1").await;
    wait_peers_exact(&r2, &[j2.peer_id()].into(), "R2").await;
    assert_js2p_clean(&mut [&mut j1, &mut j2]);
    r1.close().await;
    r2.close().await;
}

/// rs2p – js2p – rs2p (R1 – J – R2, J dials both, the second time past
/// js2p's same-host check): every broadcast reaches every other node once,
/// the rs2p nodes' through the js2p relay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_line_rjr_delivers_every_broadcast_once() {
    let mut j = js("J", "Plaintext");
    let r1 = rs_node("mesh", "Plaintext", 0).await;
    let r2 = rs_node("mesh", "Plaintext", 0).await;
    j.connect(r1.addr().port());
    wait_peer(&r1, &j.peer_id(), "J at R1").await;
    j.connect_force(r2.addr().port());
    wait_peer(&r2, &j.peer_id(), "J at R2").await;
    j.wait_peer_count(2);

    every_broadcast_once(&[(&r1, "R1"), (&r2, "R2")], &mut [&mut j]).await;
    wait_peers_exact(&r1, &[j.peer_id()].into(), "R1").await;
    wait_peers_exact(&r2, &[j.peer_id()].into(), "R2").await;
    assert_js2p_clean(&mut [&mut j]);
    r1.close().await;
    r2.close().await;
}

/// Whispers both ways, and direct replies both ways: js2p replies to an
/// rs2p broadcast and to an rs2p whisper (js2p finds the rs2p sender in its
/// routing table: our id arrives as str), and rs2p replies to a js2p
/// broadcast and whisper.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whisper_and_direct_reply_both_ways() {
    let mut j = js("J", "Plaintext");
    let r = rs_node("mesh", "Plaintext", 0).await;
    r.connect("127.0.0.1", j.port, None).await.expect("R → J");
    j.wait_peer_count(1);

    r.whisper(&j.peer_id(), packets!["psst", Packet::bin(vec![9])])
        .await
        .unwrap();
    let m = j.wait_message("psst");
    assert_eq!(m["kind"], "whisper");
    assert_eq!(m["sender"], r.id().to_string());
    assert_eq!(m["packets"][1], json!({"$bin": "09"}));
    j.op(json!({"op": "whisper", "to": r.id().to_string(), "packets": ["psst-back", 5]}));
    let m = next_with(&r, "psst-back").await;
    assert_eq!(m.kind(), MessageKind::Whisper);
    assert_eq!(m.sender().to_string(), j.id);
    assert_eq!(m.packets()[1].as_i64(), Some(5));

    // js2p replies to an rs2p broadcast, then to an rs2p whisper.
    r.send(packets!["question"]).await.unwrap();
    let q = j.wait_message("question");
    j.op(json!({"op": "reply", "to_msg": q["n"], "packets": ["answer"]}));
    let how = j.wait_for("reply event", |v| v["event"] == "reply");
    assert_eq!(how["path"], "direct", "js2p did not find R by its id");
    let m = next_with(&r, "answer").await;
    assert_eq!(m.kind(), MessageKind::Whisper);
    assert_eq!(m.sender().to_string(), j.id);

    r.whisper(&j.peer_id(), packets!["whispered question"])
        .await
        .unwrap();
    let q = j.wait_message("whispered question");
    j.op(json!({"op": "reply", "to_msg": q["n"], "packets": ["whispered answer"]}));
    let how = j.wait_for("reply event", |v| v["event"] == "reply");
    assert_eq!(how["path"], "direct");
    let m = next_with(&r, "whispered answer").await;
    assert_eq!(m.kind(), MessageKind::Whisper);

    // rs2p replies to a js2p broadcast, then to a js2p whisper.
    j.broadcast(json!(["hello from J"]));
    let m = next_with(&r, "hello from J").await;
    assert_eq!(m.kind(), MessageKind::Broadcast);
    m.reply(packets!["reply to broadcast"]).unwrap();
    let got = j.wait_message("reply to broadcast");
    assert_eq!(got["kind"], "whisper");
    assert_eq!(got["sender"], r.id().to_string());
    j.op(json!({"op": "whisper", "to": r.id().to_string(), "packets": ["whisper from J"]}));
    let m = next_with(&r, "whisper from J").await;
    m.reply(packets!["reply to whisper"]).unwrap();
    let got = j.wait_message("reply to whisper");
    assert_eq!(got["kind"], "whisper");

    assert_quiet(&[(&r, "R")], &mut [&mut j]).await;
    assert_js2p_clean(&mut [&mut j]);
    r.close().await;
}

/// A routed reply *to* js2p: in the line J – R1 – R2, R2 replies to J's
/// broadcast. R2 has no link to J, so it floods a route request; R1 answers
/// with J's address; R2 dials J and whispers. js2p only has to accept a
/// connection and a whisper here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routed_reply_to_js2p_through_rs2p_route() {
    let mut j = js("J", "Plaintext");
    let r1 = rs_node("mesh", "Plaintext", 0).await;
    let r2 = rs_node("mesh", "Plaintext", 0).await;
    j.connect(r1.addr().port());
    r2.connect("127.0.0.1", r1.addr().port(), None)
        .await
        .expect("R2 → R1");
    wait_peers_exact(&r1, &[j.peer_id(), r2.id().clone()].into(), "R1").await;
    assert!(r2
        .routing_table()
        .await
        .unwrap()
        .iter()
        .all(|p| p.id != j.peer_id()));

    j.broadcast(json!(["ask me"]));
    let _ = next_with(&r1, "ask me").await;
    let m = next_with(&r2, "ask me").await;
    assert_eq!(m.sender().to_string(), j.id);
    m.reply(packets!["routed answer"]).unwrap();
    let got = j.wait_message("routed answer");
    assert_eq!(got["kind"], "whisper");
    assert_eq!(got["sender"], r2.id().to_string());
    // R2 dialled J to deliver it.
    wait_peer(&r2, &j.peer_id(), "J at R2").await;
    assert!(r2
        .routing_table()
        .await
        .unwrap()
        .iter()
        .any(|p| p.id == j.peer_id() && p.outgoing));
    assert_quiet(&[(&r1, "R1"), (&r2, "R2")], &mut [&mut j]).await;
    assert_js2p_clean(&mut [&mut j]);
    r1.close().await;
    r2.close().await;
}

/// A routed reply between rs2p nodes whose route request js2p answers: in
/// the line R1 – J – R2, R2 replies to R1's broadcast; js2p has R1 in its
/// routing table under the str id R1 sent and answers R2's route request
/// (which names R1 in R1's own form, str) with R1's address; R2 dials R1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routed_reply_through_js2p_route_answer() {
    let mut j = js("J", "Plaintext");
    let r1 = rs_node("mesh", "Plaintext", 0).await;
    let r2 = rs_node("mesh", "Plaintext", 0).await;
    j.connect(r1.addr().port());
    wait_peer(&r1, &j.peer_id(), "J at R1").await;
    j.connect_force(r2.addr().port());
    wait_peer(&r2, &j.peer_id(), "J at R2").await;
    j.wait_peer_count(2);

    r1.send(packets!["from R1"]).await.unwrap();
    j.wait_message("from R1");
    let m = next_with(&r2, "from R1").await;
    m.reply(packets!["via js2p's route"]).unwrap();
    let got = next_with(&r1, "via js2p's route").await;
    assert_eq!(got.kind(), MessageKind::Whisper);
    assert_eq!(got.sender(), r2.id());
    assert!(r2
        .routing_table()
        .await
        .unwrap()
        .iter()
        .any(|p| &p.id == r1.id() && p.outgoing));
    assert_quiet(&[(&r1, "R1"), (&r2, "R2")], &mut [&mut j]).await;
    assert_js2p_clean(&mut [&mut j]);
    r1.close().await;
    r2.close().await;
}

/// rs2p survives js2p's broken routed reply. In the line J – R1 – R2, J
/// replies to R2's broadcast: J is not connected to R2, so js2p broadcasts
/// a route request, and R1 answers it on J's connection with R2's address.
/// What js2p then does wrong (js2p 0.7.870, `mesh.js` line 544, in
/// `__handle_response`): it calls `connect` for R2's address, which
/// returns at once here (a peer already shares the host) without dialling,
/// then calls `routing_table.get(R2).send(...)` at once: the lookup misses
/// and the call throws `TypeError: Cannot read properties of undefined
/// (reading 'send')`. (Where `connect` does dial, it puts R2 in the table
/// at once, and the same line throws on its argument instead: it spreads
/// `info[2]`, a number, as a list.) Its message loop catches the exception
/// and drops the connection the response came on: the link to R1. The
/// reply is never delivered.
///
/// rs2p must not care: R1 sees J leave, keeps its link to R2, and R1 and
/// R2 keep exchanging broadcasts; neither node's actor dies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rs2p_survives_js2p_broken_routed_reply() {
    let mut j = js("J", "Plaintext");
    let r1 = rs_node("mesh", "Plaintext", 0).await;
    let r2 = rs_node("mesh", "Plaintext", 0).await;
    let mut r1_events = r1.events();
    j.connect(r1.addr().port());
    r2.connect("127.0.0.1", r1.addr().port(), None)
        .await
        .expect("R2 → R1");
    wait_peers_exact(&r1, &[j.peer_id(), r2.id().clone()].into(), "R1").await;

    r2.send(packets!["far question"]).await.unwrap();
    let _ = next_with(&r1, "far question").await;
    let q = j.wait_message("far question");
    assert_eq!(q["sender"], r2.id().to_string());
    j.op(json!({"op": "reply", "to_msg": q["n"], "packets": ["lost answer"]}));
    let how = j.wait_for("reply event", |v| v["event"] == "reply");
    assert_eq!(how["path"], "route_request");

    // js2p throws on R1's route response and drops the link to R1.
    let err = j.wait_for("js2p's exception", |v| {
        v["event"] == "error" && v["source"] == "js2p"
    });
    let text = err["error"].as_str().unwrap_or_default();
    assert!(
        text.contains("TypeError") && text.contains("__handle_response"),
        "{err}"
    );
    let closed = j.wait_for("closed event", |v| v["event"] == "closed");
    assert_eq!(closed["peer"], r1.id().to_string());
    let j_id = j.peer_id();
    wait_event(
        &mut r1_events,
        WAIT,
        "J leaves R1",
        |e| matches!(e, Event::PeerLeft(id) if *id == j_id),
    )
    .await;
    wait_no_peer(&r1, &j.peer_id(), "R1").await;
    assert!(j.peers().is_empty(), "J still lists a peer");

    // The rs2p nodes carry on: R1's other link is intact, broadcasts flow
    // both ways, and both actors still answer.
    wait_peers_exact(&r1, &[r2.id().clone()].into(), "R1").await;
    wait_peers_exact(&r2, &[r1.id().clone()].into(), "R2").await;
    r1.send(packets!["still here 1"]).await.unwrap();
    r2.send(packets!["still here 2"]).await.unwrap();
    assert_eq!(next_with(&r2, "still here 1").await.sender(), r1.id());
    assert_eq!(next_with(&r1, "still here 2").await.sender(), r2.id());
    for (node, name) in [(&r1, "R1"), (&r2, "R2")] {
        let snap = node
            .snapshot()
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(snap.peers.len(), 1, "{name}");
    }
    // The answer never arrives anywhere.
    tokio::time::sleep(QUIET).await;
    for (node, name) in [(&r1, "R1"), (&r2, "R2")] {
        let extra = drain_now(node);
        assert!(extra.is_empty(), "{name}: {extra:?}");
    }
    r1.close().await;
    r2.close().await;
}

/// A TCP relay on loopback in front of `127.0.0.1:target` that keeps every
/// byte of its first connection: `up` what the dialler sent, `down` what
/// came back. Lets a test look at the frames on the wire.
struct Tap {
    port: u16,
    up: Arc<Mutex<Vec<u8>>>,
    down: Arc<Mutex<Vec<u8>>>,
}

impl Tap {
    async fn new(target: u16) -> Tap {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind tap");
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(Mutex::new(Vec::new()));
        let down = Arc::new(Mutex::new(Vec::new()));
        let (up2, down2) = (up.clone(), down.clone());
        tokio::spawn(async move {
            let (inbound, _) = listener.accept().await.expect("tap accept");
            let outbound = TcpStream::connect(("127.0.0.1", target))
                .await
                .expect("tap connect");
            let (ri, wi) = inbound.into_split();
            let (ro, wo) = outbound.into_split();
            tokio::spawn(pump(ri, wo, up2));
            tokio::spawn(pump(ro, wi, down2));
        });
        Tap { port, up, down }
    }
}

/// Copies `from` to `to`, keeping a copy of every byte in `log`.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, log: Arc<Mutex<Vec<u8>>>) {
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 {
            break;
        }
        log.lock().unwrap().extend_from_slice(&buf[..n]);
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// The bodies of the complete frames in `bytes` (a u32 big-endian length
/// prefix each).
fn bodies(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while rest.len() >= 4 {
        let n = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        if rest.len() < 4 + n {
            break;
        }
        out.push(rest[4..4 + n].to_vec());
        rest = &rest[4 + n..];
    }
    out
}

/// Asserts that the frame carrying `payload` in `wire` went out compressed
/// with `method` (and is far smaller than the payload), and that no frame
/// carried it uncompressed.
fn assert_sent_compressed(wire: &[u8], payload: &str, method: Compression, what: &str) {
    let contains = |hay: &[u8]| hay.windows(payload.len()).any(|w| w == payload.as_bytes());
    let frames = bodies(wire);
    assert!(
        frames.iter().all(|b| !contains(b)),
        "{what}: the payload went out uncompressed"
    );
    let carrying: Vec<&Vec<u8>> = frames
        .iter()
        .filter(|b| decompress(method, b, 1 << 20).is_ok_and(|plain| contains(&plain)))
        .collect();
    assert_eq!(
        carrying.len(),
        1,
        "{what}: frames decompressing with {method} to the payload, of {}",
        frames.len()
    );
    assert!(
        carrying[0].len() < payload.len() / 10,
        "{what}: {} bytes on the wire for {}",
        carrying[0].len(),
        payload.len()
    );
}

/// Compression negotiation: js2p restricted to zlib only, then to gzip
/// only. rs2p sees the one method js2p advertises and picks it (the first
/// of its own list that the peer offers; its list starts with snappy,
/// which js2p lacks here): a relay between the two shows the 16 KB
/// repetitive payloads going out compressed with that method, both ways,
/// and they arrive whole. rs2p dials js2p for zlib; js2p dials rs2p for
/// gzip.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compression_zlib_only_and_gzip_only() {
    let big = "p2p-today ".repeat(1_600); // 16,000 bytes, compresses well
    for method in [Compression::Zlib, Compression::Gzip] {
        let name = method.name();
        let mut j = NodeProcess::js2p(name, "mesh", "Plaintext", Some(&[method.as_u8()]));
        let ready = &j.lines()[0].value;
        assert_eq!(ready["compression"], json!([method.as_u8()]), "{ready}");
        let r = rs_node("mesh", "Plaintext", 0).await;
        // (rs2p's frames, js2p's frames)
        let (from_r, from_j);
        let tap;
        if method == Compression::Zlib {
            tap = Tap::new(j.port).await;
            r.connect("127.0.0.1", tap.port, None).await.expect("R → J");
            (from_r, from_j) = (&tap.up, &tap.down);
        } else {
            tap = Tap::new(r.addr().port()).await;
            j.connect(tap.port);
            wait_peer(&r, &j.peer_id(), "J at R").await;
            (from_r, from_j) = (&tap.down, &tap.up);
        }
        j.wait_peer_count(1);
        let table = r.routing_table().await.unwrap();
        assert_eq!(table[0].compression, vec![method], "{name}");
        assert_eq!(Compression::ALL[0], Compression::Snappy);

        r.send(packets![format!("rs-{name}"), big.clone()])
            .await
            .unwrap();
        let m = j.wait_message(&format!("rs-{name}"));
        assert_eq!(m["packets"][1].as_str(), Some(big.as_str()), "{name}");
        assert_sent_compressed(&from_r.lock().unwrap(), &big, method, "rs2p → js2p");
        j.broadcast(json!([format!("js-{name}"), big]));
        let m = next_with(&r, &format!("js-{name}")).await;
        assert_eq!(m.packets()[1].as_str(), Some(big.as_str()), "{name}");
        assert_sent_compressed(&from_j.lock().unwrap(), &big, method, "js2p → rs2p");
        let stats = r.snapshot().await.unwrap();
        assert!(stats.errors.is_empty(), "{name}: {:?}", stats.errors);
        assert_eq!(stats.peers.len(), 1, "{name}: the link held");
        assert_js2p_clean(&mut [&mut j]);
        r.close().await;
    }
}

/// A node on another subnet is refused, whichever side dials: rs2p refuses
/// a js2p node of another subnet, js2p (silently) refuses rs2p's, and
/// neither routing table holds the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subnet_mismatch_is_refused_both_ways() {
    let mut j = NodeProcess::js2p("J", "other", "Plaintext", None);
    let r = rs_node("mesh", "Plaintext", 4).await;
    // rs2p dials: js2p's handshake names another subnet.
    match r.connect("127.0.0.1", j.port, None).await {
        Err(Error::SubnetMismatch { ours, theirs }) => {
            assert_eq!(ours, Protocol::new("mesh", "Plaintext").id());
            assert_eq!(theirs, Protocol::new("other", "Plaintext").id());
        }
        other => panic!("expected a subnet mismatch, got {other:?}"),
    }
    // js2p dials: rs2p rejects it.
    let mut events = r.events();
    j.connect(r.addr().port());
    let ev = wait_event(&mut events, WAIT, "rejection", |e| {
        matches!(e, Event::Rejected { .. })
    })
    .await;
    let Event::Rejected { reason, .. } = ev else {
        unreachable!()
    };
    assert_eq!(
        reason,
        CloseReason::SubnetMismatch {
            theirs: Protocol::new("other", "Plaintext").id().to_owned()
        }
    );
    // js2p sees the connection end.
    j.wait_for("closed event", |v| v["event"] == "closed");
    assert!(r.routing_table().await.unwrap().is_empty());
    assert!(j.peers().is_empty());
    assert!(j.js2p_table().is_empty());
    r.close().await;
}

/// js2p cannot listen on wss: its WebSocket server is made with
/// `secure: true` but no key or certificate, so every TLS handshake with
/// it fails. rs2p dialling it gets a clear error in bounded time, and the
/// rs2p node keeps serving others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_rs2p_cannot_dial_js2p() {
    let j = js("J", "wss");
    let r = rs_node("mesh", "wss", 0).await;
    let started = Instant::now();
    let err = r
        .connect("127.0.0.1", j.port, None)
        .await
        .expect_err("a wss dial to js2p succeeded");
    let took = started.elapsed();
    assert!(took < WAIT, "the failed dial took {took:?}");
    let text = err.to_string();
    assert!(
        text.contains("wss TLS handshake") && text.contains("failed"),
        "not a clear error: {text}"
    );
    eprintln!("rs2p → js2p over wss: {text} (after {took:?})");
    assert!(r.routing_table().await.unwrap().is_empty());

    // R still serves: another rs2p node joins and broadcasts flow.
    let other = rs_node("mesh", "wss", 0).await;
    other
        .connect("127.0.0.1", r.addr().port(), None)
        .await
        .expect("R' → R over wss");
    other.send(packets!["after the failure"]).await.unwrap();
    assert_eq!(
        next_with(&r, "after the failure").await.sender(),
        other.id()
    );
    r.send(packets!["still serving"]).await.unwrap();
    assert_eq!(next_with(&other, "still serving").await.sender(), r.id());
    r.close().await;
    other.close().await;
}

/// js2p cannot dial wss either: its dialler (nodejs-websocket) verifies
/// the server certificate and rejects rs2p's self-signed one. The rs2p
/// listener refuses nothing of its own and keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_js2p_cannot_dial_rs2p() {
    let mut j = js("J", "wss");
    let r = rs_node("mesh", "wss", 0).await;
    j.connect(r.addr().port());
    let err = j.wait_for("js2p's dial error", |v| v["event"] == "error");
    eprintln!("js2p → rs2p over wss: {err}");
    assert!(
        err["error"]
            .as_str()
            .unwrap_or_default()
            .contains("self-signed certificate"),
        "{err}"
    );
    assert!(r.routing_table().await.unwrap().is_empty());
    assert!(j.peers().is_empty());

    let other = rs_node("mesh", "wss", 0).await;
    other
        .connect("127.0.0.1", r.addr().port(), None)
        .await
        .expect("R' → R over wss");
    other.send(packets!["after js2p"]).await.unwrap();
    assert_eq!(next_with(&r, "after js2p").await.sender(), other.id());
    assert!(r
        .routing_table()
        .await
        .unwrap()
        .iter()
        .all(|p| p.id != j.peer_id()));
    r.close().await;
    other.close().await;
}

/// One mesh of all three implementations: py2p nodes on one side, js2p
/// nodes on the other, joined only through rs2p nodes:
///
/// ```text
///   P1 – P2 – R1 – R2 – J1 – J2
///              └────────┘          (and R1 – J1)
/// ```
///
/// py2p sends ids as bin and js2p as str; rs2p relays every frame byte for
/// byte, so each node deduplicates each broadcast under one message id and
/// every broadcast from every node reaches every node exactly once. py2p
/// and js2p cannot reply to each other (py2p's reply to a non-peer raises,
/// js2p's routed path throws), but replies cross the bridge where both
/// ends allow: a py2p and a js2p node reply directly to bridge node R1;
/// R2 (on the js2p side) replies to P2 through a route request that R1
/// answers (P1 answers too, one hop further), then dials P2; and R1
/// replies to J2 through a route request that J1 answers.
///
/// py2p loses messages under bursts (its send ignores partial writes), so
/// broadcasts go one at a time, each awaited everywhere before the next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_implementations_one_mesh() {
    let mut p1 = NodeProcess::py2p("P1", "mesh", None, Some(0));
    let mut p2 = NodeProcess::py2p("P2", "mesh", None, Some(0));
    let mut j1 = js("J1", "Plaintext");
    let mut j2 = js("J2", "Plaintext");
    let r1 = rs_node("mesh", "Plaintext", 0).await;
    let r2 = rs_node("mesh", "Plaintext", 0).await;

    p2.connect(p1.port); // py2p – py2p
    r1.connect("127.0.0.1", p2.port, None)
        .await
        .expect("R1 → P2");
    r2.connect("127.0.0.1", r1.addr().port(), None)
        .await
        .expect("R2 → R1");
    j1.connect(r2.addr().port()); // js2p → rs2p
    r1.connect("127.0.0.1", j1.port, None)
        .await
        .expect("R1 → J1");
    j2.connect(j1.port); // js2p – js2p
    wait_peers_exact(
        &r1,
        &[p2.peer_id(), r2.id().clone(), j1.peer_id()].into(),
        "R1",
    )
    .await;
    wait_peers_exact(&r2, &[r1.id().clone(), j1.peer_id()].into(), "R2").await;
    assert_eq!(p1.wait_peer_count(1), vec![p2.id.clone()]);
    p2.wait_peer_count(2);
    j1.wait_peer_count(3);
    assert_eq!(j2.wait_peer_count(1), vec![j1.id.clone()]);

    // Every node broadcasts in turn; every other node gets it once.
    let names = ["P1", "P2", "R1", "R2", "J1", "J2"];
    for origin in names {
        let text = format!("from-{origin}");
        match origin {
            "P1" => p1.broadcast(json!([text, p1.id])),
            "P2" => p2.broadcast(json!([text, p2.id])),
            "J1" => j1.broadcast(json!([text, j1.id])),
            "J2" => j2.broadcast(json!([text, j2.id])),
            "R1" => drop(
                r1.send(packets![text.clone(), r1.id().to_string()])
                    .await
                    .unwrap(),
            ),
            _ => drop(
                r2.send(packets![text.clone(), r2.id().to_string()])
                    .await
                    .unwrap(),
            ),
        }
        for (node, name) in [(&r1, "R1"), (&r2, "R2")] {
            if name != origin {
                let m = next_with(node, &text).await;
                assert_eq!(m.kind(), MessageKind::Broadcast);
                assert_eq!(
                    m.packets()[1].as_str(),
                    Some(m.sender().to_string().as_str())
                );
            }
        }
        for node in [&mut p1, &mut p2, &mut j1, &mut j2] {
            if node.name != origin {
                let m = node.wait_message(&text);
                assert_eq!(m["kind"], "broadcast", "{}", node.name);
                assert_eq!(m["packets"][1], m["sender"], "{}: {m}", node.name);
            }
        }
    }
    // A js2p node got py2p's broadcasts with py2p's bin sender, unchanged.
    let from_p1 = j2
        .messages()
        .find(|l| text_of(&l.value) == "from-P1")
        .expect("from-P1 at J2");
    assert_eq!(from_p1.value["sender_type"], "bin");
    // Exactly once: nothing arrived twice, and nothing arrives late.
    for node in [&mut p1, &mut p2, &mut j1, &mut j2] {
        for origin in names.iter().filter(|o| **o != node.name) {
            let text = format!("from-{origin}");
            let n = node
                .messages()
                .filter(|l| text_of(&l.value) == text)
                .count();
            assert_eq!(n, 1, "{}: {text} arrived {n} times", node.name);
        }
    }
    assert_quiet(
        &[(&r1, "R1"), (&r2, "R2")],
        &mut [&mut p1, &mut p2, &mut j1, &mut j2],
    )
    .await;

    // py2p and js2p reply directly to a broadcast of bridge node R1.
    r1.send(packets!["bridge question"]).await.unwrap();
    let _ = next_with(&r2, "bridge question").await;
    let q = p2.wait_message("bridge question");
    p2.op(json!({"op": "reply", "to_msg": q["n"], "packets": ["answer from P2"]}));
    let q = j1.wait_message("bridge question");
    j1.op(json!({"op": "reply", "to_msg": q["n"], "packets": ["answer from J1"]}));
    let how = j1.wait_for("reply event", |v| v["event"] == "reply");
    assert_eq!(how["path"], "direct");
    let got = expect_each_once(&r1, "R1", &["answer from P2", "answer from J1"]).await;
    for (text, from) in [("answer from P2", &p2.id), ("answer from J1", &j1.id)] {
        assert_eq!(got[text].kind(), MessageKind::Whisper);
        assert_eq!(&got[text].sender().to_string(), from);
    }
    p1.wait_message("bridge question");
    j2.wait_message("bridge question");

    // R2, on the js2p side, replies to P2's broadcast: a route request
    // crosses the bridge, R1 answers with P2's address, R2 dials P2.
    p2.broadcast(json!(["ask across"]));
    let _ = next_with(&r1, "ask across").await;
    let m = next_with(&r2, "ask across").await;
    assert_eq!(m.sender().to_string(), p2.id);
    m.reply(packets!["answer across the bridge"]).unwrap();
    let got = p2.wait_message("answer across the bridge");
    assert_eq!(got["kind"], "whisper");
    assert_eq!(got["sender"], r2.id().to_string());
    wait_peer(&r2, &p2.peer_id(), "P2 at R2").await;
    for node in [&mut p1, &mut j1, &mut j2] {
        node.wait_message("ask across");
    }

    // And the other way round: bridge node R1 replies to J2's broadcast;
    // J1, the only node linked to J2, answers R1's route request; R1
    // dials J2.
    j2.broadcast(json!(["js2p asks"]));
    let _ = next_with(&r2, "js2p asks").await;
    let m = next_with(&r1, "js2p asks").await;
    assert_eq!(m.sender().to_string(), j2.id);
    m.reply(packets!["answer via J1's route"]).unwrap();
    let got = j2.wait_message("answer via J1's route");
    assert_eq!(got["kind"], "whisper");
    assert_eq!(got["sender"], r1.id().to_string());
    wait_peer(&r1, &j2.peer_id(), "J2 at R1").await;
    for node in [&mut p1, &mut p2, &mut j1] {
        node.wait_message("js2p asks");
    }
    assert_quiet(
        &[(&r1, "R1"), (&r2, "R2")],
        &mut [&mut p1, &mut p2, &mut j1, &mut j2],
    )
    .await;
    assert_js2p_clean(&mut [&mut j1, &mut j2]);
    r1.close().await;
    r2.close().await;
}
