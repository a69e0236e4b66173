//! The floor: the least work a relay of length-prefixed frames can do on
//! the same loopback line (`0 → 1 → … → n−1`). Each relay reads into a
//! buffer, splits whole frames by their length prefix and writes their
//! bytes on through a buffered writer, flushing when its input runs dry. No
//! parsing, no checksum, no deduplication, no delivery queue. The last
//! node reads the sequence number and send time from each frame's first
//! bytes, as the rs2p receivers do.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use super::mesh::{frame_len, LoadConfig};
use super::workload::{combine, now_ns, stamp, RunResult, Tracker};

const PREFIX: usize = 4;

/// Copies whole frames from `up` to `down` until `up` ends.
async fn relay(mut up: TcpStream, down: TcpStream) -> io::Result<()> {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut out = BufWriter::with_capacity(64 * 1024, down);
    loop {
        if buf.capacity() - buf.len() < 16 * 1024 {
            buf.reserve(64 * 1024);
        }
        if up.read_buf(&mut buf).await? == 0 {
            break;
        }
        let mut at = 0;
        while let Some(prefix) = buf.get(at..at + PREFIX) {
            let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
            let Some(frame) = buf.get(at..at + PREFIX + len) else {
                break;
            };
            out.write_all(frame).await?;
            at += PREFIX + len;
        }
        buf.advance(at);
        out.flush().await?;
    }
    out.shutdown().await
}

async fn receive(
    mut up: TcpStream,
    expected: u64,
    got: Arc<AtomicU64>,
    notify: Arc<Notify>,
) -> io::Result<(Tracker, Instant)> {
    let mut tracker = Tracker::new(expected);
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut done_at = Instant::now();
    while !tracker.complete() {
        if buf.capacity() - buf.len() < 16 * 1024 {
            buf.reserve(64 * 1024);
        }
        if up.read_buf(&mut buf).await? == 0 {
            break;
        }
        let now = now_ns();
        let mut at = 0;
        while let Some(prefix) = buf.get(at..at + PREFIX) {
            let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
            let Some(body) = buf.get(at + PREFIX..at + PREFIX + len) else {
                break;
            };
            tracker.record(body, now);
            at += PREFIX + len;
        }
        buf.advance(at);
        done_at = Instant::now();
        got.store(tracker.got, Ordering::Release);
        notify.notify_waiters();
    }
    Ok((tracker, done_at))
}

/// Runs the line workload of `cfg` (its shape is ignored: always a line)
/// through floor relays, with frames as long as rs2p's.
///
/// # Errors
/// On a socket error.
pub async fn run_floor(cfg: &LoadConfig) -> io::Result<RunResult> {
    let n = cfg.nodes.max(2);
    let total = cfg.broadcasts;
    let window = cfg.effective_window();
    let frame = frame_len(cfg.payload_len);
    let mut listeners = Vec::with_capacity(n);
    for _ in 1..n {
        listeners.push(TcpListener::bind("127.0.0.1:0").await?);
    }
    // Node i (1..n) accepts from node i−1; node i dials node i+1.
    let mut ups: Vec<TcpStream> = Vec::with_capacity(n);
    let mut downs: Vec<TcpStream> = Vec::with_capacity(n);
    for l in &listeners {
        let down = TcpStream::connect(l.local_addr()?).await?;
        let (up, _) = l.accept().await?;
        down.set_nodelay(true)?;
        up.set_nodelay(true)?;
        downs.push(down);
        ups.push(up);
    }
    // downs[i] is node i's link to node i+1; ups[i] is node i+1's from node i.
    let mut downs = downs.into_iter();
    let mut ups = ups.into_iter();
    let sender_link = downs.next().ok_or_else(|| io::Error::other("no link"))?;
    let mut relays = Vec::new();
    for _ in 1..n - 1 {
        let (Some(up), Some(down)) = (ups.next(), downs.next()) else {
            break;
        };
        relays.push(tokio::spawn(relay(up, down)));
    }
    let last_up = ups.next().ok_or_else(|| io::Error::other("no link"))?;
    let got = Arc::new(AtomicU64::new(0));
    let notify = Arc::new(Notify::new());
    let receiver = tokio::spawn(receive(last_up, total, got.clone(), notify.clone()));

    let started = Instant::now();
    let mut out = BufWriter::with_capacity(64 * 1024, sender_link);
    let mut template = vec![0x5au8; frame];
    template[..PREFIX].copy_from_slice(&((frame - PREFIX) as u32).to_be_bytes());
    let stall = cfg.stall;
    let sending = async {
        for seq in 0..total {
            if seq >= got.load(Ordering::Acquire) + window {
                out.flush().await?;
                loop {
                    let notified = notify.notified();
                    tokio::pin!(notified);
                    notified.as_mut().enable();
                    if seq < got.load(Ordering::Acquire) + window {
                        break;
                    }
                    if tokio::time::timeout(stall, notified).await.is_err() {
                        return Err(io::Error::other("floor relay stalled"));
                    }
                }
            }
            stamp(&mut template[PREFIX..], seq);
            out.write_all(&template).await?;
        }
        out.flush().await?;
        Ok::<_, io::Error>(out)
    };
    let out = sending.await?;
    let (tracker, done_at) =
        match tokio::time::timeout(stall + Duration::from_secs(5), receiver).await {
            Ok(Ok(r)) => r?,
            _ => return Err(io::Error::other("floor receiver did not finish")),
        };
    drop(out);
    for r in relays {
        r.abort();
    }
    let mut result = combine(
        "floor",
        n,
        total,
        cfg.payload_len,
        frame,
        done_at - started,
        // Only the last node is measured: it is the one that gets everything last.
        std::slice::from_ref(&tracker),
    );
    // Every hop carries every frame once.
    result.wire_bytes = Some(total * frame as u64 * (n as u64 - 1));
    Ok(result)
}
