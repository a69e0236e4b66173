//! The extension interface: protocol layers on top of the mesh.
//!
//! The references build their replicated dictionary (`sync`) and their DHT
//! (`chord`) by subclassing the mesh socket and overriding its handshake
//! and peer-list hooks. rs2p composes instead: a [`Layer`] is pure state,
//! like [`MeshState`], that a [`Stack`] calls at defined points —
//!
//! - a peer completed its handshake ([`Layer::on_peer_ready`]), right after
//!   the mesh sent it our peer list: the place for a layer's own greeting
//!   (sync's catch-up entries, chord's meta message);
//! - a message arrived that the layer [claims](Layer::claims) (usually by
//!   its sub-flag) — it is taken out of the application's way, after the
//!   mesh relayed it if it is a broadcast ([`Layer::on_message`], with the
//!   connection it came on);
//! - a peer left the routing table ([`Layer::on_peer_left`]);
//! - a connection's send queue emptied after holding a burst
//!   ([`Layer::on_writable`]): what a layer paces by the connection (sync's
//!   catch-up) can go on at once, instead of at the next tick;
//! - the periodic tick ([`Layer::on_tick`]).
//!
//! At each of them, and in commands that the driver runs with
//! [`Stack::with_layer`], the layer gets a [`LayerCtx`]: the time, a
//! read-only view of the mesh, and the means to whisper any sub-flag to one
//! connection or broadcast any sub-flag to the mesh. A layer never touches a
//! socket or a clock; with a seeded RNG of its own it stays deterministic,
//! so the simulator and the fuzzers drive it exactly as they drive the
//! mesh. The plain mesh is the layer-free case, `Stack<()>`.
//!
//! # Examples
//! A layer that counts `+1` messages replicated through its own sub-flag
//! (`0x30`, the first value the protocol leaves to applications):
//! ```
//! use rs2p::protocol::mesh::{Delivery, Layer, LayerCtx};
//! use rs2p::protocol::{InternalMessage, PeerId};
//!
//! const COUNT: u8 = 0x30;
//!
//! #[derive(Debug, Default)]
//! struct Counter { total: u64 }
//!
//! impl Counter {
//!     /// A command the application runs through `Stack::with_layer`.
//!     fn increment(&mut self, ctx: &mut LayerCtx<'_>) {
//!         self.total += 1;
//!         let _ = ctx.broadcast(COUNT, vec![1u64.into()]);
//!     }
//! }
//!
//! impl Layer for Counter {
//!     fn claims(&self, message: &InternalMessage) -> bool {
//!         message.payload.first().and_then(|p| p.as_u64()) == Some(COUNT.into())
//!     }
//!     fn on_message(&mut self, _ctx: &mut LayerCtx<'_>, delivery: Delivery) {
//!         let step = delivery.message.payload.get(1).and_then(|p| p.as_u64());
//!         self.total += step.unwrap_or(0);
//!     }
//! }
//! ```

use std::any::Any;

use super::close::{CloseReason, SendError};
use super::commands::Prepared;
use super::output::{Action, ConnId, Delivery, DialId, MeshEvent, ValidationId};
use super::state::MeshState;
use super::validation::Validation;
use crate::protocol::{Frame, InternalMessage, MainFlag, MessageId, Packet, PeerAddr, PeerId};

/// A protocol layer over the mesh: pure state called by a [`Stack`] at the
/// points listed in the [module documentation](self). Every method but
/// [`claims`](Layer::claims) has a default that does nothing.
pub trait Layer: Any + Send {
    /// Whether this layer takes `message` (a whisper or a new broadcast
    /// that the mesh itself does not handle). Claimed messages go to
    /// [`on_message`](Layer::on_message) and never reach the application.
    /// Called for every such message: keep it cheap (look at the sub-flag).
    fn claims(&self, message: &InternalMessage) -> bool;

    /// A peer completed its handshake on `conn` (it is in the routing
    /// table, and our peer list is on its way to it), or a peer already
    /// known is now reached on `conn` (its first connection lost a race or
    /// failed over; messages in flight on the old one may be lost, so a
    /// layer greets it again).
    fn on_peer_ready(&mut self, ctx: &mut LayerCtx<'_>, peer: &PeerId, conn: ConnId) {
        let _ = (ctx, peer, conn);
    }

