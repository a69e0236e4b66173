//! The line benchmark with every node in its own process: rs2p nodes (this
//! program started again in its child role, [`child_main`]) or real py2p
//! nodes (`bench/py2p_line.py`). Both speak the same JSON-lines protocol on
//! stdin/stdout (documented in `bench/py2p_line.py`), so one coordinator
//! ([`run_process_line`]) drives either.
//!
//! The sender sends only up to a credit that the coordinator raises as the
//! receivers report progress: at most `window` broadcasts are in flight.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rs2p::protocol::{Compression, Packet};
use rs2p::{Error, MeshSocket};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};

use super::wire::CountingTcp;
use super::workload::{now_ns, payload, Histogram, RunResult, Tracker};

/// How to start one node process; `{port}` in `args` is replaced by a free
/// loopback port.
#[derive(Clone, Debug)]
pub struct NodeCommand {
    /// The program.
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
}

/// One process line run.
#[derive(Clone, Debug)]
pub struct ProcessRun {
    /// System name for the report.
    pub system: String,
    /// Nodes (processes).
    pub nodes: usize,
    /// Broadcasts from node 0.
    pub broadcasts: u64,
    /// Payload bytes.
    pub payload_len: usize,
    /// Bytes of one frame (for the report).
    pub frame_len: usize,
    /// Most broadcasts in flight.
    pub window: u64,
    /// Give up after this long without progress.
    pub stall: Duration,
}

/// A node process: its stdin and the port it listens on.
pub(super) struct Proc {
    child: Child,
    stdin: ChildStdin,
    pub(super) port: u16,
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Writes one JSON command to a node process.
pub(super) fn send(p: &mut Proc, v: Value) -> Result<(), String> {
    writeln!(p.stdin, "{v}")
        .and_then(|_| p.stdin.flush())
        .map_err(|e| format!("node on port {}: {e}", p.port))
}

/// Waits for an event named `name` from process `from`, keeping others.
pub(super) fn wait_for(
    events: &Receiver<(usize, Value)>,
    backlog: &mut Vec<(usize, Value)>,
    from: usize,
    name: &str,
    timeout: Duration,
) -> Result<Value, String> {
    if let Some(i) = backlog
        .iter()
        .position(|(f, v)| *f == from && v["event"] == name)
    {
        return Ok(backlog.remove(i).1);
    }
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match events.recv_timeout(left) {
            Ok((f, v)) if f == from && v["event"] == name => return Ok(v),
            Ok(other) => backlog.push(other),
            Err(_) => return Err(format!("node {from}: no {name:?} event in {timeout:?}")),
        }
    }
}

/// Starts node process `index` of `cmd` on a free port; its JSON events
/// go to `events`, tagged with `index`, its stderr to `stderr_log`.
pub(super) fn spawn(
    cmd: &NodeCommand,
    index: usize,
    events: std::sync::mpsc::Sender<(usize, Value)>,
    stderr_log: Arc<Mutex<String>>,
) -> Result<Proc, String> {
    let port = free_port().map_err(|e| e.to_string())?;
    let args: Vec<String> = cmd
        .args
        .iter()
        .map(|a| a.replace("{port}", &port.to_string()))
        .collect();
    let mut child = Command::new(&cmd.program)
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", cmd.program))?;
    let stdin = child.stdin.take().ok_or("no stdin")?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                if events.send((index, v)).is_err() {
                    break;
                }
            }
        }
    });
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let mut log = stderr_log.lock().unwrap_or_else(|e| e.into_inner());
            if log.len() < 16 * 1024 {
                log.push_str(&format!("[node {index}] {line}\n"));
            }
        }
    });
    Ok(Proc { child, stdin, port })
}

/// Runs the line workload with one process per node.
///
/// # Errors
/// A description of what failed (a process did not start or answer).
pub fn run_process_line(cmd: &NodeCommand, run: &ProcessRun) -> Result<RunResult, String> {
    let n = run.nodes.max(2);
    let (tx, events) = channel();
    let stderr_log = Arc::new(Mutex::new(String::new()));
    let mut procs = Vec::with_capacity(n);
    for i in 0..n {
        procs.push(spawn(cmd, i, tx.clone(), stderr_log.clone())?);
    }
    let result = coordinate(&mut procs, &events, run);
    stop(&mut procs);
    result.map_err(|e| {
        let log = stderr_log.lock().unwrap_or_else(|e| e.into_inner());
        format!("{e}\n{log}")
    })
}

