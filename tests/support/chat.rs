//! `rs2p node` in chat mode, in a child process, as a person would run it:
//! lines typed on stdin, messages read on stdout (kept as raw bytes, so a
//! test can check that nothing a peer sent reached the terminal as a
//! control character), status lines read on stderr. Every wait is bounded
//! ([`WAIT`]).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use super::process::rs2p_command;
use super::wait::WAIT;

/// Which stream a line came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// A chat node in a child process.
pub struct ChatProcess {
    /// A name for messages.
    pub name: String,
    /// Where it listens, `HOST:PORT`, from its first status line.
    pub addr: String,
    /// The first 8 characters of its id, as it shows them.
    pub short_id: String,
    child: Child,
    stdin: Option<ChildStdin>,
    rx: Receiver<(Stream, Vec<u8>)>,
    /// Every line read so far, in the order read, and whether a wait took it.
    lines: Vec<(Stream, Vec<u8>)>,
    taken: Vec<bool>,
}

impl ChatProcess {
    /// Starts `rs2p node --bind 127.0.0.1:0 EXTRA…` in chat mode and waits
    /// for its `-- node ID listening on ADDR` line.
    pub fn start(name: &str, extra: &[&str]) -> ChatProcess {
        let mut cmd = rs2p_command();
        cmd.args(["node", "--bind", "127.0.0.1:0"]).args(extra);
        ChatProcess::spawn(name, cmd)
    }

    /// Spawns `cmd` (a chat-mode `rs2p node`) and waits for its first
    /// status line.
    pub fn spawn(name: &str, mut cmd: Command) -> ChatProcess {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: cannot start {cmd:?}: {e}"));
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().expect("stdout");
        let err = child.stderr.take().expect("stderr");
        for (stream, pipe) in [
            (
                Stream::Stdout,
                Box::new(out) as Box<dyn std::io::Read + Send>,
            ),
            (Stream::Stderr, Box::new(err)),
        ] {
            let tx = tx.clone();
            thread::spawn(move || {
                for line in BufReader::new(pipe).split(b'\n') {
                    let Ok(line) = line else { break };
                    if tx.send((stream.clone(), line)).is_err() {
                        break;
                    }
                }
            });
        }
        let stdin = child.stdin.take();
        let mut node = ChatProcess {
            name: name.to_owned(),
            addr: String::new(),
            short_id: String::new(),
            child,
            stdin,
            rx,
            lines: Vec::new(),
            taken: Vec::new(),
        };
        let ready = node.wait_stderr("the listening line", |l| {
            l.starts_with("-- node ") && l.contains(" listening on ")
        });
        let mut words = ready.split_whitespace();
        node.short_id = words.nth(2).expect("id").to_owned();
        node.addr = words.nth(2).expect("address").to_owned();
        node
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Types one line.
    pub fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}")
            .and_then(|_| stdin.flush())
            .unwrap_or_else(|e| panic!("{}: cannot write: {e}", self.name));
    }

    /// Closes stdin (Ctrl-D).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Takes the first stdout line not taken yet that matches.
    pub fn wait_stdout(&mut self, what: &str, matches: impl Fn(&[u8]) -> bool) -> Vec<u8> {
        self.wait(Stream::Stdout, what, |l| matches(l))
    }

    /// Takes the first stderr line not taken yet that matches.
    pub fn wait_stderr(&mut self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        let line = self.wait(Stream::Stderr, what, |l| {
            matches(&String::from_utf8_lossy(l))
        });
        String::from_utf8_lossy(&line).into_owned()
    }

    fn wait(&mut self, stream: Stream, what: &str, matches: impl Fn(&[u8]) -> bool) -> Vec<u8> {
        let found = (0..self.lines.len())
            .find(|&i| !self.taken[i] && self.lines[i].0 == stream && matches(&self.lines[i].1));
        if let Some(i) = found {
            self.taken[i] = true;
            return self.lines[i].1.clone();
        }
        let deadline = Instant::now() + WAIT;
        loop {
            match self
                .rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok((s, line)) => {
                    let hit = s == stream && matches(&line);
                    self.lines.push((s, line));
                    self.taken.push(hit);
                    if hit {
                        return self.lines.last().expect("pushed").1.clone();
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("{}: no {what} within {WAIT:?}\n{}", self.name, self.dump())
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!(
                        "{}: output closed before {what}\n{}",
                        self.name,
                        self.dump()
                    )
                }
            }
        }
    }

    /// Reads whatever arrives within `window` (a bounded check of absence).
    pub fn read_for(&mut self, window: Duration) {
        let deadline = Instant::now() + window;
        while let Ok((s, line)) = self
            .rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            self.lines.push((s, line));
            self.taken.push(false);
        }
    }

    /// Every stdout line read so far.
    pub fn stdout_lines(&self) -> Vec<Vec<u8>> {
        self.lines
            .iter()
            .filter(|(s, _)| *s == Stream::Stdout)
            .map(|(_, l)| l.clone())
            .collect()
    }

    /// Every stderr line read so far.
    pub fn stderr_lines(&self) -> Vec<String> {
        self.lines
            .iter()
            .filter(|(s, _)| *s == Stream::Stderr)
            .map(|(_, l)| String::from_utf8_lossy(l).into_owned())
            .collect()
    }

    /// Waits (at most [`WAIT`]) for the exit, reading the rest of the output.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            match self
                .rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok((s, line)) => {
                    self.lines.push((s, line));
                    self.taken.push(false);
                }
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "{}: did not exit within {WAIT:?}\n{}",
                        self.name,
                        self.dump()
                    )
                }
            }
        }
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "{}: no exit", self.name);
            thread::sleep(Duration::from_millis(10));
        }
    }

    fn dump(&self) -> String {
        let mut text = format!("----- {} output -----\n", self.name);
        for (s, line) in &self.lines {
            text.push_str(&format!(
                "{s:?}: {}\n",
                String::from_utf8_lossy(line).escape_debug()
            ));
        }
        text
    }
}

impl Drop for ChatProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!("{}", self.dump());
        }
    }
}
