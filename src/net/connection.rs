//! Per-connection tasks: a read loop that splits frames and hands them to
//! the actor, and a write loop that drains a bounded queue with batched
//! writes. Neither ever makes the actor wait.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes};
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, watch, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::actor::Internal;
use super::metrics::Probes;
use crate::protocol::mesh::{CloseReason, ConnId, DialId};
use crate::protocol::{CodecError, FrameDecoder};
use crate::transport::{
    certificate_problem, recognise, ByteReader, FrameWriter, Refusal, Stream, Transport,
};

/// What the actor keeps for each open connection.
#[derive(Debug)]
pub(crate) struct ConnHandle {
    pub(crate) frames: mpsc::UnboundedSender<Bytes>,
    /// Bytes queued and not yet written; bounded by `ConnSettings::send_buffer`.
    pub(crate) queued: Arc<AtomicUsize>,
    pub(crate) cancel: CancellationToken,
    /// Frames read and not yet handled by the actor.
    pub(crate) backlog: Arc<Backlog>,
}

/// A connection's frames read and handed to the actor but not handled by
/// it yet. The read loop keeps them within a limit (it reads no more than
/// the room left, and waits when there is none): what one peer can have in
/// flight stays small (a flooding peer cannot fill the actor's channel
/// ahead of everyone else), and when the node becomes congested (see
/// [`Gate`]) the frames already read, which still have to be relayed, fit
/// in the half of a send queue above the congestion mark.
#[derive(Debug)]
pub(crate) struct Backlog {
    bytes: AtomicUsize,
    limit: usize,
    handled: Notify,
}

impl Backlog {
    /// A backlog for send queues of `send_buffer` bytes: an eighth of
    /// it, within 8 KiB and 64 KiB (one read's worth: what a flooding
    /// peer has queued ahead of the others' frames at the actor stays
    /// small, and 512 connections hold at most 32 MiB in flight; 256 KiB
    /// measured no faster on the 4-node line).
    fn for_send_buffer(send_buffer: usize) -> Self {
        Backlog {
            bytes: AtomicUsize::new(0),
            limit: (send_buffer / 8).clamp(8 << 10, 64 << 10),
            handled: Notify::new(),
        }
    }

    /// The actor handled `bytes` of this connection's frames.
    pub(crate) fn handled(&self, bytes: usize) {
        let before = self.bytes.fetch_sub(bytes, Ordering::AcqRel);
        if before >= self.limit && before.saturating_sub(bytes) < self.limit {
            self.handled.notify_one();
        }
    }

    /// Waits until the backlog is under its limit; returns the room left,
    /// or `None` if the connection was cancelled meanwhile.
    async fn room(&self, cancel: &CancellationToken) -> Option<usize> {
        loop {
            let handled = self.handled.notified();
            tokio::pin!(handled);
            handled.as_mut().enable();
            let bytes = self.bytes.load(Ordering::Acquire);
            if bytes < self.limit {
                return Some(self.limit - bytes);
            }
            tokio::select! {
                _ = cancel.cancelled() => return None,
                () = handled => {}
            }
        }
    }
}

/// Settings the connection tasks need.
#[derive(Clone, Debug)]
pub(crate) struct ConnSettings {
    pub(crate) max_frame_len: usize,
    /// Bytes that may wait in a connection's send queue; past that the
    /// peer is too slow and is disconnected.
    pub(crate) send_buffer: usize,
    /// A connection part-way through a frame for this long is closed.
    pub(crate) stall_timeout: Duration,
    /// A connection silent for this long is closed.
    pub(crate) idle_timeout: Option<Duration>,
}

/// Allocates connection ids.
#[derive(Debug, Default)]
pub(crate) struct ConnIds(AtomicU64);

impl ConnHandle {
    /// Queues a frame unless that would exceed `limit` bytes waiting.
    /// Returns the bytes now waiting, or `None` when the peer is too slow.
    pub(crate) fn try_queue(&self, frame: Bytes, limit: usize) -> Option<usize> {
        let len = frame.len();
        let before = self.queued.fetch_add(len, Ordering::Relaxed);
        if before > 0 && before + len > limit {
            self.queued.fetch_sub(len, Ordering::Relaxed);
            return None;
        }
        // A closed connection drops the frame; its closing is reported apart.
        if self.frames.send(frame).is_err() {
            self.queued.fetch_sub(len, Ordering::Relaxed);
            return Some(before);
        }
        Some(before + len)
    }
}

