//! Ring links: a storing node keeps connections to its neighbours on the
//! ring (successor and predecessor) and to a few *fingers* (the nodes
//! nearest after `me + 2^384 / 2^i`), so that forwarding hop by hop with
//! the references' rule always reaches the node responsible for a hash,
//! in few hops, however the mesh was wired. py2p relies on every node
//! being connected to every other; in a large mesh, greedy forwarding
//! over random links stops at a node that merely looks responsible.
//!
//! Every `ring_interval_ms`, the node asks its ring neighbours (and one
//! finger, in turn) for their peer lists (the mesh's own `[request, "*"]`,
//! which every implementation answers), and dials, for each of its
//! neighbour and finger places, the best node the mesh has heard of that
//! it is not connected to (one try per node per 30 s).

use std::collections::BTreeMap;

use bytes::Bytes;

use super::ring::Position;
use super::state::ChordState;
use crate::protocol::mesh::{ConnId, LayerCtx};
use crate::protocol::{IdWire, Packet, PeerAddr, PeerId, SubFlag};

/// Finger places kept: targets at 1/2, 1/4, … 1/256 of the ring ahead.
const FINGERS: usize = 8;

/// A node that was dialled for a ring place is not dialled again sooner.
const RETRY_MS: u64 = 30_000;

/// `2^384 / 2^i` as a position (i in 1..=383).
fn fraction(i: usize) -> Position {
    let mut be = [0u8; 48];
    let bit = 384 - i;
    be[47 - bit / 8] = 1 << (bit % 8);
    Position::from_be_bytes(&be)
}

/// `a + b mod 2^384`.
fn add(a: &Position, b: &Position) -> Position {
    // a + b = a - (0 - b)
    let neg_b = b.distance_to(&Position::default());
    neg_b.distance_to(a)
}

impl ChordState {
    /// One round of ring upkeep (see the module documentation).
    pub(super) fn keep_links(&mut self, ctx: &mut LayerCtx<'_>) {
        let Some(me) = self.me(ctx) else {
            return;
        };
        let now = ctx.now_ms();
        self.link_tries.retain(|_, at| now < *at + RETRY_MS);
        // The places: successor (just after me), predecessor (just before
        // me, measured backwards), and the fingers.
        let mut targets: Vec<(Position, bool)> = vec![(me, true), (me, false)];
        for i in 1..=FINGERS {
            targets.push((add(&me, &fraction(i)), true));
        }
        // Ask the neighbours, and one finger in turn, for their peers.
        let storing: Vec<(Position, ConnId)> = self
            .peers
            .values()
            .filter(|p| p.storing)
            .filter_map(|p| Some((p.pos?, p.conn)))
            .collect();
        let nearest = |t: &Position, after: bool| {
            storing
                .iter()
                .filter(|(pos, _)| *pos != me)
                .min_by_key(|(pos, _)| {
                    if after {
                        t.distance_to(pos)
                    } else {
                        pos.distance_to(t)
                    }
                })
                .map(|&(_, c)| c)
        };
        self.link_round += 1;
        let finger = 2 + (self.link_round as usize % FINGERS);
        let mut ask: Vec<ConnId> = [0, 1, finger]
            .iter()
            .filter_map(|&i| targets.get(i))
            .filter_map(|(t, after)| nearest(t, *after))
            .collect();
        ask.sort_unstable();
        ask.dedup();
        for conn in ask {
            let star = match ctx.mesh().wire_of(conn) {
                IdWire::Bin => Packet::bin(Bytes::from_static(b"*")),
                IdWire::Str => Packet::from("*"),
            };
            let _ = ctx.whisper(conn, SubFlag::Request.as_u8(), vec![star]);
        }
        // Dial the best known node for each place, if not connected.
        let known: Vec<(Position, PeerId, PeerAddr)> = ctx
            .known_peers()
            .filter(|(id, _)| !self.link_tries.contains_key(*id))
            .filter(|(id, _)| !ctx.mesh().is_connected(id))
            .filter_map(|(id, addr)| Some((self.position_of(id)?, id.clone(), addr.clone())))
            .filter(|(pos, _, _)| *pos != me)
            .collect();
        let mut dial: BTreeMap<PeerId, PeerAddr> = BTreeMap::new();
        for (t, after) in &targets {
            let gap = |pos: &Position| {
                if *after {
                    t.distance_to(pos)
                } else {
                    pos.distance_to(t)
                }
            };
            let Some((pos, id, addr)) = known.iter().min_by_key(|(pos, _, _)| gap(pos)) else {
                continue;
            };
            // Only if it is nearer the place than the node we have there.
            let current = storing.iter().map(|(p, _)| gap(p)).min();
            if current.is_none_or(|c| gap(pos) < c) {
                dial.insert(id.clone(), addr.clone());
            }
        }
        for (id, addr) in dial {
            self.link_tries.insert(id.clone(), now);
            ctx.dial(&id, addr);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractions_and_sums_wrap() {
        let half = fraction(1);
        assert_eq!(add(&half, &half), Position::default());
        let quarter = fraction(2);
        assert_eq!(add(&quarter, &quarter), half);
    }
}
