//! `rs2p soak`'s options and their parsers.

use clap::Args;

pub const AFTER_HELP: &str = "\
What is measured: resident memory (VmRSS) and open file descriptors of this
process, sampled every --sample-every seconds with each node's routing
table, connections, deduplication set and address book; every broadcast's
deliveries. A broadcast must reach every node connected from before it was
sent until --grace seconds after (nodes joining or leaving meanwhile may
or may not get it); a missing copy there is a loss, a second copy anywhere
a duplicate. Misbehaving peers: raw connections sending garbage, peers
sending broadcasts stamped an hour ahead, and a member flooding its peers
with resend requests (--no-hostile turns them off).

Exit status: 0 when no broadcast was lost or duplicated, 1 otherwise.

Examples:
  rs2p soak --minutes 0.5
  rs2p soak --minutes 30 --json > soak.json
  rs2p soak --minutes 5 --nodes 24 --rate 200 --churn-every 1";

/// Options of `rs2p soak`.
#[derive(Debug, Args)]
pub struct SoakArgs {
    /// How long to run the load (fractions allowed: 0.5 is 30 s).
    #[arg(long, default_value_t = 1.0, value_parser = parse_minutes)]
    pub minutes: f64,

    /// Honest nodes (core and churning).
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u64).range(3..=500))]
    pub nodes: u64,

    /// Nodes that never leave (default: half).
    #[arg(long)]
    pub core: Option<usize>,

    /// Broadcasts per second, over the whole mesh.
    #[arg(long, default_value_t = 50.0, value_parser = parse_rate)]
    pub rate: f64,

    /// Largest broadcast payload, bytes (each is 16 up to this, random).
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u64).range(16..=1_000_000))]
    pub payload: u64,

    /// Seconds between two churn events (one node leaves, one joins);
    /// 0 turns churn off.
    #[arg(long, default_value_t = 3.0, value_parser = parse_nonneg)]
    pub churn_every: f64,

    /// Seconds between samples (default: a tenth of the run, between 1 and
    /// 5).
    #[arg(long, value_parser = parse_positive)]
    pub sample_every: Option<f64>,

    /// Seconds a broadcast has to reach every connected node.
    #[arg(long, default_value_t = 5.0, value_parser = parse_positive)]
    pub grace: f64,

    /// No misbehaving peers.
    #[arg(long)]
    pub no_hostile: bool,

    /// Seed of the random choices (default: from the clock).
    #[arg(long)]
    pub seed: Option<u64>,

    /// Print JSON instead of Markdown (progress still goes to stderr).
    #[arg(long)]
    pub json: bool,
}

fn parse_f64(text: &str) -> Result<f64, String> {
    text.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| format!("{text:?} is not a number"))
}

pub(super) fn parse_minutes(text: &str) -> Result<f64, String> {
    let v = parse_f64(text)?;
    if v > 0.0 && v <= 7.0 * 24.0 * 60.0 {
        Ok(v)
    } else {
        Err(format!(
            "{text:?}: expected minutes above 0 (and at most a week)"
        ))
    }
}

pub(super) fn parse_rate(text: &str) -> Result<f64, String> {
    let v = parse_f64(text)?;
    if v > 0.0 && v <= 100_000.0 {
        Ok(v)
    } else {
        Err(format!("{text:?}: expected broadcasts per second above 0"))
    }
}

pub(super) fn parse_positive(text: &str) -> Result<f64, String> {
    let v = parse_f64(text)?;
    if v > 0.0 && v <= 86_400.0 {
        Ok(v)
    } else {
        Err(format!("{text:?}: expected seconds above 0"))
    }
}

pub(super) fn parse_nonneg(text: &str) -> Result<f64, String> {
    let v = parse_f64(text)?;
    if (0.0..=86_400.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{text:?}: expected seconds, 0 or more"))
    }
}
