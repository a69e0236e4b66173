//! Transports: how frames travel between two nodes. The mesh logic does not
//! know which one it runs on; it sees a byte reader and a frame writer.
//!
//! The protocol's `encryption` field names the transport, as in py2p and
//! js2p ([`for_protocol`] picks it, and so does [`MeshBuilder`] unless told
//! otherwise):
//!
//! | `encryption` | transport | interoperates with |
//! |---|---|---|
//! | `Plaintext` | TCP ([`Plaintext`]) | py2p, js2p |
//! | `SSL` | TLS over TCP ([`Tls`]) | py2p (tested), js2p (not tested) |
//! | `ws` | WebSocket over TCP ([`WebSocket::plain`]) | js2p (not tested: no js2p here) |
//! | `wss` | WebSocket over TLS ([`WebSocket::secure`]) | js2p (not tested) |
//!
//! The TLS transports run in one of two modes, [`TlsOptions`]:
//! **compatibility** (the default, as the references: encrypts against
//! passive eavesdroppers but authenticates no one, so an active
//! man-in-the-middle or any stranger can join) or **verified** (mutual TLS
//! against trusted roots or pinned certificates, which keeps strangers
//! out). The [`tls_config`] docs say exactly what each protects against.
//!
//! A transport turns a dialled address or an accepted TCP connection into a
//! [`Stream`]: a reader of raw bytes (frames are split by the connection's
//! read loop) and a [`FrameWriter`] that writes whole frames. A failed
//! transport handshake (TLS, WebSocket) is an `io::Error` for that one
//! connection, logged at `info` with the peer's address; the node goes on.
//! When the cause can be named — the peer speaks another transport, or a
//! certificate was refused in verified TLS — the error carries a
//! [`Refusal`] ([`Refusal::from_io`]) whose text names the fix.
//!
//! [`MeshBuilder`]: crate::MeshBuilder

use std::fmt::Debug;
use std::future::Future;
use std::io;
use std::pin::Pin;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

mod error;
mod refusal;
mod tcp;
mod tls;
pub mod tls_config;
mod verify;
mod ws;

pub use error::TransportError;
pub(crate) use refusal::{certificate_problem, recognise};
pub use refusal::{Refusal, Speaks};
pub use tcp::Plaintext;
pub use tls::Tls;
pub use tls_config::{TlsOptions, VerifiedTls};
pub use ws::WebSocket;

use std::sync::Arc;

use rustls::pki_types::ServerName;

use crate::protocol::{CodecLimits, Protocol};

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

/// A [`FrameWriter`] over any byte stream: a batch of frames goes out in
/// vectored writes straight from the frames' own buffers — no copy, and no
/// write buffer held by an idle connection.
pub struct ByteStreamWriter<W> {
    inner: W,
}

impl<W: AsyncWrite + Send + Unpin> ByteStreamWriter<W> {
    /// Wraps a byte writer.
    pub fn new(inner: W) -> Self {
        ByteStreamWriter { inner }
    }
}

/// Most slices handed to one vectored write (Linux takes up to 1,024).
const MAX_SLICES: usize = 64;

