//! `rs2p node`: run one mesh node, as a line chat or as a JSON-lines
//! service for scripts and tests.

use std::fmt::Display;
use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use rs2p::net::split_host_port;
use rs2p::{Event, MeshSocket, Message, MessageKind, PeerId, Protocol};
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinSet;

use super::explain;
use super::json::{packet_to_text, packets_from_json, packets_to_json};
use super::transport::TransportArgs;

#[path = "metrics_http.rs"]
mod metrics_http;

pub const AFTER_HELP: &str = r#"Chat mode (default): each line of stdin is broadcast as one str packet;
received messages print as `<sender id, first 8 chars>: <packets>`.

JSON mode (--json): one JSON object per line, both ways.
  stdin ops:
    {"op":"broadcast","packets":[...]}
    {"op":"whisper","to":ID,"packets":[...]}   direct peers only
    {"op":"reply","to":ID,"packets":[...]}     routed through the mesh if not a peer
    {"op":"connect","addr":"HOST:PORT"}        answered by a "connected" event
    {"op":"peers"}                             answered by a "peers" event
    {"op":"quit"}
  stdout events: ready, connect, connected, peer_joined, peer_left, message,
    peers, rejected, error (for any failed op or malformed line).
  Packets: JSON string = str, integer = int, other number = float, true/false,
    null, array, object = map; {"$bin":"00ff"} = bin.
  Ops run one at a time, in order, once the --connect dials have finished.

Transports (--transport): plaintext (TCP, the default), ssl (TLS, as py2p),
ws and wss (WebSocket, and WebSocket over TLS, as js2p). Nodes meet only on
the same transport. ssl and wss without --cert run in compatibility mode:
traffic is encrypted against eavesdroppers, but nobody is authenticated, so
any stranger can join and an active man-in-the-middle goes unnoticed. With
--cert and --key plus --trust (CA roots) and/or --pin (exact peer
certificates), every peer must show a certificate that passes, or it is
refused during the TLS handshake, before it can join.

The node stops on {"op":"quit"}, on Ctrl-C, or at the end of stdin after
--linger seconds.

Examples:
  rs2p node --bind 127.0.0.1:4444
  rs2p node --json --bind 0.0.0.0:4445 --out-addr 203.0.113.5:4445 --connect 127.0.0.1:4444
  printf '%s\n' '{"op":"broadcast","packets":["hi",{"$bin":"00ff"}]}' |
    rs2p node --json --bind 127.0.0.1:0 --connect 127.0.0.1:4444 --linger 2
  rs2p node --bind 127.0.0.1:4446 --transport ssl --cert node.pem --key node.key --trust mesh-ca.pem"#;

/// Options of `rs2p node`.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// Address to listen on; port 0 picks a free port (reported on startup).
    #[arg(long, value_name = "HOST:PORT")]
    pub bind: String,

    /// A node to join at startup; repeat for several. A failed connection is
    /// reported and the node keeps running.
    #[arg(long, value_name = "HOST:PORT")]
    pub connect: Vec<String>,

    /// The subnet to join; nodes connect only within one subnet.
    #[arg(long, value_name = "NAME", default_value = "mesh")]
    pub subnet: String,

    /// The address advertised to peers (default: the bound address).
    #[arg(long, value_name = "HOST:PORT")]
    pub out_addr: Option<String>,

    /// Read operations and write events as JSON, one object per line.
    #[arg(long)]
    pub json: bool,

    /// Seconds to keep running after the end of stdin, so the last messages
    /// go out and replies can arrive.
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = parse_secs)]
    pub linger: Duration,

    /// Send a keep-alive to every peer at this interval (peers, py2p
    /// included, ignore it), so dead links are noticed by the idle timeout.
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub keepalive: Option<Duration>,

    /// Close a connection that has sent nothing for this long (use with
    /// --keepalive on every node). Default: never.
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub idle_timeout: Option<Duration>,

    #[command(flatten)]
    pub transport: TransportArgs,

    /// Serve the node's Prometheus metrics at http://HOST:PORT/metrics
    /// (port 0 picks a free port; the address is printed on stderr).
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics: Option<String>,
}

pub(super) fn parse_secs(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{text:?} is not a duration"))
}

