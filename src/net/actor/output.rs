//! What goes out of the actor: the state machine's actions carried out
//! (queued frames, closes, dials, deliveries, validations), its events
//! turned into the application's, and the periodic reports.

use super::*;

impl Actor {
    /// Closes the peers that went over half their send bound and have not
    /// drained to a quarter within the slow-peer timeout (see
    /// `Congestion`): one peer must not hold the others back longer.
    pub(super) fn close_overdue_slow_peers(&mut self, now_ms: u64, out: &mut Vec<Action>) {
        for conn in self.congestion.overdue(now_ms) {
            tracing::debug!(conn, "send queue over half its bound for too long: closing");
            self.slow_dropped += 1;
            self.probes.dropped(Dropped::SlowPeer);
            self.node.with_mesh(now_ms, out, |m, out| {
                m.close(now_ms, conn, CloseReason::TooSlow, out)
            });
            // Gone from the mesh's view even if it was not handshaken yet.
            self.congestion.forget(conn);
        }
    }

    pub(super) fn carry_out(&mut self, out: &mut Vec<Action>) {
        // Actions may produce more actions (a slow peer's close): loop until
        // none are left.
        while !out.is_empty() {
            let batch = std::mem::take(out);
            for action in batch {
                self.carry_out_one(action, out);
            }
        }
    }

    pub(super) fn carry_out_one(&mut self, action: Action, out: &mut Vec<Action>) {
        match action {
            Action::Send { conn, frame } => {
                let limit = self.spawner.settings.send_buffer;
                let queued = match self.conns.get(&conn) {
                    Some(entry) => entry.handle.try_queue(frame, limit),
                    None => Some(0),
                };
                if queued.is_some_and(|q| q > limit / 2) {
                    self.congestion.over(conn);
                }
                if queued.is_none() {
                    self.slow_dropped += 1;
                    self.probes.dropped(Dropped::SlowPeer);
                    let now_ms = unix_now_ms();
                    self.node.with_mesh(now_ms, out, |m, out| {
                        m.close(now_ms, conn, CloseReason::TooSlow, out)
                    });
                }
            }
            Action::Close { conn, reason } => {
                self.congestion.forget(conn);
                if let Some(entry) = self.conns.remove(&conn) {
                    entry.handle.cancel.cancel();
                    self.probes.forgotten(entry.outgoing);
                    self.probes.closed(&reason);
                    if let CloseReason::Protocol(e) = &reason {
                        self.probes.dropped(if too_big(e) {
                            Dropped::TooBig
                        } else {
                            Dropped::ProtocolError
                        });
                    }
                }
                if let Some(w) = self.waiters.remove(&conn) {
                    let ours = self.node.mesh().config().protocol.id().to_owned();
                    let _ = w.send(Err(Error::from_close(reason, &ours)));
                }
            }
            Action::Dial {
                dial,
                addr,
                expected_id: _,
            } => self.dial(dial, addr, None),
            Action::Deliver(delivery) => self.deliver(delivery),
            Action::Validate { ticket, delivery } => self.validate(ticket, delivery, out),
            Action::Event(event) => self.on_event(event),
        }
    }

    pub(super) fn on_event(&mut self, event: MeshEvent) {
        let public = match event {
            MeshEvent::Connect => Event::Connect,
            // A dialled connection's `connect()` resolves on the peer's
            // peer list, not on its handshake: the peer sends that list
            // only once it has adopted us, so from then on every broadcast
            // it receives is relayed to us too.
            MeshEvent::PeerJoined { id, .. } => Event::PeerJoined(id),
            MeshEvent::PeerLeft { id, .. } => Event::PeerLeft(id),
            MeshEvent::Rebound { id, conn } | MeshEvent::Duplicate { id, conn } => {
                if let Some(w) = self.waiters.remove(&conn) {
                    let _ = w.send(Ok(id));
                }
                return;
            }
            MeshEvent::PeerList { from, peers, conn } => {
                if let Some(w) = self.waiters.remove(&conn) {
                    let _ = w.send(Ok(from.clone()));
                }
                Event::PeerList { from, peers }
            }
            MeshEvent::Closing { conn, reason } => {
                let remote = self
                    .conns
                    .get(&conn)
                    .map(|c| c.remote.clone())
                    .unwrap_or_default();
                tracing::debug!(%remote, %reason, "closing connection");
                Event::Rejected { remote, reason }
            }
            MeshEvent::ReplyUnrouted { to } => {
                self.probes.dropped(Dropped::Unrouted);
                Event::ReplyFailed { to }
            }
        };
        let _ = self.events.send(public);
    }

