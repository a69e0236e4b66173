//! Dials: the ones under way (each with a [`DialId`] that the driver
//! echoes back), the outgoing budget (`max_outgoing`), the rate limit on
//! dials the node starts by itself, and redials of lost or known peers.

use std::collections::BTreeMap;

use super::output::{Action, DialId};
use super::state::MeshState;
use crate::protocol::{PeerAddr, PeerId};

/// A dial under way.
#[derive(Debug, Clone)]
pub(super) struct PendingDial {
    pub(super) addr: PeerAddr,
    pub(super) expected_id: Option<PeerId>,
}

/// Dials under way and the token bucket that paces the node's own dials.
#[derive(Debug)]
pub(super) struct Dials {
    pending: BTreeMap<DialId, PendingDial>,
    next_id: u64,
    tokens: f64,
    tokens_at_ms: u64,
    started: u64,
}

impl Dials {
    pub(super) fn new(burst: u32) -> Self {
        Dials {
            pending: BTreeMap::new(),
            next_id: 0,
            tokens: f64::from(burst),
            tokens_at_ms: 0,
            started: 0,
        }
    }

    /// Registers a dial and returns its id.
    fn begin(&mut self, addr: PeerAddr, expected_id: Option<PeerId>) -> DialId {
        self.next_id += 1;
        let id = DialId(self.next_id);
        self.pending.insert(id, PendingDial { addr, expected_id });
        id
    }

    /// The dial settled (opened or failed): forget it.
    pub(super) fn settle(&mut self, dial: DialId) -> Option<PendingDial> {
        self.pending.remove(&dial)
    }

    /// Dials under way.
    pub(super) fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether a dial to this peer id is under way.
    pub(super) fn has_id(&self, id: &PeerId) -> bool {
        self.pending
            .values()
            .any(|d| d.expected_id.as_ref() == Some(id))
    }

    /// The ids and addresses being dialled, for checks in bulk.
    pub(super) fn targets(&self) -> impl Iterator<Item = &PendingDial> {
        self.pending.values()
    }

    /// Dials started by the node itself (not the application's).
    pub(super) fn started(&self) -> u64 {
        self.started
    }

    /// Takes a token from the bucket (refilled at `rate` per second up to
    /// `burst`); false when none is left.
    fn take_token(&mut self, now_ms: u64, rate: u32, burst: u32) -> bool {
        let elapsed = now_ms.saturating_sub(self.tokens_at_ms) as f64 / 1000.0;
        self.tokens_at_ms = now_ms.max(self.tokens_at_ms);
        self.tokens = (self.tokens + elapsed * f64::from(rate)).min(f64::from(burst));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl MeshState {
    /// The application dials `addr` itself (expecting `id`, if known):
    /// returns the [`DialId`] to pass to [`on_open`](Self::on_open) or
    /// [`on_dial_failed`](Self::on_dial_failed). While it is under way,
    /// peer lists do not dial the same peer again.
    pub fn note_dialling(&mut self, id: Option<&PeerId>, addr: PeerAddr) -> DialId {
        self.dials.begin(addr, id.cloned())
    }

    /// A dial failed (refused, unreachable, timed out, or its transport
    /// handshake failed) before a connection opened.
    pub fn on_dial_failed(&mut self, now_ms: u64, dial: DialId) {
        let Some(PendingDial {
            expected_id: Some(id),
            ..
        }) = self.dials.settle(dial)
        else {
            return;
        };
        self.routes.forget_target(&id);
        self.book.failed(&id, now_ms, &mut self.rng);
    }

    /// Outgoing connections that peer lists and redials may still start.
    pub(super) fn dial_budget(&self) -> usize {
        self.config
            .max_outgoing
            .saturating_sub(self.outgoing_count() + self.dials.len())
    }

    /// Takes a token of the dial rate limit.
    pub(super) fn take_dial_token(&mut self, now_ms: u64) -> bool {
        self.dials
            .take_token(now_ms, self.config.dial_rate, self.config.dial_burst)
    }

    /// Starts a dial of the node's own (peer list, redial, route).
    pub(super) fn start_dial(&mut self, id: PeerId, addr: PeerAddr, out: &mut Vec<Action>) {
        self.dials.started += 1;
        let dial = self.dials.begin(addr.clone(), Some(id.clone()));
        out.push(Action::Dial {
            dial,
            addr,
            expected_id: Some(id),
        });
    }

    /// Redials lost peers, then known ones, within the budget and the rate.
    pub(super) fn redial(&mut self, now_ms: u64, out: &mut Vec<Action>) {
        let budget = self.dial_budget();
        if budget == 0 {
            return;
        }
        let (routing, dials, me) = (&self.routing, &self.dials, &self.me);
        let skip = |id: &PeerId| id == me || routing.contains_key(id) || dials.has_id(id);
        let mut due = self.book.due_lost(now_ms, budget, skip);
        if due.len() < budget {
            let (routing, dials, me) = (&self.routing, &self.dials, &self.me);
            let taken: Vec<PeerId> = due.iter().map(|(id, _)| id.clone()).collect();
            let skip = |id: &PeerId| {
                id == me || routing.contains_key(id) || dials.has_id(id) || taken.contains(id)
            };
            due.extend(self.book.due_known(now_ms, budget - due.len(), skip));
        }
        for (id, addr) in due {
            if !self.take_dial_token(now_ms) {
                break;
            }
            self.book.dialling(&id, now_ms);
            self.start_dial(id, addr, out);
        }
    }
}
