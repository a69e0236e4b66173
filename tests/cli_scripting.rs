//! The `rs2p` binary as scripts and operators use it: every JSON op
//! answered with its tag, the documentation of the JSON protocol, daemon
//! mode, logging, chat commands, and the small commands' edge cases.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::chat::ChatProcess;
use support::process::{rs2p_command, rs2p_run, send_signal, Kind, NodeProcess};

fn is_event(v: &Value, event: &str, id: &str) -> bool {
    v["event"] == event && v["id"] == id
}

/// The one answer to the op tagged `tag`.
fn answer(node: &mut NodeProcess, tag: &Value) -> Value {
    let tag = tag.clone();
    node.wait_for(&format!("the answer to {tag}"), move |v| v["tag"] == tag)
}

#[test]
fn every_op_is_answered_with_its_tag() {
    let mut a = NodeProcess::rs2p("A", &[]);
    let a_addr = a.addr.clone();
    let ready = a.lines()[0].value.clone();
    assert_eq!(ready["event"], "ready");
    assert_eq!(ready["subnet"], "mesh", "{ready}");
    assert_eq!(ready["transport"], "Plaintext", "{ready}");
    assert_eq!(
        ready["protocol_id"],
        rs2p::Protocol::new("mesh", "Plaintext").id(),
        "{ready}"
    );
    let mut b = NodeProcess::rs2p("B", &[]);
    let (a_id, b_id) = (a.id.clone(), b.id.clone());

    // connect: the peer's id.
    b.op(json!({"op": "connect", "addr": a_addr, "tag": "c1"}));
    let c = answer(&mut b, &json!("c1"));
    assert_eq!(c["event"], "connected", "{c}");
    assert_eq!(c["op"], "connect");
    assert_eq!(c["id"], a_id.as_str());
    assert_eq!(c["addr"], a_addr.as_str());

    // broadcast: the message id, the one A receives.
    b.op(json!({"op": "broadcast", "packets": ["hi", 1.5e300, 7], "tag": 1}));
    let s = answer(&mut b, &json!(1));
    assert_eq!(
        (s["event"].as_str(), s["op"].as_str()),
        (Some("sent"), Some("broadcast"))
    );
    let m = a.wait_for("the broadcast", |v| v["event"] == "message");
    assert_eq!(m["id"], s["id"], "{s} / {m}");
    assert_eq!(m["packets"], json!(["hi", 1.5e300, 7]));

    // whisper: the message id too; tags may be any JSON value.
    let tag = json!({"n": [1, 2]});
    b.op(json!({"op": "whisper", "to": a_id, "packets": ["psst"], "tag": tag}));
    let s = answer(&mut b, &tag);
    assert_eq!(s["event"], "sent");
    assert_eq!(s["to"], a_id.as_str());
    let m = a.wait_for("the whisper", |v| {
        v["event"] == "message" && v["kind"] == "whisper"
    });
    assert_eq!(m["id"], s["id"]);

    // reply to a peer: direct, with the id.
    a.op(json!({"op": "reply", "to": b_id, "packets": ["back"], "tag": "r1"}));
    let s = answer(&mut a, &json!("r1"));
    assert_eq!(s["route"], "direct", "{s}");
    let m = b.wait_for("the reply", |v| v["event"] == "message");
    assert_eq!(m["id"], s["id"]);

    // reply to a node nobody knows: it goes out as a route request, and
    // the answer says so (the node gives no signal when it expires).
    a.op(json!({"op": "reply", "to": "NoSuchNode", "packets": [1], "tag": "r2"}));
    let s = answer(&mut a, &json!("r2"));
    assert_eq!(s["event"], "sent", "{s}");
    assert_eq!(s["route"], "requested", "{s}");
    assert_eq!(s["expires_s"], 60, "{s}");
    assert!(s.get("id").is_none(), "{s}");

    // A node without peers cannot ask anyone for a route: an error.
    let mut lone = NodeProcess::rs2p("L", &[]);
    lone.op(json!({"op": "reply", "to": a_id, "packets": [1], "tag": "r3"}));
    let e = answer(&mut lone, &json!("r3"));
    assert_eq!(e["event"], "error", "{e}");
    assert_eq!(e["op"], "reply");
    assert!(e["error"].as_str().unwrap().contains("no peers"), "{e}");

    // peers.
    b.op(json!({"op": "peers", "tag": "p"}));
    let p = answer(&mut b, &json!("p"));
    assert_eq!(p["event"], "peers");
    assert_eq!(p["peers"][0]["id"], a_id.as_str(), "{p}");
    assert_eq!(p["peers"][0]["outgoing"], true, "{p}");

    // Errors carry the op and the tag.
    let failures = [
        (
            json!({"op": "whisper", "to": "nobody", "packets": [], "tag": "e1"}),
            "not a connected peer",
        ),
        (json!({"op": "teleport", "tag": "e2"}), "unknown op"),
        (json!({"packets": [], "tag": "e3"}), "no string \"op\""),
        (
            json!({"op": "broadcast", "tag": "e4"}),
            "missing \"packets\"",
        ),
        (
            json!({"op": "connect", "addr": "nowhere", "tag": "e5"}),
            "not an address",
        ),
    ];
    for (op, why) in failures {
        let tag = op["tag"].clone();
        b.op(op.clone());
        let e = answer(&mut b, &tag);
        assert_eq!(e["event"], "error", "{op}: {e}");
        assert_eq!(e["op"], op["op"], "{e}");
        assert!(e["error"].as_str().unwrap().contains(why), "{op}: {e}");
    }
    // Integers beyond 64 bits are refused, not rounded to floats; floats
    // written with a fraction or exponent stay floats.
    b.send_line(r#"{"op":"broadcast","packets":[18446744073709551616],"tag":"big"}"#);
    let e = answer(&mut b, &json!("big"));
    assert_eq!(e["event"], "error");
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("does not fit in 64 bits"),
        "{e}"
    );
    b.send_line(r#"{"op":"broadcast","packets":[-9223372036854775808,18446744073709551615,1e19,2.0],"tag":"ok"}"#);
    assert_eq!(answer(&mut b, &json!("ok"))["event"], "sent");
    let m = a.wait_for("the limits", |v| {
        v["event"] == "message" && v["packets"][0] == json!(i64::MIN)
    });
    assert_eq!(m["packets"], json!([i64::MIN, u64::MAX, 1e19, 2.0]));

    // quit: answered by stopping.
    b.op(json!({"op": "quit", "tag": "bye"}));
    let s = answer(&mut b, &json!("bye"));
    assert_eq!(
        (s["event"].as_str(), s["reason"].as_str()),
        (Some("stopping"), Some("quit"))
    );
    assert!(b.wait_exit().success());
    a.quit();
    lone.quit();
}

/// `rs2p node --help` documents every op and event, pointing to
/// docs/json.md, which documents them too; `rs2p --help` and the README
/// give the exit statuses; `rs2p demo --help` gives its range of nodes.
#[test]
fn help_documents_the_json_protocol_and_exit_statuses() {
    let ops = ["broadcast", "whisper", "reply", "connect", "peers", "quit"];
    let events = [
        "ready",
        "connect",
        "connected",
        "peer_joined",
        "peer_left",
        "rejected",
        "message",
        "sent",
        "peers",
        "stopping",
        "error",
    ];
    let help = rs2p_run(&["node", "--help"]);
    assert!(help.status.success());
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/json.md"))
        .expect("docs/json.md");
    assert!(help.stdout.contains("docs/json.md"), "{}", help.stdout);
    for text in [&help.stdout, &doc] {
        for op in ops {
            assert!(text.contains(&format!("{{\"op\":\"{op}\"")), "op {op}");
        }
        for event in events {
            assert!(text.contains(&format!("{event} {{")), "event {event}");
        }
        for field in [
            "tag",
            "protocol_id",
            "subnet",
            "expires_s",
            "route",
            "reason",
        ] {
            assert!(text.contains(field), "field {field}");
        }
    }
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README");
    let top = rs2p_run(&["--help"]);
    for text in [&top.stdout, &readme] {
        for status in ["0", "1", "2", "3", "101"] {
            assert!(text.contains(status), "exit status {status}");
        }
        assert!(text.contains("Exit status"), "{text}");
    }
    assert!(readme.contains("--daemon") && readme.contains("docs/json.md"));
    let demo = rs2p_run(&["demo", "--help"]);
    assert!(demo.stdout.contains("2 to 64"), "{}", demo.stdout);
    assert!(demo.stdout.contains("rs2p simulate"), "{}", demo.stdout);
    let out = rs2p_run(&["demo", "--nodes", "500"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        out.stderr.contains("rs2p simulate --nodes 500"),
        "{}",
        out.stderr
    );
}

/// `--daemon` ignores stdin (its end stops nothing) and runs until a
/// signal; without --bind the node listens on loopback.
#[test]
fn daemon_runs_until_a_signal() {
    let mut cmd = rs2p_command();
    cmd.args(["node", "--json", "--daemon", "-v"]);
    let mut d = NodeProcess::start("D", Kind::Rs2p, cmd);
    assert!(d.addr.starts_with("127.0.0.1:"), "default bind: {}", d.addr);
    d.close_stdin();
    let eof = Instant::now();
    // Without --daemon the node would be gone one second (--linger) after
    // the end of its input: it must still be there well after that.
    while eof.elapsed() < Duration::from_millis(2500) {
        assert!(!d.has_exited(), "the daemon exited at the end of stdin");
        std::thread::sleep(Duration::from_millis(100));
    }
    let d_addr = d.addr.clone();
    let mut p = NodeProcess::rs2p("P", &["--connect", &d_addr]);
    let d_id = d.id.clone();
    p.wait_for("P joined D", |v| is_event(v, "connected", &d_id));
    p.op(json!({"op": "broadcast", "packets": ["to the daemon"]}));
    d.wait_message("to the daemon");
    send_signal(d.pid(), libc::SIGTERM);
    let status = d.wait_exit();
    assert!(status.success(), "{status}\n{}", d.logs());
    d.wait_for("stopping", |v| {
        v["event"] == "stopping" && v["reason"] == "SIGTERM"
    });
    p.wait_for("D left", |v| is_event(v, "peer_left", &d_id));
    p.quit();
}

/// -v logs every departure with its reason and every refused connection
/// (in JSON mode a `rejected` event, in chat mode a status line); RUST_LOG
/// works; two nodes dialling each other at once are not "refused".
#[test]
fn departures_and_refusals_are_logged() {
    let mut a = NodeProcess::rs2p("A", &["-v"]);
    let a_addr = a.addr.clone();
    let mut b = NodeProcess::rs2p("B", &["--connect", &a_addr]);
    let b_id = b.id.clone();
    a.wait_for("B joined", |v| is_event(v, "peer_joined", &b_id));
    b.quit();
    let left = a.wait_for("B left", |v| is_event(v, "peer_left", &b_id));
    assert_eq!(left["reason"], "the connection was closed by the peer");
    // A connection that sends garbage is refused: an event, and a log line.
    send_garbage(&a_addr);
    let r = a.wait_for("the refusal", |v| v["event"] == "rejected");
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .starts_with("protocol error: "),
        "{r}"
    );
    assert!(
        r["remote"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{r}"
    );
    let logs = a.stderr();
    assert!(
        logs.contains("peer left") && logs.contains("closed by the peer"),
        "{logs}"
    );
    assert!(logs.contains("refused a connection"), "{logs}");

    // Chat mode shows refusals as status lines.
    let mut c = ChatProcess::start("C", &[]);
    send_garbage(&c.addr.clone());
    c.wait_stderr("the refusal", |l| {
        l.starts_with("-- refused 127.0.0.1:") && l.contains("protocol error: ")
    });

    // RUST_LOG: debug logs of the library without -v.
    let mut cmd = rs2p_command();
    cmd.args(["node", "--json", "--bind", "127.0.0.1:0"])
        .env("RUST_LOG", "rs2p::net=debug");
    let mut r = NodeProcess::start("R", Kind::Rs2p, cmd);
    r.quit();
    let logs = r.stderr();
    assert!(logs.contains("mesh node listening"), "{logs}");
    assert!(
        !logs.contains("shutting down"),
        "only rs2p::net logs: {logs}"
    );

    // Simultaneous dials: each node dials the other at once; one of the
    // two connections loses the race, which is not a refusal.
    for _ in 0..3 {
        let mut x = NodeProcess::rs2p("X", &[]);
        let mut y = NodeProcess::rs2p("Y", &[]);
        let (x_addr, y_addr) = (x.addr.clone(), y.addr.clone());
        x.op(json!({"op": "connect", "addr": y_addr, "tag": "x"}));
        y.op(json!({"op": "connect", "addr": x_addr, "tag": "y"}));
        answer(&mut x, &json!("x"));
        answer(&mut y, &json!("y"));
        x.quit();
        y.quit();
        for node in [&x, &y] {
            let refusals: Vec<_> = node
                .lines()
                .iter()
                .filter(|l| l.value["event"] == "rejected")
                .map(|l| l.value.clone())
                .collect();
            assert!(refusals.is_empty(), "{}: {refusals:?}", node.name);
        }
    }
}

/// Connects to `addr` and sends a frame length no node accepts (4 GiB).
fn send_garbage(addr: &str) {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.write_all(&[0xff; 16]).expect("write");
    // The node closes the connection: read until it does (bounded).
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = std::io::Read::read_to_end(&mut s, &mut Vec::new());
}

/// Chat commands: /id, /peers, /reply, /whisper, /help, //, unknown ones.
#[test]
fn chat_commands() {
    let mut a = ChatProcess::start("A", &[]);
    let a_addr = a.addr.clone();
    let mut b = NodeProcess::rs2p("B", &["--connect", &a_addr]);
    let b_id = b.id.clone();
    let b_short = b_id[..8].to_owned();
    a.wait_stderr("B joined", |l| l == format!("-- {b_short} joined"));

    a.type_line("/id");
    let id_line = a.wait_stderr("the id", |l| l.starts_with("-- this node is "));
    assert!(
        id_line.contains(&a_addr) && id_line.contains("subnet \"mesh\""),
        "{id_line}"
    );
    let a_id = id_line.split_whitespace().nth(4).unwrap().to_owned();
    assert!(a_id.starts_with(&a.short_id), "{id_line}");

    a.type_line("/peers");
    a.wait_stderr("the peer list", |l| l == "-- 1 peer");
    a.wait_stderr("B in the list", |l| l.trim_start().starts_with(&b_short));

    a.type_line("/reply nobody yet");
    a.wait_stderr("no one to reply to", |l| {
        l.contains("no message received yet")
    });

    b.op(json!({"op": "broadcast", "packets": ["ping"]}));
    a.wait_stdout("the ping", |l| {
        l == format!("{b_short}: \"ping\"").as_bytes()
    });
    a.type_line("/reply pong");
    a.wait_stderr("replied", |l| l == format!("-- replied to {b_short}"));
    let m = b.wait_message("pong");
    assert_eq!(m["kind"], "whisper");
    assert_eq!(m["sender"], a_id.as_str());

    a.type_line(&format!("/whisper {} a secret", &b_id[..5]));
    a.wait_stderr("whispered", |l| l == format!("-- whispered to {b_short}"));
    assert_eq!(b.wait_message("a secret")["kind"], "whisper");
    a.type_line("/whisper zzzzzz hello");
    a.wait_stderr("no such peer", |l| {
        l.contains("no connected peer's id starts with zzzzzz")
    });

    b.op(json!({"op": "whisper", "to": a_id, "packets": ["just you", 42]}));
    a.wait_stdout("the whisper", |l| {
        l == format!("{b_short} (whisper): \"just you\" 42").as_bytes()
    });

    a.type_line("//slash");
    assert_eq!(b.wait_message("/slash")["kind"], "broadcast");
    a.type_line("plain text");
    b.wait_message("plain text");
    a.type_line("/help");
    a.wait_stderr("the help", |l| l.contains("/whisper ID TEXT"));
    a.type_line("/teleport");
    a.wait_stderr("unknown command", |l| {
        l.contains("unknown command /teleport")
    });
    a.type_line("/quit");
    assert!(a.wait_exit().success());
    b.wait_for("A left", |v| is_event(v, "peer_left", &a_id));
    b.quit();
}

/// `simulate --broadcasts 0` reports the mesh it formed and nothing about
/// broadcasts (no NaN, no negative zero), and `demo --dot -` writes the
/// graph alone to stdout.
#[test]
fn simulate_without_broadcasts_and_demo_graph_on_stdout() {
    let out = rs2p_run(&[
        "simulate",
        "--nodes",
        "30",
        "--broadcasts",
        "0",
        "--join-ms",
        "2000",
        "--settle-ms",
        "1000",
    ]);
    assert!(out.status.success(), "{}", out.stderr);
    for nonsense in ["NaN", "inf", "-0", "coverage"] {
        assert!(!out.stdout.contains(nonsense), "{nonsense}: {}", out.stdout);
    }
    assert!(
        out.stdout.contains("mesh formed: 30 live"),
        "{}",
        out.stdout
    );
    let out = rs2p_run(&[
        "simulate",
        "--nodes",
        "30",
        "--broadcasts",
        "0",
        "--join-ms",
        "2000",
        "--settle-ms",
        "1000",
        "--json",
    ]);
    let v: Value = serde_json::from_str(out.stdout.trim()).expect("JSON");
    assert!(v["summary"].is_null(), "{v}");
    let out = rs2p_run(&["simulate", "--sweep", "--broadcasts", "0"]);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);

    let out = rs2p_run(&["demo", "--nodes", "3", "--dot", "-"]);
    assert!(out.status.success(), "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.starts_with("// rs2p demo"), "{}", out.stdout);
    assert!(out.stdout.contains("graph mesh {"), "{}", out.stdout);
    assert!(!out.stdout.contains("PASS"), "{}", out.stdout);
    assert!(out.stderr.contains("PASS: all"), "{}", out.stderr);
}
