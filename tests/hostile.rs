//! Hostile peers: each case attacks node M of the line A–M–B and checks
//! that the attacker is disconnected, that memory stays bounded, and that A
//! and B still exchange broadcasts through M afterwards.

mod support;

use std::time::Duration;

use rs2p::protocol::{
    compression, frame_from_body, CodecLimits, Compression, IdWire, InternalMessage, MainFlag,
    PeerId, Protocol, SubFlag,
};
use rs2p::{packets, MeshBuilder, MeshSocket, Packet};
use sha2::{Digest, Sha256};
use support::mesh::{next_with, wait_no_peer, wait_peer};
use support::wait::WAIT;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Trio {
    a: MeshSocket,
    m: MeshSocket,
    b: MeshSocket,
}

fn base() -> MeshBuilder {
    MeshSocket::builder().max_outgoing(0).reconnect(false)
}

async fn trio(m_builder: MeshBuilder) -> Trio {
    let m = m_builder.bind("127.0.0.1:0").await.unwrap();
    let a = base().bind("127.0.0.1:0").await.unwrap();
    let b = base().bind("127.0.0.1:0").await.unwrap();
    a.connect("127.0.0.1", m.addr().port(), None).await.unwrap();
    b.connect("127.0.0.1", m.addr().port(), None).await.unwrap();
    Trio { a, m, b }
}

impl Trio {
    /// A and B still exchange broadcasts through M, each exactly once.
    async fn still_works(&self, tag: &str) {
        let text = format!("a-{tag}");
        self.a.send(packets![text.clone()]).await.unwrap();
        let got = next_with(&self.b, &text).await;
        assert_eq!(got.sender(), self.a.id());
        let text = format!("b-{tag}");
        self.b.send(packets![text.clone()]).await.unwrap();
        next_with(&self.a, &text).await;
        assert!(self.b.recv().is_none(), "duplicate at B");
    }

    async fn close(self) {
        self.a.close().await;
        self.m.close().await;
        self.b.close().await;
    }

    /// An attacker's connection to M, before any handshake.
    async fn raw_attacker(&self) -> TcpStream {
        TcpStream::connect(self.m.addr()).await.unwrap()
    }

    /// Connects to M and completes a valid handshake as a peer offering
    /// `compression`; returns once M lists the attacker.
    async fn attacker(&self, compression: &[Compression]) -> TcpStream {
        let mut s = self.raw_attacker().await;
        s.write_all(&handshake(compression)).await.unwrap();
        wait_peer(
            &self.m,
            &attacker_id(),
            "the attacker's handshake was accepted",
        )
        .await;
        s
    }

    /// M disconnects the attacker and drops it from its routing table.
    async fn expels(&self, s: &mut TcpStream, case: &str) {
        assert_closed_by_peer(s, case).await;
        self.attacker_gone().await;
    }

    /// M's routing table no longer lists the attacker.
    async fn attacker_gone(&self) {
        wait_no_peer(
            &self.m,
            &attacker_id(),
            "the attacker left the routing table",
        )
        .await;
    }
}

/// Reads (and discards) until the peer closes; panics if it does not
/// within `WAIT`.
async fn assert_closed_by_peer(stream: &mut TcpStream, case: &str) {
    let mut buf = vec![0u8; 64 * 1024];
    let closed = tokio::time::timeout(WAIT, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "{case}: the attacker was not disconnected");
}

fn rss_kib() -> u64 {
    status_kib("VmRSS:")
}

/// Reserved (not only touched) memory, which reservations on a peer's word
/// would grow even before any byte is written into them.
fn data_kib() -> u64 {
    status_kib("VmData:")
}

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn attacker_id() -> PeerId {
    PeerId::new(
        &b"attacker1111111111111111111111111111111111111111111111111111111"[..],
        IdWire::Bin,
    )
}

fn frame(msg: &InternalMessage) -> Vec<u8> {
    msg.encode_frame(None, &CodecLimits::default())
        .unwrap()
        .to_vec()
}

/// The attacker's valid handshake, offering `compression`, as a frame.
fn handshake(compression: &[Compression]) -> Vec<u8> {
    handshake_frame(handshake_packets(compression))
}

