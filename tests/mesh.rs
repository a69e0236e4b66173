//! Loopback integration tests of the mesh behaviour (PROTOCOL.md §5–8):
//! propagation over explicit topologies, subnet rejection, handlers,
//! replies (direct and routed), whispers, renegotiation and resend,
//! connection conflicts, healing and shutdown.
//!
//! Every node binds 127.0.0.1:0; every wait is bounded (see `support/wait.rs`).

mod support;

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rs2p::protocol::mesh::{CloseReason, SendError};
use rs2p::protocol::{base58, Compression, MainFlag, MessageId, SubFlag};
use rs2p::{packets, Error, Event, MeshSocket, MessageKind, PeerId, Protocol};
use support::mesh::*;
use support::wait::{wait_until, WAIT};
use tokio::time::timeout;

// ----- 1. propagation -------------------------------------------------------

async fn propagation(n: usize, edges: Vec<(usize, usize)>, label: &str) {
    assert!(
        is_connected(n, &edges),
        "{label}: test topology not connected"
    );
    // max_outgoing(0): peer lists never add edges, the topology stays as wired.
    let nodes = nodes(n, 0).await;
    wire(&nodes, &edges).await;
    let all: Vec<usize> = (0..n).collect();
    broadcast_round(&nodes, &all, label).await;
    // The topology is still exactly as wired (nothing dialled on its own).
    wait_topology(&nodes, &edges).await;
    close_all(&nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn propagation_line() {
    let n = 7;
    let edges: Vec<_> = (0..n - 1).map(|i| (i + 1, i)).collect();
    propagation(n, edges, "line").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn propagation_ring() {
    let n = 7;
    let edges: Vec<_> = (0..n).map(|i| (i, (i + 1) % n)).collect();
    propagation(n, edges, "ring").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn propagation_random_connected() {
    for seed in [0x5EED_0001_u64, 0xC0FF_EE42, 0x0123_4567_89AB_CDEF] {
        let n = 8;
        let edges = random_connected(n, 4, seed);
        propagation(n, edges, &format!("random-{seed:x}")).await;
    }
}

// ----- 2. subnet rejection --------------------------------------------------

async fn subnet_node(subnet: &str) -> MeshSocket {
    MeshSocket::builder()
        .protocol(Protocol::new(subnet, "Plaintext"))
        .max_outgoing(0)
        .bind("127.0.0.1:0")
        .await
        .expect("bind")
}

/// `dialler` (subnet of its own) dials `listener` (another subnet).
async fn check_subnet_rejection(dialler: &MeshSocket, listener: &MeshSocket) {
    let mut listener_events = listener.events();
    let mut dialler_events = dialler.events();
    let r = timeout(
        WAIT,
        dialler.connect("127.0.0.1", listener.addr().port(), None),
    )
    .await
    .expect("connect hung");
    match r {
        Err(Error::SubnetMismatch { ours, theirs }) => {
            assert_eq!(ours, dialler.protocol().id());
            assert_eq!(theirs, listener.protocol().id());
        }
        other => panic!("expected Err(SubnetMismatch), got {other:?}"),
    }
    // The listener accepted the connection before the dialler could see its
    // handshake; wait until it has dropped it again. (Whether the listener
    // itself saw the dialler's handshake, and so raised its own Rejected
    // event, is a race: the dialler may close before its handshake is
    // written. Either way the connection must be gone and nobody joined.)
    wait_until("listener dropped the connection", WAIT, || async {
        let s = listener.snapshot().await.unwrap();
        if s.connections == 0 && s.awaiting == 0 && s.peers.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "connections={} awaiting={} peers={}",
                s.connections,
                s.awaiting,
                s.peers.len()
            ))
        }
    })
    .await;
    let s = dialler.snapshot().await.unwrap();
    assert!(s.peers.is_empty(), "dialler kept the peer");
    assert_eq!(
        (s.connections, s.awaiting),
        (0, 0),
        "dialler kept the connection"
    );
    let mut dialler_rejected = 0;
    for (who, rx) in [
        ("listener", &mut listener_events),
        ("dialler", &mut dialler_events),
    ] {
        while let Ok(ev) = rx.try_recv() {
            match ev {
                Event::Rejected { reason, .. } => {
                    assert!(
                        matches!(reason, CloseReason::SubnetMismatch { .. }),
                        "{who}: rejected for {reason:?}"
                    );
                    dialler_rejected += usize::from(who == "dialler");
                }
                Event::Connect | Event::PeerJoined(_) | Event::PeerLeft(_) | Event::Message => {
                    panic!("{who}: unexpected event {ev:?}")
                }
                _ => {}
            }
        }
    }
    assert_eq!(dialler_rejected, 1, "the dialler raises one Rejected event");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subnet_mismatch_rejected_both_ways() {
    let a = subnet_node("a").await;
    let b = subnet_node("b").await;
    assert_ne!(a.protocol().id(), b.protocol().id());
    check_subnet_rejection(&a, &b).await;
    check_subnet_rejection(&b, &a).await;
    // Nothing leaked into the application either.
    assert!(a.recv().is_none() && b.recv().is_none());
    close_all(&[a, b]).await;
}

// ----- 3. handler registry --------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handlers_run_in_order_and_first_true_stops_the_chain() {
    let a = node(0).await;
    let b = node(0).await;
    wire(&[a.clone(), b.clone()], &[(0, 1)]).await;

    let calls1 = Arc::new(AtomicUsize::new(0));
    let calls2 = Arc::new(AtomicUsize::new(0));
    // (handler number, first packet, peer of the connection)
    type Log = Vec<(u8, String, Option<PeerId>)>;
    let log: Arc<Mutex<Log>> = Arc::default();
    let first = |m: &rs2p::Message| {
        m.packets()
            .first()
            .and_then(|p| p.as_str())
            .unwrap_or("")
            .to_owned()
    };
    {
        let (calls1, log) = (calls1.clone(), log.clone());
        b.register_handler(move |m, c| {
            calls1.fetch_add(1, Ordering::SeqCst);
            let f = first(m);
            log.lock().unwrap().push((1, f.clone(), c.peer().cloned()));
            f == "handled"
        })
        .unwrap();
    }
    {
        let (calls2, log) = (calls2.clone(), log.clone());
        b.register_handler(move |m, c| {
            calls2.fetch_add(1, Ordering::SeqCst);
            log.lock().unwrap().push((2, first(m), c.peer().cloned()));
            false
        })
        .unwrap();
    }
    // A round trip through B's command queue: both registrations are done.
    b.routing_table().await.unwrap();

    a.send(packets!["handled", 1]).await.unwrap();
    a.whisper(b.id(), packets!["handled", 2]).await.unwrap();
    a.send(packets!["other", 1]).await.unwrap();
    a.whisper(b.id(), packets!["other", 2]).await.unwrap();
    a.send(packets!["handled", 3]).await.unwrap();
    a.send(packets!["other", "end"]).await.unwrap();

    // Everything was sent on one connection, in order: once "end" is queued,
    // every earlier message has been through the handlers.
    let got = collect_until(&b, WAIT, "B waits for the end marker", |ms| {
        ms.last()
            .is_some_and(|m| m.packets().get(1).and_then(|p| p.as_str()) == Some("end"))
    })
    .await;
    let mut queued = got;
    queued.extend(drain_now(&b));
    let summary: Vec<(String, Option<u64>, MessageKind)> = queued
        .iter()
        .map(|m| {
            (
                first(m),
                m.packets().get(1).and_then(|p| p.as_u64()),
                m.kind(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("other".to_owned(), Some(1), MessageKind::Broadcast),
            ("other".to_owned(), Some(2), MessageKind::Whisper),
            ("other".to_owned(), None, MessageKind::Broadcast),
        ],
        "only unhandled messages may be queued, in order"
    );
    assert_eq!(
        calls1.load(Ordering::SeqCst),
        6,
        "handler 1 sees every message"
    );
    assert_eq!(
        calls2.load(Ordering::SeqCst),
        3,
        "handler 2 sees only what handler 1 did not handle"
    );
    let log = log.lock().unwrap().clone();
    let order: Vec<(u8, &str)> = log.iter().map(|(h, f, _)| (*h, f.as_str())).collect();
    assert_eq!(
        order,
        vec![
            (1, "handled"),
            (1, "handled"),
            (1, "other"),
            (2, "other"),
            (1, "other"),
            (2, "other"),
            (1, "handled"),
            (1, "other"),
            (2, "other"),
        ],
        "handlers run in registration order, the first true stops the chain"
    );
    assert!(
        log.iter().all(|(_, _, p)| p.as_ref() == Some(a.id())),
        "the Connection passed to handlers names the peer: {log:?}"
    );
    close_all(&[a, b]).await;
}

// ----- 4. reply when directly connected ------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reply_direct() {
    let a = node(0).await;
    let b = node(0).await;
    wire(&[a.clone(), b.clone()], &[(0, 1)]).await;

    let sent = a.send(packets!["question", 7]).await.unwrap();
    let q = next_within(&b, WAIT).await;
    assert_eq!(q.id(), sent);
    assert_eq!(q.sender(), a.id());
    assert_eq!(q.kind(), MessageKind::Broadcast);
    q.reply(packets!["answer", 42]).unwrap();

    let r = next_within(&a, WAIT).await;
    assert_eq!(r.kind(), MessageKind::Whisper);
    assert_eq!(r.sender(), b.id());
    assert_eq!(r.packets()[0].as_str(), Some("answer"));
    assert_eq!(r.packets()[1].as_u64(), Some(42));
    assert!(b.recv().is_none(), "B must not see its own reply");
    assert!(a.status().await.unwrap().is_empty());
    close_all(&[a, b]).await;
}

// ----- 5. reply routed through a request ------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reply_routed_through_request() {
    // A – B – C; max_outgoing(0) so A and C never meet through peer lists.
    let nodes = nodes(3, 0).await;
    wire(&nodes, &[(0, 1), (2, 1)]).await;
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    assert!(!peer_ids(a).await.contains(c.id()));

    let sent = c.send(packets!["who is there?"]).await.unwrap();
    let q = next_within(a, WAIT).await;
    assert_eq!(q.id(), sent);
    assert_eq!(q.sender(), c.id());
    // B saw it too.
    assert_eq!(next_within(b, WAIT).await.id(), sent);

    q.reply(packets!["A here", 1]).unwrap();
    let r = next_within(c, WAIT).await;
    assert_eq!(r.kind(), MessageKind::Whisper);
    assert_eq!(r.sender(), a.id());
    assert_eq!(r.packets()[0].as_str(), Some("A here"));
    assert_eq!(r.packets()[1].as_u64(), Some(1));

    // A dialled C for the reply: they are now directly connected.
    let want_a: HashSet<PeerId> = [b.id().clone(), c.id().clone()].into();
    let want_c: HashSet<PeerId> = [b.id().clone(), a.id().clone()].into();
    wait_peers_exact(a, &want_a, "A").await;
    wait_peers_exact(c, &want_c, "C").await;
    let a_to_c = a
        .routing_table()
        .await
        .unwrap()
        .into_iter()
        .find(|p| &p.id == c.id())
        .unwrap();
    assert!(a_to_c.outgoing, "A dialled C");
    assert_eq!(a.snapshot().await.unwrap().pending_requests, 0);
    // The route request and response are protocol messages, never queued.
    assert!(
        drain_now(b).is_empty(),
        "B's application saw protocol traffic"
    );
    assert!(drain_now(a).is_empty());
    assert!(drain_now(c).is_empty());

    // A second reply goes directly now.
    let q2 = {
        let id = c.send(packets!["again?"]).await.unwrap();
        let m = next_within(a, WAIT).await;
        assert_eq!(m.id(), id);
        m
    };
    q2.reply(packets!["yes"]).unwrap();
    let r2 = next_within(c, WAIT).await;
    assert_eq!(r2.sender(), a.id());
    assert_eq!(r2.packets()[0].as_str(), Some("yes"));
    close_all(&nodes).await;
}

// ----- 6. whisper -----------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whisper_to_peer_and_to_unknown() {
    // A – B – C
    let nodes = nodes(3, 0).await;
    wire(&nodes, &[(0, 1), (2, 1)]).await;
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);

    let id = a.whisper(b.id(), packets!["psst", 1]).await.unwrap();
    let m = next_within(b, WAIT).await;
    assert_eq!(m.kind(), MessageKind::Whisper);
    assert_eq!(m.sender(), a.id());
    assert_eq!(m.id(), id, "whisper returns the id the receiver sees");
    assert_eq!(m.packets()[0].as_str(), Some("psst"));

    // Unknown id, and a node that exists but is not a peer.
    for target in [PeerId::from("no-such-node"), c.id().clone()] {
        match a.whisper(&target, packets!["lost"]).await {
            Err(Error::Send(SendError::NotConnected(_))) => {}
            other => panic!("whisper to a non-peer: expected NotConnected, got {other:?}"),
        }
    }

    // Whispers are not forwarded: after a marker broadcast from A reaches C,
    // C holds nothing but the marker.
    let marker = a.send(packets!["marker"]).await.unwrap();
    let got = collect_until(c, WAIT, "C waits for the marker", |ms| {
        ms.iter().any(|m| m.id() == marker)
    })
    .await;
    let mut all = got;
    all.extend(drain_now(c));
    assert_eq!(all.len(), 1, "C saw more than the marker: {all:?}");
    assert_eq!(next_within(b, WAIT).await.id(), marker);
    assert!(drain_now(b).is_empty());
    close_all(&nodes).await;
}

