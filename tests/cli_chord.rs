//! `rs2p chord` as a process: JSON lines from two nodes, and the plain
//! commands.

mod support;

use serde_json::json;
use support::process::{rs2p_command, run_to_end, Kind, NodeProcess};
use support::wait::WAIT;

fn chord(name: &str, extra: &[&str]) -> NodeProcess {
    let mut cmd = rs2p_command();
    cmd.args(["chord", "--json", "--bind", "127.0.0.1:0", "--timeout", "5"])
        .args(extra);
    let mut node = NodeProcess::start(name, Kind::Rs2p, cmd);
    node.fail_on_error = false;
    node
}

#[test]
fn two_chord_nodes_over_json_lines() {
    let mut a = chord("A", &["--join"]);
    let addr = a.addr.clone();
    let mut b = chord("B", &["--join", "--connect", &addr]);
    b.wait_for("joined", |v| v["event"] == "joined");
    b.op(json!({"op": "set", "key": "colour", "value": "blue"}));
    b.wait_for("set", |v| v["event"] == "set");
    a.wait_for("added", |v| v["event"] == "added" && v["key"] == "colour");
    a.op(json!({"op": "get", "key": "colour"}));
    let v = a.wait_for("value", |v| v["event"] == "value");
    assert_eq!(v["value"], "blue", "{v}");
    a.op(json!({"op": "delta", "key": {"$bin": "6d"}, "map": {"n": 1}}));
    let d = a.wait_for("delta", |v| v["event"] == "delta");
    assert_eq!(d["value"], json!({"n": 1}), "{d}");
    a.op(json!({"op": "keys"}));
    let k = a.wait_for("keys", |v| v["event"] == "keys");
    assert_eq!(k["keys"], json!(["colour", "m"]), "{k}");
    b.op(json!({"op": "delete", "key": "colour"}));
    a.wait_for("removed", |v| v["event"] == "removed");
    a.op(json!({"op": "get", "key": "colour"}));
    let e = a.wait_for("error", |v| v["event"] == "error" && v["op"] == "get");
    assert!(e["error"].as_str().unwrap().contains("no value"), "{e}");
    b.op(json!({"op": "unjoin"}));
    b.wait_for("unjoined", |v| v["event"] == "unjoined");
    b.op(json!({"op": "nonsense"}));
    b.wait_for("error", |v| v["event"] == "error" && v["op"] == "nonsense");
    a.quit();
    b.quit();
}

#[test]
fn plain_commands_for_people() {
    let mut cmd = rs2p_command();
    cmd.args(["chord", "--bind", "127.0.0.1:0", "--join", "--linger", "0"]);
    let out = run_to_end(
        cmd,
        Some(b"set fruit apple\nget fruit\nkeys\nbogus\nquit\n".to_vec()),
        WAIT,
    );
    let text = out.stdout.clone();
    assert!(out.status.success(), "{text}");
    assert!(text.contains("set fruit"), "{text}");
    assert!(text.contains("fruit = apple"), "{text}");
    assert!(text.contains("keys: fruit"), "{text}");
    assert!(text.contains("unknown command"), "{text}");
}
