//! Where `rs2p sync` writes: JSON events on stdout, one a line (`--json`),
//! or lines for a person: results and watched changes on stdout, status
//! (`-- …`) and errors (`rs2p: …`) on stderr. Everything that came from
//! the network is escaped (`text.rs`).

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use rs2p::protocol::sync::{Entry, SyncError, SyncEvent, SyncKey};
use rs2p::sync::SyncSocket;
use rs2p::{Event, PeerId};
use serde_json::Value;

use super::super::json::packet_to_json;
use super::keys::{key_to_json, key_to_text};
use super::ops::Request;
use super::plain::HELP;
use super::text::{escape_unsafe, json_text, short_id, value_to_text};

/// A failed op, said for a person; a refused lease also says by whom and
/// until when, for scripts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpError {
    /// The sentence, starting with the op (`set: …`).
    pub message: String,
    /// The lease holder and the end of the lease (Unix seconds).
    pub lease: Option<(String, u64)>,
}

impl OpError {
    /// An error with nothing more than its sentence.
    pub fn new(message: impl Into<String>) -> Self {
        OpError {
            message: message.into(),
            lease: None,
        }
    }

    /// Why `op` on `key` failed.
    pub fn from_error(op: &str, key: Option<&SyncKey>, e: &rs2p::Error) -> Self {
        let rs2p::Error::Sync(SyncError::Leased {
            key: lossy,
            owner,
            until,
        }) = e
        else {
            return OpError::new(format!("{op}: {e}"));
        };
        let key = key.map_or_else(|| super::text::quoted(lossy), key_to_text);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        OpError {
            message: format!(
                "{op}: key {key} is leased to node {} until {until} (Unix time, {} s from now): \
                 only that node may write it until then",
                super::text::safe_text(owner),
                until.saturating_sub(now)
            ),
            lease: Some((owner.clone(), *until)),
        }
    }
}

/// The output mode.
#[derive(Debug, Clone, Copy)]
pub struct Out {
    /// JSON events instead of lines for a person.
    pub json: bool,
}

impl Out {
    /// One JSON object, fields in the given order, as one line; the tag
    /// last when there is one.
    pub fn emit(&self, fields: &[(&str, Value)], tag: Option<&Value>) {
        let mut line = String::from("{");
        let tag = tag.map(|t| ("tag", t.clone()));
        for (i, (key, value)) in fields.iter().chain(tag.as_ref()).enumerate() {
            if i > 0 {
                line.push(',');
            }
            line.push_str(&Value::from(*key).to_string());
            line.push(':');
            line.push_str(&json_text(value));
        }
        line.push('}');
        write_line(&mut std::io::stdout().lock(), &line);
    }

    /// A status line for a person (nothing in JSON mode).
    pub fn notice(&self, text: &str) {
        if !self.json {
            write_line(&mut std::io::stderr().lock(), &format!("-- {text}"));
        }
    }

    /// The node is up.
    pub fn ready(&self, node: &SyncSocket, subnet: &str, leasing: bool) {
        let mesh = node.mesh();
        let protocol = mesh.protocol();
        if self.json {
            self.emit(
                &[
                    ("event", "ready".into()),
                    ("id", mesh.id().to_string().into()),
                    ("addr", mesh.addr().to_string().into()),
                    ("subnet", subnet.into()),
                    ("network", protocol.subnet().into()),
                    ("protocol_id", protocol.id().into()),
                    ("leasing", leasing.into()),
                    ("transport", protocol.encryption().into()),
                ],
                None,
            );
        } else {
            self.notice(&format!(
                "sync node {} listening on {} (network {}: subnet {}, leasing {}; transport {}); \
                 type help for the commands, Ctrl-D to quit",
                short_id(mesh.id(), 8),
                mesh.addr(),
                super::text::quoted(protocol.subnet()),
                super::text::quoted(subnet),
                if leasing { "on" } else { "off" },
                protocol.encryption()
            ));
        }
    }

    /// An op failed (or a line was not one): `op` and `tag` as far as known.
    pub fn error(&self, op: Option<&str>, tag: Option<&Value>, error: &OpError) {
        if self.json {
            let mut fields = vec![
                ("event", Value::from("error")),
                ("op", op.map_or(Value::Null, Value::from)),
                ("error", error.message.clone().into()),
            ];
            if let Some((owner, until)) = &error.lease {
                fields.push(("owner", owner.clone().into()));
                fields.push(("until", (*until).into()));
            }
            self.emit(&fields, tag);
        } else {
            write_line(
                &mut std::io::stderr().lock(),
                &format!("rs2p: {}", escape_unsafe(&error.message)),
            );
        }
    }

