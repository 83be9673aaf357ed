//! What the library crates measure, as plain atomics: the binary's metrics endpoint reads
//! and renders them (etcd's Prometheus metrics), and nothing here knows a metric's name.
//! There is no registry: each crate owns its stats structs and hands out an `Arc` to them.
//!
//! Recording is one or two relaxed atomic adds, so it can sit on hot paths; reading is a
//! [`Histogram::snapshot`], consistent enough for monitoring (a scrape racing an
//! observation may see the count before the sum, as with Prometheus' own client).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of `n` buckets starting at `start_nanos` and doubling: Prometheus'
/// `ExponentialBuckets(start, 2, n)`, which etcd uses for its latency histograms.
pub const fn doubling_bounds<const N: usize>(start_nanos: u64) -> [u64; N] {
    let mut bounds = [0; N];
    let mut i = 0;
    let mut bound = start_nanos;
    while i < N {
        bounds[i] = bound;
        bound *= 2;
        i += 1;
    }
    bounds
}

/// A latency histogram with fixed upper bounds (in nanoseconds), as Prometheus keeps one:
/// a count per bucket, the number of observations and their sum.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [u64],
    /// Observations per bucket (not cumulative); the last one is `+Inf`.
    buckets: Box<[AtomicU64]>,
    sum_nanos: AtomicU64,
}

/// A histogram read at one moment, cumulative as Prometheus exposes it.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// `(upper bound in seconds, observations at or below it)`, in increasing order;
    /// `+Inf` is [`HistogramSnapshot::count`].
    pub buckets: Vec<(f64, u64)>,
    pub count: u64,
    pub sum_seconds: f64,
}

impl Histogram {
    /// A histogram with these upper bounds (nanoseconds, increasing).
    pub fn new(bounds: &'static [u64]) -> Histogram {
        debug_assert!(bounds.windows(2).all(|w| w[0] < w[1]), "bounds must increase");
        let buckets = (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect();
        Histogram { bounds, buckets, sum_nanos: AtomicU64::new(0) }
    }

    /// Records one observation.
    pub fn observe(&self, took: Duration) {
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        // A bound is inclusive (Prometheus' `le`).
        let bucket = self.bounds.partition_point(|&bound| bound < nanos);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// The observations so far.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(self.bounds.len());
        for (bound, count) in self.bounds.iter().zip(self.buckets.iter()) {
            cumulative += count.load(Ordering::Relaxed);
            buckets.push((*bound as f64 / 1e9, cumulative));
        }
        let count = cumulative + self.buckets[self.bounds.len()].load(Ordering::Relaxed);
        let sum_seconds = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        HistogramSnapshot { buckets, count, sum_seconds }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static BOUNDS: [u64; 3] = doubling_bounds(1_000_000);

    #[test]
    fn doubling_bounds_are_prometheus_exponential_buckets() {
        assert_eq!(BOUNDS, [1_000_000, 2_000_000, 4_000_000]);
    }

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them() {
        let h = Histogram::new(&BOUNDS);
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_millis(1)); // on the bound: inclusive
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(1)); // beyond every bound: +Inf only
        let s = h.snapshot();
        assert_eq!(s.buckets, vec![(0.001, 2), (0.002, 2), (0.004, 3)]);
        assert_eq!(s.count, 4);
        assert!((s.sum_seconds - 1.0045).abs() < 1e-9, "{}", s.sum_seconds);
    }
}
