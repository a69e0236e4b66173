//! Fuzz harnesses for rs2p, shared by the cargo-fuzz targets in
//! `fuzz_targets/` (and usable from any other driver: each is a plain
//! `fn(&[u8])` that panics on a bug).
//!
//! - [`frame_decoder`]: an arbitrary byte stream, fed to `FrameDecoder` in
//!   arbitrary chunks; every frame goes through `decode_body`, and the
//!   message and msgpack layers are also fed the raw bytes directly (the
//!   SHA-256 checksum would otherwise stop almost every input before them).
//! - [`mesh_state`]: a `MeshState` with one or more connections, fed a
//!   script of events decoded from the input: frames from peers (raw bytes,
//!   checksummed msgpack, or structured protocol messages with fuzzed
//!   fields — handshakes, peer lists, requests, responses, renegotiations,
//!   user messages), timer ticks, closes, new connections, failed dials and
//!   application commands; optionally a valid handshake first.
//!
//! Beyond "never panics", both check properties:
//! - splitting a stream into frames does not depend on how it is chunked;
//! - `pack` is stable: a packed message unpacks and packs to the same bytes;
//!   so is msgpack `encode` after `decode`; compression round-trips;
//! - every frame the state machine asks to send is one whole frame that a
//!   peer decodes (with the compression methods we advertised);
//! - every peer in the routing table is on an open connection, once;
//! - every delivered message has a sub-flag (the application's
//!   `Message::flag` indexes it).

// `x % n == 0` reads as "one time in n" here, which is what is meant.
#![allow(clippy::manual_is_multiple_of)]

use std::collections::BTreeSet;

use bytes::Bytes;
use rs2p::protocol::mesh::{Action, ConnId, DialId, MeshConfig, MeshEvent, MeshState};
use rs2p::protocol::{
    compression, decode_body, id_to_packet, msgpack, request_id, CodecLimits, Compression, Frame,
    FrameDecoder, IdWire, InternalMessage, MainFlag, Packet, PeerAddr, PeerId, SubFlag, PREFIX_LEN,
};
use sha2::{Digest, Sha256};

/// The fuzz input read as a stream of decisions; zeros once it runs out.
pub struct Input<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Input { data, pos: 0 }
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    pub fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    pub fn u64(&mut self) -> u64 {
        (u64::from(self.u32()) << 32) | u64::from(self.u32())
    }

    /// Up to `n` bytes (fewer at the end).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let start = self.pos.min(self.data.len());
        let end = start.saturating_add(n).min(self.data.len());
        self.pos = start.saturating_add(n);
        &self.data[start..end]
    }

    pub fn rest(&mut self) -> &'a [u8] {
        let start = self.pos.min(self.data.len());
        self.pos = self.data.len();
        &self.data[start..]
    }
}

/// The compression methods whose bit is set, in the reference order.
fn methods_from_mask(mask: u8) -> Vec<Compression> {
    Compression::ALL
        .iter()
        .enumerate()
        .filter(|(i, _)| mask >> i & 1 == 1)
        .map(|(_, m)| *m)
        .collect()
}

// ----- frame_decoder ----------------------------------------------------------

#[derive(Debug, PartialEq)]
struct Split {
    frames: Vec<Vec<u8>>,
    error: Option<String>,
    buffered: usize,
    finish_ok: bool,
}

fn split<'a>(chunks: impl Iterator<Item = &'a [u8]>, max_frame_len: usize) -> Split {
    let mut dec = FrameDecoder::new(max_frame_len);
    let mut frames = Vec::new();
    for chunk in chunks {
        dec.feed(chunk);
        loop {
            match dec.next_frame() {
                Ok(Some(frame)) => {
                    assert!(frame.body().len() <= max_frame_len, "frame over the limit");
                    assert_eq!(frame.raw().len(), PREFIX_LEN + frame.body().len());
                    let announced = u32::from_be_bytes(frame.raw()[..4].try_into().unwrap());
                    assert_eq!(announced as usize, frame.body().len(), "prefix mismatch");
                    frames.push(frame.body().to_vec());
                }
                Ok(None) => break,
                Err(e) => {
                    return Split {
                        frames,
                        error: Some(format!("{e:?}")),
                        buffered: 0,
                        finish_ok: false,
                    }
                }
            }
        }
    }
    Split {
        frames,
        error: None,
        buffered: dec.buffered(),
        finish_ok: dec.finish().is_ok(),
    }
}