// ----- 7. renegotiation and resend ------------------------------------------

async fn compression_of(node: &MeshSocket, peer: &PeerId) -> Vec<Compression> {
    node.routing_table()
        .await
        .unwrap()
        .into_iter()
        .find(|p| &p.id == peer)
        .unwrap_or_else(|| panic!("{peer:?} not in the routing table"))
        .compression
}

async fn wait_compression(node: &MeshSocket, peer: &PeerId, want: &[Compression], what: &str) {
    wait_until(what, WAIT, || async {
        let got = compression_of(node, peer).await;
        if got == want {
            Ok(())
        } else {
            Err(format!("have {got:?}"))
        }
    })
    .await;
}

async fn exchange(a: &MeshSocket, b: &MeshSocket, tag: &str) {
    let id = a.send(packets![tag, "a->b"]).await.unwrap();
    let m = next_within(b, WAIT).await;
    assert_eq!(m.id(), id, "{tag}: broadcast A->B");
    let id = b.send(packets![tag, "b->a"]).await.unwrap();
    let m = next_within(a, WAIT).await;
    assert_eq!(m.id(), id, "{tag}: broadcast B->A");
    let id = a.whisper(b.id(), packets![tag, "w a->b"]).await.unwrap();
    assert_eq!(next_within(b, WAIT).await.id(), id, "{tag}: whisper A->B");
    let id = b.whisper(a.id(), packets![tag, "w b->a"]).await.unwrap();
    assert_eq!(next_within(a, WAIT).await.id(), id, "{tag}: whisper B->A");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renegotiation_adopts_the_requested_methods() {
    let a = node(0).await;
    let b = node(0).await;
    wire(&[a.clone(), b.clone()], &[(0, 1)]).await;
    let all = Compression::ALL.to_vec();
    assert_eq!(compression_of(&a, b.id()).await, all);
    assert_eq!(compression_of(&b, a.id()).await, all);
    exchange(&a, &b, "before").await;

    // on_renegotiate: B records A's list as the methods it uses towards A
    // and, since it changed, answers with the intersection with its own
    // (= [Zlib]); A records that for B; A's answer equals what B holds, so
    // it stops there.
    a.renegotiate(b.id(), vec![Compression::Zlib])
        .await
        .unwrap();
    wait_compression(&b, a.id(), &[Compression::Zlib], "B adopts A's list").await;
    wait_compression(&a, b.id(), &[Compression::Zlib], "A adopts B's answer").await;
    exchange(&a, &b, "zlib").await;

    // An empty list means uncompressed frames.
    b.renegotiate(a.id(), vec![]).await.unwrap();
    wait_compression(&a, b.id(), &[], "A adopts B's empty list").await;
    wait_compression(&b, a.id(), &[], "B adopts A's answer").await;
    exchange(&a, &b, "plain").await;

    // Still one connection each way, nothing rejected.
    assert_eq!(peer_ids(&a).await, [b.id().clone()].into());
    assert_eq!(peer_ids(&b).await, [a.id().clone()].into());
    assert!(
        a.status().await.unwrap().is_empty(),
        "{:?}",
        a.status().await
    );
    assert!(
        b.status().await.unwrap().is_empty(),
        "{:?}",
        b.status().await
    );
    close_all(&[a, b]).await;
}

type BoxFut<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Messages sent right after `renegotiate` (before the peer's answer is
/// back) must still arrive and the connection must survive: A keeps
/// compressing with the method it chose from B's handshake list until B's
/// answer arrives, so B must still accept that method in the meantime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renegotiation_then_immediate_send() {
    let a = node(0).await;
    let b = node(0).await;
    wire(&[a.clone(), b.clone()], &[(0, 1)]).await;
    assert_eq!(compression_of(&a, b.id()).await[0], Compression::Snappy);
    let mut b_events = b.events();

    // The application calls renegotiate() and then send() at once. To make
    // "at once" independent of thread scheduling, it does so from a handler
    // on A's own task: both commands are queued before A's actor can run
    // again, so A handles them back to back, before B's answer is back.
    type Pending = Started<BoxFut<Result<Option<MessageId>, Error>>>;
    let started: Arc<Mutex<Vec<Pending>>> = Arc::default();
    {
        let (node_a, peer_b, started) = (a.clone(), b.id().clone(), started.clone());
        a.register_handler(move |m, _| {
            if m.packets().first().and_then(|p| p.as_str()) != Some("go") {
                return false;
            }
            let mut v = started.lock().unwrap();
            let (n, p) = (node_a.clone(), peer_b.clone());
            v.push(start_now(Box::pin(async move {
                n.renegotiate(&p, vec![Compression::Zlib])
                    .await
                    .map(|()| None)
            }) as BoxFut<_>));
            for i in 0..5u64 {
                let n = node_a.clone();
                v.push(start_now(Box::pin(async move {
                    n.send(packets!["right after renegotiate", i])
                        .await
                        .map(Some)
                }) as BoxFut<_>));
            }
            true
        })
        .unwrap();
    }
    a.routing_table().await.unwrap(); // the handler is registered
    b.send(packets!["go"]).await.unwrap();
    wait_until("A's handler ran", WAIT, || async {
        match started.lock().unwrap().len() {
            6 => Ok(()),
            n => Err(format!("{n} started")),
        }
    })
    .await;
    let futs: Vec<_> = std::mem::take(&mut *started.lock().unwrap());
    let mut ids = HashSet::new();
    for f in futs {
        if let Some(id) = f.finish().await.expect("renegotiate/send") {
            ids.insert(id);
        }
    }
    assert_eq!(ids.len(), 5);

    let mut got = HashSet::new();
    let mut lost = None;
    let mut dropped = Vec::new();
    // Stop early if B drops A instead of delivering.
    while got.len() < ids.len() && dropped.is_empty() {
        tokio::select! {
            m = timeout(WAIT, b.next_message()) => match m {
                Ok(Ok(m)) => {
                    got.insert(m.id());
                }
                other => {
                    lost = Some(format!("{other:?}"));
                    break;
                }
            },
            Ok(ev) = b_events.recv() => {
                if matches!(ev, Event::Rejected { .. } | Event::PeerLeft(_)) {
                    dropped.push(ev);
                }
            }
        }
    }
    let status_b = b.status().await.unwrap();
    assert!(
        lost.is_none() && dropped.is_empty(),
        "B received {} of the {} messages A sent right after renegotiate() ({lost:?}); \
         B's events: {dropped:?}; B's status: {status_b:?}",
        got.len(),
        ids.len()
    );
    assert_eq!(got, ids);
    wait_compression(&a, b.id(), &[Compression::Zlib], "A adopts B's answer").await;
    exchange(&a, &b, "after").await;
    close_all(&[a, b]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resend_repeats_the_last_whisper() {
    let a = node(0).await;
    let b = node(0).await;
    wire(&[a.clone(), b.clone()], &[(0, 1)]).await;

    let id = b.whisper(a.id(), packets!["once", 1]).await.unwrap();
    let first = next_within(&a, WAIT).await;
    assert_eq!(first.id(), id);
    assert!(a.recv().is_none());

    a.request_resend(b.id()).await.unwrap();
    let again = next_within(&a, WAIT).await;
    assert_eq!(again.id(), id, "the resent message is the same message");
    assert_eq!(again.kind(), MessageKind::Whisper);
    assert_eq!(again.sender(), b.id());
    assert_eq!(again.packets()[0].as_str(), Some("once"));
    assert!(b.recv().is_none(), "resend requests are not shown to B");

    // Unknown peer.
    assert!(matches!(
        a.request_resend(&PeerId::from("nobody")).await,
        Err(Error::Send(SendError::NotConnected(_)))
    ));
    assert!(matches!(
        a.renegotiate(&PeerId::from("nobody"), vec![]).await,
        Err(Error::Send(SendError::NotConnected(_)))
    ));
    close_all(&[a, b]).await;
}

// ----- 8. conflict resolution -----------------------------------------------

/// After a conflict: each side has exactly the other in its table, over
/// one and the same TCP connection (dialled by exactly one of them), and
/// broadcasts cross once each way.
async fn check_settled(a: &MeshSocket, b: &MeshSocket, label: &str) {
    wait_peers_exact(a, &[b.id().clone()].into(), label).await;
    wait_peers_exact(b, &[a.id().clone()].into(), label).await;
    wait_until(
        "both ends agree on the surviving connection",
        WAIT,
        || async {
            let ra = a.routing_table().await.unwrap();
            let rb = b.routing_table().await.unwrap();
            let (Some(pa), Some(pb)) = (ra.first(), rb.first()) else {
                return Err("a table is empty".into());
            };
            if pa.outgoing == pb.outgoing {
                return Err(format!(
                    "A.outgoing={} B.outgoing={}: the ends kept different connections",
                    pa.outgoing, pb.outgoing
                ));
            }
            if a.awaiting_ids().await.unwrap() + b.awaiting_ids().await.unwrap() != 0 {
                return Err("half-open connection left".into());
            }
            Ok(())
        },
    )
    .await;
    broadcast_round(&[a.clone(), b.clone()], &[0, 1], label).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflict_concurrent_dials() {
    for round in 0..8 {
        let a = node(0).await;
        let b = node(0).await;
        let (ra, rb) = timeout(Duration::from_secs(5), async {
            tokio::join!(
                a.connect("127.0.0.1", b.addr().port(), Some(b.id().clone())),
                b.connect("127.0.0.1", a.addr().port(), Some(a.id().clone())),
            )
        })
        .await
        .unwrap_or_else(|_| {
            panic!(
                "round {round}: a concurrent connect() did not return within 5 s \
                 (handshake timeout is 10 s): the peer's handshake arrived but the \
                 waiter was never resolved"
            )
        });
        for (who, r, peer) in [("A", &ra, b.id()), ("B", &rb, a.id())] {
            match r {
                Ok(id) => assert_eq!(id, peer),
                // The duplicate connection that lost the conflict.
                Err(Error::Closed(_)) | Err(Error::AlreadyConnected(_)) => {}
                Err(e) => panic!("round {round}: {who}.connect: unexpected {e:?}"),
            }
        }
        assert!(
            ra.is_ok() || rb.is_ok(),
            "round {round}: the dialler of the kept connection must get Ok: {ra:?} {rb:?}"
        );
        check_settled(&a, &b, &format!("conflict round {round}")).await;
        close_all(&[a, b]).await;
    }
}

/// `int(a) > int(b)` for base58 ids, as py2p (and rs2p) decide conflicts.
fn id_greater(a: &PeerId, b: &PeerId) -> bool {
    let int = |id: &PeerId| {
        let v = base58::decode_to_be_bytes(&id.to_string()).expect("base58 id");
        let skip = v.iter().take_while(|&&x| x == 0).count();
        v[skip..].to_vec()
    };
    let (x, y) = (int(a), int(b));
    (x.len(), x) > (y.len(), y)
}

/// The sequential half of the conflict: B is already A's peer (B dialled
/// A) when A dials B again. By §5.5 (`keep existing` iff `int(me) >
/// int(them)` XOR `new connection is outgoing`):
///
/// - A's id greater: A keeps the *new* connection (its outgoing one) and
///   closes the old one; B agrees. A's connect() must return Ok(B), since
///   the connection it dialled is the one that stays.
/// - A's id smaller: both keep the old connection and close the new one;
///   A's connect() may report the closed duplicate (Err(Closed)).
///
/// In the first case A must process B's handshake on the new connection
/// before B's close of the old one reaches it for the "replace" branch to
/// run; that is a race, so each case runs several rounds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflict_redial_of_existing_peer() {
    for a_greater in [true, false] {
        for round in 0..10 {
            let x = node(0).await;
            let y = node(0).await;
            let (a, b) = if id_greater(x.id(), y.id()) == a_greater {
                (x, y)
            } else {
                (y, x)
            };
            let label = format!("redial a_greater={a_greater} round {round}");
            link(&b, &a).await;
            wait_peers_exact(&a, &[b.id().clone()].into(), "A has B").await;
            // A dials B a second time (no expected id, so it is not refused
            // up front as AlreadyConnected).
            let r = timeout(
                Duration::from_secs(5),
                a.connect("127.0.0.1", b.addr().port(), None),
            )
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{label}: the second connect() did not return within 5 s although \
                     B's handshake arrived on it (handshake timeout is 10 s)"
                )
            });
            match &r {
                Ok(id) => assert_eq!(id, b.id()),
                Err(Error::Closed(_)) | Err(Error::AlreadyConnected(_)) if !a_greater => {}
                Err(e) => panic!("{label}: unexpected {e:?}"),
            }
            check_settled(&a, &b, &label).await;
            let kept_outgoing = a.routing_table().await.unwrap()[0].outgoing;
            assert_eq!(
                kept_outgoing, a_greater,
                "{label}: the connection kept is the one §5.5 designates"
            );
            close_all(&[a, b]).await;
        }
    }
}

