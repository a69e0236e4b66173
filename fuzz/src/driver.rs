//! The driver shared by the state-machine harnesses: a [`Stack`] (the mesh
//! with a layer on top, `()` for the plain mesh) fed a script of events
//! decoded from the input, with the checks every harness makes after each
//! input. What differs between harnesses — the layer, its messages, the
//! application's commands and the layer's own properties — is a
//! [`Scenario`].

use std::collections::BTreeSet;

use rs2p::protocol::mesh::{
    Action, ConnId, DialId, Layer, MeshConfig, MeshEvent, MeshState, Stack, Validation,
    ValidationId,
};
use rs2p::protocol::{
    compression, decode_body, CodecLimits, Compression, Frame, FrameDecoder, IdWire,
    InternalMessage, MainFlag, Packet, PeerAddr, PeerId,
};
use sha2::{Digest, Sha256};

use crate::gen::{handshake_message, packet, peer_id, structured, ME, NOW};
use crate::{methods_from_mask, Input};

/// What one kind of harness adds to the shared driver.
pub trait Scenario: Sized {
    /// The layer on the mesh (`()` for none).
    type Layer: Layer;

    /// The scenario and its layer, from the input's header bytes after
    /// the mesh's.
    fn new(inp: &mut Input) -> (Self, Self::Layer);

    /// A message from a peer with fuzzed fields (by default one of the
    /// mesh's own).
    fn message(h: &mut Harness<Self>, inp: &mut Input) -> InternalMessage {
        h.mesh_message(inp)
    }

    /// An application command (the mesh's, the layer's).
    fn command(h: &mut Harness<Self>, inp: &mut Input);

    /// Sees every message the node sends (after it was checked to decode).
    fn sent(&mut self, conn: ConnId, message: &InternalMessage) {
        let _ = (conn, message);
    }

    /// Checks the layer's properties after every input.
    fn check(&mut self, st: &mut Stack<Self::Layer>, now_ms: u64) {
        let _ = (st, now_ms);
    }

    /// Checks once the run is over (after the final tick, an hour on).
    fn finish(h: &mut Harness<Self>) {
        let _ = h;
    }
}

/// One node under test and what its driver knows.
pub struct Harness<S: Scenario> {
    pub st: Stack<S::Layer>,
    pub sc: S,
    pub cfg: MeshConfig,
    pub now_ms: u64,
    /// Connections open as far as the I/O layer knows.
    pub open: BTreeSet<ConnId>,
    /// Connections the state machine closed (the I/O layer reports them
    /// closed later).
    closing: Vec<ConnId>,
    next_conn: ConnId,
    /// Dials asked for and not answered yet.
    dials: Vec<DialId>,
    /// Targets of replies that wait for a route.
    reply_targets: Vec<PeerId>,
    /// Broadcasts held for validation, not decided yet.
    validations: Vec<ValidationId>,
    pub delivered: usize,
    pub max_peers: usize,
    /// The actions being applied are the application's raw sends (any
    /// sub-flag, a layer's too): not shown to the scenario's `sent`.
    raw_send: bool,
}

impl<S: Scenario> Harness<S> {
    pub fn now_secs(&self) -> u64 {
        self.now_ms / 1000
    }

    /// Carries out the node's actions, checking each, then the state.
    pub fn apply(&mut self, out: Vec<Action>) {
        let limits = self.cfg.limits;
        for action in out {
            match action {
                Action::Send { conn, frame } => {
                    // One whole frame that a peer decodes with the methods we
                    // advertised.
                    let mut dec = FrameDecoder::new(limits.max_frame_len);
                    dec.feed(&frame);
                    let f = dec
                        .next_frame()
                        .expect("we send a frame over the limit")
                        .expect("we send a partial frame");
                    assert_eq!(dec.buffered(), 0, "we send bytes after the frame");
                    match decode_body(f.body(), &self.cfg.compression, &limits) {
                        Ok(d) if !self.raw_send => self.sc.sent(conn, &d.message),
                        Ok(_) => {}
                        Err(e) => {
                            panic!("we send a frame a peer cannot decode on conn {conn}: {e}")
                        }
                    }
                }
                Action::Close { conn, .. } if self.open.remove(&conn) => {
                    self.closing.push(conn);
                }
                Action::Close { .. } => {}
                Action::Dial { dial, .. } => self.dials.push(dial),
                Action::Deliver(d) => {
                    assert!(
                        !d.message.payload.is_empty(),
                        "delivered a message without a sub-flag"
                    );
                    assert!(
                        !self.st.layer().claims(&d.message),
                        "the application got a message the layer claims: {:?}",
                        d.message
                    );
                    self.delivered += 1;
                }
                Action::Validate { ticket, .. } => self.validations.push(ticket),
                Action::Event(
                    MeshEvent::PeerJoined { conn, .. } | MeshEvent::Rebound { conn, .. },
                ) => {
                    assert!(self.open.contains(&conn), "peer joined on a closed conn");
                }
                Action::Event(_) => {}
                _ => {}
            }
        }
        self.check();
    }

