//! py2p 0.7.878 in the same line: four real py2p nodes, one Python process
//! each (`bench/py2p_line.py`, its JSON-lines protocol on stdin/stdout),
//! node i connected to node i−1, `max_outgoing` 0, Plaintext. Node 0 sends
//! 100-byte payloads (a bytes packet: sequence number, send time, padding)
//! as a credit allows: at most `window` broadcasts ahead of node 3, since
//! py2p loses messages when bursts fill its socket buffers (it ignores
//! partial writes; BENCHMARKS.md §2). Time: from the coordinator's first
//! credit until node 3's last arrival (wall clock).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::common::{LatencyResult, Outcome, Throughput, PAYLOAD_LEN};

struct Proc {
    child: Child,
    stdin: ChildStdin,
    port: u16,
}

fn send(p: &mut Proc, v: Value) -> Result<(), String> {
    writeln!(p.stdin, "{v}")
        .and_then(|()| p.stdin.flush())
        .map_err(|e| format!("py2p node on port {}: {e}", p.port))
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// Waits for `event` from node `node`, keeping other events for later.
fn wait_for(
    events: &Receiver<(usize, Value)>,
    backlog: &mut Vec<(usize, Value)>,
    node: usize,
    event: &str,
    within: Duration,
) -> Result<Value, String> {
    if let Some(at) = backlog
        .iter()
        .position(|(i, v)| *i == node && v["event"] == event)
    {
        return Ok(backlog.remove(at).1);
    }
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match events.recv_timeout(left) {
            Ok((i, v)) if i == node && v["event"] == event => return Ok(v),
            Ok(other) => backlog.push(other),
            Err(RecvTimeoutError::Timeout) => {
                return Err(format!("py2p node {node}: no {event} in {within:?}"))
            }
            Err(RecvTimeoutError::Disconnected) => return Err("py2p nodes went away".into()),
        }
    }
}

struct Line {
    procs: Vec<Proc>,
    events: Receiver<(usize, Value)>,
    backlog: Vec<(usize, Value)>,
}

impl Drop for Line {
    fn drop(&mut self) {
        for p in &mut self.procs {
            let _ = send(p, json!({"op": "quit"}));
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for p in &mut self.procs {
            while Instant::now() < deadline {
                if let Ok(Some(_)) = p.child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
    }
}

fn start(python: &Path, script: &Path) -> Result<Line, String> {
    let (tx, events) = channel();
    let mut procs = Vec::new();
    for i in 0..4 {
        let port = free_port()?;
        let mut child = Command::new(python)
            .arg(script)
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{}: {e}", python.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if tx.send((i, v)).is_err() {
                        return;
                    }
                }
            }
        });
        procs.push(Proc { child, stdin, port });
    }
    let mut line = Line {
        procs,
        events,
        backlog: Vec::new(),
    };
    for i in 0..4 {
        wait_for(
            &line.events,
            &mut line.backlog,
            i,
            "ready",
            Duration::from_secs(30),
        )?;
    }
    for i in 1..4 {
        let port = line.procs[i - 1].port;
        send(&mut line.procs[i], json!({"op": "connect", "port": port}))?;
        wait_for(
            &line.events,
            &mut line.backlog,
            i,
            "connected",
            Duration::from_secs(15),
        )?;
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let mut ok = true;
        for i in 0..4 {
            send(&mut line.procs[i], json!({"op": "peers"}))?;
            let v = wait_for(
                &line.events,
                &mut line.backlog,
                i,
                "peers",
                Duration::from_secs(5),
            )?;
            let want = if i == 0 || i == 3 { 1 } else { 2 };
            ok &= v["count"].as_u64() == Some(want);
        }
        if ok {
            return Ok(line);
        }
        if Instant::now() > deadline {
            return Err("the py2p line did not form in 15 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends `n` broadcasts from node 0, at most `window` ahead of node 3;
/// returns node 3's final report (or what it had at a stall).
fn drive(line: &mut Line, n: u64, window: u64, stall: Duration) -> Result<(Value, u64), String> {
    send(
        &mut line.procs[3],
        json!({"op": "expect", "count": n, "step": 1}),
    )?;
    let start = now_ns();
    send(
        &mut line.procs[0],
        json!({"op": "send", "count": n, "len": PAYLOAD_LEN}),
    )?;
    let mut credit = window.min(n);
    send(&mut line.procs[0], json!({"op": "credit", "upto": credit}))?;
    let mut got = 0u64;
    let mut last_progress = Instant::now();
    let mut asked = false;
    loop {
        let ev = match line.backlog.pop() {
            Some(e) => Ok(e),
            None => line.events.recv_timeout(Duration::from_millis(100)),
        };
        match ev {
            Ok((3, v)) => match v["event"].as_str() {
                Some("progress") => {
                    got = got.max(v["got"].as_u64().unwrap_or(0));
                    last_progress = Instant::now();
                }
                Some("done") => return Ok((v, start)),
                _ => {}
            },
            Ok(_) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return Err("py2p nodes went away".into()),
        }
        let upto = (got + window).min(n);
        if upto > credit {
            credit = upto;
            send(&mut line.procs[0], json!({"op": "credit", "upto": credit}))?;
        }
        if last_progress.elapsed() > stall {
            if asked {
                return Err("py2p node 3 stopped answering".into());
            }
            // Ask for the report: it comes as a "done" with what arrived.
            send(&mut line.procs[3], json!({"op": "report"}))?;
            asked = true;
            last_progress = Instant::now();
        }
    }
}

pub fn throughput(
    python: &Path,
    script: &Path,
    n: u64,
    window: u64,
    stall: Duration,
) -> Result<Throughput, String> {
    let mut line = start(python, script)?;
    let (done, start_ns) = drive(&mut line, n, window, stall)?;
    let got = done["got"].as_u64().unwrap_or(0);
    let elapsed = Duration::from_nanos(
        done["last_ns"]
            .as_u64()
            .unwrap_or(0)
            .saturating_sub(start_ns),
    );
    let outcome = if got >= n {
        Outcome::Done { elapsed }
    } else {
        Outcome::Stalled {
            got,
            after: elapsed,
            why: format!("nothing arrived for {stall:?}"),
        }
    };
    Ok(Throughput {
        n,
        outcome,
        delivered: got,
        duplicates: done["dups"].as_u64().unwrap_or(0),
        notes: vec![("window (broadcasts ahead of node 3)".into(), window)],
    })
}

/// One broadcast in flight; latencies from py2p_line.py's histogram (1 µs
/// buckets below 10 ms, 100 µs above), send to node 3's handler. The
/// script's sequence numbers cannot start over on a line, so no warm-up
/// is left out: all `total` round trips count.
pub fn latency(
    python: &Path,
    script: &Path,
    total: usize,
    stall: Duration,
) -> Result<LatencyResult, String> {
    let mut line = start(python, script)?;
    let (done, _) = drive(&mut line, total as u64, 1, stall)?;
    let mut samples = Vec::new();
    for pair in done["hist"].as_array().into_iter().flatten() {
        let (b, c) = (pair[0].as_u64().unwrap_or(0), pair[1].as_u64().unwrap_or(0));
        let us = if b < 10_000 {
            b
        } else {
            10_000 + (b - 10_000) * 100
        };
        samples.extend(std::iter::repeat_n(Duration::from_micros(us), c as usize));
    }
    Ok(LatencyResult::from_samples(samples, total, 0))
}
