//! The mesh protocol as a pure state machine: [`MeshState`] takes events
//! (a connection opened, a frame arrived, a connection closed, a command
//! from the application, a timer tick) together with the current time, and
//! answers with [`Action`]s for the I/O layer to carry out (send bytes,
//! close a connection, dial an address, deliver a message, raise an event).
//!
//! It owns the routing table, the waterfall, the handshake and peer-list
//! decisions and the pending route requests. It never touches a socket or a
//! clock, so the same code runs under tokio and in a deterministic simulator.

mod address_book;
mod config;
mod state;
mod waterfall;

pub use address_book::{AddressBook, SplitMix64};
pub use config::MeshConfig;
pub use state::{Action, CloseReason, ConnId, Delivery, MeshEvent, MeshState, PeerInfo, SendError};
pub use waterfall::{Verdict, Waterfall};
