//! The log's contract from the outside: what is saved is read back, across segment
//! cuts, snapshots, overwrites, torn tails and crashes; damage is reported, never
//! skipped; one process at a time.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use oxetcd_raft::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use oxetcd_wal::{Recovered, Snapshotter, Wal, WalError, WalOptions, WalSnapshot};

/// Small segments, so tests cross many cuts quickly.
fn small() -> WalOptions {
    WalOptions { segment_bytes: 4096 }
}

fn entry(index: u64, term: u64, data: &str) -> Entry {
    Entry { index, term, data: Bytes::copy_from_slice(data.as_bytes()), ..Default::default() }
}

fn state(term: u64, commit: u64) -> HardState {
    HardState { term, vote: 1, commit }
}

fn snap(index: u64, term: u64) -> WalSnapshot {
    WalSnapshot {
        index,
        term,
        conf_state: Some(ConfState { voters: vec![1], ..Default::default() }),
    }
}

fn wal_dir(tmp: &tempfile::TempDir) -> PathBuf {
    tmp.path().join("member").join("wal")
}

fn reopen(dir: &Path, at: &WalSnapshot) -> (Wal, Recovered) {
    Wal::open(dir, at, small()).expect("reopen")
}

fn indexes(r: &Recovered) -> Vec<u64> {
    r.entries.iter().map(|e| e.index).collect()
}

#[test]
fn saved_entries_state_and_metadata_read_back() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = wal_dir(&tmp);
    let mut wal = Wal::create(&dir, Bytes::from_static(b"node-1"), small()).unwrap();
    let entries: Vec<Entry> = (1..=5).map(|i| entry(i, 1, &format!("v{i}"))).collect();
    wal.save(&state(1, 3), &entries, true).unwrap();
    drop(wal);

    let (_wal, got) = reopen(&dir, &WalSnapshot::origin());
    assert_eq!(got.metadata, Bytes::from_static(b"node-1"));
    assert_eq!(got.hard_state, state(1, 3));
    assert_eq!(got.entries, entries);
}

#[test]
fn create_refuses_an_existing_log() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = wal_dir(&tmp);
    drop(Wal::create(&dir, Bytes::new(), small()).unwrap());
    let err = Wal::create(&dir, Bytes::new(), small()).unwrap_err();
    assert!(matches!(err, WalError::AlreadyExists(_)), "{err}");
}

#[test]
fn a_later_write_of_an_index_replaces_the_tail_after_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = wal_dir(&tmp);
    let mut wal = Wal::create(&dir, Bytes::new(), small()).unwrap();
    wal.save(&state(1, 1), &[entry(1, 1, "a"), entry(2, 1, "b"), entry(3, 1, "c")], true).unwrap();
    // A new leader of term 2 overwrites the uncommitted 2 and 3.
    wal.save(&state(2, 1), &[entry(2, 2, "B")], true).unwrap();
    drop(wal);
    let (_wal, got) = reopen(&dir, &WalSnapshot::origin());
    assert_eq!(got.entries, vec![entry(1, 1, "a"), entry(2, 2, "B")]);
}

#[test]
fn an_overwrite_at_or_below_the_snapshot_drops_every_entry_read_after_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = wal_dir(&tmp);
    let mut wal = Wal::create(&dir, Bytes::new(), small()).unwrap();
    let stale: Vec<Entry> = (1..=10).map(|i| entry(i, 1, "stale")).collect();
    wal.save(&state(1, 4), &stale, true).unwrap();
    // A leader of term 2 overwrites from 5; before it writes past 7, a snapshot at 7
    // arrives (a follower's MsgSnap) and the member stops.
    wal.save(&state(2, 6), &[entry(5, 2, "5"), entry(6, 2, "6")], true).unwrap();
    wal.save_snapshot(&snap(7, 2)).unwrap();
    drop(wal);
    // Opened at that snapshot: 8..10 of term 1 were replaced by the write of 5, so no
    // entry follows the snapshot, and appends go on from it.
    let (mut wal, got) = reopen(&dir, &snap(7, 2));
    assert_eq!(indexes(&got), Vec::<u64>::new());
    assert_eq!(wal.last_index(), 7);
    wal.save(&state(2, 8), &[entry(8, 2, "8")], true).unwrap();
    drop(wal);
    let (_wal, got) = reopen(&dir, &snap(7, 2));
    assert_eq!(got.entries, vec![entry(8, 2, "8")]);
}

