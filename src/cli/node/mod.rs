//! `rs2p node`: run one mesh node, as a line chat, as a JSON-lines service
//! for scripts and tests, or as a daemon.
//!
//! - `out`: what is printed, JSON or chat, escaped;
//! - `printer`: the node's events and messages, in causal order;
//! - `ops`: the JSON operations;
//! - `chat`: chat lines and commands.

mod chat;
mod metrics_http;
mod ops;
mod out;
mod printer;

use std::process::ExitCode;
use std::time::Duration;

use clap::builder::TypedValueParser;
use clap::Args;
use rs2p::net::split_host_port;
use rs2p::{MeshSocket, Protocol};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::explain;
use super::fatal;
use super::lines::{self, Input, DEFAULT_MAX_LINE};
use super::signals::{Signals, StopSignal};
use super::transport::TransportArgs;
use super::{durations, exit};
use ops::Flow;
use out::{OpCtx, Out};
use printer::Printer;

/// Kept here for other subcommands that parse seconds as `rs2p node` did
/// (now in `durations`, with bounded variants).
#[allow(unused_imports)]
pub use super::durations::parse_secs;

pub const AFTER_HELP: &str = r#"Chat mode (default): each line of stdin is broadcast as one str packet.
Messages print on stdout as `<sender, first 8 chars>: <packets>`, whispers as
`<sender> (whisper): <packets>`, each packet as JSON ("42" is a str, 42 an
int, two packets are two values); whatever a peer sent is escaped (\n, \r,
\u001b, …), so it cannot act on the terminal or forge a line. Status lines
(-- joined, left, refused, …) go to stderr. Commands:
  /peers            list the connected peers
  /whisper ID TEXT  send TEXT to one connected peer (ID: its id or a prefix)
  /reply TEXT       reply to the sender of the last message (routed if needed)
  /id               this node's id, address and subnet
  /quit             close every connection and exit
  /help             the commands
  //TEXT            broadcast TEXT starting with one /

JSON mode (--json): one JSON object per line, both ways (reference:
docs/json.md in the source tree). Every op may carry a "tag" (any JSON value)
and gets exactly one answer carrying its "op" and "tag": its result, or an
error. Ops run one at a time, in order, once the --connect dials are done.
  op (stdin)                                  answer (stdout)
  {"op":"broadcast","packets":[…]}            sent {id}
  {"op":"whisper","to":ID,"packets":[…]}      sent {to, id}   (direct peers only)
  {"op":"reply","to":ID,"packets":[…]}        sent {to, id, route:"direct"}, or
                                              sent {to, route:"requested", expires_s}
  {"op":"connect","addr":"HOST:PORT"}         connected {id, addr}
  {"op":"peers"}                              peers {peers:[{id, addr, remote, outgoing}]}
  {"op":"quit"}                               stopping {reason:"quit"}
  A reply to a node that is not a peer floods a route request: it goes out
  when some node answers with a route, and is dropped after expires_s
  seconds if none does (the node reports neither).
  events (stdout), besides the answers:
  ready {id, addr, out_addr, subnet, protocol_id, transport}   always first
  connect {}                                  the first peer joined
  connected {id, addr}                        a --connect dial succeeded
  peer_joined {id}                            a peer completed its handshake
  peer_left {id, reason}                      a peer left the routing table
  rejected {remote, reason}                   a connection was refused or dropped
                                              before it joined (subnet, TLS, …)
  message {kind, sender, time, id, packets}   kind: "broadcast" or "whisper"
  stopping {reason}                           "quit", "end of input", "SIGINT",
                                              "SIGTERM", "node stopped", "internal error"
  error {error} (+ op, tag)                   a failed op; a line that is not
                                              JSON, not UTF-8 or over --max-line
  A peer's message always comes after its peer_joined and before its peer_left.
  Packets: JSON string = str, integer = int (must fit 64 bits: larger ones are
  refused), number with a fraction or exponent = float, true/false, null,
  array, object = map; {"$bin":"00ff"} = bin; {"$float":"nan"|"inf"|"-inf"};
  {"$ext":{"type":N,"data":"<hex>"}}.

