//! The extension interface (`rs2p::protocol::mesh::layer`), shown with a
//! small layer: a replicated counter that travels on its own sub-flag.
//!
//! Each node counts its own increments; an increment is broadcast as
//! `[0x30, origin, count]`, and a peer that completes its handshake is
//! whispered every `(origin, count)` the node knows, so late joiners catch
//! up. Merging keeps the largest count per origin, so duplicates and
//! catch-up overlaps are harmless; the total is the sum. The same layer
//! runs in the in-memory rig (pure, deterministic) and in real nodes.

use std::collections::BTreeMap;
use std::time::Duration;

use rs2p::packets;
use rs2p::protocol::mesh::{ConnId, Delivery, Layer, LayerCtx, MeshConfig, MeshState};
use rs2p::protocol::{InternalMessage, Packet, PeerId};
use rs2p::sim::rig::{rig_addr, Rig};
use rs2p::MeshSocket;
use tokio::sync::watch;

const COUNTER: u8 = 0x30;
const WAIT: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct Counter {
    counts: BTreeMap<Vec<u8>, u64>,
    /// Every change of the total, for whoever waits on it.
    total: watch::Sender<u64>,
    /// Messages claimed (to check none reached the application).
    claimed: u64,
}

impl Counter {
    fn new() -> Self {
        Counter {
            counts: BTreeMap::new(),
            total: watch::channel(0).0,
            claimed: 0,
        }
    }

    fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    fn merge(&mut self, origin: &[u8], count: u64) {
        let slot = self.counts.entry(origin.to_vec()).or_insert(0);
        if count > *slot {
            *slot = count;
            self.total.send_replace(self.counts.values().sum());
        }
    }

    /// The application's command: one more, from this node.
    fn increment(&mut self, ctx: &mut LayerCtx<'_>) {
        let me = ctx.id().as_bytes().to_vec();
        let count = self.counts.get(&me).copied().unwrap_or(0) + 1;
        self.merge(&me, count);
        ctx.broadcast(COUNTER, vec![Packet::bin(me), count.into()])
            .expect("small message");
    }
}

impl Layer for Counter {
    fn claims(&self, message: &InternalMessage) -> bool {
        message.payload.first().and_then(Packet::as_u64) == Some(COUNTER.into())
    }

    fn on_peer_ready(&mut self, ctx: &mut LayerCtx<'_>, _peer: &PeerId, conn: ConnId) {
        for (origin, count) in &self.counts {
            let packets = vec![Packet::bin(origin.clone()), (*count).into()];
            ctx.whisper(conn, COUNTER, packets).expect("small message");
        }
    }

    fn on_message(&mut self, _ctx: &mut LayerCtx<'_>, delivery: Delivery) {
        self.claimed += 1;
        // A peer's bad packets are ignored, never a panic.
        let p = &delivery.message.payload;
        if let (Some(origin), Some(count)) = (p.get(1).and_then(Packet::as_bytes), p.get(2)) {
            if let Some(count) = count.as_u64() {
                self.merge(origin, count);
            }
        }
    }
}

fn counter_rig(n: usize) -> Rig<Counter> {
    Rig::with_nodes(n, |i| {
        let mesh = MeshState::new(
            PeerId::from(format!("c{i}")),
            rig_addr(i),
            MeshConfig::default(),
        );
        (mesh, Counter::new())
    })
}

#[test]
fn counter_replicates_through_its_own_sub_flag_in_the_rig() {
    let mut rig = counter_rig(4);
    for i in 1..3 {
        rig.connect(i, i - 1);
    }
    rig.settle();
    for _ in 0..3 {
        rig.with_layer(0, Counter::increment);
    }
    rig.with_layer(2, Counter::increment);
    // A user broadcast still reaches the application; the layer's don't.
    let user = rig.broadcast(0, packets!["hello"]).unwrap();
    rig.settle();
    for i in 0..3 {
        assert_eq!(rig.node(i).layer().total(), 4, "node {i}");
        let got: Vec<_> = rig.take_deliveries(i).into_iter().map(|d| d.id).collect();
        let expect = if i == 0 { vec![] } else { vec![user] };
        assert_eq!(
            got, expect,
            "node {i}: only the user broadcast is delivered"
        );
    }
    assert!(
        rig.node(1).layer().claimed >= 4,
        "node 1 saw the increments"
    );
    // A late joiner catches up from the handshake hook.
    rig.connect(3, 2);
    rig.settle();
    assert_eq!(rig.node(3).layer().total(), 4);
    rig.with_layer(3, Counter::increment);
    rig.settle();
    for i in 0..4 {
        assert_eq!(rig.node(i).layer().total(), 5, "node {i}");
    }
}

