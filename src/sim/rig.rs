//! [`Rig`]: state machines wired together in memory, stepped by hand.
//!
//! Where [`Simulation`](super::Simulation) runs a whole timeline with
//! latency, loss and churn, a `Rig` does nothing by itself: a test (or a
//! benchmark, or a fuzzer) opens links, says which end reads next, advances
//! the clock and looks at every node's state. Frames are the exact bytes of
//! each [`Action::Send`], split again by a [`FrameDecoder`] at the reading
//! end, so what crosses a rig link is what would cross a socket. Nodes are
//! [`Stack`]s, so protocol layers run in the rig as they do in a node.
//!
//! # Examples
//! Three nodes in a line; a broadcast from one end reaches the other:
//! ```
//! use rs2p::sim::rig::Rig;
//! use rs2p::packets;
//!
//! let mut rig = Rig::line(3);
//! rig.settle();
//! assert!(rig.is_peer(0, 1) && rig.is_peer(1, 2));
//! let id = rig.broadcast(0, packets!["hello"]).unwrap();
//! rig.settle();
//! let got: Vec<_> = rig.take_deliveries(2).into_iter().map(|d| d.id).collect();
//! assert_eq!(got, vec![id]);
//! ```

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;

use crate::protocol::mesh::{
    Action, CloseReason, ConnId, Delivery, DialId, Layer, LayerCtx, MeshConfig, MeshEvent,
    MeshState, SendError, Stack, Validation, ValidationId,
};
use crate::protocol::{FrameDecoder, MainFlag, MessageId, Packet, PeerAddr, PeerId, SubFlag};

/// Unix milliseconds at which a rig's clock starts.
pub const RIG_EPOCH_MS: u64 = 1_700_000_000_000;

/// One end of a link: a node's index and its connection id there.
pub type End = (usize, ConnId);

/// What travels on a link: frames, then possibly the end of the stream.
#[derive(Debug)]
enum Item {
    Frame(Bytes),
    Fin,
}

/// A dial a node asked for ([`Action::Dial`]), not carried out unless the
/// rig is told to ([`Rig::auto_dial`] or [`Rig::complete_dial`]).
#[derive(Clone, Debug, PartialEq)]
pub struct DialRequest {
    /// The dialling node.
    pub node: usize,
    /// The dial's id, to echo back.
    pub dial: DialId,
    /// Where it dials.
    pub addr: PeerAddr,
    /// The id it expects there.
    pub expected_id: Option<PeerId>,
}

/// Nodes ([`Stack`]s) and the links between them; see the module
/// documentation.
#[derive(Debug)]
pub struct Rig<L: Layer = ()> {
    nodes: Vec<Stack<L>>,
    now_ms: u64,
    /// Open ends → the other end.
    links: BTreeMap<End, End>,
    /// What waits to be read at an end.
    inbound: BTreeMap<End, VecDeque<Item>>,
    decoders: BTreeMap<End, FrameDecoder>,
    next_conn: Vec<ConnId>,
    auto_dial: bool,
    /// Dials asked for and not carried out.
    pub dials: Vec<DialRequest>,
    /// Connections closed by their node, with the reason.
    pub closed: Vec<(End, CloseReason)>,
    /// Broadcasts held for validation (node, ticket, the broadcast), for
    /// [`validate`](Self::validate).
    pub validations: Vec<(usize, ValidationId, Delivery)>,
    deliveries: Vec<Vec<Delivery>>,
    events: Vec<Vec<MeshEvent>>,
}

/// Rig addresses: node `i` listens on `127.0.0.1:(10_000 + i)`.
pub fn rig_addr(index: usize) -> PeerAddr {
    PeerAddr::new("127.0.0.1", 10_000u16.wrapping_add(index as u16))
}

impl Rig<()> {
    /// `n` plain mesh nodes with default settings (ids `n0`, `n1`, …),
    /// not yet connected.
    pub fn new(n: usize) -> Self {
        Rig::with_nodes(n, |i| {
            (
                MeshState::new(
                    PeerId::from(format!("n{i}")),
                    rig_addr(i),
                    MeshConfig::default(),
                ),
                (),
            )
        })
    }

