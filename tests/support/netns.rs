//! Small network labs built from Linux network namespaces, and
//! `rs2p node --json` processes run inside them (`NodeProcess::rs2p_in`,
//! `NodeProcess::rs2p_in_with`):
//!
//! * [`Lab`] (for `tests/partition.rs`): clean links, a trunk to cut;
//! * [`ChaosLab`] (for `tests/chaos.rs`): links shaped as `tc netem`
//!   shapes them (delay, jitter, loss, reordering, a rate limit), by netem
//!   itself or, on kernels without `sch_netem`, by the userspace emulator
//!   in `linkem.rs`; and graph helpers to measure the mesh it carries
//!   ([`diameter`], [`crossings_from`]).
//!
//! # The lab
//! ```text
//!             namespace <prefix>-br (no addresses, no route anywhere)
//!        ┌──────────────────────────────────────────────────────┐
//!        │  br0 ── tl ═══════ trunk (veth) ═══════ tr ── br1    │
//!        │   │  │                                    │  │       │
//!        └───┼──┼────────────────────────────────────┼──┼───────┘
//!          veth veth                               veth veth
//!            │    │                                  │    │
//!       <p>-a  <p>-b                             <p>-c  <p>-d
//!  10.213.0.11  10.213.0.12                 10.213.0.13  10.213.0.14
//!        (side 0 = "left")                       (side 1 = "right")
//! ```
//! Every address lives only inside these namespaces (10.213.0.0/24, on-link,
//! no default route), so nothing can leave the lab and the host's own
//! network is never touched. [`Lab::cut`] takes the trunk down: both sides
//! keep their own bridge, and every packet between the sides is dropped
//! silently, as in a real partition. [`Lab::heal`] brings it back.
//!
//! Nodes run with `--keepalive 0.5 --idle-timeout 3`: a connection across
//! the cut stops hearing keep-alives and is closed by the idle timeout
//! (TCP alone would take about 15 minutes to give up on it).
//!
//! Namespace names carry a per-run prefix (`rs2p-<pid>-`); the [`Lab`]
//! deletes them on drop (also while panicking), and a new lab first
//! deletes any `rs2p-<pid>-*` namespace left by a process that no longer
//! exists (a run killed by a timeout cannot clean up after itself).

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::process::{Kind, NodeProcess};

/// The subnet every lab address comes from.
pub const SUBNET: &str = "10.213.0.0/24";

