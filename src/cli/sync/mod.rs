//! `rs2p sync`: one node of a sync network (a replicated dictionary) from
//! the shell: commands for a person, or JSON lines for scripts and tests.
//!
//! - `ops.rs`: the requests, read from JSON lines;
//! - `plain.rs`: the same requests, read from words;
//! - `keys.rs`: keys in JSON and in words;
//! - `text.rs`: escaping what came from the network;
//! - `out.rs`: printing answers, changes and errors;
//! - here: the options, the session (one op at a time, changes printed in
//!   order between them) and shutdown.

mod keys;
mod ops;
mod out;
mod plain;
pub(super) mod text;

use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

use clap::builder::TypedValueParser;
use clap::Args;
use rs2p::net::split_host_port;
use rs2p::protocol::sync::{SyncConfig, SyncError, SyncEvent, SyncKey};
use rs2p::sync::{SyncSocket, DEFAULT_SUBNET};
use rs2p::{Event, PeerId};
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinSet;

use super::exit;
use super::explain;
use super::lines::{self, Input};
use super::node::parse_secs;
use super::signals::{Signals, StopSignal};
use super::transport::TransportArgs;
use ops::{parse_json_line, Command, Request};
use out::{OpError, Out};
use plain::parse_plain_line;

pub const AFTER_HELP: &str = r#"Every node of a sync network holds the same dictionary: a write on one
node reaches every node, a node that joins catches up with what the others
hold, and (unless --no-leasing) a key stays its writer's for an hour: other
nodes' writes to it are refused until then (within the second of the
owner's write, the smaller node id wins, as in py2p). The network is the
subnet name plus "1" with leasing, "0" without (default sync1, as py2p's
SyncSocket); nodes with other settings never meet.

Plain mode (default), one command a line (type help):
  set KEY VALUE   get KEY   del KEY   delta KEY {...}   keys
  watch [on|off]  connect HOST:PORT   help   quit
  VALUE is JSON when it parses as JSON (42, true, [1,2], {"a":1}, "text",
  {"$bin":"00ff"}); otherwise the rest of the line, as text. Changes made
  by other nodes print as they arrive ("* KEY = VALUE (by NODE)",
  "* KEY deleted"); `watch off` stops that, `watch` switches it back.
  Results go to stdout; status lines (-- ...) and errors (rs2p: ...) to
  stderr. Keys, values and ids from the network are shown escaped:
  plain text as is, anything else as JSON.

JSON mode (--json): one JSON object per line, both ways.
  stdin ops (each may carry "tag":ANY, echoed in its answer or error):
    {"op":"set","key":K,"value":V}        answered by "updated"
    {"op":"get","key":K}                  answered by "value": key, found,
                                          value, owner, time
    {"op":"delete","key":K}               answered by "deleted"
    {"op":"delta","key":K,"map":{...}}    merge into the map at K; "updated"
    {"op":"update","items":[[K,V],...]}   all or none; one "updated" per item
    {"op":"keys"}                         answered by "keys": count, entries
                                          [{key, value, owner, time}, ...]
    {"op":"connect","addr":"HOST:PORT"}   answered by "connected"
    {"op":"quit"}
  stdout events: ready (id, addr, subnet, network, protocol_id, leasing,
    transport), updated (key, value, owner, time, local), deleted (key,
    local), connected, peer_joined, peer_left, value, keys, and error (op,
    error, tag; a refused lease adds owner and until, Unix seconds) for any
    failed op or malformed line. "local" is true for this node's own writes
    (the answers to its ops), false for changes from the network.
  Keys: a JSON string is the bin key of its UTF-8 bytes (what py2p does with
    every key); {"$str":"k"} is a str key; {"$bin":"<hex>"} a bin key of
    those bytes. Keys print the same way: bin keys that are UTF-8 as plain
    strings, others as {"$bin":...}, str keys as {"$str":...}.
  Values: JSON string = str, integer = int, other number = float,
    true/false, array, object = map; {"$bin":"00ff"} = bin. null is not a
    value (it deletes on the wire): use delete.
  Ops run one at a time, in order, once the --connect dials have finished.
  Lines longer than --max-line (16 MiB) are skipped with an error event.

The node stops on quit, at the end of input after --linger seconds, on
Ctrl-C or on SIGTERM, closing its connections cleanly (a second signal
quits at once).

