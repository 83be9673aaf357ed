//! Raft snapshot files: `<term>-<index>.snap` (16 hex digits each) in the snap dir,
//! holding the encoded snapshot and its CRC32C, as etcd's snapshotter lays them out.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use oxetcd_raft::Snapshot;
use prost::Message;

use crate::error::{IoContext, Result, WalError};
use crate::fs::sync_dir;

const SUFFIX: &str = ".snap";
/// A damaged file is renamed with this suffix, kept for inspection, and skipped.
const BROKEN_SUFFIX: &str = ".broken";

#[derive(Clone, PartialEq, Message)]
struct SnapshotFile {
    #[prost(uint32, tag = "1")]
    crc: u32,
    #[prost(bytes = "bytes", tag = "2")]
    data: Bytes,
}

/// Saves and loads raft snapshot files in one directory.
#[derive(Debug, Clone)]
pub struct Snapshotter {
    dir: PathBuf,
}

impl Snapshotter {
    /// Uses `dir`, creating it if needed.
    pub fn new(dir: &Path) -> Result<Snapshotter> {
        std::fs::create_dir_all(dir).at(dir)?;
        Ok(Snapshotter { dir: dir.to_path_buf() })
    }

    /// Writes `snapshot` durably; the file appears complete or not at all.
    pub fn save(&self, snapshot: &Snapshot) -> Result<PathBuf> {
        let meta = snapshot.metadata.clone().unwrap_or_default();
        let path = self.dir.join(format!("{:016x}-{:016x}{SUFFIX}", meta.term, meta.index));
        write(&path, snapshot)?;
        sync_dir(&self.dir)?;
        Ok(path)
    }

    /// Replaces the data of every snapshot file with what `transform` makes of it (the
    /// metadata stays), one file at a time, each replaced whole or not at all; returns
    /// how many files it rewrote. A damaged file stops it: nothing is skipped silently.
    pub fn rewrite_data(
        &self,
        mut transform: impl FnMut(Bytes) -> std::result::Result<Bytes, String>,
    ) -> Result<usize> {
        let files = self.files()?;
        for path in &files {
            let damaged =
                |detail: String| WalError::Corrupt { path: path.clone(), offset: 0, detail };
            let mut snapshot = read(path).ok_or_else(|| damaged("unreadable snapshot".into()))?;
            snapshot.data = transform(snapshot.data).map_err(damaged)?;
            write(path, &snapshot)?;
        }
        if !files.is_empty() {
            sync_dir(&self.dir)?;
        }
        Ok(files.len())
    }

    /// The newest snapshot that reads back intact. Damaged files met on the way are
    /// renamed `*.broken` and skipped, so one bad write does not stop a restart.
    pub fn load_newest(&self) -> Result<Snapshot> {
        for path in self.files()?.into_iter().rev() {
            match read(&path) {
                Some(snapshot) => return Ok(snapshot),
                None => {
                    let broken = path.with_extension(format!("snap{BROKEN_SUFFIX}"));
                    std::fs::rename(&path, &broken).at(&broken)?;
                }
            }
        }
        Err(WalError::NoSnapshot)
    }

    /// Every snapshot that reads back intact, newest first; damaged files are renamed
    /// and skipped as by [`load_newest`](Self::load_newest). A restart takes the newest
    /// one its WAL has a record of: the file is written before the record.
    pub fn load_all(&self) -> Result<Vec<Snapshot>> {
        let mut snapshots = Vec::new();
        for path in self.files()?.into_iter().rev() {
            match read(&path) {
                Some(snapshot) => snapshots.push(snapshot),
                None => {
                    let broken = path.with_extension(format!("snap{BROKEN_SUFFIX}"));
                    std::fs::rename(&path, &broken).at(&broken)?;
                }
            }
        }
        Ok(snapshots)
    }

    /// Removes the snapshot files of indexes above `index`; returns what it removed. For
    /// files the WAL has no record of (a member stopped between writing a snapshot's file
    /// and its record), which a reader that takes the newest file would start from in vain.
    pub fn remove_newer_than(&self, index: u64) -> Result<Vec<PathBuf>> {
        let mut removed = Vec::new();
        for path in self.files()? {
            if index_in_name(&path).is_some_and(|i| i > index) {
                std::fs::remove_file(&path).at(&path)?;
                removed.push(path);
            }
        }
        if !removed.is_empty() {
            sync_dir(&self.dir)?;
        }
        Ok(removed)
    }

    /// Removes all but the newest `keep` snapshot files; returns what it removed.
    pub fn purge(&self, keep: usize) -> Result<Vec<PathBuf>> {
        let files = self.files()?;
        let excess = files.len().saturating_sub(keep);
        let removed: Vec<PathBuf> = files.into_iter().take(excess).collect();
        for path in &removed {
            std::fs::remove_file(path).at(path)?;
        }
        if !removed.is_empty() {
            sync_dir(&self.dir)?;
        }
        Ok(removed)
    }

    /// Snapshot files, oldest first: the fixed-width names sort by term, then index.
    fn files(&self) -> Result<Vec<PathBuf>> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&self.dir).at(&self.dir)? {
            let path = entry.at(&self.dir)?.path();
            if path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(SUFFIX)) {
                files.push(path);
            }
        }
        files.sort();
        Ok(files)
    }
}

/// Writes `snapshot` to `path` through a staging file, synced; the caller syncs the dir.
fn write(path: &Path, snapshot: &Snapshot) -> Result<()> {
    let data: Bytes = snapshot.encode_to_vec().into();
    let file = SnapshotFile { crc: crc32c::crc32c(&data), data };
    let staging = path.with_extension("snap.tmp");
    std::fs::write(&staging, file.encode_to_vec()).at(&staging)?;
    std::fs::File::open(&staging).and_then(|f| f.sync_all()).at(&staging)?;
    std::fs::rename(&staging, path).at(path)
}

/// The raft index in a snapshot file's name (`{term:016x}-{index:016x}.snap`, as
/// [`Snapshotter::save`] names it).
fn index_in_name(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?.strip_suffix(SUFFIX)?;
    let (_term, index) = name.split_once('-')?;
    u64::from_str_radix(index, 16).ok()
}

fn read(path: &Path) -> Option<Snapshot> {
    decode_snap_file(&std::fs::read(path).ok()?)
}

/// The snapshot in a `.snap` file's bytes, or `None` if they are damaged (undecodable,
/// empty, or failing their checksum). Public for the fuzz target (`fuzz/`).
pub fn decode_snap_file(bytes: &[u8]) -> Option<Snapshot> {
    let file = SnapshotFile::decode(bytes).ok()?;
    if file.data.is_empty() || crc32c::crc32c(&file.data) != file.crc {
        return None;
    }
    Snapshot::decode(file.data).ok()
}
