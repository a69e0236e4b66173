//! Validation before relay: the application decides, for each new
//! broadcast from a peer, accept / reject / ignore before it is relayed or
//! delivered. A rejected broadcast is neither forwarded nor queued and
//! counts against the peer it came from, which is disconnected past
//! `max_rejections`; the node's own broadcasts are never held.

mod support;

use std::time::Duration;

use rs2p::protocol::mesh::{CloseReason, MeshConfig, MeshState, Validation};
use rs2p::protocol::{Packet, PeerId};
use rs2p::sim::rig::{rig_addr, Rig};
use rs2p::{packets, Event, MeshSocket};
use support::wait::WAIT;

const A: usize = 0;
const B: usize = 1;
const C: usize = 2;

/// B – A – C, A validating (with these bounds).
fn line(max_pending: usize, max_rejections: u32) -> Rig {
    let mut rig = Rig::with_nodes(3, |i| {
        let config = MeshConfig {
            validate: i == A,
            max_pending_validations: max_pending,
            max_rejections,
            ..MeshConfig::default()
        };
        (
            MeshState::new(PeerId::from(format!("v{i}")), rig_addr(i), config),
            (),
        )
    });
    rig.connect(B, A);
    rig.connect(C, A);
    rig.settle();
    rig
}

fn text(d: &rs2p::protocol::mesh::Delivery) -> String {
    d.message.payload[1].as_str().unwrap_or_default().to_owned()
}

#[test]
fn accepted_go_on_rejected_and_ignored_stop_at_the_validator() {
    let mut rig = line(16, 10);
    for t in ["ok", "spam", "meh"] {
        rig.broadcast(B, packets![t]).unwrap();
    }
    rig.settle();
    // Held: nothing relayed or delivered yet.
    assert!(rig.take_deliveries(A).is_empty());
    assert!(rig.take_deliveries(C).is_empty());
    let held: Vec<_> = std::mem::take(&mut rig.validations);
    assert_eq!(held.len(), 3);
    for (node, ticket, d) in held {
        assert_eq!(node, A);
        let verdict = match text(&d).as_str() {
            "ok" => Validation::Accept,
            "spam" => Validation::Reject,
            _ => Validation::Ignore,
        };
        rig.validate(A, ticket, verdict);
    }
    rig.settle();
    let at = |rig: &mut Rig, i| rig.take_deliveries(i).iter().map(text).collect::<Vec<_>>();
    assert_eq!(at(&mut rig, A), vec!["ok"]);
    assert_eq!(
        at(&mut rig, C),
        vec!["ok"],
        "only the accepted one is relayed"
    );
    let b_at_a = rig
        .mesh(A)
        .peers()
        .into_iter()
        .find(|p| p.id == rig.id(B))
        .unwrap();
    assert_eq!(b_at_a.rejected, 1, "the rejection counts against B");
    assert_eq!(rig.mesh(A).validation_counts(), (1, 0));
    // A's own broadcasts are never held.
    rig.broadcast(A, packets!["mine"]).unwrap();
    rig.settle();
    assert!(rig.validations.is_empty());
    assert_eq!(at(&mut rig, C), vec!["mine"]);
    // C's broadcast through A is held like B's (A validates every peer).
    rig.broadcast(C, packets!["from c"]).unwrap();
    rig.settle();
    assert_eq!(rig.validations.len(), 1);
}

#[test]
fn too_many_rejections_disconnect_the_peer() {
    let mut rig = line(64, 3);
    for i in 0..4 {
        rig.broadcast(B, packets!["spam", i as u64]).unwrap();
    }
    rig.settle();
    for (_, ticket, _) in std::mem::take(&mut rig.validations) {
        rig.validate(A, ticket, Validation::Reject);
    }
    rig.settle();
    assert!(!rig.is_peer(A, B), "B was not disconnected");
    assert!(rig.is_peer(A, C));
    assert!(rig.closed.iter().any(|((node, _), reason)| *node == A
        && *reason == CloseReason::Misbehaving("broadcasts rejected by validation")));
}

