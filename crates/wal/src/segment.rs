//! Segment files: `<seq>-<index>.wal`, both 16 hex digits, where `index` is the raft
//! index the segment's first entry is expected to have (etcd's naming).

use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result, WalError};

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

/// The segments in `dir`, oldest first, checked to form one unbroken sequence.
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
        if pair[1].seq != pair[0].seq + 1 || pair[1].index < pair[0].index {
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
