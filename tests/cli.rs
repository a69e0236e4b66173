//! End-to-end tests of the `rs2p` binary: `rs2p node --json` processes
//! driven through their stdin and read through their stdout.

mod support;

use std::thread;
use std::time::Duration;

use serde_json::{json, Value};
use support::process::{rs2p_run, NodeProcess};

fn is_event(v: &Value, event: &str, id: &str) -> bool {
    v["event"] == event && v["id"] == id
}

fn is_message(v: &Value, kind: &str, sender: &str) -> bool {
    v["event"] == "message" && v["kind"] == kind && v["sender"] == sender
}

#[test]
fn three_nodes_in_a_line() {
    let mut a = NodeProcess::rs2p("A", &[]);
    let a_addr = a.addr.clone();
    let mut b = NodeProcess::rs2p("B", &["--connect", &a_addr]);
    let (a_id, b_id) = (a.id.clone(), b.id.clone());
    b.wait_for("B connected to A", |v| is_event(v, "connected", &a_id));
    let b_addr = b.addr.clone();
    // C ends on end of input, after a short linger.
    let mut c = NodeProcess::rs2p("C", &["--connect", &b_addr, "--linger", "0.2"]);
    let c_id = c.id.clone();
    c.wait_for("C connected to B", |v| is_event(v, "connected", &b_id));
    // Each side of each link knows the other before anything is sent.
    a.wait_for("A sees B", |v| is_event(v, "peer_joined", &b_id));
    b.wait_for("B sees A", |v| is_event(v, "peer_joined", &a_id));
    b.wait_for("B sees C", |v| is_event(v, "peer_joined", &c_id));
    c.wait_for("C sees B", |v| is_event(v, "peer_joined", &b_id));

    // A broadcast from A reaches B and C.
    let packets = json!([
        "hello",
        42,
        -7,
        {"$bin": "00ff10"},
        [1, [2, "x"], []],
        {"k": "v", "n": -1, "inner": {"$bin": ""}},
        2.5,
        true,
        null
    ]);
    a.op(json!({"op": "broadcast", "packets": packets}));
    let at_b = b.wait_for("the broadcast at B", |v| is_message(v, "broadcast", &a_id));
    let at_c = c.wait_for("the broadcast at C", |v| is_message(v, "broadcast", &a_id));
    assert_eq!(at_b["packets"], packets, "{at_b}");
    assert_eq!(at_c["packets"], packets, "{at_c}");
    assert_eq!(at_b["id"], at_c["id"]);
    let broadcast_id = at_b["id"].as_str().expect("message id").to_owned();
    assert_eq!(broadcast_id.len(), 64, "SHA-256 as hex: {broadcast_id}");
    assert!(at_b["time"].as_u64().expect("time") > 1_600_000_000);

    // A whisper from C to B.
    c.op(json!({"op": "whisper", "to": b_id, "packets": ["psst", {"$bin": "ab"}]}));
    let whisper = b.wait_for("the whisper at B", |v| is_message(v, "whisper", &c_id));
    assert_eq!(whisper["packets"], json!(["psst", {"$bin": "ab"}]));

    // Bad input is reported and the node keeps working.
    let mark = b.mark();
    b.send_line("this is {not JSON");
    let error = b.wait_since(mark, "an error for a malformed line", |v| {
        v["event"] == "error"
    });
    assert!(
        error["error"].as_str().unwrap().contains("not JSON"),
        "{error}"
    );
    let mark = b.mark();
    b.op(json!({"op": "broadcast", "packets": [{"$bin": "0z"}]}));
    let error = b.wait_since(mark, "an error for bad hex", |v| v["event"] == "error");
    assert!(error["error"].as_str().unwrap().contains("hex"), "{error}");
    let mark = b.mark();
    b.op(json!({"op": "peers"}));
    let peers = b.wait_since(mark, "B's peers", |v| v["event"] == "peers");
    let list = peers["peers"].as_array().expect("peers array");
    assert_eq!(list.len(), 2, "{peers}");
    let entry = |id: &str| {
        list.iter()
            .find(|p| p["id"] == id)
            .unwrap_or_else(|| panic!("{id} not in {peers}"))
    };
    assert_eq!(
        entry(&a_id)["addr"],
        a_addr.as_str(),
        "A's advertised address"
    );
    assert_eq!(entry(&a_id)["outgoing"], true, "B dialled A");
    assert_eq!(
        entry(&c_id)["addr"],
        c.addr.as_str(),
        "C's advertised address"
    );
    assert_eq!(entry(&c_id)["outgoing"], false, "C dialled B");

    // Late duplicates would show up here.
    thread::sleep(Duration::from_millis(500));

    a.op(json!({"op": "quit"}));
    b.op(json!({"op": "quit"}));
    c.close_stdin(); // end of input
    for node in [&mut a, &mut b, &mut c] {
        let status = node.wait_exit();
        assert!(status.success(), "{} exited with {status}", node.name);
    }

    assert_eq!(
        a.messages_with_id(&broadcast_id),
        0,
        "A got its own broadcast"
    );
    assert_eq!(b.messages_with_id(&broadcast_id), 1, "B: exactly once");
    assert_eq!(c.messages_with_id(&broadcast_id), 1, "C: exactly once");
    assert!(a.errors().is_empty(), "{:?}", a.errors());
    assert!(c.errors().is_empty(), "{:?}", c.errors());
    assert_eq!(b.errors().len(), 2, "{:?}", b.errors());
}

