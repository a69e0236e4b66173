//! Child processes: one wrapper, [`NodeProcess`], for a mesh node in a
//! process of its own that takes one JSON command a line on stdin and
//! prints one JSON event a line on stdout, and [`run_to_end`] for a
//! command that runs to its end.
//!
//! Three implementations speak such a line protocol, each with its own
//! start function:
//! * rs2p: `rs2p node --json` ([`NodeProcess::rs2p`] on loopback,
//!   `NodeProcess::rs2p_in` in a network namespace, in `netns.rs`), and
//!   `rs2p sync --json` ([`NodeProcess::rs2p_sync`]);
//! * py2p: `tests/py2p/mesh_peer.py` driving a real py2p node
//!   (`NodeProcess::py2p`, in `py2p.rs`), and `tests/py2p/sync_peer.py`
//!   driving a py2p `SyncSocket` (`NodeProcess::py2p_sync`);
//! * js2p: `tests/js2p/peer.js` driving a real js2p node
//!   (`NodeProcess::js2p`, `NodeProcess::js2p_sync`, in `js2p.rs`).
//!
//! All print `{"event":"ready","id":…}` first, `{"event":"message",
//! "kind":…,"sender":…,"packets":[…]}` per message, and
//! `{"event":"peers","peers":[…]}` for `{"op":"peers"}`. They differ in
//! some op names and fields, which the methods here hide ([`Kind`]). An
//! `error` event is a test failure for py2p (it means the harness broke)
//! and an expected answer to bad input for rs2p. js2p reports the
//! exceptions it swallows itself (then it drops a connection) as `error`
//! events too: those are kept for the test to judge ([`errors`]), and only
//! errors of the driver itself (a bad op, a failed start) fail the test —
//! except on sync peers, whose refused ops are answers (`fail_on_error`).
//!
//! [`errors`]: NodeProcess::errors
//!
//! Every line read is kept ([`NodeProcess::lines`]). A wait *takes* the
//! first line not taken yet that matches, so two waits for the same kind
//! of event get two different lines; lines that did not match stay
//! available for later waits. Every wait is bounded ([`WAIT`] unless said
//! otherwise). Dropping a node ends its process; while the test is
//! panicking it also prints the end of the node's output.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rs2p::PeerId;
use serde_json::{json, Value};

use super::wait::WAIT;

/// Which implementation a [`NodeProcess`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `rs2p node --json`.
    Rs2p,
    /// py2p through `tests/py2p/mesh_peer.py`.
    Py2p,
    /// js2p through `tests/js2p/peer.js`.
    Js2p,
}

/// A line from a node's stdout, with the moment the test read it. A line
/// that is not JSON is kept as `{"event":"<not JSON>","line":…}`.
#[derive(Clone, Debug)]
pub struct Line {
    pub at: Instant,
    pub value: Value,
}

/// One node in a child process, driven through JSON lines.
pub struct NodeProcess {
    /// A name for messages and logs.
    pub name: String,
    /// Its node id, from its `ready` event.
    pub id: String,
    /// Where it listens, `HOST:PORT`.
    pub addr: String,
    /// Its port.
    pub port: u16,
    kind: Kind,
    child: Child,
    stdin: Option<ChildStdin>,
    rx: Receiver<Line>,
    /// Every line read so far, in order, and whether a wait took it.
    lines: Vec<Line>,
    taken: Vec<bool>,
    stderr: Arc<Mutex<String>>,
    /// Closed when the stderr reader has read to the end.
    stderr_done: Receiver<()>,
    /// Whether a py2p `error` event, or a js2p error event of a refused
    /// op, fails the test at once (mesh peers: an error there means the
    /// harness broke). Sync peers, whose errors are expected answers (a
    /// refused write, js2p's throwing `del`), turn it off.
    pub fail_on_error: bool,
}

/// The binary under test.
pub fn rs2p_command() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rs2p"))
}

