//! Internal errors: a panic anywhere in the process (the main thread, a
//! tokio task, a node's actor, a reader thread) is a bug, and must end the
//! process with a non-zero status instead of leaving it half alive.
//!
//! [`install_panic_hook`] keeps the default report (the panic message and
//! its location on stderr), adds one line saying what happens next, and
//! flags the panic: long-running subcommands await [`panicked`] next to
//! their work and shut down (closing connections cleanly if they still
//! can) with [`EXIT_INTERNAL`]. Should that not happen within [`GRACE`], a
//! watchdog thread exits the process with that status anyway.

use std::sync::OnceLock;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// The exit status after an internal error (as Rust's own for a panic).
pub const EXIT_INTERNAL: u8 = 101;

/// How long a graceful shutdown after a panic may take.
pub const GRACE: Duration = Duration::from_secs(3);

fn flag() -> &'static CancellationToken {
    static FLAG: OnceLock<CancellationToken> = OnceLock::new();
    FLAG.get_or_init(CancellationToken::new)
}

/// Installs the hook; call once, first thing in `main`.
pub fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        if flag().is_cancelled() {
            return;
        }
        // Said before the flag is raised: once it is, the process may end.
        eprintln!(
            "rs2p: internal error (a bug: please report it with the message above); stopping"
        );
        flag().cancel();
        let watchdog = std::thread::Builder::new()
            .name("rs2p-panic-watchdog".into())
            .spawn(|| {
                std::thread::sleep(GRACE);
                eprintln!(
                    "rs2p: still running {} s after an internal error; exiting now",
                    GRACE.as_secs()
                );
                std::process::exit(i32::from(EXIT_INTERNAL));
            });
        if watchdog.is_err() {
            std::process::exit(i32::from(EXIT_INTERNAL));
        }
    }));
}

/// Whether anything has panicked.
pub fn has_panicked() -> bool {
    flag().is_cancelled()
}

/// Resolves once anything has panicked.
pub async fn panicked() {
    flag().cancelled().await;
}

/// Test hooks, in debug builds only: `RS2P_TEST_PANIC=actor` makes a node's
/// actor panic once it is up, `RS2P_TEST_PANIC=task` a task of the command
/// line itself, so tests can check that a bug ends the process.
#[cfg(debug_assertions)]
pub async fn test_panic(node: &rs2p::MeshSocket) {
    match std::env::var("RS2P_TEST_PANIC").as_deref() {
        Ok("actor") => {
            let _ = node
                .with_layer(|_: &mut (), _| panic!("RS2P_TEST_PANIC=actor: a panic in the actor"))
                .await;
        }
        Ok("task") => {
            tokio::spawn(async { panic!("RS2P_TEST_PANIC=task: a panic in a task") });
        }
        _ => {}
    }
}

/// Test hooks exist in debug builds only.
#[cfg(not(debug_assertions))]
pub async fn test_panic(_node: &rs2p::MeshSocket) {}
