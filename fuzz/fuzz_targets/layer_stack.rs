//! A test layer using every `LayerCtx` operation, stacked on the mesh. See
//! `rs2p_fuzz::layer_stack`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| rs2p_fuzz::layer_stack(data));
