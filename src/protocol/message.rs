//! [`InternalMessage`]: the message inside every frame, and its encoding to
//! and decoding from frame bodies (checksum, optional compression).

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::compression;
use super::error::CodecError;
use super::flags::{Compression, MainFlag, SubFlag};
use super::ids::{IdWire, PeerId};
use super::msgpack;
use super::packet::Packet;

/// Bytes in the checksum (and message id) that precedes the packed message.
pub const CHECKSUM_LEN: usize = 32;
/// Bytes in the length prefix of a frame.
pub const PREFIX_LEN: usize = 4;

/// A message id: SHA-256 of the packed message.
pub type MessageId = [u8; 32];

/// Bounds applied while decoding (and encoding) frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodecLimits {
    /// Largest frame body accepted or sent, in bytes (the length prefix).
    pub max_frame_len: usize,
    /// Largest body a compressed frame may decompress to, in bytes.
    pub max_decompressed_len: usize,
}

impl CodecLimits {
    /// Default largest frame: 4 MiB.
    pub const DEFAULT_MAX_FRAME_LEN: usize = 4 * 1024 * 1024;
    /// Default largest decompressed body: 16 MiB.
    pub const DEFAULT_MAX_DECOMPRESSED_LEN: usize = 16 * 1024 * 1024;
}

impl Default for CodecLimits {
    fn default() -> Self {
        CodecLimits {
            max_frame_len: Self::DEFAULT_MAX_FRAME_LEN,
            max_decompressed_len: Self::DEFAULT_MAX_DECOMPRESSED_LEN,
        }
    }
}

/// One protocol message: `[msg_type, sender, time, payload…]`.
///
/// For every message the protocol defines, `payload[0]` is a [`SubFlag`].
///
/// # Examples
/// ```
/// use rs2p::protocol::{InternalMessage, MainFlag, SubFlag, PeerId, CodecLimits};
/// use rs2p::packets;
/// let msg = InternalMessage::new(MainFlag::Broadcast, PeerId::from("me"), 1_700_000_000,
///     packets![SubFlag::Broadcast.as_u8(), "hello"]);
/// let frame = msg.encode_frame(None, &CodecLimits::default()).unwrap();
/// let decoded = rs2p::protocol::decode_frame(&frame, &[], &CodecLimits::default()).unwrap();
/// assert_eq!(decoded.message, msg);
/// assert_eq!(decoded.id, msg.id());
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct InternalMessage {
    /// How the message travels.
    pub msg_type: MainFlag,
    /// The id of the node that created it (any peer can forge this).
    pub sender: PeerId,
    /// Unix time in seconds, UTC, when it was created.
    pub time: u64,
    /// The packets after the header; `payload[0]` is the sub-flag.
    pub payload: Vec<Packet>,
}

/// A message decoded from a frame, with what the decoding learnt.
#[derive(Clone, Debug, PartialEq)]
pub struct DecodedFrame {
    /// The message.
    pub message: InternalMessage,
    /// Its id (the checksum, verified).
    pub id: MessageId,
    /// The compression method that the body was under, if any.
    pub compression: Option<Compression>,
}

impl InternalMessage {
    /// A message with these fields.
    pub fn new(msg_type: MainFlag, sender: PeerId, time: u64, payload: Vec<Packet>) -> Self {
        InternalMessage {
            msg_type,
            sender,
            time,
            payload,
        }
    }

    /// The sub-flag in `payload[0]`, if it is one the protocol defines.
    pub fn sub_flag(&self) -> Option<SubFlag> {
        let value = self.payload.first()?.as_u64()?;
        SubFlag::from_u8(u8::try_from(value).ok()?)
    }

