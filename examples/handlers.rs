//! Message handlers and replies, in one process.
//!
//! ```sh
//! cargo run --example handlers
//! ```
//!
//! A "time server" node answers every `["time?"]` broadcast with a reply
//! (a whisper back to the asker) from a handler, which runs on the node's
//! own task before the receive queue; other messages pass through to
//! `next_message`. The client is two hops away: the server is not
//! connected to it, so the reply finds its way through a route request.

use std::time::Duration;

use rs2p::{packets, MeshSocket, MessageKind};

#[tokio::main]
async fn main() -> Result<(), rs2p::Error> {
    // server <- relay <- client: the client knows only the relay, and
    // max_outgoing(0) keeps it from dialling the server on its own.
    let server = MeshSocket::bind("127.0.0.1:0").await?;
    let relay = MeshSocket::bind("127.0.0.1:0").await?;
    let client = MeshSocket::builder()
        .max_outgoing(0)
        .bind("127.0.0.1:0")
        .await?;
    relay
        .connect("127.0.0.1", server.addr().port(), None)
        .await?;
    client
        .connect("127.0.0.1", relay.addr().port(), None)
        .await?;

    server.register_handler(|msg, _conn| {
        if msg.packets().first().and_then(|p| p.as_str()) != Some("time?") {
            return false; // not ours: queue it for next_message
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        // Handlers must not block: reply() only queues the answer.
        let _ = msg.reply(packets!["time", now as i64]);
        true // handled: not queued
    })?;

    client.send(packets!["time?"]).await?;
    client.send(packets!["hello, anyone?"]).await?;

    // The reply arrives as a whisper from the server.
    let answer = tokio::time::timeout(Duration::from_secs(10), client.next_message())
        .await
        .expect("a reply within 10 s")?;
    assert_eq!(answer.kind(), MessageKind::Whisper);
    assert_eq!(answer.sender(), server.id());
    println!(
        "client {} got {:?} from server {}",
        client.id().short(8),
        answer.packets(),
        answer.sender().short(8)
    );

    // The handler let the other broadcast through to the server's queue.
    let other = tokio::time::timeout(Duration::from_secs(10), server.next_message())
        .await
        .expect("the other broadcast within 10 s")?;
    println!("server's queue got {:?}", other.packets());

    for node in [client, relay, server] {
        node.close().await;
    }
    Ok(())
}
