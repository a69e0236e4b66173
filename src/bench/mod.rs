//! Benchmarks: the logic behind `cargo bench --bench codec` and
//! `rs2p bench`, kept apart from the command line so that anyone can rerun
//! them from code.
//!
//! - [`harness`]: timing (warm-up, several runs, medians).
//! - [`relay`]: one state machine wired between two peers, to measure and
//!   check the relay path (forwarded bytes are the received bytes).

pub mod harness;
pub mod relay;
