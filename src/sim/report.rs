//! [`SimReport`]: what a simulated run measured — coverage, time to full
//! coverage, transmissions per broadcast against the `n(n−1)` worst case,
//! duplicates per node, and the shape of the mesh.

use std::fmt;

use super::config::SimConfig;

/// Frames and bytes put on the simulated wire.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Frames that carried none of the measured broadcasts (handshakes, peer
    /// lists, requests).
    pub control_frames: u64,
    /// Their bytes, length prefixes included.
    pub control_bytes: u64,
    /// Frames that carried a measured broadcast.
    pub broadcast_frames: u64,
    /// Their bytes.
    pub broadcast_bytes: u64,
}

/// The mesh as the live nodes' routing tables describe it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Topology {
    /// Live nodes.
    pub alive: usize,
    /// Routing-table entries over all live nodes (twice the links).
    pub routing_entries: usize,
    /// The largest routing table.
    pub max_degree: usize,
    /// The most outgoing peers of one node.
    pub max_outgoing: usize,
    /// The fewest outgoing peers of one node.
    pub min_outgoing: usize,
    /// Live nodes with an empty routing table.
    pub isolated: usize,
    /// Routing entries whose peer is dead or does not list the node back.
    pub asymmetric: usize,
    /// Connected components among live nodes.
    pub components: usize,
    /// Nodes in the largest component.
    pub largest_component: usize,
}

impl Topology {
    /// Mean routing-table size.
    pub fn mean_degree(&self) -> f64 {
        self.routing_entries as f64 / self.alive.max(1) as f64
    }
}

/// One broadcast's fate.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BroadcastStats {
    /// The node that sent it.
    pub origin: usize,
    /// When, in virtual ms.
    pub sent_ms: u64,
    /// Nodes that should get it: alive when it was sent and at the end.
    pub eligible: usize,
    /// Eligible nodes that got it (the origin included).
    pub reached: usize,
    /// Frames that carried it.
    pub transmissions: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Copies received over all nodes (the first included).
    pub receptions: u64,
    /// Copies received beyond the first, over the eligible nodes reached.
    pub duplicates: u64,
    /// The most copies one node received.
    pub max_copies: u32,
    /// Deliveries to the application beyond the first at the same node
    /// (exactly-once violations; must be 0).
    pub repeated_deliveries: u64,
    /// Milliseconds until the last eligible node had it, if all did.
    pub full_coverage_ms: Option<f64>,
}

impl BroadcastStats {
    /// Share of the eligible nodes reached.
    pub fn coverage(&self) -> f64 {
        if self.eligible == 0 {
            1.0
        } else {
            self.reached as f64 / self.eligible as f64
        }
    }
}

/// Figures over all broadcasts of a run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    /// Broadcasts sent.
    pub broadcasts: usize,
    /// Mean share of eligible nodes reached.
    pub coverage_mean: f64,
    /// Smallest share of eligible nodes reached.
    pub coverage_min: f64,
    /// Broadcasts that reached every eligible node.
    pub fully_covered: usize,
    /// Median time to full coverage, ms (over fully covered broadcasts).
    pub full_coverage_ms_median: Option<f64>,
    /// Longest time to full coverage, ms.
    pub full_coverage_ms_max: Option<f64>,
    /// Median delay from send to delivery, ms (all deliveries).
    pub latency_p50_ms: f64,
    /// 99th percentile of that delay, ms.
    pub latency_p99_ms: f64,
    /// Mean frames per broadcast.
    pub transmissions_mean: f64,
    /// `n(n−1)` for the `n` live nodes at the first broadcast.
    pub worst_case: u64,
    /// `transmissions_mean / worst_case`.
    pub transmissions_ratio: f64,
    /// Mean frames per broadcast per live node.
    pub transmissions_per_node: f64,
    /// Mean copies beyond the first per node reached.
    pub duplicates_per_node: f64,
    /// The most copies one node received of one broadcast.
    pub max_copies: u32,
    /// Exactly-once violations over the run (must be 0).
    pub repeated_deliveries: u64,
}

