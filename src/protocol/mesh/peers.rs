//! Peer lists: sending ours (shuffled), asking for theirs, and dialling
//! from what they list until `max_outgoing` is reached.

use bytes::Bytes;

use super::close::CloseReason;
use super::output::{Action, ConnId, MeshEvent};
use super::state::MeshState;
use crate::protocol::{
    id_to_packet, packet_to_id, IdWire, InternalMessage, MainFlag, Packet, PeerAddr, SubFlag,
};

impl MeshState {
    /// Asks every peer for its peer list (`[whisper, request, "*"]`).
    pub fn request_peers(&mut self, now_ms: u64, out: &mut Vec<Action>) {
        let targets: Vec<ConnId> = self.routing.values().copied().collect();
        for conn in targets {
            // py2p compares the star with bytes, js2p with text: answer in kind.
            let star = match self.wire_of(conn) {
                IdWire::Bin => Packet::bin(Bytes::from_static(b"*")),
                IdWire::Str => Packet::from("*"),
            };
            self.send_own(
                now_ms,
                conn,
                MainFlag::Whisper,
                vec![SubFlag::Request.as_u8().into(), star],
                out,
            );
        }
    }

    /// Sends our peer list to one connection: every other peer's address
    /// and id (each id in the form its owner uses), shuffled. An answer to
    /// the peer's request (`reply`) is charged to its reply budget.
    pub(super) fn send_peers(
        &mut self,
        now_ms: u64,
        conn: ConnId,
        reply: bool,
        out: &mut Vec<Action>,
    ) {
        let mut list: Vec<Packet> = self
            .routing
            .values()
            .filter(|&&c| c != conn)
            .filter_map(|c| {
                let h = self.conns.get(c)?.peer.as_ref()?;
                Some(Packet::Array(vec![
                    h.out_addr.to_packet(),
                    id_to_packet(&h.id),
                ]))
            })
            .collect();
        // Shuffled, as py2p does: nodes that are sent the same peers then
        // dial different ones. In routing-table order every newcomer would
        // dial the same few nodes, which grow into hubs that fill up and
        // refuse the next newcomers (seen with 1,000 nodes on loopback).
        // The node's own seeded RNG keeps the simulator reproducible.
        for i in (1..list.len()).rev() {
            let j = self.rng.below(i as u64 + 1) as usize;
            list.swap(i, j);
        }
        list.truncate(self.config.max_peer_list);
        let payload = vec![SubFlag::Peers.as_u8().into(), Packet::Array(list)];
        if reply {
            let msg = self.own_message(MainFlag::Whisper, now_ms, payload);
            self.send_reply(now_ms, conn, &msg, out);
        } else {
            self.send_own(now_ms, conn, MainFlag::Whisper, payload, out);
        }
    }

    /// A peer list arrived: remember every address, dial the new ones
    /// within the budget and the rate, and report the list.
    pub(super) fn on_peers(
        &mut self,
        now_ms: u64,
        conn: ConnId,
        message: &InternalMessage,
        out: &mut Vec<Action>,
    ) {
        let Some(list) = message.payload.get(1).and_then(Packet::as_array) else {
            return;
        };
        if list.len() > self.config.max_peer_list {
            self.record_error(format!(
                "connection {conn}: peer list of {} entries",
                list.len()
            ));
            self.close(
                now_ms,
                conn,
                CloseReason::BadMessage("peer list too long"),
                out,
            );
            return;
        }
        let mut listed = Vec::new();
        // Linear in the list: the budget and what is already under way
        // (dials, connections waiting for their handshake) are computed
        // once, not per entry (per entry, a node with hundreds of peers
        // spent its time here).
        let mut budget = self.dial_budget();
        let busy = if budget > 0 {
            self.busy_targets()
        } else {
            Busy::default()
        };
        for entry in list {
            let Some([addr, id]) = entry
                .as_array()
                .and_then(|e| <&[Packet; 2]>::try_from(e).ok())
            else {
                continue;
            };
            let (Some(addr), Some(id)) = (PeerAddr::from_packet(addr), packet_to_id(id.clone()))
            else {
                continue;
            };
            if id == self.me || addr == self.out_addr {
                continue;
            }
            listed.push((id.clone(), addr.clone()));
            self.book.learn(&id, addr.clone(), now_ms);
            if budget == 0 || self.routing.contains_key(&id) || busy.has(&id, &addr) {
                continue;
            }
            if !self.take_dial_token(now_ms) {
                // Remembered: the refill on later ticks may dial it.
                continue;
            }
            budget -= 1;
            self.book.dialling(&id, now_ms);
            self.start_dial(id, addr, out);
        }
        self.retire_superseded(now_ms, conn, out);
        if let Some(from) = self.peer_of(conn).cloned() {
            out.push(Action::Event(MeshEvent::PeerList {
                from,
                conn,
                peers: listed,
            }));
        }
    }

    /// Ids and addresses that a dial or a connection awaiting its
    /// handshake already covers.
    fn busy_targets(&self) -> Busy {
        let mut busy = Busy::default();
        for d in self.dials.targets() {
            busy.addrs.push(d.addr.to_string());
            busy.ids.extend(d.expected_id.clone());
        }
        for c in self.conns.values().filter(|c| c.peer.is_none()) {
            busy.addrs.push(c.remote.clone());
            busy.ids.extend(c.expected_id.clone());
        }
        busy
    }
}

/// What [`MeshState::busy_targets`] found.
#[derive(Default)]
struct Busy {
    ids: Vec<crate::protocol::PeerId>,
    addrs: Vec<String>,
}

impl Busy {
    fn has(&self, id: &crate::protocol::PeerId, addr: &PeerAddr) -> bool {
        self.ids.contains(id) || self.addrs.contains(&addr.to_string())
    }
}
