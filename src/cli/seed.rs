//! `rs2p seed`: a bootstrap seed, as py2p's `python -m py2p seed` — a
//! storing chord node on subnet `bootstrap` that keeps, for each network,
//! the addresses of the nodes that registered.

use std::process::ExitCode;

use clap::Args;
use rs2p::chord::ChordSocket;
use rs2p::net::split_host_port;
use serde_json::json;

use super::exit;
use super::lines::{self, Input};
use super::signals::Signals;
use super::transport::TransportArgs;

pub const AFTER_HELP: &str = r#"Nodes find their network through seeds: `rs2p node --bootstrap HOST:PORT`
(or `rs2p chord --bootstrap`, or rs2p::bootstrap::join_through in a program,
or py2p's bootstrap() pointed at this seed) registers the node under its
network's id and dials nodes registered before it. Several seeds connected
with --connect share one directory (a DHT). The seed runs until Ctrl-C or a
`quit` line on stdin; with --json it prints one JSON "ready" line.

Example:
  rs2p seed --bind 127.0.0.1:44565
  rs2p node --bind 127.0.0.1:0 --bootstrap 127.0.0.1:44565
  rs2p node --bind 127.0.0.1:0 --bootstrap 127.0.0.1:44565   (finds the first)"#;

/// Options of `rs2p seed`.
#[derive(Debug, Args)]
pub struct SeedArgs {
    /// Address to listen on (py2p's seeds use port 44565).
    #[arg(long, value_name = "HOST:PORT")]
    pub bind: String,

    /// Another seed to share the directory with; repeatable.
    #[arg(long, value_name = "HOST:PORT")]
    pub connect: Vec<String>,

    /// Print the ready line as JSON.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub transport: TransportArgs,
}

/// Runs the seed until Ctrl-C or `quit`.
pub async fn run(args: SeedArgs) -> ExitCode {
    // SIGTERM stops the node cleanly, as Ctrl-C does, from here on.
    let mut signals = Signals::new();
    let tls = match args.transport.tls_options() {
        Ok(tls) => tls,
        Err(e) => return exit::usage(e),
    };
    let seed = ChordSocket::builder()
        .subnet(rs2p::bootstrap::SUBNET)
        .encryption(args.transport.transport.encryption())
        .joined(true)
        .mesh(|m| m.tls(tls))
        .bind(&args.bind)
        .await;
    let seed = match seed {
        Ok(s) => s,
        Err(e) => return exit::bind_failed(&args.bind, &e),
    };
    for addr in &args.connect {
        let result = match split_host_port(addr) {
            Ok(a) => seed.mesh().connect(&a.host, a.port, None).await.map(drop),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            eprintln!("rs2p: seed {addr}: {e}");
        }
    }
    let (id, addr) = (seed.mesh().id().to_string(), seed.mesh().addr());
    if args.json {
        println!(
            "{}",
            json!({"event": "ready", "id": id, "addr": addr.to_string(),
                   "protocol_id": seed.mesh().protocol().id()})
        );
    } else {
        println!("seed {id} on {addr}");
    }
    let mut input = lines::spawn_stdin(lines::DEFAULT_MAX_LINE);
    let quit = async {
        while let Some(line) = input.recv().await {
            if let Input::Line(line) = line {
                let text = line.text();
                if text.trim() == "quit" || text.contains("\"quit\"") {
                    return;
                }
            }
        }
        std::future::pending::<()>().await;
    };
    tokio::select! {
        () = quit => {}
        _ = signals.recv() => {}
    }
    seed.close().await;
    ExitCode::SUCCESS
}
