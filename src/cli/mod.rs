//! The `rs2p` command line: argument parsing and logging setup. Each
//! subcommand lives in its own module.

mod bench;
mod chord;
mod demo;
mod durations;
mod escape;
mod exit;
mod explain;
mod fatal;
mod json;
mod lines;
mod node;
mod oneshot;
mod peers;
mod seed;
mod send;
mod signals;
mod simulate;
mod soak;
mod sync;
mod transport;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{ArgAction, Parser, Subcommand};
use tracing_subscriber::filter::{Directive, EnvFilter, LevelFilter};

const AFTER_HELP: &str = "\
Examples:
  See a whole mesh work, in one process on loopback:
    rs2p demo

  Start a chat node, and a second one that joins it:
    rs2p node --bind 127.0.0.1:4444
    rs2p node --bind 127.0.0.1:4445 --connect 127.0.0.1:4444

  The same over TLS, keeping strangers out (verified mode):
    rs2p node --bind 127.0.0.1:4444 --transport ssl --cert a.pem --key a.key --trust ca.pem
    rs2p node --bind 127.0.0.1:4445 --transport ssl --cert b.pem --key b.key --trust ca.pem \\
      --connect 127.0.0.1:4444

  A replicated dictionary: two nodes of a sync network (type help):
    rs2p sync --bind 127.0.0.1:4444
    rs2p sync --bind 127.0.0.1:4445 --connect 127.0.0.1:4444

  Drive a node from a script, one JSON object per line:
    echo '{\"op\":\"broadcast\",\"packets\":[\"hi\",42]}' | \\
      rs2p node --json --bind 127.0.0.1:0 --connect 127.0.0.1:4444

  One-shot: broadcast a message, or list a node's peers:
    rs2p send --connect 127.0.0.1:4444 hello
    rs2p peers --connect 127.0.0.1:4444

  Measure: a local mesh side by side with a floor relay and py2p; a
  10,000-node mesh in virtual time:
    rs2p bench --processes --py2p
    rs2p simulate --nodes 10000 --churn 0.1

Run `rs2p node --help` for the chat commands, the JSON operations and
events, and running as a daemon; `rs2p sync --help` for the dictionary's.

Exit status (every subcommand): 0 success; 1 a runtime failure (cannot
listen, no peer answered, the node stopped on its own); 2 bad arguments;
3 `rs2p demo` ran but a check failed; 101 internal error (a bug); 130/143 a
second Ctrl-C/SIGTERM cut a graceful shutdown short.

Logging: -v, -vv, -vvv on stderr; RUST_LOG (EnvFilter syntax, for example
RUST_LOG=rs2p::net=debug) adds to or overrides it.";

/// Peer-to-peer mesh node speaking the p2p-today protocol 0.7 (works with
/// py2p and js2p nodes).
#[derive(Debug, Parser)]
#[command(name = "rs2p", version, after_help = AFTER_HELP)]
struct Cli {
    /// More logging on stderr: -v for info, -vv for debug, -vvv for trace
    /// (default: warnings only). RUST_LOG adds to or overrides it.
    #[arg(short, long, action = ArgAction::Count, global = true)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a mesh node: chat on stdin/stdout, or JSON lines with --json.
    #[command(after_help = node::AFTER_HELP)]
    Node(node::NodeArgs),
    /// See a mesh work: 2 to 64 nodes in this process on loopback,
    /// exercised and checked (start here; `simulate` for larger meshes).
    #[command(after_help = demo::AFTER_HELP)]
    Demo(demo::DemoArgs),
    /// Run a node of a sync network (a replicated dictionary): commands on
    /// stdin/stdout, or JSON lines with --json.
    #[command(after_help = sync::AFTER_HELP)]
    Sync(sync::SyncArgs),
    /// Run a DHT node (chord): set, get, delete, join the ring.
    #[command(after_help = chord::AFTER_HELP)]
    Chord(chord::ChordArgs),
    /// Run a seed: a storing chord node on subnet `bootstrap` that other
    /// nodes find their networks through.
    #[command(after_help = seed::AFTER_HELP)]
    Seed(seed::SeedArgs),
    /// Join a mesh, broadcast one message, leave.
    #[command(after_help = send::AFTER_HELP)]
    Send(send::SendArgs),
    /// Join a node, print its peer list, leave.
    #[command(after_help = peers::AFTER_HELP)]
    Peers(peers::PeersArgs),
    /// Benchmark a local mesh: throughput, latency, bytes on the wire,
    /// memory; side by side with a floor relay and real py2p nodes.
    #[command(after_help = bench::AFTER_HELP)]
    Bench(bench::BenchArgs),
    /// Simulate a large mesh in virtual time (same protocol state machine):
    /// coverage, time to full coverage, transmissions, duplicates.
    #[command(after_help = simulate::AFTER_HELP)]
    Simulate(simulate::SimulateArgs),
    /// Run a mesh for a long time under load, churn and misbehaving peers:
    /// memory, file descriptors, losses and duplicates over time.
    #[command(after_help = soak::AFTER_HELP)]
    Soak(soak::SoakArgs),
}

