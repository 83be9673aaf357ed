//! The log itself: create, open-and-replay, append with one sync per batch, cut to
//! a new segment, record snapshot positions, purge what snapshots cover.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use oxetcd_raft::{Entry, HardState};
use oxetcd_stats::Histogram;
use prost::Message;

use crate::error::{IoContext, Result, WalError};
use crate::fs::{lock_dir, preallocate, sync_dir};
use crate::record::{Encoder, MAX_RECORD_BYTES, Record, RecordType, WalSnapshot};
use crate::segment::{self, Segment};

/// etcd's segment size: a segment is cut once it grows past this.
pub const SEGMENT_BYTES: u64 = 64 << 20;

/// Tunables; the defaults are etcd's.
#[derive(Clone, Debug)]
pub struct WalOptions {
    /// Size at which the tail segment is cut and a new one started.
    pub segment_bytes: u64,
}

impl Default for WalOptions {
    fn default() -> WalOptions {
        WalOptions { segment_bytes: SEGMENT_BYTES }
    }
}

/// What [`Wal::open`] read back: everything after the snapshot it was opened at.
#[derive(Debug, Default, PartialEq)]
pub struct Recovered {
    /// What the creator stored with [`Wal::create`] (the server's node and cluster ids).
    pub metadata: Bytes,
    /// The last hard state saved.
    pub hard_state: HardState,
    /// Entries after the snapshot, in index order, later writes replacing earlier ones.
    pub entries: Vec<Entry>,
}

/// An open write-ahead log. Holds an exclusive lock on its directory.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    _lock: File,
    options: WalOptions,
    /// Oldest first; the last one is the tail being appended to.
    segments: Vec<Segment>,
    tail: File,
    /// Where the next frame goes in the tail.
    offset: u64,
    encoder: Encoder,
    metadata: Bytes,
    state: HardState,
    last_index: u64,
    /// Reused frame buffer, so appends do not allocate per batch.
    buf: Vec<u8>,
    stats: Arc<WalStats>,
}

/// etcd's buckets for `etcd_disk_wal_fsync_duration_seconds`: 1 ms doubling 14 times
/// (`ExponentialBuckets(0.001, 2, 14)` in etcd's `wal/metrics.go`).
static FSYNC_BOUNDS: [u64; 14] = oxetcd_stats::doubling_bounds(1_000_000);

/// What the log measures, for metrics: read through [`Wal::stats`].
#[derive(Debug)]
pub struct WalStats {
    /// How long each fdatasync of appended records took.
    pub fsync: Histogram,
    /// Bytes of records written (etcd's `etcd_disk_wal_write_bytes_total`).
    pub bytes_written: AtomicU64,
}

impl Default for WalStats {
    fn default() -> WalStats {
        WalStats { fsync: Histogram::new(&FSYNC_BOUNDS), bytes_written: AtomicU64::new(0) }
    }
}

impl Wal {
    /// Creates a log in `dir`, which must not hold one yet. The directory appears
    /// complete or not at all: it is built under a temporary name and renamed.
    pub fn create(dir: &Path, metadata: Bytes, options: WalOptions) -> Result<Wal> {
        if dir.exists() && !segment::list(dir, false)?.is_empty() {
            return Err(WalError::AlreadyExists(dir.to_path_buf()));
        }
        let staging = dir.with_extension("tmp");
        if staging.exists() {
            std::fs::remove_dir_all(&staging).at(&staging)?;
        }
        std::fs::create_dir_all(&staging).at(&staging)?;
        let first = Segment::new(&staging, 0, 0);
        let mut encoder = Encoder::new(0);
        let mut buf = Vec::new();
        encoder.encode(&mut buf, RecordType::Crc, Bytes::new());
        encoder.encode(&mut buf, RecordType::Metadata, metadata);
        encoder.encode(
            &mut buf,
            RecordType::Snapshot,
            WalSnapshot::origin().encode_to_vec().into(),
        );
        write_new_segment(&first.path, &buf, options.segment_bytes)?;
        sync_dir(&staging)?;
        if dir.exists() {
            std::fs::remove_dir(dir).at(dir)?;
        }
        std::fs::rename(&staging, dir).at(dir)?;
        // A bare relative name (`--wal-dir wal`) has an empty parent: the working dir.
        let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        sync_dir(parent)?;
        Ok(Wal::open(dir, &WalSnapshot::origin(), options)?.0)
    }