/// Writes every byte of `frames`, in order, with vectored writes.
async fn write_all_frames<W: AsyncWrite + Unpin>(w: &mut W, frames: &[Bytes]) -> io::Result<()> {
    // Where the write stands: frame index and offset into it.
    let (mut i, mut off) = (0, 0);
    while i < frames.len() {
        let end = (i + MAX_SLICES).min(frames.len());
        let mut slices: [io::IoSlice<'_>; MAX_SLICES] = [io::IoSlice::new(&[]); MAX_SLICES];
        for (k, frame) in frames[i..end].iter().enumerate() {
            slices[k] = io::IoSlice::new(if k == 0 { &frame[off..] } else { frame });
        }
        let mut written = w.write_vectored(&slices[..end - i]).await?;
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        // Advance past what was written.
        while written > 0 && i < frames.len() {
            let left = frames[i].len() - off;
            if written >= left {
                written -= left;
                i += 1;
                off = 0;
            } else {
                off += written;
                written = 0;
            }
        }
    }
    Ok(())
}

impl<W: AsyncWrite + Send + Unpin> FrameWriter for ByteStreamWriter<W> {
    fn write_frames<'a>(&'a mut self, frames: &'a [Bytes]) -> BoxFuture<'a, io::Result<()>> {
        Box::pin(async move {
            write_all_frames(&mut self.inner, frames).await?;
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

/// What [`for_protocol`] needs besides the protocol.
#[derive(Clone, Debug)]
pub struct TransportOptions {
    /// The TLS mode of `SSL` and `wss`. Must be [`TlsOptions::Compatibility`]
    /// for `Plaintext` and `ws`.
    pub tls: TlsOptions,
    /// Largest frame body accepted, in bytes (bounds WebSocket messages).
    pub max_frame_len: usize,
}

impl Default for TransportOptions {
    fn default() -> Self {
        TransportOptions {
            tls: TlsOptions::Compatibility,
            max_frame_len: CodecLimits::DEFAULT_MAX_FRAME_LEN,
        }
    }
}

/// The transport that `protocol.encryption()` names: `"Plaintext"`,
/// `"SSL"`, `"ws"` or `"wss"`.
///
/// # Errors
/// [`TransportError::UnknownEncryption`] for any other name;
/// [`TransportError::TlsNotUsed`] for verified TLS settings with
/// `Plaintext` or `ws`; the errors of [`Tls::new`] for `SSL` and `wss`.
///
/// # Examples
/// ```
/// use rs2p::protocol::Protocol;
/// use rs2p::transport::{for_protocol, TransportOptions};
/// let t = for_protocol(&Protocol::new("mesh", "SSL"), &TransportOptions::default())?;
/// assert_eq!(t.name(), "SSL");
/// assert!(for_protocol(&Protocol::new("mesh", "carrier pigeon"), &TransportOptions::default()).is_err());
/// # Ok::<(), rs2p::transport::TransportError>(())
/// ```
pub fn for_protocol(
    protocol: &Protocol,
    options: &TransportOptions,
) -> Result<Arc<dyn Transport>, TransportError> {
    let name = protocol.encryption();
    let no_tls = || {
        if options.tls.is_verified() {
            Err(TransportError::TlsNotUsed(name.to_owned()))
        } else {
            Ok(())
        }
    };
    match name {
        "Plaintext" => {
            no_tls()?;
            Ok(Arc::new(Plaintext))
        }
        "SSL" => Ok(Arc::new(Tls::new(&options.tls)?)),
        "ws" => {
            no_tls()?;
            Ok(Arc::new(WebSocket::plain(options.max_frame_len)))
        }
        "wss" => Ok(Arc::new(WebSocket::secure(
            &options.tls,
            options.max_frame_len,
        )?)),
        other => Err(TransportError::UnknownEncryption(other.to_owned())),
    }
}

/// The peer address of a TCP stream, as text.
pub(crate) fn peer_addr(tcp: &TcpStream) -> String {
    tcp.peer_addr()
        .map_or_else(|_| "?".to_owned(), |a| a.to_string())
}

/// The TLS server name for a dialled host: an IP address as such, else a
/// DNS name (neither is verified against the certificate, see
/// [`tls_config`]).
pub(crate) fn server_name(host: &str) -> ServerName<'static> {
    ServerName::try_from(host.to_owned()).unwrap_or(ServerName::IpAddress(
        std::net::IpAddr::from(std::net::Ipv4Addr::UNSPECIFIED).into(),
    ))
}

/// Logs a connection refused during a transport handshake and turns the
/// cause into the `io::Error` the caller returns. (Causes that can be
/// named go through `refusal::handshake_failed` instead.)
pub(crate) fn refused(
    transport: &str,
    remote: &str,
    stage: &str,
    cause: impl std::fmt::Display,
) -> io::Error {
    tracing::info!(%transport, %remote, %cause, "{stage} failed: connection refused");
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        format!("{transport} {stage} with {remote} failed: {cause}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// A writer that takes at most `step` bytes per call, across slices.
    struct Trickle {
        got: Vec<u8>,
        step: usize,
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let n = buf.len().min(self.step);
            self.got.extend_from_slice(&buf[..n]);
            Poll::Ready(Ok(n))
        }
        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[io::IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let mut left = self.step;
            let mut n = 0;
            for b in bufs {
                let take = b.len().min(left);
                self.got.extend_from_slice(&b[..take]);
                n += take;
                left -= take;
                if left == 0 {
                    break;
                }
            }
            Poll::Ready(Ok(n))
        }
        fn is_write_vectored(&self) -> bool {
            true
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn vectored_writes_survive_partial_writes() {
        let frames: Vec<Bytes> = (0..200u32)
            .map(|i| Bytes::from(vec![i as u8; (i % 13 + 1) as usize]))
            .collect();
        let want: Vec<u8> = frames.iter().flat_map(|f| f.iter().copied()).collect();
        for step in [1, 2, 7, 64, 1000, usize::MAX] {
            let mut w = ByteStreamWriter::new(Trickle {
                got: Vec::new(),
                step,
            });
            w.write_frames(&frames).await.unwrap();
            assert_eq!(w.inner.got, want, "step {step}");
        }
    }
}
