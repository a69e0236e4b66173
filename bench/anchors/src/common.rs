//! What every contender shares: the payload, counting what the last node of
//! the line got, bounded waits, latency samples and the machine's load.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

/// The payload's string: 100 bytes, as in `examples/line_api.rs`.
pub const PAYLOAD_LEN: usize = 100;

/// The string every contender sends, followed by a counter.
pub fn payload_str() -> String {
    "x".repeat(PAYLOAD_LEN)
}

/// How a run ended.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// The last node had all `n` messages after `elapsed`.
    Done { elapsed: Duration },
    /// No progress for the stall time (or past the run's limit): `got` of
    /// the messages had arrived after `after`.
    Stalled {
        got: u64,
        after: Duration,
        why: String,
    },
}

/// What the application at the last node of the line counts.
pub struct Arrivals {
    got: AtomicU64,
    target: u64,
    done_at: OnceLock<Instant>,
    duplicates: AtomicU64,
    /// Woken on every arrival (a sender pacing itself by the receiver's
    /// progress waits on it).
    pub progress: tokio::sync::Notify,
}

impl Arrivals {
    pub fn new(target: u64) -> Arc<Self> {
        Arc::new(Arrivals {
            got: AtomicU64::new(0),
            target,
            done_at: OnceLock::new(),
            duplicates: AtomicU64::new(0),
            progress: tokio::sync::Notify::new(),
        })
    }

    /// Counts `k` more messages; returns the count so far.
    pub fn add(&self, k: u64) -> u64 {
        let got = self.got.fetch_add(k, Ordering::AcqRel) + k;
        if got >= self.target {
            let _ = self.done_at.set(Instant::now());
        }
        self.progress.notify_one();
        got
    }

    pub fn duplicate(&self) {
        self.duplicates.fetch_add(1, Ordering::Relaxed);
    }

    pub fn duplicates(&self) -> u64 {
        self.duplicates.load(Ordering::Relaxed)
    }

    pub fn got(&self) -> u64 {
        self.got.load(Ordering::Acquire)
    }

    /// Waits until every message arrived (the time from `start`), or
    /// until nothing arrived for `stall`, or `limit` has passed since
    /// `start`. `failed` is polled too: a sender that gave up ends the wait.
    pub async fn wait(
        &self,
        start: Instant,
        stall: Duration,
        limit: Duration,
        failed: impl Fn() -> Option<String>,
    ) -> Outcome {
        let mut last = 0;
        let mut last_change = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(10)).await;
            if let Some(t) = self.done_at.get() {
                return Outcome::Done {
                    elapsed: t.duration_since(start),
                };
            }
            let got = self.got();
            let why = if let Some(e) = failed() {
                Some(e)
            } else if got != last {
                last = got;
                last_change = Instant::now();
                None
            } else if last_change.elapsed() > stall {
                Some(format!("nothing arrived for {stall:?}"))
            } else {
                None
            };
            let why = why.or_else(|| (start.elapsed() > limit).then(|| format!("over {limit:?}")));
            if let Some(why) = why {
                return Outcome::Stalled {
                    got: self.got(),
                    after: start.elapsed(),
                    why,
                };
            }
        }
    }
}

/// One message in flight: the sender marks the time of each send, the
/// receiver records the time since, and tells the sender to send the next.
pub struct Latency {
    epoch: Instant,
    sent_ns: AtomicU64,
    samples: Mutex<Vec<Duration>>,
    next: mpsc::UnboundedSender<()>,
}

impl Latency {
    /// The latency recorder, and the sender's end of the "send the next
    /// one" signal.
    pub fn new() -> (Arc<Self>, mpsc::UnboundedReceiver<()>) {
        let (next, rx) = mpsc::unbounded_channel();
        (
            Arc::new(Latency {
                epoch: Instant::now(),
                sent_ns: AtomicU64::new(0),
                samples: Mutex::new(Vec::new()),
                next,
            }),
            rx,
        )
    }

    /// Called by the sender right before it sends.
    pub fn mark(&self) {
        let ns = self.epoch.elapsed().as_nanos() as u64;
        self.sent_ns.store(ns, Ordering::Release);
    }

