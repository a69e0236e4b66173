//! The benchmark suite behind `rs2p bench`: runs each system several
//! times, takes medians, prints Markdown tables with the ratios.
//!
//! The standard workload every figure is quoted for: a 4-node line,
//! node 0 broadcasts 100-byte payloads, uncompressed, and the time runs
//! until the last node has them all.

use std::time::Duration;

use serde_json::{json, Value};

use super::floor::run_floor;
use super::harness::median;
use super::memory::{run_memory, MemoryReport};
use super::mesh::{frame_len, run_rs2p, LoadConfig, Shape};
use super::procs::{run_process_line, NodeCommand, ProcessRun};
use super::workload::RunResult;

/// What the suite runs.
#[derive(Clone, Debug)]
pub struct SuiteConfig {
    /// Runs per measurement (medians are reported).
    pub runs: usize,
    /// Broadcasts per throughput run of rs2p and the floor.
    pub broadcasts: u64,
    /// Broadcasts per throughput run of py2p.
    pub py2p_broadcasts: u64,
    /// Broadcasts of the unloaded-latency runs (one in flight at a time).
    pub latency_broadcasts: u64,
    /// Most broadcasts in flight in throughput runs.
    pub window: u64,
    /// Most broadcasts in flight for py2p.
    pub py2p_window: u64,
    /// Run the standard line workload.
    pub standard: bool,
    /// Nodes of the mesh workload; 0 skips it.
    pub mesh_nodes: usize,
    /// Payload sizes of the mesh workload.
    pub mesh_payloads: Vec<usize>,
    /// How to start an rs2p node process (one process per node), if wanted.
    pub rs2p_process: Option<NodeCommand>,
    /// How to start a py2p node process, if wanted.
    pub py2p_process: Option<NodeCommand>,
    /// Nodes of the memory benchmark; 0 skips it.
    pub memory_nodes: usize,
    /// Topologies of the memory benchmark (each in a fresh set of nodes).
    pub memory_shapes: Vec<Shape>,
}

impl Default for SuiteConfig {
    fn default() -> Self {
        SuiteConfig {
            runs: 3,
            broadcasts: 200_000,
            py2p_broadcasts: 2_000,
            latency_broadcasts: 2_000,
            window: 8192,
            py2p_window: 16,
            standard: true,
            mesh_nodes: 8,
            mesh_payloads: vec![16, 1024],
            rs2p_process: None,
            py2p_process: None,
            memory_nodes: 0,
            memory_shapes: vec![Shape::Mesh],
        }
    }
}

/// Several runs of one measurement.
#[derive(Clone, Debug)]
pub struct Measured {
    /// What was measured.
    pub label: String,
    /// Every run.
    pub runs: Vec<RunResult>,
}

impl Measured {
    fn med(&self, f: impl Fn(&RunResult) -> f64) -> f64 {
        median(&self.runs.iter().map(f).collect::<Vec<_>>())
    }

    /// Median broadcasts per second delivered to every receiver.
    pub fn broadcasts_per_s(&self) -> f64 {
        self.med(RunResult::broadcasts_per_s)
    }

    /// Slowest and fastest run, broadcasts per second.
    pub fn broadcasts_per_s_range(&self) -> (f64, f64) {
        let v: Vec<f64> = self.runs.iter().map(RunResult::broadcasts_per_s).collect();
        (
            v.iter().copied().fold(f64::INFINITY, f64::min),
            v.iter().copied().fold(0.0, f64::max),
        )
    }

    /// Median deliveries per second.
    pub fn deliveries_per_s(&self) -> f64 {
        self.med(RunResult::deliveries_per_s)
    }

    /// Median latency quantile, µs.
    pub fn latency_us(&self, q: f64) -> f64 {
        self.med(|r| r.latency.quantile(q))
    }

    /// Deliveries lost over all runs.
    pub fn lost(&self) -> u64 {
        self.runs.iter().map(RunResult::lost).sum()
    }