Examples:
  rs2p sync --bind 127.0.0.1:4444
  rs2p sync --bind 127.0.0.1:4445 --connect 127.0.0.1:4444
  printf '%s\n' '{"op":"set","key":"color","value":"blue","tag":1}' |
    rs2p sync --json --bind 127.0.0.1:0 --connect 127.0.0.1:4444 --linger 2"#;

/// Options of `rs2p sync`.
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Address to listen on; port 0 picks a free port (reported on startup).
    #[arg(long, value_name = "HOST:PORT")]
    pub bind: String,

    /// A node to join at startup; repeat for several. A failed connection is
    /// reported and the node keeps running.
    #[arg(long, value_name = "HOST:PORT")]
    pub connect: Vec<String>,

    /// The network's name; "1" (leasing) or "0" (--no-leasing) is appended,
    /// as py2p does, so the default network is sync1.
    #[arg(long, value_name = "NAME", default_value = DEFAULT_SUBNET)]
    pub subnet: String,

    /// The address advertised to peers (default: the bound address).
    #[arg(long, value_name = "HOST:PORT")]
    pub out_addr: Option<String>,

    /// Any node may overwrite any key (the newest write wins). Every node
    /// of the network must agree: it is part of the network's name.
    #[arg(long)]
    pub no_leasing: bool,

    /// Most keys held; writes of new keys past it are refused.
    #[arg(long, value_name = "N", default_value_t = SyncConfig::default().max_keys)]
    pub max_keys: usize,

    /// Largest value in bytes (msgpack-encoded); larger writes are refused.
    #[arg(long, value_name = "BYTES", default_value_t = SyncConfig::default().max_value_len)]
    pub max_value_len: usize,

    /// Read operations and write events as JSON, one object per line.
    #[arg(long)]
    pub json: bool,

    /// Seconds to keep running after the end of stdin, so the last writes
    /// go out and changes from others still print.
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = parse_secs)]
    pub linger: Duration,

    /// Longest input line, in bytes (64 to 1073741824); a longer line is
    /// skipped whole (and reported) without being held in memory.
    #[arg(long, value_name = "BYTES", default_value_t = lines::DEFAULT_MAX_LINE,
          value_parser = clap::value_parser!(u64).range(64..=1 << 30).map(|v| v as usize))]
    pub max_line: usize,

    /// A seed (`rs2p seed`, or py2p's) to find this node's network
    /// through: the node registers there and dials the nodes registered
    /// before it. Repeatable; a failure is reported and the node keeps
    /// running.
    #[arg(long, value_name = "HOST:PORT")]
    pub bootstrap: Vec<String>,

    /// Send a keep-alive to every peer at this interval, so dead links are
    /// noticed by the idle timeout.
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub keepalive: Option<Duration>,

    /// Close a connection that has sent nothing for this long (use with
    /// --keepalive on every node). Default: never.
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub idle_timeout: Option<Duration>,

    #[command(flatten)]
    pub transport: TransportArgs,
}

/// Runs the node until quit, end of input, Ctrl-C or SIGTERM.
pub async fn run(args: SyncArgs) -> ExitCode {
    let out = Out { json: args.json };
    // Listening from the start: SIGTERM stops us cleanly from then on.
    let mut signals = Signals::new();
    let node = match start(&args).await {
        Ok(node) => node,
        Err(code) => return code,
    };
    // Subscribed before anything can change; printed after `ready`.
    let changes = node.events();
    let peers = node.mesh().events();
    out.ready(&node, &args.subnet, !args.no_leasing);
    let mesh_events = tokio::spawn(print_mesh_events(peers, out));
    let mut input = lines::spawn_stdin(args.max_line);
    let mut session = Session {
        node: node.clone(),
        subnet: args.subnet.clone(),
        leasing: !args.no_leasing,
        out,
        changes: Changes {
            rx: changes,
            out,
            watch: true,
            me: node.mesh().id().clone(),
        },
    };

    let stop = tokio::select! {
        stop = session.serve(&args.connect, &args.bootstrap, &mut input) => stop,
        signal = signals.recv() => Stop::Signal(signal),
    };
    if stop == Stop::EndOfInput && !args.linger.is_zero() {
        let linger = session
            .changes
            .while_printing(tokio::time::sleep(args.linger));
        tokio::select! {
            () = linger => {}
            _ = signals.recv() => {}
        }
    }
    session.changes.drain(&mut Vec::new(), None);
    tracing::info!(?stop, "shutting down");
    if let Stop::Signal(signal) = stop {
        out.notice(&format!(
            "{}: closing connections (again to quit at once)",
            signal.name()
        ));
    }
    tokio::select! {
        () = node.close() => {}
        again = signals.recv() => {
            eprintln!("rs2p: {} again; quitting without closing cleanly.", again.name());
            return ExitCode::from(again.exit_code());
        }
    }
    mesh_events.abort();
    ExitCode::SUCCESS
}

