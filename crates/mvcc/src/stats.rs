//! What the store measures, for metrics (etcd's `mvcc/metrics.go` and
//! `mvcc/backend/metrics.go`): plain atomics the server hands in through
//! [`StoreConfig::stats`](crate::StoreConfig), so they outlive a store replaced by a
//! snapshot install.

use std::sync::atomic::{AtomicU64, Ordering};

use oxetcd_stats::Histogram;

/// etcd's buckets for `etcd_disk_backend_commit_duration_seconds`: 1 ms doubling 14
/// times (`ExponentialBuckets(0.001, 2, 14)`).
static COMMIT_BOUNDS: [u64; 14] = oxetcd_stats::doubling_bounds(1_000_000);

/// Operations seen and backend commits.
#[derive(Debug)]
pub struct StoreStats {
    /// Ranges: each Range request, and each Range op of a txn (etcd counts per op).
    pub ranges: AtomicU64,
    /// Put ops, in requests and txns alike.
    pub puts: AtomicU64,
    /// DeleteRange ops (one per op, however many keys it deletes), and each key a lease
    /// revoke deletes.
    pub deletes: AtomicU64,
    /// Transactions of more than one op (etcd's rule for `txn_total`).
    pub txns: AtomicU64,
    /// How long each backend commit took (write and fsync).
    pub commit: Histogram,
}

impl Default for StoreStats {
    fn default() -> StoreStats {
        StoreStats {
            ranges: AtomicU64::new(0),
            puts: AtomicU64::new(0),
            deletes: AtomicU64::new(0),
            txns: AtomicU64::new(0),
            commit: Histogram::new(&COMMIT_BOUNDS),
        }
    }
}

/// The ops one transaction ran, added to [`StoreStats`] when it ends.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct OpCounts {
    pub ranges: u64,
    pub puts: u64,
    pub deletes: u64,
}

impl StoreStats {
    pub(crate) fn record(&self, ops: OpCounts) {
        let OpCounts { ranges, puts, deletes } = ops;
        if ranges + puts + deletes > 1 {
            self.txns.fetch_add(1, Ordering::Relaxed);
        }
        for (counter, n) in [(&self.ranges, ranges), (&self.puts, puts), (&self.deletes, deletes)] {
            if n > 0 {
                counter.fetch_add(n, Ordering::Relaxed);
            }
        }
    }
}
