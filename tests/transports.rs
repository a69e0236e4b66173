//! rs2p to rs2p over every transport (Plaintext, SSL, ws, wss): broadcast
//! propagation, subnet rejection and a routed reply; verified TLS accepting
//! members and refusing strangers; and transports confused with each other
//! failing cleanly while the listener keeps serving.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rs2p::protocol::mesh::CloseReason;
use rs2p::protocol::Protocol;
use rs2p::transport::{Refusal, Speaks, Tls, TlsOptions, Transport, TransportError, WebSocket};
use rs2p::{packets, Error, Event, MeshSocket, MessageKind};
use support::certs::{self_signed, NodeCert, TestCa};
use support::mesh::{
    assert_no_more, has_peer, next, rs_node, rs_node_tls, text, wait_peer, wait_peer_count,
};
use support::wait::WAIT;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a confused connection may take to fail.
const FAIL_WITHIN: Duration = Duration::from_secs(8);

// ---------------------------------------------------------------------------
// The same mesh behaviour over every transport.

/// Five nodes in a line, each broadcasting once: every broadcast crosses up
/// to four relays and reaches every other node exactly once.
async fn propagation_through_five(encryption: &str) {
    let mut nodes = Vec::new();
    for _ in 0..5 {
        // max_outgoing 0: peer lists add no links; the line stays a line.
        nodes.push(rs_node("mesh", encryption, 0).await);
    }
    for i in 1..5 {
        let got = nodes[i]
            .connect("127.0.0.1", nodes[i - 1].addr().port(), None)
            .await
            .unwrap_or_else(|e| panic!("{encryption}: link {i}: {e}"));
        assert_eq!(&got, nodes[i - 1].id());
    }
    for (i, n) in nodes.iter().enumerate() {
        let expected = if i == 0 || i == 4 { 1 } else { 2 };
        wait_peer_count(n, expected, &format!("{encryption}: node {i}")).await;
    }
    for (i, n) in nodes.iter().enumerate() {
        n.send(packets![format!("from-{i}"), vec![7u8; 3000]])
            .await
            .unwrap();
    }
    for (i, n) in nodes.iter().enumerate() {
        let mut seen: HashMap<String, usize> = HashMap::new();
        while seen.len() < 4 {
            let m = next(n, &format!("{encryption}: node {i}")).await;
            assert_eq!(m.kind(), MessageKind::Broadcast);
            *seen.entry(text(&m)).or_default() += 1;
        }
        for j in (0..5).filter(|j| *j != i) {
            assert_eq!(
                seen.get(&format!("from-{j}")),
                Some(&1),
                "{encryption}: node {i}: {seen:?}"
            );
        }
    }
    // Nothing more arrives: no duplicates (a bounded check of absence).
    for (i, n) in nodes.iter().enumerate() {
        let what = format!("{encryption}: node {i} got a duplicate");
        assert_no_more(n, Duration::from_millis(300), &what).await;
    }
    for n in &nodes {
        n.close().await;
    }
}

/// Dials `listener` from `dialler` (on different subnets) and checks that
/// the subnet mismatch refused the connection. Both ends see the mismatch
/// in the handshakes; whichever acts first closes, so the dialler gets
/// either the mismatch itself or a closed connection while the listener
/// reports the rejection.
async fn expect_subnet_refusal(dialler: &MeshSocket, listener: &MeshSocket, what: &str) {
    let mut events = listener.events();
    match dialler
        .connect("127.0.0.1", listener.addr().port(), None)
        .await
    {
        Err(Error::SubnetMismatch { ours, theirs }) => {
            assert_eq!(ours, dialler.protocol().id(), "{what}");
            assert_eq!(theirs, listener.protocol().id(), "{what}");
        }
        Err(Error::Closed(_)) => {
            let reason = tokio::time::timeout(WAIT, async {
                loop {
                    if let Ok(Event::Rejected { reason, .. }) = events.recv().await {
                        return reason;
                    }
                }
            })
            .await
            .unwrap_or_else(|_| panic!("{what}: closed, but the listener reported nothing"));
            assert!(
                matches!(
                    reason,
                    rs2p::protocol::mesh::CloseReason::SubnetMismatch { .. }
                ),
                "{what}: {reason}"
            );
        }
        other => panic!("{what}: expected a subnet refusal, got {other:?}"),
    }
}

