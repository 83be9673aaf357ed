//! Defragmentation stopped at the `mvcc::defrag` failpoint, after the copy and the
//! catch-up replays, just before commits are held off for the swap: a failure there
//! leaves the old file in service; a pause there lets writes pile up in the journal.
//! Run with `cargo test -p oxetcd-mvcc --features failpoints --test defrag_failpoints`.

mod common;

use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use oxetcd_api::etcdserverpb::PutRequest;
use oxetcd_mvcc::backend::redb::defrag_path;
use oxetcd_mvcc::store::DEFRAG_JOURNAL_MAX_BYTES;
use oxetcd_mvcc::{ApplyIndex, Error};

const FAILPOINT: &str = "mvcc::defrag";

/// The failpoint registry is global: one test at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn at(index: u64) -> ApplyIndex {
    ApplyIndex { index, term: 1 }
}

/// Makes the failpoint report when a defragmentation reaches it, then wait for a go.
fn hold_at_failpoint() -> (mpsc::Receiver<()>, mpsc::Sender<()>) {
    let (reached, reached_rx) = mpsc::channel();
    let (go, go_rx) = mpsc::channel::<()>();
    let (reached, go_rx) = (Mutex::new(reached), Mutex::new(go_rx));
    fail::cfg_callback(FAILPOINT, move || {
        let _ = reached.lock().unwrap().send(());
        let _ = go_rx.lock().unwrap().recv();
    })
    .unwrap();
    (reached_rx, go)
}

#[test]
fn a_failed_defrag_leaves_the_old_file_serving_and_the_store_healthy() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut t = TempStore::new();
    let path = db_path(t.dir.path());
    for i in 0..100 {
        t.store().put(&put(&format!("k{i:03}"), "v"), at(i + 1)).unwrap();
    }
    t.store().force_commit().unwrap();
    let inode = std::fs::metadata(&path).unwrap().ino();

    fail::cfg(FAILPOINT, "return").unwrap();
    let failed = t.store().defragment();
    fail::remove(FAILPOINT);
    assert!(matches!(failed, Err(Error::Backend(_))), "{failed:?}");
    assert!(t.store().failure().is_none());
    assert!(!defrag_path(&path).exists(), "the half-built file is removed");
    assert_eq!(std::fs::metadata(&path).unwrap().ino(), inode, "the old file serves");

    t.store().put(&put("after", "failure"), at(101)).unwrap();
    t.store().force_commit().unwrap();
    assert_eq!(t.store().range(&range("\0", "\0")).unwrap().count, 101);
    t.reopen();
    assert_eq!(t.store().range(&range("\0", "\0")).unwrap().count, 101);
    assert_eq!(t.store().consistent_index(), at(101));

    // The next one succeeds.
    t.store().defragment().unwrap();
    assert_ne!(std::fs::metadata(&path).unwrap().ino(), inode);
    assert_eq!(t.store().range(&range("\0", "\0")).unwrap().count, 101);
}

#[test]
fn commits_during_a_defrag_are_replayed_and_a_full_journal_holds_commits_back() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut t = TempStore::new();
    let store = Arc::new(t.store.take().unwrap());
    store.put(&put("before", "1"), at(1)).unwrap();
    let (reached, go) = hold_at_failpoint();
    let defrag = {
        let store = Arc::clone(&store);
        thread::spawn(move || store.defragment())
    };
    reached.recv_timeout(Duration::from_secs(30)).unwrap();
    // The copy is done and nothing replays the journal until the go: everything
    // committed now must come from the journal.
    let value = Bytes::from(vec![b'x'; 1 << 20]);
    let puts = DEFRAG_JOURNAL_MAX_BYTES / value.len() + 8;
    let done = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (store, done, value) = (Arc::clone(&store), Arc::clone(&done), value.clone());
        thread::spawn(move || {
            for i in 0..puts {
                let req = PutRequest {
                    key: b(&format!("big{i:03}")),
                    value: value.clone(),
                    ..Default::default()
                };
                store.put(&req, at(i as u64 + 2)).unwrap();
                store.force_commit().unwrap();
                done.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    // The journal fills, then commits wait (and the writer with them).
    let mut last = usize::MAX;
    loop {
        thread::sleep(Duration::from_millis(300));
        let now = done.load(Ordering::SeqCst);
        if now == last {
            break;
        }
        last = now;
    }
    assert!(last < puts, "commits went on past a full journal");
    assert!(last * value.len() >= DEFRAG_JOURNAL_MAX_BYTES / 2, "stalled early at {last}");
    go.send(()).unwrap();
    let done_defrag = defrag.join().unwrap().unwrap();
    println!("{done_defrag:?}");
    writer.join().unwrap();
    fail::remove(FAILPOINT);

    let count = store.range(&range("big", "bih")).unwrap().count;
    assert_eq!(count, puts as i64);
    assert_eq!(store.consistent_index(), at(puts as u64 + 1));
    let hash = store.hash_kv(0).unwrap();
    t.store = Some(Arc::into_inner(store).unwrap());
    t.reopen();
    assert_eq!(t.store().range(&range("big", "bih")).unwrap().count, puts as i64);
    assert_eq!(t.store().range(&range("before", "")).unwrap().count, 1);
    assert_eq!(t.store().hash_kv(0).unwrap(), hash);
}
