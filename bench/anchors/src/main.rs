//! rs2p side by side with the field: the 4-node line of
//! `examples/line_api.rs` (node i connected to node i−1 only; node 0's
//! application sends a 100-byte string and a counter in a loop; node 3's
//! application counts) through rs2p over Plaintext, SSL and wss, through
//! rust-libp2p gossipsub and floodsub (TCP + noise + yamux), through a
//! floor that relays length-prefixed frames without reading them, and
//! through py2p. Contenders run round robin, `--runs` times each; the
//! table shows medians and ratios to rs2p Plaintext.
//!
//! ```sh
//! cd bench/anchors && cargo build --release && target/release/anchors
//! ```

mod common;
mod floor;
mod libp2p_line;
mod py2p;
mod rs2p_line;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};

use common::{loadavg, median, wait_for_idle, CpuSample, LatencyResult, Outcome, Throughput};
use libp2p_line::Kind;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Contender {
    Rs2pPlain,
    Rs2pSsl,
    Rs2pWss,
    Gossipsub,
    Floodsub,
    Floor,
    Py2p,
}

const ALL: [Contender; 7] = [
    Contender::Rs2pPlain,
    Contender::Rs2pSsl,
    Contender::Rs2pWss,
    Contender::Gossipsub,
    Contender::Floodsub,
    Contender::Floor,
    Contender::Py2p,
];

impl Contender {
    fn key(self) -> &'static str {
        match self {
            Contender::Rs2pPlain => "rs2p-plain",
            Contender::Rs2pSsl => "rs2p-ssl",
            Contender::Rs2pWss => "rs2p-wss",
            Contender::Gossipsub => "gossipsub",
            Contender::Floodsub => "floodsub",
            Contender::Floor => "floor",
            Contender::Py2p => "py2p",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Contender::Rs2pPlain => "rs2p, Plaintext (TCP)",
            Contender::Rs2pSsl => "rs2p, SSL (TLS over TCP)",
            Contender::Rs2pWss => "rs2p, wss (WebSocket over TLS)",
            Contender::Gossipsub => "libp2p gossipsub (TCP+noise+yamux)",
            Contender::Floodsub => "libp2p floodsub (TCP+noise+yamux)",
            Contender::Floor => "floor (frame relay, no parsing)",
            Contender::Py2p => "py2p 0.7.878, process per node",
        }
    }

    /// Messages per run by default: about a second or more here.
    fn default_n(self) -> u64 {
        match self {
            Contender::Rs2pPlain | Contender::Rs2pSsl | Contender::Rs2pWss => 300_000,
            Contender::Gossipsub => 100_000,
            Contender::Floodsub => 20_000,
            Contender::Floor => 5_000_000,
            Contender::Py2p => 2_000,
        }
    }

    fn parse(s: &str) -> Option<Self> {
        ALL.into_iter().find(|c| c.key() == s)
    }
}

struct Options {
    runs: usize,
    contenders: Vec<Contender>,
    n: Vec<(Contender, u64)>,
    latency: usize,
    warmup: usize,
    stall: Duration,
    limit: Duration,
    json: Option<String>,
    python: PathBuf,
    py2p_script: PathBuf,
    py2p_window: u64,
    idle: f64,
    idle_wait: Duration,
    libp2p_window: u64,
}

const USAGE: &str = "anchors: rs2p side by side with the field (4-node line, one process)

usage: anchors [--runs R] [--only a,b,..] [--messages N] [--n NAME=N]...
               [--latency L] [--warmup W] [--stall SECS] [--limit SECS]
               [--json PATH|-] [--python PATH] [--py2p-script PATH]
               [--py2p-window K] [--libp2p-window K] [--idle PCT]
               [--idle-wait SECS] [--slow-peer-timeout SECS]

