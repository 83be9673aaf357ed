//! Compaction stopped at the `mvcc::compact` failpoint, a batch commit of the background
//! compaction failing as the disk would fail it: the store fails (the server then stops
//! the member), and the next open resumes the compaction from its durable scheduled
//! revision and finishes it, leaving the same tables as a compaction that never failed.
//! Run with `cargo test -p oxetcd-mvcc --features failpoints --test compaction_failpoints`.

mod common;

use std::time::Duration;

use common::*;
use oxetcd_mvcc::{ApplyIndex, Error, Store};

const FAILPOINT: &str = "mvcc::compact";

/// How long a compaction of a few dozen rows may take.
const COMPACTION_TIMEOUT: Duration = Duration::from_secs(30);

fn at(index: u64) -> ApplyIndex {
    ApplyIndex { index, term: 1 }
}

/// Ten versions of each of four keys, at indexes 1 to 40 (revisions 2 to 41).
fn write_history(store: &Store) {
    for i in 0..40u64 {
        store.put(&put(&format!("k{}", i % 4), &format!("v{i}")), at(i + 1)).unwrap();
    }
    store.force_commit().unwrap();
}

#[test]
fn a_failed_compaction_batch_fails_the_store_and_the_next_open_finishes_it() {
    // What the tables hold after the same history and a compaction that did not fail.
    let reference = TempStore::new();
    write_history(reference.store());
    let (_, done) = reference.store().compact(30, at(41)).unwrap();
    done.wait_timeout(COMPACTION_TIMEOUT).expect("the reference compaction finishes").unwrap();
    let expected = reference.store().hash().unwrap();

    let mut t = TempStore::new();
    write_history(t.store());
    // Four rows per batch (the test config): the first batch commits, the second fails.
    fail::cfg(FAILPOINT, "1*off->return").unwrap();
    let scheduled = t.store().compact(30, at(41));
    let (_, done) = scheduled.expect("the compaction is scheduled before its batches run");
    let outcome = done.wait_timeout(COMPACTION_TIMEOUT).expect("the compaction ends");
    fail::remove(FAILPOINT);
    assert!(matches!(outcome, Err(Error::Backend(_))), "{outcome:?}");
    assert!(
        matches!(t.store().failure(), Some(Error::Backend(_))),
        "the store failed: {:?}",
        t.store().failure()
    );
    let refused = t.store().put(&put("after", "failure"), at(42));
    assert!(refused.is_err(), "a failed store takes no write: {refused:?}");
    assert!(t.store().hash().is_err(), "a failed store commits nothing more");

    // Reopened (the member restarted): the compaction resumes and finishes.
    let failed = t.store.take().unwrap();
    assert!(failed.close().is_err(), "closing reports the failure");
    t.store = Some(
        Store::open_path(db_path(t.dir.path()), t.config.clone(), t.lessor.clone())
            .expect("reopen"),
    );
    let store = t.store();
    let resumed = store.last_compaction().expect("the scheduled compaction resumes");
    resumed.wait_timeout(COMPACTION_TIMEOUT).expect("the resumed compaction ends").unwrap();
    assert_eq!(store.compact_revision(), 30);
    assert_eq!(store.consistent_index(), at(41), "the compaction's entry is applied");
    assert_eq!(store.hash().unwrap(), expected, "the same tables as an unfailed compaction");
    let latest = store.range(&range("k", "l")).unwrap();
    let values: Vec<_> = latest.kvs.iter().map(|kv| kv.value.clone()).collect();
    assert_eq!(values, [b("v36"), b("v37"), b("v38"), b("v39")]);
    let mut old = range("k0", "");
    old.revision = 29;
    assert!(matches!(store.range(&old), Err(Error::Compacted)));
}
