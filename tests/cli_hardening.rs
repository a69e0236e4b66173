//! The `rs2p` binary against what could hang it, fool its user or exhaust
//! its memory: duration options refused at parse time, a panic that ends
//! the process, escaped chat output, bounded input lines, events in causal
//! order over every transport, and SIGTERM as graceful as Ctrl-C.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::chat::ChatProcess;
use support::process::{
    peak_rss_kib, rs2p_command, rs2p_run, run_to_end, send_signal, NodeProcess,
};
use support::wait::WAIT;

/// Options that used to hang the node (`--keepalive 0` panicked in the
/// actor and never exited; `--idle-timeout 0` redialled in a storm) or
/// meant nothing are refused at once, with the reason, exit status 2.
#[test]
fn nonsense_durations_are_refused_at_once() {
    let cases: &[(&[&str], &str)] = &[
        (&["node", "--keepalive", "0"], "at least 0.1 s"),
        (&["node", "--keepalive", "0.0001"], "at least 0.1 s"),
        (&["node", "--keepalive", "NaN"], "not a finite number"),
        (&["node", "--idle-timeout", "0"], "at least 1 s"),
        (&["node", "--idle-timeout=-5"], "negative"),
        (&["node", "--linger", "inf"], "not a finite number"),
        (
            &["node", "--keepalive", "5", "--idle-timeout", "5"],
            "must be longer than --keepalive",
        ),
        (
            &["send", "--connect", "127.0.0.1:1", "--timeout", "0", "hi"],
            "at least 0.1 s",
        ),
        (
            &["peers", "--connect", "127.0.0.1:1", "--timeout", "1e9"],
            "at most 3600 s",
        ),
        (&["simulate", "--latency", "nan"], "not a finite number"),
        (&["simulate", "--join-ms", "99999999999"], "99999999999"),
    ];
    for (args, why) in cases {
        let started = Instant::now();
        let mut all = vec!["node", "--bind", "127.0.0.1:0"];
        let args: Vec<&str> = if args[0] == "node" {
            all.extend(&args[1..]);
            all
        } else {
            args.to_vec()
        };
        let out = rs2p_run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(why), "{args:?}: {}", out.stderr);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{args:?} took {:?}",
            started.elapsed()
        );
    }
}

/// A panic in the node's actor (the library then stops the node) or in a
/// task of the command line ends the process promptly, with a message and
/// exit status 101, instead of leaving it running half dead. The panics
/// are injected through a test hook of debug builds.
#[cfg(debug_assertions)]
#[test]
fn a_panic_ends_the_process() {
    for (place, within) in [
        ("actor", Duration::from_secs(10)),
        ("task", Duration::from_secs(10)),
    ] {
        let mut cmd = rs2p_command();
        cmd.args(["node", "--json", "--daemon", "--bind", "127.0.0.1:0"])
            .env("RS2P_TEST_PANIC", place);
        let started = Instant::now();
        let out = run_to_end(cmd, None, WAIT);
        assert_eq!(
            out.status.code(),
            Some(101),
            "{place}: {}\n{}",
            out.stdout,
            out.stderr
        );
        assert!(
            started.elapsed() < within,
            "{place}: took {:?}",
            started.elapsed()
        );
        assert!(
            out.stderr.contains("RS2P_TEST_PANIC"),
            "{place}: {}",
            out.stderr
        );
        assert!(
            out.stderr.contains("rs2p: internal error"),
            "{place}: {}",
            out.stderr
        );
        let last: Value =
            serde_json::from_str(out.stdout.lines().last().expect("output")).expect("JSON");
        assert_eq!(last["event"], "stopping", "{place}: {}", out.stdout);
        assert_eq!(last["reason"], "internal error", "{place}: {}", out.stdout);
    }
}

