//! `rs2p node --transport …` end to end: the binary over wss in
//! compatibility mode and over ssl in verified mode (certificate files made
//! here), and the option errors.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::certs::TestCa;

/// Bound on every wait.
const WAIT: Duration = Duration::from_secs(20);

/// One `rs2p node --json` child; killed when dropped (its output printed
/// if the test is failing).
struct Node {
    name: &'static str,
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<Value>,
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
                let v = serde_json::from_str(&line).unwrap_or_else(|_| json!({"line": line}));
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().expect("stderr");
        let sink = stderr.clone();
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let stdin = child.stdin.take().expect("stdin");
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
        node.id = ready["id"].as_str().expect("id").to_owned();
        node.addr = ready["addr"].as_str().expect("addr").to_owned();
        node
    }

    fn op(&mut self, op: Value) {
        writeln!(self.stdin, "{op}").expect("write to rs2p");
        self.stdin.flush().expect("flush");
    }

    fn wait_for(&mut self, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
        if let Some(v) = self.seen.iter().find(|v| matches(v)) {
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
                Err(RecvTimeoutError::Timeout) => panic!("{}: no {what} in time", self.name),
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("{}: stdout closed before {what}", self.name)
                }
            }
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            thread::sleep(Duration::from_millis(100));
            eprintln!("===== {} ({}) stdout =====", self.name, self.id);
            for line in &self.seen {
                eprintln!("{line}");
            }
            eprintln!("===== {} stderr =====", self.name);
            eprintln!("{}", self.stderr.lock().unwrap_or_else(|e| e.into_inner()));
        }
    }
}

/// A folder of PEM files for one test, removed afterwards.
struct PemDir(PathBuf);

impl PemDir {
    fn new(test: &str) -> PemDir {
        let dir = std::env::temp_dir().join(format!("rs2p-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        PemDir(dir)
    }

    fn write(&self, name: &str, pem: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, pem).expect("write PEM");
        path.to_string_lossy().into_owned()
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for PemDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn wss_nodes_meet_and_broadcast() {
    let mut a = Node::spawn("A", &["--transport", "wss"]);
    let a_addr = a.addr.clone();
    let mut b = Node::spawn("B", &["--transport", "wss", "--connect", &a_addr]);
    let a_id = a.id.clone();
    b.wait_for("connected to A", |v| {
        v["event"] == "connected" && v["id"] == a_id
    });
    assert_eq!(b.seen[0]["transport"], "wss");
    b.op(json!({"op": "broadcast", "packets": ["over wss"]}));
    let m = a.wait_for("B's broadcast", |v| v["event"] == "message");
    assert_eq!(m["packets"], json!(["over wss"]));
}

#[test]
fn one_shot_send_over_ssl() {
    let mut a = Node::spawn("A", &["--transport", "ssl"]);
    let a_addr = a.addr.clone();
    let out = Command::new(env!("CARGO_BIN_EXE_rs2p"))
        .args([
            "send",
            "--transport",
            "ssl",
            "--connect",
            &a_addr,
            "hello",
            "tls",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run rs2p send");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m = a.wait_for("the one-shot broadcast", |v| v["event"] == "message");
    assert_eq!(m["packets"], json!(["hello", "tls"]));
}

#[test]
fn verified_ssl_admits_members_and_refuses_strangers() {
    let dir = PemDir::new("verified-ssl");
    let ca = TestCa::new("mesh CA");
    let other_ca = TestCa::new("stranger CA");
    let ca_file = dir.write("ca.pem", &ca.pem());
    let mut files = Vec::new();
    for (name, cert) in [
        ("a", ca.issue("a")),
        ("b", ca.issue("b")),
        ("s", other_ca.issue("s")),
    ] {
        files.push((
            dir.write(&format!("{name}.pem"), &cert.cert_pem),
            dir.write(&format!("{name}.key"), &cert.key_pem),
        ));
    }
    let tls = |i: usize| -> Vec<String> {
        vec![
            "--transport".into(),
            "ssl".into(),
            "--cert".into(),
            files[i].0.clone(),
            "--key".into(),
            files[i].1.clone(),
            "--trust".into(),
            ca_file.clone(),
        ]
    };
    let a_tls = tls(0);
    let mut a = Node::spawn("A", &refs(&a_tls));
    let a_addr = a.addr.clone();
    let a_id = a.id.clone();

    let mut b_tls = tls(1);
    b_tls.extend(["--connect".to_owned(), a_addr.clone()]);
    let mut b = Node::spawn("B", &refs(&b_tls));
    b.wait_for("B joins A", |v| {
        v["event"] == "connected" && v["id"] == a_id
    });

    // The stranger's certificate is signed by another CA: A refuses it.
    let mut s_tls = tls(2);
    s_tls.extend(["--connect".to_owned(), a_addr.clone()]);
    let mut s = Node::spawn("S", &refs(&s_tls));
    let error = s.wait_for("the refusal", |v| v["event"] == "error");
    assert!(
        error["error"].as_str().unwrap().contains(&a_addr),
        "{error}"
    );

    b.op(json!({"op": "broadcast", "packets": ["members only"]}));
    let m = a.wait_for("B's broadcast", |v| v["event"] == "message");
    assert_eq!(m["packets"], json!(["members only"]));
    a.op(json!({"op": "peers"}));
    let peers = a.wait_for("A's peers", |v| v["event"] == "peers");
    assert_eq!(peers["peers"].as_array().map(Vec::len), Some(1), "{peers}");
    assert!(peers.to_string().contains(&b.id), "{peers}");
    // A logged the refusal with the stranger's address.
    let logs = a.stderr.lock().unwrap().clone();
    assert!(logs.contains("TLS handshake failed"), "{logs}");
    assert!(dir.path().exists());
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Runs `rs2p` with stdin closed and returns its exit status and stderr.
fn run_briefly(args: &[&str]) -> (ExitStatus, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rs2p"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("run rs2p");
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn transport_option_errors() {
    let dir = PemDir::new("option-errors");
    let cert = support::certs::self_signed("n");
    let c = dir.write("n.pem", &cert.cert_pem);
    let k = dir.write("n.key", &cert.key_pem);
    let base = ["node", "--bind", "127.0.0.1:0", "--linger", "0"];
    let run = |extra: &[&str]| {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        run_briefly(&args)
    };

    let (status, err) = run(&["--transport", "carrier-pigeon"]);
    assert_eq!(status.code(), Some(2), "{err}");
    let (status, err) = run(&["--transport", "ssl", "--cert", &c]);
    assert_eq!(status.code(), Some(2), "--cert without --key: {err}");
    let (status, err) = run(&["--transport", "ssl", "--cert", &c, "--key", &k]);
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("--trust or --pin"), "{err}");
    let (status, err) = run(&["--cert", &c, "--key", &k, "--pin", &c]);
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("need --transport ssl or wss"), "{err}");
    let missing = dir.path().join("missing.pem");
    let missing = missing.to_string_lossy();
    let (status, err) = run(&[
        "--transport",
        "wss",
        "--cert",
        &missing,
        "--key",
        &k,
        "--pin",
        &c,
    ]);
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("cannot read certificate chain"), "{err}");
    // Well-formed verified options start a node that exits at end of input.
    let (status, err) = run(&["--transport", "ssl", "--cert", &c, "--key", &k, "--pin", &c]);
    assert!(status.success(), "{err}");
}
