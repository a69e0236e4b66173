//! The integration tests' support tree, shared by every test file through
//! `mod support;`:
//!
//! * [`wait`]: the one default bound on waits ([`wait::WAIT`]) and the
//!   bounded polling helpers;
//! * [`mesh`]: in-process `MeshSocket` helpers (nodes, topologies, waiting
//!   on routing tables and messages, exactly-once broadcast rounds);
//! * [`process`]: one wrapper for a node in a child process speaking JSON
//!   lines (`rs2p node --json`, `rs2p sync --json`, py2p and js2p alike),
//!   and bounded one-shot runs;
//! * [`text_process`]: a child driven with lines of text, as a person
//!   would (`rs2p sync` in plain mode);
//! * [`py2p`]: the py2p interpreter, scripts and node start function;
//! * [`js2p`]: the js2p folder, Node.js and the js2p node start function;
//! * [`netns`]: network-namespace labs (a partition lab, and a chaos lab
//!   whose links are shaped as `tc netem` does) and rs2p nodes inside them;
//! * [`linkem`]: a userspace link emulator for the chaos lab on kernels
//!   without `sch_netem`;
//! * [`certs`]: test certificates;
//! * [`chat`]: `rs2p node` in chat mode in a child process (raw stdout,
//!   status lines on stderr).
//!
//! Each test crate uses only part of this tree, so unused items are
//! allowed here (and only here).
#![allow(dead_code)]

pub mod certs;
pub mod chat;
pub mod js2p;
pub mod linkem;
pub mod mesh;
pub mod netns;
pub mod process;
pub mod py2p;
pub mod text_process;
pub mod wait;

use std::path::PathBuf;

/// The shared folder beside the checkout (`../shared`), or `RS2P_SHARED`.
pub fn shared_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("RS2P_SHARED") {
        return PathBuf::from(dir);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared")
}

/// Lowercase hex decoding; panics on bad input (test data only).
pub fn unhex(text: &str) -> Vec<u8> {
    assert!(text.len().is_multiple_of(2), "odd hex length");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex digit"))
        .collect()
}

/// Lowercase hex encoding.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
