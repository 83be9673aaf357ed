//! What the transport's tasks and its service share, and helpers over it.

use std::fmt;
use std::sync::Arc;

use oxetcd_raft::SnapshotStatus;
use tokio::runtime::Handle;
use tokio::sync::watch;
use tonic::{Status, Streaming};

use crate::config::TransportConfig;
use crate::handler::RaftHandler;
use crate::report::Reporter;
use crate::stats::Stats;

/// A member id as etcd prints it: lowercase hexadecimal.
#[derive(Clone, Copy)]
pub(crate) struct HexId(pub u64);

impl fmt::Display for HexId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}", self.0)
    }
}

impl fmt::Debug for HexId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// What the transport's tasks and service share.
pub(crate) struct Shared {
    pub config: TransportConfig,
    pub handler: Arc<dyn RaftHandler>,
    pub reporter: Arc<Reporter>,
    pub stats: Stats,
    /// Becomes `true` when the transport stops; incoming calls end on it.
    pub stopped: watch::Sender<bool>,
    pub runtime: Handle,
    /// `Peer.HashKV` answers computed at once; more wait (see [`MAX_CONCURRENT_HASH_KV`]).
    pub hash_kv_slots: tokio::sync::Semaphore,
}

/// `Peer.HashKV` answers computed at once. Each reads the whole key table on a blocking
/// thread; only the leader's checks ask, one member at a time, so two leave room for a
/// second check (a new leader's) without letting a flood of calls read the table over and
/// over in parallel.
pub(crate) const MAX_CONCURRENT_HASH_KV: usize = 2;

impl Shared {
    pub(crate) fn new(
        config: TransportConfig,
        handler: Arc<dyn RaftHandler>,
        runtime: Handle,
    ) -> Shared {
        Shared {
            config,
            handler,
            reporter: Arc::new(Reporter::default()),
            stats: Stats::default(),
            stopped: watch::Sender::new(false),
            runtime,
            hash_kv_slots: tokio::sync::Semaphore::new(MAX_CONCURRENT_HASH_KV),
        }
    }
}

/// Reports a failed snapshot transfer the way etcd does: unreachable, then failure.
pub(crate) fn report_snapshot_failure(shared: &Shared, to: u64) {
    shared.handler.report_unreachable(to);
    shared.handler.report_snapshot(to, SnapshotStatus::Failure);
}

/// The next item of `incoming`, or `Unavailable` once the transport stops.
pub(crate) async fn next_or_stop<T>(
    incoming: &mut Streaming<T>,
    stopped: &mut watch::Receiver<bool>,
) -> Result<Option<T>, Status> {
    tokio::select! {
        _ = stopped.wait_for(|stopped| *stopped) => Err(Status::unavailable("the member's peer transport stopped")),
        next = incoming.message() => next,
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use std::path::PathBuf;

    use oxetcd_raft::{Message, SnapshotStatus};

    use super::*;
    use crate::handler::Dropped;

    /// A handler that takes everything and ignores reports.
    struct Ignore;

    impl RaftHandler for Ignore {
        fn process(&self, _: Message) -> Result<(), Dropped> {
            Ok(())
        }
        fn is_removed(&self, _: u64) -> bool {
            false
        }
        fn report_unreachable(&self, _: u64) {}
        fn report_snapshot(&self, _: u64, _: SnapshotStatus) {}
        fn receive_snapshot(&self, _: Message, _: PathBuf) {}
    }

    /// Shared state for unit tests, on the current runtime.
    pub fn shared(config: TransportConfig) -> Shared {
        Shared::new(config.normalized(), Arc::new(Ignore), Handle::current())
    }
}
