//! [`PeerAddr`]: the address a node advertises and is dialled at.

use std::fmt;

use super::Packet;

/// A node's outward address: the host (a name or an IP literal, as text)
/// and the port that peers dial. Handshakes, peer lists and route responses
/// carry it as the msgpack array `[host, port]`.
///
/// # Examples
/// ```
/// use rs2p::protocol::{Packet, PeerAddr};
/// let addr = PeerAddr::new("127.0.0.1", 4444);
/// assert_eq!(addr.to_string(), "127.0.0.1:4444");
/// assert_eq!(PeerAddr::from_packet(&addr.to_packet()), Some(addr));
/// assert_eq!(PeerAddr::new("::1", 1).to_string(), "[::1]:1");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerAddr {
    /// Host name or IP address, as text.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl PeerAddr {
    /// An address from its parts.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        PeerAddr {
            host: host.into(),
            port,
        }
    }

    /// Reads `HOST:PORT` text (an IPv6 host in brackets: `[::1]:4444`);
    /// `None` if it is not of that form.
    ///
    /// # Examples
    /// ```
    /// use rs2p::protocol::PeerAddr;
    /// assert_eq!(PeerAddr::parse("[::1]:80"), Some(PeerAddr::new("::1", 80)));
    /// assert_eq!(PeerAddr::parse("localhost"), None);
    /// ```
    pub fn parse(text: &str) -> Option<Self> {
        let (host, port) = text.rsplit_once(':')?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() {
            return None;
        }
        Some(PeerAddr::new(host, port.parse().ok()?))
    }

    /// Reads `[host, port]`: a str (or bin holding UTF-8) host and an
    /// integer port that fits `u16`. Anything else is `None`.
    pub fn from_packet(packet: &Packet) -> Option<Self> {
        let [host, port] = <&[Packet; 2]>::try_from(packet.as_array()?).ok()?;
        let host = std::str::from_utf8(host.as_bytes()?).ok()?.to_owned();
        let port = u16::try_from(port.as_u64()?).ok()?;
        Some(PeerAddr { host, port })
    }

    /// The wire form `[host, port]`, host as msgpack str.
    pub fn to_packet(&self) -> Packet {
        Packet::Array(vec![self.host.clone().into(), self.port.into()])
    }
}

impl fmt::Display for PeerAddr {
    /// `host:port`, with an IPv6 literal in brackets (`[::1]:4444`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl From<(String, u16)> for PeerAddr {
    fn from((host, port): (String, u16)) -> Self {
        PeerAddr { host, port }
    }
}

impl From<(&str, u16)> for PeerAddr {
    fn from((host, port): (&str, u16)) -> Self {
        PeerAddr::new(host, port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn parses_text() {
        assert_eq!(PeerAddr::parse("a:1"), Some(PeerAddr::new("a", 1)));
        for bad in ["", ":1", "a", "a:", "a:70000", "a:-1", "[]:1"] {
            assert_eq!(PeerAddr::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn parses_only_host_and_port() {
        let ok = Packet::Array(vec!["h".into(), 80u64.into()]);
        assert_eq!(PeerAddr::from_packet(&ok), Some(PeerAddr::new("h", 80)));
        let bin_host = Packet::Array(vec![Packet::bin(Bytes::from_static(b"h")), 1u64.into()]);
        assert_eq!(
            PeerAddr::from_packet(&bin_host),
            Some(PeerAddr::new("h", 1))
        );
        for bad in [
            Packet::Array(vec!["h".into(), 70_000u64.into()]),
            Packet::Array(vec!["h".into(), (-1i64).into()]),
            Packet::Array(vec!["h".into()]),
            Packet::Array(vec![1u64.into(), 1u64.into()]),
            Packet::Array(vec![Packet::bin(Bytes::from_static(&[0xff])), 1u64.into()]),
            Packet::Nil,
        ] {
            assert_eq!(PeerAddr::from_packet(&bad), None, "{bad:?}");
        }
    }
}