impl ConnIds {
    pub(crate) fn next(&self) -> ConnId {
        self.0.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// Starts the read and write loops of a fresh stream and tells the actor.
pub(crate) async fn start(
    stream: Stream,
    outgoing: bool,
    dial: Option<DialId>,
    waiter: Option<super::actor::ConnectWaiter>,
    spawner: &Spawner,
) {
    let conn = spawner.ids.next();
    let internal = spawner.internal.clone();
    let Stream {
        reader,
        writer,
        remote,
    } = stream;
    let peer = Peer {
        conn,
        remote: remote.clone(),
        transport: spawner.transport.name(),
    };
    let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
    let queued = Arc::new(AtomicUsize::new(0));
    let cancel = spawner.cancel.child_token();
    let gate_queued = queued.clone();
    let backlog = Arc::new(Backlog::for_send_buffer(spawner.settings.send_buffer));
    let handle = ConnHandle {
        frames: tx,
        queued: queued.clone(),
        cancel: cancel.clone(),
        backlog: backlog.clone(),
    };
    // Opened goes first on the channel, so the actor knows the connection
    // before any of its frames.
    if internal
        .send(Internal::Opened {
            conn,
            outgoing,
            remote,
            dial,
            handle,
            waiter,
        })
        .await
        .is_err()
    {
        return;
    }
    let tracker = &spawner.tracker;
    let probes = &spawner.probes;
    tracker.spawn(write_loop(
        writer,
        rx,
        queued,
        cancel.clone(),
        Drains {
            conn,
            internal: internal.clone(),
            half: spawner.settings.send_buffer / 2,
        },
        probes.clone(),
    ));
    let gate = Gate {
        congested: spawner.congested.clone(),
        queued: gate_queued,
        half: spawner.settings.send_buffer / 2,
        backlog,
    };
    tracker.spawn(read_loop(
        reader,
        peer,
        internal,
        cancel,
        spawner.settings.clone(),
        probes.clone(),
        gate,
    ));
}

/// Flow control through a relay. While some peer's send queue holds more
/// than half its bound, the node is *congested*: it stops reading from
/// every connection whose own queue is not over half. What it would read
/// there could only be relayed into the full queues, so the bytes wait in
/// the kernel and TCP slows the senders down, hop by hop back to the
/// application that sends too fast (whose `send().await` waits, see the
/// actor). Connections that are themselves congested are still read, so
/// two relays full towards each other both keep draining. A peer that
/// stays over half for too long is closed as too slow by the actor.
struct Gate {
    /// Whether the node is congested; published by the actor.
    congested: watch::Receiver<bool>,
    /// This connection's send queue.
    queued: Arc<AtomicUsize>,
    half: usize,
    /// This connection's frames not handled by the actor yet.
    backlog: Arc<Backlog>,
}

impl Gate {
    /// Waits while this connection may not be read: while its backlog at
    /// the actor is full, or the node is congested and this connection is
    /// not. Returns how many bytes may be read, or `None` if the connection
    /// was cancelled meanwhile.
    async fn pass(&mut self, cancel: &CancellationToken) -> Option<usize> {
        let room = self.backlog.room(cancel).await?;
        loop {
            if !*self.congested.borrow_and_update()
                || self.queued.load(Ordering::Relaxed) > self.half
            {
                return Some(room);
            }
            tokio::select! {
                _ = cancel.cancelled() => return None,
                changed = self.congested.changed() => {
                    if changed.is_err() {
                        return Some(room);
                    }
                }
            }
        }
    }
}

/// Who is at the other end of a connection, for the read loop's errors.
struct Peer {
    conn: ConnId,
    remote: String,
    /// This node's transport.
    transport: &'static str,
}

impl Peer {
    /// Why the stream failed to split into frames: a peer recognisably
    /// speaking another transport (from the first bytes, when no frame
    /// came before them) or the codec error itself.
    fn frame_error(&self, e: CodecError, decoder: &mut FrameDecoder, framed: bool) -> CloseReason {
        // Only where the bytes arrive as they were sent (Plaintext) or
        // straight out of TLS (SSL): WebSocket has checked its own framing.
        let inside_tls = match self.transport {
            "Plaintext" => false,
            "SSL" => true,
            _ => return CloseReason::Protocol(e),
        };
        let buffered = decoder.buffer_mut();
        let first = &buffered[..buffered.len().min(16)];
        match recognise(first, inside_tls, true) {
            Some(theirs) if !framed => CloseReason::Transport(Refusal::WrongTransport {
                remote: self.remote.clone(),
                theirs,
                ours: self.transport,
            }),
            _ => CloseReason::Protocol(e),
        }
    }
}

async fn read_loop(
    mut reader: ByteReader,
    peer: Peer,
    internal: mpsc::Sender<Internal>,
    cancel: CancellationToken,
    settings: ConnSettings,
    probes: Probes,
    mut gate: Gate,
) {
    let conn = peer.conn;
    let mut decoder = FrameDecoder::new(settings.max_frame_len);
    // Whether a frame was split already (a peer that sent one speaks our
    // transport).
    let mut framed = false;
    let error: Option<CloseReason> = loop {
        // Mid-frame, the stall timeout applies, and the idle one too if
        // shorter (a link that dies mid-frame is as silent as one that dies
        // between frames); between frames, the idle one.
        let limit = if decoder.buffered() > 0 {
            Some(
                settings
                    .idle_timeout
                    .map_or(settings.stall_timeout, |idle| {
                        idle.min(settings.stall_timeout)
                    }),
            )
        } else {
            settings.idle_timeout
        };
        let Some(room) = gate.pass(&cancel).await else {
            break None;
        };
        let read = tokio::select! {
            _ = cancel.cancelled() => break None,
            read = read_within(&mut reader, &mut decoder, limit, room) => read,
        };
        match read {
            Some(Ok(0)) => {
                break match decoder.finish() {
                    Ok(()) => None,
                    Err(e) => Some(peer.frame_error(e, &mut decoder, framed)),
                }
            }
            Some(Ok(n)) => probes.bytes_in(n),
            // A certificate refused in verified TLS is named; other read
            // errors end the connection as a close by the peer.
            Some(Err(e)) => {
                break certificate_problem(&e, &peer.remote).map(CloseReason::Transport)
            }
            None => {
                tracing::debug!(conn, "connection stalled or idle: closing");
                break None;
            }
        }
        // Every whole frame of this read goes to the actor in one message:
        // one channel operation and one wake-up per read, not per frame.
        let arrived = Instant::now();
        let mut failed = None;
        let mut frames = Vec::new();
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => {
                    framed = true;
                    frames.push(frame);
                }
                Ok(None) => break,
                Err(e) => {
                    failed = Some(peer.frame_error(e, &mut decoder, framed));
                    break;
                }
            }
        }
        if !frames.is_empty() {
            probes.frames_in(frames.len() as u64);
            let bytes = frames.iter().map(|f| f.raw().len()).sum();
            gate.backlog.bytes.fetch_add(bytes, Ordering::AcqRel);
            let batch = Internal::Frames {
                conn,
                frames,
                bytes,
                arrived,
            };
            if internal.send(batch).await.is_err() {
                cancel.cancel();
            }
        }
        if failed.is_some() {
            break failed;
        }
        if cancel.is_cancelled() {
            break None;
        }
    };
    if let Some(CloseReason::Transport(Refusal::WrongTransport { .. })) = &error {
        // A peer on another transport: the actor closes the connection
        // once our handshake is queued (it knows the connection before
        // this), the write loop sends it, and the peer reads it and can
        // name our transport in turn.
        let _ = internal.send(Internal::Closed { conn, error }).await;
        drain(&mut reader).await;
        return;
    }
    cancel.cancel();
    if error.is_none() {
        drain(&mut reader).await;
    }
    let _ = internal.send(Internal::Closed { conn, error }).await;
}