impl NodeProcess {
    /// Starts `rs2p node --json --bind 127.0.0.1:0 -vv EXTRA…` and waits for
    /// its `ready` event.
    pub fn rs2p(name: &str, extra: &[&str]) -> NodeProcess {
        let mut cmd = rs2p_command();
        cmd.args(["node", "--json", "--bind", "127.0.0.1:0", "-vv"])
            .args(extra);
        let node = NodeProcess::start(name, Kind::Rs2p, cmd);
        assert!(!node.id.is_empty());
        assert!(
            node.addr.starts_with("127.0.0.1:"),
            "{name}: ready at {}",
            node.addr
        );
        node
    }

    /// Starts `rs2p sync --json --bind 127.0.0.1:0 -vv EXTRA…` (a node of a
    /// sync network) and waits for its `ready` event. Its error events are
    /// answers to bad input or refused writes, not failures.
    pub fn rs2p_sync(name: &str, extra: &[&str]) -> NodeProcess {
        let mut cmd = rs2p_command();
        cmd.args(["sync", "--json", "--bind", "127.0.0.1:0", "-vv"])
            .args(extra);
        let node = NodeProcess::start(name, Kind::Rs2p, cmd);
        assert!(
            node.addr.starts_with("127.0.0.1:"),
            "{name}: ready at {}",
            node.addr
        );
        node
    }

    /// Spawns `cmd` (which runs a node of `kind`) with piped stdio, starts
    /// the readers of its output and waits (at most [`WAIT`]) for its
    /// `ready` event, which gives its id (and, for rs2p, its address).
    pub fn start(name: &str, kind: Kind, mut cmd: Command) -> NodeProcess {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: cannot start {cmd:?}: {e}"));
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let value = serde_json::from_str(&line)
                    .unwrap_or_else(|_| json!({"event": "<not JSON>", "line": line}));
                if tx
                    .send(Line {
                        at: Instant::now(),
                        value,
                    })
                    .is_err()
                {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().expect("stderr");
        let sink = stderr.clone();
        let (done_tx, stderr_done) = mpsc::channel::<()>();
        thread::spawn(move || {
            let _done = done_tx;
            let mut buf = [0u8; 8192];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let mut s = sink.lock().unwrap_or_else(|e| e.into_inner());
                s.push_str(&String::from_utf8_lossy(&buf[..n]));
                // Keep the last 256 KiB.
                if s.len() > 512 * 1024 {
                    let mut cut = s.len() - 256 * 1024;
                    while !s.is_char_boundary(cut) {
                        cut += 1;
                    }
                    s.drain(..cut);
                }
            }
        });
        let stdin = child.stdin.take();
        let mut node = NodeProcess {
            name: name.to_owned(),
            id: String::new(),
            addr: String::new(),
            port: 0,
            kind,
            child,
            stdin,
            rx,
            lines: Vec::new(),
            taken: Vec::new(),
            stderr,
            stderr_done,
            fail_on_error: kind != Kind::Rs2p,
        };
        let ready = node.wait_for("ready", |v| v["event"] == "ready");
        // A process that runs no node itself (seed_peer.py --client) has none.
        node.id = ready["id"].as_str().unwrap_or_default().to_owned();
        match kind {
            Kind::Rs2p => {
                node.addr = ready["addr"].as_str().expect("ready.addr").to_owned();
                node.port = node
                    .addr
                    .rsplit_once(':')
                    .and_then(|(_, p)| p.parse().ok())
                    .unwrap_or_else(|| panic!("{name}: no port in {ready}"));
            }
            Kind::Py2p | Kind::Js2p => {
                node.port = ready["port"]
                    .as_u64()
                    .and_then(|p| u16::try_from(p).ok())
                    .expect("ready.port");
                node.addr = format!("127.0.0.1:{}", node.port);
            }
        }
        node
    }

