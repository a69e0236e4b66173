//! A peer that restarts on the same port (a new process, so a new id) must
//! look to the other side like exactly one departure (the old id) and one
//! arrival (the new one), never an extra `PeerLeft`/`PeerJoined` pair.
//!
//! What used to go wrong: A redials the old B's address (a reconnect with
//! backoff), while the new B, started with `--connect A`, reaches A first.
//! A's redial then lands at the new B: two connections between A and the
//! new B, dialled from opposite ends, within the race window, so the
//! conflict rule picks one and both ends agree which. But the end that
//! decided first closed the other connection at once, and the second end
//! could read that close before the handshake on the connection it was
//! about to switch to (two sockets, no order between them): it saw the
//! peer leave, then join again. A also kept redialling the old B's address
//! for ten minutes, meeting the new B there every ten seconds.
//!
//! The rig replays the exact interleavings (every read order that matters,
//! both id orders), so each case fails or passes on every run: before the
//! fix, the `BFirst` cases showed the false departure, the late redial kept
//! being retried, and ends that disagreed about the race window lost the
//! peer. The last test restarts a node over real sockets, several times,
//! where the read order is the operating system's.

mod support;

use std::time::Duration;

use rs2p::packets;
use rs2p::protocol::mesh::{CloseReason, MeshConfig, MeshEvent, MeshState};
use rs2p::protocol::PeerId;
use rs2p::sim::rig::{rig_addr, End, Rig};
use rs2p::{Event, MeshSocket};
use support::mesh::{link, next_with, wait_event};
use support::wait::WAIT;
use tokio::sync::broadcast::{self, error::TryRecvError};
use tokio::time::{timeout, Instant};

const A: usize = 0;
const B_OLD: usize = 1;
const B_NEW: usize = 2;

/// A, the old B and the new B; the new B listens where the old one did.
fn rig(a_id: &str, b_new_id: &str) -> Rig {
    let ids = [a_id, "4444", b_new_id];
    Rig::with_nodes(3, |i| {
        let addr = rig_addr(if i == B_NEW { B_OLD } else { i });
        (
            MeshState::new(PeerId::from(ids[i]), addr, MeshConfig::default()),
            (),
        )
    })
}

fn joined(events: &[MeshEvent], id: &PeerId) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, MeshEvent::PeerJoined { id: j, .. } if j == id))
        .count()
}

fn left(events: &[MeshEvent], id: &PeerId) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, MeshEvent::PeerLeft { id: l, .. } if l == id))
        .count()
}

/// Which end reads first once A's redial has reached the new B, and
/// whether the other end then reads the closing of the first connection
/// before the handshake on the redial (the interleaving that produced the
/// false departure).
#[derive(Clone, Copy, Debug)]
enum Order {
    /// The new B reads A's handshake on the redial first; A then reads
    /// its end of the first connection before the redial.
    BFirst,
    /// A reads the new B's handshake on the redial first; the new B then
    /// reads its end of the first connection before the redial.
    AFirst,
    /// Both ends in the rig's own order.
    Settled,
}