    /// A message this layer claims arrived (broadcasts after the mesh
    /// checked, recorded and relayed them).
    fn on_message(&mut self, ctx: &mut LayerCtx<'_>, delivery: Delivery) {
        let _ = (ctx, delivery);
    }

    /// A peer left the routing table.
    fn on_peer_left(&mut self, ctx: &mut LayerCtx<'_>, peer: &PeerId) {
        let _ = (ctx, peer);
    }

    /// The send queue of `conn` emptied after holding at least a burst
    /// (64 KiB): it has room for more. Drivers without send queues (the
    /// simulator) never call it, so a layer that waits for it must also
    /// go on at its tick.
    fn on_writable(&mut self, ctx: &mut LayerCtx<'_>, conn: ConnId) {
        let _ = (ctx, conn);
    }

    /// The periodic tick, after the mesh's own.
    fn on_tick(&mut self, ctx: &mut LayerCtx<'_>) {
        let _ = ctx;
    }
}

/// The plain mesh: no layer, every message goes to the application.
impl Layer for () {
    fn claims(&self, _: &InternalMessage) -> bool {
        false
    }
}

impl Layer for Box<dyn Layer> {
    fn claims(&self, message: &InternalMessage) -> bool {
        (**self).claims(message)
    }
    fn on_peer_ready(&mut self, ctx: &mut LayerCtx<'_>, peer: &PeerId, conn: ConnId) {
        (**self).on_peer_ready(ctx, peer, conn)
    }
    fn on_message(&mut self, ctx: &mut LayerCtx<'_>, delivery: Delivery) {
        (**self).on_message(ctx, delivery)
    }
    fn on_peer_left(&mut self, ctx: &mut LayerCtx<'_>, peer: &PeerId) {
        (**self).on_peer_left(ctx, peer)
    }
    fn on_writable(&mut self, ctx: &mut LayerCtx<'_>, conn: ConnId) {
        (**self).on_writable(ctx, conn)
    }
    fn on_tick(&mut self, ctx: &mut LayerCtx<'_>) {
        (**self).on_tick(ctx)
    }
}

/// What a layer may see and do while it is called: the time, the mesh (read
/// only), and sending messages with any sub-flag.
#[derive(Debug)]
pub struct LayerCtx<'a> {
    mesh: &'a mut MeshState,
    now_ms: u64,
    out: &'a mut Vec<Action>,
}

impl<'a> LayerCtx<'a> {
    /// A context over `mesh` at `now_ms`; what the layer sends is appended
    /// to `out`. [`Stack`] makes these; drivers rarely need to.
    pub fn new(mesh: &'a mut MeshState, now_ms: u64, out: &'a mut Vec<Action>) -> Self {
        LayerCtx { mesh, now_ms, out }
    }

    /// The current time, Unix milliseconds.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// The current time in Unix seconds, as message headers carry it.
    pub fn now_secs(&self) -> u64 {
        self.now_ms / 1000
    }

    /// This node's id.
    pub fn id(&self) -> &PeerId {
        self.mesh.id()
    }

    /// The mesh, read only: peers, connections, the id form a peer uses.
    pub fn mesh(&self) -> &MeshState {
        self.mesh
    }

    /// Whispers `[whisper, me, now, flag, packets…]` to the peer on `conn`
    /// (our id in the form that peer uses). Returns the message id.
    ///
    /// # Errors
    /// [`SendError::NotConnected`] if `conn` has no handshaken peer;
    /// [`SendError::Codec`] if the message exceeds the frame limit.
    pub fn whisper(
        &mut self,
        conn: ConnId,
        flag: u8,
        packets: Vec<Packet>,
    ) -> Result<MessageId, SendError> {
        self.mesh
            .whisper_flag(self.now_ms, conn, flag.into(), packets, self.out)
    }

    /// Broadcasts `[broadcast, me, now, flag, packets…]` to the whole mesh.
    /// Returns the message id.
    ///
    /// # Errors
    /// [`SendError::Codec`] if the message exceeds the frame limit.
    pub fn broadcast(&mut self, flag: u8, packets: Vec<Packet>) -> Result<MessageId, SendError> {
        self.mesh.send(
            self.now_ms,
            flag.into(),
            MainFlag::Broadcast,
            packets,
            self.out,
        )
    }