/// The `q` quantile (0..=1) of sorted values, nearest rank.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl Summary {
    /// Sums up broadcasts; `delays_ms` (every delivery's delay) is sorted
    /// in place; `alive` is the node count `n` of the worst case.
    pub fn new(broadcasts: &[BroadcastStats], delays_ms: &mut [f64], alive: usize) -> Summary {
        delays_ms.sort_by(f64::total_cmp);
        let count = broadcasts.len().max(1) as f64;
        let mut full: Vec<f64> = broadcasts
            .iter()
            .filter_map(|b| b.full_coverage_ms)
            .collect();
        full.sort_by(f64::total_cmp);
        let transmissions_mean =
            broadcasts.iter().map(|b| b.transmissions).sum::<u64>() as f64 / count;
        let worst_case = (alive as u64) * (alive as u64).saturating_sub(1);
        let reached_others: usize = broadcasts.iter().map(|b| b.reached.saturating_sub(1)).sum();
        Summary {
            broadcasts: broadcasts.len(),
            coverage_mean: broadcasts.iter().map(BroadcastStats::coverage).sum::<f64>() / count,
            coverage_min: broadcasts
                .iter()
                .map(BroadcastStats::coverage)
                .fold(1.0, f64::min),
            fully_covered: full.len(),
            full_coverage_ms_median: (!full.is_empty()).then(|| quantile(&full, 0.5)),
            full_coverage_ms_max: full.last().copied(),
            latency_p50_ms: quantile(delays_ms, 0.5),
            latency_p99_ms: quantile(delays_ms, 0.99),
            transmissions_mean,
            worst_case,
            transmissions_ratio: transmissions_mean / worst_case.max(1) as f64,
            transmissions_per_node: transmissions_mean / alive.max(1) as f64,
            duplicates_per_node: broadcasts.iter().map(|b| b.duplicates).sum::<u64>() as f64
                / reached_others.max(1) as f64,
            max_copies: broadcasts.iter().map(|b| b.max_copies).max().unwrap_or(0),
            repeated_deliveries: broadcasts.iter().map(|b| b.repeated_deliveries).sum(),
        }
    }
}

/// Everything a run measured. Equal configurations give equal reports.
#[derive(Clone, Debug, PartialEq)]
pub struct SimReport {
    /// The configuration that was run.
    pub config: SimConfig,
    /// Nodes killed by churn.
    pub killed: usize,
    /// The mesh just before the first broadcast.
    pub topology_start: Topology,
    /// The mesh at the end.
    pub topology_end: Topology,
    /// Traffic before the first broadcast (joining, peer discovery).
    pub setup_traffic: Traffic,
    /// Traffic over the whole run.
    pub traffic: Traffic,
    /// Each broadcast.
    pub broadcasts: Vec<BroadcastStats>,
    /// Figures over all broadcasts.
    pub summary: Summary,
    /// Events processed.
    pub events: u64,
}

fn opt_ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1} ms"))
}

impl fmt::Display for SimReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        let s = &self.summary;
        let t = &self.topology_start;
        writeln!(
            f,
            "simulated {} nodes, seed {}, latency {} ms + jitter {} ms, loss {}, bandwidth {}, churn {} ({} killed)",
            c.nodes,
            c.seed,
            c.link.latency_ms,
            c.link.jitter_ms,
            c.link.loss,
            if c.link.bandwidth == 0 { "unlimited".to_owned() } else { format!("{} B/s", c.link.bandwidth) },
            c.churn,
            self.killed
        )?;
        writeln!(
            f,
            "mesh at first broadcast: {} live, degree mean {:.2} max {}, outgoing {}..={}, {} component(s) (largest {}), {} isolated, {} asymmetric entries",
            t.alive, t.mean_degree(), t.max_degree, t.min_outgoing, t.max_outgoing, t.components,
            t.largest_component, t.isolated, t.asymmetric
        )?;
        let e = &self.topology_end;
        writeln!(
            f,
            "mesh at end:             {} live, degree mean {:.2} max {}, {} component(s) (largest {}), {} isolated",
            e.alive, e.mean_degree(), e.max_degree, e.components, e.largest_component, e.isolated
        )?;
        writeln!(
            f,
            "setup traffic: {} control frames, {} bytes ({:.0} B per node)",
            self.setup_traffic.control_frames,
            self.setup_traffic.control_bytes,
            self.setup_traffic.control_bytes as f64 / c.nodes.max(1) as f64
        )?;
        writeln!(
            f,
            "coverage: mean {:.4}%, min {:.4}%; {}/{} broadcasts reached every eligible node",
            100.0 * s.coverage_mean,
            100.0 * s.coverage_min,
            s.fully_covered,
            s.broadcasts
        )?;
        writeln!(
            f,
            "time to full coverage: median {}, max {}; delivery delay p50 {:.1} ms, p99 {:.1} ms",
            opt_ms(s.full_coverage_ms_median),
            opt_ms(s.full_coverage_ms_max),
            s.latency_p50_ms,
            s.latency_p99_ms
        )?;
        writeln!(
            f,
            "transmissions per broadcast: {:.0} ({:.2} per node) vs n(n-1) = {} worst case: {:.3e} of it",
            s.transmissions_mean, s.transmissions_per_node, s.worst_case, s.transmissions_ratio
        )?;
        writeln!(
            f,
            "duplicates per node: {:.2} (most copies at one node: {}); repeated deliveries: {}",
            s.duplicates_per_node, s.max_copies, s.repeated_deliveries
        )?;
        write!(f, "events processed: {}", self.events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(&v, 0.5), 2.0);
        assert_eq!(quantile(&v, 0.99), 4.0);
        assert_eq!(quantile(&v, 0.0), 1.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
    }
}
