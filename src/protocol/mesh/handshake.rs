//! The handshake: checking what a peer announces, adopting it into the
//! routing table, and deciding between two connections to the same peer.

use super::close::CloseReason;
use super::conns::PeerEntry;
use super::output::{Action, ConnId, MeshEvent};
use super::state::{secs, MeshState};
use crate::protocol::{
    base58, id_to_packet, packet_to_id, Compression, InternalMessage, MainFlag, Packet, PeerAddr,
    PeerId, SubFlag,
};

/// A handshake's fields, checked.
struct Handshake {
    id: PeerId,
    out_addr: PeerAddr,
    compression: Vec<Compression>,
}

/// Reads `[handshake, id, protocol_id, [host, port], [methods…]]`: the
/// reason to close the connection if any field is wrong or the peer is on
/// another subnet.
fn parse_handshake(p: &[Packet], our_protocol: &str) -> Result<Handshake, CloseReason> {
    let bad = CloseReason::BadMessage;
    let [_, id, protocol, addr, methods] =
        <&[Packet; 5]>::try_from(p).map_err(|_| bad("handshake needs exactly 5 packets"))?;
    let protocol = protocol
        .as_bytes()
        .ok_or(bad("handshake protocol id is not str or bin"))?;
    if protocol != our_protocol.as_bytes() {
        let theirs = String::from_utf8_lossy(protocol).into_owned();
        return Err(CloseReason::SubnetMismatch { theirs });
    }
    Ok(Handshake {
        id: packet_to_id(id.clone()).ok_or(bad("handshake id is not str or bin"))?,
        out_addr: PeerAddr::from_packet(addr)
            .ok_or(bad("handshake address is not [host, port]"))?,
        compression: methods
            .as_array()
            .map(parse_methods)
            .ok_or(bad("handshake compression list is not an array"))?,
    })
}

/// The methods of a compression list that rs2p knows, in the given order.
pub(super) fn parse_methods(list: &[Packet]) -> Vec<Compression> {
    list.iter()
        .filter_map(|p| p.as_u64())
        .filter_map(|v| u8::try_from(v).ok())
        .filter_map(Compression::from_u8)
        .take(16)
        .collect()
}

/// `int(a) > int(b)` for base58 ids, as py2p decides conflicts; ids that
/// are not base58 fall back to comparing bytes.
pub(super) fn id_greater(a: &PeerId, b: &PeerId) -> bool {
    let as_int = |id: &PeerId| {
        std::str::from_utf8(id.as_bytes())
            .ok()
            .and_then(base58::decode_to_be_bytes)
    };
    match (as_int(a), as_int(b)) {
        (Some(x), Some(y)) => (x.len(), x) > (y.len(), y),
        _ => a.as_bytes() > b.as_bytes(),
    }
}

impl MeshState {
    /// Our handshake: `[whisper, me, now, handshake, me, protocol_id,
    /// [host, port], [methods…]]`: our id as str (as in all our messages),
    /// the protocol id as bin (the one form both references accept).
    pub(super) fn handshake_message(&self, now_ms: u64) -> InternalMessage {
        let methods = Packet::Array(
            self.config
                .compression
                .iter()
                .map(|m| Packet::from(m.as_u8()))
                .collect(),
        );
        InternalMessage::new(
            MainFlag::Whisper,
            self.me.clone(),
            secs(now_ms),
            vec![
                SubFlag::Handshake.as_u8().into(),
                id_to_packet(&self.me),
                Packet::bin(bytes::Bytes::copy_from_slice(
                    self.config.protocol.id().as_bytes(),
                )),
                self.out_addr.to_packet(),
                methods,
            ],
        )
    }

