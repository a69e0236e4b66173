//! What the soak samples (this process's memory and file descriptors
//! from `/proc/self`, each node's snapshot) and how it reports: a
//! Markdown table and summary, or JSON.

use serde_json::{json, Value};

use super::hostile::HostileCounts;
use super::ledger::{Latency, Totals};

/// One field of `/proc/self/status`, in its unit (kB for memory).
pub fn status_field(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// Open file descriptors of this process (entries of `/proc/self/fd`,
/// less the one listing them).
pub fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count().saturating_sub(1) as u64)
        .unwrap_or(0)
}

/// One node's figures at a sample.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeSample {
    /// Its incarnation.
    pub inc: u64,
    /// Whether it is a core node (never leaves).
    pub core: bool,
    /// Routing-table size.
    pub peers: usize,
    /// Open connections (handshaken or not).
    pub connections: usize,
    /// Broadcasts remembered for deduplication.
    pub waterfall: usize,
    /// Addresses remembered for reconnecting.
    pub addresses: usize,
    /// Recent errors recorded.
    pub errors: usize,
}

/// One sample of the whole process.
#[derive(Clone, Debug)]
pub struct Sample {
    /// Seconds since the load started.
    pub t: f64,
    /// Resident memory, KiB.
    pub rss_kib: u64,
    /// Open file descriptors.
    pub fds: u64,
    /// OS threads.
    pub threads: u64,
    /// Honest nodes running.
    pub nodes: Vec<NodeSample>,
    /// The ledger so far (judged broadcasts).
    pub totals: Totals,
    /// Broadcasts not judged yet.
    pub pending: usize,
    /// Node lives the ledger remembers (bounded: it forgets closed ones).
    pub lives: usize,
    /// Joins and leaves so far.
    pub joins: u64,
    pub leaves: u64,
    /// The misbehaving peers so far.
    pub hostile: HostileCounts,
}

impl Sample {
    fn sum(&self, f: impl Fn(&NodeSample) -> usize) -> usize {
        self.nodes.iter().map(f).sum()
    }

    fn max(&self, f: impl Fn(&NodeSample) -> usize) -> usize {
        self.nodes.iter().map(f).max().unwrap_or(0)
    }

    pub fn to_json(&self) -> Value {
        json!({
            "t_s": self.t, "rss_kib": self.rss_kib, "fds": self.fds, "threads": self.threads,
            "sent": self.totals.sent, "judged": self.totals.judged,
            "delivered": self.totals.delivered, "lost": self.totals.lost,
            "duplicates": self.totals.duplicates, "late": self.totals.late,
            "foreign": self.totals.foreign, "pending": self.pending,
            "ledger_lives": self.lives,
            "joins": self.joins, "leaves": self.leaves,
            "hostile": self.hostile.to_json(),
            "nodes": self.nodes.iter().map(|n| json!({
                "inc": n.inc, "core": n.core, "peers": n.peers, "connections": n.connections,
                "waterfall": n.waterfall, "addresses": n.addresses, "errors": n.errors,
            })).collect::<Vec<_>>(),
        })
    }
}

/// The soak's settings, as reported.
#[derive(Clone, Debug)]
pub struct Settings {
    pub minutes: f64,
    pub nodes: usize,
    pub core: usize,
    pub rate: f64,
    pub payload: usize,
    pub churn_every_s: f64,
    pub sample_every_s: f64,
    pub grace_s: f64,
    pub hostile: bool,
    pub seed: u64,
    /// Memory is compared with the first sample at or after this (the
    /// deduplication sets fill for their first 60 s).
    pub warmup_s: f64,
}

/// Start, max and end of a series.
fn span(v: impl Iterator<Item = u64> + Clone) -> (u64, u64, u64) {
    let first = v.clone().next().unwrap_or(0);
    let max = v.clone().max().unwrap_or(0);
    let last = v.last().unwrap_or(0);
    (first, max, last)
}

/// The whole run.
#[derive(Clone, Debug)]
pub struct Report {
    pub settings: Settings,
    pub samples: Vec<Sample>,
    pub totals: Totals,
    pub latency: Latency,
    /// Seconds the whole run took (load, drain and shutdown).
    pub elapsed_s: f64,
    /// Resident memory and fds after every node closed.
    pub rss_after_close_kib: u64,
    pub fds_after_close: u64,
}

impl Report {
    /// Whether the run was clean: no loss, no duplicate, nothing late, no
    /// echo.
    pub fn ok(&self) -> bool {
        self.totals.clean()
    }

    fn rss(&self) -> (u64, u64, u64) {
        span(self.samples.iter().map(|s| s.rss_kib))
    }

    /// The first sample after the warm-up (the last one if none).
    fn warm(&self) -> Option<&Sample> {
        (self.samples.iter())
            .find(|s| s.t >= self.settings.warmup_s)
            .or(self.samples.last())
    }

    fn fds(&self) -> (u64, u64, u64) {
        span(self.samples.iter().map(|s| s.fds))
    }

