//! `rs2p simulate`: run the mesh protocol on thousands of simulated nodes
//! in virtual time (see `rs2p::sim`) and report coverage, time to full
//! coverage, transmissions per broadcast and duplicates.

use std::process::ExitCode;
use std::time::Instant;

use clap::builder::TypedValueParser;
use clap::Args;
use rs2p::protocol::Compression;
use rs2p::sim::{LinkModel, SimConfig, SimReport, Simulation, Topology, Traffic};
use serde_json::{json, Value};

use super::{durations, exit};

pub const AFTER_HELP: &str = "\
Nodes join one after another over --join-ms, each dialling --bootstrap random
earlier nodes; peer lists do the rest. After --settle-ms, --broadcasts
broadcasts go out from random live nodes; with --churn, that share of the
nodes is killed at random moments of the broadcast phase. Everything is
virtual: same arguments, same report.

Examples:
  rs2p simulate --nodes 10000
  rs2p simulate --nodes 1000 --churn 0.1 --latency 50 --loss 0.01 --seed 7
  rs2p simulate --sweep            (100 / 1,000 / 10,000 nodes, without and with churn)";

/// Options of `rs2p simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Nodes in the mesh (at least 1).
    #[arg(long, default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(1..=10_000_000).map(|v| v as usize))]
    pub nodes: usize,

    /// Seed of every random choice.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Share of the nodes killed during the broadcast phase (0 to 1).
    #[arg(long, default_value_t = 0.0, value_parser = parse_share)]
    pub churn: f64,

    /// One-way link latency, ms (0 to 3600000).
    #[arg(long, value_name = "MS", default_value_t = 20.0, value_parser = durations::sim_ms)]
    pub latency: f64,

    /// Extra one-way delay per frame, uniform in [0, MS) (0 to 3600000).
    #[arg(long, value_name = "MS", default_value_t = 5.0, value_parser = durations::sim_ms)]
    pub jitter: f64,

    /// Probability that a frame's transmission is lost (retransmitted after
    /// a 200 ms timeout, as TCP would).
    #[arg(long, default_value_t = 0.0, value_parser = parse_share)]
    pub loss: f64,

    /// Bytes per second per link direction (0: unlimited).
    #[arg(long, value_name = "BYTES_PER_S", default_value_t = 0)]
    pub bandwidth: u64,

    /// Earlier nodes each node dials when it joins.
    #[arg(long, default_value_t = 2)]
    pub bootstrap: usize,

    /// The protocol's max_outgoing (peer lists dial up to this many).
    #[arg(long, default_value_t = 4)]
    pub max_outgoing: usize,

    /// Broadcasts to measure (0: only form the mesh and report its shape
    /// and traffic).
    #[arg(long, default_value_t = 10)]
    pub broadcasts: usize,

    /// Bytes of payload per broadcast.
    #[arg(long, default_value_t = 100)]
    pub payload: usize,

    /// Compression every node offers (none, snappy, zlib, gzip, bz2, lzma).
    #[arg(long, default_value = "none", value_parser = parse_compression)]
    pub compression: Method,

    /// Virtual ms over which the nodes join (at most 86400000, a day).
    #[arg(long, value_name = "MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(0..=durations::SIM_PHASE_MAX_MS))]
    pub join_ms: u64,

    /// Virtual ms between the last join and the first broadcast (at most
    /// 86400000, a day).
    #[arg(long, value_name = "MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(0..=durations::SIM_PHASE_MAX_MS))]
    pub settle_ms: u64,

    /// Run 100, 1,000 and 10,000 nodes, without churn and with --churn (0.1
    /// if not given), and print a Markdown table.
    #[arg(long)]
    pub sweep: bool,

    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

fn parse_share(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("{text:?} is not a number between 0 and 1")),
    }
}

/// A compression method, or none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Method(pub Option<Compression>);

/// Parses `none` or a method's name.
pub fn parse_compression(text: &str) -> Result<Method, String> {
    if text == "none" {
        return Ok(Method(None));
    }
    Compression::ALL
        .into_iter()
        .find(|m| m.name() == text)
        .map(|m| Method(Some(m)))
        .ok_or_else(|| format!("unknown compression {text:?}"))
}

impl SimulateArgs {
    /// The simulation these arguments describe.
    pub fn config(&self) -> SimConfig {
        SimConfig {
            nodes: self.nodes,
            seed: self.seed,
            link: LinkModel {
                latency_ms: self.latency,
                jitter_ms: self.jitter,
                bandwidth: self.bandwidth,
                loss: self.loss,
                ..LinkModel::default()
            },
            bootstrap: self.bootstrap,
            max_outgoing: self.max_outgoing,
            compression: self.compression.0.into_iter().collect(),
            join_ms: self.join_ms,
            settle_ms: self.settle_ms,
            broadcasts: self.broadcasts,
            payload_len: self.payload,
            churn: self.churn,
            ..SimConfig::default()
        }
    }
}

