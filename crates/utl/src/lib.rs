//! `oxetcdutl`: etcd's `etcdutl`, the offline tool that works on a member's files
//! directly, with no server running. For work over the network, use `etcdctl` (or
//! oxetcd's client) against a running member.
//!
//! # Commands
//!
//! - `snapshot status FILE [-w simple|table|json|fields]`: the hash, revision, total
//!   keys and total size of a snapshot file or of a plain backend file (a copied
//!   `member/snap/db`), printed as etcd 3.5's `etcdutl` (and 3.4's `etcdctl`) prints them
//!   ([`status::status`], [`print`]). The hash is etcd's: crc32 (Castagnoli) over every
//!   bucket (table) in name order, each one's name then every row's key and value, the
//!   consistent index included; the same number etcdctl prints for the same file. The
//!   revision is the main revision of the last row of the
//!   `key` table; total keys counts the rows of every table; total size is the
//!   backend's bytes (the file less its trailer).
//! - `snapshot restore FILE [--name --initial-cluster --initial-cluster-token
//!   --initial-advertise-peer-urls --data-dir --wal-dir --skip-hash-check]`, with
//!   etcd's defaults ([`restore::restore`]): checks the flags as a new member's are
//!   checked, refuses a data dir that is not empty, checks the file's SHA-256 trailer
//!   (a file without one needs `--skip-hash-check`), and writes `member/snap/db` (the
//!   backend, its consistent index set to the last bootstrap entry, old membership rows
//!   removed, leases and everything else kept) and a WAL holding the new cluster's
//!   bootstrap log ([`oxetcd_etcdserver::bootstrap::restore_member`]). `oxetcd --name …
//!   --data-dir …` then starts on it as a restarted member of a new cluster (a fresh
//!   cluster id, derived from the members and the token) with every key at its
//!   revision.
//! - `defrag --data-dir DIR` ([`defrag::defrag`]): rewrites a stopped member's backend
//!   without free pages and swaps it in atomically.
//! - `hashkv DIR|FILE [--rev N] [-w simple|table|json]` ([`hashkv::hashkv`]): HashKV as a
//!   member computes it for Maintenance.HashKV, of a data dir's backend or of a
//!   snapshot file.
//! - `migrate --data-dir DIR --finalize` ([`migrate::finalize`]): removes etcd's backend
//!   a member kept (`member/snap/db.etcd`) when it converted etcd's data dir.
//!   `migrate --data-dir DIR --to etcd` ([`migrate::to_etcd`]): the way back in place,
//!   a stopped member's data dir made one etcd 3.4 starts on.
//! - `version`.
//!
//! Restore and defrag draw a progress bar on stderr when it is a terminal
//! ([`progress`]). Errors are printed as `Error: <message>` on stderr with etcd's exit
//! codes ([`error`]); messages that etcd's tools print are etcd's.
//!
//! # The snapshot file
//!
//! A snapshot file is a backend file followed by etcd's trailer: the 32-byte SHA-256 of
//! every byte before it ([`file`]). The backend is etcd's bbolt (what etcd's and oxetcd's
//! `Maintenance.Snapshot` stream) or oxetcd's redb (`Store::save_snapshot`), told apart by
//! the first page; a bbolt one is converted on a copy (`file::to_native`). As in etcd, a
//! file has a trailer when its size is 32 more than a multiple of 512; both formats are a
//! whole number of 4 KiB pages, so the rule holds (a test guards it).
//!
//! # How it differs from etcdutl
//!
//! - `snapshot status` and `hashkv FILE` never open the given file for writing: they
//!   read a copy in the system's temporary directory (`TMPDIR`), which needs room for it.
//! - A restore writes no raft snapshot file (`member/snap/*.snap`): the WAL holds the
//!   bootstrap entries a new cluster's member writes, vote included (none), and the
//!   member builds its configuration by replaying them. It is built under a temporary
//!   name and renamed, so a refused snapshot leaves no data dir behind (etcd 3.5 leaves
//!   a partial one). As etcd 3.5, an existing empty data dir is accepted.
//! - `defrag` refuses a data dir a member runs on (its WAL directory is locked, or the
//!   backend's file lock is held) instead of waiting for the member to stop.
//! - No `snapshot save` (use `etcdctl snapshot save`) or `backup`; `migrate` is oxetcd's
//!   own (etcdutl 3.5's `migrate --target-version` changes etcd's storage version).

pub mod defrag;
pub mod error;
pub mod file;
pub mod hashkv;
pub mod layout;
pub mod log;
pub mod migrate;
pub mod print;
pub mod progress;
pub mod restore;
pub mod status;

pub use error::UtlError;

/// The tool's version, and the etcd API version whose data it reads.
pub fn version() -> String {
    let api = oxetcd_etcdserver::server::ETCD_VERSION;
    let api = api.rsplit_once('.').map_or(api, |(major_minor, _)| major_minor);
    format!("oxetcdutl version: {}\nAPI version: {api}\n", env!("CARGO_PKG_VERSION"))
}