    /// Encodes `[broadcast, me, now, flag, packets…]` without sending it,
    /// for a layer that sends several messages as one operation: it
    /// prepares them all, and sends them with
    /// [`send_prepared`](Self::send_prepared) only once every one fits.
    ///
    /// # Errors
    /// [`SendError::Codec`] if the message exceeds the frame limit.
    pub fn prepare_broadcast(&self, flag: u8, packets: Vec<Packet>) -> Result<Prepared, SendError> {
        Prepared::new(
            self.mesh.id(),
            self.now_ms,
            flag.into(),
            MainFlag::Broadcast,
            packets,
            &self.mesh.config().limits,
        )
    }

    /// Sends a message made by [`prepare_broadcast`](Self::prepare_broadcast)
    /// (as [`broadcast`](Self::broadcast) sends it). Returns its id.
    pub fn send_prepared(&mut self, prepared: Prepared) -> MessageId {
        let id = prepared.id();
        self.mesh.send_prepared(prepared, self.out);
        id
    }

    /// Dials `addr`, expecting the node `id` there: for a layer that keeps
    /// links of its own (chord keeps its ring neighbours). Nothing happens,
    /// and false is returned, when `id` is this node, is connected, or is
    /// being dialled. The dial counts as outgoing, like the mesh's own.
    pub fn dial(&mut self, id: &PeerId, addr: PeerAddr) -> bool {
        if id == self.mesh.id() || self.mesh.is_connected(id) || self.mesh.dials.has_id(id) {
            return false;
        }
        self.mesh.book.learn(id, addr.clone(), self.now_ms);
        self.mesh.book.dialling(id, self.now_ms);
        self.mesh.start_dial(id.clone(), addr, self.out);
        true
    }

    /// The peers whose address the mesh learnt (handshakes, peer lists),
    /// connected or not, in no particular order.
    pub fn known_peers(&self) -> impl Iterator<Item = (&PeerId, &PeerAddr)> {
        self.mesh.book.iter()
    }

    /// Closes a connection whose peer broke the layer's protocol.
    pub fn close(&mut self, conn: ConnId, reason: CloseReason) {
        self.mesh.close(self.now_ms, conn, reason, self.out);
    }
}

/// A [`MeshState`] with a [`Layer`] on top: the same inputs as the mesh,
/// with the layer called at its points. Drivers (the tokio actor, the
/// simulator, the fuzzers, the test rig) feed a `Stack` exactly as they
/// would feed a bare `MeshState`, and carry out the same [`Action`]s.
#[derive(Debug)]
pub struct Stack<L> {
    mesh: MeshState,
    layer: L,
}

/// Where an action in the output calls the layer.
enum Hook {
    Message,
    Ready(PeerId, ConnId),
    Left(PeerId),
}

impl<L: Layer> Stack<L> {
    /// A stack of `layer` over `mesh`.
    pub fn new(mesh: MeshState, layer: L) -> Self {
        Stack { mesh, layer }
    }

    /// The mesh.
    pub fn mesh(&self) -> &MeshState {
        &self.mesh
    }

    /// The layer.
    pub fn layer(&self) -> &L {
        &self.layer
    }

    /// The layer, to change it outside of a call (configuration; to send,
    /// use [`with_layer`](Self::with_layer)).
    pub fn layer_mut(&mut self) -> &mut L {
        &mut self.layer
    }

    /// See [`MeshState::on_open`].
    pub fn on_open(
        &mut self,
        now_ms: u64,
        conn: ConnId,
        outgoing: bool,
        remote: String,
        dial: Option<DialId>,
        out: &mut Vec<Action>,
    ) {
        self.mesh.on_open(now_ms, conn, outgoing, remote, dial, out);
    }

    /// See [`MeshState::on_dial_failed`].
    pub fn on_dial_failed(&mut self, now_ms: u64, dial: DialId) {
        self.mesh.on_dial_failed(now_ms, dial);
    }

