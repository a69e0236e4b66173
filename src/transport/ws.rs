//! The `ws` and `wss` transports: frames over WebSocket (tungstenite), the
//! latter inside TLS.
//!
//! As js2p does, each protocol frame is sent as one binary WebSocket
//! message; the receiver concatenates the payloads of binary messages into
//! one byte stream and splits frames by their length prefix, so it does not
//! rely on the sender's message boundaries. Ping and pong messages are
//! answered and otherwise ignored; a close message is the end of the
//! stream; a text message is a protocol error and closes the connection.
//! One message may carry at most the frame limit plus the 4-byte prefix.
//!
//! The dialler asks for `ws://HOST:PORT/` (or `wss://`); the listener takes
//! any path.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use super::refusal::{handshake_failed, into_io, recognise, Prefixed, Recorded, Refusal, Speaks};
use super::tls_config::TlsConfigs;
use super::{
    peer_addr, server_name, BoxFuture, FrameWriter, Stream, TlsOptions, Transport, TransportError,
};
use crate::protocol::CodecLimits;

/// Frames over WebSocket: `ws` (over TCP) or `wss` (over TLS, see
/// [`TlsOptions`] for its two modes).
///
/// # Examples
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use rs2p::{MeshSocket, protocol::Protocol};
/// let a = MeshSocket::builder().protocol(Protocol::new("mesh", "ws")).bind("127.0.0.1:0").await?;
/// let b = MeshSocket::builder().protocol(Protocol::new("mesh", "ws")).bind("127.0.0.1:0").await?;
/// b.connect("127.0.0.1", a.addr().port(), None).await?;
/// # a.close().await; b.close().await;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct WebSocket {
    tls: Option<TlsConfigs>,
    config: WebSocketConfig,
}

impl WebSocket {
    /// The `ws` transport (no TLS), accepting frames up to `max_frame_len`
    /// bytes (as [`CodecLimits::max_frame_len`]).
    pub fn plain(max_frame_len: usize) -> WebSocket {
        WebSocket {
            tls: None,
            config: ws_config(max_frame_len),
        }
    }

    /// The `wss` transport (WebSocket inside TLS) in the given TLS mode,
    /// accepting frames up to `max_frame_len` bytes.
    ///
    /// # Errors
    /// As [`Tls::new`](super::Tls::new).
    pub fn secure(options: &TlsOptions, max_frame_len: usize) -> Result<WebSocket, TransportError> {
        Ok(WebSocket {
            tls: Some(TlsConfigs::new(options)?),
            config: ws_config(max_frame_len),
        })
    }

    fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "wss"
        } else {
            "ws"
        }
    }
}

impl Default for WebSocket {
    /// `ws` with the default frame limit.
    fn default() -> Self {
        WebSocket::plain(CodecLimits::DEFAULT_MAX_FRAME_LEN)
    }
}

fn ws_config(max_frame_len: usize) -> WebSocketConfig {
    let max_message = max_frame_len.saturating_add(4);
    WebSocketConfig::default()
        .read_buffer_size(64 * 1024)
        .write_buffer_size(64 * 1024)
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_message))
}