/// Runs `rs2p` to its end, bounded: status, stdout, stderr.
fn run_to_end(args: &[&str]) -> (std::process::ExitStatus, String, String) {
    let out = rs2p_run(args);
    (out.status, out.stdout, out.stderr)
}

#[test]
fn startup_errors() {
    // Address in use: a runtime failure, exit status 1, and one sentence.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().unwrap().to_string();
    let (status, _, stderr) = run_to_end(&["node", "--bind", &addr]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {addr}: address already in use")),
        "{stderr}"
    );
    assert!(stderr.contains("pick another --bind port"), "{stderr}");

    // A --connect that is not HOST:PORT: a bad argument, exit status 2,
    // before binding.
    let (status, _, stderr) =
        run_to_end(&["node", "--bind", "127.0.0.1:0", "--connect", "nowhere"]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--connect \"nowhere\""), "{stderr}");
}

#[test]
fn refused_connect_keeps_the_node_running() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().unwrap().to_string()
    };
    let mut node = NodeProcess::rs2p("N", &["--connect", &closed]);
    let error = node.wait_for("the connect error", |v| v["event"] == "error");
    assert!(
        error["error"].as_str().unwrap().contains(&closed),
        "{error}"
    );
    let mark = node.mark();
    node.op(json!({"op": "connect", "addr": closed}));
    node.wait_since(mark, "the connect op's error", |v| v["event"] == "error");
    node.op(json!({"op": "peers"}));
    let peers = node.wait_for("peers", |v| v["event"] == "peers");
    assert_eq!(peers["peers"], json!([]));
    node.quit();
}

#[test]
fn send_broadcasts_through_a_node_and_exits() {
    let mut a = NodeProcess::rs2p("A", &[]);
    let a_addr = a.addr.clone();
    let mut b = NodeProcess::rs2p("B", &["--connect", &a_addr]);
    let a_id = a.id.clone();
    b.wait_for("B connected to A", |v| is_event(v, "connected", &a_id));

    // Plain packets are str.
    let (status, out, err) = run_to_end(&["send", "--connect", &a_addr, "hello", "42"]);
    assert!(status.success(), "{status}\n{err}");
    let id = out.trim().to_owned();
    assert_eq!(id.len(), 64, "the message id on stdout: {out:?}");
    assert!(err.contains("through"), "{err}");
    for node in [&mut a, &mut b] {
        let msg = node.wait_for("the sent message", |v| {
            v["event"] == "message" && v["id"] == id.as_str()
        });
        assert_eq!(msg["kind"], "broadcast");
        assert_eq!(msg["packets"], json!(["hello", "42"]));
    }

    // --json packets keep their types.
    let (status, out, err) = run_to_end(&[
        "send",
        "--connect",
        &a_addr,
        "--json",
        "\"hi\"",
        "42",
        "{\"$bin\":\"00ff\"}",
    ]);
    assert!(status.success(), "{status}\n{err}");
    let id = out.trim().to_owned();
    let msg = b.wait_for("the JSON message", |v| {
        v["event"] == "message" && v["id"] == id.as_str()
    });
    assert_eq!(msg["packets"], json!(["hi", 42, {"$bin": "00ff"}]));

    // Late duplicates would show up here.
    thread::sleep(Duration::from_millis(300));
    a.op(json!({"op": "quit"}));
    b.op(json!({"op": "quit"}));
    for node in [&mut a, &mut b] {
        assert!(node.wait_exit().success());
        assert_eq!(node.messages_with_id(&id), 1, "{}: exactly once", node.name);
    }
}

