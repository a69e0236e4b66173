//! A real network partition, and its healing, among `rs2p node` processes.
//!
//! Eight nodes run as `rs2p node --json` processes in four network
//! namespaces (two nodes each), two namespaces on each side of a trunk
//! between two bridges (see `support/netns.rs` for the lab). The test
//!
//! 1. wires the mesh (each node `--connect`s to the previous one; peer
//!    discovery does the rest) and waits until it is connected;
//! 2. cuts the trunk: packets between the sides are dropped silently;
//! 3. waits until every node has dropped its peers on the other side (TCP
//!    gives up on them) and each side's own mesh is connected;
//! 4. broadcasts from every node, and checks that every node receives
//!    every broadcast of its own side, exactly once, and nothing of the
//!    other side;
//!    The partition is then held for `PARTITION_HOLD`, while no link may
//!    cross it;
//! 5. heals the trunk; two probers, one on each side, broadcast probes
//!    until every node has received a probe from the other side, which
//!    measures the time to heal (reconnection is automatic: lost peers are
//!    redialled with backoff);
//! 6. waits until the mesh is connected again and broadcasts from every
//!    node: every node receives each of them exactly once;
//! 7. quits every node, reads its output to the end, and checks the whole
//!    record: no duplicates, no partition-time broadcast ever crossed the
//!    cut, no errors.
//!
//! Requires root and `ip netns`; without them the test fails (it does not
//! skip). Every wait is bounded.

mod support;

use std::collections::{HashMap, HashSet};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::netns::{connected, Lab};
use support::process::NodeProcess;
use support::wait::{wait_until_blocking, WAIT};

/// Bound for the mesh to form, split or heal.
const CONVERGE: Duration = Duration::from_secs(60);
/// Polling interval for conditions without an event of their own.
const POLL: Duration = Duration::from_millis(100);
/// Host namespaces per side, and nodes per host namespace.
const HOSTS_PER_SIDE: usize = 2;
const NODES_PER_HOST: usize = 2;
/// How long the partition lasts once the sides have separated: long enough
/// for the redials across the cut to back off towards their cap (10 s), so
/// the heal time measured is that of a partition that was not brief.
const PARTITION_HOLD: Duration = Duration::from_secs(20);

/// Polls `cond` until it holds, for at most `within`; panics with `what`
/// and the last reason otherwise.
fn wait_until(what: &str, within: Duration, cond: impl FnMut() -> Result<(), String>) {
    wait_until_blocking(what, within, POLL, cond);
}

/// The routing tables of every node, as indices (unknown ids are an error).
fn tables(nodes: &mut [NodeProcess], index: &HashMap<String, usize>) -> Vec<HashSet<usize>> {
    for n in nodes.iter_mut() {
        n.op(json!({"op": "peers"}));
    }
    let mut out = Vec::new();
    for n in nodes.iter_mut() {
        let ids = n.wait_peers();
        let set = ids
            .iter()
            .map(|id| {
                *index
                    .get(id)
                    .unwrap_or_else(|| panic!("{} lists an unknown peer {id}", n.name))
            })
            .collect();
        out.push(set);
    }
    out
}

/// Links both ends agree on, restricted to `members`, as adjacency over
/// positions in `members`.
fn agreed_adjacency(tables: &[HashSet<usize>], members: &[usize]) -> HashMap<usize, Vec<usize>> {
    let pos: HashMap<usize, usize> = members.iter().enumerate().map(|(p, &i)| (i, p)).collect();
    let mut adj: HashMap<usize, Vec<usize>> = HashMap::new();
    for &u in members {
        for &v in &tables[u] {
            if let Some(&pv) = pos.get(&v) {
                if tables[v].contains(&u) {
                    adj.entry(pos[&u]).or_default().push(pv);
                }
            }
        }
    }
    adj
}

