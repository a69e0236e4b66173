//! Text that is safe to print: anything that came from the network (keys,
//! values, node ids) may hold terminal escape sequences, so nothing is
//! printed raw unless it is plain text.
//!
//! - JSON output escapes every control character, C1 controls and DEL
//!   included (serde_json leaves those two raw), and the Unicode bidi
//!   controls that reorder what a terminal shows.
//! - Plain output prints a str as is only when it is plain: not empty, no
//!   leading or trailing space, no such character, and not itself JSON;
//!   otherwise in its JSON form (`"…\u001b…"`). So a value prints as
//!   `set` reads it back.

use rs2p::protocol::Packet;
use rs2p::PeerId;
use serde_json::Value;

use super::super::json::{packet_from_json, packet_to_json};

/// Whether a character must not reach a terminal raw: control characters
/// (C0, DEL, C1) and the bidi controls.
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// A JSON value as one line of text with every unsafe character escaped.
pub fn json_text(value: &Value) -> String {
    let raw = value.to_string();
    if !raw.contains(is_unsafe_char) {
        return raw;
    }
    // serde_json escapes C0 controls; the others can only be inside
    // strings (JSON outside strings is plain ASCII), where `\uXXXX` means
    // the same character.
    escape_unsafe(&raw)
}

/// Whether plain output must show `text` in its JSON form.
pub fn needs_quoting(text: &str) -> bool {
    text.is_empty()
        || text.starts_with(char::is_whitespace)
        || text.ends_with(char::is_whitespace)
        || text.contains(is_unsafe_char)
        || serde_json::from_str::<Value>(text).is_ok()
}

/// Text from the network for a person: as is when plain, else quoted.
pub fn safe_text(text: &str) -> String {
    if text.contains(is_unsafe_char) {
        json_text(&Value::String(text.to_owned()))
    } else {
        text.to_owned()
    }
}

/// `text` with each unsafe character written as `\uXXXX`, for messages
/// that quote it among other words.
pub fn escape_unsafe(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if is_unsafe_char(c) {
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// Text in double quotes, JSON-escaped: for error messages that repeat
/// what they were given.
pub fn quoted(text: &str) -> String {
    json_text(&Value::String(text.to_owned()))
}

/// The first `n` characters of a node id, safe to print.
pub fn short_id(id: &PeerId, n: usize) -> String {
    safe_text(&id.short(n))
}

/// A value for a person, as `set` reads it back: a plain str as is,
/// anything else as JSON.
pub fn value_to_text(value: &Packet) -> String {
    match value {
        Packet::Str(s) if !needs_quoting(s) => s.clone(),
        other => json_text(&packet_to_json(other)),
    }
}

/// A value typed in plain mode: JSON if it parses as JSON, else the text
/// itself as a str.
pub fn value_from_text(text: &str) -> Result<Packet, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("missing value".to_owned());
    }
    match serde_json::from_str::<Value>(text) {
        Ok(json) => packet_from_json(&json, "value").map_err(|e| e.to_string()),
        Err(_) => Ok(Packet::Str(text.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_lines_escape_what_terminals_obey() {
        let v = json!({"k": "a\u{1b}[31m\u{9b}2J\u{7f}\u{202e}z", "n": 1});
        let text = json_text(&v);
        assert!(text.is_ascii(), "{text}");
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{7f}'),
            "{text}"
        );
        assert!(
            text.contains("\\u001b") && text.contains("\\u009b"),
            "{text}"
        );
        assert!(
            text.contains("\\u007f") && text.contains("\\u202e"),
            "{text}"
        );
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, v);
        // Ordinary text stays as it is.
        assert_eq!(json_text(&json!("héllo ✓")), "\"héllo ✓\"");
    }

    #[test]
    fn values_print_as_set_reads_them() {
        for value in [
            Packet::from("blue"),
            Packet::from("blue sky"),
            Packet::from("42"),
            Packet::from("true"),
            Packet::from("\"quoted\""),
            Packet::from(" padded "),
            Packet::from("bell\u{7}"),
            Packet::from("{not json"),
            Packet::from(42),
            Packet::from(1.5),
            Packet::Bool(false),
            Packet::bin(vec![0, 1]),
            Packet::Map(vec![("a".into(), Packet::Array(vec![1.into()]))]),
        ] {
            let text = value_to_text(&value);
            assert!(!text.contains(is_unsafe_char), "{text}");
            assert_eq!(value_from_text(&text).unwrap(), value, "{text}");
        }
        assert_eq!(value_to_text(&Packet::from("blue sky")), "blue sky");
        assert_eq!(value_to_text(&Packet::from("42")), "\"42\"");
        assert_eq!(
            value_from_text("  hello world ").unwrap(),
            "hello world".into()
        );
        assert!(value_from_text(" ").is_err());
        assert!(value_from_text("{\"$bin\":\"0z\"}").is_err());
    }

    #[test]
    fn ids_and_text() {
        assert_eq!(safe_text("plain id"), "plain id");
        assert_eq!(
            safe_text("\u{1b}]0;pwned\u{7}"),
            "\"\\u001b]0;pwned\\u0007\""
        );
        assert_eq!(short_id(&PeerId::from("abcdefghij"), 4), "abcd");
    }
}