    /// Deliveries expected over all runs.
    pub fn expected(&self) -> u64 {
        self.runs
            .iter()
            .map(|r| r.broadcasts * r.receivers as u64)
            .sum()
    }

    /// Duplicated deliveries over all runs.
    pub fn duplicates(&self) -> u64 {
        self.runs.iter().map(|r| r.duplicates).sum()
    }

    /// Median bytes on the wire per broadcast and that in frames.
    pub fn bytes_per_broadcast(&self) -> Option<(f64, f64)> {
        let v: Vec<(f64, f64)> = self
            .runs
            .iter()
            .filter_map(RunResult::bytes_per_broadcast)
            .collect();
        (!v.is_empty()).then(|| {
            (
                median(&v.iter().map(|x| x.0).collect::<Vec<_>>()),
                median(&v.iter().map(|x| x.1).collect::<Vec<_>>()),
            )
        })
    }

    /// The runs as JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "label": self.label,
            "broadcasts_per_s": self.broadcasts_per_s(),
            "deliveries_per_s": self.deliveries_per_s(),
            "latency_p50_us": self.latency_us(0.5),
            "latency_p99_us": self.latency_us(0.99),
            "lost": self.lost(), "duplicates": self.duplicates(),
            "runs": self.runs.iter().map(RunResult::to_json).collect::<Vec<_>>(),
        })
    }
}

/// Everything the suite measured.
#[derive(Clone, Debug, Default)]
pub struct SuiteReport {
    /// Standard workload, throughput (floor, rs2p, rs2p processes, py2p).
    pub line: Vec<Measured>,
    /// Standard workload, one broadcast in flight at a time.
    pub line_latency: Vec<Measured>,
    /// Mesh workload, per payload size.
    pub mesh: Vec<Measured>,
    /// Memory runs.
    pub memory: Vec<MemoryReport>,
    /// Failures (a system that could not be run), with the reason.
    pub failures: Vec<String>,
}

/// The standard workload: a 4-node line, 100-byte payloads.
fn line_config(broadcasts: u64, window: u64) -> LoadConfig {
    LoadConfig {
        nodes: 4,
        shape: Shape::Line,
        broadcasts,
        payload_len: 100,
        window,
        senders: if window == 1 { 1 } else { 16 },
        ..LoadConfig::default()
    }
}

fn process_run(system: &str, broadcasts: u64, window: u64) -> ProcessRun {
    ProcessRun {
        system: system.to_owned(),
        nodes: 4,
        broadcasts,
        payload_len: 100,
        frame_len: frame_len(100),
        window,
        stall: Duration::from_secs(10),
    }
}

