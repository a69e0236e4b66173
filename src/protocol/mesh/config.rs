//! [`MeshConfig`]: the knobs of the mesh state machine, with their defaults.

use crate::protocol::{CodecLimits, Compression, Protocol};

/// Settings of one mesh node's protocol logic.
#[derive(Clone, Debug)]
pub struct MeshConfig {
    /// The subnet this node belongs to. Default `("mesh", "Plaintext")`.
    pub protocol: Protocol,
    /// Compression methods offered, in order of preference. Default: all
    /// five, in py2p's order (snappy, zlib, gzip, bz2, lzma).
    pub compression: Vec<Compression>,
    /// Peer lists make the node dial while it has fewer outgoing
    /// connections than this. Default 4, as in the references.
    pub max_outgoing: usize,
    /// Seconds a broadcast stays valid and deduplicated. Default 60.
    pub waterfall_window: u64,
    /// Seconds a broadcast may be stamped ahead of our clock. Default 60.
    pub max_clock_skew: u64,
    /// Most broadcasts remembered for deduplication. Default 100,000.
    pub max_waterfall_entries: usize,
    /// Most replies waiting for a route. Default 1,024.
    pub max_pending_requests: usize,
    /// Seconds a reply waits for its route before it is dropped. Default 60.
    pub request_ttl: u64,
    /// Entries of a received peer list that are considered. Default 256.
    pub max_peer_list: usize,
    /// Frame size bounds.
    pub limits: CodecLimits,
}

impl Default for MeshConfig {
    fn default() -> Self {
        MeshConfig {
            protocol: Protocol::default(),
            compression: Compression::ALL.to_vec(),
            max_outgoing: 4,
            waterfall_window: 60,
            max_clock_skew: 60,
            max_waterfall_entries: 100_000,
            max_pending_requests: 1024,
            request_ttl: 60,
            max_peer_list: 256,
            limits: CodecLimits::default(),
        }
    }
}
