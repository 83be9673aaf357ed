//! A compact latency histogram with log-linear buckets (HDR-style), written here
//! rather than pulled in as a dependency: the bench needs record, merge and
//! percentile queries, nothing more.
//!
//! Values (nanoseconds) below `2^SUB_BITS` get exact buckets. Above that, every
//! power of two is split into `2^(SUB_BITS-1)` equal buckets, so a bucket's width is
//! at most 1/128 of its lower bound: a reported percentile is within 0.8% of the
//! true sample. The whole `u64` range fits in ~7.5k counters (60 KiB); each client
//! task owns one and they are merged at the end, so recording is lock-free.

/// Bits of precision per power of two.
const SUB_BITS: u32 = 8;
/// Values below this are counted exactly.
const EXACT: u64 = 1 << SUB_BITS;
/// Buckets per power of two above `EXACT`.
const HALF: u64 = EXACT / 2;
/// Largest shift a `u64` can need (msb 63).
const MAX_SHIFT: u32 = 64 - SUB_BITS;
const BUCKETS: usize = (EXACT + MAX_SHIFT as u64 * HALF) as usize;

#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    count: u64,
    sum: u128,
    min: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self { counts: vec![0; BUCKETS], count: 0, sum: 0, min: u64::MAX, max: 0 }
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.count)
            .field("min", &self.min())
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}

/// The bucket holding `v`.
fn index(v: u64) -> usize {
    if v < EXACT {
        return v as usize;
    }
    let msb = 63 - v.leading_zeros();
    let shift = msb + 1 - SUB_BITS; // >= 1; `v >> shift` is in [HALF, EXACT)
    let mantissa = v >> shift;
    (EXACT + u64::from(shift - 1) * HALF + (mantissa - HALF)) as usize
}

/// The largest value that falls into bucket `i`.
fn upper_bound(i: usize) -> u64 {
    let i = i as u64;
    if i < EXACT {
        return i;
    }
    let shift = (i - EXACT) / HALF + 1;
    let mantissa = (i - EXACT) % HALF + HALF;
    // For the very last bucket `(mantissa + 1) << shift` overflows: saturate.
    ((mantissa + 1) << shift).wrapping_sub(1).max(mantissa << shift)
}

impl Histogram {
    pub fn record(&mut self, nanos: u64) {
        self.counts[index(nanos)] += 1;
        self.count += 1;
        self.sum += u128::from(nanos);
        self.min = self.min.min(nanos);
        self.max = self.max.max(nanos);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// Smallest recorded value (0 when empty).
    pub fn min(&self) -> u64 {
        if self.count == 0 { 0 } else { self.min }
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    /// The sum of every sample recorded.
    pub fn sum(&self) -> u128 {
        self.sum
    }

    pub fn mean(&self) -> f64 {
        if self.count == 0 { 0.0 } else { self.sum as f64 / self.count as f64 }
    }

    /// The value below or at which a fraction `q` (0..=1) of the samples fall,
    /// rounded up to its bucket's upper bound and clamped to the observed range.
    pub fn percentile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return upper_bound(i).clamp(self.min, self.max);
            }
        }
        self.max
    }

    /// Samples grouped into `n` equal-width ranges between min and max, as
    /// `(upper bound, count)`; etcd's benchmark prints its histogram the same way.
    pub fn linear_buckets(&self, n: usize) -> Vec<(u64, u64)> {
        if self.count == 0 || n == 0 {
            return Vec::new();
        }
        let (lo, hi) = (self.min(), self.max);
        let width = (hi - lo).saturating_add(1).div_ceil(n as u64).max(1);
        let mut out: Vec<(u64, u64)> = (1..=n as u64)
            .map(|k| (lo.saturating_add(width.saturating_mul(k) - 1).min(hi), 0))
            .collect();
        out.dedup_by_key(|b| b.0);
        for (i, &c) in self.counts.iter().enumerate().filter(|(_, c)| **c > 0) {
            let v = upper_bound(i).clamp(lo, hi);
            let slot = (((v - lo) / width) as usize).min(out.len() - 1);
            out[slot].1 += c;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_in_order() {
        let mut last = 0;
        for v in (0..100_000u64).chain([u64::MAX / 3, u64::MAX - 1, u64::MAX]) {
            let i = index(v);
            assert!(i < BUCKETS, "{v} -> {i}");
            assert!(i >= last);
            assert!(upper_bound(i) >= v, "{v} above its bucket's bound");
            last = i;
        }
        assert_eq!(index(u64::MAX), BUCKETS - 1);
        assert_eq!(upper_bound(BUCKETS - 1), u64::MAX);
    }

    #[test]
    fn bucket_error_is_below_one_percent() {
        for v in [300u64, 1_000, 12_345, 999_999, 1 << 40, (1 << 40) + 12345] {
            let ub = upper_bound(index(v));
            assert!((ub - v) as f64 / v as f64 <= 1.0 / HALF as f64, "{v} -> {ub}");
        }
    }

    #[test]
    fn exact_percentiles_for_small_values() {
        let mut h = Histogram::default();
        for v in 1..=100 {
            h.record(v);
        }
        assert_eq!(h.count(), 100);
        assert_eq!(h.percentile(0.5), 50);
        assert_eq!(h.percentile(0.9), 90);
        assert_eq!(h.percentile(0.99), 99);
        assert_eq!(h.percentile(0.999), 100);
        assert_eq!(h.percentile(0.0), 1);
        assert_eq!(h.min(), 1);
        assert_eq!(h.max(), 100);
        assert_eq!(h.mean(), 50.5);
    }

    #[test]
    fn percentiles_of_large_values_are_close() {
        let mut h = Histogram::default();
        // 1..=10000 microseconds, in nanoseconds.
        for us in 1..=10_000u64 {
            h.record(us * 1_000);
        }
        for (q, want) in [(0.5, 5_000_000.0), (0.9, 9_000_000.0), (0.99, 9_900_000.0)] {
            let got = h.percentile(q) as f64;
            assert!((got - want).abs() / want < 0.01, "p{q}: {got} vs {want}");
        }
        assert_eq!(h.percentile(1.0), 10_000_000);
    }

    #[test]
    fn merge_adds_counts_and_extremes() {
        let (mut a, mut b) = (Histogram::default(), Histogram::default());
        a.record(10);
        a.record(20);
        b.record(5);
        b.record(1_000_000);
        a.merge(&b);
        assert_eq!(a.count(), 4);
        assert_eq!(a.min(), 5);
        assert_eq!(a.max(), 1_000_000);
        assert_eq!(a.percentile(0.5), 10);
    }

    #[test]
    fn empty_histogram_reports_zeros() {
        let h = Histogram::default();
        assert_eq!((h.count(), h.min(), h.max(), h.percentile(0.99)), (0, 0, 0, 0));
        assert_eq!(h.mean(), 0.0);
        assert!(h.linear_buckets(10).is_empty());
    }

    #[test]
    fn linear_buckets_hold_every_sample() {
        let mut h = Histogram::default();
        for v in 0..1000 {
            h.record(v);
        }
        let b = h.linear_buckets(10);
        assert_eq!(b.len(), 10);
        assert_eq!(b.iter().map(|(_, c)| c).sum::<u64>(), 1000);
        assert_eq!(b.last().unwrap().0, 999);
        assert!(b.iter().all(|&(_, c)| c == 100), "{b:?}");
    }
}
