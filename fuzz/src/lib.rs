//! Fuzz harnesses for rs2p, shared by the cargo-fuzz targets in
//! `fuzz_targets/` (and usable from any other driver: each is a plain
//! `fn(&[u8])` that panics on a bug; `cargo test` here runs them all on
//! seeded pseudo-random inputs and replays the saved regressions in
//! `regressions/TARGET/`).
//!
//! - [`frame_decoder`]: an arbitrary byte stream, fed to `FrameDecoder` in
//!   arbitrary chunks; every frame goes through `decode_body`, and the
//!   message and msgpack layers are also fed the raw bytes directly (the
//!   SHA-256 checksum would otherwise stop almost every input before them).
//! - [`mesh_state`]: the mesh (`Stack<()>`) with one or more connections,
//!   fed a script of events decoded from the input: frames from peers (raw
//!   bytes, checksummed msgpack, or structured protocol messages with
//!   fuzzed fields — handshakes, peer lists, requests, responses,
//!   renegotiations, user messages), timer ticks, closes, new connections,
//!   failed dials, drained send queues, validation decisions and
//!   application commands; optionally a valid handshake first.
//! - [`sync_state`]: the same driver with the replicated dictionary on top
//!   (`Stack<SyncState>`): sets, deletes, catch-up entries and deltas with
//!   fuzzed keys, values, owners and times, and the dictionary's commands
//!   (set, update, delete, apply_delta) under fuzzed bounds and leasing;
//!   then the same input read as peers' writes fed to three replicas in
//!   three orders ([`run_converge`]).
//! - [`chord_state`]: the same with the DHT (`Stack<ChordState>`): metas,
//!   notifies, stores, deltas, retrieves, answers (to what the node asked)
//!   and backup copies with fuzzed slots, and set, delete, apply_delta,
//!   get, join and unjoin under fuzzed bounds and timings.
//! - [`layer_stack`]: the extension interface itself: a test layer that
//!   whispers, broadcasts, dials, closes and reads the mesh from every hook
//!   and command as the input decides.
//!
//! The state-machine harnesses share one driver (`driver`): what differs
//! is a `Scenario` (the layer, its messages, its commands, its checks).
//!
//! Beyond "never panics", they check properties:
//! - splitting a stream into frames does not depend on how it is chunked;
//! - `pack` is stable: a packed message unpacks and packs to the same bytes;
//!   so is msgpack `encode` after `decode`; compression round-trips;
//! - every frame the node asks to send is one whole frame that a peer
//!   decodes (with the compression methods we advertised);
//! - every peer in the routing table is on an open connection, once; the
//!   mesh's bounds hold (addresses, replies waiting, waterfall, validations);
//! - every delivered message has a sub-flag, and none is one the layer
//!   claims;
//! - sync: the bounds (keys, value size) hold, no value is nil, the events
//!   tell exactly what the store holds, with leasing on every overwrite
//!   obeys the lease rule, a refused local write stores and sends nothing,
//!   and what the node whispers is a well-formed catch-up entry; replicas
//!   fed the same writes in any order hold what the lease rule gives for
//!   that order, and, without leasing or with one second for all writes,
//!   the same dictionary (the newest write of each key, ties to the
//!   smallest id), duplicates applied once;
//! - chord: the bounds (keys, entries, value size, lookups under way)
//!   hold, every held value is under the slot of its key, the events tell
//!   exactly the key list, storing peers are connected (with bin ids unless
//!   allowed), every get ends exactly once, and every write, retrieve or
//!   answer the node sends names a valid slot;
//! - layers: the peers the hooks told of are exactly the routing table,
//!   and a layer can neither dial itself or a connected peer nor whisper
//!   on a connection without a peer.

// `x % n == 0` reads as "one time in n" here, which is what is meant.
#![allow(clippy::manual_is_multiple_of)]

mod chord;
mod driver;
mod frame;
mod gen;
mod layer;
mod mesh;
mod sync;

pub use chord::{chord_state, run_chord_state, ChordRun};
pub use frame::frame_decoder;
pub use layer::{layer_stack, run_layer_stack, LayerRun};
pub use mesh::{mesh_state, run_mesh_state, Stats};
pub use sync::{run_converge, run_sync_state, sync_state, SyncRun};

use rs2p::protocol::Compression;

/// A target's harness: one input, a panic on a bug.
pub type Target = fn(&[u8]);

/// The harnesses by target name.
pub const TARGETS: [(&str, Target); 5] = [
    ("frame_decoder", frame_decoder),
    ("mesh_state", mesh_state),
    ("sync_state", sync_state),
    ("chord_state", chord_state),
    ("layer_stack", layer_stack),
];

/// The fuzz input read as a stream of decisions; zeros once it runs out.
pub struct Input<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Input { data, pos: 0 }
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    pub fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    pub fn u64(&mut self) -> u64 {
        (u64::from(self.u32()) << 32) | u64::from(self.u32())
    }

    /// Up to `n` bytes (fewer at the end).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let start = self.pos.min(self.data.len());
        let end = start.saturating_add(n).min(self.data.len());
        self.pos = start.saturating_add(n);
        &self.data[start..end]
    }

    /// Bytes read so far (past the end counts too).
    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn rest(&mut self) -> &'a [u8] {
        let start = self.pos.min(self.data.len());
        self.pos = self.data.len();
        &self.data[start..]
    }
}

/// The compression methods whose bit is set, in the reference order.
pub(crate) fn methods_from_mask(mask: u8) -> Vec<Compression> {
    Compression::ALL
        .iter()
        .enumerate()
        .filter(|(i, _)| mask >> i & 1 == 1)
        .map(|(_, m)| *m)
        .collect()
}

