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