    /// The application's view of a delivery: the message and the
    /// connection it came on.
    pub(super) fn message_and_connection(&self, delivery: Delivery) -> (Message, Connection) {
        let Delivery { message, id, conn } = delivery;
        let (remote, outgoing) = self
            .conns
            .get(&conn)
            .map(|c| (c.remote.clone(), c.outgoing))
            .unwrap_or_default();
        let peer = self.node.mesh().peer_of(conn).cloned();
        let msg = Message {
            inner: message,
            id,
            commands: self.commands_weak.clone(),
        };
        let connection = Connection {
            conn,
            peer,
            remote,
            outgoing,
            commands: self.commands_weak.clone(),
        };
        (msg, connection)
    }

    /// Asks the validator about a held broadcast: at once (synchronous),
    /// or by handing it to the application (asynchronous; ignored when
    /// the application's queue is full or gone).
    pub(super) fn validate(
        &mut self,
        ticket: ValidationId,
        delivery: Delivery,
        out: &mut Vec<Action>,
    ) {
        let (message, connection) = self.message_and_connection(delivery);
        let now_ms = unix_now_ms();
        let verdict = match &self.validation {
            Some(ValidationMode::Sync(f)) => {
                let verdict = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    f(&message, &connection)
                }));
                verdict.unwrap_or_else(|_| {
                    tracing::error!("a validator panicked");
                    Validation::Ignore
                })
            }
            Some(ValidationMode::Async(tx)) => {
                let pending = PendingValidation {
                    message,
                    connection,
                    ticket,
                    commands: self.commands_weak.clone(),
                    decided: false,
                };
                match tx.try_send(pending) {
                    Ok(()) => return,
                    Err(e) => {
                        // Decided right here, not by its drop.
                        e.into_inner().decided = true;
                        Validation::Ignore
                    }
                }
            }
            None => Validation::Accept,
        };
        self.node.on_validated(now_ms, ticket, verdict, out);
    }

    pub(super) fn deliver(&mut self, delivery: Delivery) {
        if let Some(arrived) = self.arrived {
            self.probes.delivered(arrived);
        }
        let (msg, connection) = self.message_and_connection(delivery);
        for handler in &self.handlers {
            let handled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                handler(&msg, &connection)
            }));
            match handled {
                Ok(true) => return,
                Ok(false) => {}
                Err(_) => tracing::error!("a message handler panicked"),
            }
        }
        let queued = matches!(
            msg.flag()
                .as_u64()
                .and_then(|v| u8::try_from(v).ok())
                .and_then(SubFlag::from_u8),
            Some(SubFlag::Broadcast | SubFlag::Whisper)
        );
        if !queued {
            return;
        }
        let overflowed = {
            let mut queue = self.inbox.queue.lock().unwrap_or_else(|e| e.into_inner());
            let full = queue.len() >= self.inbox.capacity;
            if full {
                queue.pop_front();
            }
            queue.push_back(msg);
            full
        };
        self.inbox.notify.notify_waiters();
        self.inbox.notify.notify_one();
        let _ = self.events.send(Event::Message);
        if overflowed {
            self.queue_dropped += 1;
            self.overflow.unreported += 1;
            self.probes.dropped(Dropped::QueueFull);
            self.report_overflow(unix_now_ms());
        }
    }

    /// Raises [`Event::QueueOverflow`] for receive-queue drops not yet
    /// reported, unless one was raised less than a second ago (the tick
    /// reports the rest).
    pub(super) fn report_overflow(&mut self, now_ms: u64) {
        let o = &mut self.overflow;
        if o.unreported == 0 || now_ms.saturating_sub(o.reported_ms) < OVERFLOW_EVERY_MS {
            return;
        }
        let dropped = std::mem::take(&mut o.unreported);
        o.reported_ms = now_ms;
        tracing::warn!(dropped, "receive queue full: oldest messages dropped");
        let _ = self.events.send(Event::QueueOverflow {
            dropped,
            total: self.queue_dropped,
        });
    }

    /// Brings the metrics up to date with the state machine's counts and
    /// the node's levels (on the tick).
    pub(super) fn mirror_metrics(&mut self) {
        if !cfg!(feature = "metrics") {
            return;
        }
        let mesh = self.node.mesh();
        let (duplicates, stale, future) = mesh.waterfall_drops();
        let (validation_rejected, validation_overflow) = mesh.validation_counts();
        let now = MeshCounts {
            received: [
                MainFlag::Broadcast,
                MainFlag::Renegotiate,
                MainFlag::Whisper,
                MainFlag::Ping,
                MainFlag::Pong,
            ]
            .map(|kind| mesh.messages_received(kind)),
            duplicates,
            stale,
            future,
            validation_rejected,
            validation_overflow,
            replies_refused: mesh.replies_refused(),
        };
        let levels = Levels {
            peers: mesh.peer_count(),
            awaiting: mesh.awaiting_count(),
            send_queue_bytes: self
                .conns
                .values()
                .map(|c| c.handle.queued.load(Ordering::Relaxed))
                .sum(),
            receive_queue: self
                .inbox
                .queue
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .len(),
            pending_replies: mesh.pending_len(),
            waterfall: mesh.waterfall_len(),
        };
        self.probes.mirror(&now, &mut self.mirrored, &levels);
    }
}