/// Runs the node until quit, end of input or Ctrl-C.
pub async fn run(args: NodeArgs) -> ExitCode {
    let out = Out { json: args.json };

    // Check every address before starting anything.
    for addr in &args.connect {
        if split_host_port(addr).is_err() {
            eprintln!("rs2p: {}.", explain::bad_address("connect", addr));
            return ExitCode::FAILURE;
        }
    }
    let tls = match args.transport.tls_options() {
        Ok(tls) => tls,
        Err(e) => {
            eprintln!("rs2p: {e}.");
            return ExitCode::from(2);
        }
    };
    let encryption = args.transport.transport.encryption();
    let mut builder = MeshSocket::builder()
        .protocol(Protocol::new(args.subnet.as_str(), encryption))
        .tls(tls)
        .keepalive(args.keepalive)
        .idle_timeout(args.idle_timeout);
    if let Some(addr) = &args.out_addr {
        match split_host_port(addr) {
            Ok(a) => builder = builder.out_addr(a.host, a.port),
            Err(_) => {
                eprintln!("rs2p: {}.", explain::bad_address("out-addr", addr));
                return ExitCode::FAILURE;
            }
        }
    }
    let node = match builder.bind(&args.bind).await {
        Ok(node) => node,
        Err(e) => {
            eprintln!("rs2p: {}.", explain::bind_error("bind", &args.bind, &e));
            return ExitCode::from(2);
        }
    };

    if let Some(addr) = &args.metrics {
        match metrics_http::serve(addr, node.metrics()).await {
            Ok(at) => eprintln!("-- metrics at http://{at}/metrics"),
            Err(e) => {
                eprintln!("rs2p: {e}.");
                return ExitCode::from(2);
            }
        }
    }
    let events = tokio::spawn(print_events(node.events(), out));
    out.ready(&node);
    let messages = tokio::spawn(print_messages(node.clone(), out));
    let mut input = spawn_stdin_reader();

    let interrupted = async {
        if tokio::signal::ctrl_c().await.is_err() {
            // No signal handling here: only quit or end of input stop us.
            std::future::pending::<()>().await;
        }
    };
    tokio::pin!(interrupted);

    let stop = tokio::select! {
        stop = session(&node, out, &args.connect, &mut input) => stop,
        () = &mut interrupted => Stop::Interrupted,
    };
    if stop == Stop::EndOfInput && !args.linger.is_zero() {
        tokio::select! {
            () = tokio::time::sleep(args.linger) => {}
            () = &mut interrupted => {}
        }
    }
    tracing::info!(?stop, "shutting down");
    if stop == Stop::Interrupted && !out.json {
        eprintln!("-- interrupted: closing connections (Ctrl-C again to quit at once)");
    }
    let again = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        () = node.close() => {}
        () = again => {
            eprintln!("rs2p: interrupted again; quitting without closing cleanly.");
            return ExitCode::from(130);
        }
    }
    // Print what was already queued; the task ends once the queue is empty.
    let _ = tokio::time::timeout(Duration::from_secs(2), messages).await;
    events.abort();
    ExitCode::SUCCESS
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Quit,
    EndOfInput,
    Interrupted,
}

