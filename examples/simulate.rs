//! `rs2p simulate` as an example, until the `rs2p` command line gains the
//! subcommand: `cargo run --release --example simulate -- --nodes 10000`.

use std::process::ExitCode;

use clap::Parser;

#[path = "../src/cli/simulate.rs"]
#[allow(dead_code)]
mod simulate;

/// Simulate a p2p-today 0.7 mesh of many rs2p nodes in virtual time.
#[derive(Debug, Parser)]
#[command(name = "simulate", after_help = simulate::AFTER_HELP)]
struct Cli {
    #[command(flatten)]
    args: simulate::SimulateArgs,
}

fn main() -> ExitCode {
    simulate::run(Cli::parse().args)
}
