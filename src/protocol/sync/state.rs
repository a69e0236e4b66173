//! [`SyncState`]: the replicated dictionary as a protocol [`Layer`] — the
//! wire messages of py2p's and js2p's `SyncSocket`, applied to a
//! [`Store`] under the lease rule.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::store::{
    encoded_len, is_truthy, lease_check, merge_map, Meta, Store, SyncConfig, SyncError, SyncKey,
    WriteKind,
};
use crate::protocol::mesh::{ConnId, Delivery, Layer, LayerCtx};
use crate::protocol::{packet_to_id, InternalMessage, Packet, PeerId, SubFlag};

/// A change of the dictionary, for subscribers.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum SyncEvent {
    /// A key took a value (set here or by a peer, a delta, or a catch-up).
    Updated {
        /// The key.
        key: SyncKey,
        /// Its new value.
        value: Arc<Packet>,
        /// Who wrote it.
        owner: PeerId,
        /// When (Unix seconds, the writer's clock).
        time: u64,
    },
    /// A key was deleted.
    Deleted {
        /// The key.
        key: SyncKey,
    },
}

/// Writes from peers that were not applied, by reason (none of them costs
/// the peer its connection).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Refused by the lease rule.
    pub leased: u64,
    /// Refused by `max_keys` or `max_value_len`.
    pub over_bounds: u64,
    /// Deletes of keys this node does not hold.
    pub unknown_deletes: u64,
    /// Deltas onto values that are not maps, or deltas that are not maps.
    pub bad_deltas: u64,
    /// Store or delta messages whose packets make no sense.
    pub malformed: u64,
    /// Catch-up entries skipped because the key already held a value.
    pub catch_up_skipped: u64,
}

/// A read-only view of the dictionary, shared with handles on other
/// threads (it reads what the layer last wrote).
#[derive(Clone, Debug, Default)]
pub struct SyncView(Arc<RwLock<Store>>);

impl SyncView {
    /// The store, locked for reading.
    pub fn read(&self) -> RwLockReadGuard<'_, Store> {
        read(&self.0)
    }

    /// The value at `key`.
    pub fn get(&self, key: &SyncKey) -> Option<Arc<Packet>> {
        self.read().get(key).map(|e| e.value.clone())
    }
}

/// The store, locked for reading (a poisoned lock is still read: the
/// store is never left half-written).
fn read(store: &RwLock<Store>) -> RwLockReadGuard<'_, Store> {
    store.read().unwrap_or_else(|e| e.into_inner())
}

/// What is still to be whispered to a new peer: entries from `next` on.
#[derive(Debug)]
struct CatchUp {
    peer: PeerId,
    next: Option<SyncKey>,
}

/// Catch-up bytes whispered to one peer at its handshake and each time its
/// send queue drained: small enough that the newcomer starts on the first
/// entries while the next ones are encoded, and never near the peer's send
/// buffer.
const CATCH_UP_BURST: usize = 256 << 10;

/// Catch-up bytes whispered to one peer per tick, where no driver reports
/// drained queues (the simulator), or a report was missed.
const CATCH_UP_PER_TICK: usize = 1 << 20;

/// The replicated dictionary's protocol logic: a [`Layer`] on the mesh.
/// Pure and deterministic; the [`SyncSocket`](crate::sync::SyncSocket)
/// runs it in a node, the rig and the simulator run it in memory.
#[derive(Debug)]
pub struct SyncState {
    config: SyncConfig,
    store: Arc<RwLock<Store>>,
    events: Vec<SyncEvent>,
    stats: SyncStats,
    catch_up: BTreeMap<ConnId, CatchUp>,
}

impl SyncState {
    /// An empty dictionary with these rules.
    pub fn new(config: SyncConfig) -> Self {
        SyncState {
            config,
            store: Arc::default(),
            events: Vec::new(),
            stats: SyncStats::default(),
            catch_up: BTreeMap::new(),
        }
    }

    /// The rules.
    pub fn config(&self) -> &SyncConfig {
        &self.config
    }

    /// A shared read-only view of the dictionary.
    pub fn view(&self) -> SyncView {
        SyncView(self.store.clone())
    }

