//! The [`Backend`] on redb.
//!
//! Each [`Batch`] is one redb write transaction committed with `Durability::Immediate`
//! (one fsync per batch; `Durability::None` under `unsafe_no_fsync`); snapshots are redb
//! read transactions, which never block the writer and are shared between readers until
//! the next commit replaces them.
//!
//! # Defragmentation
//!
//! redb, like bbolt, never gives freed pages back to the file system. A defragmentation
//! copies every table of a read snapshot into a new file, `<path>.defrag`
//! ([`RedbBackend::begin_defrag`]), replays the batches committed since that snapshot
//! into it ([`DefragFile::apply`]), then ([`RedbBackend::finish_defrag`]) commits it
//! durably, renames it over `<path>`, syncs the directory and swaps the open database.
//! The copy runs beside the normal commits, which go on into the old file; the store
//! keeps the batches and decides when to replay them (see `Store::defragment`).
//!
//! The database sits behind an `RwLock<Arc<..>>` so it can be swapped; every snapshot
//! holds an `Arc` of the database it reads, so a read snapshot of the old file (a reader
//! in flight, a pinned snapshot being copied) stays valid after the swap, and the old
//! file (unlinked by the rename) is closed when the last one drops.
//!
//! # Size
//!
//! [`RedbBackend::size`] answers from two counters, so it is O(1). The file length is
//! re-read (one `fstat`) after each commit. The bytes in use (allocated pages) are
//! measured exactly with redb's `WriteTransaction::stats` when a file is opened and after
//! a defragmentation's copy; in between they move with the bytes of keys and values
//! stored, which each commit counts exactly (redb's insert and remove hand back the old
//! value), at the pages-per-stored-byte ratio of the last measurement.
//! `stats` cannot run per commit: it reads every page of every tree (measured on 2 cores,
//! release build, file in the page cache: 0.7-1.0 s for 1M keys of 1 KiB, 1.46 GB in use
//! in a 2.16 GB file, a quarter of that store's open), while the counting is free and the
//! `fstat` costs 0.9 µs, beside 38 µs for the cheapest commit (one put, no fsync; both
//! from `size_accounting_cost` in `tests/defrag.rs`).

use std::fs::File;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use redb::{
    Database, Durability, ReadOnlyTable, ReadTransaction, ReadableDatabase, TableDefinition,
    TableError, TableHandle, WriteTransaction,
};

use super::{Backend, BackendSize, Batch, KEY_TABLE, META_TABLE, Snapshot};
use crate::error::{Error, Result};
use crate::sync::{lock, read, write};

/// Rows copied per write transaction when saving a snapshot or defragmenting.
pub const SNAPSHOT_CHUNK_ROWS: usize = 10_000;

/// redb's own page cache. Small on purpose: the kernel's page cache already holds the
/// file, and redb's cache is anonymous memory that counts against the server's RSS
/// (256 MiB here made RSS after 1M keys 2.3x larger at the same put throughput; 32 → 16
/// MiB took 20 MiB off RSS after 100k puts, with random reads over 1M keys no slower:
/// docs/benchmarks.md). Under a write load it fills with the revision tree's newest
/// leaves, which are written once and rarely read again.
pub const DEFAULT_CACHE_BYTES: usize = 16 << 20;

/// What is appended to the database path to name the file a defragmentation builds.
pub const DEFRAG_SUFFIX: &str = ".defrag";

/// How long [`Retired::close`] waits for the last reader of a swapped-out file. Readers
/// hold a snapshot for microseconds; closing the file flushes and syncs it, which should
/// happen on the defragmenting thread rather than on a reader's. A pinned snapshot held
/// longer (a raft snapshot being sent) closes the file itself when it drops.
pub const RETIRE_WAIT: Duration = Duration::from_secs(1);

