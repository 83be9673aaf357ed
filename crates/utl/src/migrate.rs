//! `migrate`: the end of a move from etcd. A member started on etcd's data dir converts
//! etcd's backend and keeps etcd's file beside it
//! ([`oxetcd_etcdserver::bootstrap::etcd_backend_path`]); `migrate --finalize` removes
//! that file once the operator no longer wants to go back to it.

use std::path::{Path, PathBuf};

use oxetcd_etcdserver::bootstrap::etcd_backend_path;

use crate::error::UtlError;
use crate::file;
use crate::layout;

/// What `--finalize` removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finalized {
    pub path: PathBuf,
    pub bytes: u64,
}

/// Removes etcd's backend kept in `data_dir` since the conversion. Refused while a member
/// runs on the data dir, and when there is nothing kept (a data dir oxetcd created, or
/// one already finalized).
pub fn finalize(data_dir: &Path) -> Result<Finalized, UtlError> {
    let _wal_lock = layout::lock_wal(data_dir)?;
    let path = etcd_backend_path(data_dir);
    let bytes = match std::fs::metadata(&path) {
        Ok(meta) => meta.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(UtlError::NothingToFinalize { path });
        }
        Err(e) => return Err(UtlError::io("stat", &path)(e)),
    };
    std::fs::remove_file(&path).map_err(UtlError::io("remove", &path))?;
    file::sync_dir(&layout::snap_dir(data_dir))?;
    Ok(Finalized { path, bytes })
}
