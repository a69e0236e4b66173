//! [`Store`]: the replicated dictionary's contents, the metadata of every
//! key, the lease rule that decides whether a write applies, and the
//! bounds on what may be stored.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use crate::protocol::{msgpack, Packet, PeerId};

/// A key of the replicated dictionary: msgpack bin or str, kept apart as
/// they came (`b"k"` and `"k"` are two keys, as in py2p).
///
/// `From<&str>` and `From<String>` make **bin** keys of the text's UTF-8
/// bytes, as py2p's API does with every key: py2p looks keys up as bytes
/// and cannot even hand a str key to a newcomer. [`SyncKey::text`] makes a
/// str key for peers that want one.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SyncKey {
    /// A msgpack bin key (what py2p and js2p send in sets).
    Bin(Bytes),
    /// A msgpack str key (what js2p sends in its catch-up).
    Str(String),
}

impl SyncKey {
    /// A str key.
    pub fn text(text: impl Into<String>) -> Self {
        SyncKey::Str(text.into())
    }

    /// The key's bytes, whatever its form.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            SyncKey::Bin(b) => b,
            SyncKey::Str(s) => s.as_bytes(),
        }
    }

    /// Reads a key from a packet: str or bin, nothing else.
    pub fn from_packet(packet: &Packet) -> Option<Self> {
        match packet {
            Packet::Bin(b) => Some(SyncKey::Bin(b.clone())),
            Packet::Str(s) => Some(SyncKey::Str(s.clone())),
            _ => None,
        }
    }

    /// The key as a packet, in its own form.
    pub fn to_packet(&self) -> Packet {
        match self {
            SyncKey::Bin(b) => Packet::Bin(b.clone()),
            SyncKey::Str(s) => Packet::Str(s.clone()),
        }
    }
}

impl From<&str> for SyncKey {
    fn from(text: &str) -> Self {
        SyncKey::Bin(Bytes::copy_from_slice(text.as_bytes()))
    }
}

impl From<String> for SyncKey {
    fn from(text: String) -> Self {
        SyncKey::Bin(Bytes::from(text.into_bytes()))
    }
}

impl From<&[u8]> for SyncKey {
    fn from(bytes: &[u8]) -> Self {
        SyncKey::Bin(Bytes::copy_from_slice(bytes))
    }
}

impl From<Bytes> for SyncKey {
    fn from(bytes: Bytes) -> Self {
        SyncKey::Bin(bytes)
    }
}

impl fmt::Debug for SyncKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyncKey::Bin(b) => write!(f, "b{:?}", String::from_utf8_lossy(b)),
            SyncKey::Str(s) => write!(f, "{s:?}"),
        }
    }
}

impl fmt::Display for SyncKey {
    /// The key's text (bytes that are not UTF-8 shown lossily).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(self.as_bytes()))
    }
}

/// Who last wrote a key, and when (Unix seconds, the writer's clock).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meta {
    /// The writer's node id, as it came (bin from py2p, str from js2p and
    /// rs2p); compared by its bytes.
    pub owner: PeerId,
    /// When it was written.
    pub time: u64,
}

/// One key's value and metadata.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// The value (never nil: nil deletes).
    pub value: Arc<Packet>,
    /// Who wrote it, and when.
    pub meta: Meta,
}

