//! What comes into the actor: connections it accepts or dials, the
//! connection tasks' reports ([`Internal`]) and the handles' commands.

use super::*;

impl Actor {
    pub(super) fn adopt_stream(
        &self,
        tcp: TcpStream,
        outgoing: bool,
        dial: Option<DialId>,
        waiter: Option<ConnectWaiter>,
    ) {
        let spawner = self.spawner.clone();
        let timeout = self.dial_timeout;
        let accepting = self.accepting.clone();
        accepting.fetch_add(1, Ordering::Relaxed);
        self.spawner.tracker.spawn(async move {
            // Counts as accepting until the actor knows the connection.
            let _guard = CountGuard(accepting);
            let remote = crate::transport::peer_addr(&tcp);
            let ours = spawner.transport.name();
            // The transport's own handshake (TLS, WebSocket) runs here, off
            // the actor, and is bounded in time.
            let accepted = tokio::select! {
                _ = spawner.cancel.cancelled() => return,
                r = tokio::time::timeout(timeout, spawner.transport.accept(tcp)) => r,
            };
            let refusal = match accepted {
                Ok(Ok(stream)) => {
                    connection::start(stream, outgoing, dial, waiter, &spawner).await;
                    return;
                }
                Ok(Err(e)) => {
                    tracing::debug!(%e, "transport handshake failed");
                    Refusal::from_io(&e)
                        .cloned()
                        .unwrap_or_else(|| Refusal::Handshake {
                            remote: remote.clone(),
                            ours,
                            error: e.to_string(),
                        })
                }
                Err(_) => {
                    tracing::debug!("transport handshake timed out");
                    Refusal::Handshake {
                        remote: remote.clone(),
                        ours,
                        error: format!("not done within {timeout:?}"),
                    }
                }
            };
            let _ = spawner
                .internal
                .send(Internal::Refused { remote, refusal })
                .await;
        });
    }

    pub(super) fn dial(&mut self, dial: DialId, addr: PeerAddr, waiter: Option<ConnectWaiter>) {
        self.probes.dial();
        let spawner = self.spawner.clone();
        let timeout = self.dial_timeout;
        self.spawner.tracker.spawn(async move {
            let result = tokio::select! {
                _ = spawner.cancel.cancelled() => return,
                r = tokio::time::timeout(timeout, spawner.transport.connect(&addr.host, addr.port)) => r,
            };
            match result {
                Ok(Ok(stream)) => {
                    connection::start(stream, true, Some(dial), waiter, &spawner).await;
                }
                Ok(Err(_)) | Err(_) => {
                    let error = match result {
                        Ok(Err(e)) => match Refusal::from_io(&e) {
                            Some(refusal) => Error::Refused(refusal.clone()),
                            None => Error::io(format!("cannot connect to {addr}"), e),
                        },
                        _ => Error::Timeout(timeout),
                    };
                    let _ = spawner
                        .internal
                        .send(Internal::DialFailed {
                            dial,
                            error,
                            waiter,
                        })
                        .await;
                }
            }
        });
    }

    pub(super) fn on_internal(&mut self, event: Internal, out: &mut Vec<Action>) {
        let now_ms = unix_now_ms();
        match event {
            Internal::Opened {
                conn,
                outgoing,
                remote,
                dial,
                handle,
                waiter,
            } => {
                if let Some(w) = waiter {
                    self.waiters.insert(conn, w);
                }
                self.probes.opened(outgoing);
                self.conns.insert(
                    conn,
                    ConnEntry {
                        handle,
                        remote: remote.clone(),
                        outgoing,
                    },
                );
                self.node.on_open(now_ms, conn, outgoing, remote, dial, out);
            }
            Internal::Frames {
                conn,
                frames,
                bytes,
                arrived,
            } => {
                self.arrived = Some(arrived);
                for frame in frames {
                    self.node.on_frame(now_ms, conn, frame, out);
                }
                if let Some(entry) = self.conns.get(&conn) {
                    entry.handle.backlog.handled(bytes);
                }
            }
            Internal::Closed { conn, error } => {
                if let Some(reason) = error {
                    self.node
                        .with_mesh(now_ms, out, |m, out| m.close(now_ms, conn, reason, out));
                }
                self.node.on_closed(now_ms, conn, out);
                // Forget the connection after the events above have read it.
                out.push(Action::Close {
                    conn,
                    reason: CloseReason::Disconnected,
                });
            }
            Internal::Drained { conn } => {
                if let Some(entry) = self.conns.get(&conn) {
                    let queued = entry.handle.queued.load(Ordering::Relaxed);
                    let bound = self.spawner.settings.send_buffer;
                    self.congestion.drained(conn, queued, bound);
                    self.node.on_writable(now_ms, conn, out);
                }
            }
            Internal::DialFailed {
                dial,
                error,
                waiter,
            } => {
                tracing::debug!(%error, "dial failed");
                self.probes.dial_failed();
                self.node.on_dial_failed(now_ms, dial);
                if let Some(w) = waiter {
                    let _ = w.send(Err(error));
                }
            }
            Internal::Refused { remote, refusal } => {
                let reason = CloseReason::Transport(refusal);
                tracing::debug!(%remote, %reason, "refused during the transport handshake");
                self.probes.closed(&reason);
                let _ = self.events.send(Event::Rejected { remote, reason });
            }
        }
    }

