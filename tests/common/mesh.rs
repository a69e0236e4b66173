//! Helpers for tests that run rs2p nodes next to other processes.

use std::time::Duration;

use rs2p::{MeshSocket, Message, PeerId, Protocol};
use serde_json::Value;

/// Longest any single wait may take.
pub const WAIT: Duration = Duration::from_secs(30);

/// An rs2p node on loopback on `subnet` over `encryption`.
pub async fn rs_node(subnet: &str, encryption: &str, max_outgoing: usize) -> MeshSocket {
    MeshSocket::builder()
        .protocol(Protocol::new(subnet, encryption))
        .max_outgoing(max_outgoing)
        .bind("127.0.0.1:0")
        .await
        .expect("bind")
}

/// The next message at `node`, bounded by [`WAIT`].
pub async fn next(node: &MeshSocket, what: &str) -> Message {
    match tokio::time::timeout(WAIT, node.next_message()).await {
        Ok(Ok(m)) => m,
        Ok(Err(e)) => panic!("{what}: {e}"),
        Err(_) => panic!("{what}: timed out"),
    }
}

/// Waits (bounded) until `node`'s routing table holds `id`.
pub async fn wait_peer(node: &MeshSocket, id: &str) {
    let target = PeerId::from(id);
    tokio::time::timeout(WAIT, async {
        loop {
            if node
                .routing_table()
                .await
                .unwrap()
                .iter()
                .any(|p| p.id == target)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{id} never joined"));
}

/// The first packet of a py2p message event, as text.
pub fn text_of(v: &Value) -> String {
    v["packets"][0].as_str().unwrap_or_default().to_owned()
}
