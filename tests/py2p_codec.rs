//! Live codec cross-check against the real py2p 0.7.878.
//!
//! Runs `tests/py2p/codec_xcheck.py` with the interpreter named by the
//! environment variable `RS2P_PYTHON` (falling back to `python3`). That
//! interpreter must be able to import py2p: if it cannot, these tests fail,
//! they never skip.
//!
//! * `py2p_encodes_rs2p_decodes`: py2p builds random messages under every
//!   compression method; rs2p decodes each frame and must reproduce py2p's
//!   message id and u-msgpack's packing of the packets byte for byte.
//! * `rs2p_encodes_py2p_decodes`: rs2p builds random messages under every
//!   method; py2p decodes each frame and must report rs2p's id, and
//!   u-msgpack must re-pack what it decoded into exactly rs2p's bytes.

mod support;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use rs2p::protocol::{
    decode_frame, CodecLimits, Compression, IdWire, Int, InternalMessage, MainFlag, PeerId,
};
use rs2p::Packet;
use serde_json::Value;
use support::process::{run_to_end, Output};
use support::py2p::{python, script};
use support::{hex, unhex};

/// Messages per compression method (and per direction).
const PER_METHOD: usize = 60;
/// Bound on one Python run.
const PY_TIMEOUT: Duration = Duration::from_secs(120);

/// Uncompressed first, then every method in py2p's order.
const METHODS: [Option<Compression>; 6] = [
    None,
    Some(Compression::Snappy),
    Some(Compression::Zlib),
    Some(Compression::Gzip),
    Some(Compression::Bz2),
    Some(Compression::Lzma),
];

// ---------------------------------------------------------------------------
// Running Python
// ---------------------------------------------------------------------------

/// Runs the cross-check script with `args`, feeding it `input` on stdin
/// (from a separate thread, so neither side can block the other), and
/// collecting stdout and stderr. Kills the child and panics if it takes
/// longer than [`PY_TIMEOUT`]; panics with its stderr if it exits non-zero.
fn run_script(args: &[&str], input: Vec<u8>) -> Output {
    let interpreter = python();
    let mut cmd = Command::new(&interpreter);
    cmd.arg(script("codec_xcheck.py")).args(args);
    let run = run_to_end(cmd, Some(input), PY_TIMEOUT);
    assert!(
        run.status.success(),
        "{interpreter} {args:?} failed ({}); is py2p installed for it? stderr:\n{}",
        run.status,
        run.stderr
    );
    run
}

// ---------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------

fn method_json(method: Option<Compression>) -> Value {
    method.map_or(Value::Null, |m| Value::from(m.as_u8()))
}

fn method_name(method: Option<Compression>) -> &'static str {
    method.map_or("none", Compression::name)
}

fn field<'a>(obj: &'a Value, key: &str, line: usize, stderr: &str) -> &'a str {
    obj.get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("line {line}: no string {key:?} in {obj}; stderr:\n{stderr}"))
}

/// The first differing byte of two encodings, for readable failures.
fn first_diff(a: &[u8], b: &[u8]) -> String {
    let at = a
        .iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()));
    let lo = at.saturating_sub(8);
    format!(
        "lengths {} vs {}, first difference at byte {at}: ...{}... vs ...{}...",
        a.len(),
        b.len(),
        hex(&a[lo..a.len().min(at + 16)]),
        hex(&b[lo..b.len().min(at + 16)])
    )
}

// ---------------------------------------------------------------------------
// Deterministic random messages (the crate's seeded RNG)
// ---------------------------------------------------------------------------

