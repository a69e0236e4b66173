//! The JSON form of packets used by `rs2p node --json`.
//!
//! | JSON                                 | msgpack packet          |
//! |--------------------------------------|-------------------------|
//! | string                               | str                     |
//! | integer (fits i64 or u64)            | int                     |
//! | any other number                     | float                   |
//! | `true` / `false`, `null`             | bool, nil               |
//! | array                                | array                   |
//! | object                               | map with str keys       |
//! | `{"$bin":"<hex>"}`                   | bin                     |
//! | `{"$float":"nan"\|"inf"\|"-inf"}`    | a float JSON can't hold |
//! | `{"$ext":{"type":N,"data":"<hex>"}}` | ext                     |
//!
//! An object is one of the `$` forms only when that is its single key;
//! any other object is a map. Printing a map whose keys are not str uses
//! each key's JSON text as the object key (int `1` becomes `"1"`).
//!
//! A number written without a fraction or exponent is an int, and must fit
//! in 64 bits (i64 or u64, as msgpack's); a longer one is refused
//! ([`check_int_literals`]) rather than silently turned into a float. A
//! number written with a fraction or exponent (`1.0`, `1e3`) is a float.

use std::fmt;

use rs2p::Packet;
use serde_json::{Map, Number, Value};

/// Why a JSON value is not a packet; `path` says where (`packets[2].$bin`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketError {
    pub path: String,
    pub reason: String,
}

impl fmt::Display for PacketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.reason)
    }
}

impl std::error::Error for PacketError {}

