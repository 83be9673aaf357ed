//! A data dir as the tool sees it (etcd's layout, the paths of
//! [`oxetcd_etcdserver::bootstrap`]), and the lock a running member holds on it.

use std::fs::File;
use std::path::{Path, PathBuf};

use rustix::fs::FlockOperation;
use rustix::io::Errno;

use crate::error::UtlError;

/// `<data-dir>/member`.
pub fn member_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("member")
}

/// `<data-dir>/member/snap`.
pub fn snap_dir(data_dir: &Path) -> PathBuf {
    member_dir(data_dir).join("snap")
}

/// `<data-dir>/member/snap/db`, the backend.
pub fn backend_path(data_dir: &Path) -> PathBuf {
    snap_dir(data_dir).join("db")
}

/// `<data-dir>/member/wal`, the WAL's default place.
pub fn wal_dir(data_dir: &Path) -> PathBuf {
    member_dir(data_dir).join("wal")
}

/// Takes the lock a running member holds on its WAL directory (the WAL's exclusive
/// `flock`), so no member starts on the data dir meanwhile; refuses if a member holds
/// it. `None` if the data dir has no WAL directory. The backend's own file lock (redb's)
/// is the second guard, taken when the store opens.
pub fn lock_wal(data_dir: &Path) -> Result<Option<File>, UtlError> {
    lock_wal_dir(&wal_dir(data_dir))
}

/// [`lock_wal`] for a WAL directory outside the data dir (a member run with `--wal-dir`).
pub fn lock_wal_dir(wal_dir: &Path) -> Result<Option<File>, UtlError> {
    let wal_dir = wal_dir.to_path_buf();
    if !wal_dir.is_dir() {
        return Ok(None);
    }
    let handle = File::open(&wal_dir).map_err(UtlError::io("open", &wal_dir))?;
    match rustix::fs::flock(&handle, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(Some(handle)),
        Err(Errno::WOULDBLOCK) => Err(UtlError::InUse { wal_dir }),
        Err(e) => Err(UtlError::io("lock", &wal_dir)(e.into())),
    }
}
