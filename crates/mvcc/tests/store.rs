//! etcd semantics, case by case: fresh store, puts, ranges, txns, compaction, leases,
//! and bad input (which must return etcd's error and change nothing).

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use common::*;
use oxetcd_api::etcdserverpb::compare::{CompareResult as R, CompareTarget as T, TargetUnion as U};
use oxetcd_api::etcdserverpb::range_request::{SortOrder, SortTarget};
use oxetcd_api::etcdserverpb::response_op::Response;
use oxetcd_api::etcdserverpb::{PutRequest, RangeRequest, TxnRequest};
use oxetcd_api::mvccpb::event::EventType;
use oxetcd_mvcc::{ApplyIndex, Error, LeaseId, Lessor, StoreConfig};

fn keys(resp: &oxetcd_api::etcdserverpb::RangeResponse) -> Vec<String> {
    resp.kvs.iter().map(|kv| String::from_utf8_lossy(&kv.key).into_owned()).collect()
}

#[test]
fn fresh_store_starts_at_revision_one() {
    let t = TempStore::new();
    let s = t.store();
    assert_eq!(s.current_revision(), 1);
    assert_eq!(s.compact_revision(), -1);
    let r = s.range(&range("a", "")).unwrap();
    assert_eq!((r.header.unwrap().revision, r.count, r.kvs.len()), (1, 0, 0));
}