/// Asks every node process to quit, gives them 5 s in all, then kills
/// what is left.
pub(super) fn stop(procs: &mut [Proc]) {
    for p in procs.iter_mut() {
        let _ = send(p, json!({"op": "quit"}));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    for p in procs.iter_mut() {
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

fn coordinate(
    procs: &mut [Proc],
    events: &Receiver<(usize, Value)>,
    run: &ProcessRun,
) -> Result<RunResult, String> {
    let n = procs.len();
    let mut backlog = Vec::new();
    for i in 0..n {
        wait_for(events, &mut backlog, i, "ready", Duration::from_secs(30))?;
    }
    for i in 1..n {
        let port = procs[i - 1].port;
        send(&mut procs[i], json!({"op": "connect", "port": port}))?;
        wait_for(
            events,
            &mut backlog,
            i,
            "connected",
            Duration::from_secs(15),
        )?;
    }
    // Wait for the line: the ends have one peer, the others two.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let mut ok = true;
        for (i, p) in procs.iter_mut().enumerate() {
            send(p, json!({"op": "peers"}))?;
            let v = wait_for(events, &mut backlog, i, "peers", Duration::from_secs(5))?;
            let want = if i == 0 || i == n - 1 { 1 } else { 2 };
            ok &= v["count"].as_u64() == Some(want);
        }
        if ok {
            break;
        }
        if Instant::now() > deadline {
            return Err("the line did not form".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let wire_before = wire_bytes(procs, events, &mut backlog)?;
    let step = (run.window / 8).max(1);
    for p in procs.iter_mut().skip(1) {
        send(
            p,
            json!({"op": "expect", "count": run.broadcasts, "step": step}),
        )?;
    }
    let start_ns = now_ns();
    send(
        &mut procs[0],
        json!({"op": "send", "count": run.broadcasts, "len": run.payload_len}),
    )?;
    let mut credit = run.window.min(run.broadcasts);
    send(&mut procs[0], json!({"op": "credit", "upto": credit}))?;
    let mut got = vec![0u64; n];
    let mut done: Vec<Option<Value>> = vec![None; n];
    let mut last_progress = Instant::now();
    let mut asked_report = false;
    while done.iter().skip(1).any(Option::is_none) {
        let ev = match backlog.pop() {
            Some(e) => Ok(e),
            None => events.recv_timeout(Duration::from_millis(100)),
        };
        match ev {
            Ok((i, v)) => match v["event"].as_str() {
                Some("progress") => {
                    got[i] = got[i].max(v["got"].as_u64().unwrap_or(0));
                    last_progress = Instant::now();
                }
                Some("done") => {
                    got[i] = got[i].max(v["got"].as_u64().unwrap_or(0));
                    done[i] = Some(v);
                    last_progress = Instant::now();
                }
                _ => {}
            },
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return Err("every node went away".into()),
        }
        let min = got.iter().skip(1).copied().min().unwrap_or(0);
        let upto = (min + run.window).min(run.broadcasts);
        if upto > credit {
            credit = upto;
            send(&mut procs[0], json!({"op": "credit", "upto": credit}))?;
        }
        if last_progress.elapsed() > run.stall {
            if asked_report {
                return Err("receivers stopped answering".into());
            }
            for (i, p) in procs.iter_mut().enumerate().skip(1) {
                if done[i].is_none() {
                    send(p, json!({"op": "report"}))?;
                }
            }
            asked_report = true;
            last_progress = Instant::now();
        }
    }
    let wire_after = wire_bytes(procs, events, &mut backlog)?;
    let mut latency = Histogram::default();
    let (mut delivered, mut duplicates, mut last_ns) = (0, 0, start_ns);
    let mut min_got = u64::MAX;
    let mut per_receiver = Vec::with_capacity(n - 1);
    for v in done.iter().flatten() {
        let g = v["got"].as_u64().unwrap_or(0);
        per_receiver.push(g);
        delivered += g;
        min_got = min_got.min(g);
        duplicates += v["dups"].as_u64().unwrap_or(0);
        last_ns = last_ns.max(v["last_ns"].as_u64().unwrap_or(0));
        latency.merge(&Histogram::from_json(&v["hist"]));
    }
    Ok(RunResult {
        system: run.system.clone(),
        nodes: n,
        receivers: n - 1,
        broadcasts: run.broadcasts,
        payload_len: run.payload_len,
        frame_len: run.frame_len,
        elapsed: Duration::from_nanos(last_ns.saturating_sub(start_ns)),
        delivered,
        per_receiver,
        // In a line a broadcast at the last node has passed every other:
        // the least any receiver got is the number every receiver got.
        complete_broadcasts: min_got,
        duplicates,
        wire_bytes: match (wire_before, wire_after) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a)),
            _ => None,
        },
        latency,
    })
}

/// Sum of the bytes every node wrote so far, if every node counts them.
fn wire_bytes(
    procs: &mut [Proc],
    events: &Receiver<(usize, Value)>,
    backlog: &mut Vec<(usize, Value)>,
) -> Result<Option<u64>, String> {
    let mut total = Some(0u64);
    for (i, p) in procs.iter_mut().enumerate() {
        send(p, json!({"op": "stats"}))?;
        let v = wait_for(events, backlog, i, "stats", Duration::from_secs(5))?;
        total = total.zip(v["wire_bytes"].as_u64()).map(|(a, b)| a + b);
    }
    Ok(total)
}

fn emit(v: Value) {
    println!("{v}");
}

/// The rs2p benchmark node process: binds `127.0.0.1:port` and serves the
/// JSON-lines protocol of `bench/py2p_line.py` until `quit` or the end of
/// stdin.
///
/// # Errors
/// If the node cannot bind.
pub async fn child_main(port: u16, compression: Vec<Compression>) -> Result<(), Error> {
    let written = Arc::new(AtomicU64::new(0));
    let node = MeshSocket::builder()
        .transport(Arc::new(CountingTcp::new(written.clone())))
        .compression(compression)
        .max_outgoing(0)
        .recv_queue(1 << 20)
        .bind(&format!("127.0.0.1:{port}"))
        .await?;
    emit(json!({"event": "ready", "port": port, "id": node.id().to_string()}));
    let (tx, mut commands) = mpsc::unbounded_channel::<Value>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                if tx.send(v).is_err() {
                    break;
                }
            }
        }
    });
    let (credit_tx, credit_rx) = watch::channel(0u64);
    let tracker: Arc<Mutex<Option<Tracker>>> = Arc::new(Mutex::new(None));
    let reported = Arc::new(std::sync::atomic::AtomicBool::new(false));
    while let Some(cmd) = commands.recv().await {
        match cmd["op"].as_str() {
            Some("quit") | None => break,
            Some("connect") => {
                let port = cmd["port"].as_u64().unwrap_or(0) as u16;
                match node.connect("127.0.0.1", port, None).await {
                    Ok(_) => emit(json!({"event": "connected", "port": port})),
                    Err(e) => emit(json!({"event": "error", "error": e.to_string()})),
                }
            }
            Some("peers") => {
                let count = node.routing_table().await.map_or(0, |p| p.len());
                emit(json!({"event": "peers", "count": count}));
            }
            Some("stats") => {
                emit(json!({"event": "stats", "wire_bytes": written.load(Ordering::Relaxed)}));
            }
            Some("expect") => {
                let count = cmd["count"].as_u64().unwrap_or(0);
                let step = cmd["step"].as_u64().unwrap_or(100).max(1);
                *tracker.lock().unwrap_or_else(|e| e.into_inner()) = Some(Tracker::new(count));
                tokio::spawn(receive_loop(
                    node.clone(),
                    tracker.clone(),
                    reported.clone(),
                    step,
                ));
            }
            Some("send") => {
                let count = cmd["count"].as_u64().unwrap_or(0);
                let len = cmd["len"].as_u64().unwrap_or(16) as usize;
                tokio::spawn(send_loop(node.clone(), count, len, credit_rx.clone()));
            }
            Some("credit") => {
                let upto = cmd["upto"].as_u64().unwrap_or(0);
                credit_tx.send_if_modified(|c| {
                    let raise = upto > *c;
                    *c = (*c).max(upto);
                    raise
                });
            }
            Some("report") => report(&tracker, &reported),
            Some(_) => {}
        }
    }
    node.close().await;
    Ok(())
}

