//! The JSON operations of `rs2p node --json` (documented in
//! `docs/json.md` and in `rs2p node --help`). Every op is answered by
//! exactly one line carrying its `op` and the caller's `tag`: its result
//! event, or an `error`.

use rs2p::protocol::mesh::SendError;
use rs2p::{Error, MeshSocket, Packet, PeerId};
use serde_json::{json, Map, Value};

use super::out::{OpCtx, Out};
use crate::cli::explain;
use crate::cli::json::{check_int_literals, encode_hex, packets_from_json};

/// The ops, in the order the documentation lists them.
pub const OPS: &[&str] = &["broadcast", "whisper", "reply", "connect", "peers", "quit"];

/// How long a reply waits for a route before the node drops it (the
/// library's default `MeshConfig::request_ttl`).
pub const ROUTE_TTL_SECS: u64 = 60;

/// What the session does after an op.
#[derive(Debug, PartialEq)]
pub enum Flow {
    Continue,
    /// `quit`, with its context for the `stopping` answer.
    Quit(OpCtx),
}

/// Runs one input line as an op; failures become `error` events.
pub async fn handle_line(node: &MeshSocket, out: &Out, line: &str) -> Flow {
    let value: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => {
            out.error(format!("input line is not JSON: {e}"));
            return Flow::Continue;
        }
    };
    let Some(obj) = value.as_object() else {
        out.error("input line is not a JSON object like {\"op\":\"peers\"}");
        return Flow::Continue;
    };
    let ctx = OpCtx {
        op: obj.get("op").and_then(Value::as_str).map(str::to_owned),
        tag: obj.get("tag").cloned(),
    };
    let result = match check_int_literals(line) {
        Ok(()) => run_op(node, out, obj, &ctx).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(flow) => flow,
        Err(e) => {
            let e = match &ctx.op {
                Some(op) => format!("{op}: {e}"),
                None => e,
            };
            out.op_error(Some(&ctx), e);
            Flow::Continue
        }
    }
}

async fn run_op(
    node: &MeshSocket,
    out: &Out,
    obj: &Map<String, Value>,
    ctx: &OpCtx,
) -> Result<Flow, String> {
    let Some(op) = ctx.op.as_deref() else {
        return Err(format!(
            "input object has no string \"op\" (one of {})",
            OPS.join(", ")
        ));
    };
    let packets = || -> Result<Vec<Packet>, String> {
        let v = obj.get("packets").ok_or("missing \"packets\" (an array)")?;
        packets_from_json(v, "packets").map_err(|e| e.to_string())
    };
    let to = || -> Result<PeerId, String> {
        match obj.get("to").and_then(Value::as_str) {
            Some(id) if !id.is_empty() => Ok(PeerId::from(id)),
            _ => Err("missing \"to\" (a node id string)".to_owned()),
        }
    };
    match op {
        "broadcast" => {
            let packets = packets()?;
            let id = node.send(packets).await.map_err(|e| e.to_string())?;
            out.emit("sent", Some(ctx), &[("id", encode_hex(&id).into())]);
        }
        "whisper" => {
            let (to, packets) = (to()?, packets()?);
            let id = node
                .whisper(&to, packets)
                .await
                .map_err(|e| send_error(&e))?;
            out.emit(
                "sent",
                Some(ctx),
                &[
                    ("to", to.to_string().into()),
                    ("id", encode_hex(&id).into()),
                ],
            );
        }
        "reply" => {
            let (to, packets) = (to()?, packets()?);
            if &to == node.id() {
                return Err("\"to\" is this node's own id".to_owned());
            }
            reply(node, out, ctx, &to, packets).await?;
        }
        "connect" => {
            let addr = obj
                .get("addr")
                .and_then(Value::as_str)
                .ok_or("missing \"addr\" (\"HOST:PORT\")")?;
            let id = node
                .connect_addr(addr)
                .await
                .map_err(|e| explain::connect_error(addr, &e, node.protocol()))?;
            out.connected(Some(ctx), &id, addr);
        }
        "peers" => {
            let peers = node.routing_table().await.map_err(|e| e.to_string())?;
            let peers: Vec<Value> = peers
                .iter()
                .map(|p| {
                    json!({
                        "id": p.id.to_string(),
                        "addr": p.out_addr.to_string(),
                        "remote": p.remote,
                        "outgoing": p.outgoing,
                    })
                })
                .collect();
            out.emit("peers", Some(ctx), &[("peers", peers.into())]);
        }
        "quit" => return Ok(Flow::Quit(ctx.clone())),
        other => {
            return Err(format!(
                "unknown op {other:?}: expected one of {}",
                OPS.join(", ")
            ))
        }
    }
    Ok(Flow::Continue)
}

/// A reply: a whisper when `to` is a peer (acknowledged with the message
/// id), otherwise a route request (acknowledged as such: the node gives no
/// signal when the route is found or the request expires).
async fn reply(
    node: &MeshSocket,
    out: &Out,
    ctx: &OpCtx,
    to: &PeerId,
    packets: Vec<Packet>,
) -> Result<(), String> {
    match node.whisper(to, packets.clone()).await {
        Ok(id) => {
            out.emit(
                "sent",
                Some(ctx),
                &[
                    ("to", to.to_string().into()),
                    ("id", encode_hex(&id).into()),
                    ("route", "direct".into()),
                ],
            );
            Ok(())
        }
        Err(Error::Send(SendError::NotConnected(_))) => {
            let peers = node.routing_table().await.map_err(|e| e.to_string())?;
            if peers.is_empty() {
                return Err(format!(
                    "{to} is not a peer, and this node has no peers to ask for a route to it"
                ));
            }
            node.reply_to(to, packets)
                .await
                .map_err(|e| send_error(&e))?;
            out.emit(
                "sent",
                Some(ctx),
                &[
                    ("to", to.to_string().into()),
                    ("route", "requested".into()),
                    ("expires_s", ROUTE_TTL_SECS.into()),
                ],
            );
            Ok(())
        }
        Err(e) => Err(send_error(&e)),
    }
}

fn send_error(e: &Error) -> String {
    match e {
        Error::Send(SendError::NotConnected(id)) => format!(
            "{id} is not a connected peer (whisper goes to direct peers only; \
             use reply to reach any node of the mesh)"
        ),
        Error::Send(SendError::TooManyPending) => "too many replies are already waiting for \
             a route (at most 1,024, each for up to 60 s): try again later"
            .to_owned(),
        other => other.to_string(),
    }
}
