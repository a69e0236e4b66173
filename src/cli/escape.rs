//! Text from the network, made safe to print. Peers choose what they send:
//! a raw escape sequence could clear the screen or retitle the window, a
//! NUL or `\r` could hide text, a newline could forge a whole line of
//! output (`-- X joined`, `<id>: …`). Everything the command line prints
//! that came from a peer goes through here first.
//!
//! Escaped: every C0 control (`\n`, `\r`, `\t`, `\u001b`, …), DEL, every C1
//! control (U+0080–U+009F, which some terminals obey as 8-bit escapes), the
//! line and paragraph separators, and the Unicode direction controls
//! (which can make a line read differently from what it contains). The
//! escapes are JSON's, so JSON output stays valid JSON.

use serde_json::Value;

/// Whether `c` must be escaped beyond what JSON escapes by itself (which
/// is `"`, `\` and U+0000–U+001F).
fn beyond_json(c: char) -> bool {
    matches!(
        c,
        '\u{7f}'..='\u{9f}'
            | '\u{061c}'
            | '\u{200e}'
            | '\u{200f}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}'
    )
}

/// Whether `c` is escaped by [`inline`] and inside JSON strings.
fn escaped(c: char) -> bool {
    c < ' ' || c == '\\' || beyond_json(c)
}

/// Appends `c`'s escape.
fn push_escape(out: &mut String, c: char) {
    match c {
        '\\' => out.push_str("\\\\"),
        '"' => out.push_str("\\\""),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\u{8}' => out.push_str("\\b"),
        '\u{c}' => out.push_str("\\f"),
        c => out.push_str(&format!("\\u{:04x}", u32::from(c))),
    }
}

fn push_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        if escaped(c) || c == '"' {
            push_escape(out, c);
        } else {
            out.push(c);
        }
    }
    out.push('"');
}

fn push_json(out: &mut String, value: &Value) {
    match value {
        Value::String(s) => push_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_json(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_string(out, key);
                out.push(':');
                push_json(out, item);
            }
            out.push('}');
        }
        // null, booleans and numbers hold no text.
        other => out.push_str(&other.to_string()),
    }
}

/// `value` as one line of compact JSON that is safe on a terminal.
pub fn json(value: &Value) -> String {
    let mut out = String::new();
    push_json(&mut out, value);
    out
}

/// `text` as a quoted JSON string that is safe on a terminal.
pub fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    push_string(&mut out, text);
    out
}

/// `text` without quotes, its dangerous characters (and `\`) escaped as in
/// JSON: for ids, addresses and reasons inside a human line.
pub fn inline(text: &str) -> String {
    if !text.chars().any(escaped) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if escaped(c) {
            push_escape(&mut out, c);
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn controls_are_escaped() {
        let nasty = "a\u{1b}[2J\u{0}b\r\nc\u{7f}\u{9b}\u{202e}d\u{2028}";
        let q = quote(nasty);
        assert_eq!(q, r#""a\u001b[2J\u0000b\r\nc\u007f\u009b\u202ed\u2028""#);
        assert!(q.chars().all(|c| !c.is_control() && !beyond_json(c)), "{q}");
        // Still JSON, and the same text.
        let back: String = serde_json::from_str(&q).unwrap();
        assert_eq!(back, nasty);
        let i = inline(nasty);
        assert_eq!(i, r"a\u001b[2J\u0000b\r\nc\u007f\u009b\u202ed\u2028");
        assert!(!i.chars().any(|c| c.is_control()));
        assert_eq!(inline(r"back\slash"), r"back\\slash");
        assert_eq!(inline("plain é 中"), "plain é 中");
    }

    #[test]
    fn json_is_compact_and_valid() {
        let v = json!({"k": ["x\u{1b}y", 1, 2.5, null], "\u{85}": true});
        let text = json(&v);
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{85}'),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), v);
        assert_eq!(json(&json!([1, "a"])), r#"[1,"a"]"#);
    }
}