/// The packets of a valid handshake: flag, id, subnet id, address,
/// compression methods.
fn handshake_packets(compression: &[Compression]) -> Vec<Packet> {
    let proto = Protocol::default();
    let id = attacker_id();
    vec![
        SubFlag::Handshake.as_u8().into(),
        Packet::bin(id.bytes().clone()),
        Packet::bin(proto.id().as_bytes().to_vec()),
        packets!["127.0.0.1", 9].into(),
        Packet::Array(
            compression
                .iter()
                .map(|c| Packet::from(c.as_u8()))
                .collect(),
        ),
    ]
}

/// A handshake whisper from the attacker carrying `payload`, as a frame.
fn handshake_frame(payload: Vec<Packet>) -> Vec<u8> {
    frame(&InternalMessage::new(
        MainFlag::Whisper,
        attacker_id(),
        now(),
        payload,
    ))
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_bytes() {
    let t = trio(base()).await;
    // Text where a length prefix belongs: "GET " announces ~1.2 GB.
    let mut s = t.raw_attacker().await;
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert_closed_by_peer(&mut s, "http garbage").await;
    // Random bytes behind a plausible prefix.
    let mut s = t.raw_attacker().await;
    let mut junk = vec![0, 0, 0, 200];
    let mut x = 0x1234_5678_9abc_def0u64;
    for _ in 0..200 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        junk.push(x as u8);
    }
    s.write_all(&junk).await.unwrap();
    assert_closed_by_peer(&mut s, "random garbage").await;
    t.still_works("garbage").await;
    t.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_gib_length_prefix() {
    let t = trio(base()).await;
    let before = rss_kib();
    let mut s = t.raw_attacker().await;
    s.write_all(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3])
        .await
        .unwrap();
    assert_closed_by_peer(&mut s, "4 GiB prefix").await;
    assert!(rss_kib() < before + 64 * 1024, "memory grew");
    t.still_works("4gib").await;
    t.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_frame_then_silence() {
    let t = trio(base().stall_timeout(Duration::from_millis(500))).await;
    let mut s = t.raw_attacker().await;
    s.write_all(&[0, 0, 3, 232, 1, 2, 3, 4, 5]).await.unwrap();
    assert_closed_by_peer(&mut s, "truncated frame").await;
    t.still_works("truncated").await;
    t.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_checksum() {
    let t = trio(base()).await;
    let mut s = t.attacker(&[]).await;
    let msg = InternalMessage::new(MainFlag::Broadcast, attacker_id(), now(), packets![0, "x"]);
    let mut f = frame(&msg);
    f[10] ^= 0xff; // inside the checksum
    s.write_all(&f).await.unwrap();
    t.expels(&mut s, "bad checksum").await;
    t.still_works("checksum").await;
    t.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_checksum_over_invalid_msgpack() {
    let t = trio(base()).await;
    let mut s = t.attacker(&[]).await;
    for packed in [
        vec![0xc1u8],
        vec![0x94, 0x00],
        b"not msgpack".to_vec(),
        vec![0xa1, 0xff],
    ] {
        let mut body = Sha256::digest(&packed).to_vec();
        body.extend_from_slice(&packed);
        let f = frame_from_body(&body, &CodecLimits::default()).unwrap();
        // Only the first reaches M before it closes; the rest may fail to write.
        let _ = s.write_all(&f).await;
    }
    t.expels(&mut s, "invalid msgpack").await;
    t.still_works("msgpack").await;
    t.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_with_wrong_field_types() {
    let t = trio(base()).await;
    // A valid handshake with field `i` replaced by `field`.
    let with = |i: usize, field: Packet| {
        let mut payload = handshake_packets(&[]);
        payload[i] = field;
        payload
    };
    let bad_payloads: Vec<Vec<Packet>> = vec![
        // id is an integer
        with(1, 123.into()),
        // address is a string
        with(3, "127.0.0.1:9".into()),
        // compression list is a map
        with(4, Packet::Map(vec![])),
        // too few packets
        handshake_packets(&[])[..2].to_vec(),
    ];
    for payload in bad_payloads {
        let mut s = t.raw_attacker().await;
        s.write_all(&handshake_frame(payload)).await.unwrap();
        assert_closed_by_peer(&mut s, "bad handshake").await;
    }
    assert!(t.m.routing_table().await.unwrap().len() == 2);
    t.still_works("handshake").await;
    t.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decompression_bomb() {
    let t = trio(base()).await;
    let mut s = t.attacker(&[Compression::Zlib]).await;
    let before = rss_kib();
    // 64 MiB of zeros inside a valid message, about 64 KiB compressed.
    let msg = InternalMessage::new(
        MainFlag::Broadcast,
        attacker_id(),
        now(),
        vec![0.into(), Packet::bin(vec![0u8; 64 << 20])],
    );
    let (_, body) = msg.encode_body(None);
    let bomb = compression::compress(Compression::Zlib, &body);
    drop(body);
    assert!(bomb.len() < 1 << 20);
    let f = frame_from_body(&bomb, &CodecLimits::default()).unwrap();
    let after_build = rss_kib();
    s.write_all(&f).await.unwrap();
    t.expels(&mut s, "decompression bomb").await;
    let grown = rss_kib().saturating_sub(after_build.max(before));
    assert!(
        grown < 48 * 1024,
        "decoding the bomb grew memory by {grown} KiB"
    );
    let status = t.m.status().await.unwrap();
    assert!(
        status.iter().any(|e| e.contains("decompresses to more")),
        "{status:?}"
    );
    t.still_works("bomb").await;
    t.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flood_of_broadcasts_from_the_future() {
    let t = trio(base()).await;
    let mut s = t.attacker(&[]).await;
    let future = now() + 3600;
    let mut burst = Vec::new();
    for i in 0..1000u32 {
        let msg = InternalMessage::new(MainFlag::Broadcast, attacker_id(), future, packets![0, i]);
        burst.extend_from_slice(&frame(&msg));
    }
    let _ = s.write_all(&burst).await;
    assert_closed_by_peer(&mut s, "future flood").await;
    let snap = t.m.snapshot().await.unwrap();
    assert!(
        snap.waterfall < 10,
        "future broadcasts pinned {} entries",
        snap.waterfall
    );
    // And nothing of it reached the good nodes.
    t.still_works("future").await;
    assert!(t.a.recv().is_none() && t.b.recv().is_none());
    t.close().await;
}

fn raise_fd_limit(want: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < want {
            lim.rlim_cur = want.min(lim.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_connections_that_never_handshake() {
    raise_fd_limit(4096);
    let t = trio(
        base()
            .max_awaiting(64)
            .handshake_timeout(Duration::from_secs(2)),
    )
    .await;
    let before = rss_kib();
    let mut idle = Vec::new();
    for _ in 0..1000 {
        match TcpStream::connect(t.m.addr()).await {
            Ok(s) => idle.push(s),
            Err(e) => panic!("could not open the flood connections: {e}"),
        }
    }
    let snap = t.m.snapshot().await.unwrap();
    assert!(
        snap.awaiting <= 64,
        "{} connections awaiting a handshake",
        snap.awaiting
    );
    let peak = rss_kib();
    // The good nodes are served while the flood is on.
    t.still_works("flood-on").await;
    // Every flood connection ends: refused at once, or timed out.
    for (i, s) in idle.iter_mut().enumerate() {
        assert_closed_by_peer(s, &format!("flood connection {i}")).await;
    }
    let snap = t.m.snapshot().await.unwrap();
    assert!(snap.refused >= 900, "only {} refused", snap.refused);
    assert_eq!(snap.awaiting, 0);
    assert_eq!(snap.peers.len(), 2);
    let grown = peak.saturating_sub(before);
    println!(
        "connection flood: peak RSS growth {grown} KiB, {} refused",
        snap.refused
    );
    assert!(
        grown < 64 * 1024,
        "memory grew by {grown} KiB under the flood"
    );
    t.still_works("flood-over").await;
    t.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_reads() {
    let t = trio(base().send_buffer(2 << 20)).await;
    // The attacker completes a handshake and then never reads a byte.
    let s = t.attacker(&[]).await;
    let payload = "x".repeat(16 * 1024);
    let count = 2000;
    for i in 0..count {
        t.a.send(packets![format!("bulk-{i}"), payload.clone()])
            .await
            .unwrap();
    }
    // B receives every one of them, exactly once, in order.
    for i in 0..count {
        let m = tokio::time::timeout(WAIT, t.b.next_message())
            .await
            .expect("bulk")
            .unwrap();
        assert_eq!(m.packets()[0].as_str(), Some(format!("bulk-{i}").as_str()));
    }
    let snap = t.m.snapshot().await.unwrap();
    assert!(
        snap.slow_peers_dropped >= 1,
        "the stalled peer was not dropped"
    );
    t.attacker_gone().await;
    drop(s);
    t.still_works("reader").await;
    t.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_list_of_100k_entries() {
    let t = trio(base().max_outgoing(4)).await;
    let mut s = t.attacker(&[]).await;
    let entries: Vec<Packet> = (0..100_000u32)
        .map(|i| {
            // Loopback only, and ports nobody listens on.
            Packet::Array(vec![
                packets!["127.0.0.1", 1 + (i % 1000) as u16].into(),
                format!("n{i}").into(),
            ])
        })
        .collect();
    let msg = InternalMessage::new(
        MainFlag::Whisper,
        attacker_id(),
        now(),
        vec![SubFlag::Peers.as_u8().into(), Packet::Array(entries)],
    );
    s.write_all(&frame(&msg)).await.unwrap();
    assert_closed_by_peer(&mut s, "100k peer list").await;
    let snap = t.m.snapshot().await.unwrap();
    assert_eq!(snap.dials_started, 0, "the list made M dial");
    assert!(snap.known_addresses <= 1024);
    t.still_works("peerlist").await;
    t.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_frames_announced_but_never_sent() {
    let t = trio(base().stall_timeout(Duration::from_secs(2))).await;
    let before = rss_kib();
    let data_before = data_kib();
    let mut conns = Vec::new();
    // Each announces a frame just under the 4 MiB limit and sends 1 KiB of it.
    for _ in 0..60 {
        let mut s = t.raw_attacker().await;
        let mut start = ((4u32 << 20) - 16).to_be_bytes().to_vec();
        start.extend_from_slice(&[0u8; 1024]);
        s.write_all(&start).await.unwrap();
        conns.push(s);
    }
    t.still_works("announced").await;
    let grown = rss_kib().saturating_sub(before);
    assert!(
        grown < 32 * 1024,
        "60 announced frames grew memory by {grown} KiB"
    );
    let reserved = data_kib().saturating_sub(data_before);
    assert!(
        reserved < 64 * 1024,
        "60 announced frames reserved {reserved} KiB"
    );
    for (i, s) in conns.iter_mut().enumerate() {
        assert_closed_by_peer(s, &format!("stalled frame {i}")).await;
    }
    t.close().await;
}

/// A peer that reads a trickle, just enough to let M's queue to it dip
/// below half now and then, would hold M's relaying to its pace: it is
/// closed once it fails to drain to a quarter within the slow-peer
/// timeout, and A and B lose nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_reads_a_trickle() {
    let t = trio(
        base()
            .send_buffer(256 << 10)
            .slow_peer_timeout(Duration::from_secs(1)),
    )
    .await;
    let mut s = t.attacker(&[]).await;
    let trickle = tokio::spawn(async move {
        // About 25 KiB/s, until M closes the connection.
        let mut buf = [0u8; 512];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    });
    let payload = "x".repeat(16 * 1024);
    let count = 1000;
    let sending = {
        let a = t.a.clone();
        tokio::spawn(async move {
            for i in 0..count {
                a.send(packets![format!("bulk-{i}"), payload.clone()])
                    .await
                    .unwrap();
            }
        })
    };
    for i in 0..count {
        let m = tokio::time::timeout(WAIT, t.b.next_message())
            .await
            .expect("bulk")
            .unwrap();
        assert_eq!(m.packets()[0].as_str(), Some(format!("bulk-{i}").as_str()));
    }
    tokio::time::timeout(WAIT, sending)
        .await
        .expect("the sender never finished")
        .unwrap();
    tokio::time::timeout(WAIT, trickle)
        .await
        .expect("the trickling peer was never closed")
        .unwrap();
    let snap = t.m.snapshot().await.unwrap();
    assert!(
        snap.slow_peers_dropped >= 1,
        "the trickling peer was not dropped"
    );
    t.attacker_gone().await;
    t.still_works("after-trickle").await;
    t.close().await;
}

/// The application's sends wait while a peer's queue is over half its
/// bound even when they come one at a time (the node takes each before
/// the next arrives): a peer that stops reading holds the sender back
/// until the slow-peer timeout instead of overflowing its queue and being
/// dropped at once. (Seen over SSL and wss, where the links drain slower
/// than the application sends but faster than the node takes sends.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_one_at_a_time_still_wait_for_a_congested_peer() {
    let t = trio(
        base()
            .send_buffer(256 << 10)
            .slow_peer_timeout(Duration::from_secs(60)),
    )
    .await;
    // Handshaken, then never reads: what the kernel buffers hold, then M's
    // queue to it, fill up.
    let _s = t.attacker(&[]).await;
    let payload = "x".repeat(16 * 1024);
    let held = Duration::from_secs(2);
    let mut sent = 0u64;
    loop {
        assert!(
            sent < 10_000,
            "160 MB sent and M never held its sender back"
        );
        match tokio::time::timeout(held, t.m.send(packets![payload.as_str(), sent])).await {
            Ok(r) => {
                r.unwrap();
            }
            Err(_) => break,
        }
        sent += 1;
        // A has it, so M took it: its send channel is empty again.
        match tokio::time::timeout(held, t.a.next_message()).await {
            Ok(m) => assert_eq!(m.unwrap().packets()[1].as_u64(), Some(sent - 1)),
            Err(_) => break,
        }
    }
    let snap = t.m.snapshot().await.unwrap();
    assert_eq!(
        snap.slow_peers_dropped, 0,
        "the peer that stopped reading was dropped at once, after {sent} sends"
    );
    assert!(
        snap.peers.iter().any(|p| p.id == attacker_id()),
        "the attacker is still a peer while the sender waits"
    );
    t.close().await;
}

/// Two connections between the same two nodes, and the peer closes ours
/// as the duplicate right after its handshake (what py2p does when both
/// ends dial): our `connect()` resolves with the peer as soon as the
/// handshake settles the race, and the peer stays reached on its own
/// connection once ours is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_resolves_when_the_peer_keeps_its_own_connection() {
    let a = base().bind("127.0.0.1:0").await.unwrap();
    // The peer dials A first and is adopted there.
    let mut theirs = TcpStream::connect(a.addr()).await.unwrap();
    theirs.write_all(&handshake(&[])).await.unwrap();
    wait_peer(&a, &attacker_id(), "the peer's own connection adopted").await;
    // Then A dials the peer.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let dialler = a.clone();
    let connecting = tokio::spawn(async move { dialler.connect("127.0.0.1", port, None).await });
    let (mut ours, _) = tokio::time::timeout(WAIT, listener.accept())
        .await
        .expect("A dialled")
        .unwrap();
    ours.write_all(&handshake(&[])).await.unwrap();
    // Once A has seen the handshake on its dialled connection, the peer
    // closes that one and keeps its own.
    let probe = a.clone();
    support::wait::wait_until("A's dialled connection handshaken", WAIT, move || {
        let probe = probe.clone();
        async move {
            let snap = probe.snapshot().await.map_err(|e| e.to_string())?;
            if snap.awaiting == 0 && snap.peers.len() == 1 {
                Ok(())
            } else {
                Err(format!(
                    "{} awaiting, {} peers",
                    snap.awaiting,
                    snap.peers.len()
                ))
            }
        }
    })
    .await;
    drop(ours);
    let joined = tokio::time::timeout(WAIT, connecting)
        .await
        .expect("connect() never resolved")
        .unwrap();
    assert_eq!(joined.expect("connect()"), attacker_id());
    let peers = a.routing_table().await.unwrap();
    assert!(peers.iter().any(|p| p.id == attacker_id()), "{peers:?}");
    drop(theirs);
    a.close().await;
}
