//! In-process mesh helpers (`MeshSocket` on loopback): building nodes on
//! any transport, wiring explicit topologies, bounded waiting on routing
//! tables, messages and events, collecting messages, and a reusable
//! "broadcast round" that checks exactly-once delivery.
//!
//! Every wait here is bounded (by [`WAIT`] unless a bound is passed);
//! conditions that have no event of their own (routing-table contents) are
//! polled with [`wait_until`] inside that bound.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use rs2p::protocol::{MessageId, Rng};
use rs2p::transport::TlsOptions;
use rs2p::{packets, Event, MeshSocket, Message, MessageKind, PeerId, Protocol};
use tokio::sync::broadcast;
use tokio::time::{timeout, Instant};

use super::wait::{wait_until, WAIT};

/// One node on 127.0.0.1 with the given `max_outgoing`.
pub async fn node(max_outgoing: usize) -> MeshSocket {
    MeshSocket::builder()
        .max_outgoing(max_outgoing)
        .bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0")
}

/// A node on loopback on `subnet` over `encryption` (TLS in compatibility
/// mode).
pub async fn rs_node(subnet: &str, encryption: &str, max_outgoing: usize) -> MeshSocket {
    rs_node_tls(subnet, encryption, max_outgoing, TlsOptions::Compatibility).await
}

/// A node on loopback on `subnet` over `encryption` with TLS settings `tls`.
pub async fn rs_node_tls(
    subnet: &str,
    encryption: &str,
    max_outgoing: usize,
    tls: TlsOptions,
) -> MeshSocket {
    MeshSocket::builder()
        .protocol(Protocol::new(subnet, encryption))
        .max_outgoing(max_outgoing)
        .tls(tls)
        .bind("127.0.0.1:0")
        .await
        .expect("bind")
}

/// `n` nodes with the given `max_outgoing`.
pub async fn nodes(n: usize, max_outgoing: usize) -> Vec<MeshSocket> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(node(max_outgoing).await);
    }
    v
}

/// Closes every node (bounded).
pub async fn close_all(nodes: &[MeshSocket]) {
    for n in nodes {
        timeout(WAIT, n.close()).await.expect("close() hung");
    }
}

/// `from` dials `to` and waits for the handshake; asserts the id.
pub async fn link(from: &MeshSocket, to: &MeshSocket) {
    let id = timeout(WAIT, from.connect("127.0.0.1", to.addr().port(), None))
        .await
        .expect("connect hung")
        .unwrap_or_else(|e| panic!("connect {} -> {}: {e}", from.addr(), to.addr()));
    assert_eq!(&id, to.id(), "connect returned the wrong peer id");
}

/// The ids in a node's routing table.
pub async fn peer_ids(node: &MeshSocket) -> HashSet<PeerId> {
    node.routing_table()
        .await
        .expect("routing_table")
        .into_iter()
        .map(|p| p.id)
        .collect()
}

/// Whether `node`'s routing table holds `id`.
pub async fn has_peer(node: &MeshSocket, id: &PeerId) -> bool {
    node.routing_table()
        .await
        .unwrap()
        .iter()
        .any(|p| &p.id == id)
}

/// Waits until `node`'s routing table holds `id`.
pub async fn wait_peer(node: &MeshSocket, id: &PeerId, what: &str) {
    wait_until(&format!("{what}: {id} to join"), WAIT, || async {
        if has_peer(node, id).await {
            Ok(())
        } else {
            Err(format!("{id} not in the routing table"))
        }
    })
    .await;
}

/// Waits until `node`'s routing table no longer holds `id`.
pub async fn wait_no_peer(node: &MeshSocket, id: &PeerId, what: &str) {
    wait_until(&format!("{what}: {id} to leave"), WAIT, || async {
        if has_peer(node, id).await {
            Err(format!("{id} still in the routing table"))
        } else {
            Ok(())
        }
    })
    .await;
}

/// Waits until `node`'s routing table holds exactly `n` peers.
pub async fn wait_peer_count(node: &MeshSocket, n: usize, what: &str) {
    wait_until(&format!("{what}: {n} peers"), WAIT, || async {
        let got = node.routing_table().await.unwrap().len();
        if got == n {
            Ok(())
        } else {
            Err(format!("{got} peers"))
        }
    })
    .await;
}

