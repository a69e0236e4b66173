//! Replies and route requests: a reply to a peer we are not connected to
//! floods a route request, waits (bounded) for a response with the
//! target's address, dials it and whispers once the connection is up; and
//! we answer other nodes' route requests for our own peers.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;

use super::close::SendError;
use super::output::{Action, ConnId};
use super::state::{secs, MeshState};
use crate::protocol::{
    id_to_packet, packet_to_id, request_id, IdWire, InternalMessage, MainFlag, Packet, PeerAddr,
    PeerId, SubFlag,
};

#[derive(Debug)]
struct PendingReply {
    target: PeerId,
    packets: Vec<Packet>,
    created_ms: u64,
}

/// Replies waiting for a route, and replies whose route is known and that
/// wait for the connection's handshake.
#[derive(Debug, Default)]
pub(super) struct Routes {
    /// request id → the reply waiting for a route.
    pending: HashMap<Vec<u8>, PendingReply>,
    /// Request ids, oldest first, for expiry.
    order: VecDeque<Vec<u8>>,
    /// Routed replies waiting for the target's handshake.
    awaiting: HashMap<PeerId, Vec<Vec<Packet>>>,
    /// Targets of replies dropped without a route, one entry per reply,
    /// until the tick reports them (`MeshEvent::ReplyUnrouted`).
    pub(super) unrouted: Vec<PeerId>,
}

impl Routes {
    pub(super) fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Drops pending replies older than `ttl_secs` (noted as unrouted).
    pub(super) fn expire(&mut self, now_ms: u64, ttl_secs: u64) {
        let ttl_ms = ttl_secs.saturating_mul(1000);
        while let Some(key) = self.order.front() {
            match self.pending.get(key) {
                Some(p) if p.created_ms.saturating_add(ttl_ms) > now_ms => break,
                _ => {
                    if let Some(key) = self.order.pop_front() {
                        if let Some(p) = self.pending.remove(&key) {
                            self.unrouted.push(p.target);
                        }
                    }
                }
            }
        }
    }

    /// The dial to `target` failed: its routed replies are lost (noted as
    /// unrouted).
    pub(super) fn forget_target(&mut self, target: &PeerId) {
        if let Some(lost) = self.awaiting.remove(target) {
            self.unrouted
                .extend(std::iter::repeat_n(target.clone(), lost.len()));
        }
    }
}

impl MeshState {
    /// Replies to `to`: a direct whisper when it is connected, otherwise a
    /// route request flooded to the mesh; the reply is sent once a peer
    /// answers with the target's address and the connection is up.
    ///
    /// # Errors
    /// [`SendError::TooManyPending`] if the pending-reply bound is reached;
    /// [`SendError::Codec`] if the message exceeds the frame limit.
    pub fn reply(
        &mut self,
        now_ms: u64,
        to: &PeerId,
        packets: Vec<Packet>,
        out: &mut Vec<Action>,
    ) -> Result<(), SendError> {
        if let Some(&conn) = self.routing.get(to) {
            self.whisper_on(now_ms, conn, packets, out)?;
            return Ok(());
        }
        if self.routes.pending.len() >= self.config.max_pending_requests {
            self.routes.expire(now_ms, self.config.request_ttl);
            if self.routes.pending.len() >= self.config.max_pending_requests {
                return Err(SendError::TooManyPending);
            }
        }
        let now = secs(now_ms);
        let mut rid = request_id(to.as_bytes(), now);
        // Two replies to one target in the same second share the hash; make
        // the key unique.
        let mut n = 0u32;
        while self.routes.pending.contains_key(rid.as_bytes()) {
            n += 1;
            rid = request_id(to.as_bytes(), now.wrapping_add(u64::from(n) << 40));
        }
        let key = rid.clone().into_bytes();
        self.routes.pending.insert(
            key.clone(),
            PendingReply {
                target: to.clone(),
                packets,
                created_ms: now_ms,
            },
        );
        self.routes.order.push_back(key);
        self.send(
            now_ms,
            SubFlag::Request.as_u8().into(),
            MainFlag::Broadcast,
            // The target in the form its owner uses: the form the peers
            // that know it keyed it by (py2p and js2p look it up as is).
            vec![Packet::Str(rid), id_to_packet(to)],
            out,
        )?;
        Ok(())
    }

