//! A pure layer run inside a node together with what its handle needs
//! from it after every step: the layer's events sent to subscribers, the
//! answers handed to waiting callers. `SyncSocket` and `ChordSocket` are
//! built on it; the layers themselves stay free of channels.

use crate::protocol::mesh::{ConnId, Delivery, Layer, LayerCtx};
use crate::protocol::{InternalMessage, PeerId};

/// What runs after each hook of the layer it is paired with.
pub(crate) trait Publisher<L>: Send + 'static {
    /// Takes what the layer produced (events, finished requests) and
    /// hands it out.
    fn publish(&mut self, layer: &mut L);

    /// The node's tick, before the layer's (forget callers that gave up).
    fn on_tick(&mut self) {}
}

/// A layer and its publisher: every hook runs on the layer, then
/// [`Publisher::publish`]. Commands from the handle go through
/// [`run`](Published::run), which publishes the same way.
pub(crate) struct Published<L, P> {
    pub(crate) layer: L,
    pub(crate) publisher: P,
}

impl<L: Layer, P: Publisher<L>> Published<L, P> {
    /// Runs `f` on the layer, then publishes what changed.
    pub(crate) fn run<R>(
        &mut self,
        ctx: &mut LayerCtx<'_>,
        f: impl FnOnce(&mut L, &mut LayerCtx<'_>) -> R,
    ) -> R {
        let r = f(&mut self.layer, ctx);
        self.publisher.publish(&mut self.layer);
        r
    }
}

impl<L: Layer, P: Publisher<L>> Layer for Published<L, P> {
    fn claims(&self, message: &InternalMessage) -> bool {
        self.layer.claims(message)
    }
    fn on_peer_ready(&mut self, ctx: &mut LayerCtx<'_>, peer: &PeerId, conn: ConnId) {
        self.run(ctx, |l, ctx| l.on_peer_ready(ctx, peer, conn));
    }
    fn on_message(&mut self, ctx: &mut LayerCtx<'_>, delivery: Delivery) {
        self.run(ctx, |l, ctx| l.on_message(ctx, delivery));
    }
    fn on_peer_left(&mut self, ctx: &mut LayerCtx<'_>, peer: &PeerId) {
        self.run(ctx, |l, ctx| l.on_peer_left(ctx, peer));
    }
    fn on_writable(&mut self, ctx: &mut LayerCtx<'_>, conn: ConnId) {
        self.run(ctx, |l, ctx| l.on_writable(ctx, conn));
    }
    fn on_tick(&mut self, ctx: &mut LayerCtx<'_>) {
        self.publisher.on_tick();
        self.run(ctx, |l, ctx| l.on_tick(ctx));
    }
}
