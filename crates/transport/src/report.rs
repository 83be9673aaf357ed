//! Failure reports to the raft handler, decoupled from the caller.
//!
//! [`crate::Transport::send`] runs on the server's raft loop and must never call back
//! into it, so the failures it sees (a full queue, a misrouted snapshot) are recorded
//! here and delivered by a task of their own. Reports for one peer coalesce: raft only
//! needs to know that a peer is unreachable, not how many messages were lost, so the
//! pending state is bounded by the number of peers.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};

use oxetcd_raft::SnapshotStatus;
use tokio::sync::Notify;

use crate::handler::RaftHandler;

#[derive(Debug, Default)]
struct Pending {
    unreachable: BTreeSet<u64>,
    snapshot_failed: BTreeSet<u64>,
}

/// Pending reports and the wake-up of the task that delivers them.
#[derive(Debug, Default)]
pub(crate) struct Reporter {
    pending: Mutex<Pending>,
    wake: Notify,
}

impl Reporter {
    /// Queues `report_unreachable(id)`.
    pub fn unreachable(&self, id: u64) {
        self.record(|p| p.unreachable.insert(id));
    }

    /// Queues `report_unreachable(id)` and `report_snapshot(id, Failure)`.
    pub fn snapshot_failed(&self, id: u64) {
        self.record(|p| p.unreachable.insert(id) | p.snapshot_failed.insert(id));
    }

    fn record(&self, add: impl FnOnce(&mut Pending) -> bool) {
        if add(&mut self.pending.lock().unwrap_or_else(PoisonError::into_inner)) {
            self.wake.notify_one();
        }
    }

    /// Delivers reports as they come, until the task is aborted.
    pub async fn run(self: Arc<Self>, handler: Arc<dyn RaftHandler>) {
        loop {
            self.wake.notified().await;
            let pending =
                std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner));
            for id in pending.unreachable {
                handler.report_unreachable(id);
            }
            for id in pending.snapshot_failed {
                handler.report_snapshot(id, SnapshotStatus::Failure);
            }
        }
    }
}
