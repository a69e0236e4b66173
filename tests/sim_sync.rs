//! The replicated dictionary in the simulator: many nodes, joins and
//! deaths, every surviving write on every surviving node (see
//! `rs2p::sim::scenario::sync_convergence`).

use rs2p::sim::scenario::sync_convergence;
use rs2p::sim::SimConfig;

#[test]
fn thirty_sync_nodes_with_churn_converge() {
    for seed in [3, 4, 5] {
        let cfg = SimConfig {
            nodes: 30,
            broadcasts: 3,
            churn: 0.1,
            seed,
            ..SimConfig::default()
        };
        let r = sync_convergence(cfg, 40);
        assert!(r.identical, "seed {seed}: {r:?}");
        assert_eq!(r.lost, 0, "seed {seed}: {r:?}");
        assert!(r.converged_after_ms.is_some(), "seed {seed}: {r:?}");
    }
}

/// 1,000 nodes joining over 10 s, 100 of them killed during 10 s of
/// writes (200 new keys from random live nodes, the first ones while half
/// the nodes have not joined yet): every live node ends with the same
/// dictionary, holding every write whose writer survived.
#[test]
fn thousand_sync_nodes_with_churn_converge() {
    let cfg = SimConfig {
        nodes: 1000,
        broadcasts: 10,
        churn: 0.1,
        seed: 1000,
        ..SimConfig::default()
    };
    let started = std::time::Instant::now();
    let r = sync_convergence(cfg, 200);
    eprintln!(
        "1,000 sync nodes, 10% churn: {r:?}, in {:.1} s of real time",
        started.elapsed().as_secs_f64()
    );
    assert!(r.identical, "{r:?}");
    assert_eq!(r.lost, 0, "{r:?}");
    assert_eq!(r.alive, 900);
    assert!(r.converged_after_ms.is_some(), "{r:?}");
}
