//! The `Plaintext` transport: frames straight over TCP.

use std::io;

use tokio::net::TcpStream;

use super::{BoxFuture, ByteStreamWriter, Stream, Transport};

/// Frames over plain TCP, as the references' `Plaintext`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Plaintext;

/// Splits a TCP stream without the lock that a generic split needs.
pub(crate) fn tcp_stream(tcp: TcpStream) -> Stream {
    let _ = tcp.set_nodelay(true);
    let remote = tcp
        .peer_addr()
        .map_or_else(|_| "?".to_owned(), |a| a.to_string());
    let (reader, writer) = tcp.into_split();
    Stream {
        reader: Box::new(reader),
        writer: Box::new(ByteStreamWriter::new(writer)),
        remote,
    }
}

impl Transport for Plaintext {
    fn name(&self) -> &'static str {
        "Plaintext"
    }

    fn connect<'a>(&'a self, host: &'a str, port: u16) -> BoxFuture<'a, io::Result<Stream>> {
        Box::pin(async move { Ok(tcp_stream(TcpStream::connect((host, port)).await?)) })
    }

    fn accept(&self, tcp: TcpStream) -> BoxFuture<'static, io::Result<Stream>> {
        Box::pin(async move { Ok(tcp_stream(tcp)) })
    }
}
