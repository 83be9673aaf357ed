//! The [`Backend`] on redb.
//!
//! Each [`Batch`] is one redb write transaction committed with `Durability::Immediate`
//! (one fsync per batch); snapshots are redb read transactions, which never block the
//! writer and are shared between readers until the next commit replaces them.

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;

use redb::{Database, Durability, ReadOnlyTable, ReadableDatabase, ReadableTable, TableDefinition};

use super::{Backend, Batch, Snapshot};
use crate::error::Result;

/// redb's page cache size.
pub const DEFAULT_CACHE_BYTES: usize = 256 << 20;

const KEY_TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("key");
const META_TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("meta");

/// A redb database file holding the `key` and `meta` tables.
#[derive(Debug)]
pub struct RedbBackend {
    db: Database,
}

impl RedbBackend {
    /// Opens (or creates) the database file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let db = Database::builder().set_cache_size(DEFAULT_CACHE_BYTES).create(path)?;
        let txn = db.begin_write()?;
        txn.open_table(KEY_TABLE)?;
        txn.open_table(META_TABLE)?;
        txn.commit()?;
        Ok(Self { db })
    }
}

/// A redb read transaction's view of both tables.
#[derive(Debug)]
pub struct RedbSnapshot {
    key: ReadOnlyTable<&'static [u8], &'static [u8]>,
    meta: ReadOnlyTable<&'static [u8], &'static [u8]>,
}

impl Backend for RedbBackend {
    type Snapshot = Arc<RedbSnapshot>;

    fn snapshot(&self) -> Result<Self::Snapshot> {
        let txn = self.db.begin_read()?;
        Ok(Arc::new(RedbSnapshot {
            key: txn.open_table(KEY_TABLE)?,
            meta: txn.open_table(META_TABLE)?,
        }))
    }

    fn commit(&self, batch: &Batch) -> Result<Self::Snapshot> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        {
            let mut key = txn.open_table(KEY_TABLE)?;
            for row in &batch.rows {
                key.insert(row.rev.to_key(row.tombstone).as_bytes(), &row.value[..])?;
            }
            for rev_key in &batch.deletes {
                key.remove(rev_key.as_bytes())?;
            }
            let mut meta = txn.open_table(META_TABLE)?;
            for (name, value) in &batch.meta {
                meta.insert(*name, value.as_slice())?;
            }
        }
        txn.commit()?;
        self.snapshot()
    }
}

impl Snapshot for Arc<RedbSnapshot> {
    fn get<R>(&self, key: &[u8], f: impl FnOnce(&[u8]) -> R) -> Result<Option<R>> {
        Ok(self.key.get(key)?.map(|guard| f(guard.value())))
    }

    fn scan(&self, from: &[u8], mut f: impl FnMut(&[u8], &[u8]) -> ControlFlow<()>) -> Result<()> {
        for entry in self.key.range::<&[u8]>(from..)? {
            let (k, v) = entry?;
            if f(k.value(), v.value()).is_break() {
                break;
            }
        }
        Ok(())
    }

    fn scan_meta(&self, mut f: impl FnMut(&[u8], &[u8])) -> Result<()> {
        for entry in self.meta.iter()? {
            let (k, v) = entry?;
            f(k.value(), v.value());
        }
        Ok(())
    }

    fn meta(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.meta.get(key)?.map(|guard| guard.value().to_vec()))
    }
}