/// Reads on until the peer's FIN (bounded) so our close is a clean one:
/// unread bytes would turn it into a reset that can discard what we just
/// wrote.
async fn drain(reader: &mut ByteReader) {
    let mut sink = [0u8; 4096];
    let drain = async { while matches!(reader.read(&mut sink).await, Ok(n) if n > 0) {} };
    let _ = tokio::time::timeout(Duration::from_millis(250), drain).await;
}

/// One read into the decoder's buffer; `None` if `limit` passed first.
async fn read_within(
    reader: &mut ByteReader,
    decoder: &mut FrameDecoder,
    limit: Option<Duration>,
    most: usize,
) -> Option<std::io::Result<usize>> {
    decoder.prepare_read();
    let most = decoder.cap_read(most);
    let mut buffer = decoder.buffer_mut().limit(most);
    let read = reader.read_buf(&mut buffer);
    let read = match limit {
        Some(limit) => tokio::time::timeout(limit, read).await.ok(),
        None => Some(read.await),
    };
    if let Some(Ok(n)) = read {
        decoder.note_read(n);
    }
    read
}

/// How long a closing connection may spend writing what was queued.
const CLOSE_FLUSH: Duration = Duration::from_secs(1);

/// Most frames gathered into one write.
const MAX_BATCH: usize = 256;