#[test]
fn counter_ignores_malformed_packets() {
    let mut rig = counter_rig(2);
    rig.connect(1, 0);
    rig.settle();
    rig.with_layer(0, |_, ctx| {
        ctx.broadcast(COUNTER, vec!["not bytes".into(), Packet::Nil])
            .unwrap();
        ctx.broadcast(COUNTER, vec![]).unwrap();
    });
    rig.settle();
    assert!(rig.is_peer(0, 1), "bad layer packets do not cost the link");
    assert_eq!(rig.node(1).layer().total(), 0);
    assert_eq!(rig.node(1).layer().claimed, 2);
}

#[tokio::test]
async fn counter_replicates_between_real_nodes() {
    let mut nodes = Vec::new();
    let mut totals = Vec::new();
    for _ in 0..3 {
        let counter = Counter::new();
        totals.push(counter.total.subscribe());
        let node = MeshSocket::builder()
            .bind_with_layer("127.0.0.1:0", Box::new(counter))
            .await
            .unwrap();
        nodes.push(node);
    }
    nodes[1]
        .connect("127.0.0.1", nodes[0].addr().port(), None)
        .await
        .unwrap();
    nodes[2]
        .connect("127.0.0.1", nodes[1].addr().port(), None)
        .await
        .unwrap();
    for node in &nodes[..2] {
        node.with_layer(Counter::increment).await.unwrap();
    }
    for (i, total) in totals.iter_mut().enumerate() {
        tokio::time::timeout(WAIT, total.wait_for(|t| *t == 2))
            .await
            .unwrap_or_else(|_| panic!("node {i} never counted 2"))
            .unwrap();
    }
    // The application queue saw none of the layer's messages.
    for node in &nodes {
        assert!(node.recv().is_none());
    }
    // A layer of another type is a typed error.
    let wrong = nodes[0].with_layer(|_: &mut (), _| ()).await;
    assert!(
        matches!(wrong, Err(rs2p::Error::NoSuchLayer(_))),
        "{wrong:?}"
    );
    for node in nodes {
        node.close().await;
    }
}

/// A bug that panics inside a node (here: in its layer) stops the node —
/// its connections close and every handle sees it shut down — instead of
/// leaving a process that hangs.
#[tokio::test]
async fn a_panic_in_a_node_shuts_it_down_instead_of_hanging() {
    #[derive(Debug)]
    struct Buggy;
    impl Layer for Buggy {
        fn claims(&self, message: &InternalMessage) -> bool {
            message.payload.first().and_then(Packet::as_u64) == Some(COUNTER.into())
        }
        fn on_message(&mut self, _ctx: &mut LayerCtx<'_>, _delivery: Delivery) {
            panic!("a bug in the layer");
        }
    }
    let a = MeshSocket::builder()
        .bind_with_layer("127.0.0.1:0", Box::new(Buggy))
        .await
        .unwrap();
    let b = MeshSocket::bind("127.0.0.1:0").await.unwrap();
    let mut b_events = b.events();
    b.connect("127.0.0.1", a.addr().port(), None).await.unwrap();
    b.send_with(
        packets![1u64],
        COUNTER.into(),
        rs2p::protocol::MainFlag::Broadcast,
    )
    .await
    .unwrap();
    let ended = tokio::time::timeout(WAIT, a.next_message()).await;
    assert!(matches!(ended, Ok(Err(rs2p::Error::Shutdown))), "{ended:?}");
    assert!(matches!(
        a.send(packets!["x"]).await,
        Err(rs2p::Error::Shutdown)
    ));
    tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(rs2p::Event::PeerLeft(id)) = b_events.recv().await {
                if &id == a.id() {
                    return;
                }
            }
        }
    })
    .await
    .expect("b sees a leave");
    b.close().await;
}