/// Runs a command to completion; panics with its output if it fails.
pub fn run(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{}`: {e}", args.join(" ")));
    if !out.status.success() {
        panic!(
            "`{}` failed ({}):\n{}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Fails the test (never skips it) unless `ip netns` works here.
pub fn require_netns() {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .stdin(Stdio::null())
        .output();
    match out {
        Err(e) => panic!(
            "this test needs `ip` from iproute2 with network namespace support \
             (`ip netns`), and cannot run it: {e}. Install iproute2 and run as root."
        ),
        Ok(o) if !o.status.success() => panic!(
            "this test needs `ip netns` (network namespaces, run as root), but \
             `ip netns list` failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        ),
        Ok(_) => {}
    }
}

/// One namespace that holds nodes.
#[derive(Clone, Debug)]
pub struct Host {
    /// The namespace name.
    pub ns: String,
    /// Its address (10.213.0.x).
    pub ip: String,
    /// Which side of the trunk it hangs on (0 or 1).
    pub side: usize,
}

/// The namespaces, bridges and trunk; deleted on drop.
#[derive(Debug)]
pub struct Lab {
    pub prefix: String,
    pub bridge_ns: String,
    pub hosts: Vec<Host>,
    created: Vec<String>,
}

impl Lab {
    /// Builds the lab with `per_side` host namespaces on each of the two
    /// sides.
    pub fn new(per_side: usize) -> Lab {
        require_netns();
        remove_stale_namespaces();
        let prefix = format!("rs2p-{}", std::process::id());
        let mut lab = Lab {
            bridge_ns: format!("{prefix}-br"),
            prefix,
            hosts: Vec::new(),
            created: Vec::new(),
        };
        lab.add_ns(&lab.bridge_ns.clone());
        let br = lab.bridge_ns.clone();
        run(&["ip", "-n", &br, "link", "set", "lo", "up"]);
        two_bridges_and_a_trunk(&br);

        for side in 0..2 {
            for k in 0..per_side {
                let index = side * per_side + k;
                let letter = (b'a' + index as u8) as char;
                let ns = format!("{}-{letter}", lab.prefix);
                let ip = format!("10.213.0.{}", 11 + index);
                lab.add_ns(&ns);
                let port = format!("p{letter}");
                // The host end is created inside the host namespace as eth0,
                // the bridge end inside the bridge namespace.
                run(&[
                    "ip", "-n", &ns, "link", "add", "eth0", "type", "veth", "peer", "name", &port,
                    "netns", &br,
                ]);
                let bridge = if side == 0 { "br0" } else { "br1" };
                run(&[
                    "ip", "-n", &br, "link", "set", &port, "master", bridge, "up",
                ]);
                run(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
                run(&[
                    "ip",
                    "-n",
                    &ns,
                    "addr",
                    "add",
                    &format!("{ip}/24"),
                    "dev",
                    "eth0",
                ]);
                run(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
                lab.hosts.push(Host { ns, ip, side });
            }
        }
        lab.check_routes();
        lab
    }

    fn add_ns(&mut self, name: &str) {
        run(&["ip", "netns", "add", name]);
        self.created.push(name.to_owned());
    }

    /// Every host namespace routes 10.213.0.0/24 on-link and nothing else.
    fn check_routes(&self) {
        for h in &self.hosts {
            let routes = run(&["ip", "-n", &h.ns, "-4", "route", "show"]);
            for line in routes.lines().filter(|l| !l.trim().is_empty()) {
                assert!(
                    line.starts_with(SUBNET),
                    "namespace {} has a route outside {SUBNET}: {line}",
                    h.ns
                );
            }
            let default = run(&["ip", "-n", &h.ns, "-4", "route", "show", "default"]);
            assert!(default.trim().is_empty(), "{} has a default route", h.ns);
        }
    }

    /// Partitions the lab: the trunk between the two bridges goes down.
    pub fn cut(&self) {
        run(&["ip", "-n", &self.bridge_ns, "link", "set", "tl", "down"]);
    }

    /// Heals the partition: the trunk comes back up.
    pub fn heal(&self) {
        run(&["ip", "-n", &self.bridge_ns, "link", "set", "tl", "up"]);
    }

    /// Whether the trunk forwards (both bridge ports in state forwarding).
    pub fn trunk_forwarding(&self) -> bool {
        let out = run(&["ip", "-n", &self.bridge_ns, "-d", "link", "show", "tr"]);
        out.contains("state forwarding") && out.contains("LOWER_UP")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in self.created.iter().rev() {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Deletes namespaces named `rs2p-<pid>-…` whose process is gone.
fn remove_stale_namespaces() {
    let Ok(list) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&list.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix("rs2p-") else {
            continue;
        };
        let Some((pid, _)) = rest.split_once('-') else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            eprintln!("removing stale namespace {name}");
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

impl NodeProcess {
    /// Starts `rs2p node --json --bind IP:0 [--connect ADDR]…` in the host's
    /// namespace (with `--keepalive 0.5 --idle-timeout 3`) and waits for its
    /// `ready` event.
    pub fn rs2p_in(name: &str, host: &Host, connect: &[String]) -> NodeProcess {
        NodeProcess::rs2p_in_with(
            name,
            host,
            connect,
            &["--keepalive", "0.5", "--idle-timeout", "3"],
        )
    }

    /// As [`rs2p_in`](NodeProcess::rs2p_in), with `extra` options instead
    /// of the keep-alive ones.
    pub fn rs2p_in_with(
        name: &str,
        host: &Host,
        connect: &[String],
        extra: &[&str],
    ) -> NodeProcess {
        let bind = format!("{}:0", host.ip);
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &host.ns, env!("CARGO_BIN_EXE_rs2p")])
            .args(["node", "--json", "-v", "--linger", "0", "--bind", &bind])
            .args(extra);
        for c in connect {
            cmd.args(["--connect", c]);
        }
        let node = NodeProcess::start(name, Kind::Rs2p, cmd);
        assert!(
            node.addr.starts_with(&format!("{}:", host.ip)),
            "{name}: bound to {} instead of {}",
            node.addr,
            host.ip
        );
        node
    }
}

/// Whether the undirected graph on `n` vertices is connected (true for 0).
pub fn connected(n: usize, adj: &HashMap<usize, Vec<usize>>) -> bool {
    let edges = adj
        .iter()
        .flat_map(|(&u, vs)| vs.iter().map(move |&v| (u, v)));
    rs2p::sim::graph::Graph::new(0..n, edges).is_connected()
}

// ---------------------------------------------------------------------------
// The chaos lab: links shaped as `tc netem` shapes them.
// ---------------------------------------------------------------------------

/// The chaos lab's subnet (on-link inside its namespaces only).
pub const CHAOS_SUBNET: &str = "10.214.0.0/24";

/// How a host's link to the bridge behaves, as netem options: everything
/// applies to what the host sends (netem on its `eth0`); the rate limit
/// applies both ways (also on the bridge's port towards the host).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkShape {
    pub delay_ms: u64,
    pub jitter_ms: u64,
    pub loss_pct: f64,
    pub reorder_pct: f64,
    /// Kilobits per second (1 Mbit/s = 1000), both ways; `None`: unlimited.
    pub rate_kbit: Option<u64>,
}

impl LinkShape {
    /// The netem options for the host's `eth0` (`delay … loss … reorder
    /// … [rate …]`), with `limit`.
    pub fn netem_args(&self) -> Vec<String> {
        let mut a = vec![
            "limit".into(),
            self.netem_limit().to_string(),
            "delay".into(),
            format!("{}ms", self.delay_ms),
            format!("{}ms", self.jitter_ms),
            "loss".into(),
            format!("{}%", self.loss_pct),
            "reorder".into(),
            format!("{}%", self.reorder_pct),
        ];
        if let Some(rate) = self.rate_kbit {
            a.extend(["rate".into(), format!("{rate}kbit")]);
        }
        a
    }

    /// netem's queue limit (packets): a deep one on unlimited links (the
    /// delay line holds ~50 ms of traffic), about 128 KB where rate-limited.
    fn netem_limit(&self) -> usize {
        match self.rate_kbit {
            Some(_) => QUEUE_BYTES / 1514,
            None => 10_000,
        }
    }

    fn up(&self) -> super::linkem::Shaping {
        super::linkem::Shaping {
            delay: Duration::from_millis(self.delay_ms),
            jitter: Duration::from_millis(self.jitter_ms),
            loss: self.loss_pct / 100.0,
            reorder: self.reorder_pct / 100.0,
            rate_bps: self.rate_kbit.map(|k| k * 1000),
            queue_bytes: QUEUE_BYTES,
        }
    }

    fn down(&self) -> super::linkem::Shaping {
        super::linkem::Shaping {
            rate_bps: self.rate_kbit.map(|k| k * 1000),
            queue_bytes: QUEUE_BYTES,
            ..super::linkem::Shaping::CLEAN
        }
    }
}