/// A and B connected, B killed, A's redial queued; the new B connects to
/// A, `gap_ms` later A's redial reaches it, read in `order`. Returns the
/// rig and A's and the new B's events from the new B's connection on.
fn restart(
    a_id: &str,
    b_new_id: &str,
    gap_ms: u64,
    order: Order,
) -> (Rig, Vec<MeshEvent>, Vec<MeshEvent>) {
    let label = format!("A={a_id} B'={b_new_id} gap={gap_ms} {order:?}");
    let mut rig = rig(a_id, b_new_id);
    rig.connect(B_OLD, A);
    rig.settle();
    assert!(rig.is_peer(A, B_OLD), "{label}");
    rig.kill(B_OLD);
    rig.settle();
    let events = rig.take_events(A);
    assert_eq!(left(&events, &rig.id(B_OLD)), 1, "{label}: {events:?}");
    // A redials the old B's address (its first attempt, within a second).
    rig.advance(1_000);
    let redial = rig
        .dials
        .iter()
        .position(|d| d.node == A && d.expected_id == Some(rig.id(B_OLD)))
        .map(|i| rig.dials.remove(i))
        .unwrap_or_else(|| panic!("{label}: A did not redial the old B: {:?}", rig.dials));
    assert_eq!(redial.addr, rig_addr(B_OLD), "{label}");
    // The new B, started with --connect A, gets there first.
    let (first_b, first_a) = rig.connect(B_NEW, A);
    rig.settle();
    assert!(rig.is_peer(A, B_NEW) && rig.is_peer(B_NEW, A), "{label}");
    rig.advance(gap_ms);
    // A's redial connects to whoever listens at the old address: the new B.
    let at_a: End = (A, rig.new_conn(A));
    let at_b: End = (B_NEW, rig.new_conn(B_NEW));
    rig.open(at_a, at_b, Some(redial.dial));
    match order {
        Order::BFirst => {
            rig.read(at_b);
            rig.read(first_a);
            rig.read(at_a);
        }
        Order::AFirst => {
            rig.read(at_a);
            rig.read(first_b);
            rig.read(at_b);
        }
        Order::Settled => {}
    }
    rig.settle();
    let a_events = rig.take_events(A);
    let b_events = rig.take_events(B_NEW);
    (rig, a_events, b_events)
}

/// Checks the outcome of [`restart`]: no departure and no second arrival
/// on either side, one connection left between A and the new B, broadcasts
/// both ways, and the old B's address no longer redialled.
fn check(a_id: &str, b_new_id: &str, gap_ms: u64, order: Order) {
    let label = format!("A={a_id} B'={b_new_id} gap={gap_ms} {order:?}");
    let (mut rig, a_events, b_events) = restart(a_id, b_new_id, gap_ms, order);
    let (a, b_new) = (rig.id(A), rig.id(B_NEW));
    // The new B joined A once (when it connected), never left; the same
    // for A at the new B.
    let a_all: Vec<MeshEvent> = a_events;
    assert_eq!(
        left(&a_all, &b_new),
        0,
        "{label}: A saw the new B leave: {a_all:?}"
    );
    assert_eq!(joined(&a_all, &b_new), 1, "{label}: A: {a_all:?}");
    assert_eq!(
        left(&b_events, &a),
        0,
        "{label}: the new B saw A leave: {b_events:?}"
    );
    assert_eq!(joined(&b_events, &a), 1, "{label}: the new B: {b_events:?}");
    // Let every deadline pass (the race window, redial backoffs): the spare
    // connection goes, the peers stay.
    for _ in 0..40 {
        rig.advance(1_000);
        rig.settle();
    }
    let a_later = rig.take_events(A);
    let b_later = rig.take_events(B_NEW);
    assert_eq!(
        left(&a_later, &b_new) + joined(&a_later, &b_new),
        0,
        "{label}: {a_later:?}"
    );
    assert_eq!(
        left(&b_later, &a) + joined(&b_later, &a),
        0,
        "{label}: {b_later:?}"
    );
    assert!(rig.is_peer(A, B_NEW) && rig.is_peer(B_NEW, A), "{label}");
    for (node, name) in [(A, "A"), (B_NEW, "the new B")] {
        let m = rig.mesh(node);
        assert_eq!(
            m.outgoing_count() + m.incoming_count(),
            1,
            "{label}: {name} still holds a spare connection"
        );
    }
    // The old B's address is not redialled any more: the node there is
    // another one.
    let stale: Vec<_> = rig
        .dials
        .iter()
        .filter(|d| d.expected_id == Some(rig.id(B_OLD)))
        .collect();
    assert!(
        stale.is_empty(),
        "{label}: A still redials the old B: {stale:?}"
    );
    // Broadcasts flow both ways.
    let from_a = rig.broadcast(A, packets!["from A"]).unwrap();
    let from_b = rig.broadcast(B_NEW, packets!["from B"]).unwrap();
    rig.settle();
    let ids =
        |rig: &mut Rig, i| -> Vec<_> { rig.take_deliveries(i).into_iter().map(|d| d.id).collect() };
    assert_eq!(ids(&mut rig, B_NEW), vec![from_a], "{label}");
    assert_eq!(ids(&mut rig, A), vec![from_b], "{label}");
}

