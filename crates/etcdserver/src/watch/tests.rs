//! The hub against a real store, without gRPC: delivery, catch-up, victims,
//! compaction, store replacement, and the memory an idle watcher costs.

use std::sync::Arc;
use std::time::Duration;

use oxetcd_api::etcdserverpb::{PutRequest, RequestOp, TxnRequest, request_op::Request as Op};
use oxetcd_api::mvccpb::Event;
use oxetcd_mvcc::{ApplyIndex, NoLeases, Store, StoreConfig};
use tokio::sync::mpsc;

use super::*;

struct Fixture {
    store: Arc<Store>,
    hub: Arc<WatchHub>,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(
        Store::open_path(dir.path().join("db"), StoreConfig::default(), Arc::new(NoLeases))
            .expect("store opens"),
    );
    let source = store.clone();
    let hub = WatchHub::start(Box::new(move || source.clone()));
    Fixture { store, hub, _dir: dir }
}

impl Fixture {
    /// A put, applied and published like the apply thread does; returns its revision.
    fn put(&self, key: &str, value: &str) -> i64 {
        let req = PutRequest {
            key: key.to_string().into(),
            value: value.to_string().into(),
            ..Default::default()
        };
        let written = self.store.put(&req, ApplyIndex::ZERO).expect("put");
        self.hub.publish(&written.events);
        written.response.header.map_or(0, |h| h.revision)
    }

    fn txn_puts(&self, keys: &[&str]) -> i64 {
        let success = keys
            .iter()
            .map(|k| RequestOp {
                request: Some(Op::RequestPut(PutRequest {
                    key: k.to_string().into(),
                    value: "t".into(),
                    ..Default::default()
                })),
            })
            .collect();
        let written = self
            .store
            .txn(&TxnRequest { success, ..Default::default() }, ApplyIndex::ZERO)
            .expect("txn");
        self.hub.publish(&written.events);
        written.response.header.map_or(0, |h| h.revision)
    }

    fn watch(&self, stream: StreamId, key: &str, end: &str, start: i64, opts: Filters) -> i64 {
        let range = KeyRange::new(key.as_bytes(), end.as_bytes()).expect("range");
        self.hub
            .create(stream, CreateWatch { id: 0, range, start_revision: start, opts })
            .expect("created")
            .0
    }
}

async fn next(rx: &mut mpsc::Receiver<Delivery>) -> Delivery {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a delivery in time")
        .expect("open")
}

fn keys_and_revs(events: &[Event]) -> Vec<(String, i64)> {
    events
        .iter()
        .map(|e| {
            let kv = e.kv.as_ref().expect("kv");
            (String::from_utf8_lossy(&kv.key).into_owned(), kv.mod_revision)
        })
        .collect()
}

#[tokio::test]
async fn live_events_reach_matching_watchers_one_response_per_revision() {
    let f = fixture();
    let (stream, mut rx) = f.hub.open_stream().unwrap();
    let single = f.watch(stream, "a", "", 0, Filters::default());
    let prefix = f.watch(stream, "p/", "p0", 0, Filters::default().with(Filters::PREV_KV, true));
    let no_put = f.watch(stream, "p/", "p0", 0, Filters::default().with(Filters::NO_PUT, true));
    assert_eq!((single, prefix, no_put), (0, 1, 2));

    let r1 = f.put("a", "1");
    let d = next(&mut rx).await;
    assert_eq!((d.watch_id, d.revision), (single, r1));
    assert_eq!(keys_and_revs(&d.events), vec![("a".into(), r1)]);

    f.put("p/x", "old");
    let d = next(&mut rx).await;
    assert_eq!(d.watch_id, prefix);
    let r3 = f.txn_puts(&["p/x", "p/y", "q"]);
    let d = next(&mut rx).await;
    assert_eq!((d.watch_id, d.revision), (prefix, r3));
    assert_eq!(keys_and_revs(&d.events), vec![("p/x".into(), r3), ("p/y".into(), r3)]);
    // Puts carry no previous values: the stream loads them for watchers that want them.
    assert!(d.fill_prev_kv);
    assert!(rx.try_recv().is_err(), "the NOPUT watcher gets nothing");

    assert!(f.hub.progress_all(stream));
    let d = next(&mut rx).await;
    assert_eq!((d.watch_id, d.revision, d.events.len()), (-1, r3, 0));
    assert_eq!(f.hub.cancel(stream, single), Some(r3));
    assert_eq!(f.hub.cancel(stream, single), None);
}

