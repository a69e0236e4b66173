//! The 4-node line through the public API, as a user writes it (issue 13's
//! headline shape): node 0 sends in a loop, node 3 reads.
use rs2p::{packets, MeshSocket};
use std::time::Instant;
#[tokio::main]
async fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    let mut nodes = Vec::new();
    for _ in 0..4 {
        nodes.push(
            MeshSocket::builder()
                .max_outgoing(0)
                .recv_queue(1 << 22)
                .bind("127.0.0.1:0")
                .await
                .unwrap(),
        );
    }
    for i in 1..4 {
        let p = nodes[i - 1].addr().port();
        nodes[i].connect("127.0.0.1", p, None).await.unwrap();
    }
    let payload = "x".repeat(100);
    let reader = nodes[3].clone();
    let recv = tokio::spawn(async move {
        let mut got = 0u64;
        while got < n {
            match tokio::time::timeout(std::time::Duration::from_secs(10), reader.next_message())
                .await
            {
                Ok(m) => {
                    m.unwrap();
                }
                Err(_) => return got,
            }
            got += 1;
            got += reader.recv_many(4096).len() as u64;
        }
        got
    });
    let t = Instant::now();
    for i in 0..n {
        nodes[0].send(packets![payload.as_str(), i]).await.unwrap();
    }
    let got = recv.await.unwrap();
    let dt = t.elapsed();
    if got < n {
        for (i, node) in nodes.iter().enumerate() {
            let s = node.snapshot().await.unwrap();
            eprintln!(
                "node {i}: peers {} conns {} slow {} qdrop {} wf {} errors {:?}",
                s.peers.len(),
                s.connections,
                s.slow_peers_dropped,
                s.queue_dropped,
                s.waterfall,
                s.errors
            );
        }
    }
    println!(
        "{got} delivered in {:?}: {:.0} msgs/s",
        dt,
        n as f64 / dt.as_secs_f64()
    );
}