/// Checks the options and starts the node; the exit status on failure,
/// as `rs2p node` (2: a bad option, 1: the machine would not let it
/// listen).
async fn start(args: &SyncArgs) -> Result<SyncSocket, ExitCode> {
    for addr in &args.connect {
        if split_host_port(addr).is_err() {
            return Err(exit::usage(explain::bad_address("connect", addr)));
        }
    }
    let out_addr = match &args.out_addr {
        Some(addr) => match split_host_port(addr) {
            Ok(a) => Some(a),
            Err(_) => return Err(exit::usage(explain::bad_address("out-addr", addr))),
        },
        None => None,
    };
    let tls = match args.transport.tls_options() {
        Ok(tls) => tls,
        Err(e) => {
            eprintln!("rs2p: {e}.");
            return Err(ExitCode::from(2));
        }
    };
    let (keepalive, idle) = (args.keepalive, args.idle_timeout);
    let builder = SyncSocket::builder()
        .subnet(args.subnet.as_str())
        .encryption(args.transport.transport.encryption())
        .leasing(!args.no_leasing)
        .max_keys(args.max_keys)
        .max_value_len(args.max_value_len)
        .mesh(move |m| {
            let m = m.tls(tls).keepalive(keepalive).idle_timeout(idle);
            match out_addr {
                Some(a) => m.out_addr(a.host, a.port),
                None => m,
            }
        });
    builder
        .bind(&args.bind)
        .await
        .map_err(|e| exit::bind_failed(&args.bind, &e))
}

/// Why the session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Quit,
    EndOfInput,
    Signal(StopSignal),
}

async fn print_mesh_events(mut events: broadcast::Receiver<Event>, out: Out) {
    loop {
        match events.recv().await {
            Ok(event) => out.mesh_event(event),
            Err(broadcast::error::RecvError::Lagged(n)) => {
                out.error(
                    None,
                    None,
                    &OpError::new(format!("{n} node events were missed")),
                );
            }
            Err(broadcast::error::RecvError::Closed) => break,
        }
    }
}

/// A change that an op of ours makes, to be printed as its answer.
#[derive(Debug)]
enum Expected {
    Updated(SyncKey),
    Deleted(SyncKey),
}

/// The dictionary's changes, printed in the order they happened: the
/// session prints them between ops, and after each write it takes the
/// changes the write made as that op's answers.
struct Changes {
    rx: broadcast::Receiver<SyncEvent>,
    out: Out,
    /// Plain mode: print changes from the network.
    watch: bool,
    me: PeerId,
}

impl Changes {
    /// Prints one received change (or says what was missed); `false` once
    /// the node is gone.
    fn on_recv(
        &mut self,
        received: Result<SyncEvent, broadcast::error::RecvError>,
        expected: &mut Vec<Expected>,
        answer: Option<&Request>,
    ) -> bool {
        match received {
            Ok(event) => {
                let ours = expected.iter().position(|e| match (e, &event) {
                    (Expected::Updated(k), SyncEvent::Updated { key, owner, .. }) => {
                        k == key && owner == &self.me
                    }
                    (Expected::Deleted(k), SyncEvent::Deleted { key }) => k == key,
                    _ => false,
                });
                let answer = match ours {
                    Some(i) => {
                        expected.remove(i);
                        answer
                    }
                    None => None,
                };
                self.out.change(&event, answer, self.watch);
                true
            }
            Err(broadcast::error::RecvError::Lagged(n)) => {
                let what = if self.out.json {
                    "{\"op\":\"keys\"} lists the dictionary as it is now"
                } else {
                    "keys lists the dictionary as it is now"
                };
                self.out.error(
                    None,
                    None,
                    &OpError::new(format!(
                        "{n} changes were not printed (output fell behind); {what}"
                    )),
                );
                true
            }
            Err(broadcast::error::RecvError::Closed) => false,
        }
    }

