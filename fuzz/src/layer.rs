//! `layer_stack`: the extension interface itself. A test layer, [`Probe`],
//! does whatever its decision stream says with every [`LayerCtx`]
//! operation from every hook, stacked on the mesh under the shared driver.

use std::collections::BTreeMap;

use bytes::Bytes;
use rs2p::protocol::mesh::{CloseReason, ConnId, Delivery, Layer, LayerCtx, Stack};
use rs2p::protocol::{IdWire, InternalMessage, Packet, PeerAddr, PeerId, SubFlag};

use crate::driver::{mesh_command, run, Harness, Scenario};
use crate::gen::{finish, header, packet, peer_id, ME};
use crate::Input;

/// Longest decision stream a probe keeps.
const MAX_SCRIPT: usize = 4096;

/// One thing a probe does through its context.
enum Op {
    Whisper(Target, u8, Vec<Packet>),
    Broadcast(u8, Vec<Packet>),
    Dial(Pick, u16),
    Close(Target, bool),
    /// Reads `known_peers`, `mesh`, `id` and the clock.
    Look,
}

/// A connection to act on.
enum Target {
    /// The one the hook is about (if any), else the first peer's.
    Hook,
    /// The n-th peer's in the routing table.
    Peer(u8),
    /// A connection id, open or not.
    Any(u8),
}

/// A node to dial.
enum Pick {
    /// One of the known ids.
    Known(u8),
    /// The n-th the mesh knows an address of.
    Book(u8),
    /// This node.
    Me,
    /// A connected peer.
    Peer(u8),
}

/// A layer that does what its decisions say from every hook and command,
/// and keeps the peers the hooks told it of.
#[derive(Debug, Default)]
pub struct Probe {
    /// Decisions, read from `pos`; zeros once they run out (do nothing).
    script: Vec<u8>,
    pos: usize,
    /// Which user sub-flags (by their low three bits) it claims; bit 7:
    /// also the protocol's own ones that reach layers (store, notify, …).
    claim: u8,
    /// Peers as `on_peer_ready` and `on_peer_left` told them.
    pub peers: BTreeMap<PeerId, ConnId>,
    pub hooks: usize,
    pub messages: usize,
    pub sent: usize,
    pub dials: usize,
}

impl Probe {
    fn plan(&mut self) -> Vec<Op> {
        let mut inp = Input::new(&self.script[self.pos.min(self.script.len())..]);
        let n = inp.byte() % 4;
        let ops = (0..n).map(|_| op(&mut inp)).collect();
        self.pos += inp.position();
        ops
    }

