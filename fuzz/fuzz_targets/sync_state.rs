//! Peers' dictionary messages and the application's commands into a
//! `Stack<SyncState>`. See
//! `rs2p_fuzz::sync_state`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| rs2p_fuzz::sync_state(data));
