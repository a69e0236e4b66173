//! The memory benchmark: resident memory per node and per idle connection,
//! measured on many rs2p nodes in this process, and whether one broadcast
//! reaches them all.
//!
//! Two shapes: a **line** (node `i` dials node `i − 1`, `max_outgoing` 0)
//! isolates what an idle connection costs, because peer lists there hold
//! at most one entry; a **mesh** (node `i` dials a random earlier node,
//! peer lists dial up to `max_outgoing` 4) shows what a node costs in a
//! real mesh, where every node also learns hundreds of addresses from
//! peer lists — that growth is counted with the connections.
//!
//! Resident memory is read from `/proc/self/status` (`VmRSS`), so this
//! runs on Linux only. Kernel socket buffers are not part of a process's
//! resident memory and are not counted.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rs2p::protocol::{Packet, Rng};
use rs2p::{Error, MeshSocket};
use serde_json::{json, Value};

use super::mesh::{settle, start_nodes, Shape};
use super::workload::payload;

/// What the memory benchmark measured.
#[derive(Clone, Debug, PartialEq)]
pub struct MemoryReport {
    /// The topology (`"line"` or `"mesh"`).
    pub shape: &'static str,
    /// Nodes started.
    pub nodes: usize,
    /// Open connections once the mesh settled (each counted once; both of
    /// its ends live in this process).
    pub links: usize,
    /// The open-files limit (soft, hard) the run had, after raising it.
    pub nofile: (u64, u64),
    /// Resident memory before any node, KiB.
    pub rss_base_kib: u64,
    /// With every node started, none connected, KiB.
    pub rss_nodes_kib: u64,
    /// With the mesh formed and idle, KiB.
    pub rss_connected_kib: u64,
    /// Seconds to connect and settle the mesh.
    pub connect_s: f64,
    /// Explicit connects that failed and were tried again (after 200 ms,
    /// up to 3 attempts, as an application would).
    pub connect_retries: usize,
    /// Explicit connects that failed every attempt (the node may still
    /// have joined through other connections; the broadcast shows it).
    pub connect_failures: usize,
    /// Incoming connections refused by a node's limits (`max_awaiting`,
    /// `max_connections`), over all nodes.
    pub refused: u64,
    /// Addresses the nodes' address books hold, on average.
    pub addresses_per_node: f64,
    /// Nodes (other than the sender) that received the broadcast.
    pub reached: usize,
    /// Milliseconds until the last of them had it.
    pub broadcast_ms: f64,
}

impl MemoryReport {
    /// KiB per node, unconnected.
    pub fn per_node_kib(&self) -> f64 {
        self.rss_nodes_kib.saturating_sub(self.rss_base_kib) as f64 / self.nodes.max(1) as f64
    }

    /// KiB per connection end (what one node pays for one idle peer).
    pub fn per_end_kib(&self) -> f64 {
        self.per_link_kib() / 2.0
    }

    /// KiB per connection with both its ends.
    pub fn per_link_kib(&self) -> f64 {
        self.rss_connected_kib.saturating_sub(self.rss_nodes_kib) as f64 / self.links.max(1) as f64
    }

    /// The report as JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "shape": self.shape, "nodes": self.nodes, "links": self.links,
            "connect_retries": self.connect_retries, "connect_failures": self.connect_failures,
            "refused": self.refused,
            "addresses_per_node": self.addresses_per_node, "nofile": [self.nofile.0, self.nofile.1],
            "rss_base_kib": self.rss_base_kib, "rss_nodes_kib": self.rss_nodes_kib,
            "rss_connected_kib": self.rss_connected_kib,
            "per_node_kib": self.per_node_kib(), "per_connection_end_kib": self.per_end_kib(),
            "per_connection_both_ends_kib": self.per_link_kib(),
            "connect_s": self.connect_s, "reached": self.reached,
            "broadcast_ms": self.broadcast_ms,
        })
    }
}

