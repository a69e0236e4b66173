//! Writing: `set`, `delete` and `apply_delta` from the application, store
//! and delta messages from peers (stored here or forwarded hop by hop to
//! the responsible node), and handing entries over when responsibility
//! moves.

use bytes::Bytes;

use super::config::ChordError;
use super::ring::Slot;
use super::state::{ChordState, Entry, Target};
use crate::protocol::mesh::{ConnId, LayerCtx};
use crate::protocol::sync::{encoded_len, merge_map};
use crate::protocol::{Packet, SubFlag};

/// What a write does to a slot.
#[derive(Clone, Debug)]
pub(super) enum Write {
    /// Store this value (nil deletes).
    Store(Packet),
    /// Merge this map into the map there (an absent slot is an empty map).
    Delta(Packet),
}

impl Write {
    fn flag(&self) -> SubFlag {
        match self {
            Write::Store(_) => SubFlag::Store,
            Write::Delta(_) => SubFlag::Delta,
        }
    }

    fn value(&self) -> &Packet {
        match self {
            Write::Store(v) | Write::Delta(v) => v,
        }
    }
}

impl ChordState {
    /// Stores `value` at `key` in all five tables (each goes to the node
    /// responsible for its hash, hop by hop), then broadcasts the key as
    /// new (`[notify, key]`) if it is.
    ///
    /// # Errors
    /// [`ChordError::NilValue`] (use [`delete`](Self::delete)),
    /// [`ChordError::ValueTooLarge`], [`ChordError::TooManyKeys`]; nothing
    /// is sent then.
    pub fn set(
        &mut self,
        ctx: &mut LayerCtx<'_>,
        key: Bytes,
        value: Packet,
    ) -> Result<(), ChordError> {
        if value.is_nil() {
            return Err(ChordError::NilValue);
        }
        self.check_value(&value)?;
        self.check_room(&key)?;
        self.write_all(ctx, &key, Write::Store(value));
        self.announce(ctx, key)
    }

    /// Deletes `key` from all five tables and from every node's key list
    /// (`[notify, key, "del"]`).
    ///
    /// # Errors
    /// [`ChordError::UnknownKey`] if the key is not in this node's key
    /// list (as py2p's `KeyError`).
    pub fn delete(&mut self, ctx: &mut LayerCtx<'_>, key: &[u8]) -> Result<(), ChordError> {
        if !self.keys.contains_key(key) {
            return Err(ChordError::UnknownKey(
                String::from_utf8_lossy(key).into_owned(),
            ));
        }
        let key = Bytes::copy_from_slice(key);
        self.write_all(ctx, &key, Write::Store(Packet::Nil));
        self.remove_key(&key);
        ctx.broadcast(
            SubFlag::Notify.as_u8(),
            vec![Packet::bin(key), Packet::bin(&b"del"[..])],
        )?;
        Ok(())
    }

    /// Merges the map `delta` into the map at `key` in all five tables (an
    /// absent key counts as an empty map). A table holding something else
    /// than a map keeps it (counted in [`bad_deltas`](super::ChordStats)).
    /// Read the result with a `get`: it follows the delta on the same path.
    ///
    /// # Errors
    /// [`ChordError::DeltaNotAMap`], the bounds, as [`set`](Self::set).
    pub fn apply_delta(
        &mut self,
        ctx: &mut LayerCtx<'_>,
        key: Bytes,
        delta: Packet,
    ) -> Result<(), ChordError> {
        if delta.as_map().is_none() {
            return Err(ChordError::DeltaNotAMap);
        }
        self.check_value(&delta)?;
        self.check_room(&key)?;
        self.write_all(ctx, &key, Write::Delta(delta));
        self.announce(ctx, key)
    }

    fn check_value(&self, value: &Packet) -> Result<(), ChordError> {
        let len = encoded_len(value);
        if len > self.config.max_value_len {
            return Err(ChordError::ValueTooLarge {
                len,
                max: self.config.max_value_len,
            });
        }
        Ok(())
    }

    fn check_room(&self, key: &[u8]) -> Result<(), ChordError> {
        if !self.keys.contains_key(key) && self.keys.len() >= self.config.max_keys {
            return Err(ChordError::TooManyKeys {
                max: self.config.max_keys,
            });
        }
        Ok(())
    }

    /// Adds a new key to the key list and tells every node.
    fn announce(&mut self, ctx: &mut LayerCtx<'_>, key: Bytes) -> Result<(), ChordError> {
        if self.keys.contains_key(&key) {
            return Ok(());
        }
        self.add_key(key.clone());
        ctx.broadcast(SubFlag::Notify.as_u8(), vec![Packet::bin(key)])?;
        Ok(())
    }

    fn write_all(&mut self, ctx: &mut LayerCtx<'_>, key: &Bytes, write: Write) {
        for slot in Slot::all_of(key) {
            self.route(ctx, slot, write.clone(), Some(key.clone()), None);
        }
    }

