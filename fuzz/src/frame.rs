//! `frame_decoder`: byte streams through the frame decoder, the message
//! layer and msgpack.

use rs2p::protocol::{
    compression, decode_body, msgpack, CodecLimits, FrameDecoder, InternalMessage, PREFIX_LEN,
};

use crate::gen::{structured, NOW};
use crate::{methods_from_mask, Input};

#[derive(Debug, PartialEq)]
struct Split {
    frames: Vec<Vec<u8>>,
    error: Option<String>,
    buffered: usize,
    finish_ok: bool,
}

fn split<'a>(chunks: impl Iterator<Item = &'a [u8]>, max_frame_len: usize) -> Split {
    let mut dec = FrameDecoder::new(max_frame_len);
    let mut frames = Vec::new();
    for chunk in chunks {
        dec.feed(chunk);
        loop {
            match dec.next_frame() {
                Ok(Some(frame)) => {
                    assert!(frame.body().len() <= max_frame_len, "frame over the limit");
                    assert_eq!(frame.raw().len(), PREFIX_LEN + frame.body().len());
                    let announced = u32::from_be_bytes(frame.raw()[..4].try_into().unwrap());
                    assert_eq!(announced as usize, frame.body().len(), "prefix mismatch");
                    frames.push(frame.body().to_vec());
                }
                Ok(None) => break,
                Err(e) => {
                    return Split {
                        frames,
                        error: Some(format!("{e:?}")),
                        buffered: 0,
                        finish_ok: false,
                    }
                }
            }
        }
    }
    Split {
        frames,
        error: None,
        buffered: dec.buffered(),
        finish_ok: dec.finish().is_ok(),
    }
}

/// `unpack` then `pack` is stable; so is msgpack `decode` then `encode`.
fn message_layer(bytes: &[u8]) {
    if let Ok(m) = InternalMessage::unpack(bytes) {
        assert!(!m.payload.is_empty(), "unpacked a message without payload");
        let packed = m.pack();
        let again = InternalMessage::unpack(&packed).expect("a packed message unpacks");
        assert_eq!(again.pack(), packed, "pack is not stable");
    }
    if let Ok(value) = msgpack::decode(bytes) {
        let mut out = Vec::new();
        msgpack::encode(&value, &mut out);
        let again = msgpack::decode(&out).expect("encoded msgpack decodes");
        let mut out2 = Vec::new();
        msgpack::encode(&again, &mut out2);
        assert_eq!(out, out2, "msgpack encode is not stable");
    }
}

/// Input layout: `[chunk seed, methods mask, max_len hi, max_len lo,
/// stream…]`. With the seed's top bit set, the stream is instead built
/// from structured messages (valid checksums, each maybe compressed, one
/// byte maybe flipped, maybe cut short), so decoding gets past the
/// checksum.
pub fn frame_decoder(data: &[u8]) {
    let mut inp = Input::new(data);
    let seed = inp.byte();
    let methods = methods_from_mask(inp.byte());
    let max_frame_len = 1 + usize::from(inp.u16()) * 4;
    let limits = CodecLimits {
        max_frame_len,
        max_decompressed_len: 1 << 20,
    };
    let built;
    let stream: &[u8] = if seed & 0x80 == 0 {
        inp.rest()
    } else {
        let mut s = Vec::new();
        let protocol = rs2p::Protocol::default().id().as_bytes().to_vec();
        for _ in 0..1 + inp.byte() % 6 {
            let msg = structured(&mut inp, NOW, &protocol, &[]);
            let method = methods.get(usize::from(inp.byte() % 8)).copied();
            let (_, body) = msg.encode_body(method);
            s.extend_from_slice(&(body.len() as u32).to_be_bytes());
            s.extend_from_slice(&body);
        }
        match inp.byte() % 8 {
            0 if !s.is_empty() => {
                let i = usize::from(inp.u16()) % s.len();
                s[i] ^= 1 << (inp.byte() % 8);
            }
            1 => {
                let keep = usize::from(inp.u16()) % (s.len() + 1);
                s.truncate(keep);
            }
            _ => {}
        }
        built = s;
        &built
    };

    // One chunk, byte by byte (small streams), and pseudo-random chunks:
    // the same frames, the same error, the same leftovers.
    let whole = split(std::iter::once(stream), max_frame_len);
    if stream.len() <= 4096 {
        let bytes = split(stream.chunks(1), max_frame_len);
        assert_eq!(whole, bytes, "byte-by-byte split differs");
    }
    let mut sizes = Vec::new();
    let mut x = u32::from(seed) | 1;
    let mut left = stream.len();
    while left > 0 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let n = 1 + (x >> 16) as usize % 97;
        sizes.push(n.min(left));
        left -= n.min(left);
    }
    let mut at = 0;
    let chunks = sizes.iter().map(|&n| {
        let c = &stream[at..at + n];
        at += n;
        c
    });
    let chunked = split(chunks, max_frame_len);
    assert_eq!(whole, chunked, "chunked split differs");

    for body in &whole.frames {
        if let Ok(d) = decode_body(body, &methods, &limits) {
            assert!(!d.message.payload.is_empty());
            let packed = d.message.pack();
            let again = InternalMessage::unpack(&packed).expect("decoded message repacks");
            assert_eq!(again.pack(), packed);
        }
        message_layer(body);
        if body.len() > 32 {
            message_layer(&body[32..]);
        }
        if body.len() <= 2048 {
            for &m in &methods {
                let c = compression::compress(m, body);
                let d = compression::decompress(m, &c, 1 << 20).expect("own compression");
                assert_eq!(&d, body, "{m:?} does not round-trip");
            }
        }
    }
    // The whole stream as one body too (no framing).
    if stream.len() <= max_frame_len {
        let _ = decode_body(stream, &methods, &limits);
    }
}