/// What a peer sends cannot act on a chat node's terminal: escape
/// sequences, NUL, `\r` and newlines come out escaped, each message is one
/// line, and no line can be forged.
#[test]
fn chat_output_escapes_what_peers_send() {
    let mut a = ChatProcess::start("A", &[]);
    let a_addr = a.addr.clone();
    let mut b = NodeProcess::rs2p("B", &["--connect", &a_addr]);
    let b_short = b.id[..8].to_owned();
    a.wait_stderr("B joined", |l| l == format!("-- {b_short} joined"));
    let forged = format!("x\n-- AAAAAAAA joined\n{b_short}: \"forged\"");
    let packets = json!([
        "\u{1b}[2J\u{1b}]0;pwned\u{7}",
        "nul\u{0}byte",
        "carriage\rreturn",
        forged,
        "csi\u{9b}31m and \u{202e}reversed",
        "42",
        42
    ]);
    b.op(json!({"op": "broadcast", "packets": packets, "tag": "evil"}));
    b.wait_for("the ack", |v| v["event"] == "sent" && v["tag"] == "evil");
    let line = a.wait_stdout("the broadcast", |l| l.starts_with(b_short.as_bytes()));
    let text = String::from_utf8(line).expect("UTF-8");
    assert_eq!(
        text,
        format!(
            "{b_short}: \"\\u001b[2J\\u001b]0;pwned\\u0007\" \"nul\\u0000byte\" \
             \"carriage\\rreturn\" \"x\\n-- AAAAAAAA joined\\n{b_short}: \\\"forged\\\"\" \
             \"csi\\u009b31m and \\u202ereversed\" \"42\" 42"
        )
    );
    // A whisper is marked as one.
    let to = a_id(&mut b);
    b.op(json!({"op": "whisper", "to": to, "packets": ["psst\u{1b}c"]}));
    let line = a.wait_stdout("the whisper", |l| l.starts_with(b_short.as_bytes()));
    assert_eq!(
        String::from_utf8(line).unwrap(),
        format!("{b_short} (whisper): \"psst\\u001bc\"")
    );
    // Exactly two lines reached stdout, and not one control byte.
    a.read_for(Duration::from_millis(300));
    let lines = a.stdout_lines();
    assert_eq!(lines.len(), 2, "{lines:?}");
    for line in lines.iter().chain(
        a.stderr_lines()
            .iter()
            .map(|l| l.as_bytes().to_vec())
            .collect::<Vec<_>>()
            .iter(),
    ) {
        assert!(
            !line.iter().any(|&b| b < 0x20 || b == 0x7f),
            "control byte in {:?}",
            String::from_utf8_lossy(line)
        );
        let text = String::from_utf8_lossy(line);
        assert!(
            !text.contains('\u{9b}') && !text.contains('\u{202e}'),
            "{text:?}"
        );
    }
    assert!(
        !a.stderr_lines().iter().any(|l| l.contains("AAAAAAAA")),
        "{:?}",
        a.stderr_lines()
    );
}

/// B's view of A's id (the peer it is connected to).
fn a_id(b: &mut NodeProcess) -> String {
    b.op(json!({"op": "peers"}));
    let peers = b.wait_for("B's peers", |v| v["event"] == "peers");
    peers["peers"][0]["id"]
        .as_str()
        .expect("one peer")
        .to_owned()
}

/// A 100 MB input line is skipped without being held: the node's peak
/// memory stays far below it, the line is reported, and the node keeps
/// working. In chat mode the same holds with a small --max-line.
#[test]
fn over_long_input_lines_are_skipped_without_buffering() {
    const HUGE: usize = 100 * 1024 * 1024;
    let mut a = NodeProcess::rs2p("A", &[]);
    let a_addr = a.addr.clone();
    let mut b = NodeProcess::rs2p("B", &["--connect", &a_addr]);
    let b_id = b.id.clone();
    a.wait_for("B joined", |v| {
        v["event"] == "peer_joined" && v["id"] == b_id
    });
    let before = peak_rss_kib(b.pid());
    let mut line = String::with_capacity(HUGE + 64);
    line.push_str("{\"op\":\"broadcast\",\"packets\":[\"");
    line.extend(std::iter::repeat_n('x', HUGE));
    line.push_str("\"]}");
    b.send_line(&line);
    drop(line);
    let error = b.wait_for("the over-long line's error", |v| v["event"] == "error");
    let text = error["error"].as_str().unwrap();
    assert!(
        text.contains(&format!("input line of {} bytes", HUGE + 33))
            && text.contains("longer than the limit of 16777216 bytes"),
        "{error}"
    );
    let peak = peak_rss_kib(b.pid());
    eprintln!("B: peak RSS {before} KiB before, {peak} KiB after the 100 MB line");
    assert!(
        peak < 64 * 1024,
        "peak RSS {peak} KiB: the line was buffered (before: {before} KiB)"
    );
    // The node keeps working.
    b.op(json!({"op": "broadcast", "packets": ["still here"], "tag": 7}));
    b.wait_for("the ack", |v| v["event"] == "sent" && v["tag"] == 7);
    a.wait_message("still here");

    // Chat mode: the line is reported on stderr and skipped.
    let mut c = ChatProcess::start("C", &["--connect", &a_addr, "--max-line", "1000"]);
    c.wait_stderr("joined A", |l| l.starts_with("-- connected to "));
    c.type_line(&"y".repeat(5000));
    c.wait_stderr("the report", |l| {
        l.contains("input line of 5000 bytes is longer than the limit of 1000 bytes")
    });
    c.type_line("after the long line");
    a.wait_message("after the long line");
    let longs = a
        .messages()
        .filter(|m| {
            m.value["packets"][0]
                .as_str()
                .is_some_and(|t| t.starts_with("yyy"))
        })
        .count();
    assert_eq!(longs, 0, "the long line was sent");
}

