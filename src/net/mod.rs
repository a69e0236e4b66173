//! The tokio side of a mesh node: the listener, per-connection read and
//! write tasks, and the actor that drives the protocol state machine.

mod actor;
mod builder;
mod congestion;
mod connection;
mod error;
mod inspect;
mod message;
mod messaging;
pub mod metrics;
pub(crate) mod published;
mod socket;
pub mod validation;

pub use actor::{Handler, Snapshot};
pub use builder::{split_host_port, MeshBuilder};
pub use error::Error;
pub use message::{Connection, Event, Message, MessageKind};
pub use messaging::{EventStream, Lagged};
#[cfg(feature = "metrics")]
pub use metrics::{Metrics, MetricsGroup};
pub use socket::MeshSocket;
pub use validation::{PendingValidation, Validations, Validator};
