//! What the server core counts, for metrics (etcd's `etcdserver/metrics.go`): plain
//! atomics the raft loop, the apply thread and `propose` bump, plus the WAL's and the
//! store's own stats. The binary's metrics endpoint reads them through
//! [`EtcdServer::stats`](crate::EtcdServer::stats); nothing here knows a metric's name.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use oxetcd_mvcc::StoreStats;
use oxetcd_wal::WalStats;

/// The server's counters and the stats of the libraries it drives.
#[derive(Debug)]
pub struct ServerStats {
    /// Times a leader was elected or a new one seen (a change to no leader is not one).
    pub leader_changes: AtomicU64,
    /// Proposals waiting to be applied now.
    pub proposals_pending: AtomicI64,
    /// Proposals that never made it: the raft inbox was full, raft dropped them (no
    /// leader), or they timed out waiting to be applied.
    pub proposals_failed: AtomicU64,
    /// Entries whose apply took longer than etcd's 100 ms warning threshold.
    pub slow_applies: AtomicU64,
    /// Heartbeats a leader sent later than twice the heartbeat interval after the
    /// previous one to the same follower (etcd's sign of an overloaded leader).
    pub heartbeat_send_failures: AtomicU64,
    /// The write-ahead log's fsyncs and bytes.
    pub wal: Arc<WalStats>,
    /// The store's ops and backend commits (kept across snapshot installs).
    pub store: Arc<StoreStats>,
}

impl ServerStats {
    pub(crate) fn new(wal: Arc<WalStats>, store: Arc<StoreStats>) -> ServerStats {
        ServerStats {
            leader_changes: AtomicU64::new(0),
            proposals_pending: AtomicI64::new(0),
            proposals_failed: AtomicU64::new(0),
            slow_applies: AtomicU64::new(0),
            heartbeat_send_failures: AtomicU64::new(0),
            wal,
            store,
        }
    }

    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Counts a proposal as pending for as long as it lives.
pub(crate) struct Pending<'a>(&'a AtomicI64);

impl<'a> Pending<'a> {
    pub(crate) fn new(gauge: &'a AtomicI64) -> Pending<'a> {
        gauge.fetch_add(1, Ordering::Relaxed);
        Pending(gauge)
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