    /// The mesh's invariants and bounds, then the scenario's.
    fn check(&mut self) {
        let mesh = self.st.mesh();
        let peers = mesh.peers();
        self.max_peers = self.max_peers.max(peers.len());
        let mut conns = BTreeSet::new();
        let mut ids = BTreeSet::new();
        for p in &peers {
            assert!(
                self.open.contains(&p.conn),
                "peer {:?} routed over conn {} that is not open",
                p.id,
                p.conn
            );
            assert!(conns.insert(p.conn), "two peers on conn {}", p.conn);
            assert!(ids.insert(p.id.clone()), "peer {:?} twice", p.id);
            assert_ne!(p.id.as_bytes(), ME.as_bytes(), "we are our own peer");
            assert_eq!(mesh.peer_of(p.conn), Some(&p.id), "peer_of disagrees");
            assert_eq!(mesh.conn_of(&p.id), Some(p.conn), "conn_of disagrees");
        }
        let cfg = &self.cfg;
        assert!(mesh.known_addresses() <= cfg.address_book_capacity);
        assert!(mesh.pending_len() <= cfg.max_pending_requests);
        assert!(mesh.waterfall_len() <= cfg.max_waterfall_entries);
        assert!(mesh.pending_validations() <= cfg.max_pending_validations);
        self.sc.check(&mut self.st, self.now_ms);
    }

    fn open_conn(&mut self, outgoing: bool, dial: Option<DialId>) -> ConnId {
        let conn = self.next_conn;
        self.next_conn += 1;
        self.open.insert(conn);
        let mut out = Vec::new();
        self.st.on_open(
            self.now_ms,
            conn,
            outgoing,
            format!("127.0.0.1:{}", 50_000 + conn),
            dial,
            &mut out,
        );
        self.apply(out);
        conn
    }

    fn frame(&mut self, conn: ConnId, body: &[u8]) {
        if body.len() > self.cfg.limits.max_frame_len {
            return;
        }
        let mut dec = FrameDecoder::new(self.cfg.limits.max_frame_len);
        dec.feed(&(body.len() as u32).to_be_bytes());
        dec.feed(body);
        let frame: Frame = dec.next_frame().unwrap().unwrap();
        let mut out = Vec::new();
        self.st.on_frame(self.now_ms, conn, frame, &mut out);
        self.apply(out);
    }

    fn message(&mut self, conn: ConnId, msg: &InternalMessage, method: Option<Compression>) {
        let (_, body) = msg.encode_body(method);
        self.frame(conn, &body);
    }

    fn handshake(&mut self, conn: ConnId, id: &PeerId, methods: &[Compression]) {
        let msg = handshake_message(
            id,
            self.cfg.protocol.id().as_bytes(),
            ("127.0.0.1", 6000),
            methods,
            self.now_secs(),
        );
        self.message(conn, &msg, None);
    }

    /// A connection: mostly an open one, sometimes a closed or unknown one.
    pub fn pick_conn(&mut self, inp: &mut Input) -> ConnId {
        let b = inp.byte();
        let open: Vec<ConnId> = self.open.iter().copied().collect();
        if b < 224 && !open.is_empty() {
            open[usize::from(b) % open.len()]
        } else {
            ConnId::from(b % 8)
        }
    }

    /// One of the mesh's own messages with fuzzed fields.
    pub fn mesh_message(&mut self, inp: &mut Input) -> InternalMessage {
        let protocol = self.cfg.protocol.id().as_bytes().to_vec();
        structured(inp, self.now_secs(), &protocol, &self.reply_targets)
    }

    /// A peer in the routing table (mostly) or one of the known ids.
    pub fn pick_peer(&mut self, inp: &mut Input) -> PeerId {
        let peers = self.st.mesh().peers();
        match peers.get(usize::from(inp.byte()) % peers.len().max(1)) {
            Some(p) if inp.byte() % 4 != 0 => p.id.clone(),
            _ => peer_id(usize::from(inp.byte()), IdWire::Bin),
        }
    }

