//! The sync benchmarks (`rs2p bench --sync`): the replicated dictionary,
//! rs2p and py2p side by side in the same run.
//!
//! - **Line**: a 4-node line of sync nodes (`max_outgoing` 0, each node
//!   dials the one before it); node 0 sets N distinct keys, 100-byte bin
//!   values, and the time runs from its first set until node 3 holds
//!   every key: sets per second propagated to every node. rs2p's node 0
//!   is a user's loop of `set(key, value).await`; py2p's sets as a
//!   coordinator's credit allows (at most `--py2p-window` keys in flight,
//!   because py2p loses messages under bursts).
//! - **Catch-up**: node A holds K keys (10,000 by default); a new node B
//!   dials A, and the time runs from B's connect call until B holds every
//!   key.
//!
//! rs2p's nodes are `SyncSocket`s in this process, watched through their
//! change events (`events()`), not polled; py2p's are real py2p 0.7.878
//! `SyncSocket`s, one process per node (`bench/py2p_sync.py`), watched
//! through py2p's own `update` event.

use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rs2p::protocol::sync::{SyncEvent, SyncKey};
use rs2p::protocol::Packet;
use rs2p::sync::SyncSocket;
use rs2p::Event;
use serde_json::{json, Value};
use tokio::sync::broadcast;

use super::harness::{human_rate, median};
use super::procs::{send, spawn, stop, wait_for, NodeCommand, Proc};

/// Nodes of the line.
const LINE_NODES: usize = 4;

/// Give up when nothing progresses for this long.
const STALL: Duration = Duration::from_secs(20);

/// What `rs2p bench --sync` runs.
#[derive(Clone, Debug)]
pub struct SyncBenchConfig {
    /// Runs per measurement (medians are reported).
    pub runs: usize,
    /// Keys set at node 0 of rs2p's line.
    pub sets: u64,
    /// Keys set at node 0 of py2p's line.
    pub py2p_sets: u64,
    /// Keys of the catch-up (both systems).
    pub catch_up_keys: u64,
    /// Bytes of each value (a msgpack bin).
    pub value_len: usize,
    /// Most keys in flight in py2p's line.
    pub py2p_window: u64,
    /// How to start a py2p sync node process, if py2p is measured. The
    /// catch-up also runs with `--patch-framing` added (py2p as shipped
    /// loses most of a large catch-up).
    pub py2p: Option<NodeCommand>,
}

/// py2p's system names in the report.
const PY2P: &str = "py2p 0.7.878, process per node";
const PY2P_SHIPPED: &str = "py2p 0.7.878 as shipped";
const PY2P_PATCHED: &str = "py2p 0.7.878, framing bugs patched";

/// How long py2p as shipped may stay without a new catch-up key before
/// its run counts as incomplete.
const SHIPPED_STALL: Duration = Duration::from_secs(5);

/// One timed run: `ops` keys propagated or caught up in `elapsed`.
#[derive(Clone, Copy, Debug)]
pub struct SyncRun {
    /// Keys.
    pub ops: u64,
    /// From the first set (line) or the connect call (catch-up) until the
    /// last node held every key.
    pub elapsed: Duration,
    /// Line only: how long node 0's own set loop took.
    pub set_loop: Option<Duration>,
    /// Keys the last node held in the end: `ops` unless the run stalled
    /// (py2p as shipped loses catch-up entries; `elapsed` then runs to the
    /// last key that arrived).
    pub held: u64,
}

impl SyncRun {
    /// Keys per second.
    pub fn rate(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Whether every key arrived.
    pub fn complete(&self) -> bool {
        self.held >= self.ops
    }
}

/// Several runs of one system on one measurement.
#[derive(Clone, Debug)]
pub struct SyncMeasured {
    /// The system.
    pub system: String,
    /// Every run.
    pub runs: Vec<SyncRun>,
}

impl SyncMeasured {
    fn values(&self, f: impl Fn(&SyncRun) -> f64) -> (f64, f64, f64) {
        let v: Vec<f64> = self.runs.iter().map(f).collect();
        let min = v.iter().copied().fold(f64::INFINITY, f64::min);
        let max = v.iter().copied().fold(0.0, f64::max);
        (median(&v), min, max)
    }

    /// Median keys per second, slowest and fastest run.
    pub fn rate(&self) -> (f64, f64, f64) {
        self.values(SyncRun::rate)
    }

