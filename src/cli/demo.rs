//! `rs2p demo`: a whole mesh in one process on loopback, exercised step by
//! step and checked, with a summary a newcomer can read.
//!
//! The steps: start the nodes (each dials one earlier node; peer lists add
//! the rest), broadcast from several nodes and count deliveries per node,
//! send a reply to a node the replier is not connected to (so it must go
//! through a route request), close one node and watch the survivors heal,
//! broadcast again. Every wait is bounded; the exit status says whether
//! every check held.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use rs2p::protocol::MessageId;
use rs2p::{packets, MeshSocket, Message, MessageKind, PeerId, Protocol};

use super::explain;

pub const AFTER_HELP: &str = r#"Everything runs in this process on 127.0.0.1 (ports picked by the system),
on the subnet "rs2p-demo", so it cannot disturb a real mesh. Progress goes to
stderr, the summary to stdout. Exit status 0 only if every check held.

Examples:
  cargo run -- demo
  rs2p demo --nodes 16 --messages 5
  rs2p demo --dot mesh.dot --png mesh.png      # --png needs Graphviz (`dot`)"#;

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
    /// Nodes in the mesh.
    #[arg(long, value_name = "N", default_value_t = 8,
          value_parser = clap::value_parser!(u16).range(2..=64))]
    pub nodes: u16,

    /// Broadcasts sent, each from a different node.
    #[arg(long, value_name = "N", default_value_t = 3,
          value_parser = clap::value_parser!(u16).range(1..=32))]
    pub messages: u16,

    /// Write the final topology to FILE as a Graphviz graph.
    #[arg(long, value_name = "FILE")]
    pub dot: Option<PathBuf>,

    /// Render the final topology to FILE as a PNG image (needs Graphviz's
    /// `dot` program).
    #[arg(long, value_name = "FILE")]
    pub png: Option<PathBuf>,
}

/// Runs the demo; exit status 0 if every check held.
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
    if let Some(path) = &args.dot {
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
    print!("{}", demo.summary(&args, started.elapsed()));
    if demo.checks.iter().all(|c| c.ok) && files_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// One node of the demo.
struct DemoNode {
    name: String,
    socket: MeshSocket,
    alive: bool,
    /// Added to set up a routed reply, not one of the `--nodes`.
    extra: bool,
}

/// One message as a node's queue gave it out.
struct Received {
    node: usize,
    id: MessageId,
    kind: MessageKind,
    sender: PeerId,
    at: Instant,
    message: Message,
}

/// A broadcast the demo sent, and who should get it.
struct Broadcast {
    label: String,
    id: MessageId,
    from: usize,
    sent: Instant,
    expected: BTreeSet<usize>,
}

/// What a broadcast's deliveries came to.
struct Tally {
    reached: usize,
    duplicates: usize,
    strays: usize,
    latencies: Vec<Duration>,
}

/// A check and whether it held.
struct Check {
    what: String,
    ok: bool,
    detail: String,
}

/// Who is connected to whom, by node index, as the routing tables say.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Topology {
    /// For each node, the nodes in its routing table.
    adj: BTreeMap<usize, BTreeSet<usize>>,
    /// `(a, b)`: `a` dialled `b`.
    dialled: BTreeSet<(usize, usize)>,
}

impl Topology {
    /// Undirected links `(low, high)` either end knows of.
    fn links(&self) -> BTreeSet<(usize, usize)> {
        self.adj
            .iter()
            .flat_map(|(&a, peers)| peers.iter().map(move |&b| (a.min(b), a.max(b))))
            .collect()
    }

    fn linked(&self, a: usize, b: usize) -> bool {
        self.adj.get(&a).is_some_and(|p| p.contains(&b))
            || self.adj.get(&b).is_some_and(|p| p.contains(&a))
    }

    /// Both ends of every link know of it.
    fn symmetric(&self) -> bool {
        self.adj.iter().all(|(&a, peers)| {
            peers
                .iter()
                .all(|b| self.adj.get(b).is_some_and(|p| p.contains(&a)))
        })
    }