/// Parses the arguments, sets up logging and runs the subcommand.
pub fn main() -> ExitCode {
    fatal::install_panic_hook();
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rs2p: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match cli.command {
        Command::Node(args) => runtime.block_on(node::run(args)),
        Command::Sync(args) => runtime.block_on(sync::run(args)),
        Command::Demo(args) => runtime.block_on(demo::run(args)),
        Command::Chord(args) => runtime.block_on(chord::run(args)),
        Command::Seed(args) => runtime.block_on(seed::run(args)),
        Command::Send(args) => runtime.block_on(send::run(args)),
        Command::Peers(args) => runtime.block_on(peers::run(args)),
        Command::Bench(args) => runtime.block_on(bench::run(args)),
        Command::Simulate(args) => simulate::run(args),
        Command::Soak(args) => runtime.block_on(soak::run(args)),
    };
    // Blocked readers (stdin) must not hold the process open.
    runtime.shutdown_background();
    code
}

/// Logs on stderr: `-v` sets the level of everything; `RUST_LOG` (in
/// `EnvFilter` syntax) adds directives, a bare level in it replacing the
/// one `-v` set.
fn init_logging(verbose: u8) {
    let filter = log_filter(verbose, std::env::var("RUST_LOG").ok().as_deref());
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter)
        .init();
}