    /// Opens the log in `dir` and reads everything after `snapshot`, which must be a
    /// snapshot position recorded in the log ([`WalSnapshot::origin`] for none).
    /// A torn last record, the trace of a crash mid-write, is cut off; damage anywhere
    /// else is an error. The log is then ready for appends.
    pub fn open(
        dir: &Path,
        snapshot: &WalSnapshot,
        options: WalOptions,
    ) -> Result<(Wal, Recovered)> {
        let lock = lock_dir(dir)?;
        let segments = segment::list(dir, true)?;
        if segments.is_empty() {
            return Err(WalError::NotFound(dir.to_path_buf()));
        }
        let not_found =
            || WalError::SnapshotNotFound { index: snapshot.index, term: snapshot.term };
        let first =
            segments.iter().rposition(|s| s.index <= snapshot.index).ok_or_else(not_found)?;

        let mut replay = Replay::new(snapshot);
        let mut crc = 0;
        let mut tail_end = 0;
        let last = segments.len() - 1;
        for (i, segment) in segments.iter().enumerate().skip(first) {
            let end = segment::replay(&segment.path, crc, |record_type, record| {
                replay.apply(record_type, record, &segment.path)
            })?;
            end.stop.accept(&segment.path, i == last)?;
            crc = end.crc;
            tail_end = end.offset;
        }
        if !replay.snapshot_found {
            return Err(not_found());
        }

        let tail_path = &segments[last].path;
        let tail = OpenOptions::new().read(true).write(true).open(tail_path).at(tail_path)?;
        // Zero everything past the last good record: stale bytes of a torn batch must
        // never be read back as records after new ones are appended in front of them.
        tail.set_len(tail_end).at(tail_path)?;
        preallocate(&tail, options.segment_bytes.max(tail_end), tail_path)?;
        tail.sync_all().at(tail_path)?;

        let recovered = replay.into_recovered();
        // What follows the snapshot is contiguous (`Replay::apply`), so the log ends
        // there; an entry read at or below the snapshot does not move the end back.
        let last_index = snapshot.index + recovered.entries.len() as u64;
        assert!(
            recovered.entries.last().is_none_or(|last| last.index == last_index),
            "replay keeps the entries after the snapshot contiguous"
        );
        let wal = Wal {
            dir: dir.to_path_buf(),
            _lock: lock,
            options,
            segments,
            tail,
            offset: tail_end,
            encoder: Encoder::new(crc),
            metadata: recovered.metadata.clone(),
            state: recovered.hard_state,
            last_index,
            buf: Vec::new(),
            stats: Arc::default(),
        };
        Ok((wal, recovered))
    }

    /// Appends `entries` and, if it is not empty, `state`; syncs them to disk when
    /// `must_sync` (raft's Ready says so), with one fdatasync for the whole batch.
    pub fn save(&mut self, state: &HardState, entries: &[Entry], must_sync: bool) -> Result<()> {
        let empty_state = *state == HardState::default();
        if empty_state && entries.is_empty() {
            return Ok(());
        }
        self.buf.clear();
        for entry in entries {
            let data = entry.encode_to_vec();
            if data.len() > MAX_RECORD_BYTES - 64 {
                return Err(WalError::RecordTooLarge(data.len()));
            }
            self.encoder.encode(&mut self.buf, RecordType::Entry, data.into());
        }
        if !empty_state {
            self.encoder.encode(&mut self.buf, RecordType::State, state.encode_to_vec().into());
        }
        self.write_buf()?;
        if let Some(last) = entries.last() {
            self.last_index = last.index;
        }
        if !empty_state {
            self.state = *state;
        }
        if self.offset >= self.options.segment_bytes {
            self.cut()
        } else if must_sync {
            self.sync()
        } else {
            Ok(())
        }
    }