fn describe(tables: &[HashSet<usize>]) -> String {
    tables
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let mut v: Vec<usize> = t.iter().copied().collect();
            v.sort();
            format!("n{i}:{v:?}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Sends `["<label>", i]` from every node, then waits until every node
/// holds the message of every other node in `expect_from(receiver)`.
fn broadcast_round(
    nodes: &mut [NodeProcess],
    label: &str,
    expect_from: impl Fn(usize) -> Vec<usize>,
) {
    for (i, n) in nodes.iter_mut().enumerate() {
        n.broadcast(json!([label, i]));
    }
    let what = format!("every node to receive its {label:?} broadcasts");
    wait_until(&what, WAIT, || {
        let mut missing = Vec::new();
        for (j, n) in nodes.iter_mut().enumerate() {
            n.pump();
            let got: HashSet<u64> = n
                .messages()
                .filter(|m| m.value["packets"][0] == label)
                .filter_map(|m| m.value["packets"][1].as_u64())
                .collect();
            for i in expect_from(j) {
                if !got.contains(&(i as u64)) {
                    missing.push(format!("n{j} lacks n{i}'s"));
                }
            }
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(missing.join(", "))
        }
    });
}

#[test]
fn partition_and_heal() {
    let started = Instant::now();
    let lab = Lab::new(HOSTS_PER_SIDE);
    let mut nodes: Vec<NodeProcess> = Vec::new();
    // side[i]: which side of the trunk node i runs on.
    let mut side: Vec<usize> = Vec::new();
    for host in &lab.hosts {
        for _ in 0..NODES_PER_HOST {
            let i = nodes.len();
            let connect: Vec<String> = nodes.last().map(|n| n.addr.clone()).into_iter().collect();
            nodes.push(NodeProcess::rs2p_in(&format!("n{i}"), host, &connect));
            side.push(host.side);
        }
    }
    let n = nodes.len();
    let index: HashMap<String, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, node)| (node.id.clone(), i))
        .collect();
    assert_eq!(index.len(), n, "two nodes share an id");
    let sides: [Vec<usize>; 2] = [0, 1].map(|s| (0..n).filter(|&i| side[i] == s).collect());
    let all: Vec<usize> = (0..n).collect();
    for (node, s) in nodes.iter().zip(&side) {
        eprintln!("{} side {s} {} {}", node.name, node.addr, node.id);
    }

    // ---- 1. the whole mesh forms ----------------------------------------
    let t = Instant::now();
    wait_until("the mesh to connect", CONVERGE, || {
        let tables = tables(&mut nodes, &index);
        let cross = (0..n).any(|u| tables[u].iter().any(|&v| side[v] != side[u]));
        let min_degree = tables.iter().map(HashSet::len).min().unwrap_or(0);
        if connected(n, &agreed_adjacency(&tables, &all)) && cross && min_degree >= 3 {
            Ok(())
        } else {
            Err(describe(&tables))
        }
    });
    let before = tables(&mut nodes, &index);
    eprintln!(
        "mesh connected after {:.2?}: {}",
        t.elapsed(),
        describe(&before)
    );

    // ---- 2. cut -----------------------------------------------------------
    assert!(
        lab.trunk_forwarding(),
        "trunk not forwarding before the cut"
    );
    lab.cut();
    let cut_at = Instant::now();
    eprintln!("trunk cut");

    // ---- 3. cross-side peers are dropped; each side's mesh is connected ---
    // Broadcasts put data on the links across the cut, whose loss TCP then
    // notices; more go out every 2 s while any cross link remains.
    let mut trigger_seq = 0u64;
    let mut next_trigger = Instant::now();
    wait_until("the sides to separate", CONVERGE, || {
        let tables = tables(&mut nodes, &index);
        let crossing: Vec<usize> = (0..n)
            .filter(|&u| tables[u].iter().any(|&v| side[v] != side[u]))
            .collect();
        let sides_ok = sides
            .iter()
            .all(|members| connected(members.len(), &agreed_adjacency(&tables, members)));
        if crossing.is_empty() && sides_ok {
            return Ok(());
        }
        if Instant::now() >= next_trigger {
            for &u in &crossing {
                nodes[u].broadcast(json!(["trigger", u, trigger_seq]));
            }
            trigger_seq += 1;
            next_trigger = Instant::now() + Duration::from_secs(2);
        }
        Err(format!(
            "still across the cut: {crossing:?}; sides connected: {sides_ok}; {}",
            describe(&tables)
        ))
    });
    let split = tables(&mut nodes, &index);
    eprintln!(
        "sides separated {:.2?} after the cut: {}",
        cut_at.elapsed(),
        describe(&split)
    );

    // ---- 4. each side still delivers to itself ----------------------------
    let side_of = side.clone();
    broadcast_round(&mut nodes, "part", |j| {
        (0..n)
            .filter(|&i| i != j && side_of[i] == side_of[j])
            .collect()
    });
    eprintln!("partitioned broadcasts delivered within each side");
    // The partition lasts; meanwhile no link may cross it.
    let hold_until = Instant::now() + PARTITION_HOLD;
    while Instant::now() < hold_until {
        let tables = tables(&mut nodes, &index);
        for u in 0..n {
            assert!(
                tables[u].iter().all(|&v| side[v] == side[u]),
                "a link crossed the cut while it was down: {}",
                describe(&tables)
            );
        }
        thread::sleep(Duration::from_millis(500));
    }
    eprintln!("partition held {:.1?} after the cut", cut_at.elapsed());

    // ---- 5. heal; probes measure the time to heal -------------------------
    lab.heal();
    let healed_at = Instant::now();
    wait_until("the trunk to forward again", WAIT, || {
        if lab.trunk_forwarding() {
            Ok(())
        } else {
            Err("bridge ports not forwarding".into())
        }
    });
    let probers = [sides[0][0], sides[1][sides[1].len() - 1]];
    let mut probe_seq = 0u64;
    let mut next_probe = Instant::now();
    // first_cross[j]: when node j first read a probe from the other side.
    let mut first_cross: Vec<Option<Instant>> = vec![None; n];
    wait_until(
        "every node to receive a probe from across the cut",
        CONVERGE,
        || {
            if Instant::now() >= next_probe {
                for &p in &probers {
                    nodes[p].broadcast(json!(["probe", p, probe_seq]));
                }
                probe_seq += 1;
                next_probe = Instant::now() + Duration::from_millis(100);
            }
            for (j, node) in nodes.iter_mut().enumerate() {
                node.pump();
                if first_cross[j].is_some() {
                    continue;
                }
                first_cross[j] = node
                    .messages()
                    .filter(|m| m.value["packets"][0] == "probe")
                    .filter(|m| {
                        let from = m.value["packets"][1].as_u64().unwrap_or(u64::MAX) as usize;
                        from < n && side[from] != side[j]
                    })
                    .map(|m| m.at)
                    .min();
            }
            let waiting: Vec<usize> = (0..n).filter(|&j| first_cross[j].is_none()).collect();
            if waiting.is_empty() {
                Ok(())
            } else {
                Err(format!("no probe from the other side yet at {waiting:?}"))
            }
        },
    );
    let all_reached = first_cross.iter().flatten().max().copied().expect("n > 0");
    let heal_time = all_reached.duration_since(healed_at);
    let (index_ref, side_ref) = (&index, &side);
    let first_rejoin = nodes
        .iter()
        .zip(&side)
        .flat_map(|(node, &my_side)| {
            node.lines()
                .iter()
                .filter(move |l| {
                    l.at >= healed_at
                        && l.value["event"] == "peer_joined"
                        && l.value["id"]
                            .as_str()
                            .and_then(|id| index_ref.get(id))
                            .is_some_and(|&p| side_ref[p] != my_side)
                })
                .map(|l| l.at)
        })
        .min();
    eprintln!(
        "HEAL TIME: {:.3} s from link-up until every node had received a probe \
         broadcast from across the cut (first cross-side peer_joined after {}; \
         {} probe rounds sent)",
        heal_time.as_secs_f64(),
        first_rejoin.map_or("none seen".to_owned(), |t| format!(
            "{:.3} s",
            t.duration_since(healed_at).as_secs_f64()
        )),
        probe_seq
    );

    // ---- 6. the mesh is whole again; every broadcast reaches everyone ----
    wait_until("the mesh to reconnect across the cut", CONVERGE, || {
        let tables = tables(&mut nodes, &index);
        let cross = (0..n).any(|u| {
            tables[u]
                .iter()
                .any(|&v| side[v] != side[u] && tables[v].contains(&u))
        });
        if cross && connected(n, &agreed_adjacency(&tables, &all)) {
            Ok(())
        } else {
            Err(describe(&tables))
        }
    });
    let after = tables(&mut nodes, &index);
    eprintln!("mesh rejoined: {}", describe(&after));
    broadcast_round(&mut nodes, "final", |j| {
        (0..n).filter(|&i| i != j).collect()
    });

    // ---- 7. the whole record ----------------------------------------------
    for node in nodes.iter_mut() {
        node.quit();
    }
    for (j, node) in nodes.iter().enumerate() {
        assert!(
            node.errors().is_empty(),
            "{} reported errors: {:?}",
            node.name,
            node.errors()
        );
        let mut counts: HashMap<(String, usize, u64), usize> = HashMap::new();
        let mut ids: HashMap<String, usize> = HashMap::new();
        for m in node.messages() {
            let v = &m.value;
            assert_eq!(v["kind"], "broadcast", "{}: {v}", node.name);
            let p = v["packets"].as_array().expect("packets");
            let label = p[0].as_str().unwrap_or_else(|| panic!("label in {v}"));
            let origin = p[1].as_u64().unwrap_or_else(|| panic!("origin in {v}")) as usize;
            assert!(origin < n, "{}: bad origin in {v}", node.name);
            assert_ne!(origin, j, "{} received its own broadcast {v}", node.name);
            assert_eq!(
                v["sender"].as_str(),
                Some(nodes[origin].id.as_str()),
                "{}: sender is not n{origin} in {v}",
                node.name
            );
            let seq = p.get(2).and_then(Value::as_u64).unwrap_or(0);
            *counts.entry((label.to_owned(), origin, seq)).or_default() += 1;
            *ids.entry(v["id"].as_str().expect("id").to_owned())
                .or_default() += 1;
            assert!(
                matches!(label, "trigger" | "part" | "probe" | "final"),
                "{}: unexpected message {v}",
                node.name
            );
        }
        for (id, c) in &ids {
            assert_eq!(*c, 1, "{}: message {id} delivered {c} times", node.name);
        }
        for ((label, origin, seq), c) in &counts {
            assert_eq!(
                *c, 1,
                "{}: {label} #{seq} of n{origin} delivered {c} times",
                node.name
            );
        }
        for i in (0..n).filter(|&i| i != j) {
            let part = counts.get(&("part".to_owned(), i, 0)).copied().unwrap_or(0);
            let want = usize::from(side[i] == side[j]);
            assert_eq!(
                part, want,
                "{}: partition-time broadcast of n{i} (side {}) delivered {part} times, \
                 expected {want} (receiver on side {})",
                node.name, side[i], side[j]
            );
            let fin = counts
                .get(&("final".to_owned(), i, 0))
                .copied()
                .unwrap_or(0);
            assert_eq!(
                fin, 1,
                "{}: final broadcast of n{i} seen {fin} times",
                node.name
            );
        }
        // Triggers sent during the partition never crossed it.
        for (label, origin, _) in counts.keys() {
            if label == "trigger" {
                assert_eq!(
                    side[*origin], side[j],
                    "{}: a trigger of n{origin} crossed the cut",
                    node.name
                );
            }
        }
    }
    eprintln!(
        "partition test passed in {:.1} s (heal time {:.3} s)",
        started.elapsed().as_secs_f64(),
        heal_time.as_secs_f64()
    );
}
