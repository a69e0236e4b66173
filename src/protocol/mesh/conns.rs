//! The connection table: what the state machine keeps per connection,
//! connections opening and closing, standby failover, and the handshake
//! deadline.

use std::sync::Arc;

use super::close::CloseReason;
use super::output::{Action, ConnId, DialId, MeshEvent};
use super::state::MeshState;
use crate::protocol::{Compression, InternalMessage, PeerAddr, PeerId};

/// One open connection.
#[derive(Debug)]
pub(super) struct ConnEntry {
    /// Whether we dialled it.
    pub(super) outgoing: bool,
    /// The remote socket address, as text.
    pub(super) remote: String,
    /// The id the dial expected, until the handshake settles it.
    pub(super) expected_id: Option<PeerId>,
    /// Set once the handshake arrived.
    pub(super) peer: Option<PeerEntry>,
    /// The last whisper or broadcast sent here, for `resend`.
    pub(super) last_sent: Option<Arc<InternalMessage>>,
    /// When it opened, for the handshake timeout.
    pub(super) opened_ms: u64,
    /// When its peer was adopted into the routing table.
    pub(super) adopted_ms: Option<u64>,
    /// Misbehaviours counted so far.
    pub(super) offences: u32,
    /// Its broadcasts that validation rejected.
    pub(super) rejected: u32,
    /// What is left of the bytes this peer may make us send on request,
    /// and when it was last refilled.
    pub(super) reply_budget: f64,
    pub(super) reply_at_ms: u64,
}

/// What a peer told us in its handshake.
#[derive(Debug, Clone)]
pub(super) struct PeerEntry {
    pub(super) id: PeerId,
    pub(super) out_addr: PeerAddr,
    pub(super) compression: Vec<Compression>,
}

impl MeshState {
    /// A connection opened: accepted (`outgoing` false, `dial` None) or a
    /// dial succeeded (`dial` is the id of its [`Action::Dial`], or of
    /// [`note_dialling`](Self::note_dialling)). Sends our handshake on it.
    pub fn on_open(
        &mut self,
        now_ms: u64,
        conn: ConnId,
        outgoing: bool,
        remote: String,
        dial: Option<DialId>,
        out: &mut Vec<Action>,
    ) {
        let expected_id = dial
            .and_then(|d| self.dials.settle(d))
            .and_then(|d| d.expected_id);
        self.conns.insert(
            conn,
            ConnEntry {
                outgoing,
                remote,
                expected_id,
                peer: None,
                last_sent: None,
                opened_ms: now_ms,
                adopted_ms: None,
                offences: 0,
                rejected: 0,
                reply_budget: f64::from(self.config.reply_burst),
                reply_at_ms: now_ms,
            },
        );
        let handshake = self.handshake_message(now_ms);
        // Handshakes always travel uncompressed.
        self.send_message(conn, &handshake, None, out);
    }

    /// A connection closed by the peer or the network (not one the state
    /// machine closed itself with [`Action::Close`]). If it was a peer, the
    /// remaining peers are asked for their peer lists so the mesh heals.
    pub fn on_closed(&mut self, now_ms: u64, conn: ConnId, out: &mut Vec<Action>) {
        self.remove_conn(now_ms, conn, true, out);
    }

    /// Closes a connection: raises [`MeshEvent::Closing`], emits
    /// [`Action::Close`] and forgets the connection at once.
    pub fn close(&mut self, now_ms: u64, conn: ConnId, reason: CloseReason, out: &mut Vec<Action>) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        if matches!(
            reason,
            CloseReason::SubnetMismatch { .. } | CloseReason::SelfConnection
        ) {
            if let Some(id) = c.expected_id.clone() {
                self.book.forget(&id);
            }
        }
        self.emit_close(conn, reason, out);
        self.remove_conn(now_ms, conn, false, out);
    }

    /// The two outputs of every close, in the order drivers rely on: the
    /// event (which may still read the connection) and then the action.
    pub(super) fn emit_close(&self, conn: ConnId, reason: CloseReason, out: &mut Vec<Action>) {
        out.push(Action::Event(MeshEvent::Closing {
            conn,
            reason: reason.clone(),
        }));
        out.push(Action::Close { conn, reason });
    }

    /// Forgets a connection. A peer reached on it fails over to a standby
    /// connection to the same peer if there is one; otherwise it leaves
    /// the routing table, is scheduled for redial when `lost`, and the
    /// remaining peers are asked for their peer lists.
    fn remove_conn(&mut self, now_ms: u64, conn: ConnId, lost: bool, out: &mut Vec<Action>) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        let Some(h) = c.peer else {
            if let (true, Some(id)) = (lost, c.expected_id) {
                // A dialled connection that died before its handshake.
                self.book.failed(&id, now_ms, &mut self.rng);
            }
            return;
        };
        if self.routing.get(&h.id) != Some(&conn) {
            return;
        }
        self.routing.remove(&h.id);
        let standby = self
            .conns
            .iter()
            .find(|(_, c)| c.peer.as_ref().is_some_and(|p| p.id == h.id))
            .map(|(&c, _)| c);
        if let Some(standby) = standby {
            self.routing.insert(h.id.clone(), standby);
            if let Some(s) = self.conns.get_mut(&standby) {
                s.adopted_ms = Some(now_ms);
            }
            out.push(Action::Event(MeshEvent::Rebound {
                id: h.id,
                conn: standby,
            }));
            // The peer may have kept this connection and dropped the other
            // (the two ends adopted them in different orders): it has had
            // no peer list here yet.
            self.welcome(now_ms, standby, out);
            return;
        }
        if lost && self.config.reconnect {
            self.book.lost(&h.id, now_ms, &mut self.rng);
        }
        out.push(Action::Event(MeshEvent::PeerLeft { id: h.id, conn }));
        self.request_peers(now_ms, out);
    }

    /// Closes connections whose handshake is overdue.
    pub(super) fn close_overdue_handshakes(&mut self, now_ms: u64, out: &mut Vec<Action>) {
        let limit = self.config.handshake_timeout_ms;
        let overdue: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.peer.is_none() && now_ms.saturating_sub(c.opened_ms) > limit)
            .map(|(&id, _)| id)
            .collect();
        for conn in overdue {
            self.close(now_ms, conn, CloseReason::HandshakeTimeout, out);
        }
    }

    /// Counts a misbehaviour of a connection; closes it past
    /// `max_offences`.
    pub(super) fn offence(
        &mut self,
        now_ms: u64,
        conn: ConnId,
        what: &'static str,
        out: &mut Vec<Action>,
    ) {
        let max = self.config.max_offences;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.offences = c.offences.saturating_add(1);
        if c.offences > max {
            self.record_error(format!("connection {conn}: {what}"));
            self.close(now_ms, conn, CloseReason::Misbehaving(what), out);
        }
    }
}
