//! `rs2p`: run a p2p-today 0.7 mesh node from the command line.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main()
}
