//! Recognising why a connection failed at the transport level, so the
//! error names the fix: a peer that speaks another transport (recognised
//! from its first bytes), and certificates refused in verified TLS.
//!
//! Every transport sees the peer's first bytes before it can fail: the
//! `Plaintext` read loop before it splits the first frame, the TLS and
//! WebSocket handshakes while they run. Those bytes tell the transports
//! apart:
//!
//! | first bytes | the peer speaks |
//! |---|---|
//! | a TLS record header (`16 03 0x`, an alert `15 03 0x`, …) | TLS: `SSL` or `wss` |
//! | `GET `, `POST `, … or `HTTP/` | HTTP: `ws` (or a web client) |
//! | a plausible 4-byte frame length | mesh frames: `Plaintext` |
//!
//! and inside TLS, HTTP means `wss` and frames mean `SSL`.

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What a peer was found to speak, from the first bytes it sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Speaks {
    /// Mesh frames in the clear: the `Plaintext` transport.
    Plaintext,
    /// TLS: the `SSL` or `wss` transport (the two look the same before
    /// the TLS handshake).
    Tls,
    /// HTTP in the clear: the `ws` transport, or a web client.
    Http,
    /// Mesh frames inside TLS: the `SSL` transport.
    Ssl,
    /// HTTP inside TLS: the `wss` transport.
    Wss,
}

impl Speaks {
    /// What it is, in words.
    fn describe(self) -> &'static str {
        match self {
            Speaks::Plaintext => "mesh frames in the clear (the Plaintext transport)",
            Speaks::Tls => "TLS (the SSL or wss transport)",
            Speaks::Http => "HTTP (the ws transport, or a web client)",
            Speaks::Ssl => "mesh frames inside TLS (the SSL transport)",
            Speaks::Wss => "WebSocket inside TLS (the wss transport)",
        }
    }

    /// The `rs2p node --transport` value(s) that speak it.
    fn option(self) -> &'static str {
        match self {
            Speaks::Plaintext => "`--transport plaintext`, encryption \"Plaintext\"",
            Speaks::Tls => "`--transport ssl` or `wss`, encryption \"SSL\" or \"wss\"",
            Speaks::Http => "`--transport ws`, encryption \"ws\"",
            Speaks::Ssl => "`--transport ssl`, encryption \"SSL\"",
            Speaks::Wss => "`--transport wss`, encryption \"wss\"",
        }
    }
}

/// Why a peer was refused (or refused us) at the transport level, in
/// words that name the fix. Carried by
/// [`CloseReason::Transport`](crate::protocol::mesh::CloseReason::Transport)
/// in [`Event::Rejected`](crate::Event::Rejected), and by
/// [`Error::Refused`](crate::Error::Refused) from
/// [`MeshSocket::connect`](crate::MeshSocket::connect).
///
/// # Examples
/// ```
/// use rs2p::transport::{Refusal, Speaks};
/// let r = Refusal::WrongTransport {
///     remote: "127.0.0.1:4444".into(),
///     theirs: Speaks::Tls,
///     ours: "Plaintext",
/// };
/// assert!(r.to_string().starts_with("the peer at 127.0.0.1:4444 speaks TLS"));
/// assert!(r.to_string().contains("--transport ssl"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The peer speaks another transport.
    WrongTransport {
        /// The peer's address.
        remote: String,
        /// What it speaks.
        theirs: Speaks,
        /// This node's transport (its `encryption` name).
        ours: &'static str,
    },
    /// The peer refused this node's certificate during the TLS handshake:
    /// it runs verified TLS and this node's certificate passes neither its
    /// trusted roots nor its pins (or this node showed none).
    CertificateRefused {
        /// The peer's address.
        remote: String,
        /// The TLS alert it sent.
        alert: String,
    },
    /// This node refused the peer's certificate (verified TLS): it does
    /// not chain to a trusted root and is not pinned, or the peer showed
    /// none.
    CertificateRejected {
        /// The peer's address.
        remote: String,
        /// What was wrong with it.
        reason: String,
    },
    /// The transport's own handshake (TLS, WebSocket) failed for another
    /// reason, or did not finish in time.
    Handshake {
        /// The peer's address.
        remote: String,
        /// This node's transport.
        ours: &'static str,
        /// What failed.
        error: String,
    },
}

