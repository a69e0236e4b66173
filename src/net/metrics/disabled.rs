//! Without the `metrics` feature: probes that count nothing.

use std::time::Instant;

use super::{CloseReason, Dropped, Levels, MeshCounts, Sent};

/// Without the `metrics` feature: counts nothing, costs nothing.
#[derive(Clone, Debug, Default)]
pub(crate) struct Probes;

#[allow(clippy::unused_self)]
impl Probes {
    pub(crate) fn new(_transport: &'static str) -> Self {
        Probes
    }
    #[inline]
    pub(crate) fn frames_in(&self, _n: u64) {}
    #[inline]
    pub(crate) fn bytes_in(&self, _n: usize) {}
    #[inline]
    pub(crate) fn written(&self, _frames: usize, _bytes: usize) {}
    pub(crate) fn opened(&self, _outgoing: bool) {}
    pub(crate) fn forgotten(&self, _outgoing: bool) {}
    pub(crate) fn closed(&self, _reason: &CloseReason) {}
    pub(crate) fn refused(&self) {}
    #[inline]
    pub(crate) fn dropped(&self, _why: Dropped) {}
    pub(crate) fn sent(&self, _what: Sent) {}
    pub(crate) fn dial(&self) {}
    pub(crate) fn dial_failed(&self) {}
    #[inline]
    pub(crate) fn delivered(&self, _arrived: Instant) {}
    pub(crate) fn mirror(&self, now: &MeshCounts, last: &mut MeshCounts, _levels: &Levels) {
        *last = *now;
    }
}