    /// The msgpack array `[msg_type, sender, time, payload…]`.
    pub fn pack(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.payload.len() * 16);
        msgpack::encode_array_header(3 + self.payload.len(), &mut out);
        msgpack::encode_int(self.msg_type.as_u8().into(), &mut out);
        encode_id(&self.sender, &mut out);
        msgpack::encode_int(self.time.into(), &mut out);
        for packet in &self.payload {
            msgpack::encode(packet, &mut out);
        }
        out
    }

    /// The message id: SHA-256 of [`pack`](Self::pack).
    pub fn id(&self) -> MessageId {
        Sha256::digest(self.pack()).into()
    }

    /// The frame body: `checksum ‖ packed`, compressed with `method` if given.
    pub fn encode_body(&self, method: Option<Compression>) -> (MessageId, Vec<u8>) {
        let packed = self.pack();
        let id: MessageId = Sha256::digest(&packed).into();
        let mut body = Vec::with_capacity(CHECKSUM_LEN + packed.len());
        body.extend_from_slice(&id);
        body.extend_from_slice(&packed);
        match method {
            Some(m) => (id, compression::compress(m, &body)),
            None => (id, body),
        }
    }

    /// The whole frame: a big-endian `u32` length, then the body.
    ///
    /// # Errors
    /// [`CodecError::FrameTooLarge`] if the body exceeds
    /// `limits.max_frame_len` (the same bound the receiver applies).
    pub fn encode_frame(
        &self,
        method: Option<Compression>,
        limits: &CodecLimits,
    ) -> Result<Bytes, CodecError> {
        let (_, body) = self.encode_body(method);
        frame_from_body(&body, limits)
    }

    /// Reads a message from a packed msgpack array (no checksum).
    ///
    /// # Errors
    /// See [`CodecError`]: bad msgpack, not an array, fewer than 4 packets,
    /// header packets of the wrong type, an unknown `msg_type`.
    pub fn unpack(packed: &[u8]) -> Result<Self, CodecError> {
        let Packet::Array(items) = msgpack::decode(packed)? else {
            return Err(CodecError::NotAnArray);
        };
        if items.len() < 4 {
            return Err(CodecError::TooFewPackets {
                got: items.len(),
                min: 4,
            });
        }
        let mut items = items.into_iter();
        let (Some(msg_type), Some(sender), Some(time)) = (items.next(), items.next(), items.next())
        else {
            return Err(CodecError::TooFewPackets { got: 0, min: 4 });
        };
        let msg_type = match msg_type {
            Packet::Int(i) => {
                let raw = i.as_i128();
                u8::try_from(raw)
                    .ok()
                    .and_then(MainFlag::from_u8)
                    .ok_or(CodecError::UnknownMsgType(raw))?
            }
            _ => {
                return Err(CodecError::WrongType {
                    field: "msg_type",
                    expected: "an integer",
                })
            }
        };
        let sender = packet_to_id(sender).ok_or(CodecError::WrongType {
            field: "sender",
            expected: "str or bin",
        })?;
        let time = time.as_u64().ok_or(CodecError::WrongType {
            field: "time",
            expected: "a non-negative integer",
        })?;
        Ok(InternalMessage {
            msg_type,
            sender,
            time,
            payload: items.collect(),
        })
    }
}

/// Writes an id as bin or str, as its [`IdWire`] says.
pub fn encode_id(id: &PeerId, out: &mut Vec<u8>) {
    match id.wire() {
        IdWire::Bin => msgpack::encode_bin_header(id.as_bytes().len(), out),
        IdWire::Str => msgpack::encode_str_header(id.as_bytes().len(), out),
    }
    out.extend_from_slice(id.as_bytes());
}

/// An id packet (str or bin) as a [`PeerId`] that remembers its form.
pub fn packet_to_id(packet: Packet) -> Option<PeerId> {
    match packet {
        Packet::Bin(b) => Some(PeerId::new(b, IdWire::Bin)),
        Packet::Str(s) => Some(PeerId::new(s.into_bytes(), IdWire::Str)),
        _ => None,
    }
}

/// An id as a packet of the form it remembers.
pub fn id_to_packet(id: &PeerId) -> Packet {
    match id.wire() {
        IdWire::Bin => Packet::Bin(id.bytes().clone()),
        IdWire::Str => Packet::Str(String::from_utf8_lossy(id.as_bytes()).into_owned()),
    }
}

