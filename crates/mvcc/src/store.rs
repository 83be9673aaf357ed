//! The store: the public API the server calls, batching, visibility and restore.
//!
//! Concurrency: one `RwLock` guards the index and the current/compacted revisions. Write
//! transactions hold it exclusively while they run (microseconds); reads hold it shared
//! only while walking the index, then fetch values without it. Values come from
//! [`Values`]: the buffers of writes not yet committed to the backend plus the backend's
//! last committed snapshot, captured under the same lock, so a read sees exactly the
//! writes applied before it, durable or not.
//!
//! Batching: writes go to the *pending* buffer. The committer thread swaps it out every
//! `batch_interval` or once it holds `batch_limit` changes and commits it to the backend
//! in one durable transaction, together with the consistent index it covers, while
//! writers keep filling a fresh buffer (writers never wait for an fsync, unless
//! `MAX_PENDING_BATCHES` batches pile up). The buffer stays readable until the backend
//! snapshot that contains it replaces it.

use std::collections::{BTreeMap, HashMap};
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Condvar, Mutex, RwLock, TryLockError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use bytes::Bytes;
use oxetcd_api::etcdserverpb::{
    CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse,
    RangeRequest, RangeResponse, TxnRequest, TxnResponse,
};
use oxetcd_api::mvccpb::{Event, KeyValue};
use prost::Message;

use crate::backend::redb::{FileRelease, RedbBackend};
use crate::backend::{
    Backend, BackendSize, Batch, KEY_TABLE, META_CONSISTENT_INDEX, META_FINISHED_COMPACT,
    META_SCHEDULED_COMPACT, META_TABLE, META_TERM, Snapshot,
};
use crate::compaction::{self, Compactable, CompactionHandle, Job, Pacing};
use crate::error::{Error, Result};
use crate::index::Index;
use crate::key_index::NotForward;
use crate::lease::{LeaseId, Lessor};
use crate::read::{self, Buffer, Values, header};
use crate::revision::{RevKey, Revision};
use crate::stats::StoreStats;
use crate::sync::{lock, read, write};
use crate::validate;
use crate::write::{State, WriteTxn};
use crate::{hash, txn};

/// Default time between backend commits (etcd's batch interval).
pub const DEFAULT_BATCH_INTERVAL: Duration = Duration::from_millis(100);
/// Default number of changes that triggers a backend commit before the interval.
pub const DEFAULT_BATCH_LIMIT: usize = 10_000;
/// Writers wait for the committer once this many batches' worth of changes are pending.
pub const MAX_PENDING_BATCHES: usize = 4;
/// Default number of rows a compaction deletes per backend commit (etcd's default).
pub const DEFAULT_COMPACTION_BATCH_LIMIT: usize = 1000;
/// Default pause between compaction batches, so writers and readers are not stalled.
pub const DEFAULT_COMPACTION_PAUSE: Duration = Duration::from_millis(10);
/// Most memory (by [`Batch::approx_bytes`]) a defragmentation keeps in batches committed
/// since its snapshot, to replay into the new file. They pile up while the snapshot is
/// copied (~4 s per GiB here, see the crate docs); past the limit, commits wait for the
/// copy to finish rather than memory growing with the write rate times the copy's length.
/// 64 MiB is the writes of several seconds at the put rate a 2-core member sustains
/// through raft (tens of thousands of small puts per second), twice redb's page cache.
pub const DEFRAG_JOURNAL_MAX_BYTES: usize = 64 << 20;
/// Replays of the kept batches into the new file while commits go on, before the last one
/// with commits held off: each replays what came in during the previous one, so the last
/// is short when the replay outruns the writes (it runs without fsync, they do not).
pub const DEFRAG_CATCH_UP_ROUNDS: usize = 8;
/// A catch-up replay this small ends the catch-up: the rest is replayed with commits held
/// off, which for 1 MiB of batches takes a few milliseconds.
pub const DEFRAG_FINAL_REPLAY_BYTES: usize = 1 << 20;

/// Tunables.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// Longest time a write waits before its batch is committed to the backend.
    pub batch_interval: Duration,
    /// Number of changes after which a batch is committed without waiting.
    pub batch_limit: usize,
    /// Most compares or ops per txn level (etcd's `--max-txn-ops`).
    pub max_txn_ops: usize,
    /// Largest encoded write request (etcd's `--max-request-bytes`).
    pub max_request_bytes: usize,
    /// Rows deleted per compaction commit.
    pub compaction_batch_limit: usize,
    /// Pause between compaction commits.
    pub compaction_pause: Duration,
    /// etcd's `--unsafe-no-fsync`: batches are committed without fsync (one durable commit
    /// on close). A crash can lose applied writes; `durable_index` then only means
    /// "committed". For tests and throwaway clusters.
    pub unsafe_no_fsync: bool,
    /// Where the store counts its ops and times its commits; shared by every store the
    /// server opens in turn.
    pub stats: Arc<StoreStats>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            batch_interval: DEFAULT_BATCH_INTERVAL,
            batch_limit: DEFAULT_BATCH_LIMIT,
            max_txn_ops: validate::DEFAULT_MAX_TXN_OPS,
            max_request_bytes: validate::DEFAULT_MAX_REQUEST_BYTES,
            compaction_batch_limit: DEFAULT_COMPACTION_BATCH_LIMIT,
            compaction_pause: DEFAULT_COMPACTION_PAUSE,
            unsafe_no_fsync: false,
            stats: Arc::default(),
        }
    }
}

