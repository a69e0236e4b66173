//! Incoming frames: decoding with the connection's compression, the
//! waterfall check, relaying new broadcasts, and dispatching each message
//! to the part of the state machine (or the application) it is for.

use std::sync::Arc;

use super::close::CloseReason;
use super::outgoing::FrameCache;
use super::output::{Action, ConnId, Delivery};
use super::state::{secs, MeshState};
use super::validation::Held;
use super::waterfall::Verdict;
use crate::protocol::{
    decode_body, Compression, Frame, InternalMessage, MainFlag, MessageId, SubFlag,
};

impl MeshState {
    /// A whole frame arrived on a connection.
    pub fn on_frame(&mut self, now_ms: u64, conn: ConnId, frame: Frame, out: &mut Vec<Action>) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        // The peer's advertised methods first, then ours: after a
        // renegotiation the peer may still use a method from the list it
        // had before our answer reaches it.
        let mut methods: Vec<Compression> = c
            .peer
            .as_ref()
            .map(|h| h.compression.clone())
            .unwrap_or_default();
        let handshaken = c.peer.is_some();
        if handshaken {
            for m in &self.config.compression {
                if !methods.contains(m) {
                    methods.push(*m);
                }
            }
        }
        let decoded = match decode_body(frame.body(), &methods, &self.config.limits) {
            Ok(d) => d,
            Err(e) => {
                self.record_error(format!("connection {conn}: {e}"));
                self.close(now_ms, conn, CloseReason::Protocol(e), out);
                return;
            }
        };
        let message = Arc::new(decoded.message);
        self.received[message.msg_type as usize] += 1;
        let sub = message.sub_flag();
        if !handshaken && sub != Some(SubFlag::Handshake) {
            // Nothing but a handshake is meaningful before the handshake.
            self.offence(now_ms, conn, "messages before the handshake", out);
            return;
        }
        match message.msg_type {
            MainFlag::Renegotiate => self.on_renegotiate(now_ms, conn, &message, out),
            MainFlag::Broadcast => {
                let validate = if for_application(&message) {
                    self.wants_validation()
                } else {
                    None
                };
                if validate == Some(false) {
                    // Too many wait for a decision: drop it unrecorded, so
                    // a copy from another peer may still be validated.
                    self.validations.overflow += 1;
                    return;
                }
                let now = secs(now_ms);
                match self
                    .waterfall
                    .check_and_record(decoded.id, message.time, now)
                {
                    Verdict::New => {}
                    Verdict::FromTheFuture => {
                        self.offence(now_ms, conn, "broadcasts stamped in the future", out);
                        return;
                    }
                    Verdict::Duplicate | Verdict::Expired => return,
                }
                let cache = FrameCache::received(frame, decoded.compression);
                if validate == Some(true) {
                    let delivery = Delivery {
                        message,
                        id: decoded.id,
                        conn,
                    };
                    let ticket = self.validations.hold(Held {
                        cache,
                        delivery: delivery.clone(),
                        since_ms: now_ms,
                    });
                    out.push(Action::Validate { ticket, delivery });
                    return;
                }
                self.relay(conn, cache, &message, out);
                self.dispatch(now_ms, conn, decoded.id, message, out);
            }
            MainFlag::Whisper => self.dispatch(now_ms, conn, decoded.id, message, out),
            MainFlag::Ping | MainFlag::Pong => {}
        }
    }

    fn dispatch(
        &mut self,
        now_ms: u64,
        conn: ConnId,
        id: MessageId,
        message: Arc<InternalMessage>,
        out: &mut Vec<Action>,
    ) {
        match message.sub_flag() {
            // A handshake-flagged whisper that is no handshake, on a
            // connection that had its handshake, is for a layer: chord's
            // meta message `[handshake, "0"|"1"]`.
            Some(SubFlag::Handshake)
                if message.msg_type == MainFlag::Whisper
                    && message.payload.len() != 5
                    && self.peer_of(conn).is_some() =>
            {
                out.push(Action::Deliver(Delivery { message, id, conn }))
            }
            Some(SubFlag::Handshake) if message.msg_type == MainFlag::Whisper => {
                self.on_handshake(now_ms, conn, &message, out)
            }
            Some(SubFlag::Handshake) => {}
            Some(SubFlag::Peers) => self.on_peers(now_ms, conn, &message, out),
            Some(SubFlag::Request) => self.on_request(now_ms, conn, &message, out),
            Some(SubFlag::Response) => self.on_response(now_ms, &message, out),
            // Reserved keep-alive flags: nothing to do.
            Some(SubFlag::Ping | SubFlag::Pong) => {}
            _ => out.push(Action::Deliver(Delivery { message, id, conn })),
        }
    }

    /// Forwards a new broadcast to every peer but the one it came from and
    /// its original sender, passing the received bytes on where the
    /// target's compression matches.
    pub(super) fn relay(
        &mut self,
        from: ConnId,
        mut cache: FrameCache,
        message: &Arc<InternalMessage>,
        out: &mut Vec<Action>,
    ) {
        let targets: Vec<ConnId> = self
            .routing
            .iter()
            .filter(|(id, &c)| c != from && **id != message.sender)
            .map(|(_, &c)| c)
            .collect();
        for target in targets {
            let method = self.send_method(target);
            let Ok(frame) = cache.frame(method, &self.config.limits) else {
                continue;
            };
            if let Some(c) = self.conns.get_mut(&target) {
                c.last_sent = Some(message.clone());
            }
            out.push(Action::Send {
                conn: target,
                frame,
            });
        }
    }
}

/// Whether a message goes to the application (or a layer) rather than to
/// the mesh's own handling: everything but the protocol's sub-flags.
fn for_application(message: &InternalMessage) -> bool {
    !matches!(
        message.sub_flag(),
        Some(
            SubFlag::Handshake
                | SubFlag::Peers
                | SubFlag::Request
                | SubFlag::Response
                | SubFlag::Ping
                | SubFlag::Pong
        )
    )
}