fn err(path: &str, reason: impl Into<String>) -> PacketError {
    PacketError {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// Reads a JSON array of packets; `path` names it in errors.
pub fn packets_from_json(value: &Value, path: &str) -> Result<Vec<Packet>, PacketError> {
    let items = value
        .as_array()
        .ok_or_else(|| err(path, "expected an array of packets"))?;
    items
        .iter()
        .enumerate()
        .map(|(i, v)| packet_from_json(v, &format!("{path}[{i}]")))
        .collect()
}

/// Reads one packet; `path` names it in errors.
pub fn packet_from_json(value: &Value, path: &str) -> Result<Packet, PacketError> {
    Ok(match value {
        Value::Null => Packet::Nil,
        Value::Bool(b) => Packet::Bool(*b),
        Value::Number(n) => number_to_packet(n),
        Value::String(s) => Packet::Str(s.clone()),
        Value::Array(items) => Packet::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| packet_from_json(v, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => {
            if map.len() == 1 {
                let (key, inner) = map.iter().next().expect("one entry");
                let inner_path = format!("{path}.{key}");
                match key.as_str() {
                    "$bin" => return bin_from_json(inner, &inner_path),
                    "$float" => return special_float(inner, &inner_path),
                    "$ext" => return ext_from_json(inner, &inner_path),
                    _ => {}
                }
            }
            Packet::Map(
                map.iter()
                    .map(|(k, v)| {
                        Ok((
                            Packet::Str(k.clone()),
                            packet_from_json(v, &format!("{path}.{k}"))?,
                        ))
                    })
                    .collect::<Result<_, _>>()?,
            )
        }
    })
}

fn number_to_packet(n: &Number) -> Packet {
    if let Some(i) = n.as_i64() {
        Packet::from(i)
    } else if let Some(u) = n.as_u64() {
        Packet::from(u)
    } else {
        // Without serde_json's arbitrary precision every other number is an f64.
        Packet::Float(n.as_f64().unwrap_or(f64::NAN))
    }
}

fn bin_from_json(value: &Value, path: &str) -> Result<Packet, PacketError> {
    let text = value
        .as_str()
        .ok_or_else(|| err(path, "expected a string of hex digits"))?;
    Ok(Packet::bin(decode_hex(text).map_err(|r| err(path, r))?))
}

fn special_float(value: &Value, path: &str) -> Result<Packet, PacketError> {
    match value.as_str() {
        Some("nan") => Ok(Packet::Float(f64::NAN)),
        Some("inf") => Ok(Packet::Float(f64::INFINITY)),
        Some("-inf") => Ok(Packet::Float(f64::NEG_INFINITY)),
        _ => Err(err(path, "expected \"nan\", \"inf\" or \"-inf\"")),
    }
}

fn ext_from_json(value: &Value, path: &str) -> Result<Packet, PacketError> {
    let obj = value
        .as_object()
        .ok_or_else(|| err(path, "expected {\"type\":N,\"data\":\"<hex>\"}"))?;
    let kind = obj
        .get("type")
        .and_then(Value::as_i64)
        .and_then(|t| i8::try_from(t).ok())
        .ok_or_else(|| {
            err(
                &format!("{path}.type"),
                "expected an integer from -128 to 127",
            )
        })?;
    let data = obj
        .get("data")
        .and_then(Value::as_str)
        .ok_or_else(|| err(&format!("{path}.data"), "expected a string of hex digits"))?;
    let data = decode_hex(data).map_err(|r| err(&format!("{path}.data"), r))?;
    Ok(Packet::Ext(kind, data.into()))
}

/// Refuses JSON text holding an integer literal (a number without a
/// fraction or exponent, outside strings) that fits neither i64 nor u64:
/// parsed as is, it would silently become a float.
///
/// # Errors
/// A sentence naming the first such literal.
pub fn check_int_literals(text: &str) -> Result<(), String> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                // Skip the string, escapes included.
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < bytes.len()
                    && matches!(bytes[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    i += 1;
                }
                let token = &text[start..i];
                let is_int = !token.contains(['.', 'e', 'E']);
                if is_int && token.parse::<i64>().is_err() && token.parse::<u64>().is_err() {
                    let shown = if token.len() > 40 {
                        format!("{}… ({} digits)", &token[..40], token.len())
                    } else {
                        token.to_owned()
                    };
                    return Err(format!(
                        "integer {shown} does not fit in 64 bits (msgpack ints are \
                         {} to {}): send it as a str, or write it with a fraction or \
                         exponent (such as {}.0) to send a float",
                        i64::MIN,
                        u64::MAX,
                        if token.len() > 40 { "1e40" } else { token }
                    ));
                }
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// Writes a packet as JSON.
pub fn packet_to_json(packet: &Packet) -> Value {
    match packet {
        Packet::Nil => Value::Null,
        Packet::Bool(b) => Value::Bool(*b),
        Packet::Int(i) => match (i.as_i64(), i.as_u64()) {
            (Some(v), _) => Value::from(v),
            (None, Some(v)) => Value::from(v),
            // msgpack ints always fit one of the two; keep the value anyway.
            (None, None) => Value::String(i.to_string()),
        },
        Packet::Float(f) => match Number::from_f64(*f) {
            Some(n) => Value::Number(n),
            None => {
                let name = if f.is_nan() {
                    "nan"
                } else if *f > 0.0 {
                    "inf"
                } else {
                    "-inf"
                };
                tagged("$float", Value::from(name))
            }
        },
        Packet::Str(s) => Value::String(s.clone()),
        Packet::Bin(b) => tagged("$bin", Value::String(encode_hex(b))),
        Packet::Array(items) => Value::Array(items.iter().map(packet_to_json).collect()),
        Packet::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|(k, v)| {
                    let key = match k {
                        Packet::Str(s) => s.clone(),
                        other => packet_to_json(other).to_string(),
                    };
                    (key, packet_to_json(v))
                })
                .collect(),
        ),
        Packet::Ext(kind, data) => {
            let mut inner = Map::new();
            inner.insert("type".into(), Value::from(*kind));
            inner.insert("data".into(), Value::String(encode_hex(data)));
            tagged("$ext", Value::Object(inner))
        }
    }
}

/// Writes packets as a JSON array.
pub fn packets_to_json(packets: &[Packet]) -> Value {
    Value::Array(packets.iter().map(packet_to_json).collect())
}

fn tagged(key: &str, value: Value) -> Value {
    let mut map = Map::new();
    map.insert(key.to_owned(), value);
    Value::Object(map)
}

/// Lowercase hex.
pub fn encode_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    s
}

/// Hex of either case; an even number of digits.
pub fn decode_hex(text: &str) -> Result<Vec<u8>, String> {
    if !text.len().is_multiple_of(2) {
        return Err(format!(
            "hex needs an even number of digits, got {}",
            text.len()
        ));
    }
    let digit = |c: u8, at: usize| -> Result<u8, String> {
        match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            b'A'..=b'F' => Ok(c - b'A' + 10),
            _ => Err(format!(
                "{:?} at offset {at} is not a hex digit",
                text[at..].chars().next().unwrap_or('?')
            )),
        }
    };
    let raw = text.as_bytes();
    (0..raw.len())
        .step_by(2)
        .map(|i| Ok((digit(raw[i], i)? << 4) | digit(raw[i + 1], i + 1)?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn round_trip(v: Value) {
        let p = packet_from_json(&v, "p").unwrap();
        assert_eq!(packet_to_json(&p), v, "through {p:?}");
    }

    #[test]
    fn scalars_map_to_their_packets() {
        let v = json!(["hi", 42, -7, 18446744073709551615u64, 1.5, 1.0, true, null]);
        let p = packets_from_json(&v, "packets").unwrap();
        assert_eq!(
            p,
            vec![
                Packet::from("hi"),
                Packet::from(42),
                Packet::from(-7),
                Packet::from(u64::MAX),
                Packet::Float(1.5),
                Packet::Float(1.0),
                Packet::Bool(true),
                Packet::Nil,
            ]
        );
        assert_eq!(packets_to_json(&p), v);
    }

    #[test]
    fn round_trips() {
        round_trip(json!("text"));
        round_trip(json!(0));
        round_trip(json!(i64::MIN));
        round_trip(json!(-0.25));
        round_trip(json!([]));
        round_trip(json!({}));
        round_trip(json!({"a": 1, "b": [true, null]}));
    }

    #[test]
    fn bin() {
        let p = packet_from_json(&json!({"$bin": "00ffA0"}), "p").unwrap();
        assert_eq!(p, Packet::bin(vec![0x00, 0xff, 0xa0]));
        assert_eq!(packet_to_json(&p), json!({"$bin": "00ffa0"}));
        assert_eq!(
            packet_from_json(&json!({"$bin": ""}), "p").unwrap(),
            Packet::bin(Vec::new())
        );
        // Str and bin stay apart.
        assert_ne!(
            packet_from_json(&json!("00"), "p").unwrap(),
            Packet::bin(vec![0])
        );
        // With a second key it is an ordinary map.
        let p = packet_from_json(&json!({"$bin": "00", "x": 1}), "p").unwrap();
        assert!(matches!(p, Packet::Map(ref m) if m.len() == 2));
    }

    #[test]
    fn nested() {
        let v = json!([1, [2, [3, {"$bin": "0102"}]], {"k": {"deep": [null, "s"]}}]);
        round_trip(v.clone());
        let p = packet_from_json(&v, "p").unwrap();
        let inner = &p.as_array().unwrap()[1].as_array().unwrap()[1]
            .as_array()
            .unwrap()[1];
        assert_eq!(inner, &Packet::bin(vec![1, 2]));
    }

    #[test]
    fn bad_hex_is_an_error() {
        let e = packets_from_json(&json!([1, {"$bin": "0g"}]), "packets").unwrap_err();
        assert_eq!(e.path, "packets[1].$bin");
        assert!(e.reason.contains("not a hex digit"), "{e}");
        let e = packet_from_json(&json!({"$bin": "abc"}), "p").unwrap_err();
        assert!(e.reason.contains("even"), "{e}");
        assert!(packet_from_json(&json!({"$bin": 12}), "p").is_err());
        assert!(packet_from_json(&json!({"$bin": "é0"}), "p").is_err());
        let e = packet_from_json(&json!({"$bin": "0é0"}), "p").unwrap_err();
        assert_eq!(e.reason, "'é' at offset 1 is not a hex digit");
        assert!(packets_from_json(&json!({"not": "an array"}), "packets").is_err());
    }

    #[test]
    fn non_str_keys_print_as_json_text() {
        let p = Packet::Map(vec![
            (Packet::from(1), Packet::from("one")),
            (Packet::bin(vec![0xab]), Packet::Nil),
            (Packet::from("s"), Packet::Bool(false)),
        ]);
        assert_eq!(
            packet_to_json(&p),
            json!({"1": "one", "{\"$bin\":\"ab\"}": null, "s": false})
        );
    }

    #[test]
    fn floats_json_cannot_hold_and_ext() {
        for f in [f64::INFINITY, f64::NEG_INFINITY] {
            let v = packet_to_json(&Packet::Float(f));
            assert_eq!(packet_from_json(&v, "p").unwrap(), Packet::Float(f));
        }
        let v = packet_to_json(&Packet::Float(f64::NAN));
        assert_eq!(v, json!({"$float": "nan"}));
        assert!(matches!(packet_from_json(&v, "p").unwrap(), Packet::Float(f) if f.is_nan()));
        round_trip(json!({"$ext": {"type": -3, "data": "beef"}}));
        assert!(packet_from_json(&json!({"$ext": {"type": 300, "data": ""}}), "p").is_err());
    }

    #[test]
    fn big_integers_are_refused_not_rounded() {
        assert!(check_int_literals(
            r#"{"op":"x","packets":[1,-2,18446744073709551615,-9223372036854775808]}"#
        )
        .is_ok());
        let e = check_int_literals("[18446744073709551616]").unwrap_err();
        assert!(
            e.starts_with("integer 18446744073709551616 does not fit in 64 bits"),
            "{e}"
        );
        assert!(e.contains("18446744073709551616.0"), "{e}");
        assert!(check_int_literals("[-9223372036854775809]").is_err());
        // Floats stay floats, however large; digits in strings are text.
        assert!(
            check_int_literals("[1.8446744073709552e19, 1e400, 123456789012345678901234.5]")
                .is_ok()
        );
        assert!(check_int_literals(
            r#"["123456789012345678901234567890", "\"99999999999999999999"]"#
        )
        .is_ok());
        assert!(check_int_literals(r#"{"k\\": 99999999999999999999}"#).is_err());
        let long = format!("[{}]", "9".repeat(100));
        assert!(check_int_literals(&long)
            .unwrap_err()
            .contains("(100 digits)"));
    }
}