    /// Every node reaches every other.
    fn connected(&self) -> bool {
        let Some(&start) = self.adj.keys().next() else {
            return true;
        };
        let mut seen = BTreeSet::from([start]);
        let mut todo = vec![start];
        while let Some(n) = todo.pop() {
            for &m in self.adj.get(&n).into_iter().flatten() {
                if self.adj.contains_key(&m) && seen.insert(m) {
                    todo.push(m);
                }
            }
        }
        seen.len() == self.adj.len()
    }

    fn settled(&self) -> bool {
        self.symmetric() && self.connected()
    }
}

/// How waiting for the routing tables to settle ended.
struct Settling {
    topology: Topology,
    /// They settled (rather than the wait timing out).
    settled: bool,
    /// When they last changed.
    last_change: Instant,
    /// When the node waited for to be gone was first listed by nobody.
    gone_at: Option<Instant>,
}

/// What the routed-reply step saw.
struct ReplyReport {
    replier: usize,
    target: usize,
    /// The replier was added for this step (every pair was connected).
    extra_node: bool,
    took: Option<Duration>,
    dials: (u64, u64),
}

/// What the kill step saw.
struct KillReport {
    victim: usize,
    links_lost: usize,
    dropped_in: Option<Duration>,
    healed_in: Option<Duration>,
    new_links: usize,
    survivors: usize,
}

struct Demo {
    nodes: Vec<DemoNode>,
    log: Arc<Mutex<Vec<Received>>>,
    broadcasts: Vec<Broadcast>,
    checks: Vec<Check>,
    progress: Progress,
    /// Links made by hand (`--connect` style) while starting.
    seed_links: usize,
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

    fn check(&mut self, what: impl Into<String>, ok: bool, detail: impl Into<String>) {
        self.checks.push(Check {
            what: what.into(),
            ok,
            detail: detail.into(),
        });
    }

    fn fail(&mut self, what: impl Into<String>, detail: impl Into<String>) {
        self.check(what, false, detail);
    }

    fn label(&self, i: usize) -> String {
        format!(
            "{} {}",
            self.nodes[i].name,
            self.nodes[i].socket.id().short(SHORT)
        )
    }