/// Pages allocated per byte of keys and values stored, for a file holding too little to
/// measure it on (below [`MIN_CALIBRATION_BYTES`]). Measured with `stats` on stores filled
/// by puts (ascending revisions, as the `key` table is written): 1.19 for 256-byte values,
/// 1.3 for 1 KiB values (three to a 4 KiB page).
pub const DEFAULT_PAGES_PER_STORED_BYTE: f64 = 1.3;

/// Below this many bytes of keys and values, a file's own ratio of allocated to stored
/// bytes is dominated by fixed overhead (a fresh file allocates 8 KiB) and is not used.
pub const MIN_CALIBRATION_BYTES: u64 = 256 << 10;

fn table(name: &str) -> TableDefinition<'_, &'static [u8], &'static [u8]> {
    TableDefinition::new(name)
}

/// The path a defragmentation of the database at `path` builds its new file at.
pub fn defrag_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(DEFRAG_SUFFIX);
    PathBuf::from(name)
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::Backend(format!("{what} {}: {e}", path.display()))
}

/// An open database file.
#[derive(Debug)]
struct Open {
    db: Database,
    /// A second handle on the same file, for its length.
    file: File,
    /// Dropped last (fields drop in order), once `db` and `file` are closed and so the
    /// file's lock released.
    closed: ClosedFlag,
}

/// Set when dropped; [`FileRelease`] reads it.
#[derive(Debug, Default)]
struct ClosedFlag(Arc<AtomicBool>);

impl Drop for ClosedFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

impl Open {
    /// Creates the database in `file` (an empty file, or an existing database).
    fn new(file: File, path: &Path) -> Result<Self> {
        let handle = file.try_clone().map_err(|e| io_error("duplicating", path, e))?;
        let db = Database::builder().set_cache_size(DEFAULT_CACHE_BYTES).create_file(file)?;
        Ok(Self { db, file: handle, closed: ClosedFlag::default() })
    }

    fn len(&self) -> Result<u64> {
        self.file.metadata().map(|m| m.len()).map_err(|e| Error::Backend(format!("fstat: {e}")))
    }

    /// Measures the pages in use exactly: walks every tree.
    fn measure(&self) -> Result<Usage> {
        let txn = self.db.begin_write()?;
        let stats = txn.stats()?;
        txn.abort()?;
        let measured = stats.allocated_pages() * stats.page_size() as u64;
        let stored = stats.stored_bytes();
        let ratio = if stored >= MIN_CALIBRATION_BYTES {
            measured as f64 / stored as f64
        } else {
            DEFAULT_PAGES_PER_STORED_BYTE
        };
        Ok(Usage { measured, measured_stored: stored, ratio, stored })
    }
}

/// The bytes in use: measured, then moved with the bytes stored.
#[derive(Clone, Copy, Debug)]
struct Usage {
    /// Bytes of allocated pages at the last measurement.
    measured: u64,
    /// Bytes of keys and values stored then.
    measured_stored: u64,
    /// Allocated bytes per stored byte: the file's own when it holds enough to tell.
    ratio: f64,
    /// Bytes of keys and values stored now.
    stored: u64,
}

impl Usage {
    /// Adds `delta` bytes of keys and values.
    fn add(&mut self, delta: i64) {
        self.stored = self.stored.saturating_add_signed(delta);
    }

    /// Bytes of allocated pages, estimated.
    fn in_use(&self) -> u64 {
        let change = self.stored as f64 - self.measured_stored as f64;
        // Saturates at 0 if the stored bytes fall below what the ratio expects of the
        // measured pages (only on a nearly empty file, where the ratio is the default).
        (self.measured as f64 + change * self.ratio).max(0.0) as u64
    }
}

/// A redb database file holding the store's tables.
#[derive(Debug)]
pub struct RedbBackend {
    path: PathBuf,
    open: RwLock<Arc<Open>>,
    total_bytes: AtomicU64,
    in_use_bytes: AtomicU64,
    /// What `in_use_bytes` is computed from; changed by commits and swaps only.
    usage: Mutex<Usage>,
}

