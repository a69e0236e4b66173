//! What a [`Simulation`] measured: the mesh's shape from the routing
//! tables, and the report of a whole run.

use super::graph::Graph;
use super::queue::Micros;
use super::report::{BroadcastStats, SimReport, Summary, Topology};
use super::world::Simulation;
use crate::protocol::mesh::Layer;

impl<L: Layer> Simulation<L> {
    /// The shape of the mesh now, from every live node's routing table.
    /// Components are counted over the links between live nodes that
    /// either end lists.
    pub fn topology(&self) -> Topology {
        let mut t = Topology {
            min_outgoing: usize::MAX,
            ..Topology::default()
        };
        let mut tables: Vec<Vec<u32>> = vec![Vec::new(); self.nodes.len()];
        let (mut live, mut links) = (Vec::new(), Vec::new());
        for (i, node) in self.nodes.iter().enumerate() {
            if !node.alive {
                continue;
            }
            t.alive += 1;
            live.push(i);
            let peers = node.state.mesh().peers();
            let outgoing = peers.iter().filter(|p| p.outgoing).count();
            t.max_outgoing = t.max_outgoing.max(outgoing);
            t.min_outgoing = t.min_outgoing.min(outgoing);
            t.max_degree = t.max_degree.max(peers.len());
            t.isolated += usize::from(peers.is_empty());
            t.routing_entries += peers.len();
            tables[i] = peers
                .iter()
                .filter_map(|p| self.index_of_id.get(&p.id).copied())
                .collect();
            links.extend(tables[i].iter().map(|&j| (i, j as usize)));
        }
        for (i, table) in tables.iter().enumerate() {
            for &j in table {
                if !self.nodes[j as usize].alive || !tables[j as usize].contains(&(i as u32)) {
                    t.asymmetric += 1;
                }
            }
        }
        if t.alive == 0 {
            t.min_outgoing = 0;
        }
        let components = Graph::new(live, links).components();
        t.components = components.len();
        t.largest_component = components.iter().map(Vec::len).max().unwrap_or(0);
        t
    }

    pub(super) fn report(&self) -> SimReport {
        let n = self.cfg.nodes;
        let mut broadcasts = Vec::with_capacity(self.bcasts.len());
        let mut delays_ms: Vec<f64> = Vec::new();
        for (b, bc) in self.bcasts.iter().enumerate() {
            let mut s = BroadcastStats {
                origin: bc.origin as usize,
                sent_ms: bc.sent / 1000,
                transmissions: bc.transmissions,
                bytes: bc.bytes,
                ..BroadcastStats::default()
            };
            let mut last: Micros = bc.sent;
            for (i, node) in self.nodes.iter().enumerate() {
                let slot = b * n + i;
                let delivered = self.deliveries[slot];
                s.repeated_deliveries += u64::from(delivered.saturating_sub(1));
                let received = self.receptions[slot];
                s.receptions += u64::from(received);
                // Eligible: alive when it was sent and still alive at the end.
                if !node.alive || !self.joined_before(i, bc.sent) {
                    continue;
                }
                s.eligible += 1;
                if i == bc.origin as usize {
                    s.reached += 1;
                    continue;
                }
                if delivered > 0 {
                    s.reached += 1;
                    let at = self.first_delivery[slot];
                    last = last.max(at);
                    delays_ms.push((at - bc.sent) as f64 / 1000.0);
                    s.duplicates += u64::from(received.saturating_sub(1));
                    s.max_copies = s.max_copies.max(received);
                }
            }
            if s.reached == s.eligible {
                s.full_coverage_ms = Some((last - bc.sent) as f64 / 1000.0);
            }
            broadcasts.push(s);
        }
        let topology_start = self.topology_at_first_broadcast.clone().unwrap_or_default();
        let summary = Summary::new(&broadcasts, &mut delays_ms, topology_start.alive);
        SimReport {
            config: self.cfg.clone(),
            killed: self.killed,
            topology_start,
            topology_end: self.topology(),
            setup_traffic: self.setup_traffic.clone().unwrap_or_default(),
            traffic: self.traffic.clone(),
            broadcasts,
            summary,
            events: self.events,
        }
    }

    /// Whether node `i` had joined by virtual time `at`.
    fn joined_before(&self, i: usize, at: Micros) -> bool {
        let n = self.cfg.nodes.max(1) as u64;
        self.nodes[i].joined && self.cfg.join_ms * 1000 * i as u64 / n <= at
    }
}
