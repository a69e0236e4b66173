//! The numeric flags of protocol 0.7: main flags (the `msg_type` of a frame),
//! sub-flags (the first payload packet of every protocol-defined message) and
//! compression methods.
//!
//! Every value in `0x00..=0x2F` is reserved by the protocol; user code that
//! puts its own flag in the first packet should stay above that range.

use std::fmt;

/// Values up to and including this one are reserved by the protocol.
pub const RESERVED_MAX: u8 = 0x2F;

/// The `msg_type` field of a frame: how the frame travels through the mesh.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MainFlag {
    /// Flooded to the whole mesh ("waterfall").
    Broadcast = 0x00,
    /// Connection-level control: compression renegotiation or resend.
    Renegotiate = 0x01,
    /// Sent on one connection only, never forwarded.
    Whisper = 0x02,
    /// Reserved by protocol 0.7, unused.
    Ping = 0x03,
    /// Reserved by protocol 0.7, unused.
    Pong = 0x04,
}

impl MainFlag {
    /// The flag with this numeric value, if the protocol defines one.
    pub fn from_u8(value: u8) -> Option<Self> {
        Some(match value {
            0x00 => Self::Broadcast,
            0x01 => Self::Renegotiate,
            0x02 => Self::Whisper,
            0x03 => Self::Ping,
            0x04 => Self::Pong,
            _ => return None,
        })
    }

    /// The numeric value on the wire.
    pub fn as_u8(self) -> u8 {
        self as u8
    }
}

/// The first payload packet of a protocol-defined message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum SubFlag {
    /// A user broadcast.
    Broadcast = 0x00,
    /// Renegotiation of the compression list.
    Compression = 0x01,
    /// A user whisper (direct message).
    Whisper = 0x02,
    /// Reserved, unused by 0.7.
    Ping = 0x03,
    /// Reserved, unused by 0.7.
    Pong = 0x04,
    /// The opening message of every connection.
    Handshake = 0x05,
    /// Used by other p2p-today socket types.
    Notify = 0x06,
    /// A list of known peers.
    Peers = 0x07,
    /// A route request (`"*"` asks for the peer list).
    Request = 0x08,
    /// Ask the peer to re-send its last message.
    Resend = 0x09,
    /// The answer to a route request.
    Response = 0x0A,
    /// Used by other p2p-today socket types.
    Store = 0x0B,
    /// Used by other p2p-today socket types.
    Retrieve = 0x0C,
    /// Used by other p2p-today socket types.
    Retrieved = 0x0D,
    /// Used by other p2p-today socket types.
    Forward = 0x0E,
    /// Used by other p2p-today socket types.
    NewPaths = 0x0F,
    /// Used by other p2p-today socket types.
    RevokePaths = 0x10,
    /// Used by other p2p-today socket types.
    Delta = 0x11,
}

impl SubFlag {
    /// The flag with this numeric value, if the protocol defines one.
    pub fn from_u8(value: u8) -> Option<Self> {
        Some(match value {
            0x00 => Self::Broadcast,
            0x01 => Self::Compression,
            0x02 => Self::Whisper,
            0x03 => Self::Ping,
            0x04 => Self::Pong,
            0x05 => Self::Handshake,
            0x06 => Self::Notify,
            0x07 => Self::Peers,
            0x08 => Self::Request,
            0x09 => Self::Resend,
            0x0A => Self::Response,
            0x0B => Self::Store,
            0x0C => Self::Retrieve,
            0x0D => Self::Retrieved,
            0x0E => Self::Forward,
            0x0F => Self::NewPaths,
            0x10 => Self::RevokePaths,
            0x11 => Self::Delta,
            _ => return None,
        })
    }

    /// The numeric value on the wire.
    pub fn as_u8(self) -> u8 {
        self as u8
    }
}

/// A compression method a connection may use for its frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Compression {
    /// Raw snappy block format.
    Snappy = 0x20,
    /// RFC 1950 zlib stream.
    Zlib = 0x13,
    /// RFC 1952 gzip stream.
    Gzip = 0x11,
    /// bzip2 stream.
    Bz2 = 0x10,
    /// `.xz` container.
    Lzma = 0x12,
}

impl Compression {
    /// Every method rs2p supports, in its default order of preference
    /// (the same order py2p advertises).
    pub const ALL: [Compression; 5] = [
        Compression::Snappy,
        Compression::Zlib,
        Compression::Gzip,
        Compression::Bz2,
        Compression::Lzma,
    ];

    /// The method with this numeric value, if the protocol defines one.
    pub fn from_u8(value: u8) -> Option<Self> {
        Some(match value {
            0x20 => Self::Snappy,
            0x13 => Self::Zlib,
            0x11 => Self::Gzip,
            0x10 => Self::Bz2,
            0x12 => Self::Lzma,
            _ => return None,
        })
    }

    /// The numeric value on the wire.
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// The method's usual lowercase name (`"zlib"`, `"snappy"`, …).
    pub fn name(self) -> &'static str {
        match self {
            Self::Snappy => "snappy",
            Self::Zlib => "zlib",
            Self::Gzip => "gzip",
            Self::Bz2 => "bz2",
            Self::Lzma => "lzma",
        }
    }

    /// The method used to send to a peer: the first of `ours` (our order of
    /// preference) that the peer advertised in `theirs`; `None` means the
    /// frames go uncompressed.
    ///
    /// # Examples
    /// ```
    /// use rs2p::protocol::Compression;
    /// let ours = [Compression::Snappy, Compression::Zlib, Compression::Gzip];
    /// let theirs = [Compression::Gzip, Compression::Zlib];
    /// assert_eq!(Compression::select(&ours, &theirs), Some(Compression::Zlib));
    /// assert_eq!(Compression::select(&ours, &[]), None);
    /// ```
    pub fn select(ours: &[Compression], theirs: &[Compression]) -> Option<Compression> {
        ours.iter().copied().find(|m| theirs.contains(m))
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip() {
        for v in 0..=255u8 {
            if let Some(f) = MainFlag::from_u8(v) {
                assert_eq!(f.as_u8(), v);
            }
            if let Some(f) = SubFlag::from_u8(v) {
                assert_eq!(f.as_u8(), v);
            }
            if let Some(c) = Compression::from_u8(v) {
                assert_eq!(c.as_u8(), v);
            }
        }
        assert_eq!(SubFlag::Response.as_u8(), 0x0A);
        assert_eq!(SubFlag::Delta.as_u8(), 0x11);
        assert_eq!(Compression::Snappy.as_u8(), 0x20);
        assert!(MainFlag::from_u8(0x05).is_none());
        assert!(SubFlag::from_u8(0x12).is_none());
    }
}
