//! rust-libp2p's side: gossipsub and floodsub over TCP + noise + yamux,
//! in the same 4-node line (node i dials node i−1's address explicitly; no
//! mDNS, no Kademlia, no peer exchange). Each node is a `Swarm` driven by
//! its own tokio task, as a libp2p application runs one. Node 0's task
//! publishes the payload (the same 100-byte string, then the counter as 8
//! bytes) in its event loop; node 3's task counts the messages it is given.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{floodsub, gossipsub, identity, noise, tcp, yamux, Multiaddr, PeerId, Swarm};
use tokio::sync::{mpsc, oneshot};

use crate::common::{payload_str, Arrivals, Latency, LatencyResult, Seen, Throughput, PAYLOAD_LEN};

const TOPIC: &str = "line";

/// Which pubsub protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Gossipsub,
    Floodsub,
}

/// Why a publish did not go out.
enum PublishError {
    /// Every queue is full: try again a little later.
    Backoff,
    Fatal(String),
}

/// What a node's loop makes of a behaviour's event.
enum Ev {
    /// A message for the application.
    Message(Vec<u8>),
    /// A neighbour subscribed to the topic.
    Subscribed(PeerId),
    /// Messages the behaviour dropped (gossipsub: queue full or expired).
    Dropped(u64),
    Other,
}

/// The little a node's loop needs of a pubsub behaviour.
trait Pubsub: NetworkBehaviour + Send + 'static
where
    Self::ToSwarm: Send,
{
    fn publish_data(&mut self, data: Vec<u8>) -> Result<(), PublishError>;
    fn event(event: Self::ToSwarm) -> Ev;
    fn on_connected(&mut self, peer: PeerId);
    /// How many neighbours this node would pass a message on to.
    fn ready(&self, subscribed: &[PeerId]) -> usize;
}

impl Pubsub for gossipsub::Behaviour {
    fn publish_data(&mut self, data: Vec<u8>) -> Result<(), PublishError> {
        match self.publish(gossipsub::IdentTopic::new(TOPIC), data) {
            Ok(_) => Ok(()),
            // The per-peer send queues (`connection_handler_queue_len`,
            // 5,000 by default) are full: gossipsub's backpressure. The
            // message went nowhere.
            Err(gossipsub::PublishError::AllQueuesFull(_)) => Err(PublishError::Backoff),
            Err(e) => Err(PublishError::Fatal(e.to_string())),
        }
    }

    fn event(event: gossipsub::Event) -> Ev {
        match event {
            gossipsub::Event::Message { message, .. } => Ev::Message(message.data),
            gossipsub::Event::Subscribed { peer_id, .. } => Ev::Subscribed(peer_id),
            // Reported once a heartbeat: messages to `peer_id` that found
            // its send queue full, or waited in it too long.
            gossipsub::Event::SlowPeer {
                failed_messages, ..
            } => Ev::Dropped((failed_messages.priority + failed_messages.non_priority) as u64),
            _ => Ev::Other,
        }
    }

    fn on_connected(&mut self, _: PeerId) {}

    fn ready(&self, _: &[PeerId]) -> usize {
        // Relays forward to their mesh peers only: the line works once
        // every node has its neighbours in its mesh.
        self.mesh_peers(&gossipsub::IdentTopic::new(TOPIC).hash())
            .count()
    }
}

impl Pubsub for floodsub::Behaviour {
    fn publish_data(&mut self, data: Vec<u8>) -> Result<(), PublishError> {
        // Floodsub has no backpressure: publish only queues.
        self.publish(floodsub::Topic::new(TOPIC), data);
        Ok(())
    }

    fn event(event: floodsub::Event) -> Ev {
        match event {
            floodsub::Event::Message(m) => Ev::Message(m.data.to_vec()),
            floodsub::Event::Subscribed { peer_id, .. } => Ev::Subscribed(peer_id),
            _ => Ev::Other,
        }
    }

    fn on_connected(&mut self, peer: PeerId) {
        // Floodsub passes messages on to the peers of its "partial view".
        self.add_node_to_partial_view(peer);
    }