    fn alive(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].alive)
            .collect()
    }

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

    /// Starts a node on loopback and a task that logs what its queue gives.
    async fn add_node(&mut self, name: String, max_outgoing: usize) -> Result<usize, String> {
        let socket = MeshSocket::builder()
            .protocol(Protocol::new(SUBNET, "Plaintext"))
            .max_outgoing(max_outgoing)
            .bind("127.0.0.1:0")
            .await
            .map_err(|e| explain::bind_error("bind", "127.0.0.1:0", &e))?;
        let index = self.nodes.len();
        let (log, reader) = (self.log.clone(), socket.clone());
        tokio::spawn(async move {
            while let Ok(message) = reader.next_message().await {
                let received = Received {
                    node: index,
                    id: message.id(),
                    kind: message.kind(),
                    sender: message.sender().clone(),
                    at: Instant::now(),
                    message,
                };
                log.lock().unwrap_or_else(|e| e.into_inner()).push(received);
            }
        });
        tracing::info!(node = %name, id = %socket.id().short(SHORT), addr = %socket.addr(), "demo node started");
        self.nodes.push(DemoNode {
            name,
            socket,
            alive: true,
            extra: false,
        });
        Ok(index)
    }

    /// `a` dials `b` and waits for the handshake.
    async fn link(&self, a: usize, b: usize) -> Result<(), String> {
        let port = self.nodes[b].socket.addr().port();
        let addr = format!("127.0.0.1:{port}");
        let a_sock = &self.nodes[a].socket;
        match tokio::time::timeout(FORM_TIMEOUT, a_sock.connect("127.0.0.1", port, None)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!(
                "{}: {}",
                self.nodes[a].name,
                explain::connect_error(&addr, &e, a_sock.protocol())
            )),
            Err(_) => Err(format!(
                "{} could not join {} within {FORM_TIMEOUT:?}",
                self.nodes[a].name, self.nodes[b].name
            )),
        }
    }

    /// Step 1: each node dials one earlier node, in a binary tree.
    async fn start(&mut self, n: usize) -> Result<(), String> {
        self.progress.step(&format!("starting {n} nodes"));
        self.started = Instant::now();
        for i in 0..n {
            self.add_node(format!("n{i}"), 4).await?;
            if i > 0 {
                self.link(i, (i - 1) / 2).await?;
                self.seed_links += 1;
            }
            self.progress
                .update(&format!("starting {n} nodes: {}/{n} up", i + 1));
        }
        Ok(())
    }

    /// Step 2: peer lists fill in the mesh; wait until it settles.
    async fn discover(&mut self) {
        self.progress.step("discovering peers through peer lists");
        let settling = self.wait_settled(None).await;
        let topology = settling.topology;
        let took = settling.last_change.saturating_duration_since(self.started);
        if settling.settled {
            let links = topology.links().len();
            self.check(
                "the mesh formed",
                true,
                format!(
                    "{} nodes, {links} connections; every node reaches every other",
                    self.nodes.len()
                ),
            );
        } else {
            self.fail(
                "the mesh formed",
                format!(
                    "not settled within {FORM_TIMEOUT:?} (symmetric: {}, connected: {})",
                    topology.symmetric(),
                    topology.connected()
                ),
            );
        }
        self.formed = Some((took, topology));
    }

    /// Step 3: broadcasts from different nodes.
    async fn broadcast_round(&mut self, count: usize) -> Result<(), String> {
        self.progress
            .step(&format!("broadcasting {count} messages"));
        let n = self.nodes.len();
        let mut sent = Vec::new();
        for k in 0..count {
            let from = k * n / count;
            let text = format!("hello from {}", self.nodes[from].name);
            let b = self
                .broadcast(from, format!("#{}", k + 1), packets![text, k as i64])
                .await?;
            sent.push(b);
        }
        self.await_broadcasts(&sent).await;
        Ok(())
    }

    /// Sends one broadcast to every live node but the sender.
    async fn broadcast(
        &mut self,
        from: usize,
        label: String,
        packets: Vec<rs2p::Packet>,
    ) -> Result<usize, String> {
        let expected = self.alive().into_iter().filter(|&i| i != from).collect();
        let sent = Instant::now();
        let id = self.nodes[from]
            .socket
            .send(packets)
            .await
            .map_err(|e| format!("{} cannot broadcast: {e}", self.nodes[from].name))?;
        self.broadcasts.push(Broadcast {
            label,
            id,
            from,
            sent,
            expected,
        });
        Ok(self.broadcasts.len() - 1)
    }

    /// Waits until every expected node has each of these broadcasts, then
    /// a little longer for duplicates; one check per broadcast.
    async fn await_broadcasts(&mut self, which: &[usize]) {
        let want: usize = which
            .iter()
            .map(|&b| self.broadcasts[b].expected.len())
            .sum();
        let deadline = Instant::now() + DELIVERY_TIMEOUT;
        loop {
            let got: usize = which.iter().map(|&b| self.tally(b).reached).sum();
            self.progress.update(&format!("deliveries {got}/{want}"));
            if got >= want || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(SETTLE).await;
        for &b in which {
            let t = self.tally(b);
            let expected = self.broadcasts[b].expected.len();
            let ok = t.reached == expected && t.duplicates == 0 && t.strays == 0;
            let what = format!(
                "broadcast {} from {} reached every node exactly once",
                self.broadcasts[b].label, self.nodes[self.broadcasts[b].from].name
            );
            let detail = format!(
                "{}/{expected} nodes, {} duplicate(s), {} unexpected",
                t.reached, t.duplicates, t.strays
            );
            self.check(what, ok, detail);
        }
    }

    /// Deliveries of one broadcast so far.
    fn tally(&self, b: usize) -> Tally {
        let b = &self.broadcasts[b];
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        let mut first: HashMap<usize, Instant> = HashMap::new();
        let (mut duplicates, mut strays) = (0, 0);
        for r in log.iter().filter(|r| r.id == b.id) {
            if !b.expected.contains(&r.node) {
                strays += 1;
            } else if first.insert(r.node, r.at).is_some() {
                duplicates += 1;
            }
        }
        let mut latencies: Vec<Duration> = first
            .values()
            .map(|at| at.saturating_duration_since(b.sent))
            .collect();
        latencies.sort();
        Tally {
            reached: first.len(),
            duplicates,
            strays,
            latencies,
        }
    }

    /// Step 4: a reply to a node the replier is not connected to.
    async fn routed_reply(&mut self, n: usize) -> Result<(), String> {
        self.progress.step("routed reply");
        let topology = self.topology().await;
        let alive = self.alive();
        let pair = alive.iter().rev().find_map(|&a| {
            alive
                .iter()
                .find(|&&b| b != a && !topology.linked(a, b))
                .map(|&b| (a, b))
        });
        let (replier, target, extra_node) = match pair {
            Some((a, b)) => (a, b, false),
            None => {
                // Every node is connected to every other: add one that
                // dials only n0 and never fills up from peer lists.
                let x = self.add_node(format!("n{n}"), 0).await?;
                self.nodes[x].extra = true;
                self.link(x, 0).await?;
                let settling = self.wait_settled(None).await;
                if !settling.settled {
                    self.fail(
                        "the extra node joined",
                        format!(
                            "the mesh did not settle; its peers: {:?}",
                            settling.topology.adj.get(&x)
                        ),
                    );
                }
                (x, n - 1, true)
            }
        };
        let (r_name, t_name) = (
            self.nodes[replier].name.clone(),
            self.nodes[target].name.clone(),
        );
        let before = self.topology().await;
        if before.linked(replier, target) {
            self.fail(
                format!("{r_name} was not connected to {t_name} before replying"),
                "they are connected: the reply would not need a route",
            );
        }
        let dials_before = self.dials_started(replier).await;

        // The target asks; the replier answers the message it got.
        let ask = self
            .broadcast(target, "ask".into(), packets!["who is there?"])
            .await?;
        let deadline = Instant::now() + DELIVERY_TIMEOUT;
        let asked = loop {
            if let Some(m) = self.received(replier, self.broadcasts[ask].id) {
                break Some(m);
            }
            if Instant::now() >= deadline {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let Some(asked) = asked else {
            self.fail(
                format!("{r_name} got {t_name}'s question"),
                format!("nothing within {DELIVERY_TIMEOUT:?}"),
            );
            self.await_broadcasts(&[ask]).await;
            return Ok(());
        };
        let sent = Instant::now();
        let answer = format!("{r_name} answers {t_name} through a route");
        asked
            .reply(packets![answer.as_str()])
            .map_err(|e| format!("{r_name} cannot reply: {e}"))?;
        let replier_id = self.nodes[replier].socket.id().clone();
        let is_reply = |r: &Received| {
            r.node == target
                && r.sender == replier_id
                && r.message.packets().first().and_then(|p| p.as_str()) == Some(answer.as_str())
        };
        let deadline = Instant::now() + DELIVERY_TIMEOUT;
        let took = loop {
            let at = self.find(|r| is_reply(r)).map(|r| r.at);
            if let Some(at) = at {
                break Some(at.saturating_duration_since(sent));
            }
            if Instant::now() >= deadline {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        self.await_broadcasts(&[ask]).await;
        let replies: Vec<MessageKind> = {
            let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
            log.iter().filter(|r| is_reply(r)).map(|r| r.kind).collect()
        };
        let dials_after = self.dials_started(replier).await;
        let after = self.topology().await;
        self.check(
            format!("the reply from {r_name} reached {t_name} as a whisper, exactly once"),
            replies == [MessageKind::Whisper],
            match took {
                Some(t) => format!("{} in {}", describe_kinds(&replies), ms(t)),
                None => format!("nothing within {DELIVERY_TIMEOUT:?}"),
            },
        );
        self.check(
            "the reply went through a route request",
            !before.linked(replier, target)
                && dials_after > dials_before
                && after.dialled.contains(&(replier, target)),
            format!(
                "{r_name} was not connected to {t_name}; a peer answered the route request \
                 and {r_name} dialled {t_name} (dials {dials_before} -> {dials_after})"
            ),
        );
        self.reply = Some(ReplyReport {
            replier,
            target,
            extra_node,
            took,
            dials: (dials_before, dials_after),
        });
        Ok(())
    }

    /// Step 5: close the best-connected node; survivors heal.
    async fn kill_and_heal(&mut self) -> Result<(), String> {
        self.progress.step("killing a node");
        let before = self.topology().await;
        let (replier, target) = self
            .reply
            .as_ref()
            .map_or((usize::MAX, usize::MAX), |r| (r.replier, r.target));
        let degree = |i: &usize| before.adj.get(i).map_or(0, BTreeSet::len);
        let alive = self.alive();
        let victim = alive
            .iter()
            .copied()
            .filter(|&i| i != 0 && i != replier && i != target && !self.nodes[i].extra)
            .max_by_key(|i| (degree(i), std::cmp::Reverse(*i)))
            .or_else(|| alive.iter().copied().filter(|&i| i != 0).max_by_key(degree));
        let Some(victim) = victim else {
            return Err("no node to kill".into());
        };
        let v_name = self.nodes[victim].name.clone();
        self.killed_links = before
            .links()
            .into_iter()
            .filter(|&(a, b)| a == victim || b == victim)
            .collect();
        let survivors_links_before = before.links().len() - self.killed_links.len();

        let killed_at = Instant::now();
        if tokio::time::timeout(Duration::from_secs(5), self.nodes[victim].socket.close())
            .await
            .is_err()
        {
            self.fail(format!("{v_name} closed cleanly"), "close took over 5 s");
        }
        self.nodes[victim].alive = false;

        let settling = self.wait_settled(Some(victim)).await;
        let dropped_in = settling
            .gone_at
            .map(|at| at.saturating_duration_since(killed_at));
        let healed_in = settling
            .settled
            .then(|| settling.last_change.saturating_duration_since(killed_at));
        let after = settling.topology;
        let survivors = self.alive().len();
        self.check(
            format!("the survivors dropped {v_name} and the mesh healed"),
            dropped_in.is_some() && healed_in.is_some(),
            format!(
                "{survivors} nodes, {} connections; connected: {}",
                after.links().len(),
                after.connected()
            ),
        );
        self.kill = Some(KillReport {
            victim,
            links_lost: self.killed_links.len(),
            dropped_in,
            healed_in,
            new_links: after.links().len().saturating_sub(survivors_links_before),
            survivors,
        });

        // A broadcast after the kill, from a former neighbour if any.
        let from = self
            .killed_links
            .iter()
            .map(|&(a, b)| if a == victim { b } else { a })
            .find(|&i| self.nodes[i].alive)
            .unwrap_or(0);
        self.progress.update("broadcasting after the kill");
        let b = self
            .broadcast(from, "after".into(), packets![format!("{v_name} is gone")])
            .await?;
        self.await_broadcasts(&[b]).await;
        Ok(())
    }

    /// The routing tables of every live node, as node indexes.
    async fn topology(&self) -> Topology {
        let index: HashMap<&PeerId, usize> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.socket.id(), i))
            .collect();
        let mut topology = Topology::default();
        for (i, node) in self.nodes.iter().enumerate().filter(|(_, n)| n.alive) {
            let table = tokio::time::timeout(Duration::from_secs(2), node.socket.routing_table())
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default();
            let mut peers = BTreeSet::new();
            for p in table {
                if let Some(&j) = index.get(&p.id) {
                    peers.insert(j);
                    if p.outgoing {
                        topology.dialled.insert((i, j));
                    }
                }
            }
            topology.adj.insert(i, peers);
        }
        topology
    }

    /// Waits until the routing tables agree, connect everyone, do not list
    /// `gone`, and stay unchanged for `QUIET`, polling every 20 ms.
    async fn wait_settled(&mut self, gone: Option<usize>) -> Settling {
        let deadline = Instant::now() + FORM_TIMEOUT;
        let mut topology = self.topology().await;
        let mut last_change = Instant::now();
        let mut quiet_since = Instant::now();
        let listed = |t: &Topology| gone.is_some_and(|g| t.adj.values().any(|p| p.contains(&g)));
        let mut gone_at = (!listed(&topology)).then(Instant::now);
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let now = self.topology().await;
            let still_listed = listed(&now);
            if gone_at.is_none() && !still_listed {
                gone_at = Some(Instant::now());
            }
            if now != topology {
                last_change = Instant::now();
            }
            if now != topology || !now.settled() || still_listed {
                quiet_since = Instant::now();
            }
            self.progress.update(&format!(
                "{} connections, {}",
                now.links().len(),
                if now.settled() {
                    "settling"
                } else {
                    "still connecting"
                }
            ));
            topology = now;
            let settled = quiet_since.elapsed() >= QUIET;
            if settled || Instant::now() >= deadline {
                return Settling {
                    topology,
                    settled,
                    last_change,
                    gone_at,
                };
            }
        }
    }

    async fn dials_started(&self, node: usize) -> u64 {
        self.nodes[node]
            .socket
            .snapshot()
            .await
            .map_or(0, |s| s.dials_started)
    }

    /// The message with this id that `node` received, if any.
    fn received(&self, node: usize, id: MessageId) -> Option<Message> {
        self.find(|r| r.node == node && r.id == id)
            .map(|r| r.message)
    }

    fn find(&self, matches: impl Fn(&Received) -> bool) -> Option<Received> {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        log.iter().find(|r| matches(r)).map(|r| Received {
            node: r.node,
            id: r.id,
            kind: r.kind,
            sender: r.sender.clone(),
            at: r.at,
            message: r.message.clone(),
        })
    }

    /// Closes every live node, in parallel, bounded.
    async fn close_all(&mut self) {
        let mut closing = tokio::task::JoinSet::new();
        for node in self.nodes.iter_mut().filter(|n| n.alive) {
            let socket = node.socket.clone();
            closing.spawn(async move { socket.close().await });
        }
        let all = async { while closing.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(5), all)
            .await
            .is_err()
        {
            tracing::warn!("some demo nodes took over 5 s to close");
        }
    }

    /// The summary printed at the end.
    fn summary(&self, args: &DemoArgs, elapsed: Duration) -> String {
        let mut s = String::new();
        let alive = self.alive();
        let extra = self.nodes.iter().filter(|n| n.extra).count();
        let _ = writeln!(
            s,
            "rs2p demo: {} nodes{} in one process on 127.0.0.1, subnet {SUBNET:?}",
            args.nodes,
            if extra > 0 { " + 1 extra" } else { "" },
        );
        let _ = writeln!(s);

        if let Some((took, t)) = &self.formed {
            let links = t.links().len();
            let _ = writeln!(
                s,
                "mesh      {} nodes, {links} connections: {} dialled one by one, {} more found \
                 through peer lists; settled within {} of the first node's start",
                t.adj.len(),
                self.seed_links,
                links.saturating_sub(self.seed_links),
                ms(*took)
            );
        }

        let _ = writeln!(s);
        let _ = writeln!(s, "broadcasts (deliveries counted at every node)");
        let _ = writeln!(
            s,
            "  {:<6} {:<9} {:<4} {:>7} {:>10} {:>9} {:>9}",
            "msg", "id", "from", "reached", "duplicates", "p50", "max"
        );
        let mut all_latencies = Vec::new();
        for (i, b) in self.broadcasts.iter().enumerate() {
            let t = self.tally(i);
            all_latencies.extend(t.latencies.iter().copied());
            let reached = format!("{}/{}", t.reached, b.expected.len());
            let _ = writeln!(
                s,
                "  {:<6} {:<9} {:<4} {:>7} {:>10} {:>9} {:>9}",
                b.label,
                encode_hex_short(&b.id),
                self.nodes[b.from].name,
                reached,
                t.duplicates + t.strays,
                percentile(&t.latencies, 50).map_or("-".into(), ms),
                t.latencies.last().copied().map_or("-".into(), ms),
            );
        }
        all_latencies.sort();
        let _ = writeln!(
            s,
            "  latency over all {} deliveries: p50 {}, max {}",
            all_latencies.len(),
            percentile(&all_latencies, 50).map_or("-".into(), ms),
            all_latencies.last().copied().map_or("-".into(), ms),
        );

        if let Some(r) = &self.reply {
            let _ = writeln!(s);
            let how = if r.extra_node {
                format!(
                    "every pair was connected, so {} joined through n0 only (max_outgoing 0)",
                    self.nodes[r.replier].name
                )
            } else {
                "a pair of nodes not connected to each other".to_owned()
            };
            let _ = writeln!(
                s,
                "routed reply  {} -> {}: {how};",
                self.label(r.replier),
                self.label(r.target)
            );
            let _ = writeln!(
                s,
                "              {} asked the mesh for a route, dialled {} ({} -> {} dials) and \
                 whispered the reply: {}",
                self.nodes[r.replier].name,
                self.nodes[r.target].name,
                r.dials.0,
                r.dials.1,
                r.took.map_or("it never arrived".into(), |t| format!(
                    "arrived in {}",
                    ms(t)
                ))
            );
        }

        if let Some(k) = &self.kill {
            let _ = writeln!(s);
            let _ = writeln!(
                s,
                "kill      {} closed with {} connections; every survivor dropped it {}; \
                 healed {} with {} new connection(s); {} survivors",
                self.label(k.victim),
                k.links_lost,
                k.dropped_in
                    .map_or("- not within the timeout".into(), |t| format!(
                        "within {}",
                        ms(t)
                    )),
                k.healed_in
                    .map_or("- not within the timeout".into(), |t| format!(
                        "within {} of the kill",
                        ms(t)
                    )),
                k.new_links,
                k.survivors
            );
        }

        let t = &self.final_topology;
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "topology  {} live nodes, {} connections (each node: id -> the ids in its routing table)",
            alive.len(),
            t.links().len()
        );
        for (&i, peers) in &t.adj {
            let ids: Vec<String> = peers
                .iter()
                .map(|&j| self.nodes[j].socket.id().short(SHORT))
                .collect();
            let _ = writeln!(
                s,
                "  {:<4} {} -> {}",
                self.nodes[i].name,
                self.nodes[i].socket.id().short(SHORT),
                ids.join(" ")
            );
        }
        for node in self.nodes.iter().filter(|n| !n.alive) {
            let _ = writeln!(
                s,
                "  {:<4} {} (closed)",
                node.name,
                node.socket.id().short(SHORT)
            );
        }
        if let Some(path) = &args.dot {
            let _ = writeln!(s, "  graph written to {}", path.display());
        }
        if let Some(path) = &args.png {
            let _ = writeln!(s, "  image written to {}", path.display());
        }

        let _ = writeln!(s);
        let _ = writeln!(s, "checks");
        for c in &self.checks {
            let _ = writeln!(
                s,
                "  {}  {}: {}",
                if c.ok { "ok  " } else { "FAIL" },
                c.what,
                c.detail
            );
        }
        let failed = self.checks.iter().filter(|c| !c.ok).count();
        let _ = writeln!(s);
        if failed == 0 {
            let _ = writeln!(
                s,
                "PASS: all {} checks held ({})",
                self.checks.len(),
                secs(elapsed)
            );
        } else {
            let _ = writeln!(
                s,
                "FAIL: {failed} of {} checks did not hold ({})",
                self.checks.len(),
                secs(elapsed)
            );
        }
        s
    }

    /// The final topology as a Graphviz graph: closed nodes and their old
    /// links dashed, the routed reply's link in blue.
    fn dot_graph(&self) -> String {
        let t = &self.final_topology;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "// rs2p demo: {} live nodes, {} connections. Render: dot -Tpng -o mesh.png THIS_FILE",
            t.adj.len(),
            t.links().len()
        );
        let _ = writeln!(s, "graph mesh {{");
        let _ = writeln!(s, "  layout=circo;");
        let _ = writeln!(
            s,
            "  node [shape=circle, fontname=\"Helvetica\", fontsize=10];"
        );
        for (i, node) in self.nodes.iter().enumerate() {
            let style = if !node.alive {
                ", style=dashed, color=gray, fontcolor=gray"
            } else if node.extra {
                ", shape=doublecircle"
            } else {
                ""
            };
            let _ = writeln!(
                s,
                "  n{i} [label=\"{}\\n{}\"{style}];",
                node.name,
                node.socket.id().short(SHORT)
            );
        }
        let route = self
            .reply
            .as_ref()
            .map(|r| (r.replier.min(r.target), r.replier.max(r.target)));
        for (a, b) in t.links() {
            let style = if Some((a, b)) == route {
                " [color=blue, penwidth=2, label=\"route\"]"
            } else {
                ""
            };
            let _ = writeln!(s, "  n{a} -- n{b}{style};");
        }
        for (a, b) in &self.killed_links {
            let _ = writeln!(s, "  n{a} -- n{b} [style=dashed, color=gray];");
        }
        let _ = writeln!(s, "}}");
        s
    }
}