/// Waits until `node`'s routing table holds exactly `expected`.
pub async fn wait_peers_exact(node: &MeshSocket, expected: &HashSet<PeerId>, label: &str) {
    let what = format!(
        "{label}: routing table == {} expected peers",
        expected.len()
    );
    wait_until(&what, WAIT, || async {
        let got = peer_ids(node).await;
        if &got == expected {
            Ok(())
        } else {
            Err(format!(
                "have {:?}, want {:?}",
                sorted(&got),
                sorted(expected)
            ))
        }
    })
    .await;
}

/// Waits until `node`'s routing table holds at least `k` peers.
pub async fn wait_peers_at_least(node: &MeshSocket, k: usize) {
    wait_until(&format!("routing table >= {k}"), WAIT, || async {
        let n = peer_ids(node).await.len();
        if n >= k {
            Ok(())
        } else {
            Err(format!("have {n}"))
        }
    })
    .await;
}

fn sorted(s: &HashSet<PeerId>) -> Vec<String> {
    let mut v: Vec<String> = s.iter().map(|p| p.short(8)).collect();
    v.sort();
    v
}

/// Connects every edge `(u, v)` (u dials v) in order, then waits until each
/// node's routing table is exactly its neighbour set.
pub async fn wire(nodes: &[MeshSocket], edges: &[(usize, usize)]) {
    for &(u, v) in edges {
        link(&nodes[u], &nodes[v]).await;
    }
    wait_topology(nodes, edges).await;
}

/// Waits until each node's routing table is exactly its neighbour set in
/// the undirected graph `edges`.
pub async fn wait_topology(nodes: &[MeshSocket], edges: &[(usize, usize)]) {
    let adj = adjacency(nodes.len(), edges);
    for (i, n) in nodes.iter().enumerate() {
        let want: HashSet<PeerId> = adj[i].iter().map(|&j| nodes[j].id().clone()).collect();
        wait_peers_exact(n, &want, &format!("node {i}")).await;
    }
}

/// Neighbour sets of an undirected graph on nodes `0..n`.
pub fn adjacency(n: usize, edges: &[(usize, usize)]) -> Vec<BTreeSet<usize>> {
    assert!(
        edges.iter().all(|&(u, v)| u != v && u < n && v < n),
        "not a simple graph on {n} nodes: {edges:?}"
    );
    let graph = rs2p::sim::graph::Graph::new(0..n, edges.iter().copied());
    (0..n).map(|i| graph.neighbours(i).collect()).collect()
}

/// Whether an undirected graph on nodes `0..n` is connected.
pub fn is_connected(n: usize, edges: &[(usize, usize)]) -> bool {
    rs2p::sim::graph::Graph::new(0..n, edges.iter().copied()).is_connected()
}

/// The next message at `node`, bounded by [`WAIT`].
pub async fn next(node: &MeshSocket, what: &str) -> Message {
    match tokio::time::timeout(WAIT, node.next_message()).await {
        Ok(Ok(m)) => m,
        Ok(Err(e)) => panic!("{what}: {e}"),
        Err(_) => panic!("{what}: timed out"),
    }
}

