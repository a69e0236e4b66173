//! Exit statuses, the same for every subcommand (documented in `rs2p
//! --help` and the README):
//!
//! | status | meaning |
//! |---|---|
//! | 0 | done as asked (a node stopped by quit, end of input or a signal) |
//! | 1 | a runtime failure: cannot listen, no peer answered, the node stopped on its own, a file could not be written |
//! | 2 | bad arguments: clap's own errors, and values found wrong afterwards (an address that is not `HOST:PORT`, conflicting or unreadable TLS files) |
//! | 3 | `rs2p demo` ran, but a check failed |
//! | 101 | internal error: something panicked (a bug) |
//! | 130, 143 | a second SIGINT or SIGTERM cut a graceful shutdown short |

use std::fmt::Display;
use std::process::ExitCode;

/// A runtime failure.
pub const FAILURE: u8 = 1;
/// Bad arguments (clap uses 2 for its own errors too).
pub const USAGE: u8 = 2;
/// `rs2p demo`: a check failed.
pub const CHECKS_FAILED: u8 = 3;

/// Prints `rs2p: MESSAGE.` on stderr; exit status [`USAGE`].
pub fn usage(message: impl Display) -> ExitCode {
    eprintln!("rs2p: {message}.");
    ExitCode::from(USAGE)
}

/// Prints `rs2p: MESSAGE.` on stderr; exit status [`FAILURE`].
pub fn failure(message: impl Display) -> ExitCode {
    eprintln!("rs2p: {message}.");
    ExitCode::from(FAILURE)
}

/// Listening on `--bind ADDR` failed: options that cannot work (an
/// address that is not `HOST:PORT`, a key that is not the certificate's)
/// are [`USAGE`] errors; the machine refusing (address in use, …) is a
/// [`FAILURE`].
pub fn bind_failed(addr: &str, e: &rs2p::Error) -> ExitCode {
    let message = super::explain::bind_error("bind", addr, e);
    match e {
        rs2p::Error::BadAddress(_) | rs2p::Error::Transport(_) => usage(message),
        _ => failure(message),
    }
}
