//! `rs2p chord`: a DHT node (`rs2p::chord::ChordSocket`) from the shell,
//! for people (plain commands) or scripts (JSON lines).

use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use clap::Args;
use rs2p::chord::ChordSocket;
use rs2p::net::split_host_port;
use rs2p::protocol::chord::ChordEvent;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::escape;
use super::exit;
use super::explain;
use super::json::{decode_hex, encode_hex, packet_from_json, packet_to_json};
use super::lines::{self, Input};
use super::node::parse_secs;
use super::signals::Signals;
use super::transport::TransportArgs;

pub const AFTER_HELP: &str = r#"A chord node keeps a share of a distributed hash table: each key is
stored five times around the ring of storing nodes, and a read needs
three copies to agree. A node starts leeching (it reads and writes, but
stores nothing) until it joins (--join, or the join command).

Plain mode (default), one command per line:
  set KEY VALUE      get KEY      delete KEY      keys
  join               unjoin       quit
  (VALUE is text; use --json for other types.)

JSON mode (--json): one JSON object per line, both ways.
  stdin ops:
    {"op":"join"}  {"op":"unjoin"}
    {"op":"set","key":K,"value":V}
    {"op":"get","key":K}              -> value event, or error (NotFound,
                                         NoQuorum, Timeout)
    {"op":"delete","key":K}
    {"op":"delta","key":K,"map":{...}}   -> delta event with the merged map
    {"op":"keys"}                     -> keys event
    {"op":"quit"}
  stdout events: ready, joined, unjoined, set, deleted, value, delta, keys,
    added, removed (a key appeared or went, anywhere in the DHT), error.
  Keys: a JSON string (its UTF-8 bytes, as py2p) or {"$bin":"00ff"}.
  Values as `rs2p node`: string = str, integer = int, null, arrays, objects
    = maps, {"$bin":hex} = bin. Gets run concurrently; the other ops in order.

Example, three terminals:
  rs2p chord --bind 127.0.0.1:4444 --join
  rs2p chord --bind 127.0.0.1:4445 --connect 127.0.0.1:4444 --join
  rs2p chord --bind 127.0.0.1:4446 --connect 127.0.0.1:4444
    set colour blue        (in any of them)
    get colour             (in any other: "colour = blue")"#;

/// Options of `rs2p chord`.
#[derive(Debug, Args)]
pub struct ChordArgs {
    /// Address to listen on; port 0 picks a free port (reported on startup).
    #[arg(long, value_name = "HOST:PORT")]
    pub bind: String,

    /// A node to join at startup; repeat for several.
    #[arg(long, value_name = "HOST:PORT")]
    pub connect: Vec<String>,

    /// A seed (`rs2p seed` or py2p's) to find this network's nodes through;
    /// repeat for several.
    #[arg(long, value_name = "HOST:PORT")]
    pub bootstrap: Vec<String>,

    /// The subnet (network name).
    #[arg(long, value_name = "NAME", default_value = "chord")]
    pub subnet: String,

    /// Store data from the start.
    #[arg(long)]
    pub join: bool,

    /// Read operations and write events as JSON, one object per line.
    #[arg(long)]
    pub json: bool,

    /// Seconds a get waits for answers.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    pub timeout: Duration,

    /// Seconds to keep running after the end of stdin.
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = parse_secs)]
    pub linger: Duration,

    #[command(flatten)]
    pub transport: TransportArgs,
}