    fn ready(&self, subscribed: &[PeerId]) -> usize {
        subscribed.len()
    }
}

fn gossipsub_behaviour(key: &identity::Keypair) -> Result<gossipsub::Behaviour, String> {
    let config = gossipsub::ConfigBuilder::default()
        // Message ids by content, as is common (the counter makes every
        // payload distinct). Everything else is the default: signed
        // messages, strict validation, flood publishing, and a mesh target
        // of 6 (low 5), so a node with one or two peers grafts them all as
        // soon as they subscribe; `ready` checks that before each run.
        .message_id_fn(|m: &gossipsub::Message| {
            let mut h = DefaultHasher::new();
            m.data.hash(&mut h);
            gossipsub::MessageId::from(h.finish().to_be_bytes().to_vec())
        })
        .build()
        .map_err(|e| e.to_string())?;
    let mut b =
        gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Signed(key.clone()), config)?;
    b.subscribe(&gossipsub::IdentTopic::new(TOPIC))
        .map_err(|e| e.to_string())?;
    Ok(b)
}

fn floodsub_behaviour(key: &identity::Keypair) -> floodsub::Behaviour {
    let mut b = floodsub::Behaviour::new(key.public().to_peer_id());
    b.subscribe(floodsub::Topic::new(TOPIC));
    b
}

fn swarm<B: Pubsub>(
    behaviour: impl FnOnce(&identity::Keypair) -> Result<B, String>,
) -> Result<Swarm<B>, String>
where
    B::ToSwarm: Send,
{
    Ok(libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| e.to_string())?
        .with_behaviour(|key| {
            behaviour(key).map_err(Box::<dyn std::error::Error + Send + Sync>::from)
        })
        .map_err(|e| e.to_string())?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build())
}

enum Command {
    Dial(Multiaddr),
    Ready(oneshot::Sender<usize>),
    /// Node 0: publish `n` messages, as fast as the loop goes.
    Publish(u64),
    /// Node 0: publish `n` messages, each when node 3 had the one before.
    PublishOneByOne(u64, mpsc::UnboundedReceiver<()>),
}

/// What node 3's application does with each message.
struct Receiver {
    arrivals: Arc<Arrivals>,
    latency: Option<Arc<Latency>>,
    seen: Seen,
}

/// What node 0's loop reports.
#[derive(Default)]
struct SenderStats {
    backoffs: u64,
    /// Messages gossipsub dropped at any node (`SlowPeer` events).
    dropped: u64,
    failure: Option<String>,
}

struct Node {
    commands: mpsc::UnboundedSender<Command>,
    task: tokio::task::JoinHandle<()>,
}

