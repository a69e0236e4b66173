//! The mesh benchmark on real rs2p nodes in one process: N [`MeshSocket`]s
//! on loopback TCP, node 0 broadcasts, every other node receives through
//! its `recv` queue; throughput, latency, bytes on the wire, loss.
//!
//! Node 0's application sends from several tasks at once (the public
//! `send` waits for the node to accept each message), and never has more
//! than `window` broadcasts in flight (sent, not yet received by every
//! node), so no queue on the way can overflow: a loss is a real loss.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rs2p::protocol::{CodecLimits, Compression, InternalMessage, MainFlag, Packet, SubFlag};
use rs2p::{Error, MeshSocket};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::wire::CountingTcp;
use super::workload::{combine, now_ns, payload, RunResult, Tracker};

/// How the benchmark nodes are connected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// Node `i` connects to node `i − 1` only (`max_outgoing` 0): every
    /// broadcast crosses every hop once.
    Line,
    /// Node `i` connects to node `i − 1`; peer lists then dial up to
    /// `max_outgoing` each, as in a real mesh.
    Mesh,
}

/// One benchmark run.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    /// Nodes.
    pub nodes: usize,
    /// Topology.
    pub shape: Shape,
    /// Broadcasts sent by node 0.
    pub broadcasts: u64,
    /// Payload bytes per broadcast (at least 16).
    pub payload_len: usize,
    /// Most broadcasts in flight; 1 measures unloaded latency.
    pub window: u64,
    /// Concurrent sending tasks at node 0.
    pub senders: usize,
    /// Compression offered by every node (empty: uncompressed).
    pub compression: Vec<Compression>,
    /// `max_outgoing` of mesh nodes.
    pub max_outgoing: usize,
    /// Give up when no receiver makes progress for this long.
    pub stall: Duration,
}

impl Default for LoadConfig {
    fn default() -> Self {
        LoadConfig {
            nodes: 4,
            shape: Shape::Line,
            broadcasts: 200_000,
            payload_len: 100,
            window: 8192,
            senders: 16,
            compression: Vec::new(),
            max_outgoing: 4,
            stall: Duration::from_secs(10),
        }
    }
}

impl LoadConfig {
    /// The window, reduced so that at most about 2 MiB of frames are in
    /// flight (well inside every node's send buffer).
    pub fn effective_window(&self) -> u64 {
        let frame = frame_len(self.payload_len) as u64;
        self.window.min((2 << 20) / frame.max(1)).max(1)
    }
}

/// Bytes of one uncompressed broadcast frame with a payload of `len`
/// bytes from a node with a typical (66-character) id.
pub fn frame_len(len: usize) -> usize {
    let msg = InternalMessage::new(
        MainFlag::Broadcast,
        rs2p::PeerId::from("x".repeat(66)),
        1_700_000_000,
        vec![
            SubFlag::Broadcast.as_u8().into(),
            Packet::bin(payload(0, len)),
        ],
    );
    msg.encode_frame(None, &CodecLimits::default())
        .map_or(0, |f| f.len())
}

/// Starts `n` nodes on loopback, each counting its written bytes into
/// `written`, and connects them in `shape`.
///
/// # Errors
/// If a node cannot bind or connect.
pub async fn start_nodes(
    n: usize,
    shape: Shape,
    compression: &[Compression],
    max_outgoing: usize,
    written: Arc<AtomicU64>,
) -> Result<Vec<MeshSocket>, Error> {
    let transport = Arc::new(CountingTcp::new(written));
    let mut nodes = Vec::with_capacity(n);
    for _ in 0..n {
        let node = MeshSocket::builder()
            .transport(transport.clone())
            .compression(compression.to_vec())
            .max_outgoing(match shape {
                Shape::Line => 0,
                Shape::Mesh => max_outgoing,
            })
            .recv_queue(1 << 20)
            .bind("127.0.0.1:0")
            .await?;
        nodes.push(node);
    }
    for i in 1..n {
        let port = nodes[i - 1].addr().port();
        nodes[i].connect("127.0.0.1", port, None).await?;
    }
    if shape == Shape::Mesh && n > 1 {
        settle(&nodes, Duration::from_millis(500), Duration::from_secs(20)).await?;
    }
    Ok(nodes)
}