#[test]
fn an_overwrite_below_the_last_index_holds_across_segment_cuts_and_reopens() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = wal_dir(&tmp);
    let mut wal = Wal::create(&dir, Bytes::new(), small()).unwrap();
    let payload = "z".repeat(300);
    for i in 1..=40 {
        wal.save(&state(1, 10), &[entry(i, 1, &payload)], false).unwrap();
    }
    wal.sync().unwrap();
    assert!(wal.segment_paths().count() > 2, "the entries span segments");
    // Entry 11 is written again, in a later segment than the 12..40 it replaces (a
    // follower's conflict, or --force-new-cluster's removals after the commit index).
    wal.save(&state(2, 10), &[entry(11, 2, "new-11")], true).unwrap();
    assert_eq!(wal.last_index(), 11);
    drop(wal);
    let (mut wal, got) = reopen(&dir, &WalSnapshot::origin());
    assert_eq!(indexes(&got), (1..=11).collect::<Vec<_>>());
    assert_eq!(got.entries[10], entry(11, 2, "new-11"));
    assert_eq!(got.hard_state, state(2, 10));
    // Appends go on from the overwrite, also past a cut.
    let after: Vec<Entry> = (12..=30).map(|i| entry(i, 2, &payload)).collect();
    wal.save(&state(2, 30), &after, true).unwrap();
    drop(wal);
    let (mut wal, got) = reopen(&dir, &WalSnapshot::origin());
    assert_eq!(indexes(&got), (1..=30).collect::<Vec<_>>());
    assert!(got.entries[11..].iter().all(|e| e.term == 2));
    // A snapshot on the new branch is found, before and after a purge up to it.
    wal.save_snapshot(&snap(25, 2)).unwrap();
    wal.save(&state(2, 31), &[entry(31, 2, "31")], true).unwrap();
    assert!(!wal.purge(25, 1).unwrap().is_empty());
    drop(wal);
    let (_wal, got) = reopen(&dir, &snap(25, 2));
    assert_eq!(indexes(&got), (26..=31).collect::<Vec<_>>());
    assert!(got.entries.iter().all(|e| e.term == 2));
}

#[test]
fn many_segments_chain_their_crcs_and_read_back_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = wal_dir(&tmp);
    let mut wal = Wal::create(&dir, Bytes::from_static(b"m"), small()).unwrap();
    let payload = "x".repeat(300);
    for i in 1..=200 {
        wal.save(&state(1, i), &[entry(i, 1, &payload)], i % 7 == 0).unwrap();
    }
    wal.sync().unwrap();
    let segments = wal.segment_paths().count();
    assert!(segments > 10, "only {segments} segments");
    drop(wal);
    let (mut wal, got) = reopen(&dir, &WalSnapshot::origin());
    assert_eq!(indexes(&got), (1..=200).collect::<Vec<_>>());
    assert_eq!(got.hard_state, state(1, 200));
    // And appends continue the chain after a reopen.
    wal.save(&state(1, 201), &[entry(201, 1, "after")], true).unwrap();
    drop(wal);
    let (_wal, got) = reopen(&dir, &WalSnapshot::origin());
    assert_eq!(got.entries.last().unwrap().data, Bytes::from_static(b"after"));
}

#[test]
fn open_at_a_snapshot_returns_only_later_entries() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = wal_dir(&tmp);
    let mut wal = Wal::create(&dir, Bytes::new(), small()).unwrap();
    let payload = "y".repeat(500);
    for i in 1..=40 {
        wal.save(&state(2, i), &[entry(i, 2, &payload)], false).unwrap();
        if i == 25 {
            wal.save_snapshot(&snap(25, 2)).unwrap();
        }
    }
    wal.sync().unwrap();
    drop(wal);

    let (_wal, got) = reopen(&dir, &snap(25, 2));
    assert_eq!(indexes(&got), (26..=40).collect::<Vec<_>>());
    drop(_wal);
    let err = Wal::open(&dir, &snap(25, 3), small()).unwrap_err();
    assert!(matches!(err, WalError::SnapshotMismatch { index: 25, found: 2, wanted: 3 }), "{err}");
    let err = Wal::open(&dir, &snap(30, 2), small()).unwrap_err();
    assert!(matches!(err, WalError::SnapshotNotFound { index: 30, .. }), "{err}");
}

#[test]
fn purge_keeps_what_the_snapshot_does_not_cover() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = wal_dir(&tmp);
    let mut wal = Wal::create(&dir, Bytes::new(), small()).unwrap();
    let payload = "z".repeat(500);
    for i in 1..=60 {
        wal.save(&state(1, i), &[entry(i, 1, &payload)], false).unwrap();
    }
    wal.save_snapshot(&snap(45, 1)).unwrap();
    let before = wal.segment_paths().count();
    let removed = wal.purge(45, 2).unwrap();
    assert!(!removed.is_empty() && removed.iter().all(|p| !p.exists()));
    assert_eq!(wal.segment_paths().count(), before - removed.len());
    drop(wal);
    // Everything after the snapshot is still there.
    let (_wal, got) = reopen(&dir, &snap(45, 1));
    assert_eq!(indexes(&got), (46..=60).collect::<Vec<_>>());
}

