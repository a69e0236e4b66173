//! [`AddressBook`]: addresses the node has learnt, and when to dial them
//! again. Lost peers are redialled with exponential backoff and jitter, so
//! a mesh split by a network partition heals by itself once the network is
//! back; addresses from peer lists refill a node that has too few peers.
//!
//! Nothing stays for ever: a lost peer is given up `give_up_ms` after the
//! loss, and an address nobody mentioned for as long (no handshake, no
//! peer list, no connection) is forgotten too, so a long-lived node in a
//! mesh with churn does not fill its book with departed nodes, keep
//! dialling them, and then ignore the addresses of newcomers because the
//! book is full.

use std::collections::HashMap;

use crate::protocol::{PeerAddr, PeerId, Rng};

#[derive(Clone, Debug)]
struct Entry {
    addr: PeerAddr,
    /// Consecutive failed dials.
    failures: u32,
    /// Earliest time (ms) of the next attempt.
    next_attempt_ms: u64,
    /// Whether this peer was connected and lost (redial it eagerly).
    lost: bool,
    /// When it was lost (ms), to give up eventually.
    lost_at_ms: u64,
    /// When the address was last heard of (ms): learnt from a handshake
    /// or a peer list, or connected.
    heard_ms: u64,
}

/// Known peers and their redial schedule.
#[derive(Debug)]
pub struct AddressBook {
    entries: HashMap<PeerId, Entry>,
    capacity: usize,
    /// No pruning before this (ms): once a second is plenty.
    next_prune_ms: u64,
    base_ms: u64,
    max_ms: u64,
    give_up_ms: u64,
}

impl AddressBook {
    /// A book of at most `capacity` entries; backoff doubles from `base_ms`
    /// up to `max_ms`; lost peers are given up after `give_up_ms`, and
    /// addresses not heard of for as long are forgotten.
    pub fn new(capacity: usize, base_ms: u64, max_ms: u64, give_up_ms: u64) -> Self {
        AddressBook {
            entries: HashMap::new(),
            capacity,
            next_prune_ms: 0,
            base_ms: base_ms.max(1),
            max_ms: max_ms.max(base_ms.max(1)),
            give_up_ms,
        }
    }

    /// Every id and address held, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&PeerId, &PeerAddr)> {
        self.entries.iter().map(|(id, e)| (id, &e.addr))
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the book is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Remembers an address (from a handshake or a peer list) heard of at
    /// `now_ms`. Ignored when the book is full, unless the id is already
    /// known.
    pub fn learn(&mut self, id: &PeerId, addr: PeerAddr, now_ms: u64) {
        if let Some(e) = self.entries.get_mut(id) {
            e.addr = addr;
            e.heard_ms = e.heard_ms.max(now_ms);
            return;
        }
        if self.entries.len() >= self.capacity {
            return;
        }
        self.entries.insert(
            id.clone(),
            Entry {
                addr,
                failures: 0,
                next_attempt_ms: 0,
                lost: false,
                lost_at_ms: 0,
                heard_ms: now_ms,
            },
        );
    }

    /// The peer completed a handshake: reset its backoff.
    pub fn connected(&mut self, id: &PeerId, now_ms: u64) {
        if let Some(e) = self.entries.get_mut(id) {
            e.heard_ms = e.heard_ms.max(now_ms);
            e.failures = 0;
            e.lost = false;
            e.next_attempt_ms = 0;
        }
    }

    /// The peer's connection was lost: redial it from `now_ms` plus a
    /// jittered first delay.
    pub fn lost(&mut self, id: &PeerId, now_ms: u64, rng: &mut Rng) {
        let base = self.base_ms;
        if let Some(e) = self.entries.get_mut(id) {
            e.lost = true;
            e.lost_at_ms = now_ms;
            e.failures = 0;
            e.next_attempt_ms = now_ms + base / 2 + rng.below(base);
        }
    }

    /// A dial to the peer failed: back off exponentially, with jitter.
    pub fn failed(&mut self, id: &PeerId, now_ms: u64, rng: &mut Rng) {
        let (base, max) = (self.base_ms, self.max_ms);
        if let Some(e) = self.entries.get_mut(id) {
            e.failures = e.failures.saturating_add(1);
            let delay = base.saturating_mul(1u64 << e.failures.min(20)).min(max);
            // Full jitter over the upper half: delay/2 ..= delay.
            e.next_attempt_ms = now_ms + delay / 2 + rng.below(delay / 2 + 1);
        }
    }

    /// Forgets a peer (it turned out to be us, or on another subnet).
    pub fn forget(&mut self, id: &PeerId) {
        self.entries.remove(id);
    }

    /// Gives up peers lost more than `give_up_ms` ago, and forgets
    /// addresses not heard of for as long, except those `keep` says are in
    /// use (connected, or being dialled). Does the work at most once a
    /// second.
    pub fn prune(&mut self, now_ms: u64, keep: impl Fn(&PeerId) -> bool) {
        if now_ms < self.next_prune_ms {
            return;
        }
        self.next_prune_ms = now_ms + 1000;
        let give_up = self.give_up_ms;
        let stale = |since: u64| now_ms.saturating_sub(since) > give_up;
        self.entries.retain(|id, e| {
            keep(id)
                || if e.lost {
                    !stale(e.lost_at_ms)
                } else {
                    !stale(e.heard_ms)
                }
        });
    }