    /// Records that a raft snapshot covers the log up to `snapshot.index`, and syncs.
    pub fn save_snapshot(&mut self, snapshot: &WalSnapshot) -> Result<()> {
        self.buf.clear();
        self.encoder.encode(&mut self.buf, RecordType::Snapshot, snapshot.encode_to_vec().into());
        self.write_buf()?;
        self.last_index = self.last_index.max(snapshot.index);
        self.sync()
    }

    /// Makes every appended record durable.
    pub fn sync(&mut self) -> Result<()> {
        let path = &self.segments.last().expect("a log has a tail").path;
        let started = Instant::now();
        self.tail.sync_data().at(path)?;
        self.stats.fsync.observe(started.elapsed());
        Ok(())
    }

    /// What this log measured since it was opened.
    pub fn stats(&self) -> Arc<WalStats> {
        Arc::clone(&self.stats)
    }

    /// Removes the oldest segments while more than `max_segments` remain and every
    /// entry in them has an index below `keep_from` (the server passes the index the
    /// newest snapshot and the backend's durable state both cover). Returns the
    /// removed files. The tail is never removed.
    pub fn purge(&mut self, keep_from: u64, max_segments: usize) -> Result<Vec<PathBuf>> {
        let mut removed = Vec::new();
        while self.segments.len() > max_segments.max(1) && self.segments[1].index <= keep_from {
            let oldest = self.segments.remove(0);
            std::fs::remove_file(&oldest.path).at(&oldest.path)?;
            removed.push(oldest.path);
        }
        if !removed.is_empty() {
            sync_dir(&self.dir)?;
        }
        Ok(removed)
    }

    /// Index of the last entry written (or of the last snapshot, if later).
    pub fn last_index(&self) -> u64 {
        self.last_index
    }

    /// The segment files, oldest first.
    pub fn segment_paths(&self) -> impl Iterator<Item = &Path> {
        self.segments.iter().map(|s| s.path.as_path())
    }