/// The progress line on stderr: rewritten in place on a terminal, one line
/// per step otherwise.
struct Progress {
    tty: bool,
    step: usize,
    steps: usize,
    title: String,
}

impl Progress {
    fn new(steps: usize) -> Self {
        Progress {
            tty: std::io::stderr().is_terminal(),
            step: 0,
            steps,
            title: String::new(),
        }
    }

    fn step(&mut self, title: &str) {
        self.step += 1;
        self.title = title.to_owned();
        if self.tty {
            self.draw(title);
        } else {
            eprintln!("[{}/{}] {title}", self.step, self.steps);
        }
    }

    fn update(&mut self, detail: &str) {
        if self.tty {
            let line = format!("{}: {detail}", self.title);
            self.draw(&line);
        }
    }

    fn draw(&self, text: &str) {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K[{}/{}] {text}", self.step, self.steps);
        let _ = err.flush();
    }

    fn finish(&mut self) {
        if self.tty {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
    }
}

fn describe_kinds(kinds: &[MessageKind]) -> String {
    match kinds {
        [] => "no reply".into(),
        [MessageKind::Whisper] => "a whisper".into(),
        [MessageKind::Broadcast] => "a broadcast (expected a whisper)".into(),
        more => format!("{} copies", more.len()),
    }
}

fn percentile(sorted: &[Duration], pct: usize) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (sorted.len() - 1) * pct / 100;
    sorted.get(rank).copied()
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn encode_hex_short(id: &MessageId) -> String {
    id.iter().take(4).map(|b| format!("{b:02x}")).collect()
}

/// The path of `program` if it is an executable file on PATH.
fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// Renders DOT text to a PNG with Graphviz.
fn render_png(dot: &str, path: &Path) -> Result<(), String> {
    use std::process::{Command, Stdio};
    let mut child = Command::new("dot")
        .arg("-Tpng")
        .arg("-o")
        .arg(path)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run Graphviz's `dot`: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(dot.as_bytes())
            .map_err(|e| format!("cannot feed `dot`: {e}"))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| format!("`dot` failed: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`dot` exited with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topology(links: &[(usize, usize)], nodes: usize) -> Topology {
        let mut t = Topology::default();
        for i in 0..nodes {
            t.adj.insert(i, BTreeSet::new());
        }
        for &(a, b) in links {
            t.adj.get_mut(&a).unwrap().insert(b);
            t.adj.get_mut(&b).unwrap().insert(a);
        }
        t
    }

    #[test]
    fn topology_connected_and_symmetric() {
        assert!(topology(&[(0, 1), (1, 2)], 3).settled());
        assert!(!topology(&[(0, 1)], 3).connected());
        let mut t = topology(&[(0, 1), (1, 2)], 3);
        t.adj.get_mut(&2).unwrap().remove(&1);
        assert!(!t.symmetric());
        assert_eq!(topology(&[(1, 0), (0, 1)], 2).links().len(), 1);
    }

    #[test]
    fn percentiles() {
        let d = |ms| Duration::from_millis(ms);
        assert_eq!(percentile(&[], 50), None);
        assert_eq!(percentile(&[d(1), d(2), d(9)], 50), Some(d(2)));
        assert_eq!(percentile(&[d(1), d(2), d(3), d(9)], 50), Some(d(2)));
    }
}
