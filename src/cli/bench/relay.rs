//! [`RelayRig`]: one [`MeshState`] wired between an upstream and a
//! downstream peer (`A → R → B`), to measure and check the relay path:
//! every broadcast that arrives from `A` is split from the byte stream,
//! its checksum verified, deduplicated, delivered, and forwarded to `B` as
//! the very bytes that arrived (no re-encoding).

use bytes::Bytes;
use rs2p::protocol::mesh::{Action, ConnId, MeshConfig, MeshState};
use rs2p::protocol::{Compression, FrameDecoder, MainFlag, Packet, PeerId, SubFlag};

/// Unix time (s) the rig's messages are stamped with.
const NOW: u64 = 1_700_000_000;
/// The relay's connection to A.
const FROM: ConnId = 1;
/// The relay's connection to B.
const TO: ConnId = 2;

/// What the relay did with a stream of broadcasts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RelayCount {
    /// Frames split from the stream.
    pub frames: u64,
    /// Frames forwarded to B.
    pub forwarded: u64,
    /// Forwarded frames that share the received frame's memory (passed
    /// through, not re-encoded).
    pub passed_through: u64,
    /// Messages delivered to the relay's application.
    pub delivered: u64,
}

/// `A → R → B`, handshakes done, compression as given on every node.
#[derive(Debug)]
pub struct RelayRig {
    /// The origin of the broadcasts.
    pub upstream: MeshState,
    /// The node under test.
    pub relay: MeshState,
    /// The downstream peer.
    pub downstream: MeshState,
}

fn node(name: &str, port: u16, compression: &[Compression]) -> MeshState {
    let config = MeshConfig {
        compression: compression.to_vec(),
        max_outgoing: 0,
        reconnect: false,
        ..MeshConfig::default()
    };
    MeshState::new(
        PeerId::from(format!(
            "{name}-bench-node-id-0123456789abcdefghijklmnopqrstuvwxyzABCDEF"
        )),
        ("127.0.0.1".into(), port),
        config,
    )
}

/// Feeds every frame a node sent on `conn` to `to` on `to_conn`; returns
/// what `to` did in answer.
fn pass(out: &mut Vec<Action>, conn: ConnId, to: &mut MeshState, to_conn: ConnId) -> Vec<Action> {
    let mut more = Vec::new();
    for action in out.drain(..) {
        if let Action::Send { conn: c, frame } = action {
            if c == conn {
                let mut dec = FrameDecoder::new(usize::MAX);
                dec.feed(&frame);
                while let Ok(Some(f)) = dec.next_frame() {
                    to.on_frame(NOW, to_conn, f, &mut more);
                }
            }
        }
    }
    more
}

impl RelayRig {
    /// Builds the line and runs its handshakes. Deterministic: two rigs
    /// with the same compression accept each other's frames.
    pub fn new(compression: &[Compression]) -> Self {
        let mut a = node("A", 1, compression);
        let mut r = node("R", 2, compression);
        let mut b = node("B", 3, compression);
        let (mut oa, mut or1, mut or2, mut ob) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        a.on_open(NOW, 1, true, "127.0.0.1:2".into(), None, &mut oa);
        r.on_open(NOW, FROM, false, "127.0.0.1:1".into(), None, &mut or1);
        r.on_open(NOW, TO, true, "127.0.0.1:3".into(), None, &mut or2);
        b.on_open(NOW, 1, false, "127.0.0.1:2".into(), None, &mut ob);
        // Handshakes and peer lists, until nothing is left to pass.
        for _ in 0..4 {
            // R's own handshakes go first, as on a real connection.
            let mut r_out = std::mem::take(&mut or1);
            r_out.append(&mut or2);
            r_out.extend(pass(&mut oa, 1, &mut r, FROM));
            r_out.extend(pass(&mut ob, 1, &mut r, TO));
            let (mut to_a, mut to_b): (Vec<Action>, Vec<Action>) = r_out
                .into_iter()
                .filter(|a| matches!(a, Action::Send { .. }))
                .partition(|a| matches!(a, Action::Send { conn: FROM, .. }));
            oa = pass(&mut to_a, FROM, &mut a, 1);
            ob = pass(&mut to_b, TO, &mut b, 1);
        }
        RelayRig {
            upstream: a,
            relay: r,
            downstream: b,
        }
    }

    /// Whether the relay has both peers in its routing table.
    pub fn is_wired(&self) -> bool {
        self.relay.peers().len() == 2
            && self.upstream.peers().len() == 1
            && self.downstream.peers().len() == 1
    }

    /// `count` broadcast frames from A as they go on the wire to R, each
    /// with a `payload_len`-byte bin payload (distinct messages).
    pub fn broadcasts(&mut self, count: usize, payload_len: usize) -> Vec<Bytes> {
        let mut frames = Vec::with_capacity(count);
        let mut out = Vec::new();
        let mut payload = vec![0u8; payload_len.max(8)];
        for (i, byte) in payload.iter_mut().enumerate() {
            *byte = b"the quick brown fox jumps over the lazy dog "[i % 44];
        }
        for k in 0..count as u64 {
            payload[..8].copy_from_slice(&k.to_be_bytes());
            let _ = self.upstream.send(
                NOW,
                SubFlag::Broadcast.as_u8().into(),
                MainFlag::Broadcast,
                vec![Packet::bin(payload.clone())],
                &mut out,
            );
            for action in out.drain(..) {
                if let Action::Send { frame, .. } = action {
                    frames.push(frame);
                }
            }
        }
        frames
    }

    /// Feeds a byte stream from A to the relay, in `chunk`-byte reads, and
    /// counts what it forwards to B.
    pub fn relay_stream(&mut self, stream: &[u8], chunk: usize) -> RelayCount {
        let mut count = RelayCount::default();
        let mut dec = FrameDecoder::new(self.relay.config().limits.max_frame_len);
        let mut out = Vec::new();
        for piece in stream.chunks(chunk.max(1)) {
            dec.feed(piece);
            while let Ok(Some(frame)) = dec.next_frame() {
                count.frames += 1;
                let received = frame.raw().as_ptr();
                self.relay.on_frame(NOW, FROM, frame, &mut out);
                for action in out.drain(..) {
                    match action {
                        Action::Send { conn: TO, frame } => {
                            count.forwarded += 1;
                            count.passed_through += u64::from(frame.as_ptr() == received);
                        }
                        Action::Deliver(_) => count.delivered += 1,
                        _ => {}
                    }
                }
            }
        }
        count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasts_are_forwarded_as_received_bytes() {
        for compression in [vec![], vec![Compression::Snappy], vec![Compression::Zlib]] {
            let mut rig = RelayRig::new(&compression);
            assert!(rig.is_wired(), "{compression:?}");
            let frames = rig.broadcasts(50, 100);
            assert_eq!(frames.len(), 50);
            let stream: Vec<u8> = frames.iter().flat_map(|f| f.iter().copied()).collect();
            // Twice: the second copy of each is a duplicate and dropped.
            let mut twice = stream.clone();
            twice.extend_from_slice(&stream);
            let count = rig.relay_stream(&twice, 1000);
            assert_eq!(
                count,
                RelayCount {
                    frames: 100,
                    forwarded: 50,
                    passed_through: 50,
                    delivered: 50
                },
                "{compression:?}"
            );
        }
    }
}