    /// Carries out a plan; `conn` is the hook's connection, if any.
    fn act(&mut self, ctx: &mut LayerCtx<'_>, conn: Option<ConnId>) {
        assert_eq!(ctx.id().as_bytes(), ME.as_bytes(), "the context's id");
        for op in self.plan() {
            match op {
                Op::Whisper(t, flag, packets) => {
                    let Some(c) = target(ctx, conn, t) else {
                        continue;
                    };
                    let connected = ctx.mesh().peer_of(c).is_some();
                    let r = ctx.whisper(c, flag, packets);
                    if r.is_ok() {
                        assert!(connected, "whispered on conn {c} without a peer");
                        self.sent += 1;
                    }
                }
                Op::Broadcast(flag, packets) => {
                    self.sent += usize::from(ctx.broadcast(flag, packets).is_ok());
                }
                Op::Dial(pick, port) => {
                    let id = match pick {
                        Pick::Known(i) => peer_id(usize::from(i), IdWire::Bin),
                        Pick::Me => PeerId::from(ME),
                        Pick::Book(i) => {
                            let known: Vec<PeerId> =
                                ctx.known_peers().map(|(id, _)| id.clone()).collect();
                            match known.get(usize::from(i) % known.len().max(1)) {
                                Some(id) => id.clone(),
                                None => continue,
                            }
                        }
                        Pick::Peer(i) => {
                            let peers = ctx.mesh().peers();
                            match peers.get(usize::from(i) % peers.len().max(1)) {
                                Some(p) => p.id.clone(),
                                None => continue,
                            }
                        }
                    };
                    let refused = id.as_bytes() == ME.as_bytes() || ctx.mesh().is_connected(&id);
                    let dialled = ctx.dial(&id, PeerAddr::new("127.0.0.1", 6000 + port % 8));
                    assert!(
                        !(dialled && refused),
                        "dialled {id:?}: ourselves or connected"
                    );
                    self.dials += usize::from(dialled);
                }
                Op::Close(t, bad) => {
                    if let Some(c) = target(ctx, conn, t) {
                        let reason = if bad {
                            CloseReason::BadMessage("probe")
                        } else {
                            CloseReason::Requested
                        };
                        ctx.close(c, reason);
                        assert!(ctx.mesh().peer_of(c).is_none(), "closed conn {c} routes");
                    }
                }
                Op::Look => {
                    let cap = ctx.mesh().config().address_book_capacity;
                    let known: Vec<_> = ctx.known_peers().collect();
                    assert!(known.len() <= cap, "{} addresses known", known.len());
                    for (id, _) in known {
                        assert_ne!(id.as_bytes(), ME.as_bytes(), "we know our own address");
                    }
                    assert!(ctx.now_secs() == ctx.now_ms() / 1000);
                }
            }
        }
    }
}

fn op(inp: &mut Input) -> Op {
    let target = |inp: &mut Input| match inp.byte() % 4 {
        0 | 1 => Target::Hook,
        2 => Target::Peer(inp.byte()),
        _ => Target::Any(inp.byte()),
    };
    let flag = |inp: &mut Input| match inp.byte() % 4 {
        // One of the protocol's own sub-flags, as a layer may (sync, chord).
        0 => inp.byte() % 0x12,
        _ => 0x30 + inp.byte() % 8,
    };
    let packets = |inp: &mut Input| (0..inp.byte() % 4).map(|_| packet(inp, 1)).collect();
    match inp.byte() % 8 {
        0 | 1 => Op::Whisper(target(inp), flag(inp), packets(inp)),
        2 => Op::Broadcast(flag(inp), packets(inp)),
        3 | 4 => {
            let pick = match inp.byte() % 5 {
                0 | 1 => Pick::Known(inp.byte()),
                2 => Pick::Book(inp.byte()),
                3 => Pick::Me,
                _ => Pick::Peer(inp.byte()),
            };
            Op::Dial(pick, inp.u16())
        }
        5 => Op::Close(target(inp), inp.byte() & 1 == 1),
        _ => Op::Look,
    }
}

/// The connection a target names, if it names one.
fn target(ctx: &LayerCtx<'_>, hook: Option<ConnId>, t: Target) -> Option<ConnId> {
    let peers = ctx.mesh().peers();
    let nth = |i: u8| {
        peers
            .get(usize::from(i) % peers.len().max(1))
            .map(|p| p.conn)
    };
    match t {
        Target::Hook => hook.or_else(|| nth(0)),
        Target::Peer(i) => nth(i),
        Target::Any(i) => Some(ConnId::from(i % 16)),
    }
}

impl Layer for Probe {
    fn claims(&self, message: &InternalMessage) -> bool {
        let Some(flag) = message.payload.first().and_then(Packet::as_u64) else {
            return false;
        };
        let bit = self.claim & 1 << (flag % 7) != 0;
        if flag <= u64::from(SubFlag::Delta.as_u8()) {
            bit && self.claim & 0x80 != 0
        } else {
            bit
        }
    }

    fn on_peer_ready(&mut self, ctx: &mut LayerCtx<'_>, peer: &PeerId, conn: ConnId) {
        self.hooks += 1;
        self.peers.insert(peer.clone(), conn);
        self.act(ctx, Some(conn));
    }

