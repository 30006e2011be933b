//! A lock-free latency histogram: fixed bucket bounds in microseconds, one atomic counter
//! per bucket, plus count and sum. `observe` is a bucket search over 20 integers and three
//! relaxed atomic adds; prometheus-client's own `Histogram` takes a mutex per observation,
//! which the request path (tens of thousands per second) should not.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets, in microseconds (the last bucket, `+Inf`, is implicit):
/// 100 µs … 300 s, so one set fits both a 1 ms `tools/list` and a 300 s enterprise run.
pub const BOUNDS_US: [u64; 20] = [
    100,
    250,
    500,
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    30_000_000,
    60_000_000,
    120_000_000,
    300_000_000,
];

const N_BUCKETS: usize = BOUNDS_US.len() + 1;

/// A histogram of durations, rendered in seconds.
#[derive(Debug)]
pub struct Histogram {
    buckets: [AtomicU64; N_BUCKETS],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

/// What a histogram holds at one moment (bucket counts not cumulative).
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// `(upper bound in seconds, observations in this bucket)`; the last bound is `+Inf`.
    pub buckets: Vec<(f64, u64)>,
    pub count: u64,
    /// Sum of the observations, seconds.
    pub sum_s: f64,
}

impl Histogram {
    /// An empty histogram (usable in a `static`).
    pub const fn new() -> Histogram {
        Histogram {
            buckets: [const { AtomicU64::new(0) }; N_BUCKETS],
            count: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
        }
    }

    /// Records one duration.
    pub fn observe(&self, d: Duration) {
        self.observe_us(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    }

    /// Records one duration given in microseconds.
    pub fn observe_us(&self, us: u64) {
        let i = BOUNDS_US.partition_point(|&b| b < us);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// Number of observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The current values (relaxed reads: a scrape racing an observation may see the
    /// bucket and the count one apart, which Prometheus tolerates).
    pub fn snapshot(&self) -> HistogramSnapshot {
        let buckets: Vec<(f64, u64)> = self
            .buckets
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let bound = BOUNDS_US.get(i).map_or(f64::INFINITY, |&b| b as f64 / 1e6);
                (bound, c.load(Ordering::Relaxed))
            })
            .collect();
        HistogramSnapshot {
            count: buckets.iter().map(|(_, c)| c).sum(),
            buckets,
            sum_s: self.sum_us.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_whose_bound_is_not_below() {
        let h = Histogram::new();
        h.observe_us(0);
        h.observe_us(100); // le 0.0001 (bounds are inclusive)
        h.observe_us(101); // le 0.00025
        h.observe(Duration::from_secs(1)); // le 1
        h.observe(Duration::from_secs(301)); // +Inf
        let s = h.snapshot();
        assert_eq!(s.count, 5);
        assert_eq!(h.count(), 5);
        assert_eq!(s.buckets[0], (0.0001, 2));
        assert_eq!(s.buckets[1], (0.00025, 1));
        assert_eq!(s.buckets[12], (1.0, 1));
        assert_eq!(s.buckets[20], (f64::INFINITY, 1));
        assert!(
            (s.sum_s - (201e-6 + 1.0 + 301.0)).abs() < 1e-9,
            "{}",
            s.sum_s
        );
    }
}