#[test]
fn a_second_opener_is_refused_while_the_log_is_open() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = wal_dir(&tmp);
    let wal = Wal::create(&dir, Bytes::new(), small()).unwrap();
    let err = Wal::open(&dir, &WalSnapshot::origin(), small()).unwrap_err();
    assert!(matches!(err, WalError::Locked(_)), "{err}");
    drop(wal);
    reopen(&dir, &WalSnapshot::origin());
}

/// The tail segment and the length of its written part.
fn tail_and_used(dir: &Path) -> (PathBuf, usize) {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    segments.sort();
    let tail = segments.pop().unwrap();
    let data = std::fs::read(&tail).unwrap();
    let used = data.len() - data.iter().rev().take_while(|&&b| b == 0).count();
    (tail, used)
}

#[test]
fn a_segment_left_half_cut_by_a_crash_is_cleaned_up() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = wal_dir(&tmp);
    let mut wal = Wal::create(&dir, Bytes::new(), small()).unwrap();
    wal.save(&state(1, 1), &[entry(1, 1, "a")], true).unwrap();
    drop(wal);
    // The name the next cut will stage its segment under.
    let stale = dir.join("0000000000000001-0000000000000002.wal.tmp");
    std::fs::write(&stale, b"half a segment").unwrap();
    let (mut wal, got) = reopen(&dir, &WalSnapshot::origin());
    assert!(!stale.exists());
    assert_eq!(indexes(&got), [1]);
    let payload = "p".repeat(1000);
    for i in 2..=20 {
        wal.save(&state(1, i), &[entry(i, 1, &payload)], true).unwrap();
    }
    assert!(wal.segment_paths().count() > 1, "the cut went through");
}

#[test]
fn a_torn_last_record_is_cut_off_and_appends_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = wal_dir(&tmp);
    let mut wal = Wal::create(&dir, Bytes::new(), WalOptions::default()).unwrap();
    wal.save(&state(1, 1), &[entry(1, 1, "kept")], true).unwrap();
    wal.save(&HardState::default(), &[entry(2, 1, &"t".repeat(2000))], true).unwrap();
    drop(wal);
    // Simulate a crash mid-write: the last 700 written bytes never reached the disk.
    let (tail, used) = tail_and_used(&dir);
    let mut data = std::fs::read(&tail).unwrap();
    data[used - 700..used].fill(0);
    std::fs::write(&tail, &data).unwrap();

    let (mut wal, got) = Wal::open(&dir, &WalSnapshot::origin(), WalOptions::default()).unwrap();
    assert_eq!(indexes(&got), [1]);
    wal.save(&state(1, 2), &[entry(2, 1, "again")], true).unwrap();
    drop(wal);
    let (_wal, got) = Wal::open(&dir, &WalSnapshot::origin(), WalOptions::default()).unwrap();
    assert_eq!(got.entries, vec![entry(1, 1, "kept"), entry(2, 1, "again")]);
}

#[test]
fn damage_before_good_records_is_an_error_not_a_skip() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = wal_dir(&tmp);
    let mut wal = Wal::create(&dir, Bytes::new(), WalOptions::default()).unwrap();
    for i in 1..=20 {
        wal.save(&state(1, i), &[entry(i, 1, "0123456789abcdef")], true).unwrap();
    }
    drop(wal);
    let (tail, used) = tail_and_used(&dir);
    let mut data = std::fs::read(&tail).unwrap();
    data[used / 2] ^= 0x01;
    std::fs::write(&tail, &data).unwrap();
    let err = Wal::open(&dir, &WalSnapshot::origin(), WalOptions::default()).unwrap_err();
    assert!(matches!(err, WalError::CrcMismatch { .. } | WalError::Corrupt { .. }), "{err}");
}

/// Replay reads a segment a chunk (1 MiB) at a time: these logs span several chunks,
/// with records straddling chunk boundaries and one record larger than a chunk.
fn multi_chunk_log(dir: &Path) -> Vec<Entry> {
    let mut wal = Wal::create(dir, Bytes::new(), WalOptions::default()).unwrap();
    let mut entries = Vec::new();
    for i in 1..=60 {
        let size = if i == 30 { 1_500_000 } else { 40_000 + i as usize * 7 };
        let e = entry(i, 1, &char::from(b'a' + (i % 26) as u8).to_string().repeat(size));
        wal.save(&state(1, i), std::slice::from_ref(&e), true).unwrap();
        entries.push(e);
    }
    entries
}

