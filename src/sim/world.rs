//! [`Simulation`]: many [`MeshState`]s (each with a protocol [`Layer`] on
//! top, if the simulation has one) wired together by simulated links,
//! driven by one event queue in virtual time.
//!
//! Nothing here touches a socket or a clock. A node "dials" an address of
//! the form `("10.a.b.c", 4444)`, which the simulator maps to a node index;
//! the frames a node sends are the exact bytes of its `Action::Send`, fed to
//! the receiving end's [`FrameDecoder`] and from there to `on_frame`.

use std::collections::HashMap;

use bytes::Bytes;

use super::config::SimConfig;
use super::link::LinkState;
use super::queue::{EventQueue, Micros};
use super::report::{SimReport, Topology, Traffic};
use super::SimRng;
use crate::protocol::mesh::{
    Action, CloseReason, ConnId, DialId, Layer, LayerCtx, MeshConfig, MeshState, Stack,
};
use crate::protocol::{
    compression, py2p_addr_text, uuid4_text, FrameDecoder, MainFlag, MessageId, Packet, PeerAddr,
    PeerId, SubFlag, CHECKSUM_LEN, PREFIX_LEN,
};

/// Unix time (seconds) at virtual time zero: message timestamps look real.
pub const EPOCH_SECS: u64 = 1_700_000_000;

/// The port every simulated node listens on.
pub const SIM_PORT: u16 = 4444;

/// No broadcast: the tag of control frames.
const NO_TAG: u32 = u32::MAX;

