//! The mesh protocol as a pure state machine.
//!
//! [`MeshState`] owns one node's routing table, waterfall, handshake and
//! peer-list decisions, dials and pending route requests. It never touches
//! a socket or a clock: the same code runs under tokio (`rs2p::net`), in
//! the deterministic simulator (`rs2p::sim`), in the in-memory test rig
//! (`rs2p::sim::rig`) and under the fuzzers.
//!
//! # Driving it
//!
//! **Time.** Every input takes `now_ms`, Unix time in milliseconds, and
//! that is the only clock unit of the state machine (message headers carry
//! whole seconds, derived from it). Time must not go backwards between
//! inputs; it may stand still.
//!
//! **Inputs** (each appends [`Action`]s to the caller's `out`):
//!
//! | input | when |
//! |---|---|
//! | [`on_open`](MeshState::on_open) | a connection is open (accepted, or a dial succeeded: pass its [`DialId`]) |
//! | [`on_frame`](MeshState::on_frame) | a whole frame arrived on a connection, in order |
//! | [`on_closed`](MeshState::on_closed) | the peer or the network closed a connection |
//! | [`on_dial_failed`](MeshState::on_dial_failed) | a dial failed before opening |
//! | [`on_tick`](MeshState::on_tick) | every few hundred ms (timeouts, expiry, redials) |
//! | [`send`](MeshState::send), [`whisper`](MeshState::whisper), [`reply`](MeshState::reply), [`keepalive`](MeshState::keepalive), [`request_peers`](MeshState::request_peers), [`renegotiate`](MeshState::renegotiate), [`request_resend`](MeshState::request_resend), [`disconnect`](MeshState::disconnect), [`note_dialling`](MeshState::note_dialling) | the application asks |
//!
//! **Outputs**, to carry out in order:
//!
//! | action | what the driver does |
//! |---|---|
//! | [`Action::Send`] | queue the frame on the connection, without blocking the state machine; if the connection's queue is over its bound, [`close`](MeshState::close) it with [`CloseReason::TooSlow`] |
//! | [`Action::Close`] | close the connection; the state machine has already forgotten it, so do not report it back with `on_closed` |
//! | [`Action::Dial`] | open a connection to the address; report `on_open` (with the dial id) or `on_dial_failed` |
//! | [`Action::Deliver`] | hand the message to the application (handlers, then the receive queue) |
//! | [`Action::Event`] | tell the application ([`MeshEvent`]) |
//! | [`Action::Validate`] | (validation on) ask the application; answer with [`on_validated`](MeshState::on_validated) |
//!
//! Connection ids ([`ConnId`]) are the driver's to allocate; each must be
//! unique for the node's lifetime.
//!
//! # Layers
//!
//! A protocol layer (the replicated dictionary, the DHT, or your own) sits
//! on the mesh through the extension interface in [`layer`]: a [`Stack`]
//! takes the same inputs as a `MeshState` and calls the [`Layer`] at its
//! points. The plain mesh is `Stack<()>`, or a bare `MeshState`.
//!
//! # Files
//!
//! `state` (the state, its views, the tick), `output` (actions, events,
//! ids), `close` (close reasons, send errors), `conns` (connection table,
//! standby failover, handshake deadline), `handshake` (checks, adoption,
//! conflicts), `dial` (dials under way, budget, rate, redial), `relay`
//! (incoming frames, waterfall, relay, dispatch), `outgoing` (message
//! building, frame cache), `peers` (peer lists), `routes` (replies and
//! route requests), `renegotiate`, `commands` (what the application
//! sends), `validation` (holding broadcasts for the application's
//! decision), `layer` (the extension interface), `waterfall`,
//! `address_book`, `config`.

mod address_book;
mod close;
mod commands;
mod config;
mod conns;
mod dial;
mod handshake;
pub mod layer;
mod outgoing;
mod output;
mod peers;
mod relay;
mod renegotiate;
mod routes;
mod state;
mod validation;
mod waterfall;

pub use address_book::AddressBook;
pub use close::{CloseReason, SendError};
pub use commands::Prepared;
pub use config::MeshConfig;
pub use layer::{Layer, LayerCtx, Stack};
pub use output::{Action, ConnId, Delivery, DialId, MeshEvent, PeerInfo, ValidationId};
pub use state::MeshState;
pub use validation::Validation;
pub use waterfall::{Verdict, Waterfall};
