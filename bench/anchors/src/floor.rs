//! The floor: the least work any protocol could do on this line. Four
//! nodes in one tokio runtime, node i connected to node i−1 over loopback
//! TCP; node 0 writes length-prefixed frames, each relay reads into a
//! buffer, splits whole frames by their 4-byte prefix and writes their
//! bytes on through a buffered writer (flushing when its input runs dry),
//! without decoding them; node 3 counts frames. The frames are rs2p's own
//! bytes for `packets![<100-byte str>, i]` (no checksum is checked, no
//! msgpack read, nothing deduplicated).

use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use rs2p::protocol::{CodecLimits, InternalMessage, MainFlag, SubFlag};
use rs2p::{packets, MeshSocket, Packet};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};

use crate::common::{payload_str, Arrivals, Latency, LatencyResult, Throughput};

const PREFIX: usize = 4;

/// rs2p's frame for one broadcast of `packets![<100-byte str>, counter]`
/// from a real node's id (the counter as large as the run's last one).
pub async fn rs2p_frame(counter: u64) -> Result<Bytes, String> {
    let node = MeshSocket::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let id = node.id().clone();
    node.close().await;
    let payload = payload_str();
    let mut packets: Vec<Packet> = vec![SubFlag::Broadcast.as_u8().into()];
    packets.extend(packets![payload.as_str(), counter]);
    let time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    InternalMessage::new(MainFlag::Broadcast, id, time, packets)
        .encode_frame(None, &CodecLimits::default())
        .map_err(|e| e.to_string())
}

/// Splits whole frames off `buf`; calls `each` with every frame (prefix
/// included); returns how many bytes were used.
fn split(buf: &[u8], mut each: impl FnMut(&[u8])) -> usize {
    let mut at = 0;
    while let Some(prefix) = buf.get(at..at + PREFIX) {
        let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
        let Some(frame) = buf.get(at..at + PREFIX + len) else {
            break;
        };
        each(frame);
        at += PREFIX + len;
    }
    at
}

fn reserve(buf: &mut BytesMut) {
    if buf.capacity() - buf.len() < 16 * 1024 {
        buf.reserve(64 * 1024);
    }
}

async fn relay(mut up: TcpStream, down: TcpStream) -> io::Result<()> {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut out = BufWriter::with_capacity(64 * 1024, down);
    loop {
        reserve(&mut buf);
        if up.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
        // Whole frames are contiguous: their bytes go on in one write.
        let used = split(&buf, |_| {});
        out.write_all(&buf[..used]).await?;
        buf.advance(used);
        out.flush().await?;
    }
}

async fn receive(
    mut up: TcpStream,
    arrivals: Arc<Arrivals>,
    latency: Option<Arc<Latency>>,
) -> io::Result<()> {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    loop {
        reserve(&mut buf);
        if up.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
        let mut frames = 0u64;
        let used = split(&buf, |_| frames += 1);
        buf.advance(used);
        if frames > 0 {
            if let Some(lat) = &latency {
                for _ in 0..frames {
                    lat.arrived();
                }
            }
            arrivals.add(frames);
        }
    }
}

/// The line's links: node 0's writer and node 3's reader, relays running.
async fn start() -> io::Result<(TcpStream, TcpStream, Vec<tokio::task::JoinHandle<()>>)> {
    let mut downs = Vec::new();
    let mut ups = Vec::new();
    for _ in 0..3 {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let down = TcpStream::connect(listener.local_addr()?).await?;
        let (up, _) = listener.accept().await?;
        down.set_nodelay(true)?;
        up.set_nodelay(true)?;
        downs.push(down);
        ups.push(up);
    }
    // downs[i]: node i's link to node i+1; ups[i]: node i+1's end of it.
    let mut downs = downs.into_iter();
    let mut ups = ups.into_iter();
    let first = downs.next().ok_or_else(|| io::Error::other("no link"))?;
    let mut relays = Vec::new();
    for _ in 0..2 {
        let (Some(up), Some(down)) = (ups.next(), downs.next()) else {
            return Err(io::Error::other("no link"));
        };
        relays.push(tokio::spawn(async move {
            let _ = relay(up, down).await;
        }));
    }
    let last = ups.next().ok_or_else(|| io::Error::other("no link"))?;
    Ok((first, last, relays))
}

pub async fn throughput(
    frame: Bytes,
    n: u64,
    stall: Duration,
    limit: Duration,
) -> Result<Throughput, String> {
    let (first, last, relays) = start().await.map_err(|e| e.to_string())?;
    let arrivals = Arrivals::new(n);
    let recv = tokio::spawn(receive(last, arrivals.clone(), None));
    let failure = Arc::new(Mutex::new(None::<String>));
    let failed = failure.clone();
    let start = Instant::now();
    let send = tokio::spawn(async move {
        let mut out = BufWriter::with_capacity(64 * 1024, first);
        let mut result = Ok(());
        for _ in 0..n {
            result = out.write_all(&frame).await;
            if result.is_err() {
                break;
            }
        }
        if let Err(e) = result.and(out.flush().await) {
            *failed.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
        }
        out
    });
    let outcome = arrivals
        .wait(start, stall, limit, || {
            failure.lock().unwrap_or_else(|e| e.into_inner()).clone()
        })
        .await;
    send.abort();
    recv.abort();
    for r in relays {
        r.abort();
    }
    Ok(Throughput {
        n,
        outcome,
        delivered: arrivals.got(),
        duplicates: 0,
        notes: Vec::new(),
    })
}

pub async fn latency(
    frame: Bytes,
    total: usize,
    warmup: usize,
    stall: Duration,
) -> Result<LatencyResult, String> {
    let (mut first, last, relays) = start().await.map_err(|e| e.to_string())?;
    let (lat, mut next) = Latency::new();
    let recv = tokio::spawn(receive(last, Arrivals::new(u64::MAX), Some(lat.clone())));
    let marks = lat.clone();
    let send = tokio::spawn(async move {
        for _ in 0..total {
            marks.mark();
            if first.write_all(&frame).await.is_err() || next.recv().await.is_none() {
                return;
            }
        }
    });
    let result = lat.wait(total, warmup, stall).await;
    send.abort();
    recv.abort();
    for r in relays {
        r.abort();
    }
    Ok(result)
}
