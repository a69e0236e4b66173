//! A small timing harness (no dependencies): warm up, run several times,
//! report the median rate with its spread.

use std::time::{Duration, Instant};

/// One timed run: how many operations took how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    /// Operations done.
    pub ops: u64,
    /// Wall time they took.
    pub elapsed: Duration,
}

impl Sample {
    /// Operations per second.
    pub fn rate(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-12)
    }
}

/// The rates of several runs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    /// Operations per second of each run, in run order.
    pub rates: Vec<f64>,
}

impl Stats {
    /// Collects rates.
    pub fn from_rates(rates: Vec<f64>) -> Self {
        Stats { rates }
    }

    fn sorted(&self) -> Vec<f64> {
        let mut v = self.rates.clone();
        v.sort_by(f64::total_cmp);
        v
    }

    /// The median rate (the mean of the two middle runs for an even count).
    pub fn median(&self) -> f64 {
        median(&self.rates)
    }

    /// The slowest run's rate.
    pub fn min(&self) -> f64 {
        self.sorted().first().copied().unwrap_or(0.0)
    }

    /// The fastest run's rate.
    pub fn max(&self) -> f64 {
        self.sorted().last().copied().unwrap_or(0.0)
    }

    /// Nanoseconds per operation at the median rate.
    pub fn median_ns(&self) -> f64 {
        1e9 / self.median().max(1e-12)
    }
}

/// The median of some values (0 for none).
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Runs `run` once to warm up, then `runs` times; each call does its own
/// set-up, times only the work, and says how many operations it did.
pub fn bench(runs: usize, mut run: impl FnMut() -> Sample) -> Stats {
    let _ = run();
    Stats::from_rates((0..runs.max(1)).map(|_| run().rate()).collect())
}

/// How many calls of `op` take at least `target`.
pub fn calibrate(target: Duration, mut op: impl FnMut()) -> u64 {
    let mut iters = 1u64;
    loop {
        let start = Instant::now();
        for _ in 0..iters {
            op();
        }
        let took = start.elapsed();
        if took >= target || iters >= 1 << 40 {
            // Scale to the target from the last measurement.
            let per = took.as_secs_f64() / iters as f64;
            return ((target.as_secs_f64() / per.max(1e-12)) as u64).max(1);
        }
        iters *= 2;
    }
}

/// Times a repeatable operation: calibrated so a run takes about
/// `per_run`, then `runs` runs.
pub fn bench_op(runs: usize, per_run: Duration, mut op: impl FnMut()) -> Stats {
    let iters = calibrate(per_run / 4, &mut op);
    let iters = iters.saturating_mul(4).max(1);
    bench(runs, || {
        let start = Instant::now();
        for _ in 0..iters {
            op();
        }
        Sample {
            ops: iters,
            elapsed: start.elapsed(),
        }
    })
}

/// A rate for people: `1.23 M/s`, `456 k/s`, `7.8 /s`.
pub fn human_rate(rate: f64) -> String {
    if rate >= 1e6 {
        format!("{:.2} M/s", rate / 1e6)
    } else if rate >= 1e3 {
        format!("{:.1} k/s", rate / 1e3)
    } else {
        format!("{rate:.1} /s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
        let s = Stats::from_rates(vec![10.0, 30.0, 20.0]);
        assert_eq!((s.min(), s.median(), s.max()), (10.0, 20.0, 30.0));
        assert_eq!(s.median_ns(), 5e7);
    }

    #[test]
    fn human_rates() {
        assert_eq!(human_rate(1_234_567.0), "1.23 M/s");
        assert_eq!(human_rate(456_000.0), "456.0 k/s");
        assert_eq!(human_rate(7.84), "7.8 /s");
    }

    #[test]
    fn bench_op_counts_operations() {
        let mut n = 0u64;
        let stats = bench_op(3, Duration::from_millis(4), || n += 1);
        assert_eq!(stats.rates.len(), 3);
        assert!(n > 0 && stats.median() > 0.0);
    }
}