// ----- 9. healing -----------------------------------------------------------

/// Healing through a peer-list request after losing a node (§5.6).
///
/// A split cannot be healed by the §5.6 request alone: a peer list only
/// names the sender's current routing table, so once the survivors are
/// split every list a survivor can still obtain names nodes of its own
/// component (or the closed node, which refuses the dial). The split case
/// needs an address remembered from a list received *before* the split;
/// that is `healing_of_a_split_through_a_remembered_address` below.
///
/// Here the survivors stay connected, and the test makes the healed edge
/// *necessary* in two steps. Five
/// nodes, all with `max_outgoing(1)`, wired as a ring in which every node
/// dials exactly one other:
///
/// ```text
///   A→M, B→A, C→B, D→C, M→D        (X→Y: X dialled Y)
///
///        M
///      ↗   ↘
///     A      D
///     ↑      ↓
///     B  ←   C
/// ```
///
/// Every node's single outgoing slot is taken by its explicit dial before
/// it receives any non-empty peer list (the dials are made in this order),
/// so peer lists add nothing during setup.
///
/// Step 1: M closes. A loses its only *outgoing* connection, so on
/// PeerLeft it asks its remaining peer B for its list (§5.6); B answers
/// [C]; A has a free outgoing slot and dials C. D also loses M, but M was
/// incoming for D: its slot is still used (D→C) and it dials nothing.
/// Expected tables: A{B,C} B{A,C} C{A,B,D} D{C}. A broadcast round among
/// the survivors checks exactly-once delivery.
///
/// Step 2: B closes. Without the healed edge A–C, A would now be alone
/// (A's only other peer was B). With it, A–C–D is connected: a broadcast
/// from every survivor reaches the other two exactly once. (C lost its
/// outgoing B and asks A and D for lists, which name nothing new.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healing_through_peer_lists_after_losing_a_node() {
    let nodes = nodes(5, 1).await;
    let (a, b, c, d, m) = (0, 1, 2, 3, 4);
    let ring = [(a, m), (b, a), (c, b), (d, c), (m, d)];
    wire(&nodes, &ring).await;
    for (i, n) in nodes.iter().enumerate() {
        assert_eq!(n.outgoing().await.unwrap().len(), 1, "node {i} outgoing");
    }

    // Step 1: lose M.
    let mut a_events = nodes[a].events();
    timeout(WAIT, nodes[m].close()).await.expect("close hung");
    wait_event(&mut a_events, WAIT, "A sees M leave", |e| {
        *e == Event::PeerLeft(nodes[m].id().clone())
    })
    .await;
    let survivors: Vec<MeshSocket> = vec![
        nodes[a].clone(),
        nodes[b].clone(),
        nodes[c].clone(),
        nodes[d].clone(),
    ];
    // Indices into `survivors` are the same as into `nodes` for a..=d.
    let healed = [(a, c), (b, a), (c, b), (d, c)];
    wait_topology(&survivors, &healed).await;
    let a_out = nodes[a].outgoing().await.unwrap();
    assert_eq!(
        a_out,
        vec![nodes[c].id().clone()],
        "A re-filled its slot with C"
    );
    broadcast_round(&survivors, &[a, b, c, d], "healed").await;

    // Step 2: lose B; only the healed edge keeps A attached.
    timeout(WAIT, nodes[b].close()).await.expect("close hung");
    let rest = vec![nodes[a].clone(), nodes[c].clone(), nodes[d].clone()];
    // In `rest`: A=0, C=1, D=2.
    wait_topology(&rest, &[(0, 1), (2, 1)]).await;
    broadcast_round(&rest, &[0, 1, 2], "after-second-loss").await;

    close_all(&rest).await;
}