contenders: rs2p-plain rs2p-ssl rs2p-wss gossipsub floodsub floor py2p
  --runs R         rounds; every contender runs once per round (default 3)
  --only LIST      contenders to run (default: all)
  --messages N     messages per throughput run for every contender
  --n NAME=N       messages per run for one contender (defaults: rs2p 300000,
                   gossipsub 100000, floodsub 20000, floor 5000000, py2p 2000)
  --latency L      round trips with one message in flight (default 1000;
                   0: no latency runs)
  --warmup W       first latency samples not counted (default 50; py2p: 0)
  --stall SECS     a run with nothing new arriving this long is stalled (10)
  --limit SECS     a run taking longer than this is stalled (120)
  --json PATH      also write every run and the summary as JSON (- : stdout)
  --python PATH    Python with py2p 0.7.878 (default $RS2P_PYTHON, else
                   /work/venv/bin/python)
  --py2p-window K  py2p broadcasts ahead of node 3 (default 16)
  --libp2p-window K  gossipsub/floodsub: node 0 at most K messages ahead of
                   node 3 (default 0: no pacing but gossipsub's own)
  --idle PCT       before each run, wait until the machine was PCT % idle
                   over a second (default 80) ...
  --idle-wait SECS ... but no longer than this (default 30; 0: never wait)
  --slow-peer-timeout SECS  rs2p nodes' MeshBuilder::slow_peer_timeout
                   (default: rs2p's, 5 s)";

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        runs: 3,
        contenders: ALL.to_vec(),
        n: Vec::new(),
        latency: 1000,
        warmup: 50,
        stall: Duration::from_secs(10),
        limit: Duration::from_secs(120),
        json: None,
        python: std::env::var_os("RS2P_PYTHON")
            .map_or_else(|| PathBuf::from("/work/venv/bin/python"), PathBuf::from),
        py2p_script: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../py2p_line.py")),
        py2p_window: 16,
        idle: 0.8,
        idle_wait: Duration::from_secs(30),
        libp2p_window: 0,
    };
    let mut args = std::env::args().skip(1);
    let num = |v: Option<String>, what: &str| -> Result<u64, String> {
        v.ok_or(format!("{what} needs a value"))?
            .parse()
            .map_err(|e| format!("{what}: {e}"))
    };
    while let Some(a) = args.next() {
        match a.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "--runs" => o.runs = num(args.next(), "--runs")? as usize,
            "--only" => {
                let list = args.next().ok_or("--only needs a list")?;
                o.contenders = list
                    .split(',')
                    .map(|s| Contender::parse(s.trim()).ok_or(format!("no contender {s:?}")))
                    .collect::<Result<_, _>>()?;
            }
            "--messages" => {
                let n = num(args.next(), "--messages")?;
                o.n = ALL.iter().map(|&c| (c, n)).collect();
            }
            "--n" => {
                let v = args.next().ok_or("--n needs NAME=N")?;
                let (name, n) = v.split_once('=').ok_or("--n needs NAME=N")?;
                let c = Contender::parse(name).ok_or(format!("no contender {name:?}"))?;
                let n = num(Some(n.to_string()), "--n")?;
                o.n.retain(|(k, _)| *k != c);
                o.n.push((c, n));
            }
            "--latency" => o.latency = num(args.next(), "--latency")? as usize,
            "--warmup" => o.warmup = num(args.next(), "--warmup")? as usize,
            "--stall" => o.stall = Duration::from_secs(num(args.next(), "--stall")?),
            "--limit" => o.limit = Duration::from_secs(num(args.next(), "--limit")?),
            "--json" => o.json = Some(args.next().ok_or("--json needs a path")?),
            "--python" => o.python = args.next().ok_or("--python needs a path")?.into(),
            "--py2p-script" => {
                o.py2p_script = args.next().ok_or("--py2p-script needs a path")?.into();
            }
            "--idle" => o.idle = num(args.next(), "--idle")?.min(100) as f64 / 100.0,
            "--idle-wait" => o.idle_wait = Duration::from_secs(num(args.next(), "--idle-wait")?),
            "--slow-peer-timeout" => {
                let secs = num(args.next(), "--slow-peer-timeout")?;
                let _ = rs2p_line::SLOW_PEER_TIMEOUT.set(Duration::from_secs(secs.max(1)));
            }
            "--libp2p-window" => o.libp2p_window = num(args.next(), "--libp2p-window")?,
            "--py2p-window" => o.py2p_window = num(args.next(), "--py2p-window")?.max(1),
            other => return Err(format!("unknown argument {other:?}\n\n{USAGE}")),
        }
    }
    if o.runs == 0 {
        return Err("--runs must be at least 1".into());
    }
    Ok(o)
}