impl RedbBackend {
    /// Opens (or creates) the database file at `path`, removing what a defragmentation
    /// interrupted by a crash left at `<path>.defrag`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        remove_stale(&defrag_path(&path))?;
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io_error("opening", &path, e))?;
        let open = Open::new(file, &path)?;
        let txn = open.db.begin_write()?;
        txn.open_table(table(KEY_TABLE))?;
        txn.open_table(table(META_TABLE))?;
        txn.commit()?;
        let total = open.len()?;
        let usage = open.measure()?;
        Ok(Self {
            path,
            open: RwLock::new(Arc::new(open)),
            total_bytes: AtomicU64::new(total),
            in_use_bytes: AtomicU64::new(usage.in_use()),
            usage: Mutex::new(usage),
        })
    }

    /// The file's length and the bytes of its pages in use, as of the last commit (O(1)).
    pub fn size(&self) -> BackendSize {
        BackendSize {
            total_bytes: self.total_bytes.load(Ordering::Relaxed),
            in_use_bytes: self.in_use_bytes.load(Ordering::Relaxed),
        }
    }

    fn current(&self) -> Arc<Open> {
        Arc::clone(&read(&self.open))
    }

    /// Tells when the file now in service is closed, and so its lock released: once
    /// every handle on it (this backend, its snapshots) is dropped.
    pub fn file_release(&self) -> FileRelease {
        FileRelease(Arc::clone(&read(&self.open).closed.0))
    }

    fn snapshot_of(open: Arc<Open>) -> Result<Arc<RedbSnapshot>> {
        let txn = open.db.begin_read()?;
        let key = txn.open_table(table(KEY_TABLE))?;
        let meta = txn.open_table(table(META_TABLE))?;
        Ok(Arc::new(RedbSnapshot { txn, key, meta, _open: open }))
    }

    /// Starts a defragmentation: copies every table of `from` into a new file at
    /// `<path>.defrag` (replacing a stale one), in chunks, without durability. Runs on the
    /// caller's thread beside commits to the current file. Dropping the result abandons
    /// it and removes the file.
    pub fn begin_defrag(&self, from: &Arc<RedbSnapshot>) -> Result<DefragFile> {
        let path = defrag_path(&self.path);
        remove_stale(&path)?;
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| io_error("creating", &path, e))?;
        let mut defrag = DefragFile { open: None, path, usage: None, renamed: false };
        let open = Open::new(file, &defrag.path)?;
        copy_tables(from, &open.db)?;
        // One durable commit: the copy's fsync, here rather than while commits are held off
        // (where it took 384 ms for a 1.46 GB copy, against 7 ms for the final replay now).
        let mut txn = open.db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        txn.commit()?;
        defrag.usage = Some(open.measure()?);
        defrag.open = Some(Arc::new(open));
        Ok(defrag)
    }

    /// Finishes a defragmentation: commits `defrag` durably, renames it over the database
    /// path and swaps it in. The caller must hold off commits meanwhile and have applied
    /// every batch committed since the snapshot it was copied from. Before the rename an
    /// error leaves the current file in service (and the new one removed); after it, the
    /// new file is in service and only the directory sync can fail (see [`Swapped`]).
    pub fn finish_defrag(&self, mut defrag: DefragFile) -> Result<Swapped> {
        let gone = || Error::Backend("defrag file not built".into());
        // Until the rename, `defrag` keeps the file too, so that a failure removes it.
        let open = defrag.open.clone().ok_or_else(gone)?;
        let usage = defrag.usage.ok_or_else(gone)?;
        let mut txn = open.db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        txn.commit()?;
        let total = open.len()?;
        // The new file is final (commits are held off): its snapshot can be taken now, so
        // that nothing but the directory sync can fail after the rename.
        let snapshot = Self::snapshot_of(Arc::clone(&open))?;
        std::fs::rename(&defrag.path, &self.path)
            .map_err(|e| io_error("renaming defragmented file to", &self.path, e))?;
        defrag.renamed = true;
        let old = std::mem::replace(&mut *write(&self.open), open);
        self.total_bytes.store(total, Ordering::Relaxed);
        *lock(&self.usage) = usage;
        self.in_use_bytes.store(usage.in_use(), Ordering::Relaxed);
        let dir_synced = sync_dir(&self.path);
        Ok(Swapped { snapshot, dir_synced, retired: Retired(old) })
    }
}