fn report(tracker: &Mutex<Option<Tracker>>, reported: &std::sync::atomic::AtomicBool) {
    if reported.swap(true, Ordering::AcqRel) {
        return;
    }
    let guard = tracker.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(t) = guard.as_ref() {
        emit(json!({
            "event": "done", "got": t.got, "dups": t.duplicates, "foreign": t.foreign,
            "last_ns": t.last_ns, "hist": t.latency.to_json(),
        }));
    }
}

async fn receive_loop(
    node: MeshSocket,
    tracker: Arc<Mutex<Option<Tracker>>>,
    reported: Arc<std::sync::atomic::AtomicBool>,
    step: u64,
) {
    let mut last_step = 0;
    while let Ok(first) = node.next_message().await {
        let now = now_ns();
        let (got, complete) = {
            let mut guard = tracker.lock().unwrap_or_else(|e| e.into_inner());
            let Some(t) = guard.as_mut() else { return };
            for m in std::iter::once(first).chain(node.recv_many(4096)) {
                if let Some(p) = m.packets().first().and_then(Packet::as_bytes) {
                    t.record(p, now);
                }
            }
            (t.got, t.complete())
        };
        if complete {
            report(&tracker, &reported);
            return;
        }
        if got / step > last_step {
            last_step = got / step;
            emit(json!({"event": "progress", "got": got}));
        }
    }
}

async fn send_loop(node: MeshSocket, count: u64, len: usize, credit: watch::Receiver<u64>) {
    let next = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (node, next, mut credit) = (node.clone(), next.clone(), credit.clone());
            tokio::spawn(async move {
                loop {
                    let seq = next.fetch_add(1, Ordering::Relaxed);
                    if seq >= count {
                        return;
                    }
                    if credit.wait_for(|&c| seq < c).await.is_err() {
                        return;
                    }
                    if node
                        .send(vec![Packet::bin(payload(seq, len))])
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    emit(json!({"event": "sent", "count": count}));
}
