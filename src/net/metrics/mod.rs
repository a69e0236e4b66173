//! Prometheus metrics of a node (feature `metrics`, on by default), kept
//! with the maintained [`prometheus_client`] crate and read through
//! [`MeshSocket::metrics`](super::MeshSocket::metrics).
//!
//! # The metrics
//!
//! Every name starts with `rs2p_`. Labels take a few fixed values each;
//! none names a peer, so a node's series stay bounded however many peers
//! come and go.
//!
//! | metric | type | labels | what |
//! |---|---|---|---|
//! | `rs2p_connections` | gauge | `direction` (`incoming`, `outgoing`), `transport` (`Plaintext`, `SSL`, `ws`, `wss`) | open connections, handshaken or not |
//! | `rs2p_peers` | gauge | | peers in the routing table |
//! | `rs2p_awaiting_handshake` | gauge | | connections waiting for their handshake |
//! | `rs2p_send_queue_bytes` | gauge | | bytes queued to be written, across connections |
//! | `rs2p_receive_queue_messages` | gauge | | messages waiting for [`recv`](super::MeshSocket::recv) |
//! | `rs2p_pending_replies` | gauge | | replies waiting for a route |
//! | `rs2p_waterfall_entries` | gauge | | broadcasts remembered for deduplication |
//! | `rs2p_frames_received_total` | counter | | frames split from what peers sent |
//! | `rs2p_bytes_received_total` | counter | | bytes read from peers (after TLS or WebSocket) |
//! | `rs2p_messages_received_total` | counter | `kind` (`broadcast`, `whisper`, `renegotiate`, `ping`, `pong`) | messages decoded from peers (every copy of a broadcast) |
//! | `rs2p_frames_sent_total` | counter | | frames written to peers |
//! | `rs2p_bytes_sent_total` | counter | | bytes of those frames |
//! | `rs2p_messages_sent_total` | counter | `kind` (`broadcast`, `whisper`, `reply`) | messages the application sent |
//! | `rs2p_duplicates_total` | counter | | broadcasts dropped as already seen |
//! | `rs2p_messages_dropped_total` | counter | `reason`: see below | messages dropped |
//! | `rs2p_connections_closed_total` | counter | `reason`: [`CloseReason::kind`](crate::protocol::mesh::CloseReason::kind) | connections closed or refused, by why |
//! | `rs2p_connections_refused_total` | counter | | incoming connections refused at once: a connection limit was reached |
//! | `rs2p_dials_total` | counter | | dials started (by `connect`, peer lists, redials, routes) |
//! | `rs2p_dial_failures_total` | counter | | dials that failed before a connection opened |
//! | `rs2p_delivery_latency_seconds` | histogram | | from a frame's arrival in the connection's read loop to its message reaching the handlers and the receive queue |
//!
//! `rs2p_messages_dropped_total` reasons: `stale` (older than the
//! waterfall window), `future` (stamped beyond the allowed clock skew),
//! `too_big` (a frame or body over the size limits) and `protocol_error`
//! (any other undecodable frame; both close the connection), `slow_peer`
//! (not queued: the peer's send queue was full, and it is closed),
//! `queue_full` (the oldest message of a full receive queue, see
//! [`Event::QueueOverflow`](super::Event::QueueOverflow)),
//! `validation_rejected`, `validation_overflow` (too many broadcasts were
//! waiting for validation), `reply_budget` (an answer to a peer's request
//! over its reply budget) and `unrouted` (a reply without a route, see
//! [`Event::ReplyFailed`](super::Event::ReplyFailed)).
//!
//! Counters kept inside the protocol state machine (messages received,
//! duplicates, stale and future broadcasts, validation and reply-budget
//! drops) and the gauges other than `rs2p_connections` are brought up to
//! date on the node's tick, every 250 ms; the rest move as things happen.
//! Counting is an atomic increment on pre-made series: nothing is
//! allocated or looked up per frame.
//!
//! # Examples
//! Read one node's metrics in the text format:
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), rs2p::Error> {
//! let node = rs2p::MeshSocket::bind("127.0.0.1:0").await?;
//! let text = node.metrics().encode();
//! assert!(text.contains("# TYPE rs2p_peers gauge"));
//! assert!(text.ends_with("# EOF\n"));
//! # Ok(()) }
//! ```
//!
//! A node's metrics, and metrics of your own, in one registry:
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), rs2p::Error> {
//! use rs2p::net::metrics::prometheus_client::{
//!     encoding::text::encode, metrics::counter::Counter, registry::Registry,
//! };
//! let node = rs2p::MeshSocket::bind("127.0.0.1:0").await?;
//! let mut registry = Registry::default();
//! let requests = Counter::<u64>::default();
//! registry.register("app_requests", "Requests served", requests.clone());
//! node.metrics().register(&mut registry);
//! let mut text = String::new();
//! encode(&mut text, &registry).unwrap();
//! assert!(text.contains("app_requests_total 0"));
//! assert!(text.contains("rs2p_peers 0"));
//! # Ok(()) }
//! ```
//!
//! Several nodes in one process share a [`MetricsGroup`], each under a
//! `node` label of its own (see its example), so their series do not
//! collide and each metric is described once.

use crate::protocol::mesh::CloseReason;

/// Why a message was dropped by the driver (the state machine's own drops
/// are mirrored from its counts).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Dropped {
    TooBig,
    ProtocolError,
    SlowPeer,
    QueueFull,
    Unrouted,
}

/// What the application sent.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Sent {
    Broadcast,
    Whisper,
    Reply,
}

/// Cumulative counts kept by the state machine, mirrored on the tick.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
pub(crate) struct MeshCounts {
    /// Messages received by main flag (0 broadcast, 1 renegotiate,
    /// 2 whisper, 3 ping, 4 pong).
    pub(crate) received: [u64; 5],
    pub(crate) duplicates: u64,
    pub(crate) stale: u64,
    pub(crate) future: u64,
    pub(crate) validation_rejected: u64,
    pub(crate) validation_overflow: u64,
    pub(crate) replies_refused: u64,
}

/// Levels sampled on the tick.
#[derive(Clone, Copy, Debug, Default)]
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
pub(crate) struct Levels {
    pub(crate) peers: usize,
    pub(crate) awaiting: usize,
    pub(crate) send_queue_bytes: usize,
    pub(crate) receive_queue: usize,
    pub(crate) pending_replies: usize,
    pub(crate) waterfall: usize,
}

#[cfg(feature = "metrics")]
pub use enabled::{Metrics, MetricsGroup};
#[cfg(feature = "metrics")]
pub use prometheus_client;

#[cfg(not(feature = "metrics"))]
pub(crate) use disabled::Probes;
#[cfg(feature = "metrics")]
pub(crate) use enabled::Probes;

#[cfg(feature = "metrics")]
mod enabled;

#[cfg(not(feature = "metrics"))]
mod disabled;