#[test]
fn records_across_read_chunks_read_back() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = wal_dir(&tmp);
    let entries = multi_chunk_log(&dir);
    let (_wal, got) = Wal::open(&dir, &WalSnapshot::origin(), WalOptions::default()).unwrap();
    assert_eq!(got.entries, entries);
}

#[test]
fn a_torn_tail_past_the_first_chunk_is_cut_off() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = wal_dir(&tmp);
    let entries = multi_chunk_log(&dir);
    let (tail, used) = tail_and_used(&dir);
    let mut data = std::fs::read(&tail).unwrap();
    data[used - 4096..used].fill(0);
    std::fs::write(&tail, &data).unwrap();
    let (_wal, got) = Wal::open(&dir, &WalSnapshot::origin(), WalOptions::default()).unwrap();
    assert_eq!(got.entries, entries[..entries.len() - 1]);
}

#[test]
fn damage_in_the_first_chunk_with_data_chunks_later_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = wal_dir(&tmp);
    multi_chunk_log(&dir);
    let (tail, used) = tail_and_used(&dir);
    assert!(used > 3 << 20, "the log spans several read chunks");
    let mut data = std::fs::read(&tail).unwrap();
    data[100_000] ^= 0x01;
    std::fs::write(&tail, &data).unwrap();
    let err = Wal::open(&dir, &WalSnapshot::origin(), WalOptions::default()).unwrap_err();
    assert!(matches!(err, WalError::CrcMismatch { .. } | WalError::Corrupt { .. }), "{err}");
}

#[test]
fn snapshot_files_save_load_skip_broken_and_purge() {
    let tmp = tempfile::tempdir().unwrap();
    let snapshotter = Snapshotter::new(&tmp.path().join("snap")).unwrap();
    assert!(matches!(snapshotter.load_newest(), Err(WalError::NoSnapshot)));
    let make = |index, term| Snapshot {
        data: Bytes::from(format!("state at {index}")),
        metadata: Some(SnapshotMetadata { index, term, conf_state: Some(ConfState::default()) }),
    };
    let paths: Vec<PathBuf> = [(10, 1), (20, 1), (30, 2)]
        .iter()
        .map(|&(i, t)| snapshotter.save(&make(i, t)).unwrap())
        .collect();
    assert!(paths[2].ends_with("0000000000000002-000000000000001e.snap"));
    assert_eq!(snapshotter.load_newest().unwrap(), make(30, 2));
    assert_eq!(snapshotter.load_all().unwrap(), [make(30, 2), make(20, 1), make(10, 1)]);

    let mut newest = std::fs::read(&paths[2]).unwrap();
    let last = newest.len() - 1;
    newest[last] ^= 0xff;
    std::fs::write(&paths[2], newest).unwrap();
    assert_eq!(snapshotter.load_newest().unwrap(), make(20, 1));
    assert!(paths[2].with_extension("snap.broken").exists());
    assert_eq!(snapshotter.load_all().unwrap(), [make(20, 1), make(10, 1)]);

    assert_eq!(snapshotter.purge(1).unwrap(), vec![paths[0].clone()]);
    assert_eq!(snapshotter.load_newest().unwrap(), make(20, 1));
}

/// The child side of the crash test: appends synced batches forever, printing the
/// last index of each batch once its sync returned.
const CRASH_CHILD_DIR: &str = "OXETCD_WAL_CRASH_CHILD_DIR";

#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CRASH_CHILD_DIR) else { return };
    use std::io::Write;
    let dir = PathBuf::from(dir);
    let mut wal = Wal::create(&dir, Bytes::from_static(b"crash"), small()).unwrap();
    let mut stdout = std::io::stdout();
    let mut next = 1;
    loop {
        let batch: Vec<Entry> = (next..next + 5).map(|i| entry(i, 1, &format!("{i:08}"))).collect();
        next += 5;
        wal.save(&state(1, next - 1), &batch, true).unwrap();
        writeln!(stdout, "{}", next - 1).unwrap();
        stdout.flush().unwrap();
    }
}

