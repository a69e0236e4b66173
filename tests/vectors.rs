//! The codec reproduces every vector that py2p 0.7.878 itself produced
//! (`../shared/vectors/py2p-0.7.json`, read at test time).

mod support;

use rs2p::protocol::{
    base58, decode_frame, msgpack, py2p_addr_text, CodecLimits, Compression, PeerId, Protocol,
};
use serde_json::Value;
use support::{shared_dir, unhex};

fn vectors() -> Value {
    let path = shared_dir().join("vectors/py2p-0.7.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read the py2p vectors at {}: {e}", path.display()));
    serde_json::from_str(&text).expect("vectors are JSON")
}

fn list<'a>(v: &'a Value, key: &str) -> &'a Vec<Value> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("no list `{key}`"))
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("no string `{key}`"))
}

#[test]
fn protocol_ids() {
    let v = vectors();
    let cases = list(&v, "protocol_ids");
    assert!(cases.len() >= 8);
    for case in cases {
        let p = Protocol::new(s(case, "subnet"), s(case, "encryption"));
        assert_eq!(p.id(), s(case, "id"), "{case}");
    }
}

#[test]
fn node_ids() {
    let v = vectors();
    let cases = list(&v, "node_ids");
    assert!(!cases.is_empty());
    for case in cases {
        let host = case["out_addr"][0].as_str().unwrap();
        let port = case["out_addr"][1].as_u64().unwrap() as u16;
        let proto = Protocol::new(s(case, "subnet"), s(case, "encryption"));
        let text = py2p_addr_text(host, port);
        let salt = s(case, "user_salt");
        assert_eq!(
            format!("{text}{}{salt}", proto.id()),
            s(case, "hashed_input_utf8")
        );
        let id = PeerId::derive(&text, proto.id(), salt);
        assert_eq!(id.to_string(), s(case, "id"));
    }
}

/// Decimal text to big-endian bytes (the vectors hold up to 2^256-1).
fn decimal_to_be_bytes(decimal: &str) -> Vec<u8> {
    let mut be: Vec<u8> = Vec::new();
    for digit in decimal.bytes() {
        let mut carry = u32::from(digit - b'0');
        for byte in be.iter_mut().rev() {
            let acc = u32::from(*byte) * 10 + carry;
            *byte = (acc & 0xff) as u8;
            carry = acc >> 8;
        }
        while carry > 0 {
            be.insert(0, (carry & 0xff) as u8);
            carry >>= 8;
        }
    }
    be
}

#[test]
fn base58_values() {
    let v = vectors();
    let cases = list(&v, "base58");
    assert!(cases.len() >= 7);
    for case in cases {
        let bytes = decimal_to_be_bytes(s(case, "int"));
        assert_eq!(base58::encode_be_bytes(&bytes), s(case, "b58"), "{case}");
        let back = base58::decode_to_be_bytes(s(case, "b58")).unwrap();
        let mut expected = bytes.clone();
        while expected.first() == Some(&0) {
            expected.remove(0);
        }
        assert_eq!(back, expected);
    }
}

fn methods_of(case: &Value) -> Vec<Compression> {
    match case["compression"].as_u64() {
        None => vec![],
        Some(m) => vec![Compression::from_u8(m as u8).expect("known method")],
    }
}

#[test]
fn every_frame_decodes_to_its_packets_and_id() {
    let v = vectors();
    let frames = list(&v, "frames");
    assert_eq!(frames.len(), 54);
    let limits = CodecLimits::default();
    for case in frames {
        let name = format!("{} / {:?}", s(case, "name"), case["compression"]);
        let frame = unhex(s(case, "frame_hex"));
        let packed = unhex(s(case, "msgpack_hex"));
        let decoded = decode_frame(&frame, &methods_of(case), &limits)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            support::hex(&decoded.id),
            s(case, "message_id_hex"),
            "{name}"
        );
        assert_eq!(
            decoded.compression,
            methods_of(case).first().copied(),
            "{name}"
        );
        assert_eq!(
            decoded.message.msg_type.as_u8() as u64,
            case["msg_type"].as_u64().unwrap()
        );
        assert_eq!(
            decoded.message.time,
            case["time"].as_u64().unwrap(),
            "{name}"
        );
        // Our packing of what we decoded is exactly py2p's packing.
        assert_eq!(decoded.message.pack(), packed, "{name}");
        // And the generic decoder agrees on the packet list.
        let generic = msgpack::decode(&packed).unwrap();
        let items = generic.as_array().unwrap();
        assert_eq!(&items[3..], &decoded.message.payload[..], "{name}");
        // All methods advertised: still decodes to the same message.
        let any = decode_frame(&frame, &Compression::ALL, &limits).unwrap();
        assert_eq!(any.message, decoded.message, "{name}");
    }
}

#[test]
fn uncompressed_frames_re_encode_byte_for_byte() {
    let v = vectors();
    let limits = CodecLimits::default();
    let mut count = 0;
    for case in list(&v, "frames") {
        if !case["compression"].is_null() {
            continue;
        }
        let frame = unhex(s(case, "frame_hex"));
        let decoded = decode_frame(&frame, &[], &limits).unwrap();
        let again = decoded.message.encode_frame(None, &limits).unwrap();
        assert_eq!(&again[..], &frame[..], "{}", s(case, "name"));
        let packed = unhex(s(case, "msgpack_hex"));
        let mut reencoded = Vec::new();
        msgpack::encode(&msgpack::decode(&packed).unwrap(), &mut reencoded);
        assert_eq!(reencoded, packed);
        count += 1;
    }
    assert_eq!(count, 9);
}

#[test]
fn compressed_frames_re_encode_to_the_same_content() {
    let v = vectors();
    let limits = CodecLimits::default();
    for case in list(&v, "frames") {
        let Some(&method) = methods_of(case).first() else {
            continue;
        };
        let frame = unhex(s(case, "frame_hex"));
        let decoded = decode_frame(&frame, &[method], &limits).unwrap();
        let ours = decoded.message.encode_frame(Some(method), &limits).unwrap();
        let back = decode_frame(&ours, &[method], &limits).unwrap();
        assert_eq!(back.id, decoded.id);
        assert_eq!(back.compression, Some(method));
    }
}
