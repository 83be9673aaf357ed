//! The backend in etcd's file format (bbolt) and back: a store saved as bbolt and
//! imported again holds the same rows, revisions, compaction and hashes; a damaged or
//! foreign bbolt file is refused and leaves the original in place.

mod common;

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use common::*;
use oxetcd_bbolt::{Db, Writer, WriterOptions};
use oxetcd_mvcc::RedbBackend;
use oxetcd_mvcc::backend::{Backend, Snapshot};
use oxetcd_mvcc::etcd_file::{self, BackendFormat};
use oxetcd_mvcc::{ApplyIndex, NoLeases, Store};

fn at(index: u64) -> ApplyIndex {
    ApplyIndex { index, term: 3 }
}

/// Table name → its rows, in key order.
type Tables = BTreeMap<String, Vec<(Vec<u8>, Vec<u8>)>>;

/// Every row of every table of the backend file at `path`.
fn rows(path: &Path) -> Tables {
    let backend = RedbBackend::open(path).unwrap();
    let snapshot = backend.snapshot().unwrap();
    let mut all = BTreeMap::new();
    for table in snapshot.tables().unwrap() {
        let mut rows = Vec::new();
        snapshot
            .scan(&table, &[], |k, v| {
                rows.push((k.to_vec(), v.to_vec()));
                ControlFlow::Continue(())
            })
            .unwrap();
        all.insert(table, rows);
    }
    all
}

/// A store with history, a compaction, deletes and an auxiliary table, closed.
fn filled_store(dir: &Path) -> (std::path::PathBuf, oxetcd_mvcc::HashKv, i64) {
    let path = dir.join("db");
    let store = Store::open_path(&path, test_config(), Arc::new(NoLeases)).unwrap();
    let mut index = 1;
    for i in 0..300 {
        store.put(&put(&format!("k{:03}", i % 120), &format!("v{i}")), at(index)).unwrap();
        index += 1;
    }
    store.delete_range(&delete("k010", "k020"), at(index)).unwrap();
    index += 1;
    let (_, handle) = store.compact(150, at(index)).unwrap();
    handle.wait().unwrap();
    index += 1;
    let lease_rows =
        (1..=3u64).map(|id| (Bytes::from(id.to_be_bytes().to_vec()), Some(b("lease"))));
    store.aux_write("lease", lease_rows, at(index)).unwrap();
    store.force_commit().unwrap();
    let rev = store.current_revision();
    let hash = store.hash_kv(0).unwrap();
    store.close().unwrap();
    (path, hash, rev)
}

#[test]
fn a_store_saved_as_bbolt_imports_back_unchanged() {
    let dir = temp_dir();
    let (path, hash, rev) = filled_store(dir.path());
    let before = rows(&path);

    let store = Store::open_path(&path, test_config(), Arc::new(NoLeases)).unwrap();
    let bbolt = dir.path().join("snapshot.bbolt");
    let pinned = store.pin_snapshot().unwrap();
    let saved = pinned.save_bbolt(&bbolt).unwrap();
    // Streamed front to back from its layout, the copy is the saved file byte for byte.
    let layout = pinned.bbolt_layout().unwrap();
    assert_eq!(layout.file_size(), saved.bytes);
    let streamed = pinned.stream_bbolt(layout, Vec::new()).unwrap();
    assert!(streamed == std::fs::read(&bbolt).unwrap(), "the stream differs from the file");
    drop(pinned);
    store.close().unwrap();
    assert_eq!(saved.bytes, std::fs::metadata(&bbolt).unwrap().len());
    assert_eq!(etcd_file::detect_format(&bbolt).unwrap(), BackendFormat::Bbolt);
    assert_eq!(etcd_file::detect_format(&path).unwrap(), BackendFormat::Redb);

    // A valid bbolt file whose buckets are the tables, row for row.
    let db = Db::open(&bbolt).unwrap();
    db.check().unwrap();
    let buckets: Vec<String> =
        db.buckets().unwrap().into_iter().map(|b| String::from_utf8(b).unwrap()).collect();
    assert_eq!(buckets, before.keys().cloned().collect::<Vec<_>>());
    for (table, table_rows) in &before {
        let bucket = db.bucket(table.as_bytes()).unwrap().unwrap();
        let got: Vec<_> = bucket.iter().map(Result::unwrap).collect();
        assert_eq!(&got, table_rows, "bucket {table}");
    }

    // Converted back in place, with the original kept.
    let kept = dir.path().join("snapshot.bbolt.orig");
    let mut seen = Vec::new();
    let imported =
        etcd_file::convert_in_place(&bbolt, Some(&kept), |t, n| seen.push((t.into(), n)))
            .unwrap()
            .expect("a bbolt file is converted");
    assert_eq!(imported.tables as usize, before.len());
    assert_eq!(imported.rows as usize, before.values().map(Vec::len).sum::<usize>());
    assert_eq!(seen.iter().map(|(t, _): &(String, u64)| t.clone()).collect::<Vec<_>>(), buckets);
    assert_eq!(etcd_file::detect_format(&kept).unwrap(), BackendFormat::Bbolt);
    assert_eq!(rows(&bbolt), before);
    assert!(etcd_file::convert_in_place(&bbolt, None, |_, _| {}).unwrap().is_none());

    let store = Store::open_path(&bbolt, test_config(), Arc::new(NoLeases)).unwrap();
    assert_eq!(store.current_revision(), rev);
    assert_eq!(store.compact_revision(), 150);
    assert_eq!(store.hash_kv(0).unwrap(), hash);
    assert_eq!(store.consistent_index(), at(303));
    store.close().unwrap();
}

#[test]
fn a_damaged_or_foreign_bbolt_file_is_refused_and_left_in_place() {
    let dir = temp_dir();
    let (path, _, _) = filled_store(dir.path());
    let store = Store::open_path(&path, test_config(), Arc::new(NoLeases)).unwrap();
    let bbolt = dir.path().join("snapshot.bbolt");
    store.pin_snapshot().unwrap().save_bbolt(&bbolt).unwrap();
    store.close().unwrap();

    // A page of the tree overwritten: the walk meets it and the import stops.
    let good = std::fs::read(&bbolt).unwrap();
    let mut damaged = good.clone();
    let last_page = damaged.len() - 4096;
    damaged[last_page..last_page + 64].fill(0xA5);
    std::fs::write(&bbolt, &damaged).unwrap();
    let err = etcd_file::convert_in_place(&bbolt, None, |_, _| {}).unwrap_err();
    assert!(matches!(err, oxetcd_mvcc::Error::Corrupt(_)), "{err}");
    assert_eq!(std::fs::read(&bbolt).unwrap(), damaged, "the original is untouched");
    let mut importing = bbolt.as_os_str().to_owned();
    importing.push(etcd_file::IMPORTING_SUFFIX);
    assert!(!Path::new(&importing).exists(), "no half-built file is left");

    // A bucket inside a bucket is nothing etcd writes.
    let nested = dir.path().join("nested.bbolt");
    let file = std::fs::File::create(&nested).unwrap();
    let mut writer = Writer::new(file, WriterOptions::default()).unwrap();
    writer.begin_bucket(b"key").unwrap();
    writer.begin_bucket(b"inner").unwrap();
    writer.put(b"a", b"b").unwrap();
    writer.end_bucket().unwrap();
    writer.end_bucket().unwrap();
    writer.finish().unwrap();
    let err = etcd_file::convert_in_place(&nested, None, |_, _| {}).unwrap_err().to_string();
    assert!(err.contains("nested bucket"), "{err}");
}
