//! Codec micro-benchmarks: encode and decode frames of 16 B, 1 KiB and
//! 64 KiB payloads, uncompressed and under each compression method, and the
//! relay path (split, verify, deduplicate, deliver, forward the received
//! bytes) on one core.
//!
//! `cargo bench --bench codec [-- --runs N] [--quick] [--filter TEXT]`
//!
//! Prints Markdown tables of medians over N runs (default 5), each run
//! about 0.3 s after a warm-up run.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rs2p::protocol::mesh::Waterfall;
use rs2p::protocol::{
    decode_body, decode_frame, CodecLimits, Compression, FrameDecoder, InternalMessage, MainFlag,
    Packet, PeerId, SubFlag, CHECKSUM_LEN,
};
use sha2::{Digest, Sha256};

// The timing harness and the relay rig live with `rs2p bench` in the
// binary (src/cli/bench/), not in the library. They use only std, `bytes`
// and rs2p's public API, so this bench includes the very same files; their
// unit tests run with the binary's (`cargo test --bins`). Cargo builds this
// bench with `--cfg test` but without the test harness, so the files' test
// modules compile with their tests left out: their `use super::*` is unused.
#[allow(unused_imports)]
#[path = "../src/cli/bench/harness.rs"]
mod harness;
// This bench has no use for `RelayRig::is_wired`; the rig's unit test does.
#[allow(dead_code, unused_imports)]
#[path = "../src/cli/bench/relay.rs"]
mod relay;

use harness::{bench, bench_op, human_rate, Sample, Stats};
use relay::RelayRig;

const SIZES: [(usize, &str); 3] = [(16, "16 B"), (1024, "1 KiB"), (65536, "64 KiB")];

struct Opts {
    runs: usize,
    per_run: Duration,
    filter: Option<String>,
}

fn opts() -> Opts {
    let mut o = Opts {
        runs: 5,
        per_run: Duration::from_millis(300),
        filter: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--runs" => o.runs = args.next().and_then(|v| v.parse().ok()).unwrap_or(5),
            "--quick" => {
                o.runs = 3;
                o.per_run = Duration::from_millis(100);
            }
            "--filter" => o.filter = args.next(),
            // `cargo bench` passes --bench; ignore it and anything unknown.
            _ => {}
        }
    }
    o
}

fn methods() -> Vec<Option<Compression>> {
    std::iter::once(None)
        .chain(Compression::ALL.into_iter().map(Some))
        .collect()
}

fn name(m: Option<Compression>) -> &'static str {
    m.map_or("none", Compression::name)
}

/// Text-like payload bytes (compressible, as chat or JSON would be).
fn payload(len: usize) -> Vec<u8> {
    let words = [
        "mesh ",
        "peer ",
        "frame ",
        "broadcast ",
        "relay ",
        "node ",
        "id ",
        "the ",
        "a ",
        "of ",
        "42 ",
        "2026 ",
        "{\"k\": ",
        "true} ",
    ];
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(words[(x % words.len() as u64) as usize].as_bytes());
    }
    out.truncate(len);
    out
}

fn message(len: usize) -> InternalMessage {
    InternalMessage::new(
        MainFlag::Broadcast,
        PeerId::from("6qFq5nS3GDDvT4DfZqJ6BN2Hwn8bkbNWx9YUt6kT3R4uZk6zYxSKbZ4DgpD9Lk1rVc"),
        1_700_000_000,
        vec![SubFlag::Broadcast.as_u8().into(), Packet::bin(payload(len))],
    )
}

fn wanted(o: &Opts, label: &str) -> bool {
    o.filter.as_ref().is_none_or(|f| label.contains(f.as_str()))
}

fn row(cells: &[String]) {
    println!("| {} |", cells.join(" | "));
}

/// Whether any row of a table (labels `"{prefix} {size} {method}"`) is wanted.
fn any_wanted(o: &Opts, prefix: &str) -> bool {
    SIZES.iter().any(|(_, label)| {
        methods()
            .into_iter()
            .any(|m| wanted(o, &format!("{prefix} {label} {}", name(m))))
    })
}

