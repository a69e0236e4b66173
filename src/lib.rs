//! # rs2p — peer-to-peer mesh networking, p2p-today protocol 0.7
//!
//! rs2p lets a Rust program broadcast to every node of its peer network
//! without a broker. It speaks protocol 0.7 on the wire, so it joins the same
//! meshes as the Python (`py2p`) and JavaScript (`js2p`) reference nodes.
//!
//! The crate is layered:
//! - [`protocol`]: the wire format, pure and synchronous (no sockets, no
//!   runtime): flags, ids, base58, the [`Packet`] value, msgpack,
//!   compression, frames, and the mesh state machine ([`protocol::mesh`]).
//! - [`net`]: the tokio side: [`MeshSocket`], its listener, connections and
//!   the actor that drives the state machine.
//! - [`transport`]: how frames travel: TCP, TLS and WebSocket behind one
//!   trait, chosen by the protocol's `encryption`; TLS in compatibility or
//!   verified mode.
//!
//! # Examples
//! Encode a broadcast as py2p would, and read it back:
//! ```
//! use rs2p::protocol::{decode_frame, CodecLimits, Compression, InternalMessage, MainFlag, PeerId, SubFlag};
//! use rs2p::packets;
//!
//! let limits = CodecLimits::default();
//! let msg = InternalMessage::new(MainFlag::Broadcast, PeerId::from("my-id"), 1_700_000_000,
//!     packets![SubFlag::Broadcast.as_u8(), "hello", 42]);
//! let frame = msg.encode_frame(Some(Compression::Zlib), &limits)?;
//! let back = decode_frame(&frame, &[Compression::Zlib], &limits)?;
//! assert_eq!(back.message.payload[1].as_str(), Some("hello"));
//! # Ok::<(), rs2p::protocol::CodecError>(())
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod net;
pub mod protocol;
pub mod transport;

pub use net::{Connection, Error, Event, MeshBuilder, MeshSocket, Message, MessageKind};
pub use protocol::{Packet, PeerId, Protocol};