/// Why a write was not applied.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// Another node holds the lease on the key (it wrote it less than an
    /// hour ago) and leasing is on.
    #[error("key {key} is leased to {owner} until {until} (Unix seconds)")]
    Leased {
        /// The key.
        key: String,
        /// The lease holder.
        owner: String,
        /// When the lease ends.
        until: u64,
    },
    /// The dictionary holds its maximum number of keys.
    #[error("the dictionary is full ({max} keys)")]
    TooManyKeys {
        /// The bound (`SyncConfig::max_keys`).
        max: usize,
    },
    /// The value is larger than allowed.
    #[error("value of {len} bytes exceeds the limit of {max} bytes")]
    ValueTooLarge {
        /// Its encoded size.
        len: usize,
        /// The bound (`SyncConfig::max_value_len`).
        max: usize,
    },
    /// A delta was applied to a key whose value is not a map.
    #[error("key {0} does not hold a map, so a delta cannot apply")]
    NotAMap(String),
    /// A delta that is not a map.
    #[error("a delta must be a map")]
    DeltaNotAMap,
    /// A value of nil (nil means delete on the wire; use `delete`).
    #[error("nil is not a value (it deletes on the wire): use delete")]
    NilValue,
    /// The message could not be sent (too large for a frame).
    #[error(transparent)]
    Send(#[from] crate::protocol::mesh::SendError),
}

/// Bounds and rules of one replicated dictionary.
#[derive(Clone, Debug)]
pub struct SyncConfig {
    /// Whether a key written by one node stays its own for an hour
    /// ([`LEASE_SECS`]). Default true, as py2p. Part of the subnet name.
    pub leasing: bool,
    /// Most keys held; writes of new keys past it are refused (locally with
    /// [`SyncError::TooManyKeys`], from peers silently, counted).
    /// Default 100,000.
    pub max_keys: usize,
    /// Largest value, msgpack-encoded, in bytes. Default 1 MiB.
    pub max_value_len: usize,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            leasing: true,
            max_keys: 100_000,
            max_value_len: 1 << 20,
        }
    }
}

/// How long a write leases its key to its writer, in seconds.
pub const LEASE_SECS: u64 = 3600;

/// What a write is: a value, a delete (nil on the wire), or a delta.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum WriteKind {
    Set,
    Delete,
    Delta,
}

/// The dictionary with its metadata.
#[derive(Debug, Default)]
pub struct Store {
    entries: BTreeMap<SyncKey, Entry>,
}

impl Store {
    /// The value at `key`.
    pub fn get(&self, key: &SyncKey) -> Option<&Entry> {
        self.entries.get(key)
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every entry, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&SyncKey, &Entry)> {
        self.entries.iter()
    }

    /// Entries from `from` (inclusive) on, in key order.
    pub fn iter_from<'a>(
        &'a self,
        from: Option<&SyncKey>,
    ) -> impl Iterator<Item = (&'a SyncKey, &'a Entry)> + 'a {
        use std::ops::Bound;
        let start = match from {
            Some(k) => Bound::Included(k.clone()),
            None => Bound::Unbounded,
        };
        self.entries.range((start, Bound::Unbounded))
    }

    /// The lease rule of the references: a write by `new` applies when any
    /// of these holds — the key has no metadata; the writer owns it; it is
    /// a delta and leasing is off; the key was last written more than an
    /// hour before `now`; both writes carry the same time and the old owner
    /// is greater (compared as bytes: the smaller id wins); the new write
    /// is newer and leasing is off. Ids compare by their bytes whatever
    /// their msgpack form.
    pub(super) fn lease_allows(
        &self,
        key: &SyncKey,
        new: &Meta,
        kind: WriteKind,
        leasing: bool,
        now: u64,
    ) -> Result<(), SyncError> {
        let old = self.entries.get(key).map(|e| &e.meta);
        lease_check(key, old, new, kind, leasing, now)
    }

    /// Checks the bounds for putting `value` at `key`.
    pub(super) fn fits(
        &self,
        key: &SyncKey,
        value: &Packet,
        config: &SyncConfig,
    ) -> Result<(), SyncError> {
        self.fits_entry(!self.entries.contains_key(key), value, config)
    }

    /// Checks the bounds for putting `value` at a key that is `new` (not
    /// held yet) or not.
    pub(super) fn fits_entry(
        &self,
        new: bool,
        value: &Packet,
        config: &SyncConfig,
    ) -> Result<(), SyncError> {
        if new && self.entries.len() >= config.max_keys {
            return Err(SyncError::TooManyKeys {
                max: config.max_keys,
            });
        }
        let len = encoded_len(value);
        if len > config.max_value_len {
            return Err(SyncError::ValueTooLarge {
                len,
                max: config.max_value_len,
            });
        }
        Ok(())
    }

    /// Puts a value (checked by the caller).
    pub(super) fn put(&mut self, key: SyncKey, value: Arc<Packet>, meta: Meta) {
        self.entries.insert(key, Entry { value, meta });
    }

    /// Removes a key; its entry, if it was there.
    pub(super) fn remove(&mut self, key: &SyncKey) -> Option<Entry> {
        self.entries.remove(key)
    }
}