fn codec_tables(o: &Opts, limits: &CodecLimits) {
    if !any_wanted(o, "codec") {
        return;
    }
    println!("\n### Encode and decode (one core)\n");
    row(&[
        "payload".into(),
        "compression".into(),
        "frame bytes".into(),
        "encode frames/s".into(),
        "encode MB/s (payload)".into(),
        "decode frames/s".into(),
        "decode MB/s (payload)".into(),
        "decode ÷ encode".into(),
    ]);
    row(&vec!["---:".to_owned(); 8]);
    for (len, label) in SIZES {
        let msg = message(len);
        for m in methods() {
            if !wanted(o, &format!("codec {label} {}", name(m))) {
                continue;
            }
            let frame = msg.encode_frame(m, limits).expect("encodes");
            let peer: Vec<Compression> = m.into_iter().collect();
            let enc = bench_op(o.runs, o.per_run, || {
                black_box(msg.encode_frame(black_box(m), limits).ok());
            });
            let dec = bench_op(o.runs, o.per_run, || {
                black_box(decode_frame(black_box(&frame), &peer, limits).ok());
            });
            let mb = |s: &Stats| s.median() * len as f64 / 1e6;
            row(&[
                label.into(),
                name(m).into(),
                frame.len().to_string(),
                human_rate(enc.median()),
                format!("{:.1}", mb(&enc)),
                human_rate(dec.median()),
                format!("{:.1}", mb(&dec)),
                format!("{:.2}", dec.median() / enc.median()),
            ]);
        }
    }
}

/// Frames that fit in about `per_run` of relaying, at most 256 MiB.
fn relay_frames(m: Option<Compression>, len: usize, per_run: Duration) -> (Vec<Bytes>, Vec<u8>) {
    let methods: Vec<Compression> = m.into_iter().collect();
    let mut probe = RelayRig::new(&methods);
    let sample = probe.broadcasts(200, len);
    let stream: Vec<u8> = sample.iter().flat_map(|f| f.iter().copied()).collect();
    let start = Instant::now();
    let mut rig = RelayRig::new(&methods);
    rig.relay_stream(&stream, 64 * 1024);
    let per = start.elapsed().as_secs_f64() / 200.0;
    let by_time = (per_run.as_secs_f64() / per) as usize;
    let by_memory = (256 << 20) / sample[0].len().max(1);
    let count = by_time.clamp(200, by_memory.max(200));
    let frames = RelayRig::new(&methods).broadcasts(count, len);
    let stream = frames.iter().flat_map(|f| f.iter().copied()).collect();
    (frames, stream)
}

fn relay_table(o: &Opts) {
    if !any_wanted(o, "relay") {
        return;
    }
    println!("\n### Relay path (one core): split the stream, verify the checksum, deduplicate, deliver, forward the received bytes\n");
    row(&[
        "payload".into(),
        "compression".into(),
        "frames/s".into(),
        "ns/frame".into(),
        "forwarded as received bytes".into(),
        "min / max of runs".into(),
    ]);
    row(&vec!["---:".to_owned(); 6]);
    for (len, label) in SIZES {
        for m in methods() {
            if !wanted(o, &format!("relay {label} {}", name(m))) {
                continue;
            }
            let methods: Vec<Compression> = m.into_iter().collect();
            let (frames, stream) = relay_frames(m, len, o.per_run);
            let mut passed = (0, 0);
            let stats = bench(o.runs, || {
                let mut rig = RelayRig::new(&methods);
                let start = Instant::now();
                let count = rig.relay_stream(black_box(&stream), 64 * 1024);
                let elapsed = start.elapsed();
                assert_eq!(
                    count.forwarded,
                    frames.len() as u64,
                    "every frame forwarded"
                );
                passed = (count.passed_through, count.forwarded);
                Sample {
                    ops: count.frames,
                    elapsed,
                }
            });
            row(&[
                label.into(),
                name(m).into(),
                human_rate(stats.median()),
                format!("{:.0}", stats.median_ns()),
                format!("{} of {}", passed.0, passed.1),
                format!("{} / {}", human_rate(stats.min()), human_rate(stats.max())),
            ]);
        }
    }
}

