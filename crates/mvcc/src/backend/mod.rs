//! The storage engine behind the store, as a small trait.
//!
//! A backend keeps named tables of byte keys and values. The store owns two: `key`
//! (encoded [`Revision`] → encoded `mvccpb::KeyValue`) and `meta` (the consistent index
//! and term, the scheduled and finished compaction revisions, under etcd's key names);
//! the server keeps its own (etcd's `lease`, `auth*`, `members`, `alarm` buckets) through
//! the store's auxiliary-table API, so they commit atomically with the consistent index.
//! The store hands the backend whole [`Batch`]es to apply atomically and durably, and
//! reads through immutable [`Snapshot`]s of the last commit. Batching, visibility of
//! not-yet-committed writes and ordering are the store's job.

pub mod memory;
pub mod redb;

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use bytes::Bytes;

use crate::error::Result;
use crate::revision::{RevKey, Revision};

/// The table of revisions and key-values.
pub const KEY_TABLE: &str = "key";
/// The table of the store's bookkeeping.
pub const META_TABLE: &str = "meta";

/// `meta` key of the applied raft index (8 bytes, big-endian), as in etcd.
pub const META_CONSISTENT_INDEX: &[u8] = b"consistent_index";
/// `meta` key of the raft term of the applied index (8 bytes, big-endian), as in etcd 3.5.
pub const META_TERM: &[u8] = b"term";
/// `meta` key of the last scheduled compaction (an encoded revision), as in etcd.
pub const META_SCHEDULED_COMPACT: &[u8] = b"scheduledCompactRev";
/// `meta` key of the last finished compaction (an encoded revision), as in etcd.
pub const META_FINISHED_COMPACT: &[u8] = b"finishedCompactRev";

/// One new row of the `key` table.
#[derive(Clone, Debug)]
pub struct Row {
    /// The row's revision.
    pub rev: Revision,
    /// Whether the row is a tombstone (its key carries the `t` mark).
    pub tombstone: bool,
    /// The encoded `mvccpb::KeyValue`.
    pub value: Bytes,
}

/// How big the backend is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BackendSize {
    /// The file's length (etcd's `dbSize`).
    pub total_bytes: u64,
    /// The bytes of the pages holding data (etcd's `dbSizeInUse`): drops when a compaction
    /// deletes rows, while the file keeps its length until a defragmentation.
    pub in_use_bytes: u64,
}

/// Changes applied in one backend transaction.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    /// New rows, in ascending revision order.
    pub rows: Vec<Row>,
    /// Rows to delete (compaction), by their exact stored key.
    pub deletes: Vec<RevKey>,
    /// `meta` entries to set; the last value for each key wins.
    pub meta: BTreeMap<&'static [u8], Vec<u8>>,
    /// Auxiliary tables' changes: table → key → new value (`None` deletes).
    pub aux: BTreeMap<&'static str, BTreeMap<Bytes, Option<Bytes>>>,
}

impl Batch {
    /// Whether applying the batch would change nothing.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
            && self.deletes.is_empty()
            && self.meta.is_empty()
            && self.aux.is_empty()
    }

    /// Roughly the memory the batch holds (bytes of keys and values, plus a fixed cost
    /// per entry for its bookkeeping).
    pub fn approx_bytes(&self) -> usize {
        // A `Row` (revision, flag, `Bytes` handle) or a map node, rounded up.
        const ENTRY: usize = 64;
        let rows: usize = self.rows.iter().map(|r| ENTRY + r.value.len()).sum();
        let aux: usize = (self.aux.values().flatten())
            .map(|(k, v)| ENTRY + k.len() + v.as_ref().map_or(0, Bytes::len))
            .sum();
        let meta: usize = self.meta.iter().map(|(k, v)| ENTRY + k.len() + v.len()).sum();
        rows + aux + meta + self.deletes.len() * std::mem::size_of::<RevKey>()
    }

    /// The value of the row written at `rev`, if it is in this batch.
    pub fn get(&self, rev: Revision) -> Option<&Bytes> {
        let i = self.rows.binary_search_by_key(&rev, |r| r.rev).ok()?;
        Some(&self.rows[i].value)
    }

    /// This batch's change to `key` of auxiliary `table`: `Some(None)` if it deletes it.
    pub fn aux_get(&self, table: &str, key: &[u8]) -> Option<Option<&Bytes>> {
        self.aux.get(table)?.get(key).map(Option::as_ref)
    }
}

/// A storage engine.
pub trait Backend: Send + Sync + 'static {
    /// An immutable read view.
    type Snapshot: Snapshot;

    /// A view of everything committed so far.
    fn snapshot(&self) -> Result<Self::Snapshot>;

    /// Applies `batch` in one transaction and returns a view that includes it. With
    /// `durable` the data is on disk when this returns; without, it survives a clean close
    /// but not a crash (until a later durable commit).
    fn commit(&self, batch: &Batch, durable: bool) -> Result<Self::Snapshot>;
}

/// An immutable view of the backend as of one commit. A table that was never written
/// reads as empty.
pub trait Snapshot: Clone + Send + Sync + 'static {
    /// Calls `f` with the value under `key` in `table`, if any.
    fn get<R>(&self, table: &str, key: &[u8], f: impl FnOnce(&[u8]) -> R) -> Result<Option<R>>;

    /// Calls `f` with every row of `table` at or after `from`, in key order, until it breaks.
    fn scan(
        &self,
        table: &str,
        from: &[u8],
        f: impl FnMut(&[u8], &[u8]) -> ControlFlow<()>,
    ) -> Result<()>;

    /// The names of all tables, in byte order.
    fn tables(&self) -> Result<Vec<String>>;
}