Transports (--transport): plaintext (TCP, the default), ssl (TLS, as py2p),
ws and wss (WebSocket, and WebSocket over TLS, as js2p). Nodes meet only on
the same transport. ssl and wss without --cert run in compatibility mode:
traffic is encrypted against eavesdroppers, but nobody is authenticated, so
any stranger can join and an active man-in-the-middle goes unnoticed. With
--cert and --key plus --trust (CA roots) and/or --pin (exact peer
certificates), every peer must show a certificate that passes, or it is
refused during the TLS handshake, before it can join.

Stopping: {"op":"quit"} or /quit; Ctrl-C (SIGINT) or SIGTERM, which close
every connection cleanly first (the same signal again quits at once); the end
of stdin, after --linger seconds. With --daemon, stdin is not read at all and
the node runs until SIGINT or SIGTERM: run it that way under a service
manager, in a container, or with `&` / `nohup`.

Logging: -v logs joins, departures with their reason and refused
connections on stderr; -vv and -vvv more. RUST_LOG (EnvFilter syntax, e.g.
RUST_LOG=rs2p::net=debug) adds to or overrides what -v sets.

Exit status: 0 stopped as asked; 1 could not listen, or the node stopped on
its own; 2 bad arguments; 101 internal error (a bug); 130/143 a second
SIGINT/SIGTERM cut the shutdown short.

Examples:
  rs2p node --bind 127.0.0.1:4444
  rs2p node --json --bind 0.0.0.0:4445 --out-addr 203.0.113.5:4445 --connect 127.0.0.1:4444
  printf '%s\n' '{"op":"broadcast","packets":["hi",{"$bin":"00ff"}],"tag":1}' |
    rs2p node --json --connect 127.0.0.1:4444 --linger 2
  rs2p node --daemon --bind 0.0.0.0:4444 --keepalive 30 --idle-timeout 90 -v
  rs2p node --bind 127.0.0.1:4446 --transport ssl --cert node.pem --key node.key --trust mesh-ca.pem"#;

/// Options of `rs2p node`.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// Address to listen on; port 0 picks a free port (reported on
    /// startup). Default: 127.0.0.1:0 with no --connect or only local
    /// ones, else 0.0.0.0:0.
    #[arg(long, value_name = "HOST:PORT")]
    pub bind: Option<String>,

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

    /// Run until SIGINT or SIGTERM, without reading stdin (for services,
    /// containers and background jobs).
    #[arg(long, conflicts_with = "linger")]
    pub daemon: bool,

    /// Seconds to keep running after the end of stdin, so the last messages
    /// go out and replies can arrive.
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = durations::parse_secs)]
    pub linger: Duration,

    /// Send a keep-alive to every peer at this interval, 0.1 s to 1 day
    /// (peers, py2p included, ignore it), so dead links are noticed by the
    /// idle timeout.
    #[arg(long, value_name = "SECS", value_parser = durations::keepalive)]
    pub keepalive: Option<Duration>,

    /// Close a connection that has sent nothing for this long, 1 s to 7 days,
    /// longer than --keepalive (use with --keepalive on every node).
    /// Default: never.
    #[arg(long, value_name = "SECS", value_parser = durations::idle_timeout)]
    pub idle_timeout: Option<Duration>,

    /// Longest input line, in bytes (64 to 1073741824); a longer line is
    /// skipped whole (and reported) without being held in memory.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_LINE,
          value_parser = clap::value_parser!(u64).range(64..=1 << 30).map(|v| v as usize))]
    pub max_line: usize,

    /// A seed (`rs2p seed`, or py2p's) to find this node's network
    /// through: the node registers there and dials the nodes registered
    /// before it. Repeatable; each failure is reported and the node keeps
    /// running.
    #[arg(long, value_name = "HOST:PORT")]
    pub bootstrap: Vec<String>,

    /// Serve the node's Prometheus metrics at http://HOST:PORT/metrics
    /// (port 0 picks a free port; the address is printed on stderr).
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics: Option<String>,

    #[command(flatten)]
    pub transport: TransportArgs,
}

