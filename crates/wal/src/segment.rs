//! Segment files: `<seq>-<index>.wal`, both 16 hex digits, where `index` is the raft
//! index the segment's first entry is expected to have (etcd's naming).

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result, WalError};
use crate::record::{DecodeStop, Decoder, Record, RecordType, frame_bytes};

/// Bytes read from a segment at a time while replaying it. Small, because a member's
/// start reads its tail segment, mostly preallocated zeros: every byte of the chunk stays
/// resident in the allocator after replay (1 MiB, read in doublings, left 2 MB of an idle
/// member's heap). Reads of this size from the page cache still cost far less than
/// decoding what they bring.
pub const REPLAY_CHUNK_BYTES: u64 = 128 << 10;

/// Where replaying a segment stopped.
#[derive(Debug)]
pub(crate) struct SegmentEnd {
    /// Why decoding stopped; offsets are from the start of the file.
    pub stop: DecodeStop,
    /// The running CRC after the last good record.
    pub crc: u32,
    /// The offset just past the last good record.
    pub offset: u64,
}

/// Decodes the records of the segment at `path`, continuing the CRC chain from `crc`,
/// and hands each to `on_record`. See [`replay_from`].
pub(crate) fn replay(
    path: &Path,
    crc: u32,
    on_record: impl FnMut(RecordType, Record) -> Result<()>,
) -> Result<SegmentEnd> {
    let mut file = File::open(path).at(path)?;
    let file_len = file.metadata().at(path)?.len();
    replay_from(&mut file, file_len, REPLAY_CHUNK_BYTES, path, crc, on_record)
}

/// Decodes the records of a segment of `file_len` bytes read from `file`, `chunk_bytes`
/// at a time, continuing the CRC chain from `crc`, and hands each to `on_record`
/// (`path` only names the segment in errors). Reading stops at the end of the written
/// data, so replay never holds a whole (mostly preallocated) segment in memory. Only a
/// damaged record makes it read the rest of the file, which tells a torn write from
/// corruption.
pub(crate) fn replay_from(
    mut file: impl Read,
    file_len: u64,
    chunk_bytes: u64,
    path: &Path,
    mut crc: u32,
    mut on_record: impl FnMut(RecordType, Record) -> Result<()>,
) -> Result<SegmentEnd> {
    // `data` holds the file's bytes from offset `base` on that are not decoded yet.
    let mut data = Vec::new();
    let mut base = 0u64;
    let mut want = chunk_bytes;
    loop {
        let unread = file_len - base - data.len() as u64;
        let read = want.min(unread);
        // Sized once: `read_to_end` alone grows by doubling, copying as it goes.
        data.try_reserve_exact(read as usize)
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::OutOfMemory))
            .at(path)?;
        let got = (&mut file).take(read).read_to_end(&mut data).at(path)?;
        // A short read is the end too: a file cut shorter than `file_len` must not make
        // the loop ask for the same missing bytes forever.
        let at_eof = (got as u64) < read || base + data.len() as u64 >= file_len;

        let mut decoder = Decoder::new(&data, crc);
        let stop = loop {
            match decoder.next() {
                Ok((record_type, record)) => on_record(record_type, record)?,
                Err(stop) => break stop,
            }
        };
        let consumed = decoder.offset();
        crc = decoder.crc();
        let rest = &data[consumed as usize..];
        let needed = frame_bytes(rest);
        let zero_length_field = matches!(stop, DecodeStop::End) && needed <= rest.len() as u64;
        if at_eof || zero_length_field {
            let shift = |offset: u64| base + offset;
            let stop = match stop {
                DecodeStop::End => DecodeStop::End,
                DecodeStop::Torn { offset } => DecodeStop::Torn { offset: shift(offset) },
                DecodeStop::Corrupt { offset, crc_mismatch, detail } => {
                    DecodeStop::Corrupt { offset: shift(offset), crc_mismatch, detail }
                }
            };
            return Ok(SegmentEnd { stop, crc, offset: base + consumed });
        }
        // Decoded records are copies: drop their bytes and read on. A frame that is all
        // there yet damaged is judged against everything after it, so read it all.
        data.drain(..consumed as usize);
        base += consumed;
        want = if needed > data.len() as u64 {
            (needed - data.len() as u64).max(chunk_bytes)
        } else {
            u64::MAX
        };
    }
}

