//! [`CountingTcp`]: the `Plaintext` transport (frames over TCP) with a
//! counter of every byte written, to measure bytes on the wire per
//! broadcast.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use rs2p::transport::{BoxFuture, ByteStreamWriter, Stream, Transport};
use tokio::io::AsyncWrite;
use tokio::net::TcpStream;

/// TCP, counting the bytes written by every connection into one counter.
#[derive(Clone, Debug, Default)]
pub struct CountingTcp {
    written: Arc<AtomicU64>,
}

impl CountingTcp {
    /// A transport adding to `written`.
    pub fn new(written: Arc<AtomicU64>) -> Self {
        CountingTcp { written }
    }

    fn wrap(&self, tcp: TcpStream) -> Stream {
        let _ = tcp.set_nodelay(true);
        let remote = tcp
            .peer_addr()
            .map_or_else(|_| "?".to_owned(), |a| a.to_string());
        let (reader, writer) = tcp.into_split();
        Stream {
            reader: Box::new(reader),
            writer: Box::new(ByteStreamWriter::new(Counting {
                inner: writer,
                written: self.written.clone(),
            })),
            remote,
        }
    }
}

impl Transport for CountingTcp {
    fn name(&self) -> &'static str {
        "Plaintext"
    }

    fn connect<'a>(&'a self, host: &'a str, port: u16) -> BoxFuture<'a, io::Result<Stream>> {
        Box::pin(async move { Ok(self.wrap(TcpStream::connect((host, port)).await?)) })
    }

    fn accept(&self, tcp: TcpStream) -> BoxFuture<'static, io::Result<Stream>> {
        let me = self.clone();
        Box::pin(async move { Ok(me.wrap(tcp)) })
    }
}

struct Counting<W> {
    inner: W,
    written: Arc<AtomicU64>,
}

impl<W: AsyncWrite + Unpin> AsyncWrite for Counting<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            self.written.fetch_add(n as u64, Ordering::Relaxed);
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = r {
            self.written.fetch_add(n as u64, Ordering::Relaxed);
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
