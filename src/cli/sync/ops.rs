//! What a line of input asks for ([`Request`]), read from a JSON object
//! (`--json`); plain mode reads the same requests from words (`plain.rs`).

use rs2p::protocol::sync::SyncKey;
use rs2p::protocol::Packet;
use serde_json::{Map, Value};

use super::super::json::packet_from_json;
use super::keys::key_from_json;

/// One operation on the dictionary or the node.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Set a key.
    Set { key: SyncKey, value: Packet },
    /// Read a key.
    Get { key: SyncKey },
    /// Delete a key.
    Delete { key: SyncKey },
    /// Merge a map into the map at a key.
    Delta { key: SyncKey, map: Packet },
    /// Set several keys, all or none.
    Update { items: Vec<(SyncKey, Packet)> },
    /// List every entry.
    Keys,
    /// Join another node.
    Connect { addr: String },
    /// Plain mode: print remote changes or not (`None` toggles).
    Watch(Option<bool>),
    /// Plain mode: the commands.
    Help,
    /// Stop.
    Quit,
}

/// A command with the name it came as and the caller's tag.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The op's name, for answers and errors.
    pub op: &'static str,
    /// Any JSON value, echoed in the answer or error.
    pub tag: Option<Value>,
    /// What to do.
    pub command: Command,
}

/// A line that asks for nothing we can do: what it was, if that much is
/// known, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct BadRequest {
    /// The op, if the line named one.
    pub op: Option<String>,
    /// The tag, if the line carried one.
    pub tag: Option<Value>,
    /// Why.
    pub error: String,
}

/// The ops, for error messages.
pub const OPS: &str = "set, get, delete, delta, update, keys, connect or quit";

/// Reads one `--json` input line.
pub fn parse_json_line(line: &str) -> Result<Request, BadRequest> {
    let bad = |op: Option<&str>, tag: Option<&Value>, error: String| BadRequest {
        op: op.map(str::to_owned),
        tag: tag.cloned(),
        error,
    };
    let value: Value = serde_json::from_str(line)
        .map_err(|e| bad(None, None, format!("input line is not JSON: {e}")))?;
    let Value::Object(obj) = value else {
        return Err(bad(
            None,
            None,
            "input line is not a JSON object like {\"op\":\"keys\"}".into(),
        ));
    };
    let tag = obj.get("tag");
    let Some(op) = obj.get("op").and_then(Value::as_str) else {
        return Err(bad(
            None,
            tag,
            format!("input object has no string \"op\" ({OPS})"),
        ));
    };
    let (name, command) = command_from_json(op, &obj).map_err(|e| match e {
        Refusal::Field(e) => bad(Some(op), tag, format!("{op}: {e}")),
        Refusal::UnknownOp(e) => bad(Some(op), tag, e),
    })?;
    Ok(Request {
        op: name,
        tag: tag.cloned(),
        command,
    })
}

/// Why an object is not a request.
enum Refusal {
    /// A field is missing or wrong (said without the op).
    Field(String),
    /// No such op (said in full).
    UnknownOp(String),
}

impl From<String> for Refusal {
    fn from(e: String) -> Self {
        Refusal::Field(e)
    }
}

impl From<&str> for Refusal {
    fn from(e: &str) -> Self {
        Refusal::Field(e.to_owned())
    }
}

fn command_from_json(
    op: &str,
    obj: &Map<String, Value>,
) -> Result<(&'static str, Command), Refusal> {
    let field = |name: &str, what: &str| {
        obj.get(name)
            .ok_or_else(|| format!("missing \"{name}\" ({what})"))
    };
    let key = || key_from_json(field("key", "the key")?);
    let packet = |name: &str, what: &str| {
        packet_from_json(field(name, what)?, name).map_err(|e| e.to_string())
    };
    Ok(match op {
        "set" => (
            "set",
            Command::Set {
                key: key()?,
                value: packet("value", "the value")?,
            },
        ),
        "get" => ("get", Command::Get { key: key()? }),
        "delete" | "del" => ("delete", Command::Delete { key: key()? }),
        "delta" => (
            "delta",
            Command::Delta {
                key: key()?,
                map: packet("map", "a JSON object to merge into the key's map")?,
            },
        ),
        "update" => ("update", Command::Update { items: items(obj)? }),
        "keys" => ("keys", Command::Keys),
        "connect" => {
            let addr = field("addr", "\"HOST:PORT\"")?
                .as_str()
                .ok_or("\"addr\" must be a string \"HOST:PORT\"")?;
            (
                "connect",
                Command::Connect {
                    addr: addr.to_owned(),
                },
            )
        }
        "quit" => ("quit", Command::Quit),
        other => {
            return Err(Refusal::UnknownOp(format!(
                "unknown op {}: expected {OPS}",
                super::text::quoted(other)
            )))
        }
    })
}