fn log_filter(verbose: u8, rust_log: Option<&str>) -> EnvFilter {
    let level = match verbose {
        0 => LevelFilter::WARN,
        1 => LevelFilter::INFO,
        2 => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    };
    let mut filter = EnvFilter::default().add_directive(level.into());
    for spec in rust_log.unwrap_or_default().split(',') {
        let spec = spec.trim();
        if spec.is_empty() {
            continue;
        }
        match spec.parse::<Directive>() {
            Ok(directive) => filter = filter.add_directive(directive),
            Err(e) => eprintln!("rs2p: ignoring {spec:?} in RUST_LOG: {e}."),
        }
    }
    filter
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn node_args_parse() {
        let cli = Cli::try_parse_from([
            "rs2p",
            "node",
            "--bind",
            "127.0.0.1:0",
            "--connect",
            "a:1",
            "--connect",
            "b:2",
            "--json",
            "-vv",
            "--linger",
            "0.5",
        ])
        .unwrap();
        assert_eq!(cli.verbose, 2);
        let Command::Node(args) = cli.command else {
            panic!("expected node: {:?}", cli.command);
        };
        assert_eq!(args.connect, ["a:1", "b:2"]);
        assert_eq!(args.subnet, "mesh");
        assert!(args.json);
        assert_eq!(args.linger, std::time::Duration::from_millis(500));
        assert!(Cli::try_parse_from(["rs2p", "node", "--bind", "x:1", "--linger", "-1"]).is_err());
        // --bind has a default.
        let cli = Cli::try_parse_from(["rs2p", "node"]).unwrap();
        let Command::Node(args) = cli.command else {
            panic!("expected node");
        };
        assert_eq!(args.bind, None);
        assert!(!args.daemon);
        assert!(Cli::try_parse_from(["rs2p", "node", "--daemon", "--linger", "2"]).is_err());
    }

    /// Every duration option of every subcommand refuses zero, negative,
    /// NaN and infinite values where they make no sense.
    #[test]
    fn duration_options_are_checked() {
        let refused = |args: &[&str]| {
            let mut argv = vec!["rs2p"];
            argv.extend(args);
            match Cli::try_parse_from(&argv) {
                Ok(cli) => panic!("accepted {args:?}: {cli:?}"),
                Err(e) => {
                    assert_eq!(e.exit_code(), 2, "{args:?}");
                    e.to_string()
                }
            }
        };
        for bad in ["0", "0.0001", "-1", "nan", "inf", "1e9", "soon"] {
            refused(&["node", "--keepalive", bad]);
        }
        for bad in ["0", "0.5", "-1", "NaN", "-inf", "1e12"] {
            refused(&["node", "--idle-timeout", bad]);
        }
        for bad in ["-1", "nan", "inf"] {
            refused(&["node", "--linger", bad]);
        }
        for sub in ["send", "peers"] {
            for bad in ["0", "0.01", "-1", "nan", "inf", "1e9"] {
                let mut args = vec![sub, "--connect", "h:1", "--timeout", bad];
                if sub == "send" {
                    args.push("hi");
                }
                refused(&args);
            }
        }
        for flag in ["--latency", "--jitter"] {
            for bad in ["-1", "nan", "inf", "1e12"] {
                refused(&["simulate", flag, bad]);
            }
        }
        for flag in ["--join-ms", "--settle-ms"] {
            refused(&["simulate", flag, "99999999999"]);
        }
        let e = refused(&["node", "--keepalive", "0"]);
        assert!(e.contains("at least 0.1 s"), "{e}");
        assert!(
            Cli::try_parse_from(["rs2p", "node", "--keepalive", "0.1", "--idle-timeout", "1"])
                .is_ok()
        );
    }

    #[test]
    fn log_filters() {
        let f = log_filter(1, None).to_string();
        assert_eq!(f, "info");
        let f = log_filter(0, Some("rs2p::net=debug, bad=[")).to_string();
        assert!(f.contains("rs2p::net=debug") && f.contains("warn"), "{f}");
        // A bare level in RUST_LOG replaces the one of -v.
        let f = log_filter(0, Some("trace")).to_string();
        assert_eq!(f, "trace");
    }

    #[test]
    fn no_build_path_in_any_help() {
        let mut cmd = Cli::command();
        cmd.build();
        let mut helps = vec![cmd.render_long_help().to_string()];
        for sub in cmd.get_subcommands_mut() {
            helps.push(sub.render_long_help().to_string());
        }
        for help in helps {
            assert!(!help.contains(env!("CARGO_MANIFEST_DIR")), "{help}");
        }
    }

    #[test]
    fn sync_args_parse() {
        let cli = Cli::try_parse_from(["rs2p", "sync", "--bind", "127.0.0.1:0"]).unwrap();
        let Command::Sync(args) = cli.command else {
            panic!("expected sync: {:?}", cli.command);
        };
        assert_eq!(args.subnet, "sync");
        assert!(!args.no_leasing && !args.json);
        assert_eq!((args.max_keys, args.max_value_len), (100_000, 1 << 20));
        let cli = Cli::try_parse_from([
            "rs2p",
            "sync",
            "--bind",
            "127.0.0.1:0",
            "--connect",
            "a:1",
            "--subnet",
            "inv",
            "--no-leasing",
            "--max-keys",
            "10",
            "--max-value-len",
            "64",
            "--json",
            "--linger",
            "0",
            "--transport",
            "ssl",
        ])
        .unwrap();
        let Command::Sync(args) = cli.command else {
            panic!("expected sync: {:?}", cli.command);
        };
        assert_eq!(args.connect, ["a:1"]);
        assert_eq!((args.subnet.as_str(), args.no_leasing), ("inv", true));
        assert_eq!((args.max_keys, args.max_value_len), (10, 64));
        assert!(args.json && args.linger.is_zero());
        assert!(
            Cli::try_parse_from(["rs2p", "sync"]).is_err(),
            "--bind is required"
        );
    }
}
