//! [`Waterfall`]: the set of broadcasts already seen, keyed by
//! `(message id, time)`, so each is forwarded and delivered once.
//!
//! Entries expire once their message time falls out of the window; messages
//! stamped too far in the future are refused so they cannot pin entries; the
//! set never holds more than its configured number of entries.
//!
//! Entries are indexed by the second they are stamped with: one FIFO
//! bucket per second, so recording is a hash insert plus a push, and
//! eviction takes the first-recorded entry of the oldest second. (A single
//! ordered set of `(time, id)` cost about a microsecond per broadcast once
//! full — more than verifying and decoding the frame.)
//!
//! Each `(id, time)` is remembered as a 64-bit fingerprint under a key
//! drawn at random per waterfall (SipHash, as `HashMap` uses). 100,000
//! fingerprints take about 2 MB instead of about 9 MB, and a lookup stays
//! in cache: about 70 ns instead of 300 ns at that size. Two different
//! broadcasts share a fingerprint with probability about
//! `entries / 2^64` — below 10⁻¹⁴ per broadcast with 100,000 entries — and
//! a peer that does not know the key cannot aim for a collision.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

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

/// A hasher for keys that are already uniformly random (fingerprints).
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// The seen-broadcast set.
#[derive(Debug)]
pub struct Waterfall {
    /// Fingerprints of the `(id, time)` pairs seen.
    seen: HashSet<u64, BuildHasherDefault<Prehashed>>,
    /// The fingerprints recorded per message time (seconds), in order.
    by_time: BTreeMap<u64, VecDeque<u64>>,
    key: RandomState,
    window: u64,
    max_skew: u64,
    max_entries: usize,
    evicted: u64,
    /// Broadcasts dropped: duplicates, expired, from the future.
    drops: (u64, u64, u64),
}

impl Waterfall {
    /// A set keeping `window` seconds of history, refusing messages more than
    /// `max_skew` seconds ahead, and holding at most `max_entries`.
    pub fn new(window: u64, max_skew: u64, max_entries: usize) -> Self {
        Waterfall {
            seen: HashSet::default(),
            by_time: BTreeMap::new(),
            key: RandomState::new(),
            window,
            max_skew,
            max_entries: max_entries.max(1),
            evicted: 0,
            drops: (0, 0, 0),
        }
    }

    /// Decides what to do with a broadcast and records it if it is new.
    pub fn check_and_record(&mut self, id: MessageId, time: u64, now: u64) -> Verdict {
        if time < now.saturating_sub(self.window) {
            self.drops.1 += 1;
            return Verdict::Expired;
        }
        if time > now.saturating_add(self.max_skew) {
            self.drops.2 += 1;
            return Verdict::FromTheFuture;
        }
        let fingerprint = self.key.hash_one((id, time));
        if !self.seen.insert(fingerprint) {
            self.drops.0 += 1;
            return Verdict::Duplicate;
        }
        self.by_time.entry(time).or_default().push_back(fingerprint);
        while self.seen.len() > self.max_entries {
            let Some(mut bucket) = self.by_time.first_entry() else {
                break;
            };
            match bucket.get_mut().pop_front() {
                Some(oldest) => {
                    self.seen.remove(&oldest);
                    self.evicted += 1;
                }
                None => {
                    bucket.remove();
                    continue;
                }
            }
            if bucket.get().is_empty() {
                bucket.remove();
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
        while let Some(bucket) = self.by_time.first_entry() {
            if *bucket.key() >= cutoff {
                break;
            }
            for fingerprint in bucket.remove() {
                self.seen.remove(&fingerprint);
            }
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

    /// Broadcasts refused so far: `(duplicates, expired, from the
    /// future)`.
    pub fn drops(&self) -> (u64, u64, u64) {
        self.drops
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
        assert_eq!(w.drops(), (1, 1, 1));
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

    #[test]
    fn full_within_one_second_evicts_the_first_recorded() {
        let mut w = Waterfall::new(60, 10, 3);
        for i in 0..5u8 {
            assert_eq!(w.check_and_record([i; 32], 1000, 1000), Verdict::New);
        }
        assert_eq!(w.len(), 3);
        // The last three recorded are still known; the first two were evicted.
        for i in 2..5u8 {
            assert_eq!(w.check_and_record([i; 32], 1000, 1000), Verdict::Duplicate);
        }
        assert_eq!(w.check_and_record([0; 32], 1000, 1000), Verdict::New);
        w.expire(1061);
        assert!(w.is_empty());
    }
}
