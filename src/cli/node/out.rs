//! What `rs2p node` prints: JSON events on stdout (`--json`), or chat lines
//! on stdout with status lines (`-- …`) on stderr. Everything that came
//! from the network is escaped ([`escape`]) so a peer cannot act on the
//! terminal or forge a line; JSON output stays valid JSON.

use std::fmt::Display;
use std::io::Write;
use std::sync::{Arc, Mutex};

use rs2p::{MeshSocket, Message, MessageKind, PeerId};
use serde_json::Value;

use crate::cli::escape;
use crate::cli::json::{packet_to_json, packets_to_json};

/// Every JSON event, in the order the documentation lists them (the
/// tests check the help against it).
#[cfg_attr(not(test), allow(dead_code))]
pub const EVENTS: &[&str] = &[
    "ready",
    "connect",
    "connected",
    "peer_joined",
    "peer_left",
    "rejected",
    "message",
    "sent",
    "peers",
    "stopping",
    "error",
];

/// Characters of an id shown in chat mode.
pub const SHORT: usize = 8;

/// The op an answer belongs to, and the caller's tag.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OpCtx {
    /// The op's name, when the line named one.
    pub op: Option<String>,
    /// The caller's `"tag"`, echoed as given.
    pub tag: Option<Value>,
}

/// Where output goes, and what chat mode remembers of it.
#[derive(Debug, Clone)]
pub struct Out {
    pub json: bool,
    last_sender: Arc<Mutex<Option<PeerId>>>,
}

impl Out {
    pub fn new(json: bool) -> Out {
        Out {
            json,
            last_sender: Arc::default(),
        }
    }

