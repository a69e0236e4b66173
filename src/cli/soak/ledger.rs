//! The soak's delivery ledger: every broadcast sent, which nodes had to
//! receive it, which did, and how often.
//!
//! # What counts as a loss under churn
//! Nodes come and go, so "every node receives every broadcast" needs a
//! definition. A node's *life* (one [`MeshSocket`](rs2p::MeshSocket), an
//! *incarnation*) is connected from the moment its first `connect()`
//! returned — the peer had adopted it, so everything that peer receives
//! from then on is relayed to it — until the moment its `close()` was
//! called. A broadcast sent at `t` **must** reach every other honest life
//! connected from before `t` until at least `t + grace`: that pair is
//! *expected*, and an expected pair without a copy when the broadcast is
//! judged (`grace` plus a margin after `t`) is a **loss**. Lives that
//! joined after `t` or left before `t + grace` may receive it or not; what
//! they do receive is counted (`extra`), never as a loss.
//!
//! One more condition makes "must" fair: the honest nodes were connected
//! to each other. The soak checks the routing tables every second; a
//! broadcast sent within a second before, or `grace` after, a check that
//! found the honest nodes split is not judged for loss (`excused`; the
//! soak is built so this should not happen, and reports it if it does).
//!
//! A **duplicate** is any copy beyond the first at any receiver, honest or
//! not, expected or not. A copy that arrives after its broadcast was
//! judged is **late** (it may have been counted as a loss); a node
//! receiving its own broadcast is an **echo**; a message that is not one
//! of this run's broadcasts is **foreign**. All five must stay zero.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// A node's incarnation number.
pub type Inc = u64;

/// How long after a broadcast its judgement waits beyond `grace`.
const MARGIN: Duration = Duration::from_secs(1);

/// One incarnation's connected span.
#[derive(Clone, Copy, Debug)]
struct Life {
    joined: Instant,
    closed: Option<Instant>,
    /// Judged for loss (misbehaving members are counted for duplicates
    /// only).
    honest: bool,
}

#[derive(Debug)]
struct Pending {
    sent: Instant,
    /// (receiver, copies, first copy's arrival).
    receipts: Vec<(Inc, u32, Instant)>,
}

/// Totals over every judged broadcast.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Broadcasts sent.
    pub sent: u64,
    /// Broadcasts judged.
    pub judged: u64,
    /// Expected (broadcast, receiver) pairs.
    pub expected: u64,
    /// Expected pairs that got their copy.
    pub delivered: u64,
    /// Expected pairs without one.
    pub lost: u64,
    /// Copies beyond the first, at any receiver.
    pub duplicates: u64,
    /// First copies at receivers not expected to get one (joined late,
    /// left early, or misbehaving members).
    pub extra: u64,
    /// Broadcasts not judged for loss: the honest nodes were seen split.
    pub excused: u64,
    /// Copies that arrived after their broadcast was judged.
    pub late: u64,
    /// Copies of a node's own broadcast delivered to itself.
    pub echoes: u64,
    /// Messages that were not this run's broadcasts (none expected: the
    /// run has a subnet of its own).
    pub foreign: u64,
}

impl Totals {
    /// Whether nothing went wrong.
    pub fn clean(&self) -> bool {
        self.lost == 0
            && self.duplicates == 0
            && self.late == 0
            && self.echoes == 0
            && self.foreign == 0
    }
}

/// First-copy latencies, in 1 ms buckets up to 10 s (the last bucket holds
/// everything slower).
#[derive(Clone, Debug)]
pub struct Latency {
    buckets: Vec<u64>,
    count: u64,
    max: Duration,
}

impl Default for Latency {
    fn default() -> Self {
        Latency {
            buckets: vec![0; 10_001],
            count: 0,
            max: Duration::ZERO,
        }
    }
}

impl Latency {
    fn record(&mut self, d: Duration) {
        let ms = (d.as_millis() as usize).min(self.buckets.len() - 1);
        self.buckets[ms] += 1;
        self.count += 1;
        self.max = self.max.max(d);
    }

    /// The `q` quantile, in ms (bucket upper bounds), 0 when empty.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let rank = ((self.count as f64 * q).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (ms, &c) in self.buckets.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return (ms + 1) as f64;
            }
        }
        self.buckets.len() as f64
    }

    /// The slowest first copy, in ms.
    pub fn max_ms(&self) -> f64 {
        self.max.as_secs_f64() * 1000.0
    }

    /// First copies recorded.
    pub fn count(&self) -> u64 {
        self.count
    }
}

