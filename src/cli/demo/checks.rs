//! The checks: each one a statement and whether it held. Broadcasts are
//! checked on what every node's queue gave out: every expected node got
//! the message once, no other node got it.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use rs2p::protocol::MessageId;

use super::{Demo, DELIVERY_TIMEOUT, SETTLE};

/// A broadcast the demo sent, and who should get it.
pub(super) struct Broadcast {
    pub(super) label: String,
    pub(super) id: MessageId,
    pub(super) from: usize,
    pub(super) sent: Instant,
    pub(super) expected: BTreeSet<usize>,
}

/// What a broadcast's deliveries came to.
pub(super) struct Tally {
    pub(super) reached: usize,
    pub(super) duplicates: usize,
    pub(super) strays: usize,
    pub(super) latencies: Vec<Duration>,
}

/// A check and whether it held.
pub(super) struct Check {
    pub(super) what: String,
    pub(super) ok: bool,
    pub(super) detail: String,
}

impl Demo {
    /// Records a check and whether it held.
    pub(super) fn check(&mut self, what: impl Into<String>, ok: bool, detail: impl Into<String>) {
        self.checks.push(Check {
            what: what.into(),
            ok,
            detail: detail.into(),
        });
    }

    /// Records a check that did not hold.
    pub(super) fn fail(&mut self, what: impl Into<String>, detail: impl Into<String>) {
        self.check(what, false, detail);
    }

    /// Sends one broadcast to every live node but the sender.
    pub(super) async fn broadcast(
        &mut self,
        from: usize,
        label: String,
        packets: Vec<rs2p::Packet>,
    ) -> Result<usize, String> {
        let expected = self.alive().into_iter().filter(|&i| i != from).collect();
        let sent = Instant::now();
        let id = self.nodes[from]
            .socket
            .send(packets)
            .await
            .map_err(|e| format!("{} cannot broadcast: {e}", self.nodes[from].name))?;
        self.broadcasts.push(Broadcast {
            label,
            id,
            from,
            sent,
            expected,
        });
        Ok(self.broadcasts.len() - 1)
    }

    /// Waits until every expected node has each of these broadcasts, then
    /// a little longer for duplicates; one check per broadcast.
    pub(super) async fn await_broadcasts(&mut self, which: &[usize]) {
        let want: usize = which
            .iter()
            .map(|&b| self.broadcasts[b].expected.len())
            .sum();
        let deadline = Instant::now() + DELIVERY_TIMEOUT;
        loop {
            let got: usize = which.iter().map(|&b| self.tally(b).reached).sum();
            self.progress.update(&format!("deliveries {got}/{want}"));
            if got >= want || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(SETTLE).await;
        for &b in which {
            let t = self.tally(b);
            let expected = self.broadcasts[b].expected.len();
            let ok = t.reached == expected && t.duplicates == 0 && t.strays == 0;
            let what = format!(
                "broadcast {} from {} reached every node exactly once",
                self.broadcasts[b].label, self.nodes[self.broadcasts[b].from].name
            );
            let detail = format!(
                "{}/{expected} nodes, {} duplicate(s), {} unexpected",
                t.reached, t.duplicates, t.strays
            );
            self.check(what, ok, detail);
        }
    }

    /// Deliveries of one broadcast so far.
    pub(super) fn tally(&self, b: usize) -> Tally {
        let b = &self.broadcasts[b];
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        let mut first: HashMap<usize, Instant> = HashMap::new();
        let (mut duplicates, mut strays) = (0, 0);
        for r in log.iter().filter(|r| r.id == b.id) {
            if !b.expected.contains(&r.node) {
                strays += 1;
            } else if first.insert(r.node, r.at).is_some() {
                duplicates += 1;
            }
        }
        let mut latencies: Vec<Duration> = first
            .values()
            .map(|at| at.saturating_duration_since(b.sent))
            .collect();
        latencies.sort();
        Tally {
            reached: first.len(),
            duplicates,
            strays,
            latencies,
        }
    }
}
