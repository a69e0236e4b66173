//! Generators of protocol values with fuzzed fields: packets, ids,
//! addresses, message headers and the mesh's own messages. The layers'
//! messages (in `sync`, `chord`) are built from the same parts.

use bytes::Bytes;
use rs2p::protocol::{
    id_to_packet, request_id, Compression, IdWire, InternalMessage, MainFlag, Packet, PeerId,
    SubFlag,
};

use crate::{methods_from_mask, Input};

/// The clock at the start of every run, Unix seconds.
pub const NOW: u64 = 1_700_000_000;
/// Base58 ids, so the conflict tie-break compares them as numbers (and
/// chord places them on its ring).
pub const IDS: [&str; 4] = [
    "2ZKAafyLC1r6",
    "7Dve35ztxZSu",
    "5fk3UgXbCxfH",
    "zzzzzzzzzzzzzzzz",
];
/// The node under test (base58 too).
pub const ME: &str = "4MeMeMeMeMeMe";

/// One of the known peers' ids, in the given msgpack form.
pub fn peer_id(i: usize, wire: IdWire) -> PeerId {
    PeerId::new(Bytes::from_static(IDS[i % IDS.len()].as_bytes()), wire)
}

/// The handshake a peer sends first.
pub fn handshake_message(
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
pub fn packet(inp: &mut Input, depth: u8) -> Packet {
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

/// A map packet (what deltas carry), sometimes with repeated keys.
pub fn map_packet(inp: &mut Input) -> Packet {
    let n = inp.byte() % 4;
    Packet::Map(
        (0..n)
            .map(|_| {
                let k = match inp.byte() % 3 {
                    0 => packet(inp, 2),
                    _ => Packet::from(u64::from(inp.byte() % 4)),
                };
                (k, packet(inp, 2))
            })
            .collect(),
    )
}

/// A value for a layer to store: small, a map, nil, or large (near the
/// bounds the harnesses set).
pub fn value_packet(inp: &mut Input) -> Packet {
    match inp.byte() % 8 {
        0 => Packet::Nil,
        1 => map_packet(inp),
        2 => Packet::bin(vec![inp.byte(); usize::from(inp.u16() % 600)]),
        _ => packet(inp, 1),
    }
}

/// An id packet: a known peer's (bin or str), ours, or arbitrary.
pub fn id_packet(inp: &mut Input) -> Packet {
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
pub fn addr_packet(inp: &mut Input) -> Packet {
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

/// A message's main flag, sender and time, mostly plausible.
pub struct Header {
    pub msg_type: MainFlag,
    pub sender: PeerId,
    pub time: u64,
}

/// A header with fuzzed fields: broadcasts and whispers mostly, from a
/// known peer (or from us), stamped about `now`.
pub fn header(inp: &mut Input, now: u64) -> Header {
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
    Header {
        msg_type,
        sender,
        time,
    }
}

/// The message of `header` with `payload`; now and then one field is
/// replaced by anything first.
pub fn finish(inp: &mut Input, header: Header, mut payload: Vec<Packet>) -> InternalMessage {
    if !payload.is_empty() && inp.byte() % 8 == 0 {
        let i = usize::from(inp.byte()) % payload.len();
        payload[i] = packet(inp, 1);
    }
    if payload.is_empty() {
        payload.push(Packet::Nil);
    }
    InternalMessage::new(header.msg_type, header.sender, header.time, payload)
}

/// The payload of one of the mesh's own messages (or a user message) with
/// fuzzed fields.
fn mesh_payload(
    inp: &mut Input,
    now: u64,
    protocol: &[u8],
    reply_targets: &[PeerId],
) -> Vec<Packet> {
    let sub = |f: SubFlag| Packet::from(f.as_u8());
    match inp.byte() % 12 {
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
    }
}

/// A protocol message of the mesh with fuzzed fields.
pub fn structured(
    inp: &mut Input,
    now: u64,
    protocol: &[u8],
    reply_targets: &[PeerId],
) -> InternalMessage {
    let header = header(inp, now);
    let payload = mesh_payload(inp, now, protocol, reply_targets);
    finish(inp, header, payload)
}