/// The ledger.
#[derive(Debug)]
pub struct Ledger {
    grace: Duration,
    lives: HashMap<Inc, Life>,
    pending: HashMap<(Inc, u64), Pending>,
    /// Pending broadcasts in the order they were sent.
    order: VecDeque<(Instant, Inc, u64)>,
    /// Routing-table checks that found the honest nodes split.
    splits: VecDeque<Instant>,
    totals: Totals,
    latency: Latency,
}

impl Ledger {
    /// A ledger judging each broadcast `grace` (plus a margin) after it was
    /// sent.
    pub fn new(grace: Duration) -> Ledger {
        Ledger {
            grace,
            lives: HashMap::new(),
            pending: HashMap::new(),
            order: VecDeque::new(),
            splits: VecDeque::new(),
            totals: Totals::default(),
            latency: Latency::default(),
        }
    }

    /// Incarnation `inc` is connected from `at` on.
    pub fn joined(&mut self, inc: Inc, at: Instant, honest: bool) {
        self.lives.insert(
            inc,
            Life {
                joined: at,
                closed: None,
                honest,
            },
        );
    }

    /// Incarnation `inc` is closing at `at`.
    pub fn closing(&mut self, inc: Inc, at: Instant) {
        if let Some(l) = self.lives.get_mut(&inc) {
            l.closed = Some(at);
        }
    }

    /// `origin` is about to broadcast `seq` (call before sending, so no
    /// copy can arrive first).
    pub fn sending(&mut self, origin: Inc, seq: u64, at: Instant) {
        self.pending.insert(
            (origin, seq),
            Pending {
                sent: at,
                receipts: Vec::new(),
            },
        );
        self.order.push_back((at, origin, seq));
        self.totals.sent += 1;
    }

    /// The send of `seq` failed: forget it.
    pub fn cancel(&mut self, origin: Inc, seq: u64) {
        if self.pending.remove(&(origin, seq)).is_some() {
            self.totals.sent -= 1;
        }
        // Its `order` entry is skipped when judged.
    }

    /// `receiver` got a copy of `origin`'s `seq` at `at`.
    pub fn receipt(&mut self, receiver: Inc, origin: Inc, seq: u64, at: Instant) {
        let Some(p) = self.pending.get_mut(&(origin, seq)) else {
            self.totals.late += 1;
            return;
        };
        match p.receipts.iter_mut().find(|r| r.0 == receiver) {
            Some(r) => r.1 += 1,
            None => p.receipts.push((receiver, 1, at)),
        }
    }

    /// A node received a message that is not one of this run's broadcasts.
    pub fn foreign(&mut self) {
        self.totals.foreign += 1;
    }

    /// A routing-table check at `at` found the honest nodes split.
    pub fn split_seen(&mut self, at: Instant) {
        self.splits.push_back(at);
    }

    /// Judges every broadcast sent at least `grace` plus the margin before
    /// `now`.
    pub fn judge_until(&mut self, now: Instant) {
        while let Some(&(sent, origin, seq)) = self.order.front() {
            if sent + self.grace + MARGIN > now {
                break;
            }
            self.order.pop_front();
            self.judge(origin, seq);
        }
        self.forget_old(now);
    }

    /// Judges every pending broadcast now (at the end, after the grace).
    pub fn judge_all(&mut self) {
        while let Some((_, origin, seq)) = self.order.pop_front() {
            self.judge(origin, seq);
        }
    }

    fn judge(&mut self, origin: Inc, seq: u64) {
        let Some(p) = self.pending.remove(&(origin, seq)) else {
            return; // cancelled
        };
        let t = &mut self.totals;
        t.judged += 1;
        let (from, to) = (p.sent - Duration::from_secs(1), p.sent + self.grace);
        let excused = self.splits.iter().any(|&s| s >= from && s <= to);
        if excused {
            t.excused += 1;
        }
        for &(receiver, copies, _) in &p.receipts {
            t.duplicates += u64::from(copies - 1);
            if receiver == origin {
                t.echoes += u64::from(copies);
            }
        }
        let deadline = p.sent + self.grace;
        for (&inc, life) in &self.lives {
            if inc == origin {
                continue;
            }
            let got = p.receipts.iter().find(|r| r.0 == inc);
            let expected = life.honest
                && life.joined < p.sent
                && life.closed.is_none_or(|c| c > deadline)
                && !excused;
            match (expected, got) {
                (true, Some(&(_, _, at))) => {
                    t.expected += 1;
                    t.delivered += 1;
                    self.latency.record(at.saturating_duration_since(p.sent));
                }
                (true, None) => {
                    t.expected += 1;
                    t.lost += 1;
                }
                (false, Some(_)) => t.extra += 1,
                (false, None) => {}
            }
        }
    }

