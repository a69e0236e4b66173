//! Scenarios of the protocol layers in the simulator: how a replicated
//! dictionary converges while nodes join and die.

use super::config::SimConfig;
use super::world::Simulation;
use crate::protocol::sync::{SyncConfig, SyncKey, SyncState};
use crate::protocol::{Packet, Rng};

/// What [`sync_convergence`] measured.
#[derive(Clone, Debug, PartialEq)]
pub struct SyncConvergence {
    /// Writes made (each a new key, from a random live node).
    pub writes: usize,
    /// Nodes alive at the end.
    pub alive: usize,
    /// Keys every live node holds at the end.
    pub keys: usize,
    /// Writes whose writer is alive at the end and that some live node
    /// lacks (must be 0).
    pub lost: usize,
    /// Virtual ms from the last write until every live node held the same
    /// number of keys (`None`: not before the end of the run).
    pub converged_after_ms: Option<u64>,
    /// Whether every live node holds exactly the same dictionary at the end.
    pub identical: bool,
}

/// Runs `cfg` (its joins, broadcasts and churn) with a [`SyncState`] on
/// every node, and `writes` sets of new keys from random live nodes, spread
/// from half-way through the joins to the last broadcast (so late joiners
/// must catch up, and some writers die). Then measures how long the live
/// nodes take to agree.
///
/// # Examples
/// ```
/// use rs2p::sim::{scenario::sync_convergence, SimConfig};
/// let cfg = SimConfig { nodes: 30, broadcasts: 3, churn: 0.1, seed: 3, ..SimConfig::default() };
/// let r = sync_convergence(cfg, 40);
/// assert!(r.identical && r.lost == 0);
/// assert!(r.converged_after_ms.is_some());
/// ```
pub fn sync_convergence(cfg: SimConfig, writes: usize) -> SyncConvergence {
    let mut rng = Rng::new(cfg.seed ^ 0x051C_5EED);
    let start_us = cfg.join_ms * 1000 / 2;
    let last_bcast = cfg.first_broadcast_ms()
        + cfg.broadcast_interval_ms * cfg.broadcasts.saturating_sub(1) as u64;
    let end_writes_us = last_bcast * 1000;
    let end_us = cfg.end_ms() * 1000;
    let n = cfg.nodes;
    let mut sim = Simulation::with_layers(cfg, |_, _| SyncState::new(SyncConfig::default()));
    let mut written: Vec<(usize, SyncKey)> = Vec::with_capacity(writes);
    let mut last_write_us = start_us;
    for w in 0..writes {
        let at = start_us + (end_writes_us - start_us) * w as u64 / writes.max(1) as u64;
        sim.run_until(at);
        let alive: Vec<usize> = (0..n).filter(|&i| sim.is_alive(i)).collect();
        if alive.is_empty() {
            continue;
        }
        let writer = alive[rng.below(alive.len() as u64) as usize];
        let key = SyncKey::from(format!("key-{w:06}"));
        let value = Packet::from(w as u64);
        let k = key.clone();
        if let Some(Ok(())) = sim.with_layer(writer, move |s, ctx| s.set(ctx, k, value)) {
            written.push((writer, key));
            last_write_us = at;
        }
    }
    let mut converged_after_ms = None;
    let mut t = last_write_us;
    while t <= end_us {
        sim.run_until(t);
        let lens: Vec<usize> = (0..n)
            .filter(|&i| sim.is_alive(i))
            .filter_map(|i| sim.layer(i).map(|l| l.store().len()))
            .collect();
        if converged_after_ms.is_none() && lens.windows(2).all(|w| w[0] == w[1]) {
            converged_after_ms = Some((t - last_write_us) / 1000);
            break;
        }
        t += 10_000;
    }
    sim.run_until(end_us);
    let live: Vec<usize> = (0..n).filter(|&i| sim.is_alive(i)).collect();
    let dicts: Vec<Vec<(SyncKey, Packet)>> = live
        .iter()
        .filter_map(|&i| sim.layer(i))
        .map(|l| {
            l.store()
                .iter()
                .map(|(k, e)| (k.clone(), (*e.value).clone()))
                .collect()
        })
        .collect();
    let identical = dicts.windows(2).all(|w| w[0] == w[1]);
    let lost = written
        .iter()
        .filter(|(writer, _)| sim.is_alive(*writer))
        .filter(|(_, key)| {
            live.iter()
                .any(|&i| sim.layer(i).is_some_and(|l| l.store().get(key).is_none()))
        })
        .count();
    SyncConvergence {
        writes: written.len(),
        alive: live.len(),
        keys: dicts.first().map_or(0, Vec::len),
        lost,
        converged_after_ms,
        identical,
    }
}

