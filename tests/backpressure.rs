//! Flow control through relays: an application sending as fast as
//! `send().await` lets it, through a line of relays whose send queues are
//! small, is slowed down hop by hop instead of having a relay drop its
//! downstream peer as too slow. Every message arrives, once, in order.

mod support;

use std::time::Duration;

use rs2p::{packets, MeshSocket};
use support::wait::WAIT;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saturated_line_loses_nothing_and_drops_no_relay() {
    // Queues of 64 KiB: congestion (over half) comes within a few dozen
    // messages of 1 KiB, so the run spends most of its time congested.
    let mut nodes = Vec::new();
    for _ in 0..4 {
        let node = MeshSocket::builder()
            .max_outgoing(0)
            .reconnect(false)
            .send_buffer(64 << 10)
            .recv_queue(1 << 20)
            .bind("127.0.0.1:0")
            .await
            .unwrap();
        nodes.push(node);
    }
    for i in 1..4 {
        let port = nodes[i - 1].addr().port();
        nodes[i].connect("127.0.0.1", port, None).await.unwrap();
    }
    let count: u64 = 20_000;
    let payload = "x".repeat(1024);
    let reader = nodes[3].clone();
    let receiving = tokio::spawn(async move {
        let mut next = 0u64;
        while next < count {
            let m = tokio::time::timeout(WAIT, reader.next_message())
                .await
                .unwrap_or_else(|_| panic!("message {next} did not arrive"))
                .unwrap();
            assert_eq!(m.packets()[1].as_u64(), Some(next), "out of order");
            next += 1;
        }
        // Nothing more: each arrived exactly once.
        let extra = tokio::time::timeout(Duration::from_millis(200), reader.next_message()).await;
        assert!(extra.is_err(), "a message arrived twice: {extra:?}");
    });
    for i in 0..count {
        tokio::time::timeout(WAIT, nodes[0].send(packets![payload.as_str(), i]))
            .await
            .unwrap_or_else(|_| panic!("send {i} waited past {WAIT:?}"))
            .unwrap();
    }
    tokio::time::timeout(WAIT * 3, receiving)
        .await
        .expect("the reader hung")
        .unwrap();
    for (i, node) in nodes.iter().enumerate() {
        let snap = node.snapshot().await.unwrap();
        assert_eq!(
            snap.slow_peers_dropped, 0,
            "node {i} dropped a peer as too slow"
        );
        assert_eq!(snap.queue_dropped, 0, "node {i}");
    }
    for node in nodes {
        node.close().await;
    }
}