/// `unpack` then `pack` is stable; so is msgpack `decode` then `encode`.
fn message_layer(bytes: &[u8]) {
    if let Ok(m) = InternalMessage::unpack(bytes) {
        assert!(!m.payload.is_empty(), "unpacked a message without payload");
        let packed = m.pack();
        let again = InternalMessage::unpack(&packed).expect("a packed message unpacks");
        assert_eq!(again.pack(), packed, "pack is not stable");
    }
    if let Ok(value) = msgpack::decode(bytes) {
        let mut out = Vec::new();
        msgpack::encode(&value, &mut out);
        let again = msgpack::decode(&out).expect("encoded msgpack decodes");
        let mut out2 = Vec::new();
        msgpack::encode(&again, &mut out2);
        assert_eq!(out, out2, "msgpack encode is not stable");
    }
}

/// Input layout: `[chunk seed, methods mask, max_len hi, max_len lo,
/// stream…]`. With the seed's top bit set, the stream is instead built
/// from structured messages (valid checksums, each maybe compressed, one
/// byte maybe flipped, maybe cut short), so decoding gets past the
/// checksum.
pub fn frame_decoder(data: &[u8]) {
    let mut inp = Input::new(data);
    let seed = inp.byte();
    let methods = methods_from_mask(inp.byte());
    let max_frame_len = 1 + usize::from(inp.u16()) * 4;
    let limits = CodecLimits {
        max_frame_len,
        max_decompressed_len: 1 << 20,
    };
    let built;
    let stream: &[u8] = if seed & 0x80 == 0 {
        inp.rest()
    } else {
        let mut s = Vec::new();
        let protocol = rs2p::Protocol::default().id().as_bytes().to_vec();
        for _ in 0..1 + inp.byte() % 6 {
            let msg = structured(&mut inp, NOW, &protocol, &[]);
            let method = methods.get(usize::from(inp.byte() % 8)).copied();
            let (_, body) = msg.encode_body(method);
            s.extend_from_slice(&(body.len() as u32).to_be_bytes());
            s.extend_from_slice(&body);
        }
        match inp.byte() % 8 {
            0 if !s.is_empty() => {
                let i = usize::from(inp.u16()) % s.len();
                s[i] ^= 1 << (inp.byte() % 8);
            }
            1 => {
                let keep = usize::from(inp.u16()) % (s.len() + 1);
                s.truncate(keep);
            }
            _ => {}
        }
        built = s;
        &built
    };

    // One chunk, byte by byte (small streams), and pseudo-random chunks:
    // the same frames, the same error, the same leftovers.
    let whole = split(std::iter::once(stream), max_frame_len);
    if stream.len() <= 4096 {
        let bytes = split(stream.chunks(1), max_frame_len);
        assert_eq!(whole, bytes, "byte-by-byte split differs");
    }
    let mut sizes = Vec::new();
    let mut x = u32::from(seed) | 1;
    let mut left = stream.len();
    while left > 0 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let n = 1 + (x >> 16) as usize % 97;
        sizes.push(n.min(left));
        left -= n.min(left);
    }
    let mut at = 0;
    let chunks = sizes.iter().map(|&n| {
        let c = &stream[at..at + n];
        at += n;
        c
    });
    let chunked = split(chunks, max_frame_len);
    assert_eq!(whole, chunked, "chunked split differs");

    for body in &whole.frames {
        if let Ok(d) = decode_body(body, &methods, &limits) {
            assert!(!d.message.payload.is_empty());
            let packed = d.message.pack();
            let again = InternalMessage::unpack(&packed).expect("decoded message repacks");
            assert_eq!(again.pack(), packed);
        }
        message_layer(body);
        if body.len() > 32 {
            message_layer(&body[32..]);
        }
        if body.len() <= 2048 {
            for &m in &methods {
                let c = compression::compress(m, body);
                let d = compression::decompress(m, &c, 1 << 20).expect("own compression");
                assert_eq!(&d, body, "{m:?} does not round-trip");
            }
        }
    }
    // The whole stream as one body too (no framing).
    if stream.len() <= max_frame_len {
        let _ = decode_body(stream, &methods, &limits);
    }
}