    /// Lost peers due for a redial, not currently connected or dialling
    /// (as `skip` says), at most `limit`.
    pub fn due_lost(
        &mut self,
        now_ms: u64,
        limit: usize,
        skip: impl Fn(&PeerId) -> bool,
    ) -> Vec<(PeerId, PeerAddr)> {
        self.due(now_ms, limit, |e| e.lost, skip)
    }

    /// Known peers (not lost) due for a dial, to refill the routing table.
    pub fn due_known(
        &mut self,
        now_ms: u64,
        limit: usize,
        skip: impl Fn(&PeerId) -> bool,
    ) -> Vec<(PeerId, PeerAddr)> {
        self.due(now_ms, limit, |e| !e.lost, skip)
    }

    fn due(
        &mut self,
        now_ms: u64,
        limit: usize,
        pick: impl Fn(&Entry) -> bool,
        skip: impl Fn(&PeerId) -> bool,
    ) -> Vec<(PeerId, PeerAddr)> {
        let mut due: Vec<(u64, PeerId, PeerAddr)> = self
            .entries
            .iter()
            .filter(|(id, e)| pick(e) && e.next_attempt_ms <= now_ms && !skip(id))
            .map(|(id, e)| (e.next_attempt_ms, id.clone(), e.addr.clone()))
            .collect();
        due.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
        due.truncate(limit);
        due.into_iter().map(|(_, id, addr)| (id, addr)).collect()
    }

    /// Pushes a peer's next attempt into the future while a dial is under
    /// way (the dial's result resets or backs off further).
    pub fn dialling(&mut self, id: &PeerId, now_ms: u64) {
        let max = self.max_ms;
        if let Some(e) = self.entries.get_mut(id) {
            e.next_attempt_ms = now_ms + max;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let mut book = AddressBook::new(10, 1000, 8000, 60_000);
        let mut rng = Rng::new(7);
        let id = PeerId::from("p");
        book.learn(&id, PeerAddr::new("127.0.0.1", 1), 0);
        book.lost(&id, 0, &mut rng);
        assert!(book.due_lost(0, 10, |_| false).is_empty());
        assert_eq!(book.due_lost(1500, 10, |_| false).len(), 1);
        let mut last = 0;
        for _ in 0..10 {
            book.failed(&id, 0, &mut rng);
            let e = &book.entries[&id];
            assert!(e.next_attempt_ms <= 8000);
            last = e.next_attempt_ms;
        }
        assert!(last >= 4000, "capped delay is at least half the max");
        // Given up after the give-up time.
        book.prune(70_000, |_| false);
        assert!(book.due_lost(70_000, 10, |_| false).is_empty());
        assert!(book.is_empty());
    }

    #[test]
    fn bounded() {
        let mut book = AddressBook::new(2, 1000, 8000, 60_000);
        for i in 0..5 {
            book.learn(
                &PeerId::from(format!("p{i}")),
                PeerAddr::new("127.0.0.1", i),
                0,
            );
        }
        assert_eq!(book.len(), 2);
    }

    /// Churn: departed nodes' addresses go once nobody mentions them for
    /// the give-up time (before, a long-lived node's book only grew, up to
    /// its capacity, and then ignored newcomers); addresses in use, heard
    /// of again, or lost recently stay.
    #[test]
    fn departed_addresses_are_forgotten() {
        let mut book = AddressBook::new(3, 1000, 8000, 60_000);
        let mut rng = Rng::new(7);
        let p = |i: u16| PeerId::from(format!("p{i}"));
        for i in 0..3 {
            book.learn(&p(i), PeerAddr::new("127.0.0.1", i), 0);
        }
        book.connected(&p(0), 0);
        // p1 is listed again later; p2, departed, is not.
        book.learn(&p(1), PeerAddr::new("127.0.0.1", 1), 30_000);
        book.prune(60_000, |id| *id == p(0));
        assert_eq!(book.len(), 3, "nothing is stale yet");
        book.prune(70_000, |id| *id == p(0));
        assert_eq!(book.len(), 2, "p2 was not heard of for 70 s");
        assert!(book.iter().all(|(id, _)| *id != p(2)));
        // The room it left takes a newcomer (the book was full).
        book.learn(&p(3), PeerAddr::new("127.0.0.1", 3), 70_000);
        assert_eq!(book.len(), 3);
        // p0, connected since 0, stays while connected; once lost, it is
        // redialled for the give-up time, then given up.
        book.prune(100_000, |id| *id == p(0));
        assert!(book.iter().any(|(id, _)| *id == p(0)));
        book.lost(&p(0), 100_000, &mut rng);
        book.prune(150_000, |_| false);
        assert!(book.iter().any(|(id, _)| *id == p(0)), "lost 50 s ago");
        assert_eq!(book.due_lost(150_000, 10, |_| false).len(), 1);
        book.prune(160_001, |_| false);
        assert!(book.is_empty(), "{:?}", book.entries.keys());
    }
}