impl DecodeStop {
    /// Whether a segment may end this way: at the end of what was written, or, for the
    /// tail only, at a write cut short (older segments were synced before the cut that
    /// ended them). Anything else is an error naming the place.
    pub(crate) fn accept(self, path: &Path, is_tail: bool) -> Result<()> {
        match self {
            DecodeStop::End => Ok(()),
            DecodeStop::Torn { .. } if is_tail => Ok(()),
            DecodeStop::Torn { offset } => {
                let detail = "torn record in a closed segment".to_string();
                Err(WalError::Corrupt { path: path.to_path_buf(), offset, detail })
            }
            DecodeStop::Corrupt { offset, crc_mismatch: true, .. } => {
                Err(WalError::CrcMismatch { path: path.to_path_buf(), offset })
            }
            DecodeStop::Corrupt { offset, detail, .. } => {
                Err(WalError::Corrupt { path: path.to_path_buf(), offset, detail })
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Segment {
    pub seq: u64,
    pub index: u64,
    pub path: PathBuf,
}

impl Segment {
    pub(crate) fn new(dir: &Path, seq: u64, index: u64) -> Segment {
        Segment { seq, index, path: dir.join(format!("{seq:016x}-{index:016x}.wal")) }
    }

    fn parse(dir: &Path, name: &str) -> Option<Segment> {
        let stem = name.strip_suffix(".wal")?;
        let (seq, index) = stem.split_once('-')?;
        if seq.len() != 16 || index.len() != 16 {
            return None;
        }
        let seq = u64::from_str_radix(seq, 16).ok()?;
        let index = u64::from_str_radix(index, 16).ok()?;
        Some(Segment::new(dir, seq, index))
    }
}

/// Suffix of a segment being cut: renamed into place once complete.
pub(crate) const STAGING_SUFFIX: &str = ".wal.tmp";

/// The segments in `dir`, oldest first, checked to form one unbroken sequence of
/// sequence numbers (as etcd checks). Their first indexes need not grow: a segment cut
/// after an uncommitted tail was overwritten (a follower's conflict, or
/// `--force-new-cluster`) starts below the one before it.
/// With `clean_staging`, half-made segments left by a crash during a cut are removed.
pub(crate) fn list(dir: &Path, clean_staging: bool) -> Result<Vec<Segment>> {
    let mut segments = Vec::new();
    for entry in std::fs::read_dir(dir).at(dir)? {
        let name = entry.at(dir)?.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(segment) = Segment::parse(dir, name) {
            segments.push(segment);
        } else if clean_staging && name.ends_with(STAGING_SUFFIX) {
            let path = dir.join(name);
            std::fs::remove_file(&path).at(&path)?;
        }
    }
    segments.sort_by_key(|s| s.seq);
    for pair in segments.windows(2) {
        if pair[1].seq != pair[0].seq + 1 {
            return Err(WalError::BrokenSequence {
                dir: dir.to_path_buf(),
                detail: format!("{} follows {}", pair[1].path.display(), pair[0].path.display()),
            });
        }
    }
    Ok(segments)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_others_are_ignored() {
        let dir = Path::new("/w");
        let s = Segment::new(dir, 3, 0x1f);
        assert_eq!(s.path, Path::new("/w/0000000000000003-000000000000001f.wal"));
        assert_eq!(Segment::parse(dir, "0000000000000003-000000000000001f.wal"), Some(s));
        assert_eq!(Segment::parse(dir, "0000000000000003-000000000000001f.wal.tmp"), None);
        assert_eq!(Segment::parse(dir, "3-1f.wal"), None);
    }
}