/// A message never comes before its sender's `peer_joined` nor after its
/// `peer_left`: over ws and ssl, many one-shot senders join, broadcast
/// and leave while the node prints.
#[test]
fn events_about_a_peer_come_in_causal_order() {
    for transport in ["ws", "ssl"] {
        let mut a = NodeProcess::rs2p("A", &["--transport", transport]);
        let a_addr = a.addr.clone();
        const SENDERS: usize = 12;
        let senders: Vec<_> = (0..SENDERS)
            .map(|i| {
                let addr = a_addr.clone();
                std::thread::spawn(move || {
                    let out = rs2p_run(&[
                        "send",
                        "--transport",
                        transport,
                        "--connect",
                        &addr,
                        &format!("hello {i}"),
                    ]);
                    assert!(out.status.success(), "{}", out.stderr);
                })
            })
            .collect();
        for s in senders {
            s.join().expect("sender");
        }
        for _ in 0..SENDERS {
            a.wait_for("a sender's peer_left", |v| v["event"] == "peer_left");
        }
        // Each sender: joined, then its message, then left.
        let mut seen: HashMap<String, Vec<&str>> = HashMap::new();
        for line in a.lines() {
            let v = &line.value;
            let (who, what) = match v["event"].as_str() {
                Some("peer_joined") => (v["id"].as_str(), "joined"),
                Some("message") => (v["sender"].as_str(), "message"),
                Some("peer_left") => (v["id"].as_str(), "left"),
                _ => continue,
            };
            seen.entry(who.expect("an id").to_owned())
                .or_default()
                .push(what);
        }
        assert_eq!(seen.len(), SENDERS, "{transport}: {seen:?}");
        for (id, order) in &seen {
            assert_eq!(
                order,
                &["joined", "message", "left"],
                "{transport}: sender {id}"
            );
        }
    }
}

/// SIGTERM closes every connection first, as Ctrl-C does: the peer sees
/// the node leave at once (a closed connection, not a timeout), and the
/// process exits 0 after saying why it stopped.
#[test]
fn sigterm_closes_connections_cleanly() {
    let mut a = NodeProcess::rs2p("A", &[]);
    let a_addr = a.addr.clone();
    let mut b = NodeProcess::rs2p("B", &["--connect", &a_addr]);
    let b_id = b.id.clone();
    a.wait_for("A sees B", |v| {
        v["event"] == "peer_joined" && v["id"] == b_id
    });
    let sent = Instant::now();
    send_signal(b.pid(), libc::SIGTERM);
    let left = a.wait_for("B left", |v| v["event"] == "peer_left" && v["id"] == b_id);
    assert!(
        sent.elapsed() < Duration::from_secs(5),
        "{:?}",
        sent.elapsed()
    );
    assert_eq!(left["reason"], "the connection was closed by the peer");
    let status = b.wait_exit();
    assert!(status.success(), "B exited with {status}\n{}", b.logs());
    let stopping = b.wait_for("B's stopping event", |v| v["event"] == "stopping");
    assert_eq!(stopping["reason"], "SIGTERM");

    // Chat mode says it on stderr.
    let mut c = ChatProcess::start("C", &["--connect", &a_addr]);
    c.wait_stderr("joined", |l| l.starts_with("-- connected to "));
    send_signal(c.pid(), libc::SIGTERM);
    c.wait_stderr("the announcement", |l| {
        l.starts_with("-- SIGTERM: closing connections")
    });
    assert!(c.wait_exit().success());
    a.quit();
}