#[test]
fn a_redial_reaching_a_restarted_peer_is_no_departure() {
    // Both id orders: the conflict rule then keeps the redial (the larger
    // id dialled it) or the first connection; every read order.
    for (a, b_new) in [("3333", "2222"), ("2222", "3333")] {
        for order in [Order::BFirst, Order::AFirst, Order::Settled] {
            check(a, b_new, 200, order);
        }
    }
}

/// Past the race window the first connection is established: the redial
/// is refused at both ends, in any order.
#[test]
fn a_late_redial_is_refused_without_a_departure() {
    let window = MeshConfig::default().race_window_ms;
    for (a, b_new) in [("3333", "2222"), ("2222", "3333")] {
        for order in [Order::BFirst, Order::AFirst, Order::Settled] {
            check(a, b_new, window + 500, order);
        }
    }
}

/// The two ends adopted the first connection a little apart, and the
/// redial comes when A's clock says the first connection is established
/// and the new B's does not: A refuses the redial, the new B (by the
/// conflict rule) switches to it, then sees it closed. It must fall back
/// to the first connection, which it kept, instead of losing A.
#[test]
fn ends_disagreeing_about_the_race_window_keep_the_peer() {
    let window = MeshConfig::default().race_window_ms;
    // The new B switches to the redial when its id is the smaller one
    // (A, the larger, dialled it).
    let mut rig = rig("3333", "2222");
    rig.connect(B_OLD, A);
    rig.settle();
    rig.kill(B_OLD);
    rig.settle();
    rig.advance(1_000);
    let i = rig
        .dials
        .iter()
        .position(|d| d.node == A && d.expected_id == Some(rig.id(B_OLD)))
        .expect("A redials the old B");
    let redial = rig.dials.remove(i);
    let (first_b, first_a) = rig.connect(B_NEW, A);
    // A adopts the new B now, the new B adopts A 100 ms later.
    rig.read(first_a);
    rig.advance(100);
    rig.read(first_b);
    rig.settle();
    assert!(rig.is_peer(A, B_NEW) && rig.is_peer(B_NEW, A));
    rig.take_events(A);
    rig.take_events(B_NEW);
    // 50 ms past the window for A, 50 ms short of it for the new B.
    rig.advance(window - 50);
    let at_a: End = (A, rig.new_conn(A));
    let at_b: End = (B_NEW, rig.new_conn(B_NEW));
    rig.open(at_a, at_b, Some(redial.dial));
    rig.read(at_a);
    rig.read(at_b);
    rig.settle();
    let (a, b_new) = (rig.id(A), rig.id(B_NEW));
    let a_events = rig.take_events(A);
    let b_events = rig.take_events(B_NEW);
    assert_eq!(left(&a_events, &b_new), 0, "{a_events:?}");
    assert_eq!(left(&b_events, &a), 0, "the new B lost A: {b_events:?}");
    assert_eq!(joined(&b_events, &a), 0, "{b_events:?}");
    assert_eq!(rig.mesh(A).conn_of(&b_new), Some(first_a.1));
    assert_eq!(rig.mesh(B_NEW).conn_of(&a), Some(first_b.1));
    let from_a = rig.broadcast(A, packets!["from A"]).unwrap();
    rig.settle();
    let got: Vec<_> = rig
        .take_deliveries(B_NEW)
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(got, vec![from_a]);
}

/// Every event a subscription holds now.
fn drain(rx: &mut broadcast::Receiver<Event>) -> Vec<Event> {
    let mut v = Vec::new();
    loop {
        match rx.try_recv() {
            Ok(e) => v.push(e),
            Err(TryRecvError::Lagged(_)) => continue,
            Err(_) => return v,
        }
    }
}