/// Waits until no routing table has changed for `quiet` (at most `limit`).
///
/// # Errors
/// If a node has stopped.
pub async fn settle(nodes: &[MeshSocket], quiet: Duration, limit: Duration) -> Result<(), Error> {
    let started = Instant::now();
    let mut last: Vec<usize> = Vec::new();
    let mut since = Instant::now();
    while started.elapsed() < limit {
        let mut sizes = Vec::with_capacity(nodes.len());
        for node in nodes {
            sizes.push(node.snapshot().await?.peers.len());
        }
        if sizes != last {
            last = sizes;
            since = Instant::now();
        } else if since.elapsed() >= quiet {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

struct Progress {
    got: Vec<AtomicU64>,
    notify: Notify,
}

impl Progress {
    fn min(&self) -> u64 {
        self.got
            .iter()
            .map(|g| g.load(Ordering::Acquire))
            .min()
            .unwrap_or(0)
    }

    fn total(&self) -> u64 {
        self.got.iter().map(|g| g.load(Ordering::Relaxed)).sum()
    }
}

async fn receive(
    node: MeshSocket,
    expected: u64,
    index: usize,
    progress: Arc<Progress>,
    stop: CancellationToken,
) -> (Tracker, Instant) {
    let mut tracker = Tracker::new(expected);
    let mut done_at = Instant::now();
    while !tracker.complete() {
        let first = tokio::select! {
            m = node.next_message() => m,
            _ = stop.cancelled() => break,
        };
        let Ok(first) = first else { break };
        let now = now_ns();
        let mut record = |m: &rs2p::Message| {
            if let Some(p) = m.packets().first().and_then(Packet::as_bytes) {
                tracker.record(p, now);
            }
        };
        record(&first);
        for m in node.recv_many(4096) {
            record(&m);
        }
        done_at = Instant::now();
        progress.got[index].store(tracker.got, Ordering::Release);
        progress.notify.notify_waiters();
    }
    (tracker, done_at)
}

/// Runs the workload on rs2p nodes in this process.
///
/// # Errors
/// If a node cannot start or connect.
pub async fn run_rs2p(cfg: &LoadConfig) -> Result<RunResult, Error> {
    let n = cfg.nodes.max(2);
    let written = Arc::new(AtomicU64::new(0));
    let nodes = start_nodes(
        n,
        cfg.shape,
        &cfg.compression,
        cfg.max_outgoing,
        written.clone(),
    )
    .await?;
    let result = drive(&nodes, cfg, &written).await;
    for node in &nodes {
        node.close().await;
    }
    result
}

/// Runs the workload on nodes already started (node 0 sends).
///
/// # Errors
/// If node 0 stops.
pub async fn drive(
    nodes: &[MeshSocket],
    cfg: &LoadConfig,
    written: &AtomicU64,
) -> Result<RunResult, Error> {
    let n = nodes.len();
    let total = cfg.broadcasts;
    let window = cfg.effective_window();
    let progress = Arc::new(Progress {
        got: (1..n).map(|_| AtomicU64::new(0)).collect(),
        notify: Notify::new(),
    });
    let stop = CancellationToken::new();
    let receivers: Vec<_> = (1..n)
        .map(|i| {
            tokio::spawn(receive(
                nodes[i].clone(),
                total,
                i - 1,
                progress.clone(),
                stop.clone(),
            ))
        })
        .collect();
    let bytes_before = written.load(Ordering::Relaxed);
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let senders: Vec<_> = (0..cfg.senders.max(1))
        .map(|_| {
            let (node, next, progress) = (nodes[0].clone(), next.clone(), progress.clone());
            let len = cfg.payload_len;
            tokio::spawn(async move {
                loop {
                    let seq = next.fetch_add(1, Ordering::Relaxed);
                    if seq >= total {
                        return Ok::<(), Error>(());
                    }
                    loop {
                        let notified = progress.notify.notified();
                        tokio::pin!(notified);
                        notified.as_mut().enable();
                        if seq < progress.min() + window {
                            break;
                        }
                        notified.await;
                    }
                    node.send(vec![Packet::bin(payload(seq, len))]).await?;
                }
            })
        })
        .collect();
    // Watch for a stall while the receivers work.
    let mut last = (0, Instant::now());
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if receivers.iter().all(|r| r.is_finished()) {
            break;
        }
        let t = progress.total();
        if t != last.0 {
            last = (t, Instant::now());
        } else if last.1.elapsed() >= cfg.stall {
            stop.cancel();
            break;
        }
    }
    for s in senders {
        s.abort();
    }
    let mut trackers = Vec::with_capacity(n - 1);
    let mut end = started;
    for r in receivers {
        if let Ok((t, done_at)) = r.await {
            end = end.max(done_at);
            trackers.push(t);
        }
    }
    let system = match cfg.shape {
        Shape::Line => "rs2p",
        Shape::Mesh => "rs2p mesh",
    };
    let mut result = combine(
        system,
        n,
        total,
        cfg.payload_len,
        frame_len(cfg.payload_len),
        end - started,
        &trackers,
    );
    result.wire_bytes = Some(written.load(Ordering::Relaxed) - bytes_before);
    Ok(result)
}