/// Joins the `--connect` nodes, then serves stdin until quit or its end.
async fn session(
    node: &MeshSocket,
    out: Out,
    connects: &[String],
    input: &mut mpsc::Receiver<Result<String, String>>,
) -> Stop {
    // In parallel, but before any input: a piped broadcast should find its peers.
    let mut dials = JoinSet::new();
    for addr in connects {
        let (node, addr) = (node.clone(), addr.clone());
        dials.spawn(async move {
            let result = node.connect_addr(&addr).await;
            (addr, result)
        });
    }
    while let Some(joined) = dials.join_next().await {
        let Ok((addr, result)) = joined else { continue };
        match result {
            Ok(id) => out.connected(&id, &addr),
            Err(e) => {
                let e = explain::connect_error(&addr, &e, node.protocol());
                eprintln!("rs2p: {e}.");
                if out.json {
                    out.error(e);
                }
            }
        }
    }

    while let Some(line) = input.recv().await {
        let line = match line {
            Ok(line) => line,
            Err(e) => {
                out.error(e);
                continue;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        if out.json {
            if handle_op(node, out, &line).await == Flow::Quit {
                return Stop::Quit;
            }
        } else if let Err(e) = node.send(vec![line.into()]).await {
            out.error(format!("cannot send: {e}"));
        }
    }
    Stop::EndOfInput
}

#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Quit,
}

/// Runs one JSON op; failures become error events.
async fn handle_op(node: &MeshSocket, out: Out, line: &str) -> Flow {
    match run_op(node, out, line).await {
        Ok(flow) => flow,
        Err(e) => {
            out.error(e);
            Flow::Continue
        }
    }
}

async fn run_op(node: &MeshSocket, out: Out, line: &str) -> Result<Flow, String> {
    let value: Value =
        serde_json::from_str(line).map_err(|e| format!("input line is not JSON: {e}"))?;
    let obj = value
        .as_object()
        .ok_or("input line is not a JSON object like {\"op\":\"peers\"}")?;
    let op = obj
        .get("op")
        .and_then(Value::as_str)
        .ok_or("input object has no string \"op\"")?;
    let packets = || {
        let v = obj
            .get("packets")
            .ok_or_else(|| format!("{op}: missing \"packets\""))?;
        packets_from_json(v, "packets").map_err(|e| format!("{op}: {e}"))
    };
    let to = || -> Result<PeerId, String> {
        match obj.get("to").and_then(Value::as_str) {
            Some(id) if !id.is_empty() => Ok(PeerId::from(id)),
            _ => Err(format!("{op}: missing \"to\" (a node id string)")),
        }
    };
    match op {
        "broadcast" => {
            let packets = packets()?;
            node.send(packets)
                .await
                .map_err(|e| format!("broadcast: {e}"))?;
        }
        "whisper" => {
            let (to, packets) = (to()?, packets()?);
            node.whisper(&to, packets)
                .await
                .map_err(|e| format!("whisper: {e}"))?;
        }
        "reply" => {
            let (to, packets) = (to()?, packets()?);
            node.reply_to(&to, packets)
                .await
                .map_err(|e| format!("reply: {e}"))?;
        }
        "connect" => {
            let addr = obj
                .get("addr")
                .and_then(Value::as_str)
                .ok_or("connect: missing \"addr\" (\"HOST:PORT\")")?;
            let id = node.connect_addr(addr).await.map_err(|e| {
                format!(
                    "connect: {}",
                    explain::connect_error(addr, &e, node.protocol())
                )
            })?;
            out.connected(&id, addr);
        }
        "peers" => {
            let peers = node
                .routing_table()
                .await
                .map_err(|e| format!("peers: {e}"))?;
            let peers: Vec<Value> = peers
                .iter()
                .map(|p| {
                    json!({
                        "id": p.id.to_string(),
                        "addr": p.out_addr.to_string(),
                        "outgoing": p.outgoing,
                    })
                })
                .collect();
            out.emit(&[("event", "peers".into()), ("peers", peers.into())]);
        }
        "quit" => return Ok(Flow::Quit),
        other => {
            return Err(format!(
                "unknown op {other:?}: expected broadcast, whisper, reply, connect, peers or quit"
            ))
        }
    }
    Ok(Flow::Continue)
}

/// Reads stdin on a plain thread: a blocked read must not hold up shutdown,
/// as a read on tokio's own stdin would.
fn spawn_stdin_reader() -> mpsc::Receiver<Result<String, String>> {
    let (tx, rx) = mpsc::channel(64);
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut stdin = stdin.lock();
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let line = match stdin.read_until(b'\n', &mut buf) {
                Ok(0) => break,
                Ok(_) => {
                    if buf.last() == Some(&b'\n') {
                        buf.pop();
                    }
                    if buf.last() == Some(&b'\r') {
                        buf.pop();
                    }
                    String::from_utf8(buf.clone())
                        .map_err(|_| "input line is not valid UTF-8".to_owned())
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(format!("cannot read stdin: {e}")));
                    break;
                }
            };
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    rx
}

async fn print_events(mut events: broadcast::Receiver<Event>, out: Out) {
    loop {
        match events.recv().await {
            Ok(event) => out.event(event),
            Err(broadcast::error::RecvError::Lagged(n)) => {
                out.error(format!("{n} node events were missed"));
            }
            Err(broadcast::error::RecvError::Closed) => break,
        }
    }
}

