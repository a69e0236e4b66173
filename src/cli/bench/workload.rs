//! The benchmark workload's pieces shared by every system measured (rs2p,
//! py2p, the floor relay), in process or across processes: the payload
//! layout, a latency histogram, the per-receiver [`Tracker`], and the
//! [`RunResult`] of one run.
//!
//! A payload is `seq (u64 BE) ‖ send time (u64 BE, unix ns) ‖ padding`, at
//! least 16 bytes, carried as one msgpack bin packet. Every process on one
//! machine reads the same realtime clock, so latency is `receive time −
//! send time` wherever the receiver runs.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

/// The smallest payload: sequence number and send time.
pub const MIN_PAYLOAD: usize = 16;

/// Unix time in nanoseconds.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A payload of `len` bytes (at least 16) for broadcast `seq`, stamped now.
pub fn payload(seq: u64, len: usize) -> Vec<u8> {
    let mut p = vec![0x5au8; len.max(MIN_PAYLOAD)];
    stamp(&mut p, seq);
    p
}

/// Writes `seq` and the current time into the first 16 bytes.
pub fn stamp(p: &mut [u8], seq: u64) {
    if let Some(head) = p.get_mut(..MIN_PAYLOAD) {
        head[..8].copy_from_slice(&seq.to_be_bytes());
        head[8..].copy_from_slice(&now_ns().to_be_bytes());
    }
}

/// `(seq, send time in ns)` of a payload.
pub fn read_payload(p: &[u8]) -> Option<(u64, u64)> {
    let seq = u64::from_be_bytes(p.get(..8)?.try_into().ok()?);
    let sent = u64::from_be_bytes(p.get(8..16)?.try_into().ok()?);
    Some((seq, sent))
}

/// Latencies in µs: 1 µs buckets below 10 ms, 100 µs buckets up to about
/// 1 s, one overflow bucket. Histograms of several receivers (or
/// processes) add up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Histogram {
    counts: Vec<u64>,
}

const FINE: u64 = 10_000;
const COARSE: u64 = 10_000;
const BUCKETS: usize = (FINE + COARSE + 1) as usize;

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
        }
    }
}

impl Histogram {
    /// The bucket of a latency of `us` microseconds.
    pub fn bucket(us: u64) -> usize {
        if us < FINE {
            us as usize
        } else {
            (FINE + ((us - FINE) / 100).min(COARSE)) as usize
        }
    }

    /// The smallest latency (µs) a bucket holds.
    pub fn value(bucket: usize) -> u64 {
        let b = bucket as u64;
        if b < FINE {
            b
        } else {
            FINE + (b - FINE) * 100
        }
    }

    /// Counts one latency.
    pub fn record(&mut self, us: u64) {
        self.counts[Self::bucket(us)] += 1;
    }

    /// Adds another histogram's counts.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
    }

    /// Latencies counted.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The `q` quantile (0..=1), in µs; 0 when empty.
    pub fn quantile(&self, q: f64) -> f64 {
        let total = self.count();
        if total == 0 {
            return 0.0;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (b, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::value(b) as f64;
            }
        }
        0.0
    }

    /// Non-empty buckets as `[[bucket, count], …]`.
    pub fn to_json(&self) -> Value {
        Value::Array(
            self.counts
                .iter()
                .enumerate()
                .filter(|(_, &c)| c > 0)
                .map(|(b, &c)| json!([b, c]))
                .collect(),
        )
    }

    /// Reads what [`to_json`](Self::to_json) wrote (bad entries are skipped).
    pub fn from_json(v: &Value) -> Histogram {
        let mut h = Histogram::default();
        for pair in v.as_array().into_iter().flatten() {
            let (Some(b), Some(c)) = (pair[0].as_u64(), pair[1].as_u64()) else {
                continue;
            };
            if let Some(slot) = h.counts.get_mut(b as usize) {
                *slot += c;
            }
        }
        h
    }
}

/// What one receiving node saw of `expected` broadcasts.
#[derive(Clone, Debug)]
pub struct Tracker {
    expected: u64,
    seen: Vec<u64>,
    /// Distinct broadcasts received.
    pub got: u64,
    /// Copies received again.
    pub duplicates: u64,
    /// Payloads that could not be read or were out of range.
    pub foreign: u64,
    /// Latencies.
    pub latency: Histogram,
    /// When the last new broadcast arrived (unix ns).
    pub last_ns: u64,
}

impl Tracker {
    /// A tracker expecting broadcasts `0..expected`.
    pub fn new(expected: u64) -> Self {
        Tracker {
            expected,
            seen: vec![0; expected.div_ceil(64) as usize],
            got: 0,
            duplicates: 0,
            foreign: 0,
            latency: Histogram::default(),
            last_ns: 0,
        }
    }

    /// Records a received payload at time `now` (unix ns).
    pub fn record(&mut self, payload: &[u8], now: u64) {
        let Some((seq, sent)) = read_payload(payload).filter(|(s, _)| *s < self.expected) else {
            self.foreign += 1;
            return;
        };
        let (word, bit) = ((seq / 64) as usize, 1u64 << (seq % 64));
        if self.seen[word] & bit != 0 {
            self.duplicates += 1;
            return;
        }
        self.seen[word] |= bit;
        self.got += 1;
        self.last_ns = now;
        self.latency.record(now.saturating_sub(sent) / 1000);
    }

