//! `rs2p::chord::ChordSocket` over real sockets on loopback: a ring of
//! eight, reads from every node, events, a killed storing node, and
//! `apply_delta`'s merged result.

mod support;

use std::time::Duration;

use rs2p::chord::ChordSocket;
use rs2p::protocol::chord::{ChordError, ChordEvent};
use rs2p::protocol::Packet;
use rs2p::Error;
use support::wait::{wait_until, WAIT};

/// `n` joined nodes, each connected to every earlier one.
async fn ring(n: usize) -> Vec<ChordSocket> {
    let mut nodes: Vec<ChordSocket> = Vec::new();
    for _ in 0..n {
        let node = ChordSocket::builder()
            .joined(true)
            .request_timeout(Duration::from_secs(5))
            .bind("127.0.0.1:0")
            .await
            .unwrap();
        for other in &nodes {
            node.mesh()
                .connect("127.0.0.1", other.mesh().addr().port(), None)
                .await
                .unwrap();
        }
        nodes.push(node);
    }
    // Every node has heard every other one say it stores.
    for node in &nodes {
        let node = node.clone();
        wait_until("every meta", WAIT, move || {
            let node = node.clone();
            async move {
                let storing = node.storing_peers().await.map_err(|e| e.to_string())?;
                if storing + 1 == n {
                    Ok(())
                } else {
                    Err(format!("{storing} storing peers"))
                }
            }
        })
        .await;
    }
    nodes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ring_of_eight_reads_writes_and_survives_a_kill() {
    let nodes = ring(8).await;
    let mut events = nodes[7].events();
    for k in 0..24 {
        nodes[k % 8]
            .set(format!("key-{k}"), format!("value {k}"))
            .await
            .unwrap();
    }
    // Sets do not wait for the tables (the protocol has no store
    // acknowledgement): wait until all 24 × 5 entries have landed, then
    // every node reads every key at once.
    let all = nodes.clone();
    wait_until("every store landed", WAIT, move || {
        let all = all.clone();
        async move {
            let mut t = 0;
            for n in &all {
                t += n.held().await.map_err(|e| e.to_string())?;
            }
            if t == 24 * 5 {
                Ok(())
            } else {
                Err(format!("{t} entries held"))
            }
        }
    })
    .await;
    // Every node reads every key (quorum of three of five).
    for (i, node) in nodes.iter().enumerate() {
        for k in (i..24).step_by(5) {
            let got = node.get(format!("key-{k}")).await.unwrap();
            assert_eq!(got, Packet::from(format!("value {k}")), "node {i}");
        }
    }
    let added = tokio::time::timeout(WAIT, events.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(added, ChordEvent::Added { .. }));
    assert_eq!(nodes[3].keys().await.unwrap().len(), 24);
    let total: usize = {
        let mut t = 0;
        for n in &nodes {
            t += n.held().await.unwrap();
        }
        t
    };
    assert_eq!(total, 24 * 5);

    // Kill the node holding the most; every key still reads everywhere.
    let mut most = (0, 0);
    for (i, n) in nodes.iter().enumerate() {
        let h = n.held().await.unwrap();
        if h > most.1 {
            most = (i, h);
        }
    }
    nodes[most.0].close().await;
    let live: Vec<&ChordSocket> = nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != most.0)
        .map(|(_, n)| n)
        .collect();
    let probe = live[0].clone();
    wait_until("five copies again", WAIT, || {
        let live: Vec<ChordSocket> = live.iter().map(|n| (*n).clone()).collect();
        async move {
            let mut t = 0;
            for n in &live {
                t += n.held().await.map_err(|e| e.to_string())?;
            }
            if t == 24 * 5 {
                Ok(())
            } else {
                Err(format!("{t} entries"))
            }
        }
    })
    .await;
    for k in 0..24 {
        let got = probe.get(format!("key-{k}")).await.unwrap();
        assert_eq!(got, Packet::from(format!("value {k}")));
    }

    // Deltas return the merged map; deletes end in NotFound.
    let d = |k: &str, v: u64| Packet::Map(vec![(Packet::from(k), Packet::from(v))]);
    live[1].apply_delta("m", d("a", 1)).await.unwrap();
    let merged = live[2].apply_delta("m", d("b", 2)).await.unwrap();
    assert_eq!(merged.as_map().map(<[_]>::len), Some(2));
    live[3].delete("key-0").await.unwrap();
    // The deletes travel from node 3 while node 4 asks: wait for them.
    let reader = live[4].clone();
    wait_until("key-0 deleted", WAIT, move || {
        let reader = reader.clone();
        async move {
            match reader.get("key-0").await {
                Err(Error::Chord(ChordError::NotFound)) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await;
    for n in &nodes {
        n.close().await;
    }
}
