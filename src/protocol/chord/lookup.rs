//! Reading: `get` (five lookups, a quorum of agreeing answers), retrieve
//! messages from peers (answered here or forwarded hop by hop, answered
//! only when the answer comes back), their expiry, and the repair of slots
//! lost with a storing node.

use bytes::Bytes;

use super::config::{ChordError, GetId};
use super::ring::{Method, Slot};
use super::state::{ChordState, Target};
use super::tables::Write;
use crate::protocol::mesh::{ConnId, LayerCtx};
use crate::protocol::{Packet, SubFlag};

/// Peers waiting on one forwarded retrieve at most; more are answered nil.
const MAX_WAITERS: usize = 64;

/// One table's answer to a get.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Answer {
    /// Asked, not answered yet.
    Waiting,
    /// Not asked (a repair does not ask the slot it restores).
    Skipped,
    /// No value; `last` when it cannot change (answered from our own
    /// tables), otherwise a value may still follow (py2p forwards a lookup
    /// by answering nil first).
    Nil {
        /// Whether the answer is final.
        last: bool,
    },
    /// A value.
    Value(Packet),
}

/// A get under way.
#[derive(Debug)]
pub(super) struct Get {
    key: Bytes,
    answers: [Answer; 5],
    deadline: u64,
    last_answer: u64,
    /// A repair (restoring these tables here) rather than the
    /// application's get.
    repair: Option<Vec<Method>>,
}

/// A retrieve sent to a peer for a slot: our gets and the peers whose
/// retrieves we forwarded wait for its answer.
#[derive(Debug)]
pub(super) struct Pending {
    gets: Vec<GetId>,
    waiters: Vec<Waiter>,
    sent_to: ConnId,
    deadline: u64,
    /// A nil answer came; a value may still follow until the deadline.
    nil_seen: bool,
}

/// A peer whose retrieve we forwarded, with its packets to echo (py2p
/// matches answers by the exact types it asked with).
#[derive(Debug)]
struct Waiter {
    conn: ConnId,
    method: Packet,
    hash: Packet,
}

impl ChordState {
    /// Starts a get of `key`: one lookup per table, answered from our own
    /// tables when we are responsible, otherwise by a retrieve to the
    /// nearest storing peer. The result comes through
    /// [`take_results`](Self::take_results) with the returned id: the value
    /// that more than two tables agree on, as soon as they do, or an error
    /// once every table answered ([`ChordError::NotFound`],
    /// [`ChordError::NoQuorum`]) or the timeout passed
    /// ([`ChordError::Timeout`]).
    ///
    /// # Errors
    /// [`ChordError::Busy`] when `max_pending` gets are under way.
    pub fn get(&mut self, ctx: &mut LayerCtx<'_>, key: &[u8]) -> Result<GetId, ChordError> {
        let user_gets = self.gets.values().filter(|g| g.repair.is_none()).count();
        if user_gets >= self.config.max_pending {
            return Err(ChordError::Busy {
                max: self.config.max_pending,
            });
        }
        Ok(self.start_get(ctx, Bytes::copy_from_slice(key), None))
    }

    fn start_get(
        &mut self,
        ctx: &mut LayerCtx<'_>,
        key: Bytes,
        repair: Option<Vec<Method>>,
    ) -> GetId {
        self.next_get += 1;
        let id = self.next_get;
        let now = ctx.now_ms();
        let skip = repair.clone().unwrap_or_default();
        let answers = Method::ALL.map(|m| {
            if skip.contains(&m) {
                Answer::Skipped
            } else {
                Answer::Waiting
            }
        });
        let slots = Slot::all_of(&key);
        self.gets.insert(
            id,
            Get {
                key,
                answers,
                deadline: now + self.config.request_timeout_ms,
                last_answer: now,
                repair,
            },
        );
        for slot in slots {
            if !skip.contains(&slot.method) {
                self.ask(ctx, id, slot);
            }
        }
        self.settle(ctx, id);
        id
    }

    /// One lookup of a get.
    fn ask(&mut self, ctx: &mut LayerCtx<'_>, id: GetId, slot: Slot) {
        let method = slot.method;
        if let Target::Peer(conn) = self.find(ctx, &slot, self.storing, None) {
            if let Some(p) = self.pending.get_mut(&slot) {
                p.gets.push(id);
                if p.nil_seen {
                    self.answer(id, method, None, false, ctx.now_ms());
                }
                return;
            }
            if self.pending.len() < self.config.max_pending {
                self.send_retrieve(ctx, conn, &slot);
                let deadline = ctx.now_ms() + self.config.request_timeout_ms;
                self.pending.insert(
                    slot,
                    Pending {
                        gets: vec![id],
                        waiters: Vec::new(),
                        sent_to: conn,
                        deadline,
                        nil_seen: false,
                    },
                );
                return;
            }
        }
        let local = self.tables.get(&slot).map(|e| e.value.clone());
        self.answer(id, method, local, true, ctx.now_ms());
    }

