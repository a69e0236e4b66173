//! `rs2p send`: join a mesh, broadcast one message, leave.

use std::process::ExitCode;

use clap::Args;
use rs2p::Packet;

use super::json::{check_int_literals, encode_hex, packet_from_json};
use super::oneshot::{self, JoinArgs};
use super::{escape, exit};

pub const AFTER_HELP: &str = r#"The message is broadcast once at least one --connect peer has answered
the handshake; the command then flushes it and exits. It prints the message
id (hex) on stdout. Exit status: 0 sent; 1 no peer answered, or the message
could not be sent; 2 bad arguments (a PACKET that is not JSON with --json, an
integer beyond 64 bits, an address that is not HOST:PORT).

Examples:
  rs2p send --connect 127.0.0.1:4444 hello world      # two str packets
  rs2p send --connect 127.0.0.1:4444 --json '"hi"' 42 '{"$bin":"00ff"}'
  rs2p send --connect a.example:4444 --connect b.example:4444 --subnet chat hi"#;

/// Options of `rs2p send`.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// A node of the mesh to join; repeat for several (one answer suffices).
    #[arg(long, value_name = "HOST:PORT", required = true)]
    pub connect: Vec<String>,

    /// Read each PACKET as JSON (as `rs2p node --json` does: 42 is an int,
    /// "\"42\"" a str, {"$bin":"00ff"} bin) instead of as a str.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub join: JoinArgs,

    /// The packets of the message.
    #[arg(value_name = "PACKET", required = true)]
    pub packets: Vec<String>,
}

/// Joins, broadcasts, leaves.
pub async fn run(args: SendArgs) -> ExitCode {
    let packets = match parse_packets(&args.packets, args.json) {
        Ok(p) => p,
        Err(e) => return exit::usage(e),
    };
    let joined = match oneshot::join(&args.join, &args.connect).await {
        Ok(j) => j,
        Err(e) => return e.report(),
    };
    let peers: Vec<String> = joined
        .peers
        .iter()
        .map(|(id, addr)| format!("{} at {addr}", escape::inline(&id.short(8))))
        .collect();
    tracing::info!(peers = %peers.join(", "), "peers answered");
    let code = match joined.node.send(packets).await {
        Ok(id) => {
            println!("{}", encode_hex(&id));
            eprintln!(
                "-- broadcast {} packet(s) to the mesh through {}",
                args.packets.len(),
                peers.join(", ")
            );
            ExitCode::SUCCESS
        }
        Err(e) => exit::failure(format!("cannot send: {e}")),
    };
    oneshot::leave(&joined.node).await;
    code
}

fn parse_packets(args: &[String], json: bool) -> Result<Vec<Packet>, String> {
    if !json {
        return Ok(args.iter().map(|a| Packet::from(a.as_str())).collect());
    }
    args.iter()
        .enumerate()
        .map(|(i, text)| {
            let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
                format!(
                    "packet {} ({text:?}) is not JSON: {e}; quote strings as '\"text\"'",
                    i + 1
                )
            })?;
            check_int_literals(text).map_err(|e| format!("packet {}: {e}", i + 1))?;
            packet_from_json(&value, &format!("packet {}", i + 1)).map_err(|e| e.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_parse() {
        let args = ["hi".to_owned(), "42".to_owned()];
        assert_eq!(
            parse_packets(&args, false).unwrap(),
            vec![Packet::from("hi"), Packet::from("42")]
        );
        assert!(parse_packets(&args, true).is_err(), "hi is not JSON");
        let args = ["\"hi\"".to_owned(), "42".to_owned()];
        assert_eq!(
            parse_packets(&args, true).unwrap(),
            vec![Packet::from("hi"), Packet::from(42)]
        );
        let big = ["18446744073709551616".to_owned()];
        let e = parse_packets(&big, true).unwrap_err();
        assert!(
            e.starts_with("packet 1: integer 18446744073709551616"),
            "{e}"
        );
        let float = ["1.8446744073709552e19".to_owned()];
        assert_eq!(
            parse_packets(&float, true).unwrap(),
            vec![Packet::Float(1.8446744073709552e19)]
        );
    }
}
