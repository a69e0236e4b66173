//! `rs2p bench` as an example, until the `rs2p` command line gains the
//! subcommand: `cargo run --release --example bench -- --processes --py2p`.

use std::process::ExitCode;

use clap::Parser;

#[path = "../src/cli/bench.rs"]
#[allow(dead_code)]
mod bench;

/// Benchmarks of rs2p meshes, side by side with a floor relay and py2p.
#[derive(Debug, Parser)]
#[command(name = "bench", after_help = bench::AFTER_HELP)]
struct Cli {
    #[command(flatten)]
    args: bench::BenchArgs,
}

fn main() -> ExitCode {
    let args = Cli::parse().args;
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(bench::run_with(args, &[])),
        Err(e) => {
            eprintln!("bench: cannot start the runtime: {e}");
            ExitCode::FAILURE
        }
    }
}
