//! Chat mode: a line of stdin is broadcast as one str packet, and a line
//! starting with `/` is a command.

use rs2p::protocol::mesh::SendError;
use rs2p::{Error, MeshSocket, Packet, PeerId};

use super::ops::{Flow, ROUTE_TTL_SECS};
use super::out::{short, OpCtx, Out};
use crate::cli::escape;

/// The chat commands, for `/help` and `rs2p node --help`.
pub const HELP: &str = "\
  /peers            list the connected peers
  /whisper ID TEXT  send TEXT to one connected peer (ID: its id or a prefix)
  /reply TEXT       reply to the sender of the last message (routed if needed)
  /id               this node's id, address and subnet
  /quit             close every connection and exit
  /help             the commands
  //TEXT            broadcast TEXT starting with one /";

/// Handles one line typed in chat mode.
pub async fn handle_line(node: &MeshSocket, out: &Out, line: &str) -> Flow {
    let Some(command) = line.strip_prefix('/') else {
        broadcast(node, out, line).await;
        return Flow::Continue;
    };
    if command.starts_with('/') {
        broadcast(node, out, command).await;
        return Flow::Continue;
    }
    let (name, rest) = command
        .split_once(char::is_whitespace)
        .map_or((command, ""), |(n, r)| (n, r.trim_start()));
    let result = match name {
        "peers" => peers(node, out).await,
        "whisper" | "w" => whisper(node, out, rest).await,
        "reply" | "r" => reply(node, out, rest).await,
        "id" => {
            out.status(format_args!(
                "this node is {} at {} (advertised as {}), subnet {} (id {}), transport {}",
                node.id(),
                node.addr(),
                escape::inline(&node.out_addr().to_string()),
                escape::quote(node.protocol().subnet()),
                node.protocol().id(),
                node.protocol().encryption()
            ));
            Ok(())
        }
        "quit" | "exit" => return Flow::Quit(OpCtx::default()),
        "help" | "?" => {
            out.status(format_args!("commands:\n{HELP}"));
            Ok(())
        }
        other => Err(format!(
            "unknown command /{}: type /help for the list (to broadcast a line \
             starting with /, type it as //…)",
            escape::inline(other)
        )),
    };
    if let Err(e) = result {
        out.error(e);
    }
    Flow::Continue
}

async fn broadcast(node: &MeshSocket, out: &Out, text: &str) {
    if let Err(e) = node.send(vec![Packet::from(text)]).await {
        out.error(format!("cannot send: {e}"));
    }
}

async fn peers(node: &MeshSocket, out: &Out) -> Result<(), String> {
    let mut peers = node.routing_table().await.map_err(|e| e.to_string())?;
    peers.sort_by_key(|p| p.id.to_string());
    let mut text = format!(
        "{} peer{}",
        peers.len(),
        if peers.len() == 1 { "" } else { "s" }
    );
    for p in &peers {
        text.push_str(&format!(
            "\n   {}  {}  {}",
            short(&p.id),
            escape::inline(&p.out_addr.to_string()),
            if p.outgoing { "dialled" } else { "dialled us" }
        ));
    }
    out.status(text);
    Ok(())
}

/// The connected peer whose id is `prefix` or starts with it.
async fn find_peer(node: &MeshSocket, prefix: &str) -> Result<PeerId, String> {
    let peers = node.routing_table().await.map_err(|e| e.to_string())?;
    let exact = PeerId::from(prefix);
    if peers.iter().any(|p| p.id == exact) {
        return Ok(exact);
    }
    let matches: Vec<PeerId> = peers
        .into_iter()
        .map(|p| p.id)
        .filter(|id| id.to_string().starts_with(prefix))
        .collect();
    match matches.len() {
        1 => Ok(matches.into_iter().next().expect("one")),
        0 => Err(format!(
            "no connected peer's id starts with {} (see /peers)",
            escape::inline(prefix)
        )),
        n => Err(format!(
            "{n} peers' ids start with {}: give more of the id",
            escape::inline(prefix)
        )),
    }
}

async fn whisper(node: &MeshSocket, out: &Out, args: &str) -> Result<(), String> {
    let (prefix, text) = args
        .split_once(char::is_whitespace)
        .map(|(p, t)| (p, t.trim_start()))
        .filter(|(p, t)| !p.is_empty() && !t.is_empty())
        .ok_or("usage: /whisper ID TEXT")?;
    let to = find_peer(node, prefix).await?;
    node.whisper(&to, vec![Packet::from(text)])
        .await
        .map_err(|e| format!("cannot whisper: {e}"))?;
    out.status(format_args!("whispered to {}", short(&to)));
    Ok(())
}

async fn reply(node: &MeshSocket, out: &Out, text: &str) -> Result<(), String> {
    if text.is_empty() {
        return Err("usage: /reply TEXT".to_owned());
    }
    let to = out
        .last_sender()
        .ok_or("no message received yet: nobody to reply to")?;
    let packets = vec![Packet::from(text)];
    match node.whisper(&to, packets.clone()).await {
        Ok(_) => {
            out.status(format_args!("replied to {}", short(&to)));
            Ok(())
        }
        Err(Error::Send(SendError::NotConnected(_))) => {
            let peers = node.routing_table().await.map_err(|e| e.to_string())?;
            if peers.is_empty() {
                return Err(format!(
                    "cannot reply: {} is not a peer, and there are no peers to ask for a \
                     route to it",
                    short(&to)
                ));
            }
            node.reply_to(&to, packets)
                .await
                .map_err(|e| format!("cannot reply: {e}"))?;
            out.status(format_args!(
                "{} is not a direct peer: the reply waits for a route through the mesh \
                 (it is dropped if none is found within {ROUTE_TTL_SECS} s)",
                short(&to)
            ));
            Ok(())
        }
        Err(e) => Err(format!("cannot reply: {e}")),
    }
}