    /// Runs a command on the layer and carries out what it caused.
    pub fn with_layer<R>(
        &mut self,
        f: impl FnOnce(&mut S::Layer, &mut rs2p::protocol::mesh::LayerCtx<'_>) -> R,
    ) -> R {
        let mut out = Vec::new();
        let r = self.st.with_layer(self.now_ms, &mut out, f);
        self.apply(out);
        r
    }
}

/// The application's commands to the mesh (through the stack, so the
/// layer sees what they cause), a decision on a held broadcast, or a
/// drained send queue.
pub fn mesh_command<S: Scenario>(h: &mut Harness<S>, inp: &mut Input) {
    let now = h.now_ms;
    let mut out = Vec::new();
    let target = h.pick_peer(inp);
    let op = inp.byte() % 11;
    match op {
        0 => {
            let p = vec![packet(inp, 0)];
            h.st.with_mesh(now, &mut out, |m, out| {
                let _ = m.send(now, Packet::from(0u64), MainFlag::Broadcast, p, out);
            });
        }
        1 => {
            let flag = packet(inp, 1);
            let ty = MainFlag::from_u8(inp.byte() % 6).unwrap_or(MainFlag::Whisper);
            let p = vec![packet(inp, 0)];
            h.st.with_mesh(now, &mut out, |m, out| {
                let _ = m.send(now, flag, ty, p, out);
            });
        }
        2 => {
            let p = vec![packet(inp, 0)];
            h.st.with_mesh(now, &mut out, |m, out| {
                let _ = m.whisper(now, &target, p, out);
            });
        }
        3 => {
            let routed = h.st.with_mesh(now, &mut out, |m, out| {
                m.reply(now, &target, vec!["r".into()], out).is_ok() && !m.is_connected(&target)
            });
            if routed {
                h.reply_targets.push(target);
            }
        }
        4 => {
            h.st.with_mesh(now, &mut out, |m, out| m.request_peers(now, out))
        }
        5 => {
            let methods = methods_from_mask(inp.byte());
            h.st.with_mesh(now, &mut out, |m, out| {
                let _ = m.renegotiate(now, &target, &methods, out);
            });
        }
        6 => {
            h.st.with_mesh(now, &mut out, |m, out| {
                let _ = m.request_resend(now, &target, out);
            });
        }
        7 => {
            h.st.with_mesh(now, &mut out, |m, out| m.disconnect(now, &target, out));
        }
        8 => {
            if !h.validations.is_empty() {
                let ticket = h
                    .validations
                    .remove(usize::from(inp.byte()) % h.validations.len());
                let verdict = match inp.byte() % 4 {
                    0 => Validation::Reject,
                    1 => Validation::Ignore,
                    _ => Validation::Accept,
                };
                h.st.on_validated(now, ticket, verdict, &mut out);
            }
        }
        9 => {
            let conn = h.pick_conn(inp);
            h.st.on_writable(now, conn, &mut out);
        }
        _ => {
            h.st.with_mesh(now, &mut out, |m, out| m.keepalive(now, out))
        }
    }
    h.raw_send = op == 1;
    h.apply(out);
    h.raw_send = false;
}

/// Runs one input: `[mode, mesh config ×5, the scenario's header…,
/// events…]`; each event starts with a byte choosing its kind. Returns
/// the harness at the end, for tests of the harness itself.
///
/// `mode`: bit 0, a valid handshake from a known peer on the first
/// connection; bit 1, that connection is outgoing (a dial); bit 2, the
/// dial expected that peer's id; bits 3–5, the compression methods of the
/// handshake; bit 6, zlib and snappy only; bit 7, a second peer (str id)
/// on a second connection.
pub fn run<S: Scenario>(data: &[u8]) -> Harness<S> {
    let mut inp = Input::new(data);
    let mode = inp.byte();
    let offences = inp.byte();
    let max_peer_list = 1 + usize::from(inp.byte() % 24);
    let max_pending_requests = 1 + usize::from(inp.byte() % 6);
    let max_waterfall_entries = 1 + usize::from(inp.byte()) * 8;
    let outgoing = inp.byte();
    let mut cfg = MeshConfig {
        max_offences: u32::from(offences % 6),
        max_peer_list,
        max_pending_requests,
        max_waterfall_entries,
        max_outgoing: usize::from(outgoing % 6),
        limits: CodecLimits {
            max_frame_len: 1 << 16,
            max_decompressed_len: 1 << 18,
        },
        seed: 7,
        validate: offences & 0x80 != 0,
        max_pending_validations: 4,
        address_book_capacity: 32,
        ..MeshConfig::default()
    };
    if outgoing & 0x80 != 0 {
        cfg.id_wire = IdWire::Bin;
    }
    if mode & 0x40 != 0 {
        cfg.compression = vec![Compression::Zlib, Compression::Snappy];
    }
    let (sc, layer) = S::new(&mut inp);
    let mesh = MeshState::new(
        PeerId::from(ME),
        PeerAddr::new("127.0.0.1", 4444),
        cfg.clone(),
    );
    let mut h = Harness {
        st: Stack::new(mesh, layer),
        sc,
        cfg,
        now_ms: NOW * 1000,
        open: BTreeSet::new(),
        closing: Vec::new(),
        next_conn: 1,
        dials: Vec::new(),
        reply_targets: Vec::new(),
        validations: Vec::new(),
        delivered: 0,
        max_peers: 0,
        raw_send: false,
    };
    let expected = (mode & 4 != 0).then(|| peer_id(0, IdWire::Bin));
    let dial = (mode & 2 != 0).then(|| {
        let mut out = Vec::new();
        h.st.with_mesh(h.now_ms, &mut out, |m, _| {
            m.note_dialling(expected.as_ref(), PeerAddr::new("127.0.0.1", 6000))
        })
    });
    let first = h.open_conn(mode & 2 != 0, dial);
    if mode & 1 != 0 {
        // A valid handshake first, so the frames that follow reach the
        // handshaken paths.
        let methods = methods_from_mask(mode >> 3);
        h.handshake(first, &peer_id(0, IdWire::Bin), &methods);
        if mode & 0x80 != 0 {
            let second = h.open_conn(false, None);
            h.handshake(second, &peer_id(1, IdWire::Str), &Compression::ALL);
        }
    }

    let mut steps = 0;
    while !inp.is_empty() && steps < 256 {
        steps += 1;
        match inp.byte() % 16 {
            // Raw bytes as a frame body.
            0 => {
                let conn = h.pick_conn(&mut inp);
                let n = usize::from(inp.u16() % 2048);
                let body = inp.bytes(n).to_vec();
                h.frame(conn, &body);
            }
            // Arbitrary msgpack behind a valid checksum, maybe compressed.
            1 => {
                let conn = h.pick_conn(&mut inp);
                let n = usize::from(inp.u16() % 1024);
                let packed = inp.bytes(n);
                let mut body = Sha256::digest(packed).to_vec();
                body.extend_from_slice(packed);
                let method = Compression::ALL.get(usize::from(inp.byte() % 8)).copied();
                let body = match method {
                    Some(m) => compression::compress(m, &body),
                    None => body,
                };
                h.frame(conn, &body);
            }
            // A structured protocol message, maybe compressed or damaged.
            2..=7 => {
                let conn = h.pick_conn(&mut inp);
                let msg = S::message(&mut h, &mut inp);
                let method = Compression::ALL.get(usize::from(inp.byte() % 10)).copied();
                let (_, mut body) = msg.encode_body(method);
                if inp.byte() % 16 == 0 && !body.is_empty() {
                    let i = usize::from(inp.u16()) % body.len();
                    body[i] ^= 1 << (inp.byte() % 8);
                }
                h.frame(conn, &body);
            }
            // A valid handshake with a chosen id on a chosen connection.
            8 => {
                let conn = h.pick_conn(&mut inp);
                let wire = if inp.byte() & 1 == 0 {
                    IdWire::Bin
                } else {
                    IdWire::Str
                };
                let id = peer_id(usize::from(inp.byte()), wire);
                let methods = methods_from_mask(inp.byte());
                h.handshake(conn, &id, &methods);
            }
            // Time passes.
            9 => {
                h.now_ms += u64::from(inp.u16()) * 10;
                let mut out = Vec::new();
                h.st.on_tick(h.now_ms, &mut out);
                h.apply(out);
            }
            // A connection closes (the peer went away, or one we closed).
            10 => {
                let conn = if !h.closing.is_empty() && inp.byte() & 1 == 0 {
                    h.closing.remove(0)
                } else {
                    let c = h.pick_conn(&mut inp);
                    h.open.remove(&c);
                    c
                };
                let mut out = Vec::new();
                h.st.on_closed(h.now_ms, conn, &mut out);
                h.apply(out);
            }
            // A new connection: accepted, or one of the asked-for dials.
            11 => {
                if !h.dials.is_empty() && inp.byte() & 1 == 0 {
                    let dial = h.dials.remove(0);
                    if inp.byte() % 4 == 0 {
                        h.st.on_dial_failed(h.now_ms, dial);
                    } else {
                        h.open_conn(true, Some(dial));
                    }
                } else if h.open.len() < 16 {
                    h.open_conn(false, None);
                }
            }
            // The application.
            _ => S::command(&mut h, &mut inp),
        }
    }
    // Much later: everything expires.
    let mut out = Vec::new();
    h.now_ms += 3_600_000;
    h.st.on_tick(h.now_ms, &mut out);
    h.apply(out);
    S::finish(&mut h);
    h
}