    /// Which implementation it runs.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Its id as a [`PeerId`].
    pub fn peer_id(&self) -> PeerId {
        PeerId::from(self.id.as_str())
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the child has exited (without waiting).
    pub fn has_exited(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_some()
    }

    /// Writes one line to the child's stdin.
    pub fn send_line(&mut self, line: &str) {
        let name = &self.name;
        let stdin = self.stdin.as_mut().expect("stdin still open");
        if let Err(e) = writeln!(stdin, "{line}").and_then(|_| stdin.flush()) {
            panic!("{name}: cannot write to the node: {e}\n{}", self.logs());
        }
    }

    /// Writes raw bytes to the child's stdin (no end of line added).
    pub fn send_bytes(&mut self, bytes: &[u8]) {
        let name = &self.name;
        let stdin = self.stdin.as_mut().expect("stdin still open");
        if let Err(e) = stdin.write_all(bytes).and_then(|_| stdin.flush()) {
            panic!("{name}: cannot write to the node: {e}\n{}", self.logs());
        }
    }

    /// Sends one JSON command.
    pub fn op(&mut self, op: Value) {
        self.send_line(&op.to_string());
    }

    /// Closes its stdin (end of input).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Broadcasts `packets` (a JSON array).
    pub fn broadcast(&mut self, packets: Value) {
        let op = match self.kind {
            Kind::Rs2p => "broadcast",
            Kind::Py2p | Kind::Js2p => "send",
        };
        self.op(json!({"op": op, "packets": packets}));
    }

    /// Connects to `port` on loopback.
    pub fn connect(&mut self, port: u16) {
        match self.kind {
            Kind::Rs2p => self.op(json!({"op": "connect", "addr": format!("127.0.0.1:{port}")})),
            Kind::Py2p | Kind::Js2p => {
                self.op(json!({"op": "connect", "host": "127.0.0.1", "port": port}))
            }
        }
    }

    /// Takes one line from the reader into `lines`.
    fn keep(&mut self, line: Line) {
        if line.value["event"] == "error" {
            let harness_broke = match self.kind {
                Kind::Rs2p => false,
                Kind::Py2p => self.fail_on_error,
                // js2p's own exceptions ("js2p", "connection", "uncaught")
                // are the test's to judge; a failed start means the driver
                // is wrong, and so does a refused op unless refusals are
                // answers here (sync nodes: a lease, js2p's `del`).
                Kind::Js2p => match line.value["source"].as_str() {
                    Some("startup" | "listen" | "driver") => true,
                    Some("op") => self.fail_on_error,
                    _ => false,
                },
            };
            if harness_broke {
                panic!(
                    "{}: {:?} driver error: {}\n{}",
                    self.name,
                    self.kind,
                    line.value["error"],
                    self.logs()
                );
            }
        }
        self.lines.push(line);
        self.taken.push(false);
    }

    /// Reads every line printed so far, without waiting.
    pub fn pump(&mut self) {
        while let Ok(line) = self.rx.try_recv() {
            self.keep(line);
        }
    }

    /// How many lines have been read so far: a mark for [`wait_since`].
    ///
    /// [`wait_since`]: NodeProcess::wait_since
    pub fn mark(&self) -> usize {
        self.lines.len()
    }

    /// Takes the first line not taken yet that matches, waiting for it at
    /// most [`WAIT`].
    pub fn wait_for(&mut self, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
        self.wait_since_within(0, what, WAIT, matches)
    }

    /// As [`wait_for`](NodeProcess::wait_for), waiting at most `within`.
    pub fn wait_for_within(
        &mut self,
        what: &str,
        within: Duration,
        matches: impl Fn(&Value) -> bool,
    ) -> Value {
        self.wait_since_within(0, what, within, matches)
    }

    /// Takes the first line read after `mark` (not taken yet) that
    /// matches, waiting for it at most [`WAIT`].
    pub fn wait_since(
        &mut self,
        mark: usize,
        what: &str,
        matches: impl Fn(&Value) -> bool,
    ) -> Value {
        self.wait_since_within(mark, what, WAIT, matches)
    }

    fn wait_since_within(
        &mut self,
        mark: usize,
        what: &str,
        within: Duration,
        matches: impl Fn(&Value) -> bool,
    ) -> Value {
        let found =
            (mark..self.lines.len()).find(|&i| !self.taken[i] && matches(&self.lines[i].value));
        if let Some(i) = found {
            self.taken[i] = true;
            return self.lines[i].value.clone();
        }
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    let hit = matches(&line.value);
                    self.keep(line);
                    if hit {
                        let i = self.lines.len() - 1;
                        self.taken[i] = true;
                        return self.lines[i].value.clone();
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!(
                    "{}: no {what} within {within:?}; lines not taken: {:?}\n{}",
                    self.name,
                    self.untaken().take(20).collect::<Vec<_>>(),
                    self.logs()
                ),
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "{}: stdout closed before {what} ({:?})\n{}",
                    self.name,
                    self.child.try_wait(),
                    self.logs()
                ),
            }
        }
    }

    fn untaken(&self) -> impl Iterator<Item = &Value> {
        self.lines
            .iter()
            .zip(&self.taken)
            .filter(|(_, taken)| !**taken)
            .map(|(l, _)| &l.value)
    }

    /// Takes the next message event whose first packet is `text`.
    pub fn wait_message(&mut self, text: &str) -> Value {
        self.wait_for(&format!("message {text:?}"), |v| {
            v["event"] == "message" && text_of(v) == text
        })
    }

    /// Asks for its routing table (answered by [`wait_peers`]).
    ///
    /// [`wait_peers`]: NodeProcess::wait_peers
    pub fn ask_peers(&mut self) {
        self.op(json!({"op": "peers"}));
    }

    /// Takes the answer to an already sent `peers` op: the peers' ids.
    pub fn wait_peers(&mut self) -> Vec<String> {
        let v = self.wait_for("peers event", |v| v["event"] == "peers");
        let kind = self.kind;
        v["peers"]
            .as_array()
            .expect("peers.peers")
            .iter()
            .map(|p| match kind {
                Kind::Rs2p => p["id"].as_str().expect("peer id").to_owned(),
                Kind::Py2p | Kind::Js2p => p.as_str().expect("peer id").to_owned(),
            })
            .collect()
    }

    /// The ids in its routing table.
    pub fn peers(&mut self) -> Vec<String> {
        self.ask_peers();
        self.wait_peers()
    }

    /// Waits (at most [`WAIT`]) until its routing table holds `n` peers;
    /// returns them.
    pub fn wait_peer_count(&mut self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + WAIT;
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
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Reads lines for `window`, then takes and returns every message
    /// event not taken yet (a bounded check that nothing more arrives).
    pub fn messages_within(&mut self, window: Duration) -> Vec<Value> {
        let deadline = Instant::now() + window;
        while let Ok(line) = self
            .rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            self.keep(line);
        }
        let mut out = Vec::new();
        for (line, taken) in self.lines.iter().zip(self.taken.iter_mut()) {
            if !*taken && line.value["event"] == "message" {
                *taken = true;
                out.push(line.value.clone());
            }
        }
        out
    }

    /// Asserts that no message event arrives, beyond those already
    /// taken, within `window` (a bounded check of absence: late duplicates
    /// would show here).
    pub fn assert_no_more_messages(&mut self, window: Duration) {
        let extra = self.messages_within(window);
        assert!(extra.is_empty(), "{} got duplicates: {extra:?}", self.name);
    }

    /// Every line read so far, taken or not.
    pub fn lines(&self) -> &[Line] {
        &self.lines
    }

    /// Every message event read so far, taken or not.
    pub fn messages(&self) -> impl Iterator<Item = &Line> {
        self.lines.iter().filter(|l| l.value["event"] == "message")
    }

    /// How many message events read so far carry message id `id`.
    pub fn messages_with_id(&self, id: &str) -> usize {
        self.messages().filter(|l| l.value["id"] == id).count()
    }

    /// The error events (and lines that were not JSON) read so far.
    pub fn errors(&self) -> Vec<&Value> {
        self.lines
            .iter()
            .map(|l| &l.value)
            .filter(|v| v["event"] == "error" || v["event"] == "<not JSON>")
            .collect()
    }

    /// Waits (at most [`WAIT`]) until the child has closed its stdout and
    /// exited, reading the rest of its output; returns its status.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => self.keep(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => panic!(
                    "{}: did not exit within {WAIT:?}\n{}",
                    self.name,
                    self.logs()
                ),
            }
        }
        wait_child(&mut self.child, deadline)
            .unwrap_or_else(|| panic!("{}: stdout closed, but no exit within {WAIT:?}", self.name))
    }

    /// Sends `quit`, closes stdin, waits for the exit and asserts success.
    pub fn quit(&mut self) {
        self.op(json!({"op": "quit"}));
        self.close_stdin();
        let status = self.wait_exit();
        assert!(status.success(), "{}: exited with {status}", self.name);
    }

    /// Everything it printed on stderr (the last 256 KiB at least).
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The last `max` bytes of its stderr.
    pub fn stderr_tail(&self, max: usize) -> String {
        let s = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
        let mut start = s.len().saturating_sub(max);
        while !s.is_char_boundary(start) {
            start += 1;
        }
        s[start..].to_owned()
    }

    /// The end of its stderr, for failure messages.
    pub fn logs(&self) -> String {
        format!(
            "----- {} ({}) stderr tail -----\n{}",
            self.name,
            self.id.get(..8).unwrap_or(&self.id),
            self.stderr_tail(4000)
        )
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        if self.kind == Kind::Py2p {
            // py2p closes its sockets on quit; give it a moment to.
            if let Some(stdin) = self.stdin.as_mut() {
                let _ = stdin.write_all(b"{\"op\":\"quit\"}\n");
                let _ = stdin.flush();
            }
            self.stdin = None;
            let _ = wait_child(&mut self.child, Instant::now() + Duration::from_secs(3));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            // The stderr reader ends with the process.
            let _ = self.stderr_done.recv_timeout(Duration::from_secs(1));
            while let Ok(line) = self.rx.try_recv() {
                self.lines.push(line);
            }
            eprintln!(
                "===== {} ({}, {}) stdout, last lines =====",
                self.name, self.id, self.addr
            );
            let skip = self.lines.len().saturating_sub(100);
            for line in &self.lines[skip..] {
                eprintln!("{}", line.value);
            }
            eprintln!("{}", self.logs());
        }
    }
}

