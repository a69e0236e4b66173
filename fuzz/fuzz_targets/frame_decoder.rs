//! Arbitrary byte streams, in arbitrary chunks, through `FrameDecoder`;
//! every frame through `decode_body`. See `rs2p_fuzz::frame_decoder`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| rs2p_fuzz::frame_decoder(data));
