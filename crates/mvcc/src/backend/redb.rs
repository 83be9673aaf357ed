//! The [`Backend`] on redb.
//!
//! Each [`Batch`] is one redb write transaction committed with `Durability::Immediate`
//! (one fsync per batch; `Durability::None` under `unsafe_no_fsync`); snapshots are redb read transactions, which never block the
//! writer and are shared between readers until the next commit replaces them.

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;

use redb::{
    Database, Durability, ReadOnlyTable, ReadTransaction, ReadableDatabase, TableDefinition,
    TableError, TableHandle,
};

use super::{Backend, Batch, KEY_TABLE, META_TABLE, Snapshot};
use crate::error::{Error, Result};

/// Rows copied per write transaction when saving a snapshot.
pub const SNAPSHOT_CHUNK_ROWS: usize = 10_000;

/// redb's own page cache. Small on purpose: the kernel's page cache already holds the
/// file, and redb's cache is anonymous memory that counts against the server's RSS
/// (256 MiB here made RSS after 1M keys 2.3x larger at the same put throughput).
pub const DEFAULT_CACHE_BYTES: usize = 32 << 20;

fn table(name: &str) -> TableDefinition<'_, &'static [u8], &'static [u8]> {
    TableDefinition::new(name)
}

/// A redb database file holding the store's tables.
#[derive(Debug)]
pub struct RedbBackend {
    db: Database,
}

impl RedbBackend {
    /// Opens (or creates) the database file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let db = Database::builder().set_cache_size(DEFAULT_CACHE_BYTES).create(path)?;
        let txn = db.begin_write()?;
        txn.open_table(table(KEY_TABLE))?;
        txn.open_table(table(META_TABLE))?;
        txn.commit()?;
        Ok(Self { db })
    }
}

/// A redb read transaction, with the hot tables already open.
#[derive(Debug)]
pub struct RedbSnapshot {
    txn: ReadTransaction,
    key: ReadOnlyTable<&'static [u8], &'static [u8]>,
    meta: ReadOnlyTable<&'static [u8], &'static [u8]>,
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

/// Copies every table of `snapshot` into a new database file at `path` (which must not
/// exist), in chunks of [`SNAPSHOT_CHUNK_ROWS`], with one fsync at the end. Returns its size.
pub fn save(snapshot: &Arc<RedbSnapshot>, path: &Path) -> Result<u64> {
    let io =
        |what: &str, e: std::io::Error| Error::Backend(format!("{what} {}: {e}", path.display()));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| io("creating snapshot file", e))?;
    let db = Database::builder().create_file(file)?;
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
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    txn.commit()?;
    drop(db);
    std::fs::metadata(path).map(|m| m.len()).map_err(|e| io("reading snapshot file", e))
}

impl Backend for RedbBackend {
    type Snapshot = Arc<RedbSnapshot>;

    fn snapshot(&self) -> Result<Self::Snapshot> {
        let txn = self.db.begin_read()?;
        let key = txn.open_table(table(KEY_TABLE))?;
        let meta = txn.open_table(table(META_TABLE))?;
        Ok(Arc::new(RedbSnapshot { txn, key, meta }))
    }

    fn commit(&self, batch: &Batch, durable: bool) -> Result<Self::Snapshot> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(if durable { Durability::Immediate } else { Durability::None })?;
        {
            let mut key = txn.open_table(table(KEY_TABLE))?;
            for row in &batch.rows {
                key.insert(row.rev.to_key(row.tombstone).as_bytes(), &row.value[..])?;
            }
            for rev_key in &batch.deletes {
                key.remove(rev_key.as_bytes())?;
            }
            let mut meta = txn.open_table(table(META_TABLE))?;
            for (name, value) in &batch.meta {
                meta.insert(*name, value.as_slice())?;
            }
            for (name, changes) in &batch.aux {
                let mut aux = txn.open_table(table(name))?;
                for (k, v) in changes {
                    match v {
                        Some(v) => aux.insert(&k[..], &v[..])?,
                        None => aux.remove(&k[..])?,
                    };
                }
            }
        }
        txn.commit()?;
        self.snapshot()
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