    /// Prints every change received so far; those in `expected` as
    /// `answer`'s (each taken from `expected` once printed).
    fn drain(&mut self, expected: &mut Vec<Expected>, answer: Option<&Request>) {
        loop {
            let received = match self.rx.try_recv() {
                Ok(event) => Ok(event),
                Err(broadcast::error::TryRecvError::Lagged(n)) => {
                    Err(broadcast::error::RecvError::Lagged(n))
                }
                Err(_) => return,
            };
            self.on_recv(received, expected, answer);
        }
    }

    /// Runs `work`, printing changes as they come meanwhile.
    async fn while_printing<F: Future>(&mut self, work: F) -> F::Output {
        tokio::pin!(work);
        let mut open = true;
        loop {
            tokio::select! {
                done = &mut work => return done,
                received = self.rx.recv(), if open => {
                    open = self.on_recv(received, &mut Vec::new(), None);
                }
            }
        }
    }
}

/// The node, its output and its changes, serving one op at a time.
struct Session {
    node: SyncSocket,
    /// The subnet name (without the leasing suffix) and leasing, for
    /// error messages.
    subnet: String,
    leasing: bool,
    out: Out,
    changes: Changes,
}

impl Session {
    /// Registers with the `--bootstrap` seeds and joins the `--connect`
    /// nodes, then serves stdin until quit or its end.
    async fn serve(
        &mut self,
        connects: &[String],
        seeds: &[String],
        input: &mut mpsc::Receiver<Input>,
    ) -> Stop {
        if !seeds.is_empty() {
            let joining = rs2p::bootstrap::join_through(seeds, self.node.mesh());
            match self.changes.while_printing(joining).await {
                Ok(n) if self.out.json => self.out.emit(
                    &[("event", "bootstrapped".into()), ("dialled", n.into())],
                    None,
                ),
                Ok(n) => self.out.notice(&format!(
                    "bootstrap: connected to {n} nodes of this network"
                )),
                Err(e) => self.out.error(
                    Some("bootstrap"),
                    None,
                    &OpError::new(format!("bootstrap: {e}")),
                ),
            }
        }
        // In parallel, but before any input: a piped op should find its
        // peers (and their catch-up) there.
        let mut dials = JoinSet::new();
        for addr in connects {
            let (mesh, addr) = (self.node.mesh().clone(), addr.clone());
            dials.spawn(async move {
                let result = mesh.connect_addr(&addr).await;
                (addr, result)
            });
        }
        while let Some(joined) = self.changes.while_printing(dials.join_next()).await {
            let Ok((addr, result)) = joined else { continue };
            match result {
                Ok(id) => self.out.connected(None, &id, &addr),
                Err(e) => {
                    let e = self.explain_connect(&addr, &e);
                    if self.out.json {
                        eprintln!("rs2p: {e}.");
                    }
                    self.out.error(Some("connect"), None, &OpError::new(e));
                }
            }
        }

        let mut open = true;
        loop {
            let line = tokio::select! {
                line = input.recv() => line,
                received = self.changes.rx.recv(), if open => {
                    open = self.changes.on_recv(received, &mut Vec::new(), None);
                    continue;
                }
            };
            let Some(line) = line else {
                return Stop::EndOfInput;
            };
            let line = match line {
                Input::Line(line) => line.text().to_owned(),
                other => {
                    if let Some(problem) = other.problem() {
                        self.out.error(None, None, &OpError::new(problem));
                    }
                    if matches!(other, Input::Failed(_)) {
                        return Stop::EndOfInput;
                    }
                    continue;
                }
            };
            let request = if self.out.json {
                if line.trim().is_empty() {
                    continue;
                }
                parse_json_line(&line).map_err(|bad| {
                    let e = OpError::new(bad.error);
                    self.out.error(bad.op.as_deref(), bad.tag.as_ref(), &e);
                })
            } else {
                match parse_plain_line(&line) {
                    Ok(Some(request)) => Ok(request),
                    Ok(None) => continue,
                    Err(e) => {
                        self.out.error(None, None, &OpError::new(e));
                        continue;
                    }
                }
            };
            let Ok(request) = request else { continue };
            if let Command::Quit = request.command {
                return Stop::Quit;
            }
            if let Err(e) = self.execute(&request).await {
                self.changes.drain(&mut Vec::new(), None);
                self.out.error(Some(request.op), request.tag.as_ref(), &e);
            }
        }
    }

