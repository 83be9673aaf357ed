//! A WAL directory of one to three segment files opened as a restarting member opens its
//! log (`Wal::open`, at the origin or at a snapshot's position): the segments' names
//! and sequence, which segment to start reading at, the CRC chain carried from one
//! segment into the next, metadata repeated in each, entries overwritten across a
//! segment boundary, a torn tail in the last segment and damage in the others. When the
//! log opens, its entries must follow the snapshot without a gap; an entry and a hard
//! state appended then (cutting a segment when the tail is full) must read back after
//! them on the next open.
//!
//! The input: a flags byte (bits 0-1: segment count minus one, 3 read as 1; bit 2: open
//! at the snapshot position that follows, else at the origin), the snapshot's index and
//! term (u64 LE each, always present), then one tagged piece per segment
//! (`oxetcd_fuzz::tagged_pieces`): the tag is the step from the previous segment's
//! sequence number (the first's sequence number), the piece the first index of the
//! segment's name (u64 LE) and then the file's bytes. The seeds are logs `Wal` wrote
//! (`fuzz/src/seeds.rs`).
#![no_main]

use std::path::{Path, PathBuf};

use libfuzzer_sys::fuzz_target;
use oxetcd_fuzz::{decode_entry_payload, tagged_pieces};
use oxetcd_raft::{Entry, HardState};
use oxetcd_wal::{Wal, WalOptions, WalSnapshot};

/// Segments per directory: two boundaries are enough for the chain to carry over twice.
const MAX_SEGMENTS: usize = 3;
/// Where the log cuts a new segment: small, so an append after an open can cut one, and
/// so the preallocated tail stays small (the real size is 64 MiB).
const SEGMENT_BYTES: u64 = 16 << 10;

/// A directory of this process's own, in memory where there is a tmpfs (`Wal::open`
/// syncs, and a sync on a disk would cost each run milliseconds).
fn scratch_dir() -> PathBuf {
    let base = Path::new("/dev/shm");
    let base = if base.is_dir() { base.to_path_buf() } else { std::env::temp_dir() };
    base.join(format!("oxetcd-fuzz-wal_dir-{}", std::process::id()))
}

fn read_u64(bytes: &[u8]) -> u64 {
    let mut le = [0u8; 8];
    let n = bytes.len().min(8);
    le[..n].copy_from_slice(&bytes[..n]);
    u64::from_le_bytes(le)
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let (snapshot, segments) = rest.split_at(rest.len().min(16));
    let count = usize::from(flags & 3).clamp(1, MAX_SEGMENTS);
    let snapshot = if flags & 4 != 0 {
        let (index, term) = snapshot.split_at(snapshot.len().min(8));
        WalSnapshot { index: read_u64(index), term: read_u64(term), conf_state: None }
    } else {
        WalSnapshot::origin()
    };

    let dir = scratch_dir();
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch dir");
    let mut seq = 0u64;
    for (i, (step, piece)) in tagged_pieces(segments).take(count).enumerate() {
        seq = if i == 0 { u64::from(step) } else { seq + u64::from(step) };
        let (index, contents) = piece.split_at(piece.len().min(8));
        let name = format!("{seq:016x}-{:016x}.wal", read_u64(index));
        let path = dir.join(name);
        // A repeated name stands for the file already there.
        if !path.exists() {
            std::fs::write(&path, contents).expect("a segment file");
        }
    }

    let options = || WalOptions { segment_bytes: SEGMENT_BYTES };
    let Ok((mut wal, recovered)) = Wal::open(&dir, &snapshot, options()) else {
        let _ = std::fs::remove_dir_all(&dir);
        return;
    };
    for (i, entry) in recovered.entries.iter().enumerate() {
        assert_eq!(entry.index, snapshot.index + 1 + i as u64, "entries follow the snapshot");
        decode_entry_payload(entry.entry_type, entry.data.clone());
    }

    // What a member does next: append where the log ends, then restart.
    if let Some(index) = wal.last_index().checked_add(1) {
        let entry = Entry { term: 1, index, entry_type: 0, data: vec![b'x'; 64].into() };
        let state = HardState { term: 1, vote: 1, commit: index };
        wal.save(&state, std::slice::from_ref(&entry), true).expect("an append to tmpfs");
        drop(wal);
        let (_, reopened) =
            Wal::open(&dir, &snapshot, options()).expect("a log reopens after an append");
        let mut expected = recovered.entries;
        if index > snapshot.index {
            expected.push(entry);
        }
        assert_eq!(reopened.entries, expected, "the appended entry reads back");
        assert_eq!(reopened.hard_state, state);
        assert_eq!(reopened.metadata, recovered.metadata);
    }
    let _ = std::fs::remove_dir_all(&dir);
});
