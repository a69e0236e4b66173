//! `rs2p node` reports what the library reports later, after an op was
//! answered: a routed reply that failed (`reply_failed`, with the `reply`
//! op's tag) and messages the receive queue dropped (`queue_overflow`), in
//! JSON mode as documented events and in chat mode as status lines.

mod support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::thread;
use std::time::Instant;

use serde_json::{json, Value};
use support::chat::ChatProcess;
use support::process::{rs2p_command, NodeProcess};
use support::wait::WAIT;

/// The one answer to the op tagged `tag`.
fn answer(node: &mut NodeProcess, tag: &Value) -> Value {
    let tag = tag.clone();
    node.wait_for(&format!("the answer to {tag}"), move |v| v["tag"] == tag)
}

/// A reply to a node nobody knows is acknowledged as a route request, and
/// reported once no route came within `--reply-timeout`, with its tag; a
/// reply without a tag is reported too, without one.
#[test]
fn a_reply_without_a_route_is_reported_with_its_tag() {
    let mut a = NodeProcess::rs2p("A", &["--reply-timeout", "1"]);
    let a_addr = a.addr.clone();
    let mut b = NodeProcess::rs2p("B", &["--connect", &a_addr]);
    let b_id = b.id.clone();
    a.wait_for("B joined", |v| {
        v["event"] == "peer_joined" && v["id"] == b_id
    });

    let tag = json!({"job": 7});
    a.op(json!({"op": "reply", "to": "NoSuchNode", "packets": ["hello?"], "tag": tag}));
    let sent = answer(&mut a, &tag);
    assert_eq!(sent["event"], "sent", "{sent}");
    assert_eq!(sent["route"], "requested", "{sent}");
    assert_eq!(sent["expires_s"], 1, "{sent}");
    let failed = a.wait_for("the reply's failure", |v| v["event"] == "reply_failed");
    assert_eq!(failed["op"], "reply", "{failed}");
    assert_eq!(failed["tag"], tag, "{failed}");
    assert_eq!(failed["to"], "NoSuchNode", "{failed}");
    assert!(
        failed["error"].as_str().unwrap().contains("no route"),
        "{failed}"
    );
    // The failure came after the answer, and no sooner than the timeout.
    let at = |node: &NodeProcess, what: &str| {
        node.lines()
            .iter()
            .find(|l| l.value["event"] == what)
            .map(|l| l.at)
            .unwrap()
    };
    assert!(at(&a, "reply_failed") > at(&a, "sent"));

    // Without a tag: reported all the same.
    a.op(json!({"op": "reply", "to": "NoSuchNodeEither", "packets": [1]}));
    let failed = a.wait_for("the untagged reply's failure", |v| {
        v["event"] == "reply_failed" && v["to"] == "NoSuchNodeEither"
    });
    assert_eq!(failed["op"], "reply", "{failed}");
    assert!(failed.get("tag").is_none(), "{failed}");

    // A reply to a peer is a whisper: nothing fails later.
    a.op(json!({"op": "reply", "to": b_id, "packets": ["direct"], "tag": "d"}));
    assert_eq!(answer(&mut a, &json!("d"))["route"], "direct");
    b.wait_message("direct");
    a.quit();
    b.quit();
    let failures: Vec<&Value> = a
        .lines()
        .iter()
        .map(|l| &l.value)
        .filter(|v| v["event"] == "reply_failed")
        .collect();
    assert_eq!(failures.len(), 2, "{failures:?}");
}

/// Chat mode: `/reply` to the sender of the last message, a node that has
/// left since; nobody knows a route to it, and after `--reply-timeout` a
/// status line says the reply failed.
#[test]
fn chat_reports_a_failed_reply() {
    let mut a = ChatProcess::start("A", &["--reply-timeout", "1"]);
    let a_addr = a.addr.clone();
    let mut b = NodeProcess::rs2p("B", &["--connect", &a_addr]);
    let b_short = b.id[..8].to_owned();
    a.wait_stderr("B joined", |l| l == format!("-- {b_short} joined"));
    let mut c = NodeProcess::rs2p("C", &["--connect", &a_addr]);
    let c_short = c.id[..8].to_owned();
    c.op(json!({"op": "broadcast", "packets": ["from C"]}));
    a.wait_stdout("C's broadcast", |l| {
        l == format!("{c_short}: \"from C\"").as_bytes()
    });
    c.quit();
    a.wait_stderr("C left", |l| l.starts_with(&format!("-- {c_short} left")));
    a.type_line("/reply hello C");
    a.wait_stderr("the reply is routed", |l| {
        l.starts_with(&format!("-- {c_short} is not a direct peer"))
    });
    let line = a.wait_stderr("the failure", |l| {
        l.starts_with(&format!("-- reply to {c_short} failed: "))
    });
    assert!(line.contains("no route"), "{line}");
    a.type_line("/quit");
    assert!(a.wait_exit().success());
    b.quit();
}

/// A node whose output is not read falls behind; its receive queue
/// (`--recv-queue 4`) drops the oldest messages, and once the output is
/// read again `queue_overflow` events report them: every message the peer
/// sent is either printed or counted as dropped.
#[test]
fn a_full_receive_queue_is_reported() {
    const SENT: usize = 300;
    let mut cmd = rs2p_command();
    cmd.args([
        "node",
        "--json",
        "--bind",
        "127.0.0.1:0",
        "--recv-queue",
        "4",
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    let mut child = cmd.spawn().expect("start rs2p node");
    let _stdin = child.stdin.take();
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    stdout.read_line(&mut first).expect("the ready line");
    let ready: Value = serde_json::from_str(&first).expect("JSON");
    let addr = ready["addr"].as_str().expect("addr").to_owned();

    // Nothing reads A's output now: once the pipe is full, A's printer
    // waits, and the messages pile up in its queue.
    let mut b = NodeProcess::rs2p("B", &["--connect", &addr]);
    let big = "x".repeat(2000);
    for i in 0..SENT {
        b.op(json!({"op": "broadcast", "packets": [i, big], "tag": i}));
    }
    for i in 0..SENT {
        answer(&mut b, &json!(i));
    }

    // Read again, in a thread, line by line.
    let (tx, rx) = mpsc::channel::<Value>();
    thread::spawn(move || {
        for line in stdout.lines() {
            let Ok(line) = line else { break };
            let Ok(v) = serde_json::from_str(&line) else {
                continue;
            };
            if tx.send(v).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + WAIT;
    let (mut printed, mut dropped, mut total, mut reports) = (0usize, 0u64, 0u64, 0usize);
    while printed + (total as usize) < SENT {
        let left = deadline.saturating_duration_since(Instant::now());
        let v = rx.recv_timeout(left).unwrap_or_else(|_| {
            panic!(
                "within {WAIT:?}: {printed} printed, {total} reported dropped, \
                 of {SENT} sent"
            )
        });
        match v["event"].as_str() {
            Some("message") => printed += 1,
            Some("queue_overflow") => {
                reports += 1;
                dropped += v["dropped"].as_u64().expect("dropped");
                total = v["total"].as_u64().expect("total");
                assert_eq!(dropped, total, "{v}");
            }
            _ => {}
        }
    }
    assert!(reports >= 1 && total > 0, "{printed} printed");
    assert_eq!(printed + total as usize, SENT);
    // At most one report a second: far fewer than the drops.
    assert!((reports as u64) < total, "{reports} reports of {total}");
    let _ = child.kill();
    let _ = child.wait();
    b.quit();
}
