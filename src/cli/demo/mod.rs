//! `rs2p demo`: a whole mesh in one process on loopback, exercised step by
//! step and checked, with a summary a newcomer can read.
//!
//! The steps: start the nodes (each dials one earlier node; peer lists add
//! the rest), broadcast from several nodes and count deliveries per node,
//! send a reply to a node the replier is not connected to (so it must go
//! through a route request), close one node and watch the survivors heal,
//! broadcast again. Every wait is bounded; the exit status says whether
//! every check held.
//!
//! The modules, one concern each:
//! - `steps`: the steps themselves;
//! - `nodes`: the demo's nodes — starting, linking, closing, and the log of
//!   what each one's queue gave out;
//! - `tables`: snapshots of the routing tables, and waiting for them to
//!   settle;
//! - `checks`: the checks, and the broadcasts they count deliveries of;
//! - `summary`: the report printed at the end;
//! - `dot`: the final topology as a Graphviz graph, and its PNG;
//! - `progress`: the progress line on stderr.

mod checks;
mod dot;
mod nodes;
mod progress;
mod steps;
mod summary;
mod tables;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;

use super::exit;

use checks::{Broadcast, Check};
use dot::{find_program, render_png};
use nodes::{DemoNode, Received};
use progress::Progress;
use steps::{KillReport, ReplyReport};
use tables::Topology;

pub const AFTER_HELP: &str = r#"Everything runs in this process on 127.0.0.1 (ports picked by the system),
on the subnet "rs2p-demo", so it cannot disturb a real mesh. Progress goes to
stderr, the summary to stdout (to stderr with --dot -, so stdout holds only
the graph). --nodes goes from 2 to 64; for larger meshes (thousands of
nodes, churn, lossy links), see `rs2p simulate`.

Exit status: 0 every check held; 3 a check failed; 1 the graph could not be
written; 2 bad arguments (or --png without Graphviz).

Examples:
  cargo run -- demo
  rs2p demo --nodes 16 --messages 5
  rs2p demo --dot mesh.dot --png mesh.png      # --png needs Graphviz (`dot`)
  rs2p demo --dot - | dot -Tsvg > mesh.svg"#;

/// The subnet the demo nodes use.
const SUBNET: &str = "rs2p-demo";
/// Bound on each wait for the mesh to form or heal.
const FORM_TIMEOUT: Duration = Duration::from_secs(20);
/// Bound on each wait for deliveries.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// Extra time after the last expected delivery, to catch duplicates.
const SETTLE: Duration = Duration::from_millis(300);
/// How long routing tables must stay unchanged to count as settled.
const QUIET: Duration = Duration::from_millis(600);
/// Characters of a node id shown.
const SHORT: usize = 8;

/// Options of `rs2p demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Nodes in the mesh, 2 to 64 (`rs2p simulate` runs larger meshes).
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = parse_nodes)]
    pub nodes: u16,

    /// Broadcasts sent, each from a different node, 1 to 32.
    #[arg(long, value_name = "N", default_value_t = 3,
          value_parser = clap::value_parser!(u16).range(1..=32))]
    pub messages: u16,

    /// Write the final topology to FILE as a Graphviz graph (`-`: to
    /// stdout, and the summary to stderr).
    #[arg(long, value_name = "FILE")]
    pub dot: Option<PathBuf>,

    /// Render the final topology to FILE as a PNG image (needs Graphviz's
    /// `dot` program).
    #[arg(long, value_name = "FILE")]
    pub png: Option<PathBuf>,
}

/// `--nodes`: 2 to 64, and a pointer to `rs2p simulate` beyond.
fn parse_nodes(text: &str) -> Result<u16, String> {
    match text.trim().parse::<u64>() {
        Ok(n @ 2..=64) => Ok(n as u16),
        Ok(n) if n > 64 => Err(format!(
            "{n} nodes is more than the demo runs (2 to 64); for larger meshes, \
             try `rs2p simulate --nodes {n}`"
        )),
        _ => Err(format!("{text:?} is not a number of nodes from 2 to 64")),
    }
}