/// Where the relay's time goes, 100-byte payloads, uncompressed.
fn breakdown(o: &Opts, limits: &CodecLimits) {
    if !wanted(o, "breakdown") {
        return;
    }
    println!("\n### Relay breakdown (one core, 100-byte payloads, uncompressed)\n");
    row(&[
        "step (cumulative)".into(),
        "frames/s".into(),
        "ns/frame".into(),
    ]);
    row(&["---".into(), "---:".into(), "---:".into()]);
    let mut rig = RelayRig::new(&[]);
    let count = 200_000;
    let frames = rig.broadcasts(count, 100);
    let stream: Vec<u8> = frames.iter().flat_map(|f| f.iter().copied()).collect();
    let chunked = |mut each: Box<dyn FnMut(rs2p::protocol::Frame) + '_>| {
        let mut dec = FrameDecoder::new(limits.max_frame_len);
        let start = Instant::now();
        let mut n = 0;
        for piece in stream.chunks(64 * 1024) {
            dec.feed(piece);
            while let Ok(Some(frame)) = dec.next_frame() {
                n += 1;
                each(frame);
            }
        }
        Sample {
            ops: n,
            elapsed: start.elapsed(),
        }
    };
    let report = |label: &str, stats: Stats| {
        row(&[
            label.into(),
            human_rate(stats.median()),
            format!("{:.0}", stats.median_ns()),
        ]);
    };
    report(
        "split frames (FrameDecoder)",
        bench(o.runs, || {
            chunked(Box::new(|f| {
                black_box(f);
            }))
        }),
    );
    report(
        "+ SHA-256 of the packed message",
        bench(o.runs, || {
            chunked(Box::new(|f| {
                let body = f.body();
                let ok = body.len() >= CHECKSUM_LEN
                    && Sha256::digest(&body[CHECKSUM_LEN..]).as_slice() == &body[..CHECKSUM_LEN];
                black_box(ok);
            }))
        }),
    );
    report(
        "+ msgpack decode (decode_body)",
        bench(o.runs, || {
            chunked(Box::new(|f| {
                black_box(decode_body(f.body(), &[], limits).ok());
            }))
        }),
    );
    report(
        "+ deduplicate (Waterfall)",
        bench(o.runs, || {
            let mut w = Waterfall::new(60, 60, 100_000);
            chunked(Box::new(move |f| {
                if let Ok(d) = decode_body(f.body(), &[], limits) {
                    black_box(w.check_and_record(d.id, d.message.time, 1_700_000_000));
                }
            }))
        }),
    );
    report(
        "MeshState::on_frame (all of the above + deliver + forward received bytes)",
        bench(o.runs, || {
            let mut rig = RelayRig::new(&[]);
            let start = Instant::now();
            let c = rig.relay_stream(&stream, 64 * 1024);
            Sample {
                ops: c.frames,
                elapsed: start.elapsed(),
            }
        }),
    );
    report(
        "for comparison: split + verify + decode + deduplicate + re-encode (what pass-through avoids)",
        bench(o.runs, || {
            let mut w = Waterfall::new(60, 60, 100_000);
            chunked(Box::new(move |f| {
                if let Ok(d) = decode_body(f.body(), &[], limits) {
                    if w.check_and_record(d.id, d.message.time, 1_700_000_000)
                        == rs2p::protocol::mesh::Verdict::New
                    {
                        black_box(d.message.encode_frame(None, limits).ok());
                    }
                }
            }))
        }),
    );
}

fn main() {
    let o = opts();
    let limits = CodecLimits::default();
    println!(
        "codec benchmarks: median of {} runs of ~{} ms each (after a warm-up run)",
        o.runs,
        o.per_run.as_millis()
    );
    codec_tables(&o, &limits);
    relay_table(&o);
    breakdown(&o, &limits);
}