#[test]
fn every_synced_entry_survives_kill_9() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let tmp = tempfile::tempdir().unwrap();
    let dir = wal_dir(&tmp);
    std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CRASH_CHILD_DIR, &dir)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut acknowledged = 0;
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines {
        let line = line.unwrap();
        if let Ok(index) = line.trim().parse::<u64>() {
            acknowledged = index;
            if acknowledged >= 2000 {
                break;
            }
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(acknowledged >= 2000, "the child stopped early");

    let (_wal, got) = reopen(&dir, &WalSnapshot::origin());
    let last = got.entries.last().map(|e| e.index).unwrap_or(0);
    assert!(last >= acknowledged, "acknowledged {acknowledged}, recovered up to {last}");
    for (i, e) in got.entries.iter().enumerate() {
        assert_eq!(e.index, i as u64 + 1);
        assert_eq!(e.data, Bytes::from(format!("{:08}", e.index)));
    }
}

#[test]
fn a_log_named_relative_to_the_working_dir_is_created() {
    // `--wal-dir wal`: the parent to sync is the working dir. Every other test in this
    // binary uses absolute paths, so moving the working dir does not disturb them.
    let tmp = tempfile::tempdir().unwrap();
    std::env::set_current_dir(tmp.path()).unwrap();
    drop(Wal::create(Path::new("wal"), Bytes::from_static(b"m"), small()).expect("created"));
    let (_wal, got) = reopen(&tmp.path().join("wal"), &WalSnapshot::origin());
    assert_eq!(got.metadata, Bytes::from_static(b"m"));
}

#[test]
fn a_rewritten_log_reads_back_with_every_entry_transformed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = wal_dir(&tmp);
    let mut wal = Wal::create(&dir, Bytes::from_static(b"node-1"), small()).unwrap();
    let entries: Vec<Entry> =
        (1..=60).map(|i| entry(i, 1, &format!("v{i}-{}", "x".repeat(200)))).collect();
    for chunk in entries[..40].chunks(5) {
        wal.save(&state(1, chunk[0].index), chunk, true).unwrap();
    }
    wal.save_snapshot(&snap(30, 1)).unwrap();
    wal.save(&state(1, 50), &entries[40..], true).unwrap();
    // An overwritten tail: the rewrite keeps both writes, the reader resolves them.
    let overwrite: Vec<Entry> = (55..=58).map(|i| entry(i, 2, &format!("w{i}"))).collect();
    wal.save(&state(2, 56), &overwrite, true).unwrap();
    drop(wal);
    let (_, before) = reopen(&dir, &snap(30, 1));

    let new_dir = tmp.path().join("rewritten");
    let upper = |mut e: Entry| {
        e.data = Bytes::from(e.data.to_ascii_uppercase());
        Ok(e)
    };
    let done = oxetcd_wal::rewrite(&dir, &new_dir, upper).unwrap();
    assert_eq!(done.entries, 64);
    let markers: Vec<(u64, u64)> = done.snapshots.iter().map(|s| (s.index, s.term)).collect();
    assert_eq!(markers, [(0, 0), (30, 1)], "the snapshot records, in log order");
    assert_eq!(done.changed, 64);
    let segments = |d: &Path| std::fs::read_dir(d).unwrap().count();
    assert!(done.segments > 1, "the log crossed segment cuts");
    assert_eq!(segments(&new_dir), segments(&dir));

    let (_, after) = reopen(&new_dir, &snap(30, 1));
    assert_eq!(after.metadata, before.metadata);
    assert_eq!(after.hard_state, before.hard_state);
    let expected: Vec<Entry> = before.entries.into_iter().map(|e| upper(e).unwrap()).collect();
    assert_eq!(after.entries, expected);
    assert_eq!(indexes(&after).last(), Some(&58));

    // An entry the transform refuses stops the rewrite, naming it.
    let refused = oxetcd_wal::rewrite(&dir, &tmp.path().join("refused"), |e| {
        if e.index == 7 { Err("no".to_string()) } else { Ok(e) }
    });
    let err = refused.expect_err("refused").to_string();
    assert!(err.contains("entry 7: no"), "{err}");
}

#[test]
fn snapshot_files_are_rewritten_in_place() {
    let tmp = tempfile::tempdir().unwrap();
    let snapshotter = Snapshotter::new(tmp.path()).unwrap();
    for index in [10, 20] {
        let metadata = SnapshotMetadata { index, term: 1, ..Default::default() };
        let data = Bytes::from(format!("state at {index}"));
        snapshotter.save(&Snapshot { data, metadata: Some(metadata) }).unwrap();
    }
    let rewritten =
        snapshotter.rewrite_data(|data| Ok(Bytes::from(data.to_ascii_uppercase()))).unwrap();
    assert_eq!(rewritten, 2);
    let newest = snapshotter.load_newest().unwrap();
    assert_eq!(newest.data, Bytes::from_static(b"STATE AT 20"));
    assert_eq!(newest.metadata.unwrap().index, 20);
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 2, "no staging file left");
}
