//! End-to-end tests of `rs2p sync`, driven as a user drives it: JSON-lines
//! processes (`--json`) through stdin and stdout, plain mode through lines
//! of text, a real py2p `SyncSocket` on the other end, bad input, signals.

mod support;

use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use support::process::{rs2p_command, rs2p_run, run_to_end, NodeProcess};
use support::text_process::TextProcess;
use support::wait::WAIT;

/// Waits for an `updated` event of `key` (its JSON form) with `value`.
fn wait_updated(node: &mut NodeProcess, key: Value, value: Value) -> Value {
    node.wait_for(&format!("updated {key} = {value}"), |v| {
        v["event"] == "updated" && v["key"] == key && v["value"] == value
    })
}

/// Waits for the answer (or error) carrying `tag`.
fn answer(node: &mut NodeProcess, tag: &str) -> Value {
    node.wait_for(&format!("the answer tagged {tag:?}"), |v| v["tag"] == tag)
}

/// Waits (at most two seconds) until the wall clock is past `secs`: a
/// write made at the same second as the owner's could win by the
/// equal-time rule (the smaller id wins), so lease tests write later.
fn after_second(secs: u64) {
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while now() <= secs {
        assert!(
            std::time::Instant::now() < deadline,
            "the clock stands still"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A and B, B dialled A; both have seen the other join.
fn pair(extra: &[&str]) -> (NodeProcess, NodeProcess) {
    let mut a = NodeProcess::rs2p_sync("A", extra);
    let mut args = vec!["--connect", a.addr.as_str()];
    args.extend_from_slice(extra);
    let mut b = NodeProcess::rs2p_sync("B", &args);
    let (a_id, b_id) = (a.id.clone(), b.id.clone());
    b.wait_for("B connected to A", |v| {
        v["event"] == "connected" && v["id"] == a_id
    });
    a.wait_for("A sees B", |v| {
        v["event"] == "peer_joined" && v["id"] == b_id
    });
    (a, b)
}

#[test]
fn two_nodes_replicate_every_op() {
    let (mut a, mut b) = pair(&[]);
    let ready = &a.lines()[0].value;
    assert_eq!(ready["subnet"], "sync", "{ready}");
    assert_eq!(ready["network"], "sync1", "{ready}");
    assert_eq!(ready["leasing"], true, "{ready}");
    let sync1 = rs2p::protocol::Protocol::new("sync1", "Plaintext");
    assert_eq!(ready["protocol_id"], sync1.id(), "{ready}");
    let a_id = a.id.clone();

    // set: answered at A (local, tagged), seen at B (from the network).
    a.op(json!({"op": "set", "key": "color", "value": "blue", "tag": "s1"}));
    let mine = answer(&mut a, "s1");
    assert_eq!(mine["event"], "updated", "{mine}");
    assert_eq!(mine["local"], true, "{mine}");
    assert_eq!(mine["owner"], a_id.as_str(), "{mine}");
    let theirs = wait_updated(&mut b, json!("color"), json!("blue"));
    assert_eq!(theirs["local"], false, "{theirs}");
    assert_eq!(theirs["owner"], a_id.as_str(), "{theirs}");
    assert_eq!(theirs["time"], mine["time"], "{theirs}");
    assert!(theirs.get("tag").is_none(), "{theirs}");

    // get, found and not.
    b.op(json!({"op": "get", "key": "color", "tag": "g1"}));
    let got = answer(&mut b, "g1");
    assert_eq!(
        got,
        json!({"event": "value", "key": "color", "found": true, "value": "blue",
               "owner": a_id, "time": mine["time"], "tag": "g1"})
    );
    b.op(json!({"op": "get", "key": "nothing", "tag": "g2"}));
    let got = answer(&mut b, "g2");
    assert_eq!(got["found"], false, "{got}");
    assert_eq!(got["value"], Value::Null, "{got}");

    // update: one updated event per item, all tagged; every key form.
    let items = json!([
        ["n", 42],
        [{"$str": "text key"}, [1, {"$bin": "00ff"}]],
        [{"$bin": "ff00"}, {"m": 1}],
    ]);
    a.op(json!({"op": "update", "items": items, "tag": "u1"}));
    for _ in 0..3 {
        let e = answer(&mut a, "u1");
        assert_eq!(
            (e["event"].as_str(), e["local"].as_bool()),
            (Some("updated"), Some(true))
        );
    }
    wait_updated(&mut b, json!("n"), json!(42));
    wait_updated(
        &mut b,
        json!({"$str": "text key"}),
        json!([1, {"$bin": "00ff"}]),
    );
    wait_updated(&mut b, json!({"$bin": "ff00"}), json!({"m": 1}));

    // delta: merged here and there.
    a.op(json!({"op": "delta", "key": {"$bin": "ff00"}, "map": {"k": "v"}, "tag": "d1"}));
    let merged = answer(&mut a, "d1");
    assert_eq!(merged["value"], json!({"m": 1, "k": "v"}), "{merged}");
    wait_updated(&mut b, json!({"$bin": "ff00"}), json!({"m": 1, "k": "v"}));

    // delete.
    a.op(json!({"op": "delete", "key": "n", "tag": "x1"}));
    let gone = answer(&mut a, "x1");
    assert_eq!(
        gone,
        json!({"event": "deleted", "key": "n", "local": true, "tag": "x1"})
    );
    b.wait_for("n deleted at B", |v| {
        v["event"] == "deleted" && v["key"] == "n"
    });

    // keys: every entry with its metadata, in key order (bin before str).
    b.op(json!({"op": "keys", "tag": "k1"}));
    let keys = answer(&mut b, "k1");
    assert_eq!(keys["count"], 3, "{keys}");
    let entries = keys["entries"].as_array().expect("entries");
    let listed: Vec<&Value> = entries.iter().map(|e| &e["key"]).collect();
    assert_eq!(
        listed,
        [
            &json!("color"),
            &json!({"$bin": "ff00"}),
            &json!({"$str": "text key"})
        ],
        "{keys}"
    );
    for e in entries {
        assert_eq!(e["owner"], a_id.as_str(), "{e}");
        assert!(e["time"].as_u64().is_some(), "{e}");
    }

    // A connect op that fails is an error, tagged, that says why.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nobody = closed.local_addr().unwrap().to_string();
    drop(closed);
    b.op(json!({"op": "connect", "addr": nobody, "tag": "c1"}));
    let e = answer(&mut b, "c1");
    assert!(
        e["error"]
            .as_str()
            .unwrap_or_default()
            .contains("connection refused"),
        "{e}"
    );
    assert_eq!(
        (e["event"].as_str(), e["op"].as_str()),
        (Some("error"), Some("connect"))
    );

    a.quit();
    b.wait_for("A left", |v| v["event"] == "peer_left" && v["id"] == a_id);
    b.quit();
    assert!(a.errors().is_empty(), "{:?}", a.errors());
}

#[test]
fn a_leased_key_is_refused_with_the_tag() {
    let (mut a, mut b) = pair(&[]);
    a.op(json!({"op": "set", "key": "mine", "value": 1, "tag": "a1"}));
    let set = answer(&mut a, "a1");
    wait_updated(&mut b, json!("mine"), json!(1));
    after_second(set["time"].as_u64().expect("time"));

    for (op, tag) in [
        (
            json!({"op": "set", "key": "mine", "value": 2, "tag": "b1"}),
            "b1",
        ),
        (json!({"op": "delete", "key": "mine", "tag": "b2"}), "b2"),
        (
            json!({"op": "update", "items": [["free", 1], ["mine", 3]], "tag": "b3"}),
            "b3",
        ),
    ] {
        b.op(op.clone());
        let e = answer(&mut b, tag);
        assert_eq!(e["event"], "error", "{op}: {e}");
        assert_eq!(e["owner"], a.id.as_str(), "{e}");
        let until = set["time"].as_u64().unwrap() + 3600;
        assert_eq!(e["until"], until, "{e}");
        let text = e["error"].as_str().unwrap();
        assert!(
            text.contains("key mine is leased to node") && text.contains(&until.to_string()),
            "{text}"
        );
    }
    assert_eq!(b.errors().len(), 3);
    // The refused update stored nothing, not even its free key.
    b.op(json!({"op": "get", "key": "free", "tag": "g"}));
    assert_eq!(answer(&mut b, "g")["found"], false);
    a.op(json!({"op": "get", "key": "mine", "tag": "g"}));
    assert_eq!(answer(&mut a, "g")["value"], 1);
}

#[test]
fn leasing_is_part_of_the_network() {
    let mut leased = NodeProcess::rs2p_sync("leasing", &[]);
    let mut free = NodeProcess::rs2p_sync("no-leasing", &["--no-leasing"]);
    assert_eq!(free.lines()[0].value["network"], "sync0");
    assert_eq!(free.lines()[0].value["leasing"], false);
    free.op(json!({"op": "connect", "addr": leased.addr, "tag": "c"}));
    let e = answer(&mut free, "c");
    let text = e["error"].as_str().unwrap_or_default();
    assert!(
        text.contains("same subnet with leasing on")
            && text.ends_with("start this node without --no-leasing"),
        "{e}"
    );
    leased.quit();
    free.quit();
}

#[test]
fn a_late_joiner_catches_up() {
    let mut a = NodeProcess::rs2p_sync("A", &[]);
    let items: Vec<Value> = (0..300)
        .map(|i| json!([format!("key-{i:03}"), i]))
        .collect();
    a.op(json!({"op": "update", "items": items, "tag": "u"}));
    for _ in 0..300 {
        answer(&mut a, "u");
    }
    let mut c = NodeProcess::rs2p_sync("C", &["--connect", &a.addr]);
    for i in 0..300 {
        wait_updated(&mut c, json!(format!("key-{i:03}")), json!(i));
    }
    c.op(json!({"op": "keys", "tag": "k"}));
    let keys = answer(&mut c, "k");
    assert_eq!(keys["count"], 300, "{}", keys["count"]);
    assert_eq!(
        keys["entries"][299],
        json!({"key": "key-299", "value": 299,
        "owner": a.id, "time": keys["entries"][299]["time"]})
    );
    c.quit();
    a.quit();
}

/// `rs2p sync` in plain mode, ARGS after `--bind 127.0.0.1:0`.
fn plain(args: &[&str]) -> Command {
    let mut cmd = rs2p_command();
    cmd.args(["sync", "--bind", "127.0.0.1:0"]).args(args);
    cmd
}

#[test]
fn plain_mode_sets_gets_and_lists() {
    let input = "set color blue sky\n\
                 set n 42\n\
                 set quoted \"42\"\n\
                 set \"two words\" {\"a\":[1,true]}\n\
                 get color\n\
                 get n\n\
                 get quoted\n\
                 get missing\n\
                 frobnicate\n\
                 del n\n\
                 keys\n\
                 quit\n\
                 set never reached\n";
    let out = run_to_end(
        plain(&["--linger", "0"]),
        Some(input.as_bytes().to_vec()),
        WAIT,
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        out.stdout,
        "blue sky\n42\n\"42\"\ncolor = blue sky\nquoted = \"42\"\n\"two words\" = {\"a\":[1,true]}\n",
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("-- sync node "), "{}", out.stderr);
    assert!(out.stderr.contains("(network \"sync1\""), "{}", out.stderr);
    assert!(
        out.stderr.contains("rs2p: get missing: no such key"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("rs2p: unknown command \"frobnicate\""),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("-- 3 keys"), "{}", out.stderr);
}

#[test]
fn plain_mode_watches_changes_and_escapes_them() {
    let mut j = NodeProcess::rs2p_sync("J", &[]);
    let mut p = TextProcess::start("P", plain(&["--connect", &j.addr]));
    p.wait_stderr("-- connected to ");

    j.op(json!({"op": "set", "key": "color", "value": "blue", "tag": 1}));
    let short: String = j.id.chars().take(8).collect();
    p.wait_line("the watched set", |l| {
        l == format!("* color = blue (by {short})")
    });

    // Escape sequences from the network never reach the terminal raw.
    j.op(json!({"op": "set", "key": "\u{1b}[2J", "value": "\u{1b}]0;owned\u{7}\u{9b}x", "tag": 2}));
    let line = p.wait_line("the escaped set", |l| l.starts_with("* \""));
    assert_eq!(
        line,
        format!("* \"\\u001b[2J\" = \"\\u001b]0;owned\\u0007\\u009bx\" (by {short})")
    );
    p.send_line("keys");
    p.wait_line("keys lists it escaped", |l| {
        l.starts_with("\"\\u001b[2J\" = ")
    });

    // watch off: a change arrives unprinted; watch on: the next prints.
    p.send_line("watch off");
    p.wait_stderr("-- not watching");
    j.op(json!({"op": "set", "key": "quiet", "value": 1, "tag": 3}));
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        p.send_line("get quiet");
        if p.try_line_within(Duration::from_millis(200), |l| l == "1")
            .is_some()
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "quiet never arrived");
    }
    p.send_line("watch");
    p.wait_stderr("-- watching");
    j.op(json!({"op": "delete", "key": "color", "tag": 4}));
    p.wait_line("the watched delete", |l| l == "* color deleted");
    assert!(
        !p.lines().iter().any(|l| l.starts_with("* quiet")),
        "{:?}",
        p.lines()
    );
    assert!(!p.stderr().contains('\u{1b}'), "{}", p.stderr());
    assert!(!p.lines().iter().any(|l| l.contains('\u{1b}')));

    p.send_line("quit");
    p.close_stdin();
    assert!(p.wait_exit().success());
    j.quit();
}

#[test]
fn sets_flow_both_ways_with_py2p() {
    let mut r = NodeProcess::rs2p_sync("rs2p", &[]);
    let mut p = NodeProcess::py2p_sync("py2p", "sync", true);
    let p_id = p.id.clone();
    p.connect(r.port);
    r.wait_for("py2p joined", |v| {
        v["event"] == "peer_joined" && v["id"] == p_id
    });

    r.op(json!({"op": "set", "key": "from-rs2p", "value": "hello", "tag": "r"}));
    answer(&mut r, "r");
    p.wait_for("py2p has rs2p's set", |v| {
        v["event"] == "updated"
            && v["key"] == json!({"$bin": "66726f6d2d72733270"})
            && v["value"] == "hello"
            && v["local"] == false
    });

    p.op(json!({"op": "set", "key": "from-py2p", "value": {"$bin": "0001"}}));
    let got = wait_updated(&mut r, json!("from-py2p"), json!({"$bin": "0001"}));
    assert_eq!(got["owner"], p_id.as_str(), "{got}");
    assert_eq!(got["local"], false, "{got}");
    after_second(got["time"].as_u64().expect("time"));

    // py2p holds the lease on its key: rs2p refuses to overwrite it.
    r.op(json!({"op": "set", "key": "from-py2p", "value": 1, "tag": "x"}));
    let e = answer(&mut r, "x");
    assert_eq!(
        (e["event"].as_str(), e["owner"].as_str()),
        (Some("error"), Some(p_id.as_str()))
    );
    r.quit();
}

#[test]
fn bad_lines_are_errors_and_the_node_keeps_serving() {
    let mut n = NodeProcess::rs2p_sync("N", &[]);
    n.send_line("this is {not JSON");
    n.send_line("[1, 2]");
    n.send_line(r#"{"tag": "no-op"}"#);
    n.send_line(r#"{"op": "launch", "tag": 5}"#);
    n.send_line(r#"{"op": "set", "key": 7, "value": 1, "tag": "k"}"#);
    n.send_line(r#"{"op": "set", "key": "k", "value": null, "tag": "nil"}"#);
    n.send_line(r#"{"op": "update", "items": [], "tag": "empty"}"#);
    n.send_bytes(b"{\"op\": \"keys\", \"x\": \"\xff\xfe\"}\n");
    // 17 MiB on one line: skipped as it streams past.
    let long = format!(
        "{{\"op\":\"set\",\"key\":\"big\",\"value\":\"{}\"}}",
        "x".repeat(17 << 20)
    );
    n.send_line(&long);
    n.send_line("");
    n.op(json!({"op": "set", "key": "after", "value": 1, "tag": "ok"}));
    let ok = answer(&mut n, "ok");
    assert_eq!(ok["event"], "updated", "{ok}");

    let errors: Vec<Value> = n.errors().into_iter().cloned().collect();
    let texts: Vec<&str> = errors
        .iter()
        .map(|e| e["error"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(errors.len(), 9, "{texts:#?}");
    let expect = [
        "not JSON",
        "not a JSON object",
        "no string \"op\"",
        "unknown op \"launch\"",
        "a key is a JSON string",
        "nil is not a value",
        "update: no items",
        "not valid UTF-8",
        "is longer than the limit of 16777216 bytes",
    ];
    for (text, want) in texts.iter().zip(expect) {
        assert!(text.contains(want), "{text:?} should say {want:?}");
    }
    assert_eq!(errors[2]["tag"], "no-op");
    assert_eq!(
        (errors[3]["op"].as_str(), errors[3]["tag"].as_u64()),
        (Some("launch"), Some(5))
    );
    assert_eq!(errors[4]["tag"], "k");
    assert_eq!(errors[5]["tag"], "nil");
    n.op(json!({"op": "get", "key": "big", "tag": "g"}));
    assert_eq!(answer(&mut n, "g")["found"], false);
    n.quit();
}

#[test]
fn signals_and_end_of_input_close_cleanly() {
    let (mut a, mut b) = pair(&[]);
    let b_id = b.id.clone();
    // SIGTERM: B closes its connections and exits 0.
    // SAFETY: kill(2) on our own child's pid.
    let sent = unsafe { libc::kill(b.pid() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(sent, 0);
    let status = b.wait_exit();
    assert!(status.success(), "B exited with {status}");
    a.wait_for("B left A", |v| v["event"] == "peer_left" && v["id"] == b_id);

    // End of input: A lingers, then exits 0.
    let mut c = NodeProcess::rs2p_sync("C", &["--connect", &a.addr, "--linger", "0.2"]);
    c.close_stdin();
    assert!(c.wait_exit().success());
    a.quit();
}

#[test]
fn startup_errors() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().unwrap().to_string();
    // Exit statuses as `rs2p node`: 1 when the machine refuses, 2 for a
    // bad option.
    let out = rs2p_run(&["sync", "--bind", &addr]);
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("address already in use"),
        "{}",
        out.stderr
    );

    let out = rs2p_run(&["sync", "--bind", "127.0.0.1:0", "--connect", "nowhere"]);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("--connect \"nowhere\""),
        "{}",
        out.stderr
    );

    let out = rs2p_run(&["sync", "--help"]);
    assert!(out.status.success());
    for text in [
        "{\"$str\":\"k\"}",
        "{\"op\":\"delta\"",
        "watch [on|off]",
        "sync1",
    ] {
        assert!(out.stdout.contains(text), "--help lacks {text}");
    }
}
