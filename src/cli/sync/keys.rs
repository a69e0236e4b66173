//! Keys of the replicated dictionary on the command line, in JSON and in
//! plain text.
//!
//! | JSON                | key                                         |
//! |---------------------|---------------------------------------------|
//! | `"k"`               | bin, the UTF-8 bytes of the text (as py2p)  |
//! | `{"$str":"k"}`      | str                                         |
//! | `{"$bin":"6b"}`     | bin, these bytes                            |
//!
//! Keys print the same way: a bin key whose bytes are UTF-8 as a plain
//! JSON string, other bin keys as `{"$bin":…}`, str keys as `{"$str":…}`.
//! In plain mode a key is a word (a bin key, as a JSON string would be),
//! or any of the JSON forms above, which allows spaces and str keys.

use bytes::Bytes;
use rs2p::protocol::sync::SyncKey;
use serde_json::{Map, Value};

use super::super::json::{decode_hex, encode_hex};
use super::text::{is_unsafe_char, json_text};

/// What a key may look like, for error messages.
pub const KEY_FORMS: &str =
    "a key is a JSON string (a bin key of its UTF-8 bytes), {\"$str\":\"k\"} or {\"$bin\":\"<hex>\"}";

/// Reads a key from JSON.
pub fn key_from_json(value: &Value) -> Result<SyncKey, String> {
    match value {
        Value::String(s) => Ok(SyncKey::from(s.as_str())),
        Value::Object(map) if map.len() == 1 => {
            let (form, inner) = map.iter().next().expect("one entry");
            match (form.as_str(), inner) {
                ("$str", Value::String(s)) => Ok(SyncKey::text(s.as_str())),
                ("$bin", Value::String(hex)) => decode_hex(hex)
                    .map(|b| SyncKey::Bin(Bytes::from(b)))
                    .map_err(|e| format!("key {{\"$bin\":…}}: {e}")),
                _ => Err(KEY_FORMS.to_owned()),
            }
        }
        _ => Err(KEY_FORMS.to_owned()),
    }
}

/// The JSON form of a key.
pub fn key_to_json(key: &SyncKey) -> Value {
    let tagged = |form: &str, text: String| {
        let mut map = Map::new();
        map.insert(form.to_owned(), Value::String(text));
        Value::Object(map)
    };
    match key {
        SyncKey::Bin(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => Value::String(text.to_owned()),
            Err(_) => tagged("$bin", encode_hex(bytes)),
        },
        SyncKey::Str(text) => tagged("$str", text.clone()),
    }
}

/// Reads a key at the start of `text` (plain mode): a word, or a JSON
/// string or object when it starts with `"` or `{`. Returns the key and
/// the rest of the text after it.
pub fn key_from_text(text: &str) -> Result<(SyncKey, &str), String> {
    let text = text.trim_start();
    if text.is_empty() {
        return Err("missing key".to_owned());
    }
    if text.starts_with('"') || text.starts_with('{') {
        let mut values = serde_json::Deserializer::from_str(text).into_iter::<Value>();
        let value = match values.next() {
            Some(Ok(v)) => v,
            Some(Err(e)) => return Err(format!("the key is not valid JSON: {e}")),
            None => return Err("missing key".to_owned()),
        };
        let rest = &text[values.byte_offset()..];
        if !rest.is_empty() && !rest.starts_with(char::is_whitespace) {
            return Err("a space must follow the key".to_owned());
        }
        return Ok((key_from_json(&value)?, rest));
    }
    let end = text.find(char::is_whitespace).unwrap_or(text.len());
    Ok((SyncKey::from(&text[..end]), &text[end..]))
}

/// A key for a person, as plain mode reads it back: a bin key that is one
/// word of plain UTF-8 text as is; anything else in its JSON form (which
/// escapes control characters).
pub fn key_to_text(key: &SyncKey) -> String {
    if let SyncKey::Bin(bytes) = key {
        if let Ok(text) = std::str::from_utf8(bytes) {
            let word = !text.is_empty()
                && !text.starts_with(['"', '{'])
                && !text.contains(|c: char| c.is_whitespace() || is_unsafe_char(c));
            if word {
                return text.to_owned();
            }
        }
    }
    json_text(&key_to_json(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_forms() {
        assert_eq!(key_from_json(&json!("k")).unwrap(), SyncKey::from("k"));
        assert_eq!(
            key_from_json(&json!({"$str": "k"})).unwrap(),
            SyncKey::text("k")
        );
        assert_eq!(
            key_from_json(&json!({"$bin": "00ff"})).unwrap(),
            SyncKey::from(&[0u8, 0xff][..])
        );
        for bad in [
            json!(1),
            json!(null),
            json!([]),
            json!({"$bin": "0"}),
            json!({"$str": 1}),
            json!({"a": "b"}),
            json!({"$str": "a", "$bin": "00"}),
        ] {
            assert!(key_from_json(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn printed_as_read() {
        for key in [
            SyncKey::from("k"),
            SyncKey::from("with space"),
            SyncKey::from(""),
            SyncKey::text("k"),
            SyncKey::from(&[0xffu8, 0][..]),
        ] {
            assert_eq!(key_from_json(&key_to_json(&key)).unwrap(), key);
            let text = key_to_text(&key);
            let (back, rest) = key_from_text(&text).unwrap();
            assert_eq!((back, rest), (key.clone(), ""), "{text}");
        }
        assert_eq!(key_to_json(&SyncKey::from("k")), json!("k"));
        assert_eq!(key_to_json(&SyncKey::text("k")), json!({"$str": "k"}));
        assert_eq!(
            key_to_json(&SyncKey::from(&[0xffu8][..])),
            json!({"$bin": "ff"})
        );
        assert_eq!(key_to_text(&SyncKey::from("plain")), "plain");
        assert_eq!(key_to_text(&SyncKey::from("a b")), "\"a b\"");
        assert_eq!(key_to_text(&SyncKey::from("\u{1b}[2J")), "\"\\u001b[2J\"");
    }

    #[test]
    fn plain_keys() {
        assert_eq!(
            key_from_text("  color blue sky").unwrap(),
            (SyncKey::from("color"), " blue sky")
        );
        assert_eq!(
            key_from_text("\"my key\" 1").unwrap(),
            (SyncKey::from("my key"), " 1")
        );
        assert_eq!(
            key_from_text("{\"$str\":\"k\"}").unwrap(),
            (SyncKey::text("k"), "")
        );
        assert!(key_from_text("").is_err());
        assert!(key_from_text("   ").is_err());
        assert!(key_from_text("\"open").is_err());
        assert!(key_from_text("\"a\"b").is_err());
        assert!(key_from_text("{\"x\":1}").is_err());
    }
}