/// The first packet of a message event, as text (empty if it is not text).
pub fn text_of(v: &Value) -> String {
    v["packets"][0].as_str().unwrap_or_default().to_owned()
}

/// Polls `child` until it exits or `deadline` passes.
fn wait_child(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Sends `signal` (`libc::SIGTERM`, …) to process `pid`, a child of this
/// test.
pub fn send_signal(pid: u32, signal: i32) {
    let pid = libc::pid_t::try_from(pid).expect("pid");
    // SAFETY: kill(2) on our own child process; no memory is involved.
    let rc = unsafe { libc::kill(pid, signal) };
    assert_eq!(rc, 0, "kill({pid}, {signal}) failed");
}

/// The peak resident set size (`VmHWM` in `/proc/PID/status`) of a live
/// process, in KiB. Linux only.
pub fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("cannot read /proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmHWM in /proc/{pid}/status"))
}

/// What a finished command printed.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` to its end, bounded by `limit` (killed and a panic after
/// that): `input` is written to its stdin from a thread of its own (stdin
/// is closed when there is none), stdout and stderr are collected.
pub fn run_to_end(mut cmd: Command, input: Option<Vec<u8>>, limit: Duration) -> Output {
    let mut child = cmd
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let writer = input.map(|input| {
        let mut stdin = child.stdin.take().expect("piped stdin");
        // A broken pipe (the child died early) shows in its exit status.
        thread::spawn(move || {
            let _ = stdin.write_all(&input);
        })
    });
    let mut out_pipe = child.stdout.take().expect("stdout");
    let out = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out_pipe.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    });
    let mut err_pipe = child.stderr.take().expect("stderr");
    let err = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err_pipe.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    });
    let Some(status) = wait_child(&mut child, Instant::now() + limit) else {
        let _ = child.kill();
        let _ = child.wait();
        let (out, err) = (out.join().unwrap(), err.join().unwrap());
        panic!("{cmd:?} did not exit within {limit:?}\nstdout:\n{out}\nstderr:\n{err}");
    };
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// Runs `rs2p ARGS` with stdin closed to its end, bounded by [`WAIT`].
pub fn rs2p_run(args: &[&str]) -> Output {
    let mut cmd = rs2p_command();
    cmd.args(args);
    run_to_end(cmd, None, WAIT)
}