/// Runs the node until quit, end of input or Ctrl-C.
pub async fn run(args: ChordArgs) -> ExitCode {
    // SIGTERM stops the node cleanly, as Ctrl-C does, from here on.
    let mut signals = Signals::new();
    let json = args.json;
    for addr in args.connect.iter().chain(&args.bootstrap) {
        if split_host_port(addr).is_err() {
            let flag = if args.connect.contains(addr) {
                "connect"
            } else {
                "bootstrap"
            };
            return exit::usage(explain::bad_address(flag, addr));
        }
    }
    let tls = match args.transport.tls_options() {
        Ok(tls) => tls,
        Err(e) => return exit::usage(e),
    };
    let node = ChordSocket::builder()
        .subnet(args.subnet.as_str())
        .encryption(args.transport.transport.encryption())
        .request_timeout(args.timeout)
        .mesh(|m| m.tls(tls))
        .bind(&args.bind)
        .await;
    let node = match node {
        Ok(node) => node,
        Err(e) => return exit::bind_failed(&args.bind, &e),
    };
    let (tx, mut lines) = mpsc::unbounded_channel::<String>();
    let printer = tokio::spawn(async move {
        while let Some(line) = lines.recv().await {
            println!("{line}");
        }
    });
    let out = Out { json, tx };
    out.event(
        json!({"event": "ready", "id": node.mesh().id().to_string(),
               "addr": node.mesh().addr().to_string(), "subnet": args.subnet}),
        format!(
            "chord node {} on {}",
            node.mesh().id().short(12),
            node.mesh().addr()
        ),
    );
    tokio::spawn(print_key_events(node.clone(), out.clone()));
    for addr in &args.connect {
        let Ok(a) = split_host_port(addr) else {
            continue;
        };
        if let Err(e) = node.mesh().connect(&a.host, a.port, None).await {
            out.error("connect", None, format!("{addr}: {e}"));
        }
    }
    if !args.bootstrap.is_empty() {
        match rs2p::bootstrap::join_through(&args.bootstrap, node.mesh()).await {
            Ok(n) => out.event(
                json!({"event": "bootstrapped", "dialled": n}),
                format!("found {n} nodes through the seeds"),
            ),
            Err(e) => out.error("bootstrap", None, e.to_string()),
        }
    }
    if args.join {
        match node.join().await {
            Ok(()) => out.event(json!({"event": "joined"}), "joined: storing".into()),
            Err(e) => out.error("join", None, e.to_string()),
        }
    }
    let mut input = lines::spawn_stdin(lines::DEFAULT_MAX_LINE);
    let quit = tokio::select! {
        q = serve(&node, &out, &mut input) => q,
        _ = signals.recv() => true,
    };
    if !quit && !args.linger.is_zero() {
        tokio::select! {
            () = tokio::time::sleep(args.linger) => {}
            _ = signals.recv() => {}
        }
    }
    node.close().await;
    drop(out);
    let _ = tokio::time::timeout(Duration::from_secs(2), printer).await;
    ExitCode::SUCCESS
}

