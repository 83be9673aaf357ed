use std::io;
use std::path::PathBuf;

/// What can go wrong with the write-ahead log or the snapshot files.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("wal: i/o error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("wal: {0} is locked by another process (is another member running on this data dir?)")]
    Locked(PathBuf),
    #[error("wal: {0} already exists")]
    AlreadyExists(PathBuf),
    #[error("wal: no segment files in {0}")]
    NotFound(PathBuf),
    #[error("wal: segment files in {dir} are not contiguous: {detail}")]
    BrokenSequence { dir: PathBuf, detail: String },
    #[error("wal: crc mismatch in {path} at offset {offset}: the log is corrupt")]
    CrcMismatch { path: PathBuf, offset: u64 },
    #[error("wal: corrupt record in {path} at offset {offset}: {detail}")]
    Corrupt { path: PathBuf, offset: u64, detail: String },
    #[error("wal: conflicting metadata found")]
    MetadataConflict,
    #[error("wal: snapshot not found (index {index}, term {term})")]
    SnapshotNotFound { index: u64, term: u64 },
    #[error("wal: snapshot mismatch at index {index}: term {found} in the log, {wanted} wanted")]
    SnapshotMismatch { index: u64, found: u64, wanted: u64 },
    #[error("wal: entry {index} leaves a gap after entry {last}")]
    EntryGap { index: u64, last: u64 },
    #[error("wal: record of {0} bytes is larger than the limit")]
    RecordTooLarge(usize),
    #[error("snap: no available snapshot")]
    NoSnapshot,
}

pub type Result<T> = std::result::Result<T, WalError>;

/// Attaches the path an I/O error happened on.
pub(crate) trait IoContext<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| WalError::Io { path: path.into(), source })
    }
}