    /// Median seconds, fastest and slowest run.
    pub fn seconds(&self) -> (f64, f64, f64) {
        self.values(|r| r.elapsed.as_secs_f64())
    }

    /// Whether every run delivered every key.
    pub fn complete(&self) -> bool {
        self.runs.iter().all(SyncRun::complete)
    }

    fn to_json(&self) -> Value {
        json!({
            "system": self.system,
            "keys": self.runs.first().map_or(0, |r| r.ops),
            "keys_per_s": self.rate().0,
            "seconds": self.seconds().0,
            "complete": self.complete(),
            "runs": self.runs.iter().map(|r| json!({
                "keys": r.ops,
                "held": r.held,
                "seconds": r.elapsed.as_secs_f64(),
                "set_loop_seconds": r.set_loop.map(|d| d.as_secs_f64()),
            })).collect::<Vec<_>>(),
        })
    }
}

/// Everything measured.
#[derive(Clone, Debug, Default)]
pub struct SyncReport {
    /// Sets through the line: rs2p, then py2p.
    pub line: Vec<SyncMeasured>,
    /// Catch-up: rs2p, then py2p.
    pub catch_up: Vec<SyncMeasured>,
    /// Value bytes.
    pub value_len: usize,
    /// py2p's window.
    pub py2p_window: u64,
    /// What could not be run, and why.
    pub failures: Vec<String>,
}

/// Runs the measurements; progress goes to stderr.
pub async fn run_sync_bench(cfg: &SyncBenchConfig) -> SyncReport {
    let mut report = SyncReport {
        value_len: cfg.value_len,
        py2p_window: cfg.py2p_window,
        ..SyncReport::default()
    };
    let runs = cfg.runs.max(1);
    let len = cfg.value_len;
    let (sets, keys) = (cfg.sets, cfg.catch_up_keys);

    eprintln!("sync line: 4 nodes, node 0 sets {sets} keys ({len}-byte values)");
    let f = &mut report.failures;
    report.line.extend(
        repeat("rs2p, one process", runs, f, || async move {
            rs2p_line(sets, len).await
        })
        .await,
    );
    if let Some(cmd) = &cfg.py2p {
        let (sets, window) = (cfg.py2p_sets, cfg.py2p_window);
        report.line.extend(
            repeat(PY2P, runs, f, || {
                let cmd = cmd.clone();
                in_thread(move || py2p_line(&cmd, sets, len, window))
            })
            .await,
        );
    }

    eprintln!("sync catch-up: a new node joins one holding {keys} keys");
    report.catch_up.extend(
        repeat("rs2p, one process", runs, f, || async move {
            rs2p_catch_up(keys, len).await
        })
        .await,
    );
    if let Some(cmd) = &cfg.py2p {
        // As shipped: once, no warm-up (it does not finish; it is shown for
        // what it delivers).
        report.catch_up.extend(
            repeat(PY2P_SHIPPED, 0, f, || {
                let cmd = cmd.clone();
                in_thread(move || py2p_catch_up(&cmd, keys, len, SHIPPED_STALL))
            })
            .await,
        );
        let mut patched = cmd.clone();
        patched.args.push("--patch-framing".into());
        report.catch_up.extend(
            repeat(PY2P_PATCHED, runs, f, || {
                let cmd = patched.clone();
                in_thread(move || py2p_catch_up(&cmd, keys, len, STALL))
            })
            .await,
        );
    }
    report
}

/// Runs `f` `runs` times after one warm-up run (not kept); `runs` 0 runs
/// it once, without a warm-up. A failure is reported and ends the
/// measurement.
async fn repeat<F, Fut>(
    system: &str,
    runs: usize,
    failures: &mut Vec<String>,
    mut f: F,
) -> Option<SyncMeasured>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<SyncRun, String>>,
{
    let mut out = Vec::new();
    let first = usize::from(runs == 0);
    for i in first..=runs.max(1) {
        if i == 0 {
            eprintln!("  {system}: warm-up");
        } else {
            eprintln!("  {system}: run {i} of {}", runs.max(1));
        }
        match f().await {
            Ok(r) if i > 0 => out.push(r),
            Ok(_) => {}
            Err(e) => {
                failures.push(format!("{system}: {e}"));
                break;
            }
        }
    }
    (!out.is_empty()).then(|| SyncMeasured {
        system: system.to_owned(),
        runs: out,
    })
}

async fn in_thread<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| e.to_string())?
}

