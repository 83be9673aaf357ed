//! Backend failures: a read that fails halfway through a txn, and a commit that fails.
//! Either way the store stops taking writes, nothing half-done becomes visible or durable,
//! and a reopen finds the last good commit (the server then replays its log).

mod common;

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use oxetcd_api::etcdserverpb::{PutRequest, TxnRequest};
use oxetcd_mvcc::backend::{Backend, Batch, Snapshot};
use oxetcd_mvcc::{ApplyIndex, Error, NoLeases, RedbBackend, Result, Store};

/// Switches that make the backend fail.
#[derive(Debug, Default)]
struct Faults {
    reads: AtomicBool,
    commits: AtomicBool,
}

#[derive(Debug)]
struct Flaky {
    inner: RedbBackend,
    faults: Arc<Faults>,
}

#[derive(Clone, Debug)]
struct FlakySnapshot {
    inner: <RedbBackend as Backend>::Snapshot,
    faults: Arc<Faults>,
}

fn injected() -> Error {
    Error::Backend("injected fault".into())
}

impl Backend for Flaky {
    type Snapshot = FlakySnapshot;

    fn snapshot(&self) -> Result<FlakySnapshot> {
        Ok(FlakySnapshot { inner: self.inner.snapshot()?, faults: self.faults.clone() })
    }

    fn commit(&self, batch: &Batch, durable: bool) -> Result<FlakySnapshot> {
        if self.faults.commits.load(Ordering::SeqCst) {
            return Err(injected());
        }
        Ok(FlakySnapshot { inner: self.inner.commit(batch, durable)?, faults: self.faults.clone() })
    }
}

impl Snapshot for FlakySnapshot {
    fn get<R>(&self, table: &str, key: &[u8], f: impl FnOnce(&[u8]) -> R) -> Result<Option<R>> {
        if self.faults.reads.load(Ordering::SeqCst) {
            return Err(injected());
        }
        self.inner.get(table, key, f)
    }

    fn scan(
        &self,
        table: &str,
        from: &[u8],
        f: impl FnMut(&[u8], &[u8]) -> ControlFlow<()>,
    ) -> Result<()> {
        self.inner.scan(table, from, f)
    }

    fn tables(&self) -> Result<Vec<String>> {
        self.inner.tables()
    }
}

fn open_flaky(dir: &tempfile::TempDir, faults: &Arc<Faults>) -> Store<Flaky> {
    let backend =
        Flaky { inner: RedbBackend::open(db_path(dir.path())).unwrap(), faults: faults.clone() };
    Store::open(backend, test_config(), Arc::new(NoLeases)).unwrap()
}

fn reopen_plain(dir: &tempfile::TempDir) -> Store {
    Store::open_path(db_path(dir.path()), test_config(), Arc::new(NoLeases)).unwrap()
}

#[test]
fn a_read_failing_mid_txn_leaves_nothing_behind() {
    let dir = temp_dir();
    let faults = Arc::new(Faults::default());
    let store = open_flaky(&dir, &faults);
    store.put(&put("b", "old"), ApplyIndex { index: 1, term: 1 }).unwrap();
    store.force_commit().unwrap();
    let rev = store.current_revision();
    // Putting "b" with prev_kv reads its previous value from the backend, after "a" was
    // written.
    faults.reads.store(true, Ordering::SeqCst);
    let txn = TxnRequest {
        success: vec![
            op_put(put("a", "new")),
            op_put(PutRequest { prev_kv: true, ..put("b", "new") }),
        ],
        ..Default::default()
    };
    assert_eq!(store.txn(&txn, ApplyIndex { index: 2, term: 1 }).err(), Some(injected()));
    faults.reads.store(false, Ordering::SeqCst);
    assert_eq!(store.current_revision(), rev);
    assert_eq!(store.range(&range("a", "")).unwrap().count, 0, "half a txn is invisible");
    assert!(matches!(
        store.put(&put("c", "1"), ApplyIndex { index: 3, term: 1 }),
        Err(Error::Backend(_))
    ));
    assert!(store.close().is_err(), "close reports the failure");
    let store = reopen_plain(&dir);
    assert_eq!(store.current_revision(), rev);
    assert_eq!(store.consistent_index().index, 1);
    assert_eq!(store.range(&range("a", "")).unwrap().count, 0);
    assert_eq!(store.range(&range("b", "")).unwrap().kvs[0].value.as_ref(), b"old");
}

#[test]
fn a_failed_commit_stops_writes_and_keeps_the_last_good_commit() {
    let dir = temp_dir();
    let faults = Arc::new(Faults::default());
    let store = open_flaky(&dir, &faults);
    store.put(&put("a", "1"), ApplyIndex { index: 1, term: 1 }).unwrap();
    store.force_commit().unwrap();
    faults.commits.store(true, Ordering::SeqCst);
    store.put(&put("a", "2"), ApplyIndex { index: 2, term: 1 }).unwrap();
    assert_eq!(store.force_commit().err(), Some(injected()));
    assert_eq!(store.durable_index().index, 1);
    assert!(matches!(
        store.put(&put("a", "3"), ApplyIndex { index: 3, term: 1 }),
        Err(Error::Backend(_))
    ));
    drop(store);
    let store = reopen_plain(&dir);
    assert_eq!(store.consistent_index().index, 1);
    assert_eq!(store.range(&range("a", "")).unwrap().kvs[0].value.as_ref(), b"1");
}