/// A send queue that held at least this many bytes and then emptied is
/// reported to the actor ([`Internal::Drained`]): a layer pacing a burst
/// by the connection (sync's catch-up) may send the next part.
const DRAIN_NOTICE: usize = 64 << 10;

/// Where a write loop reports that its queue drained.
struct Drains {
    conn: ConnId,
    internal: mpsc::Sender<Internal>,
    /// Half the send buffer.
    half: usize,
}

async fn write_loop(
    mut writer: Box<dyn FrameWriter>,
    mut rx: mpsc::UnboundedReceiver<Bytes>,
    queued: Arc<AtomicUsize>,
    cancel: CancellationToken,
    drains: Drains,
    probes: Probes,
) {
    // Grows with the first burst; an idle connection holds none.
    let mut batch: Vec<Bytes> = Vec::new();
    let mut flush_on_exit = true;
    // The most bytes queued since the queue was last empty.
    let mut peak = 0;
    loop {
        let first = tokio::select! {
            biased;
            next = rx.recv(), if !cancel.is_cancelled() => match next {
                Some(frame) => frame,
                None => break,
            },
            _ = cancel.cancelled() => break,
        };
        batch.push(first);
        // Batch whatever else is queued into the same write.
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(frame) => batch.push(frame),
                Err(_) => break,
            }
        }
        let written = tokio::select! {
            _ = cancel.cancelled() => break,
            r = writer.write_frames(&batch) => r,
        };
        let bytes: usize = batch.iter().map(Bytes::len).sum();
        let before = queued.fetch_sub(bytes, Ordering::Relaxed);
        let frames = batch.len();
        batch.clear();
        if written.is_err() {
            flush_on_exit = false;
            break;
        }
        probes.written(frames, bytes);
        peak = peak.max(before);
        // Crossing below half the bound ends the node's congestion (the
        // actor reads the other peers and takes the application's sends
        // again); below a quarter, this peer is keeping up again (see
        // `Congestion`); emptying after a burst lets a layer send its
        // next part.
        let crossed = |mark: usize| before > mark && before - bytes <= mark;
        let emptied = before == bytes && std::mem::take(&mut peak) >= DRAIN_NOTICE;
        if crossed(drains.half) || crossed(drains.half / 2) || emptied {
            let drained = Internal::Drained { conn: drains.conn };
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = drains.internal.send(drained) => {}
            }
        }
    }
    // Closing: write what was already queued (bounded in time), then FIN.
    let flush = async {
        if flush_on_exit {
            while let Ok(frame) = rx.try_recv() {
                batch.push(frame);
            }
            if !batch.is_empty() {
                writer.write_frames(&batch).await?;
                probes.written(batch.len(), batch.iter().map(Bytes::len).sum());
            }
        }
        writer.shutdown().await
    };
    let _ = tokio::time::timeout(CLOSE_FLUSH, flush).await;
    cancel.cancel();
}

/// Shared pieces the actor hands to tasks it spawns.
#[derive(Clone, Debug)]
pub(crate) struct Spawner {
    pub(crate) internal: mpsc::Sender<Internal>,
    pub(crate) cancel: CancellationToken,
    pub(crate) tracker: TaskTracker,
    pub(crate) settings: ConnSettings,
    pub(crate) ids: Arc<ConnIds>,
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) probes: Probes,
    /// Whether the node is congested (see [`Gate`]).
    pub(crate) congested: watch::Receiver<bool>,
}