// ----- mesh_state -------------------------------------------------------------

const NOW: u64 = 1_700_000_000;
/// Base58 ids, so the conflict tie-break compares them as numbers.
const IDS: [&str; 4] = [
    "2ZKAafyLC1r6",
    "7Dve35ztxZSu",
    "5fk3UgXbCxfH",
    "zzzzzzzzzzzzzzzz",
];
const ME: &str = "4MeMeMeMeMeMe";

fn peer_id(i: usize, wire: IdWire) -> PeerId {
    PeerId::new(Bytes::from_static(IDS[i % IDS.len()].as_bytes()), wire)
}

struct Harness {
    st: MeshState,
    cfg: MeshConfig,
    now_ms: u64,
    /// Connections open as far as the I/O layer knows.
    open: BTreeSet<ConnId>,
    /// Connections the state machine closed (the I/O layer reports them
    /// closed later).
    closing: Vec<ConnId>,
    next_conn: ConnId,
    /// Dials asked for and not answered yet.
    dials: Vec<DialId>,
    /// Targets of replies that wait for a route.
    reply_targets: Vec<PeerId>,
    delivered: usize,
    max_peers: usize,
}

impl Harness {
    fn now_secs(&self) -> u64 {
        self.now_ms / 1000
    }

    fn apply(&mut self, out: Vec<Action>) {
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
                    if let Err(e) = decode_body(f.body(), &self.cfg.compression, &limits) {
                        panic!("we send a frame a peer cannot decode on conn {conn}: {e}");
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
                    self.delivered += 1;
                }
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

    fn check(&mut self) {
        let peers = self.st.peers();
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
        }
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
    fn pick_conn(&mut self, inp: &mut Input) -> ConnId {
        let b = inp.byte();
        let open: Vec<ConnId> = self.open.iter().copied().collect();
        if b < 224 && !open.is_empty() {
            open[usize::from(b) % open.len()]
        } else {
            ConnId::from(b % 8)
        }
    }
}

fn handshake_message(
    id: &PeerId,
    protocol: &[u8],
    addr: (&str, u16),
    methods: &[Compression],
    now: u64,
) -> InternalMessage {
    InternalMessage::new(
        MainFlag::Whisper,
        id.clone(),
        now,
        vec![
            SubFlag::Handshake.as_u8().into(),
            id_to_packet(id),
            Packet::bin(Bytes::copy_from_slice(protocol)),
            Packet::Array(vec![addr.0.into(), addr.1.into()]),
            Packet::Array(methods.iter().map(|m| Packet::from(m.as_u8())).collect()),
        ],
    )
}

/// A small arbitrary packet.
fn packet(inp: &mut Input, depth: u8) -> Packet {
    match inp.byte() % if depth >= 3 { 8 } else { 10 } {
        0 => Packet::Nil,
        1 => Packet::Bool(inp.byte() & 1 == 1),
        2 => Packet::from(i64::from(inp.byte() as i8)),
        3 => Packet::from(inp.u64()),
        4 => Packet::Float(f64::from_bits(inp.u64())),
        5 => {
            let n = usize::from(inp.byte() % 24);
            Packet::Str(String::from_utf8_lossy(inp.bytes(n)).into_owned())
        }
        6 => {
            let n = usize::from(inp.byte() % 24);
            Packet::bin(Bytes::copy_from_slice(inp.bytes(n)))
        }
        7 => Packet::Ext(inp.byte() as i8, Bytes::copy_from_slice(inp.bytes(2))),
        8 => {
            let n = inp.byte() % 5;
            Packet::Array((0..n).map(|_| packet(inp, depth + 1)).collect())
        }
        _ => {
            let n = inp.byte() % 3;
            Packet::Map(
                (0..n)
                    .map(|_| (packet(inp, depth + 1), packet(inp, depth + 1)))
                    .collect(),
            )
        }
    }
}

/// An id packet: a known peer's (bin or str), ours, or arbitrary.
fn id_packet(inp: &mut Input) -> Packet {
    match inp.byte() % 6 {
        0 | 1 => id_to_packet(&peer_id(usize::from(inp.byte()), IdWire::Bin)),
        2 => id_to_packet(&peer_id(usize::from(inp.byte()), IdWire::Str)),
        3 => Packet::bin(Bytes::from_static(ME.as_bytes())),
        4 => packet(inp, 2),
        _ => {
            let n = usize::from(inp.byte() % 16);
            Packet::bin(Bytes::copy_from_slice(inp.bytes(n)))
        }
    }
}

/// `[host, port]`, mostly well formed.
fn addr_packet(inp: &mut Input) -> Packet {
    match inp.byte() % 6 {
        0..=2 => Packet::Array(vec![
            "127.0.0.1".into(),
            Packet::from(6000 + u64::from(inp.byte() % 8)),
        ]),
        3 => Packet::Array(vec![
            Packet::bin(Bytes::from_static(b"127.0.0.1")),
            Packet::from(4444u64),
        ]),
        4 => Packet::Array(vec![packet(inp, 2), packet(inp, 2)]),
        _ => packet(inp, 1),
    }
}

fn methods_packet(inp: &mut Input) -> Packet {
    match inp.byte() % 4 {
        0..=2 => Packet::Array(
            methods_from_mask(inp.byte())
                .iter()
                .map(|m| Packet::from(m.as_u8()))
                .collect(),
        ),
        _ => packet(inp, 1),
    }
}

/// A protocol message with fuzzed fields.
fn structured(
    inp: &mut Input,
    now: u64,
    protocol: &[u8],
    reply_targets: &[PeerId],
) -> InternalMessage {
    let msg_type = match inp.byte() % 8 {
        0 | 1 => MainFlag::Broadcast,
        2 => MainFlag::Renegotiate,
        3 => MainFlag::Ping,
        4 => MainFlag::Pong,
        _ => MainFlag::Whisper,
    };
    let sender = match inp.byte() % 5 {
        0..=2 => peer_id(usize::from(inp.byte()), IdWire::Bin),
        3 => peer_id(usize::from(inp.byte()), IdWire::Str),
        _ => PeerId::new(Bytes::from_static(ME.as_bytes()), IdWire::Bin),
    };
    let time = match inp.byte() % 6 {
        0..=2 => now,
        3 => now.saturating_sub(u64::from(inp.byte())),
        4 => now + u64::from(inp.byte()),
        _ => inp.u64(),
    };
    let sub = |f: SubFlag| Packet::from(f.as_u8());
    let mut payload = match inp.byte() % 12 {
        0 => vec![
            sub(SubFlag::Handshake),
            id_packet(inp),
            if inp.byte() % 4 == 0 {
                packet(inp, 2)
            } else {
                Packet::bin(Bytes::copy_from_slice(protocol))
            },
            addr_packet(inp),
            methods_packet(inp),
        ],
        1 | 2 => {
            let n = inp.byte() % 20;
            let list = (0..n)
                .map(|_| match inp.byte() % 5 {
                    0 => packet(inp, 1),
                    _ => Packet::Array(vec![addr_packet(inp), id_packet(inp)]),
                })
                .collect();
            vec![sub(SubFlag::Peers), Packet::Array(list)]
        }
        3 => vec![
            sub(SubFlag::Request),
            match inp.byte() % 3 {
                0 => Packet::from("*"),
                1 => Packet::bin(Bytes::from_static(b"*")),
                _ => packet(inp, 2),
            },
        ],
        4 => vec![sub(SubFlag::Request), packet(inp, 2), id_packet(inp)],
        5 => {
            // A response to a reply that waits for a route, when there is one.
            let (req, id) = match reply_targets.first() {
                Some(t) if inp.byte() % 4 != 0 => (
                    Packet::Str(request_id(t.as_bytes(), now)),
                    id_to_packet(&t.with_wire(IdWire::Bin)),
                ),
                _ => (packet(inp, 2), id_packet(inp)),
            };
            vec![
                sub(SubFlag::Response),
                req,
                Packet::Array(vec![addr_packet(inp), id]),
            ]
        }
        6 => vec![sub(SubFlag::Compression), methods_packet(inp)],
        7 => vec![sub(SubFlag::Resend)],
        8 => vec![sub(SubFlag::Ping)],
        9 => {
            let n = inp.byte() % 4;
            let mut p = vec![Packet::from(u64::from(inp.byte()))];
            p.extend((0..n).map(|_| packet(inp, 0)));
            p
        }
        10 => vec![sub(SubFlag::Broadcast), packet(inp, 0), packet(inp, 0)],
        _ => {
            let n = inp.byte() % 6;
            (0..n).map(|_| packet(inp, 0)).collect()
        }
    };
    // Now and then, one field replaced by anything.
    if !payload.is_empty() && inp.byte() % 8 == 0 {
        let i = usize::from(inp.byte()) % payload.len();
        payload[i] = packet(inp, 1);
    }
    if payload.is_empty() {
        payload.push(Packet::Nil);
    }
    InternalMessage::new(msg_type, sender, time, payload)
}

/// Input layout: `[mode, config bytes ×5, events…]`; each event starts
/// with a byte choosing its kind.
pub fn mesh_state(data: &[u8]) {
    run_mesh_state(data);
}

/// What one `mesh_state` run reached (for tests of the harness itself).
#[derive(Debug, Default)]
pub struct Stats {
    pub delivered: usize,
    pub max_peers: usize,
}

pub fn run_mesh_state(data: &[u8]) -> Stats {
    let mut inp = Input::new(data);
    let mode = inp.byte();
    let mut cfg = MeshConfig {
        max_offences: u32::from(inp.byte() % 6),
        max_peer_list: 1 + usize::from(inp.byte() % 24),
        max_pending_requests: 1 + usize::from(inp.byte() % 6),
        max_waterfall_entries: 1 + usize::from(inp.byte()) * 8,
        max_outgoing: usize::from(inp.byte() % 6),
        limits: CodecLimits {
            max_frame_len: 1 << 16,
            max_decompressed_len: 1 << 18,
        },
        seed: 7,
        ..MeshConfig::default()
    };
    if mode & 0x40 != 0 {
        cfg.compression = vec![Compression::Zlib, Compression::Snappy];
    }
    let st = MeshState::new(PeerId::from(ME), PeerAddr::new("127.0.0.1", 4444), cfg.clone());
    let mut h = Harness {
        st,
        cfg,
        now_ms: NOW * 1000,
        open: BTreeSet::new(),
        closing: Vec::new(),
        next_conn: 1,
        dials: Vec::new(),
        reply_targets: Vec::new(),
        delivered: 0,
        max_peers: 0,
    };
    let expected = (mode & 4 != 0).then(|| peer_id(0, IdWire::Bin));
    let dial = (mode & 2 != 0).then(|| {
        h.st
            .note_dialling(expected.as_ref(), PeerAddr::new("127.0.0.1", 6000))
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
                let protocol = h.cfg.protocol.id().as_bytes().to_vec();
                let msg = structured(&mut inp, h.now_secs(), &protocol, &h.reply_targets);
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
            _ => {
                let now = h.now_ms;
                let mut out = Vec::new();
                let peers = h.st.peers();
                let target = match peers.get(usize::from(inp.byte()) % peers.len().max(1)) {
                    Some(p) if inp.byte() % 4 != 0 => p.id.clone(),
                    _ => peer_id(usize::from(inp.byte()), IdWire::Bin),
                };
                match inp.byte() % 9 {
                    0 => {
                        let p = vec![packet(&mut inp, 0)];
                        let _ =
                            h.st.send(now, Packet::from(0u64), MainFlag::Broadcast, p, &mut out);
                    }
                    1 => {
                        let flag = packet(&mut inp, 1);
                        let ty = MainFlag::from_u8(inp.byte() % 6).unwrap_or(MainFlag::Whisper);
                        let _ =
                            h.st.send(now, flag, ty, vec![packet(&mut inp, 0)], &mut out);
                    }
                    2 => {
                        let _ =
                            h.st.whisper(now, &target, vec![packet(&mut inp, 0)], &mut out);
                    }
                    3 => {
                        if h.st.reply(now, &target, vec!["r".into()], &mut out).is_ok()
                            && !h.st.is_connected(&target)
                        {
                            h.reply_targets.push(target);
                        }
                    }
                    4 => h.st.request_peers(now, &mut out),
                    5 => {
                        let methods = methods_from_mask(inp.byte());
                        let _ = h.st.renegotiate(now, &target, &methods, &mut out);
                    }
                    6 => {
                        let _ = h.st.request_resend(now, &target, &mut out);
                    }
                    7 => {
                        h.st.disconnect(now, &target, &mut out);
                    }
                    _ => h.st.keepalive(now, &mut out),
                }
                h.apply(out);
            }
        }
    }
    // Much later: everything expires.
    let mut out = Vec::new();
    h.now_ms += 3_600_000;
    h.st.on_tick(h.now_ms, &mut out);
    h.apply(out);
    Stats {
        delivered: h.delivered,
        max_peers: h.max_peers,
    }
}

/// Without libFuzzer: both harnesses on inputs from a seeded generator
/// (`cargo test` in fuzz/, stable toolchain), and a check that the
/// scripted harness reaches the handshaken paths.
#[cfg(test)]
mod tests {
    use super::*;

