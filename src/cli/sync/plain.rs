//! Plain mode: commands typed by a person, one a line (`set color blue`).

use super::keys::key_from_text;
use super::ops::{Command, Request};
use super::text::{quoted, value_from_text};

/// What `help` prints.
pub const HELP: &str = r#"Commands (one a line):
  set KEY VALUE      set KEY on every node; VALUE is JSON if it parses as JSON
                     (42, true, [1,2], {"a":1}, "quoted text", {"$bin":"00ff"}),
                     otherwise the rest of the line as text
  get KEY            print KEY's value
  del KEY            delete KEY on every node
  delta KEY {...}    merge a JSON object into the map at KEY
  keys               print every KEY = VALUE
  watch [on|off]     print changes made by other nodes as they arrive, as
                     "* KEY = VALUE (by NODE)" and "* KEY deleted": on at start;
                     "watch" alone switches it
  connect HOST:PORT  join another node
  help               this text
  quit               leave (also: exit, end of input, Ctrl-C)
A KEY is one word, or "quoted text" for keys with spaces ({"$str":"k"} and
{"$bin":"6b"} name str and raw bin keys). What came from the network prints
as set reads it back: plain text as is, anything else as JSON (control
characters escaped)."#;

/// Reads one plain-mode line: `Ok(None)` for a blank line.
pub fn parse_plain_line(line: &str) -> Result<Option<Request>, String> {
    let line = line.trim();
    if line.is_empty() {
        return Ok(None);
    }
    let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    let rest = rest.trim_start();
    let no_more = |op: &str, rest: &str| {
        if rest.trim().is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{op}: unexpected {} after the key",
                quoted(rest.trim())
            ))
        }
    };
    let (op, command) = match word.to_ascii_lowercase().as_str() {
        "set" => {
            let (key, rest) = key_from_text(rest).map_err(|e| format!("set: {e}"))?;
            let value = value_from_text(rest).map_err(|e| format!("set: {e}"))?;
            ("set", Command::Set { key, value })
        }
        "get" => {
            let (key, rest) = key_from_text(rest).map_err(|e| format!("get: {e}"))?;
            no_more("get", rest)?;
            ("get", Command::Get { key })
        }
        "del" | "delete" => {
            let (key, rest) = key_from_text(rest).map_err(|e| format!("del: {e}"))?;
            no_more("del", rest)?;
            ("delete", Command::Delete { key })
        }
        "delta" => {
            let (key, rest) = key_from_text(rest).map_err(|e| format!("delta: {e}"))?;
            let map = value_from_text(rest).map_err(|e| format!("delta: {e}"))?;
            ("delta", Command::Delta { key, map })
        }
        "keys" | "ls" => ("keys", Command::Keys),
        "watch" => {
            let on = match rest.to_ascii_lowercase().as_str() {
                "" => None,
                "on" => Some(true),
                "off" => Some(false),
                _ => return Err("watch: expected on, off or nothing".into()),
            };
            ("watch", Command::Watch(on))
        }
        "connect" if !rest.is_empty() => (
            "connect",
            Command::Connect {
                addr: rest.to_owned(),
            },
        ),
        "connect" => return Err("connect: expected HOST:PORT".into()),
        "help" | "?" => ("help", Command::Help),
        "quit" | "exit" => ("quit", Command::Quit),
        _ => {
            return Err(format!(
                "unknown command {}; type help for the commands",
                quoted(word)
            ))
        }
    };
    Ok(Some(Request {
        op,
        tag: None,
        command,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rs2p::protocol::sync::SyncKey;
    use rs2p::protocol::Packet;

    fn command(line: &str) -> Command {
        parse_plain_line(line).unwrap().unwrap().command
    }

    #[test]
    fn commands() {
        assert_eq!(
            command("set color blue sky"),
            Command::Set {
                key: "color".into(),
                value: "blue sky".into()
            }
        );
        assert_eq!(
            command("SET n 42"),
            Command::Set {
                key: "n".into(),
                value: 42.into()
            }
        );
        assert_eq!(
            command("set \"my key\" {\"a\":[1]}"),
            Command::Set {
                key: "my key".into(),
                value: Packet::Map(vec![("a".into(), Packet::Array(vec![1.into()]))])
            }
        );
        assert_eq!(
            command("get color"),
            Command::Get {
                key: "color".into()
            }
        );
        assert_eq!(
            command("del {\"$str\":\"k\"}"),
            Command::Delete {
                key: SyncKey::text("k")
            }
        );
        assert_eq!(command("  keys  "), Command::Keys);
        assert_eq!(command("watch"), Command::Watch(None));
        assert_eq!(command("watch off"), Command::Watch(Some(false)));
        assert_eq!(
            command("connect 127.0.0.1:4444"),
            Command::Connect {
                addr: "127.0.0.1:4444".into()
            }
        );
        assert_eq!(command("quit"), Command::Quit);
        assert_eq!(parse_plain_line("   ").unwrap(), None);
    }

    #[test]
    fn mistakes_say_what_to_do() {
        for (line, want) in [
            ("set", "set: missing key"),
            ("set k", "set: missing value"),
            ("get a b", "unexpected"),
            ("watch maybe", "expected on, off"),
            ("fly away", "unknown command"),
            ("connect", "HOST:PORT"),
            ("set \"k v", "not valid JSON"),
        ] {
            let e = parse_plain_line(line).unwrap_err();
            assert!(e.contains(want), "{line}: {e}");
        }
        let e = parse_plain_line("\u{1b}[2J").unwrap_err();
        assert!(!e.contains('\u{1b}'), "{e}");
    }
}
