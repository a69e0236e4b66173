//! The DHT in the simulator (see `rs2p::sim::scenario::chord_ring`):
//! placement, balance, and reads under churn.

use rs2p::sim::scenario::chord_ring;
use rs2p::sim::SimConfig;

#[test]
fn a_small_ring_places_and_reads_everything() {
    let cfg = SimConfig {
        nodes: 24,
        broadcasts: 4,
        seed: 5,
        ..SimConfig::default()
    };
    let r = chord_ring(cfg, 20, 40);
    eprintln!("{r:?}");
    assert_eq!(r.misplaced, 0, "{r:?}");
    assert_eq!(r.found, r.gets, "{r:?}");
}

/// 200 storing nodes, 100 keys, then 10% of the nodes die while 100 reads
/// go on (about 10 s in a debug build).
#[test]
fn two_hundred_node_ring_under_churn() {
    let cfg = SimConfig {
        nodes: 200,
        broadcasts: 10,
        churn: 0.1,
        seed: 200,
        ..SimConfig::default()
    };
    let r = chord_ring(cfg, 100, 100);
    eprintln!("200 chord nodes, 10% churn: {r:?}");
    assert_eq!(r.alive, 180);
    assert!(r.misplaced <= 5, "{r:?}");
    assert!(r.max_entries as f64 <= 20.0 * r.mean_entries, "{r:?}");
    assert!(r.found * 100 >= r.gets * 95, "{r:?}");
    assert!(r.latency_ms.1 <= 2_000, "{r:?}");
}

/// 1,000 storing nodes, 500 keys, then 10% of the nodes die while 300
/// reads go on: keys sit where the ring rule puts them, the load is
/// spread, and reads succeed. About 10 minutes in a debug build, so run it
/// optimised: `cargo test --release --test sim_chord -- --ignored`.
#[test]
#[ignore = "slow in debug builds: run with --release"]
fn thousand_node_ring_under_churn() {
    let cfg = SimConfig {
        nodes: 1000,
        broadcasts: 10,
        churn: 0.1,
        seed: 1000,
        ..SimConfig::default()
    };
    let started = std::time::Instant::now();
    let r = chord_ring(cfg, 500, 300);
    eprintln!(
        "1,000 chord nodes, 10% churn: {r:?}, in {:.1} s of real time",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(r.alive, 900);
    assert!(r.misplaced <= 25, "{r:?}");
    assert!(r.max_entries as f64 <= 20.0 * r.mean_entries, "{r:?}");
    assert!(r.found * 100 >= r.gets * 95, "{r:?}");
    assert!(r.latency_ms.0 <= 1_000, "{r:?}");
}