    /// A request: `"*"` asks for our peer list; `request_id, target` asks
    /// whether we are connected to `target`, answered with its address.
    pub(super) fn on_request(
        &mut self,
        now_ms: u64,
        conn: ConnId,
        message: &InternalMessage,
        out: &mut Vec<Action>,
    ) {
        let p = &message.payload;
        match (p.get(1), p.get(2)) {
            (Some(star), None) if star.as_bytes() == Some(b"*") => {
                self.send_peers(now_ms, conn, true, out)
            }
            (Some(req), Some(target)) => {
                let (Some(req_bytes), Some(target)) = (req.as_bytes(), target.as_bytes()) else {
                    return;
                };
                let target = PeerId::new(Bytes::copy_from_slice(target), IdWire::Bin);
                let Some(&tconn) = self.routing.get(&target) else {
                    return;
                };
                let Some(h) = self.conns.get(&tconn).and_then(|c| c.peer.clone()) else {
                    return;
                };
                let req_packet = match req {
                    Packet::Str(_) => req.clone(),
                    _ => Packet::bin(Bytes::copy_from_slice(req_bytes)),
                };
                let payload = vec![
                    SubFlag::Response.as_u8().into(),
                    req_packet,
                    Packet::Array(vec![h.out_addr.to_packet(), id_to_packet(&h.id)]),
                ];
                let msg = self.own_message(MainFlag::Broadcast, now_ms, payload);
                let (id, _) = msg.encode_body(None);
                let now = secs(now_ms);
                self.waterfall.record_own(id, now, now);
                self.send_reply(now_ms, conn, &msg, out);
            }
            _ => {}
        }
    }

    /// A response to one of our route requests: dial the target (or use
    /// the connection if it is up already) and send the reply.
    pub(super) fn on_response(
        &mut self,
        now_ms: u64,
        message: &InternalMessage,
        out: &mut Vec<Action>,
    ) {
        let p = &message.payload;
        let Some(req) = p.get(1).and_then(Packet::as_bytes) else {
            return;
        };
        let Some(pending) = self.routes.pending.remove(req) else {
            return;
        };
        self.routes.order.retain(|k| k.as_slice() != req);
        let route = p
            .get(2)
            .and_then(Packet::as_array)
            .and_then(|e| <&[Packet; 2]>::try_from(e).ok())
            .and_then(|[addr, id]| Some((PeerAddr::from_packet(addr)?, packet_to_id(id.clone())?)))
            .filter(|(_, id)| *id == pending.target);
        let Some((addr, id)) = route else {
            // A response we cannot use ends the request: the reply is
            // lost, and reported as such.
            self.routes.unrouted.push(pending.target);
            return;
        };
        self.routes
            .awaiting
            .entry(id.clone())
            .or_default()
            .push(pending.packets);
        if let Some(&conn) = self.routing.get(&id) {
            // Connected meanwhile: deliver now.
            self.flush_awaiting_route(now_ms, conn, out);
        } else if !self.dials.has_id(&id) {
            self.book.learn(&id, addr.clone(), now_ms);
            self.start_dial(id, addr, out);
        }
    }

    /// Sends the routed replies that waited for this connection's peer.
    pub(super) fn flush_awaiting_route(
        &mut self,
        now_ms: u64,
        conn: ConnId,
        out: &mut Vec<Action>,
    ) {
        let Some(id) = self.peer_of(conn).cloned() else {
            return;
        };
        let Some(replies) = self.routes.awaiting.remove(&id) else {
            return;
        };
        for packets in replies {
            let _ = self.whisper_on(now_ms, conn, packets, out);
        }
    }
}
