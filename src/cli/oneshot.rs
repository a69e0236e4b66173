//! What `rs2p send` and `rs2p peers` share: a short-lived node that joins
//! a mesh through `--connect`, does one thing and leaves.

use std::time::Duration;

use clap::Args;
use rs2p::net::split_host_port;
use rs2p::{MeshSocket, PeerId, Protocol};
use tokio::task::JoinSet;

use super::explain;
use super::transport::TransportArgs;

/// Options of a one-shot node.
#[derive(Debug, Args)]
pub struct JoinArgs {
    /// The subnet of the mesh.
    #[arg(long, value_name = "NAME", default_value = "mesh")]
    pub subnet: String,

    /// Address to listen on while joined (default: 127.0.0.1:0 when every
    /// --connect host is local, else 0.0.0.0:0).
    #[arg(long, value_name = "HOST:PORT")]
    pub bind: Option<String>,

    /// Seconds to wait for a peer's handshake before giving up (0.1 s to
    /// 1 h).
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = super::durations::handshake_timeout)]
    pub timeout: Duration,

    #[command(flatten)]
    pub transport: TransportArgs,
}

/// Why [`join`] failed.
#[derive(Debug)]
pub enum JoinError {
    /// An argument is wrong (exit status 2).
    Usage(String),
    /// The node could not start, or no peer answered (exit status 1).
    Failed(String),
}

impl JoinError {
    /// Prints the error and returns the exit status for it.
    pub fn report(self) -> std::process::ExitCode {
        match self {
            JoinError::Usage(e) => super::exit::usage(e),
            JoinError::Failed(e) => super::exit::failure(super::escape::inline(&e)),
        }
    }
}

/// A joined one-shot node and the peers that answered.
pub struct Joined {
    pub node: MeshSocket,
    /// Each answering peer, with the address it was dialled at.
    pub peers: Vec<(PeerId, String)>,
}

/// Starts a node that dials nobody on its own (no peer-list dials, no
/// redials) and joins every `connect` address in parallel. Succeeds if at
/// least one peer completed its handshake; each failure is printed.
///
/// # Errors
/// Why no peer answered, why the node could not start, or which argument
/// is wrong, ready to print.
pub async fn join(args: &JoinArgs, connect: &[String]) -> Result<Joined, JoinError> {
    for addr in connect {
        split_host_port(addr)
            .map_err(|_| JoinError::Usage(explain::bad_address("connect", addr)))?;
    }
    let bind = args.bind.clone().unwrap_or_else(|| default_bind(connect));
    let tls = args.transport.tls_options().map_err(JoinError::Usage)?;
    let node = MeshSocket::builder()
        .protocol(Protocol::new(
            args.subnet.as_str(),
            args.transport.transport.encryption(),
        ))
        .tls(tls)
        .max_outgoing(0)
        .reconnect(false)
        .dial_timeout(args.timeout)
        .handshake_timeout(args.timeout)
        .bind(&bind)
        .await
        .map_err(|e| JoinError::Failed(explain::bind_error("bind", &bind, &e)))?;
    tracing::info!(id = %node.id().short(8), addr = %node.addr(), "one-shot node started");

    let mut dials = JoinSet::new();
    for addr in connect {
        let (node, addr, timeout) = (node.clone(), addr.clone(), args.timeout);
        dials.spawn(async move {
            let result = match tokio::time::timeout(timeout, node.connect_addr(&addr)).await {
                Ok(r) => r,
                Err(_) => Err(rs2p::Error::Timeout(timeout)),
            };
            (addr, result)
        });
    }
    let mut peers = Vec::new();
    let mut failures = Vec::new();
    while let Some(joined) = dials.join_next().await {
        let Ok((addr, result)) = joined else { continue };
        match result {
            Ok(id) => {
                tracing::info!(peer = %id.short(8), %addr, "joined");
                peers.push((id, addr));
            }
            Err(e) => failures.push(explain::connect_error(&addr, &e, node.protocol())),
        }
    }
    if peers.is_empty() {
        node.close().await;
        return Err(JoinError::Failed(failures.join("; ")));
    }
    for failure in failures {
        eprintln!("rs2p: {}.", super::escape::inline(&failure));
    }
    Ok(Joined { node, peers })
}

/// Leaves the mesh: queued frames are flushed before the connections close.
pub async fn leave(node: &MeshSocket) {
    if tokio::time::timeout(Duration::from_secs(5), node.close())
        .await
        .is_err()
    {
        tracing::warn!("closing took longer than 5 s; leaving anyway");
    }
}

/// The default `--bind`: `127.0.0.1:0` when every address of `connect` is
/// on this host (or there is none), else `0.0.0.0:0`, so peers elsewhere
/// can reach back.
pub fn default_bind(connect: &[String]) -> String {
    let all_local = connect
        .iter()
        .all(|addr| split_host_port(addr).is_ok_and(|a| is_local(&a.host)));
    if all_local {
        "127.0.0.1:0".to_owned()
    } else {
        "0.0.0.0:0".to_owned()
    }
}

fn is_local(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}
