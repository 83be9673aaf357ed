//! The write-ahead log and raft snapshot files of an oxetcd member, in etcd's on-disk
//! format (`member/wal/*.wal`, `member/snap/*.snap`).
//!
//! - [`record`]: frames and the CRC chain; how a torn write is told from corruption.
//! - [`segment`]: segment naming and listing.
//! - [`Wal`]: create, open-and-replay, append with one fdatasync per batch, cut,
//!   snapshot markers, purge. An open log holds an exclusive lock on its directory.
//! - [`Snapshotter`]: raft snapshot files with a checksum.
//! - [`rewrite`]: a closed log copied with every entry re-encoded (changing encodings).
//!
//! Durability contract: when [`Wal::save`] with `must_sync` (or [`Wal::sync`])
//! returns, everything appended so far survives a crash. A crash during an append
//! loses at most the unsynced batch, whose torn remains are cut off by the next open.

mod error;
mod fs;
pub mod record;
mod rewrite;
mod segment;
mod snap;
mod wal;

pub use error::{Result, WalError};
pub use record::WalSnapshot;
pub use rewrite::{Rewritten, rewrite};
pub use segment::REPLAY_CHUNK_BYTES;
pub use snap::{Snapshotter, decode_snap_file};
pub use wal::{Recovered, SEGMENT_BYTES, Wal, WalOptions, WalStats, replay_segment};