    /// The sender of the last message printed (for `/reply`).
    pub fn last_sender(&self) -> Option<PeerId> {
        self.last_sender
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// One JSON event: `event`, then `op` and `tag` if any, then `fields`,
    /// in that order, as one line.
    pub fn emit(&self, event: &str, ctx: Option<&OpCtx>, fields: &[(&str, Value)]) {
        let mut line = String::from("{\"event\":");
        line.push_str(&escape::quote(event));
        let mut field = |key: &str, value: &Value| {
            line.push(',');
            line.push_str(&escape::quote(key));
            line.push(':');
            line.push_str(&escape::json(value));
        };
        if let Some(ctx) = ctx {
            if let Some(op) = &ctx.op {
                field("op", &Value::from(op.as_str()));
            }
            if let Some(tag) = &ctx.tag {
                field("tag", tag);
            }
        }
        for (key, value) in fields {
            field(key, value);
        }
        line.push('}');
        write_stdout(&line);
    }

    /// A status line for a person (chat mode), on stderr.
    pub fn status(&self, text: impl Display) {
        eprintln!("-- {text}");
    }

    /// An error not tied to an op: a JSON `error` event, or a line on
    /// stderr.
    pub fn error(&self, error: impl Display) {
        self.op_error(None, error);
    }

    /// An op's failure: a JSON `error` event with the op and tag, or a line
    /// on stderr.
    pub fn op_error(&self, ctx: Option<&OpCtx>, error: impl Display) {
        if self.json {
            self.emit("error", ctx, &[("error", error.to_string().into())]);
        } else {
            eprintln!("rs2p: {}", escape::inline(&error.to_string()));
        }
    }

    pub fn ready(&self, node: &MeshSocket, daemon: bool) {
        let protocol = node.protocol();
        if self.json {
            self.emit(
                "ready",
                None,
                &[
                    ("id", node.id().to_string().into()),
                    ("addr", node.addr().to_string().into()),
                    ("out_addr", node.out_addr().to_string().into()),
                    ("subnet", protocol.subnet().into()),
                    ("protocol_id", protocol.id().into()),
                    ("transport", protocol.encryption().into()),
                ],
            );
        } else {
            let how = if daemon {
                "running until SIGINT or SIGTERM (Ctrl-C)"
            } else {
                "type a line to broadcast it, /help for commands, Ctrl-D to quit"
            };
            self.status(format_args!(
                "node {} listening on {} (subnet {}, transport {}); {how}",
                node.id().short(SHORT),
                node.addr(),
                escape::quote(protocol.subnet()),
                protocol.encryption()
            ));
        }
    }

    /// A `--connect` dial or a `connect` op succeeded.
    pub fn connected(&self, ctx: Option<&OpCtx>, id: &PeerId, addr: &str) {
        if self.json {
            self.emit(
                "connected",
                ctx,
                &[("id", id.to_string().into()), ("addr", addr.into())],
            );
        } else {
            self.status(format_args!("connected to {} at {addr}", short(id)));
        }
    }

    pub fn connect_event(&self) {
        if self.json {
            self.emit("connect", None, &[]);
        }
    }

    pub fn peer_joined(&self, id: &PeerId) {
        tracing::info!(peer = %escape::inline(&id.to_string()), "peer joined");
        if self.json {
            self.emit("peer_joined", None, &[("id", id.to_string().into())]);
        } else {
            self.status(format_args!("{} joined", short(id)));
        }
    }

    pub fn peer_left(&self, id: &PeerId, reason: &str) {
        tracing::info!(
            peer = %escape::inline(&id.to_string()),
            reason = %escape::inline(reason),
            "peer left"
        );
        if self.json {
            self.emit(
                "peer_left",
                None,
                &[("id", id.to_string().into()), ("reason", reason.into())],
            );
        } else {
            self.status(format_args!(
                "{} left: {}",
                short(id),
                escape::inline(reason)
            ));
        }
    }

    /// A connection refused or dropped before it joined the routing table.
    pub fn rejected(&self, remote: &str, reason: &str) {
        tracing::info!(%remote, reason = %escape::inline(reason), "refused a connection");
        if self.json {
            self.emit(
                "rejected",
                None,
                &[("remote", remote.into()), ("reason", reason.into())],
            );
        } else {
            self.status(format_args!(
                "refused {}: {}",
                escape::inline(remote),
                escape::inline(reason)
            ));
        }
    }

    pub fn message(&self, msg: &Message) {
        *self.last_sender.lock().unwrap_or_else(|e| e.into_inner()) = Some(msg.sender().clone());
        let kind = match msg.kind() {
            MessageKind::Broadcast => "broadcast",
            MessageKind::Whisper => "whisper",
        };
        if self.json {
            self.emit(
                "message",
                None,
                &[
                    ("kind", kind.into()),
                    ("sender", msg.sender().to_string().into()),
                    ("time", msg.time().into()),
                    ("id", msg.id_hex().into()),
                    ("packets", packets_to_json(msg.packets())),
                ],
            );
        } else {
            let marker = match msg.kind() {
                MessageKind::Broadcast => "",
                MessageKind::Whisper => " (whisper)",
            };
            write_stdout(&format!(
                "{}{marker}: {}",
                short(msg.sender()),
                chat_packets(msg.packets())
            ));
        }
    }

    /// The node is about to close: why, and the tag of a `quit` op.
    pub fn stopping(&self, reason: &str, ctx: Option<&OpCtx>) {
        if self.json {
            self.emit("stopping", ctx, &[("reason", reason.into())]);
        }
    }
}

/// An id as chat mode shows it: its first [`SHORT`] characters, escaped.
pub fn short(id: &PeerId) -> String {
    escape::inline(&id.short(SHORT))
}

/// Packets as chat mode shows them: each as JSON (a str quoted, so `"42"`
/// and `42` differ), separated by spaces, escaped for the terminal.
pub fn chat_packets(packets: &[rs2p::Packet]) -> String {
    if packets.is_empty() {
        return "(no packets)".to_owned();
    }
    packets
        .iter()
        .map(|p| escape::json(&packet_to_json(p)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Writes one line and flushes; a closed stdout is not worth a crash.
pub fn write_stdout(line: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

#[cfg(test)]
mod tests {
    use super::*;
    use rs2p::Packet;

    #[test]
    fn chat_packets_are_unambiguous() {
        assert_eq!(chat_packets(&[Packet::from("42")]), r#""42""#);
        assert_eq!(chat_packets(&[Packet::from(42)]), "42");
        assert_eq!(
            chat_packets(&[Packet::from("a"), Packet::from("b c")]),
            r#""a" "b c""#
        );
        assert_eq!(
            chat_packets(&[Packet::from("x\n-- AAAAAAAA joined\u{1b}[2J")]),
            r#""x\n-- AAAAAAAA joined\u001b[2J""#
        );
        assert_eq!(
            chat_packets(&[Packet::bin(vec![0, 255])]),
            r#"{"$bin":"00ff"}"#
        );
        assert_eq!(chat_packets(&[]), "(no packets)");
    }
}