impl Refusal {
    /// The peer's address.
    pub fn remote(&self) -> &str {
        match self {
            Refusal::WrongTransport { remote, .. }
            | Refusal::CertificateRefused { remote, .. }
            | Refusal::CertificateRejected { remote, .. }
            | Refusal::Handshake { remote, .. } => remote,
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::WrongTransport {
                remote,
                theirs,
                ours,
            } => write!(
                f,
                "the peer at {remote} speaks {}, but this node's transport is {ours}: \
                 both sides need the same transport ({} on both)",
                theirs.describe(),
                theirs.option()
            ),
            Refusal::CertificateRefused { remote, alert } => write!(
                f,
                "the peer at {remote} refused this node's certificate (TLS alert: {alert}): \
                 it runs verified TLS and does not trust this node; give this node a \
                 certificate that chains to one of the peer's trusted roots (--trust) or \
                 that it pins (--pin)"
            ),
            Refusal::CertificateRejected { remote, reason } => write!(
                f,
                "refused the certificate of the peer at {remote} ({reason}): this node runs \
                 verified TLS and the peer's certificate chains to none of its trusted roots \
                 (--trust) and is not pinned (--pin)"
            ),
            Refusal::Handshake {
                remote,
                ours,
                error,
            } => write!(f, "{ours} handshake with {remote} failed: {error}"),
        }
    }
}

impl std::error::Error for Refusal {}

/// The most bytes [`recognise`] looks at.
pub(crate) const SNIFF_LEN: usize = 8;

/// What the first bytes of a stream are, if they are recognisably not
/// what this transport expects. `inside_tls`: the bytes were decrypted
/// (TLS is done; what runs inside it is the question). `frames_expected`:
/// mesh frames are what this side wants (so they are not recognised as
/// foreign).
pub(crate) fn recognise(first: &[u8], inside_tls: bool, frames_expected: bool) -> Option<Speaks> {
    if first.is_empty() {
        return None;
    }
    if !inside_tls && is_tls_record(first) {
        return Some(Speaks::Tls);
    }
    if is_http(first) {
        return Some(if inside_tls {
            Speaks::Wss
        } else {
            Speaks::Http
        });
    }
    if !frames_expected && looks_like_frame(first) {
        return Some(if inside_tls {
            Speaks::Ssl
        } else {
            Speaks::Plaintext
        });
    }
    None
}

/// A TLS record header: content type 20–23 (change cipher spec, alert,
/// handshake, application data), then major version 3, minor 0–4.
fn is_tls_record(b: &[u8]) -> bool {
    matches!(b[0], 0x14..=0x17)
        && b.get(1).is_none_or(|&v| v == 3)
        && b.get(2).is_none_or(|&v| v <= 4)
}

/// The start of an HTTP request or response.
fn is_http(b: &[u8]) -> bool {
    const STARTS: [&[u8]; 9] = [
        b"GET ",
        b"POST ",
        b"HEAD ",
        b"PUT ",
        b"DELETE ",
        b"OPTIONS ",
        b"PATCH ",
        b"CONNECT ",
        b"HTTP/",
    ];
    let n = b.len().min(4);
    n >= 3 && STARTS.iter().any(|s| s.starts_with(&b[..n.min(s.len())]))
}

/// A 4-byte big-endian length prefix of a plausible mesh frame: a body
/// of at least a checksum and at most 16 MiB. (Any TLS record or HTTP
/// text reads as a far larger length.)
fn looks_like_frame(b: &[u8]) -> bool {
    let Some(prefix) = b.get(..4) else {
        // Fewer bytes: a frame's prefix starts with zero bytes.
        return b[0] == 0;
    };
    let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
    (32..=16 << 20).contains(&len)
}