#[test]
fn puts_create_revisions_versions_and_events() {
    let t = TempStore::new();
    let s = t.store();
    let w = s.put(&put("a", "1"), ApplyIndex::ZERO).unwrap();
    assert_eq!(w.response.header.unwrap().revision, 2);
    assert_eq!(w.events.len(), 1);
    assert_eq!(w.events[0].r#type, EventType::Put as i32);
    assert!(w.events[0].prev_kv.is_none());
    let w = s.put(&PutRequest { prev_kv: true, ..put("a", "2") }, ApplyIndex::ZERO).unwrap();
    let prev = w.response.prev_kv.unwrap();
    assert_eq!((prev.value.as_ref(), prev.mod_revision), (&b"1"[..], 2));
    let kv = &s.range(&range("a", "")).unwrap().kvs[0];
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (2, 3, 2));
    // ignore_value keeps the value.
    s.put(&PutRequest { key: b("a"), ignore_value: true, ..Default::default() }, ApplyIndex::ZERO)
        .unwrap();
    let kv = &s.range(&range("a", "")).unwrap().kvs[0];
    assert_eq!((kv.value.as_ref(), kv.version), (&b"2"[..], 3));
    // Delete, then recreate: a new generation.
    let d = s.delete_range(&delete("a", ""), ApplyIndex::ZERO).unwrap();
    assert_eq!(d.response.deleted, 1);
    assert_eq!(d.events[0].r#type, EventType::Delete as i32);
    assert_eq!(d.events[0].kv.as_ref().unwrap().mod_revision, 5);
    s.put(&put("a", "3"), ApplyIndex::ZERO).unwrap();
    let kv = &s.range(&range("a", "")).unwrap().kvs[0];
    assert_eq!((kv.create_revision, kv.version), (6, 1));
    // Deleting nothing creates no revision.
    let d = s.delete_range(&delete("zz", ""), ApplyIndex::ZERO).unwrap();
    assert_eq!((d.response.deleted, d.response.header.unwrap().revision), (0, 6));
    // History stays readable.
    let old = s.range(&RangeRequest { revision: 3, ..range("a", "") }).unwrap();
    assert_eq!(old.kvs[0].value.as_ref(), b"2");
    assert_eq!(old.header.unwrap().revision, 6);
}

#[test]
fn range_options_follow_etcd() {
    let t = TempStore::new();
    let s = t.store();
    for (k, v) in [("a", "3"), ("b", "1"), ("c", "2"), ("d", "0")] {
        s.put(&put(k, v), ApplyIndex::ZERO).unwrap();
    }
    s.put(&put("b", "9"), ApplyIndex::ZERO).unwrap();
    let all = s.range(&range("a", "\0")).unwrap();
    assert_eq!(keys(&all), ["a", "b", "c", "d"]);
    let limited = s.range(&RangeRequest { limit: 2, ..range("a", "\0") }).unwrap();
    assert_eq!(
        (keys(&limited), limited.more, limited.count),
        (vec!["a".into(), "b".into()], true, 4)
    );
    let exact = s.range(&RangeRequest { limit: 4, ..range("a", "\0") }).unwrap();
    assert!(!exact.more);
    let negative = s.range(&RangeRequest { limit: -3, ..range("a", "\0") }).unwrap();
    assert_eq!(negative.kvs.len(), 4);
    let by_value = s
        .range(&RangeRequest {
            sort_target: SortTarget::Value as i32,
            sort_order: SortOrder::Descend as i32,
            ..range("a", "\0")
        })
        .unwrap();
    assert_eq!(keys(&by_value), ["b", "a", "c", "d"]);
    let by_mod = s
        .range(&RangeRequest { sort_target: SortTarget::Mod as i32, limit: 2, ..range("a", "\0") })
        .unwrap();
    assert_eq!((keys(&by_mod), by_mod.more), (vec!["a".into(), "c".into()], true));
    let counted = s.range(&RangeRequest { count_only: true, ..range("b", "d") }).unwrap();
    assert_eq!((counted.count, counted.kvs.len()), (2, 0));
    let keys_only = s.range(&RangeRequest { keys_only: true, ..range("a", "b") }).unwrap();
    assert!(keys_only.kvs[0].value.is_empty());
    let filtered = s
        .range(&RangeRequest { min_mod_revision: 4, max_create_revision: 4, ..range("a", "\0") })
        .unwrap();
    assert_eq!((keys(&filtered), filtered.count), (vec!["b".into(), "c".into()], 4));
    // range_end before key: empty, no error.
    let backwards = s.range(&range("c", "a")).unwrap();
    assert_eq!((backwards.count, backwards.kvs.len()), (0, 0));
    // Negative revision means current.
    let neg_rev = s.range(&RangeRequest { revision: -5, ..range("a", "\0") }).unwrap();
    assert_eq!(neg_rev.count, 4);
    assert_eq!(s.range(&RangeRequest { revision: 100, ..range("a", "") }), Err(Error::FutureRev));
}

#[test]
fn txn_compares_on_missing_keys_match_etcd() {
    let t = TempStore::new();
    let s = t.store();
    let run = |c| {
        s.txn_read(&TxnRequest { compare: vec![c], success: vec![], failure: vec![] })
            .unwrap()
            .succeeded
    };
    assert!(run(cmp("missing", T::Version, R::Equal, U::Version(0))));
    assert!(run(cmp("missing", T::Create, R::Equal, U::CreateRevision(0))));
    assert!(run(cmp("missing", T::Mod, R::Less, U::ModRevision(1))));
    assert!(run(cmp("missing", T::Lease, R::Equal, U::Lease(0))));
    assert!(!run(cmp("missing", T::Value, R::Equal, U::Value(b("")))));
    assert!(!run(cmp("missing", T::Value, R::NotEqual, U::Value(b("x")))));
    // A union of the wrong kind counts as zero.
    assert!(run(cmp("missing", T::Version, R::Equal, U::ModRevision(7))));
    s.put(&put("k1", "v"), ApplyIndex::ZERO).unwrap();
    s.put(&put("k2", "w"), ApplyIndex::ZERO).unwrap();
    let mut range_cmp = cmp("k", T::Version, R::Greater, U::Version(0));
    range_cmp.range_end = b("l");
    assert!(run(range_cmp.clone()));
    range_cmp.target = T::Value as i32;
    range_cmp.target_union = Some(U::Value(b("v")));
    range_cmp.result = R::Equal as i32;
    assert!(!run(range_cmp));
    assert_eq!(s.current_revision(), 3, "read-only txns create no revision");
}

#[test]
fn nested_txn_runs_at_one_revision_with_compares_before_writes() {
    let t = TempStore::new();
    let s = t.store();
    s.put(&put("x", "0"), ApplyIndex::ZERO).unwrap();
    let inner = TxnRequest {
        // Evaluated before the outer put of "y": "y" is missing then.
        compare: vec![cmp("y", T::Version, R::Equal, U::Version(0))],
        success: vec![op_put(put("z", "inner")), op_range(range("y", ""))],
        failure: vec![op_put(put("z", "wrong"))],
    };
    let outer = TxnRequest {
        compare: vec![cmp("x", T::Value, R::Equal, U::Value(b("0")))],
        success: vec![op_put(put("y", "1")), op_txn(inner), op_range(range("a", "\0"))],
        failure: vec![],
    };
    let w = s.txn(&outer, ApplyIndex { index: 9, term: 2 }).unwrap();
    let resp = w.response;
    assert!(resp.succeeded);
    assert_eq!(resp.header.unwrap().revision, 3);
    assert_eq!(w.events.len(), 2);
    let Some(Response::ResponseTxn(inner_resp)) = &resp.responses[1].response else {
        panic!("nested response")
    };
    assert!(inner_resp.succeeded);
    let Some(Response::ResponseRange(seen)) = &inner_resp.responses[1].response else {
        panic!("range response")
    };
    assert_eq!(seen.kvs[0].value.as_ref(), b"1", "reads see the txn's own writes");
    let Some(Response::ResponseRange(all)) = &resp.responses[2].response else {
        panic!("range response")
    };
    assert_eq!(keys(all), ["x", "y", "z"]);
    assert!(all.kvs.iter().skip(1).all(|kv| kv.mod_revision == 3));
    assert_eq!(s.consistent_index(), ApplyIndex { index: 9, term: 2 });
}

#[test]
fn read_only_txn_is_served_outside_the_log() {
    let t = TempStore::new();
    let s = t.store();
    s.put(&put("a", "1"), ApplyIndex { index: 5, term: 1 }).unwrap();
    let inner = TxnRequest { success: vec![op_range(range("a", ""))], ..Default::default() };
    let req = TxnRequest {
        compare: vec![cmp("a", T::Value, R::Equal, U::Value(b("1")))],
        success: vec![op_range(range("a", "\0")), op_txn(inner)],
        failure: vec![],
    };
    let resp = s.txn_read(&req).unwrap();
    assert!(resp.succeeded);
    assert_eq!(resp.header.unwrap().revision, 2);
    let Some(Response::ResponseRange(all)) = &resp.responses[0].response else {
        panic!("range response")
    };
    assert_eq!(keys(all), ["a"]);
    assert_eq!(s.current_revision(), 2);
    assert_eq!(s.consistent_index(), ApplyIndex { index: 5, term: 1 }, "no index recorded");
    let ops = vec![op_range(range("a", "")); oxetcd_mvcc::validate::DEFAULT_MAX_TXN_OPS + 1];
    let too_many = TxnRequest { success: ops, ..Default::default() };
    assert_eq!(s.txn_read(&too_many).err(), Some(Error::TooManyOps));
}

#[test]
fn compaction_errors_and_reads() {
    let mut t = TempStore::new();
    for i in 0..20 {
        t.store().put(&put("k", &i.to_string()), ApplyIndex::ZERO).unwrap();
        if i % 5 == 0 {
            t.store().delete_range(&delete("k", ""), ApplyIndex::ZERO).unwrap();
        }
    }
    let s = t.store();
    let current = s.current_revision();
    assert_eq!(s.compact(current + 1, ApplyIndex::ZERO).err(), Some(Error::FutureRev));
    let (resp, handle) = s.compact(10, ApplyIndex::ZERO).unwrap();
    assert_eq!(resp.header.unwrap().revision, current);
    assert_eq!(handle.wait_timeout(std::time::Duration::from_secs(30)), Some(Ok(())));
    assert!(handle.is_done());
    handle.wait().unwrap();
    assert_eq!(s.compact(10, ApplyIndex::ZERO).err(), Some(Error::Compacted));
    assert_eq!(s.compact(3, ApplyIndex::ZERO).err(), Some(Error::Compacted));
    let at = |rev| s.range(&RangeRequest { revision: rev, ..range("k", "") });
    assert_eq!(at(9), Err(Error::Compacted));
    assert!(at(10).is_ok(), "the compacted revision itself stays readable");
    let hash = s.hash_kv(0).unwrap();
    assert_eq!(s.hash_kv(5), Err(Error::Compacted));
    t.reopen();
    assert_eq!(t.store().compact_revision(), 10);
    assert_eq!(t.store().hash_kv(0).unwrap(), hash);
}

#[test]
fn bad_input_returns_etcd_errors_and_changes_nothing() {
    let t = TempStore::with(
        StoreConfig { max_txn_ops: 4, max_request_bytes: 1024, ..test_config() },
        Arc::new(oxetcd_mvcc::NoLeases),
    );
    let s = t.store();
    s.put(&put("a", "1"), ApplyIndex::ZERO).unwrap();
    let before = (s.current_revision(), s.hash_kv(0).unwrap().hash);
    let unchanged = |e: Error, got: Option<Error>| {
        assert_eq!(got, Some(e));
        assert_eq!((s.current_revision(), s.hash_kv(0).unwrap().hash), before);
    };
    unchanged(Error::EmptyKey, s.put(&put("", "x"), ApplyIndex::ZERO).err());
    unchanged(Error::EmptyKey, s.range(&range("", "")).err());
    unchanged(Error::EmptyKey, s.delete_range(&delete("", "z"), ApplyIndex::ZERO).err());
    unchanged(
        Error::ValueProvided,
        s.put(&PutRequest { ignore_value: true, ..put("a", "v") }, ApplyIndex::ZERO).err(),
    );
    unchanged(
        Error::LeaseProvided,
        s.put(&PutRequest { ignore_lease: true, lease: 1, ..put("a", "") }, ApplyIndex::ZERO).err(),
    );
    unchanged(
        Error::KeyNotFound,
        s.put(&PutRequest { ignore_value: true, ..put("missing", "") }, ApplyIndex::ZERO).err(),
    );
    unchanged(
        Error::LeaseNotFound,
        s.put(&PutRequest { lease: 7, ..put("a", "v") }, ApplyIndex::ZERO).err(),
    );
    unchanged(
        Error::RequestTooLarge,
        s.put(&put("big", &"x".repeat(2000)), ApplyIndex::ZERO).err(),
    );
    let five: Vec<_> = (0..5).map(|i| op_put(put(&format!("k{i}"), "v"))).collect();
    unchanged(
        Error::TooManyOps,
        s.txn(&TxnRequest { success: five, ..Default::default() }, ApplyIndex::ZERO).err(),
    );
    unchanged(
        Error::DuplicateKey,
        s.txn(
            &TxnRequest {
                success: vec![op_put(put("d", "1")), op_put(put("d", "2"))],
                ..Default::default()
            },
            ApplyIndex::ZERO,
        )
        .err(),
    );
    // A failing check inside a txn stops it before its first write.
    unchanged(
        Error::KeyNotFound,
        s.txn(
            &TxnRequest {
                success: vec![
                    op_put(put("new", "1")),
                    op_put(PutRequest { ignore_value: true, ..put("missing", "") }),
                ],
                ..Default::default()
            },
            ApplyIndex::ZERO,
        )
        .err(),
    );
    unchanged(
        Error::FutureRev,
        s.txn(
            &TxnRequest {
                success: vec![
                    op_put(put("new", "1")),
                    op_range(RangeRequest { revision: 99, ..range("a", "") }),
                ],
                ..Default::default()
            },
            ApplyIndex::ZERO,
        )
        .err(),
    );
    unchanged(
        Error::EmptyKey,
        s.txn(
            &TxnRequest {
                compare: vec![cmp("", T::Version, R::Equal, U::Version(0))],
                ..Default::default()
            },
            ApplyIndex::ZERO,
        )
        .err(),
    );
    unchanged(Error::FutureRev, s.compact(99, ApplyIndex::ZERO).err());
}

/// A lessor for tests: knows a fixed set of leases and records attachments.
#[derive(Debug, Default)]
struct RecordingLessor {
    attached: Mutex<BTreeMap<Vec<u8>, LeaseId>>,
}

impl Lessor for RecordingLessor {
    fn lease_exists(&self, lease: LeaseId) -> bool {
        lease == 10 || lease == 20
    }

    fn attach(&self, lease: LeaseId, key: &[u8]) {
        let previous = self.attached.lock().unwrap().insert(key.to_vec(), lease);
        assert_eq!(previous, None, "attached twice without a detach");
    }

    fn detach(&self, lease: LeaseId, key: &[u8]) {
        let previous = self.attached.lock().unwrap().remove(key);
        assert_eq!(previous, Some(lease), "detached a lease the key did not have");
    }
}

#[test]
fn lease_seam_sees_attach_and_detach() {
    let lessor = Arc::new(RecordingLessor::default());
    let mut t = TempStore::with(test_config(), lessor.clone());
    let attached = || lessor.attached.lock().unwrap().clone();
    let s = t.store();
    assert_eq!(
        s.put(&PutRequest { lease: 99, ..put("a", "1") }, ApplyIndex::ZERO).err(),
        Some(Error::LeaseNotFound)
    );
    s.put(&PutRequest { lease: 10, ..put("a", "1") }, ApplyIndex::ZERO).unwrap();
    s.put(&PutRequest { lease: 10, ..put("b", "1") }, ApplyIndex::ZERO).unwrap();
    assert_eq!(attached(), BTreeMap::from([(b"a".to_vec(), 10), (b"b".to_vec(), 10)]));
    // Overwrite with another lease, keep it with ignore_lease, drop it with lease 0.
    s.put(&PutRequest { lease: 20, ..put("a", "2") }, ApplyIndex::ZERO).unwrap();
    s.put(&PutRequest { ignore_lease: true, ..put("a", "3") }, ApplyIndex::ZERO).unwrap();
    assert_eq!(s.range(&range("a", "")).unwrap().kvs[0].lease, 20);
    s.put(&put("b", "2"), ApplyIndex::ZERO).unwrap();
    assert_eq!(attached(), BTreeMap::from([(b"a".to_vec(), 20)]));
    s.put(&PutRequest { lease: 10, ..put("c", "1") }, ApplyIndex::ZERO).unwrap();
    s.delete_range(&delete("c", ""), ApplyIndex::ZERO).unwrap();
    assert_eq!(attached(), BTreeMap::from([(b"a".to_vec(), 20)]));
    // On reopen the store reattaches what is live.
    lessor.attached.lock().unwrap().clear();
    t.reopen();
    assert_eq!(attached(), BTreeMap::from([(b"a".to_vec(), 20)]));
}

#[test]
fn consistent_index_survives_reopen() {
    let mut t = TempStore::new();
    t.store().put(&put("a", "1"), ApplyIndex { index: 41, term: 3 }).unwrap();
    t.store().set_consistent_index(ApplyIndex { index: 42, term: 3 }).unwrap();
    t.reopen();
    assert_eq!(t.store().consistent_index(), ApplyIndex { index: 42, term: 3 });
    assert_eq!(t.store().durable_index(), ApplyIndex { index: 42, term: 3 });
    assert_eq!(t.store().current_revision(), 2);
}

#[test]
fn auxiliary_tables_commit_with_the_key_space() {
    let mut t = TempStore::new();
    let s = t.store();
    assert_eq!(
        s.aux_write("key", [], ApplyIndex::ZERO).err(),
        Some(Error::ReservedTable("key".into()))
    );
    assert_eq!(s.aux_get("lease", b"1").unwrap(), None);
    let (empty_hash, _) = s.hash().unwrap();
    s.aux_write(
        "lease",
        [(b("1"), Some(b("ttl=5"))), (b("2"), Some(b("ttl=9")))],
        ApplyIndex { index: 3, term: 1 },
    )
    .unwrap();
    // Visible before the commit, and after it.
    assert_eq!(s.aux_get("lease", b"1").unwrap(), Some(b("ttl=5")));
    s.force_commit().unwrap();
    assert_eq!(s.aux_get("lease", b"2").unwrap(), Some(b("ttl=9")));
    s.aux_write("lease", [(b("1"), None)], ApplyIndex { index: 4, term: 1 }).unwrap();
    assert_eq!(s.aux_get("lease", b"1").unwrap(), None);
    assert_eq!(s.aux_scan("lease").unwrap(), vec![(b("2"), b("ttl=9"))]);
    let (hash, _) = s.hash().unwrap();
    assert_ne!(hash, empty_hash, "Hash covers auxiliary tables");
    t.reopen();
    let s = t.store();
    assert_eq!(s.aux_scan("lease").unwrap(), vec![(b("2"), b("ttl=9"))]);
    assert_eq!(s.consistent_index().index, 4);
    assert_eq!(s.hash().unwrap().0, hash);
}

#[test]
fn interrupted_compaction_resumes_on_open() {
    let history = |s: &oxetcd_mvcc::Store| {
        for i in 0..200 {
            s.put(&put(&format!("k{}", i % 13), &i.to_string()), ApplyIndex::ZERO).unwrap();
            if i % 9 == 0 {
                s.delete_range(&delete(&format!("k{}", i % 13), ""), ApplyIndex::ZERO).unwrap();
            }
        }
    };
    // The reference compacts to the end.
    let reference = TempStore::new();
    history(reference.store());
    reference.store().compact(150, ApplyIndex::ZERO).unwrap().1.wait().unwrap();
    let (want, _) = reference.store().hash().unwrap();
    // This one is closed while its compaction crawls, one row per long pause.
    let slow = StoreConfig {
        compaction_batch_limit: 1,
        compaction_pause: std::time::Duration::from_secs(3600),
        ..test_config()
    };
    let mut t = TempStore::with(slow, Arc::new(oxetcd_mvcc::NoLeases));
    history(t.store());
    let (_, handle) = t.store().compact(150, ApplyIndex::ZERO).unwrap();
    t.config = test_config();
    t.reopen();
    assert_eq!(handle.wait(), Err(Error::Closed));
    let s = t.store();
    assert_eq!(s.compact_revision(), 150);
    assert_eq!(s.range(&RangeRequest { revision: 149, ..range("k1", "") }), Err(Error::Compacted));
    s.last_compaction().expect("resumed compaction").wait().unwrap();
    assert_eq!(s.hash().unwrap().0, want, "same rows and meta as an uninterrupted compaction");
}

#[test]
fn unsafe_no_fsync_still_keeps_data_across_a_clean_close() {
    let mut t = TempStore::with(
        StoreConfig { unsafe_no_fsync: true, ..test_config() },
        Arc::new(oxetcd_mvcc::NoLeases),
    );
    for i in 0..100 {
        t.store().put(&put(&format!("k{i}"), "v"), ApplyIndex { index: i + 1, term: 1 }).unwrap();
    }
    t.reopen();
    assert_eq!(t.store().range(&range("k", "l")).unwrap().count, 100);
    assert_eq!(t.store().consistent_index().index, 100);
}

#[test]
fn saved_snapshot_opens_as_the_same_store() {
    let t = TempStore::new();
    let s = t.store();
    for i in 0..500 {
        s.put(&put(&format!("k{}", i % 50), &i.to_string()), ApplyIndex { index: i + 1, term: 2 })
            .unwrap();
    }
    s.aux_write("members", [(b("m1"), Some(b("peer")))], ApplyIndex { index: 501, term: 2 })
        .unwrap();
    s.compact(300, ApplyIndex { index: 502, term: 2 }).unwrap().1.wait().unwrap();
    let path = t.dir.path().join("snap.db");
    let saved = s.save_snapshot(&path).unwrap();
    assert_eq!(saved.at.revision, s.current_revision());
    assert_eq!(saved.at.index, ApplyIndex { index: 502, term: 2 });
    assert!(saved.bytes > 0);
    // Writes after the snapshot are not in it.
    s.put(&put("later", "x"), ApplyIndex { index: 503, term: 2 }).unwrap();
    let copy = oxetcd_mvcc::Store::open_path(&path, test_config(), Arc::new(oxetcd_mvcc::NoLeases))
        .unwrap();
    assert_eq!(copy.current_revision(), saved.at.revision);
    assert_eq!(copy.consistent_index(), saved.at.index);
    assert_eq!(copy.compact_revision(), 300);
    assert_eq!(
        copy.hash_kv(saved.at.revision).unwrap().hash,
        s.hash_kv(saved.at.revision).unwrap().hash
    );
    assert_eq!(copy.aux_get("members", b"m1").unwrap(), Some(b("peer")));
    assert_eq!(copy.range(&range("later", "")).unwrap().count, 0);
    assert!(s.save_snapshot(&path).is_err(), "never overwrites a file");
}

#[test]
fn delete_keys_removes_many_keys_at_one_revision_without_the_txn_limit() {
    let t = TempStore::new();
    let s = t.store();
    let keys: Vec<_> = (0..300).map(|i| b(&format!("lease/{i:03}"))).collect();
    for key in &keys {
        s.put(&PutRequest { key: key.clone(), ..Default::default() }, ApplyIndex::ZERO).unwrap();
    }
    let before = s.current_revision();
    let mut doomed = keys.clone();
    doomed.push(b("never-existed"));
    let w = s.delete_keys(&doomed, ApplyIndex::ZERO).unwrap();
    assert_eq!(w.response, 300);
    assert_eq!(w.events.len(), 300);
    assert!(
        w.events.iter().all(|e| e.kv.as_ref().unwrap().mod_revision == before + 1),
        "one revision for all"
    );
    assert_eq!(s.current_revision(), before + 1);
    assert_eq!(s.range(&range("lease/", "lease0")).unwrap().count, 0);
    // Nothing to delete: no new revision.
    assert_eq!(s.delete_keys(&keys, ApplyIndex::ZERO).unwrap().response, 0);
    assert_eq!(s.current_revision(), before + 1);
}