    /// Called by the receiving application when the message arrived.
    pub fn arrived(&self) {
        let now = self.epoch.elapsed().as_nanos() as u64;
        let sent = self.sent_ns.load(Ordering::Acquire);
        self.samples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Duration::from_nanos(now.saturating_sub(sent)));
        let _ = self.next.send(());
    }

    pub fn count(&self) -> usize {
        self.samples.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Waits for `total` samples (or `stall` without a new one); returns
    /// the samples after the first `warmup`.
    pub async fn wait(&self, total: usize, warmup: usize, stall: Duration) -> LatencyResult {
        let mut last = 0;
        let mut last_change = Instant::now();
        loop {
            let n = self.count();
            if n >= total {
                break;
            }
            if n != last {
                last = n;
                last_change = Instant::now();
            } else if last_change.elapsed() > stall {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let samples = self
            .samples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        LatencyResult::from_samples(samples, total, warmup)
    }
}

/// Latency of one message in flight at a time, from the send call at node
/// 0 to the application at node 3.
#[derive(Clone, Debug)]
pub struct LatencyResult {
    pub measured: usize,
    pub p50: Option<Duration>,
    pub p99: Option<Duration>,
    /// Set when fewer than the expected samples arrived.
    pub stalled: Option<String>,
}

impl LatencyResult {
    pub fn from_samples(samples: Vec<Duration>, total: usize, warmup: usize) -> Self {
        let stalled = (samples.len() < total)
            .then(|| format!("stalled: {} of {} round trips", samples.len(), total));
        let mut kept: Vec<Duration> = samples.into_iter().skip(warmup).collect();
        kept.sort_unstable();
        LatencyResult {
            measured: kept.len(),
            p50: percentile(&kept, 50.0),
            p99: percentile(&kept, 99.0),
            stalled,
        }
    }
}

/// Nearest-rank percentile of sorted values.
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Median of unsorted values.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    })
}

/// Counts the distinct counters seen by a receiver (libp2p contenders
/// decode the counter; each message should arrive once).
pub struct Seen {
    bits: Vec<u64>,
}

impl Seen {
    pub fn new(n: u64) -> Self {
        Seen {
            bits: vec![0; (n as usize).div_ceil(64)],
        }
    }

    /// True the first time `i` is seen.
    pub fn first(&mut self, i: u64) -> bool {
        let (w, b) = ((i / 64) as usize, i % 64);
        match self.bits.get_mut(w) {
            Some(word) if *word & (1 << b) == 0 => {
                *word |= 1 << b;
                true
            }
            _ => false,
        }
    }
}

/// CPU time in clock ticks: the whole machine's busy time, and this
/// process's own (with its waited-for children).
#[derive(Clone, Copy, Debug)]
pub struct CpuSample {
    at: Instant,
    machine_busy: u64,
    own: u64,
}

impl CpuSample {
    pub fn now() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let cpu: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .filter_map(|f| f.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal ...
        let busy = cpu.iter().take(8).sum::<u64>() - cpu.get(3)? - cpu.get(4)?;
        let own = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name, which is in parentheses.
        let rest = &own[own.rfind(')')? + 2..];
        let f: Vec<u64> = rest
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        // utime stime cutime cstime are fields 14..=17 (1-based), i.e.
        // 11..=14 after the state field at index 0 of `rest`.
        let own = f.get(11)? + f.get(12)? + f.get(13)? + f.get(14)?;
        Some(CpuSample {
            at: Instant::now(),
            machine_busy: busy,
            own,
        })
    }

    /// Cores' worth of CPU that other processes used between `self` and
    /// `later` (clock ticks of 1/100 s).
    pub fn others_cores(&self, later: &CpuSample) -> f64 {
        let secs = later.at.duration_since(self.at).as_secs_f64();
        let busy = later.machine_busy.saturating_sub(self.machine_busy);
        let own = later.own.saturating_sub(self.own);
        if secs <= 0.0 {
            return 0.0;
        }
        busy.saturating_sub(own) as f64 / 100.0 / secs
    }

    /// Cores' worth of CPU this process (and children it waited for) used.
    pub fn own_cores(&self, later: &CpuSample) -> f64 {
        let secs = later.at.duration_since(self.at).as_secs_f64();
        if secs <= 0.0 {
            return 0.0;
        }
        later.own.saturating_sub(self.own) as f64 / 100.0 / secs
    }
}

/// Waits until the machine was at least `idle` idle (0..1, all cores)
/// over one second, for at most `max_wait`; returns the idle share of the
/// last second and how long it waited.
pub fn wait_for_idle(idle: f64, max_wait: Duration) -> (Option<f64>, Duration) {
    let start = Instant::now();
    let mut last = None;
    while start.elapsed() < max_wait {
        let (Some(a), Some(b)) = (
            CpuSample::now(),
            (std::thread::sleep(Duration::from_secs(1)), CpuSample::now()).1,
        ) else {
            return (None, start.elapsed());
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let share = 1.0 - (a.others_cores(&b) + a.own_cores(&b)) / cores;
        last = Some(share);
        if share >= idle {
            break;
        }
    }
    (last, start.elapsed())
}

/// The 1-minute load average.
pub fn loadavg() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// What one throughput run measured.
#[derive(Clone, Debug)]
pub struct Throughput {
    pub n: u64,
    pub outcome: Outcome,
    /// Distinct messages node 3's application had when the run ended
    /// (`n` for a finished run; `n - delivered` were lost or still in
    /// flight for a stalled one).
    pub delivered: u64,
    pub duplicates: u64,
    /// Free-form counts a contender wants reported (e.g. publish back-offs).
    pub notes: Vec<(String, u64)>,
}

impl Throughput {
    pub fn rate(&self) -> Option<f64> {
        match self.outcome {
            Outcome::Done { elapsed } => Some(self.n as f64 / elapsed.as_secs_f64()),
            Outcome::Stalled { .. } => None,
        }
    }
}