#[tokio::test]
async fn duplicate_ids_are_refused_and_auto_ids_skip_taken_ones() {
    let f = fixture();
    let (stream, _rx) = f.hub.open_stream().unwrap();
    let range = KeyRange::new(b"k", b"").unwrap();
    let req =
        |id| CreateWatch { id, range: range.clone(), start_revision: 0, opts: Filters::default() };
    assert_eq!(f.hub.create(stream, req(1)).map(|r| r.0), Ok(1));
    assert_eq!(f.hub.create(stream, req(1)), Err(WatchError::DuplicateId));
    assert_eq!(f.hub.create(stream, req(0)).map(|r| r.0), Ok(0));
    assert_eq!(f.hub.create(stream, req(0)).map(|r| r.0), Ok(2));
}

#[tokio::test]
async fn history_then_live_without_gap_or_duplicate() {
    let f = fixture();
    let first = f.put("h", "0");
    for i in 1..2500 {
        f.put("h", &i.to_string());
    }
    let history_end = f.store.current_revision();
    let (stream, mut rx) = f.hub.open_stream().unwrap();
    f.watch(stream, "h", "", first, Filters::default().with(Filters::PREV_KV, true));
    // Writes keep coming while the watcher catches up.
    let writer = {
        let (store, hub) = (f.store.clone(), f.hub.clone());
        std::thread::spawn(move || {
            for i in 0..500 {
                let req = PutRequest {
                    key: "h".into(),
                    value: format!("live{i}").into(),
                    ..Default::default()
                };
                hub.publish(&store.put(&req, ApplyIndex::ZERO).expect("put").events);
            }
        })
    };
    writer.join().expect("writer");
    let last = f.store.current_revision();
    let mut expected = first;
    let mut from_history = 0;
    while expected <= last {
        let d = next(&mut rx).await;
        assert!(d.fill_prev_kv, "the watcher wants previous values");
        let revs: Vec<i64> = keys_and_revs(&d.events).into_iter().map(|(_, rev)| rev).collect();
        from_history += usize::from(revs.first().is_some_and(|&rev| rev <= history_end));
        for rev in revs {
            assert_eq!(rev, expected, "in order, no gap, no duplicate");
            expected += 1;
        }
    }
    assert!(from_history >= 3, "history comes in bounded batches");
    assert!(rx.try_recv().is_err());
}

#[tokio::test]
async fn a_full_stream_parks_watchers_and_loses_nothing() {
    let f = fixture();
    let (stream, mut rx) = f.hub.open_stream().unwrap();
    f.watch(stream, "v", "", 0, Filters::default());
    let first = f.store.current_revision() + 1;
    // More than the stream queue holds, without reading: publish never waits.
    for i in 0..3000 {
        f.put("v", &i.to_string());
    }
    let last = f.store.current_revision();
    let mut expected = first;
    while expected <= last {
        for (_, rev) in keys_and_revs(&next(&mut rx).await.events) {
            assert_eq!(rev, expected);
            expected += 1;
        }
    }
    // Synced again: live events flow directly.
    let rev = f.put("v", "after");
    assert_eq!(next(&mut rx).await.revision, rev);
}

#[tokio::test]
async fn a_compacted_start_revision_cancels_the_watcher() {
    let f = fixture();
    let old = f.put("c", "1");
    f.put("c", "2");
    let at = f.put("c", "3");
    f.store.compact(at, ApplyIndex::ZERO).expect("compact");
    f.hub.compacted(at);
    let (stream, mut rx) = f.hub.open_stream().unwrap();
    // (No progress check here: the catch-up thread may cancel the watcher at once.)
    let id = f.watch(stream, "c", "", old, Filters::default());
    let d = next(&mut rx).await;
    assert_eq!((d.watch_id, d.compact_revision, d.events.len()), (id, at, 0));
    assert_eq!(f.hub.cancel(stream, id), None, "the watcher is gone");
    // At the compacted revision itself history is still there.
    f.watch(stream, "c", "", at, Filters::default());
    assert_eq!(keys_and_revs(&next(&mut rx).await.events), vec![("c".into(), at)]);
}

