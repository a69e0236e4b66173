//! rs2p's side: the 4-node line of `examples/line_api.rs`, through the
//! public API only, as a user writes it. The transport is chosen by the
//! subnet's encryption (`Protocol::new("mesh", "SSL")`), as in the README's
//! "Transports"; SSL and wss run in the default compatibility mode (a
//! fresh self-signed certificate per node).

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rs2p::{packets, MeshSocket, Protocol};

use crate::common::{payload_str, Arrivals, Latency, LatencyResult, Outcome, Seen, Throughput};

/// `MeshBuilder::slow_peer_timeout` for every node, when `--slow-peer-timeout`
/// sets one (rs2p's default otherwise).
pub static SLOW_PEER_TIMEOUT: OnceLock<Duration> = OnceLock::new();

/// Binds four nodes that dial nobody from peer lists (`max_outgoing(0)`),
/// and connects node i to node i−1: the line of `examples/line_api.rs`.
pub async fn start_line(encryption: &str) -> Result<Vec<MeshSocket>, rs2p::Error> {
    let mut nodes = Vec::new();
    for _ in 0..4 {
        let mut builder = MeshSocket::builder()
            .protocol(Protocol::new("mesh", encryption))
            .max_outgoing(0)
            .recv_queue(1 << 22);
        if let Some(&t) = SLOW_PEER_TIMEOUT.get() {
            builder = builder.slow_peer_timeout(t);
        }
        nodes.push(builder.bind("127.0.0.1:0").await?);
    }
    for i in 1..4 {
        let p = nodes[i - 1].addr().port();
        nodes[i].connect("127.0.0.1", p, None).await?;
    }
    Ok(nodes)
}

async fn close(nodes: Vec<MeshSocket>) {
    for node in nodes {
        let _ = tokio::time::timeout(Duration::from_secs(2), node.close()).await;
    }
}

/// Node 0's application sends `n` broadcasts from one task; node 3's reads
/// them with `next_message` and `recv_many`. Time: from the first send
/// until node 3 has all `n`.
pub async fn throughput(
    encryption: &str,
    n: u64,
    stall: Duration,
    limit: Duration,
) -> Result<Throughput, String> {
    let nodes = start_line(encryption).await.map_err(|e| e.to_string())?;
    let arrivals = Arrivals::new(n);
    let reader = nodes[3].clone();
    let counted = arrivals.clone();
    let recv = tokio::spawn(async move {
        // Counts distinct counters, as the libp2p receivers do (rs2p
        // deduplicates by itself; this checks it).
        let mut seen = Seen::new(n);
        let mut fresh = |m: &rs2p::Message| {
            let first = m
                .packets()
                .get(1)
                .and_then(|p| p.as_u64())
                .is_some_and(|i| seen.first(i));
            if !first {
                counted.duplicate();
            }
            u64::from(first)
        };
        while counted.got() < n {
            let Ok(m) = reader.next_message().await else {
                return;
            };
            let mut k = fresh(&m);
            for m in reader.recv_many(4096) {
                k += fresh(&m);
            }
            counted.add(k);
        }
    });
    let failure = Arc::new(Mutex::new(None::<String>));
    let payload = payload_str();
    let sender = nodes[0].clone();
    let failed = failure.clone();
    let start = Instant::now();
    let send = tokio::spawn(async move {
        for i in 0..n {
            if let Err(e) = sender.send(packets![payload.as_str(), i]).await {
                *failed.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some(format!("send {i} failed: {e}"));
                return;
            }
        }
    });
    let outcome = arrivals
        .wait(start, stall, limit, || {
            failure.lock().unwrap_or_else(|e| e.into_inner()).clone()
        })
        .await;
    send.abort();
    recv.abort();
    let mut outcome = outcome;
    if let Outcome::Stalled { why, .. } = &mut outcome {
        // What each node saw, as examples/line_api.rs prints it.
        for (i, node) in nodes.iter().enumerate() {
            if let Ok(Ok(s)) = tokio::time::timeout(Duration::from_secs(2), node.snapshot()).await {
                why.push_str(&format!(
                    "; node {i}: peers {} conns {} slow_peers_dropped {} queue_dropped {} errors {:?}",
                    s.peers.len(),
                    s.connections,
                    s.slow_peers_dropped,
                    s.queue_dropped,
                    s.errors
                ));
            }
        }
    }
    close(nodes).await;
    Ok(Throughput {
        n,
        outcome,
        delivered: arrivals.got(),
        duplicates: arrivals.duplicates(),
        notes: Vec::new(),
    })
}

/// One broadcast in flight: node 0 sends the next only when node 3's
/// application has the previous one.
pub async fn latency(
    encryption: &str,
    total: usize,
    warmup: usize,
    stall: Duration,
) -> Result<LatencyResult, String> {
    let nodes = start_line(encryption).await.map_err(|e| e.to_string())?;
    let (lat, mut next) = Latency::new();
    let reader = nodes[3].clone();
    let arrived = lat.clone();
    let recv = tokio::spawn(async move {
        while reader.next_message().await.is_ok() {
            arrived.arrived();
        }
    });
    let payload = payload_str();
    let sender = nodes[0].clone();
    let marks = lat.clone();
    let send = tokio::spawn(async move {
        for i in 0..total as u64 {
            marks.mark();
            if sender.send(packets![payload.as_str(), i]).await.is_err() {
                return;
            }
            if next.recv().await.is_none() {
                return;
            }
        }
    });
    let result = lat.wait(total, warmup, stall).await;
    send.abort();
    recv.abort();
    close(nodes).await;
    Ok(result)
}
