//! `rs2p peers`: join a node, print the peer list it sends, leave.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use rs2p::protocol::PeerAddr;
use rs2p::{Event, PeerId};
use serde_json::json;
use tokio::sync::broadcast;

use super::oneshot::{self, JoinArgs};
use super::{escape, exit};

pub const AFTER_HELP: &str = r#"A node sends its peer list to every node that connects to it: the ids and
advertised addresses of the nodes it is connected to (without the asking
node). This command does not dial the listed nodes.

Examples:
  rs2p peers --connect 127.0.0.1:4444
  rs2p peers --connect 127.0.0.1:4444 --json | jq -r '.peers[].addr'"#;

/// Options of `rs2p peers`.
#[derive(Debug, Args)]
pub struct PeersArgs {
    /// The node to ask.
    #[arg(long, value_name = "HOST:PORT")]
    pub connect: String,

    /// Print one JSON object: {"id", "addr", "peers": [{"id", "addr"}]},
    /// with full ids.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub join: JoinArgs,
}

/// Joins, waits for the peer list, prints it, leaves.
pub async fn run(args: PeersArgs) -> ExitCode {
    let joined = match oneshot::join(&args.join, std::slice::from_ref(&args.connect)).await {
        Ok(j) => j,
        Err(e) => return e.report(),
    };
    let (id, addr) = joined.peers[0].clone();
    let mut events = joined.node.events();
    // The list sent after the handshake may have gone by before we
    // subscribed: ask again.
    let _ = joined.node.request_peers();
    let list = wait_for_list(&mut events, &id, args.join.timeout).await;
    oneshot::leave(&joined.node).await;
    let Some(mut list) = list else {
        return exit::failure(format_args!(
            "{addr} ({}) answered the handshake but sent no peer list within {} s",
            escape::inline(&id.short(8)),
            args.join.timeout.as_secs_f64()
        ));
    };
    list.sort_by(|a, b| (&a.1, a.0.to_string()).cmp(&(&b.1, b.0.to_string())));
    if args.json {
        let peers: Vec<_> = list
            .iter()
            .map(|(id, addr)| json!({"id": id.to_string(), "addr": addr.to_string()}))
            .collect();
        println!(
            "{}",
            json!({"id": id.to_string(), "addr": addr, "peers": peers})
        );
    } else {
        print!("{}", table(&id, &addr, &list));
    }
    ExitCode::SUCCESS
}

async fn wait_for_list(
    events: &mut broadcast::Receiver<Event>,
    from_peer: &PeerId,
    timeout: Duration,
) -> Option<Vec<(PeerId, PeerAddr)>> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, events.recv()).await {
            Ok(Ok(Event::PeerList { from, peers })) if &from == from_peer => return Some(peers),
            Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(broadcast::error::RecvError::Closed)) | Err(_) => return None,
        }
    }
}

fn table(id: &PeerId, addr: &str, list: &[(PeerId, PeerAddr)]) -> String {
    let mut out = format!(
        "{} at {addr} lists {} peer{}:\n",
        escape::inline(&id.short(8)),
        list.len(),
        if list.len() == 1 { "" } else { "s" }
    );
    if !list.is_empty() {
        out.push_str("  ID        ADDRESS\n");
        for (id, addr) in list {
            out.push_str(&format!(
                "  {:<8}  {}\n",
                escape::inline(&id.short(8)),
                escape::inline(&addr.to_string())
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_lines() {
        let me = PeerId::from("AAAAAAAAAAAA");
        let list = vec![(
            PeerId::from("BBBBBBBBBBBB"),
            PeerAddr::new("127.0.0.1", 4445),
        )];
        assert_eq!(
            table(&me, "127.0.0.1:4444", &list),
            "AAAAAAAA at 127.0.0.1:4444 lists 1 peer:\n  ID        ADDRESS\n  BBBBBBBB  127.0.0.1:4445\n"
        );
        // Ids and addresses come from the network: escaped.
        let list = vec![(PeerId::from("\u{1b}[2JX\nY"), PeerAddr::new("h\rst", 1))];
        let text = table(&me, "127.0.0.1:4444", &list);
        assert!(text.contains("  \\u001b[2JX\\nY  h\\rst:1\n"), "{text}");
        assert!(!text.contains('\u{1b}') && !text.contains('\r'), "{text}");
    }
}