#[tokio::test]
async fn a_replaced_store_resyncs_watchers_without_duplicates() {
    let f = fixture();
    let (stream, mut rx) = f.hub.open_stream().unwrap();
    f.watch(stream, "s", "", 0, Filters::default());
    let r1 = f.put("s", "1");
    assert_eq!(next(&mut rx).await.revision, r1);
    // Writes the hub never heard of, as if they came with a leader's snapshot.
    let req = PutRequest { key: "s".into(), value: "2".into(), ..Default::default() };
    let r2 = f.store.put(&req, ApplyIndex::ZERO).unwrap().response.header.unwrap().revision;
    f.hub.store_replaced();
    assert_eq!(keys_and_revs(&next(&mut rx).await.events), vec![("s".into(), r2)]);
    let r3 = f.put("s", "3");
    assert_eq!(keys_and_revs(&next(&mut rx).await.events), vec![("s".into(), r3)]);
}

#[tokio::test]
async fn closing_the_hub_ends_streams() {
    let f = fixture();
    let (stream, mut rx) = f.hub.open_stream().unwrap();
    f.watch(stream, "x", "", 0, Filters::default());
    f.hub.close();
    assert!(rx.recv().await.is_none());
    assert!(f.hub.open_stream().is_err());
}

/// The resident memory of this process, from /proc/self/status.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// 100,000 idle watchers on one stream work, and a write reaches the right one. The
/// memory they take is printed, not asserted: the test binary runs other tests in
/// parallel, so this process's RSS is only a measurement (docs/benchmarks.md records it,
/// with the command, from a run of this test alone).
#[tokio::test]
async fn a_hundred_thousand_idle_watchers_work() {
    const WATCHERS: usize = 100_000;
    let f = fixture();
    let (stream, mut rx) = f.hub.open_stream().unwrap();
    let before = rss_bytes();
    for i in 0..WATCHERS {
        let key = format!("/registry/pods/ns/pod-{i:06}");
        f.watch(stream, &key, "", 0, Filters::default());
    }
    let per_watcher = rss_bytes().saturating_sub(before) / WATCHERS as u64;
    println!("idle watcher (hub only, key ~27 bytes): {per_watcher} bytes");
    let rev = f.put("/registry/pods/ns/pod-054321", "x");
    let d = next(&mut rx).await;
    assert_eq!((d.watch_id, d.revision), (54321, rev));
}

#[tokio::test]
async fn watchers_far_apart_in_history_each_get_their_events_once() {
    let f = fixture();
    let first = f.put("far", "0");
    for i in 1..2500 {
        f.put("far", &i.to_string());
    }
    let (stream, mut rx) = f.hub.open_stream().unwrap();
    let early = f.watch(stream, "far", "", first, Filters::default());
    let late = f.watch(stream, "far", "", first + 2400, Filters::default());
    let last = f.store.current_revision();
    let mut expected = std::collections::HashMap::from([(early, first), (late, first + 2400)]);
    while expected.values().any(|&next| next <= last) {
        let d = next(&mut rx).await;
        let next_rev = expected.get_mut(&d.watch_id).expect("a known watcher");
        for (_, rev) in keys_and_revs(&d.events) {
            assert_eq!(rev, *next_rev, "watcher {} in order, once", d.watch_id);
            *next_rev += 1;
        }
    }
    assert!(rx.try_recv().is_err());
}

