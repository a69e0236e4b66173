//! `rs2p soak` as CI runs it: one minute of a 12-node mesh under load (50
//! broadcasts/s), churn (a node leaves and another joins every 3 s) and
//! misbehaving peers
//! (garbage connections, broadcasts stamped an hour ahead, a member
//! flooding resend requests). Checked from its JSON report: no broadcast
//! lost among nodes connected throughout (see `src/cli/soak/ledger.rs` for
//! the definition), no duplicate anywhere, every misbehaving peer dealt
//! with, memory and file descriptors bounded (and every descriptor back
//! once the nodes are closed). A minute is long enough for the
//! deduplication sets to fill up to their 60 s window; the 30-minute run
//! and its figures are in BENCHMARKS.md.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::process::{rs2p_command, run_to_end};

#[test]
fn a_minute_of_soak_loses_nothing_and_stays_bounded() {
    let mut cmd = rs2p_command();
    cmd.args(["soak", "--minutes", "1", "--json"]);
    // The minute, setup, grace and close take ~70 s.
    let out = run_to_end(cmd, None, Duration::from_secs(150));
    // The progress lines (stderr) show in the test's output on failure.
    eprintln!("{}", out.stderr);
    assert!(
        out.status.success(),
        "rs2p soak failed: {}\n{}",
        out.status,
        out.stdout
    );
    let r: Value = serde_json::from_str(out.stdout.trim()).expect("the report is JSON");
    let u = |v: &Value| v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"));

    let d = &r["deliveries"];
    eprintln!(
        "deliveries: {d}\nmemory: {}\nhostile: {}",
        r["memory"], r["hostile"]
    );
    assert_eq!(r["ok"], true);
    for key in ["lost", "duplicates", "late", "echoes", "foreign", "excused"] {
        assert_eq!(u(&d[key]), 0, "{key}: {d}");
    }
    // 60 s at 50/s, to 11 other nodes: not a vacuous check.
    assert!(u(&d["sent"]) >= 2000, "too few broadcasts: {d}");
    assert!(
        u(&d["expected"]) >= 15_000,
        "too few expected deliveries: {d}"
    );
    assert_eq!(d["expected"], d["delivered"]);

    assert!(
        u(&r["churn"]["joins"]) >= 10,
        "too little churn: {}",
        r["churn"]
    );
    let h = &r["hostile"];
    assert!(u(&h["garbage_conns"]) >= 3, "{h}");
    assert_eq!(
        u(&h["garbage_kept"]),
        0,
        "a node kept a garbage connection: {h}"
    );
    assert!(u(&h["future_expelled"]) >= 1, "{h}");
    assert_eq!(
        u(&h["future_kept"]),
        0,
        "a node kept a peer from the future: {h}"
    );
    assert!(u(&h["resend_requests"]) >= 500, "{h}");

    let m = &r["memory"];
    let (rss0, rss1) = (u(&m["rss_start_kib"]), u(&m["rss_end_kib"]));
    assert!(
        rss1 <= 3 * rss0,
        "memory grew from {rss0} KiB to {rss1} KiB"
    );
    let (fd0, fd1) = (u(&m["fds_start"]), u(&m["fds_end"]));
    assert!(fd1 <= 2 * fd0 + 32, "fds grew from {fd0} to {fd1}");
    let closed = u(&m["fds_after_close"]);
    assert!(
        closed <= 32,
        "{closed} fds still open after closing every node"
    );
    assert!(r["samples"].as_array().expect("samples").len() >= 5);
}
