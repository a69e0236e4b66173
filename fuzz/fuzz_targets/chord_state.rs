//! Peers' DHT messages and the application's commands into a `Stack<ChordState>`. See
//! `rs2p_fuzz::chord_state`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| rs2p_fuzz::chord_state(data));
