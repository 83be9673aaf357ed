//! Compaction while the run goes, as a Kubernetes API server compacts its etcd (and as
//! etcd's robustness traffic does): every few seconds, some revisions behind the head.
//!
//! Once compacted, the history before the compaction revision can no longer be read, and
//! the end checks need every committed change. So each compaction first reads the
//! committed log from where the last one stopped up to its revision and keeps it; the
//! end of the run reads the rest ([`Compactor::kept`] and [`crate::workload::committed_log`]).
//! What was read is committed, so it is kept even when the compaction itself fails.

use std::sync::Arc;
use std::time::Duration;

use oxetcd_client::GetOptions;
use tokio::sync::{Mutex, watch};

use crate::history::WatchEvent;
use crate::rng::Rng;
use crate::workload::{self, KEY_PREFIX};

/// How often the run compacts (a Kubernetes API server's `--etcd-compaction-interval`
/// is 5 minutes; runs are minutes long, so seconds here).
pub const COMPACT_EVERY: Duration = Duration::from_secs(5);
/// How far behind the head a periodic compaction stays, at most (drawn each round from
/// 1 on): far behind, watchers resuming after a member restart still find their
/// revision; close, they are canceled as compacted and open again from the compaction
/// revision (which the checks hold to what etcd promises).
pub const MAX_COMPACT_LAG: u64 = 300;
/// One compaction, its log read included.
const COMPACT_TIMEOUT: Duration = Duration::from_secs(10);

/// The committed log read ahead of the compactions, and the compactions made.
#[derive(Clone, Debug, Default)]
pub struct Kept {
    /// Every committed change up to [`Kept::up_to`], from revision 2 on.
    pub events: Vec<WatchEvent>,
    /// The revision the kept log runs to (1: nothing kept, nothing compacted).
    pub up_to: i64,
    /// The revisions compactions were asked for, in order (one that failed or whose
    /// answer was lost included: its log was kept all the same).
    pub compactions: Vec<i64>,
}

/// Compacts the run's cluster; one compaction at a time.
#[derive(Clone)]
pub struct Compactor {
    endpoints: Vec<String>,
    /// Held through a whole round, its reads and its compaction included: a round must
    /// have kept its part of the log before the next one reads on from where it ended.
    kept: Arc<Mutex<Kept>>,
}

impl Compactor {
    pub fn new(endpoints: &[String]) -> Compactor {
        let kept = Kept { up_to: 1, ..Kept::default() };
        Compactor { endpoints: endpoints.to_vec(), kept: Arc::new(Mutex::new(kept)) }
    }

    /// Keeps the committed log up to `lag` revisions behind the head, then compacts
    /// there; returns the revision, or why it did not compact.
    pub async fn compact(&self, lag: i64) -> Result<i64, String> {
        tokio::time::timeout(COMPACT_TIMEOUT, self.compact_unbounded(lag))
            .await
            .map_err(|_| format!("no compaction within {COMPACT_TIMEOUT:?}"))?
    }

    async fn compact_unbounded(&self, lag: i64) -> Result<i64, String> {
        let mut kept = self.kept.lock().await;
        let client = workload::connect(&self.endpoints).await.map_err(|e| e.to_string())?;
        let head = client
            .get(KEY_PREFIX, Some(GetOptions::new().with_count_only()))
            .await
            .map_err(|e| format!("the head revision: {e}"))?
            .header
            .map_or(0, |h| h.revision);
        let revision = head - lag;
        if revision <= kept.up_to {
            return Err(format!("nothing to compact past revision {}", kept.up_to));
        }
        // Read from the members in turn, starting at a different one each round; one that
        // is down is passed over.
        let first = kept.compactions.len();
        let mut read = Err(String::from("no member to read the log from"));
        for i in 0..self.endpoints.len() {
            let endpoint = &self.endpoints[(first + i) % self.endpoints.len()];
            read = workload::committed_log(endpoint, kept.up_to + 1, revision).await;
            if read.is_ok() {
                break;
            }
        }
        let events = read?;
        kept.events.extend(events);
        kept.up_to = revision;
        kept.compactions.push(revision);
        client
            .compact(revision, false)
            .await
            .map_err(|e| format!("compaction at revision {revision}: {e}"))?;
        Ok(revision)
    }

    /// Compacts every [`COMPACT_EVERY`], up to [`MAX_COMPACT_LAG`] behind the head, until
    /// `stop`. A round that fails (a member down, a partition) is left for the next one.
    pub async fn run(self, mut rng: Rng, mut stop: watch::Receiver<bool>) {
        let mut every = tokio::time::interval(COMPACT_EVERY);
        every.tick().await;
        loop {
            tokio::select! {
                _ = every.tick() => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
            // The kept compactions say which rounds got as far as compacting.
            let lag = 1 + rng.below(MAX_COMPACT_LAG);
            let _ = self.compact(i64::try_from(lag).unwrap_or(1)).await;
        }
    }

    /// What the compactions kept.
    pub async fn kept(&self) -> Kept {
        self.kept.lock().await.clone()
    }
}