/// The raft position of an applied entry: saved with the data it produced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApplyIndex {
    /// The raft log index.
    pub index: u64,
    /// The raft term of that entry.
    pub term: u64,
}

impl ApplyIndex {
    /// Position zero, before the first entry: what a store driven by no raft log (tests,
    /// benchmarks, tools) writes at. Like any position, a write records it as the
    /// consistent index.
    pub const ZERO: ApplyIndex = ApplyIndex { index: 0, term: 0 };
}

/// A write's response and the events it produced (for watchers).
#[derive(Clone, Debug)]
pub struct WriteResult<T> {
    /// The response to send back.
    pub response: T,
    /// One event per changed key, in sub-revision order; empty if nothing changed.
    pub events: Vec<Event>,
}

/// The result of HashKV.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashKv {
    /// crc32c (Castagnoli) of the `key` table up to the revision, as etcd computes it.
    pub hash: u32,
    /// The store's current revision.
    pub current_rev: i64,
    /// The store's compacted revision.
    pub compact_rev: i64,
}

/// What the committer and writers coordinate on.
#[derive(Debug, Default)]
struct Signal {
    stop: bool,
    commit_wanted: bool,
}

/// What the backend's last commit holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommitPoint {
    /// The store revision it includes.
    pub revision: i64,
    /// The raft position it includes.
    pub index: ApplyIndex,
}

/// A point-in-time copy of the backend, saved to a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SavedSnapshot {
    /// What the copy holds.
    pub at: CommitPoint,
    /// Size of the file.
    pub bytes: u64,
}

/// What a defragmentation did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Defragmented {
    /// The backend's size before.
    pub before: BackendSize,
    /// The backend's size after.
    pub after: BackendSize,
    /// How long it took, from the snapshot to the swap.
    pub took: Duration,
    /// How long commits were held off (the final replay, fsync, rename and swap); reads
    /// and writes into the pending buffer went on meanwhile.
    pub commits_paused: Duration,
}

/// Batches committed since a defragmentation's snapshot, oldest first.
#[derive(Default)]
struct Journal {
    batches: Vec<Arc<Buffer>>,
    bytes: usize,
}

/// The backend view readers capture.
struct View<S> {
    committed: S,
    committed_at: CommitPoint,
    committing: Option<Arc<Buffer>>,
    pending: Arc<Buffer>,
}

/// What the store's threads share.
struct Shared<B: Backend> {
    backend: B,
    config: StoreConfig,
    lessor: Arc<dyn Lessor>,
    state: RwLock<State>,
    /// The consistent index of the last applied entry.
    applied: Mutex<ApplyIndex>,
    view: RwLock<View<B::Snapshot>>,
    commit_lock: Mutex<()>,
    pending_ops: AtomicUsize,
    signal: Mutex<Signal>,
    wake_committer: Condvar,
    committed: Condvar,
    /// Signalled once, when the store shuts down.
    shutdown: Condvar,
    failure: Mutex<Option<Error>>,
    stopping: AtomicBool,
    /// While a defragmentation runs: what was committed since its snapshot.
    journal: Mutex<Option<Journal>>,
    /// Signalled when the journal shrinks or ends.
    journal_drained: Condvar,
}

/// The multi-version key-value store.
pub struct Store<B: Backend = RedbBackend> {
    shared: Arc<Shared<B>>,
    committer: Option<JoinHandle<()>>,
    compactor: Option<(Sender<Job>, JoinHandle<()>)>,
    last_compaction: Mutex<Option<CompactionHandle>>,
    /// Held by the running defragmentation; then the outcome of the last one.
    defrag: Mutex<Option<Result<Defragmented>>>,
}

impl<B: Backend> std::fmt::Debug for Store<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = read(&self.shared.state);
        f.debug_struct("Store")
            .field("current_rev", &state.current_rev)
            .field("compact_rev", &state.compact_rev)
            .field("keys", &state.index.len())
            .finish()
    }
}

impl Store<RedbBackend> {
    /// Opens (or creates) a store in the redb file at `path`.
    pub fn open_path(
        path: impl AsRef<Path>,
        config: StoreConfig,
        lessor: Arc<dyn Lessor>,
    ) -> Result<Self> {
        Self::open(RedbBackend::open(path)?, config, lessor)
    }

    /// Writes a point-in-time copy of every table (consistent index included) to a new
    /// file at `path`, from a read snapshot: writes and reads go on meanwhile. The copy
    /// has no free pages (a defragmented database) and opens as a store; it is what a
    /// raft snapshot or `snapshot save` ships.
    pub fn save_snapshot(&self, path: impl AsRef<Path>) -> Result<SavedSnapshot> {
        self.pin_snapshot()?.save(path)
    }

    /// Commits pending writes and holds the backend as that commit left it, so that
    /// [`PinnedSnapshot::save`] can copy it later, on another thread, while the caller
    /// records what else goes with that point (the raft snapshot's membership).
    pub fn pin_snapshot(&self) -> Result<PinnedSnapshot> {
        self.shared.commit()?;
        let view = read(&self.shared.view);
        Ok(PinnedSnapshot { snapshot: view.committed.clone(), at: view.committed_at })
    }

    /// The backend's file length and bytes in use as of its last commit (O(1); see
    /// [`RedbBackend::size`] for how they are kept).
    pub fn backend_size(&self) -> BackendSize {
        self.shared.backend.size()
    }

    /// Tells when the backend's file is closed: after this store and every snapshot
    /// taken from it are dropped.
    pub fn file_release(&self) -> FileRelease {
        self.shared.backend.file_release()
    }