struct Rng(rs2p::protocol::Rng);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(rs2p::protocol::Rng::new(seed))
    }

    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `0..n` (n > 0; the tiny modulo bias does not matter here).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn range(&mut self, lo: usize, hi_inclusive: usize) -> usize {
        lo + self.below((hi_inclusive - lo + 1) as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// The boundary of every msgpack int encoding.
const INT_EDGES: [i128; 31] = [
    0,
    1,
    31,
    127,
    128,
    255,
    256,
    65_535,
    65_536,
    (1 << 31) - 1,
    1 << 31,
    (1 << 32) - 1,
    1 << 32,
    (1 << 63) - 1,
    1 << 63,
    (1 << 64) - 1,
    -1,
    -31,
    -32,
    -33,
    -127,
    -128,
    -129,
    -32_767,
    -32_768,
    -32_769,
    -(1 << 31) + 1,
    -(1 << 31),
    -(1 << 31) - 1,
    -(1 << 63) + 1,
    -(1 << 63),
];

fn int_packet(v: i128) -> Packet {
    if v < 0 {
        Packet::Int(Int::from(i64::try_from(v).expect("fits i64")))
    } else {
        Packet::Int(Int::from(u64::try_from(v).expect("fits u64")))
    }
}

fn rand_int(rng: &mut Rng) -> Packet {
    let r = rng.below(100);
    if r < 35 {
        int_packet(rng.pick(&INT_EDGES))
    } else if r < 50 {
        int_packet(rng.below(160) as i128 - 32)
    } else if r < 75 {
        let bits = rng.pick(&[8u32, 16, 32, 64]);
        let v = (rng.next() as i64) >> (64 - bits);
        int_packet(i128::from(v))
    } else if rng.chance(50) {
        Packet::from(rng.next())
    } else {
        Packet::from(i64::MIN + (rng.next() >> 1) as i64)
    }
}

fn rand_float(rng: &mut Rng) -> Packet {
    let r = rng.below(100);
    let v = if r < 20 {
        rng.pick(&[
            0.0,
            -0.0,
            1.5,
            -2.25,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            f64::MAX,
            f64::MIN_POSITIVE,
            5e-324,
            std::f64::consts::PI,
        ])
    } else if r < 60 {
        (rng.next() as f64 / u64::MAX as f64) * 2e6 - 1e6
    } else {
        // Any bits, NaNs with payloads included: they must survive as bits.
        f64::from_bits(rng.next())
    };
    Packet::Float(v)
}

/// Code point ranges of 1, 2, 3 and 4 UTF-8 bytes.
const CHAR_RANGES: [(u32, u32); 5] = [
    (0x20, 0x7e),
    (0xa0, 0x7ff),
    (0x800, 0xd7ff),
    (0xe000, 0xffff),
    (0x1_0000, 0x10_ffff),
];

fn rand_char(rng: &mut Rng, range: (u32, u32)) -> char {
    let c = range.0 + rng.below(u64::from(range.1 - range.0 + 1)) as u32;
    char::from_u32(c).unwrap_or('\u{fffd}')
}

const STR_EDGES: [usize; 10] = [0, 1, 31, 32, 255, 256, 301, 1000, 65_535, 65_536];
const BIN_EDGES: [usize; 7] = [0, 1, 255, 256, 1000, 65_535, 65_536];
const CONTAINER_EDGES: [usize; 5] = [0, 1, 15, 16, 17];

fn rand_len(rng: &mut Rng, edges: &[usize], small_max: usize) -> usize {
    if rng.chance(25) {
        rng.pick(edges)
    } else {
        rng.range(0, small_max)
    }
}

/// A string of about `n` characters (so 1 to 4 times as many bytes).
fn rand_string(rng: &mut Rng, long_ok: bool) -> String {
    let edges: &[usize] = if long_ok { &STR_EDGES } else { &STR_EDGES[..7] };
    let n = rand_len(rng, edges, 40);
    let mixed = rng.chance(30);
    let one = rng.pick(&CHAR_RANGES);
    let mut s = String::new();
    for _ in 0..n {
        let range = if mixed { rng.pick(&CHAR_RANGES) } else { one };
        s.push(rand_char(rng, range));
        if s.len() > 70_000 {
            break;
        }
    }
    s
}

fn rand_bin(rng: &mut Rng, long_ok: bool) -> Vec<u8> {
    let edges: &[usize] = if long_ok { &BIN_EDGES } else { &BIN_EDGES[..5] };
    let n = rand_len(rng, edges, 40);
    if rng.chance(50) {
        let pattern_len = rng.range(1, 8);
        let pattern = rng.bytes(pattern_len);
        pattern.iter().copied().cycle().take(n).collect()
    } else {
        rng.bytes(n)
    }
}

/// A random value; `budget` caps the large strings and bins per message.
fn rand_value(rng: &mut Rng, depth: usize, budget: &mut u32) -> Packet {
    // int (twice), float, bool, nil, str (twice), bin, array, map.
    let kinds: &[u8] = if depth < 4 {
        b"iifonssyam"
    } else {
        b"iifonssy"
    };
    let long_ok = *budget > 0;
    if rng.chance(4) {
        // Any ext type but -1 (the timestamp, which u-msgpack turns into a
        // datetime and may re-pack in a shorter form).
        let kind = if rng.chance(50) {
            rng.below(128) as i8
        } else {
            -2 - rng.below(127) as i8
        };
        let len = rng.pick(&[0usize, 1, 2, 3, 4, 8, 16, 17, 255, 256, 300]);
        return Packet::Ext(kind, Bytes::from(rng.bytes(len)));
    }
    match rng.pick(kinds) {
        b'i' => rand_int(rng),
        b'f' => rand_float(rng),
        b'o' => Packet::Bool(rng.chance(50)),
        b'y' => {
            let b = rand_bin(rng, long_ok);
            if b.len() > 255 {
                *budget = budget.saturating_sub(1);
            }
            Packet::Bin(Bytes::from(b))
        }
        b'n' => Packet::Nil,
        b's' => {
            let s = rand_string(rng, long_ok);
            if s.len() > 255 {
                *budget = budget.saturating_sub(1);
            }
            Packet::Str(s)
        }
        b'a' => {
            let n = rand_len(rng, &CONTAINER_EDGES, if depth < 2 { 5 } else { 3 });
            Packet::Array((0..n).map(|_| rand_value(rng, depth + 1, budget)).collect())
        }
        _ => {
            let n = rand_len(rng, &CONTAINER_EDGES, if depth < 2 { 5 } else { 3 });
            let mut entries: Vec<(Packet, Packet)> = Vec::with_capacity(n);
            for _ in 0..n {
                // Unique keys: py2p decodes maps into dicts.
                let mut key = rand_string(rng, false);
                while entries
                    .iter()
                    .any(|(k, _)| k.as_str() == Some(key.as_str()))
                {
                    key.push(rng.pick(&['a', 'b', 'x', 'z']));
                }
                let value = rand_value(rng, depth + 1, budget);
                entries.push((Packet::Str(key), value));
            }
            Packet::Map(entries)
        }
    }
}

const MAIN_FLAGS: [MainFlag; 5] = [
    MainFlag::Broadcast,
    MainFlag::Renegotiate,
    MainFlag::Whisper,
    MainFlag::Ping,
    MainFlag::Pong,
];

fn rand_message(rng: &mut Rng) -> InternalMessage {
    let msg_type = rng.pick(&MAIN_FLAGS);
    let sender_len = rng.pick(&[0usize, 1, 20, 32, 48, 64, 70]);
    // py2p sends node ids as bin.
    let sender = PeerId::new(rng.bytes(sender_len), IdWire::Bin);
    let time = match rng.below(4) {
        0 => rng.pick(&[
            0,
            1,
            127,
            128,
            1_700_000_000,
            u64::from(u32::MAX),
            1 << 32,
            u64::MAX,
        ]),
        1 => rng.next(),
        _ => 1_600_000_000 + rng.below(300_000_000),
    };
    let mut payload = vec![Packet::from(rng.below(0x12))];
    let mut budget = 2;
    if rng.chance(40) {
        payload.push(Packet::Str(
            "long text \u{e9}\u{20ac}\u{1f600} ".repeat(rng.range(20, 60)),
        ));
    }
    for _ in 0..rng.range(0, 6) {
        payload.push(rand_value(rng, 0, &mut budget));
    }
    InternalMessage::new(msg_type, sender, time, payload)
}

// ---------------------------------------------------------------------------
// Coverage: which msgpack encodings a run exercised
// ---------------------------------------------------------------------------

/// Every encoding each direction must have exercised at least once.
const REQUIRED: [&str; 34] = [
    "posfixint",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "u64::MAX",
    "negfixint",
    "int8",
    "int16",
    "int32",
    "int64",
    "i64::MIN",
    "float",
    "nan",
    "inf",
    "true",
    "false",
    "nil",
    "fixstr",
    "str8",
    "str16",
    "str32",
    "utf8-2",
    "utf8-3",
    "utf8-4",
    "bin8",
    "bin16",
    "bin32",
    "fixarray",
    "array16",
    "fixmap",
    "map16",
    "ext",
    "depth>=3",
];

fn cover(packet: &Packet, depth: usize, seen: &mut BTreeSet<&'static str>) {
    if depth >= 3 {
        seen.insert("depth>=3");
    }
    match packet {
        Packet::Nil => {
            seen.insert("nil");
        }
        Packet::Bool(b) => {
            seen.insert(if *b { "true" } else { "false" });
        }
        Packet::Int(i) => {
            let v = i.as_i128();
            seen.insert(match v {
                0..=127 => "posfixint",
                128..=0xff => "uint8",
                0x100..=0xffff => "uint16",
                0x1_0000..=0xffff_ffff => "uint32",
                -32..=-1 => "negfixint",
                -128..=-33 => "int8",
                -32_768..=-129 => "int16",
                -2_147_483_648..=-32_769 => "int32",
                _ if v > 0 => "uint64",
                _ => "int64",
            });
            if v == i128::from(u64::MAX) {
                seen.insert("u64::MAX");
            }
            if v == i128::from(i64::MIN) {
                seen.insert("i64::MIN");
            }
        }
        Packet::Float(x) => {
            seen.insert(if x.is_nan() {
                "nan"
            } else if x.is_infinite() {
                "inf"
            } else {
                "float"
            });
        }
        Packet::Str(text) => {
            seen.insert(match text.len() {
                0..=31 => "fixstr",
                32..=0xff => "str8",
                0x100..=0xffff => "str16",
                _ => "str32",
            });
            for c in text.chars() {
                match c.len_utf8() {
                    2 => seen.insert("utf8-2"),
                    3 => seen.insert("utf8-3"),
                    4 => seen.insert("utf8-4"),
                    _ => false,
                };
            }
        }
        Packet::Bin(b) => {
            seen.insert(match b.len() {
                0..=0xff => "bin8",
                0x100..=0xffff => "bin16",
                _ => "bin32",
            });
        }
        Packet::Array(items) => {
            seen.insert(if items.len() < 16 {
                "fixarray"
            } else {
                "array16"
            });
            for item in items {
                cover(item, depth + 1, seen);
            }
        }
        Packet::Map(entries) => {
            seen.insert(if entries.len() < 16 {
                "fixmap"
            } else {
                "map16"
            });
            for (k, v) in entries {
                cover(k, depth + 1, seen);
                cover(v, depth + 1, seen);
            }
        }
        Packet::Ext(..) => {
            seen.insert("ext");
        }
    }
}

fn cover_message(msg: &InternalMessage, seen: &mut BTreeSet<&'static str>) {
    for packet in &msg.payload {
        cover(packet, 0, seen);
    }
}

fn assert_covered(direction: &str, seen: &BTreeSet<&'static str>) {
    let missing: Vec<&str> = REQUIRED
        .iter()
        .copied()
        .filter(|k| !seen.contains(k))
        .collect();
    assert!(
        missing.is_empty(),
        "{direction}: the random messages never exercised {missing:?} (change the seed or generator)"
    );
}

// ---------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------

#[test]
fn py2p_encodes_rs2p_decodes() {
    let limits = CodecLimits::default();
    let count = PER_METHOD.to_string();
    let run = run_script(&["encode", "20240607", &count], Vec::new());

    let mut per_method = [0usize; METHODS.len()];
    let mut seen = BTreeSet::new();
    let mut failures = Vec::new();
    for (line_no, line) in run.stdout.lines().enumerate() {
        let obj: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("line {line_no}: bad JSON ({e}); stderr:\n{}", run.stderr));
        let method = match obj.get("method") {
            Some(Value::Null) => None,
            Some(v) => Some(
                v.as_u64()
                    .and_then(|m| u8::try_from(m).ok())
                    .and_then(Compression::from_u8)
                    .unwrap_or_else(|| panic!("line {line_no}: bad method {v}")),
            ),
            None => panic!("line {line_no}: no method in {obj}"),
        };
        let frame = unhex(field(&obj, "frame", line_no, &run.stderr));
        let id = unhex(field(&obj, "id", line_no, &run.stderr));
        let packed = unhex(field(&obj, "packed", line_no, &run.stderr));
        let slot = METHODS
            .iter()
            .position(|&m| m == method)
            .expect("known method");
        per_method[slot] += 1;

        let peer_methods: Vec<Compression> = method.into_iter().collect();
        let decoded = match decode_frame(&frame, &peer_methods, &limits) {
            Ok(d) => d,
            Err(e) => {
                failures.push(format!(
                    "line {line_no} ({}): rs2p cannot decode py2p's frame: {e}",
                    method_name(method)
                ));
                continue;
            }
        };
        if decoded.compression != method {
            failures.push(format!(
                "line {line_no}: decoded as {:?}, py2p used {:?}",
                decoded.compression, method
            ));
        }
        if decoded.id[..] != id[..] {
            failures.push(format!(
                "line {line_no} ({}): id {} != py2p {}",
                method_name(method),
                hex(&decoded.id),
                hex(&id)
            ));
        }
        cover_message(&decoded.message, &mut seen);
        let ours = decoded.message.pack();
        if ours != packed {
            failures.push(format!(
                "line {line_no} ({}): rs2p re-packs differently from u-msgpack: {}\nmessage: {:?}",
                method_name(method),
                first_diff(&ours, &packed),
                decoded.message
            ));
        }
        if decoded.message.id()[..] != id[..] {
            failures.push(format!(
                "line {line_no}: message.id() differs from py2p's id"
            ));
        }
        // Uncompressed frames must be byte-identical when rs2p re-encodes.
        if method.is_none() {
            let again = decoded
                .message
                .encode_frame(None, &limits)
                .expect("encodable");
            if again[..] != frame[..] {
                failures.push(format!(
                    "line {line_no}: rs2p's uncompressed frame differs from py2p's: {}",
                    first_diff(&again, &frame)
                ));
            }
        }
    }

    for (slot, method) in METHODS.iter().enumerate() {
        assert_eq!(
            per_method[slot],
            PER_METHOD,
            "expected {PER_METHOD} py2p frames under {}; stderr:\n{}",
            method_name(*method),
            run.stderr
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {} py2p frames failed:\n{}",
        failures.len(),
        PER_METHOD * METHODS.len(),
        failures.join("\n")
    );
    assert_covered("py2p -> rs2p", &seen);
    eprintln!(
        "py2p -> rs2p: {PER_METHOD} messages under each of {:?} ({} in total) agree",
        METHODS.map(method_name),
        PER_METHOD * METHODS.len()
    );
}

#[test]
fn rs2p_encodes_py2p_decodes() {
    let limits = CodecLimits::default();
    let mut rng = Rng::new(0x5eed_2b2b_c0de_0007);

    // (method, message) in the order sent.
    let mut sent: Vec<(Option<Compression>, InternalMessage)> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut input = Vec::new();
    for method in METHODS {
        for _ in 0..PER_METHOD {
            let msg = rand_message(&mut rng);
            let frame = msg
                .encode_frame(method, &limits)
                .unwrap_or_else(|e| panic!("rs2p cannot encode {msg:?}: {e}"));
            let line = serde_json::json!({ "method": method_json(method), "frame": hex(&frame) });
            input.extend_from_slice(line.to_string().as_bytes());
            input.push(b'\n');
            cover_message(&msg, &mut seen);
            sent.push((method, msg));
        }
    }

    let run = run_script(&["decode"], input);
    let replies: Vec<&str> = lines_nonempty(&run.stdout);
    assert_eq!(
        replies.len(),
        sent.len(),
        "py2p answered {} of {} frames; stderr:\n{}",
        replies.len(),
        sent.len(),
        run.stderr
    );

    let mut decoded_per_method = [0usize; METHODS.len()];
    let mut failures = Vec::new();
    for (i, (reply, (method, msg))) in replies.iter().zip(&sent).enumerate() {
        let obj: Value = serde_json::from_str(reply)
            .unwrap_or_else(|e| panic!("reply {i}: bad JSON ({e}); stderr:\n{}", run.stderr));
        if obj.get("ok") != Some(&Value::Bool(true)) {
            failures.push(format!(
                "message {i} ({}): py2p failed: {}\n{}\nmessage: {msg:?}",
                method_name(*method),
                obj.get("error").and_then(Value::as_str).unwrap_or("?"),
                obj.get("trace").and_then(Value::as_str).unwrap_or("")
            ));
            continue;
        }
        let slot = METHODS
            .iter()
            .position(|m| m == method)
            .expect("known method");
        decoded_per_method[slot] += 1;
        if obj.get("compression_fail") != Some(&Value::Bool(false)) {
            failures.push(format!(
                "message {i} ({}): py2p flagged compression_fail",
                method_name(*method)
            ));
        }
        let id = unhex(field(&obj, "id", i, &run.stderr));
        let packed = unhex(field(&obj, "packed", i, &run.stderr));
        if id[..] != msg.id()[..] {
            failures.push(format!(
                "message {i} ({}): py2p id {} != rs2p {}",
                method_name(*method),
                hex(&id),
                hex(&msg.id())
            ));
        }
        let ours = msg.pack();
        if packed != ours {
            failures.push(format!(
                "message {i} ({}): u-msgpack re-packs py2p's decode differently: {}\nmessage: {msg:?}",
                method_name(*method),
                first_diff(&ours, &packed)
            ));
        }
    }

    assert!(
        failures.is_empty(),
        "{} of {} rs2p frames failed in py2p:\n{}\npython stderr:\n{}",
        failures.len(),
        sent.len(),
        failures.join("\n"),
        run.stderr
    );
    for (slot, method) in METHODS.iter().enumerate() {
        assert_eq!(
            decoded_per_method[slot],
            PER_METHOD,
            "py2p decoded {} of {PER_METHOD} frames under {}",
            decoded_per_method[slot],
            method_name(*method)
        );
    }
    assert_covered("rs2p -> py2p", &seen);
    eprintln!(
        "rs2p -> py2p: {PER_METHOD} messages under each of {:?} ({} in total) agree",
        METHODS.map(method_name),
        sent.len()
    );
}

/// The lines of `text` that are not blank.
fn lines_nonempty(text: &str) -> Vec<&str> {
    text.lines().filter(|l| !l.trim().is_empty()).collect()
}