    /// A change of the dictionary: `answer` is the op that made it (this
    /// node's write), `None` for a change from the network, printed in
    /// plain mode only when `watch` is on.
    pub fn change(&self, event: &SyncEvent, answer: Option<&Request>, watch: bool) {
        let tag = answer.and_then(|r| r.tag.as_ref());
        match event {
            SyncEvent::Updated {
                key,
                value,
                owner,
                time,
            } => {
                if self.json {
                    self.emit(
                        &[
                            ("event", "updated".into()),
                            ("key", key_to_json(key)),
                            ("value", packet_to_json(value)),
                            ("owner", owner.to_string().into()),
                            ("time", (*time).into()),
                            ("local", answer.is_some().into()),
                        ],
                        tag,
                    );
                } else if answer.is_none() && watch {
                    self.stdout(&format!(
                        "* {} = {} (by {})",
                        key_to_text(key),
                        value_to_text(value),
                        short_id(owner, 8)
                    ));
                }
            }
            SyncEvent::Deleted { key } => {
                if self.json {
                    self.emit(
                        &[
                            ("event", "deleted".into()),
                            ("key", key_to_json(key)),
                            ("local", answer.is_some().into()),
                        ],
                        tag,
                    );
                } else if answer.is_none() && watch {
                    self.stdout(&format!("* {} deleted", key_to_text(key)));
                }
            }
            // Kinds of change added later have no form here yet.
            _ => {}
        }
    }

    /// The answer to `get`.
    pub fn value(&self, request: &Request, key: &SyncKey, entry: Option<&Entry>) {
        if self.json {
            let (value, owner, time) = match entry {
                Some(e) => (
                    packet_to_json(&e.value),
                    e.meta.owner.to_string().into(),
                    e.meta.time.into(),
                ),
                None => (Value::Null, Value::Null, Value::Null),
            };
            self.emit(
                &[
                    ("event", "value".into()),
                    ("key", key_to_json(key)),
                    ("found", entry.is_some().into()),
                    ("value", value),
                    ("owner", owner),
                    ("time", time),
                ],
                request.tag.as_ref(),
            );
        } else {
            match entry {
                Some(e) => self.stdout(&value_to_text(&e.value)),
                None => self.error(
                    Some("get"),
                    None,
                    &OpError::new(format!("get {}: no such key", key_to_text(key))),
                ),
            }
        }
    }

    /// The answer to `keys`.
    pub fn keys(&self, request: &Request, entries: &BTreeMap<SyncKey, Entry>) {
        if self.json {
            let list: Vec<Value> = entries
                .iter()
                .map(|(key, e)| {
                    let mut obj = serde_json::Map::new();
                    obj.insert("key".into(), key_to_json(key));
                    obj.insert("value".into(), packet_to_json(&e.value));
                    obj.insert("owner".into(), e.meta.owner.to_string().into());
                    obj.insert("time".into(), e.meta.time.into());
                    Value::Object(obj)
                })
                .collect();
            self.emit(
                &[
                    ("event", "keys".into()),
                    ("count", entries.len().into()),
                    ("entries", list.into()),
                ],
                request.tag.as_ref(),
            );
        } else {
            let mut stdout = std::io::stdout().lock();
            for (key, e) in entries {
                let line = format!("{} = {}", key_to_text(key), value_to_text(&e.value));
                let _ = writeln!(stdout, "{line}");
            }
            let _ = stdout.flush();
            drop(stdout);
            let n = entries.len();
            self.notice(&format!("{n} key{}", if n == 1 { "" } else { "s" }));
        }
    }

    /// Joined the node at `addr`.
    pub fn connected(&self, tag: Option<&Value>, id: &PeerId, addr: &str) {
        if self.json {
            self.emit(
                &[
                    ("event", "connected".into()),
                    ("id", id.to_string().into()),
                    ("addr", addr.into()),
                ],
                tag,
            );
        } else {
            self.notice(&format!(
                "connected to {} at {}",
                short_id(id, 8),
                escape_unsafe(addr)
            ));
        }
    }

    /// A peer came or went.
    pub fn mesh_event(&self, event: Event) {
        match event {
            Event::PeerJoined(id) if self.json => self.emit(
                &[
                    ("event", "peer_joined".into()),
                    ("id", id.to_string().into()),
                ],
                None,
            ),
            Event::PeerLeft(id) if self.json => self.emit(
                &[("event", "peer_left".into()), ("id", id.to_string().into())],
                None,
            ),
            Event::Rejected { remote, reason } if self.json => self.emit(
                &[
                    ("event", "rejected".into()),
                    ("remote", remote.into()),
                    ("reason", reason.to_string().into()),
                ],
                None,
            ),
            Event::PeerJoined(id) => self.notice(&format!("{} joined", short_id(&id, 8))),
            Event::PeerLeft(id) => self.notice(&format!("{} left", short_id(&id, 8))),
            Event::Rejected { remote, reason } => {
                tracing::info!(%remote, %reason, "connection rejected");
            }
            // Messages and other events are not the dictionary's.
            _ => {}
        }
    }

    /// The answer to `help` (plain mode).
    pub fn help(&self) {
        self.stdout(HELP);
    }

    /// The answer to `watch` (plain mode).
    pub fn watching(&self, on: bool) {
        self.notice(if on {
            "watching: changes from other nodes print as they arrive"
        } else {
            "not watching: changes from other nodes are not printed (watch on to see them)"
        });
    }

    fn stdout(&self, line: &str) {
        write_line(&mut std::io::stdout().lock(), line);
    }
}

/// Writes one line and flushes; a closed pipe is not worth a crash.
fn write_line(out: &mut impl Write, line: &str) {
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