    /// Drops lives and split records no pending broadcast can concern.
    fn forget_old(&mut self, now: Instant) {
        let oldest = self.order.front().map_or(now, |o| o.0);
        self.lives
            .retain(|_, l| l.closed.is_none_or(|c| c >= oldest));
        let keep_from = oldest - Duration::from_secs(1);
        while self.splits.front().is_some_and(|&s| s < keep_from) {
            self.splits.pop_front();
        }
    }

    /// The totals so far.
    pub fn totals(&self) -> Totals {
        self.totals
    }

    /// First-copy latencies of expected deliveries.
    pub fn latency(&self) -> &Latency {
        &self.latency
    }

    /// Broadcasts not judged yet.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Lives remembered (bounded: closed ones are forgotten).
    pub fn lives(&self) -> usize {
        self.lives.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_secs(5);

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn a_connected_node_must_receive_exactly_once() {
        let t0 = Instant::now();
        let mut l = Ledger::new(GRACE);
        for inc in 1..=3 {
            l.joined(inc, t0, true);
        }
        l.sending(1, 1, at(t0, 1000));
        l.receipt(2, 1, 1, at(t0, 1001));
        l.receipt(3, 1, 1, at(t0, 1003));
        l.sending(1, 2, at(t0, 1100));
        l.receipt(2, 1, 2, at(t0, 1101));
        l.receipt(2, 1, 2, at(t0, 1102)); // duplicate; 3 never gets it
        l.judge_until(at(t0, 5000));
        assert_eq!(l.totals().judged, 0, "too early");
        l.judge_until(at(t0, 7100));
        let t = l.totals();
        assert_eq!((t.sent, t.judged, t.expected), (2, 2, 4));
        assert_eq!((t.delivered, t.lost, t.duplicates), (3, 1, 1));
        assert!(!t.clean());
        assert_eq!(l.latency().count(), 3);
        assert_eq!(l.latency().quantile_ms(1.0), 4.0);
        // A copy after the judgement is late.
        l.receipt(3, 1, 2, at(t0, 8000));
        assert_eq!(l.totals().late, 1);
    }

    #[test]
    fn churned_nodes_are_judged_only_while_connected_throughout() {
        let t0 = Instant::now();
        let mut l = Ledger::new(GRACE);
        l.joined(1, t0, true);
        l.joined(2, t0, true); // leaves 2 s after the send: not expected
        l.joined(3, at(t0, 1500), true); // joins after the send: not expected
        l.joined(4, t0, true); // leaves 6 s after: expected
        l.joined(5, t0, false); // misbehaving: never expected
        l.closing(2, at(t0, 3000));
        l.closing(4, at(t0, 7000));
        l.sending(1, 1, at(t0, 1000));
        l.receipt(3, 1, 1, at(t0, 1600)); // extra
        l.receipt(4, 1, 1, at(t0, 1001));
        l.receipt(5, 1, 1, at(t0, 1001));
        l.receipt(5, 1, 1, at(t0, 1002)); // a duplicate counts anywhere
        l.judge_all();
        let t = l.totals();
        assert_eq!((t.expected, t.delivered, t.lost), (1, 1, 0));
        assert_eq!((t.extra, t.duplicates), (2, 1));
        // Lives closed before every pending broadcast are forgotten.
        l.judge_until(at(t0, 8000));
        assert_eq!(l.lives(), 3);
    }

    #[test]
    fn splits_excuse_losses_and_cancelled_sends_vanish() {
        let t0 = Instant::now();
        let mut l = Ledger::new(GRACE);
        l.joined(1, t0, true);
        l.joined(2, t0, true);
        l.sending(1, 1, at(t0, 1000));
        l.split_seen(at(t0, 3000));
        l.sending(1, 2, at(t0, 10_000)); // long after the split: judged
        l.sending(2, 3, at(t0, 10_000));
        l.cancel(2, 3);
        l.receipt(1, 1, 2, at(t0, 10_001)); // an echo
        l.judge_all();
        let t = l.totals();
        assert_eq!((t.sent, t.judged, t.excused), (2, 2, 1));
        assert_eq!((t.expected, t.lost, t.echoes), (1, 1, 1));
    }
}
