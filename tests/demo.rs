//! `rs2p demo` as a newcomer runs it: the built binary, its exit status
//! and its summary.

mod support;

use std::process::ExitStatus;
use std::time::{Duration, Instant};

use support::process::{rs2p_command, run_to_end};

/// The demo must finish well within this, even on a busy 2-core machine.
const LIMIT: Duration = Duration::from_secs(120);

/// Runs `rs2p demo ARGS` with `PATH` set to `path` if given; kills it
/// after `LIMIT`. Returns the status, stdout and stderr.
fn run_demo(args: &[&str], path: Option<&str>) -> (ExitStatus, String, String) {
    let mut command = rs2p_command();
    command.arg("demo").args(args);
    if let Some(path) = path {
        command.env("PATH", path);
    }
    let out = run_to_end(command, None, LIMIT);
    (out.status, out.stdout, out.stderr)
}

#[test]
fn demo_passes_and_says_what_it_checked() {
    let dot = std::env::temp_dir().join(format!("rs2p-demo-test-{}.dot", std::process::id()));
    let dot_arg = dot.to_str().expect("temp path is UTF-8");
    let started = Instant::now();
    let (status, out, err) = run_demo(&["--dot", dot_arg], None);
    let took = started.elapsed();
    assert!(status.success(), "exit {status}\n{out}\n{err}");
    assert!(took < Duration::from_secs(60), "took {took:?}\n{out}");

    // The summary, line by line.
    assert!(out.starts_with("rs2p demo: 8 nodes"), "{out}");
    let mesh = out.lines().find(|l| l.starts_with("mesh ")).expect(&out);
    assert!(mesh.contains("8 nodes"), "{mesh}");
    assert!(mesh.contains("7 dialled one by one"), "{mesh}");
    assert!(mesh.contains("found through peer lists"), "{mesh}");
    // Three broadcasts, the question behind the routed reply and the one
    // after the kill: each reached every node, no duplicates.
    let rows: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("broadcasts"))
        .skip(2)
        .take_while(|l| !l.trim_start().starts_with("latency"))
        .collect();
    assert_eq!(rows.len(), 5, "{out}");
    for row in &rows {
        let cols: Vec<&str> = row.split_whitespace().collect();
        let (reached, duplicates) = (cols[3], cols[4]);
        let (got, want) = reached.split_once('/').expect(row);
        assert_eq!(got, want, "{row}");
        assert_eq!(duplicates, "0", "{row}");
    }
    assert!(out.contains("latency over all "), "{out}");
    assert!(out.contains("routed reply  "), "{out}");
    assert!(out.contains("asked the mesh for a route"), "{out}");
    assert!(out.contains("whispered the reply: arrived in "), "{out}");
    assert!(out.contains("every survivor dropped it within"), "{out}");
    let topology = out
        .lines()
        .skip_while(|l| !l.starts_with("topology"))
        .skip(1)
        .take_while(|l| l.starts_with("  n"))
        .count();
    assert!(topology >= 8, "every node listed:\n{out}");
    assert!(out.contains("(closed)"), "{out}");
    assert!(!out.contains("FAIL"), "{out}");
    assert!(out.contains("PASS: all "), "{out}");

    // Progress went to stderr, one line per step when not on a terminal.
    assert!(err.contains("[1/6] starting 8 nodes"), "{err}");
    assert!(err.contains("[6/6] summary"), "{err}");

    let graph = std::fs::read_to_string(&dot).expect("the --dot file");
    let _ = std::fs::remove_file(&dot);
    assert!(graph.contains("graph mesh {"), "{graph}");
    assert!(graph.contains(" -- "), "{graph}");
    assert!(graph.contains("label=\"route\""), "{graph}");
    assert!(graph.contains("style=dashed"), "the closed node: {graph}");
}

#[test]
fn png_without_graphviz_is_a_clear_error() {
    let empty = std::env::temp_dir().join(format!("rs2p-no-dot-{}", std::process::id()));
    std::fs::create_dir_all(&empty).expect("empty dir");
    let (status, out, err) = run_demo(&["--png", "mesh.png"], empty.to_str());
    let _ = std::fs::remove_dir(&empty);
    assert_eq!(status.code(), Some(2), "{out}\n{err}");
    assert!(err.contains("--png needs Graphviz"), "{err}");
    assert!(err.contains("--dot FILE"), "{err}");
    assert!(out.is_empty(), "nothing ran: {out}");
}

#[test]
fn small_demo_forces_the_routed_reply() {
    // Three nodes end up all connected, so the demo adds a node that knows
    // only n0 to have someone to reply to through a route.
    let (status, out, err) = run_demo(&["--nodes", "3", "--messages", "2"], None);
    assert!(status.success(), "exit {status}\n{out}\n{err}");
    assert!(out.starts_with("rs2p demo: 3 nodes + 1 extra"), "{out}");
    assert!(
        out.contains("every pair was connected, so n3 joined through n0 only"),
        "{out}"
    );
    assert!(
        out.contains("(0 -> 1 dials)"),
        "the extra node dialled once, for the route: {out}"
    );
    assert!(out.contains("PASS: all "), "{out}");
}