    /// Rewrites the backend into a compact new file and swaps it in, while reads and writes
    /// go on (unlike etcd's defragmentation, which blocks both throughout).
    ///
    /// The last commit's snapshot is copied into `<path>.defrag` on the caller's thread
    /// while the committer keeps committing to the old file; the batches it commits
    /// meanwhile are kept (up to [`DEFRAG_JOURNAL_MAX_BYTES`]; past that, commits wait
    /// for the copy) and replayed into the new file. Then, with commits held off for the
    /// last replay, one fsync, the rename over the database path and a directory sync,
    /// the new file is swapped in. Readers and writers into the pending buffer never wait;
    /// read snapshots of the old file (a [`PinnedSnapshot`] being saved) stay valid until
    /// dropped. The data, the consistent index and [`durable_index`](Self::durable_index)
    /// are the same before and after.
    ///
    /// A crash leaves the old file or the new one at the path, each holding every commit
    /// up to its consistent index; a stale `<path>.defrag` is removed at open. A failure
    /// before the rename leaves the old file in service and the store healthy (the error
    /// is returned); only a failed directory sync after the rename fails the store, since
    /// a crash could then bring back the old file without the commits that follow.
    ///
    /// One runs at a time: a caller that arrives while one runs waits for it and gets its
    /// outcome. Works on a store opened by a tool as well as under raft.
    pub fn defragment(&self) -> Result<Defragmented> {
        let mut outcome = match self.defrag.try_lock() {
            Ok(outcome) => outcome,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => {
                return lock(&self.defrag).clone().unwrap_or_else(|| {
                    Err(Error::Backend("the concurrent defragmentation did not finish".into()))
                });
            }
        };
        *outcome = None;
        let result = self.shared.defragment();
        *outcome = Some(result.clone());
        result
    }
}

impl Shared<RedbBackend> {
    fn defragment(&self) -> Result<Defragmented> {
        let started = Instant::now();
        let before = self.backend.size();
        let (from, journal) = {
            let _commits = lock(&self.commit_lock);
            self.check_failure()?;
            *lock(&self.journal) = Some(Journal::default());
            let journal = JournalGuard(self);
            // What the backend holds now; every later commit goes to the journal.
            (self.backend.snapshot()?, journal)
        };
        let mut file = self.backend.begin_defrag(&from)?;
        drop(from);
        for _ in 0..DEFRAG_CATCH_UP_ROUNDS {
            let (batches, bytes) = journal.drain();
            replay(&mut file, &batches)?;
            if bytes <= DEFRAG_FINAL_REPLAY_BYTES {
                break;
            }
        }
        #[cfg(feature = "failpoints")]
        fail::fail_point!("mvcc::defrag", |_| Err(Error::Backend(
            "injected defragmentation failure".into()
        )));
        let commits = lock(&self.commit_lock);
        let paused = Instant::now();
        self.check_failure()?;
        let (batches, _) = journal.drain();
        drop(journal);
        replay(&mut file, &batches)?;
        let swapped = self.backend.finish_defrag(file)?;
        write(&self.view).committed = swapped.snapshot;
        let after = self.backend.size();
        drop(commits);
        let commits_paused = paused.elapsed();
        swapped.retired.close();
        if let Err(e) = swapped.dir_synced {
            self.fail(e.clone());
            return Err(e);
        }
        Ok(Defragmented { before, after, took: started.elapsed(), commits_paused })
    }
}

/// Replays journaled batches, in order, into a defragmentation's file.
fn replay(file: &mut crate::backend::redb::DefragFile, batches: &[Arc<Buffer>]) -> Result<()> {
    if batches.is_empty() {
        return Ok(());
    }
    let guards: Vec<_> = batches.iter().map(|b| read(b)).collect();
    file.apply(guards.iter().map(|g| &**g))
}

/// Keeps the journal on while a defragmentation runs, and turns it off however that ends.
struct JournalGuard<'a, B: Backend>(&'a Shared<B>);

impl<B: Backend> JournalGuard<'_, B> {
    /// Takes the batches kept so far, and their size.
    fn drain(&self) -> (Vec<Arc<Buffer>>, usize) {
        let taken = lock(&self.0.journal).as_mut().map(std::mem::take).unwrap_or_default();
        self.0.journal_drained.notify_all();
        (taken.batches, taken.bytes)
    }
}

impl<B: Backend> Drop for JournalGuard<'_, B> {
    fn drop(&mut self) {
        *lock(&self.0.journal) = None;
        self.0.journal_drained.notify_all();
    }
}

/// One backend commit, held for copying (see [`Store::pin_snapshot`]).
pub struct PinnedSnapshot {
    snapshot: <RedbBackend as Backend>::Snapshot,
    at: CommitPoint,
}

impl PinnedSnapshot {
    /// What the copy will hold.
    pub fn at(&self) -> CommitPoint {
        self.at
    }

    /// Writes the copy to a new file at `path` (see [`Store::save_snapshot`]).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<SavedSnapshot> {
        let bytes = crate::backend::redb::save(&self.snapshot, path.as_ref())?;
        Ok(SavedSnapshot { at: self.at, bytes })
    }

    /// Writes the copy to a new file at `path` in etcd's backend format (bbolt, see
    /// [`crate::etcd_file`]), synced: what `etcdctl snapshot save` expects to receive.
    pub fn save_bbolt(&self, path: impl AsRef<Path>) -> Result<SavedSnapshot> {
        let bytes = crate::etcd_file::save_bbolt(&self.snapshot, path.as_ref())?;
        Ok(SavedSnapshot { at: self.at, bytes })
    }

    /// The layout of the copy in etcd's format (see [`crate::etcd_file::bbolt_layout`]):
    /// a pass over every row, writing nothing.
    pub fn bbolt_layout(&self) -> Result<oxetcd_bbolt::Layout> {
        crate::etcd_file::bbolt_layout(&self.snapshot)
    }

    /// Writes the copy in etcd's format to `out` front to back, given its
    /// [`PinnedSnapshot::bbolt_layout`]: what `Maintenance.Snapshot` streams, with no
    /// copy on disk.
    pub fn stream_bbolt<W: std::io::Write>(
        &self,
        layout: oxetcd_bbolt::Layout,
        out: W,
    ) -> Result<W> {
        crate::etcd_file::stream_bbolt(&self.snapshot, layout, out)
    }
}