// ---- rs2p: SyncSockets in this process -------------------------------------

/// A sync node for the benchmark: room for every key, uncompressed (as
/// the py2p nodes), a line stays a line.
async fn rs2p_node(max_keys: u64) -> Result<SyncSocket, String> {
    SyncSocket::builder()
        .max_keys(usize::try_from(max_keys).unwrap_or(usize::MAX).max(1000))
        .mesh(|m| m.max_outgoing(0).compression(Vec::new()))
        .bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("cannot start a node: {e}"))
}

/// `b` dials `a`; returns once both have the other as a peer.
async fn join(b: &SyncSocket, a: &SyncSocket) -> Result<(), String> {
    let mut joined = a.mesh().events();
    let b_id = b.mesh().id().clone();
    b.mesh()
        .connect("127.0.0.1", a.mesh().addr().port(), None)
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let wait = async {
        loop {
            match joined.recv().await {
                Ok(Event::PeerJoined(id)) if id == b_id => return Ok(()),
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return Err("node closed".to_owned()),
            }
        }
    };
    tokio::time::timeout(STALL, wait)
        .await
        .map_err(|_| "the listening side never saw its peer".to_owned())?
}

/// Counts `node`'s changes until it holds `keys` new keys (from the
/// moment of this call); resolves to the moment it did.
fn watch_until_held(
    node: &SyncSocket,
    keys: u64,
) -> tokio::task::JoinHandle<Result<Instant, String>> {
    let mut changes = node.events();
    let node = node.clone();
    tokio::spawn(async move {
        let mut got = 0u64;
        while got < keys {
            match tokio::time::timeout(STALL, changes.recv()).await {
                Ok(Ok(SyncEvent::Updated { .. })) => got += 1,
                Ok(Ok(_)) => {}
                // Every change here is a new key: missed ones count too
                // (and the count is checked against the dictionary below).
                Ok(Err(broadcast::error::RecvError::Lagged(n))) => got += n,
                Ok(Err(broadcast::error::RecvError::Closed)) => {
                    return Err("node closed".to_owned())
                }
                Err(_) => {
                    return Err(format!(
                        "stalled: {} of {keys} keys after {} s without a change",
                        node.len(),
                        STALL.as_secs()
                    ))
                }
            }
        }
        let at = Instant::now();
        let held = node.len() as u64;
        if held < keys {
            return Err(format!("held {held} of {keys} keys"));
        }
        Ok(at)
    })
}

fn key(prefix: &str, i: u64) -> SyncKey {
    SyncKey::from(format!("{prefix}{i:06}"))
}

async fn close_all(nodes: &[SyncSocket]) {
    for n in nodes {
        n.close().await;
    }
}

/// rs2p's line: node 0 sets `sets` keys in a loop, timed until node 3
/// holds them all.
async fn rs2p_line(sets: u64, value_len: usize) -> Result<SyncRun, String> {
    let mut nodes = Vec::with_capacity(LINE_NODES);
    for _ in 0..LINE_NODES {
        nodes.push(rs2p_node(sets).await?);
    }
    let result = async {
        for i in 1..LINE_NODES {
            join(&nodes[i], &nodes[i - 1]).await?;
        }
        let held = watch_until_held(&nodes[LINE_NODES - 1], sets);
        let value = Packet::bin(vec![0x5au8; value_len]);
        let node = nodes[0].clone();
        let start = Instant::now();
        // Node 0's application: a task of the runtime, as an application's
        // work is (not the thread that started the runtime).
        let setter = tokio::spawn(async move {
            for i in 0..sets {
                node.set(key("l-", i), value.clone())
                    .await
                    .map_err(|e| format!("set {i}: {e}"))?;
            }
            Ok::<_, String>(start.elapsed())
        });
        let set_loop = setter.await.map_err(|e| e.to_string())??;
        let end = held.await.map_err(|e| e.to_string())??;
        Ok(SyncRun {
            ops: sets,
            elapsed: end - start,
            set_loop: Some(set_loop),
            held: sets,
        })
    }
    .await;
    close_all(&nodes).await;
    result
}

