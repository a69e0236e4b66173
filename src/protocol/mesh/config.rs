//! [`MeshConfig`]: the knobs of the mesh state machine, with their defaults.

use crate::protocol::{CodecLimits, Compression, IdWire, Protocol};

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
    /// Longest peer list accepted; a longer one is a protocol violation and
    /// closes the connection. Default 1,024.
    pub max_peer_list: usize,
    /// Frame size bounds.
    pub limits: CodecLimits,
    /// Milliseconds a connection may wait for the peer's handshake before it
    /// is closed. Default 10,000.
    pub handshake_timeout_ms: u64,
    /// Misbehaviours tolerated from one connection (broadcasts stamped in
    /// the future, messages before the handshake) before it is closed.
    /// Default 100.
    pub max_offences: u32,
    /// Dials per second that peer lists and reconnects may start (token
    /// bucket refill rate). Default 10.
    pub dial_rate: u32,
    /// Dials that may start at once (token bucket size). Default 20.
    pub dial_burst: u32,
    /// Whether lost peers are redialled and known addresses used to refill
    /// the routing table up to `max_outgoing`. Default true.
    pub reconnect: bool,
    /// First redial delay after a loss, in ms (doubles per failure, with
    /// jitter). Default 500.
    pub reconnect_base_ms: u64,
    /// Longest redial delay, in ms. Default 10,000.
    pub reconnect_max_ms: u64,
    /// A lost peer is given up after this many ms, and an address not
    /// heard of for as long (no handshake, peer list or connection
    /// mentioned it) is forgotten. Default 600,000.
    pub reconnect_give_up_ms: u64,
    /// Most addresses remembered. Default 1,024.
    pub address_book_capacity: usize,
    /// Seed of the RNG used for jitter (the node sets a random one).
    pub seed: u64,
    /// Bytes per second of answers one peer can make this node send on
    /// request (resends, peer lists asked for, route responses,
    /// compression answers): the refill of a per-connection budget, so no
    /// peer can turn a few small requests into much traffic. Default
    /// 32,768.
    pub reply_rate: u32,
    /// The most such bytes that may go out at once (the budget's size).
    /// An answer larger than what is left still goes when the budget is
    /// positive, leaving it in debt. Default 65,536.
    pub reply_burst: u32,
    /// Whether new broadcasts wait for the application's decision before
    /// they are relayed or delivered (`Action::Validate`). Default false.
    pub validate: bool,
    /// Most broadcasts waiting for a decision at once; past it new ones are
    /// dropped (unrecorded). Default 1,024.
    pub max_pending_validations: usize,
    /// Milliseconds a broadcast may wait for a decision before it is
    /// ignored. Default 10,000.
    pub validation_timeout_ms: u64,
    /// Rejected broadcasts tolerated from one connection before it is
    /// closed. Default 10.
    pub max_rejections: u32,
    /// Milliseconds after its adoption during which a peer's connection
    /// may still lose a race to a second connection claiming the same id
    /// (two nodes dialling each other at once). Past it the connection is
    /// established, and a later connection claiming the id is closed:
    /// anyone can claim an id, so a newcomer must never displace a working
    /// peer. Default 5,000.
    pub race_window_ms: u64,
    /// The msgpack form of this node's id in everything it sends. Default
    /// str: js2p keys its routing table by the id object it received and
    /// only str ids match its later lookups; py2p keys by whatever came.
    /// Bin suits a node whose peers compare ids with their own bytes ids
    /// (py2p's sync lease rule), see `docs/protocol.md`.
    pub id_wire: IdWire,
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
            max_peer_list: 1024,
            limits: CodecLimits::default(),
            handshake_timeout_ms: 10_000,
            max_offences: 100,
            dial_rate: 10,
            dial_burst: 20,
            reconnect: true,
            reconnect_base_ms: 500,
            reconnect_max_ms: 10_000,
            reconnect_give_up_ms: 600_000,
            address_book_capacity: 1024,
            seed: 0x5eed,
            validate: false,
            max_pending_validations: 1024,
            validation_timeout_ms: 10_000,
            max_rejections: 10,
            race_window_ms: 5_000,
            reply_rate: 32_768,
            reply_burst: 65_536,
            id_wire: IdWire::Str,
        }
    }
}
