//! The tokio side of a mesh node: the listener, per-connection read and
//! write tasks, and the actor that drives the protocol state machine.

mod actor;
mod connection;
mod error;
mod message;
mod socket;

pub use actor::{Handler, Snapshot};
pub use error::Error;
pub use message::{Connection, Event, Message, MessageKind};
pub use socket::{split_host_port, MeshBuilder, MeshSocket};
