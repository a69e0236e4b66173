//! Fairness under a flood: one member of the subnet (M) sends unique,
//! valid broadcasts as fast as it can through node A; another peer's (B's)
//! broadcasts through A must still get through with a bounded delay, and
//! A must not drop B. Frames from A's connections reach A's state machine
//! through one bounded queue whose waiting senders are served in turn, so
//! a flooder gets no more than its share.
//!
//! The delays are measured (send to delivery at A, and at C behind A) and
//! printed; the bound asserted is deliberately generous — these machines
//! are shared — and the figure goes in the closing note.

use std::time::{Duration, Instant};

use rs2p::{packets, MeshSocket, Packet};
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(20);

async fn node() -> MeshSocket {
    MeshSocket::builder()
        .max_outgoing(0)
        .bind("127.0.0.1:0")
        .await
        .unwrap()
}

/// Times of the probes `at` has seen, by sequence number: a handler sees
/// every message in A's actor, before the receive queue (which a flood
/// this size overflows, dropping the oldest).
fn watch(at: &MeshSocket) -> tokio::sync::mpsc::UnboundedReceiver<(u64, Instant)> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    at.register_handler(move |m, _| {
        if m.packets().first().and_then(Packet::as_str) == Some("probe") {
            if let Some(seq) = m.packets().get(1).and_then(Packet::as_u64) {
                let _ = tx.send((seq, Instant::now()));
            }
            return true;
        }
        false
    })
    .unwrap();
    rx
}

/// B sends `n` probes 10 ms apart (numbered from `first`); returns each
/// one's delay until `seen` reports it.
async fn measure(
    b: &MeshSocket,
    seen: &mut tokio::sync::mpsc::UnboundedReceiver<(u64, Instant)>,
    first: u64,
    n: u64,
) -> Vec<Duration> {
    let mut delays = Vec::new();
    for seq in first..first + n {
        let sent = Instant::now();
        b.send(packets!["probe", seq]).await.unwrap();
        let got = timeout(WAIT, async {
            loop {
                match seen.recv().await {
                    Some((s, at)) if s == seq => return at,
                    Some(_) => {}
                    None => panic!("the node stopped"),
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("probe {seq} never arrived"));
        delays.push(got - sent);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    delays.sort();
    delays
}

fn summary(d: &[Duration]) -> String {
    format!(
        "p50 {:?}, p90 {:?}, max {:?}",
        d[d.len() / 2],
        d[d.len() * 9 / 10],
        d[d.len() - 1]
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_member_does_not_starve_another_peer() {
    let (a, b, c, m) = (node().await, node().await, node().await, node().await);
    for x in [&b, &c, &m] {
        x.connect("127.0.0.1", a.addr().port(), None).await.unwrap();
    }
    let (mut seen_a, mut seen_c) = (watch(&a), watch(&c));
    let quiet_at_a = measure(&b, &mut seen_a, 0, 30).await;
    while seen_c.try_recv().is_ok() {}
    // M floods: unique 100-byte broadcasts, as fast as its node sends.
    let flooder = m.clone();
    let flood = tokio::spawn(async move {
        let mut n = 0u64;
        loop {
            if flooder
                .send(packets![Packet::bin(vec![0x5A; 92]), n])
                .await
                .is_err()
            {
                return n;
            }
            n += 1;
            if n.is_multiple_of(256) {
                tokio::task::yield_now().await;
            }
        }
    });
    // Let the flood build up before measuring.
    let started = Instant::now();
    while a.snapshot().await.unwrap().waterfall < 20_000 && started.elapsed() < WAIT {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let busy_at_a = measure(&b, &mut seen_a, 100, 30).await;
    while seen_c.try_recv().is_ok() {}
    let busy_at_c = measure(&b, &mut seen_c, 200, 30).await;
    flood.abort();
    let flooded = a.snapshot().await.unwrap();
    eprintln!(
        "B's broadcasts through A: quiet {}; during M's flood, at A {}, at C (behind A) {}; \
         A saw {} broadcasts in its window",
        summary(&quiet_at_a),
        summary(&busy_at_a),
        summary(&busy_at_c),
        flooded.waterfall
    );
    // A kept every peer, and B's broadcasts kept getting through in time.
    assert_eq!(
        flooded.peers.len(),
        3,
        "A dropped a peer: {:?}",
        flooded.peers
    );
    assert_eq!(flooded.slow_peers_dropped, 0);
    assert!(
        busy_at_a[busy_at_a.len() - 1] < Duration::from_secs(2),
        "B's broadcasts waited too long at A: {}",
        summary(&busy_at_a)
    );
    for n in [a, b, c, m] {
        n.close().await;
    }
}
