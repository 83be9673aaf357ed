//! Readers, a writer, the committer and compactions at once: every read must see a
//! consistent revision (both keys of each txn, never a half), history must stay readable
//! above the compacted revision, and no read may find an indexed revision missing from
//! storage while batches are committed and rows compacted underneath it.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use common::*;
use oxetcd_api::etcdserverpb::{RangeRequest, TxnRequest};
use oxetcd_mvcc::{ApplyIndex, Error, NoLeases, StoreConfig};

const WRITES: u64 = 3000;

#[test]
fn reads_are_consistent_during_writes_commits_and_compactions() {
    let t = TempStore::with(
        StoreConfig {
            batch_interval: Duration::from_millis(2),
            batch_limit: 8,
            compaction_batch_limit: 16,
            compaction_pause: Duration::ZERO,
            ..StoreConfig::default()
        },
        Arc::new(NoLeases),
    );
    let store = t.store();
    let done = AtomicBool::new(false);
    thread::scope(|s| {
        s.spawn(|| {
            for i in 1..=WRITES {
                let v = i.to_string();
                let req = TxnRequest {
                    success: vec![op_put(put("x", &v)), op_put(put("y", &v))],
                    ..Default::default()
                };
                store.txn(&req, ApplyIndex::ZERO).expect("txn");
                if i % 500 == 0 {
                    let (_, handle) = store
                        .compact(store.current_revision() - 50, ApplyIndex::ZERO)
                        .expect("compact");
                    if i % 1000 == 0 {
                        handle.wait().expect("physical compaction");
                    }
                }
            }
            done.store(true, Ordering::SeqCst);
        });
        for reader in 0..2 {
            let done = &done;
            s.spawn(move || {
                let mut last_seen = 0u64;
                let mut reads = 0u64;
                while !done.load(Ordering::SeqCst) || reads < 100 {
                    reads += 1;
                    let now = store.range(&range("x", "z")).expect("current read");
                    let values: Vec<u64> = now
                        .kvs
                        .iter()
                        .map(|kv| std::str::from_utf8(&kv.value).unwrap().parse().unwrap())
                        .collect();
                    if let [x, y] = values[..] {
                        assert_eq!(x, y, "reader {reader} saw half a txn");
                        assert!(x >= last_seen, "reader {reader} went back in time");
                        last_seen = x;
                    }
                    let rev = now.header.unwrap().revision;
                    // A recent past revision: readable unless compaction has passed it.
                    let past = RangeRequest { revision: (rev - 20).max(1), ..range("x", "z") };
                    match store.range(&past) {
                        Ok(old) => {
                            let vals: Vec<_> = old.kvs.iter().map(|kv| kv.value.clone()).collect();
                            if vals.len() == 2 {
                                assert_eq!(vals[0], vals[1], "reader {reader} saw half a past txn");
                            }
                        }
                        Err(Error::Compacted) => {}
                        Err(e) => panic!("reader {reader}: {e}"),
                    }
                }
            });
        }
    });
    let last = store.range(&range("x", "z")).unwrap();
    assert_eq!(last.kvs.len(), 2);
    assert_eq!(last.kvs[0].value.as_ref(), WRITES.to_string().as_bytes());
}