impl Options {
    fn n_for(&self, c: Contender) -> u64 {
        self.n
            .iter()
            .find(|(k, _)| *k == c)
            .map_or(c.default_n(), |(_, n)| *n)
    }
}

/// Runs `fut` on a fresh multi-threaded runtime (one worker per core, as
/// `#[tokio::main]` gives), then drops the runtime and whatever is left.
fn on_runtime<T>(fut: impl std::future::Future<Output = T>) -> Result<T, String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let out = rt.block_on(fut);
    rt.shutdown_timeout(Duration::from_secs(2));
    Ok(out)
}

fn throughput_run(o: &Options, c: Contender, frame: &bytes::Bytes) -> Result<Throughput, String> {
    let n = o.n_for(c);
    let (stall, limit) = (o.stall, o.limit);
    match c {
        Contender::Rs2pPlain => on_runtime(rs2p_line::throughput("Plaintext", n, stall, limit))?,
        Contender::Rs2pSsl => on_runtime(rs2p_line::throughput("SSL", n, stall, limit))?,
        Contender::Rs2pWss => on_runtime(rs2p_line::throughput("wss", n, stall, limit))?,
        Contender::Gossipsub => on_runtime(libp2p_line::throughput(
            Kind::Gossipsub,
            n,
            o.libp2p_window,
            stall,
            limit,
        ))?,
        Contender::Floodsub => on_runtime(libp2p_line::throughput(
            Kind::Floodsub,
            n,
            o.libp2p_window,
            stall,
            limit,
        ))?,
        Contender::Floor => on_runtime(floor::throughput(frame.clone(), n, stall, limit))?,
        Contender::Py2p => py2p::throughput(&o.python, &o.py2p_script, n, o.py2p_window, stall),
    }
}

fn latency_run(o: &Options, c: Contender, frame: &bytes::Bytes) -> Result<LatencyResult, String> {
    let (total, warm, stall) = (o.latency + o.warmup, o.warmup, o.stall);
    match c {
        Contender::Rs2pPlain => on_runtime(rs2p_line::latency("Plaintext", total, warm, stall))?,
        Contender::Rs2pSsl => on_runtime(rs2p_line::latency("SSL", total, warm, stall))?,
        Contender::Rs2pWss => on_runtime(rs2p_line::latency("wss", total, warm, stall))?,
        Contender::Gossipsub => {
            on_runtime(libp2p_line::latency(Kind::Gossipsub, total, warm, stall))?
        }
        Contender::Floodsub => {
            on_runtime(libp2p_line::latency(Kind::Floodsub, total, warm, stall))?
        }
        Contender::Floor => on_runtime(floor::latency(frame.clone(), total, warm, stall))?,
        Contender::Py2p => py2p::latency(&o.python, &o.py2p_script, o.latency, stall),
    }
}

/// One measured run, as reported.
struct Run {
    contender: Contender,
    round: usize,
    kind: &'static str,
    result: Result<Value, String>,
    rate: Option<f64>,
    /// Throughput runs: messages sent and delivered (distinct).
    sent: u64,
    delivered: u64,
    p50: Option<Duration>,
    p99: Option<Duration>,
    others_cores: Option<f64>,
    own_cores: Option<f64>,
    load: Option<f64>,
    /// Idle share of the machine in the second before the run.
    idle_before: Option<f64>,
}

fn us(d: Option<Duration>) -> Option<f64> {
    d.map(|d| d.as_secs_f64() * 1e6)
}

