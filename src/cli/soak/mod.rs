//! `rs2p soak`: a long run of a mesh in this process, under steady
//! broadcast load, churn and misbehaving peers, watching memory, file
//! descriptors and every delivery.
//!
//! - `ledger`: what counts as a delivery, a loss (under churn) and a
//!   duplicate, and the accounting;
//! - `hostile`: the misbehaving peers (garbage, broadcasts from the
//!   future, a resend flooder);
//! - `report`: `/proc/self` sampling, the table and the JSON.
//!
//! The mesh: `--nodes` honest nodes on 127.0.0.1, on a subnet of its own
//! (`soak-<seed>`: nodes of other meshes on this host — another soak, a
//! test — are refused at the handshake even if a remembered address of a
//! departed node now belongs to one of them), `--core` of which never
//! leave (node `i` of the core dials node `i − 1`); the others dial a
//! random core node and come and go: every `--churn-every` seconds one of
//! them stops sending, leaves 2 s later (`close()`), and a new node takes
//! its place. Every node sends keep-alives every 2 s and drops a
//! connection silent for 10 s. A random node that is not leaving
//! broadcasts `["soak", run, incarnation, seq, <16..payload random
//! bytes>]` (`run` tells this run's broadcasts from any other's)
//! `--rate` times a second. Every node's receive queue is drained into
//! the ledger.

mod args;
mod hostile;
mod ledger;
mod report;

pub use args::{SoakArgs, AFTER_HELP};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rs2p::protocol::{Protocol, Rng};
use rs2p::{packets, MeshSocket, Packet, PeerId};
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

use hostile::{Counts, HostileCounts};
use ledger::{Inc, Ledger};
use report::{NodeSample, Report, Sample, Settings};

/// Keep-alive interval and idle timeout of every soak node.
const KEEPALIVE: Duration = Duration::from_secs(2);
const IDLE: Duration = Duration::from_secs(10);
/// How long a leaving node stays, silent, before it closes.
const QUIET: Duration = Duration::from_secs(2);
/// Bound on any single operation on a node.
const OP: Duration = Duration::from_secs(10);
/// Incarnation number of the resend flooder.
const FLOODER: Inc = 0;

/// One running honest node.
struct Member {
    inc: Inc,
    node: MeshSocket,
    core: bool,
    /// Announced to leave: sends nothing more.
    leaving: bool,
}

/// The honest nodes, by slot.
#[derive(Default)]
struct Roster {
    slots: Vec<Option<Member>>,
    joins: u64,
    leaves: u64,
}

type Shared<T> = Arc<Mutex<T>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Roster {
    fn live(&self) -> impl Iterator<Item = &Member> {
        self.slots.iter().flatten()
    }

    /// A random member passing `keep`.
    fn pick(&self, rng: &mut Rng, keep: impl Fn(&Member) -> bool) -> Option<&Member> {
        let candidates: Vec<&Member> = self.live().filter(|m| keep(m)).collect();
        if candidates.is_empty() {
            return None;
        }
        Some(candidates[rng.below(candidates.len() as u64) as usize])
    }
}

/// What every node of one soak run shares.
#[derive(Clone, Debug)]
struct Run {
    /// The run's own subnet.
    protocol: Protocol,
    /// Tells this run's broadcasts from any other's.
    id: u64,
}

/// Starts a node and drains its receive queue into the ledger.
async fn start_node(inc: Inc, run: &Run, ledger: &Shared<Ledger>) -> Result<MeshSocket, String> {
    let node = MeshSocket::builder()
        .protocol(run.protocol.clone())
        .keepalive(Some(KEEPALIVE))
        .idle_timeout(Some(IDLE))
        .bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("cannot start a node on 127.0.0.1: {e}"))?;
    let (rx, ledger, run_id) = (node.clone(), ledger.clone(), run.id);
    tokio::spawn(async move {
        while let Ok(msg) = rx.next_message().await {
            let now = Instant::now();
            let p = msg.packets();
            match (
                p.first().and_then(Packet::as_str),
                p.get(1).and_then(Packet::as_u64),
                p.get(2).and_then(Packet::as_u64),
                p.get(3).and_then(Packet::as_u64),
            ) {
                (Some("soak"), Some(run), Some(origin), Some(seq)) if run == run_id => {
                    lock(&ledger).receipt(inc, origin, seq, now);
                }
                _ => lock(&ledger).foreign(),
            }
        }
    });
    Ok(node)
}

