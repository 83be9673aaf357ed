//! Rewriting a closed log with each entry's payload re-encoded: how a data dir changes
//! hands between encodings of the same entries (`oxetcdutl migrate --to etcd`).
//!
//! The new log is the old one record for record: the same segment names and sizes, the
//! same metadata, hard states and snapshot markers, the same entries in the same order
//! (an overwritten tail included, so a reader resolves it as it would have); only each
//! entry's bytes are whatever the caller makes of them, and the CRC chain is computed
//! anew over them.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;

use bytes::Bytes;
use oxetcd_raft::Entry;
use prost::Message;

use crate::error::{IoContext, Result, WalError};
use crate::fs::{preallocate, sync_dir};
use crate::record::{Encoder, RecordType, WalSnapshot};
use crate::segment::{self, Segment};

/// What [`rewrite`] did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rewritten {
    pub segments: usize,
    pub entries: u64,
    /// Entries whose bytes changed.
    pub changed: u64,
    /// The snapshot records copied, in log order: the snapshots a member restarting on
    /// the log may start from (a snap file newer than all of them was written by a member
    /// that stopped before its record).
    pub snapshots: Vec<WalSnapshot>,
}

/// Writes the log in `src` anew into `dst` (which must not exist), every entry passed
/// through `transform`; durable when this returns. `src` is only read: the caller holds
/// its lock. A torn last record (a crash mid-write) is left out, as opening the log would
/// cut it off; damage anywhere else is an error, and so is an entry `transform` refuses
/// (its message is returned in [`WalError::Corrupt`] with the entry's place).
pub fn rewrite(
    src: &Path,
    dst: &Path,
    mut transform: impl FnMut(Entry) -> std::result::Result<Entry, String>,
) -> Result<Rewritten> {
    let segments = segment::list(src, false)?;
    if segments.is_empty() {
        return Err(WalError::NotFound(src.to_path_buf()));
    }
    std::fs::create_dir(dst).at(dst)?;
    let mut done = Rewritten::default();
    let (mut read_crc, mut encoder) = (0, Encoder::new(0));
    let last = segments.len() - 1;
    for (i, old) in segments.iter().enumerate() {
        let new = Segment::new(dst, old.seq, old.index);
        // A segment is bounded (64 MiB by default), so it is built whole in memory.
        let mut buf = Vec::new();
        let end = segment::replay(&old.path, read_crc, |record_type, record| {
            let data = match record_type {
                RecordType::Entry => {
                    let entry =
                        Entry::decode(record.data.clone()).map_err(|e| WalError::Corrupt {
                            path: old.path.clone(),
                            offset: 0,
                            detail: e.to_string(),
                        })?;
                    let index = entry.index;
                    let rewritten = transform(entry).map_err(|detail| WalError::Corrupt {
                        path: old.path.clone(),
                        offset: 0,
                        detail: format!("entry {index}: {detail}"),
                    })?;
                    let data: Bytes = rewritten.encode_to_vec().into();
                    done.entries += 1;
                    done.changed += u64::from(data != record.data);
                    data
                }
                // The Crc record carries the chain itself: the encoder writes its own.
                RecordType::Crc => Bytes::new(),
                RecordType::Snapshot => {
                    let marker = WalSnapshot::decode(record.data.clone()).map_err(|e| {
                        WalError::Corrupt {
                            path: old.path.clone(),
                            offset: 0,
                            detail: format!("undecodable snapshot record: {e}"),
                        }
                    })?;
                    done.snapshots.push(marker);
                    record.data
                }
                _ => record.data,
            };
            encoder.encode(&mut buf, record_type, data);
            Ok(())
        })?;
        end.stop.accept(&old.path, i == last)?;
        read_crc = end.crc;
        let old_len = std::fs::metadata(&old.path).at(&old.path)?.len();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&new.path)
            .at(&new.path)?;
        preallocate(&file, old_len.max(buf.len() as u64), &new.path)?;
        file.write_all_at(&buf, 0).at(&new.path)?;
        file.sync_all().at(&new.path)?;
        done.segments += 1;
    }
    sync_dir(dst)?;
    Ok(done)
}