    fn send_retrieve(&self, ctx: &mut LayerCtx<'_>, conn: ConnId, slot: &Slot) {
        let [method, hash] = Self::slot_packets(ctx, conn, slot);
        let _ = ctx.whisper(conn, SubFlag::Retrieve.as_u8(), vec![method, hash]);
    }

    /// Records a table's answer (a value replaces a nil that may change).
    fn answer(&mut self, id: GetId, method: Method, value: Option<Packet>, last: bool, now: u64) {
        let Some(get) = self.gets.get_mut(&id) else {
            return;
        };
        let slot = &mut get.answers[method as usize];
        if matches!(slot, Answer::Waiting | Answer::Nil { last: false }) {
            *slot = match value {
                Some(v) if !v.is_nil() => Answer::Value(v),
                _ => Answer::Nil { last },
            };
            get.last_answer = now;
        }
    }

    /// Finishes a get if its answers decide it.
    fn settle(&mut self, ctx: &mut LayerCtx<'_>, id: GetId) {
        let now = ctx.now_ms();
        let Some(get) = self.gets.get(&id) else {
            return;
        };
        let quorum = if get.repair.is_some() { 2 } else { 3 };
        let mut best: Option<(&Packet, usize)> = None;
        for a in &get.answers {
            if let Answer::Value(v) = a {
                let n = get
                    .answers
                    .iter()
                    .filter(|b| matches!(b, Answer::Value(w) if w == v))
                    .count();
                if best.is_none_or(|(_, m)| n > m) {
                    best = Some((v, n));
                }
            }
        }
        let agreeing = best.map_or(0, |(_, n)| n);
        let result = match best {
            Some((v, n)) if n >= quorum => Ok(v.clone()),
            _ => {
                let waiting = get.answers.contains(&Answer::Waiting);
                let settled = get
                    .answers
                    .iter()
                    .all(|a| !matches!(a, Answer::Waiting | Answer::Nil { last: false }));
                let quiet = now >= get.last_answer + self.config.late_answer_ms;
                if !waiting && (settled || quiet || now >= get.deadline) {
                    Err(if agreeing == 0 {
                        ChordError::NotFound
                    } else {
                        ChordError::NoQuorum { agreeing }
                    })
                } else if now >= get.deadline {
                    Err(ChordError::Timeout(self.config.request_timeout_ms))
                } else {
                    return;
                }
            }
        };
        let Some(get) = self.gets.remove(&id) else {
            return;
        };
        match get.repair {
            None => self.results.push((id, result)),
            Some(missing) => {
                self.repairs.remove(&get.key);
                if let Ok(value) = result {
                    self.restore(ctx, &get.key, &missing, value);
                }
            }
        }
    }

    /// A retrieve from a peer: `[retrieve, method, hash]`. Answered from
    /// our tables when we are responsible; otherwise forwarded to the
    /// nearest storing peer and answered when its answer comes (not with a
    /// nil first, as py2p does).
    pub(super) fn on_retrieve(&mut self, ctx: &mut LayerCtx<'_>, conn: ConnId, p: &[Packet]) {
        let (Some(method), Some(hash)) = (p.get(1), p.get(2)) else {
            self.stats.malformed += 1;
            return;
        };
        let Some(slot) = Slot::from_packets(method, hash) else {
            self.stats.bad_slots += 1;
            return;
        };
        let waiter = Waiter {
            conn,
            method: method.clone(),
            hash: hash.clone(),
        };
        if let Target::Peer(next) = self.find(ctx, &slot, self.storing, Some(conn)) {
            if let Some(pe) = self.pending.get_mut(&slot) {
                if pe.waiters.len() < MAX_WAITERS {
                    pe.waiters.push(waiter);
                    return;
                }
                self.stats.overloaded += 1;
                Self::reply(ctx, &waiter, Packet::Nil);
                return;
            }
            if self.pending.len() < self.config.max_pending {
                self.send_retrieve(ctx, next, &slot);
                let deadline = ctx.now_ms() + self.config.request_timeout_ms;
                self.pending.insert(
                    slot,
                    Pending {
                        gets: Vec::new(),
                        waiters: vec![waiter],
                        sent_to: next,
                        deadline,
                        nil_seen: false,
                    },
                );
                return;
            }
            self.stats.overloaded += 1;
        }
        let value = self
            .tables
            .get(&slot)
            .map_or(Packet::Nil, |e| e.value.clone());
        Self::reply(ctx, &waiter, value);
    }

    /// `[retrieved, method, hash, value]`, in the request's own types.
    fn reply(ctx: &mut LayerCtx<'_>, w: &Waiter, value: Packet) {
        let packets = vec![w.method.clone(), w.hash.clone(), value];
        let _ = ctx.whisper(w.conn, SubFlag::Retrieved.as_u8(), packets);
    }