/// rs2p's catch-up: A holds `keys` keys; B dials A, timed until B holds
/// them all.
async fn rs2p_catch_up(keys: u64, value_len: usize) -> Result<SyncRun, String> {
    let a = rs2p_node(keys).await?;
    let b = rs2p_node(keys).await?;
    let result = async {
        let value = Packet::bin(vec![0x5au8; value_len]);
        let items = (0..keys).map(|i| (key("c-", i), value.clone())).collect();
        a.update(items).await.map_err(|e| format!("fill: {e}"))?;
        let held = watch_until_held(&b, keys);
        let start = Instant::now();
        b.mesh()
            .connect("127.0.0.1", a.mesh().addr().port(), None)
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let end = held.await.map_err(|e| e.to_string())??;
        Ok(SyncRun {
            ops: keys,
            elapsed: end - start,
            set_loop: None,
            held: keys,
        })
    }
    .await;
    close_all(&[a, b]).await;
    result
}

// ---- py2p: one process per node --------------------------------------------

/// py2p node processes with their event channel; stopped when dropped.
struct Py2pNodes {
    procs: Vec<Proc>,
    events: Receiver<(usize, Value)>,
    backlog: Vec<(usize, Value)>,
    stderr: Arc<Mutex<String>>,
}

impl Py2pNodes {
    fn start(cmd: &NodeCommand, n: usize) -> Result<Py2pNodes, String> {
        let (tx, events) = channel();
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut procs = Vec::with_capacity(n);
        for i in 0..n {
            match spawn(cmd, i, tx.clone(), stderr.clone()) {
                Ok(p) => procs.push(p),
                Err(e) => {
                    stop(&mut procs);
                    return Err(e);
                }
            }
        }
        let mut nodes = Py2pNodes {
            procs,
            events,
            backlog: Vec::new(),
            stderr,
        };
        for i in 0..n {
            nodes.wait(i, "ready", Duration::from_secs(30))?;
        }
        Ok(nodes)
    }

    fn send(&mut self, i: usize, v: Value) -> Result<(), String> {
        send(&mut self.procs[i], v)
    }

    fn wait(&mut self, i: usize, name: &str, timeout: Duration) -> Result<Value, String> {
        wait_for(&self.events, &mut self.backlog, i, name, timeout)
    }

    /// Node `i` dials node `j`.
    fn connect(&mut self, i: usize, j: usize) -> Result<Value, String> {
        let port = self.procs[j].port;
        self.send(i, json!({"op": "connect", "port": port}))?;
        self.wait(i, "connected", Duration::from_secs(15))
    }

    /// Waits until node `i` has `n` peers.
    fn wait_peers(&mut self, i: usize, n: u64) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            self.send(i, json!({"op": "peers"}))?;
            let v = self.wait(i, "peers", Duration::from_secs(5))?;
            if v["count"].as_u64() == Some(n) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("node {i} never had {n} peers"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The next event of node `i` among `names`; `None` after `stall`
    /// without one.
    fn next(&mut self, i: usize, names: &[&str], stall: Duration) -> Result<Option<Value>, String> {
        if let Some(k) = self
            .backlog
            .iter()
            .position(|(f, v)| *f == i && names.iter().any(|n| v["event"] == *n))
        {
            return Ok(Some(self.backlog.remove(k).1));
        }
        let deadline = Instant::now() + stall;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok((f, v)) if f == i && names.iter().any(|n| v["event"] == *n) => {
                    return Ok(Some(v))
                }
                Ok(other) => self.backlog.push(other),
                Err(RecvTimeoutError::Timeout) => return Ok(None),
                Err(RecvTimeoutError::Disconnected) => return Err("every node went away".into()),
            }
        }
    }
}

impl Drop for Py2pNodes {
    fn drop(&mut self) {
        stop(&mut self.procs);
    }
}

fn with_log(nodes: &Py2pNodes, e: String) -> String {
    let log = nodes.stderr.lock().unwrap_or_else(|e| e.into_inner());
    if log.is_empty() {
        e
    } else {
        format!("{e}\n{log}")
    }
}

fn ns(v: &Value, field: &str) -> Result<u64, String> {
    v[field]
        .as_u64()
        .ok_or_else(|| format!("no {field} in {v}"))
}