fn fmt_rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2} M/s", r / 1e6)
    } else if r >= 1e4 {
        format!("{:.1} k/s", r / 1e3)
    } else {
        format!("{r:.0} /s")
    }
}

fn fmt_us(v: Option<f64>) -> String {
    match v {
        None => "–".into(),
        Some(v) if v >= 10_000.0 => format!("{:.1} ms", v / 1000.0),
        Some(v) => format!("{v:.0} µs"),
    }
}

fn throughput_json(t: &Throughput) -> Value {
    let outcome = match &t.outcome {
        Outcome::Done { elapsed } => json!({
            "done": true,
            "elapsed_s": elapsed.as_secs_f64(),
            "msgs_per_s": t.n as f64 / elapsed.as_secs_f64(),
        }),
        Outcome::Stalled { got, after, why } => json!({
            "done": false,
            "stalled": why,
            "arrived": got,
            "after_s": after.as_secs_f64(),
        }),
    };
    let notes: serde_json::Map<String, Value> =
        t.notes.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    json!({"messages": t.n, "outcome": outcome, "delivered": t.delivered,
           "lost": t.n.saturating_sub(t.delivered), "duplicates": t.duplicates, "notes": notes})
}

fn describe(t: &Throughput) -> String {
    let mut s = match &t.outcome {
        Outcome::Done { elapsed } => format!(
            "{} msgs in {:.3} s: {}",
            t.n,
            elapsed.as_secs_f64(),
            fmt_rate(t.n as f64 / elapsed.as_secs_f64())
        ),
        Outcome::Stalled { got, after, why } => format!(
            "STALLED ({why}): {got} of {} arrived after {:.1} s",
            t.n,
            after.as_secs_f64()
        ),
    };
    if t.duplicates > 0 {
        s += &format!(", {} duplicates", t.duplicates);
    }
    for (k, v) in &t.notes {
        if *v > 0 {
            s += &format!(", {k}: {v}");
        }
    }
    s
}

/// One ratio between two contenders, taken round by round.
struct Paired {
    what: &'static str,
    a: Contender,
    b: Contender,
    per_round: Vec<Option<f64>>,
    median: Option<f64>,
}

