//! End-to-end tests of the `rs2p` binary: `rs2p node --json` processes
//! driven through their stdin and read through their stdout.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Bound on every wait.
const WAIT: Duration = Duration::from_secs(20);

/// One `rs2p node --json` child. Dropping it kills the child; during a
/// panic it also prints the child's stderr and everything it printed.
struct Node {
    name: &'static str,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<Value>,
    /// Every stdout line taken from `lines`, in order.
    seen: Vec<Value>,
    stderr: Arc<Mutex<String>>,
    id: String,
    addr: String,
}

impl Node {
    fn spawn(name: &'static str, extra: &[&str]) -> Node {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rs2p"))
            .args(["node", "--json", "--bind", "127.0.0.1:0", "-vv"])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start rs2p");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let value = serde_json::from_str(&line)
                    .unwrap_or_else(|_| json!({"event": "<not JSON>", "line": line}));
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err_pipe = child.stderr.take().expect("stderr");
        let sink = stderr.clone();
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let stdin = child.stdin.take();
        let mut node = Node {
            name,
            child,
            stdin,
            lines,
            seen: Vec::new(),
            stderr,
            id: String::new(),
            addr: String::new(),
        };
        let ready = node.wait_for("ready", |v| v["event"] == "ready");
        node.id = ready["id"].as_str().expect("ready.id").to_owned();
        node.addr = ready["addr"].as_str().expect("ready.addr").to_owned();
        assert!(!node.id.is_empty());
        assert!(node.addr.starts_with("127.0.0.1:"), "{ready}");
        node
    }

    /// Writes one line to the child's stdin.
    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        writeln!(stdin, "{line}").expect("write to rs2p");
        stdin.flush().expect("flush to rs2p");
    }

    fn op(&mut self, op: Value) {
        self.send(&op.to_string());
    }

    /// How many lines have been taken so far: a mark for `wait_since`.
    fn mark(&self) -> usize {
        self.seen.len()
    }

    /// The first line ever printed that matches.
    fn wait_for(&mut self, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
        self.wait_since(0, what, matches)
    }

    /// The first line printed after `mark` that matches, waiting for it at
    /// most `WAIT`.
    fn wait_since(&mut self, mark: usize, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
        if let Some(v) = self.seen[mark..].iter().find(|v| matches(v)) {
            return v.clone();
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) => {
                    self.seen.push(v.clone());
                    if matches(&v) {
                        return v;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("{}: no {what} within {WAIT:?}", self.name)
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("{}: stdout closed before {what}", self.name)
                }
            }
        }
    }

    /// Waits for the child to exit, then takes the rest of its stdout.
    fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "{}: did not exit within {WAIT:?}",
                self.name
            );
            thread::sleep(Duration::from_millis(20));
        };
        loop {
            match self.lines.recv_timeout(WAIT) {
                Ok(v) => self.seen.push(v),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => panic!("{}: stdout not closed", self.name),
            }
        }
        status
    }

    /// The message events seen with this message id.
    fn messages_with_id(&self, id: &str) -> usize {
        self.seen
            .iter()
            .filter(|v| v["event"] == "message" && v["id"] == id)
            .count()
    }

    fn errors(&self) -> Vec<&Value> {
        self.seen.iter().filter(|v| v["event"] == "error").collect()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            // Give the stderr thread a moment to take the last output.
            thread::sleep(Duration::from_millis(100));
            eprintln!("===== {} ({}) stdout =====", self.name, self.id);
            for line in &self.seen {
                eprintln!("{line}");
            }
            while let Ok(line) = self.lines.try_recv() {
                eprintln!("{line}");
            }
            eprintln!("===== {} stderr =====", self.name);
            eprintln!("{}", self.stderr.lock().unwrap_or_else(|e| e.into_inner()));
        }
    }
}

fn is_event(v: &Value, event: &str, id: &str) -> bool {
    v["event"] == event && v["id"] == id
}

fn is_message(v: &Value, kind: &str, sender: &str) -> bool {
    v["event"] == "message" && v["kind"] == kind && v["sender"] == sender
}

