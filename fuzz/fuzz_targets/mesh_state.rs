//! Arbitrary frames from a peer into a `MeshState`. See
//! `rs2p_fuzz::mesh_state`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| rs2p_fuzz::mesh_state(data));