/// py2p's line: node 0 sets `sets` keys with at most `window` in flight,
/// timed from its first set until node 3 holds them all.
fn py2p_line(
    cmd: &NodeCommand,
    sets: u64,
    value_len: usize,
    window: u64,
) -> Result<SyncRun, String> {
    let mut nodes = Py2pNodes::start(cmd, LINE_NODES)?;
    let run = (|| {
        for i in 1..LINE_NODES {
            nodes.connect(i, i - 1)?;
        }
        for i in 0..LINE_NODES {
            let want = if i == 0 || i == LINE_NODES - 1 { 1 } else { 2 };
            nodes.wait_peers(i, want)?;
        }
        let last = LINE_NODES - 1;
        let step = (window / 2).max(1);
        nodes.send(
            last,
            json!({"op": "expect", "count": sets, "prefix": "l-", "step": step}),
        )?;
        nodes.send(
            0,
            json!({"op": "send", "count": sets, "prefix": "l-", "len": value_len}),
        )?;
        let mut credit = window.min(sets);
        nodes.send(0, json!({"op": "credit", "upto": credit}))?;
        let done = loop {
            let v = nodes
                .next(last, &["progress", "done"], STALL)?
                .ok_or_else(|| format!("node {last}: no progress for {} s", STALL.as_secs()))?;
            if v["event"] == "done" {
                break v;
            }
            let got = v["got"].as_u64().unwrap_or(0);
            let upto = (got + window).min(sets);
            if upto > credit {
                credit = upto;
                nodes.send(0, json!({"op": "credit", "upto": credit}))?;
            }
        };
        let sent = nodes.wait(0, "sent", STALL)?;
        let (first, last_ns) = (ns(&sent, "first_ns")?, ns(&done, "last_ns")?);
        Ok(SyncRun {
            ops: sets,
            elapsed: Duration::from_nanos(last_ns.saturating_sub(first)),
            set_loop: Some(Duration::from_nanos(
                ns(&sent, "last_ns")?.saturating_sub(first),
            )),
            held: sets,
        })
    })();
    run.map_err(|e| with_log(&nodes, e))
}

/// py2p's catch-up: A holds `keys` keys; B dials A, timed from B's
/// connect call until B holds them all, or (incomplete) until the last key
/// that arrived before `stall` without a new one.
fn py2p_catch_up(
    cmd: &NodeCommand,
    keys: u64,
    value_len: usize,
    stall: Duration,
) -> Result<SyncRun, String> {
    let mut nodes = Py2pNodes::start(cmd, 2)?;
    let run = (|| {
        nodes.send(
            0,
            json!({"op": "fill", "count": keys, "prefix": "c-", "len": value_len}),
        )?;
        nodes.wait(0, "filled", Duration::from_secs(120))?;
        let step = (keys / 10).max(1);
        nodes.send(
            1,
            json!({"op": "expect", "count": keys, "prefix": "c-", "step": step}),
        )?;
        let connected = nodes.connect(1, 0)?;
        let done = loop {
            match nodes.next(1, &["progress", "done"], stall)? {
                Some(v) if v["event"] == "done" => break v,
                Some(_) => {}
                None => {
                    // Stalled: what arrived, and when the last of it did.
                    nodes.send(1, json!({"op": "report"}))?;
                    break nodes.wait(1, "done", Duration::from_secs(5))?;
                }
            }
        };
        let start = ns(&connected, "start_ns")?;
        Ok(SyncRun {
            ops: keys,
            elapsed: Duration::from_nanos(ns(&done, "last_ns")?.saturating_sub(start)),
            set_loop: None,
            held: done["got"].as_u64().unwrap_or(0),
        })
    })();
    run.map_err(|e| with_log(&nodes, e))
}

// ---- the report ---------------------------------------------------------------

fn human_secs(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.2} s")
    } else {
        format!("{:.1} ms", s * 1e3)
    }
}

fn verdict(ratio: f64) -> &'static str {
    if ratio >= 100.0 {
        "**met**"
    } else {
        "**not met**"
    }
}

impl SyncReport {
    /// rs2p's figure over py2p's: sets/s ratio on the line, time ratio
    /// (py2p's over rs2p's) on the catch-up.
    /// The catch-up is compared with py2p with its framing bugs patched:
    /// as shipped, py2p does not finish it.
    pub fn ratios(&self) -> (Option<f64>, Option<f64>) {
        let find = |v: &[SyncMeasured], system: &str| {
            v.iter()
                .find(|m| m.system == system && m.complete())
                .cloned()
        };
        const RS2P: &str = "rs2p, one process";
        let line = find(&self.line, RS2P)
            .zip(find(&self.line, PY2P))
            .map(|(rs, py)| rs.rate().0 / py.rate().0.max(1e-9));
        let catch_up = find(&self.catch_up, RS2P)
            .zip(find(&self.catch_up, PY2P_PATCHED))
            .map(|(rs, py)| py.seconds().0 / rs.seconds().0.max(1e-9));
        (line, catch_up)
    }

