//! [`RelayRig`]: one node wired between an upstream and a downstream peer
//! (`A → R → B`) in the in-memory rig ([`rs2p::sim::rig::Rig`]), to
//! measure and check the relay path: every broadcast that arrives from `A`
//! is split from the byte stream, its checksum verified, deduplicated,
//! delivered, and forwarded to `B` as the very bytes that arrived (no
//! re-encoding).

use bytes::Bytes;
use rs2p::protocol::mesh::{Action, ConnId, MeshConfig, MeshState};
use rs2p::protocol::{Compression, FrameDecoder, MainFlag, Packet, PeerId, SubFlag};
use rs2p::sim::rig::{rig_addr, Rig};

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

const A: usize = 0;
const R: usize = 1;
const B: usize = 2;

/// `A → R → B`, handshakes done, compression as given on every node.
#[derive(Debug)]
pub struct RelayRig {
    rig: Rig,
    /// The relay's connection to A.
    from: ConnId,
    /// The relay's connection to B.
    to: ConnId,
}

impl RelayRig {
    /// Builds the line and runs its handshakes. Deterministic: two rigs
    /// with the same compression accept each other's frames.
    pub fn new(compression: &[Compression]) -> Self {
        let mut rig = Rig::with_nodes(3, |i| {
            let config = MeshConfig {
                compression: compression.to_vec(),
                max_outgoing: 0,
                reconnect: false,
                ..MeshConfig::default()
            };
            let id = PeerId::from(format!(
                "{}-bench-node-id-0123456789abcdefghijklmnopqrstuvwxyzABCDEF",
                ["A", "R", "B"][i]
            ));
            (MeshState::new(id, rig_addr(i), config), ())
        });
        let (_, from) = rig.connect(A, R);
        let (to, _) = rig.connect(R, B);
        rig.settle();
        RelayRig {
            rig,
            from: from.1,
            to: to.1,
        }
    }

    /// Whether the relay has both peers in its routing table.
    pub fn is_wired(&self) -> bool {
        self.rig.is_peer(R, A) && self.rig.is_peer(R, B) && self.rig.is_peer(A, R)
    }

    /// `count` broadcast frames from A as they go on the wire to R, each
    /// with a `payload_len`-byte bin payload (distinct messages).
    pub fn broadcasts(&mut self, count: usize, payload_len: usize) -> Vec<Bytes> {
        let mut payload = vec![0u8; payload_len.max(8)];
        for (i, byte) in payload.iter_mut().enumerate() {
            *byte = b"the quick brown fox jumps over the lazy dog "[i % 44];
        }
        let at_r = (R, self.from);
        let mut frames = Vec::with_capacity(count);
        for k in 0..count as u64 {
            payload[..8].copy_from_slice(&k.to_be_bytes());
            let packets = vec![Packet::bin(payload.clone())];
            let _ = self.rig.with_mesh(A, |m, now, out| {
                m.send(
                    now,
                    SubFlag::Broadcast.as_u8().into(),
                    MainFlag::Broadcast,
                    packets,
                    out,
                )
            });
            frames.extend(self.rig.take_inbound(at_r));
        }
        frames
    }

    /// Feeds a byte stream from A to the relay, in `chunk`-byte reads, and
    /// counts what it forwards to B.
    pub fn relay_stream(&mut self, stream: &[u8], chunk: usize) -> RelayCount {
        let mut count = RelayCount::default();
        let now = self.rig.now_ms();
        let (from, to) = (self.from, self.to);
        let relay = self.rig.node_mut(R);
        let mut dec = FrameDecoder::new(relay.mesh().config().limits.max_frame_len);
        let mut out = Vec::new();
        for piece in stream.chunks(chunk.max(1)) {
            dec.feed(piece);
            while let Ok(Some(frame)) = dec.next_frame() {
                count.frames += 1;
                let received = frame.raw().as_ptr();
                relay.on_frame(now, from, frame, &mut out);
                for action in out.drain(..) {
                    match action {
                        Action::Send { conn, frame } if conn == to => {
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