/// [`Store::lease_allows`] given the key's metadata (`old`, if it has
/// any), for callers that have already looked the key up.
pub(super) fn lease_check(
    key: &SyncKey,
    old: Option<&Meta>,
    new: &Meta,
    kind: WriteKind,
    leasing: bool,
    now: u64,
) -> Result<(), SyncError> {
    let Some(old) = old else {
        return Ok(());
    };
    let allowed = old.owner == new.owner
        || (kind == WriteKind::Delta && !leasing)
        || old.time < now.saturating_sub(LEASE_SECS)
        || (old.time == new.time && old.owner.as_bytes() > new.owner.as_bytes())
        || (old.time < new.time && !leasing);
    if allowed {
        Ok(())
    } else {
        Err(SyncError::Leased {
            key: key.to_string(),
            owner: old.owner.to_string(),
            until: old.time.saturating_add(LEASE_SECS),
        })
    }
}

/// The msgpack size of a value.
pub(crate) fn encoded_len(value: &Packet) -> usize {
    msgpack::encoded_len(value)
}

/// `old` updated with the pairs of `delta` (as Python's `dict.update`):
/// equal keys take the delta's value, new keys are appended in order.
/// `None` when `old` is not a map.
pub(crate) fn merge_map(old: Option<&Packet>, delta: &[(Packet, Packet)]) -> Option<Packet> {
    let mut pairs = match old {
        None => Vec::new(),
        Some(Packet::Map(pairs)) => pairs.clone(),
        Some(_) => return None,
    };
    for (k, v) in delta {
        match pairs.iter_mut().find(|(old_k, _)| old_k == k) {
            Some(slot) => slot.1 = v.clone(),
            None => pairs.push((k.clone(), v.clone())),
        }
    }
    Some(Packet::Map(pairs))
}

