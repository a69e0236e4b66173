//! The wire protocol of p2p-today 0.7, pure and synchronous: flags, ids,
//! base58, the [`Packet`] value type, msgpack, compression, frames and
//! messages. Nothing here touches a socket, a clock or an async runtime.
//!
//! A frame is `u32 length ‖ body`; the body is `SHA-256(packed) ‖ packed`,
//! optionally compressed as a whole; `packed` is the msgpack array
//! `[msg_type, sender, time, payload…]`. See `docs/protocol.md`.

mod addr;
pub mod base58;
pub mod chord;
pub mod compression;
mod error;
mod flags;
mod frame;
mod ids;
pub mod mesh;
mod message;
pub mod msgpack;
mod packet;
mod rng;
pub mod sync;

pub use addr::PeerAddr;
pub use error::{CodecError, MsgpackError};
pub use flags::{Compression, MainFlag, SubFlag, RESERVED_MAX};
pub use frame::{Frame, FrameDecoder};
pub use ids::{py2p_addr_text, request_id, uuid4_text, IdWire, PeerId, Protocol, PROTOCOL_VERSION};
pub use message::{
    decode_body, decode_frame, encode_id, frame_from_body, id_to_packet, packet_to_id, CodecLimits,
    DecodedFrame, InternalMessage, MessageId, CHECKSUM_LEN, PREFIX_LEN,
};
pub use packet::{Int, Packet};
pub use rng::Rng;
