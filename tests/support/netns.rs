//! A small network lab built from Linux network namespaces (for
//! `tests/partition.rs`), and `rs2p node --json` processes run inside it
//! (`NodeProcess::rs2p_in`).
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
        for bridge in ["br0", "br1"] {
            // STP off: a port forwards as soon as it is up.
            run(&[
                "ip",
                "-n",
                &br,
                "link",
                "add",
                bridge,
                "type",
                "bridge",
                "stp_state",
                "0",
            ]);
            run(&["ip", "-n", &br, "link", "set", bridge, "up"]);
        }
        // The trunk between the two bridges: the link the partition cuts.
        run(&[
            "ip", "-n", &br, "link", "add", "tl", "type", "veth", "peer", "name", "tr",
        ]);
        run(&["ip", "-n", &br, "link", "set", "tl", "master", "br0", "up"]);
        run(&["ip", "-n", &br, "link", "set", "tr", "master", "br1", "up"]);

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
        let bind = format!("{}:0", host.ip);
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &host.ns, env!("CARGO_BIN_EXE_rs2p")])
            .args(["node", "--json", "-v", "--linger", "0", "--bind", &bind])
            .args(["--keepalive", "0.5", "--idle-timeout", "3"]);
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