    /// Sends a write towards the node responsible for `slot`, or applies it
    /// here when that is us (or nobody stores, or the only nearer node is
    /// the one it came from).
    pub(super) fn route(
        &mut self,
        ctx: &mut LayerCtx<'_>,
        slot: Slot,
        write: Write,
        key: Option<Bytes>,
        from: Option<ConnId>,
    ) {
        match self.find(ctx, &slot, self.storing, None) {
            Target::Peer(conn) if Some(conn) != from => {
                if from.is_some() {
                    self.stats.forwarded += 1;
                }
                self.send_write(ctx, conn, &slot, &write, key);
            }
            _ => self.apply_here(ctx, slot, write, key),
        }
    }

    /// `[store|delta, method, hash, value, key]`: the references read the
    /// first four packets; rs2p adds the key so the receiver can repair the
    /// key's other slots.
    pub(super) fn send_write(
        &self,
        ctx: &mut LayerCtx<'_>,
        conn: ConnId,
        slot: &Slot,
        write: &Write,
        key: Option<Bytes>,
    ) {
        let [method, hash] = Self::slot_packets(ctx, conn, slot);
        let mut packets = vec![method, hash, write.value().clone()];
        packets.extend(key.map(Packet::bin));
        let _ = ctx.whisper(conn, write.flag().as_u8(), packets);
    }

    /// Applies a write to this node's tables, within the bounds.
    pub(super) fn apply(&mut self, slot: Slot, write: Write, key: Option<Bytes>) {
        let key = key.filter(|k| Slot::of_key(slot.method, k) == slot);
        let value = match write {
            Write::Store(Packet::Nil) => {
                if self.tables.remove(&slot).is_none() {
                    self.stats.unknown_deletes += 1;
                }
                return;
            }
            Write::Store(value) => value,
            Write::Delta(delta) => {
                let old = self.tables.get(&slot).map(|e| &e.value);
                match delta.as_map().and_then(|pairs| merge_map(old, pairs)) {
                    Some(merged) => merged,
                    None => {
                        self.stats.bad_deltas += 1;
                        return;
                    }
                }
            }
        };
        let fits = encoded_len(&value) <= self.config.max_value_len
            && (self.tables.contains_key(&slot) || self.tables.len() < self.config.max_entries);
        if !fits {
            self.stats.over_bounds += 1;
            return;
        }
        let known = self.slot_keys.get(&slot).cloned();
        let key = key.or_else(|| self.tables.get(&slot).and_then(|e| e.key.clone()));
        let key = key.or(known);
        self.tables.insert(slot, Entry { value, key });
    }

    /// A store from a peer: `[store, method, hash, value, (key)]`.
    pub(super) fn on_store(&mut self, ctx: &mut LayerCtx<'_>, conn: ConnId, p: &[Packet]) {
        self.on_write(ctx, conn, p, Write::Store);
    }

    /// A delta from a peer: `[delta, method, hash, map, (key)]`.
    pub(super) fn on_delta(&mut self, ctx: &mut LayerCtx<'_>, conn: ConnId, p: &[Packet]) {
        if p.get(3).is_some_and(|d| d.as_map().is_none()) {
            self.stats.bad_deltas += 1;
            return;
        }
        self.on_write(ctx, conn, p, Write::Delta);
    }

    fn on_write(
        &mut self,
        ctx: &mut LayerCtx<'_>,
        conn: ConnId,
        p: &[Packet],
        make: fn(Packet) -> Write,
    ) {
        let (Some(method), Some(hash), Some(value)) = (p.get(1), p.get(2), p.get(3)) else {
            self.stats.malformed += 1;
            return;
        };
        let Some(slot) = Slot::from_packets(method, hash) else {
            self.stats.bad_slots += 1;
            return;
        };
        if encoded_len(value) > self.config.max_value_len {
            self.stats.over_bounds += 1;
            return;
        }
        let key = p
            .get(4)
            .and_then(Packet::as_bytes)
            .map(Bytes::copy_from_slice);
        self.route(ctx, slot, make(value.clone()), key, Some(conn));
    }

    /// Hands every entry whose responsible node is now a peer to it, and
    /// forgets it here (a leeching node keeps what it cannot hand over).
    pub(super) fn hand_over(&mut self, ctx: &mut LayerCtx<'_>) {
        let moves: Vec<(Slot, ConnId)> = self
            .tables
            .keys()
            .filter_map(|slot| match self.find(ctx, slot, self.storing, None) {
                Target::Peer(conn) => Some((slot.clone(), conn)),
                _ => None,
            })
            .collect();
        for (slot, conn) in moves {
            if let Some(entry) = self.tables.remove(&slot) {
                self.backups.remove(&slot);
                self.stats.handed_over += 1;
                self.send_write(ctx, conn, &slot, &Write::Store(entry.value), entry.key);
            }
        }
    }
}
