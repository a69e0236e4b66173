//! The `rs2p` command line: argument parsing and logging setup. Each
//! subcommand lives in its own module.

mod bench;
mod demo;
mod explain;
mod json;
mod node;
mod oneshot;
mod peers;
mod send;
mod simulate;
mod soak;
mod transport;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{ArgAction, Parser, Subcommand};

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

Run `rs2p node --help` for the JSON operations and events.";

/// Peer-to-peer mesh node speaking the p2p-today protocol 0.7 (works with
/// py2p and js2p nodes).
#[derive(Debug, Parser)]
#[command(name = "rs2p", version, after_help = AFTER_HELP)]
struct Cli {
    /// More logging on stderr: -v for info, -vv for debug, -vvv for trace
    /// (default: warnings only).
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
    /// See a mesh work: nodes in this process on loopback, exercised and
    /// checked (start here).
    #[command(after_help = demo::AFTER_HELP)]
    Demo(demo::DemoArgs),
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
        Command::Demo(args) => runtime.block_on(demo::run(args)),
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

fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => tracing::Level::WARN,
        1 => tracing::Level::INFO,
        2 => tracing::Level::DEBUG,
        _ => tracing::Level::TRACE,
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_max_level(level)
        .init();
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
        assert!(
            Cli::try_parse_from(["rs2p", "node"]).is_err(),
            "--bind is required"
        );
        assert!(Cli::try_parse_from(["rs2p", "node", "--bind", "x:1", "--linger", "-1"]).is_err());
    }
}
