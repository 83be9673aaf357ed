//! Compaction in the background: the index in chunks, then the backend in batches.
//!
//! Jobs run one after another on the store's compactor thread, in the order scheduled.
//! The index is compacted `INDEX_COMPACTION_CHUNK` keys at a time under the index lock;
//! then rows at or below the compaction revision that the index no longer needs are
//! deleted `compaction_batch_limit` at a time, one backend commit per batch with a pause
//! between, and the finished revision is recorded with the last batch. Reads at or after
//! the compaction revision are never affected: they only reach kept rows.
//!
//! The compactor reaches the store through `Compactable`, which the store implements:
//! this module depends on the index and the backend, never on the store.

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::backend::{KEY_TABLE, Snapshot};
use crate::error::{Error, Result};
use crate::index::Index;
use crate::revision::{RevKey, Revision};
use crate::sync::lock;

/// Keys compacted per hold of the index lock.
pub const INDEX_COMPACTION_CHUNK: usize = 10_000;

/// What a compaction needs from the store it runs in.
pub(crate) trait Compactable {
    /// The backend's read snapshot.
    type Snapshot: Snapshot;
    /// Whether the store is shutting down.
    fn stopping(&self) -> bool;
    /// Runs `f` with the index, under the store's exclusive lock.
    fn with_index<R>(&self, f: impl FnOnce(&mut Index) -> R) -> R;
    /// The backend's last committed snapshot.
    fn committed(&self) -> Self::Snapshot;
    /// Adds row deletions to the pending batch.
    fn delete_rows(&self, keys: Vec<RevKey>);
    /// Adds the last row deletions of the compaction at `rev` to the pending batch,
    /// together with `rev` as the finished compaction revision.
    fn delete_last_rows(&self, keys: Vec<RevKey>, rev: i64);
    /// Commits the pending batch to the backend.
    fn commit(&self) -> Result<()>;
    /// Sleeps for `pause` unless the store shuts down first.
    fn pause(&self, pause: Duration);
}

/// How fast the backend rows go.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pacing {
    /// Rows deleted per backend commit.
    pub batch_limit: usize,
    /// Pause between commits.
    pub pause: Duration,
}

/// A scheduled compaction.
#[derive(Debug)]
pub(crate) struct Job {
    pub rev: i64,
    pub done: CompactionHandle,
}

/// Tells when a compaction has physically finished.
#[derive(Clone, Debug, Default)]
pub struct CompactionHandle {
    inner: Arc<(Mutex<Option<Result<()>>>, Condvar)>,
}

impl CompactionHandle {
    pub(crate) fn finish(&self, result: Result<()>) {
        let (outcome, cv) = &*self.inner;
        *lock(outcome) = Some(result);
        cv.notify_all();
    }

    /// Whether the compaction has finished (or failed).
    pub fn is_done(&self) -> bool {
        lock(&self.inner.0).is_some()
    }

    /// Blocks until the compaction has finished; `Err(Closed)` if the store shut down first
    /// (it resumes when the store is reopened).
    pub fn wait(&self) -> Result<()> {
        let (outcome, cv) = &*self.inner;
        let mut guard = lock(outcome);
        loop {
            if let Some(result) = &*guard {
                return result.clone();
            }
            guard = cv.wait(guard).unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    /// Like [`wait`](Self::wait), giving up after `timeout` (`None` then).
    pub fn wait_timeout(&self, timeout: Duration) -> Option<Result<()>> {
        let (outcome, cv) = &*self.inner;
        let guard = lock(outcome);
        let (guard, _) = cv
            .wait_timeout_while(guard, timeout, |o| o.is_none())
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        guard.clone()
    }
}

/// The compactor thread: runs jobs until the store closes.
pub(crate) fn run_jobs(store: &impl Compactable, pacing: Pacing, jobs: &Receiver<Job>) {
    while let Ok(job) = jobs.recv() {
        let result = compact(store, pacing, job.rev);
        job.done.finish(result);
    }
}

fn stopped(store: &impl Compactable) -> Result<()> {
    if store.stopping() {
        return Err(Error::Closed);
    }
    Ok(())
}

fn compact(store: &impl Compactable, pacing: Pacing, rev: i64) -> Result<()> {
    let mut keep = HashSet::new();
    let mut resume = None;
    loop {
        stopped(store)?;
        resume = store.with_index(|index| {
            index.compact_chunk(rev, resume.as_deref(), INDEX_COMPACTION_CHUNK, &mut keep)
        });
        if resume.is_none() {
            break;
        }
    }
    // Every row at or below `rev` was committed when the compaction was scheduled.
    let limit = pacing.batch_limit.max(1);
    let end = Revision::at_main(rev.saturating_add(1)).to_bytes();
    let mut from = Vec::new();
    loop {
        stopped(store)?;
        let mut doomed: Vec<RevKey> = Vec::new();
        let mut scanned = 0;
        let mut corrupt = None;
        let mut last_seen = Vec::new();
        store.committed().scan(KEY_TABLE, &from, |key, _| {
            if key >= &end[..] || scanned == limit {
                return ControlFlow::Break(());
            }
            scanned += 1;
            last_seen.clear();
            last_seen.extend_from_slice(key);
            match Revision::from_key(key) {
                Some((r, tomb)) if !keep.contains(&r) => doomed.push(r.to_key(tomb)),
                Some(_) => {}
                None => {
                    corrupt =
                        Some(Error::Corrupt(format!("key table row {key:?} is not a revision")))
                }
            }
            ControlFlow::Continue(())
        })?;
        if let Some(e) = corrupt {
            return Err(e);
        }
        // Resume after the last key seen.
        last_seen.push(0);
        from = last_seen;
        let last = scanned < limit;
        if last {
            store.delete_last_rows(doomed, rev);
            store.commit()?;
            return Ok(());
        }
        store.delete_rows(doomed);
        store.commit()?;
        store.pause(pacing.pause);
    }
}
