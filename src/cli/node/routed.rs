//! Replies waiting for a route, remembered so that the node's
//! [`Event::ReplyFailed`](rs2p::Event::ReplyFailed) (which names only the
//! target) can be reported with the `reply` op's tag.
//!
//! The library sends or fails the replies to one target together, oldest
//! first: all of them once the target joins (the route was found, or it
//! connected meanwhile), one failure per reply otherwise. So a failure is
//! matched with the oldest reply to its target, and a target joining clears
//! its replies. Entries past the reply timeout (plus slack for the node's
//! tick) are forgotten, so the list stays bounded even if an event is
//! missed.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rs2p::PeerId;

use super::out::OpCtx;

/// How long after its timeout a reply is still expected to be reported.
const SLACK: Duration = Duration::from_secs(5);

/// Most replies remembered (the library keeps at most 1,024 waiting).
const MAX_REMEMBERED: usize = 4096;

/// The replies of this process that wait for a route; cheap to clone.
#[derive(Debug, Clone)]
pub struct RoutedReplies {
    inner: Arc<Mutex<VecDeque<Waiting>>>,
    timeout: Duration,
}

#[derive(Debug)]
struct Waiting {
    to: PeerId,
    ctx: OpCtx,
    at: Instant,
}

impl RoutedReplies {
    /// Replies that wait at most `timeout` for their route.
    pub fn new(timeout: Duration) -> RoutedReplies {
        RoutedReplies {
            inner: Arc::default(),
            timeout,
        }
    }

    /// The reply timeout, in whole seconds.
    pub fn timeout_secs(&self) -> u64 {
        self.timeout.as_secs()
    }

    /// A reply to `to` now waits for a route.
    pub fn waiting(&self, to: &PeerId, ctx: OpCtx) {
        let mut list = self.lock();
        Self::forget_old(&mut list, self.timeout);
        if list.len() >= MAX_REMEMBERED {
            list.pop_front();
        }
        list.push_back(Waiting {
            to: to.clone(),
            ctx,
            at: Instant::now(),
        });
    }

    /// A reply to `to` failed: the context of the oldest one waiting
    /// (empty when none is remembered).
    pub fn failed(&self, to: &PeerId) -> OpCtx {
        let mut list = self.lock();
        Self::forget_old(&mut list, self.timeout);
        match list.iter().position(|w| &w.to == to) {
            Some(i) => list.remove(i).map(|w| w.ctx).unwrap_or_default(),
            None => OpCtx::default(),
        }
    }

    /// `id` joined: the replies waiting for it went out.
    pub fn joined(&self, id: &PeerId) {
        self.lock().retain(|w| &w.to != id);
    }

    fn forget_old(list: &mut VecDeque<Waiting>, timeout: Duration) {
        let limit = timeout + SLACK;
        while list.front().is_some_and(|w| w.at.elapsed() > limit) {
            list.pop_front();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Waiting>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx(tag: i32) -> OpCtx {
        OpCtx {
            op: Some("reply".into()),
            tag: Some(json!(tag)),
        }
    }

    #[test]
    fn failures_take_the_oldest_reply_to_their_target() {
        let r = RoutedReplies::new(Duration::from_secs(60));
        let (x, y) = (PeerId::from("x"), PeerId::from("y"));
        r.waiting(&x, ctx(1));
        r.waiting(&y, ctx(2));
        r.waiting(&x, ctx(3));
        assert_eq!(r.failed(&x), ctx(1));
        assert_eq!(r.failed(&x), ctx(3));
        assert_eq!(r.failed(&x), OpCtx::default());
        r.joined(&y);
        assert_eq!(r.failed(&y), OpCtx::default());
    }
}
