//! Per-connection tasks: a read loop that splits frames and hands them to
//! the actor, and a write loop that drains a bounded queue with batched
//! writes. Neither ever makes the actor wait.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::actor::Internal;
use crate::protocol::mesh::{ConnId, DialId};
use crate::protocol::{CodecError, FrameDecoder};
use crate::transport::{ByteReader, FrameWriter, Stream, Transport};

/// What the actor keeps for each open connection.
#[derive(Debug)]
pub(crate) struct ConnHandle {
    pub(crate) frames: mpsc::UnboundedSender<Bytes>,
    /// Bytes queued and not yet written; bounded by `ConnSettings::send_buffer`.
    pub(crate) queued: Arc<AtomicUsize>,
    pub(crate) cancel: CancellationToken,
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
    /// Queues a frame unless that would exceed `limit` bytes waiting;
    /// returns false when the peer is too slow.
    pub(crate) fn try_queue(&self, frame: Bytes, limit: usize) -> bool {
        let len = frame.len();
        let before = self.queued.fetch_add(len, Ordering::Relaxed);
        if before > 0 && before + len > limit {
            self.queued.fetch_sub(len, Ordering::Relaxed);
            return false;
        }
        // A closed connection drops the frame; its closing is reported apart.
        if self.frames.send(frame).is_err() {
            self.queued.fetch_sub(len, Ordering::Relaxed);
        }
        true
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
    let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
    let queued = Arc::new(AtomicUsize::new(0));
    let cancel = spawner.cancel.child_token();
    let handle = ConnHandle {
        frames: tx,
        queued: queued.clone(),
        cancel: cancel.clone(),
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
    tracker.spawn(write_loop(writer, rx, queued, cancel.clone()));
    tracker.spawn(read_loop(
        reader,
        conn,
        internal,
        cancel,
        spawner.settings.clone(),
    ));
}

async fn read_loop(
    mut reader: ByteReader,
    conn: ConnId,
    internal: mpsc::Sender<Internal>,
    cancel: CancellationToken,
    settings: ConnSettings,
) {
    let mut decoder = FrameDecoder::new(settings.max_frame_len);
    let error: Option<CodecError> = loop {
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
        let read = tokio::select! {
            _ = cancel.cancelled() => break None,
            read = read_within(&mut reader, &mut decoder, limit) => read,
        };
        match read {
            Some(Ok(0)) => break decoder.finish().err(),
            Some(Ok(_)) => {}
            Some(Err(_)) => break None,
            None => {
                tracing::debug!(conn, "connection stalled or idle: closing");
                break None;
            }
        }
        let mut failed = None;
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => {
                    if internal
                        .send(Internal::Frame { conn, frame })
                        .await
                        .is_err()
                    {
                        cancel.cancel();
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if failed.is_some() {
            break failed;
        }
        if cancel.is_cancelled() {
            break None;
        }
    };
    cancel.cancel();
    if error.is_none() {
        // Read on until the peer's FIN (bounded) so our close is a clean
        // one: unread bytes would turn it into a reset that can discard
        // what we just wrote.
        let mut sink = [0u8; 4096];
        let drain = async { while matches!(reader.read(&mut sink).await, Ok(n) if n > 0) {} };
        let _ = tokio::time::timeout(Duration::from_millis(250), drain).await;
    }
    let _ = internal.send(Internal::Closed { conn, error }).await;
}

/// One read into the decoder's buffer; `None` if `limit` passed first.
async fn read_within(
    reader: &mut ByteReader,
    decoder: &mut FrameDecoder,
    limit: Option<Duration>,
) -> Option<std::io::Result<usize>> {
    decoder.prepare_read();
    let read = reader.read_buf(decoder.buffer_mut());
    match limit {
        Some(limit) => tokio::time::timeout(limit, read).await.ok(),
        None => Some(read.await),
    }
}

/// How long a closing connection may spend writing what was queued.
const CLOSE_FLUSH: Duration = Duration::from_secs(1);

/// Most frames gathered into one write.
const MAX_BATCH: usize = 256;

async fn write_loop(
    mut writer: Box<dyn FrameWriter>,
    mut rx: mpsc::UnboundedReceiver<Bytes>,
    queued: Arc<AtomicUsize>,
    cancel: CancellationToken,
) {
    let mut batch: Vec<Bytes> = Vec::with_capacity(MAX_BATCH);
    let mut flush_on_exit = true;
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
        queued.fetch_sub(bytes, Ordering::Relaxed);
        batch.clear();
        if written.is_err() {
            flush_on_exit = false;
            break;
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
}
