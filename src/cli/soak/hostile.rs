//! The soak's misbehaving peers:
//!
//! * **garbage**: raw TCP connections to a random node, every 1.5 s, each
//!   sending one kind of junk in turn (HTTP text, random bytes behind a
//!   plausible length prefix, a 4 GiB length prefix, a truncated frame
//!   then silence, a valid broadcast before any handshake, a burst of
//!   noise), then watched until the node closes them;
//! * **future**: every 5 s, a peer completes a valid handshake with a
//!   node, then sends it broadcasts stamped an hour ahead (far beyond the
//!   allowed clock skew), one every 5 ms, until the node expels it for
//!   misbehaving;
//! * **resends**: a member of the mesh (a normal node otherwise) that asks
//!   each of its peers to re-send its last message, every 10 ms per peer.
//!   It receives soak broadcasts like everyone: its copies count for
//!   duplicates (and re-sent messages must not show up twice), not for
//!   loss.
//!
//! Nothing here may cost an honest node a broadcast, make one deliver a
//! message twice, or leave memory or file descriptors growing.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rs2p::protocol::{
    CodecLimits, IdWire, InternalMessage, MainFlag, PeerId, Protocol, Rng, SubFlag,
};
use rs2p::{packets, MeshSocket, Packet};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

/// How long a hostile connection is watched for the node to close it.
const WATCH: Duration = Duration::from_secs(60);
/// Future-stamped broadcasts one hostile peer sends at most (the node
/// tolerates 100 offences per connection, then closes it).
const FUTURE_FRAMES: usize = 150;

/// What the misbehaving peers did so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostileCounts {
    /// Garbage connections opened.
    pub garbage_conns: u64,
    /// … that the node closed.
    pub garbage_closed: u64,
    /// … still being watched.
    pub garbage_open: u64,
    /// … that the node kept open past the watch (60 s).
    pub garbage_kept: u64,
    /// Future-stamping peers that connected.
    pub future_peers: u64,
    /// Future-stamped broadcasts they sent.
    pub future_frames: u64,
    /// … peers the node expelled.
    pub future_expelled: u64,
    /// … peers that sent all their frames and were still connected 10 s
    /// later.
    pub future_kept: u64,
    /// Resend requests the flooder made.
    pub resend_requests: u64,
    /// Times the flooder's requests failed (its peer was gone).
    pub resend_failures: u64,
    /// Connects that failed (the chosen node was leaving).
    pub connect_failures: u64,
}

impl HostileCounts {
    pub fn to_json(self) -> Value {
        json!({
            "garbage_conns": self.garbage_conns, "garbage_closed": self.garbage_closed,
            "garbage_open": self.garbage_open, "garbage_kept": self.garbage_kept,
            "future_peers": self.future_peers, "future_frames": self.future_frames,
            "future_expelled": self.future_expelled, "future_kept": self.future_kept,
            "resend_requests": self.resend_requests, "resend_failures": self.resend_failures,
            "connect_failures": self.connect_failures,
        })
    }

    pub fn describe(self) -> String {
        format!(
            "{} garbage connections ({} closed by the node, {} still watched, {} kept open past \
             {} s); {} peers sent {} broadcasts stamped an hour ahead ({} expelled, {} not); \
             {} resend requests from a member ({} failed)",
            self.garbage_conns,
            self.garbage_closed,
            self.garbage_open,
            self.garbage_kept,
            WATCH.as_secs(),
            self.future_peers,
            self.future_frames,
            self.future_expelled,
            self.future_kept,
            self.resend_requests,
            self.resend_failures
        )
    }
}

pub type Counts = Arc<Mutex<HostileCounts>>;

fn bump(counts: &Counts, f: impl FnOnce(&mut HostileCounts)) {
    f(&mut counts.lock().unwrap_or_else(|e| e.into_inner()));
}

