//! The replicated dictionary of py2p's and js2p's `SyncSocket`, as a
//! protocol layer ([`SyncState`]) on the mesh.
//!
//! Every node holds the same key → value dictionary. The wire, as the
//! references write it:
//!
//! | what | message |
//! |---|---|
//! | set | broadcast `[store (0x0B), key, value]` |
//! | delete | broadcast `[store, key, nil]` |
//! | delta (merge a map into a map) | broadcast `[delta (0x11), key, map]` |
//! | catch-up, to a peer right after its handshake (after the peer list) | whisper `[store, key, value, owner, time]` per entry |
//!
//! A write carries its metadata: the sender's id and the message time (a
//! catch-up entry carries the original ones). The **lease rule** decides
//! whether a write applies: the key has no metadata; the writer owns it; it
//! is a delta and leasing is off; the key's last write is more than an hour
//! old; both writes carry the same time and the old owner's id is greater
//! (as bytes); or the write is newer and leasing is off. Leasing is part of
//! the subnet: `name + "1"` when on, `name + "0"` when off, so nodes with
//! different settings never meet.
//!
//! # Where rs2p does better than the references
//!
//! - **Bounded**: `max_keys` and `max_value_len` ([`SyncConfig`]); a local
//!   write past them is a typed error, a peer's is dropped and counted.
//! - **No dropped connections** for what py2p raises on (and then drops
//!   the peer): a remote delete of a key we do not hold, a delta onto a
//!   value that is not a map (or a delta that is not a map), an owner that
//!   came as str (js2p) compared with one that came as bin (py2p) — ids
//!   compare by their bytes — and malformed store messages. Each is counted
//!   in [`SyncStats`].
//! - **Key and value types are kept** as they came: a str key and a bin key
//!   with the same bytes are two keys, as on the wire. Keys given as Rust
//!   text are sent as bin (what py2p's API does), so py2p can read them.
//! - **Catch-up is paced**: 256 KiB at a time per peer, the next part once
//!   the peer's send queue has drained (or 1 MiB at the next tick), so a large
//!   dictionary neither overflows the newcomer's send buffer nor waits for
//!   ticks.
//! - **Local updates are all or nothing**: every key is checked before any
//!   is stored or sent.

mod state;
mod store;

pub use state::{SyncEvent, SyncState, SyncStats, SyncView};
pub(crate) use store::{encoded_len, merge_map};
pub use store::{Entry, Meta, Store, SyncConfig, SyncError, SyncKey, LEASE_SECS};
