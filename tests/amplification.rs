//! Amplification: a member of the subnet asks a node, over and over, for
//! things that cost little to ask and more to answer — its last message
//! again (`resend`), its peer list. Whatever one peer asks, the node sends
//! it at most `reply_burst` bytes at once plus `reply_rate` bytes per
//! second (`MeshConfig`), and keeps serving everyone else.
//!
//! In the in-memory rig: the bytes each side puts on the link are the
//! exact frames, counted before they are read.

use bytes::Bytes;
use rs2p::packets;
use rs2p::protocol::mesh::{MeshConfig, MeshState};
use rs2p::protocol::{Packet, PeerId, Rng};
use rs2p::sim::rig::{rig_addr, End, Rig};

const A: usize = 0;
const M: usize = 1;

fn rig(extra: usize) -> Rig {
    Rig::with_nodes(2 + extra, |i| {
        (
            MeshState::new(
                PeerId::from(format!("node-{i}")),
                rig_addr(i),
                MeshConfig::default(),
            ),
            (),
        )
    })
}

fn bytes(frames: &[Bytes]) -> usize {
    frames.iter().map(Bytes::len).sum()
}

/// M asks `n` times with `ask`; returns (bytes M sent, bytes A answered).
fn ask_many(
    rig: &mut Rig,
    at_a: End,
    at_m: End,
    n: usize,
    ask: impl Fn(&mut MeshState, u64, &mut Vec<rs2p::protocol::mesh::Action>),
) -> (usize, usize) {
    for _ in 0..n {
        rig.with_mesh(M, |m, now, out| ask(m, now, out));
    }
    let requests = rig.take_inbound(at_a);
    let sent = bytes(&requests);
    for frame in requests {
        rig.inject(at_a, frame);
    }
    rig.read(at_a);
    let answers = rig.take_inbound(at_m);
    (sent, bytes(&answers))
}

#[test]
fn resend_requests_cannot_amplify() {
    let mut rig = rig(0);
    let (at_m, at_a) = rig.connect(M, A);
    rig.settle();
    let a_id = rig.id(A);
    // A's last message to M is a 4 KiB broadcast (random bytes, which
    // compression cannot shrink).
    let mut rng = Rng::new(9);
    let noise: Vec<u8> = (0..4096).map(|_| rng.next_u64() as u8).collect();
    rig.broadcast(A, packets![Packet::bin(noise)]).unwrap();
    rig.settle();
    let (sent, answered) = ask_many(&mut rig, at_a, at_m, 1000, |m, now, out| {
        m.request_resend(now, &a_id, out).unwrap();
    });
    let ratio = answered as f64 / sent as f64;
    eprintln!("1,000 resend requests: {sent} bytes asked, {answered} bytes answered ({ratio:.2}x)");
    // Unbounded, this is ~4.2 MB for ~80 kB (the first round measured 37x).
    let cfg = MeshConfig::default();
    assert!(
        answered <= cfg.reply_burst as usize + 5_000,
        "{answered} bytes answered"
    );
    assert!(ratio < 2.0, "amplification {ratio:.2}x");
    assert!(rig.mesh(A).replies_refused() > 950);
    assert!(
        rig.is_peer(A, M),
        "asking too much is not a reason to drop M"
    );
    // A second later the budget has refilled by `reply_rate`: a resend
    // is answered again.
    rig.advance(1_000);
    let (_, answered) = ask_many(&mut rig, at_a, at_m, 1, |m, now, out| {
        m.request_resend(now, &a_id, out).unwrap();
    });
    assert!(
        answered > 4096,
        "a legitimate resend after a pause goes out"
    );
}

#[test]
fn peer_list_requests_cannot_amplify() {
    // A has 30 other peers, so its peer list is much larger than a request.
    let mut rig = rig(30);
    let (at_m, at_a) = rig.connect(M, A);
    for i in 2..32 {
        rig.connect(i, A);
    }
    rig.settle();
    let (sent, answered) = ask_many(&mut rig, at_a, at_m, 1000, |m, now, out| {
        m.request_peers(now, out);
    });
    let ratio = answered as f64 / sent as f64;
    eprintln!(
        "1,000 peer-list requests: {sent} bytes asked, {answered} bytes answered ({ratio:.2}x)"
    );
    assert!(ratio < 2.0, "amplification {ratio:.2}x");
    assert!(rig.is_peer(A, M));
    // Everyone else is still served: a broadcast from a quiet peer reaches M.
    let id = rig.broadcast(5, packets!["still here"]).unwrap();
    rig.settle();
    assert!(rig.take_deliveries(M).iter().any(|d| d.id == id));
}