/// A node of another subnet on the same transport is refused, whichever
/// side dials, and no routing table holds the other.
async fn subnet_rejection(encryption: &str) {
    let a = rs_node("mesh", encryption, 4).await;
    let b = rs_node("other", encryption, 4).await;
    let c = rs_node("other", encryption, 4).await;
    expect_subnet_refusal(&b, &a, &format!("{encryption}: other dials mesh")).await;
    expect_subnet_refusal(&a, &c, &format!("{encryption}: mesh dials other")).await;
    assert!(a.routing_table().await.unwrap().is_empty());
    assert!(b.routing_table().await.unwrap().is_empty());
    assert!(c.routing_table().await.unwrap().is_empty());
    for n in [a, b, c] {
        n.close().await;
    }
}

/// A – B – C: A replies to C's broadcast without a link to C; the route
/// request crosses B, and A dials C over the transport to deliver.
async fn routed_reply(encryption: &str) {
    let a = rs_node("mesh", encryption, 0).await;
    let b = rs_node("mesh", encryption, 0).await;
    let c = rs_node("mesh", encryption, 0).await;
    b.connect("127.0.0.1", a.addr().port(), None).await.unwrap();
    c.connect("127.0.0.1", b.addr().port(), None).await.unwrap();
    assert!(!has_peer(&a, c.id()).await);

    c.send(packets!["question"]).await.unwrap();
    let q = next(&a, "question at A").await;
    assert_eq!(text(&q), "question");
    assert_eq!(q.sender(), c.id());
    let _ = next(&b, "question at B").await;
    q.reply(packets!["routed answer"]).unwrap();
    let r = next(&c, "routed reply at C").await;
    assert_eq!(text(&r), "routed answer");
    assert_eq!(r.kind(), MessageKind::Whisper);
    assert_eq!(r.sender(), a.id());
    // The route was opened over this transport.
    assert!(has_peer(&a, c.id()).await);
    for n in [a, b, c] {
        n.close().await;
    }
}

