//! The summary printed at the end: the mesh, every broadcast, the routed
//! reply, the kill, the final topology and the checks.

use std::fmt::Write as _;
use std::time::Duration;

use rs2p::protocol::MessageId;

use super::{Demo, DemoArgs, SHORT, SUBNET};

impl Demo {
    /// The summary printed at the end.
    pub(super) fn summary(&self, args: &DemoArgs, elapsed: Duration) -> String {
        let mut s = String::new();
        let alive = self.alive();
        let extra = self.nodes.iter().filter(|n| n.extra).count();
        let _ = writeln!(
            s,
            "rs2p demo: {} nodes{} in one process on 127.0.0.1, subnet {SUBNET:?}",
            args.nodes,
            if extra > 0 { " + 1 extra" } else { "" },
        );
        let _ = writeln!(s);

        if let Some((took, t)) = &self.formed {
            let links = t.links().len();
            let _ = writeln!(
                s,
                "mesh      {} nodes, {links} connections: {} dialled one by one, {} more found \
                 through peer lists; settled within {} of the first node's start",
                t.adj.len(),
                self.seed_links,
                links.saturating_sub(self.seed_links),
                ms(*took)
            );
        }

        let _ = writeln!(s);
        let _ = writeln!(s, "broadcasts (deliveries counted at every node)");
        let _ = writeln!(
            s,
            "  {:<6} {:<9} {:<4} {:>7} {:>10} {:>9} {:>9}",
            "msg", "id", "from", "reached", "duplicates", "p50", "max"
        );
        let mut all_latencies = Vec::new();
        for (i, b) in self.broadcasts.iter().enumerate() {
            let t = self.tally(i);
            all_latencies.extend(t.latencies.iter().copied());
            let reached = format!("{}/{}", t.reached, b.expected.len());
            let _ = writeln!(
                s,
                "  {:<6} {:<9} {:<4} {:>7} {:>10} {:>9} {:>9}",
                b.label,
                encode_hex_short(&b.id),
                self.nodes[b.from].name,
                reached,
                t.duplicates + t.strays,
                percentile(&t.latencies, 50).map_or("-".into(), ms),
                t.latencies.last().copied().map_or("-".into(), ms),
            );
        }
        all_latencies.sort();
        let _ = writeln!(
            s,
            "  latency over all {} deliveries: p50 {}, max {}",
            all_latencies.len(),
            percentile(&all_latencies, 50).map_or("-".into(), ms),
            all_latencies.last().copied().map_or("-".into(), ms),
        );

        if let Some(r) = &self.reply {
            let _ = writeln!(s);
            let how = if r.extra_node {
                format!(
                    "every pair was connected, so {} joined through n0 only (max_outgoing 0)",
                    self.nodes[r.replier].name
                )
            } else {
                "a pair of nodes not connected to each other".to_owned()
            };
            let _ = writeln!(
                s,
                "routed reply  {} -> {}: {how};",
                self.label(r.replier),
                self.label(r.target)
            );
            let _ = writeln!(
                s,
                "              {} asked the mesh for a route, dialled {} ({} -> {} dials) and \
                 whispered the reply: {}",
                self.nodes[r.replier].name,
                self.nodes[r.target].name,
                r.dials.0,
                r.dials.1,
                r.took.map_or("it never arrived".into(), |t| format!(
                    "arrived in {}",
                    ms(t)
                ))
            );
        }

        if let Some(k) = &self.kill {
            let _ = writeln!(s);
            let _ = writeln!(
                s,
                "kill      {} closed with {} connections; every survivor dropped it {}; \
                 healed {} with {} new connection(s); {} survivors",
                self.label(k.victim),
                k.links_lost,
                k.dropped_in
                    .map_or("- not within the timeout".into(), |t| format!(
                        "within {}",
                        ms(t)
                    )),
                k.healed_in
                    .map_or("- not within the timeout".into(), |t| format!(
                        "within {} of the kill",
                        ms(t)
                    )),
                k.new_links,
                k.survivors
            );
        }

        let t = &self.final_topology;
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "topology  {} live nodes, {} connections (each node: id -> the ids in its routing table)",
            alive.len(),
            t.links().len()
        );
        for (&i, peers) in &t.adj {
            let ids: Vec<String> = peers
                .iter()
                .map(|&j| self.nodes[j].socket.id().short(SHORT))
                .collect();
            let _ = writeln!(
                s,
                "  {:<4} {} -> {}",
                self.nodes[i].name,
                self.nodes[i].socket.id().short(SHORT),
                ids.join(" ")
            );
        }
        for node in self.nodes.iter().filter(|n| !n.alive) {
            let _ = writeln!(
                s,
                "  {:<4} {} (closed)",
                node.name,
                node.socket.id().short(SHORT)
            );
        }
        if let Some(path) = &args.dot {
            let _ = writeln!(s, "  graph written to {}", path.display());
        }
        if let Some(path) = &args.png {
            let _ = writeln!(s, "  image written to {}", path.display());
        }

        let _ = writeln!(s);
        let _ = writeln!(s, "checks");
        for c in &self.checks {
            let _ = writeln!(
                s,
                "  {}  {}: {}",
                if c.ok { "ok  " } else { "FAIL" },
                c.what,
                c.detail
            );
        }
        let failed = self.checks.iter().filter(|c| !c.ok).count();
        let _ = writeln!(s);
        if failed == 0 {
            let _ = writeln!(
                s,
                "PASS: all {} checks held ({})",
                self.checks.len(),
                secs(elapsed)
            );
        } else {
            let _ = writeln!(
                s,
                "FAIL: {failed} of {} checks did not hold ({})",
                self.checks.len(),
                secs(elapsed)
            );
        }
        s
    }
}

/// The `pct` percentile of sorted durations, nearest rank below.
fn percentile(sorted: &[Duration], pct: usize) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (sorted.len() - 1) * pct / 100;
    sorted.get(rank).copied()
}

/// A duration in milliseconds, one decimal.
pub(super) fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// A duration in seconds, two decimals.
fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// The first 4 bytes of a message id, in hex.
fn encode_hex_short(id: &MessageId) -> String {
    id.iter().take(4).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let d = |ms| Duration::from_millis(ms);
        assert_eq!(percentile(&[], 50), None);
        assert_eq!(percentile(&[d(1), d(2), d(9)], 50), Some(d(2)));
        assert_eq!(percentile(&[d(1), d(2), d(3), d(9)], 50), Some(d(2)));
    }
}