    /// See [`MeshState::on_frame`]; messages the layer claims go to it.
    pub fn on_frame(&mut self, now_ms: u64, conn: ConnId, frame: Frame, out: &mut Vec<Action>) {
        let start = out.len();
        self.mesh.on_frame(now_ms, conn, frame, out);
        self.route(now_ms, start, out);
    }

    /// See [`MeshState::on_validated`]; an accepted broadcast the layer
    /// claims goes to it.
    pub fn on_validated(
        &mut self,
        now_ms: u64,
        ticket: ValidationId,
        verdict: Validation,
        out: &mut Vec<Action>,
    ) {
        let start = out.len();
        self.mesh.on_validated(now_ms, ticket, verdict, out);
        self.route(now_ms, start, out);
    }

    /// See [`MeshState::on_closed`].
    pub fn on_closed(&mut self, now_ms: u64, conn: ConnId, out: &mut Vec<Action>) {
        let start = out.len();
        self.mesh.on_closed(now_ms, conn, out);
        self.route(now_ms, start, out);
    }

    /// See [`MeshState::on_tick`]; then the layer's tick.
    pub fn on_tick(&mut self, now_ms: u64, out: &mut Vec<Action>) {
        let start = out.len();
        self.mesh.on_tick(now_ms, out);
        self.layer
            .on_tick(&mut LayerCtx::new(&mut self.mesh, now_ms, out));
        self.route(now_ms, start, out);
    }

    /// The send queue of `conn` emptied after a burst: the layer's
    /// [`on_writable`](Layer::on_writable).
    pub fn on_writable(&mut self, now_ms: u64, conn: ConnId, out: &mut Vec<Action>) {
        let start = out.len();
        self.layer
            .on_writable(&mut LayerCtx::new(&mut self.mesh, now_ms, out), conn);
        self.route(now_ms, start, out);
    }

    /// Runs a command on the mesh (send, close, disconnect, …), then lets
    /// the layer see what it caused (a peer that left, say).
    pub fn with_mesh<R>(
        &mut self,
        now_ms: u64,
        out: &mut Vec<Action>,
        f: impl FnOnce(&mut MeshState, &mut Vec<Action>) -> R,
    ) -> R {
        let start = out.len();
        let r = f(&mut self.mesh, out);
        self.route(now_ms, start, out);
        r
    }

    /// Runs a command on the layer with a context (a sync `set`, a chord
    /// `get`, …).
    pub fn with_layer<R>(
        &mut self,
        now_ms: u64,
        out: &mut Vec<Action>,
        f: impl FnOnce(&mut L, &mut LayerCtx<'_>) -> R,
    ) -> R {
        let start = out.len();
        let r = f(
            &mut self.layer,
            &mut LayerCtx::new(&mut self.mesh, now_ms, out),
        );
        self.route(now_ms, start, out);
        r
    }

    /// Calls the layer for the actions from `start` on: claimed deliveries
    /// are taken out and handed to it; joins and departures are shown to
    /// it. What the layer sends is appended and scanned in turn.
    fn route(&mut self, now_ms: u64, start: usize, out: &mut Vec<Action>) {
        let mut i = start;
        while i < out.len() {
            let hook = match &out[i] {
                Action::Deliver(d) if self.layer.claims(&d.message) => Hook::Message,
                Action::Event(
                    MeshEvent::PeerJoined { id, conn } | MeshEvent::Rebound { id, conn },
                ) => Hook::Ready(id.clone(), *conn),
                Action::Event(MeshEvent::PeerLeft { id, .. }) => Hook::Left(id.clone()),
                _ => {
                    i += 1;
                    continue;
                }
            };
            let layer = &mut self.layer;
            match hook {
                Hook::Message => {
                    if let Action::Deliver(d) = out.remove(i) {
                        layer.on_message(&mut LayerCtx::new(&mut self.mesh, now_ms, out), d);
                    }
                }
                Hook::Ready(id, conn) => {
                    i += 1;
                    layer.on_peer_ready(&mut LayerCtx::new(&mut self.mesh, now_ms, out), &id, conn);
                }
                Hook::Left(id) => {
                    i += 1;
                    layer.on_peer_left(&mut LayerCtx::new(&mut self.mesh, now_ms, out), &id);
                }
            }
        }
    }
}
