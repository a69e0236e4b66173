//! `rs2p bench --chord`: the DHT on an 8-node ring, rs2p and (with
//! `--py2p`) real py2p 0.7.878 side by side: set and get latency (one at a
//! time, round robin over the nodes) and throughput (one client per node),
//! medians of `--runs` runs.

use std::time::{Duration, Instant};

use rs2p::chord::ChordSocket;
use rs2p::protocol::Packet;
use serde_json::Value;
use tokio::task::JoinSet;

use super::harness::median;

/// One run's figures (latencies in µs, rates in operations/s).
#[derive(Clone, Copy, Debug, Default)]
pub struct ChordFigures {
    pub set_p50_us: f64,
    pub set_p99_us: f64,
    pub set_ops: f64,
    pub get_p50_us: f64,
    pub get_p99_us: f64,
    pub get_ops: f64,
    pub get_failed: u64,
}

fn pct(samples: &mut [f64], q: f64) -> f64 {
    samples.sort_by(f64::total_cmp);
    let i = ((samples.len().saturating_sub(1)) as f64 * q).round() as usize;
    samples.get(i).copied().unwrap_or(0.0)
}

/// Gets each client keeps in flight in the throughput run.
const IN_FLIGHT: usize = 16;

/// One rs2p run on a ring of `nodes` with `ops` operations per measurement.
pub async fn rs2p_run(nodes: usize, ops: usize) -> Result<ChordFigures, String> {
    let e = |e: rs2p::Error| e.to_string();
    let mut ring: Vec<ChordSocket> = Vec::new();
    for _ in 0..nodes {
        let node = ChordSocket::builder()
            .joined(true)
            .request_timeout(Duration::from_secs(5))
            .bind("127.0.0.1:0")
            .await
            .map_err(e)?;
        for other in &ring {
            let port = other.mesh().addr().port();
            node.mesh()
                .connect("127.0.0.1", port, None)
                .await
                .map_err(e)?;
        }
        ring.push(node);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for node in &ring {
        while node.storing_peers().await.map_err(e)? + 1 < nodes {
            if Instant::now() > deadline {
                return Err("the ring did not form".into());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    for k in 0..ops {
        ring[k % nodes]
            .set(format!("pre-{k}"), format!("value {k}"))
            .await
            .map_err(e)?;
    }
    // Let the writes land before reading them.
    let last = format!("pre-{}", ops.saturating_sub(1));
    while ring[0].get(&last).await.is_err() {
        if Instant::now() > deadline + Duration::from_secs(10) {
            return Err("writes did not land".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let mut f = ChordFigures::default();
    let mut lat = Vec::with_capacity(ops);
    for k in 0..ops {
        let t = Instant::now();
        ring[k % nodes]
            .set(format!("lat-{k}"), k as u64)
            .await
            .map_err(e)?;
        lat.push(t.elapsed().as_secs_f64() * 1e6);
    }
    f.set_p50_us = pct(&mut lat, 0.5);
    f.set_p99_us = pct(&mut lat, 0.99);

    let per = (ops / nodes).max(1);
    let t = Instant::now();
    let mut tasks = JoinSet::new();
    for (i, node) in ring.iter().enumerate() {
        let node = node.clone();
        tasks.spawn(async move {
            for k in 0..per {
                node.set(format!("tp-{i}-{k}"), k as u64).await?;
            }
            Ok::<_, rs2p::Error>(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.map_err(|e| e.to_string())?.map_err(e)?;
    }
    f.set_ops = (per * nodes) as f64 / t.elapsed().as_secs_f64();

    let mut lat = Vec::with_capacity(ops);
    for k in 0..ops {
        let t = Instant::now();
        let got = ring[(k + 1) % nodes].get(format!("pre-{k}")).await;
        lat.push(t.elapsed().as_secs_f64() * 1e6);
        if got.ok() != Some(Packet::from(format!("value {k}"))) {
            f.get_failed += 1;
        }
    }
    f.get_p50_us = pct(&mut lat, 0.5);
    f.get_p99_us = pct(&mut lat, 0.99);

    let t = Instant::now();
    let mut tasks = JoinSet::new();
    for (i, node) in ring.iter().enumerate() {
        for lane in 0..IN_FLIGHT {
            let node = node.clone();
            tasks.spawn(async move {
                let mut failed = 0u64;
                for k in (lane..per).step_by(IN_FLIGHT) {
                    let key = (i * per + k) % ops;
                    let got = node.get(format!("pre-{key}")).await;
                    if got.ok() != Some(Packet::from(format!("value {key}"))) {
                        failed += 1;
                    }
                }
                failed
            });
        }
    }
    while let Some(r) = tasks.join_next().await {
        f.get_failed += r.map_err(|e| e.to_string())?;
    }
    f.get_ops = (per * nodes) as f64 / t.elapsed().as_secs_f64();
    for node in &ring {
        node.close().await;
    }
    Ok(f)
}

/// One py2p run: `python script nodes ops`, one JSON line.
pub fn py2p_run(
    python: &str,
    script: &str,
    nodes: usize,
    ops: usize,
) -> Result<ChordFigures, String> {
    let out = std::process::Command::new(python)
        .args([script, &nodes.to_string(), &ops.to_string()])
        .stderr(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {python} {script}: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Value = text
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .ok_or_else(|| format!("py2p chord bench printed no result ({})", out.status))?;
    let n = |k: &str| v[k].as_f64().unwrap_or(0.0);
    Ok(ChordFigures {
        set_p50_us: n("set_p50_us"),
        set_p99_us: n("set_p99_us"),
        set_ops: n("set_ops"),
        get_p50_us: n("get_p50_us"),
        get_p99_us: n("get_p99_us"),
        get_ops: n("get_ops"),
        get_failed: v["get_failed"].as_u64().unwrap_or(0),
    })
}

/// The median of each figure over runs.
pub fn medians(runs: &[ChordFigures]) -> ChordFigures {
    let m = |f: fn(&ChordFigures) -> f64| median(&runs.iter().map(f).collect::<Vec<_>>());
    ChordFigures {
        set_p50_us: m(|f| f.set_p50_us),
        set_p99_us: m(|f| f.set_p99_us),
        set_ops: m(|f| f.set_ops),
        get_p50_us: m(|f| f.get_p50_us),
        get_p99_us: m(|f| f.get_p99_us),
        get_ops: m(|f| f.get_ops),
        get_failed: runs.iter().map(|f| f.get_failed).sum(),
    }
}

/// The Markdown table: rs2p, py2p, and rs2p's advantage.
pub fn table(nodes: usize, runs: usize, rs: &ChordFigures, py: Option<&ChordFigures>) -> String {
    let mut s = format!(
        "## DHT (chord), {nodes}-node ring, medians of {runs} runs\n\n\
         | | rs2p | py2p | rs2p ÷ py2p |\n|---|---|---|---|\n"
    );
    let row = |name: &str, r: f64, p: Option<f64>, higher_better: bool, unit: &str| {
        let ratio = p
            .filter(|p| *p > 0.0 && r > 0.0)
            .map_or("–".to_string(), |p| {
                let x = if higher_better { r / p } else { p / r };
                format!("{x:.0}×")
            });
        let py = p.map_or("–".to_string(), |p| format!("{p:.1} {unit}"));
        format!("| {name} | {r:.1} {unit} | {py} | {ratio} |\n")
    };
    s += &row(
        "set latency p50",
        rs.set_p50_us,
        py.map(|p| p.set_p50_us),
        false,
        "µs",
    );
    s += &row(
        "set latency p99",
        rs.set_p99_us,
        py.map(|p| p.set_p99_us),
        false,
        "µs",
    );
    s += &row("sets/s", rs.set_ops, py.map(|p| p.set_ops), true, "/s");
    s += &row(
        "get latency p50",
        rs.get_p50_us,
        py.map(|p| p.get_p50_us),
        false,
        "µs",
    );
    s += &row(
        "get latency p99",
        rs.get_p99_us,
        py.map(|p| p.get_p99_us),
        false,
        "µs",
    );
    s += &row("gets/s", rs.get_ops, py.map(|p| p.get_ops), true, "/s");
    s += &format!(
        "\nFailed gets: rs2p {}, py2p {}.\n",
        rs.get_failed,
        py.map_or("–".to_string(), |p| p.get_failed.to_string())
    );
    s
}