pub(crate) fn meta_u64(snapshot: &impl Snapshot, key: &[u8]) -> Result<u64> {
    match snapshot.get(META_TABLE, key, <[u8]>::to_vec)? {
        None => Ok(0),
        Some(bytes) => {
            let arr: [u8; 8] = bytes.as_slice().try_into().map_err(|_| {
                Error::Corrupt(format!("meta {:?} is not 8 bytes", String::from_utf8_lossy(key)))
            })?;
            Ok(u64::from_be_bytes(arr))
        }
    }
}

fn meta_rev(snapshot: &impl Snapshot, key: &[u8]) -> Result<Option<i64>> {
    match snapshot.get(META_TABLE, key, <[u8]>::to_vec)? {
        None => Ok(None),
        Some(bytes) => Revision::from_key(&bytes).map(|(rev, _)| Some(rev.main)).ok_or_else(|| {
            Error::Corrupt(format!("meta {:?} is not a revision", String::from_utf8_lossy(key)))
        }),
    }
}

/// Auxiliary tables may not be the store's own.
fn check_aux_table(table: &str) -> Result<()> {
    if table == KEY_TABLE || table == META_TABLE {
        return Err(Error::ReservedTable(table.to_owned()));
    }
    Ok(())
}

/// What a scan of the `key` table rebuilds.
struct Restored {
    index: Index,
    /// The highest main revision stored.
    max_rev: i64,
    /// Every live key with a lease, and the lease.
    leases: HashMap<Bytes, LeaseId>,
}

/// Rebuilds the index from every stored row, in revision order.
fn restore_index(snapshot: &impl Snapshot) -> Result<Restored> {
    let mut index = Index::new();
    let mut max_rev = 0;
    let mut leases = HashMap::new();
    let mut failure = None;
    snapshot.scan(KEY_TABLE, &[], |k, v| {
        let row = Revision::from_key(k)
            .ok_or_else(|| Error::Corrupt(format!("key table row {k:?} is not a revision")))
            .and_then(|(rev, tomb)| Ok((rev, tomb, KeyValue::decode(v)?)));
        let (rev, tombstone, kv) = match row {
            Ok(row) => row,
            Err(e) => {
                failure = Some(e);
                return ControlFlow::Break(());
            }
        };
        let created = Revision::at_main(kv.create_revision);
        if let Err(NotForward { latest }) =
            index.restore(&kv.key, rev, tombstone, created, kv.version)
        {
            let detail = format!("key table row {rev:?} of {:?} is not after {latest:?}", kv.key);
            failure = Some(Error::Corrupt(detail));
            return ControlFlow::Break(());
        }
        max_rev = max_rev.max(rev.main);
        if tombstone || kv.lease == 0 {
            leases.remove(&kv.key);
        } else {
            leases.insert(kv.key, kv.lease);
        }
        ControlFlow::Continue(())
    })?;
    match failure {
        Some(e) => Err(e),
        None => Ok(Restored { index, max_rev, leases }),
    }
}