    /// Whether every expected broadcast arrived.
    pub fn complete(&self) -> bool {
        self.got >= self.expected
    }
}

/// One run of one system on one topology.
#[derive(Clone, Debug, PartialEq)]
pub struct RunResult {
    /// What was measured (`rs2p`, `rs2p (processes)`, `py2p`, `floor`).
    pub system: String,
    /// Nodes in the topology.
    pub nodes: usize,
    /// Nodes that received (all but the sender).
    pub receivers: usize,
    /// Broadcasts sent.
    pub broadcasts: u64,
    /// Payload bytes per broadcast.
    pub payload_len: usize,
    /// Bytes of one frame on the wire.
    pub frame_len: usize,
    /// From the first send until the last receiver had everything (or the
    /// run was given up).
    pub elapsed: Duration,
    /// Distinct deliveries over all receivers.
    pub delivered: u64,
    /// Distinct deliveries per receiver, in node order (node 1 first).
    pub per_receiver: Vec<u64>,
    /// Broadcasts that reached every receiver.
    pub complete_broadcasts: u64,
    /// Repeated deliveries.
    pub duplicates: u64,
    /// Bytes written on every link during the run, if measured.
    pub wire_bytes: Option<u64>,
    /// Send-to-delivery latencies over all receivers.
    pub latency: Histogram,
}

impl RunResult {
    /// Broadcasts that reached every receiver, per second.
    pub fn broadcasts_per_s(&self) -> f64 {
        self.complete_broadcasts as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Deliveries (over all receivers) per second.
    pub fn deliveries_per_s(&self) -> f64 {
        self.delivered as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Deliveries that never happened.
    pub fn lost(&self) -> u64 {
        (self.broadcasts * self.receivers as u64).saturating_sub(self.delivered)
    }

    /// Wire bytes per broadcast, and that over one frame's bytes
    /// (amplification: how many frames a broadcast costs).
    pub fn bytes_per_broadcast(&self) -> Option<(f64, f64)> {
        let b = self.wire_bytes? as f64 / self.broadcasts.max(1) as f64;
        Some((b, b / self.frame_len.max(1) as f64))
    }

    /// The result as JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "system": self.system, "nodes": self.nodes, "receivers": self.receivers,
            "broadcasts": self.broadcasts, "payload_len": self.payload_len,
            "frame_len": self.frame_len, "elapsed_s": self.elapsed.as_secs_f64(),
            "delivered": self.delivered, "per_receiver": self.per_receiver,
            "complete_broadcasts": self.complete_broadcasts,
            "lost": self.lost(), "duplicates": self.duplicates,
            "broadcasts_per_s": self.broadcasts_per_s(),
            "deliveries_per_s": self.deliveries_per_s(),
            "wire_bytes": self.wire_bytes,
            "latency_p50_us": self.latency.quantile(0.5),
            "latency_p99_us": self.latency.quantile(0.99),
        })
    }
}

/// Combines receivers' trackers into a run result.
pub fn combine(
    system: &str,
    nodes: usize,
    broadcasts: u64,
    payload_len: usize,
    frame_len: usize,
    elapsed: Duration,
    trackers: &[Tracker],
) -> RunResult {
    let mut latency = Histogram::default();
    for t in trackers {
        latency.merge(&t.latency);
    }
    let complete = (0..broadcasts)
        .filter(|&s| {
            trackers
                .iter()
                .all(|t| t.seen[(s / 64) as usize] & (1 << (s % 64)) != 0)
        })
        .count() as u64;
    RunResult {
        system: system.to_owned(),
        nodes,
        receivers: trackers.len(),
        broadcasts,
        payload_len,
        frame_len,
        elapsed,
        delivered: trackers.iter().map(|t| t.got).sum(),
        per_receiver: trackers.iter().map(|t| t.got).collect(),
        complete_broadcasts: complete,
        duplicates: trackers.iter().map(|t| t.duplicates).sum(),
        wire_bytes: None,
        latency,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trip_and_tracker() {
        let p = payload(7, 100);
        assert_eq!(p.len(), 100);
        let (seq, sent) = read_payload(&p).unwrap();
        assert_eq!(seq, 7);
        let mut t = Tracker::new(10);
        t.record(&p, sent + 2_500_000);
        t.record(&p, sent + 3_000_000);
        t.record(&payload(99, 16), sent);
        assert_eq!((t.got, t.duplicates, t.foreign), (1, 1, 1));
        assert_eq!(t.latency.quantile(0.5), 2500.0);
    }

    #[test]
    fn histogram_buckets_and_json() {
        let mut h = Histogram::default();
        for us in [5, 9_999, 10_000, 10_150, 5_000_000] {
            h.record(us);
        }
        assert_eq!(h.quantile(0.2), 5.0);
        assert_eq!(h.quantile(0.8), 10_100.0);
        assert_eq!(h.quantile(1.0), Histogram::value(BUCKETS - 1) as f64);
        assert_eq!(Histogram::from_json(&h.to_json()), h);
    }
}
