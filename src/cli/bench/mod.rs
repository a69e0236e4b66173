//! `rs2p bench`: the mesh benchmarks: the standard workload on rs2p, the
//! floor relay and (optionally) real py2p nodes, a mesh of N nodes, and
//! resident memory with many nodes in one process. Part of the binary, not
//! of the library: it uses only rs2p's public API.
//!
//! - [`harness`]: timing (warm-up, several runs, medians).
//! - `relay` (compiled here in test builds only): one state machine wired
//!   between two peers, to measure and check the relay path (forwarded
//!   bytes are the received bytes).
//! - [`workload`]: the payload (sequence number, send time), latency
//!   histograms, per-receiver tracking, the result of a run.
//! - [`wire`]: a TCP transport that counts bytes on the wire.
//! - [`mesh`]: rs2p nodes in this process (line or mesh).
//! - [`floor`]: the floor: relays that only split frames and copy bytes.
//! - [`procs`]: one process per node, rs2p or py2p, same protocol.
//! - [`memory`]: resident memory per node and per idle connection.
//! - [`suite`]: what `rs2p bench` runs, with medians and ratios.
//! - [`sync`]: `rs2p bench --sync`: the replicated dictionary, rs2p and
//!   py2p side by side (sets through a line, a newcomer's catch-up).
//!
//! `benches/codec.rs` includes `harness.rs` and `relay.rs` with `#[path]`:
//! both use only std, `bytes` and rs2p's public API, so they compile there
//! as they do here, and their unit tests run with the binary's.

mod chord;
mod floor;
// The binary uses `median`; the rest of the timing harness serves
// `benches/codec.rs`. Test builds use all of it, so dead code is still
// caught there.
#[cfg_attr(not(test), allow(dead_code))]
mod harness;
mod memory;
mod mesh;
mod procs;
// Only `benches/codec.rs` uses the relay rig; it is compiled here for its
// unit test.
#[cfg(test)]
mod relay;
mod suite;
mod sync;
mod wire;
mod workload;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use rs2p::protocol::Compression;

use mesh::Shape;
use procs::{child_main, NodeCommand};
use suite::{run_suite, SuiteConfig};

pub const AFTER_HELP: &str = "\
The standard workload: a 4-node line on loopback TCP, node 0 broadcasts
100-byte payloads (uncompressed) with at most --window in flight; reported:
broadcasts/s delivered to every node, deliveries/s, bytes on the wire per
broadcast, latency p50/p99, loss. Side by side in the same run: the floor
(relays that only split frames and copy bytes), and with --py2p real py2p
0.7.878 nodes (bench/py2p_line.py, run with $RS2P_PYTHON, default python3).
Medians of --runs runs.

--sync runs the sync benchmarks instead: sets per second propagated to
every node of a 4-node line of SyncSockets, and the time a new node takes to
catch up with --catch-up-keys keys; with --py2p, real py2p SyncSocket nodes
(bench/py2p_sync.py) side by side. py2p as shipped does not finish a large
catch-up (its framing bugs lose the stream), so its catch-up runs once as
shipped (what arrives is shown) and then with those bugs patched
(bench/py2p_sync.py --patch-framing), which the ratio is taken against.

Examples:
  rs2p bench                          standard workload + 8-node mesh
  rs2p bench --sync --py2p            the replicated dictionary, rs2p and py2p
  rs2p bench --processes --py2p       + one process per node, + py2p
  rs2p bench --memory-nodes 1000 --no-standard --mesh-nodes 0
  rs2p bench --memory-nodes 1000 --memory-shape line --no-standard --mesh-nodes 0";

/// Where `--py2p-script` looks by default, from the root of the rs2p
/// source tree.
const PY2P_SCRIPT: &str = "bench/py2p_line.py";

/// Where `--py2p-sync-script` looks by default.
const PY2P_SYNC_SCRIPT: &str = "bench/py2p_sync.py";

