//! [`Histogram`]: a latency distribution in fixed buckets, updated with atomic increments.
//!
//! The bucket bounds are Prometheus's cumulative `le` bounds in seconds; an observation is
//! counted in the first bucket whose bound it does not exceed (or only in the implicit `+Inf`
//! bucket). The sum is kept in nanoseconds as an integer, so it never loses precision to
//! repeated float additions.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Bucket bounds (seconds) for function and commit latencies: 50 µs to 10 s.
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 10.0,
];

/// A latency histogram over [`LATENCY_BUCKETS`].
#[derive(Debug)]
pub struct Histogram {
    /// Non-cumulative: `counts[i]` holds observations in `(bound[i-1], bound[i]]`; the last
    /// slot holds those above every bound.
    counts: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
    count: AtomicU64,
}

/// What a [`Histogram`] held when read.
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramSnapshot {
    /// Sum of all observations, in seconds.
    pub sum_seconds: f64,
    pub count: u64,
    /// Cumulative `(upper bound in seconds, observations at or under it)`, without `+Inf`
    /// (whose count is `count`).
    pub buckets: Vec<(f64, u64)>,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let slot = LATENCY_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.counts[slot].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// The current counts, cumulative as Prometheus expects.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = 0;
        let buckets = LATENCY_BUCKETS
            .iter()
            .zip(&self.counts)
            .map(|(bound, count)| {
                cumulative += count.load(Ordering::Relaxed);
                (*bound, cumulative)
            })
            .collect();
        let above = self.counts[LATENCY_BUCKETS.len()].load(Ordering::Relaxed);
        HistogramSnapshot {
            sum_seconds: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
            // The total of the buckets, not `count`: a scrape racing an `observe` then still
            // shows `+Inf` equal to the largest bucket, never below it.
            count: cumulative + above,
            buckets,
        }
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The mean of all observations, if any.
    pub fn mean(&self) -> Option<Duration> {
        let count = self.count.load(Ordering::Relaxed);
        (count > 0).then(|| Duration::from_nanos(self.sum_nanos.load(Ordering::Relaxed) / count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_each_observation_in_its_bucket_cumulatively() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(30)); // <= 50 µs
        h.observe(Duration::from_micros(100)); // exactly the 100 µs bound
        h.observe(Duration::from_millis(3)); // <= 5 ms
        h.observe(Duration::from_secs(20)); // above every bound
        let s = h.snapshot();
        assert_eq!(s.count, 4);
        assert_eq!(s.buckets[0], (0.000_05, 1));
        assert_eq!(s.buckets[1], (0.000_1, 2));
        assert_eq!(s.buckets[5], (0.002_5, 2));
        assert_eq!(s.buckets[6], (0.005, 3));
        assert_eq!(s.buckets.last().map(|b| b.1), Some(3));
        assert!((s.sum_seconds - 20.003_13).abs() < 1e-9);
        assert_eq!(h.mean(), Some(Duration::from_nanos(20_003_130_000 / 4)));
    }
}