    /// `n` plain nodes, each dialling the previous one (not yet settled).
    pub fn line(n: usize) -> Self {
        let mut rig = Rig::new(n);
        for i in 1..n {
            rig.connect(i, i - 1);
        }
        rig
    }
}

impl<L: Layer> Rig<L> {
    /// `n` nodes made by `make(index)`: the mesh state (its out address
    /// should be [`rig_addr`]`(index)` for dials to find it) and the layer.
    pub fn with_nodes(n: usize, mut make: impl FnMut(usize) -> (MeshState, L)) -> Self {
        let nodes = (0..n)
            .map(|i| {
                let (mesh, layer) = make(i);
                Stack::new(mesh, layer)
            })
            .collect();
        Rig {
            nodes,
            now_ms: RIG_EPOCH_MS,
            links: BTreeMap::new(),
            inbound: BTreeMap::new(),
            decoders: BTreeMap::new(),
            next_conn: vec![0; n],
            auto_dial: false,
            dials: Vec::new(),
            closed: Vec::new(),
            validations: Vec::new(),
            deliveries: vec![Vec::new(); n],
            events: vec![Vec::new(); n],
        }
    }

    /// Carry out the dials nodes ask for (peer lists, redials, routes) at
    /// once, to the node listening at the address; refused if none does.
    pub fn auto_dial(mut self, on: bool) -> Self {
        self.auto_dial = on;
        self
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the rig has no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The current time, Unix milliseconds.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// Node `i`.
    pub fn node(&self, i: usize) -> &Stack<L> {
        &self.nodes[i]
    }

    /// Node `i`, to drive it directly (a benchmark feeding it frames
    /// without the rig's queues in between).
    pub fn node_mut(&mut self, i: usize) -> &mut Stack<L> {
        &mut self.nodes[i]
    }

    /// Node `i`'s mesh state.
    pub fn mesh(&self, i: usize) -> &MeshState {
        self.nodes[i].mesh()
    }

    /// Node `i`'s id.
    pub fn id(&self, i: usize) -> PeerId {
        self.nodes[i].mesh().id().clone()
    }

    /// Whether `a` has `b` in its routing table.
    pub fn is_peer(&self, a: usize, b: usize) -> bool {
        let b_id = self.id(b);
        self.mesh(a).is_connected(&b_id)
    }

    /// The other end of an open link.
    pub fn other_end(&self, end: End) -> Option<End> {
        self.links.get(&end).copied()
    }

    /// A fresh connection id at node `i`.
    pub fn new_conn(&mut self, i: usize) -> ConnId {
        self.next_conn[i] += 1;
        self.next_conn[i]
    }

    /// `from` dials `to` as its application would (`connect`): the link
    /// opens at once; nothing is read yet. Returns the two ends.
    pub fn connect(&mut self, from: usize, to: usize) -> (End, End) {
        let addr = rig_addr(to);
        let dial = self.with_mesh(from, |m, _, _| m.note_dialling(None, addr));
        let a = (from, self.new_conn(from));
        let b = (to, self.new_conn(to));
        self.open(a, b, Some(dial));
        (a, b)
    }

    /// Opens a link: `from` dialled (with `dial`, if the node knows the
    /// dial), `to` accepted; both send their handshakes (queued, not yet
    /// read).
    pub fn open(&mut self, from: End, to: End, dial: Option<DialId>) {
        self.links.insert(from, to);
        self.links.insert(to, from);
        let now = self.now_ms;
        let mut out = Vec::new();
        let remote = rig_addr(to.0).to_string();
        self.nodes[from.0].on_open(now, from.1, true, remote, dial, &mut out);
        self.apply(from.0, out);
        let mut out = Vec::new();
        let remote = format!("127.0.0.1:{}", 40_000 + from.0);
        self.nodes[to.0].on_open(now, to.1, false, remote, None, &mut out);
        self.apply(to.0, out);
    }

    /// Carries out a dial node `req.node` asked for: to the node at the
    /// address, or refused when there is none.
    pub fn complete_dial(&mut self, req: DialRequest) {
        let target = (0..self.nodes.len()).find(|&i| self.mesh(i).out_addr() == &req.addr);
        match target {
            Some(t) if t != req.node => {
                let a = (req.node, self.new_conn(req.node));
                let b = (t, self.new_conn(t));
                self.open(a, b, Some(req.dial));
            }
            _ => {
                let now = self.now_ms;
                self.nodes[req.node].on_dial_failed(now, req.dial);
            }
        }
    }

    /// Reads what is queued at one end now (frames, and an end of stream).
    pub fn read(&mut self, at: End) {
        let items: Vec<Item> = self.inbound.remove(&at).unwrap_or_default().into();
        for item in items {
            let mut out = Vec::new();
            let now = self.now_ms;
            match item {
                Item::Frame(bytes) => {
                    if !self.links.contains_key(&at) {
                        return;
                    }
                    let max = self.nodes[at.0].mesh().config().limits.max_frame_len;
                    let dec = self
                        .decoders
                        .entry(at)
                        .or_insert_with(|| FrameDecoder::new(max));
                    dec.feed(&bytes);
                    let mut frames = Vec::new();
                    let mut error = None;
                    loop {
                        match dec.next_frame() {
                            Ok(Some(f)) => frames.push(f),
                            Ok(None) => break,
                            Err(e) => {
                                error = Some(e);
                                break;
                            }
                        }
                    }
                    for f in frames {
                        self.nodes[at.0].on_frame(now, at.1, f, &mut out);
                    }
                    if let Some(e) = error {
                        self.nodes[at.0].with_mesh(now, &mut out, |m, out| {
                            m.close(now, at.1, CloseReason::Protocol(e), out)
                        });
                    }
                }
                Item::Fin => {
                    self.links.remove(&at);
                    self.decoders.remove(&at);
                    self.nodes[at.0].on_closed(now, at.1, &mut out);
                }
            }
            self.apply(at.0, out);
        }
    }

    /// Takes the frames queued to be read at `at` without reading them.
    pub fn take_inbound(&mut self, at: End) -> Vec<Bytes> {
        self.inbound
            .remove(&at)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|item| match item {
                Item::Frame(bytes) => Some(bytes),
                Item::Fin => None,
            })
            .collect()
    }

