//! Benchmarks: the logic behind `cargo bench --bench codec` and
//! `rs2p bench`, kept apart from the command line so that anyone can rerun
//! them from code.
//!
//! - [`harness`]: timing (warm-up, several runs, medians).
//! - [`relay`]: one state machine wired between two peers, to measure and
//!   check the relay path (forwarded bytes are the received bytes).
//! - [`workload`]: the payload (sequence number, send time), latency
//!   histograms, per-receiver tracking, the result of a run.
//! - [`wire`]: a TCP transport that counts bytes on the wire.
//! - [`mesh`]: rs2p nodes in this process (line or mesh).
//! - [`floor`]: the floor: relays that only split frames and copy bytes.
//! - [`procs`]: one process per node, rs2p or py2p, same protocol.
//! - [`memory`]: resident memory per node and per idle connection.
//! - [`suite`]: what `rs2p bench` runs, with medians and ratios.

pub mod floor;
pub mod harness;
pub mod memory;
pub mod mesh;
pub mod procs;
pub mod relay;
pub mod suite;
pub mod wire;
pub mod workload;