#[test]
fn send_without_a_peer_fails_clearly() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().unwrap().to_string()
    };
    let (status, out, err) = run_to_end(&["send", "--connect", &closed, "hi"]);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains(&format!("cannot join {closed}: connection refused")),
        "{err}"
    );

    let (status, _, err) = run_to_end(&["send", "--connect", "nowhere", "hi"]);
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(
        err.contains("--connect \"nowhere\" is not an address"),
        "{err}"
    );

    // A node on another subnet: both subnet ids, and ours by name.
    let mut a = NodeProcess::rs2p("A", &["--subnet", "elsewhere"]);
    let a_addr = a.addr.clone();
    let (status, _, err) = run_to_end(&["send", "--connect", &a_addr, "--timeout", "5", "hi"]);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("cannot join {a_addr}")), "{err}");
    assert!(err.contains("this node's subnet \"mesh\" has id "), "{err}");
    assert!(err.contains("the peer's id is "), "{err}");
    a.quit();
}

#[test]
fn peers_lists_a_nodes_peers() {
    let mut a = NodeProcess::rs2p("A", &[]);
    let a_addr = a.addr.clone();
    let mut b = NodeProcess::rs2p("B", &["--connect", &a_addr]);
    let mut c = NodeProcess::rs2p("C", &["--connect", &a_addr]);
    let (a_id, b_id, c_id) = (a.id.clone(), b.id.clone(), c.id.clone());
    a.wait_for("A sees B", |v| is_event(v, "peer_joined", &b_id));
    a.wait_for("A sees C", |v| is_event(v, "peer_joined", &c_id));

    let (status, out, err) = run_to_end(&["peers", "--connect", &a_addr, "--json"]);
    assert!(status.success(), "{status}\n{err}");
    let list: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
    assert_eq!(list["id"], a_id.as_str(), "{list}");
    assert_eq!(list["addr"], a_addr.as_str(), "{list}");
    let mut peers: Vec<(String, String)> = list["peers"]
        .as_array()
        .expect("peers")
        .iter()
        .map(|p| {
            (
                p["id"].as_str().unwrap().to_owned(),
                p["addr"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    peers.sort();
    let mut want = vec![
        (b_id.clone(), b.addr.clone()),
        (c_id.clone(), c.addr.clone()),
    ];
    want.sort();
    assert_eq!(peers, want, "{list}");

    // The table: short ids and addresses.
    let (status, out, err) = run_to_end(&["peers", "--connect", &a_addr]);
    assert!(status.success(), "{status}\n{err}");
    assert!(
        out.starts_with(&format!("{} at {a_addr} lists 2 peers:\n", &a_id[..8])),
        "{out}"
    );
    assert!(
        out.contains(&format!("  {}  {}\n", &b_id[..8], b.addr)),
        "{out}"
    );
    assert!(
        out.contains(&format!("  {}  {}\n", &c_id[..8], c.addr)),
        "{out}"
    );

    for node in [&mut a, &mut b, &mut c] {
        node.quit();
    }
}

#[test]
fn ctrl_c_closes_connections_cleanly() {
    let mut a = NodeProcess::rs2p("A", &[]);
    let a_addr = a.addr.clone();
    let mut b = NodeProcess::rs2p("B", &["--connect", &a_addr]);
    let b_id = b.id.clone();
    a.wait_for("A sees B", |v| is_event(v, "peer_joined", &b_id));
    let pid = libc::pid_t::try_from(b.pid()).expect("pid");
    // SAFETY: sending SIGINT to our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let status = b.wait_exit();
    assert!(status.success(), "B exited with {status}");
    // A sees B leave at once (a closed connection, not a timeout).
    a.wait_for("B left A's table", |v| is_event(v, "peer_left", &b_id));
    a.quit();
}
