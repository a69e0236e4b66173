//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod certs;
pub mod mesh;
pub mod py2p;

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