#[test]
fn a_full_validation_queue_drops_new_broadcasts_unrecorded() {
    let mut rig = line(2, 10);
    for i in 0..5u64 {
        rig.broadcast(B, packets!["x", i]).unwrap();
    }
    rig.settle();
    assert_eq!(rig.validations.len(), 2);
    assert_eq!(rig.mesh(A).validation_counts(), (0, 3));
    // Room again once decided.
    for (_, ticket, _) in std::mem::take(&mut rig.validations) {
        rig.validate(A, ticket, Validation::Accept);
    }
    // C sends what B sent before (same bytes would need the same sender
    // and second; a new broadcast shows the freed room instead).
    rig.broadcast(C, packets!["x", 4u64]).unwrap();
    rig.settle();
    assert_eq!(rig.validations.len(), 1, "a new broadcast is held again");
    // Undecided ones are ignored after the timeout.
    rig.advance(MeshConfig::default().validation_timeout_ms + 1_000);
    assert_eq!(rig.mesh(A).pending_validations(), 0);
}

async fn node(b: rs2p::MeshBuilder) -> MeshSocket {
    b.max_outgoing(0).bind("127.0.0.1:0").await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_synchronous_validator_in_real_nodes() {
    let a = node(
        MeshSocket::builder()
            .validator(|msg, _| {
                if msg.packets().first().and_then(Packet::as_str) == Some("spam") {
                    Validation::Reject
                } else {
                    Validation::Accept
                }
            })
            .max_rejections(2),
    )
    .await;
    let (b, c) = (
        node(MeshSocket::builder()).await,
        node(MeshSocket::builder()).await,
    );
    b.connect("127.0.0.1", a.addr().port(), None).await.unwrap();
    c.connect("127.0.0.1", a.addr().port(), None).await.unwrap();
    b.send(packets!["spam", 1u64]).await.unwrap();
    b.send(packets!["hello"]).await.unwrap();
    let m = tokio::time::timeout(WAIT, c.next_message())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        m.packets()[0].as_str(),
        Some("hello"),
        "the rejected one was relayed"
    );
    let b_at_a = a
        .routing_table()
        .await
        .unwrap()
        .into_iter()
        .find(|p| &p.id == b.id())
        .unwrap();
    assert_eq!(b_at_a.rejected, 1);
    // Two more rejections: B is past max_rejections (2) and dropped.
    let mut events = a.events();
    // (Distinct payloads: an identical one in the same second would be
    // the same message, a duplicate, never validated twice.)
    b.send(packets!["spam", 2u64]).await.unwrap();
    b.send(packets!["spam", 3u64]).await.unwrap();
    tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(Event::PeerLeft(id)) = events.recv().await {
                if &id == b.id() {
                    return;
                }
            }
        }
    })
    .await
    .expect("B dropped");
    assert!(
        tokio::time::timeout(Duration::from_millis(300), c.next_message())
            .await
            .is_err()
    );
    for n in [a, b, c] {
        n.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asynchronous_validation_with_a_full_queue_keeps_own_broadcasts() {
    let a = node(MeshSocket::builder().async_validation(4)).await;
    let (b, c) = (
        node(MeshSocket::builder()).await,
        node(MeshSocket::builder()).await,
    );
    b.connect("127.0.0.1", a.addr().port(), None).await.unwrap();
    c.connect("127.0.0.1", a.addr().port(), None).await.unwrap();
    let mut pending = a.validations().expect("async validation");
    assert!(a.validations().is_none(), "taken once");
    // Ten from B; the application decides about none yet: four wait.
    for i in 0..10u64 {
        b.send(packets!["b", i]).await.unwrap();
    }
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(
            tokio::time::timeout(WAIT, pending.next())
                .await
                .unwrap()
                .unwrap(),
        );
    }
    // A's own broadcast is not held, queue full or not.
    a.send(packets!["from a"]).await.unwrap();
    let m = tokio::time::timeout(WAIT, c.next_message())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.packets()[0].as_str(), Some("from a"));
    // Deciding lets them through (accept) or not (reject, and a dropped
    // undecided one is ignored).
    let first = held.remove(0);
    assert_eq!(first.message().packets()[1].as_u64(), Some(0));
    first.accept();
    held.remove(0).reject();
    drop(held);
    let m = tokio::time::timeout(WAIT, c.next_message())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.packets()[1].as_u64(), Some(0));
    assert!(
        tokio::time::timeout(Duration::from_millis(300), c.next_message())
            .await
            .is_err()
    );
    let snapshot = a.routing_table().await.unwrap();
    assert_eq!(
        snapshot.iter().find(|p| &p.id == b.id()).unwrap().rejected,
        1
    );
    for n in [a, b, c] {
        n.close().await;
    }
}
