//! Transports: how frames travel between two nodes. The mesh logic does not
//! know which one it runs on; it sees a byte reader and a frame writer.
//!
//! - `Plaintext`: TCP ([`Plaintext`]).
//!
//! A transport turns a dialled address or an accepted TCP connection into a
//! [`Stream`]: a reader of raw bytes (frames are split by the connection's
//! read loop) and a [`FrameWriter`] that writes whole frames.

use std::fmt::Debug;
use std::future::Future;
use std::io;
use std::pin::Pin;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;

mod tcp;

pub use tcp::Plaintext;

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The reading side of a connection: raw bytes.
pub type ByteReader = Box<dyn AsyncRead + Send + Unpin>;

/// The writing side of a connection: whole frames.
pub trait FrameWriter: Send {
    /// Writes every frame of `frames`, in order, each whole, then flushes.
    fn write_frames<'a>(&'a mut self, frames: &'a [Bytes]) -> BoxFuture<'a, io::Result<()>>;

    /// Closes the writing side cleanly.
    fn shutdown(&mut self) -> BoxFuture<'_, io::Result<()>>;
}

/// An open connection, ready for the mesh.
pub struct Stream {
    /// Raw bytes from the peer.
    pub reader: ByteReader,
    /// Frames to the peer.
    pub writer: Box<dyn FrameWriter>,
    /// The peer's socket address, as text.
    pub remote: String,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("remote", &self.remote)
            .finish()
    }
}

/// A way of carrying frames between nodes.
pub trait Transport: Send + Sync + Debug + 'static {
    /// The protocol's `encryption` name of this transport (`"Plaintext"`, …).
    fn name(&self) -> &'static str;

    /// Dials `host:port` and completes the transport's own handshake.
    fn connect<'a>(&'a self, host: &'a str, port: u16) -> BoxFuture<'a, io::Result<Stream>>;

    /// Completes the transport's handshake on an accepted TCP connection.
    fn accept(&self, tcp: TcpStream) -> BoxFuture<'static, io::Result<Stream>>;
}

/// A [`FrameWriter`] over any byte stream, with buffered, batched writes.
pub struct ByteStreamWriter<W> {
    inner: BufWriter<W>,
}

impl<W: AsyncWrite + Send + Unpin> ByteStreamWriter<W> {
    /// Wraps a byte writer.
    pub fn new(inner: W) -> Self {
        ByteStreamWriter {
            inner: BufWriter::with_capacity(64 * 1024, inner),
        }
    }
}

impl<W: AsyncWrite + Send + Unpin> FrameWriter for ByteStreamWriter<W> {
    fn write_frames<'a>(&'a mut self, frames: &'a [Bytes]) -> BoxFuture<'a, io::Result<()>> {
        Box::pin(async move {
            for frame in frames {
                self.inner.write_all(frame).await?;
            }
            self.inner.flush().await
        })
    }

    fn shutdown(&mut self) -> BoxFuture<'_, io::Result<()>> {
        Box::pin(async move { self.inner.shutdown().await })
    }
}

/// Splits any bidirectional byte stream into a [`Stream`].
pub fn byte_stream<S>(stream: S, remote: String) -> Stream
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (reader, writer) = tokio::io::split(stream);
    Stream {
        reader: Box::new(reader),
        writer: Box::new(ByteStreamWriter::new(writer)),
        remote,
    }
}