    /// The report as Markdown tables.
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        let (line_ratio, catch_up_ratio) = self.ratios();
        s.push_str(&format!(
            "\n### Sync: sets propagated through a 4-node line\n\n\
             Node 0 sets distinct keys ({} B values); timed until node 3 holds \
             every key. py2p: at most {} keys in flight.\n\n\
             | system | keys | sets/s (median) | min – max | node 0's set loop | runs |\n\
             |---|---:|---:|---:|---:|---:|\n",
            self.value_len, self.py2p_window
        ));
        for m in &self.line {
            let (med, min, max) = m.rate();
            let set_loop = median(
                &m.runs
                    .iter()
                    .filter_map(|r| r.set_loop)
                    .map(|d| d.as_secs_f64())
                    .collect::<Vec<_>>(),
            );
            s.push_str(&format!(
                "| {} | {} | {} | {} – {} | {} | {} |\n",
                m.system,
                m.runs[0].ops,
                human_rate(med),
                human_rate(min),
                human_rate(max),
                human_secs(set_loop),
                m.runs.len()
            ));
        }
        if let Some(r) = line_ratio {
            s.push_str(&format!(
                "\nrs2p / py2p: **{r:.0}×** (target ≥ 100×: {})\n",
                verdict(r)
            ));
        }
        s.push_str(&format!(
            "\n### Sync: catch-up of a new node\n\n\
             A node holds the keys ({} B values); a new node dials it; timed from \
             the connect call until the new node holds every key.\n\n\
             | system | keys | time (median) | min – max | keys/s | runs |\n\
             |---|---:|---:|---:|---:|---:|\n",
            self.value_len
        ));
        for m in &self.catch_up {
            let (med, min, max) = m.seconds();
            if m.complete() {
                s.push_str(&format!(
                    "| {} | {} | {} | {} – {} | {} | {} |\n",
                    m.system,
                    m.runs[0].ops,
                    human_secs(med),
                    human_secs(min),
                    human_secs(max),
                    human_rate(m.rate().0),
                    m.runs.len()
                ));
            } else {
                let held: Vec<String> = m.runs.iter().map(|r| r.held.to_string()).collect();
                s.push_str(&format!(
                    "| {} | {} | never: {} of {} keys arrived (the last after {}), then none | | | {} |\n",
                    m.system,
                    m.runs[0].ops,
                    held.join(", "),
                    m.runs[0].ops,
                    human_secs(med),
                    m.runs.len()
                ));
            }
        }
        if let Some(r) = catch_up_ratio {
            s.push_str(&format!(
                "\npy2p's time (framing bugs patched) / rs2p's: **{r:.0}×** (target ≥ 100×: {})\n",
                verdict(r)
            ));
        }
        for f in &self.failures {
            s.push_str(&format!("\nFAILED: {f}\n"));
        }
        s
    }

    /// The report as JSON.
    pub fn to_json(&self) -> Value {
        let (line_ratio, catch_up_ratio) = self.ratios();
        json!({
            "value_len": self.value_len,
            "py2p_window": self.py2p_window,
            "line": self.line.iter().map(SyncMeasured::to_json).collect::<Vec<_>>(),
            "catch_up": self.catch_up.iter().map(SyncMeasured::to_json).collect::<Vec<_>>(),
            "line_ratio": line_ratio,
            "catch_up_ratio": catch_up_ratio,
            "failures": self.failures,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn small_runs_measure_and_report() {
        let cfg = SyncBenchConfig {
            runs: 1,
            sets: 300,
            py2p_sets: 0,
            catch_up_keys: 300,
            value_len: 100,
            py2p_window: 16,
            py2p: None,
        };
        let report = run_sync_bench(&cfg).await;
        assert!(report.failures.is_empty(), "{:?}", report.failures);
        assert_eq!(report.line.len(), 1);
        assert_eq!(report.catch_up.len(), 1);
        let run = report.line[0].runs[0];
        assert_eq!(run.ops, 300);
        assert!(run.set_loop.unwrap() <= run.elapsed);
        let text = report.to_markdown();
        assert!(text.contains("| rs2p, one process | 300 |"), "{text}");
        assert_eq!(report.ratios(), (None, None));
        assert_eq!(report.to_json()["line"][0]["keys"], 300);
    }
}