/// The counter after the 100-byte string.
fn counter(data: &[u8]) -> Option<u64> {
    let bytes = data.get(PAYLOAD_LEN..PAYLOAD_LEN + 8)?;
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

async fn run_node<B: Pubsub>(
    mut swarm: Swarm<B>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    listening: oneshot::Sender<Multiaddr>,
    mut receiver: Option<Receiver>,
    stats: Arc<Mutex<SenderStats>>,
    latency: Option<Arc<Latency>>,
    window: Option<(u64, Arc<Arrivals>)>,
) where
    B::ToSwarm: Send,
{
    let mut listening = Some(listening);
    let mut subscribed = Vec::new();
    let text = payload_str().into_bytes();
    // Node 0: messages allowed so far, and the next counter.
    let (mut allowed, mut next) = (0u64, 0u64);
    // Attempts at the current message that every queue refused.
    let mut retries = 0u8;
    let mut one_by_one: Option<(u64, mpsc::UnboundedReceiver<()>)> = None;
    let mut backoff: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
    loop {
        // With a window, node 0 stays at most `w` messages ahead of node 3.
        let limit = match &window {
            Some((w, arrivals)) => allowed.min(arrivals.got() + w),
            None => allowed,
        };
        tokio::select! {
            biased;
            command = commands.recv() => match command {
                None => return,
                Some(Command::Dial(addr)) => {
                    if let Err(e) = swarm.dial(addr) {
                        stats.lock().unwrap_or_else(|e| e.into_inner()).failure = Some(e.to_string());
                    }
                }
                Some(Command::Ready(tx)) => {
                    let _ = tx.send(swarm.behaviour().ready(&subscribed));
                }
                Some(Command::Publish(n)) => allowed = n,
                Some(Command::PublishOneByOne(n, rx)) => {
                    allowed = 1;
                    one_by_one = Some((n, rx));
                }
            },
            event = swarm.select_next_some() => match event {
                SwarmEvent::NewListenAddr { address, .. } => {
                    if let Some(tx) = listening.take() {
                        let _ = tx.send(address);
                    }
                }
                SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                    swarm.behaviour_mut().on_connected(peer_id);
                }
                SwarmEvent::Behaviour(event) => match B::event(event) {
                    Ev::Subscribed(peer) => subscribed.push(peer),
                    Ev::Dropped(k) => stats.lock().unwrap_or_else(|e| e.into_inner()).dropped += k,
                    Ev::Other => {}
                    Ev::Message(data) => {
                        if let Some(r) = receiver.as_mut() {
                            if counter(&data).is_some_and(|i| r.seen.first(i)) {
                                if let Some(lat) = &r.latency {
                                    lat.arrived();
                                }
                                r.arrivals.add(1);
                            } else {
                                r.arrivals.duplicate();
                            }
                        }
                    }
                },
                _ => {}
            },
            Some(()) = async { one_by_one.as_mut()?.1.recv().await }, if one_by_one.is_some() => {
                if let Some((n, _)) = &one_by_one {
                    allowed = (allowed + 1).min(*n);
                }
            }
            () = async { backoff.as_mut().expect("guarded").await }, if backoff.is_some() => {
                backoff = None;
            }
            () = async { window.as_ref().expect("guarded").1.progress.notified().await },
                if window.is_some() && next >= limit && next < allowed => {}
            () = std::future::ready(()), if next < limit && backoff.is_none() => {
                let mut data = Vec::with_capacity(text.len() + 8);
                data.extend_from_slice(&text);
                data.extend_from_slice(&next.to_be_bytes());
                if retries > 0 {
                    // gossipsub keeps the id of a message its queues refused
                    // (publish says `Duplicate` to the same bytes again),
                    // and ids are content hashes here: a retry must differ.
                    data.push(retries);
                }
                if let Some(lat) = &latency {
                    lat.mark();
                }
                match swarm.behaviour_mut().publish_data(data) {
                    Ok(()) => {
                        next += 1;
                        retries = 0;
                    }
                    Err(PublishError::Backoff) => {
                        retries = retries.wrapping_add(1).max(1);
                        // As a user would: wait a moment, then try again.
                        stats.lock().unwrap_or_else(|e| e.into_inner()).backoffs += 1;
                        backoff = Some(Box::pin(tokio::time::sleep(Duration::from_millis(1))));
                    }
                    Err(PublishError::Fatal(e)) => {
                        stats.lock().unwrap_or_else(|e| e.into_inner()).failure = Some(e);
                        allowed = next;
                    }
                }
            }
        }
    }
}

fn spawn<B: Pubsub>(
    swarm: Result<Swarm<B>, String>,
    receiver: Option<Receiver>,
    stats: Arc<Mutex<SenderStats>>,
    latency: Option<Arc<Latency>>,
    window: Option<(u64, Arc<Arrivals>)>,
) -> Result<(Node, oneshot::Receiver<Multiaddr>), String>
where
    B::ToSwarm: Send,
{
    let mut swarm = swarm?;
    swarm
        .listen_on("/ip4/127.0.0.1/tcp/0".parse().map_err(|e| format!("{e}"))?)
        .map_err(|e| e.to_string())?;
    let (tx, rx) = mpsc::unbounded_channel();
    let (listen_tx, listen_rx) = oneshot::channel();
    let task = tokio::spawn(run_node(
        swarm, rx, listen_tx, receiver, stats, latency, window,
    ));
    Ok((Node { commands: tx, task }, listen_rx))
}

