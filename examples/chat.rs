//! Two terminals chatting over a mesh.
//!
//! ```sh
//! # terminal 1
//! cargo run --example chat -- 127.0.0.1:4444
//! # terminal 2: listen on 4445 and join the first
//! cargo run --example chat -- 127.0.0.1:4445 127.0.0.1:4444
//! ```
//!
//! Every line typed is broadcast to the mesh; lines from the others print
//! as `<sender id, first 8 chars>: <text>`. A third terminal joining
//! either one sees both. Ctrl-D (end of input) or Ctrl-C leaves.

use std::io::BufRead;

use rs2p::{packets, MeshSocket};
use tokio::sync::mpsc;

#[tokio::main]
async fn main() -> Result<(), rs2p::Error> {
    let mut args = std::env::args().skip(1);
    let bind = args.next().unwrap_or_else(|| "127.0.0.1:4444".to_owned());
    let node = MeshSocket::bind(&bind).await?;
    println!("-- {} listening on {}", node.id().short(8), node.addr());
    for addr in args {
        let peer = node.connect_addr(&addr).await?;
        println!("-- joined {} at {addr}", peer.short(8));
    }

    // Print what arrives.
    let reader = node.clone();
    tokio::spawn(async move {
        while let Ok(msg) = reader.next_message().await {
            let text = msg
                .packets()
                .first()
                .and_then(|p| p.as_str())
                .unwrap_or("?");
            println!("{}: {text}", msg.sender().short(8));
        }
    });

    // Read stdin on a plain thread: a blocked read must not hold up exit.
    let (tx, mut lines) = mpsc::channel::<String>(16);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });

    loop {
        tokio::select! {
            line = lines.recv() => match line {
                Some(line) if line.trim().is_empty() => {}
                Some(line) => { node.send(packets![line]).await?; }
                None => break,
            },
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    println!("-- leaving");
    node.close().await;
    Ok(())
}