    fn write_buf(&mut self) -> Result<()> {
        let path = &self.segments.last().expect("a log has a tail").path;
        self.tail.write_all_at(&self.buf, self.offset).at(path)?;
        self.offset += self.buf.len() as u64;
        self.stats.bytes_written.fetch_add(self.buf.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Closes the tail at its used size and starts the next segment, which begins with
    /// the carried-over CRC, the metadata and the current hard state. The new segment
    /// is written under a temporary name and renamed, so it is complete or absent.
    fn cut(&mut self) -> Result<()> {
        let old = self.segments.last().expect("a log has a tail").clone();
        self.tail.set_len(self.offset).at(&old.path)?;
        self.tail.sync_all().at(&old.path)?;

        let next = Segment::new(&self.dir, old.seq + 1, self.last_index + 1);
        let mut encoder = Encoder::new(self.encoder.crc());
        let mut header = Vec::new();
        encoder.encode(&mut header, RecordType::Crc, Bytes::new());
        encoder.encode(&mut header, RecordType::Metadata, self.metadata.clone());
        encoder.encode(&mut header, RecordType::State, self.state.encode_to_vec().into());
        let staging = next.path.with_extension(&segment::STAGING_SUFFIX[1..]);
        let file = write_new_segment(&staging, &header, self.options.segment_bytes)?;
        std::fs::rename(&staging, &next.path).at(&next.path)?;
        sync_dir(&self.dir)?;

        self.encoder = encoder;
        self.tail = file;
        self.offset = header.len() as u64;
        self.segments.push(next);
        Ok(())
    }
}

/// Replays one segment held in memory as [`Wal::open`] replays the tail segment of a log
/// opened at `snapshot` (a torn last record is cut off, any other damage is an error),
/// reading `read_chunk_bytes` of it at a time (`Wal::open` reads
/// [`REPLAY_CHUNK_BYTES`](crate::REPLAY_CHUNK_BYTES)). Touches no file: it is how the fuzz
/// target (`fuzz/`) feeds the decoder arbitrary bytes, and a small `read_chunk_bytes`
/// exercises frames split across reads.
pub fn replay_segment(
    data: &[u8],
    snapshot: &WalSnapshot,
    read_chunk_bytes: u64,
) -> Result<Recovered> {
    let path = Path::new("<memory>");
    let mut replay = Replay::new(snapshot);
    let end = segment::replay_from(data, data.len() as u64, read_chunk_bytes, path, 0, |t, r| {
        replay.apply(t, r, path)
    })?;
    end.stop.accept(path, true)?;
    if !replay.snapshot_found {
        return Err(WalError::SnapshotNotFound { index: snapshot.index, term: snapshot.term });
    }
    Ok(replay.into_recovered())
}

/// Creates a preallocated segment holding `header`, synced.
fn write_new_segment(path: &Path, header: &[u8], segment_bytes: u64) -> Result<File> {
    let file = OpenOptions::new().read(true).write(true).create_new(true).open(path).at(path)?;
    preallocate(&file, segment_bytes.max(header.len() as u64), path)?;
    file.write_all_at(header, 0).at(path)?;
    file.sync_all().at(path)?;
    Ok(file)
}

/// State rebuilt while reading the log.
struct Replay<'a> {
    snapshot: &'a WalSnapshot,
    snapshot_found: bool,
    metadata: Option<Bytes>,
    state: HardState,
    /// The entries after the snapshot, contiguous: `entries[i].index == snapshot.index + 1 + i`.
    entries: Vec<Entry>,
}

impl<'a> Replay<'a> {
    fn new(snapshot: &'a WalSnapshot) -> Replay<'a> {
        Replay {
            snapshot,
            snapshot_found: false,
            metadata: None,
            state: HardState::default(),
            entries: Vec::new(),
        }
    }

    fn into_recovered(self) -> Recovered {
        Recovered {
            metadata: self.metadata.unwrap_or_default(),
            hard_state: self.state,
            entries: self.entries,
        }
    }

    fn apply(&mut self, record_type: RecordType, record: Record, path: &Path) -> Result<()> {
        let undecodable = |e: prost::DecodeError| WalError::Corrupt {
            path: path.to_path_buf(),
            offset: 0,
            detail: format!("undecodable {record_type:?} record: {e}"),
        };
        match record_type {
            RecordType::Entry => {
                let entry = Entry::decode(record.data).map_err(undecodable)?;
                // A later write of an index replaces it and everything after it: a new
                // leader overwrote an uncommitted tail. A write at or below the snapshot
                // (an overwrite that a snapshot arriving from the leader then covered)
                // replaces every entry read after the snapshot so far.
                let index = entry.index;
                let after_snapshot = index.saturating_sub(self.snapshot.index);
                let position = after_snapshot.saturating_sub(1) as usize;
                let last = self.snapshot.index + self.entries.len() as u64;
                if position > self.entries.len() {
                    return Err(WalError::EntryGap { index, last });
                }
                self.entries.truncate(position);
                if after_snapshot > 0 {
                    self.entries.push(entry);
                }
            }
            RecordType::State => {
                self.state = HardState::decode(record.data).map_err(undecodable)?
            }
            RecordType::Metadata => match &self.metadata {
                Some(seen) if *seen != record.data => return Err(WalError::MetadataConflict),
                _ => self.metadata = Some(record.data),
            },
            RecordType::Snapshot => {
                let snap = WalSnapshot::decode(record.data).map_err(undecodable)?;
                if snap.index == self.snapshot.index {
                    if snap.term != self.snapshot.term {
                        return Err(WalError::SnapshotMismatch {
                            index: snap.index,
                            found: snap.term,
                            wanted: self.snapshot.term,
                        });
                    }
                    self.snapshot_found = true;
                }
            }
            // Validated by the decoder as part of the CRC chain.
            RecordType::Crc => {}
        }
        Ok(())
    }
}