macro_rules! per_transport {
    ($module:ident, $encryption:literal) => {
        mod $module {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn propagation_through_five_nodes() {
                super::propagation_through_five($encryption).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn subnet_rejection() {
                super::subnet_rejection($encryption).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn routed_reply() {
                super::routed_reply($encryption).await;
            }
        }
    };
}

per_transport!(plaintext, "Plaintext");
per_transport!(ssl, "SSL");
per_transport!(ws, "ws");
per_transport!(wss, "wss");

// ---------------------------------------------------------------------------
// Verified mode.

/// Dials `to` from `from` and expects a refusal: an error (never a
/// handshake), within a bounded time.
async fn expect_refused(from: &MeshSocket, to: &MeshSocket, what: &str) {
    match tokio::time::timeout(
        FAIL_WITHIN,
        from.connect("127.0.0.1", to.addr().port(), None),
    )
    .await
    {
        Ok(Err(Error::Io { .. } | Error::Closed(_) | Error::Timeout(_) | Error::Refused(_))) => {}
        Ok(other) => panic!("{what}: expected a refusal, got {other:?}"),
        Err(_) => panic!("{what}: no answer within {FAIL_WITHIN:?}"),
    }
}

/// Dials `to` from `from` and expects to be told that `to` refused our
/// certificate.
async fn expect_certificate_refused(from: &MeshSocket, to: &MeshSocket, what: &str) {
    match tokio::time::timeout(
        FAIL_WITHIN,
        from.connect("127.0.0.1", to.addr().port(), None),
    )
    .await
    {
        Ok(Err(Error::Refused(r @ Refusal::CertificateRefused { .. }))) => {
            let text = r.to_string();
            assert!(
                text.contains("refused this node's certificate"),
                "{what}: {text}"
            );
            assert!(
                text.contains(&to.addr().port().to_string()),
                "{what}: {text}"
            );
        }
        other => panic!("{what}: expected a refused certificate, got {other:?}"),
    }
}

/// Dials `to` from `from` and expects `from` to refuse `to`'s certificate.
async fn expect_certificate_rejected(from: &MeshSocket, to: &MeshSocket, what: &str) {
    match tokio::time::timeout(
        FAIL_WITHIN,
        from.connect("127.0.0.1", to.addr().port(), None),
    )
    .await
    {
        Ok(Err(Error::Refused(r @ Refusal::CertificateRejected { .. }))) => {
            assert!(
                r.to_string().contains("refused the certificate"),
                "{what}: {r}"
            );
        }
        other => panic!("{what}: expected a rejected certificate, got {other:?}"),
    }
}

/// The next rejection reported on a subscription.
async fn rejection(
    events: &mut tokio::sync::broadcast::Receiver<Event>,
    what: &str,
) -> CloseReason {
    let event =
        support::mesh::wait_event(events, WAIT, what, |e| matches!(e, Event::Rejected { .. }))
            .await;
    match event {
        Event::Rejected { reason, .. } => reason,
        _ => unreachable!(),
    }
}

/// Verified mode over one TLS transport: members of the CA join; a
/// stranger (another CA) is refused whichever side dials; a compatibility
/// node is refused too.
async fn verified_by_ca(encryption: &str) {
    let ca = TestCa::new("mesh CA");
    let strangers = TestCa::new("stranger CA");
    let a = rs_node_tls("mesh", encryption, 4, ca.issue("a").trusting(&ca)).await;
    let b = rs_node_tls("mesh", encryption, 4, ca.issue("b").trusting(&ca)).await;
    let mut a_events = a.events();

    // A member joins.
    let got = b.connect("127.0.0.1", a.addr().port(), None).await.unwrap();
    assert_eq!(&got, a.id());
    wait_peer(&a, b.id(), "member B at A").await;

    // A stranger trusting the mesh CA (so it would accept A) is refused by
    // A when it dials, and A refuses it when A dials; each side is told
    // which certificate was refused.
    let s = rs_node_tls("mesh", encryption, 4, strangers.issue("s").trusting(&ca)).await;
    let mut s_events = s.events();
    expect_certificate_refused(&s, &a, "stranger dials A").await;
    expect_certificate_rejected(&a, &s, "A dials the stranger").await;
    // The stranger's listener saw A refuse its certificate.
    let reason = rejection(&mut s_events, "the stranger's listener").await;
    assert!(
        matches!(
            reason,
            CloseReason::Transport(Refusal::CertificateRefused { .. })
        ),
        "{encryption}: {reason}"
    );
    // A compatibility-mode node shows no certificate and is refused.
    let compat = rs_node("mesh", encryption, 4).await;
    expect_certificate_refused(&compat, &a, "compatibility node dials A").await;
    expect_certificate_rejected(&a, &compat, "A dials a compatibility node").await;
    // A's own view: certificates it rejected.
    let mut rejected = 0;
    while let Ok(event) = a_events.try_recv() {
        if let Event::Rejected {
            reason: CloseReason::Transport(Refusal::CertificateRejected { .. }),
            ..
        } = event
        {
            rejected += 1;
        }
    }
    assert!(
        rejected >= 2,
        "{encryption}: A reported {rejected} rejected certificates"
    );
    let mut a_events = a.events();

    // Neither ever entered A's routing table or even its handshake queue.
    let snap = a.snapshot().await.unwrap();
    assert_eq!(snap.peers.len(), 1, "{:?}", snap.peers);
    assert_eq!(&snap.peers[0].id, b.id());
    assert_eq!(snap.awaiting, 0);
    while let Ok(event) = a_events.try_recv() {
        if let Event::PeerJoined(id) = event {
            assert_eq!(&id, b.id(), "only B ever joined A");
        }
    }
    assert!(s.routing_table().await.unwrap().is_empty());
    assert!(compat.routing_table().await.unwrap().is_empty());

    // Broadcasts still flow between the members.
    a.send(packets!["members only"]).await.unwrap();
    assert_eq!(text(&next(&b, "broadcast at B").await), "members only");
    for n in [a, b, s, compat] {
        n.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verified_ssl_accepts_members_and_refuses_strangers() {
    verified_by_ca("SSL").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verified_wss_accepts_members_and_refuses_strangers() {
    verified_by_ca("wss").await;
}

/// Pinned certificates: self-signed peers that pin each other join; one
/// that is not pinned is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verified_pinned_certificates() {
    let (pa, pb, pc) = (self_signed("a"), self_signed("b"), self_signed("c"));
    let a = rs_node_tls("mesh", "SSL", 4, pa.pinning(&[&pb])).await;
    let b = rs_node_tls("mesh", "SSL", 4, pb.pinning(&[&pa])).await;
    // C pins A, but A does not pin C.
    let c = rs_node_tls("mesh", "SSL", 4, pc.pinning(&[&pa])).await;
    b.connect("127.0.0.1", a.addr().port(), None).await.unwrap();
    wait_peer(&a, b.id(), "pinned B at A").await;
    expect_refused(&c, &a, "unpinned C dials A").await;
    expect_refused(&a, &c, "A dials unpinned C").await;
    assert_eq!(a.routing_table().await.unwrap().len(), 1);
    for n in [a, b, c] {
        n.close().await;
    }
}

/// Settings that cannot work are refused when the node starts.
#[tokio::test]
async fn verified_settings_are_checked_at_bind() {
    let cert: NodeCert = self_signed("lonely");
    // Nobody trusted.
    let err = MeshSocket::builder()
        .protocol(Protocol::new("mesh", "SSL"))
        .tls(TlsOptions::Verified(cert.identity()))
        .bind("127.0.0.1:0")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Transport(_)), "{err}");
    // Verified settings on a transport without TLS.
    let err = MeshSocket::builder()
        .protocol(Protocol::new("mesh", "ws"))
        .tls(cert.pinning(&[&cert]))
        .bind("127.0.0.1:0")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("does not use TLS"), "{err}");
    // An unknown transport name.
    let err = MeshSocket::builder()
        .protocol(Protocol::new("mesh", "carrier pigeon"))
        .bind("127.0.0.1:0")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unknown transport"), "{err}");
    // A key that does not belong to the certificate.
    let other = self_signed("other");
    let mismatched =
        rs2p::transport::VerifiedTls::from_pem(cert.cert_pem.as_bytes(), other.key_pem.as_bytes())
            .unwrap()
            .pin_pem(cert.cert_pem.as_bytes())
            .unwrap();
    let err = Tls::new(&TlsOptions::Verified(mismatched.clone())).unwrap_err();
    assert!(matches!(err, TransportError::KeyMismatch), "{err}");
    let err = MeshSocket::builder()
        .protocol(Protocol::new("mesh", "wss"))
        .tls(TlsOptions::Verified(mismatched))
        .bind("127.0.0.1:0")
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("does not belong to the certificate"),
        "{err}"
    );
    // PEM text without a certificate.
    assert!(rs2p::transport::VerifiedTls::from_pem(b"nothing here", b"").is_err());
}

