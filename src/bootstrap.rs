//! Finding a network through seeds, as the references' `bootstrap` does.
//!
//! A **seed** is a storing [`ChordSocket`] on the subnet `bootstrap` (see
//! `rs2p seed`, or py2p's `python -m py2p seed`): a directory of networks.
//! Under the key *protocol id of a network* it keeps a map `{node id:
//! [host, port]}` of that network's nodes. [`join_through`] registers a
//! node in it and dials a few of the nodes listed there, so a node that
//! knows only a seed finds its own network. Seeds come only from the
//! caller (the references' built-in seed hosts are never dialled).
//!
//! # Examples
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), rs2p::Error> {
//! use rs2p::chord::ChordSocket;
//! use rs2p::MeshSocket;
//!
//! let seed = ChordSocket::builder()
//!     .subnet(rs2p::bootstrap::SUBNET)
//!     .joined(true)
//!     .bind("127.0.0.1:0")
//!     .await?;
//! let seed_addr = seed.mesh().addr().to_string();
//!
//! let a = MeshSocket::bind("127.0.0.1:0").await?;
//! let b = MeshSocket::bind("127.0.0.1:0").await?;
//! rs2p::bootstrap::join_through(&[seed_addr.as_str()], &a).await?; // first: nobody to dial
//! let dialled = rs2p::bootstrap::join_through(&[seed_addr.as_str()], &b).await?;
//! assert_eq!(dialled, 1); // b found a
//! # for n in [a, b] { n.close().await; } seed.close().await;
//! # Ok(()) }
//! ```

use std::time::Duration;

use bytes::Bytes;

use crate::chord::ChordSocket;
use crate::net::{split_host_port, Error, MeshSocket};
use crate::protocol::{Packet, PeerAddr, PeerId, Rng};

/// The subnet of seeds.
pub const SUBNET: &str = "bootstrap";

/// A node stops dialling listed nodes once it has more peers than this
/// (as py2p's bootstrap).
const ENOUGH_PEERS: usize = 4;

/// How long a seed has to say it stores after we connected.
const SEED_META_WAIT: Duration = Duration::from_secs(3);

/// How long one dial of a listed node may take.
const DIAL_WAIT: Duration = Duration::from_secs(3);

/// How long one read of the directory may take.
const READ_WAIT: Duration = Duration::from_secs(5);

/// Registers `node` with the seeds (`HOST:PORT` each) and dials nodes of
/// its network listed there, while it has at most four peers. Returns how
/// many it connected to.
///
/// A temporary leeching chord client on subnet `bootstrap` (same
/// transport as `node`) connects to every seed it can reach, merges `{node
/// id: [host, port]}` (the node's advertised address) into the entry of
/// the node's protocol id with a delta, reads the merged entry back, and
/// closes.
///
/// # Errors
/// [`Error::BadAddress`] for a seed that is not `HOST:PORT`;
/// [`Error::Timeout`] if no seed could be reached or none said it stores;
/// the read's error ([`Error::Chord`]) if the directory did not answer.
pub async fn join_through(seeds: &[impl AsRef<str>], node: &MeshSocket) -> Result<usize, Error> {
    let seeds: Vec<PeerAddr> = seeds
        .iter()
        .map(|s| split_host_port(s.as_ref()))
        .collect::<Result<_, _>>()?;
    let host = node.addr().ip().to_string();
    let client = ChordSocket::builder()
        .subnet(SUBNET)
        .encryption(node.protocol().encryption())
        .request_timeout(READ_WAIT)
        .mesh(|m| m.reconnect(false).max_outgoing(0))
        .bind(&format!("{host}:0"))
        .await?;
    let result = register(&client, &seeds, node).await;
    client.close().await;
    let entries = result?;
    Ok(dial_listed(node, entries).await)
}

/// Connects the client to the seeds, merges our entry in and reads the
/// whole entry back: the listed nodes but us.
async fn register(
    client: &ChordSocket,
    seeds: &[PeerAddr],
    node: &MeshSocket,
) -> Result<Vec<(PeerId, PeerAddr)>, Error> {
    let mut reached = 0;
    for seed in seeds {
        let dial = client.mesh().connect(&seed.host, seed.port, None);
        match tokio::time::timeout(DIAL_WAIT, dial).await {
            Ok(Ok(_)) => reached += 1,
            Ok(Err(e)) => tracing::info!(%seed, error = %e, "seed unreachable"),
            Err(_) => tracing::info!(%seed, "seed did not answer"),
        }
    }
    if reached == 0 {
        return Err(Error::Timeout(DIAL_WAIT));
    }
    // A seed says it stores (its meta) right after the handshake.
    let deadline = tokio::time::Instant::now() + SEED_META_WAIT;
    while client.storing_peers().await? == 0 {
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::Timeout(SEED_META_WAIT));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let key = Bytes::copy_from_slice(node.protocol().id().as_bytes());
    let me = node.out_addr();
    let entry = Packet::Map(vec![(
        Packet::bin(node.id().bytes().clone()),
        Packet::Array(vec![me.host.as_str().into(), me.port.into()]),
    )]);
    let merged = client.apply_delta(&key, entry).await?;
    let entries = merged
        .as_map()
        .unwrap_or_default()
        .iter()
        .filter_map(|(id, addr)| {
            let id = PeerId::from(std::str::from_utf8(id.as_bytes()?).ok()?);
            Some((id, PeerAddr::from_packet(addr)?))
        })
        .filter(|(id, addr)| id != node.id() && addr != node.out_addr())
        .collect();
    Ok(entries)
}

/// Dials listed nodes in random order while `node` has at most four peers;
/// counts those it is connected to afterwards.
/// Whether `id` is in `node`'s routing table.
async fn is_peer(node: &MeshSocket, id: &PeerId) -> bool {
    node.routing_table()
        .await
        .is_ok_and(|t| t.iter().any(|p| p.id == *id))
}

async fn dial_listed(node: &MeshSocket, mut entries: Vec<(PeerId, PeerAddr)>) -> usize {
    let mut rng = Rng::new(node.now() ^ u64::from(node.addr().port()));
    for i in (1..entries.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        entries.swap(i, j);
    }
    let mut dialled = 0;
    for (id, addr) in entries {
        let peers = node.routing_table().await.map_or(0, |t| t.len());
        if peers > ENOUGH_PEERS {
            break;
        }
        let dial = node.connect(&addr.host, addr.port, Some(id.clone()));
        match tokio::time::timeout(DIAL_WAIT, dial).await {
            // Reached already, through a peer list of a node dialled before.
            Ok(Ok(_) | Err(Error::AlreadyConnected(_))) => dialled += 1,
            // Our dial lost to a connection between the same two nodes
            // (the node dialled us, or we dialled it from a peer list at
            // the same time) and was closed; the other one carries the
            // peer.
            Ok(Err(_)) if is_peer(node, &id).await => dialled += 1,
            Ok(Err(e)) => tracing::info!(%addr, error = %e, "listed node unreachable"),
            Err(_) => tracing::info!(%addr, "listed node did not answer"),
        }
    }
    dialled
}