/// Resident memory of this process, KiB (0 where `/proc` is missing).
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The open-files limit of this process, (soft, hard).
pub fn nofile_limit() -> Option<(u64, u64)> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut nums = line.split_whitespace().filter_map(|w| {
        w.parse::<u64>()
            .ok()
            .or((w == "unlimited").then_some(u64::MAX))
    });
    Some((nums.next()?, nums.next()?))
}

/// Raises the soft open-files limit towards `want` (up to the hard limit)
/// with `prlimit(1)`; returns the limit in force afterwards.
pub fn raise_nofile(want: u64) -> Option<(u64, u64)> {
    let (soft, hard) = nofile_limit()?;
    if soft < want {
        let target = want.min(hard);
        let _ = std::process::Command::new("prlimit")
            .arg("--pid")
            .arg(std::process::id().to_string())
            .arg(format!("--nofile={target}:{hard}"))
            .status();
    }
    nofile_limit()
}

/// Starts `nodes` nodes, connects them as a line or a mesh (see the module
/// docs), waits until they are idle, measures, and broadcasts once from
/// node 0.
///
/// # Errors
/// If a node cannot bind (for instance: too few file descriptors).
pub async fn run_memory(nodes: usize, shape: Shape, seed: u64) -> Result<MemoryReport, Error> {
    let n = nodes.max(2);
    // A listener per node, two ends per connection, about 4 outgoing each.
    let nofile = raise_nofile((n as u64) * 12 + 256).unwrap_or((0, 0));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss_base_kib = rss_kib();
    let written = Arc::new(AtomicU64::new(0));
    // Started unconnected (one-node "topologies"), connected below.
    let mut all: Vec<MeshSocket> = Vec::with_capacity(n);
    for _ in 0..n {
        all.extend(start_nodes(1, shape, &[], 4, written.clone()).await?);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_nodes_kib = rss_kib();
    let started = Instant::now();
    let mut rng = Rng::new(seed);
    let (mut connect_retries, mut connect_failures) = (0, 0);
    for i in 1..n {
        let j = match shape {
            Shape::Line => i - 1,
            Shape::Mesh => rng.below(i as u64) as usize,
        };
        let port = all[j].addr().port();
        for attempt in 1..=3 {
            if all[i].connect("127.0.0.1", port, None).await.is_ok() {
                break;
            }
            if attempt == 3 {
                connect_failures += 1;
            } else {
                connect_retries += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    settle(&all, Duration::from_secs(2), Duration::from_secs(120)).await?;
    let connect_s = started.elapsed().as_secs_f64();
    let (mut ends, mut addresses, mut refused) = (0, 0, 0);
    for node in &all {
        let snap = node.snapshot().await?;
        ends += snap.connections;
        addresses += snap.known_addresses;
        refused += snap.refused;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_connected_kib = rss_kib();

    let sent = Instant::now();
    let waits: Vec<_> = all[1..]
        .iter()
        .cloned()
        .map(|node| {
            tokio::spawn(async move {
                tokio::time::timeout(Duration::from_secs(10), node.next_message())
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .map(|_| Instant::now())
            })
        })
        .collect();
    all[0].send(vec![Packet::bin(payload(0, 100))]).await?;
    let mut reached = 0;
    let mut last = sent;
    for w in waits {
        if let Ok(Some(at)) = w.await {
            reached += 1;
            last = last.max(at);
        }
    }
    let broadcast_ms = (last - sent).as_secs_f64() * 1000.0;
    for node in &all {
        node.close().await;
    }
    Ok(MemoryReport {
        shape: match shape {
            Shape::Line => "line",
            Shape::Mesh => "mesh",
        },
        nodes: n,
        links: ends / 2,
        nofile,
        rss_base_kib,
        rss_nodes_kib,
        rss_connected_kib,
        connect_s,
        connect_retries,
        connect_failures,
        refused,
        addresses_per_node: addresses as f64 / n as f64,
        reached,
        broadcast_ms,
    })
}