/// Healing of a real split, through an address learnt from a peer list
/// before the split (the library's address book: "known addresses refill
/// the routing table up to `max_outgoing`").
///
/// ```text
///   B → A → M ← C ← D            (X→Y: X dialled Y; a line, M in the middle)
/// ```
///
/// Only A may dial on its own (`max_outgoing(1)`); B, M, C and D have
/// `max_outgoing(0)`, so nothing but A's healing can add an edge and the
/// outcome is deterministic. C joins M before A does, so when A's
/// handshake with M completes, M's peer list tells A about C; A's one
/// outgoing slot is taken (A→M), so it only remembers C.
///
/// M closes: the survivors split into {A, B} and {C, D}, each survivor
/// keeping one peer. A lost its outgoing connection; its request to B
/// (§5.6) names nothing new, but A has a free slot and remembers C, so it
/// dials C. Expected tables: A{B,C} B{A} C{A,D} D{C}; then a broadcast
/// from every survivor reaches every other exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healing_of_a_split_through_a_remembered_address() {
    let (a, b, m, c, d) = (0, 1, 2, 3, 4);
    let nodes = vec![
        node(1).await,
        node(0).await,
        node(0).await,
        node(0).await,
        node(0).await,
    ];
    // First everything but A→M, and wait until M knows C.
    wire(&nodes, &[(b, a), (c, m), (d, c)]).await;
    // Then A joins M; M's peer list to A names C.
    link(&nodes[a], &nodes[m]).await;
    let line = [(b, a), (c, m), (d, c), (a, m)];
    wait_topology(&nodes, &line).await;
    assert!(
        !peer_ids(&nodes[a]).await.contains(nodes[c].id()),
        "A must not be connected to C before the split"
    );

    timeout(WAIT, nodes[m].close()).await.expect("close hung");
    let survivors: Vec<MeshSocket> = [a, b, c, d].iter().map(|&i| nodes[i].clone()).collect();
    // In `survivors`: A=0, B=1, C=2, D=3.
    wait_topology(&survivors, &[(1, 0), (0, 2), (3, 2)]).await;
    assert_eq!(
        nodes[a].outgoing().await.unwrap(),
        vec![nodes[c].id().clone()],
        "A dialled C"
    );
    broadcast_round(&survivors, &[0, 1, 2, 3], "split-healed").await;
    close_all(&survivors).await;
}

