//! Who is connected to whom: snapshots of the live nodes' routing tables,
//! and waiting until they settle.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use rs2p::sim::graph::Graph;
use rs2p::PeerId;

use super::{Demo, FORM_TIMEOUT, QUIET};

/// Who is connected to whom, by node index, as the routing tables say:
/// what each live node lists, which can disagree while the mesh changes.
/// Whether they connect everyone is a question for [`Graph`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Topology {
    /// For each node, the nodes in its routing table.
    pub(super) adj: BTreeMap<usize, BTreeSet<usize>>,
    /// `(a, b)`: `a` dialled `b`.
    pub(super) dialled: BTreeSet<(usize, usize)>,
}

impl Topology {
    /// Undirected links `(low, high)` either end knows of.
    pub(super) fn links(&self) -> BTreeSet<(usize, usize)> {
        self.adj
            .iter()
            .flat_map(|(&a, peers)| peers.iter().map(move |&b| (a.min(b), a.max(b))))
            .collect()
    }

    /// `a` lists `b` or `b` lists `a`.
    pub(super) fn linked(&self, a: usize, b: usize) -> bool {
        self.adj.get(&a).is_some_and(|p| p.contains(&b))
            || self.adj.get(&b).is_some_and(|p| p.contains(&a))
    }

    /// Both ends of every link know of it.
    pub(super) fn symmetric(&self) -> bool {
        self.adj.iter().all(|(&a, peers)| {
            peers
                .iter()
                .all(|b| self.adj.get(b).is_some_and(|p| p.contains(&a)))
        })
    }

    /// Every live node reaches every other, over the links either end
    /// knows of.
    pub(super) fn connected(&self) -> bool {
        Graph::new(self.adj.keys().copied(), self.links()).is_connected()
    }

    /// The tables agree and connect every live node.
    pub(super) fn settled(&self) -> bool {
        self.symmetric() && self.connected()
    }
}

/// How waiting for the routing tables to settle ended.
pub(super) struct Settling {
    pub(super) topology: Topology,
    /// They settled (rather than the wait timing out).
    pub(super) settled: bool,
    /// When they last changed.
    pub(super) last_change: Instant,
    /// When the node waited for to be gone was first listed by nobody.
    pub(super) gone_at: Option<Instant>,
}

impl Demo {
    /// The routing tables of every live node, as node indexes.
    pub(super) async fn topology(&self) -> Topology {
        let index: HashMap<&PeerId, usize> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.socket.id(), i))
            .collect();
        let mut topology = Topology::default();
        for (i, node) in self.nodes.iter().enumerate().filter(|(_, n)| n.alive) {
            let table = tokio::time::timeout(Duration::from_secs(2), node.socket.routing_table())
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default();
            let mut peers = BTreeSet::new();
            for p in table {
                if let Some(&j) = index.get(&p.id) {
                    peers.insert(j);
                    if p.outgoing {
                        topology.dialled.insert((i, j));
                    }
                }
            }
            topology.adj.insert(i, peers);
        }
        topology
    }

    /// Waits until the routing tables agree, connect everyone, do not list
    /// `gone`, and stay unchanged for `QUIET`, polling every 20 ms.
    pub(super) async fn wait_settled(&mut self, gone: Option<usize>) -> Settling {
        let deadline = Instant::now() + FORM_TIMEOUT;
        let mut topology = self.topology().await;
        let mut last_change = Instant::now();
        let mut quiet_since = Instant::now();
        let listed = |t: &Topology| gone.is_some_and(|g| t.adj.values().any(|p| p.contains(&g)));
        let mut gone_at = (!listed(&topology)).then(Instant::now);
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let now = self.topology().await;
            let still_listed = listed(&now);
            if gone_at.is_none() && !still_listed {
                gone_at = Some(Instant::now());
            }
            if now != topology {
                last_change = Instant::now();
            }
            if now != topology || !now.settled() || still_listed {
                quiet_since = Instant::now();
            }
            self.progress.update(&format!(
                "{} connections, {}",
                now.links().len(),
                if now.settled() {
                    "settling"
                } else {
                    "still connecting"
                }
            ));
            topology = now;
            let settled = quiet_since.elapsed() >= QUIET;
            if settled || Instant::now() >= deadline {
                return Settling {
                    topology,
                    settled,
                    last_change,
                    gone_at,
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topology(links: &[(usize, usize)], nodes: usize) -> Topology {
        let mut t = Topology::default();
        for i in 0..nodes {
            t.adj.insert(i, BTreeSet::new());
        }
        for &(a, b) in links {
            t.adj.get_mut(&a).unwrap().insert(b);
            t.adj.get_mut(&b).unwrap().insert(a);
        }
        t
    }

    #[test]
    fn topology_connected_and_symmetric() {
        assert!(topology(&[(0, 1), (1, 2)], 3).settled());
        assert!(!topology(&[(0, 1)], 3).connected());
        let mut t = topology(&[(0, 1), (1, 2)], 3);
        t.adj.get_mut(&2).unwrap().remove(&1);
        assert!(!t.symmetric());
        assert_eq!(topology(&[(1, 0), (0, 1)], 2).links().len(), 1);
    }

    #[test]
    fn a_link_counts_if_either_end_lists_it() {
        // n1 lists n0, n0 does not list n1 (yet).
        let mut t = topology(&[(0, 1)], 2);
        t.adj.get_mut(&0).unwrap().remove(&1);
        assert!(t.connected());
        assert!(t.linked(0, 1));
        assert!(!t.settled());
        // n0 still lists n2, which is closed (not in the tables).
        let mut t = topology(&[(0, 1)], 2);
        t.adj.get_mut(&0).unwrap().insert(2);
        assert!(t.connected());
        assert_eq!(t.links().len(), 2);
        assert!(!t.settled());
    }
}