    /// The dictionary, locked for reading.
    pub fn store(&self) -> RwLockReadGuard<'_, Store> {
        read(&self.store)
    }

    /// Remote writes not applied so far, by reason.
    pub fn stats(&self) -> SyncStats {
        self.stats
    }

    /// The changes since the last call, oldest first.
    pub fn take_events(&mut self) -> Vec<SyncEvent> {
        std::mem::take(&mut self.events)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Store> {
        self.store.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets `key` to `value` here and on every node: broadcasts
    /// `[store, key, value]`.
    ///
    /// # Errors
    /// [`SyncError::Leased`] if another node holds the key's lease;
    /// [`SyncError::NilValue`], [`SyncError::TooManyKeys`],
    /// [`SyncError::ValueTooLarge`], [`SyncError::Send`]. Nothing is sent
    /// or stored on error.
    pub fn set(
        &mut self,
        ctx: &mut LayerCtx<'_>,
        key: SyncKey,
        value: Packet,
    ) -> Result<(), SyncError> {
        self.update(ctx, vec![(key, value)])
    }

    /// Sets several keys: all are checked first, then each is stored and
    /// broadcast (one message per key, as the references).
    ///
    /// # Errors
    /// As [`set`](Self::set), for the first key that fails; then nothing is
    /// stored or sent.
    pub fn update(
        &mut self,
        ctx: &mut LayerCtx<'_>,
        items: Vec<(SyncKey, Packet)>,
    ) -> Result<(), SyncError> {
        let meta = self.own_meta(ctx);
        {
            let store = self.store();
            let mut new_keys = 0;
            for (key, value) in &items {
                if value.is_nil() {
                    return Err(SyncError::NilValue);
                }
                let old = store.get(key).map(|e| &e.meta);
                lease_check(
                    key,
                    old,
                    &meta,
                    WriteKind::Set,
                    self.config.leasing,
                    meta.time,
                )?;
                store.fits_entry(old.is_none(), value, &self.config)?;
                new_keys += usize::from(old.is_none());
            }
            if store.len() + new_keys > self.config.max_keys {
                return Err(SyncError::TooManyKeys {
                    max: self.config.max_keys,
                });
            }
        }
        for (key, value) in items {
            ctx.broadcast(SubFlag::Store.as_u8(), vec![key.to_packet(), value.clone()])?;
            self.apply(key, Arc::new(value), meta.clone());
        }
        Ok(())
    }

    /// Deletes `key` here and on every node (broadcasts `[store, key,
    /// nil]`). Returns the value it held; `None` (and nothing sent) when
    /// there was none.
    ///
    /// # Errors
    /// [`SyncError::Leased`] if another node holds the key's lease.
    pub fn delete(
        &mut self,
        ctx: &mut LayerCtx<'_>,
        key: &SyncKey,
    ) -> Result<Option<Arc<Packet>>, SyncError> {
        let meta = self.own_meta(ctx);
        if self.store().get(key).is_none() {
            return Ok(None);
        }
        self.store().lease_allows(
            key,
            &meta,
            WriteKind::Delete,
            self.config.leasing,
            meta.time,
        )?;
        ctx.broadcast(SubFlag::Store.as_u8(), vec![key.to_packet(), Packet::Nil])?;
        Ok(self.remove(key))
    }

    /// Merges the map `delta` into the map at `key` (an absent key counts
    /// as an empty map) here and on every node (broadcasts `[delta, key,
    /// delta]`). Returns the merged map.
    ///
    /// # Errors
    /// [`SyncError::DeltaNotAMap`], [`SyncError::NotAMap`] when `key` holds
    /// another value, [`SyncError::Leased`], the bounds, [`SyncError::Send`].
    pub fn apply_delta(
        &mut self,
        ctx: &mut LayerCtx<'_>,
        key: SyncKey,
        delta: Packet,
    ) -> Result<Arc<Packet>, SyncError> {
        let pairs = delta.as_map().ok_or(SyncError::DeltaNotAMap)?;
        let meta = self.own_meta(ctx);
        let merged = {
            let store = self.store();
            let old = store.get(&key).map(|e| e.value.clone());
            let merged = merge_map(old.as_deref(), pairs)
                .ok_or_else(|| SyncError::NotAMap(key.to_string()))?;
            store.lease_allows(
                &key,
                &meta,
                WriteKind::Delta,
                self.config.leasing,
                meta.time,
            )?;
            store.fits(&key, &merged, &self.config)?;
            Arc::new(merged)
        };
        ctx.broadcast(SubFlag::Delta.as_u8(), vec![key.to_packet(), delta])?;
        self.apply(key, merged.clone(), meta);
        Ok(merged)
    }

    fn own_meta(&self, ctx: &LayerCtx<'_>) -> Meta {
        Meta {
            owner: ctx.id().clone(),
            time: ctx.now_secs(),
        }
    }

    fn apply(&mut self, key: SyncKey, value: Arc<Packet>, meta: Meta) {
        self.write().put(key.clone(), value.clone(), meta.clone());
        self.events.push(SyncEvent::Updated {
            key,
            value,
            owner: meta.owner,
            time: meta.time,
        });
    }

    fn remove(&mut self, key: &SyncKey) -> Option<Arc<Packet>> {
        let removed = self.write().remove(key)?;
        self.events.push(SyncEvent::Deleted { key: key.clone() });
        Some(removed.value)
    }

    /// A write from a peer: applied under the lease rule and the bounds, or
    /// counted and dropped. Whether it was applied.
    fn apply_remote(
        &mut self,
        now: u64,
        key: SyncKey,
        value: Packet,
        meta: Meta,
        kind: WriteKind,
    ) -> bool {
        let leasing = self.config.leasing;
        let is_new;
        let outcome = {
            let store = read(&self.store);
            let old = store.get(&key);
            is_new = old.is_none();
            if kind == WriteKind::Delete && old.is_none() {
                self.stats.unknown_deletes += 1;
                return false;
            }
            if lease_check(&key, old.map(|e| &e.meta), &meta, kind, leasing, now).is_err() {
                self.stats.leased += 1;
                return false;
            }
            match kind {
                WriteKind::Delete => None,
                WriteKind::Set => Some(value),
                WriteKind::Delta => {
                    let merged = value
                        .as_map()
                        .and_then(|pairs| merge_map(old.map(|e| &*e.value), pairs));
                    match merged {
                        Some(m) => Some(m),
                        None => {
                            self.stats.bad_deltas += 1;
                            return false;
                        }
                    }
                }
            }
        };
        match outcome {
            None => {
                self.remove(&key);
            }
            Some(value) => {
                if self
                    .store()
                    .fits_entry(is_new, &value, &self.config)
                    .is_err()
                {
                    self.stats.over_bounds += 1;
                    return false;
                }
                self.apply(key, Arc::new(value), meta);
            }
        }
        true
    }

    /// Whispers catch-up entries to `conn` from where it stopped, up to
    /// `budget` bytes; forgets the catch-up once every entry went.
    fn pump_catch_up(&mut self, ctx: &mut LayerCtx<'_>, conn: ConnId, budget: usize) {
        let Some(state) = self.catch_up.get_mut(&conn) else {
            return;
        };
        let store = read(&self.store);
        let mut sent = 0;
        let mut range = store.iter_from(state.next.as_ref());
        loop {
            let Some((key, entry)) = range.next() else {
                drop(range);
                drop(store);
                self.catch_up.remove(&conn);
                return;
            };
            if sent >= budget {
                state.next = Some(key.clone());
                return;
            }
            sent += encoded_len(&entry.value) + key.as_bytes().len() + 96;
            let packets = vec![
                key.to_packet(),
                (*entry.value).clone(),
                crate::protocol::id_to_packet(&entry.meta.owner),
                entry.meta.time.into(),
            ];
            if ctx.whisper(conn, SubFlag::Store.as_u8(), packets).is_err() {
                // Gone, or an entry too large for a frame: skip it.
                continue;
            }
        }
    }
}

/// `[key, value]` or `[key, value, owner, time]` after the sub-flag.
fn parse_store(message: &InternalMessage) -> Option<(SyncKey, Packet, Option<Meta>)> {
    let p = &message.payload;
    let key = SyncKey::from_packet(p.get(1)?)?;
    let value = p.get(2)?.clone();
    match p.len() {
        3 => Some((key, value, None)),
        5 => {
            let owner = packet_to_id(p[3].clone())?;
            let time = p[4].as_u64()?;
            Some((key, value, Some(Meta { owner, time })))
        }
        _ => None,
    }
}

impl Layer for SyncState {
    fn claims(&self, message: &InternalMessage) -> bool {
        matches!(message.sub_flag(), Some(SubFlag::Store | SubFlag::Delta))
    }

    fn on_peer_ready(&mut self, ctx: &mut LayerCtx<'_>, peer: &PeerId, conn: ConnId) {
        // Every entry we hold goes to the newcomer, after the mesh's peer
        // list, as `[whisper, store, key, value, owner, time]`.
        self.catch_up.insert(
            conn,
            CatchUp {
                peer: peer.clone(),
                next: None,
            },
        );
        self.pump_catch_up(ctx, conn, CATCH_UP_BURST);
    }

    fn on_message(&mut self, ctx: &mut LayerCtx<'_>, delivery: Delivery) {
        let message = &delivery.message;
        let now = ctx.now_secs();
        let sender_meta = Meta {
            owner: message.sender.clone(),
            time: message.time,
        };
        match message.sub_flag() {
            Some(SubFlag::Store) => {
                let Some((key, value, catch_up)) = parse_store(message) else {
                    self.stats.malformed += 1;
                    return;
                };
                let kind = if value.is_nil() {
                    WriteKind::Delete
                } else {
                    WriteKind::Set
                };
                let Some(meta) = catch_up else {
                    self.apply_remote(now, key, value, sender_meta, kind);
                    return;
                };
                // A catch-up entry never overwrites a value that is there
                // (py2p: "truthy"), whatever its main flag; nor one that is
                // the very same entry.
                let known = self
                    .store()
                    .get(&key)
                    .is_some_and(|e| is_truthy(&e.value) || (*e.value == value && e.meta == meta));
                if known {
                    self.stats.catch_up_skipped += 1;
                    return;
                }
                // Better than the references: an entry new to us goes on
                // to our other peers, so a write made while its writer was
                // cut off reaches the whole network, not only the writer's
                // direct peers.
                let others: Vec<ConnId> = ctx
                    .mesh()
                    .peer_conns()
                    .filter(|&c| c != delivery.conn)
                    .collect();
                let forward = (!others.is_empty()).then(|| {
                    vec![
                        key.to_packet(),
                        value.clone(),
                        crate::protocol::id_to_packet(&meta.owner),
                        meta.time.into(),
                    ]
                });
                if self.apply_remote(now, key, value, meta, kind) {
                    for (conn, forward) in others.into_iter().zip(std::iter::repeat(forward)) {
                        if let Some(packets) = forward {
                            let _ = ctx.whisper(conn, SubFlag::Store.as_u8(), packets);
                        }
                    }
                }
            }
            Some(SubFlag::Delta) => {
                let p = &message.payload;
                let (Some(key), Some(delta), 3) =
                    (p.get(1).and_then(SyncKey::from_packet), p.get(2), p.len())
                else {
                    self.stats.malformed += 1;
                    return;
                };
                self.apply_remote(now, key, delta.clone(), sender_meta, WriteKind::Delta);
            }
            _ => {}
        }
    }

    fn on_peer_left(&mut self, _ctx: &mut LayerCtx<'_>, peer: &PeerId) {
        self.catch_up.retain(|_, c| &c.peer != peer);
    }

    fn on_writable(&mut self, ctx: &mut LayerCtx<'_>, conn: ConnId) {
        // The last burst went out: the next one, without waiting for the
        // tick.
        if ctx.mesh().peer_of(conn).is_some() {
            self.pump_catch_up(ctx, conn, CATCH_UP_BURST);
        }
    }

    fn on_tick(&mut self, ctx: &mut LayerCtx<'_>) {
        let conns: Vec<ConnId> = self.catch_up.keys().copied().collect();
        for conn in conns {
            if ctx.mesh().peer_of(conn).is_none() {
                self.catch_up.remove(&conn);
                continue;
            }
            self.pump_catch_up(ctx, conn, CATCH_UP_PER_TICK);
        }
    }
}