#[test]
fn three_nodes_in_a_line() {
    let mut a = Node::spawn("A", &[]);
    let a_addr = a.addr.clone();
    let mut b = Node::spawn("B", &["--connect", &a_addr]);
    let (a_id, b_id) = (a.id.clone(), b.id.clone());
    b.wait_for("B connected to A", |v| is_event(v, "connected", &a_id));
    let b_addr = b.addr.clone();
    // C ends on end of input, after a short linger.
    let mut c = Node::spawn("C", &["--connect", &b_addr, "--linger", "0.2"]);
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
    b.send("this is {not JSON");
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
    drop(c.stdin.take()); // end of input
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

/// Runs `rs2p` with stdin closed, bounded by `WAIT`.
fn run_briefly(args: &[&str]) -> (ExitStatus, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rs2p"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start rs2p");
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("rs2p {args:?} did not exit within {WAIT:?}");
        }
        thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    (status, stderr)
}

#[test]
fn startup_errors() {
    // Address in use: exit status 2 and one sentence.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().unwrap().to_string();
    let (status, stderr) = run_briefly(&["node", "--bind", &addr]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {addr}: address already in use")),
        "{stderr}"
    );
    assert!(stderr.contains("pick another --bind port"), "{stderr}");

    // A --connect that is not HOST:PORT: exit status 1, before binding.
    let (status, stderr) = run_briefly(&["node", "--bind", "127.0.0.1:0", "--connect", "nowhere"]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--connect \"nowhere\""), "{stderr}");
}

#[test]
fn refused_connect_keeps_the_node_running() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().unwrap().to_string()
    };
    let mut node = Node::spawn("N", &["--connect", &closed]);
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
    node.op(json!({"op": "quit"}));
    assert!(node.wait_exit().success());
}

/// Runs `rs2p` to its end, bounded by `WAIT`: status, stdout, stderr.
fn run_to_end(args: &[&str]) -> (ExitStatus, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rs2p"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start rs2p");
    let mut out_pipe = child.stdout.take().expect("stdout");
    let out = thread::spawn(move || {
        let mut s = String::new();
        let _ = out_pipe.read_to_string(&mut s);
        s
    });
    let mut err_pipe = child.stderr.take().expect("stderr");
    let err = thread::spawn(move || {
        let mut s = String::new();
        let _ = err_pipe.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("rs2p {args:?} did not exit within {WAIT:?}");
        }
        thread::sleep(Duration::from_millis(20));
    };
    (status, out.join().unwrap(), err.join().unwrap())
}

#[test]
fn send_broadcasts_through_a_node_and_exits() {
    let mut a = Node::spawn("A", &[]);
    let a_addr = a.addr.clone();
    let mut b = Node::spawn("B", &["--connect", &a_addr]);
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
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("--connect \"nowhere\" is not an address"),
        "{err}"
    );

    // A node on another subnet: both subnet ids, and ours by name.
    let mut a = Node::spawn("A", &["--subnet", "elsewhere"]);
    let a_addr = a.addr.clone();
    let (status, _, err) = run_to_end(&["send", "--connect", &a_addr, "--timeout", "5", "hi"]);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("cannot join {a_addr}")), "{err}");
    assert!(err.contains("this node's subnet \"mesh\" has id "), "{err}");
    assert!(err.contains("the peer's id is "), "{err}");
    a.op(json!({"op": "quit"}));
    assert!(a.wait_exit().success());
}

#[test]
fn peers_lists_a_nodes_peers() {
    let mut a = Node::spawn("A", &[]);
    let a_addr = a.addr.clone();
    let mut b = Node::spawn("B", &["--connect", &a_addr]);
    let mut c = Node::spawn("C", &["--connect", &a_addr]);
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
        node.op(json!({"op": "quit"}));
        assert!(node.wait_exit().success());
    }
}

#[test]
fn ctrl_c_closes_connections_cleanly() {
    let mut a = Node::spawn("A", &[]);
    let a_addr = a.addr.clone();
    let mut b = Node::spawn("B", &["--connect", &a_addr]);
    let b_id = b.id.clone();
    a.wait_for("A sees B", |v| is_event(v, "peer_joined", &b_id));
    let pid = libc::pid_t::try_from(b.child.id()).expect("pid");
    // SAFETY: sending SIGINT to our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let status = b.wait_exit();
    assert!(status.success(), "B exited with {status}");
    // A sees B leave at once (a closed connection, not a timeout).
    a.wait_for("B left A's table", |v| is_event(v, "peer_left", &b_id));
    a.op(json!({"op": "quit"}));
    assert!(a.wait_exit().success());
}