/// A watch whose start revision lies ahead of this member's store (a client resuming on
/// a member that lags the one it came from) gets no progress notification below its
/// start: one at the member's revision would tell the client it is at a revision older
/// than events it already has. Found by the robustness harness (a watch resumed after
/// its member was killed; etcd's #20221, where etcd now skips such notifications).
#[tokio::test]
async fn no_progress_notification_below_a_future_start_revision() {
    let f = fixture();
    let (stream, mut rx) = f.hub.open_stream().unwrap();
    let now = f.put("a", "1");
    let notify = Filters::default().with(Filters::PROGRESS_NOTIFY, true);
    let id = f.watch(stream, "a", "", now + 3, notify);
    assert!(!f.hub.progress_all(stream), "asked again later, once the store gets there");
    f.hub.progress_tick(stream);
    assert!(rx.try_recv().is_err(), "no notification yet");

    // At the revision before the watch's start, all it asked for has been delivered.
    f.put("b", "2");
    let caught_up = f.put("c", "3");
    assert_eq!(caught_up, now + 2);
    assert!(f.hub.progress_all(stream));
    let d = next(&mut rx).await;
    assert_eq!((d.watch_id, d.revision, d.events.len()), (-1, caught_up, 0));
    f.hub.progress_tick(stream);
    let d = next(&mut rx).await;
    assert_eq!((d.watch_id, d.revision, d.events.len()), (id, caught_up, 0));
}

/// Watchers that take all of a write's events and see them alike share one copy of
/// them; a delete's previous key-value reaches only watchers that asked for it; a
/// watcher that takes some of a txn's events gets its own.
#[tokio::test]
async fn watchers_that_see_a_write_alike_share_its_events() {
    let f = fixture();
    let (stream, mut rx) = f.hub.open_stream().unwrap();
    let plain: Vec<i64> = (0..3).map(|_| f.watch(stream, "k", "", 0, Filters::default())).collect();
    let with_prev = Filters::default().with(Filters::PREV_KV, true);
    let prev: Vec<i64> = (0..2).map(|_| f.watch(stream, "k", "", 0, with_prev)).collect();
    let prefix = f.watch(stream, "k", "l", 0, Filters::default());

    f.put("k", "v");
    let mut got: Vec<Delivery> = Vec::new();
    for _ in 0..6 {
        got.push(next(&mut rx).await);
    }
    let first = shared_events(&got, plain[0]);
    let mut all = plain.iter().chain(&prev).chain([&prefix]);
    assert!(all.all(|&id| Arc::ptr_eq(&shared_events(&got, id), &first)));

    let deleted = f.store.delete_range(
        &oxetcd_api::etcdserverpb::DeleteRangeRequest { key: "k".into(), ..Default::default() },
        ApplyIndex::ZERO,
    );
    f.hub.publish(&deleted.expect("delete").events);
    let mut got: Vec<Delivery> = Vec::new();
    for _ in 0..6 {
        got.push(next(&mut rx).await);
    }
    for d in &got {
        let has_prev = d.events[0].prev_kv.as_ref().is_some_and(|kv| kv.value == "v");
        assert_eq!(has_prev, prev.contains(&d.watch_id), "watcher {}", d.watch_id);
    }
    let (without, with) = (shared_events(&got, plain[0]), shared_events(&got, prev[0]));
    assert!(!Arc::ptr_eq(&without, &with));
    assert!(plain.iter().all(|&id| Arc::ptr_eq(&shared_events(&got, id), &without)));
    assert!(prev.iter().all(|&id| Arc::ptr_eq(&shared_events(&got, id), &with)));

    let r = f.txn_puts(&["k", "k2", "x"]);
    let mut got: Vec<Delivery> = Vec::new();
    for _ in 0..6 {
        got.push(next(&mut rx).await);
    }
    let d = got.iter().find(|d| d.watch_id == prefix).expect("the prefix watcher's");
    assert!(matches!(d.events, Events::Own(_)), "two events of three: its own");
    assert_eq!(keys_and_revs(&d.events), vec![("k".into(), r), ("k2".into(), r)]);
    let d = got.iter().find(|d| d.watch_id == plain[1]).expect("a plain watcher's");
    assert_eq!(keys_and_revs(&d.events), vec![("k".into(), r)]);
    assert!(rx.try_recv().is_err());
}

/// The shared events delivered to watcher `id`.
fn shared_events(got: &[Delivery], id: i64) -> Arc<[Event]> {
    match &got.iter().find(|d| d.watch_id == id).expect("delivered").events {
        Events::Shared(events) => Arc::clone(events),
        Events::Own(_) => panic!("watcher {id} got its own copy of a write every watcher takes"),
    }
}