/// Dials `to`, trying three times.
async fn join(node: &MeshSocket, to: SocketAddr) -> Result<(), String> {
    let mut last = String::new();
    for _ in 0..3 {
        match timeout(OP, node.connect("127.0.0.1", to.port(), None)).await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => last = "timed out".into(),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!("cannot join the mesh at {to}: {last}"))
}

/// A random core node's address.
fn core_addr(roster: &Shared<Roster>, rng: &mut Rng) -> Option<SocketAddr> {
    lock(roster).pick(rng, |m| m.core).map(|m| m.node.addr())
}

/// Runs the soak; the exit status says whether it was clean.
pub async fn run(args: SoakArgs) -> ExitCode {
    match soak(args).await {
        Ok(report) => {
            if report.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("rs2p soak: {e}");
            ExitCode::from(2)
        }
    }
}

async fn soak(args: SoakArgs) -> Result<Report, String> {
    let started = Instant::now();
    let nodes = args.nodes as usize;
    let core = args.core.unwrap_or(nodes / 2).clamp(2, nodes);
    let duration = Duration::from_secs_f64(args.minutes * 60.0);
    let sample_every = args
        .sample_every
        .unwrap_or((duration.as_secs_f64() / 10.0).clamp(1.0, 5.0));
    let grace = Duration::from_secs_f64(args.grace);
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let settings = Settings {
        minutes: args.minutes,
        nodes,
        core,
        rate: args.rate,
        payload: args.payload as usize,
        churn_every_s: args.churn_every,
        sample_every_s: sample_every,
        grace_s: args.grace,
        hostile: !args.no_hostile,
        seed,
        warmup_s: (duration.as_secs_f64() / 4.0).min(120.0),
    };
    let mut rng = Rng::new(seed);
    let run = Run {
        protocol: Protocol::new(format!("soak-{seed:016x}"), "Plaintext"),
        id: rng.next_u64(),
    };
    let ledger: Shared<Ledger> = Arc::new(Mutex::new(Ledger::new(grace)));
    let roster: Shared<Roster> = Arc::new(Mutex::new(Roster::default()));
    let counts: Counts = Arc::new(Mutex::new(HostileCounts::default()));
    let next_inc = Arc::new(std::sync::atomic::AtomicU64::new(1));
    let new_inc = {
        let next = next_inc.clone();
        move || next.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    };

    // ---- the mesh ----------------------------------------------------------
    eprintln!(
        "rs2p soak: {nodes} nodes ({core} core) for {} min, seed {seed}",
        args.minutes
    );
    for i in 0..nodes {
        let inc = new_inc();
        let node = start_node(inc, &run, &ledger).await?;
        let target = if i == 0 {
            None
        } else if i < core {
            lock(&roster).slots[i - 1].as_ref().map(|m| m.node.addr())
        } else {
            core_addr(&roster, &mut rng)
        };
        if let Some(to) = target {
            join(&node, to).await?;
        }
        lock(&roster).slots.push(Some(Member {
            inc,
            node,
            core: i < core,
            leaving: false,
        }));
    }
    let now = Instant::now();
    for m in lock(&roster).live() {
        lock(&ledger).joined(m.inc, now, true);
    }
    let stop_load = CancellationToken::new();
    let stop_all = CancellationToken::new();
    let mut tasks = Vec::new();
    let flooder = if args.no_hostile {
        None
    } else {
        let node = start_node(FLOODER, &run, &ledger).await?;
        for k in 0..2 {
            let to = lock(&roster).slots[k].as_ref().map(|m| m.node.addr());
            if let Some(to) = to {
                join(&node, to).await?;
            }
        }
        lock(&ledger).joined(FLOODER, Instant::now(), false);
        tasks.push(tokio::spawn(hostile::resend_loop(
            node.clone(),
            counts.clone(),
            stop_load.clone(),
        )));
        Some(node)
    };
    // Let peer discovery fill the routing tables.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let t0 = Instant::now();

    // ---- load --------------------------------------------------------------
    let send_errors = Arc::new(std::sync::atomic::AtomicU64::new(0));
    {
        let (roster, ledger, stop) = (roster.clone(), ledger.clone(), stop_load.clone());
        let mut rng = rng.fork();
        let run_id = run.id;
        let period = Duration::from_secs_f64(1.0 / args.rate);
        let max_payload = args.payload;
        let send_errors = send_errors.clone();
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut seq = 0u64;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let Some((inc, node)) = lock(&roster)
                    .pick(&mut rng, |m| !m.leaving)
                    .map(|m| (m.inc, m.node.clone()))
                else {
                    continue;
                };
                seq += 1;
                let len = 16 + rng.below(max_payload - 15) as usize;
                let payload: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
                lock(&ledger).sending(inc, seq, Instant::now());
                let sent = timeout(
                    OP,
                    node.send(packets!["soak", run_id, inc, seq, Packet::bin(payload)]),
                )
                .await;
                if !matches!(sent, Ok(Ok(_))) {
                    lock(&ledger).cancel(inc, seq);
                    send_errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }));
    }

    // ---- churn ---------------------------------------------------------------
    // Every tick, one churning node is told to leave; it closes QUIET
    // later and a new node takes its slot (each in a task of its own, so
    // the ticks stay regular).
    let churn = if args.churn_every > 0.0 && core < nodes {
        let (roster, ledger, stop) = (roster.clone(), ledger.clone(), stop_load.clone());
        let mut rng = rng.fork();
        let every = Duration::from_secs_f64(args.churn_every);
        let (new_inc, run) = (new_inc.clone(), run.clone());
        Some(tokio::spawn(async move {
            let mut running = tokio::task::JoinSet::new();
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tick.tick() => {}
                }
                while let Some(done) = running.try_join_next() {
                    done.map_err(|e| format!("a churn task failed: {e}"))??;
                }
                let victim = {
                    let mut r = lock(&roster);
                    let slots: Vec<usize> = (r.slots.iter().enumerate())
                        .filter(|(_, m)| m.as_ref().is_some_and(|m| !m.core && !m.leaving))
                        .map(|(i, _)| i)
                        .collect();
                    if slots.is_empty() {
                        continue;
                    }
                    let slot = slots[rng.below(slots.len() as u64) as usize];
                    if let Some(m) = r.slots[slot].as_mut() {
                        m.leaving = true;
                    }
                    slot
                };
                let (roster, ledger, inc) = (roster.clone(), ledger.clone(), new_inc());
                let (mut rng, run) = (rng.fork(), run.clone());
                running.spawn(async move {
                    tokio::time::sleep(QUIET).await;
                    let gone = lock(&roster).slots[victim].take();
                    if let Some(m) = gone {
                        lock(&ledger).closing(m.inc, Instant::now());
                        let _ = timeout(OP, m.node.close()).await;
                        lock(&roster).leaves += 1;
                    }
                    let node = start_node(inc, &run, &ledger).await?;
                    let Some(to) = core_addr(&roster, &mut rng) else {
                        return Err("no core node left".to_owned());
                    };
                    join(&node, to).await?;
                    lock(&ledger).joined(inc, Instant::now(), true);
                    let mut r = lock(&roster);
                    r.slots[victim] = Some(Member {
                        inc,
                        node,
                        core: false,
                        leaving: false,
                    });
                    r.joins += 1;
                    Ok::<(), String>(())
                });
            }
            // Let the leaves and joins under way finish.
            while let Some(done) = running.join_next().await {
                done.map_err(|e| format!("a churn task failed: {e}"))??;
            }
            Ok(())
        }))
    } else {
        None
    };

    // ---- misbehaving peers -----------------------------------------------
    if !args.no_hostile {
        let targets = |roster: Shared<Roster>| {
            move |rng: &mut Rng| {
                lock(&roster)
                    .pick(rng, |m| !m.leaving)
                    .map(|m| m.node.addr())
            }
        };
        tasks.push(tokio::spawn(hostile::garbage_loop(
            targets(roster.clone()),
            counts.clone(),
            stop_load.clone(),
            rng.fork(),
        )));
        tasks.push(tokio::spawn(hostile::future_loop(
            run.protocol.clone(),
            targets(roster.clone()),
            counts.clone(),
            stop_load.clone(),
            rng.fork(),
        )));
    }

    // ---- the watch: connectivity and judgement every second ---------------
    {
        let (roster, ledger, stop) = (roster.clone(), ledger.clone(), stop_all.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                if let Some(why) = split(&roster).await {
                    tracing::warn!("soak: the honest nodes are split: {why}");
                    eprintln!("rs2p soak: the honest nodes are split: {why}");
                    lock(&ledger).split_seen(Instant::now());
                }
                lock(&ledger).judge_until(Instant::now());
            }
        }));
    }

    // ---- samples ------------------------------------------------------------
    let samples: Shared<Vec<Sample>> = Arc::new(Mutex::new(Vec::new()));
    let take_sample = {
        let (roster, ledger, counts, samples) = (
            roster.clone(),
            ledger.clone(),
            counts.clone(),
            samples.clone(),
        );
        move || {
            let (roster, ledger, counts, samples) = (
                roster.clone(),
                ledger.clone(),
                counts.clone(),
                samples.clone(),
            );
            async move {
                let members: Vec<(Inc, bool, MeshSocket)> = lock(&roster)
                    .live()
                    .map(|m| (m.inc, m.core, m.node.clone()))
                    .collect();
                let mut nodes = Vec::new();
                for (inc, core, node) in members {
                    if let Ok(Ok(s)) = timeout(OP, node.snapshot()).await {
                        nodes.push(NodeSample {
                            inc,
                            core,
                            peers: s.peers.len(),
                            connections: s.connections,
                            waterfall: s.waterfall,
                            addresses: s.known_addresses,
                            errors: s.errors.len(),
                        });
                    }
                }
                let (joins, leaves) = {
                    let r = lock(&roster);
                    (r.joins, r.leaves)
                };
                let (totals, pending, lives) = {
                    let l = lock(&ledger);
                    (l.totals(), l.pending(), l.lives())
                };
                let sample = Sample {
                    t: t0.elapsed().as_secs_f64(),
                    rss_kib: report::status_field("VmRSS"),
                    fds: report::open_fds(),
                    threads: report::status_field("Threads"),
                    nodes,
                    totals,
                    pending,
                    lives,
                    joins,
                    leaves,
                    hostile: *lock(&counts),
                };
                eprintln!(
                    "soak t={:>6.0}s rss={:>7.1} MiB fds={:>4} nodes={:>3} waterfall<={} addrs<={} \
                     sent={:>8} delivered={:>9} lost={} dup={} late={} foreign={} joins={}",
                    sample.t,
                    sample.rss_kib as f64 / 1024.0,
                    sample.fds,
                    sample.nodes.len(),
                    sample.nodes.iter().map(|n| n.waterfall).max().unwrap_or(0),
                    sample.nodes.iter().map(|n| n.addresses).max().unwrap_or(0),
                    sample.totals.sent,
                    sample.totals.delivered,
                    sample.totals.lost,
                    sample.totals.duplicates,
                    sample.totals.late,
                    sample.totals.foreign,
                    sample.joins
                );
                lock(&samples).push(sample);
            }
        }
    };
    {
        let (stop, take_sample) = (stop_all.clone(), take_sample.clone());
        let every = Duration::from_secs_f64(sample_every);
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => take_sample().await,
                }
            }
        }));
    }

    // ---- run, drain, report --------------------------------------------------
    let interrupted = tokio::select! {
        _ = tokio::time::sleep(duration) => false,
        r = tokio::signal::ctrl_c() => r.is_ok(),
    };
    if interrupted {
        eprintln!("rs2p soak: interrupted; draining and reporting");
    }
    stop_load.cancel();
    if let Some(churn) = churn {
        match timeout(Duration::from_secs(60), churn).await {
            Ok(Ok(Err(e))) => return Err(e),
            Ok(_) => {}
            Err(_) => return Err("the churn task did not stop".into()),
        }
    }
    // Every broadcast gets its grace, then the last sample.
    tokio::time::sleep(grace + Duration::from_millis(1500)).await;
    take_sample().await;
    stop_all.cancel();
    for t in tasks {
        let _ = timeout(OP, t).await;
    }
    let (totals, latency) = {
        let mut l = lock(&ledger);
        l.judge_all();
        (l.totals(), l.latency().clone())
    };
    let members: Vec<MeshSocket> = lock(&roster).live().map(|m| m.node.clone()).collect();
    for node in members.iter().chain(flooder.iter()) {
        let _ = timeout(OP, node.close()).await;
    }
    drop(members);
    drop(flooder);
    lock(&roster).slots.clear();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let errors = send_errors.load(std::sync::atomic::Ordering::Relaxed);
    if errors > 0 {
        eprintln!("rs2p soak: {errors} sends failed (not counted)");
    }
    let samples = std::mem::take(&mut *lock(&samples));
    let report = Report {
        settings,
        samples,
        totals,
        latency,
        elapsed_s: started.elapsed().as_secs_f64(),
        rss_after_close_kib: report::status_field("VmRSS"),
        fds_after_close: report::open_fds(),
    };
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_markdown());
    }
    Ok(report)
}