/// Runs the demo; exit status 0 if every check held, 3 if one failed.
pub async fn run(args: DemoArgs) -> ExitCode {
    if args.png.is_some() && find_program("dot").is_none() {
        eprintln!(
            "rs2p: --png needs Graphviz, and its `dot` program is not on PATH. Install \
             Graphviz (apt install graphviz, brew install graphviz), or write the graph with \
             --dot FILE and render it elsewhere."
        );
        return ExitCode::from(2);
    }
    let started = Instant::now();
    let mut demo = Demo::new(Progress::new(6));
    let outcome = demo.run_steps(&args).await;
    demo.progress.finish();
    demo.close_all().await;
    if let Err(e) = &outcome {
        demo.fail("the demo could run to its end", e.clone());
    }

    let mut files_ok = true;
    let dot = demo.dot_graph();
    let dot_to_stdout = args.dot.as_deref() == Some(std::path::Path::new("-"));
    if let Some(path) = args.dot.as_ref().filter(|_| !dot_to_stdout) {
        if let Err(e) = std::fs::write(path, &dot) {
            eprintln!("rs2p: cannot write {}: {e}.", path.display());
            files_ok = false;
        }
    }
    if let Some(path) = &args.png {
        if let Err(e) = render_png(&dot, path) {
            eprintln!("rs2p: cannot render {}: {e}.", path.display());
            files_ok = false;
        }
    }
    let summary = demo.summary(&args, started.elapsed());
    if dot_to_stdout {
        eprint!("{summary}");
        print!("{dot}");
    } else {
        print!("{summary}");
    }
    if !demo.checks.iter().all(|c| c.ok) {
        ExitCode::from(exit::CHECKS_FAILED)
    } else if !files_ok {
        ExitCode::from(exit::FAILURE)
    } else {
        ExitCode::SUCCESS
    }
}

/// One run of the demo: its nodes, what they received, what was sent and
/// checked, and what each step saw, for the summary and the graph.
struct Demo {
    nodes: Vec<DemoNode>,
    /// Every message every node's queue gave out.
    log: Arc<Mutex<Vec<Received>>>,
    broadcasts: Vec<Broadcast>,
    checks: Vec<Check>,
    progress: Progress,
    /// Links made by hand (`--connect` style) while starting.
    seed_links: usize,
    /// How long the mesh took to form, and its shape then.
    formed: Option<(Duration, Topology)>,
    reply: Option<ReplyReport>,
    kill: Option<KillReport>,
    /// Every link ever seen, for the graph.
    final_topology: Topology,
    killed_links: BTreeSet<(usize, usize)>,
    /// When the first node started.
    started: Instant,
}

impl Demo {
    fn new(progress: Progress) -> Self {
        Demo {
            nodes: Vec::new(),
            log: Arc::default(),
            broadcasts: Vec::new(),
            checks: Vec::new(),
            progress,
            seed_links: 0,
            formed: None,
            reply: None,
            kill: None,
            final_topology: Topology::default(),
            killed_links: BTreeSet::new(),
            started: Instant::now(),
        }
    }

    /// Node `i`'s name and short id.
    fn label(&self, i: usize) -> String {
        format!(
            "{} {}",
            self.nodes[i].name,
            self.nodes[i].socket.id().short(SHORT)
        )
    }

    /// The nodes not closed.
    fn alive(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].alive)
            .collect()
    }

    /// Runs every step; an error ends the run early.
    async fn run_steps(&mut self, args: &DemoArgs) -> Result<(), String> {
        let n = usize::from(args.nodes);
        self.start(n).await?;
        self.discover().await;
        self.broadcast_round(usize::from(args.messages)).await?;
        self.routed_reply(n).await?;
        self.kill_and_heal().await?;
        self.progress.step("summary");
        self.final_topology = self.topology().await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_range_points_to_simulate() {
        assert_eq!(parse_nodes("2"), Ok(2));
        assert_eq!(parse_nodes("64"), Ok(64));
        let e = parse_nodes("1000").unwrap_err();
        assert!(
            e.contains("2 to 64") && e.contains("rs2p simulate --nodes 1000"),
            "{e}"
        );
        assert!(parse_nodes("1").is_err() && parse_nodes("x").is_err());
    }
}