/// Removes `path` if it exists.
fn remove_stale(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(io_error("removing stale", path, e))
        }
        _ => Ok(()),
    }
}

/// Makes a rename in the directory of `path` durable.
fn sync_dir(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io_error("syncing directory", dir, e))
}

/// A new database file being built by a defragmentation (see
/// [`RedbBackend::begin_defrag`]).
#[derive(Debug)]
pub struct DefragFile {
    open: Option<Arc<Open>>,
    path: PathBuf,
    /// Measured after the copy, then moved by the replays.
    usage: Option<Usage>,
    /// Whether the file is now the database's (and no longer to remove).
    renamed: bool,
}

impl DefragFile {
    /// Applies `batches`, in order, in one transaction without durability (the durable
    /// commit comes with [`RedbBackend::finish_defrag`]).
    pub fn apply<'a>(&mut self, batches: impl IntoIterator<Item = &'a Batch>) -> Result<()> {
        let open = self.open.as_ref().ok_or_else(|| Error::Backend("defrag file gone".into()))?;
        let mut txn = open.db.begin_write()?;
        txn.set_durability(Durability::None)?;
        let mut delta = 0;
        for batch in batches {
            delta += write_batch(&txn, batch)?;
        }
        txn.commit()?;
        if let Some(usage) = &mut self.usage {
            usage.add(delta);
        }
        Ok(())
    }
}

