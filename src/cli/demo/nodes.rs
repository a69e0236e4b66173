//! The demo's nodes: starting one on loopback with a task that logs what
//! its queue gives out, linking two, looking things up in the log, and
//! closing them all.

use std::time::{Duration, Instant};

use rs2p::protocol::MessageId;
use rs2p::{MeshSocket, Message, MessageKind, PeerId, Protocol};

use crate::cli::explain;

use super::{Demo, FORM_TIMEOUT, SHORT, SUBNET};

/// One node of the demo.
pub(super) struct DemoNode {
    pub(super) name: String,
    pub(super) socket: MeshSocket,
    pub(super) alive: bool,
    /// Added to set up a routed reply, not one of the `--nodes`.
    pub(super) extra: bool,
}

/// One message as a node's queue gave it out.
pub(super) struct Received {
    pub(super) node: usize,
    pub(super) id: MessageId,
    pub(super) kind: MessageKind,
    pub(super) sender: PeerId,
    pub(super) at: Instant,
    pub(super) message: Message,
}

impl Demo {
    /// Starts a node on loopback and a task that logs what its queue gives.
    pub(super) async fn add_node(
        &mut self,
        name: String,
        max_outgoing: usize,
    ) -> Result<usize, String> {
        let socket = MeshSocket::builder()
            .protocol(Protocol::new(SUBNET, "Plaintext"))
            .max_outgoing(max_outgoing)
            .bind("127.0.0.1:0")
            .await
            .map_err(|e| explain::bind_error("bind", "127.0.0.1:0", &e))?;
        let index = self.nodes.len();
        let (log, reader) = (self.log.clone(), socket.clone());
        tokio::spawn(async move {
            while let Ok(message) = reader.next_message().await {
                let received = Received {
                    node: index,
                    id: message.id(),
                    kind: message.kind(),
                    sender: message.sender().clone(),
                    at: Instant::now(),
                    message,
                };
                log.lock().unwrap_or_else(|e| e.into_inner()).push(received);
            }
        });
        tracing::info!(node = %name, id = %socket.id().short(SHORT), addr = %socket.addr(), "demo node started");
        self.nodes.push(DemoNode {
            name,
            socket,
            alive: true,
            extra: false,
        });
        Ok(index)
    }

    /// `a` dials `b` and waits for the handshake.
    pub(super) async fn link(&self, a: usize, b: usize) -> Result<(), String> {
        let port = self.nodes[b].socket.addr().port();
        let addr = format!("127.0.0.1:{port}");
        let a_sock = &self.nodes[a].socket;
        match tokio::time::timeout(FORM_TIMEOUT, a_sock.connect("127.0.0.1", port, None)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!(
                "{}: {}",
                self.nodes[a].name,
                explain::connect_error(&addr, &e, a_sock.protocol())
            )),
            Err(_) => Err(format!(
                "{} could not join {} within {FORM_TIMEOUT:?}",
                self.nodes[a].name, self.nodes[b].name
            )),
        }
    }

    /// How many dials `node` has started so far (0 if it cannot say).
    pub(super) async fn dials_started(&self, node: usize) -> u64 {
        self.nodes[node]
            .socket
            .snapshot()
            .await
            .map_or(0, |s| s.dials_started)
    }

    /// The message with this id that `node` received, if any.
    pub(super) fn received(&self, node: usize, id: MessageId) -> Option<Message> {
        self.find(|r| r.node == node && r.id == id)
            .map(|r| r.message)
    }

    /// A copy of the first logged message that `matches`.
    pub(super) fn find(&self, matches: impl Fn(&Received) -> bool) -> Option<Received> {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        log.iter().find(|r| matches(r)).map(|r| Received {
            node: r.node,
            id: r.id,
            kind: r.kind,
            sender: r.sender.clone(),
            at: r.at,
            message: r.message.clone(),
        })
    }

    /// Closes every live node, in parallel, bounded.
    pub(super) async fn close_all(&mut self) {
        let mut closing = tokio::task::JoinSet::new();
        for node in self.nodes.iter_mut().filter(|n| n.alive) {
            let socket = node.socket.clone();
            closing.spawn(async move { socket.close().await });
        }
        let all = async { while closing.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(5), all)
            .await
            .is_err()
        {
            tracing::warn!("some demo nodes took over 5 s to close");
        }
    }
}
