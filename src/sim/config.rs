//! [`SimConfig`]: the size, timeline and conditions of one simulated run.

use super::link::LinkModel;
use crate::protocol::Compression;

/// Everything that determines a simulated run. Two runs with equal
/// configurations produce equal reports.
///
/// The timeline: nodes join one after another, evenly spread over
/// `join_ms`, each dialling `bootstrap` random earlier nodes (peer lists do
/// the rest); the mesh then settles for `settle_ms`; `broadcasts`
/// broadcasts follow, `broadcast_interval_ms` apart, each from a random
/// live node; with churn, `churn × nodes` random nodes are killed at random
/// moments of the broadcast phase; the run ends `drain_ms` after the last
/// broadcast.
#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    /// Nodes in the mesh. Default 100.
    pub nodes: usize,
    /// Seed of every random choice. Default 1.
    pub seed: u64,
    /// The links between nodes.
    pub link: LinkModel,
    /// Earlier nodes each node dials when it joins. Default 2.
    pub bootstrap: usize,
    /// Peer lists make a node dial while it has fewer outgoing connections
    /// than this (the protocol's `max_outgoing`). Default 4.
    pub max_outgoing: usize,
    /// Compression offered by every node; empty means uncompressed frames.
    /// Default empty (compression changes bytes, not the flood's shape).
    pub compression: Vec<Compression>,
    /// Milliseconds over which the nodes join. Default 10,000.
    pub join_ms: u64,
    /// Milliseconds between the last join and the first broadcast.
    /// Default 10,000.
    pub settle_ms: u64,
    /// Broadcasts sent. Default 10.
    pub broadcasts: usize,
    /// Milliseconds between broadcasts. Default 1,000.
    pub broadcast_interval_ms: u64,
    /// Bytes of user payload per broadcast (at least 4). Default 100.
    pub payload_len: usize,
    /// Milliseconds the run continues after the last broadcast. Default
    /// 10,000.
    pub drain_ms: u64,
    /// Share of the nodes killed during the broadcast phase (0 to 1).
    /// Default 0.
    pub churn: f64,
    /// Milliseconds between two `on_tick` calls of a node (the tokio node
    /// ticks every 250 ms). Default 250.
    pub tick_ms: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            nodes: 100,
            seed: 1,
            link: LinkModel::default(),
            bootstrap: 2,
            max_outgoing: 4,
            compression: Vec::new(),
            join_ms: 10_000,
            settle_ms: 10_000,
            broadcasts: 10,
            broadcast_interval_ms: 1_000,
            payload_len: 100,
            drain_ms: 10_000,
            churn: 0.0,
            tick_ms: 250,
        }
    }
}

impl SimConfig {
    /// Virtual milliseconds from the start to the first broadcast.
    pub fn first_broadcast_ms(&self) -> u64 {
        self.join_ms + self.settle_ms
    }

    /// Virtual milliseconds from the start to the end of the run.
    pub fn end_ms(&self) -> u64 {
        self.first_broadcast_ms()
            + self.broadcast_interval_ms * self.broadcasts.saturating_sub(1) as u64
            + self.drain_ms
    }
}