/// The next message whose first packet is `text`, skipping others; bounded
/// by [`WAIT`] in all.
pub async fn next_with(node: &MeshSocket, text: &str) -> Message {
    tokio::time::timeout(WAIT, async {
        loop {
            let m = node.next_message().await.unwrap();
            if m.packets().first().and_then(rs2p::Packet::as_str) == Some(text) {
                return m;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{text} never arrived"))
}

/// The first packet of `m`, as text (empty if it is not text).
pub fn text(m: &Message) -> String {
    m.packets()[0].as_str().unwrap_or_default().to_owned()
}

/// The next queued message, within `within`.
pub async fn next_within(node: &MeshSocket, within: Duration) -> Message {
    timeout(within, node.next_message())
        .await
        .unwrap_or_else(|_| panic!("no message within {within:?} at {}", node.addr()))
        .expect("next_message")
}

/// Collects messages from `node` until `done(&collected)` holds, within
/// `within`.
pub async fn collect_until<F>(
    node: &MeshSocket,
    within: Duration,
    what: &str,
    mut done: F,
) -> Vec<Message>
where
    F: FnMut(&[Message]) -> bool,
{
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    while !done(&got) {
        match tokio::time::timeout_at(deadline, node.next_message()).await {
            Ok(Ok(m)) => got.push(m),
            Ok(Err(e)) => panic!("{what}: next_message failed: {e}"),
            Err(_) => panic!(
                "{what}: timed out after {within:?}; collected {} message(s): {:?}",
                got.len(),
                got
            ),
        }
    }
    got
}

/// Collects exactly `count` messages (more may remain queued).
pub async fn collect_n(node: &MeshSocket, count: usize, within: Duration) -> Vec<Message> {
    collect_until(node, within, &format!("collect {count}"), |m| {
        m.len() >= count
    })
    .await
}

/// Asserts that no further message arrives at `node` within `window` (a
/// bounded check of absence: late duplicates would show here).
pub async fn assert_no_more(node: &MeshSocket, window: Duration, what: &str) {
    let extra = timeout(window, node.next_message()).await;
    assert!(extra.is_err(), "{what}: {extra:?}");
}

/// Everything queued right now (non-blocking).
pub fn drain_now(node: &MeshSocket) -> Vec<Message> {
    let mut v = Vec::new();
    while let Some(m) = node.recv() {
        v.push(m);
    }
    v
}

/// Waits for an event matching `pred` on a subscription, within `within`.
pub async fn wait_event<F>(
    rx: &mut broadcast::Receiver<Event>,
    within: Duration,
    what: &str,
    mut pred: F,
) -> Event
where
    F: FnMut(&Event) -> bool,
{
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(ev)) => {
                if pred(&ev) {
                    return ev;
                }
                seen.push(ev);
            }
            Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
            Ok(Err(broadcast::error::RecvError::Closed)) => {
                panic!("{what}: event channel closed; saw {seen:?}")
            }
            Err(_) => panic!("{what}: timed out after {within:?}; saw {seen:?}"),
        }
    }
}

/// `k` distinct values of `0..n` (partial Fisher–Yates), drawn from the
/// crate's seeded RNG so that a choice of nodes is reproducible.
pub fn sample(rng: &mut Rng, n: usize, k: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    for i in 0..k {
        let j = i + rng.below((n - i) as u64) as usize;
        v.swap(i, j);
    }
    v.truncate(k);
    v
}

/// A random connected graph on `n` nodes: a random spanning tree (node i
/// attaches to a random earlier node) plus `extra` further distinct edges.
/// Edges are `(dialler, listener)`.
pub fn random_connected(n: usize, extra: usize, seed: u64) -> Vec<(usize, usize)> {
    let mut rng = Rng::new(seed);
    let mut edges = Vec::new();
    let mut have = HashSet::new();
    for i in 1..n {
        let parent = rng.below(i as u64) as usize;
        edges.push((i, parent));
        have.insert((parent.min(i), parent.max(i)));
    }
    let max_extra = n * (n - 1) / 2 - (n - 1);
    let mut added = 0;
    while added < extra.min(max_extra) {
        let u = rng.below(n as u64) as usize;
        let v = rng.below(n as u64) as usize;
        if u == v || !have.insert((u.min(v), u.max(v))) {
            continue;
        }
        edges.push((u, v));
        added += 1;
    }
    edges
}

/// A future polled once, synchronously, so that whatever it does up to
/// its first await (for a `MeshSocket` call: queueing its command) has
/// happened when [`start_now`] returns. Lets a test queue several commands
/// back to back on a node's command queue.
pub struct Started<F: Future> {
    fut: Option<Pin<Box<F>>>,
    out: Option<F::Output>,
}

/// Polls `f` once with a no-op waker; see [`Started`].
pub fn start_now<F: Future>(f: F) -> Started<F> {
    let mut fut = Box::pin(f);
    let mut cx = Context::from_waker(Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        Poll::Ready(v) => Started {
            fut: None,
            out: Some(v),
        },
        Poll::Pending => Started {
            fut: Some(fut),
            out: None,
        },
    }
}

impl<F: Future> Started<F> {
    /// Waits for the rest of the future (bounded by [`WAIT`]).
    pub async fn finish(self) -> F::Output {
        match (self.out, self.fut) {
            (Some(v), _) => v,
            (None, Some(f)) => timeout(WAIT, f).await.expect("future hung"),
            (None, None) => unreachable!(),
        }
    }
}

/// What one node received in a round.
#[derive(Debug, Default)]
struct Inbox {
    messages: Vec<Message>,
}

/// One broadcast round among `senders` ⊆ `nodes` (indices into `nodes`):
///
/// 1. every sender broadcasts `[label, "data", i]`;
/// 2. every node collects until it holds every other sender's data message;
/// 3. every sender broadcasts `[label, "marker", i]`, every node collects
///    until it holds every other sender's marker (a late duplicate of a
///    data message on any path would arrive before the marker on the same
///    path, so the markers double as a drain);
/// 4. whatever is still queued is drained.
///
/// Then for each node: every message is one of the round's, sent by
/// another node, a broadcast, with the sender and packets the sender used
/// and the id `send` returned — and each id appears exactly once.
pub async fn broadcast_round(nodes: &[MeshSocket], senders: &[usize], label: &str) {
    let n = nodes.len();
    let mut inboxes: Vec<Inbox> = (0..n).map(|_| Inbox::default()).collect();
    // id -> (origin, kind, packets)
    let mut expected: HashMap<MessageId, (usize, &'static str)> = HashMap::new();

    for phase in ["data", "marker"] {
        let mut ids: HashMap<usize, MessageId> = HashMap::new();
        for &i in senders {
            let id = timeout(WAIT, nodes[i].send(packets![label, phase, i as u64]))
                .await
                .expect("send hung")
                .unwrap_or_else(|e| panic!("{label}: node {i} send {phase}: {e}"));
            ids.insert(i, id);
            assert!(
                expected.insert(id, (i, phase)).is_none(),
                "{label}: two sends returned the same id"
            );
        }
        for (j, node) in nodes.iter().enumerate() {
            let want: HashSet<MessageId> = ids
                .iter()
                .filter(|(&i, _)| i != j)
                .map(|(_, id)| *id)
                .collect();
            let inbox = &mut inboxes[j];
            let already: HashSet<MessageId> = inbox.messages.iter().map(|m| m.id()).collect();
            let mut missing: HashSet<MessageId> = want.difference(&already).copied().collect();
            let what = format!("{label}: node {j} waiting for {phase} messages");
            let got = collect_until(node, WAIT, &what, |ms| {
                if let Some(m) = ms.last() {
                    missing.remove(&m.id());
                }
                missing.is_empty()
            })
            .await;
            inbox.messages.extend(got);
        }
    }
    for (j, node) in nodes.iter().enumerate() {
        inboxes[j].messages.extend(drain_now(node));
    }

    for (j, inbox) in inboxes.iter().enumerate() {
        let mut counts: HashMap<MessageId, usize> = HashMap::new();
        for m in &inbox.messages {
            assert_ne!(
                m.sender(),
                nodes[j].id(),
                "{label}: node {j} received its own broadcast {:?}",
                m
            );
            let Some(&(origin, phase)) = expected.get(&m.id()) else {
                panic!("{label}: node {j} received an unexpected message {m:?}");
            };
            assert_eq!(m.sender(), nodes[origin].id(), "{label}: wrong sender");
            assert_eq!(m.kind(), MessageKind::Broadcast, "{label}: wrong kind");
            let p = m.packets();
            assert_eq!(p.len(), 3, "{label}: wrong packets {m:?}");
            assert_eq!(p[0].as_str(), Some(label));
            assert_eq!(p[1].as_str(), Some(phase));
            assert_eq!(p[2].as_u64(), Some(origin as u64));
            *counts.entry(m.id()).or_default() += 1;
        }
        for (&id, &(origin, phase)) in &expected {
            let c = counts.get(&id).copied().unwrap_or(0);
            let want = usize::from(origin != j);
            assert_eq!(
                c, want,
                "{label}: node {j} saw the {phase} broadcast of node {origin} {c} time(s), expected {want}"
            );
        }
    }
}