/// A certificate problem in an I/O error from a TLS stream: an alert the
/// peer sent about our certificate, or our refusal of its.
pub(crate) fn certificate_problem(e: &std::io::Error, remote: &str) -> Option<Refusal> {
    find_rustls(e).and_then(|tls| certificate_refusal(tls, remote))
}

/// As [`certificate_problem`], from a rustls error.
pub(crate) fn certificate_refusal(e: &rustls::Error, remote: &str) -> Option<Refusal> {
    use rustls::AlertDescription as A;
    match e {
        rustls::Error::AlertReceived(
            alert @ (A::BadCertificate
            | A::UnsupportedCertificate
            | A::CertificateRevoked
            | A::CertificateExpired
            | A::CertificateUnknown
            | A::UnknownCA
            | A::AccessDenied
            | A::CertificateRequired
            | A::DecryptError),
        ) => Some(Refusal::CertificateRefused {
            remote: remote.to_owned(),
            alert: format!("{alert:?}"),
        }),
        rustls::Error::InvalidCertificate(why) => Some(Refusal::CertificateRejected {
            remote: remote.to_owned(),
            reason: format!("{why:?}"),
        }),
        rustls::Error::NoCertificatesPresented => Some(Refusal::CertificateRejected {
            remote: remote.to_owned(),
            reason: "it showed no certificate".to_owned(),
        }),
        _ => None,
    }
}

/// A refusal as the `io::Error` the [`Transport`](super::Transport)
/// methods return; [`from_io`] takes it back out.
pub(crate) fn into_io(refusal: Refusal) -> std::io::Error {
    tracing::info!(%refusal, "transport handshake refused");
    std::io::Error::new(std::io::ErrorKind::ConnectionAborted, refusal)
}

impl Refusal {
    /// The refusal a [`Transport`](super::Transport) method's
    /// `io::Error` carries, if it was recognised.
    pub fn from_io(e: &std::io::Error) -> Option<&Refusal> {
        e.get_ref()?.downcast_ref::<Refusal>()
    }
}