/// Options of `rs2p bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Runs per measurement; medians are reported.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,

    /// Broadcasts per throughput run (rs2p and the floor).
    #[arg(long, default_value_t = 200_000)]
    pub broadcasts: u64,

    /// Most broadcasts in flight in throughput runs.
    #[arg(long, default_value_t = 8192)]
    pub window: u64,

    /// Skip the standard 4-node line workload.
    #[arg(long)]
    pub no_standard: bool,

    /// Also run the standard workload with each rs2p node in its own process.
    #[arg(long)]
    pub processes: bool,

    /// Also run the standard workload on real py2p 0.7.878 nodes.
    #[arg(long)]
    pub py2p: bool,

    /// Broadcasts per py2p throughput run (py2p rebuilds its whole
    /// waterfall set on every broadcast, so it slows down as runs grow).
    #[arg(long, default_value_t = 2_000)]
    pub py2p_broadcasts: u64,

    /// Most broadcasts in flight for py2p: it loses messages under bursts
    /// (its send path ignores partial writes); 16 was lossless here.
    #[arg(long, default_value_t = 16)]
    pub py2p_window: u64,

    /// The py2p node script (the default is where it is in a checkout of
    /// rs2p, relative to the current directory).
    #[arg(long, value_name = "PATH", default_value = PY2P_SCRIPT)]
    pub py2p_script: String,

    /// Run the sync benchmarks (the replicated dictionary) instead of the
    /// mesh workloads.
    #[arg(long)]
    pub sync: bool,

    /// --sync: keys set at node 0 of rs2p's line.
    #[arg(long, default_value_t = 50_000)]
    pub sync_sets: u64,

    /// --sync: keys set at node 0 of py2p's line (paced by --py2p-window).
    #[arg(long, default_value_t = 2_000)]
    pub py2p_sync_sets: u64,

    /// --sync: keys a new node catches up with (both systems).
    #[arg(long, default_value_t = 10_000)]
    pub catch_up_keys: u64,

    /// --sync: the py2p sync node script (relative to the current
    /// directory, like --py2p-script).
    #[arg(long, value_name = "PATH", default_value = PY2P_SYNC_SCRIPT)]
    pub py2p_sync_script: String,

    /// Nodes of the mesh workload (0 skips it).
    #[arg(long, default_value_t = 8)]
    pub mesh_nodes: usize,

    /// Nodes of the memory benchmark (0 skips it).
    #[arg(long, default_value_t = 0)]
    pub memory_nodes: usize,

    /// Topology of the memory benchmark: "line" isolates the cost of an
    /// idle connection, "mesh" shows a node's cost in a real mesh
    /// (address books included).
    #[arg(long, default_value = "mesh", value_parser = ["line", "mesh"])]
    pub memory_shape: String,

    /// Benchmark the DHT instead: set and get latency and throughput on an
    /// 8-node chord ring (with --py2p, real py2p nodes side by side, from
    /// --py2p-chord-script).
    #[arg(long)]
    pub chord: bool,

    /// Operations per chord measurement for rs2p (py2p does 40: its gets
    /// take 100 ms each, and a failed one its 5 s timeout).
    #[arg(long, default_value_t = 4000)]
    pub chord_ops: usize,

    /// The py2p side of --chord.
    #[arg(long, value_name = "PATH", default_value = "bench/py2p_chord.py")]
    pub py2p_chord_script: String,

    /// Print JSON instead of Markdown.
    #[arg(long)]
    pub json: bool,

    /// Internal: run as one benchmark node process.
    #[arg(long, hide = true)]
    pub child_node: bool,

    /// Internal: the child node's port.
    #[arg(long, hide = true, default_value_t = 0)]
    pub port: u16,

    /// Internal: the child node's compression ("none" or a method).
    #[arg(long, hide = true, default_value = "none")]
    pub compression: String,
}

/// Runs `rs2p bench`; node processes are started as `rs2p bench …`.
pub async fn run(args: BenchArgs) -> ExitCode {
    run_with(args, &["bench"]).await
}