/// The simulated address of node `index`.
pub fn sim_addr(index: usize) -> PeerAddr {
    let n = index + 1;
    PeerAddr::new(
        format!("10.{}.{}.{}", (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff),
        SIM_PORT,
    )
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    /// Dialled, not yet reported open to its node.
    Pending,
    Open,
    Closed,
}

/// One end of a simulated connection. Its index in `Simulation::ends` is
/// the `ConnId` its node knows it by.
#[derive(Debug)]
struct End {
    node: u32,
    peer_end: ConnId,
    status: Status,
    outgoing: bool,
    dial: Option<DialId>,
    remote: String,
    decoder: FrameDecoder,
    /// The direction from this end to the other.
    link: LinkState,
}

#[derive(Debug)]
pub(super) struct Node<L> {
    pub(super) state: Stack<L>,
    pub(super) alive: bool,
    pub(super) joined: bool,
    pub(super) ends: Vec<ConnId>,
}

#[derive(Debug)]
enum Event {
    Join(u32),
    Open(ConnId),
    Refused { node: u32, dial: Option<DialId> },
    Frame { end: ConnId, bytes: Bytes, tag: u32 },
    PeerClosed(ConnId),
    Tick(u32),
    Broadcast(u32),
    Kill,
}

#[derive(Debug)]
pub(super) struct Bcast {
    pub(super) origin: u32,
    pub(super) sent: Micros,
    pub(super) transmissions: u64,
    pub(super) bytes: u64,
}

/// A deterministic discrete-event simulation of a mesh of [`MeshState`]s.
///
/// # Examples
/// ```
/// use rs2p::sim::{SimConfig, Simulation};
/// let report = Simulation::new(SimConfig { nodes: 20, broadcasts: 3, ..SimConfig::default() }).run();
/// assert_eq!(report.summary.coverage_min, 1.0);
/// assert_eq!(report.summary.repeated_deliveries, 0);
/// ```
#[derive(Debug)]
pub struct Simulation<L: Layer = ()> {
    pub(super) cfg: SimConfig,
    /// Draws for links (jitter, loss).
    pub(super) link_rng: SimRng,
    /// Draws for the plan (bootstrap peers, origins, victims).
    pub(super) plan_rng: SimRng,
    queue: EventQueue<Event>,
    pub(super) now: Micros,
    pub(super) end_at: Micros,
    pub(super) nodes: Vec<Node<L>>,
    pub(super) index_of_addr: HashMap<PeerAddr, u32>,
    pub(super) index_of_id: HashMap<PeerId, u32>,
    ends: Vec<End>,
    pub(super) out: Vec<Action>,
    pub(super) ids: HashMap<MessageId, u32>,
    pub(super) bcasts: Vec<Bcast>,
    pub(super) receptions: Vec<u32>,
    pub(super) deliveries: Vec<u32>,
    pub(super) first_delivery: Vec<Micros>,
    pub(super) traffic: Traffic,
    pub(super) setup_traffic: Option<Traffic>,
    pub(super) topology_at_first_broadcast: Option<Topology>,
    pub(super) events: u64,
    pub(super) killed: usize,
}

impl Simulation<()> {
    /// Builds plain mesh nodes and schedules the whole timeline.
    pub fn new(cfg: SimConfig) -> Self {
        Simulation::with_layers(cfg, |_, _| ())
    }
}

impl<L: Layer> Simulation<L> {
    /// Builds the nodes, each with the layer `make(index, id)`, and
    /// schedules the whole timeline.
    pub fn with_layers(cfg: SimConfig, mut make: impl FnMut(usize, &PeerId) -> L) -> Self {
        let mut root = SimRng::new(cfg.seed);
        let mut id_rng = root.fork();
        let link_rng = root.fork();
        let mut plan_rng = root.fork();
        let n = cfg.nodes;
        let mut nodes = Vec::with_capacity(n);
        let mut index_of_addr = HashMap::with_capacity(n);
        let mut index_of_id = HashMap::with_capacity(n);
        let base = MeshConfig {
            compression: cfg.compression.clone(),
            max_outgoing: cfg.max_outgoing,
            ..MeshConfig::default()
        };
        for i in 0..n {
            let addr = sim_addr(i);
            let id = PeerId::derive(
                &py2p_addr_text(&addr.host, addr.port),
                base.protocol.id(),
                &uuid4_text(id_rng.bytes16()),
            );
            let config = MeshConfig {
                seed: id_rng.next_u64(),
                ..base.clone()
            };
            index_of_addr.insert(addr.clone(), i as u32);
            index_of_id.insert(id.clone(), i as u32);
            nodes.push(Node {
                state: Stack::new(MeshState::new(id.clone(), addr, config), make(i, &id)),
                alive: false,
                joined: false,
                ends: Vec::new(),
            });
        }
        let mut queue = EventQueue::new();
        let ms = |m: u64| m * 1000;
        for i in 0..n {
            let at = ms(cfg.join_ms) * i as u64 / n.max(1) as u64;
            queue.push(at, Event::Join(i as u32));
        }
        let first = ms(cfg.first_broadcast_ms());
        for k in 0..cfg.broadcasts {
            queue.push(
                first + ms(cfg.broadcast_interval_ms) * k as u64,
                Event::Broadcast(k as u32),
            );
        }
        let churn_end = first + ms(cfg.broadcast_interval_ms) * cfg.broadcasts as u64;
        let victims = ((n as f64) * cfg.churn.clamp(0.0, 1.0)).round() as usize;
        for _ in 0..victims {
            let at = first + plan_rng.below(churn_end - first + 1);
            queue.push(at, Event::Kill);
        }
        let b = cfg.broadcasts;
        Simulation {
            end_at: ms(cfg.end_ms()),
            link_rng,
            plan_rng,
            queue,
            now: 0,
            nodes,
            index_of_addr,
            index_of_id,
            // ConnId 0 is never used: a placeholder keeps ids and indices equal.
            ends: vec![End {
                node: u32::MAX,
                peer_end: 0,
                status: Status::Closed,
                outgoing: false,
                dial: None,
                remote: String::new(),
                decoder: FrameDecoder::new(0),
                link: LinkState::default(),
            }],
            out: Vec::new(),
            ids: HashMap::new(),
            bcasts: Vec::with_capacity(b),
            receptions: vec![0; b * n],
            deliveries: vec![0; b * n],
            first_delivery: vec![0; b * n],
            traffic: Traffic::default(),
            setup_traffic: None,
            topology_at_first_broadcast: None,
            events: 0,
            killed: 0,
            cfg,
        }
    }

    /// Runs the whole timeline and reports.
    pub fn run(mut self) -> SimReport {
        self.run_until(self.end_at);
        self.report()
    }

    /// Processes every event up to virtual time `until` (µs).
    pub fn run_until(&mut self, until: Micros) {
        while self.queue.peek_time().is_some_and(|t| t <= until) {
            let Some((at, event)) = self.queue.pop() else {
                break;
            };
            self.now = at;
            self.events += 1;
            self.handle(event);
        }
        self.now = self.now.max(until);
    }

    /// The current virtual time, in µs.
    pub fn now(&self) -> Micros {
        self.now
    }

    /// The state machine of node `index`.
    pub fn node(&self, index: usize) -> Option<&MeshState> {
        self.nodes.get(index).map(|n| n.state.mesh())
    }

    /// The protocol layer of node `index`.
    pub fn layer(&self, index: usize) -> Option<&L> {
        self.nodes.get(index).map(|n| n.state.layer())
    }

    /// Runs a command on node `index`'s layer now (in virtual time) and
    /// carries out what it asks; `None` if the node is not alive.
    pub fn with_layer<R>(
        &mut self,
        index: usize,
        f: impl FnOnce(&mut L, &mut LayerCtx<'_>) -> R,
    ) -> Option<R> {
        if !self.is_alive(index) {
            return None;
        }
        let now = self.now_ms();
        let mut out = std::mem::take(&mut self.out);
        let r = self.nodes[index].state.with_layer(now, &mut out, f);
        self.apply(index as u32, &mut out);
        self.out = out;
        Some(r)
    }

    /// Whether node `index` has joined and not been killed.
    pub fn is_alive(&self, index: usize) -> bool {
        self.nodes.get(index).is_some_and(|n| n.alive)
    }

    fn now_ms(&self) -> u64 {
        EPOCH_SECS * 1000 + self.now / 1000
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Join(i) => self.join(i),
            Event::Open(end) => self.open(end),
            Event::Refused { node, dial } => {
                if let (true, Some(dial)) = (self.nodes[node as usize].alive, dial) {
                    let now_ms = self.now_ms();
                    self.nodes[node as usize].state.on_dial_failed(now_ms, dial);
                }
            }
            Event::Frame { end, bytes, tag } => self.frame(end, bytes, tag),
            Event::PeerClosed(end) => self.peer_closed(end),
            Event::Tick(i) => {
                if !self.nodes[i as usize].alive {
                    return;
                }
                let mut out = std::mem::take(&mut self.out);
                let now_ms = self.now_ms();
                self.nodes[i as usize].state.on_tick(now_ms, &mut out);
                self.apply(i, &mut out);
                self.out = out;
                let next = self.now + self.cfg.tick_ms.max(1) * 1000;
                if next <= self.end_at {
                    self.queue.push(next, Event::Tick(i));
                }
            }
            Event::Broadcast(k) => self.broadcast(k),
            Event::Kill => self.kill(),
        }
    }

    fn join(&mut self, i: u32) {
        let node = &mut self.nodes[i as usize];
        node.alive = true;
        node.joined = true;
        let phase = self.plan_rng.below(self.cfg.tick_ms.max(1) * 1000);
        self.queue.push(self.now + phase, Event::Tick(i));
        // Dial `bootstrap` distinct random earlier nodes that are alive.
        let earlier: Vec<u32> = (0..i).filter(|&j| self.nodes[j as usize].alive).collect();
        let want = self.cfg.bootstrap.min(earlier.len());
        let mut picked: Vec<u32> = Vec::with_capacity(want);
        while picked.len() < want {
            let j = earlier[self.plan_rng.below(earlier.len() as u64) as usize];
            if !picked.contains(&j) {
                picked.push(j);
            }
        }
        for j in picked {
            let addr = sim_addr(j as usize);
            let now = self.now_ms();
            let dial = self.nodes[i as usize]
                .state
                .with_mesh(now, &mut Vec::new(), |m, _| {
                    m.note_dialling(None, addr.clone())
                });
            self.dial(i, dial, &addr);
        }
    }

    fn new_end(
        &mut self,
        node: u32,
        outgoing: bool,
        dial: Option<DialId>,
        remote: String,
    ) -> ConnId {
        let id = self.ends.len() as ConnId;
        self.ends.push(End {
            node,
            peer_end: 0,
            status: Status::Pending,
            outgoing,
            dial,
            remote,
            decoder: FrameDecoder::new(
                self.nodes[node as usize]
                    .state
                    .mesh()
                    .config()
                    .limits
                    .max_frame_len,
            ),
            link: LinkState::default(),
        });
        self.nodes[node as usize].ends.push(id);
        id
    }

    fn dial(&mut self, from: u32, dial: DialId, addr: &PeerAddr) {
        let latency = self.cfg.link.latency_us();
        let target = self
            .index_of_addr
            .get(addr)
            .copied()
            .filter(|&t| self.nodes[t as usize].alive);
        let Some(target) = target else {
            // Nobody listens there: refused after a round trip.
            self.queue.push(
                self.now + 2 * latency,
                Event::Refused {
                    node: from,
                    dial: Some(dial),
                },
            );
            return;
        };
        let from_addr = sim_addr(from as usize);
        let a = self.new_end(from, true, Some(dial), addr.to_string());
        let ephemeral = 32_768 + (a % 28_000) as u16;
        let b = self.new_end(
            target,
            false,
            None,
            format!("{}:{ephemeral}", from_addr.host),
        );
        self.ends[a as usize].peer_end = b;
        self.ends[b as usize].peer_end = a;
        // The listener accepts when the SYN arrives; the dialler's connect
        // completes a round trip after it started.
        self.queue.push(self.now + latency, Event::Open(b));
        self.queue.push(self.now + 2 * latency, Event::Open(a));
    }

    fn open(&mut self, end: ConnId) {
        let e = &mut self.ends[end as usize];
        let node = e.node;
        if e.status != Status::Pending || !self.nodes[node as usize].alive {
            return;
        }
        e.status = Status::Open;
        let (outgoing, remote, dial) = (e.outgoing, e.remote.clone(), e.dial);
        let now_ms = self.now_ms();
        let mut out = std::mem::take(&mut self.out);
        self.nodes[node as usize]
            .state
            .on_open(now_ms, end, outgoing, remote, dial, &mut out);
        self.apply(node, &mut out);
        self.out = out;
        // Frames that arrived before the open (never, with these timings).
        self.drain(end);
    }

    fn frame(&mut self, end: ConnId, bytes: Bytes, tag: u32) {
        let e = &mut self.ends[end as usize];
        let node = e.node;
        if e.status == Status::Closed || !self.nodes[node as usize].alive {
            return;
        }
        e.decoder.feed(&bytes);
        if tag != NO_TAG {
            let slot = tag as usize * self.cfg.nodes + node as usize;
            self.receptions[slot] += 1;
        }
        if e.status == Status::Open {
            self.drain(end);
        }
    }

    /// Hands every whole frame buffered at `end` to its node.
    fn drain(&mut self, end: ConnId) {
        loop {
            let now = self.now_ms();
            let e = &mut self.ends[end as usize];
            if e.status != Status::Open {
                return;
            }
            let node = e.node;
            let mut out = std::mem::take(&mut self.out);
            match e.decoder.next_frame() {
                Ok(Some(frame)) => {
                    self.nodes[node as usize]
                        .state
                        .on_frame(now, end, frame, &mut out);
                }
                Ok(None) => {
                    self.out = out;
                    return;
                }
                Err(err) => {
                    e.decoder.clear();
                    self.nodes[node as usize]
                        .state
                        .with_mesh(now, &mut out, |m, out| {
                            m.close(now, end, CloseReason::Protocol(err), out)
                        });
                }
            }
            self.apply(node, &mut out);
            self.out = out;
        }
    }

    fn peer_closed(&mut self, end: ConnId) {
        let now = self.now_ms();
        let e = &mut self.ends[end as usize];
        let node = e.node;
        let was = e.status;
        e.status = Status::Closed;
        if !self.nodes[node as usize].alive {
            return;
        }
        match was {
            Status::Open => {
                let mut out = std::mem::take(&mut self.out);
                self.nodes[node as usize]
                    .state
                    .on_closed(now, end, &mut out);
                self.apply(node, &mut out);
                self.out = out;
            }
            Status::Pending if e.outgoing => {
                if let Some(dial) = e.dial {
                    self.nodes[node as usize].state.on_dial_failed(now, dial);
                }
            }
            _ => {}
        }
    }

    /// Carries out what node `node` asked for.
    fn apply(&mut self, node: u32, out: &mut Vec<Action>) {
        for action in out.drain(..) {
            match action {
                Action::Send { conn, frame } => self.send(conn, frame),
                Action::Close { conn, .. } => self.close(conn),
                Action::Dial { dial, addr, .. } => self.dial(node, dial, &addr),
                Action::Deliver(d) => {
                    if let Some(&b) = self.ids.get(&d.id) {
                        let slot = b as usize * self.cfg.nodes + node as usize;
                        self.deliveries[slot] += 1;
                        if self.deliveries[slot] == 1 {
                            self.first_delivery[slot] = self.now;
                        }
                    }
                }
                // Simulated nodes never turn validation on.
                Action::Event(_) | Action::Validate { .. } => {}
            }
        }
    }

    fn send(&mut self, conn: ConnId, frame: Bytes) {
        let Some(e) = self.ends.get_mut(conn as usize) else {
            return;
        };
        if e.status != Status::Open {
            return;
        }
        let arrival = e
            .link
            .transmit(&self.cfg.link, &mut self.link_rng, self.now, frame.len());
        let peer = e.peer_end;
        let tag = self.classify(&frame);
        let len = frame.len() as u64;
        if tag == NO_TAG {
            self.traffic.control_frames += 1;
            self.traffic.control_bytes += len;
        } else {
            self.traffic.broadcast_frames += 1;
            self.traffic.broadcast_bytes += len;
            let b = &mut self.bcasts[tag as usize];
            b.transmissions += 1;
            b.bytes += len;
        }
        self.queue.push(
            arrival,
            Event::Frame {
                end: peer,
                bytes: frame,
                tag,
            },
        );
    }

    /// Which broadcast (if any) a frame carries: its body starts with the
    /// message id when uncompressed.
    fn classify(&self, frame: &[u8]) -> u32 {
        if self.ids.is_empty() {
            return NO_TAG;
        }
        let peek = |body: &[u8]| {
            body.get(..CHECKSUM_LEN)
                .and_then(|id| <&MessageId>::try_from(id).ok())
                .and_then(|id| self.ids.get(id).copied())
        };
        let body = frame.get(PREFIX_LEN..).unwrap_or_default();
        if let Some(tag) = peek(body) {
            return tag;
        }
        if let Some(&method) = self.cfg.compression.first() {
            if let Ok(plain) = compression::decompress(method, body, 1 << 24) {
                return peek(&plain).unwrap_or(NO_TAG);
            }
        }
        NO_TAG
    }

    fn close(&mut self, conn: ConnId) {
        let Some(e) = self.ends.get_mut(conn as usize) else {
            return;
        };
        if e.status == Status::Closed {
            return;
        }
        e.status = Status::Closed;
        let at = e.link.close(&self.cfg.link, self.now);
        let peer = e.peer_end;
        self.queue.push(at, Event::PeerClosed(peer));
    }

    fn broadcast(&mut self, k: u32) {
        if self.topology_at_first_broadcast.is_none() {
            self.topology_at_first_broadcast = Some(self.topology());
            self.setup_traffic = Some(self.traffic.clone());
        }
        let alive: Vec<u32> = (0..self.nodes.len() as u32)
            .filter(|&i| self.nodes[i as usize].alive)
            .collect();
        if alive.is_empty() {
            return;
        }
        let origin = alive[self.plan_rng.below(alive.len() as u64) as usize];
        let mut payload = vec![0xA5u8; self.cfg.payload_len.max(4)];
        payload[..4].copy_from_slice(&k.to_be_bytes());
        let now = self.now_ms();
        let mut out = std::mem::take(&mut self.out);
        let sent = self.nodes[origin as usize]
            .state
            .with_mesh(now, &mut out, |m, out| {
                m.send(
                    now,
                    SubFlag::Broadcast.as_u8().into(),
                    MainFlag::Broadcast,
                    vec![Packet::bin(payload)],
                    out,
                )
            });
        self.bcasts.push(Bcast {
            origin,
            sent: self.now,
            transmissions: 0,
            bytes: 0,
        });
        let b = self.bcasts.len() as u32 - 1;
        if let Ok(id) = sent {
            self.ids.insert(id, b);
        }
        self.apply(origin, &mut out);
        self.out = out;
    }

    fn kill(&mut self) {
        let alive: Vec<u32> = (0..self.nodes.len() as u32)
            .filter(|&i| self.nodes[i as usize].alive)
            .collect();
        if alive.is_empty() {
            return;
        }
        let victim = alive[self.plan_rng.below(alive.len() as u64) as usize];
        self.nodes[victim as usize].alive = false;
        self.killed += 1;
        // The OS closes the dead process's sockets: every peer sees a close.
        let ends = std::mem::take(&mut self.nodes[victim as usize].ends);
        for end in ends {
            self.close(end);
        }
    }
}
