//! `snapshot status`: what a snapshot file (or a plain backend file) holds.

use std::ops::ControlFlow;
use std::path::Path;

use oxetcd_mvcc::RedbBackend;
use oxetcd_mvcc::backend::{Backend, KEY_TABLE, Snapshot};
use oxetcd_mvcc::revision::Revision;

use crate::error::UtlError;
use crate::file;
use crate::progress::Progress;

/// etcd's `snapshot.Status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// crc32 (Castagnoli) over every table in name order: its name, then each row's key
    /// and value in key order (the consistent index included), as etcd hashes the
    /// buckets of its bbolt file.
    pub hash: u32,
    /// The main revision of the last row of the `key` table (0 if it is empty).
    pub revision: i64,
    /// The rows of every table.
    pub total_key: u64,
    /// The backend's size in bytes: the file's, less the trailer.
    pub total_size: u64,
}

/// Reads the status of the snapshot or backend file at `path`, in etcd's format (bbolt)
/// or oxetcd's. The file is never opened for writing: its backend part is copied into a
/// temporary directory (the system's, `TMPDIR`), converted to oxetcd's format if it is
/// etcd's (the tables are etcd's buckets, row for row, so the hash is the same), read and
/// removed.
pub fn status(path: &Path, progress: &Progress) -> Result<Status, UtlError> {
    file::size(path)?;
    let scratch = tempfile::tempdir().map_err(UtlError::io("mkdir", &std::env::temp_dir()))?;
    let copy = scratch.path().join("db");
    let copied = file::copy_backend(path, &copy, progress)?;
    file::to_native(&copy, path)?;
    let backend = RedbBackend::open(&copy).map_err(UtlError::backend(path))?;
    let snapshot = backend.snapshot().map_err(UtlError::backend(path))?;
    let mut status =
        Status { hash: 0, revision: 0, total_key: 0, total_size: copied.backend_bytes };
    for table in snapshot.tables()? {
        status.hash = crc32c::crc32c_append(status.hash, table.as_bytes());
        let is_key = table == KEY_TABLE;
        snapshot.scan(&table, &[], |k, v| {
            status.hash = crc32c::crc32c_append(crc32c::crc32c_append(status.hash, k), v);
            if is_key && let Some((rev, _)) = Revision::from_key(k) {
                status.revision = rev.main;
            }
            status.total_key += 1;
            ControlFlow::Continue(())
        })?;
    }
    Ok(status)
}
