//! Stop signals: Ctrl-C (SIGINT) and SIGTERM (what `kill`, systemd and
//! container runtimes send) are handled alike — the first one stops a node
//! gracefully, closing every connection; a second one quits at once.
//!
//! Any long-running subcommand (`rs2p node`, `rs2p sync`, …) creates one
//! [`Signals`] as soon as it starts, before it binds anything, and awaits
//! [`Signals::recv`] next to its work.

/// Which signal asked us to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    /// SIGINT, Ctrl-C.
    Interrupt,
    /// SIGTERM.
    Terminate,
}

impl StopSignal {
    /// Its name, as in `kill -l`.
    pub fn name(self) -> &'static str {
        match self {
            StopSignal::Interrupt => "SIGINT",
            StopSignal::Terminate => "SIGTERM",
        }
    }

    /// The exit status of a process that quits at once on a second signal
    /// (128 + the signal's number, as shells report).
    pub fn exit_code(self) -> u8 {
        match self {
            StopSignal::Interrupt => 130,
            StopSignal::Terminate => 143,
        }
    }
}

/// The stop signals, listened to from creation on (the default action of
/// SIGTERM, ending the process without cleanup, is replaced from then).
pub struct Signals {
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    /// Starts listening. Must be called inside the tokio runtime. A signal
    /// that cannot be listened to is logged and never fires.
    pub fn new() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let listen = |kind: SignalKind, name: &str| match signal(kind) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(%e, "cannot listen for {name}");
                    None
                }
            };
            Signals {
                interrupt: listen(SignalKind::interrupt(), "SIGINT"),
                terminate: listen(SignalKind::terminate(), "SIGTERM"),
            }
        }
        #[cfg(not(unix))]
        {
            Signals {}
        }
    }

    /// Waits for the next stop signal.
    ///
    /// Cancel safety: cancel-safe; a signal that arrives while nobody
    /// waits is kept for the next call.
    pub async fn recv(&mut self) -> StopSignal {
        #[cfg(unix)]
        {
            async fn next(s: &mut Option<tokio::signal::unix::Signal>) {
                if let Some(s) = s {
                    if s.recv().await.is_some() {
                        return;
                    }
                }
                std::future::pending().await
            }
            tokio::select! {
                () = next(&mut self.interrupt) => StopSignal::Interrupt,
                () = next(&mut self.terminate) => StopSignal::Terminate,
            }
        }
        #[cfg(not(unix))]
        {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
            StopSignal::Interrupt
        }
    }
}