impl Drop for DefragFile {
    fn drop(&mut self) {
        if !self.renamed {
            // Abandoned: close it, then remove it.
            drop(self.open.take());
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A defragmented file in service (see [`RedbBackend::finish_defrag`]).
#[derive(Debug)]
#[must_use]
pub struct Swapped {
    /// A snapshot of the new file: the same data as the last commit to the old one.
    pub snapshot: Arc<RedbSnapshot>,
    /// Whether the rename was made durable. If not, a crash may bring back the old file
    /// while commits now go to the new one: the store must stop committing.
    pub dir_synced: Result<()>,
    /// The old file, to close once its readers are done.
    pub retired: Retired,
}

/// Whether a database file is closed yet (see [`RedbBackend::file_release`]). redb locks
/// its file while open, so a process that opens the same path again (a member restarted
/// in place) must wait for this first.
///
/// Not the last handle's reference count reaching zero: that is seen before the drop it
/// starts has closed the file (redb's own close writes first).
#[derive(Debug, Clone)]
pub struct FileRelease(Arc<AtomicBool>);

impl FileRelease {
    pub fn is_released(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// A swapped-out database file, open while read snapshots of it live.
#[derive(Debug)]
pub struct Retired(Arc<Open>);

impl Retired {
    /// Closes the old file here once its last reader is done, waiting up to
    /// [`RETIRE_WAIT`]; a reader that holds on longer closes it when it lets go.
    pub fn close(self) {
        let deadline = Instant::now() + RETIRE_WAIT;
        while Arc::strong_count(&self.0) > 1 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// A redb read transaction, with the hot tables already open.
#[derive(Debug)]
pub struct RedbSnapshot {
    txn: ReadTransaction,
    key: ReadOnlyTable<&'static [u8], &'static [u8]>,
    meta: ReadOnlyTable<&'static [u8], &'static [u8]>,
    /// The database read, kept open (after a defragmentation swapped it out) until the
    /// transaction, dropped first, is done with it.
    _open: Arc<Open>,
}

impl RedbSnapshot {
    /// Runs `f` on `name`, opening it unless it is one of the hot tables; `None` if the
    /// table does not exist.
    fn with_table<R>(
        &self,
        name: &str,
        f: impl FnOnce(&ReadOnlyTable<&'static [u8], &'static [u8]>) -> Result<R>,
    ) -> Result<Option<R>> {
        match name {
            KEY_TABLE => f(&self.key).map(Some),
            META_TABLE => f(&self.meta).map(Some),
            _ => match self.txn.open_table(table(name)) {
                Ok(t) => f(&t).map(Some),
                Err(TableError::TableDoesNotExist(_)) => Ok(None),
                Err(e) => Err(e.into()),
            },
        }
    }
}

/// Copies every table of `snapshot` into `db`, in transactions of
/// [`SNAPSHOT_CHUNK_ROWS`] rows without durability.
fn copy_tables(snapshot: &Arc<RedbSnapshot>, db: &Database) -> Result<()> {
    for name in snapshot.tables()? {
        let mut from = Vec::new();
        loop {
            let mut txn = db.begin_write()?;
            txn.set_durability(Durability::None)?;
            let mut copied = 0;
            let mut failure = None;
            let mut last = Vec::new();
            {
                let mut dest = txn.open_table(table(&name))?;
                snapshot.scan(&name, &from, |k, v| {
                    if copied == SNAPSHOT_CHUNK_ROWS {
                        return ControlFlow::Break(());
                    }
                    if let Err(e) = dest.insert(k, v) {
                        failure = Some(e);
                        return ControlFlow::Break(());
                    }
                    copied += 1;
                    last.clear();
                    last.extend_from_slice(k);
                    ControlFlow::Continue(())
                })?;
            }
            if let Some(e) = failure {
                return Err(e.into());
            }
            txn.commit()?;
            if copied < SNAPSHOT_CHUNK_ROWS {
                break;
            }
            // Resume after the last key copied.
            last.push(0);
            from = last;
        }
    }
    Ok(())
}

/// Copies every table of `snapshot` into a new database file at `path` (which must not
/// exist), in chunks of [`SNAPSHOT_CHUNK_ROWS`], with one fsync at the end. Returns its size.
pub fn save(snapshot: &Arc<RedbSnapshot>, path: &Path) -> Result<u64> {
    let file = NewFile::create(path)?;
    copy_tables(snapshot, &file.db)?;
    file.finish()
}

/// A database file being filled from outside the store (a snapshot copy, an import of
/// etcd's backend): rows go in without durability, in transactions of
/// [`SNAPSHOT_CHUNK_ROWS`]; [`NewFile::finish`] makes the whole file durable at once.
#[derive(Debug)]
pub struct NewFile {
    db: Database,
    path: PathBuf,
}

impl NewFile {
    /// Creates the file at `path`, which must not exist.
    pub fn create(path: &Path) -> Result<NewFile> {
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| io_error("creating", path, e))?;
        let db = Database::builder().set_cache_size(DEFAULT_CACHE_BYTES).create_file(file)?;
        Ok(NewFile { db, path: path.to_path_buf() })
    }

    /// Inserts `rows` into `table` (created if new), in key order or not; returns how
    /// many were inserted. Stops at the first error `rows` yields.
    pub fn write_table(
        &self,
        name: &str,
        rows: impl IntoIterator<Item = Result<(Vec<u8>, Vec<u8>)>>,
    ) -> Result<u64> {
        let mut rows = rows.into_iter().peekable();
        let mut written = 0u64;
        loop {
            let mut txn = self.db.begin_write()?;
            txn.set_durability(Durability::None)?;
            {
                let mut dest = txn.open_table(table(name))?;
                for row in rows.by_ref().take(SNAPSHOT_CHUNK_ROWS) {
                    let (k, v) = row?;
                    dest.insert(k.as_slice(), v.as_slice())?;
                    written += 1;
                }
            }
            txn.commit()?;
            if rows.peek().is_none() {
                return Ok(written);
            }
        }
    }

    /// Commits durably and closes the file; returns its size.
    pub fn finish(self) -> Result<u64> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        txn.commit()?;
        drop(self.db);
        std::fs::metadata(&self.path)
            .map(|m| m.len())
            .map_err(|e| io_error("reading the size of", &self.path, e))
    }
}

/// Writes `batch` in `txn`; returns the change in bytes of keys and values stored.
fn write_batch(txn: &WriteTransaction, batch: &Batch) -> Result<i64> {
    let mut delta = 0i64;
    let mut change = |key: usize, new: Option<usize>, old: Option<usize>| {
        let bytes = |v: Option<usize>| v.map_or(0, |v| (key + v) as i64);
        delta += bytes(new) - bytes(old);
    };
    let mut key = txn.open_table(table(KEY_TABLE))?;
    for row in &batch.rows {
        let k = row.rev.to_key(row.tombstone);
        let old = key.insert(k.as_bytes(), &row.value[..])?.map(|g| g.value().len());
        change(k.as_bytes().len(), Some(row.value.len()), old);
    }
    for rev_key in &batch.deletes {
        let old = key.remove(rev_key.as_bytes())?.map(|g| g.value().len());
        change(rev_key.as_bytes().len(), None, old);
    }
    let mut meta = txn.open_table(table(META_TABLE))?;
    for (name, value) in &batch.meta {
        let old = meta.insert(*name, value.as_slice())?.map(|g| g.value().len());
        change(name.len(), Some(value.len()), old);
    }
    for (name, changes) in &batch.aux {
        let mut aux = txn.open_table(table(name))?;
        for (k, v) in changes {
            let old = match v {
                Some(v) => aux.insert(&k[..], &v[..])?,
                None => aux.remove(&k[..])?,
            };
            change(k.len(), v.as_ref().map(|v| v.len()), old.map(|g| g.value().len()));
        }
    }
    Ok(delta)
}

impl Backend for RedbBackend {
    type Snapshot = Arc<RedbSnapshot>;

    fn snapshot(&self) -> Result<Self::Snapshot> {
        Self::snapshot_of(self.current())
    }

    fn commit(&self, batch: &Batch, durable: bool) -> Result<Self::Snapshot> {
        let open = self.current();
        let mut txn = open.db.begin_write()?;
        txn.set_durability(if durable { Durability::Immediate } else { Durability::None })?;
        let delta = write_batch(&txn, batch)?;
        txn.commit()?;
        let total = open.len()?;
        self.total_bytes.store(total, Ordering::Relaxed);
        let mut usage = lock(&self.usage);
        usage.add(delta);
        self.in_use_bytes.store(usage.in_use(), Ordering::Relaxed);
        Self::snapshot_of(open)
    }
}

impl Snapshot for Arc<RedbSnapshot> {
    fn get<R>(&self, table: &str, key: &[u8], f: impl FnOnce(&[u8]) -> R) -> Result<Option<R>> {
        Ok(self.with_table(table, |t| Ok(t.get(key)?.map(|guard| f(guard.value()))))?.flatten())
    }

    fn scan(
        &self,
        table: &str,
        from: &[u8],
        mut f: impl FnMut(&[u8], &[u8]) -> ControlFlow<()>,
    ) -> Result<()> {
        self.with_table(table, |t| {
            for entry in t.range::<&[u8]>(from..)? {
                let (k, v) = entry?;
                if f(k.value(), v.value()).is_break() {
                    break;
                }
            }
            Ok(())
        })?;
        Ok(())
    }

    fn tables(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = self.txn.list_tables()?.map(|h| h.name().to_owned()).collect();
        names.sort();
        Ok(names)
    }
}
