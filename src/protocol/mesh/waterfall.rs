//! [`Waterfall`]: the set of broadcasts already seen, keyed by
//! `(message id, time)`, so each is forwarded and delivered once.
//!
//! Entries expire once their message time falls out of the window; messages
//! stamped too far in the future are refused so they cannot pin entries; the
//! set never holds more than its configured number of entries.

use std::collections::{BTreeSet, HashSet};

use crate::protocol::MessageId;

/// What [`Waterfall::check_and_record`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// First sighting: forward and deliver.
    New,
    /// Already seen: drop.
    Duplicate,
    /// Older than the window: drop.
    Expired,
    /// Stamped further in the future than the allowed clock skew: drop.
    FromTheFuture,
}

/// The seen-broadcast set.
#[derive(Debug)]
pub struct Waterfall {
    seen: HashSet<(MessageId, u64)>,
    by_time: BTreeSet<(u64, MessageId)>,
    window: u64,
    max_skew: u64,
    max_entries: usize,
    evicted: u64,
}

impl Waterfall {
    /// A set keeping `window` seconds of history, refusing messages more than
    /// `max_skew` seconds ahead, and holding at most `max_entries`.
    pub fn new(window: u64, max_skew: u64, max_entries: usize) -> Self {
        Waterfall {
            seen: HashSet::new(),
            by_time: BTreeSet::new(),
            window,
            max_skew,
            max_entries: max_entries.max(1),
            evicted: 0,
        }
    }

    /// Decides what to do with a broadcast and records it if it is new.
    pub fn check_and_record(&mut self, id: MessageId, time: u64, now: u64) -> Verdict {
        if time < now.saturating_sub(self.window) {
            return Verdict::Expired;
        }
        if time > now.saturating_add(self.max_skew) {
            return Verdict::FromTheFuture;
        }
        if !self.seen.insert((id, time)) {
            return Verdict::Duplicate;
        }
        self.by_time.insert((time, id));
        while self.seen.len() > self.max_entries {
            if let Some((t, oldest)) = self.by_time.pop_first() {
                self.seen.remove(&(oldest, t));
                self.evicted += 1;
            } else {
                break;
            }
        }
        Verdict::New
    }

    /// Records a message we sent ourselves (so its echoes are dropped).
    pub fn record_own(&mut self, id: MessageId, time: u64, now: u64) {
        let _ = self.check_and_record(id, time, now);
    }

    /// Drops entries older than the window.
    pub fn expire(&mut self, now: u64) {
        let cutoff = now.saturating_sub(self.window);
        while let Some(&(t, id)) = self.by_time.first() {
            if t >= cutoff {
                break;
            }
            self.by_time.pop_first();
            self.seen.remove(&(id, t));
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Entries dropped early because the set was full.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedups_and_expires() {
        let mut w = Waterfall::new(60, 10, 100);
        assert_eq!(w.check_and_record([1; 32], 1000, 1000), Verdict::New);
        assert_eq!(w.check_and_record([1; 32], 1000, 1001), Verdict::Duplicate);
        // Same id, other time: a different key, as in the references.
        assert_eq!(w.check_and_record([1; 32], 1001, 1001), Verdict::New);
        assert_eq!(w.check_and_record([2; 32], 900, 1000), Verdict::Expired);
        assert_eq!(
            w.check_and_record([3; 32], 1011, 1000),
            Verdict::FromTheFuture
        );
        w.expire(1061);
        assert_eq!(w.len(), 1);
        w.expire(1062);
        assert!(w.is_empty());
    }

    #[test]
    fn bounded_in_entries() {
        let mut w = Waterfall::new(60, 10, 3);
        for i in 0..10u8 {
            assert_eq!(
                w.check_and_record([i; 32], 1000 + u64::from(i), 1005),
                Verdict::New
            );
        }
        assert_eq!(w.len(), 3);
        assert_eq!(w.evicted(), 7);
        // The newest are kept.
        assert_eq!(w.check_and_record([9; 32], 1009, 1009), Verdict::Duplicate);
    }
}