impl Transport for WebSocket {
    fn name(&self) -> &'static str {
        self.scheme()
    }

    fn connect<'a>(&'a self, host: &'a str, port: u16) -> BoxFuture<'a, io::Result<Stream>> {
        Box::pin(async move {
            let name = self.scheme();
            let tcp = TcpStream::connect((host, port)).await?;
            let _ = tcp.set_nodelay(true);
            let remote = peer_addr(&tcp);
            let bracketed = if host.contains(':') {
                format!("[{host}]")
            } else {
                host.to_owned()
            };
            let url = format!("{name}://{bracketed}:{port}/");
            // What the peer sends is kept: if it is not what we expect, it
            // tells what the peer is.
            let (tcp, seen) = Recorded::new(tcp);
            match &self.tls {
                None => {
                    let (ws, _) = tokio_tungstenite::client_async_with_config(
                        url.as_str(),
                        tcp,
                        Some(self.config),
                    )
                    .await
                    .map_err(|e| {
                        let stage = "WebSocket handshake";
                        handshake_failed(name, &remote, stage, &e, &seen.bytes(), false)
                    })?;
                    Ok(ws_stream(ws, remote))
                }
                Some(tls) => {
                    let tls = TlsConnector::from(tls.client.clone())
                        .connect(server_name(host), tcp)
                        .await
                        .map_err(|e| {
                            handshake_failed(
                                name,
                                &remote,
                                "TLS handshake",
                                &e,
                                &seen.bytes(),
                                false,
                            )
                        })?;
                    let (tls, inside) = Recorded::new(tokio_rustls::TlsStream::Client(tls));
                    let (ws, _) = tokio_tungstenite::client_async_with_config(
                        url.as_str(),
                        tls,
                        Some(self.config),
                    )
                    .await
                    .map_err(|e| {
                        let stage = "WebSocket handshake";
                        handshake_failed(name, &remote, stage, &e, &inside.bytes(), true)
                    })?;
                    Ok(ws_stream(ws, remote))
                }
            }
        })
    }

    fn accept(&self, tcp: TcpStream) -> BoxFuture<'static, io::Result<Stream>> {
        let name = self.scheme();
        let config = self.config;
        let acceptor = self
            .tls
            .as_ref()
            .map(|t| TlsAcceptor::from(t.server.clone()));
        Box::pin(async move {
            let _ = tcp.set_nodelay(true);
            let remote = peer_addr(&tcp);
            let ws_error =
                |e: WsError| handshake_failed(name, &remote, "WebSocket handshake", &e, &[], false);
            match acceptor {
                None => {
                    let http = expect_http(tcp, name, &remote, false).await?;
                    let ws = tokio_tungstenite::accept_async_with_config(http, Some(config))
                        .await
                        .map_err(ws_error)?;
                    Ok(ws_stream(ws, remote))
                }
                Some(acceptor) => {
                    let (tcp, seen) = Recorded::new(tcp);
                    let tls = acceptor.accept(tcp).await.map_err(|e| {
                        handshake_failed(name, &remote, "TLS handshake", &e, &seen.bytes(), false)
                    })?;
                    let tls = tokio_rustls::TlsStream::Server(tls);
                    let http = expect_http(tls, name, &remote, true).await?;
                    let ws = tokio_tungstenite::accept_async_with_config(http, Some(config))
                        .await
                        .map_err(ws_error)?;
                    Ok(ws_stream(ws, remote))
                }
            }
        })
    }
}

/// Reads the first bytes an accepted peer sends: HTTP goes on to the
/// WebSocket handshake (the bytes replayed); anything recognisably else
/// (mesh frames, TLS) is answered with an HTTP error, which the peer's
/// transport recognises in turn, and refused with the transport it
/// speaks named.
async fn expect_http<S>(
    stream: S,
    ours: &'static str,
    remote: &str,
    inside_tls: bool,
) -> io::Result<Prefixed<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (first, mut stream) = Prefixed::read_ahead(stream).await?;
    match recognise(&first, inside_tls, false) {
        Some(theirs) if !matches!(theirs, Speaks::Http | Speaks::Wss) => {
            use tokio::io::AsyncWriteExt;
            let answer = format!(
                "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{WRONG_TRANSPORT}",
                WRONG_TRANSPORT.len()
            );
            // Best effort: the refusal stands whether or not it arrives.
            let _ = stream.write_all(answer.as_bytes()).await;
            let _ = stream.shutdown().await;
            // Read on until the peer closes (bounded), so our close is not
            // a reset that could discard the answer before the peer reads it.
            let mut sink = [0u8; 4096];
            let drain = async {
                use tokio::io::AsyncReadExt;
                while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
            };
            let _ = tokio::time::timeout(std::time::Duration::from_millis(250), drain).await;
            Err(into_io(Refusal::WrongTransport {
                remote: remote.to_owned(),
                theirs,
                ours,
            }))
        }
        _ => Ok(stream),
    }
}

/// The body of the answer to a peer that does not speak WebSocket.
const WRONG_TRANSPORT: &str = "this is a p2p-today mesh node on a WebSocket transport \
     (ws or wss): it speaks WebSocket only\n";

fn ws_stream<S>(ws: WebSocketStream<S>, remote: String) -> Stream
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (sink, messages) = ws.split();
    Stream {
        reader: Box::new(MessageReader {
            messages,
            pending: Bytes::new(),
        }),
        writer: Box::new(MessageWriter { sink }),
        remote,
    }
}

fn ws_io_error(e: WsError) -> io::Error {
    match e {
        WsError::Io(e) => e,
        WsError::ConnectionClosed | WsError::AlreadyClosed => {
            io::Error::new(io::ErrorKind::NotConnected, e)
        }
        other => io::Error::new(io::ErrorKind::InvalidData, other),
    }
}

