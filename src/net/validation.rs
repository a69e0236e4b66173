//! Validation before relay, as the application sees it: a synchronous
//! validator called in the node ([`MeshBuilder::validator`]), or broadcasts
//! handed out one by one to be decided when the application is ready
//! ([`MeshBuilder::async_validation`], [`MeshSocket::validations`]).
//!
//! Either way a new broadcast from a peer is neither relayed nor delivered
//! until it is accepted; a rejected one is dropped and counted against the
//! peer that sent it ([`PeerInfo::rejected`](crate::protocol::mesh::PeerInfo::rejected)),
//! which is disconnected past `max_rejections`. Nothing changes on the
//! wire: peers just see the broadcast not relayed. The node's own
//! broadcasts are never validated.
//!
//! [`MeshBuilder::validator`]: super::MeshBuilder::validator
//! [`MeshBuilder::async_validation`]: super::MeshBuilder::async_validation
//! [`MeshSocket::validations`]: super::MeshSocket::validations

use std::fmt;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::actor::Command;
use super::message::{Connection, Message};
use crate::protocol::mesh::{Validation, ValidationId};

/// A synchronous validator: called in the node's actor for every new
/// broadcast (keep it quick; a panic counts as [`Validation::Ignore`]).
pub type Validator = Arc<dyn Fn(&Message, &Connection) -> Validation + Send + Sync + 'static>;

/// How the node asks.
#[derive(Clone)]
pub(crate) enum ValidationMode {
    Sync(Validator),
    Async(mpsc::Sender<PendingValidation>),
}

/// A broadcast waiting for your decision. Decide with
/// [`accept`](Self::accept), [`reject`](Self::reject) or
/// [`ignore`](Self::ignore); dropping it undecided ignores it.
pub struct PendingValidation {
    pub(crate) message: Message,
    pub(crate) connection: Connection,
    pub(crate) ticket: ValidationId,
    pub(crate) commands: mpsc::WeakUnboundedSender<Command>,
    pub(crate) decided: bool,
}

impl PendingValidation {
    /// The broadcast.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// The connection it came on (the peer that relayed it to us, not
    /// necessarily its sender).
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// Relay and deliver it.
    pub fn accept(self) {
        self.decide(Validation::Accept);
    }

    /// Drop it and count it against the peer it came from.
    pub fn reject(self) {
        self.decide(Validation::Reject);
    }

    /// Drop it without blaming anyone.
    pub fn ignore(self) {
        self.decide(Validation::Ignore);
    }

    fn decide(mut self, verdict: Validation) {
        self.send(verdict);
    }

    fn send(&mut self, verdict: Validation) {
        self.decided = true;
        if let Some(tx) = self.commands.upgrade() {
            let _ = tx.send(Command::Validated {
                ticket: self.ticket,
                verdict,
            });
        }
    }
}

impl Drop for PendingValidation {
    fn drop(&mut self) {
        if !self.decided {
            self.send(Validation::Ignore);
        }
    }
}

impl fmt::Debug for PendingValidation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingValidation")
            .field("message", &self.message)
            .field("connection", &self.connection)
            .finish()
    }
}

/// The broadcasts waiting for your decision, in arrival order (at most
/// `max_pending_validations` at once: past that the node drops new ones
/// until you catch up).
#[derive(Debug)]
pub struct Validations {
    pub(crate) rx: mpsc::Receiver<PendingValidation>,
}

impl Validations {
    /// The next broadcast to decide about; `None` once the node has shut
    /// down.
    ///
    /// # Cancel safety
    /// Cancel-safe: a broadcast is not lost if the future is dropped.
    pub async fn next(&mut self) -> Option<PendingValidation> {
        self.rx.recv().await
    }
}