/// The application can ask for peer lists itself: a node that has a free
/// outgoing slot and calls `request_peers` dials the peers of its peers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_peers_fills_free_outgoing_slots() {
    // X has max_outgoing 3 but joins with one explicit dial to H; H learns
    // P and Q after X joined, so X's handshake-time list was empty. The
    // others have max_outgoing 0.
    let h = node(0).await;
    let p = node(0).await;
    let q = node(0).await;
    let x = node(3).await;
    link(&x, &h).await;
    wait_peers_exact(&h, &[x.id().clone()].into(), "H has X").await;
    link(&p, &h).await;
    link(&q, &h).await;
    wait_peers_at_least(&h, 3).await;
    assert_eq!(peer_ids(&x).await, [h.id().clone()].into());

    x.request_peers().unwrap();
    let want: HashSet<PeerId> = [h.id().clone(), p.id().clone(), q.id().clone()].into();
    wait_peers_exact(&x, &want, "X dialled P and Q").await;
    let all = [h.clone(), p.clone(), q.clone(), x.clone()];
    broadcast_round(&all, &[0, 1, 2, 3], "request-peers").await;
    close_all(&all).await;
}

// ----- 10. close ------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_notifies_peers_and_fails_later_calls() {
    let a = node(0).await;
    let b = node(0).await;
    wire(&[a.clone(), b.clone()], &[(0, 1)]).await;
    let mut b_events = b.events();
    let a2 = a.clone();

    timeout(WAIT, a.close()).await.expect("close hung");
    wait_event(&mut b_events, WAIT, "B sees A leave", |e| {
        *e == Event::PeerLeft(a.id().clone())
    })
    .await;
    wait_peers_exact(&b, &HashSet::new(), "B forgot A").await;

    let shut = |what: &str, r: Result<(), Error>| match r {
        Err(Error::Shutdown) => {}
        other => panic!("{what} after close: expected Err(Shutdown), got {other:?}"),
    };
    shut("send", a.send(packets!["x"]).await.map(drop));
    shut(
        "send_with",
        a.send_with(
            packets!["x"],
            SubFlag::Whisper.as_u8().into(),
            MainFlag::Whisper,
        )
        .await
        .map(drop),
    );
    shut("whisper", a.whisper(b.id(), packets!["x"]).await.map(drop));
    shut("reply_to", a.reply_to(b.id(), packets!["x"]).await);
    shut(
        "connect",
        timeout(WAIT, a.connect("127.0.0.1", b.addr().port(), None))
            .await
            .expect("connect hung")
            .map(drop),
    );
    shut("routing_table", a.routing_table().await.map(drop));
    shut("status", a.status().await.map(drop));
    shut("disconnect", a.disconnect(b.id()).await.map(drop));
    shut("request_peers", a.request_peers());
    shut("renegotiate", a.renegotiate(b.id(), vec![]).await);
    shut("request_resend", a.request_resend(b.id()).await);
    shut("register_handler", a.register_handler(|_, _| false));
    shut(
        "next_message",
        timeout(WAIT, a.next_message())
            .await
            .expect("next_message hung")
            .map(drop),
    );
    // Another handle of the same node sees the same, and closing twice
    // returns.
    shut("clone.send", a2.send(packets!["x"]).await.map(drop));
    timeout(WAIT, a2.close()).await.expect("second close hung");
    b.close().await;
}
