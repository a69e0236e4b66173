//! The errors of the codec layer. "Need more bytes" is not an error: the
//! frame splitter answers it with `Ok(None)`.

use super::flags::Compression;

/// Why bytes could not be read as a msgpack value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MsgpackError {
    /// The input ended inside a value.
    #[error("msgpack input ends inside a value")]
    UnexpectedEnd,
    /// A marker byte that msgpack never uses (`0xc1`).
    #[error("invalid msgpack marker byte 0x{0:02x}")]
    InvalidMarker(u8),
    /// A str whose bytes are not UTF-8.
    #[error("msgpack str is not valid UTF-8")]
    InvalidUtf8,
    /// Arrays and maps nest deeper than the decoder allows.
    #[error("msgpack value nests deeper than {} levels", super::msgpack::MAX_DEPTH)]
    TooDeep,
    /// Bytes are left over after the value.
    #[error("{0} bytes left over after the msgpack value")]
    TrailingBytes(usize),
}

/// Why a frame could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The length prefix (or an outgoing frame) exceeds the configured maximum.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// The length announced or produced.
        len: u64,
        /// The configured maximum.
        max: usize,
    },
    /// The input ended before the frame it announced was complete.
    #[error("frame truncated: {expected} bytes announced, {got} present")]
    Truncated {
        /// Bytes the length prefix announced (plus the prefix itself).
        expected: usize,
        /// Bytes actually present.
        got: usize,
    },
    /// The body is too short to hold the 32-byte checksum.
    #[error("frame body of {0} bytes is too short to hold its checksum")]
    BodyTooShort(usize),
    /// SHA-256 of the packed message does not match the checksum.
    #[error("frame checksum does not match its contents")]
    BadChecksum,
    /// Decompressing would produce more than the configured maximum.
    #[error("{method} body decompresses to more than {max} bytes")]
    DecompressedTooLarge {
        /// The method that was tried.
        method: Compression,
        /// The configured maximum.
        max: usize,
    },
    /// The body is not valid data of the given compression method.
    #[error("{method} decompression failed: {reason}")]
    Decompress {
        /// The method that was tried.
        method: Compression,
        /// What the codec reported.
        reason: String,
    },
    /// The packed message is not valid msgpack.
    #[error("bad msgpack: {0}")]
    Msgpack(#[from] MsgpackError),
    /// The packed message is not a msgpack array.
    #[error("packed message is not an array")]
    NotAnArray,
    /// The array has fewer than the required packets.
    #[error("message has {got} packets, at least {min} required")]
    TooFewPackets {
        /// How many packets the array held.
        got: usize,
        /// How many the message needs.
        min: usize,
    },
    /// A packet has the wrong msgpack type.
    #[error("packet `{field}` has the wrong type: expected {expected}")]
    WrongType {
        /// Which packet.
        field: &'static str,
        /// What it should have been.
        expected: &'static str,
    },
    /// The `msg_type` packet is an integer no main flag has.
    #[error("unknown message type {0}")]
    UnknownMsgType(i128),
}