async fn print_messages(node: MeshSocket, out: Out) {
    while let Ok(msg) = node.next_message().await {
        out.message(&msg);
    }
}

/// Where output goes: JSON events on stdout, or chat lines on stdout with
/// status lines on stderr.
#[derive(Debug, Clone, Copy)]
struct Out {
    json: bool,
}

impl Out {
    /// One JSON object, fields in the given order, as one line.
    fn emit(&self, fields: &[(&str, Value)]) {
        let mut line = String::from("{");
        for (i, (key, value)) in fields.iter().enumerate() {
            if i > 0 {
                line.push(',');
            }
            line.push_str(&Value::from(*key).to_string());
            line.push(':');
            line.push_str(&value.to_string());
        }
        line.push('}');
        write_stdout(&line);
    }

    fn error(&self, error: impl Display) {
        if self.json {
            self.emit(&[
                ("event", "error".into()),
                ("error", error.to_string().into()),
            ]);
        } else {
            eprintln!("rs2p: {error}");
        }
    }

    fn ready(&self, node: &MeshSocket) {
        if self.json {
            self.emit(&[
                ("event", "ready".into()),
                ("id", node.id().to_string().into()),
                ("addr", node.addr().to_string().into()),
                ("transport", node.protocol().encryption().into()),
            ]);
        } else {
            eprintln!(
                "-- node {} listening on {} (subnet {:?}, transport {}); type a line to broadcast it, Ctrl-D to quit",
                node.id().short(8),
                node.addr(),
                node.protocol().subnet(),
                node.protocol().encryption()
            );
        }
    }

    fn connected(&self, id: &PeerId, addr: &str) {
        if self.json {
            self.emit(&[("event", "connected".into()), ("id", id.to_string().into())]);
        } else {
            eprintln!("-- connected to {} at {addr}", id.short(8));
        }
    }

    fn event(&self, event: Event) {
        if !self.json {
            match event {
                Event::PeerJoined(id) => eprintln!("-- {} joined", id.short(8)),
                Event::PeerLeft(id) => eprintln!("-- {} left", id.short(8)),
                Event::Rejected { remote, reason } => {
                    tracing::info!(%remote, %reason, "connection rejected");
                }
                _ => {}
            }
            return;
        }
        match event {
            Event::Connect => self.emit(&[("event", "connect".into())]),
            Event::PeerJoined(id) => {
                self.emit(&[
                    ("event", "peer_joined".into()),
                    ("id", id.to_string().into()),
                ]);
            }
            Event::PeerLeft(id) => {
                self.emit(&[("event", "peer_left".into()), ("id", id.to_string().into())]);
            }
            Event::Rejected { remote, reason } => self.emit(&[
                ("event", "rejected".into()),
                ("remote", remote.into()),
                ("reason", reason.to_string().into()),
            ]),
            // Messages are printed from the queue; other events have no JSON form yet.
            _ => {}
        }
    }

    fn message(&self, msg: &Message) {
        if self.json {
            let kind = match msg.kind() {
                MessageKind::Broadcast => "broadcast",
                MessageKind::Whisper => "whisper",
            };
            self.emit(&[
                ("event", "message".into()),
                ("kind", kind.into()),
                ("sender", msg.sender().to_string().into()),
                ("time", msg.time().into()),
                ("id", msg.id_hex().into()),
                ("packets", packets_to_json(msg.packets())),
            ]);
        } else {
            let text: Vec<String> = msg.packets().iter().map(packet_to_text).collect();
            write_stdout(&format!("{}: {}", msg.sender().short(8), text.join(" ")));
        }
    }
}

/// Writes one line and flushes; a closed stdout is not worth a crash.
fn write_stdout(line: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linger_parses() {
        assert_eq!(parse_secs("1").unwrap(), Duration::from_secs(1));
        assert_eq!(parse_secs("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_secs("0.25").unwrap(), Duration::from_millis(250));
        assert!(parse_secs("-1").is_err());
        assert!(parse_secs("soon").is_err());
        assert!(parse_secs("inf").is_err());
    }
}