    pub(super) fn on_command(&mut self, command: Command, out: &mut Vec<Action>) {
        let now_ms = unix_now_ms();
        let node = &mut self.node;
        match command {
            Command::Whisper { to, packets, done } => {
                let r = node.with_mesh(now_ms, out, |m, out| m.whisper(now_ms, &to, packets, out));
                if r.is_ok() {
                    self.probes.sent(Sent::Whisper);
                }
                let _ = done.send(r.map_err(Error::from));
            }
            Command::WhisperConn { conn, packets } => {
                if let Some(peer) = node.mesh().peer_of(conn).cloned() {
                    let r = node
                        .with_mesh(now_ms, out, |m, out| m.whisper(now_ms, &peer, packets, out));
                    if r.is_ok() {
                        self.probes.sent(Sent::Whisper);
                    }
                }
            }
            Command::Reply { to, packets, done } => {
                let r = node
                    .with_mesh(now_ms, out, |m, out| m.reply(now_ms, &to, packets, out))
                    .map_err(Error::from);
                if r.is_ok() {
                    self.probes.sent(Sent::Reply);
                }
                match done {
                    Some(done) => {
                        let _ = done.send(r);
                    }
                    None => {
                        if let Err(e) = r {
                            tracing::warn!(%e, "reply failed");
                        }
                    }
                }
            }
            Command::Connect {
                addr,
                expected_id,
                done,
            } => {
                if let Some(id) = &expected_id {
                    if node.mesh().is_connected(id) {
                        let _ = done.send(Err(Error::AlreadyConnected(id.to_string())));
                        return;
                    }
                }
                let dial = node.with_mesh(now_ms, out, |m, _| {
                    m.note_dialling(expected_id.as_ref(), addr.clone())
                });
                self.dial(dial, addr, Some(done));
            }
            Command::Disconnect { peer, done } => {
                let r = node.with_mesh(now_ms, out, |m, out| m.disconnect(now_ms, &peer, out));
                let _ = done.send(r);
            }
            Command::RequestPeers => {
                node.with_mesh(now_ms, out, |m, out| m.request_peers(now_ms, out));
            }
            Command::Renegotiate {
                peer,
                methods,
                done,
            } => {
                let r = node.with_mesh(now_ms, out, |m, out| {
                    m.renegotiate(now_ms, &peer, &methods, out)
                });
                let _ = done.send(r.map_err(Error::from));
            }
            Command::RequestResend { peer, done } => {
                let r = node.with_mesh(now_ms, out, |m, out| m.request_resend(now_ms, &peer, out));
                let _ = done.send(r.map_err(Error::from));
            }
            Command::RegisterHandler(h) => self.handlers.push(h),
            Command::Validated { ticket, verdict } => {
                node.on_validated(now_ms, ticket, verdict, out);
            }
            Command::Layer(f) => node.with_layer(now_ms, out, |layer, ctx| f(&mut **layer, ctx)),
            Command::Snapshot(done) => {
                let mesh = node.mesh();
                let _ = done.send(Snapshot {
                    peers: mesh.peers(),
                    awaiting: mesh.awaiting_count(),
                    errors: mesh.errors().map(str::to_owned).collect(),
                    waterfall: mesh.waterfall_len(),
                    pending_requests: mesh.pending_len(),
                    slow_peers_dropped: self.slow_dropped,
                    queue_dropped: self.queue_dropped,
                    refused: self.refused,
                    connections: self.conns.len(),
                    known_addresses: mesh.known_addresses(),
                    dials_started: mesh.dials_started(),
                });
            }
            Command::Close(_) => {}
        }
    }
}