/// Runs `f` `runs` times and keeps the results (failures are reported).
async fn repeat<F, Fut, E>(
    label: &str,
    runs: usize,
    failures: &mut Vec<String>,
    mut f: F,
) -> Option<Measured>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<RunResult, E>>,
    E: std::fmt::Display,
{
    let mut out = Vec::new();
    for i in 0..runs.max(1) {
        eprintln!("  {label}: run {} of {runs}", i + 1);
        match f().await {
            Ok(r) => out.push(r),
            Err(e) => {
                failures.push(format!("{label}: {e}"));
                break;
            }
        }
    }
    (!out.is_empty()).then(|| Measured {
        label: label.to_owned(),
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

/// Runs the suite; progress goes to stderr.
pub async fn run_suite(cfg: &SuiteConfig) -> SuiteReport {
    let mut report = SuiteReport::default();
    let runs = cfg.runs;
    if cfg.standard {
        eprintln!("standard workload: 4-node line, 100-byte payloads");
        let line = line_config(cfg.broadcasts, cfg.window);
        let lat = line_config(cfg.latency_broadcasts, 1);
        let f = &mut report.failures;
        let mut throughput = Vec::new();
        let mut latency = Vec::new();
        throughput.extend(repeat("floor", runs, f, || run_floor(&line)).await);
        throughput.extend(repeat("rs2p, one process", runs, f, || run_rs2p(&line)).await);
        latency.extend(repeat("floor", runs, f, || run_floor(&lat)).await);
        latency.extend(repeat("rs2p, one process", runs, f, || run_rs2p(&lat)).await);
        if let Some(cmd) = &cfg.rs2p_process {
            for (window, broadcasts, into) in [
                (cfg.window, cfg.broadcasts, &mut throughput),
                (1, cfg.latency_broadcasts, &mut latency),
            ] {
                let run = process_run("rs2p, process per node", broadcasts, window);
                let cmd = cmd.clone();
                into.extend(
                    repeat("rs2p, process per node", runs, f, || {
                        let (cmd, run) = (cmd.clone(), run.clone());
                        in_thread(move || run_process_line(&cmd, &run))
                    })
                    .await,
                );
            }
        }
        if let Some(cmd) = &cfg.py2p_process {
            for (window, broadcasts, into) in [
                (cfg.py2p_window, cfg.py2p_broadcasts, &mut throughput),
                (1, cfg.latency_broadcasts.min(500), &mut latency),
            ] {
                let run = process_run("py2p 0.7.878, process per node", broadcasts, window);
                let cmd = cmd.clone();
                into.extend(
                    repeat("py2p 0.7.878, process per node", runs, f, || {
                        let (cmd, run) = (cmd.clone(), run.clone());
                        in_thread(move || run_process_line(&cmd, &run))
                    })
                    .await,
                );
            }
        }
        report.line = throughput;
        report.line_latency = latency;
    }
    if cfg.mesh_nodes > 1 {
        for &len in &cfg.mesh_payloads {
            eprintln!(
                "mesh workload: {} nodes, {len}-byte payloads",
                cfg.mesh_nodes
            );
            let mesh = LoadConfig {
                nodes: cfg.mesh_nodes,
                shape: Shape::Mesh,
                broadcasts: cfg.broadcasts / 2,
                payload_len: len,
                window: cfg.window,
                ..LoadConfig::default()
            };
            let label = format!("rs2p mesh of {}, {len} B", cfg.mesh_nodes);
            report
                .mesh
                .extend(repeat(&label, runs, &mut report.failures, || run_rs2p(&mesh)).await);
        }
    }
    if cfg.memory_nodes > 0 {
        for &shape in &cfg.memory_shapes {
            eprintln!(
                "memory: {} nodes in this process, {shape:?}",
                cfg.memory_nodes
            );
            match run_memory(cfg.memory_nodes, shape, 1).await {
                Ok(m) => report.memory.push(m),
                Err(e) => report.failures.push(format!("memory: {e}")),
            }
        }
    }
    report
}

fn rate(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2} M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1} k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

fn us(v: f64) -> String {
    if v >= 1000.0 {
        format!("{:.2} ms", v / 1000.0)
    } else {
        format!("{v:.0} µs")
    }
}

fn table(rows: &[Measured], title: &str) -> String {
    let mut s = format!(
        "{title}\n\n| system | runs | broadcasts/s to all nodes (median; slowest–fastest run) | deliveries/s | bytes on the wire per broadcast | latency p50 | latency p99 | lost / expected | duplicates |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    );
    for m in rows {
        let wire = m.bytes_per_broadcast().map_or_else(
            || "not measured".to_owned(),
            |(b, frames)| format!("{b:.0} ({frames:.2} frames)"),
        );
        s.push_str(&format!(
            "| {} | {} | {} ({}–{}) | {} | {} | {} | {} | {} / {} | {} |\n",
            m.label,
            m.runs.len(),
            rate(m.broadcasts_per_s()),
            rate(m.broadcasts_per_s_range().0),
            rate(m.broadcasts_per_s_range().1),
            rate(m.deliveries_per_s()),
            wire,
            us(m.latency_us(0.5)),
            us(m.latency_us(0.99)),
            m.lost(),
            m.expected(),
            m.duplicates()
        ));
    }
    s
}

fn ratios(rows: &[Measured]) -> String {
    let find = |p: &str| rows.iter().find(|m| m.label.starts_with(p));
    let mut s = String::new();
    let pairs = [
        ("rs2p, one process", "floor"),
        ("rs2p, one process", "py2p"),
        ("rs2p, process per node", "py2p"),
        ("rs2p, process per node", "floor"),
    ];
    for (a, b) in pairs {
        if let (Some(x), Some(y)) = (find(a), find(b)) {
            s.push_str(&format!(
                "- {} / {}: {:.2}× (broadcasts/s)\n",
                x.label,
                y.label,
                x.broadcasts_per_s() / y.broadcasts_per_s().max(1e-9)
            ));
        }
    }
    s
}

impl SuiteReport {
    /// The report as Markdown.
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        if !self.line.is_empty() {
            s.push_str(&table(
                &self.line,
                "### Standard workload: 4-node line, node 0 broadcasts 100-byte payloads (throughput)",
            ));
            s.push('\n');
            s.push_str(&ratios(&self.line));
            s.push('\n');
        }
        if !self.line_latency.is_empty() {
            s.push_str(&table(
                &self.line_latency,
                "### Standard workload, one broadcast in flight at a time (unloaded latency)",
            ));
            s.push('\n');
            s.push_str(&ratios(&self.line_latency));
            s.push('\n');
        }
        if !self.mesh.is_empty() {
            s.push_str(&table(
                &self.mesh,
                "### Mesh workload (peer lists form the mesh, max_outgoing 4)",
            ));
            s.push('\n');
        }
        for m in &self.memory {
            s.push_str(&format!(
                "### Memory: {} nodes in one process, {}\n\n| | value |\n|---|---:|\n| connections (each has both ends in this process) | {} |\n| explicit connects tried again / failed every attempt | {} / {} |\n| incoming connections refused by limits (all nodes) | {} |\n| addresses learnt per node (mean) | {:.0} |\n| resident before / nodes started / mesh formed and idle | {} / {} / {} KiB |\n| per node (listener, actor, state), unconnected | {:.1} KiB |\n| per idle connection end (one node's cost of one peer) | {:.1} KiB |\n| per idle connection, both ends | {:.1} KiB |\n| one broadcast from node 0 reached | {} of {} nodes in {:.1} ms |\n| mesh formed in | {:.1} s |\n| open-files limit (soft/hard) | {}/{} |\n\n",
                m.nodes, m.shape, m.links, m.connect_retries, m.connect_failures, m.refused, m.addresses_per_node, m.rss_base_kib, m.rss_nodes_kib, m.rss_connected_kib,
                m.per_node_kib(), m.per_end_kib(), m.per_link_kib(),
                m.reached, m.nodes - 1, m.broadcast_ms, m.connect_s, m.nofile.0, m.nofile.1
            ));
        }
        let lossy: Vec<&RunResult> = self
            .line
            .iter()
            .chain(&self.line_latency)
            .chain(&self.mesh)
            .flat_map(|m| &m.runs)
            .filter(|r| r.lost() > 0)
            .collect();
        if !lossy.is_empty() {
            s.push_str("Runs with loss (distinct broadcasts received per node, node 1 first):\n\n");
            for r in lossy {
                s.push_str(&format!(
                    "- {}: {} sent, received {:?}\n",
                    r.system, r.broadcasts, r.per_receiver
                ));
            }
            s.push('\n');
        }
        for f in &self.failures {
            s.push_str(&format!("- failed: {f}\n"));
        }
        s
    }

    /// The report as JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "line": self.line.iter().map(Measured::to_json).collect::<Vec<_>>(),
            "line_latency": self.line_latency.iter().map(Measured::to_json).collect::<Vec<_>>(),
            "mesh": self.mesh.iter().map(Measured::to_json).collect::<Vec<_>>(),
            "memory": self.memory.iter().map(MemoryReport::to_json).collect::<Vec<_>>(),
            "failures": self.failures,
        })
    }
}
