//! The distributed hash table of py2p's and js2p's `ChordSocket`, as a
//! protocol layer ([`ChordState`]) on the mesh.
//!
//! # The ring
//!
//! A node's place on the ring is its id base58-decoded to an integer; the
//! ring has 2^384 places and `distance(a, b) = (b - a) mod 2^384`. Every
//! key is stored five times, under five hashes of its bytes ([`Method`]):
//! sha1 << 224, sha224 << 160, sha256 << 128, sha384 and sha512. The node
//! **responsible** for a hash is, among the storing nodes a node knows
//! (itself, if it stores, and its direct peers that said they store), the
//! one with the smallest `distance(node, hash)`: the nearest at or before
//! the hash. Writes and lookups go there hop by hop, each node applying the
//! same rule.
//!
//! # The wire (whispers unless said)
//!
//! | what | message |
//! |---|---|
//! | meta: whether the sender stores | `[handshake (0x05), "0"\|"1"]` ("1": leeching) |
//! | a key was added / deleted (broadcast; on connecting, whispered per known key) | `[notify (0x06), key]` / `[notify, key, "del"]` |
//! | store (nil deletes) | `[store (0x0B), method, hash, value]` |
//! | merge a map into a map | `[delta (0x11), method, hash, map]` |
//! | lookup / its answer | `[retrieve (0x0C), method, hash]` / `[retrieved (0x0D), method, hash, value\|nil]` |
//!
//! `method` is the table's name (`sha1` … `sha512`) and `hash` the base58
//! text of the hash; py2p sends both as bin, js2p as str. rs2p writes them
//! in the form the receiving peer uses for its id (bin to py2p, str to
//! js2p), accepts either, and answers a retrieve in the exact packets it
//! came in (py2p matches answers by their types). rs2p appends the key
//! itself to its stores and deltas (`[store, method, hash, value, key]`);
//! the references read only the first four packets.
//!
//! A `get` asks the five tables and returns the value that more than two
//! of them agree on. `set` writes the five, then broadcasts the key if it
//! is new. `join` makes a node store; `unjoin` hands its entries to the
//! storing peers now responsible for them.
//!
//! # Where rs2p does better than the references
//!
//! - **Nothing readable is lost with a storing node.** Five slots alone do
//!   not protect a key: on a small or uneven ring one node is often
//!   responsible for three or more of a key's slots. So every slot a
//!   storing node holds is also copied to the node that would be
//!   responsible for it without this one (its predecessor on the ring;
//!   see the `replica` file for the message, which py2p ignores), and
//!   when a storing peer leaves, that node takes the copies over at once:
//!   gets keep working and each key has five slots again. As a second
//!   line, every node keeps the key list (the notify broadcasts): when a
//!   storing peer leaves, and every `repair_interval_ms` anyway, each
//!   storing node checks every known key, and a slot that the ring rule
//!   now makes its own but that it does not hold (lost, or never handed
//!   over) is read from the key's other tables — two agreeing answers
//!   suffice — and stored.
//! - **Ring links.** A storing node keeps connections to its ring
//!   neighbours and a few fingers (see the `links` file), so hop-by-hop
//!   forwarding reaches the responsible node in few hops in a mesh of any
//!   size; py2p relies on every node being connected to every other.
//! - **A forwarding node does not answer nil first.** It holds the
//!   request and answers when the next hop does (py2p answers nil at once,
//!   then the value). A get still takes a late value after a nil (from
//!   py2p forwarders) until it is decided.
//! - **Typed results.** A get ends with the value, or
//!   [`ChordError::NotFound`] (every table said nil),
//!   [`ChordError::NoQuorum`] or [`ChordError::Timeout`]; py2p times out
//!   on a missing key.
//! - **Bounded** ([`ChordConfig`]): known keys, entries held, value size,
//!   lookups under way, peers waiting on one forwarded lookup.
//! - **No dropped connections**: what makes py2p drop a peer (a nil store
//!   for a slot it lacks, an unknown table, a hash that is not base58, a
//!   meta that is not an integer) and anything malformed is counted in
//!   [`ChordStats`] and ignored.
//! - **js2p nodes never store rs2p's data.** js2p's chord module is
//!   largely broken (it loses what it is handed), so a peer whose id comes
//!   as msgpack str (js2p's form; py2p and rs2p chord nodes send bin) is
//!   served but never treated as storing, whatever its meta says
//!   ([`ChordConfig::str_peers_store`] to allow it).
//! - **Deletes remove the key** from the key list (py2p adds it).
//! - **Both ends send their meta** on connecting (py2p only the accepting
//!   end, so a storing node that dials a peer never says it stores), and
//!   an unjoining node with no storing peer keeps its entries until one
//!   appears (py2p drops them).

mod config;
mod links;
mod lookup;
mod replica;
mod ring;
mod state;
mod tables;

pub use config::{ChordConfig, ChordError, ChordEvent, ChordStats, GetId, GetResult};
pub use ring::{distance, Method, Position, Slot};
pub use state::{ChordState, Entry};