    /// Injects raw bytes to be read at `at`, as if its peer had sent them.
    pub fn inject(&mut self, at: End, bytes: Bytes) {
        self.inbound
            .entry(at)
            .or_default()
            .push_back(Item::Frame(bytes));
    }

    /// Reads everywhere, end by end in order, until nothing is left;
    /// carries out dials when [`auto_dial`](Self::auto_dial) is on.
    /// Returns the number of reads.
    ///
    /// # Panics
    /// If the rig does not settle within a million reads (a livelock in
    /// the state machines under test).
    pub fn settle(&mut self) -> usize {
        for reads in 0..1_000_000 {
            if self.auto_dial && !self.dials.is_empty() {
                for req in std::mem::take(&mut self.dials) {
                    self.complete_dial(req);
                }
                continue;
            }
            let Some(at) = self
                .inbound
                .iter()
                .find(|(_, q)| !q.is_empty())
                .map(|(k, _)| *k)
            else {
                return reads;
            };
            self.read(at);
        }
        panic!("the rig does not settle");
    }

    /// Tells the node at `at` that the send queue of that connection
    /// drained after a burst, as the tokio driver does: the layer's
    /// [`on_writable`](crate::protocol::mesh::Layer::on_writable).
    pub fn writable(&mut self, at: End) {
        let mut out = Vec::new();
        self.nodes[at.0].on_writable(self.now_ms, at.1, &mut out);
        self.apply(at.0, out);
    }

    /// Moves the clock on by `ms` and ticks every node.
    pub fn advance(&mut self, ms: u64) {
        self.now_ms += ms;
        let now = self.now_ms;
        for i in 0..self.nodes.len() {
            let mut out = Vec::new();
            self.nodes[i].on_tick(now, &mut out);
            self.apply(i, out);
        }
    }

