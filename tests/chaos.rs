//! Chaos on real links.
//!
//! `a_link_that_dies_mid_frame_is_closed_by_the_idle_timeout`: a
//! regression test, in-process.

use std::time::{Duration, Instant};

/// A link that dies part-way through a frame is closed by the idle
/// timeout, as one that dies between frames: the partition of
/// `chaos_on_shaped_links` cut the links of the 1 Mbit/s host mid-frame
/// (its queues were full of 2 KB broadcasts), and before the fix they
/// lived on for the 60 s stall timeout instead of the 3 s idle timeout. Here, in-process: a peer
/// completes its handshake, sends the first half of a broadcast and falls
/// silent; the node must drop it after about the idle timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_that_dies_mid_frame_is_closed_by_the_idle_timeout() {
    use rs2p::protocol::{
        CodecLimits, IdWire, InternalMessage, MainFlag, PeerId, Protocol, SubFlag,
    };
    use rs2p::{packets, MeshSocket, Packet};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const IDLE: Duration = Duration::from_secs(1);
    let node = MeshSocket::builder()
        .idle_timeout(Some(IDLE))
        .keepalive(Some(Duration::from_millis(300)))
        .reconnect(false)
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let id = PeerId::new(
        &b"silent-mid-frame-peer-000000000000000000000000000000000000000000"[..],
        IdWire::Bin,
    );
    let now = node.now();
    let frame = |msg: InternalMessage| {
        msg.encode_frame(None, &CodecLimits::default())
            .unwrap()
            .to_vec()
    };
    let handshake = frame(InternalMessage::new(
        MainFlag::Whisper,
        id.clone(),
        now,
        vec![
            SubFlag::Handshake.as_u8().into(),
            Packet::bin(id.bytes().clone()),
            Packet::bin(Protocol::default().id().as_bytes().to_vec()),
            packets!["127.0.0.1", 9].into(),
            Packet::Array(Vec::new()),
        ],
    ));
    let mut s = tokio::net::TcpStream::connect(node.addr()).await.unwrap();
    s.write_all(&handshake).await.unwrap();
    let has_peer = || async {
        node.routing_table()
            .await
            .unwrap()
            .iter()
            .any(|p| p.id == id)
    };
    let t = Instant::now();
    while !has_peer().await {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "handshake not accepted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Keep reading what the node sends (its handshake, peer list,
    // keep-alives), so only our silence matters.
    let (mut rd, mut wr) = s.into_split();
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        while matches!(rd.read(&mut buf).await, Ok(n) if n > 0) {}
    });
    let broadcast = frame(InternalMessage::new(
        MainFlag::Broadcast,
        id.clone(),
        now,
        packets![SubFlag::Broadcast.as_u8(), "x".repeat(200)],
    ));
    wr.write_all(&broadcast[..broadcast.len() / 2])
        .await
        .unwrap();
    let silent = Instant::now();
    while has_peer().await {
        assert!(
            silent.elapsed() < IDLE * 5,
            "a peer silent mid-frame for {:.1?} is still connected (idle timeout {IDLE:?})",
            silent.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "dropped {:.2?} after falling silent mid-frame",
        silent.elapsed()
    );
    drop(wr);
    reader.abort();
    node.close().await;
}