/// The line, formed: node 3 counts into `arrivals`.
async fn start(
    kind: Kind,
    n: u64,
    latency: Option<Arc<Latency>>,
    window: u64,
) -> Result<(Vec<Node>, Arc<Arrivals>, Arc<Mutex<SenderStats>>), String> {
    let arrivals = Arrivals::new(n);
    let stats = Arc::new(Mutex::new(SenderStats::default()));
    let mut nodes = Vec::new();
    let mut addrs = Vec::new();
    for i in 0..4 {
        let receiver = (i == 3).then(|| Receiver {
            arrivals: arrivals.clone(),
            latency: latency.clone(),
            seen: Seen::new(n),
        });
        let mark = if i == 0 { latency.clone() } else { None };
        let window = (i == 0 && window > 0).then(|| (window, arrivals.clone()));
        let (node, addr) = match kind {
            Kind::Gossipsub => spawn(
                swarm(gossipsub_behaviour),
                receiver,
                stats.clone(),
                mark,
                window,
            )?,
            Kind::Floodsub => spawn(
                swarm(|k| Ok(floodsub_behaviour(k))),
                receiver,
                stats.clone(),
                mark,
                window,
            )?,
        };
        let addr = tokio::time::timeout(Duration::from_secs(10), addr)
            .await
            .map_err(|_| "no listen address in 10 s".to_string())?
            .map_err(|_| "node ended".to_string())?;
        nodes.push(node);
        addrs.push(addr);
    }
    for i in 1..4 {
        let _ = nodes[i].commands.send(Command::Dial(addrs[i - 1].clone()));
    }
    // Wait until every node would pass messages on to all its neighbours.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut ok = true;
        for (i, node) in nodes.iter().enumerate() {
            let (tx, rx) = oneshot::channel();
            let _ = node.commands.send(Command::Ready(tx));
            let want = if i == 0 || i == 3 { 1 } else { 2 };
            ok &= rx.await.map_err(|_| "node ended")? >= want;
        }
        if ok {
            break;
        }
        if let Some(e) = stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .failure
            .take()
        {
            return Err(e);
        }
        if Instant::now() > deadline {
            return Err("the line did not form in 20 s".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok((nodes, arrivals, stats))
}

fn stop(nodes: Vec<Node>) {
    for node in nodes {
        node.task.abort();
    }
}

/// Node 0 publishes `n` messages as fast as its loop goes (with a
/// non-zero `window`: at most `window` ahead of node 3, a pacing only a
/// benchmark can do); time until node 3 has them all.
pub async fn throughput(
    kind: Kind,
    n: u64,
    window: u64,
    stall: Duration,
    limit: Duration,
) -> Result<Throughput, String> {
    let (nodes, arrivals, stats) = start(kind, n, None, window).await?;
    let start = Instant::now();
    let _ = nodes[0].commands.send(Command::Publish(n));
    let outcome = arrivals
        .wait(start, stall, limit, || {
            stats
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .failure
                .clone()
        })
        .await;
    stop(nodes);
    let stats = stats.lock().unwrap_or_else(|e| e.into_inner());
    Ok(Throughput {
        n,
        outcome,
        delivered: arrivals.got(),
        duplicates: arrivals.duplicates(),
        notes: vec![
            ("publish back-offs (1 ms)".into(), stats.backoffs),
            ("dropped by gossipsub queues".into(), stats.dropped),
            ("window".into(), window),
        ],
    })
}

pub async fn latency(
    kind: Kind,
    total: usize,
    warmup: usize,
    stall: Duration,
) -> Result<LatencyResult, String> {
    let (lat, next) = Latency::new();
    let (nodes, _, _) = start(kind, total as u64, Some(lat.clone()), 0).await?;
    let _ = nodes[0]
        .commands
        .send(Command::PublishOneByOne(total as u64, next));
    let result = lat.wait(total, warmup, stall).await;
    stop(nodes);
    Ok(result)
}
