//! [`LinkModel`]: how simulated connections carry frames — one-way latency
//! with jitter, a bandwidth per direction, and packet loss. Connections are
//! TCP-like: frames arrive whole and in order, a lost packet is
//! retransmitted after a timeout (delaying it and, head-of-line, every frame
//! behind it) rather than vanishing.

use super::queue::Micros;
use super::SimRng;

/// The properties of every simulated link.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkModel {
    /// One-way latency, in milliseconds. Default 20.
    pub latency_ms: f64,
    /// Extra one-way delay drawn uniformly from `[0, jitter_ms)` per frame.
    /// Default 5.
    pub jitter_ms: f64,
    /// Bytes per second each direction of a link carries; 0 means
    /// unlimited. Default 0.
    pub bandwidth: u64,
    /// Probability that a frame's transmission is lost (and retransmitted).
    /// Default 0.
    pub loss: f64,
    /// Retransmission timeout added per loss, in milliseconds. Default 200
    /// (Linux's minimum RTO).
    pub rto_ms: f64,
}

impl Default for LinkModel {
    fn default() -> Self {
        LinkModel {
            latency_ms: 20.0,
            jitter_ms: 5.0,
            bandwidth: 0,
            loss: 0.0,
            rto_ms: 200.0,
        }
    }
}

impl LinkModel {
    /// The base one-way latency in microseconds.
    pub fn latency_us(&self) -> Micros {
        (self.latency_ms.max(0.0) * 1000.0) as Micros
    }
}

/// One direction of one connection: when it is free to send again and
/// when its last frame arrives (arrivals never overtake each other).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkState {
    /// The sender's side is busy serialising until then.
    pub free_at: Micros,
    /// The latest arrival scheduled so far.
    pub last_arrival: Micros,
}

impl LinkState {
    /// When a frame of `len` bytes sent at `now` arrives.
    pub fn transmit(
        &mut self,
        model: &LinkModel,
        rng: &mut SimRng,
        now: Micros,
        len: usize,
    ) -> Micros {
        let start = now.max(self.free_at);
        let serialise = if model.bandwidth > 0 {
            (len as u128 * 1_000_000 / u128::from(model.bandwidth)) as Micros
        } else {
            0
        };
        self.free_at = start + serialise;
        let mut delay = model.latency_us();
        if model.jitter_ms > 0.0 {
            delay += (rng.unit() * model.jitter_ms * 1000.0) as Micros;
        }
        // Each loss costs one retransmission timeout; losses repeat with the
        // same probability (capped so a loss of 1.0 cannot loop forever).
        let mut losses = 0;
        while losses < 16 && rng.chance(model.loss) {
            losses += 1;
        }
        delay += losses * (model.rto_ms.max(0.0) * 1000.0) as Micros;
        let arrival = (self.free_at + delay).max(self.last_arrival);
        self.last_arrival = arrival;
        arrival
    }

    /// When a close sent at `now` reaches the other end: after every frame
    /// already under way.
    pub fn close(&mut self, model: &LinkModel, now: Micros) -> Micros {
        let arrival = (now.max(self.free_at) + model.latency_us()).max(self.last_arrival);
        self.last_arrival = arrival;
        arrival
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_latency_and_bandwidth() {
        let model = LinkModel {
            latency_ms: 10.0,
            jitter_ms: 0.0,
            bandwidth: 1_000_000,
            loss: 0.0,
            rto_ms: 200.0,
        };
        let mut rng = SimRng::new(1);
        let mut link = LinkState::default();
        // 1,000 bytes at 1 MB/s: 1 ms to serialise, then 10 ms of flight.
        assert_eq!(link.transmit(&model, &mut rng, 0, 1000), 11_000);
        // Queued behind the first.
        assert_eq!(link.transmit(&model, &mut rng, 0, 1000), 12_000);
        assert_eq!(link.close(&model, 0), 12_000);
    }

    #[test]
    fn loss_delays_but_keeps_order() {
        let model = LinkModel {
            latency_ms: 1.0,
            jitter_ms: 3.0,
            loss: 0.3,
            ..LinkModel::default()
        };
        let mut rng = SimRng::new(9);
        let mut link = LinkState::default();
        let mut last = 0;
        let mut delayed = 0;
        for i in 0..1000 {
            let at = link.transmit(&model, &mut rng, i * 10, 100);
            assert!(at >= last);
            if at >= i * 10 + 200_000 {
                delayed += 1;
            }
            last = at;
        }
        assert!(delayed > 0);
    }
}