/// Runs the simulation(s) and prints the report(s).
pub fn run(args: SimulateArgs) -> ExitCode {
    if args.sweep && args.broadcasts == 0 {
        return exit::usage("--sweep measures broadcasts: give --broadcasts 1 or more");
    }
    if args.sweep {
        let churn = if args.churn > 0.0 { args.churn } else { 0.1 };
        println!("{}", table_header());
        for nodes in [100, 1_000, 10_000] {
            for churn in [0.0, churn] {
                let cfg = SimConfig {
                    nodes,
                    churn,
                    ..args.config()
                };
                let started = Instant::now();
                let report = Simulation::new(cfg).run();
                println!("{}", table_row(&report, started.elapsed().as_secs_f64()));
            }
        }
        return ExitCode::SUCCESS;
    }
    let started = Instant::now();
    let report = Simulation::new(args.config()).run();
    let wall = started.elapsed().as_secs_f64();
    if args.json {
        let mut v = report_json(&report);
        v["wall_seconds"] = wall.into();
        println!("{v}");
    } else if report.config.broadcasts == 0 {
        print!("{}", formation_only(&report));
        println!("wall time: {wall:.2} s");
    } else {
        println!("{report}");
        println!("wall time: {wall:.2} s");
    }
    ExitCode::SUCCESS
}

/// The report of a run without broadcasts: the mesh it formed and what
/// forming it cost (the full report's broadcast figures would all be
/// empty).
fn formation_only(r: &SimReport) -> String {
    let c = &r.config;
    let e = &r.topology_end;
    let frames = r.setup_traffic.control_frames + r.traffic.control_frames;
    let bytes = r.setup_traffic.control_bytes + r.traffic.control_bytes;
    format!(
        "simulated {} nodes, seed {}, latency {} ms + jitter {} ms, loss {}, bandwidth {}, no broadcasts\n\
         mesh formed: {} live, degree mean {:.2} max {}, {} component(s) (largest {}), {} isolated\n\
         traffic: {} control frames, {} bytes ({:.0} B per node)\n\
         events processed: {}\n",
        c.nodes,
        c.seed,
        c.link.latency_ms,
        c.link.jitter_ms,
        c.link.loss,
        if c.link.bandwidth == 0 {
            "unlimited".to_owned()
        } else {
            format!("{} B/s", c.link.bandwidth)
        },
        e.alive,
        e.mean_degree(),
        e.max_degree,
        e.components,
        e.largest_component,
        e.isolated,
        frames,
        bytes,
        bytes as f64 / c.nodes.max(1) as f64,
        r.events
    )
}

/// The report as JSON (`--json`): the configuration, the mesh at the
/// first broadcast and at the end, traffic, the summary, events processed.
/// Without broadcasts there is no first broadcast and nothing to
/// summarise: those are null, and `traffic` is all of it.
fn report_json(r: &SimReport) -> Value {
    let c = &r.config;
    let s = &r.summary;
    let topology = |t: &Topology| {
        json!({
            "alive": t.alive, "mean_degree": t.mean_degree(), "max_degree": t.max_degree,
            "max_outgoing": t.max_outgoing, "min_outgoing": t.min_outgoing, "isolated": t.isolated,
            "asymmetric": t.asymmetric, "components": t.components,
            "largest_component": t.largest_component,
        })
    };
    let traffic = |t: &Traffic| {
        json!({
            "control_frames": t.control_frames, "control_bytes": t.control_bytes,
            "broadcast_frames": t.broadcast_frames, "broadcast_bytes": t.broadcast_bytes,
        })
    };
    let config = json!({
        "nodes": c.nodes, "seed": c.seed, "churn": c.churn,
        "latency_ms": c.link.latency_ms, "jitter_ms": c.link.jitter_ms,
        "bandwidth": c.link.bandwidth, "loss": c.link.loss,
        "bootstrap": c.bootstrap, "max_outgoing": c.max_outgoing,
        "broadcasts": c.broadcasts, "payload_len": c.payload_len,
        "compression": c.compression.iter().map(|m| m.name()).collect::<Vec<_>>(),
    });
    if c.broadcasts == 0 {
        let all = Traffic {
            control_frames: r.setup_traffic.control_frames + r.traffic.control_frames,
            control_bytes: r.setup_traffic.control_bytes + r.traffic.control_bytes,
            ..r.traffic.clone()
        };
        return json!({
            "config": config,
            "killed": r.killed,
            "topology_start": null,
            "topology_end": topology(&r.topology_end),
            "setup_traffic": null,
            "traffic": traffic(&all),
            "summary": null,
            "events": r.events,
        });
    }
    json!({
        "config": config,
        "killed": r.killed,
        "topology_start": topology(&r.topology_start),
        "topology_end": topology(&r.topology_end),
        "setup_traffic": traffic(&r.setup_traffic),
        "traffic": traffic(&r.traffic),
        "summary": {
            "coverage_mean": s.coverage_mean, "coverage_min": s.coverage_min,
            "fully_covered": s.fully_covered, "broadcasts": s.broadcasts,
            "full_coverage_ms_median": s.full_coverage_ms_median,
            "full_coverage_ms_max": s.full_coverage_ms_max,
            "latency_p50_ms": s.latency_p50_ms, "latency_p99_ms": s.latency_p99_ms,
            "transmissions_mean": s.transmissions_mean, "worst_case": s.worst_case,
            "transmissions_ratio": s.transmissions_ratio,
            "transmissions_per_node": s.transmissions_per_node,
            "duplicates_per_node": s.duplicates_per_node, "max_copies": s.max_copies,
            "repeated_deliveries": s.repeated_deliveries,
        },
        "events": r.events,
    })
}