    /// Random inputs from the crate's seeded RNG.
    struct Rng(rs2p::protocol::Rng);
    impl Rng {
        fn input(&mut self) -> Vec<u8> {
            let n = self.0.below(1500) as usize;
            (0..n).map(|_| self.0.next_u64() as u8).collect()
        }
    }

    #[test]
    fn random_inputs() {
        let mut rng = Rng(rs2p::protocol::Rng::new(0x5EED));
        for _ in 0..3000 {
            let data = rng.input();
            frame_decoder(&data);
            mesh_state(&data);
        }
    }

    #[test]
    fn a_handshake_then_a_broadcast_is_delivered() {
        // mode: a valid handshake from peer 0 on conn 1; default-ish config.
        let mut data = vec![0x01 | (0x0f << 3), 3, 4, 4, 4, 4];
        // Event 2 (structured) on conn 1: a broadcast from peer 0, stamped
        // now, user sub-flag 0 and two nil packets; not mutated,
        // uncompressed, not damaged.
        data.extend([2, 0, 0, 0, 0, 0, 10, 0, 0, 1, 9, 1]);
        let stats = run_mesh_state(&data);
        assert_eq!(stats.max_peers, 1, "{stats:?}");
        assert_eq!(stats.delivered, 1, "{stats:?}");
    }

    #[test]
    fn random_scripts_reach_the_handshaken_paths() {
        let mut rng = Rng(rs2p::protocol::Rng::new(0xF00D));
        let (mut with_peers, mut with_delivery) = (0, 0);
        for _ in 0..2000 {
            let mut data = rng.input();
            if let Some(mode) = data.first_mut() {
                *mode |= 1;
            }
            let stats = run_mesh_state(&data);
            with_peers += usize::from(stats.max_peers > 0);
            with_delivery += usize::from(stats.delivered > 0);
        }
        assert!(with_peers > 1000, "{with_peers} of 2000 had a peer");
        assert!(with_delivery > 10, "{with_delivery} of 2000 delivered");
    }
}
