//! Property tests: round trips for random packets under every compression,
//! and no panic on random bytes, truncations and bit flips.

use proptest::prelude::*;
use rs2p::protocol::{
    decode_frame, msgpack, CodecLimits, Compression, FrameDecoder, IdWire, InternalMessage,
    MainFlag, PeerId,
};
use rs2p::Packet;

fn leaf() -> impl Strategy<Value = Packet> {
    prop_oneof![
        Just(Packet::Nil),
        any::<bool>().prop_map(Packet::from),
        any::<i64>().prop_map(Packet::from),
        any::<u64>().prop_map(Packet::from),
        (-40i64..300).prop_map(Packet::from),
        any::<f64>()
            .prop_filter("NaN is not equal to itself", |x| !x.is_nan())
            .prop_map(Packet::from),
        ".{0,40}".prop_map(Packet::from),
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(Packet::bin),
    ]
}

fn packet() -> impl Strategy<Value = Packet> {
    leaf().prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..20).prop_map(Packet::Array),
            proptest::collection::vec((".{0,8}".prop_map(Packet::from), inner), 0..6)
                .prop_map(Packet::Map),
        ]
    })
}

fn method() -> impl Strategy<Value = Option<Compression>> {
    prop_oneof![
        Just(None),
        Just(Some(Compression::Snappy)),
        Just(Some(Compression::Zlib)),
        Just(Some(Compression::Gzip)),
        Just(Some(Compression::Bz2)),
        Just(Some(Compression::Lzma)),
    ]
}

fn message() -> impl Strategy<Value = InternalMessage> {
    (
        prop_oneof![
            Just(MainFlag::Broadcast),
            Just(MainFlag::Whisper),
            Just(MainFlag::Renegotiate)
        ],
        "[1-9A-Za-z]{1,66}",
        any::<bool>(),
        any::<u32>(),
        proptest::collection::vec(packet(), 0..6),
    )
        .prop_map(|(flag, id, str_id, time, mut payload)| {
            payload.insert(0, Packet::from(0));
            let wire = if str_id { IdWire::Str } else { IdWire::Bin };
            InternalMessage::new(
                flag,
                PeerId::new(id.into_bytes(), wire),
                u64::from(time),
                payload,
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn msgpack_round_trips(p in packet()) {
        let mut bytes = Vec::new();
        msgpack::encode(&p, &mut bytes);
        prop_assert_eq!(msgpack::decode(&bytes).unwrap(), p);
    }

    #[test]
    fn frames_round_trip(msg in message(), m in method()) {
        let limits = CodecLimits::default();
        let frame = msg.encode_frame(m, &limits).unwrap();
        let decoded = decode_frame(&frame, &Compression::ALL, &limits).unwrap();
        prop_assert_eq!(decoded.id, msg.id());
        prop_assert_eq!(decoded.message.sender.wire(), msg.sender.wire());
        prop_assert_eq!(decoded.message, msg);
    }

    #[test]
    fn decoder_survives_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let limits = CodecLimits::default();
        let _ = decode_frame(&bytes, &Compression::ALL, &limits);
        let _ = msgpack::decode(&bytes);
        let mut splitter = FrameDecoder::new(1024);
        splitter.feed(&bytes);
        while let Ok(Some(frame)) = splitter.next_frame() {
            let _ = rs2p::protocol::decode_body(frame.body(), &Compression::ALL, &limits);
        }
    }

    #[test]
    fn bit_flips_and_truncations_are_errors_or_valid(msg in message(), m in method(), flip in any::<usize>(), cut in any::<usize>()) {
        let limits = CodecLimits::default();
        let frame = msg.encode_frame(m, &limits).unwrap().to_vec();
        let cut = cut % frame.len();
        prop_assert!(decode_frame(&frame[..cut], &Compression::ALL, &limits).is_err());
        let mut flipped = frame.clone();
        let bit = flip % (flipped.len() * 8);
        flipped[bit / 8] ^= 1 << (bit % 8);
        // A flip may land somewhere harmless (a gzip header's OS byte, say);
        // then the decoded message must still be the original one.
        if let Ok(decoded) = decode_frame(&flipped, &Compression::ALL, &limits) {
            prop_assert_eq!(decoded.message, msg);
        }
    }

    #[test]
    fn splitter_yields_the_same_frames_for_any_chunking(
        msgs in proptest::collection::vec(message(), 1..5),
        chunk in 1usize..50,
    ) {
        let limits = CodecLimits::default();
        let mut stream = Vec::new();
        let mut expected = Vec::new();
        for msg in &msgs {
            let frame = msg.encode_frame(None, &limits).unwrap();
            expected.push(frame.clone());
            stream.extend_from_slice(&frame);
        }
        let mut splitter = FrameDecoder::new(limits.max_frame_len);
        let mut got = Vec::new();
        for piece in stream.chunks(chunk) {
            splitter.feed(piece);
            while let Some(frame) = splitter.next_frame().unwrap() {
                got.push(frame.raw().clone());
            }
        }
        prop_assert!(splitter.finish().is_ok());
        prop_assert_eq!(got, expected);
    }
}
