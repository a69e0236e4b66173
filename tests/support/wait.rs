//! Bounded waiting: the one default bound every test uses for anything that
//! should happen "soon" ([`WAIT`]), the polling interval for conditions
//! that have no event of their own ([`POLL`]), and the polling helpers.
//!
//! Prefer awaiting an event (a message, a subscription, a line of a child
//! process) to polling; poll only what has no event, and always inside a
//! bound. Tests that assert a property of time itself ("fails within 8 s",
//! "the demo finishes within 60 s") keep their own named constants.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// The default bound for anything that should happen "soon": an answer, a
/// message, a handshake, a child process starting or exiting.
pub const WAIT: Duration = Duration::from_secs(20);

/// The default polling interval for conditions without an event.
pub const POLL: Duration = Duration::from_millis(20);

/// Polls `cond` every [`POLL`] until it holds, for at most `within`.
/// Panics with `what` (and the last description `cond` gave) otherwise.
pub async fn wait_until<F, Fut>(what: &str, within: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let deadline = Instant::now() + within;
    let mut last;
    loop {
        match cond().await {
            Ok(()) => return,
            Err(why) => last = why,
        }
        if Instant::now() >= deadline {
            panic!("timed out after {within:?} waiting for {what}: {last}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// [`wait_until`] for blocking code (no runtime): polls `cond` every `poll`
/// until it holds, for at most `within`; panics with `what` and the last
/// reason otherwise.
pub fn wait_until_blocking(
    what: &str,
    within: Duration,
    poll: Duration,
    mut cond: impl FnMut() -> Result<(), String>,
) {
    let deadline = std::time::Instant::now() + within;
    loop {
        let why = match cond() {
            Ok(()) => return,
            Err(why) => why,
        };
        if std::time::Instant::now() >= deadline {
            panic!("timed out after {within:?} waiting for {what}: {why}");
        }
        std::thread::sleep(poll);
    }
}