/// Reads (and drops) until the peer closes.
async fn until_closed(s: &mut TcpStream) {
    let mut buf = vec![0u8; 16 * 1024];
    while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn frame(msg: &InternalMessage) -> Vec<u8> {
    msg.encode_frame(None, &CodecLimits::default())
        .map(|b| b.to_vec())
        .unwrap_or_default()
}

/// A fresh id for a hostile peer.
fn hostile_id(rng: &mut Rng) -> PeerId {
    const ALPHABET: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    let bytes: Vec<u8> = (0..64)
        .map(|_| ALPHABET[rng.below(ALPHABET.len() as u64) as usize])
        .collect();
    PeerId::new(bytes, IdWire::Bin)
}

/// A valid handshake from `id` on `protocol`, offering no compression.
fn handshake(id: &PeerId, protocol: &Protocol) -> Vec<u8> {
    frame(&InternalMessage::new(
        MainFlag::Whisper,
        id.clone(),
        unix_now(),
        vec![
            SubFlag::Handshake.as_u8().into(),
            Packet::bin(id.bytes().clone()),
            Packet::bin(protocol.id().as_bytes().to_vec()),
            packets!["127.0.0.1", 9].into(),
            Packet::Array(Vec::new()),
        ],
    ))
}

/// The `k`-th kind of garbage.
fn garbage(k: u64, rng: &mut Rng) -> Vec<u8> {
    let mut random = |n: usize| -> Vec<u8> { (0..n).map(|_| rng.next_u64() as u8).collect() };
    match k % 6 {
        0 => b"GET / HTTP/1.1\r\nHost: rs2p\r\n\r\n".to_vec(),
        1 => {
            let mut v = vec![0, 0, 0, 200];
            v.extend(random(200));
            v
        }
        2 => vec![0xff, 0xff, 0xff, 0xff, 1, 2, 3],
        // A frame announcing 1,000 bytes, then silence.
        3 => vec![0, 0, 3, 232, 1, 2, 3, 4, 5],
        // A well-formed broadcast from a stranger that never shook hands.
        4 => frame(&InternalMessage::new(
            MainFlag::Broadcast,
            PeerId::new(&b"stranger"[..], IdWire::Bin),
            unix_now(),
            packets![SubFlag::Broadcast.as_u8(), "no handshake"],
        )),
        _ => random(8 * 1024),
    }
}

/// Opens a garbage connection to one of `targets()` every 1.5 s.
pub async fn garbage_loop(
    targets: impl Fn(&mut Rng) -> Option<SocketAddr>,
    counts: Counts,
    stop: CancellationToken,
    mut rng: Rng,
) {
    let mut k = 0u64;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(1500)) => {}
        }
        let Some(addr) = targets(&mut rng) else {
            continue;
        };
        let junk = garbage(k, &mut rng);
        k += 1;
        let counts = counts.clone();
        tokio::spawn(async move {
            let Ok(Ok(mut s)) = timeout(Duration::from_secs(2), TcpStream::connect(addr)).await
            else {
                bump(&counts, |c| c.connect_failures += 1);
                return;
            };
            bump(&counts, |c| {
                c.garbage_conns += 1;
                c.garbage_open += 1;
            });
            let _ = s.write_all(&junk).await;
            let closed = timeout(WATCH, until_closed(&mut s)).await.is_ok();
            bump(&counts, |c| {
                c.garbage_open -= 1;
                if closed {
                    c.garbage_closed += 1;
                } else {
                    c.garbage_kept += 1;
                }
            });
        });
    }
}

/// Every 5 s, a peer that shakes hands with one of `targets()` (on
/// `protocol`) and then sends broadcasts stamped an hour ahead.
pub async fn future_loop(
    protocol: Protocol,
    targets: impl Fn(&mut Rng) -> Option<SocketAddr>,
    counts: Counts,
    stop: CancellationToken,
    mut rng: Rng,
) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
        let Some(addr) = targets(&mut rng) else {
            continue;
        };
        let id = hostile_id(&mut rng);
        let counts = counts.clone();
        let stop = stop.clone();
        let hello = handshake(&id, &protocol);
        tokio::spawn(async move {
            let Ok(Ok(s)) = timeout(Duration::from_secs(2), TcpStream::connect(addr)).await else {
                bump(&counts, |c| c.connect_failures += 1);
                return;
            };
            let (mut rd, mut wr) = s.into_split();
            if wr.write_all(&hello).await.is_err() {
                bump(&counts, |c| c.connect_failures += 1);
                return;
            }
            bump(&counts, |c| c.future_peers += 1);
            // Read everything the node sends; the read ends when it
            // closes the connection.
            let mut closed = tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                while matches!(rd.read(&mut buf).await, Ok(n) if n > 0) {}
            });
            let ahead = unix_now() + 3600;
            for i in 0..FUTURE_FRAMES {
                if closed.is_finished() || stop.is_cancelled() {
                    break;
                }
                let f = frame(&InternalMessage::new(
                    MainFlag::Broadcast,
                    id.clone(),
                    ahead,
                    packets![SubFlag::Broadcast.as_u8(), "from the future", i as u64],
                ));
                if wr.write_all(&f).await.is_err() {
                    break;
                }
                bump(&counts, |c| c.future_frames += 1);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let expelled = timeout(Duration::from_secs(10), &mut closed).await.is_ok();
            closed.abort();
            bump(&counts, |c| {
                if expelled {
                    c.future_expelled += 1;
                } else if !stop.is_cancelled() {
                    c.future_kept += 1;
                }
            });
        });
    }
}

/// The resend flooder: asks every peer of `node` to re-send its last
/// message, every 10 ms per peer.
pub async fn resend_loop(node: MeshSocket, counts: Counts, stop: CancellationToken) {
    let mut peers: Vec<PeerId> = Vec::new();
    let mut refresh = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(10)) => {}
        }
        if tokio::time::Instant::now() >= refresh {
            if let Ok(t) = node.routing_table().await {
                peers = t.into_iter().map(|p| p.id).collect();
            }
            refresh = tokio::time::Instant::now() + Duration::from_secs(1);
        }
        for p in &peers {
            let ok = node.request_resend(p).await.is_ok();
            bump(&counts, |c| {
                c.resend_requests += 1;
                if !ok {
                    c.resend_failures += 1;
                }
            });
        }
    }
}
