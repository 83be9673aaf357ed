//! The multi-version store behind oxetcd: etcd's `mvcc` package, rebuilt.
//!
//! # What the server calls
//!
//! ```text
//! Store::open_path(path, StoreConfig, Arc<dyn Lessor>)    // restore: index, leases, compaction
//! store.range(&RangeRequest)                   -> RangeResponse          (reads, any thread)
//! store.txn_read(&TxnRequest)                  -> TxnResponse            (read-only: no log)
//! store.put(&PutRequest, at)                   -> WriteResult<PutResponse>
//! store.delete_range(&DeleteRangeRequest, at)  -> WriteResult<DeleteRangeResponse>
//! store.txn(&TxnRequest, at)                   -> WriteResult<TxnResponse>
//! store.delete_keys(&[key], at)                -> WriteResult<i64>       (lease revoke)
//! store.compact(rev, at)                       -> (CompactionResponse, CompactionHandle)
//! store.set_consistent_index(at)               // entries that change no key, or failed
//! store.events(from, to)                       // history for watchers catching up
//! store.hash() / store.hash_kv(rev)            // Maintenance.Hash / HashKV
//! store.save_snapshot(path)                    // Maintenance.Snapshot, raft snapshots
//! store.defragment()                           -> Defragmented           (Maintenance.Defragment)
//! store.backend_size()                         -> BackendSize            (dbSize, dbSizeInUse, quota)
//! store.aux_write(table, rows, at)             // lease, auth, members, alarm tables
//! store.aux_get(table, key) / aux_scan(table)
//! store.consistent_index() / durable_index()   // replay from / purge WAL up to
//! store.current_revision() / compact_revision() / key_count()
//! StoreConfig::stats                           // ops and backend commits, for metrics
//! validate::{check_range, check_put, check_delete_range, check_txn, check_request_size}
//! ```
//!
//! `at` is the [`ApplyIndex`] (raft index and term) of the log entry being applied: every
//! write records it as the consistent index, in the same backend batch as its changes. A
//! store driven by no raft log (tests, benchmarks, tools) writes at [`ApplyIndex::ZERO`].
//!
//! Requests and responses are the `etcdserverpb` wire types; headers carry only
//! `revision` (the server fills `cluster_id`, `member_id`, `raft_term`). Every write
//! returns the `mvccpb::Event`s it produced, for the watchable store: deletes carry
//! `prev_kv`; puts do not (the old value is read only when the request asks for it;
//! a watcher that wants it reads it at `mod_revision - 1`, as etcd's do). A write that fails (validation, a missing lease or key, a compacted or future
//! revision inside a txn) changes nothing, not even the consistent index: the apply loop
//! then calls `set_consistent_index`. A backend failure in the middle of a write makes
//! the store refuse further writes (etcd panics there); the member must restart and
//! replay its WAL.
//!
//! # Semantics (etcd's)
//!
//! * A fresh store is at revision 1; each write transaction that changes anything gets the
//!   next main revision, its changes sub revisions 0, 1, …; a txn that only reads, or a
//!   delete that matches nothing, creates no revision.
//! * `range_end`: empty = one key, `"\0"` = every key from `key`, otherwise `[key,
//!   range_end)`; a `range_end` at or before `key` selects nothing (no error). A
//!   non-positive `revision` reads the current one, a negative `limit` is no limit.
//! * Range `count` counts every key in range (before filters and limit); `more` says the
//!   limit cut the result; sorting by a target other than KEY defaults to ascending.
//! * Txn compares (nested ones too) are all evaluated before any op runs; a missing key
//!   compares as a zero key-value except for VALUE compares, which fail.
//! * Compact(rev): `rev <= compacted` is "required revision has been compacted",
//!   `rev > current` "required revision is a future revision"; reads at exactly the
//!   compacted revision still work, as in etcd.
//!
//! # Layout
//!
//! * [`revision`]: `(main, sub)`, encoded as etcd does (17 bytes big-endian, `t` suffix
//!   for tombstones), so HashKV and etcd's db files line up.
//! * [`key_index`], [`index`]: key → generations in a `BTreeMap<Box<[u8]>, KeyIndex>`; a
//!   live key with one remaining revision (written once, or compacted down to its latest
//!   write) is packed inline in the map slot (24-byte enum, no allocation): measured at
//!   ~93 bytes per key beyond the key bytes at 1M keys (resident-set growth, including
//!   allocator and B-tree slack). Keys with uncompacted history cost ~270 bytes (up
//!   to four revisions; 16 more per revision beyond) until a compaction settles them.
//! * [`backend`]: the storage trait (named tables; the store's own are `key` and `meta`,
//!   with etcd's names and meta keys) and its redb implementation: one durable redb
//!   transaction per batch. The server's tables (etcd's `lease`, `auth*`, `members`,
//!   `alarm` buckets) go through `Store::aux_*`, in the same batches, so they are atomic
//!   with the consistent index and readable before they are durable.
//! * [`store`]: locking, batching, visibility, restore. Writes go to an in-memory pending
//!   buffer, readable at once; a committer thread commits it every 100 ms or 10k changes
//!   together with the consistent index it covers, while writers fill a fresh buffer.
//!   Readers capture (buffers, last committed redb snapshot) atomically with the index
//!   state, so they see every applied write and never wait for a commit.
//! * [`read`], [`mod@write`], [`txn`]: Range, Put/DeleteRange, Txn.
//! * [`etcd_file`]: etcd's backend file (bbolt) out (`PinnedSnapshot::stream_bbolt`, what
//!   `Maintenance.Snapshot` streams; `export_bbolt`, `oxetcdutl migrate --to etcd`) and in
//!   (`convert_in_place`): buckets are tables, row for row.
//! * [`compaction`]: background job: the index in chunks of 10k keys, then backend rows in
//!   batches (1000 per commit, 10 ms apart); scheduled/finished revisions in `meta`; an
//!   interrupted compaction resumes on open.
//! * [`hash`]: Hash and HashKV (crc32c) as etcd computes them.
//! * [`validate`]: etcd's v3rpc request checks; [`error`]: errors and their gRPC mapping;
//!   [`lease`]: the seam to the lessor.
//!
//! # Choices, with measurements (2 cores)
//!
//! * Visibility through an in-memory buffer (etcd's read-buffer idea) rather than a redb
//!   commit per applied entry: a redb commit costs ~6.7 µs with `Durability::None` even
//!   for one row (~56 µs with fsync; 10k rows ~7 ms), which would cap one-op writes near
//!   150k/s and stall the apply loop. A buffered put costs ~2.4 µs all in (≈420k puts/s
//!   in-process), the redb commit runs on the committer thread, and writers never wait
//!   for an fsync.
//! * Readers share the redb read transaction of the last commit instead of opening one
//!   per read (~0.6 µs each): a point Range is ~1.2 µs (≈850k/s).
//! * `unsafe_no_fsync` (etcd's `--unsafe-no-fsync`) skips the per-batch fsync.
//! * `save_snapshot` copies a read snapshot into a fresh file: a point-in-time,
//!   defragmented database, made without stopping writes.
//! * `defragment` does not stop the world (etcd #9222: etcd blocks every read and write
//!   throughout). It copies the last commit's snapshot into `<path>.defrag` on the
//!   caller's thread while commits go on into the old file; the batches committed
//!   meanwhile are kept (at most `DEFRAG_JOURNAL_MAX_BYTES`, 64 MiB: past it commits
//!   wait, so memory stays bounded and the cost degrades to a stall) and replayed in
//!   catch-up rounds; then, with only commits held off, the rest is replayed, the file
//!   fsynced, renamed over the db and swapped in. Snapshots hold their database open, so
//!   readers and pinned snapshots of the old file stay valid. A crash leaves the old or
//!   the new file, each complete up to its consistent index (a stale `.defrag` is removed
//!   at open); a failure before the rename leaves the old file serving. Measured
//!   (`defrag_latency_at_scale` in `tests/defrag.rs`, release, 1M keys of 1 KiB: 1.46 GB
//!   in use in a 2.16 GB file, on disk; paced load of ~2k puts/s and ~2k point ranges/s):
//!   the defrag took 9-12 s with commits held off 5-7 ms; put p99 25 µs during it (25 µs
//!   without), range p99 29 µs (49 µs without), worst 4.3 ms. redb grows a file's first
//!   region by doubling up to 4 GiB and spreads pages over the growth, so a copy can sit
//!   in a file up to twice its data (here the same 2.16 GB); a small store shrinks to its
//!   data (8.4 MB to 1 MiB in `defrag_shrinks_the_file_and_keeps_every_key_revision...`).
//! * `backend_size` is two atomics. The file length is re-read (`fstat`) per commit; the
//!   bytes in use are measured exactly with redb's `stats` at open and after a
//!   defragmentation's copy (a walk of every page: 0.8 s at 1M keys), and in between
//!   follow the bytes of keys and values stored, counted exactly per commit from what
//!   redb's insert and remove return, at the last measurement's pages-per-byte ratio. A
//!   fresh store uses 8 KiB (in a 1 MiB file), well under etcd's e2e alarm quota of 13
//!   pages; after a compaction the count drops with the rows removed (redb's partly
//!   emptied pages lag it: 130 KB counted vs 225 KB measured after deleting 90%).
//! * Compatibility: HashKV is byte-for-byte etcd 3.4.23's over the same operations
//!   (`tests/etcd_compat.rs`), so key encoding, `KeyValue` encoding, tombstones and
//!   compaction all match etcd's on-disk data.

pub mod backend;
pub mod compaction;
pub mod error;
pub mod etcd_file;
pub mod hash;
pub mod index;
pub mod key_index;
pub mod lease;
pub mod range_stream;
pub mod read;
pub mod revision;
pub mod stats;
pub mod store;
mod sync;
pub mod txn;
pub mod validate;
pub mod write;

pub use backend::BackendSize;
pub use backend::redb::{FileRelease, RedbBackend};
pub use compaction::CompactionHandle;
pub use error::{Error, Result};
pub use lease::{LeaseId, Lessor, NoLeases};
pub use revision::Revision;
pub use stats::StoreStats;
pub use store::{
    ApplyIndex, CommitPoint, Defragmented, HashKv, SavedSnapshot, Store, StoreConfig, WriteResult,
};