    /// Why joining `addr` failed, in the sync options' terms.
    fn explain_connect(&self, addr: &str, e: &rs2p::Error) -> String {
        explain::sync_connect_error(
            addr,
            e,
            self.node.mesh().protocol(),
            &self.subnet,
            self.leasing,
        )
    }

    /// Runs one request and prints its answer.
    async fn execute(&mut self, request: &Request) -> Result<(), OpError> {
        let node = &self.node;
        let op = request.op;
        let (expected, result) = match &request.command {
            Command::Set { key, value } => (
                vec![Expected::Updated(key.clone())],
                node.set(key.clone(), value.clone()).await.map(|_| ()),
            ),
            Command::Delta { key, map } => (
                vec![Expected::Updated(key.clone())],
                node.apply_delta(key.clone(), map.clone()).await.map(|_| ()),
            ),
            Command::Update { items } => {
                if items.is_empty() {
                    return Err(OpError::new("update: no items"));
                }
                (
                    items
                        .iter()
                        .map(|(k, _)| Expected::Updated(k.clone()))
                        .collect(),
                    node.update(items.clone()).await,
                )
            }
            Command::Delete { key } => match node.delete(key.clone()).await {
                Ok(Some(_)) => (vec![Expected::Deleted(key.clone())], Ok(())),
                Ok(None) => {
                    return Err(OpError::new(format!(
                        "{op}: no key {} here",
                        keys::key_to_text(key)
                    )))
                }
                Err(e) => (Vec::new(), Err(e)),
            },
            Command::Get { key } => {
                self.changes.drain(&mut Vec::new(), None);
                let entry = node.entry(key.clone());
                self.out.value(request, key, entry.as_ref());
                return Ok(());
            }
            Command::Keys => {
                self.changes.drain(&mut Vec::new(), None);
                self.out.keys(request, &node.snapshot());
                return Ok(());
            }
            Command::Connect { addr } => {
                let mesh = node.mesh().clone();
                let dial = async { mesh.connect_addr(addr).await };
                let dialled = self.changes.while_printing(dial).await;
                let id = dialled.map_err(|e| {
                    OpError::new(format!("{op}: {}", self.explain_connect(addr, &e)))
                })?;
                self.out.connected(request.tag.as_ref(), &id, addr);
                return Ok(());
            }
            Command::Watch(on) => {
                let watch = &mut self.changes.watch;
                *watch = on.unwrap_or(!*watch);
                self.out.watching(*watch);
                return Ok(());
            }
            Command::Help => {
                self.out.help();
                return Ok(());
            }
            Command::Quit => return Ok(()),
        };
        let key = match (&request.command, &result) {
            (
                Command::Set { key, .. } | Command::Delta { key, .. } | Command::Delete { key },
                _,
            ) => Some(key),
            // Which of the items was refused: the error names it as text.
            (
                Command::Update { items },
                Err(rs2p::Error::Sync(SyncError::Leased { key: refused, .. })),
            ) => items
                .iter()
                .map(|(k, _)| k)
                .find(|k| k.to_string() == *refused),
            _ => None,
        };
        // The write's changes are in the channel by now (the node publishes
        // them before it answers): print them, and what came before them,
        // in order; ours as the answer. A refused write comes after the
        // changes that led to the refusal.
        let mut expected = if result.is_ok() { expected } else { Vec::new() };
        self.changes.drain(&mut expected, Some(request));
        result.map_err(|e| OpError::from_error(op, key, &e))?;
        // Any the output fell too far behind to see: answered from the
        // dictionary as it is.
        for missed in expected {
            let event = match missed {
                Expected::Updated(key) => match node.entry(key.clone()) {
                    Some(e) => SyncEvent::Updated {
                        key,
                        value: e.value,
                        owner: e.meta.owner,
                        time: e.meta.time,
                    },
                    None => continue,
                },
                Expected::Deleted(key) => SyncEvent::Deleted { key },
            };
            self.out.change(&event, Some(request), self.changes.watch);
        }
        Ok(())
    }
}
