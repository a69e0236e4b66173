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
mod enabled {
    use std::sync::Arc;
    use std::time::Instant;

    use prometheus_client::encoding::text::encode;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::Gauge;
    use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
    use prometheus_client::registry::Registry;

    use super::{CloseReason, Dropped, Levels, MeshCounts, Sent};

    /// A label set: the node's own label (in a group) first, then the
    /// series' own.
    type Labels = Vec<(&'static str, String)>;
    type Counters = Family<Labels, Counter>;
    type Gauges = Family<Labels, Gauge>;
    type Histograms = Family<Labels, Histogram, fn() -> Histogram>;

    const RECEIVED_KINDS: [&str; 5] = ["broadcast", "renegotiate", "whisper", "ping", "pong"];
    const SENT_KINDS: [&str; 3] = ["broadcast", "whisper", "reply"];
    const DROP_REASONS: [&str; 10] = [
        "stale",
        "future",
        "too_big",
        "protocol_error",
        "slow_peer",
        "queue_full",
        "validation_rejected",
        "validation_overflow",
        "reply_budget",
        "unrouted",
    ];

    fn latency_histogram() -> Histogram {
        // 10 µs to about 2.6 s.
        Histogram::new(exponential_buckets(1e-5, 4.0, 10))
    }

    /// The metric families (one per metric name), and a registry holding
    /// them.
    #[derive(Debug)]
    struct Families {
        connections: Gauges,
        peers: Gauges,
        awaiting: Gauges,
        send_queue_bytes: Gauges,
        receive_queue: Gauges,
        pending_replies: Gauges,
        waterfall: Gauges,
        frames_in: Counters,
        bytes_in: Counters,
        received: Counters,
        frames_out: Counters,
        bytes_out: Counters,
        sent: Counters,
        duplicates: Counters,
        dropped: Counters,
        closed: Counters,
        refused: Counters,
        dials: Counters,
        dial_failures: Counters,
        latency: Histograms,
        registry: Registry,
    }

    /// The metrics of several nodes in one set of metric families, each
    /// node's series told apart by a `node` label: give it to each node
    /// with [`MeshBuilder::metrics_group`](crate::MeshBuilder::metrics_group)
    /// and register it once. (Registering each node's
    /// [`Metrics`] under a label of its own works too, but repeats each
    /// metric's `HELP` and `TYPE` lines per node, which strict parsers
    /// such as the Pushgateway's refuse.) A node's series leave the group
    /// once the node has shut down and its handles are gone.
    ///
    /// # Examples
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rs2p::Error> {
    /// use rs2p::net::metrics::MetricsGroup;
    /// use rs2p::net::metrics::prometheus_client::{encoding::text::encode, registry::Registry};
    /// let group = MetricsGroup::new();
    /// let a = rs2p::MeshSocket::builder().metrics_group(&group, "a").bind("127.0.0.1:0").await?;
    /// let b = rs2p::MeshSocket::builder().metrics_group(&group, "b").bind("127.0.0.1:0").await?;
    /// let mut registry = Registry::default();
    /// group.register(&mut registry);
    /// let mut text = String::new();
    /// encode(&mut text, &registry).unwrap();
    /// assert!(text.contains(r#"rs2p_peers{node="a"} 0"#));
    /// assert!(text.contains(r#"rs2p_peers{node="b"} 0"#));
    /// assert_eq!(text.matches("# TYPE rs2p_peers gauge").count(), 1);
    /// # Ok(()) }
    /// ```
    #[derive(Clone, Debug)]
    pub struct MetricsGroup {
        families: Arc<Families>,
    }

    impl Default for MetricsGroup {
        fn default() -> Self {
            MetricsGroup::new()
        }
    }

    impl MetricsGroup {
        /// An empty group.
        pub fn new() -> Self {
            let mut families = Families {
                connections: Gauges::default(),
                peers: Gauges::default(),
                awaiting: Gauges::default(),
                send_queue_bytes: Gauges::default(),
                receive_queue: Gauges::default(),
                pending_replies: Gauges::default(),
                waterfall: Gauges::default(),
                frames_in: Counters::default(),
                bytes_in: Counters::default(),
                received: Counters::default(),
                frames_out: Counters::default(),
                bytes_out: Counters::default(),
                sent: Counters::default(),
                duplicates: Counters::default(),
                dropped: Counters::default(),
                closed: Counters::default(),
                refused: Counters::default(),
                dials: Counters::default(),
                dial_failures: Counters::default(),
                latency: Histograms::new_with_constructor(latency_histogram),
                registry: Registry::default(),
            };
            let mut registry = Registry::default();
            families.register_into(registry.sub_registry_with_prefix("rs2p"));
            families.registry = registry;
            MetricsGroup {
                families: Arc::new(families),
            }
        }

        /// Registers the group's metrics, named `rs2p_…`, in `registry`.
        /// They stay live: the registry reads the nodes' current values
        /// whenever it is encoded.
        pub fn register(&self, registry: &mut Registry) {
            self.families
                .register_into(registry.sub_registry_with_prefix("rs2p"));
        }

        /// The metrics of every node of the group in the Prometheus /
        /// OpenMetrics text format, ending with `# EOF`.
        pub fn encode(&self) -> String {
            let mut text = String::new();
            // Writing to a String cannot fail.
            let _ = encode(&mut text, &self.families.registry);
            text
        }
    }

    impl Families {
        fn register_into(&self, r: &mut Registry) {
            r.register(
                "connections",
                "Open connections, handshaken or not",
                self.connections.clone(),
            );
            r.register("peers", "Peers in the routing table", self.peers.clone());
            r.register(
                "awaiting_handshake",
                "Connections waiting for their handshake",
                self.awaiting.clone(),
            );
            r.register(
                "send_queue_bytes",
                "Bytes queued to be written, across connections",
                self.send_queue_bytes.clone(),
            );
            r.register(
                "receive_queue_messages",
                "Messages waiting in the receive queue",
                self.receive_queue.clone(),
            );
            r.register(
                "pending_replies",
                "Replies waiting for a route",
                self.pending_replies.clone(),
            );
            r.register(
                "waterfall_entries",
                "Broadcasts remembered for deduplication",
                self.waterfall.clone(),
            );
            r.register(
                "frames_received",
                "Frames split from what peers sent",
                self.frames_in.clone(),
            );
            r.register(
                "bytes_received",
                "Bytes read from peers",
                self.bytes_in.clone(),
            );
            r.register(
                "messages_received",
                "Messages decoded from peers, by main flag",
                self.received.clone(),
            );
            r.register(
                "frames_sent",
                "Frames written to peers",
                self.frames_out.clone(),
            );
            r.register(
                "bytes_sent",
                "Bytes of frames written to peers",
                self.bytes_out.clone(),
            );
            r.register(
                "messages_sent",
                "Messages the application sent",
                self.sent.clone(),
            );
            r.register(
                "duplicates",
                "Broadcasts dropped as already seen",
                self.duplicates.clone(),
            );
            r.register(
                "messages_dropped",
                "Messages dropped, by reason",
                self.dropped.clone(),
            );
            r.register(
                "connections_closed",
                "Connections closed or refused, by reason",
                self.closed.clone(),
            );
            r.register(
                "connections_refused",
                "Incoming connections refused at once because a connection limit was reached",
                self.refused.clone(),
            );
            r.register("dials", "Dials started", self.dials.clone());
            r.register(
                "dial_failures",
                "Dials that failed before a connection opened",
                self.dial_failures.clone(),
            );
            r.register(
                "delivery_latency_seconds",
                "From a frame's arrival in the read loop to its message reaching the handlers",
                self.latency.clone(),
            );
        }

        /// Every label set of one node's series, and the family of each
        /// (to make them, and to take them out again).
        fn each_series(&self, node: &Labels, mut f: impl FnMut(Series<'_>, Labels)) {
            let with = |extra: &[(&'static str, &str)]| {
                let mut l = node.clone();
                l.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
                l
            };
            for g in [
                &self.peers,
                &self.awaiting,
                &self.send_queue_bytes,
                &self.receive_queue,
                &self.pending_replies,
                &self.waterfall,
            ] {
                f(Series::Gauge(g), with(&[]));
            }
            for c in [
                &self.frames_in,
                &self.bytes_in,
                &self.frames_out,
                &self.bytes_out,
                &self.duplicates,
                &self.refused,
                &self.dials,
                &self.dial_failures,
            ] {
                f(Series::Counter(c), with(&[]));
            }
            f(Series::Histogram(&self.latency), with(&[]));
            for k in RECEIVED_KINDS {
                f(Series::Counter(&self.received), with(&[("kind", k)]));
            }
            for k in SENT_KINDS {
                f(Series::Counter(&self.sent), with(&[("kind", k)]));
            }
            for r in DROP_REASONS {
                f(Series::Counter(&self.dropped), with(&[("reason", r)]));
            }
            for r in CloseReason::KINDS {
                f(Series::Counter(&self.closed), with(&[("reason", r)]));
            }
        }
    }

    /// One family, for [`Families::each_series`].
    enum Series<'a> {
        Gauge(&'a Gauges),
        Counter(&'a Counters),
        Histogram(&'a Histograms),
    }

    /// One node's series: handles on them, made once, so counting never
    /// looks a label set up.
    #[derive(Debug)]
    struct Inner {
        group: MetricsGroup,
        /// The node's label in its group (empty on its own).
        node: Labels,
        transport: &'static str,
        /// incoming, outgoing.
        connections: [Gauge; 2],
        peers: Gauge,
        awaiting: Gauge,
        send_queue_bytes: Gauge,
        receive_queue: Gauge,
        pending_replies: Gauge,
        waterfall: Gauge,
        frames_in: Counter,
        bytes_in: Counter,
        received: [Counter; 5],
        frames_out: Counter,
        bytes_out: Counter,
        sent: [Counter; 3],
        duplicates: Counter,
        /// In the order of `DROP_REASONS`.
        dropped: [Counter; 10],
        closed: Vec<Counter>,
        refused: Counter,
        dials: Counter,
        dial_failures: Counter,
        latency: Histogram,
    }

    impl Drop for Inner {
        /// A node of a group takes its series out when it is gone.
        fn drop(&mut self) {
            if self.node.is_empty() {
                return;
            }
            let f = &self.group.families;
            for direction in ["incoming", "outgoing"] {
                let mut l = self.node.clone();
                l.push(("direction", direction.to_owned()));
                l.push(("transport", self.transport.to_owned()));
                f.connections.remove(&l);
            }
            f.each_series(&self.node, |series, labels| {
                match series {
                    Series::Gauge(g) => g.remove(&labels),
                    Series::Counter(c) => c.remove(&labels),
                    Series::Histogram(h) => h.remove(&labels),
                };
            });
        }
    }

    /// A node's metrics: read them as text with [`encode`](Self::encode),
    /// or add them to a registry of your own with
    /// [`register`](Self::register). Cheap to clone; every clone reads the
    /// same live series. See the [module documentation](super) for the
    /// metrics and examples.
    #[derive(Clone, Debug)]
    pub struct Metrics {
        inner: Arc<Inner>,
    }

    /// The driver's handle on a node's metrics.
    pub(crate) type Probes = Metrics;

    impl Metrics {
        /// The node's metrics in the Prometheus / OpenMetrics text format,
        /// ending with `# EOF` (for a node of a [`MetricsGroup`]: the
        /// whole group's).
        ///
        /// # Examples
        /// ```
        /// # #[tokio::main(flavor = "current_thread")]
        /// # async fn main() -> Result<(), rs2p::Error> {
        /// let node = rs2p::MeshSocket::bind("127.0.0.1:0").await?;
        /// let text = node.metrics().encode();
        /// assert!(text.contains("rs2p_dials_total 0"));
        /// # Ok(()) }
        /// ```
        pub fn encode(&self) -> String {
            self.inner.group.encode()
        }

        /// Registers the node's metrics, named `rs2p_…`, in `registry`
        /// (for a node of a [`MetricsGroup`]: the whole group's). For
        /// several nodes, prefer a [`MetricsGroup`], or give each node a
        /// [`sub_registry_with_label`](Registry::sub_registry_with_label)
        /// of its own.
        pub fn register(&self, registry: &mut Registry) {
            self.inner.group.register(registry);
        }

        /// The metrics of a node on its own.
        pub(crate) fn new(transport: &'static str) -> Self {
            Metrics::in_group(&MetricsGroup::new(), None, transport)
        }

        /// The metrics of a node in `group`, labelled `node=<label>`, on
        /// `transport` (its `encryption` name).
        pub(crate) fn in_group(
            group: &MetricsGroup,
            label: Option<&str>,
            transport: &'static str,
        ) -> Self {
            let node: Labels = label
                .map(|l| vec![("node", l.to_owned())])
                .unwrap_or_default();
            let f = &group.families;
            let with = |extra: &[(&'static str, &str)]| {
                let mut l = node.clone();
                l.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
                l
            };
            let gauge = |g: &Gauges| g.get_or_create_owned(&with(&[]));
            let counter = |c: &Counters| c.get_or_create_owned(&with(&[]));
            let connections = ["incoming", "outgoing"].map(|direction| {
                f.connections.get_or_create_owned(&with(&[
                    ("direction", direction),
                    ("transport", transport),
                ]))
            });
            let inner = Inner {
                connections,
                peers: gauge(&f.peers),
                awaiting: gauge(&f.awaiting),
                send_queue_bytes: gauge(&f.send_queue_bytes),
                receive_queue: gauge(&f.receive_queue),
                pending_replies: gauge(&f.pending_replies),
                waterfall: gauge(&f.waterfall),
                frames_in: counter(&f.frames_in),
                bytes_in: counter(&f.bytes_in),
                received: RECEIVED_KINDS
                    .map(|k| f.received.get_or_create_owned(&with(&[("kind", k)]))),
                frames_out: counter(&f.frames_out),
                bytes_out: counter(&f.bytes_out),
                sent: SENT_KINDS.map(|k| f.sent.get_or_create_owned(&with(&[("kind", k)]))),
                duplicates: counter(&f.duplicates),
                dropped: DROP_REASONS
                    .map(|r| f.dropped.get_or_create_owned(&with(&[("reason", r)]))),
                closed: CloseReason::KINDS
                    .iter()
                    .map(|r| f.closed.get_or_create_owned(&with(&[("reason", r)])))
                    .collect(),
                refused: counter(&f.refused),
                dials: counter(&f.dials),
                dial_failures: counter(&f.dial_failures),
                latency: f.latency.get_or_create_owned(&with(&[])),
                group: group.clone(),
                node,
                transport,
            };
            Metrics {
                inner: Arc::new(inner),
            }
        }

        #[inline]
        pub(crate) fn frames_in(&self, n: u64) {
            self.inner.frames_in.inc_by(n);
        }

        #[inline]
        pub(crate) fn bytes_in(&self, n: usize) {
            self.inner.bytes_in.inc_by(n as u64);
        }

        #[inline]
        pub(crate) fn written(&self, frames: usize, bytes: usize) {
            self.inner.frames_out.inc_by(frames as u64);
            self.inner.bytes_out.inc_by(bytes as u64);
        }

        pub(crate) fn opened(&self, outgoing: bool) {
            self.inner.connections[usize::from(outgoing)].inc();
        }

        pub(crate) fn forgotten(&self, outgoing: bool) {
            self.inner.connections[usize::from(outgoing)].dec();
        }

        pub(crate) fn closed(&self, reason: &CloseReason) {
            let kind = reason.kind();
            if let Some(n) = CloseReason::KINDS.iter().position(|k| *k == kind) {
                self.inner.closed[n].inc();
            }
        }

        pub(crate) fn refused(&self) {
            self.inner.refused.inc();
        }

        #[inline]
        pub(crate) fn dropped(&self, why: Dropped) {
            let n = match why {
                Dropped::TooBig => 2,
                Dropped::ProtocolError => 3,
                Dropped::SlowPeer => 4,
                Dropped::QueueFull => 5,
                Dropped::Unrouted => 9,
            };
            self.inner.dropped[n].inc();
        }

        pub(crate) fn sent(&self, what: Sent) {
            self.inner.sent[what as usize].inc();
        }

        pub(crate) fn dial(&self) {
            self.inner.dials.inc();
        }

        pub(crate) fn dial_failed(&self) {
            self.inner.dial_failures.inc();
        }

        #[inline]
        pub(crate) fn delivered(&self, arrived: Instant) {
            self.inner.latency.observe(arrived.elapsed().as_secs_f64());
        }

        /// Brings the mirrored counters and the sampled gauges up to
        /// date; `last` is what was mirrored before.
        pub(crate) fn mirror(&self, now: &MeshCounts, last: &mut MeshCounts, levels: &Levels) {
            let i = &*self.inner;
            let add = |c: &Counter, now: u64, before: u64| {
                if now > before {
                    c.inc_by(now - before);
                }
            };
            for (n, c) in i.received.iter().enumerate() {
                add(c, now.received[n], last.received[n]);
            }
            add(&i.duplicates, now.duplicates, last.duplicates);
            add(&i.dropped[0], now.stale, last.stale);
            add(&i.dropped[1], now.future, last.future);
            add(
                &i.dropped[6],
                now.validation_rejected,
                last.validation_rejected,
            );
            add(
                &i.dropped[7],
                now.validation_overflow,
                last.validation_overflow,
            );
            add(&i.dropped[8], now.replies_refused, last.replies_refused);
            *last = *now;
            let set = |g: &Gauge, v: usize| {
                g.set(i64::try_from(v).unwrap_or(i64::MAX));
            };
            set(&i.peers, levels.peers);
            set(&i.awaiting, levels.awaiting);
            set(&i.send_queue_bytes, levels.send_queue_bytes);
            set(&i.receive_queue, levels.receive_queue);
            set(&i.pending_replies, levels.pending_replies);
            set(&i.waterfall, levels.waterfall);
        }
    }
}

#[cfg(not(feature = "metrics"))]
mod disabled {
    use std::time::Instant;

    use super::{CloseReason, Dropped, Levels, MeshCounts, Sent};

    /// Without the `metrics` feature: counts nothing, costs nothing.
    #[derive(Clone, Debug, Default)]
    pub(crate) struct Probes;

    #[allow(clippy::unused_self)]
    impl Probes {
        pub(crate) fn new(_transport: &'static str) -> Self {
            Probes
        }
        #[inline]
        pub(crate) fn frames_in(&self, _n: u64) {}
        #[inline]
        pub(crate) fn bytes_in(&self, _n: usize) {}
        #[inline]
        pub(crate) fn written(&self, _frames: usize, _bytes: usize) {}
        pub(crate) fn opened(&self, _outgoing: bool) {}
        pub(crate) fn forgotten(&self, _outgoing: bool) {}
        pub(crate) fn closed(&self, _reason: &CloseReason) {}
        pub(crate) fn refused(&self) {}
        #[inline]
        pub(crate) fn dropped(&self, _why: Dropped) {}
        pub(crate) fn sent(&self, _what: Sent) {}
        pub(crate) fn dial(&self) {}
        pub(crate) fn dial_failed(&self) {}
        #[inline]
        pub(crate) fn delivered(&self, _arrived: Instant) {}
        pub(crate) fn mirror(&self, now: &MeshCounts, last: &mut MeshCounts, _levels: &Levels) {
            *last = *now;
        }
    }
}