fn table_header() -> String {
    "| nodes | churn | killed | coverage mean / min | full coverage | time to full coverage median / max | delivery p50 / p99 | transmissions per broadcast | ÷ n(n−1) | duplicates per node | repeated deliveries | mean degree | wall time |\n\
     |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        .to_owned()
}

fn table_row(r: &SimReport, wall: f64) -> String {
    let s = &r.summary;
    let ms = |v: Option<f64>| v.map_or_else(|| "–".to_owned(), |v| format!("{v:.0} ms"));
    format!(
        "| {} | {} | {} | {:.2} % / {:.2} % | {}/{} | {} / {} | {:.0} / {:.0} ms | {:.0} | {:.2e} | {:.2} | {} | {:.2} | {:.1} s |",
        r.config.nodes,
        r.config.churn,
        r.killed,
        100.0 * s.coverage_mean,
        100.0 * s.coverage_min,
        s.fully_covered,
        s.broadcasts,
        ms(s.full_coverage_ms_median),
        ms(s.full_coverage_ms_max),
        s.latency_p50_ms,
        s.latency_p99_ms,
        s.transmissions_mean,
        s.transmissions_ratio,
        s.duplicates_per_node,
        s.repeated_deliveries,
        r.topology_start.mean_degree(),
        wall
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: SimulateArgs,
    }

    #[test]
    fn flags_map_to_the_simulation() {
        let w = Wrapper::try_parse_from([
            "simulate",
            "--nodes",
            "10000",
            "--churn",
            "0.1",
            "--latency",
            "50",
            "--seed",
            "7",
            "--compression",
            "snappy",
            "--loss",
            "0.01",
        ])
        .unwrap();
        let c = w.args.config();
        assert_eq!((c.nodes, c.seed, c.churn), (10_000, 7, 0.1));
        assert_eq!((c.link.latency_ms, c.link.loss), (50.0, 0.01));
        assert_eq!(c.compression, vec![Compression::Snappy]);
        assert!(Wrapper::try_parse_from(["simulate", "--churn", "2"]).is_err());
        assert!(Wrapper::try_parse_from(["simulate", "--compression", "zip"]).is_err());
    }

    /// Without broadcasts there is nothing to average: no NaN, no negative
    /// zero, no figures about a first broadcast that never happened.
    #[test]
    fn no_broadcasts_no_nonsense() {
        let w = Wrapper::try_parse_from([
            "simulate",
            "--nodes",
            "20",
            "--broadcasts",
            "0",
            "--join-ms",
            "1000",
            "--settle-ms",
            "1000",
        ])
        .unwrap();
        let report = Simulation::new(w.args.config()).run();
        let text = formation_only(&report);
        for nonsense in ["NaN", "inf", "-0", "coverage", "first broadcast"] {
            assert!(!text.contains(nonsense), "{nonsense:?} in {text}");
        }
        assert!(text.contains("mesh formed: 20 live"), "{text}");
        let json = report_json(&report);
        assert!(
            json["summary"].is_null() && json["topology_start"].is_null(),
            "{json}"
        );
        assert!(
            json["traffic"]["control_frames"].as_u64().unwrap() > 0,
            "{json}"
        );
        assert!(!json.to_string().contains("-0.0"), "{json}");
        assert!(Wrapper::try_parse_from(["simulate", "--nodes", "0"]).is_err());
    }

    /// Same seed, same JSON (was `tests/sim.rs`, before the JSON rendering
    /// moved here from the library), and the figures land where `--json`
    /// readers look for them.
    #[test]
    fn same_seed_same_json() {
        let cfg = SimConfig {
            nodes: 50,
            seed: 42,
            join_ms: 2_000,
            settle_ms: 5_000,
            broadcasts: 10,
            broadcast_interval_ms: 200,
            drain_ms: 3_000,
            churn: 0.1,
            link: LinkModel {
                loss: 0.02,
                ..LinkModel::default()
            },
            ..SimConfig::default()
        };
        let a = Simulation::new(cfg.clone()).run();
        let b = Simulation::new(cfg).run();
        let json = report_json(&a);
        assert_eq!(json, report_json(&b));
        assert_eq!(json["config"]["nodes"], 50);
        assert_eq!(json["config"]["seed"], 42);
        assert_eq!(json["killed"], a.killed);
        assert_eq!(json["summary"]["broadcasts"], a.summary.broadcasts);
        assert_eq!(json["summary"]["fully_covered"], a.summary.fully_covered);
        assert_eq!(json["topology_start"]["alive"], a.topology_start.alive);
        assert_eq!(
            json["traffic"]["broadcast_frames"],
            a.traffic.broadcast_frames
        );
        assert_eq!(json["events"], a.events);
    }
}