    fn on_message(&mut self, ctx: &mut LayerCtx<'_>, delivery: Delivery) {
        assert!(
            self.claims(&delivery.message),
            "handed a message not claimed"
        );
        self.messages += 1;
        self.act(ctx, Some(delivery.conn));
    }

    fn on_peer_left(&mut self, ctx: &mut LayerCtx<'_>, peer: &PeerId) {
        self.hooks += 1;
        assert!(
            self.peers.remove(peer).is_some(),
            "{peer:?} left, never ready"
        );
        self.act(ctx, None);
    }

    fn on_writable(&mut self, ctx: &mut LayerCtx<'_>, conn: ConnId) {
        self.hooks += 1;
        self.act(ctx, Some(conn));
    }

    fn on_tick(&mut self, ctx: &mut LayerCtx<'_>) {
        self.hooks += 1;
        self.act(ctx, None);
    }
}

/// The extension interface with a [`Probe`] on it.
pub struct LayerStack;

impl Scenario for LayerStack {
    type Layer = Probe;

    /// Header: `[claims, script length, script…]`.
    fn new(inp: &mut Input) -> (Self, Probe) {
        let claim = inp.byte();
        let n = usize::from(inp.byte()) * 2;
        let probe = Probe {
            script: inp.bytes(n).to_vec(),
            claim,
            ..Probe::default()
        };
        (LayerStack, probe)
    }

    /// The mesh's messages, or user messages with a sub-flag the probe may
    /// claim.
    fn message(h: &mut Harness<Self>, inp: &mut Input) -> InternalMessage {
        if inp.byte() & 1 == 0 {
            return h.mesh_message(inp);
        }
        let header = header(inp, h.now_secs());
        let flag = match inp.byte() % 4 {
            0 => inp.byte() % 0x12,
            _ => 0x30 + inp.byte() % 8,
        };
        let mut payload = vec![Packet::from(flag)];
        payload.extend((0..inp.byte() % 3).map(|_| packet(inp, 1)));
        finish(inp, header, payload)
    }

    /// The mesh's commands, or more decisions and a command run on the
    /// probe.
    fn command(h: &mut Harness<Self>, inp: &mut Input) {
        if inp.byte() % 3 == 0 {
            return mesh_command(h, inp);
        }
        let n = usize::from(inp.byte() % 16);
        let more = Bytes::copy_from_slice(inp.bytes(n));
        let probe = h.st.layer_mut();
        if probe.script.len() + more.len() > MAX_SCRIPT {
            let done = probe.pos.min(probe.script.len());
            probe.script.drain(..done);
            probe.pos = 0;
        }
        probe.script.extend_from_slice(&more);
        h.with_layer(|l, ctx| l.act(ctx, None));
    }

    /// The peers the hooks told of are the routing table's, on the same
    /// connections.
    fn check(&mut self, st: &mut Stack<Probe>, _: u64) {
        let table: BTreeMap<PeerId, ConnId> = st
            .mesh()
            .peers()
            .into_iter()
            .map(|p| (p.id, p.conn))
            .collect();
        assert_eq!(
            st.layer().peers,
            table,
            "the layer's peers are not the mesh's"
        );
    }
}

/// Input layout: `[mode, mesh config ×5, claims, script length, script…,
/// events…]`.
pub fn layer_stack(data: &[u8]) {
    run_layer_stack(data);
}

/// What one `layer_stack` run reached (for tests of the harness itself).
#[derive(Debug, Default)]
pub struct LayerRun {
    pub max_peers: usize,
    pub hooks: usize,
    pub messages: usize,
    pub sent: usize,
    pub dials: usize,
}

/// [`layer_stack`], telling what the run reached.
pub fn run_layer_stack(data: &[u8]) -> LayerRun {
    let h = run::<LayerStack>(data);
    let p = h.st.layer();
    LayerRun {
        max_peers: h.max_peers,
        hooks: p.hooks,
        messages: p.messages,
        sent: p.sent,
        dials: p.dials,
    }
}