/// The payloads of binary messages, as one byte stream.
struct MessageReader<S> {
    messages: SplitStream<WebSocketStream<S>>,
    /// What is left of the current message.
    pending: Bytes,
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for MessageReader<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if !self.pending.is_empty() {
                let n = self.pending.len().min(buf.remaining());
                buf.put_slice(&self.pending[..n]);
                self.pending.advance(n);
                return Poll::Ready(Ok(()));
            }
            match ready!(self.messages.poll_next_unpin(cx)) {
                Some(Ok(Message::Binary(data))) => self.pending = data,
                Some(Ok(Message::Text(_))) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "text message on a mesh WebSocket (frames travel as binary messages)",
                    )))
                }
                // The end of the stream.
                Some(Ok(Message::Close(_))) | None => return Poll::Ready(Ok(())),
                // Pings are answered by tungstenite itself.
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Err(e)) => return Poll::Ready(Err(ws_io_error(e))),
            }
        }
    }
}

/// One binary message per frame.
struct MessageWriter<S> {
    sink: SplitSink<WebSocketStream<S>, Message>,
}

impl<S: AsyncRead + AsyncWrite + Send + Unpin> FrameWriter for MessageWriter<S> {
    fn write_frames<'a>(&'a mut self, frames: &'a [Bytes]) -> BoxFuture<'a, io::Result<()>> {
        Box::pin(async move {
            for frame in frames {
                self.sink
                    .feed(Message::Binary(frame.clone()))
                    .await
                    .map_err(ws_io_error)?;
            }
            self.sink.flush().await.map_err(ws_io_error)
        })
    }

    fn shutdown(&mut self) -> BoxFuture<'_, io::Result<()>> {
        Box::pin(async move { self.sink.close().await.map_err(ws_io_error) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio_tungstenite::tungstenite::protocol::Role;

    /// A client-side WebSocket (raw, no HTTP handshake) and the server-side
    /// `Stream` rs2p makes of the other end.
    async fn pair(max_frame_len: usize) -> (WebSocketStream<tokio::io::DuplexStream>, Stream) {
        let (a, b) = tokio::io::duplex(1 << 20);
        let client = WebSocketStream::from_raw_socket(a, Role::Client, None).await;
        let server =
            WebSocketStream::from_raw_socket(b, Role::Server, Some(ws_config(max_frame_len))).await;
        (client, ws_stream(server, "test".into()))
    }

    #[tokio::test]
    async fn binary_payloads_concatenate_and_control_messages_are_skipped() {
        let (mut client, mut stream) = pair(1024).await;
        for m in [
            Message::Binary(Bytes::from_static(b"\x00\x00\x00\x03ab")),
            Message::Ping(Bytes::from_static(b"p")),
            Message::Binary(Bytes::new()),
            Message::Binary(Bytes::from_static(b"c\x00\x00")),
            Message::Pong(Bytes::new()),
        ] {
            client.send(m).await.unwrap();
        }
        client.close(None).await.unwrap();
        let mut got = Vec::new();
        stream.reader.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"\x00\x00\x00\x03abc\x00\x00");
        // The server closes the TCP side first, as RFC 6455 wants.
        drop(stream);
        // The ping was answered.
        let mut pong = false;
        while let Some(Ok(m)) = client.next().await {
            pong |= matches!(m, Message::Pong(p) if &p[..] == b"p");
        }
        assert!(pong);
    }

    #[tokio::test]
    async fn text_message_is_an_error() {
        let (mut client, mut stream) = pair(1024).await;
        client.send(Message::text("hello")).await.unwrap();
        let mut buf = [0u8; 16];
        let err = stream.reader.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[tokio::test]
    async fn oversize_message_is_refused() {
        let (mut client, mut stream) = pair(100).await;
        client
            .send(Message::Binary(Bytes::from(vec![0u8; 105])))
            .await
            .unwrap();
        let mut buf = [0u8; 256];
        assert!(stream.reader.read(&mut buf).await.is_err());
    }

    #[tokio::test]
    async fn each_frame_is_one_binary_message() {
        let (mut client, mut stream) = pair(1024).await;
        let frames = [Bytes::from_static(b"one"), Bytes::from_static(b"two!")];
        stream.writer.write_frames(&frames).await.unwrap();
        stream.writer.shutdown().await.unwrap();
        drop(stream);
        let mut got = Vec::new();
        while let Some(Ok(m)) = client.next().await {
            got.push(m);
        }
        assert_eq!(
            got[..2],
            [
                Message::Binary(Bytes::from_static(b"one")),
                Message::Binary(Bytes::from_static(b"two!"))
            ]
        );
        assert!(matches!(got.get(2), Some(Message::Close(_))));
    }
}