/// `"items":[[key, value], …]`, or `"map":{"key": value, …}` (bin keys).
fn items(obj: &Map<String, Value>) -> Result<Vec<(SyncKey, Packet)>, String> {
    if let Some(map) = obj.get("map") {
        let map = map
            .as_object()
            .ok_or("\"map\" must be an object of keys to values")?;
        return map
            .iter()
            .map(|(k, v)| {
                let value = packet_from_json(v, &format!("map.{k}")).map_err(|e| e.to_string())?;
                Ok((SyncKey::from(k.as_str()), value))
            })
            .collect();
    }
    let items = obj
        .get("items")
        .ok_or("missing \"items\" ([[key, value], …])")?
        .as_array()
        .ok_or("\"items\" must be an array of [key, value] pairs")?;
    items
        .iter()
        .enumerate()
        .map(|(i, pair)| match pair.as_array().map(Vec::as_slice) {
            Some([k, v]) => {
                let key = key_from_json(k).map_err(|e| format!("items[{i}][0]: {e}"))?;
                let value =
                    packet_from_json(v, &format!("items[{i}][1]")).map_err(|e| e.to_string())?;
                Ok((key, value))
            }
            _ => Err(format!("items[{i}] is not a [key, value] pair")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Request, BadRequest> {
        parse_json_line(&v.to_string())
    }

    #[test]
    fn ops_parse() {
        let r = parse(json!({"op": "set", "key": "k", "value": [1, "x"], "tag": 7})).unwrap();
        assert_eq!(r.op, "set");
        assert_eq!(r.tag, Some(json!(7)));
        assert_eq!(
            r.command,
            Command::Set {
                key: "k".into(),
                value: Packet::Array(vec![1.into(), "x".into()])
            }
        );
        let r = parse(json!({"op": "get", "key": {"$str": "k"}})).unwrap();
        assert_eq!(
            r.command,
            Command::Get {
                key: SyncKey::text("k")
            }
        );
        assert_eq!(r.tag, None);
        let r = parse(json!({"op": "update", "items": [["a", 1], [{"$bin": "00"}, 2]]})).unwrap();
        assert_eq!(
            r.command,
            Command::Update {
                items: vec![
                    ("a".into(), 1.into()),
                    (SyncKey::from(&[0u8][..]), 2.into())
                ]
            }
        );
        let r = parse(json!({"op": "update", "map": {"a": 1}})).unwrap();
        assert_eq!(
            r.command,
            Command::Update {
                items: vec![("a".into(), 1.into())]
            }
        );
        let r = parse(json!({"op": "delta", "key": "m", "map": {"x": 1}})).unwrap();
        assert!(matches!(r.command, Command::Delta { .. }));
        assert_eq!(parse(json!({"op": "keys"})).unwrap().command, Command::Keys);
        assert_eq!(parse(json!({"op": "quit"})).unwrap().command, Command::Quit);
        assert_eq!(
            parse(json!({"op": "connect", "addr": "h:1"}))
                .unwrap()
                .command,
            Command::Connect { addr: "h:1".into() }
        );
    }

    #[test]
    fn bad_lines_say_why_and_keep_the_tag() {
        let e = parse_json_line("{nope").unwrap_err();
        assert!(e.error.contains("not JSON") && e.op.is_none(), "{e:?}");
        let e = parse(json!([1])).unwrap_err();
        assert!(e.error.contains("not a JSON object"), "{e:?}");
        let e = parse(json!({"tag": "t"})).unwrap_err();
        assert_eq!(e.tag, Some(json!("t")));
        let e = parse(json!({"op": "set", "value": 1, "tag": 3})).unwrap_err();
        assert_eq!(
            (e.op.as_deref(), e.tag.clone()),
            (Some("set"), Some(json!(3)))
        );
        assert!(e.error.contains("missing \"key\""), "{e:?}");
        let e = parse(json!({"op": "set", "key": 5, "value": 1})).unwrap_err();
        assert!(e.error.contains("a key is a JSON string"), "{e:?}");
        let e = parse(json!({"op": "set", "key": "k", "value": {"$bin": "zz"}})).unwrap_err();
        assert!(e.error.contains("hex"), "{e:?}");
        let e = parse(json!({"op": "update", "items": [[1]]})).unwrap_err();
        assert!(e.error.contains("items[0]"), "{e:?}");
        let e = parse(json!({"op": "fly\u{1b}"})).unwrap_err();
        assert!(
            e.error.contains("unknown op") && !e.error.contains('\u{1b}'),
            "{e:?}"
        );
        let e = parse(json!({"op": "connect", "addr": 1})).unwrap_err();
        assert!(e.error.contains("HOST:PORT"), "{e:?}");
    }
}