/// Whether the honest nodes' routing tables connect them (a link counts
/// when either end lists the other): `Some(description)` when they do not.
async fn split(roster: &Shared<Roster>) -> Option<String> {
    let members: Vec<(Inc, MeshSocket)> = lock(roster)
        .live()
        .map(|m| (m.inc, m.node.clone()))
        .collect();
    let index: HashMap<PeerId, Inc> = members.iter().map(|(i, n)| (n.id().clone(), *i)).collect();
    let mut vertices = Vec::new();
    let mut edges = Vec::new();
    for (inc, node) in &members {
        // A node closing meanwhile is no longer part of the mesh.
        let Ok(Ok(table)) = timeout(OP, node.routing_table()).await else {
            continue;
        };
        vertices.push(*inc as usize);
        edges.extend(
            table
                .iter()
                .filter_map(|p| index.get(&p.id))
                .map(|&j| (*inc as usize, j as usize)),
        );
    }
    let g = rs2p::sim::graph::Graph::new(vertices, edges);
    if g.is_connected() {
        None
    } else {
        Some(format!("components {:?}", g.components()))
    }
}

#[cfg(test)]
mod tests {
    use super::args::{parse_minutes, parse_nonneg, parse_positive, parse_rate};

    #[test]
    fn arguments_parse() {
        assert_eq!(parse_minutes("0.5"), Ok(0.5));
        assert!(parse_minutes("0").is_err());
        assert!(parse_minutes("-1").is_err());
        assert!(parse_minutes("nan").is_err());
        assert!(parse_rate("0").is_err());
        assert_eq!(parse_nonneg("0"), Ok(0.0));
        assert!(parse_positive("0").is_err());
    }

    #[test]
    fn soak_args_parse() {
        use clap::Parser;
        let cli = super::super::Cli::try_parse_from([
            "rs2p",
            "soak",
            "--minutes",
            "0.5",
            "--nodes",
            "8",
            "--json",
            "--no-hostile",
        ])
        .unwrap();
        let super::super::Command::Soak(args) = cli.command else {
            panic!("expected soak: {:?}", cli.command);
        };
        assert_eq!(args.minutes, 0.5);
        assert_eq!(args.nodes, 8);
        assert!(args.json && args.no_hostile);
        assert_eq!(args.churn_every, 3.0);
        for bad in [
            ["--minutes", "0"],
            ["--nodes", "2"],
            ["--rate", "-1"],
            ["--payload", "8"],
        ] {
            let mut argv = vec!["rs2p", "soak"];
            argv.extend(bad);
            assert!(super::super::Cli::try_parse_from(argv).is_err(), "{bad:?}");
        }
    }
}