    /// An answer to a retrieve: `[retrieved, method, hash, value]`.
    pub(super) fn on_retrieved(&mut self, ctx: &mut LayerCtx<'_>, p: &[Packet]) {
        let (Some(method), Some(hash), Some(value)) = (p.get(1), p.get(2), p.get(3)) else {
            self.stats.malformed += 1;
            return;
        };
        let Some(slot) = Slot::from_packets(method, hash) else {
            self.stats.bad_slots += 1;
            return;
        };
        let Some(pe) = self.pending.get_mut(&slot) else {
            self.stats.unsolicited += 1;
            return;
        };
        for w in &pe.waiters {
            Self::reply(ctx, w, value.clone());
        }
        let gets = if value.is_nil() {
            pe.nil_seen = true;
            pe.gets.clone()
        } else {
            self.pending
                .remove(&slot)
                .map(|p| p.gets)
                .unwrap_or_default()
        };
        let now = ctx.now_ms();
        for id in gets {
            self.answer(id, slot.method, Some(value.clone()), false, now);
            self.settle(ctx, id);
        }
    }

    /// Drops expired lookups (a forwarded one that never got an answer is
    /// answered nil) and finishes the gets that are due.
    pub(super) fn expire(&mut self, ctx: &mut LayerCtx<'_>) {
        let now = ctx.now_ms();
        let due: Vec<Slot> = self
            .pending
            .iter()
            .filter(|(_, p)| now >= p.deadline)
            .map(|(s, _)| s.clone())
            .collect();
        for slot in due {
            if let Some(p) = self.pending.remove(&slot) {
                if !p.nil_seen {
                    for w in &p.waiters {
                        Self::reply(ctx, w, Packet::Nil);
                    }
                }
            }
        }
        let ids: Vec<GetId> = self.gets.keys().copied().collect();
        for id in ids {
            self.settle(ctx, id);
        }
    }

    /// The peer on `conn` left: forget its waiting retrieves, and ask again
    /// (elsewhere) what we had asked it.
    pub(super) fn peer_gone(&mut self, ctx: &mut LayerCtx<'_>, conn: ConnId) {
        for p in self.pending.values_mut() {
            p.waiters.retain(|w| w.conn != conn);
        }
        let lost: Vec<Slot> = self
            .pending
            .iter()
            .filter(|(_, p)| p.sent_to == conn && !p.nil_seen)
            .map(|(s, _)| s.clone())
            .collect();
        for slot in lost {
            match self.find(ctx, &slot, self.storing, Some(conn)) {
                Target::Peer(next) => {
                    self.send_retrieve(ctx, next, &slot);
                    if let Some(p) = self.pending.get_mut(&slot) {
                        p.sent_to = next;
                    }
                }
                _ => {
                    let Some(p) = self.pending.remove(&slot) else {
                        continue;
                    };
                    let local = self.tables.get(&slot).map(|e| e.value.clone());
                    for w in &p.waiters {
                        Self::reply(ctx, w, local.clone().unwrap_or(Packet::Nil));
                    }
                    let now = ctx.now_ms();
                    for id in p.gets {
                        self.answer(id, slot.method, local.clone(), true, now);
                        self.settle(ctx, id);
                    }
                }
            }
        }
    }

    /// The repair pass: for every known key, the slots this node is now
    /// responsible for but does not hold are read from the key's other
    /// tables (two agreeing answers suffice) and stored here.
    pub(super) fn sweep(&mut self, ctx: &mut LayerCtx<'_>) {
        if !self.storing {
            return;
        }
        let room = self.config.max_repairs.saturating_sub(self.repairs.len());
        let mut todo: Vec<(Bytes, Vec<Method>)> = Vec::new();
        for (key, slots) in &self.keys {
            if self.repairs.contains(key) {
                continue;
            }
            let missing: Vec<Method> = slots
                .iter()
                .filter(|s| !self.tables.contains_key(*s))
                .filter(|s| self.find(ctx, s, true, None) == Target::Me)
                .map(|s| s.method)
                .collect();
            if !missing.is_empty() {
                if todo.len() == room {
                    // More next time, soon.
                    self.repair_at = Some(ctx.now_ms() + self.config.repair_delay_ms);
                    break;
                }
                todo.push((key.clone(), missing));
            }
        }
        for (key, missing) in todo {
            if missing.len() == Method::ALL.len() {
                continue;
            }
            self.repairs.insert(key.clone());
            self.start_get(ctx, key, Some(missing));
        }
    }

    /// A repair read `value`: store it in the slots still ours and empty.
    fn restore(&mut self, ctx: &mut LayerCtx<'_>, key: &Bytes, missing: &[Method], value: Packet) {
        for &m in missing {
            let slot = Slot::of_key(m, key);
            if !self.tables.contains_key(&slot)
                && self.find(ctx, &slot, self.storing, None) == Target::Me
            {
                self.stats.repaired += 1;
                self.apply_here(ctx, slot, Write::Store(value.clone()), Some(key.clone()));
            }
        }
    }
}
