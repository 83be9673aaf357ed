//! `migrate`: both ends of a move between etcd and oxetcd, on a stopped member.
//!
//! - `--finalize` ends a move from etcd. A member started on etcd's data dir converts
//!   etcd's backend and keeps etcd's file beside it
//!   ([`oxetcd_etcdserver::bootstrap::etcd_backend_path`]); this removes that file once
//!   the operator no longer wants to go back to it.
//! - `--to etcd` is the way back, in place: the data dir becomes one etcd 3.4 starts on
//!   as the same member of the same cluster. The WAL and snap files are already etcd's
//!   formats; what changes is how membership is encoded in them (see
//!   `oxetcd_etcdserver::etcd_encoding`) and the backend (redb → bbolt).
//!
//! # Crash safety of `--to etcd`
//!
//! oxetcd reads etcd's encodings as well as its own, so every state the steps pass
//! through starts as oxetcd: the snap files are rewritten one at a time (each replaced
//! whole), the WAL is rewritten into a new directory and swapped with the old one in
//! one `renameat2(RENAME_EXCHANGE)`, and only then is the bbolt backend, built and
//! synced beforehand, renamed over `member/snap/db`. Until that last rename etcd
//! refuses the dir (its backend is not bbolt); after it, etcd runs on it and oxetcd
//! converts it back on start. An interrupted migration is simply run again: every step
//! is idempotent and stale staging files are removed.

use std::path::{Path, PathBuf};

use oxetcd_etcdserver::bootstrap::etcd_backend_path;
use oxetcd_etcdserver::etcd_encoding;
use oxetcd_mvcc::etcd_file::{self, BackendFormat};
use oxetcd_wal::{Rewritten, Snapshotter, WalError};

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
/// runs on the data dir (holds `wal_dir`), and when there is nothing kept (a data dir oxetcd created, or
/// one already finalized).
pub fn finalize(data_dir: &Path, wal_dir: &Path) -> Result<Finalized, UtlError> {
    let _wal_lock = layout::lock_wal_dir(wal_dir)?;
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

/// What `--to etcd` did.
#[derive(Debug, Clone, PartialEq)]
pub struct MovedOut {
    /// The raft index the backend holds everything up to: etcd replays the WAL after it.
    pub consistent_index: u64,
    pub backend_bytes: u64,
    pub snapshot_files: usize,
    /// Snap files newer than every snapshot the WAL records, removed.
    pub unrecorded_snapshots: Vec<PathBuf>,
    pub wal: Rewritten,
    /// etcd's original backend, kept since a move from etcd, now removed (it is older
    /// than the backend just written).
    pub removed_kept: Option<PathBuf>,
}

/// Suffix of what `--to etcd` builds beside the file or directory it replaces.
const STAGING_SUFFIX: &str = "etcd-migrating";

/// Turns the data dir of a stopped oxetcd member, with its WAL in `wal_dir` (by default
/// `member/wal` inside it), into one etcd 3.4 starts on, in place (see the module's notes
/// on crash safety).
pub fn to_etcd(data_dir: &Path, wal_dir: &Path) -> Result<MovedOut, UtlError> {
    let Some(_wal_lock) = layout::lock_wal_dir(wal_dir)? else {
        return Err(UtlError::NoWal { wal_dir: wal_dir.to_path_buf() });
    };
    let backend = layout::backend_path(data_dir);
    let format = etcd_file::detect_format(&backend).map_err(UtlError::backend(&backend))?;
    if format == BackendFormat::Bbolt {
        return Err(UtlError::AlreadyEtcd { path: backend });
    }
    let staged_backend = backend.with_extension(STAGING_SUFFIX);
    // Beside the log, on its file system: the two are swapped by a rename.
    let staged_wal = wal_dir.with_extension(STAGING_SUFFIX);
    remove_stale(&staged_backend)?;
    remove_stale(&staged_wal)?;

    let exported =
        etcd_file::export_bbolt(&backend, &staged_backend).map_err(UtlError::backend(&backend))?;
    let abandon = |error: UtlError| {
        remove_stale(&staged_backend)?;
        remove_stale(&staged_wal)?;
        Err(error)
    };
    let wal = match oxetcd_wal::rewrite(wal_dir, &staged_wal, etcd_encoding::entry_for_etcd_3_4) {
        Ok(wal) => wal,
        Err(e) => return abandon(wal_error(e)),
    };
    // The snapshot a restart starts from is the newest the WAL has a record of (as
    // oxetcd's restart and etcd 3.5's `LoadNewestAvailable` choose it); etcd 3.4 takes the
    // newest snap file, so newer files, written by a member that stopped before their
    // record, are dropped: the WAL holds every entry after the recorded snapshot.
    let restart_index = wal.snapshots.iter().map(|s| s.index).max().unwrap_or_default();
    if restart_index > exported.consistent_index {
        return abandon(UtlError::BackendBehindSnapshot {
            consistent_index: exported.consistent_index,
            snapshot_index: restart_index,
        });
    }
    let snapshotter = Snapshotter::new(&layout::snap_dir(data_dir)).map_err(wal_error)?;
    let unrecorded_snapshots = snapshotter.remove_newer_than(restart_index).map_err(wal_error)?;
    let snapshot_files =
        snapshotter.rewrite_data(etcd_encoding::snapshot_data_for_etcd_3_4).map_err(wal_error)?;
    // The lock goes with the directory: the new log is locked before it takes the log's
    // name, so no member starts on the data dir before the backend is swapped too.
    let _new_wal_lock = layout::lock_wal_dir(&staged_wal)?;
    exchange(wal_dir, &staged_wal)?;
    file::sync_dir(parent(wal_dir))?;
    // The old log, now under the staging name.
    std::fs::remove_dir_all(&staged_wal).map_err(UtlError::io("remove", &staged_wal))?;

    std::fs::rename(&staged_backend, &backend).map_err(UtlError::io("rename", &backend))?;
    let kept = etcd_backend_path(data_dir);
    let removed_kept = match std::fs::remove_file(&kept) {
        Ok(()) => Some(kept),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(UtlError::io("remove", &kept)(e)),
    };
    file::sync_dir(&layout::snap_dir(data_dir))?;
    Ok(MovedOut {
        consistent_index: exported.consistent_index,
        backend_bytes: exported.bytes,
        snapshot_files,
        unrecorded_snapshots,
        wal,
        removed_kept,
    })
}

/// The directory holding `path` (`.` for a bare name).
fn parent(path: &Path) -> &Path {
    path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

fn wal_error(e: WalError) -> UtlError {
    UtlError::Wal(e.to_string())
}

/// Removes what an interrupted run left at `path`, file or directory.
fn remove_stale(path: &Path) -> Result<(), UtlError> {
    let removed = match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => Err(e),
    };
    removed.map_err(UtlError::io("remove", path))
}

/// Swaps two directories in one step: no crash leaves the data dir without a WAL.
fn exchange(a: &Path, b: &Path) -> Result<(), UtlError> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE)
        .map_err(|e| UtlError::io("rename", a)(e.into()))
}
