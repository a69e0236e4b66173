//! [`TextProcess`]: a child process driven as a person would drive it —
//! lines of text typed on its stdin, lines of text read from its stdout
//! and stderr (`rs2p sync` in plain mode). For JSON-lines children use
//! [`NodeProcess`](super::process::NodeProcess).
//!
//! As there, a wait *takes* the first stdout line not taken yet that
//! matches, and every wait is bounded ([`WAIT`] unless said otherwise).

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::wait::{wait_until_blocking, POLL, WAIT};

/// A child read and written as lines of text.
pub struct TextProcess {
    /// A name for failure messages.
    pub name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    rx: Receiver<String>,
    lines: Vec<String>,
    taken: Vec<bool>,
    stderr: Arc<Mutex<String>>,
}

impl TextProcess {
    /// Spawns `cmd` with piped stdio and starts reading its output.
    pub fn start(name: &str, mut cmd: Command) -> TextProcess {
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
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let mut pipe = child.stderr.take().expect("stderr");
        thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let mut s = sink.lock().unwrap_or_else(|e| e.into_inner());
                s.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        TextProcess {
            name: name.to_owned(),
            stdin: child.stdin.take(),
            child,
            rx,
            lines: Vec::new(),
            taken: Vec::new(),
            stderr,
        }
    }

    /// Types one line.
    pub fn send_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        if let Err(e) = writeln!(stdin, "{line}").and_then(|_| stdin.flush()) {
            panic!("{}: cannot write: {e}\n{}", self.name, self.stderr());
        }
    }

    /// Closes its stdin (end of input).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Takes the first stdout line not taken yet that matches, waiting for
    /// it at most `within`; `None` if none came.
    pub fn try_line_within(
        &mut self,
        within: Duration,
        matches: impl Fn(&str) -> bool,
    ) -> Option<String> {
        if let Some(i) = (0..self.lines.len()).find(|&i| !self.taken[i] && matches(&self.lines[i]))
        {
            self.taken[i] = true;
            return Some(self.lines[i].clone());
        }
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    let hit = matches(&line);
                    self.lines.push(line);
                    self.taken.push(hit);
                    if hit {
                        return self.lines.last().cloned();
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// Takes the first stdout line not taken yet that matches, waiting for
    /// it at most [`WAIT`]; panics with `what` otherwise.
    pub fn wait_line(&mut self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        match self.try_line_within(WAIT, matches) {
            Some(line) => line,
            None => panic!(
                "{}: no {what} within {WAIT:?}; stdout so far: {:?}\nstderr:\n{}",
                self.name,
                self.lines,
                self.stderr()
            ),
        }
    }

    /// Every stdout line read so far.
    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// Everything it printed on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits (at most [`WAIT`]) until its stderr contains `text`.
    pub fn wait_stderr(&self, text: &str) {
        wait_until_blocking(
            &format!("{}: {text:?} on stderr", self.name),
            WAIT,
            POLL,
            || {
                if self.stderr().contains(text) {
                    Ok(())
                } else {
                    Err(self.stderr())
                }
            },
        );
    }

    /// Waits (at most [`WAIT`]) until it exits, reading the rest of its
    /// stdout; returns its status.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    self.lines.push(line);
                    self.taken.push(false);
                }
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "{}: did not exit within {WAIT:?}\n{}",
                        self.name,
                        self.stderr()
                    )
                }
            }
        }
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{}: stdout closed, but no exit within {WAIT:?}",
                self.name
            );
            thread::sleep(POLL);
        }
    }
}

impl Drop for TextProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!("===== {} stdout =====", self.name);
            for line in &self.lines {
                eprintln!("{line}");
            }
            eprintln!("===== {} stderr =====\n{}", self.name, self.stderr());
        }
    }
}