/// Runs the benchmarks; node processes are this program with `prefix`
/// before their own arguments.
async fn run_with(args: BenchArgs, prefix: &[&str]) -> ExitCode {
    if args.child_node {
        let compression: Vec<Compression> = Compression::ALL
            .into_iter()
            .filter(|m| m.name() == args.compression)
            .collect();
        return match child_main(args.port, compression).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("rs2p bench node: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if args.chord {
        return run_chord(&args).await;
    }
    let exe = match std::env::current_exe() {
        Ok(p) => p.to_string_lossy().into_owned(),
        Err(e) => {
            eprintln!("rs2p bench: cannot find this program: {e}");
            return ExitCode::FAILURE;
        }
    };
    let child_args = prefix
        .iter()
        .map(|s| s.to_string())
        .chain(["--child-node", "--port", "{port}", "--compression", "none"].map(String::from))
        .collect();
    let python = std::env::var("RS2P_PYTHON").unwrap_or_else(|_| "python3".into());
    if args.sync {
        return run_sync(&args, python).await;
    }
    // Before any run: a missing script would otherwise fail only after the
    // rs2p measurements.
    let py2p_script = if args.py2p {
        match find_py2p_script(&args.py2p_script) {
            Ok(path) => path.to_string_lossy().into_owned(),
            Err(e) => {
                eprintln!("rs2p bench: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        String::new()
    };
    let cfg = SuiteConfig {
        runs: args.runs,
        broadcasts: args.broadcasts,
        py2p_broadcasts: args.py2p_broadcasts,
        window: args.window,
        py2p_window: args.py2p_window,
        standard: !args.no_standard,
        mesh_nodes: args.mesh_nodes,
        rs2p_process: args.processes.then_some(NodeCommand {
            program: exe,
            args: child_args,
        }),
        py2p_process: args.py2p.then(|| NodeCommand {
            program: python,
            args: vec![py2p_script, "{port}".into(), "none".into()],
        }),
        memory_nodes: args.memory_nodes,
        memory_shapes: vec![if args.memory_shape == "line" {
            Shape::Line
        } else {
            Shape::Mesh
        }],
        ..SuiteConfig::default()
    };
    let report = run_suite(&cfg).await;
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_markdown());
    }
    if report.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `rs2p bench --sync`.
async fn run_sync(args: &BenchArgs, python: String) -> ExitCode {
    let py2p = if args.py2p {
        match find_script(&args.py2p_sync_script, "py2p-sync-script", PY2P_SYNC_SCRIPT) {
            Ok(path) => Some(NodeCommand {
                program: python,
                args: vec![path.to_string_lossy().into_owned(), "{port}".into()],
            }),
            Err(e) => {
                eprintln!("rs2p bench: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    let cfg = sync::SyncBenchConfig {
        runs: args.runs,
        sets: args.sync_sets,
        py2p_sets: args.py2p_sync_sets,
        catch_up_keys: args.catch_up_keys,
        value_len: 100,
        py2p_window: args.py2p_window,
        py2p,
    };
    let report = sync::run_sync_bench(&cfg).await;
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_markdown());
    }
    if report.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `rs2p bench --chord`.
async fn run_chord(args: &BenchArgs) -> ExitCode {
    const NODES: usize = 8;
    let python = std::env::var("RS2P_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = if args.py2p {
        match find_py2p_script(&args.py2p_chord_script) {
            Ok(p) => Some(p.to_string_lossy().into_owned()),
            Err(e) => {
                eprintln!("rs2p bench: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    let mut rs = Vec::new();
    let mut py = Vec::new();
    for run in 0..args.runs.max(1) {
        match chord::rs2p_run(NODES, args.chord_ops).await {
            Ok(f) => rs.push(f),
            Err(e) => {
                eprintln!("rs2p bench --chord: rs2p run {run}: {e}");
                return ExitCode::FAILURE;
            }
        }
        if let Some(script) = &script {
            let ops = 40;
            match chord::py2p_run(&python, script, NODES, ops) {
                Ok(f) => py.push(f),
                Err(e) => {
                    eprintln!("rs2p bench --chord: py2p run {run}: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    let rs = chord::medians(&rs);
    let py = (!py.is_empty()).then(|| chord::medians(&py));
    print!(
        "{}",
        chord::table(NODES, args.runs.max(1), &rs, py.as_ref())
    );
    ExitCode::SUCCESS
}

/// The py2p node script at `path` (relative to the current directory),
/// made absolute; an error that says what to do if it is not there.
fn find_py2p_script(path: &str) -> Result<PathBuf, String> {
    find_script(path, "py2p-script", PY2P_SCRIPT)
}

/// As [`find_py2p_script`], for the script that `--FLAG` names, which is
/// `default` in the rs2p repository.
fn find_script(path: &str, flag: &str, default: &str) -> Result<PathBuf, String> {
    let absolute = std::path::absolute(Path::new(path))
        .map_err(|e| format!("cannot resolve the py2p node script {path:?}: {e}"))?;
    if absolute.is_file() {
        Ok(absolute)
    } else {
        Err(format!(
            "no py2p node script at {} ({path:?} from the current directory); \
             run from the root of the rs2p source tree, or pass \
             --{flag} PATH (the script is {default} in the rs2p repository)",
            absolute.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: BenchArgs,
    }

    #[test]
    fn flags_parse() {
        let w = Wrapper::try_parse_from(["bench", "--processes", "--py2p", "--runs", "5"]).unwrap();
        assert!(w.args.processes && w.args.py2p && !w.args.child_node);
        assert_eq!(w.args.runs, 5);
        assert_eq!(w.args.mesh_nodes, 8);
        assert!(w.args.py2p_script.ends_with("bench/py2p_line.py"));
        assert_eq!(
            w.args.py2p_script, PY2P_SCRIPT,
            "relative, not a build path"
        );
        let child = [
            "bench",
            "--child-node",
            "--port",
            "4444",
            "--compression",
            "none",
        ];
        let w = Wrapper::try_parse_from(child).unwrap();
        assert!(w.args.child_node);
        assert_eq!(w.args.port, 4444);
    }

    #[test]
    fn help_has_no_build_paths() {
        use clap::CommandFactory;
        let help = Wrapper::command().render_long_help().to_string();
        assert!(help.contains("[default: bench/py2p_line.py]"), "{help}");
        assert!(!help.contains(env!("CARGO_MANIFEST_DIR")), "{help}");
    }

    #[test]
    fn py2p_script_is_found_or_explained() {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/py2p_line.py");
        let found = find_py2p_script(script).unwrap();
        assert!(found.is_absolute() && found.ends_with(PY2P_SCRIPT));
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/py2p_sync.py");
        let found = find_script(script, "py2p-sync-script", PY2P_SYNC_SCRIPT).unwrap();
        assert!(found.ends_with(PY2P_SYNC_SCRIPT));
        let e = find_script("nowhere.py", "py2p-sync-script", PY2P_SYNC_SCRIPT).unwrap_err();
        assert!(
            e.contains("--py2p-sync-script") && e.contains(PY2P_SYNC_SCRIPT),
            "{e}"
        );
        let e = find_py2p_script("no/such/dir/py2p_line.py").unwrap_err();
        assert!(
            e.contains("no/such/dir/py2p_line.py") && e.contains("--py2p-script"),
            "{e}"
        );
    }
}