/// Why the node stops.
#[derive(Debug, Clone, PartialEq)]
enum Stop {
    /// `quit` (its context, for the answer) or `/quit`.
    Quit(OpCtx),
    EndOfInput,
    Signal(StopSignal),
    /// The node's actor ended on its own (a bug in the library).
    NodeStopped,
    /// Something in this process panicked.
    Internal,
}

impl Stop {
    fn reason(&self) -> &'static str {
        match self {
            Stop::Quit(_) => "quit",
            Stop::EndOfInput => "end of input",
            Stop::Signal(s) => s.name(),
            Stop::NodeStopped => "node stopped",
            Stop::Internal => "internal error",
        }
    }
}

/// Runs the node until quit, end of input, a signal or a failure.
pub async fn run(args: NodeArgs) -> ExitCode {
    // First: from here on SIGTERM no longer kills the process outright.
    let mut signals = Signals::new();
    let out = Out::new(args.json);

    // Check every argument before starting anything.
    if let Err(e) = durations::check_idle_vs_keepalive(args.idle_timeout, args.keepalive) {
        return exit::usage(e);
    }
    for addr in &args.connect {
        if split_host_port(addr).is_err() {
            return exit::usage(explain::bad_address("connect", addr));
        }
    }
    let tls = match args.transport.tls_options() {
        Ok(tls) => tls,
        Err(e) => return exit::usage(e),
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
            Err(_) => return exit::usage(explain::bad_address("out-addr", addr)),
        }
    }
    let bind = args
        .bind
        .clone()
        .unwrap_or_else(|| super::oneshot::default_bind(&args.connect));
    let node = match builder.bind(&bind).await {
        Ok(node) => node,
        Err(e) => return exit::bind_failed(&bind, &e),
    };
    if let Some(addr) = &args.metrics {
        match metrics_http::serve(addr, node.metrics()).await {
            Ok(at) => eprintln!("-- metrics at http://{at}/metrics"),
            Err(e) => return exit::failure(e),
        }
    }
    let stopped = watch_actor(&node);
    let events = node.events();
    out.ready(&node, args.daemon);
    let printer = Printer::spawn(node.clone(), events, out.clone());
    fatal::test_panic(&node).await;
    let mut input = (!args.daemon).then(|| lines::spawn_stdin(args.max_line));

    let mut stop = tokio::select! {
        stop = async {
            if !args.bootstrap.is_empty() {
                bootstrap(&node, &out, &args.bootstrap).await;
            }
            session(&node, &out, &args.connect, input.as_mut()).await
        } => stop,
        sig = signals.recv() => Stop::Signal(sig),
        () = stopped.cancelled() => Stop::NodeStopped,
        () = fatal::panicked() => Stop::Internal,
    };
    if stop == Stop::EndOfInput && !args.linger.is_zero() {
        tokio::select! {
            () = tokio::time::sleep(args.linger) => {}
            sig = signals.recv() => stop = Stop::Signal(sig),
            () = stopped.cancelled() => stop = Stop::NodeStopped,
            () = fatal::panicked() => stop = Stop::Internal,
        }
    }
    if fatal::has_panicked() {
        stop = Stop::Internal;
    }
    tracing::info!(reason = stop.reason(), "shutting down");
    let ctx = match &stop {
        Stop::Quit(ctx) => Some(ctx),
        _ => None,
    };
    out.stopping(stop.reason(), ctx);
    match &stop {
        Stop::Signal(sig) if !out.json => out.status(format_args!(
            "{}: closing connections ({} again to quit at once)",
            sig.name(),
            sig.name()
        )),
        Stop::NodeStopped => eprintln!("rs2p: the node stopped unexpectedly; exiting."),
        _ => {}
    }
    tokio::select! {
        () = node.close() => {}
        sig = signals.recv() => {
            eprintln!("rs2p: {} again; quitting without closing cleanly.", sig.name());
            return ExitCode::from(sig.exit_code());
        }
        () = tokio::time::sleep(CLOSE_LIMIT) => {
            eprintln!("rs2p: closing took longer than {} s; quitting.", CLOSE_LIMIT.as_secs());
        }
    }
    printer.finish().await;
    match stop {
        Stop::Internal => ExitCode::from(fatal::EXIT_INTERNAL),
        Stop::NodeStopped if fatal::has_panicked() => ExitCode::from(fatal::EXIT_INTERNAL),
        Stop::NodeStopped => ExitCode::from(exit::FAILURE),
        _ => ExitCode::SUCCESS,
    }
}