    /// Closes an end as its node's driver would on an I/O error: the node
    /// hears `on_closed`, the other end reads an end of stream.
    pub fn drop_link(&mut self, at: End) {
        let Some(other) = self.links.remove(&at) else {
            return;
        };
        self.inbound.remove(&at);
        self.decoders.remove(&at);
        self.inbound.entry(other).or_default().push_back(Item::Fin);
        let now = self.now_ms;
        let mut out = Vec::new();
        self.nodes[at.0].on_closed(now, at.1, &mut out);
        self.apply(at.0, out);
    }

    /// Kills node `i`: every link of it ends; the others read the ends.
    pub fn kill(&mut self, i: usize) {
        let ends: Vec<End> = self.links.keys().filter(|e| e.0 == i).copied().collect();
        for end in ends {
            if let Some(other) = self.links.remove(&end) {
                self.inbound.entry(other).or_default().push_back(Item::Fin);
            }
            self.inbound.remove(&end);
            self.decoders.remove(&end);
        }
    }

    /// Runs a command on node `i`'s mesh and carries out what it asks.
    pub fn with_mesh<R>(
        &mut self,
        i: usize,
        f: impl FnOnce(&mut MeshState, u64, &mut Vec<Action>) -> R,
    ) -> R {
        let now = self.now_ms;
        let mut out = Vec::new();
        let r = self.nodes[i].with_mesh(now, &mut out, |m, out| f(m, now, out));
        self.apply(i, out);
        r
    }

    /// Runs a command on node `i`'s layer and carries out what it asks.
    pub fn with_layer<R>(&mut self, i: usize, f: impl FnOnce(&mut L, &mut LayerCtx<'_>) -> R) -> R {
        let now = self.now_ms;
        let mut out = Vec::new();
        let r = self.nodes[i].with_layer(now, &mut out, f);
        self.apply(i, out);
        r
    }

    /// Node `i` decides about a broadcast it held for validation.
    pub fn validate(&mut self, i: usize, ticket: ValidationId, verdict: Validation) {
        let now = self.now_ms;
        let mut out = Vec::new();
        self.nodes[i].on_validated(now, ticket, verdict, &mut out);
        self.apply(i, out);
    }

    /// Node `i` broadcasts `packets` to the mesh (a user broadcast).
    ///
    /// # Errors
    /// As [`MeshState::send`].
    pub fn broadcast(&mut self, i: usize, packets: Vec<Packet>) -> Result<MessageId, SendError> {
        self.with_mesh(i, |m, now, out| {
            m.send(
                now,
                SubFlag::Broadcast.as_u8().into(),
                MainFlag::Broadcast,
                packets,
                out,
            )
        })
    }

    /// The user messages node `i` delivered since the last call.
    pub fn take_deliveries(&mut self, i: usize) -> Vec<Delivery> {
        std::mem::take(&mut self.deliveries[i])
    }

    /// The events node `i` raised since the last call.
    pub fn take_events(&mut self, i: usize) -> Vec<MeshEvent> {
        std::mem::take(&mut self.events[i])
    }

    /// Carries out what node `node` asked for.
    fn apply(&mut self, node: usize, out: Vec<Action>) {
        for action in out {
            match action {
                Action::Send { conn, frame } => {
                    if let Some(&to) = self.links.get(&(node, conn)) {
                        self.inbound
                            .entry(to)
                            .or_default()
                            .push_back(Item::Frame(frame));
                    }
                }
                Action::Close { conn, reason } => {
                    self.closed.push(((node, conn), reason));
                    // The other end reads the end of stream after what was
                    // already on the way; nothing more is read here.
                    if let Some(other) = self.links.remove(&(node, conn)) {
                        self.inbound.entry(other).or_default().push_back(Item::Fin);
                    }
                    self.inbound.remove(&(node, conn));
                    self.decoders.remove(&(node, conn));
                }
                Action::Dial {
                    dial,
                    addr,
                    expected_id,
                } => self.dials.push(DialRequest {
                    node,
                    dial,
                    addr,
                    expected_id,
                }),
                Action::Deliver(d) => self.deliveries[node].push(d),
                Action::Validate { ticket, delivery } => {
                    self.validations.push((node, ticket, delivery))
                }
                Action::Event(e) => self.events[node].push(e),
            }
        }
    }
}
