//! The node's congestion: which peers' send queues hold more than half
//! their bound. While any does, connection read loops hold back (see the
//! read loop's gate in `connection.rs`) and the application's sends wait.
//!
//! A peer is too slow when, once over half, it does not drain to a
//! quarter within the slow-peer timeout: the node stops adding to its
//! queue while it is over half, so that is a peer reading less than a
//! quarter of the bound per timeout (1 MiB in 5 s by default) while it
//! holds the others back. A peer in a busy but healthy pipeline dips
//! below a quarter quickly; one that reads a trickle, just enough to
//! cross below half now and then, does not, and cannot throttle the node
//! to its pace for longer than the timeout.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tokio::sync::watch;

use super::actor::unix_now_ms;
use crate::protocol::mesh::ConnId;

/// The connections over half their send bound, kept by the actor.
#[derive(Debug)]
pub(crate) struct Congestion {
    /// Whether any connection is over half; read by the read loops. Sent
    /// again on every change of the set, so a read loop waiting on it also
    /// rechecks its own queue.
    tx: watch::Sender<bool>,
    /// Connections over half.
    high: HashSet<ConnId>,
    /// Connections that went over half and have not been down to a
    /// quarter since, and since when (Unix ms).
    behind: HashMap<ConnId, u64>,
    timeout_ms: u64,
}

impl Congestion {
    pub(crate) fn new(tx: watch::Sender<bool>, timeout: Duration) -> Self {
        Congestion {
            tx,
            high: HashSet::new(),
            behind: HashMap::new(),
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// Whether some connection is over half.
    pub(crate) fn is_congested(&self) -> bool {
        !self.high.is_empty()
    }

    /// `conn`'s queue went over half (again).
    pub(crate) fn over(&mut self, conn: ConnId) {
        if self.high.insert(conn) {
            self.behind.entry(conn).or_insert_with(unix_now_ms);
            self.publish();
        }
    }

    /// `conn`'s queue now holds `queued` of `bound` bytes.
    pub(crate) fn drained(&mut self, conn: ConnId, queued: usize, bound: usize) {
        if queued <= bound / 4 {
            self.behind.remove(&conn);
        }
        if queued <= bound / 2 && self.high.remove(&conn) {
            self.publish();
        }
    }

    /// `conn` is gone.
    pub(crate) fn forget(&mut self, conn: ConnId) {
        self.behind.remove(&conn);
        if self.high.remove(&conn) {
            self.publish();
        }
    }

    /// Connections that went over half longer than the timeout ago and
    /// have not been down to a quarter since.
    pub(crate) fn overdue(&self, now_ms: u64) -> Vec<ConnId> {
        self.behind
            .iter()
            .filter(|(_, &since)| now_ms.saturating_sub(since) > self.timeout_ms)
            .map(|(&conn, _)| conn)
            .collect()
    }

    fn publish(&self) {
        self.tx.send_replace(self.is_congested());
    }
}
