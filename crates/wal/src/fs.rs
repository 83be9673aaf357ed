//! File-system steps the log's durability rests on.

use std::fs::File;
use std::path::Path;

use rustix::fs::{FallocateFlags, FlockOperation};
use rustix::io::Errno;

use crate::error::{IoContext, Result, WalError};

/// Reserves `len` bytes for `file`, so appends and fdatasyncs within them need no
/// block allocation or size change. Falls back to a sparse length where the file
/// system cannot preallocate.
pub(crate) fn preallocate(file: &File, len: u64, path: &Path) -> Result<()> {
    match rustix::fs::fallocate(file, FallocateFlags::empty(), 0, len) {
        Ok(()) => Ok(()),
        Err(Errno::OPNOTSUPP | Errno::NOSYS) => file.set_len(len).at(path),
        Err(e) => Err(std::io::Error::from(e)).at(path),
    }
}

/// Makes a directory's entries (files created, renamed or removed in it) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).at(dir)
}

/// Takes an exclusive advisory lock on `dir`, held until the returned handle drops.
pub(crate) fn lock_dir(dir: &Path) -> Result<File> {
    let handle = File::open(dir).at(dir)?;
    match rustix::fs::flock(&handle, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(handle),
        Err(Errno::WOULDBLOCK) => Err(WalError::Locked(dir.to_path_buf())),
        Err(e) => Err(std::io::Error::from(e)).at(dir),
    }
}