    pub fn to_json(&self) -> Value {
        let s = &self.settings;
        let t = &self.totals;
        let (rss0, rss_max, rss1) = self.rss();
        let (fd0, fd_max, fd1) = self.fds();
        let last = self.samples.last();
        json!({
            "settings": {
                "minutes": s.minutes, "nodes": s.nodes, "core": s.core, "rate": s.rate,
                "payload_max": s.payload, "churn_every_s": s.churn_every_s,
                "sample_every_s": s.sample_every_s, "grace_s": s.grace_s, "warmup_s": s.warmup_s,
                "hostile": s.hostile, "seed": s.seed,
            },
            "ok": self.ok(),
            "elapsed_s": self.elapsed_s,
            "deliveries": {
                "sent": t.sent, "judged": t.judged, "expected": t.expected,
                "delivered": t.delivered, "lost": t.lost, "duplicates": t.duplicates,
                "extra": t.extra, "excused": t.excused, "late": t.late, "echoes": t.echoes,
                "foreign": t.foreign,
                "latency_ms": {
                    "n": self.latency.count(),
                    "p50": self.latency.quantile_ms(0.5), "p99": self.latency.quantile_ms(0.99),
                    "max": self.latency.max_ms(),
                },
            },
            "memory": {
                "rss_start_kib": rss0, "rss_max_kib": rss_max, "rss_end_kib": rss1,
                "warm_t_s": self.warm().map_or(0.0, |w| w.t),
                "rss_warm_kib": self.warm().map_or(0, |w| w.rss_kib),
                "fds_warm": self.warm().map_or(0, |w| w.fds),
                "rss_after_close_kib": self.rss_after_close_kib,
                "fds_start": fd0, "fds_max": fd_max, "fds_end": fd1,
                "fds_after_close": self.fds_after_close,
            },
            "churn": {
                "joins": last.map_or(0, |l| l.joins), "leaves": last.map_or(0, |l| l.leaves),
            },
            "hostile": last.map_or(Value::Null, |l| l.hostile.to_json()),
            "samples": self.samples.iter().map(Sample::to_json).collect::<Vec<_>>(),
        })
    }

    /// The Markdown report.
    pub fn to_markdown(&self) -> String {
        let s = &self.settings;
        let t = &self.totals;
        let mut out = String::new();
        let mut line = |l: String| {
            out.push_str(&l);
            out.push('\n');
        };
        line(format!(
            "## rs2p soak: {} min, {} nodes ({} core), {} broadcasts/s of up to {} B, \
             one leave + join every {} s{}, seed {}",
            s.minutes,
            s.nodes,
            s.core,
            s.rate,
            s.payload,
            s.churn_every_s,
            if s.hostile {
                ", misbehaving peers on"
            } else {
                ""
            },
            s.seed
        ));
        line(String::new());
        line(
            "| t (s) | RSS MiB | fds | threads | nodes | conns | waterfall max | addrs max | \
             sent | delivered | lost | dup | joins | garbage | future | resends |"
                .into(),
        );
        line(
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
                .into(),
        );
        for x in &self.samples {
            line(format!(
                "| {:.0} | {:.1} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                x.t,
                x.rss_kib as f64 / 1024.0,
                x.fds,
                x.threads,
                x.nodes.len(),
                x.sum(|n| n.connections),
                x.max(|n| n.waterfall),
                x.max(|n| n.addresses),
                x.totals.sent,
                x.totals.delivered,
                x.totals.lost,
                x.totals.duplicates,
                x.joins,
                x.hostile.garbage_conns,
                x.hostile.future_frames,
                x.hostile.resend_requests,
            ));
        }
        line(String::new());
        let (rss0, rss_max, rss1) = self.rss();
        let (fd0, fd_max, fd1) = self.fds();
        let mib = |k: u64| k as f64 / 1024.0;
        let (warm_t, warm_rss) = self.warm().map_or((0.0, 0), |w| (w.t, w.rss_kib));
        line(format!(
            "- memory: RSS start {:.1} MiB, after warm-up (t = {warm_t:.0} s) {:.1} MiB, \
             max {:.1} MiB, end {:.1} MiB (end / after warm-up {:.2}); after closing every \
             node {:.1} MiB",
            mib(rss0),
            mib(warm_rss),
            mib(rss_max),
            mib(rss1),
            rss1 as f64 / warm_rss.max(1) as f64,
            mib(self.rss_after_close_kib)
        ));
        line(format!(
            "- file descriptors: start {fd0}, max {fd_max}, end {fd1}; after closing every node {}",
            self.fds_after_close
        ));
        line(format!(
            "- deliveries: {} broadcasts, {} expected deliveries (to nodes connected from before \
             the send until {} s after), {} delivered, **{} lost**, **{} duplicates**; \
             {} extra (nodes joining or leaving meanwhile), {} excused (mesh split), {} late, \
             {} echoes, {} foreign",
            t.sent,
            t.expected,
            s.grace_s,
            t.delivered,
            t.lost,
            t.duplicates,
            t.extra,
            t.excused,
            t.late,
            t.echoes,
            t.foreign
        ));
        line(format!(
            "- first-copy latency: p50 {:.0} ms, p99 {:.0} ms, max {:.1} ms",
            self.latency.quantile_ms(0.5),
            self.latency.quantile_ms(0.99),
            self.latency.max_ms()
        ));
        if let Some(last) = self.samples.last() {
            line(format!(
                "- churn: {} joins, {} leaves",
                last.joins, last.leaves
            ));
            if s.hostile {
                line(format!("- misbehaving peers: {}", last.hostile.describe()));
            }
        }
        line(format!(
            "- verdict: {} ({:.1} s in all)",
            if self.ok() {
                "OK: no loss, no duplicate"
            } else {
                "FAILED"
            },
            self.elapsed_s
        ));
        out
    }
}