impl<B: Backend> Store<B> {
    /// Opens a store on `backend`: rebuilds the index, reattaches leased keys to `lessor`,
    /// resumes an interrupted compaction, and starts the committer.
    pub fn open(backend: B, config: StoreConfig, lessor: Arc<dyn Lessor>) -> Result<Self> {
        let snapshot = backend.snapshot()?;
        let consistent = ApplyIndex {
            index: meta_u64(&snapshot, META_CONSISTENT_INDEX)?,
            term: meta_u64(&snapshot, META_TERM)?,
        };
        let finished = meta_rev(&snapshot, META_FINISHED_COMPACT)?;
        let scheduled = meta_rev(&snapshot, META_SCHEDULED_COMPACT)?;
        let Restored { index, max_rev, leases } = restore_index(&snapshot)?;
        for (key, lease) in &leases {
            lessor.attach(*lease, key);
        }
        let compact_rev = finished.max(scheduled).unwrap_or(-1);
        let current_rev = max_rev.max(compact_rev).max(1);
        let state = State { index, current_rev, compact_rev, leases };
        let shared = Arc::new(Shared {
            backend,
            config,
            lessor,
            state: RwLock::new(state),
            applied: Mutex::new(consistent),
            view: RwLock::new(View {
                committed: snapshot,
                committed_at: CommitPoint { revision: current_rev, index: consistent },
                committing: None,
                pending: Arc::default(),
            }),
            commit_lock: Mutex::new(()),
            pending_ops: AtomicUsize::new(0),
            signal: Mutex::default(),
            wake_committer: Condvar::new(),
            committed: Condvar::new(),
            shutdown: Condvar::new(),
            failure: Mutex::new(None),
            stopping: AtomicBool::new(false),
            journal: Mutex::new(None),
            journal_drained: Condvar::new(),
        });
        let committer = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name("mvcc-commit".into())
                .spawn(move || shared.run_committer())
                .map_err(|e| Error::Backend(format!("spawning the committer: {e}")))?
        };
        let (jobs, queue) = mpsc::channel();
        let compactor = {
            let shared = Arc::clone(&shared);
            let pacing = Pacing {
                batch_limit: shared.config.compaction_batch_limit,
                pause: shared.config.compaction_pause,
            };
            thread::Builder::new()
                .name("mvcc-compact".into())
                .spawn(move || compaction::run_jobs(&*shared, pacing, &queue))
                .map_err(|e| Error::Backend(format!("spawning the compactor: {e}")))?
        };
        let store = Self {
            shared,
            committer: Some(committer),
            compactor: Some((jobs, compactor)),
            last_compaction: Mutex::new(None),
            defrag: Mutex::new(None),
        };
        if let Some(rev) = scheduled.filter(|s| finished.is_none_or(|f| *s > f)) {
            store.schedule_compaction(rev);
        }
        Ok(store)
    }

    /// The revision of the last write (1 for an empty store).
    pub fn current_revision(&self) -> i64 {
        read(&self.shared.state).current_rev
    }

    /// The revision of the last compaction (-1 if never compacted).
    pub fn compact_revision(&self) -> i64 {
        read(&self.shared.state).compact_rev
    }

    /// The raft position of the last applied entry (what restart replays from).
    pub fn consistent_index(&self) -> ApplyIndex {
        *lock(&self.shared.applied)
    }

    /// The raft position covered by the last durable backend commit: WAL entries up to
    /// here may be purged.
    pub fn durable_index(&self) -> ApplyIndex {
        read(&self.shared.view).committed_at.index
    }

    /// Records an applied entry that did not change the key space (or whose write failed
    /// validation), so the consistent index still moves with the log.
    pub fn set_consistent_index(&self, apply: ApplyIndex) -> Result<()> {
        self.shared.check_failure()?;
        let _state = write(&self.shared.state);
        self.shared.record_apply(apply);
        Ok(())
    }

    /// Number of keys that exist at the current revision.
    pub fn key_count(&self) -> usize {
        read(&self.shared.state).index.live_keys()
    }

    /// Range (a serializable read of the local state; the server adds linearizability).
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse> {
        validate::check_range(req)?;
        self.shared.config.stats.ranges.fetch_add(1, Ordering::Relaxed);
        let (plan, values) = {
            let state = read(&self.shared.state);
            let values = self.shared.values();
            let plan = read::plan(&state.index, state.current_rev, state.compact_rev, req)?;
            (plan, values)
        };
        read::execute(&values, req, plan)
    }

    /// One chunk of a streamed range ([`crate::range_stream`]): the keys of `req`'s range
    /// from `from` on, read at `at` (0: the current revision), at most `max_kvs` of them
    /// and about `byte_budget` bytes.
    pub fn range_chunk(
        &self,
        req: &RangeRequest,
        at: i64,
        from: &[u8],
        max_kvs: usize,
        byte_budget: usize,
    ) -> Result<read::Chunk> {
        self.shared.config.stats.ranges.fetch_add(1, Ordering::Relaxed);
        let (plan, values) = {
            let state = read(&self.shared.state);
            let values = self.shared.values();
            let plan = read::plan_chunk(
                &state.index,
                state.current_rev,
                state.compact_rev,
                req,
                at,
                from,
                max_kvs,
            )?;
            (plan, values)
        };
        read::execute_chunk(&values, req.keys_only, plan, byte_budget)
    }

    /// Put, applying the raft entry at `at`.
    pub fn put(&self, req: &PutRequest, at: ApplyIndex) -> Result<WriteResult<PutResponse>> {
        validate::check_put(req)?;
        validate::check_request_size(req.encoded_len(), self.shared.config.max_request_bytes)?;
        self.write(at, |txn| txn.put(req))
    }

    /// DeleteRange, applying the raft entry at `at`.
    pub fn delete_range(
        &self,
        req: &DeleteRangeRequest,
        at: ApplyIndex,
    ) -> Result<WriteResult<DeleteRangeResponse>> {
        validate::check_delete_range(req)?;
        validate::check_request_size(req.encoded_len(), self.shared.config.max_request_bytes)?;
        self.write(at, |txn| txn.delete_range(req))
    }

    /// Txn, applying the raft entry at `at`. A txn whose chosen branch only reads changes
    /// nothing and creates no revision (`at` is still recorded).
    pub fn txn(&self, req: &TxnRequest, at: ApplyIndex) -> Result<WriteResult<TxnResponse>> {
        validate::check_txn(req, self.shared.config.max_txn_ops)?;
        validate::check_request_size(req.encoded_len(), self.shared.config.max_request_bytes)?;
        self.write(at, |t| txn::run(t, req))
    }

    /// A read-only Txn served outside the log, as etcd serves one: every op in `req`,
    /// nested ones included, must be a Range (etcd's `isTxnReadonly`; the caller checks).
    /// It records no consistent index.
    pub fn txn_read(&self, req: &TxnRequest) -> Result<TxnResponse> {
        validate::check_txn(req, self.shared.config.max_txn_ops)?;
        validate::check_request_size(req.encoded_len(), self.shared.config.max_request_bytes)?;
        let read = self.transact(|t| txn::run(t, req), || {})?;
        debug_assert!(read.events.is_empty(), "txn_read was given a txn that writes");
        Ok(read.response)
    }

    /// Deletes each of `keys` (those that exist) at one new revision: a lease revoke,
    /// which etcd applies as one txn. Unlike [`txn`](Self::txn) it has no op limit, since
    /// the request is the server's own, not a client's.
    pub fn delete_keys(&self, keys: &[Bytes], at: ApplyIndex) -> Result<WriteResult<i64>> {
        self.write(at, |t| {
            let mut deleted = 0;
            for key in keys {
                let req = DeleteRangeRequest { key: key.clone(), ..Default::default() };
                deleted += t.delete_range(&req)?.deleted;
            }
            Ok(deleted)
        })
    }

    /// Compact: forgets history before `rev`. The index is compacted and the backend rows
    /// deleted in the background, in bounded batches; the handle says when that is done
    /// (what the request's `physical` flag waits for). The scheduled revision is durable
    /// before this returns, so a restart resumes the compaction.
    pub fn compact(
        &self,
        rev: i64,
        at: ApplyIndex,
    ) -> Result<(CompactionResponse, CompactionHandle)> {
        self.shared.check_failure()?;
        let current = {
            let mut state = write(&self.shared.state);
            if rev <= state.compact_rev {
                return Err(Error::Compacted);
            }
            if rev > state.current_rev {
                return Err(Error::FutureRev);
            }
            state.compact_rev = rev;
            self.shared
                .set_meta(META_SCHEDULED_COMPACT, Revision::at_main(rev).to_bytes().to_vec());
            self.shared.record_apply(at);
            state.current_rev
        };
        self.shared.commit()?;
        let handle = self.schedule_compaction(rev);
        Ok((CompactionResponse { header: header(current) }, handle))
    }

    fn schedule_compaction(&self, rev: i64) -> CompactionHandle {
        let handle = CompactionHandle::default();
        let queued = self
            .compactor
            .as_ref()
            .is_some_and(|(jobs, _)| jobs.send(Job { rev, done: handle.clone() }).is_ok());
        if !queued {
            handle.finish(Err(Error::Closed));
        }
        *lock(&self.last_compaction) = Some(handle.clone());
        handle
    }

    /// The handle of the latest compaction scheduled by this store, including one resumed
    /// when the store was opened; `None` if there was none.
    pub fn last_compaction(&self) -> Option<CompactionHandle> {
        lock(&self.last_compaction).clone()
    }

    /// Every change at main revisions `from..to`, in order, as events without `prev_kv`:
    /// what a watcher that fell behind catches up from. `Compacted` if `from` is below the
    /// compacted revision (as in etcd, a watch may start at the compacted revision itself,
    /// where deletes compacted away are missing).
    pub fn events(&self, from: i64, to: i64) -> Result<Vec<Event>> {
        let values = {
            let state = read(&self.shared.state);
            if from < state.compact_rev {
                return Err(Error::Compacted);
            }
            self.shared.values()
        };
        values.events(from, to)
    }

    /// etcd's Hash: crc32c of the store's tables (the consistent index and term excluded),
    /// and the current revision. Commits pending writes first.
    pub fn hash(&self) -> Result<(u32, i64)> {
        self.shared.commit()?;
        let current = self.current_revision();
        let hash = hash::hash_all(&self.shared.committed())?;
        Ok((hash, current))
    }

    /// etcd's HashKV: crc32c of the `key` table up to `rev` (0 for current), skipping what
    /// compaction at the compacted revision removes, so members with the same history
    /// agree whether or not their compaction has physically finished.
    pub fn hash_kv(&self, rev: i64) -> Result<HashKv> {
        let (rev, current_rev, compact_rev, keep) = {
            let state = read(&self.shared.state);
            let (current, compacted) = (state.current_rev, state.compact_rev);
            if rev > 0 && rev <= compacted {
                return Err(Error::Compacted);
            }
            if rev > 0 && rev > current {
                return Err(Error::FutureRev);
            }
            let rev = if rev == 0 { current } else { rev };
            (rev, current, compacted, state.index.keep(rev))
        };
        self.shared.commit()?;
        let hash = hash::hash_kv(&self.shared.committed(), rev, compact_rev, &keep)?;
        Ok(HashKv { hash, current_rev, compact_rev })
    }

    /// Changes rows of an auxiliary table (the server's lease, auth, membership and alarm
    /// state): they join the pending batch, so they commit atomically with the key space
    /// and the consistent index, and read back at once through [`aux_get`](Self::aux_get).
    /// A value of `None` deletes the row.
    pub fn aux_write(
        &self,
        table: &'static str,
        changes: impl IntoIterator<Item = (Bytes, Option<Bytes>)>,
        at: ApplyIndex,
    ) -> Result<()> {
        check_aux_table(table)?;
        self.shared.check_failure()?;
        {
            let _state = write(&self.shared.state);
            let pending = Arc::clone(&read(&self.shared.view).pending);
            let mut batch = write(&pending);
            let rows = batch.aux.entry(table).or_default();
            let before = rows.len();
            rows.extend(changes);
            let added = rows.len() - before;
            drop(batch);
            self.shared.pending_ops.fetch_add(added.max(1), Ordering::Relaxed);
            self.shared.record_apply(at);
        }
        self.shared.after_write();
        Ok(())
    }

    /// A row of an auxiliary table, including writes not yet committed.
    pub fn aux_get(&self, table: &str, key: &[u8]) -> Result<Option<Bytes>> {
        check_aux_table(table)?;
        let values = self.shared.locked_values();
        for buffer in &values.buffers {
            if let Some(change) = read(buffer).aux_get(table, key) {
                return Ok(change.cloned());
            }
        }
        values.committed.get(table, key, Bytes::copy_from_slice)
    }

    /// Every row of an auxiliary table in key order, including writes not yet committed.
    pub fn aux_scan(&self, table: &str) -> Result<Vec<(Bytes, Bytes)>> {
        check_aux_table(table)?;
        let values = self.shared.locked_values();
        let mut rows = BTreeMap::new();
        values.committed.scan(table, &[], |k, v| {
            rows.insert(Bytes::copy_from_slice(k), Some(Bytes::copy_from_slice(v)));
            ControlFlow::Continue(())
        })?;
        // Oldest buffer first, so newer changes win.
        for buffer in values.buffers.iter().rev() {
            if let Some(changes) = read(buffer).aux.get(table) {
                rows.extend(changes.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
        Ok(rows.into_iter().filter_map(|(k, v)| Some((k, v?))).collect())
    }

    /// Commits pending writes to the backend now.
    pub fn force_commit(&self) -> Result<()> {
        self.shared.commit()
    }

    /// The failure that made the store refuse writes and commits, if any: the
    /// committer thread's failures have no caller to report to.
    pub fn failure(&self) -> Option<Error> {
        lock(&self.shared.failure).clone()
    }

    /// Stops the background threads after a final commit.
    pub fn close(mut self) -> Result<()> {
        self.shutdown();
        self.shared.check_failure()
    }

    fn shutdown(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        {
            let mut signal = lock(&self.shared.signal);
            signal.stop = true;
            self.shared.wake_committer.notify_all();
            self.shared.shutdown.notify_all();
        }
        if let Some(handle) = self.committer.take() {
            let _ = handle.join();
        }
        if let Some((jobs, handle)) = self.compactor.take() {
            drop(jobs);
            let _ = handle.join();
        }
        if self.shared.config.unsafe_no_fsync
            && let Err(e) = self.shared.backend.commit(&Default::default(), true)
        {
            self.shared.fail(e);
        }
    }

    /// Runs `f` as the write transaction of the raft entry at `at`, recorded with its
    /// changes if it succeeds.
    fn write<R>(
        &self,
        at: ApplyIndex,
        f: impl FnOnce(&mut WriteTxn<'_, B::Snapshot>) -> Result<R>,
    ) -> Result<WriteResult<R>> {
        self.transact(f, || self.shared.record_apply(at))
    }

    /// Runs `f` in a write transaction, under the exclusive lock; `succeeded` runs under
    /// the same lock if `f` succeeds.
    fn transact<R>(
        &self,
        f: impl FnOnce(&mut WriteTxn<'_, B::Snapshot>) -> Result<R>,
        succeeded: impl FnOnce(),
    ) -> Result<WriteResult<R>> {
        self.shared.check_failure()?;
        let result = {
            let mut state = write(&self.shared.state);
            let values = self.shared.values();
            let pending = Arc::clone(&values.buffers[0]);
            let mut txn = WriteTxn::new(&mut state, &values, &pending, &*self.shared.lessor);
            let result = f(&mut txn);
            self.shared.config.stats.record(txn.ops());
            if let Err(e) = &result
                && txn.changed()
            {
                // Validation and checks run before any change, so this is an I/O or data
                // failure halfway through a transaction. Its changes stay invisible (the
                // revision does not move) and are never committed: the store refuses every
                // write and commit from now on, and a restart replays the log.
                self.shared.fail(e.clone());
                return Err(e.clone());
            }
            let events = txn.finish();
            self.shared.pending_ops.fetch_add(events.len(), Ordering::Relaxed);
            if result.is_ok() {
                succeeded();
            }
            result.map(|response| WriteResult { response, events })
        };
        self.shared.after_write();
        result
    }
}

impl<B: Backend> Drop for Store<B> {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl<B: Backend> Shared<B> {
    /// The value view for a reader; call with the state lock held.
    fn values(&self) -> Values<B::Snapshot> {
        let view = read(&self.view);
        let mut buffers = vec![Arc::clone(&view.pending)];
        buffers.extend(view.committing.clone());
        Values { buffers, committed: view.committed.clone() }
    }

    /// A value view taken under the state lock (for readers that need no index).
    fn locked_values(&self) -> Values<B::Snapshot> {
        let _state = read(&self.state);
        self.values()
    }

    /// The backend's last committed snapshot.
    fn committed(&self) -> B::Snapshot {
        read(&self.view).committed.clone()
    }

    /// Adds a `meta` entry to the pending batch; call with the state lock held exclusively.
    fn set_meta(&self, key: &'static [u8], value: Vec<u8>) {
        let pending = Arc::clone(&read(&self.view).pending);
        write(&pending).meta.insert(key, value);
    }

    /// Records the consistent index in the pending batch; call with the state lock held
    /// exclusively.
    fn record_apply(&self, apply: ApplyIndex) {
        *lock(&self.applied) = apply;
        self.set_meta(META_CONSISTENT_INDEX, apply.index.to_be_bytes().to_vec());
        self.set_meta(META_TERM, apply.term.to_be_bytes().to_vec());
    }

    /// Adds row deletions (compaction) to the pending batch, then lets `more` change the
    /// same batch before a commit can take it.
    fn pend_deletes(&self, keys: Vec<RevKey>, more: impl FnOnce(&mut Batch)) {
        let _state = write(&self.state);
        self.pending_ops.fetch_add(keys.len(), Ordering::Relaxed);
        let pending = Arc::clone(&read(&self.view).pending);
        let mut batch = write(&pending);
        batch.deletes.extend(keys);
        more(&mut batch);
    }

    fn check_failure(&self) -> Result<()> {
        match &*lock(&self.failure) {
            Some(e) => Err(Error::Backend(format!("store failed earlier: {e}"))),
            None => Ok(()),
        }
    }

    fn fail(&self, e: Error) {
        lock(&self.failure).get_or_insert(e);
        self.committed.notify_all();
    }

    /// Wakes the committer when a batch is full; waits when too many are pending.
    fn after_write(&self) {
        let limit = self.config.batch_limit.max(1);
        if self.pending_ops.load(Ordering::Relaxed) < limit {
            return;
        }
        let mut signal = lock(&self.signal);
        signal.commit_wanted = true;
        self.wake_committer.notify_one();
        while self.pending_ops.load(Ordering::Relaxed) >= limit * MAX_PENDING_BATCHES
            && lock(&self.failure).is_none()
            && !signal.stop
        {
            signal = self
                .committed
                .wait_timeout(signal, self.config.batch_interval)
                .map_or_else(|e| e.into_inner().0, |(guard, _)| guard);
        }
    }

    fn run_committer(&self) {
        let mut signal = lock(&self.signal);
        loop {
            if !signal.stop && !signal.commit_wanted {
                signal = self
                    .wake_committer
                    .wait_timeout(signal, self.config.batch_interval)
                    .map_or_else(|e| e.into_inner().0, |(guard, _)| guard);
            }
            signal.commit_wanted = false;
            let stop = signal.stop;
            drop(signal);
            if let Err(e) = self.commit() {
                self.fail(e);
            }
            if stop {
                return;
            }
            signal = lock(&self.signal);
        }
    }

    fn backend_commit(&self, batch: &crate::backend::Batch) -> Result<B::Snapshot> {
        #[cfg(feature = "failpoints")]
        fail::fail_point!("mvcc::backend-commit", |_| Err(Error::Backend(
            "injected failure".into()
        )));
        let committed = self.backend.commit(batch, !self.config.unsafe_no_fsync)?;
        // Committed, yet reported failed: the store must stop all the same, and what was
        // committed must not be applied twice after a restart.
        #[cfg(feature = "failpoints")]
        fail::fail_point!("mvcc::backend-commit-after", |_| Err(Error::Backend(
            "injected failure after the commit".into()
        )));
        Ok(committed)
    }

    /// Waits while a defragmentation's journal is full (see [`DEFRAG_JOURNAL_MAX_BYTES`]).
    fn wait_for_journal_room(&self) {
        let mut journal = lock(&self.journal);
        while journal.as_ref().is_some_and(|j| j.bytes >= DEFRAG_JOURNAL_MAX_BYTES)
            && !self.stopping.load(Ordering::SeqCst)
            && lock(&self.failure).is_none()
        {
            journal = self
                .journal_drained
                .wait_timeout(journal, self.config.batch_interval)
                .map_or_else(|e| e.into_inner().0, |(guard, _)| guard);
        }
    }

    /// Commits the pending buffer to the backend (one commit at a time).
    fn commit(&self) -> Result<()> {
        self.wait_for_journal_room();
        let _one_at_a_time = lock(&self.commit_lock);
        self.check_failure()?;
        let (buffer, covers) = {
            let state = write(&self.state);
            let mut view = write(&self.view);
            if read(&view.pending).is_empty() {
                return Ok(());
            }
            let buffer = std::mem::take(&mut view.pending);
            view.committing = Some(Arc::clone(&buffer));
            self.pending_ops.store(0, Ordering::Relaxed);
            (buffer, CommitPoint { revision: state.current_rev, index: *lock(&self.applied) })
        };
        let started = Instant::now();
        let committed = self.backend_commit(&read(&buffer));
        self.config.stats.commit.observe(started.elapsed());
        let snapshot = match committed {
            Ok(snapshot) => snapshot,
            Err(e) => {
                self.fail(e.clone());
                return Err(e);
            }
        };
        if let Some(journal) = lock(&self.journal).as_mut() {
            journal.bytes += read(&buffer).approx_bytes();
            journal.batches.push(Arc::clone(&buffer));
        }
        {
            let mut view = write(&self.view);
            view.committed = snapshot;
            view.committed_at = covers;
            view.committing = None;
        }
        let _signal = lock(&self.signal);
        self.committed.notify_all();
        Ok(())
    }
}

impl<B: Backend> Compactable for Shared<B> {
    type Snapshot = B::Snapshot;

    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    fn with_index<R>(&self, f: impl FnOnce(&mut Index) -> R) -> R {
        f(&mut write(&self.state).index)
    }

    fn committed(&self) -> B::Snapshot {
        Shared::committed(self)
    }

    fn delete_rows(&self, keys: Vec<RevKey>) {
        self.pend_deletes(keys, |_| {});
    }

    fn delete_last_rows(&self, keys: Vec<RevKey>, rev: i64) {
        self.pend_deletes(keys, |batch| {
            batch.meta.insert(META_FINISHED_COMPACT, Revision::at_main(rev).to_bytes().to_vec());
        });
    }

    fn commit(&self) -> Result<()> {
        // A compaction batch's commit fails as any backend commit does: the store fails
        // (its owner stops the member) and the compaction is left to resume from its
        // durable scheduled revision at the next open.
        #[cfg(feature = "failpoints")]
        fail::fail_point!("mvcc::compact", |_| {
            let e = Error::Backend("injected compaction failure".into());
            self.fail(e.clone());
            Err(e)
        });
        Shared::commit(self)
    }

    fn pause(&self, pause: Duration) {
        let signal = lock(&self.signal);
        let _ = self.shutdown.wait_timeout_while(signal, pause, |s| !s.stop);
    }
}