/// Without libFuzzer (`cargo test` here, stable toolchain, run by
/// `scripts/test.sh`): every harness on inputs from a seeded generator, the
/// saved regressions replayed, and checks that the scripted harnesses reach
/// the paths they are for.
#[cfg(test)]
mod tests {
    use super::*;

    /// Random inputs from the crate's seeded RNG.
    struct Rng(rs2p::protocol::Rng);
    impl Rng {
        fn new(seed: u64) -> Self {
            Rng(rs2p::protocol::Rng::new(seed))
        }

        fn input(&mut self) -> Vec<u8> {
            let n = self.0.below(1500) as usize;
            (0..n).map(|_| self.0.next_u64() as u8).collect()
        }

        /// An input that starts with a valid handshake (mode bit 0), and
        /// sometimes a second peer.
        fn handshaken(&mut self) -> Vec<u8> {
            let mut data = self.input();
            if let Some(mode) = data.first_mut() {
                *mode |= 1;
            }
            data
        }
    }

    #[test]
    fn random_inputs() {
        for (i, (name, harness)) in TARGETS.iter().enumerate() {
            let mut rng = Rng::new(0x5EED + i as u64);
            for n in 0..2000 {
                let data = rng.input();
                let r = std::panic::catch_unwind(|| harness(&data));
                assert!(r.is_ok(), "{name} failed on random input {n}: {data:?}");
            }
        }
    }

    /// Inputs saved in `regressions/TARGET/` (crashes found by fuzzing,
    /// minimised) still pass.
    #[test]
    fn saved_regressions() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions");
        let mut replayed = 0;
        for (name, harness) in TARGETS {
            let Ok(dir) = std::fs::read_dir(root.join(name)) else {
                continue;
            };
            for file in dir {
                let path = file.unwrap().path();
                let data = std::fs::read(&path).unwrap();
                let r = std::panic::catch_unwind(|| harness(&data));
                assert!(r.is_ok(), "{name} fails on {}", path.display());
                replayed += 1;
            }
        }
        assert!(replayed > 0, "no regressions found in {}", root.display());
    }

    #[test]
    fn a_handshake_then_a_broadcast_is_delivered() {
        // mode: a valid handshake from peer 0 on conn 1; default-ish config.
        let mut data = vec![0x01 | (0x0f << 3), 3, 4, 4, 4, 4];
        // Event 2 (structured) on conn 1: a broadcast from peer 0, stamped
        // now, user sub-flag 0 and two nil packets; not mutated,
        // uncompressed, not damaged.
        data.extend([2, 0, 0, 0, 0, 0, 10, 0, 0, 1, 9, 1]);
        let stats = run_mesh_state(&data);
        assert_eq!(stats.max_peers, 1, "{stats:?}");
        assert_eq!(stats.delivered, 1, "{stats:?}");
    }

    #[test]
    fn random_scripts_reach_the_handshaken_paths() {
        let mut rng = Rng::new(0xF00D);
        let (mut with_peers, mut with_delivery) = (0, 0);
        for _ in 0..2000 {
            let stats = run_mesh_state(&rng.handshaken());
            with_peers += usize::from(stats.max_peers > 0);
            with_delivery += usize::from(stats.delivered > 0);
        }
        assert!(with_peers > 1000, "{with_peers} of 2000 had a peer");
        assert!(with_delivery > 10, "{with_delivery} of 2000 delivered");
    }

    #[test]
    fn random_scripts_reach_the_dictionary() {
        let mut rng = Rng::new(0x5147);
        let (mut remote, mut local, mut whispered) = (0, 0, 0);
        for _ in 0..1000 {
            let run = run_sync_state(&rng.handshaken());
            remote += usize::from(run.remote_applied);
            local += usize::from(run.local_writes > 0);
            whispered += usize::from(run.whispered > 0);
        }
        assert!(remote > 20, "{remote} of 1000 applied a peer's write");
        assert!(local > 100, "{local} of 1000 wrote locally");
        assert!(whispered > 10, "{whispered} of 1000 whispered catch-up");
    }

    #[test]
    fn random_writes_contend_for_keys() {
        let mut rng = Rng::new(0xC0DE);
        let mut contested = 0;
        for _ in 0..1000 {
            contested += run_converge(&rng.input());
        }
        assert!(
            contested > 500,
            "{contested} keys with two writers in 1000 runs"
        );
    }

    #[test]
    fn random_scripts_reach_the_ring() {
        let mut rng = Rng::new(0xC40D);
        let (mut keys, mut held, mut sent, mut found) = (0, 0, 0, 0);
        for _ in 0..1000 {
            let run = run_chord_state(&rng.handshaken());
            keys += usize::from(run.keys > 0);
            held += usize::from(run.held > 0);
            sent += usize::from(run.chord_sent > 0);
            found += usize::from(run.found > 0);
        }
        assert!(keys > 100, "{keys} of 1000 knew a key");
        assert!(held > 100, "{held} of 1000 held a value");
        assert!(sent > 50, "{sent} of 1000 sent a chord message");
        assert!(found > 10, "{found} of 1000 found a value");
    }

    #[test]
    fn random_scripts_reach_the_layer_hooks() {
        let mut rng = Rng::new(0x1A7E);
        let (mut messages, mut sent, mut dials) = (0, 0, 0);
        for _ in 0..1000 {
            let run = run_layer_stack(&rng.handshaken());
            assert!(run.hooks > 0, "{run:?}");
            messages += usize::from(run.messages > 0);
            sent += usize::from(run.sent > 0);
            dials += usize::from(run.dials > 0);
        }
        assert!(messages > 50, "{messages} of 1000 gave the layer a message");
        assert!(sent > 100, "{sent} of 1000 sent from the layer");
        assert!(dials > 20, "{dials} of 1000 dialled from the layer");
    }
}
