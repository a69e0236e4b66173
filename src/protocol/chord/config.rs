//! The DHT's settings, errors, events and counters.

use bytes::Bytes;

use crate::protocol::mesh::SendError;
use crate::protocol::Packet;

/// The bounds and timings of a [`ChordState`](super::ChordState).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChordConfig {
    /// Most keys known (the key list every node keeps). Default 100,000.
    pub max_keys: usize,
    /// Most table entries held (each key has five). Default 500,000.
    pub max_entries: usize,
    /// Largest value, msgpack-encoded bytes. Default 1 MiB.
    pub max_value_len: usize,
    /// Most lookups under way at once, our own `get`s and the retrieves
    /// we forward for peers. Default 1,024.
    pub max_pending: usize,
    /// How long a `get` (and a forwarded retrieve) waits for answers, ms.
    /// Default 10,000, as the references.
    pub request_timeout_ms: u64,
    /// When every table answered but no value has a quorum, how long to
    /// wait for a late value before giving up, ms (py2p forwards a lookup
    /// by answering nil first and the value later). Default 300.
    pub late_answer_ms: u64,
    /// How soon after a storing peer leaves its slots are repaired, ms.
    /// Default 500.
    pub repair_delay_ms: u64,
    /// How often every slot this node should hold is checked anyway, ms
    /// (0: only on departures and joins). Default 15,000.
    pub repair_interval_ms: u64,
    /// How often a storing node tends its ring links (neighbours and
    /// fingers), ms; 0: never (then forwarding relies on the mesh's own
    /// links, as py2p). Default 2,000.
    pub ring_interval_ms: u64,
    /// Most keys repaired at once. Default 64.
    pub max_repairs: usize,
    /// Whether a peer that sends its id as msgpack str (js2p does; py2p
    /// and rs2p chord nodes send bin) may store data. Default false:
    /// js2p's chord module loses what it is given, so rs2p never hands it
    /// data, whatever its meta says (its reads and writes are still
    /// served).
    pub str_peers_store: bool,
}

impl Default for ChordConfig {
    fn default() -> Self {
        ChordConfig {
            max_keys: 100_000,
            max_entries: 500_000,
            max_value_len: 1 << 20,
            max_pending: 1024,
            request_timeout_ms: 10_000,
            late_answer_ms: 300,
            repair_delay_ms: 500,
            repair_interval_ms: 15_000,
            ring_interval_ms: 2_000,
            max_repairs: 64,
            str_peers_store: false,
        }
    }
}

/// Why a DHT operation failed.
#[derive(Clone, Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum ChordError {
    /// Every table answered, none with a value: the key is not stored.
    #[error("no value is stored at this key")]
    NotFound,
    /// Answers came, but no value was given by more than two tables.
    #[error("no quorum: {agreeing} of 5 tables agree on the most common value")]
    NoQuorum {
        /// How many tables gave the most common non-nil value.
        agreeing: usize,
    },
    /// Not enough tables answered in time.
    #[error("timed out after {0} ms waiting for answers")]
    Timeout(u64),
    /// Too many lookups are under way.
    #[error("too many lookups under way (at most {max})")]
    Busy {
        /// The bound.
        max: usize,
    },
    /// The key list is full.
    #[error("too many keys (at most {max})")]
    TooManyKeys {
        /// The bound.
        max: usize,
    },
    /// The value is larger than allowed.
    #[error("value of {len} bytes is over the limit of {max}")]
    ValueTooLarge {
        /// Its msgpack size.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// `set` with a nil value (use `delete`).
    #[error("nil is not a value (use delete)")]
    NilValue,
    /// A delta that is not a map.
    #[error("a delta must be a map")]
    DeltaNotAMap,
    /// `delete` of a key this node does not know.
    #[error("unknown key {0:?}")]
    UnknownKey(String),
    /// This node's id is not base58 text, so it has no place on the ring
    /// and cannot store.
    #[error("this node's id is not base58: it has no place on the ring")]
    NotOnRing,
    /// A message could not be built or sent.
    #[error(transparent)]
    Send(#[from] SendError),
}

/// A change of the key list, for subscribers. The DHT does not say what
/// the new value is (as the references): read it with `get`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChordEvent {
    /// A key was added to the DHT (here or by a peer).
    Added {
        /// The key.
        key: Bytes,
    },
    /// A key was deleted.
    Removed {
        /// The key.
        key: Bytes,
    },
}

/// Identifies a `get` until its result comes.
pub type GetId = u64;

/// The result of a `get`: the value more than two tables agree on.
pub type GetResult = Result<Packet, ChordError>;

/// What peers sent that was not applied, by reason (none of it costs the
/// peer its connection), and the work done for the ring.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChordStats {
    /// Messages whose packets make no sense (missing, wrong types).
    pub malformed: u64,
    /// Unknown table names or hashes that are not base58.
    pub bad_slots: u64,
    /// Meta messages that are not an integer.
    pub bad_meta: u64,
    /// Values or keys refused by the bounds.
    pub over_bounds: u64,
    /// Deletes (stores of nil) of slots not held.
    pub unknown_deletes: u64,
    /// Deltas onto values that are not maps, or deltas that are not maps.
    pub bad_deltas: u64,
    /// Answers nobody asked for.
    pub unsolicited: u64,
    /// Retrieves answered nil because too many lookups were under way.
    pub overloaded: u64,
    /// Stores and deltas forwarded towards the responsible node.
    pub forwarded: u64,
    /// Entries handed to another node (it became responsible, or we left).
    pub handed_over: u64,
    /// Metas saying "I store" from peers not allowed to (js2p's, see
    /// `str_peers_store`).
    pub refused_storers: u64,
    /// Slots restored from the other tables after a loss.
    pub repaired: u64,
    /// Backup copies taken over when their node left.
    pub promoted: u64,
}