/// Backlog a rate-limited direction holds before it drops (~1 s at 1 Mbit/s).
const QUEUE_BYTES: usize = 128 * 1024;

/// What shapes the chaos lab's links.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Shaper {
    /// `tc qdisc … netem` on the veth ends; the kernel bridges the hosts.
    Netem,
    /// The userspace emulator in `linkem.rs` bridges and shapes (the kernel
    /// has no `sch_netem`); the reason netem could not be used.
    Userspace { why_not_netem: String },
}

/// Whether `tc … netem` works here: `Err` with the reason when not.
/// Probed on the loopback of a scratch namespace.
pub fn netem_available(scratch_ns: &str) -> Result<(), String> {
    let out = Command::new("tc")
        .args([
            "-n", scratch_ns, "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms",
        ])
        .stdin(Stdio::null())
        .output();
    match out {
        Err(e) => Err(format!("cannot run `tc` (iproute2): {e}")),
        Ok(o) if o.status.success() => {
            let _ = Command::new("tc")
                .args(["-n", scratch_ns, "qdisc", "del", "dev", "lo", "root"])
                .status();
            Ok(())
        }
        Ok(o) => {
            let config = kernel_config_line("CONFIG_NET_SCH_NETEM");
            let modules = kernel_config_line("CONFIG_MODULES");
            Err(format!(
                "`tc qdisc add … netem` failed: {}; kernel config: {}; {}{}",
                String::from_utf8_lossy(&o.stderr).trim(),
                config.unwrap_or_else(|| "unknown (no /proc/config.gz)".into()),
                modules.unwrap_or_else(|| "unknown".into()),
                if std::path::Path::new("/lib/modules").exists() {
                    ""
                } else {
                    "; no /lib/modules, so `modprobe sch_netem` cannot help"
                }
            ))
        }
    }
}