/// What [`chord_ring`] measured.
#[derive(Clone, Debug, PartialEq)]
pub struct ChordRing {
    /// Keys written (each stored in five slots).
    pub keys: usize,
    /// Nodes alive at the end.
    pub alive: usize,
    /// Most table entries on one node, before the churn.
    pub max_entries: usize,
    /// Mean table entries per storing node, before the churn.
    pub mean_entries: f64,
    /// Slots (of `5 * keys`) not held by the node that the ring rule, with
    /// a view of every node, makes responsible, before the churn.
    pub misplaced: usize,
    /// Gets issued by live nodes (during and after the churn) whose issuer
    /// lived to see the answer.
    pub gets: usize,
    /// Of those, how many returned the value written.
    pub found: usize,
    /// Virtual ms from a get to its answer: median, 99th percentile, most.
    pub latency_ms: (u64, u64, u64),
}

/// Runs `cfg` with a [`ChordState`](crate::protocol::chord::ChordState)
/// on every node: every node joins the ring once all have joined the mesh,
/// `keys` keys are written from random nodes while the ring settles, then
/// `gets` reads of random keys from random live nodes are spread over the
/// churn window (`cfg.churn` of the nodes die during the broadcast phase)
/// and the drain after it.
///
/// # Examples
/// ```
/// use rs2p::sim::{scenario::chord_ring, SimConfig};
/// let cfg = SimConfig { nodes: 24, broadcasts: 4, seed: 5, ..SimConfig::default() };
/// let r = chord_ring(cfg, 20, 40);
/// assert_eq!(r.misplaced, 0);
/// assert_eq!(r.found, r.gets);
/// ```
pub fn chord_ring(cfg: SimConfig, keys: usize, gets: usize) -> ChordRing {
    use crate::protocol::chord::{ChordConfig, ChordState, Position, Slot};
    let mut rng = Rng::new(cfg.seed ^ 0xC40D_5EED);
    let n = cfg.nodes;
    let first_us = cfg.first_broadcast_ms() * 1000;
    let churn_end_us = first_us + cfg.broadcast_interval_ms * 1000 * cfg.broadcasts.max(1) as u64;
    let end_us = cfg.end_ms() * 1000;
    let join_us = (cfg.join_ms + 500) * 1000;
    let settle_us = cfg.settle_ms * 1000;
    // Simulated nodes send their ids as str, which a ChordSocket takes for
    // js2p's: every node here is rs2p, so str peers may store.
    let config = ChordConfig {
        str_peers_store: true,
        ..ChordConfig::default()
    };
    let mut sim = Simulation::with_layers(cfg, |_, _| ChordState::new(config.clone()));
    sim.run_until(join_us);
    for i in 0..n {
        sim.with_layer(i, |s, ctx| s.join(ctx));
    }
    // Writes in the second half of the settling time.
    let write_from = join_us + settle_us / 3;
    let write_to = first_us.saturating_sub(settle_us / 4).max(write_from + 1);
    let mut written: Vec<(String, u64)> = Vec::new();
    for k in 0..keys {
        let at = write_from + (write_to - write_from) * k as u64 / keys.max(1) as u64;
        sim.run_until(at);
        let alive: Vec<usize> = (0..n).filter(|&i| sim.is_alive(i)).collect();
        if alive.is_empty() {
            continue;
        }
        let writer = alive[rng.below(alive.len() as u64) as usize];
        let key = format!("key-{k:05}");
        let bytes = bytes::Bytes::from(key.clone().into_bytes());
        if let Some(Ok(())) = sim.with_layer(writer, |s, ctx| s.set(ctx, bytes, (k as u64).into()))
        {
            written.push((key, k as u64));
        }
    }
    sim.run_until(first_us);
    // Placement, with a view of every node.
    let ring: Vec<(usize, Position)> = (0..n)
        .filter(|&i| sim.is_alive(i))
        .filter_map(|i| Some((i, Position::of_id(sim.node(i)?.id())?)))
        .collect();
    let mut misplaced = 0;
    for (key, _) in &written {
        for slot in Slot::all_of(key.as_bytes()) {
            let h = slot.position();
            let owner = ring
                .iter()
                .min_by_key(|(_, p)| p.distance_to(&h))
                .map(|&(i, _)| i);
            let held = owner
                .and_then(|i| sim.layer(i))
                .is_some_and(|l| l.held_at(&slot).is_some());
            misplaced += usize::from(!held);
        }
    }
    let entries: Vec<usize> = ring
        .iter()
        .filter_map(|&(i, _)| sim.layer(i).map(|l| l.held().count()))
        .collect();
    let max_entries = entries.iter().copied().max().unwrap_or(0);
    let mean_entries = entries.iter().sum::<usize>() as f64 / entries.len().max(1) as f64;
    // Reads, during the churn and after it.
    let step_us = 20_000;
    let read_to = churn_end_us + (end_us - churn_end_us) / 2;
    let mut due: Vec<u64> = (0..gets)
        .map(|g| first_us + (read_to - first_us) * g as u64 / gets.max(1) as u64)
        .collect();
    due.reverse();
    let mut inflight: Vec<(usize, u64, u64, u64)> = Vec::new(); // node, get id, value, issued
    let (mut issued, mut found) = (0, 0);
    let mut latencies = Vec::new();
    let mut t = first_us;
    while t <= end_us && (!due.is_empty() || !inflight.is_empty()) {
        sim.run_until(t);
        while due.last().is_some_and(|&d| d <= t) {
            due.pop();
            let alive: Vec<usize> = (0..n).filter(|&i| sim.is_alive(i)).collect();
            if alive.is_empty() || written.is_empty() {
                continue;
            }
            let node = alive[rng.below(alive.len() as u64) as usize];
            let (key, value) = &written[rng.below(written.len() as u64) as usize];
            if let Some(Ok(id)) = sim.with_layer(node, |s, ctx| s.get(ctx, key.as_bytes())) {
                inflight.push((node, id, *value, t));
            }
        }
        let mut still = Vec::new();
        for (node, id, value, at) in inflight {
            let Some(results) = sim.with_layer(node, |s, _| s.take_results()) else {
                continue; // the reader died
            };
            match results.into_iter().find(|(g, _)| *g == id) {
                Some((_, result)) => {
                    issued += 1;
                    latencies.push((t - at) / 1000);
                    found += usize::from(result.ok().and_then(|v| v.as_u64()) == Some(value));
                }
                None => still.push((node, id, value, at)),
            }
        }
        inflight = still;
        t += step_us;
    }
    latencies.sort_unstable();
    let pick = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(0)
    };
    ChordRing {
        keys: written.len(),
        alive: (0..n).filter(|&i| sim.is_alive(i)).count(),
        max_entries,
        mean_entries,
        misplaced,
        gets: issued,
        found,
        latency_ms: (
            pick(0.5),
            pick(0.99),
            latencies.last().copied().unwrap_or(0),
        ),
    }
}