/// Why a transport handshake failed, as the `io::Error` to return: a
/// recognised [`Refusal`] (a certificate problem in `cause`, or a peer
/// that speaks another transport, from the bytes it sent, `seen`), or
/// else `cause` as it is. `stage` is `"TLS handshake"` or `"WebSocket
/// handshake"`.
pub(crate) fn handshake_failed(
    ours: &'static str,
    remote: &str,
    stage: &str,
    cause: &(dyn std::error::Error + 'static),
    seen: &[u8],
    inside_tls: bool,
) -> std::io::Error {
    if let Some(refusal) = find_rustls(cause).and_then(|e| certificate_refusal(e, remote)) {
        return into_io(refusal);
    }
    // A TLS record answering our own TLS handshake is no sign of another
    // transport (a TLS peer that fails the handshake answers with an alert).
    let ours_is_tls = !inside_tls && stage.starts_with("TLS");
    let theirs = recognise(seen, inside_tls, false).filter(|t| !(ours_is_tls && *t == Speaks::Tls));
    if let Some(theirs) = theirs {
        return into_io(Refusal::WrongTransport {
            remote: remote.to_owned(),
            theirs,
            ours,
        });
    }
    super::refused(ours, remote, stage, cause)
}

/// The rustls error in an error's chain (looking inside `io::Error`s).
fn find_rustls<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut current = Some(e);
    while let Some(err) = current {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        current = match err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    None
}

/// A stream that keeps a copy of the first [`SNIFF_LEN`] bytes read
/// through it, for [`recognise`] after a failed handshake (the handshake
/// consumes the stream).
pub(crate) struct Recorded<S> {
    inner: S,
    seen: Arc<Mutex<Vec<u8>>>,
    /// Bytes recorded so far (no lock once full).
    recorded: usize,
}

/// The bytes a [`Recorded`] stream saw.
#[derive(Clone, Default)]
pub(crate) struct Seen(Arc<Mutex<Vec<u8>>>);

impl Seen {
    pub(crate) fn bytes(&self) -> Vec<u8> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl<S> Recorded<S> {
    pub(crate) fn new(inner: S) -> (Self, Seen) {
        let seen = Arc::new(Mutex::new(Vec::with_capacity(SNIFF_LEN)));
        (
            Recorded {
                inner,
                seen: seen.clone(),
                recorded: 0,
            },
            Seen(seen),
        )
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Recorded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if self.recorded < SNIFF_LEN {
            let new = &buf.filled()[before..];
            let take = new.len().min(SNIFF_LEN - self.recorded);
            if take > 0 {
                self.seen
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(&new[..take]);
                self.recorded += take;
            }
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Recorded<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A stream whose first bytes were read ahead (to recognise the peer)
/// and are handed out again before the rest.
pub(crate) struct Prefixed<S> {
    prefix: Vec<u8>,
    at: usize,
    inner: S,
}

impl<S: AsyncRead + Unpin> Prefixed<S> {
    /// Reads the first bytes of `inner` (at least 4, unless the stream
    /// ends first) and returns them with the stream that replays them.
    pub(crate) async fn read_ahead(mut inner: S) -> std::io::Result<(Vec<u8>, Self)> {
        use tokio::io::AsyncReadExt;
        let mut prefix = vec![0u8; SNIFF_LEN];
        let mut got = 0;
        while got < 4 {
            let n = inner.read(&mut prefix[got..]).await?;
            if n == 0 {
                break;
            }
            got += n;
        }
        prefix.truncate(got);
        Ok((
            prefix.clone(),
            Prefixed {
                prefix,
                at: 0,
                inner,
            },
        ))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.at < self.prefix.len() {
            let n = (self.prefix.len() - self.at).min(buf.remaining());
            let at = self.at;
            buf.put_slice(&self.prefix[at..at + n]);
            self.at += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_bytes() {
        // A TLS ClientHello, and a TLS alert.
        assert_eq!(
            recognise(b"\x16\x03\x01\x02\x00", false, true),
            Some(Speaks::Tls)
        );
        assert_eq!(
            recognise(b"\x15\x03\x03\x00\x02\x02\x32", false, true),
            Some(Speaks::Tls)
        );
        assert_eq!(
            recognise(b"GET / HTTP/1.1\r\n", false, true),
            Some(Speaks::Http)
        );
        assert_eq!(
            recognise(b"HTTP/1.1 400 Bad", false, true),
            Some(Speaks::Http)
        );
        assert_eq!(
            recognise(b"GET / HTTP/1.1\r\n", true, true),
            Some(Speaks::Wss)
        );
        // A frame is foreign only where frames are not expected.
        let frame = b"\x00\x00\x01\x2c\xaa\xbb";
        assert_eq!(recognise(frame, false, true), None);
        assert_eq!(recognise(frame, false, false), Some(Speaks::Plaintext));
        assert_eq!(recognise(frame, true, false), Some(Speaks::Ssl));
        assert_eq!(recognise(b"\x99\x99 garbage", false, false), None);
        assert_eq!(recognise(b"", false, false), None);
    }

    #[test]
    fn messages_name_the_fix() {
        let r = Refusal::WrongTransport {
            remote: "1.2.3.4:5".into(),
            theirs: Speaks::Http,
            ours: "Plaintext",
        };
        let text = r.to_string();
        assert!(text.contains("speaks HTTP"), "{text}");
        assert!(text.contains("--transport ws"), "{text}");
        let io = into_io(r.clone());
        assert_eq!(Refusal::from_io(&io), Some(&r));
        assert_eq!(io.to_string(), text);
    }
}