// ---------------------------------------------------------------------------
// Transports confused with each other.

/// Dials `listener` with a node of transport `client` and expects a clean
/// failure within a bounded time.
async fn confused_dial_fails(client: &str, listener: &MeshSocket) {
    let dialler = rs_node("mesh", client, 4).await;
    expect_refused(
        &dialler,
        listener,
        &format!(
            "{client} client on a {} port",
            listener.protocol().encryption()
        ),
    )
    .await;
    assert!(dialler.routing_table().await.unwrap().is_empty());
    dialler.close().await;
}

/// The listener still serves a client of its own transport.
async fn still_serves(listener: &MeshSocket) {
    let encryption = listener.protocol().encryption().to_owned();
    let good = rs_node("mesh", &encryption, 4).await;
    let got = tokio::time::timeout(
        WAIT,
        good.connect("127.0.0.1", listener.addr().port(), None),
    )
    .await
    .expect("good client in time")
    .unwrap_or_else(|e| panic!("good {encryption} client: {e}"));
    assert_eq!(&got, listener.id());
    good.send(packets!["still here"]).await.unwrap();
    assert_eq!(text(&next(listener, "after confusion").await), "still here");
    good.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_client_on_plaintext_port_fails_cleanly() {
    let listener = rs_node("mesh", "Plaintext", 4).await;
    confused_dial_fails("SSL", &listener).await;
    confused_dial_fails("wss", &listener).await;
    // The bare transport fails as well (no mesh layer involved).
    let r = tokio::time::timeout(
        FAIL_WITHIN,
        Tls::new(&TlsOptions::Compatibility)
            .unwrap()
            .connect("127.0.0.1", listener.addr().port()),
    )
    .await
    .expect("bounded");
    assert!(r.is_err());
    still_serves(&listener).await;
    assert!(listener.routing_table().await.unwrap().len() <= 1);
    listener.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_client_on_tls_port_fails_cleanly() {
    let listener = rs_node("mesh", "SSL", 4).await;
    confused_dial_fails("Plaintext", &listener).await;
    confused_dial_fails("ws", &listener).await;
    confused_dial_fails("wss", &listener).await;
    still_serves(&listener).await;
    listener.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_websocket_clients_on_ws_port_fail_cleanly() {
    let listener = rs_node("mesh", "ws", 4).await;
    confused_dial_fails("Plaintext", &listener).await;
    confused_dial_fails("SSL", &listener).await;
    confused_dial_fails("wss", &listener).await;
    // An HTTP client that is not a WebSocket client gets an error answer or
    // a closed connection, in bounded time.
    let mut raw = TcpStream::connect(listener.addr()).await.unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(FAIL_WITHIN, raw.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the listener never closed");
    assert!(
        !answer.starts_with(b"HTTP/1.1 101"),
        "upgraded a non-WebSocket request"
    );
    still_serves(&listener).await;
    listener.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_clients_on_other_ports_fail_cleanly() {
    let plain = rs_node("mesh", "Plaintext", 4).await;
    confused_dial_fails("ws", &plain).await;
    let ws = WebSocket::plain(1 << 20);
    let r = tokio::time::timeout(FAIL_WITHIN, ws.connect("127.0.0.1", plain.addr().port()))
        .await
        .expect("bounded");
    assert!(r.is_err());
    still_serves(&plain).await;
    plain.close().await;
    let wss = rs_node("mesh", "wss", 4).await;
    confused_dial_fails("ws", &wss).await;
    confused_dial_fails("SSL", &wss).await;
    still_serves(&wss).await;
    wss.close().await;
}

/// A client that connects and says nothing holds no task forever: the
/// listener serves others meanwhile and drops it after its handshake
/// timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_clients_are_dropped_in_bounded_time() {
    for encryption in ["SSL", "ws", "wss"] {
        let listener = rs_node("mesh", encryption, 4).await;
        let mut silent = TcpStream::connect(listener.addr()).await.unwrap();
        still_serves(&listener).await;
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(15), silent.read(&mut buf)).await;
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))),
            "{encryption}: the silent connection was not closed: {read:?}"
        );
        listener.close().await;
    }
}

