//! Validation before relay: with `MeshConfig::validate` on, a new user
//! broadcast is held after the waterfall check — neither relayed nor
//! delivered — until the application decides ([`Action::Validate`] out,
//! [`MeshState::on_validated`] in): accepted ones go on as any broadcast,
//! rejected ones are dropped and counted against the peer that sent them
//! (past `max_rejections` it is disconnected), ignored ones are dropped.
//! Peers just see the broadcast not relayed: nothing changes on the wire.
//!
//! At most `max_pending_validations` wait at once; past that a new
//! broadcast is dropped without being recorded, so a copy from another
//! peer may still be validated later. Undecided ones are ignored after
//! `validation_timeout_ms`. The node's own broadcasts are never validated.

use std::collections::BTreeMap;

use super::close::CloseReason;
use super::outgoing::FrameCache;
use super::output::{Action, ConnId, Delivery, ValidationId};
use super::state::MeshState;

/// The application's decision about a broadcast.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Validation {
    /// Relay and deliver it.
    Accept,
    /// Drop it, and count it against the peer that sent it.
    Reject,
    /// Drop it without blaming anyone.
    Ignore,
}

/// A broadcast waiting for the application's decision.
#[derive(Debug)]
pub(super) struct Held {
    pub(super) cache: FrameCache,
    pub(super) delivery: Delivery,
    pub(super) since_ms: u64,
}

/// Broadcasts waiting for a decision.
#[derive(Debug, Default)]
pub(super) struct Validations {
    held: BTreeMap<ValidationId, Held>,
    next: u64,
    /// Broadcasts dropped because too many were waiting.
    pub(super) overflow: u64,
    /// Broadcasts rejected.
    pub(super) rejected: u64,
}

impl Validations {
    pub(super) fn len(&self) -> usize {
        self.held.len()
    }

    pub(super) fn hold(&mut self, held: Held) -> ValidationId {
        self.next += 1;
        let ticket = ValidationId(self.next);
        self.held.insert(ticket, held);
        ticket
    }
}

impl MeshState {
    /// Whether a new broadcast must wait for the application's decision
    /// (and room to wait); `None`: no validation, relay at once.
    pub(super) fn wants_validation(&self) -> Option<bool> {
        self.config
            .validate
            .then(|| self.validations.len() < self.config.max_pending_validations)
    }

    /// The application decided about a held broadcast (unknown or expired
    /// tickets are ignored).
    pub fn on_validated(
        &mut self,
        now_ms: u64,
        ticket: ValidationId,
        verdict: Validation,
        out: &mut Vec<Action>,
    ) {
        let Some(held) = self.validations.held.remove(&ticket) else {
            return;
        };
        let conn = held.delivery.conn;
        match verdict {
            Validation::Accept => {
                let message = held.delivery.message.clone();
                self.relay(conn, held.cache, &message, out);
                out.push(Action::Deliver(held.delivery));
            }
            Validation::Ignore => {}
            Validation::Reject => {
                self.validations.rejected += 1;
                self.reject_from(now_ms, conn, out);
            }
        }
    }

    /// Counts a rejected broadcast against the connection it came on;
    /// closes it past `max_rejections`.
    fn reject_from(&mut self, now_ms: u64, conn: ConnId, out: &mut Vec<Action>) {
        let max = self.config.max_rejections;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.rejected = c.rejected.saturating_add(1);
        let rejected = c.rejected;
        if rejected > max {
            self.record_error(format!("connection {conn}: {rejected} broadcasts rejected"));
            self.close(
                now_ms,
                conn,
                CloseReason::Misbehaving("broadcasts rejected by validation"),
                out,
            );
        }
    }

    /// Ignores broadcasts undecided for longer than the timeout.
    pub(super) fn expire_validations(&mut self, now_ms: u64) {
        let limit = self.config.validation_timeout_ms;
        self.validations
            .held
            .retain(|_, h| now_ms.saturating_sub(h.since_ms) <= limit);
    }

    /// Broadcasts waiting for a decision.
    pub fn pending_validations(&self) -> usize {
        self.validations.len()
    }

    /// Broadcasts rejected by validation, and broadcasts dropped because
    /// too many were waiting for a decision.
    pub fn validation_counts(&self) -> (u64, u64) {
        (self.validations.rejected, self.validations.overflow)
    }
}
