//! `hashkv`: the HashKV of a data dir's backend or of a snapshot file, as a member
//! computes it for Maintenance.HashKV ([`oxetcd_mvcc::Store::hash_kv`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use oxetcd_mvcc::etcd_file::{self, BackendFormat};
use oxetcd_mvcc::{NoLeases, Store, StoreConfig};

use crate::error::UtlError;
use crate::file;
use crate::layout;
use crate::progress::Progress;

/// etcdutl's `HashKV`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashKvStatus {
    /// crc32 (Castagnoli) of the key space up to `hash_revision`, as etcd computes it.
    pub hash: u32,
    /// The revision hashed up to: the one asked, or the current one.
    pub hash_revision: i64,
    /// The store's compacted revision (-1 if never compacted).
    pub compact_revision: i64,
}

/// HashKV up to `rev` (0: the current revision) of `path`: a data dir (its
/// `member/snap/db`, opened in place as a member would open it, refused while a member
/// runs on it), or a snapshot or backend file. A file, or a data dir of etcd's (a bbolt
/// backend), is copied to a temporary directory first and converted there, so it is left
/// as it is.
pub fn hashkv(path: &Path, rev: i64, progress: &Progress) -> Result<HashKvStatus, UtlError> {
    let (scratch, _wal_lock);
    let mut db: PathBuf = path.to_path_buf();
    if path.is_dir() {
        db = layout::backend_path(path);
        _wal_lock = layout::lock_wal(path)?;
    }
    file::size(&db)?;
    let format = etcd_file::detect_format(&db).map_err(UtlError::backend(&db))?;
    if db == path || format == BackendFormat::Bbolt {
        scratch = tempfile::tempdir().map_err(UtlError::io("mkdir", &std::env::temp_dir()))?;
        let copy = scratch.path().join("db");
        file::copy_backend(&db, &copy, progress)?;
        file::to_native(&copy, &db)?;
        db = copy;
    }
    let store = Store::open_path(&db, StoreConfig::default(), Arc::new(NoLeases))
        .map_err(UtlError::backend(&db))?;
    let hashed = store.hash_kv(rev);
    store.close()?;
    let hashed = hashed?;
    Ok(HashKvStatus {
        hash: hashed.hash,
        hash_revision: if rev > 0 { rev } else { hashed.current_rev },
        compact_revision: hashed.compact_rev,
    })
}