/// Garbage on a TLS port is refused at once (well before the handshake
/// timeout) and the listener goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_tls_port_is_refused() {
    for encryption in ["SSL", "wss"] {
        let listener = rs_node("mesh", encryption, 4).await;
        let mut raw = TcpStream::connect(listener.addr()).await.unwrap();
        raw.write_all(b"\x99\x99 this is no TLS record")
            .await
            .unwrap();
        let mut sink = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(2), raw.read_to_end(&mut sink)).await;
        assert!(read.is_ok(), "{encryption}: garbage connection left open");
        still_serves(&listener).await;
        listener.close().await;
    }
}

/// Every pair of different transports: both sides recognise what the
/// other speaks from its first bytes and say so, naming the transport to
/// use, instead of a frame-size or HTTP parsing error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confused_transports_are_named_on_both_sides() {
    use Speaks::{Http, Plaintext, Ssl, Tls as AnyTls, Wss};
    // (dialler, listener, what the dialler hears, what the listener hears)
    let cases = [
        ("SSL", "Plaintext", Plaintext, AnyTls),
        ("ws", "Plaintext", Plaintext, Http),
        ("wss", "Plaintext", Plaintext, AnyTls),
        ("Plaintext", "SSL", AnyTls, Plaintext),
        ("ws", "SSL", AnyTls, Http),
        ("wss", "SSL", Ssl, Wss),
        ("Plaintext", "ws", Http, Plaintext),
        ("SSL", "ws", Http, AnyTls),
        ("wss", "ws", Http, AnyTls),
        ("Plaintext", "wss", AnyTls, Plaintext),
        ("SSL", "wss", Wss, Ssl),
        ("ws", "wss", AnyTls, Http),
    ];
    for (client, server, dialler_hears, listener_hears) in cases {
        let what = format!("{client} dials {server}");
        let listener = rs_node("mesh", server, 4).await;
        let dialler = rs_node("mesh", client, 4).await;
        let mut events = listener.events();
        let result = tokio::time::timeout(
            FAIL_WITHIN,
            dialler.connect("127.0.0.1", listener.addr().port(), None),
        )
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {FAIL_WITHIN:?}"));
        match result {
            Err(Error::Refused(Refusal::WrongTransport {
                remote,
                theirs,
                ours,
            })) => {
                assert_eq!(theirs, dialler_hears, "{what}");
                assert_eq!(ours, client, "{what}");
                assert_eq!(remote, listener.addr().to_string(), "{what}");
            }
            other => panic!("{what}: expected the listener's transport named, got {other:?}"),
        }
        let reason = rejection(&mut events, &what).await;
        match &reason {
            CloseReason::Transport(Refusal::WrongTransport { theirs, ours, .. }) => {
                assert_eq!(*theirs, listener_hears, "{what}");
                assert_eq!(*ours, server, "{what}");
                let text = reason.to_string();
                assert!(
                    text.contains("both sides need the same transport"),
                    "{what}: {text}"
                );
                assert!(text.contains("--transport"), "{what}: {text}");
            }
            other => panic!("{what}: the listener reported {other}"),
        }
        listener.close().await;
        dialler.close().await;
    }
}

