//! The py2p side of the sync benchmark: one py2p process per node.

use super::*;

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
pub(super) fn py2p_line(
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
pub(super) fn py2p_catch_up(
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
