//! A deterministic discrete-event simulator that drives the same
//! [`MeshState`](crate::protocol::mesh::MeshState) as the tokio node, in
//! virtual time, over simulated links (latency, jitter, loss, bandwidth),
//! with a seeded RNG: a seed names one run, exactly.
//!
//! Nothing here touches a socket, a clock or tokio. It answers questions a
//! single machine cannot host: how a 10,000-node mesh forms from peer lists,
//! whether every broadcast reaches every node, how long it takes, how many
//! frames it costs against the `n(n−1)` worst case, and what churn does.
//!
//! - [`queue`]: the event queue (virtual time in µs).
//! - [`link`]: the link model.
//! - [`config`]: what one run is made of.
//! - [`world`]: the simulation itself.
//! - [`report`]: what it measured.
//! - [`scenario`]: protocol layers under churn (a replicated dictionary
//!   converging).
//! - [`rig`]: state machines wired in memory and stepped by hand, for
//!   tests, benchmarks and fuzzers.
//! - [`graph`]: connectivity of a mesh's shape, for the reports, `rs2p demo`
//!   and the tests.
//!
//! # Examples
//! ```
//! use rs2p::sim::{SimConfig, Simulation};
//! let cfg = SimConfig { nodes: 30, broadcasts: 2, seed: 7, ..SimConfig::default() };
//! let report = Simulation::new(cfg.clone()).run();
//! assert_eq!(report.summary.fully_covered, 2);
//! assert_eq!(report, Simulation::new(cfg).run()); // same seed, same run
//! ```

pub mod config;
pub mod graph;
pub mod link;
mod measure;
pub mod queue;
pub mod report;
pub mod rig;
pub mod scenario;
pub mod world;

/// The simulator's generator: the crate's one seeded RNG.
pub use crate::protocol::Rng as SimRng;
pub use config::SimConfig;
pub use link::{LinkModel, LinkState};
pub use queue::{EventQueue, Micros};
pub use report::{BroadcastStats, SimReport, Summary, Topology, Traffic};
pub use world::{sim_addr, Simulation, EPOCH_SECS, SIM_PORT};
