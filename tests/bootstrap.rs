//! Finding a network through seeds (`rs2p::bootstrap`, `rs2p seed`,
//! `--bootstrap`): five rs2p nodes that know only a seed form one mesh; a
//! real py2p seed serves rs2p nodes; an rs2p seed serves py2p clients.

mod support;

use rs2p::chord::ChordSocket;
use rs2p::MeshSocket;
use serde_json::json;
use support::process::{rs2p_command, Kind, NodeProcess};
use support::py2p::{free_port, python, script};
use support::wait::{wait_until, WAIT};

async fn rs_seed() -> ChordSocket {
    ChordSocket::builder()
        .subnet(rs2p::bootstrap::SUBNET)
        .joined(true)
        .bind("127.0.0.1:0")
        .await
        .unwrap()
}

/// Whether every node reaches every other through the routing tables.
async fn connected(nodes: &[MeshSocket]) -> Result<(), String> {
    let mut reach = vec![false; nodes.len()];
    reach[0] = true;
    let mut todo = vec![0];
    while let Some(i) = todo.pop() {
        let table = nodes[i].routing_table().await.map_err(|e| e.to_string())?;
        for p in table {
            if let Some(j) = nodes.iter().position(|n| *n.id() == p.id) {
                if !reach[j] {
                    reach[j] = true;
                    todo.push(j);
                }
            }
        }
    }
    match reach.iter().filter(|r| !**r).count() {
        0 => Ok(()),
        n => Err(format!("{n} nodes unreachable")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_that_know_only_a_seed_form_one_mesh() {
    let seed = rs_seed().await;
    let addr = seed.mesh().addr().to_string();
    let mut nodes = Vec::new();
    for i in 0..5 {
        let node = MeshSocket::bind("127.0.0.1:0").await.unwrap();
        let dialled = rs2p::bootstrap::join_through(&[addr.as_str()], &node)
            .await
            .unwrap();
        // Every node before it, directly or through a peer list.
        assert_eq!(dialled, i, "node {i}");
        nodes.push(node);
    }
    wait_until("one mesh", WAIT, || connected(&nodes)).await;
    // A seed nobody runs: a typed error, quickly.
    let lone = MeshSocket::bind("127.0.0.1:0").await.unwrap();
    let dead = format!("127.0.0.1:{}", free_port());
    assert!(rs2p::bootstrap::join_through(&[dead.as_str()], &lone)
        .await
        .is_err());
    for n in nodes.iter().chain([&lone]) {
        n.close().await;
    }
    seed.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rs2p_nodes_bootstrap_through_a_py2p_seed() {
    let port = free_port();
    let mut cmd = std::process::Command::new(python());
    cmd.arg(script("seed_peer.py")).arg(port.to_string());
    let mut seed = NodeProcess::start("py2p-seed", Kind::Py2p, cmd);
    seed.fail_on_error = false;
    let addr = format!("127.0.0.1:{port}");
    let a = MeshSocket::bind("127.0.0.1:0").await.unwrap();
    let b = MeshSocket::bind("127.0.0.1:0").await.unwrap();
    assert_eq!(
        rs2p::bootstrap::join_through(&[addr.as_str()], &a)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        rs2p::bootstrap::join_through(&[addr.as_str()], &b)
            .await
            .unwrap(),
        1
    );
    assert!(b
        .routing_table()
        .await
        .unwrap()
        .iter()
        .any(|p| p.id == *a.id()));
    // py2p's own reading of its directory lists both.
    seed.op(json!({"op": "fetch", "subnet": "mesh", "timeout": 5}));
    let dir = seed.wait_for("directory", |v| v["event"] == "directory");
    let ids: Vec<&str> = dir["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["id"].as_str())
        .collect();
    for n in [&a, &b] {
        assert!(ids.contains(&n.id().to_string().as_str()), "{dir}");
    }
    seed.quit();
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rs2p_seed_serves_py2p_clients_and_rs2p_nodes() {
    // `rs2p seed` as a process.
    let mut cmd = rs2p_command();
    cmd.args(["seed", "--json", "--bind", "127.0.0.1:0"]);
    let mut seed = NodeProcess::start("rs2p-seed", Kind::Rs2p, cmd);
    let rs = MeshSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = seed.addr.clone();
    rs2p::bootstrap::join_through(&[addr.as_str()], &rs)
        .await
        .unwrap();
    // A py2p client (py2p.bootstrap with a MeshSocket) finds the rs2p node.
    let mut cmd = std::process::Command::new(python());
    cmd.arg(script("seed_peer.py"))
        .arg(free_port().to_string())
        .arg("--client");
    let mut py = NodeProcess::start("py2p-client", Kind::Py2p, cmd);
    py.fail_on_error = false;
    py.op(json!({"op": "register", "subnet": "mesh", "kind": "mesh",
                 "seed_host": "127.0.0.1", "seed_port": seed.port}));
    let done = py.wait_for("bootstrapped", |v| v["event"] == "bootstrapped");
    assert!(
        done["peers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| *p == json!(rs.id().to_string())),
        "{done}"
    );
    // And an rs2p node through the command line finds both.
    let mut cmd = rs2p_command();
    cmd.args([
        "node",
        "--json",
        "--bind",
        "127.0.0.1:0",
        "--bootstrap",
        &addr,
    ]);
    let mut late = NodeProcess::start("rs2p-late", Kind::Rs2p, cmd);
    let b = late.wait_for("bootstrapped", |v| v["event"] == "bootstrapped");
    assert_eq!(b["dialled"], 2, "{b}");
    py.quit();
    late.quit();
    seed.send_line("quit");
    let status = seed.wait_exit();
    assert!(status.success());
    rs.close().await;
}

#[test]
fn sync_nodes_find_each_other_through_a_seed_and_replicate() {
    let mut cmd = rs2p_command();
    cmd.args(["seed", "--json", "--bind", "127.0.0.1:0"]);
    let mut seed = NodeProcess::start("rs2p-seed", Kind::Rs2p, cmd);
    let addr = seed.addr.clone();
    let mut a = NodeProcess::rs2p_sync("A", &["--bootstrap", &addr]);
    let first = a.wait_for("A bootstrapped", |v| v["event"] == "bootstrapped");
    assert_eq!(first["dialled"], 0, "{first}");
    let mut b = NodeProcess::rs2p_sync("B", &["--bootstrap", &addr]);
    let second = b.wait_for("B bootstrapped", |v| v["event"] == "bootstrapped");
    assert_eq!(second["dialled"], 1, "{second}");
    // Found through the seed, the two replicate.
    b.op(json!({"op": "set", "key": "found", "value": "by seed"}));
    a.wait_for("the value from B", |v| {
        v["event"] == "updated" && v["key"] == "found" && v["value"] == "by seed"
    });
    a.quit();
    b.quit();
    seed.send_line("quit");
    assert!(seed.wait_exit().success());
}