/// Python's truthiness of a value: nil, false, zero, and empty str, bin,
/// arrays and maps are false. A catch-up entry does not overwrite a key
/// whose value is true (as py2p).
pub(super) fn is_truthy(value: &Packet) -> bool {
    match value {
        Packet::Nil => false,
        Packet::Bool(b) => *b,
        Packet::Int(i) => i.as_i128() != 0,
        Packet::Float(f) => *f != 0.0,
        Packet::Str(s) => !s.is_empty(),
        Packet::Bin(b) => !b.is_empty(),
        Packet::Array(a) => !a.is_empty(),
        Packet::Map(m) => !m.is_empty(),
        Packet::Ext(..) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::IdWire;

    fn meta(owner: &str, time: u64) -> Meta {
        Meta {
            owner: PeerId::new(owner.to_owned(), IdWire::Str),
            time,
        }
    }

    fn store_with(key: &SyncKey, m: Meta) -> Store {
        let mut s = Store::default();
        s.put(key.clone(), Arc::new(1u64.into()), m);
        s
    }

    #[test]
    fn lease_rule_as_the_references() {
        let k = SyncKey::from("k");
        let now = 10_000;
        let s = store_with(&k, meta("B", now));
        let set = WriteKind::Set;
        // Empty key, same owner.
        assert!(Store::default()
            .lease_allows(&k, &meta("A", now), set, true, now)
            .is_ok());
        assert!(s
            .lease_allows(&k, &meta("B", now + 5), set, true, now)
            .is_ok());
        // Another owner, newer: refused with leasing, allowed without.
        assert!(matches!(
            s.lease_allows(&k, &meta("C", now + 5), set, true, now),
            Err(SyncError::Leased { until, .. }) if until == now + LEASE_SECS
        ));
        assert!(s
            .lease_allows(&k, &meta("C", now + 5), set, false, now)
            .is_ok());
        // Older, without leasing: refused.
        assert!(s
            .lease_allows(&k, &meta("C", now - 5), set, false, now)
            .is_err());
        // Equal time: the smaller id wins, by bytes.
        assert!(s.lease_allows(&k, &meta("A", now), set, true, now).is_ok());
        assert!(s.lease_allows(&k, &meta("C", now), set, true, now).is_err());
        // Deltas pass when leasing is off.
        assert!(s
            .lease_allows(&k, &meta("C", now - 5), WriteKind::Delta, false, now)
            .is_ok());
        // An hour later the lease is over.
        let later = now + LEASE_SECS + 1;
        assert!(s
            .lease_allows(&k, &meta("C", later), set, true, later)
            .is_ok());
        assert!(s
            .lease_allows(&k, &meta("C", later), set, true, now + LEASE_SECS)
            .is_err());
    }

    #[test]
    fn owners_compare_by_bytes_whatever_their_form() {
        let k = SyncKey::from("k");
        let bin_owner = Meta {
            owner: PeerId::new("B", IdWire::Bin),
            time: 5,
        };
        let s = store_with(&k, bin_owner);
        // A str "B" is the same owner.
        assert!(s
            .lease_allows(&k, &meta("B", 9), WriteKind::Set, true, 5)
            .is_ok());
        // A str "A" at the same time wins; "C" does not.
        assert!(s
            .lease_allows(&k, &meta("A", 5), WriteKind::Set, true, 5)
            .is_ok());
        assert!(s
            .lease_allows(&k, &meta("C", 5), WriteKind::Set, true, 5)
            .is_err());
    }

    #[test]
    fn merging_maps() {
        let old = Packet::Map(vec![("a".into(), 1u64.into()), ("b".into(), 2u64.into())]);
        let merged = merge_map(
            Some(&old),
            &[("b".into(), 3u64.into()), ("c".into(), 4u64.into())],
        );
        assert_eq!(
            merged,
            Some(Packet::Map(vec![
                ("a".into(), 1u64.into()),
                ("b".into(), 3u64.into()),
                ("c".into(), 4u64.into()),
            ]))
        );
        assert_eq!(merge_map(None, &[]), Some(Packet::Map(vec![])));
        assert_eq!(merge_map(Some(&Packet::from(1u64)), &[]), None);
    }

    #[test]
    fn truthiness_as_python() {
        for v in [
            Packet::Nil,
            false.into(),
            0u64.into(),
            0.0f64.into(),
            "".into(),
            Packet::bin(Bytes::new()),
            Packet::Array(vec![]),
            Packet::Map(vec![]),
        ] {
            assert!(!is_truthy(&v), "{v:?}");
        }
        for v in [
            true.into(),
            1u64.into(),
            "x".into(),
            Packet::Array(vec![Packet::Nil]),
        ] {
            assert!(is_truthy(&v), "{v:?}");
        }
    }

    #[test]
    fn bounds() {
        let cfg = SyncConfig {
            max_keys: 1,
            max_value_len: 8,
            ..SyncConfig::default()
        };
        let s = store_with(&SyncKey::from("a"), meta("A", 1));
        assert!(s.fits(&"a".into(), &1u64.into(), &cfg).is_ok());
        assert_eq!(
            s.fits(&"b".into(), &1u64.into(), &cfg),
            Err(SyncError::TooManyKeys { max: 1 })
        );
        assert!(matches!(
            s.fits(&"a".into(), &"0123456789".into(), &cfg),
            Err(SyncError::ValueTooLarge { len: 11, max: 8 })
        ));
    }
}
