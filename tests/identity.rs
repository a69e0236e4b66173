//! Identity theft: anyone on the subnet can complete a handshake with any
//! id, including the id of a peer that is already connected. A working
//! peer's connection must never be displaced by such a newcomer; the
//! conflict rule (`keep_existing = int(me) > int(them) XOR outgoing`) is
//! only for two connections racing to be established (within
//! `MeshConfig::race_window_ms` of the first one's adoption).
//!
//! Run in the in-memory rig with a virtual clock: the thief is a third
//! state machine built with the victim's id.

use rs2p::packets;
use rs2p::protocol::mesh::{CloseReason, MeshConfig, MeshState};
use rs2p::protocol::PeerId;
use rs2p::sim::rig::{rig_addr, Rig};

const A: usize = 0;
const B: usize = 1;
const THIEF: usize = 2;

/// A and B (with these base58 ids, so `int()` compares them as numbers),
/// and a thief that claims B's id.
fn rig(a_id: &str, b_id: &str) -> Rig {
    let ids = [a_id, b_id, b_id];
    Rig::with_nodes(3, |i| {
        (
            MeshState::new(PeerId::from(ids[i]), rig_addr(i), MeshConfig::default()),
            (),
        )
    })
}

/// Links A and B (B dials when `b_dials`), lets the race window pass, then
/// the thief links with A (the thief dials A when `thief_dials`, else A
/// dials the thief's address). Checks A keeps B on its original
/// connection, refuses the thief, and A and B still exchange broadcasts.
fn theft(a_id: &str, b_id: &str, b_dials: bool, thief_dials: bool) {
    let label = format!("A={a_id} B={b_id} b_dials={b_dials} thief_dials={thief_dials}");
    let mut rig = rig(a_id, b_id);
    let (at_a, _) = if b_dials {
        let (b_end, a_end) = rig.connect(B, A);
        (a_end, b_end)
    } else {
        rig.connect(A, B)
    };
    rig.settle();
    assert!(rig.is_peer(A, B) && rig.is_peer(B, A), "{label}");
    assert_eq!(rig.mesh(A).conn_of(&rig.id(B)), Some(at_a.1), "{label}");
    rig.advance(MeshConfig::default().race_window_ms + 1_000);
    rig.closed.clear();
    let thief_at_a = if thief_dials {
        rig.connect(THIEF, A).1
    } else {
        rig.connect(A, THIEF).0
    };
    rig.settle();
    // A still reaches B over the original connection.
    assert_eq!(
        rig.mesh(A).conn_of(&rig.id(B)),
        Some(at_a.1),
        "{label}: the established connection was displaced"
    );
    assert!(
        rig.closed
            .iter()
            .any(|(end, reason)| *end == thief_at_a && *reason == CloseReason::Conflict),
        "{label}: A did not refuse the thief: {:?}",
        rig.closed
    );
    assert!(
        !rig.closed.iter().any(|(end, _)| *end == at_a),
        "{label}: A closed B's connection"
    );
    // Broadcasts flow both ways between A and B, and none reaches the thief.
    let from_a = rig.broadcast(A, packets!["from A"]).unwrap();
    let from_b = rig.broadcast(B, packets!["from B"]).unwrap();
    rig.settle();
    let ids =
        |rig: &mut Rig, i| -> Vec<_> { rig.take_deliveries(i).into_iter().map(|d| d.id).collect() };
    assert_eq!(ids(&mut rig, B), vec![from_a], "{label}");
    assert_eq!(ids(&mut rig, A), vec![from_b], "{label}");
    assert!(
        ids(&mut rig, THIEF).is_empty(),
        "{label}: the thief got a broadcast"
    );
}

#[test]
fn a_newcomer_claiming_a_connected_peers_id_does_not_displace_it() {
    // Both id orders (the conflict rule's outcome depends on it), the
    // victim having dialled us or been dialled, the thief dialling us or
    // being dialled (it advertised the victim's id in a peer list).
    for (a, b) in [("2222", "3333"), ("3333", "2222")] {
        for b_dials in [true, false] {
            for thief_dials in [true, false] {
                theft(a, b, b_dials, thief_dials);
            }
        }
    }
}

/// Within the race window the conflict rule still decides, and both ends
/// keep the same connection: two nodes dialling each other at once.
#[test]
fn simultaneous_dials_still_settle_on_one_connection() {
    for (a, b) in [("2222", "3333"), ("3333", "2222")] {
        let mut rig = rig(a, b);
        let (ab_a, ab_b) = rig.connect(A, B);
        let (ba_b, ba_a) = rig.connect(B, A);
        rig.settle();
        let at_a = rig.mesh(A).conn_of(&rig.id(B)).expect("A has B");
        let at_b = rig.mesh(B).conn_of(&rig.id(A)).expect("B has A");
        let same = (at_a == ab_a.1 && at_b == ab_b.1) || (at_a == ba_a.1 && at_b == ba_b.1);
        assert!(same, "A={a} B={b}: A uses {at_a}, B uses {at_b}");
    }
}

/// B dials A twice at once (an automatic dial and the application's
/// `connect`), and the two ends adopt different connections first: A the
/// first, B the second. B closes the first as a duplicate; A fails over to
/// the second, and must welcome B there (its peer list), since that is
/// what B's `connect()` waits for on the connection it kept.
#[test]
fn a_failover_to_a_standby_connection_sends_the_peer_list() {
    use rs2p::protocol::mesh::MeshEvent;
    let mut rig = rig("2222", "3333");
    let (b1, a1) = rig.connect(B, A);
    let (b2, a2) = rig.connect(B, A);
    // A adopts the first, keeps the second as a standby.
    rig.read(a1);
    rig.read(a2);
    assert_eq!(rig.mesh(A).conn_of(&rig.id(B)), Some(a1.1));
    // B adopts the second, then drops the first as a duplicate.
    rig.read(b2);
    rig.read(b1);
    assert_eq!(rig.mesh(B).conn_of(&rig.id(A)), Some(b2.1));
    rig.take_events(B);
    rig.settle();
    assert_eq!(rig.mesh(A).conn_of(&rig.id(B)), Some(a2.1));
    let events = rig.take_events(B);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, MeshEvent::PeerList { conn, .. } if *conn == b2.1)),
        "no peer list reached B on the connection it kept: {events:?}"
    );
    // And broadcasts flow both ways over it.
    rig.broadcast(A, packets!["to b"]).expect("broadcast");
    rig.broadcast(B, packets!["to a"]).expect("broadcast");
    rig.settle();
    assert_eq!(rig.take_deliveries(B).len(), 1);
    assert_eq!(rig.take_deliveries(A).len(), 1);
}