/// rs2p Plaintext's throughput over every other contender's, SSL's and
/// wss's over Plaintext's, and each rs2p transport's latency p50 over the
/// floor's: each round's pair ran minutes apart at most, so the ratio is
/// steadier under the machine's other load than either figure.
fn paired_ratios(runs: &[Run], contenders: &[Contender], rounds: usize) -> Vec<Paired> {
    use Contender::*;
    let has = |c: Contender| contenders.contains(&c);
    let mut pairs: Vec<(&'static str, Contender, Contender)> = Vec::new();
    for b in [Gossipsub, Floodsub, Floor, Py2p] {
        pairs.push(("throughput", Rs2pPlain, b));
    }
    pairs.push(("throughput", Rs2pSsl, Rs2pPlain));
    pairs.push(("throughput", Rs2pWss, Rs2pPlain));
    for a in [Rs2pPlain, Rs2pSsl, Rs2pWss] {
        pairs.push(("latency p50", a, Floor));
    }
    pairs.push(("latency p50", Rs2pSsl, Rs2pPlain));
    pairs.push(("latency p50", Rs2pWss, Rs2pPlain));
    let figure = |c: Contender, round: usize, what: &str| -> Option<f64> {
        let r = runs.iter().find(|r| {
            r.contender == c
                && r.round == round
                && r.kind
                    == if what == "throughput" {
                        "throughput"
                    } else {
                        "latency"
                    }
        })?;
        if what == "throughput" {
            r.rate
        } else {
            us(r.p50)
        }
    };
    pairs
        .into_iter()
        .filter(|&(_, a, b)| has(a) && has(b))
        .map(|(what, a, b)| {
            let per_round: Vec<Option<f64>> = (0..rounds)
                .map(|k| Some(figure(a, k, what)? / figure(b, k, what)?))
                .collect();
            let done: Vec<f64> = per_round.iter().flatten().copied().collect();
            Paired {
                what,
                a,
                b,
                median: median(&done),
                per_round,
            }
        })
        .collect()
}

fn main() {
    let o = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let mut contenders = o.contenders.clone();
    let mut skipped = Vec::new();
    if contenders.contains(&Contender::Py2p) {
        let ok = std::process::Command::new(&o.python)
            .args(["-c", "import py2p"])
            .output()
            .is_ok_and(|out| out.status.success());
        if !ok || !o.py2p_script.exists() {
            let why = format!(
                "py2p skipped: {} cannot import py2p, or {} is missing (--python, --py2p-script)",
                o.python.display(),
                o.py2p_script.display()
            );
            eprintln!("{why}");
            skipped.push(why);
            contenders.retain(|c| *c != Contender::Py2p);
        }
    }
    let max_n = contenders.iter().map(|&c| o.n_for(c)).max().unwrap_or(1);
    let frame = match on_runtime(floor::rs2p_frame(max_n.saturating_sub(1))) {
        Ok(Ok(f)) => f,
        Ok(Err(e)) | Err(e) => {
            eprintln!("cannot encode rs2p's frame: {e}");
            std::process::exit(1);
        }
    };
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load_start = loadavg();
    eprintln!(
        "anchors: {} round(s) of {:?}; {} cores; load average {:?}; {}",
        o.runs,
        contenders.iter().map(|c| c.key()).collect::<Vec<_>>(),
        cores,
        load_start,
        env!("ANCHORS_LIBP2P_VERSIONS")
    );
    eprintln!(
        "floor frame: {} bytes (rs2p's for this message)",
        frame.len()
    );
    let mut runs: Vec<Run> = Vec::new();
    for round in 0..o.runs {
        for &c in &contenders {
            let (idle_before, _) = wait_for_idle(o.idle, o.idle_wait);
            let load = loadavg();
            let before = CpuSample::now();
            let t = throughput_run(&o, c, &frame);
            let after = CpuSample::now();
            let (others, own) = match (before, after) {
                (Some(b), Some(a)) => (Some(b.others_cores(&a)), Some(b.own_cores(&a))),
                _ => (None, None),
            };
            match &t {
                Ok(t) => eprintln!(
                    "round {} {:<10} throughput: {} (others' CPU {:.2} cores)",
                    round + 1,
                    c.key(),
                    describe(t),
                    others.unwrap_or(f64::NAN)
                ),
                Err(e) => eprintln!(
                    "round {} {:<10} throughput: FAILED: {e}",
                    round + 1,
                    c.key()
                ),
            }
            runs.push(Run {
                contender: c,
                round,
                kind: "throughput",
                rate: t.as_ref().ok().and_then(Throughput::rate),
                sent: t.as_ref().map_or(0, |t| t.n),
                delivered: t.as_ref().map_or(0, |t| t.delivered),
                result: t.as_ref().map(throughput_json).map_err(Clone::clone),
                p50: None,
                p99: None,
                others_cores: others,
                own_cores: own,
                load,
                idle_before,
            });
        }
        if o.latency == 0 {
            continue;
        }
        for &c in &contenders {
            let (idle_before, _) = wait_for_idle(o.idle, o.idle_wait);
            let load = loadavg();
            let before = CpuSample::now();
            let l = latency_run(&o, c, &frame);
            let after = CpuSample::now();
            let (others, own) = match (before, after) {
                (Some(b), Some(a)) => (Some(b.others_cores(&a)), Some(b.own_cores(&a))),
                _ => (None, None),
            };
            match &l {
                Ok(l) => eprintln!(
                    "round {} {:<10} latency: p50 {} p99 {} of {}{} (others' CPU {:.2} cores)",
                    round + 1,
                    c.key(),
                    fmt_us(us(l.p50)),
                    fmt_us(us(l.p99)),
                    l.measured,
                    l.stalled
                        .as_ref()
                        .map_or(String::new(), |s| format!(" {s}")),
                    others.unwrap_or(f64::NAN)
                ),
                Err(e) => eprintln!("round {} {:<10} latency: FAILED: {e}", round + 1, c.key()),
            }
            let ok = l.as_ref().ok().filter(|l| l.stalled.is_none());
            runs.push(Run {
                contender: c,
                round,
                kind: "latency",
                rate: None,
                sent: 0,
                delivered: 0,
                p50: ok.and_then(|l| l.p50),
                p99: ok.and_then(|l| l.p99),
                result: l
                    .as_ref()
                    .map(|l| {
                        json!({"measured": l.measured, "p50_us": us(l.p50), "p99_us": us(l.p99),
                               "stalled": l.stalled})
                    })
                    .map_err(Clone::clone),
                others_cores: others,
                own_cores: own,
                load,
                idle_before,
            });
        }
    }
    let load_end = loadavg();

    // Summary: medians over the runs that finished.
    struct Row {
        c: Contender,
        n: u64,
        done: usize,
        tried: usize,
        rate: Option<f64>,
        min: Option<f64>,
        max: Option<f64>,
        p50: Option<f64>,
        p99: Option<f64>,
        lat_done: usize,
        lat_tried: usize,
        sent: u64,
        delivered: u64,
    }
    let rows: Vec<Row> = contenders
        .iter()
        .map(|&c| {
            let tp: Vec<&Run> = runs
                .iter()
                .filter(|r| r.contender == c && r.kind == "throughput")
                .collect();
            let rates: Vec<f64> = tp.iter().filter_map(|r| r.rate).collect();
            let lat: Vec<&Run> = runs
                .iter()
                .filter(|r| r.contender == c && r.kind == "latency")
                .collect();
            let p50s: Vec<f64> = lat.iter().filter_map(|r| us(r.p50)).collect();
            let p99s: Vec<f64> = lat.iter().filter_map(|r| us(r.p99)).collect();
            Row {
                c,
                n: o.n_for(c),
                done: rates.len(),
                tried: tp.len(),
                rate: median(&rates),
                min: rates.iter().copied().reduce(f64::min),
                max: rates.iter().copied().reduce(f64::max),
                p50: median(&p50s),
                p99: median(&p99s),
                lat_done: p50s.len(),
                lat_tried: lat.len(),
                sent: tp.iter().map(|r| r.sent).sum(),
                delivered: tp.iter().map(|r| r.delivered).sum(),
            }
        })
        .collect();
    let base = rows
        .iter()
        .find(|r| r.c == Contender::Rs2pPlain)
        .and_then(|r| r.rate);
    let floor_p50 = rows
        .iter()
        .find(|r| r.c == Contender::Floor)
        .and_then(|r| r.p50);
    let others: Vec<f64> = runs.iter().filter_map(|r| r.others_cores).collect();
    let paired = paired_ratios(&runs, &contenders, o.runs);

    println!();
    println!(
        "4-node line, one process (py2p: one per node); node 0 sends a 100-byte string + counter; \
         medians of {} interleaved round(s)",
        o.runs
    );
    println!(
        "| contender | messages/run | msgs/s (median) | slowest–fastest | ÷ rs2p Plaintext | runs done | delivered/sent (lost) | latency p50 | latency p99 | p50 ÷ floor p50 |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        let ratio = match (r.rate, base) {
            (Some(a), Some(b)) => format!("{:.3}×", a / b),
            _ => "–".into(),
        };
        let lat_ratio = match (r.p50, floor_p50) {
            (Some(a), Some(b)) => format!("{:.2}×", a / b),
            _ => "–".into(),
        };
        println!(
            "| {} | {} | {} | {} | {} | {}/{} | {}/{} ({}) | {} | {} | {} |",
            r.c.label(),
            r.n,
            r.rate.map_or("stalled".into(), fmt_rate),
            match (r.min, r.max) {
                (Some(a), Some(b)) => format!("{}–{}", fmt_rate(a), fmt_rate(b)),
                _ => "–".into(),
            },
            ratio,
            r.done,
            r.tried,
            r.delivered,
            r.sent,
            r.sent.saturating_sub(r.delivered),
            fmt_us(r.p50),
            fmt_us(r.p99),
            lat_ratio,
        );
        let _ = (r.lat_done, r.lat_tried);
    }
    println!();
    println!(
        "latency: one message in flight, {} per run after {} warm-up (py2p: {} with none left out), \
         send call at node 0 to the application at node 3; medians over runs of each run's percentile",
        o.latency, o.warmup, o.latency
    );
    println!(
        "machine: {} cores; load average {} at start, {} at end; other processes used {} cores \
         during the runs (median; max {})",
        cores,
        load_start.map_or("?".into(), |l| format!("{l:.2}")),
        load_end.map_or("?".into(), |l| format!("{l:.2}")),
        median(&others).map_or("?".into(), |v| format!("{v:.2}")),
        others
            .iter()
            .copied()
            .reduce(f64::max)
            .map_or("?".into(), |v| format!("{v:.2}")),
    );
    if !paired.is_empty() {
        println!();
        println!(
            "paired ratios: each round's figure over the same round's figure, median over rounds"
        );
        println!("| ratio | median | per round |");
        println!("|---|---:|---|");
        for p in &paired {
            println!(
                "| {} {} ÷ {} | {} | {} |",
                p.what,
                p.a.key(),
                p.b.key(),
                p.median.map_or("–".into(), |m| format!("{m:.3}×")),
                p.per_round
                    .iter()
                    .map(|r| r.map_or("–".into(), |r| format!("{r:.3}")))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    println!();
    println!("built with {}", env!("ANCHORS_LIBP2P_VERSIONS"));
    for s in &skipped {
        println!("{s}");
    }

    if let Some(path) = &o.json {
        let doc = json!({
            "shape": "4-node line, node i connected to node i-1; node 0 sends 100-byte string + counter; node 3 counts",
            "rounds": o.runs,
            "latency_round_trips": o.latency,
            "latency_warmup": o.warmup,
            "floor_frame_bytes": frame.len(),
            "machine": {
                "cores": cores,
                "loadavg_start": load_start,
                "loadavg_end": load_end,
            },
            "libp2p": env!("ANCHORS_LIBP2P_VERSIONS"),
            "skipped": skipped,
            "summary": rows.iter().map(|r| json!({
                "contender": r.c.key(),
                "label": r.c.label(),
                "messages_per_run": r.n,
                "runs_done": r.done,
                "runs": r.tried,
                "msgs_per_s_median": r.rate,
                "msgs_per_s_min": r.min,
                "msgs_per_s_max": r.max,
                "ratio_to_rs2p_plain": r.rate.zip(base).map(|(a, b)| a / b),
                "latency_p50_us_median": r.p50,
                "latency_p99_us_median": r.p99,
                "latency_runs_done": r.lat_done,
                "latency_p50_ratio_to_floor": r.p50.zip(floor_p50).map(|(a, b)| a / b),
                "sent": r.sent,
                "delivered": r.delivered,
                "lost": r.sent.saturating_sub(r.delivered),
            })).collect::<Vec<_>>(),
            "paired_ratios": paired.iter().map(|p| json!({
                "what": p.what,
                "numerator": p.a.key(),
                "denominator": p.b.key(),
                "per_round": p.per_round,
                "median": p.median,
            })).collect::<Vec<_>>(),
            "runs": runs.iter().map(|r| json!({
                "contender": r.contender.key(),
                "round": r.round + 1,
                "kind": r.kind,
                "result": match &r.result { Ok(v) => v.clone(), Err(e) => json!({"error": e}) },
                "others_cores": r.others_cores,
                "own_cores": r.own_cores,
                "loadavg": r.load,
                "idle_before": r.idle_before,
            })).collect::<Vec<_>>(),
        });
        let text = serde_json::to_string_pretty(&doc).unwrap_or_default();
        if path == "-" {
            println!("{text}");
        } else if let Err(e) = std::fs::write(path, text + "\n") {
            eprintln!("cannot write {path}: {e}");
        }
    }
}