/// Prefixes a body with its length.
///
/// # Errors
/// [`CodecError::FrameTooLarge`] if the body exceeds `limits.max_frame_len`.
pub fn frame_from_body(body: &[u8], limits: &CodecLimits) -> Result<Bytes, CodecError> {
    let len = u32::try_from(body.len())
        .ok()
        .filter(|&n| n as usize <= limits.max_frame_len)
        .ok_or(CodecError::FrameTooLarge {
            len: body.len() as u64,
            max: limits.max_frame_len,
        })?;
    let mut frame = Vec::with_capacity(PREFIX_LEN + body.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(body);
    Ok(Bytes::from(frame))
}

/// Decodes a frame body (without its length prefix).
///
/// `peer_methods` is the compression list the sending peer advertised. As
/// the references do, each of those methods that rs2p supports is tried in
/// the peer's order; the first whose output carries a valid checksum wins,
/// and the body taken as uncompressed is the last candidate.
///
/// # Errors
/// [`CodecError::DecompressedTooLarge`] when a method would exceed
/// `limits.max_decompressed_len` and no other candidate verifies;
/// [`CodecError::BodyTooShort`], [`CodecError::BadChecksum`] when no
/// candidate verifies; then any error of [`InternalMessage::unpack`].
pub fn decode_body(
    body: &[u8],
    peer_methods: &[Compression],
    limits: &CodecLimits,
) -> Result<DecodedFrame, CodecError> {
    let mut first_error: Option<CodecError> = None;
    for &method in peer_methods {
        match compression::decompress(method, body, limits.max_decompressed_len) {
            Ok(plain) => match verify(&plain) {
                Ok(id) => return finish(&plain, id, Some(method)),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            },
            Err(e @ CodecError::DecompressedTooLarge { .. }) => {
                first_error.get_or_insert(e);
            }
            Err(_) => {}
        }
    }
    match verify(body) {
        Ok(id) => finish(body, id, None),
        Err(e) => Err(first_error.unwrap_or(e)),
    }
}

/// Decodes a whole frame (length prefix included), as [`decode_body`] does.
///
/// # Errors
/// [`CodecError::Truncated`] when the input is shorter than announced or
/// longer (trailing bytes count as a wrong length); [`CodecError::FrameTooLarge`]
/// when the prefix exceeds the limit; then those of [`decode_body`].
pub fn decode_frame(
    frame: &[u8],
    peer_methods: &[Compression],
    limits: &CodecLimits,
) -> Result<DecodedFrame, CodecError> {
    let prefix: [u8; PREFIX_LEN] = frame
        .get(..PREFIX_LEN)
        .and_then(|p| p.try_into().ok())
        .ok_or(CodecError::Truncated {
            expected: PREFIX_LEN,
            got: frame.len(),
        })?;
    let len = u32::from_be_bytes(prefix) as usize;
    if len > limits.max_frame_len {
        return Err(CodecError::FrameTooLarge {
            len: len as u64,
            max: limits.max_frame_len,
        });
    }
    if frame.len() != PREFIX_LEN + len {
        return Err(CodecError::Truncated {
            expected: PREFIX_LEN + len,
            got: frame.len(),
        });
    }
    decode_body(&frame[PREFIX_LEN..], peer_methods, limits)
}

fn verify(plain: &[u8]) -> Result<MessageId, CodecError> {
    if plain.len() < CHECKSUM_LEN {
        return Err(CodecError::BodyTooShort(plain.len()));
    }
    let (checksum, packed) = plain.split_at(CHECKSUM_LEN);
    let id: MessageId = Sha256::digest(packed).into();
    if id[..] != checksum[..] {
        return Err(CodecError::BadChecksum);
    }
    Ok(id)
}

fn finish(
    plain: &[u8],
    id: MessageId,
    compression: Option<Compression>,
) -> Result<DecodedFrame, CodecError> {
    let message = InternalMessage::unpack(&plain[CHECKSUM_LEN..])?;
    Ok(DecodedFrame {
        message,
        id,
        compression,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packets;

    fn sample() -> InternalMessage {
        InternalMessage::new(
            MainFlag::Broadcast,
            PeerId::from("sender-id"),
            1_795_608_092,
            packets![0, "hello", Packet::bin(vec![7; 100]), vec![1, 2, 3]],
        )
    }

    #[test]
    fn round_trip_under_every_method() {
        let limits = CodecLimits::default();
        let msg = sample();
        let mut methods: Vec<Option<Compression>> =
            Compression::ALL.iter().map(|&m| Some(m)).collect();
        methods.push(None);
        for method in methods {
            let frame = msg.encode_frame(method, &limits).unwrap();
            let decoded = decode_frame(&frame, &Compression::ALL, &limits).unwrap();
            assert_eq!(decoded.message, msg);
            assert_eq!(decoded.id, msg.id());
            // Told only the method in use, the decoder reports that one.
            let only: Vec<Compression> = method.into_iter().collect();
            let decoded = decode_frame(&frame, &only, &limits).unwrap();
            assert_eq!(decoded.compression, method);
            assert_eq!(decoded.message, msg);
        }
    }

    #[test]
    fn compressed_body_without_advertised_method_fails_checksum() {
        let limits = CodecLimits::default();
        let frame = sample()
            .encode_frame(Some(Compression::Zlib), &limits)
            .unwrap();
        assert!(decode_frame(&frame, &[], &limits).is_err());
        assert!(decode_frame(&frame, &[Compression::Gzip], &limits).is_ok());
    }

    #[test]
    fn truncation_at_every_byte_is_an_error() {
        let limits = CodecLimits::default();
        let frame = sample().encode_frame(None, &limits).unwrap();
        for cut in 0..frame.len() {
            assert!(decode_frame(&frame[..cut], &Compression::ALL, &limits).is_err());
        }
    }

    #[test]
    fn bad_checksum_is_reported() {
        let limits = CodecLimits::default();
        let mut frame = sample().encode_frame(None, &limits).unwrap().to_vec();
        let last = frame.len() - 1;
        frame[last] ^= 1;
        assert_eq!(
            decode_frame(&frame, &[], &limits),
            Err(CodecError::BadChecksum)
        );
    }

    #[test]
    fn oversize_is_refused_both_ways() {
        let limits = CodecLimits {
            max_frame_len: 64,
            max_decompressed_len: 64,
        };
        assert!(matches!(
            sample().encode_frame(None, &limits),
            Err(CodecError::FrameTooLarge { max: 64, .. })
        ));
        let big = sample()
            .encode_frame(None, &CodecLimits::default())
            .unwrap();
        assert!(matches!(
            decode_frame(&big, &[], &limits),
            Err(CodecError::FrameTooLarge { max: 64, .. })
        ));
    }

    #[test]
    fn header_types_are_checked() {
        let cases: Vec<(Vec<Packet>, CodecError)> = vec![
            (packets![1, 2], CodecError::TooFewPackets { got: 2, min: 4 }),
            (
                packets!["x", "id", 1, 0],
                CodecError::WrongType {
                    field: "msg_type",
                    expected: "an integer",
                },
            ),
            (packets![9, "id", 1, 0], CodecError::UnknownMsgType(9)),
            (
                packets![0, 5, 1, 0],
                CodecError::WrongType {
                    field: "sender",
                    expected: "str or bin",
                },
            ),
            (
                packets![0, "id", -1, 0],
                CodecError::WrongType {
                    field: "time",
                    expected: "a non-negative integer",
                },
            ),
        ];
        for (items, expected) in cases {
            let mut packed = Vec::new();
            msgpack::encode(&Packet::Array(items), &mut packed);
            assert_eq!(InternalMessage::unpack(&packed), Err(expected));
        }
        let mut packed = Vec::new();
        msgpack::encode(&Packet::from("not an array"), &mut packed);
        assert_eq!(
            InternalMessage::unpack(&packed),
            Err(CodecError::NotAnArray)
        );
    }

    #[test]
    fn str_ids_stay_str() {
        let msg = InternalMessage::new(
            MainFlag::Whisper,
            PeerId::new("js-node", IdWire::Str),
            5,
            packets![2, "x"],
        );
        let packed = msg.pack();
        assert_eq!(packed[2], 0xa7); // fixstr of 7 bytes
        let back = InternalMessage::unpack(&packed).unwrap();
        assert_eq!(back.sender.wire(), IdWire::Str);
    }
}