/// The line of the running kernel's config mentioning `key`, if readable.
fn kernel_config_line(key: &str) -> Option<String> {
    let out = Command::new("sh")
        .args(["-c", "zcat /proc/config.gz 2>/dev/null"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if text.is_empty() {
        return None;
    }
    // `CONFIG_X=…` or `# CONFIG_X is not set`.
    let name = key.trim_end_matches('=');
    Some(
        text.lines()
            .find(|l| {
                l.starts_with(&format!("{name}=")) || l.starts_with(&format!("# {name} is not set"))
            })
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{name} absent")),
    )
}

/// Host namespaces on shaped links to a bridge namespace, in two groups
/// (sides) that [`ChaosLab::cut`] separates.
///
/// ```text
///        <p>-a  <p>-b  <p>-c        <p>-d  <p>-e  <p>-f      (hosts, eth0)
///          │      │      │            │      │      │         shaped links
///   ┌──────┴──────┴──────┴─── <p>-br ─┴──────┴──────┴──────┐
///   │ netem: br0 ══ trunk ══ br1 (kernel bridges)           │
///   │ userspace: the emulator switches between the ports    │
///   └───────────────────────────────────────────────────────┘
/// ```
/// Addresses come from [`CHAOS_SUBNET`], on-link, no default route. The
/// namespaces are deleted on drop (the emulator is stopped first).
pub struct ChaosLab {
    pub prefix: String,
    pub bridge_ns: String,
    pub hosts: Vec<Host>,
    pub shapes: Vec<LinkShape>,
    pub shaper: Shaper,
    emulator: Option<super::linkem::Emulator>,
    created: Vec<String>,
}

impl ChaosLab {
    /// One host per entry of `shapes` (its link), the first `per_side[0]`
    /// on side 0, the rest on side 1. The shaper comes from
    /// `RS2P_CHAOS_LINKS` (`netem` or `userspace`), by default netem when
    /// the kernel has it and the emulator otherwise (said loudly on
    /// stderr). `RS2P_CHAOS_LINKS=netem` without netem fails.
    pub fn new(shapes: &[LinkShape], side0: usize, seed: u64) -> ChaosLab {
        require_netns();
        remove_stale_namespaces();
        let prefix = format!("rs2p-{}", std::process::id());
        let mut lab = ChaosLab {
            bridge_ns: format!("{prefix}-br"),
            prefix,
            hosts: Vec::new(),
            shapes: shapes.to_vec(),
            shaper: Shaper::Netem,
            emulator: None,
            created: Vec::new(),
        };
        let br = lab.bridge_ns.clone();
        lab.add_ns(&br);
        run(&["ip", "-n", &br, "link", "set", "lo", "up"]);
        let probe = netem_available(&br);
        lab.shaper = match (std::env::var("RS2P_CHAOS_LINKS").as_deref(), probe) {
            (Ok("netem"), Err(why)) => panic!(
                "RS2P_CHAOS_LINKS=netem, but this kernel cannot run netem: {why}. \
                 Unset RS2P_CHAOS_LINKS to shape the links with the test's userspace emulator."
            ),
            (Ok("userspace"), probe) => Shaper::Userspace {
                why_not_netem: match probe {
                    Ok(()) => "RS2P_CHAOS_LINKS=userspace".into(),
                    Err(why) => why,
                },
            },
            (Ok(other), _) if other != "netem" => {
                panic!("RS2P_CHAOS_LINKS={other:?}: expected netem or userspace")
            }
            (_, Ok(())) => Shaper::Netem,
            (_, Err(why)) => Shaper::Userspace { why_not_netem: why },
        };
        if let Shaper::Userspace { why_not_netem } = &lab.shaper {
            eprintln!(
                "\n*** chaos lab: NOT using tc netem: {why_not_netem}.\n\
                 *** The links are shaped by the test's userspace emulator (tests/support/linkem.rs)\n\
                 *** instead: same delay, jitter, loss, reordering and rate, on the same veth links.\n"
            );
        }
        let netem = lab.shaper == Shaper::Netem;
        if netem {
            two_bridges_and_a_trunk(&br);
        }
        let mut ports = Vec::new();
        for (index, shape) in shapes.iter().enumerate() {
            let side = usize::from(index >= side0);
            let letter = (b'a' + index as u8) as char;
            let ns = format!("{}-{letter}", lab.prefix);
            let ip = format!("10.214.0.{}", 11 + index);
            lab.add_ns(&ns);
            let port = format!("p{letter}");
            run(&[
                "ip", "-n", &ns, "link", "add", "eth0", "type", "veth", "peer", "name", &port,
                "netns", &br,
            ]);
            run(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
            run(&[
                "ip",
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{ip}/24"),
                "dev",
                "eth0",
            ]);
            if netem {
                let bridge = if side == 0 { "br0" } else { "br1" };
                run(&[
                    "ip", "-n", &br, "link", "set", &port, "master", bridge, "up",
                ]);
                let mut cmd = vec![
                    "tc", "-n", &ns, "qdisc", "add", "dev", "eth0", "root", "netem",
                ];
                let args = shape.netem_args();
                cmd.extend(args.iter().map(String::as_str));
                run(&cmd);
                if let Some(rate) = shape.rate_kbit {
                    let (limit, rate) = (shape.netem_limit().to_string(), format!("{rate}kbit"));
                    run(&[
                        "tc", "-n", &br, "qdisc", "add", "dev", &port, "root", "netem", "limit",
                        &limit, "rate", &rate,
                    ]);
                }
            } else {
                // One wire packet per frame (no TSO/GSO super-frames), so
                // loss and rate act on packets as on a real wire.
                run(&["ip", "-n", &ns, "link", "set", "eth0", "gso_max_segs", "1"]);
                run(&["ip", "-n", &br, "link", "set", &port, "promisc", "on", "up"]);
                ports.push(super::linkem::PortSpec {
                    name: port,
                    up: shape.up(),
                    down: shape.down(),
                    group: side,
                });
            }
            run(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
            lab.hosts.push(Host { ns, ip, side });
        }
        if !netem {
            lab.emulator = Some(super::linkem::Emulator::start(&br, ports, seed));
        }
        for h in &lab.hosts {
            let routes = run(&["ip", "-n", &h.ns, "-4", "route", "show"]);
            for line in routes.lines().filter(|l| !l.trim().is_empty()) {
                assert!(
                    line.starts_with(CHAOS_SUBNET),
                    "namespace {} has a route outside {CHAOS_SUBNET}: {line}",
                    h.ns
                );
            }
        }
        lab
    }

    fn add_ns(&mut self, name: &str) {
        run(&["ip", "netns", "add", name]);
        self.created.push(name.to_owned());
    }

    /// One line saying what shapes the links.
    pub fn shaper_name(&self) -> &'static str {
        match self.shaper {
            Shaper::Netem => "tc netem",
            Shaper::Userspace { .. } => "userspace emulator (no sch_netem in this kernel)",
        }
    }

    /// Partitions the sides: the trunk goes down (netem), or the emulator
    /// drops everything between the sides.
    pub fn cut(&self) {
        match &self.emulator {
            Some(e) => e.set_cut(true),
            None => {
                run(&["ip", "-n", &self.bridge_ns, "link", "set", "tl", "down"]);
            }
        }
    }

    /// Ends the partition.
    pub fn heal(&self) {
        match &self.emulator {
            Some(e) => e.set_cut(false),
            None => {
                run(&["ip", "-n", &self.bridge_ns, "link", "set", "tl", "up"]);
            }
        }
    }

    /// Whether frames cross between the sides.
    pub fn joined(&self) -> bool {
        match &self.emulator {
            Some(_) => true,
            None => {
                let out = run(&["ip", "-n", &self.bridge_ns, "-d", "link", "show", "tr"]);
                out.contains("state forwarding") && out.contains("LOWER_UP")
            }
        }
    }

    /// The emulator's counters (userspace shaper only).
    pub fn emulator_stats(&self) -> Option<super::linkem::Stats> {
        self.emulator.as_ref().map(|e| e.stats())
    }

    /// What the shapers did: the emulator's counters, or every netem
    /// qdisc's statistics.
    pub fn shaping_report(&self) -> String {
        if let Some(s) = self.emulator_stats() {
            return format!(
                "emulator: {} frames in, {} out, {} lost ({:.2}%), {} overflowed, {} cut, \
                 {} reordered, {} send errors, largest frame {} B",
                s.frames_in,
                s.frames_out,
                s.lost,
                s.loss_ratio() * 100.0,
                s.overflowed,
                s.cut,
                s.reordered,
                s.send_errors,
                s.max_frame
            );
        }
        let mut out = String::new();
        for h in &self.hosts {
            let q = run(&["tc", "-s", "-n", &h.ns, "qdisc", "show", "dev", "eth0"]);
            out.push_str(&format!(
                "{}: {}\n",
                h.ns,
                q.split_whitespace().collect::<Vec<_>>().join(" ")
            ));
        }
        out
    }
}

impl Drop for ChaosLab {
    fn drop(&mut self) {
        // The emulator's sockets live in the bridge namespace: stop it first.
        self.emulator = None;
        for ns in self.created.iter().rev() {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Hop counts of the shortest paths from `from` in `g` (`None`: not
/// reached), indexed as `g`'s nodes `0..n`.
pub fn bfs_hops(g: &rs2p::sim::graph::Graph, n: usize, from: usize) -> Vec<Option<usize>> {
    let mut dist = vec![None; n];
    dist[from] = Some(0);
    let mut queue = std::collections::VecDeque::from([from]);
    while let Some(u) = queue.pop_front() {
        let d = dist[u].expect("queued nodes have a distance");
        for v in g.neighbours(u) {
            if v < n && dist[v].is_none() {
                dist[v] = Some(d + 1);
                queue.push_back(v);
            }
        }
    }
    dist
}

/// The longest shortest path of `g` on nodes `0..n`, in hops; `None` if
/// it is not connected.
pub fn diameter(g: &rs2p::sim::graph::Graph, n: usize) -> Option<usize> {
    let mut max = 0;
    for u in 0..n {
        for d in bfs_hops(g, n, u) {
            max = max.max(d?);
        }
    }
    Some(max)
}

/// The least number of `crosses(u, v)` edges on any path from `from`, to
/// every node (0-1 breadth-first search): with `crosses` telling which
/// edges are shaped links, the number of link delays a flood needs.
pub fn crossings_from(
    g: &rs2p::sim::graph::Graph,
    n: usize,
    from: usize,
    crosses: impl Fn(usize, usize) -> bool,
) -> Vec<Option<usize>> {
    let mut dist: Vec<Option<usize>> = vec![None; n];
    dist[from] = Some(0);
    let mut deque = std::collections::VecDeque::from([from]);
    while let Some(u) = deque.pop_front() {
        let du = dist[u].expect("queued nodes have a distance");
        for v in g.neighbours(u) {
            if v >= n {
                continue;
            }
            let w = usize::from(crosses(u, v));
            if dist[v].is_none_or(|dv| du + w < dv) {
                dist[v] = Some(du + w);
                if w == 0 {
                    deque.push_front(v);
                } else {
                    deque.push_back(v);
                }
            }
        }
    }
    dist
}

/// In namespace `ns`: bridges `br0` and `br1` (STP off: a port forwards
/// as soon as it is up) joined by the veth trunk `tl`–`tr`, the link a
/// partition cuts.
fn two_bridges_and_a_trunk(ns: &str) {
    for bridge in ["br0", "br1"] {
        run(&[
            "ip",
            "-n",
            ns,
            "link",
            "add",
            bridge,
            "type",
            "bridge",
            "stp_state",
            "0",
        ]);
        run(&["ip", "-n", ns, "link", "set", bridge, "up"]);
    }
    run(&[
        "ip", "-n", ns, "link", "add", "tl", "type", "veth", "peer", "name", "tr",
    ]);
    run(&["ip", "-n", ns, "link", "set", "tl", "master", "br0", "up"]);
    run(&["ip", "-n", ns, "link", "set", "tr", "master", "br1", "up"]);
}
