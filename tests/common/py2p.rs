//! Drives a real py2p 0.7.878 node (tests/py2p/mesh_peer.py) in its own
//! process, one JSON line per command and per event.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The Python interpreter with py2p installed (`RS2P_PYTHON`).
pub fn python() -> String {
    std::env::var("RS2P_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// A free loopback port (py2p needs a real port number up front).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// One py2p node.
pub struct Py2pNode {
    child: Child,
    stdin: ChildStdin,
    events: Receiver<Value>,
    stderr: Arc<Mutex<String>>,
    /// Events read but not yet consumed by a `wait_for`.
    backlog: Vec<Value>,
    /// Its node id.
    pub id: String,
    /// Its port.
    pub port: u16,
    /// A name for logs.
    pub name: String,
}

impl Py2pNode {
    /// Starts a node on subnet `subnet`; `compression` restricts py2p's
    /// methods (e.g. `Some(&[0x13])`); `max_outgoing` overrides py2p's 4.
    pub fn start(
        name: &str,
        subnet: &str,
        compression: Option<&[u8]>,
        max_outgoing: Option<usize>,
    ) -> Py2pNode {
        Self::start_on(name, subnet, "Plaintext", compression, max_outgoing)
    }

    /// As [`start`](Self::start), on the transport `encryption`
    /// (`"Plaintext"` or `"SSL"`).
    pub fn start_on(
        name: &str,
        subnet: &str,
        encryption: &str,
        compression: Option<&[u8]>,
        max_outgoing: Option<usize>,
    ) -> Py2pNode {
        let port = free_port();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py2p/mesh_peer.py");
        let comp = compression.map_or("all".to_string(), |m| {
            m.iter()
                .map(|x| format!("0x{x:02x}"))
                .collect::<Vec<_>>()
                .join(",")
        });
        let mut cmd = Command::new(python());
        cmd.arg(script).arg(port.to_string()).arg(subnet).arg(comp);
        if let Some(n) = max_outgoing {
            cmd.arg(n.to_string());
        }
        cmd.arg(format!("--encryption={encryption}"));
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {} (RS2P_PYTHON): {e}", python()));
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let stderr_pipe = child.stderr.take().expect("stderr");
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if tx.send(v).is_err() {
                        break;
                    }
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr_pipe).lines() {
                let Ok(line) = line else { break };
                let mut s = sink.lock().unwrap();
                if s.len() < 200_000 {
                    s.push_str(&line);
                    s.push('\n');
                }
            }
        });
        let mut node = Py2pNode {
            child,
            stdin,
            events: rx,
            stderr,
            backlog: Vec::new(),
            id: String::new(),
            port,
            name: name.to_owned(),
        };
        let ready = node.wait_for(Duration::from_secs(30), |v| v["event"] == "ready");
        node.id = ready["id"].as_str().expect("id").to_owned();
        node
    }

    /// Sends one command.
    pub fn command(&mut self, cmd: Value) {
        let line = format!("{cmd}\n");
        if let Err(e) = self
            .stdin
            .write_all(line.as_bytes())
            .and_then(|_| self.stdin.flush())
        {
            panic!("{}: cannot send a command: {e}\n{}", self.name, self.logs());
        }
    }

    /// Connects to `port` on loopback.
    pub fn connect(&mut self, port: u16) {
        self.command(json!({"op": "connect", "host": "127.0.0.1", "port": port}));
    }

    /// Broadcasts packets.
    pub fn send(&mut self, packets: Value) {
        self.command(json!({"op": "send", "packets": packets}));
    }

    /// Waits for the first event matching `pred` (earlier non-matching
    /// events stay available for later waits). Panics with the node's logs
    /// on timeout or on an error event.
    pub fn wait_for(&mut self, timeout: Duration, mut pred: impl FnMut(&Value) -> bool) -> Value {
        if let Some(i) = self.backlog.iter().position(&mut pred) {
            return self.backlog.remove(i);
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(v) => {
                    if v["event"] == "error" {
                        panic!("{}: py2p error: {}\n{}", self.name, v["error"], self.logs());
                    }
                    if pred(&v) {
                        return v;
                    }
                    self.backlog.push(v);
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "{}: timed out; events so far: {:?}\n{}",
                        self.name,
                        self.backlog,
                        self.logs()
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("{}: process ended\n{}", self.name, self.logs())
                }
            }
        }
    }

    /// Collects message events for `window`, returning them (and keeping
    /// other events).
    pub fn messages_within(&mut self, window: Duration) -> Vec<Value> {
        let deadline = Instant::now() + window;
        while let Ok(v) = self
            .events
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            self.backlog.push(v);
        }
        let (msgs, rest): (Vec<Value>, Vec<Value>) = self
            .backlog
            .drain(..)
            .partition(|v| v["event"] == "message");
        self.backlog = rest;
        msgs
    }

    /// The ids in its routing table.
    pub fn peers(&mut self) -> Vec<String> {
        self.command(json!({"op": "peers"}));
        let v = self.wait_for(Duration::from_secs(10), |v| v["event"] == "peers");
        v["peers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap().to_owned())
            .collect()
    }

    /// Waits (bounded) until its routing table holds `n` peers; returns them.
    pub fn wait_peer_count(&mut self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let peers = self.peers();
            if peers.len() == n {
                return peers;
            }
            if Instant::now() > deadline {
                panic!(
                    "{}: has {} peers, expected {n}\n{}",
                    self.name,
                    peers.len(),
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What it printed on stderr.
    pub fn logs(&self) -> String {
        format!(
            "--- {} stderr ---\n{}",
            self.name,
            self.stderr.lock().unwrap()
        )
    }
}

impl Drop for Py2pNode {
    fn drop(&mut self) {
        let _ = self.stdin.write_all(b"{\"op\":\"quit\"}\n");
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