/// The message names the fix, e.g. TLS on a Plaintext port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_on_a_plaintext_port_says_so() {
    let listener = rs_node("mesh", "Plaintext", 4).await;
    let dialler = rs_node("mesh", "SSL", 4).await;
    let mut events = listener.events();
    let _ = dialler
        .connect("127.0.0.1", listener.addr().port(), None)
        .await;
    let text = rejection(&mut events, "TLS on a Plaintext port")
        .await
        .to_string();
    assert!(text.contains("speaks TLS"), "{text}");
    assert!(text.contains("--transport ssl"), "{text}");
    assert!(!text.contains("exceeds"), "{text}");
    // The bare transport's error is named too.
    let err = Tls::new(&TlsOptions::Compatibility)
        .unwrap()
        .connect("127.0.0.1", listener.addr().port())
        .await
        .expect_err("a TLS client fails on a Plaintext port");
    let refusal = Refusal::from_io(&err).expect("a named refusal");
    assert!(
        matches!(
            refusal,
            Refusal::WrongTransport {
                theirs: Speaks::Plaintext,
                ..
            }
        ),
        "{refusal}"
    );
    listener.close().await;
    dialler.close().await;
}

/// Transport names follow the protocol's `encryption`.
#[test]
fn transport_names() {
    use rs2p::transport::{for_protocol, TransportOptions};
    for name in ["Plaintext", "SSL", "ws", "wss"] {
        let t: Arc<dyn Transport> =
            for_protocol(&Protocol::new("mesh", name), &TransportOptions::default()).unwrap();
        assert_eq!(t.name(), name);
    }
}
