//! The `SSL` transport: frames over TLS over TCP (rustls).
//!
//! Each frame goes out in TLS records of its own (no record carries the
//! end of one frame and the start of the next). py2p reads an SSL socket
//! in 1,024-byte steps after `select` and stops once it holds a whole
//! frame; bytes of a next frame left decrypted inside its SSL object would
//! be invisible to `select` and sit there until more data arrived.

use std::io;

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::refusal::{handshake_failed, Recorded};
use super::tls_config::TlsConfigs;
use super::{
    peer_addr, server_name, BoxFuture, FrameWriter, Stream, TlsOptions, Transport, TransportError,
};
use bytes::Bytes;

/// Frames over TLS, as the references' `SSL`. See
/// [`TlsOptions`] for the two modes and what each protects against.
///
/// # Examples
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use rs2p::{MeshSocket, protocol::Protocol};
/// // The transport follows the protocol's encryption: "SSL" means TLS,
/// // here in compatibility mode (as py2p).
/// let a = MeshSocket::builder().protocol(Protocol::new("mesh", "SSL")).bind("127.0.0.1:0").await?;
/// let b = MeshSocket::builder().protocol(Protocol::new("mesh", "SSL")).bind("127.0.0.1:0").await?;
/// b.connect("127.0.0.1", a.addr().port(), None).await?;
/// # a.close().await; b.close().await;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Tls {
    configs: TlsConfigs,
}

impl Tls {
    /// A TLS transport in the given mode. Compatibility mode generates its
    /// self-signed certificate here.
    ///
    /// # Errors
    /// As [`TlsOptions`] settings can be unusable: see [`TransportError`].
    pub fn new(options: &TlsOptions) -> Result<Tls, TransportError> {
        Ok(Tls {
            configs: TlsConfigs::new(options)?,
        })
    }

    /// Whether peers are verified (verified mode).
    pub fn is_verified(&self) -> bool {
        self.configs.verified
    }
}

impl Transport for Tls {
    fn name(&self) -> &'static str {
        "SSL"
    }

    fn connect<'a>(&'a self, host: &'a str, port: u16) -> BoxFuture<'a, io::Result<Stream>> {
        Box::pin(async move {
            let tcp = TcpStream::connect((host, port)).await?;
            let _ = tcp.set_nodelay(true);
            let remote = peer_addr(&tcp);
            // What the peer sends is kept: if it is not TLS, it tells what it is.
            let (tcp, seen) = Recorded::new(tcp);
            let tls = TlsConnector::from(self.configs.client.clone())
                .connect(server_name(host), tcp)
                .await
                .map_err(|e| {
                    handshake_failed("SSL", &remote, "TLS handshake", &e, &seen.bytes(), false)
                })?;
            Ok(tls_stream(tls, remote))
        })
    }

    fn accept(&self, tcp: TcpStream) -> BoxFuture<'static, io::Result<Stream>> {
        let acceptor = TlsAcceptor::from(self.configs.server.clone());
        Box::pin(async move {
            let _ = tcp.set_nodelay(true);
            let remote = peer_addr(&tcp);
            let (tcp, seen) = Recorded::new(tcp);
            let tls = acceptor.accept(tcp).await.map_err(|e| {
                handshake_failed("SSL", &remote, "TLS handshake", &e, &seen.bytes(), false)
            })?;
            Ok(tls_stream(tls, remote))
        })
    }
}

fn tls_stream<S>(stream: S, remote: String) -> Stream
where
    S: tokio::io::AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (reader, writer) = tokio::io::split(stream);
    Stream {
        reader: Box::new(reader),
        writer: Box::new(RecordPerFrameWriter { inner: writer }),
        remote,
    }
}

/// Writes each frame with writes of its own, then flushes: over TLS, every
/// record then holds bytes of one frame only.
struct RecordPerFrameWriter<W> {
    inner: W,
}

impl<W: AsyncWrite + Send + Unpin> FrameWriter for RecordPerFrameWriter<W> {
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