/// Bound on closing the node.
const CLOSE_LIMIT: Duration = Duration::from_secs(10);

/// A token cancelled when the node's actor ends, normally or not. The
/// actor drops its message handlers when it ends, and this one holds the
/// token's drop guard: it handles nothing, it only lives as long as the
/// actor does.
fn watch_actor(node: &MeshSocket) -> CancellationToken {
    let stopped = CancellationToken::new();
    let guard = stopped.clone().drop_guard();
    if node
        .register_handler(move |_, _| {
            let _alive = &guard;
            false
        })
        .is_err()
    {
        stopped.cancel();
    }
    stopped
}

/// Registers with the `--bootstrap` seeds and dials the nodes they list.
async fn bootstrap(node: &MeshSocket, out: &Out, seeds: &[String]) {
    match rs2p::bootstrap::join_through(seeds, node).await {
        Ok(n) if out.json => out.emit("bootstrapped", None, &[("dialled", n.into())]),
        Ok(n) => out.status(format!("bootstrap: connected to {n} nodes of this network")),
        Err(e) => out.error(format!("bootstrap: {e}")),
    }
}

/// Joins the `--connect` nodes, then serves stdin (if read) until quit or
/// its end.
async fn session(
    node: &MeshSocket,
    out: &Out,
    connects: &[String],
    input: Option<&mut mpsc::Receiver<Input>>,
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
            Ok(id) => out.connected(None, &id, &addr),
            Err(e) => {
                let e = explain::connect_error(&addr, &e, node.protocol());
                if out.json {
                    out.error(&e);
                }
                eprintln!("rs2p: {}.", super::escape::inline(&e));
            }
        }
    }

    let Some(input) = input else {
        // --daemon: only a signal stops the node.
        return std::future::pending().await;
    };
    while let Some(item) = input.recv().await {
        let line = match item {
            Input::Line(line) => line,
            Input::Failed(_) => {
                out.error(item.problem().unwrap_or_default());
                break;
            }
            other => {
                out.error(other.problem().unwrap_or_default());
                continue;
            }
        };
        if line.text().trim().is_empty() {
            continue;
        }
        let flow = if out.json {
            ops::handle_line(node, out, line.text()).await
        } else {
            chat::handle_line(node, out, line.text()).await
        };
        if let Flow::Quit(ctx) = flow {
            return Stop::Quit(ctx);
        }
    }
    Stop::EndOfInput
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_op_and_event_is_in_the_help() {
        for op in ops::OPS {
            assert!(
                AFTER_HELP.contains(&format!("{{\"op\":\"{op}\"")),
                "op {op} is not in the help"
            );
        }
        for event in out::EVENTS {
            assert!(
                AFTER_HELP.contains(&format!("  {event} {{")),
                "event {event} is not in the help"
            );
        }
        for line in chat::HELP.lines() {
            assert!(AFTER_HELP.contains(line), "{line:?} is not in the help");
        }
    }
}