/// How many events of `events` say `id` joined, and how many that it left.
fn joins_and_leaves(events: &[Event], id: &PeerId) -> (usize, usize) {
    let joined = events
        .iter()
        .filter(|e| matches!(e, Event::PeerJoined(j) if j == id))
        .count();
    let left = events
        .iter()
        .filter(|e| matches!(e, Event::PeerLeft(l) if l == id))
        .count();
    (joined, left)
}

/// Binds a node on `port`, which a node that just closed held (bounded
/// retries while the operating system releases it).
async fn bind_again(port: u16) -> MeshSocket {
    let deadline = Instant::now() + WAIT;
    loop {
        match MeshSocket::bind(&format!("127.0.0.1:{port}")).await {
            Ok(node) => return node,
            Err(e) if Instant::now() > deadline => panic!("port {port} stays taken: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// B restarts on its port, again and again, each time connecting to A at
/// once; A's redial of the old B then reaches the new B, a race between two
/// connections. Each restart must read at A as the old B leaving and the
/// new one joining, once, and at the new B as A joining once, with no
/// departure. (Before the fix every run failed, at its first or second
/// restart: a false `PeerLeft`/`PeerJoined` pair on one side or the other.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_on_the_same_port_over_real_sockets() {
    const ROUNDS: usize = 8;
    let a = MeshSocket::bind("127.0.0.1:0").await.unwrap();
    let mut a_events = a.events();
    let mut b = MeshSocket::bind("127.0.0.1:0").await.unwrap();
    let port = b.addr().port();
    link(&b, &a).await;
    let mut races = 0;
    for round in 0..ROUNDS {
        let old = b.id().clone();
        timeout(WAIT, b.close()).await.expect("close hung");
        wait_event(&mut a_events, WAIT, "the old B leaving", |e| {
            *e == Event::PeerLeft(old.clone())
        })
        .await;
        drain(&mut a_events);
        // The new B, on the same port, connects to A at once; A's redial
        // of the old B (due within about a second) reaches it.
        let nb = bind_again(port).await;
        let mut nb_events = nb.events();
        let (mut race_a, mut race_nb) = (a.events(), nb.events());
        link(&nb, &a).await;
        let race = timeout(Duration::from_secs(8), async {
            let conflict = |e: &Result<Event, _>| {
                matches!(
                    e,
                    Ok(Event::Rejected {
                        reason: CloseReason::Conflict,
                        ..
                    })
                )
            };
            loop {
                tokio::select! {
                    e = race_a.recv() => if conflict(&e) { break },
                    e = race_nb.recv() => if conflict(&e) { break },
                }
            }
        })
        .await;
        races += usize::from(race.is_ok());
        // Broadcasts both ways: both ends have settled on a connection.
        let (to_nb, to_a) = (format!("to B {round}"), format!("to A {round}"));
        a.send(packets![to_nb.as_str()]).await.unwrap();
        next_with(&nb, &to_nb).await;
        nb.send(packets![to_a.as_str()]).await.unwrap();
        next_with(&a, &to_a).await;
        let at_a = drain(&mut a_events);
        let at_nb = drain(&mut nb_events);
        assert_eq!(
            joins_and_leaves(&at_a, nb.id()),
            (1, 0),
            "round {round}: A saw the new B join and leave: {at_a:?}"
        );
        assert_eq!(
            joins_and_leaves(&at_nb, a.id()),
            (1, 0),
            "round {round}: the new B saw A join and leave: {at_nb:?}"
        );
        b = nb;
    }
    // Most restarts raced (else this test shows nothing).
    eprintln!("{races} of {ROUNDS} restarts raced");
    assert!(
        races * 2 >= ROUNDS,
        "only {races} of {ROUNDS} restarts raced"
    );
    b.close().await;
    a.close().await;
}