    pub(super) fn on_handshake(
        &mut self,
        now_ms: u64,
        conn: ConnId,
        message: &InternalMessage,
        out: &mut Vec<Action>,
    ) {
        let h = match parse_handshake(&message.payload, self.config.protocol.id()) {
            Ok(h) => h,
            Err(reason) => {
                if let CloseReason::SubnetMismatch { theirs } = &reason {
                    self.record_error(format!("connection {conn}: subnet mismatch ({theirs})"));
                }
                self.close(now_ms, conn, reason, out);
                return;
            }
        };
        if h.id == self.me {
            self.close(now_ms, conn, CloseReason::SelfConnection, out);
            return;
        }
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if let Some(expected) = c.expected_id.take_if(|x| *x != h.id) {
            // We dialled this address for another node: it is no longer
            // there (a node restarted on the same port gets a new id), so
            // its address is stale and must not be redialled.
            if !self.routing.contains_key(&expected) {
                self.book.forget(&expected);
            }
        }
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if let Some(known) = &mut c.peer {
            // A repeated handshake on a live connection (js2p sends one):
            // refresh what it tells us, nothing else.
            if known.id == h.id {
                known.out_addr = h.out_addr;
                known.compression = h.compression;
            }
            return;
        }
        match self.routing.get(&h.id) {
            Some(&existing) if existing != conn => {
                self.resolve_conflict(now_ms, conn, existing, h, out)
            }
            _ => {
                let was_empty = self.routing.is_empty();
                let id = h.id.clone();
                self.adopt(now_ms, conn, h);
                if was_empty {
                    out.push(Action::Event(MeshEvent::Connect));
                }
                out.push(Action::Event(MeshEvent::PeerJoined { id, conn }));
                self.welcome(now_ms, conn, out);
            }
        }
    }

    /// A handshake on `conn` names a peer already reached on `existing`.
    fn resolve_conflict(
        &mut self,
        now_ms: u64,
        conn: ConnId,
        existing: ConnId,
        h: Handshake,
        out: &mut Vec<Action>,
    ) {
        let outgoing = self.conns.get(&conn).is_some_and(|c| c.outgoing);
        let existing_outgoing = self.conns.get(&existing).map(|c| c.outgoing);
        let established = self
            .conns
            .get(&existing)
            .and_then(|c| c.adopted_ms)
            .is_some_and(|at| now_ms.saturating_sub(at) >= self.config.race_window_ms);
        let keep_existing = if established {
            // Not a race: the peer has been reached on `existing` for a
            // while. Whoever claims its id now (a stale redial, or anyone
            // else — ids are not secret) does not take its place.
            true
        } else if existing_outgoing == Some(outgoing) {
            // Two connections dialled from the same end. The dialler keeps
            // the one it adopted first and closes this one; the accepting
            // end keeps both until then, routing over the first and failing
            // over if that is the one closed.
            if !outgoing {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.expected_id = None;
                    c.peer = Some(PeerEntry {
                        id: h.id,
                        out_addr: h.out_addr,
                        compression: h.compression,
                    });
                }
                return;
            }
            true
        } else {
            // Both ends dialled each other. Decide as py2p does, so both
            // ends keep the same connection.
            id_greater(&self.me, &h.id) ^ outgoing
        };
        if keep_existing {
            out.push(Action::Event(MeshEvent::Duplicate { id: h.id, conn }));
            self.close(now_ms, conn, CloseReason::Conflict, out);
            return;
        }
        // Replace silently: the peer stays, only its connection changes.
        // `existing` is not closed yet: the peer may still be routing over
        // it, and may read its closing before our handshake on `conn` (two
        // sockets, no order between them), which would make it see us
        // leave and join again. It stays as a standby until the peer's
        // peer list on `conn` shows the peer switched too
        // (`retire_superseded`), or `race_window_ms` passed.
        let id = h.id.clone();
        self.adopt(now_ms, conn, h);
        if let Some(e) = self.conns.get_mut(&existing) {
            e.superseded_ms = Some(now_ms);
        }
        out.push(Action::Event(MeshEvent::Rebound { id, conn }));
        self.welcome(now_ms, conn, out);
    }

    /// Records the peer on its connection and in the routing table.
    fn adopt(&mut self, now_ms: u64, conn: ConnId, h: Handshake) {
        self.book.learn(&h.id, h.out_addr.clone(), now_ms);
        self.book.connected(&h.id, now_ms);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.adopted_ms = Some(now_ms);
            c.expected_id = None;
            c.peer = Some(PeerEntry {
                id: h.id.clone(),
                out_addr: h.out_addr,
                compression: h.compression,
            });
        }
        self.routing.insert(h.id, conn);
    }

    /// What a newly adopted peer gets: our peer list, then the replies that
    /// were waiting for a route to it. Also sent on a standby connection
    /// that takes over: the peer's `connect()` may wait for it there.
    pub(super) fn welcome(&mut self, now_ms: u64, conn: ConnId, out: &mut Vec<Action>) {
        self.send_peers(now_ms, conn, false, out);
        self.flush_awaiting_route(now_ms, conn, out);
    }
}