/// Serves stdin; true on quit, false at its end.
async fn serve(node: &ChordSocket, out: &Out, input: &mut mpsc::Receiver<Input>) -> bool {
    while let Some(line) = input.recv().await {
        let line = match line {
            Input::Line(l) => l.text().to_owned(),
            Input::Failed(e) => {
                out.error("read", None, e);
                return false;
            }
            other => {
                out.error("read", None, other.problem().unwrap_or_default());
                continue;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let op = if out.json {
            serde_json::from_str::<Value>(&line).map_err(|e| format!("not JSON: {e}"))
        } else {
            plain_op(&line)
        };
        match op {
            Ok(op) if op["op"] == "quit" => return true,
            Ok(op) => run_op(node, out, op).await,
            Err(e) => out.error("parse", None, e),
        }
    }
    false
}

/// A plain command as the JSON op it stands for.
fn plain_op(line: &str) -> Result<Value, String> {
    let mut words = line.trim().splitn(3, char::is_whitespace);
    let cmd = words.next().unwrap_or_default();
    let key = words.next();
    let rest = words.next().map(str::trim);
    match (cmd, key, rest) {
        ("join" | "unjoin" | "keys" | "quit", None, None) => Ok(json!({"op": cmd})),
        ("get" | "delete", Some(k), None) => Ok(json!({"op": cmd, "key": k})),
        ("set", Some(k), Some(v)) => Ok(json!({"op": "set", "key": k, "value": v})),
        _ => Err(format!(
            "unknown command {line:?} (set KEY VALUE, get KEY, delete KEY, keys, join, unjoin, quit)"
        )),
    }
}

fn key_of(op: &Value) -> Result<Bytes, String> {
    match &op["key"] {
        Value::String(s) => Ok(Bytes::from(s.clone().into_bytes())),
        Value::Object(o) if o.len() == 1 => match o.get("$bin") {
            Some(Value::String(h)) => decode_hex(h).map(Bytes::from),
            _ => Err("key: expected a string or {\"$bin\": hex}".into()),
        },
        _ => Err("key: expected a string or {\"$bin\": hex}".into()),
    }
}

fn key_json(key: &[u8]) -> Value {
    match std::str::from_utf8(key) {
        Ok(s) => Value::from(s),
        Err(_) => json!({"$bin": encode_hex(key)}),
    }
}

/// A key as people see it, with control characters escaped (it came
/// from the network).
fn key_text(key: &[u8]) -> String {
    escape::inline(&String::from_utf8_lossy(key))
}

/// A value as people see it, as `rs2p sync` prints one: a plain str as
/// is, anything else as JSON.
fn value_text(value: &rs2p::Packet) -> String {
    super::sync::text::value_to_text(value)
}

async fn run_op(node: &ChordSocket, out: &Out, op: Value) {
    let name = op["op"].as_str().unwrap_or_default().to_owned();
    let key = key_of(&op);
    let result: Result<(), String> = match name.as_str() {
        "join" => node
            .join()
            .await
            .map_err(|e| e.to_string())
            .map(|()| out.event(json!({"event": "joined"}), "joined: storing".into())),
        "unjoin" => node
            .unjoin()
            .await
            .map_err(|e| e.to_string())
            .map(|()| out.event(json!({"event": "unjoined"}), "unjoined: leeching".into())),
        "keys" => node.keys().await.map_err(|e| e.to_string()).map(|keys| {
            let text = keys
                .iter()
                .map(|k| key_text(k))
                .collect::<Vec<_>>()
                .join(" ");
            let list: Vec<Value> = keys.iter().map(|k| key_json(k)).collect();
            out.event(
                json!({"event": "keys", "keys": list}),
                format!("keys: {text}"),
            )
        }),
        "set" => match (key, packet_from_json(&op["value"], "value")) {
            (Ok(k), Ok(v)) => node.set(&k, v).await.map_err(|e| e.to_string()).map(|()| {
                out.event(
                    json!({"event": "set", "key": key_json(&k)}),
                    format!("set {}", key_text(&k)),
                )
            }),
            (Err(e), _) => Err(e),
            (_, Err(e)) => Err(e.to_string()),
        },
        "delete" => match key {
            Ok(k) => node.delete(&k).await.map_err(|e| e.to_string()).map(|()| {
                out.event(
                    json!({"event": "deleted", "key": key_json(&k)}),
                    format!("deleted {}", key_text(&k)),
                )
            }),
            Err(e) => Err(e),
        },
        "delta" => match (key, packet_from_json(&op["map"], "map")) {
            (Ok(k), Ok(m)) => node
                .apply_delta(&k, m)
                .await
                .map_err(|e| e.to_string())
                .map(|v| {
                    out.event(
                        json!({"event": "delta", "key": key_json(&k), "value": packet_to_json(&v)}),
                        format!("{} = {}", key_text(&k), value_text(&v)),
                    )
                }),
            (Err(e), _) => Err(e),
            (_, Err(e)) => Err(e.to_string()),
        },
        "get" => match key {
            Ok(k) => {
                // Gets run concurrently: the answer comes as an event.
                let (node, out) = (node.clone(), out.clone());
                tokio::spawn(async move {
                    match node.get(&k).await {
                        Ok(v) => out.event(
                            json!({"event": "value", "key": key_json(&k), "value": packet_to_json(&v)}),
                            format!("{} = {}", key_text(&k), value_text(&v)),
                        ),
                        Err(e) => out.error("get", Some(&k), e.to_string()),
                    }
                });
                Ok(())
            }
            Err(e) => Err(e),
        },
        other => Err(format!("unknown op {other:?}")),
    };
    if let Err(e) = result {
        let k = key_of(&op).ok();
        out.error(&name, k.as_deref(), e);
    }
}

async fn print_key_events(node: ChordSocket, out: Out) {
    let mut events = node.events();
    loop {
        match events.recv().await {
            Ok(ChordEvent::Added { key }) => out.event(
                json!({"event": "added", "key": key_json(&key)}),
                format!("+ {}", key_text(&key)),
            ),
            Ok(ChordEvent::Removed { key }) => out.event(
                json!({"event": "removed", "key": key_json(&key)}),
                format!("- {}", key_text(&key)),
            ),
            Ok(_) => {}
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Where lines go: one printer task, so lines never interleave.
#[derive(Clone)]
struct Out {
    json: bool,
    tx: mpsc::UnboundedSender<String>,
}

impl Out {
    fn event(&self, value: Value, text: String) {
        let line = if self.json { value.to_string() } else { text };
        let _ = self.tx.send(line);
    }

    fn error(&self, op: &str, key: Option<&[u8]>, error: String) {
        let mut v = json!({"event": "error", "op": op, "error": error});
        if let Some(k) = key {
            v["key"] = key_json(k);
        }
        let text = format!("error ({op}): {error}");
        self.event(v, text);
    }
}
