//! Backups: every slot a storing node holds is copied to the node that
//! would be responsible for it without this one (its predecessor on the
//! ring), which takes it over the moment this node is gone. Five slots per
//! key are not enough by themselves: on a small or uneven ring one node can
//! be responsible for three or more slots of a key, and its death would
//! leave no quorum.
//!
//! The copy travels as `[retrieved (0x0D), method, hash, value|nil, key,
//! "replica"]`: py2p ignores a retrieved message it did not ask for (it
//! returns from its handler without effect), so a py2p predecessor is
//! simply not a backup, and nothing lands in its message queue.

use bytes::Bytes;

use super::ring::Slot;
use super::state::{ChordState, Entry, Target};
use super::tables::Write;
use crate::protocol::mesh::{ConnId, LayerCtx};
use crate::protocol::{Packet, SubFlag};

/// The marker that makes a retrieved message a backup copy.
pub(super) const REPLICA: &[u8] = b"replica";

impl ChordState {
    /// Applies a write to this node's tables and keeps the slot's backup
    /// in step.
    pub(super) fn apply_here(
        &mut self,
        ctx: &mut LayerCtx<'_>,
        slot: Slot,
        write: Write,
        key: Option<Bytes>,
    ) {
        self.apply(slot.clone(), write, key);
        self.back_up(ctx, &slot, true);
    }

    /// Sends `slot`'s backup to the node next in line for it (`force`: even
    /// if that node already has one); tells a former backup to drop it.
    pub(super) fn back_up(&mut self, ctx: &mut LayerCtx<'_>, slot: &Slot, force: bool) {
        let entry = self.tables.get(slot).cloned();
        let next = match (&entry, self.storing) {
            (Some(_), true) => match self.find(ctx, slot, false, None) {
                Target::Peer(conn) => Some(conn),
                _ => None,
            },
            _ => None,
        };
        let old = match next {
            Some(conn) => self.backups.insert(slot.clone(), conn),
            None => self.backups.remove(slot),
        };
        if let Some(old) = old.filter(|&o| Some(o) != next) {
            self.send_replica(ctx, old, slot, Packet::Nil, None);
        }
        if let (Some(conn), Some(entry)) = (next, entry) {
            if force || old != Some(conn) {
                self.send_replica(ctx, conn, slot, entry.value, entry.key);
            }
        }
    }

    fn send_replica(
        &self,
        ctx: &mut LayerCtx<'_>,
        conn: ConnId,
        slot: &Slot,
        value: Packet,
        key: Option<Bytes>,
    ) {
        let [method, hash] = Self::slot_packets(ctx, conn, slot);
        let key = key.map_or(Packet::Nil, Packet::bin);
        let packets = vec![method, hash, value, key, Packet::bin(REPLICA)];
        let _ = ctx.whisper(conn, SubFlag::Retrieved.as_u8(), packets);
    }

    /// A backup copy from the node responsible for `slot` (nil: drop it).
    pub(super) fn on_replica(&mut self, slot: Slot, value: &Packet, key: Option<&[u8]>) {
        if value.is_nil() {
            self.replicas.remove(&slot);
            return;
        }
        let room =
            self.replicas.contains_key(&slot) || self.replicas.len() < self.config.max_entries;
        if !room || crate::protocol::sync::encoded_len(value) > self.config.max_value_len {
            self.stats.over_bounds += 1;
            return;
        }
        let key = key
            .map(Bytes::copy_from_slice)
            .filter(|k| Slot::of_key(slot.method, k) == slot);
        self.replicas.insert(
            slot,
            Entry {
                value: value.clone(),
                key,
            },
        );
    }

    /// The ring changed (a storing peer came or went, we joined or left):
    /// backups this node now answers for become its own slots, entries
    /// now another node's go to it, and every slot's backup is where the
    /// new ring puts it.
    pub(super) fn ring_changed(&mut self, ctx: &mut LayerCtx<'_>) {
        if self.storing {
            let promote: Vec<Slot> = self
                .replicas
                .keys()
                .filter(|s| !self.tables.contains_key(*s))
                .filter(|s| self.find(ctx, s, true, None) == Target::Me)
                .cloned()
                .collect();
            for slot in promote {
                if let Some(entry) = self.replicas.remove(&slot) {
                    self.stats.promoted += 1;
                    self.apply(slot, Write::Store(entry.value), entry.key);
                }
            }
        }
        self.hand_over(ctx);
        let held: Vec<Slot> = self.tables.keys().cloned().collect();
        for slot in held {
            self.back_up(ctx, &slot, false);
        }
        self.backups.retain(|s, _| self.tables.contains_key(s));
    }
}
