//! Why a command failed. Where etcd's tools print a message that scripts or people
//! match on, the `Display` is etcd's text.

use std::path::{Path, PathBuf};

use oxetcd_etcdserver::bootstrap::StartError;

/// The exit code of a failed command (etcd's `ExitError`).
pub const EXIT_ERROR: i32 = 1;
/// The exit code of a command given the wrong arguments (etcd's `ExitBadArgs`).
pub const EXIT_BAD_ARGS: i32 = 128;
/// The exit code of an output format a command does not print (etcd's `ExitBadFeature`).
pub const EXIT_BAD_FEATURE: i32 = 4;

/// What went wrong; printed after `Error: `, as etcd's tools do.
#[derive(Debug, thiserror::Error)]
pub enum UtlError {
    /// A file-system step failed: `op path: error`, in Go's words (`stat x: no such file
    /// or directory`).
    #[error("{op} {}: {}", path.display(), go_io_text(source))]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// No trailer, and `--skip-hash-check` not given.
    #[error("snapshot missing hash but --skip-hash-check=false")]
    MissingHash,
    /// The trailer is not the SHA-256 of the bytes before it (an altered or cut file).
    #[error("expected sha256 {}, got {}", go_bytes(expected), go_bytes(got))]
    HashMismatch { expected: [u8; 32], got: [u8; 32] },
    /// `snapshot restore` refuses to write into a data dir that holds anything.
    #[error("data-dir {:?} not empty or could not be read", path.display().to_string())]
    DataDirNotEmpty { path: PathBuf },
    /// `--wal-dir` names a path that exists.
    #[error("wal-dir {:?} exists", path.display().to_string())]
    WalDirExists { path: PathBuf },
    /// `--initial-cluster` or `--initial-advertise-peer-urls` does not parse.
    #[error("{0}")]
    BadFlag(String),
    /// The flags of a restore do not make a member of the cluster they describe, or
    /// its WAL could not be written.
    #[error(transparent)]
    Bootstrap(#[from] StartError),
    /// The file is not a backend the store can open.
    #[error("cannot open the backend in {}: {error}", path.display())]
    Backend { path: PathBuf, error: oxetcd_mvcc::Error },
    /// A store operation on an opened backend failed (HashKV at a compacted revision…).
    #[error(transparent)]
    Store(#[from] oxetcd_mvcc::Error),
    /// `migrate --finalize` on a data dir that keeps no etcd backend.
    #[error(
        "{} does not exist: no etcd backend is kept in this data dir (it was never converted from etcd's, or was finalized)",
        path.display()
    )]
    NothingToFinalize { path: PathBuf },
    /// `migrate --to etcd` on a data dir whose backend already is etcd's.
    #[error("{} is already in etcd's format (bbolt): nothing to migrate", path.display())]
    AlreadyEtcd { path: PathBuf },
    /// `migrate --to etcd` where the WAL is not (`member/wal`, or `--wal-dir`).
    #[error("no WAL in {}: give the member's --wal-dir if it has one", wal_dir.display())]
    NoWal { wal_dir: PathBuf },
    /// The backend has not caught up with the raft snapshot a restart starts from (a
    /// crash between the two); etcd would look for a snapshot database that oxetcd never
    /// writes.
    #[error(
        "the backend holds entries up to {consistent_index} but the raft snapshot a restart starts from is at {snapshot_index}: start the member once (it catches its backend up) and stop it before migrating"
    )]
    BackendBehindSnapshot { consistent_index: u64, snapshot_index: u64 },
    /// The WAL or a snap file could not be read or rewritten.
    #[error("{0}")]
    Wal(String),
    /// A member runs on the data dir (its WAL directory is locked).
    #[error(
        "{} is locked: a member is running on this data dir (stop it first, or ask the running member over the network with etcdctl)",
        wal_dir.display()
    )]
    InUse { wal_dir: PathBuf },
}

impl UtlError {
    /// An I/O error on `path`.
    pub fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> UtlError {
        let path = path.to_path_buf();
        move |source| UtlError::Io { op, path, source }
    }

    /// A store that would not open on `path`.
    pub fn backend(path: &Path) -> impl FnOnce(oxetcd_mvcc::Error) -> UtlError {
        let path = path.to_path_buf();
        move |error| UtlError::Backend { path, error }
    }
}

/// An OS error as Go prints it: the C library's text in lower case, without Rust's
/// `(os error N)`.
fn go_io_text(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = match text.find(" (os error ") {
        Some(at) => &text[..at],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A byte slice as Go's `%v` prints it: `[1 2 3]`.
fn go_bytes(bytes: &[u8]) -> String {
    let items: Vec<String> = bytes.iter().map(u8::to_string).collect();
    format!("[{}]", items.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_as_etcds() {
        let missing = std::io::Error::from_raw_os_error(2);
        let err = UtlError::io("stat", Path::new("nonexist.db"))(missing);
        assert_eq!(err.to_string(), "stat nonexist.db: no such file or directory");
        let err = UtlError::HashMismatch { expected: [0; 32], got: [255; 32] };
        let (zeros, ones) = (vec!["0"; 32].join(" "), vec!["255"; 32].join(" "));
        assert_eq!(err.to_string(), format!("expected sha256 [{zeros}], got [{ones}]"));
        let err = UtlError::DataDirNotEmpty { path: "exists".into() };
        assert_eq!(err.to_string(), r#"data-dir "exists" not empty or could not be read"#);
    }
}
