//! # rs2p — peer-to-peer mesh networking, p2p-today protocol 0.7
//!
//! rs2p lets a Rust program broadcast to every node of its peer network
//! without a broker. It speaks protocol 0.7 on the wire, so it joins the same
//! meshes as the Python (`py2p`) and JavaScript (`js2p`) reference nodes.
//!
//! # Quick start
//!
//! See a mesh work, from a fresh clone: `cargo run -- demo` starts eight
//! nodes in one process on loopback, lets them find each other, broadcasts,
//! sends a routed reply, kills a node and shows the mesh heal, then prints
//! what it checked. `rs2p node`, `rs2p send` and `rs2p peers` run real
//! nodes; `rs2p --help` shows examples.
//!
//! In a program, bind a [`MeshSocket`], [`connect`](MeshSocket::connect) it
//! to any node of the mesh, then [`send`](MeshSocket::send) and
//! [`next_message`](MeshSocket::next_message):
//! ```
//! use rs2p::{packets, MeshSocket, MessageKind};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), rs2p::Error> {
//! let a = MeshSocket::bind("127.0.0.1:0").await?; // port 0: any free port
//! let b = MeshSocket::bind("127.0.0.1:0").await?;
//! let c = MeshSocket::bind("127.0.0.1:0").await?;
//! b.connect("127.0.0.1", a.addr().port(), None).await?; // waits for the handshake
//! c.connect("127.0.0.1", b.addr().port(), None).await?;
//!
//! // A broadcast floods the mesh: c gets it through b, once.
//! a.send(packets!["hello", 42]).await?;
//! let msg = c.next_message().await?;
//! assert_eq!(msg.sender(), a.id());
//! assert_eq!(msg.packets()[0].as_str(), Some("hello"));
//!
//! // A reply goes back to the sender alone: directly if connected,
//! // otherwise through a route request, as here.
//! msg.reply(packets!["hi a"])?;
//! let reply = a.next_message().await?;
//! assert_eq!(reply.kind(), MessageKind::Whisper);
//! assert_eq!(reply.sender(), c.id());
//! # for n in [a, b, c] { n.close().await; }
//! # Ok(()) }
//! ```
//! More in `examples/`: `chat.rs` (two terminals), `handlers.rs`
//! ([`MeshSocket::register_handler`] and replies) and `interop_py2p.md`
//! (joining a py2p mesh).
//!
//! # The protocol in brief
//!
//! - **Frames.** A TCP stream of frames: a 4-byte big-endian length, then
//!   `SHA-256(packed) ‖ packed`, the whole body optionally compressed
//!   (snappy, zlib, gzip, bz2, lzma, as the two ends agreed). `packed` is
//!   the msgpack array `[msg_type, sender, time, sub_flag, packets…]`. The
//!   checksum is also the **message id**.
//! - **Subnets.** Each node belongs to a [`Protocol`]: a subnet name and a
//!   transport, hashed with the version `"0.7"` into the subnet id. Nodes of
//!   different subnets refuse each other at the handshake.
//! - **Handshake and peer lists.** On connecting, each side sends its id,
//!   subnet id, advertised address and compression methods; then its peer
//!   list (the ids and addresses of its other peers). A node dials listed
//!   peers until it has `max_outgoing` (default 4) outgoing connections;
//!   incoming ones are not limited by it. That is how a mesh forms from a
//!   single `connect`.
//! - **Broadcasts** flood: every node forwards a new broadcast to all its
//!   peers but the one it came from, and remembers message ids for a while
//!   (the *waterfall*) so each node delivers each message exactly once.
//! - **Whispers** go to one connected peer. A **reply** to a node we are not
//!   connected to first broadcasts a route request; a node connected to the
//!   target answers with its address; the replier dials it and whispers.
//! - **Healing.** Lost peers are redialled with backoff, and remembered
//!   addresses refill the outgoing connections.
//!
//! The full wire format, with worked bytes and where the references
//! disagree, is in `docs/protocol.md`.
//!
//! # Layers
//!
//! - [`protocol`]: the wire format, pure and synchronous (no sockets, no
//!   runtime): flags, ids, base58, the [`Packet`] value, msgpack,
//!   compression, frames, the mesh state machine ([`protocol::mesh`]), its
//!   extension interface for protocol layers ([`protocol::mesh::layer`]),
//!   and the replicated dictionary layer ([`protocol::sync`]).
//! - [`net`]: the tokio side: [`MeshSocket`], its listener, connections and
//!   the actor that drives the state machine.
//! - [`sync`]: [`sync::SyncSocket`], a replicated dictionary over the mesh,
//!   wire-compatible with py2p's and js2p's `SyncSocket`.
//! - [`transport`]: how frames travel: TCP, TLS and WebSocket behind one
//!   trait, chosen by the protocol's `encryption`; TLS in compatibility or
//!   verified mode.
//! - [`sim`]: the same state machines in virtual time: a simulator of
//!   thousands of nodes, an in-memory rig for tests, and layer scenarios.
//!
//! `docs/architecture.md` draws the layers and the path of a broadcast.
//!
//! # Cargo features
//!
//! - `cli` (default): the `rs2p` program and its benchmarks, with what
//!   only they need (`clap`, `tracing-subscriber`, `serde_json`, tokio's
//!   multi-threaded runtime and signals). A program that only uses the
//!   library can leave it out:
//!   `rs2p = { version = "0.1", default-features = false }`. The library
//!   spawns its tasks on whatever tokio runtime it is called from.
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

pub mod bootstrap;
pub mod chord;
pub mod net;
pub mod protocol;
pub mod sim;
pub mod sync;
pub mod transport;

pub use net::{Connection, Error, Event, MeshBuilder, MeshSocket, Message, MessageKind};
pub use protocol::{Packet, PeerId, Protocol};
