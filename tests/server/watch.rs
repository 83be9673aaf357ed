//! oxetcd's Watch service: the scenario etcd 3.4.23 passes, then the guarantees under
//! load: every watcher's events compared with the committed history.

use oxetcd_tests::member::TestMember;
use oxetcd_tests::watch_scenario;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_semantics_match_etcd() {
    let member = TestMember::start(&[]).await;
    watch_scenario::watch_semantics(&member.endpoint).await;
    member.stop().await;
}

/// Open watch streams end when their member closes, so closing does not wait out the
/// listeners' grace period (5 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_a_member_ends_its_watch_streams() {
    let member = TestMember::start(&[]).await;
    let mut stream = watch_scenario::WatchStream::open(&member.endpoint).await;
    assert!(stream.create(watch_scenario::watch("k", b"")).await.created);
    let started = std::time::Instant::now();
    member.stop().await;
    let took = started.elapsed();
    assert!(took < std::time::Duration::from_secs(4), "closing waited {took:?} for a watch stream");
}

/// A call's first buffer is small (`oxetcd_api::GrpcCodec`): messages around it and
/// far beyond it pass whole, each way, on unary calls and on a watch stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_larger_than_a_calls_first_buffer_pass_whole() {
    use oxetcd_api::etcdserverpb::kv_client::KvClient;
    use oxetcd_api::etcdserverpb::{PutRequest, RangeRequest};

    let member = TestMember::start(&[]).await;
    let mut kv = KvClient::connect(member.endpoint.clone()).await.unwrap();
    let mut stream = watch_scenario::WatchStream::open(&member.endpoint).await;
    assert!(stream.create(watch_scenario::watch_prefix("v")).await.created);
    // Under --max-request-bytes (1.5 MiB) with the key and framing.
    for (n, len) in [1_000, 1_023, 1_024, 1_025, 8_192, 100_000, 1_400_000].into_iter().enumerate()
    {
        let key = format!("v{n}");
        let value: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let put = PutRequest {
            key: key.clone().into(),
            value: value.clone().into(),
            ..Default::default()
        };
        kv.put(put).await.unwrap();
        let got = kv
            .range(RangeRequest { key: key.clone().into(), ..Default::default() })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(got.kvs.len(), 1, "{key}");
        assert!(
            got.kvs[0].value == value,
            "{key}: range gave {} bytes of {len}",
            got.kvs[0].value.len()
        );
        let event = stream.next().await;
        let kv_event = event.events[0].kv.as_ref().unwrap();
        assert_eq!(kv_event.key, key.as_bytes(), "{key}");
        assert!(
            kv_event.value == value,
            "{key}: watch gave {} bytes of {len}",
            kv_event.value.len()
        );
    }
    member.stop().await;
}

/// The committed history, recorded from write responses, and the events etcd derives
/// from it.
mod history {
    use std::collections::{BTreeMap, HashMap};

    use oxetcd_api::etcdserverpb::WatchResponse;
    use oxetcd_api::mvccpb::event::EventType;
    use oxetcd_api::mvccpb::{Event, KeyValue};

    #[derive(Clone, Debug)]
    pub enum Change {
        Put(String, String),
        Delete(String),
    }

    #[derive(Default)]
    pub struct History {
        pub revisions: BTreeMap<i64, Vec<Change>>,
    }

    impl History {
        pub fn record(&mut self, rev: i64, changes: Vec<Change>) {
            assert!(self.revisions.insert(rev, changes).is_none(), "revision {rev} written twice");
        }

        /// Every event in revision order, with prev_kv, replaying from an empty store
        /// (revision 1).
        pub fn events(&self) -> Vec<Event> {
            let mut live: HashMap<String, KeyValue> = HashMap::new();
            let mut events = Vec::new();
            for (&rev, changes) in &self.revisions {
                for change in changes {
                    match change {
                        Change::Put(key, value) => {
                            let prev = live.get(key).cloned();
                            let kv = KeyValue {
                                key: key.clone().into_bytes().into(),
                                value: value.clone().into_bytes().into(),
                                create_revision: prev.as_ref().map_or(rev, |p| p.create_revision),
                                mod_revision: rev,
                                version: prev.as_ref().map_or(1, |p| p.version + 1),
                                lease: 0,
                            };
                            live.insert(key.clone(), kv.clone());
                            events.push(Event {
                                r#type: EventType::Put as i32,
                                kv: Some(kv),
                                prev_kv: prev,
                            });
                        }
                        Change::Delete(key) => {
                            let prev = live.remove(key);
                            assert!(prev.is_some(), "a recorded delete removed {key}");
                            let kv = KeyValue {
                                key: key.clone().into_bytes().into(),
                                mod_revision: rev,
                                ..Default::default()
                            };
                            events.push(Event {
                                r#type: EventType::Delete as i32,
                                kv: Some(kv),
                                prev_kv: prev,
                            });
                        }
                    }
                }
            }
            events
        }
    }

    /// What a watcher of `[key, end)` (`end` empty: one key) from `start` should get.
    pub fn expected(all: &[Event], key: &str, end: &str, start: i64, prev_kv: bool) -> Vec<Event> {
        all.iter()
            .filter(|e| {
                let kv = e.kv.as_ref().expect("kv");
                let k = std::str::from_utf8(&kv.key).expect("utf-8 key");
                let inside = if end.is_empty() { k == key } else { k >= key && k < end };
                inside && kv.mod_revision >= start
            })
            .map(|e| Event { prev_kv: if prev_kv { e.prev_kv.clone() } else { None }, ..e.clone() })
            .collect()
    }

    /// The revision of an event.
    pub fn rev(e: &Event) -> i64 {
        e.kv.as_ref().map_or(0, |kv| kv.mod_revision)
    }

    /// Every revision in a response is complete: a txn's events are never split.
    pub fn assert_whole_revisions(response: &WatchResponse, expected: &[Event]) {
        let mut revs: Vec<i64> = response.events.iter().map(rev).collect();
        revs.dedup();
        for r in revs {
            let got = response.events.iter().filter(|e| rev(e) == r).count();
            let want = expected.iter().filter(|e| rev(e) == r).count();
            assert_eq!(got, want, "revision {r} split across responses");
        }
    }
}

mod guarantees {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use oxetcd_api::etcdserverpb::kv_client::KvClient;
    use oxetcd_api::etcdserverpb::request_op::Request;
    use oxetcd_api::etcdserverpb::watch_request::RequestUnion;
    use oxetcd_api::etcdserverpb::{
        CompactionRequest, DeleteRangeRequest, PutRequest, RequestOp, TxnRequest,
        WatchCreateRequest,
    };
    use oxetcd_api::mvccpb::Event;
    use oxetcd_tests::member::{TestCluster, TestMember};
    use oxetcd_tests::watch_scenario::{WatchStream, watch, watch_prefix};

    use super::history::{self, Change, History};

    /// One watcher of a test: what it asked for and what it got.
    struct Spec {
        key: &'static str,
        end: &'static str,
        start: i64,
        prev_kv: bool,
        progress_notify: bool,
        got: Vec<Event>,
    }

    impl Spec {
        fn request(&self) -> WatchCreateRequest {
            let base = if self.end.is_empty() {
                watch(self.key, b"")
            } else {
                watch(self.key, self.end.as_bytes())
            };
            WatchCreateRequest {
                start_revision: self.start,
                prev_kv: self.prev_kv,
                progress_notify: self.progress_notify,
                ..base
            }
        }

        fn with_progress_notify(self) -> Spec {
            Spec { progress_notify: true, ..self }
        }
    }

    fn put(key: &str, value: &str) -> PutRequest {
        PutRequest {
            key: key.as_bytes().to_vec().into(),
            value: value.as_bytes().to_vec().into(),
            ..Default::default()
        }
    }

    /// One writer: puts, deletes and two-key txns over `h/0`..`h/9`, each recorded
    /// with the revision its response reports.
    async fn writer(endpoint: String, id: usize, ops: usize, history: Arc<Mutex<History>>) {
        let mut kv = KvClient::connect(endpoint).await.expect("connect");
        for i in 0..ops {
            let key = format!("h/{}", (i * 7 + id) % 10);
            let value = format!("w{id}-{i}");
            let (rev, changes) = match i % 5 {
                2 => {
                    let req = DeleteRangeRequest {
                        key: key.clone().into_bytes().into(),
                        prev_kv: true,
                        ..Default::default()
                    };
                    let resp = kv.delete_range(req).await.expect("delete").into_inner();
                    let deleted: Vec<Change> = resp
                        .prev_kvs
                        .iter()
                        .map(|kv| Change::Delete(String::from_utf8_lossy(&kv.key).into_owned()))
                        .collect();
                    (resp.header.expect("header").revision, deleted)
                }
                4 => {
                    let other = format!("h/{}", (i * 7 + id + 5) % 10);
                    let ops = [&key, &other]
                        .map(|k| RequestOp { request: Some(Request::RequestPut(put(k, &value))) })
                        .to_vec();
                    let resp = kv
                        .txn(TxnRequest { success: ops, ..Default::default() })
                        .await
                        .expect("txn");
                    let changes = vec![Change::Put(key, value.clone()), Change::Put(other, value)];
                    (resp.into_inner().header.expect("header").revision, changes)
                }
                _ => {
                    let resp = kv.put(put(&key, &value)).await.expect("put").into_inner();
                    (resp.header.expect("header").revision, vec![Change::Put(key, value)])
                }
            };
            if !changes.is_empty() {
                history.lock().unwrap().record(rev, changes);
            }
        }
    }

    /// Reads `stream` until every watcher in `specs` (by watch id) holds its expected
    /// events, checking each response on the way: whole revisions, and progress
    /// responses never ahead of what was delivered.
    async fn collect(stream: &mut WatchStream, specs: &mut HashMap<i64, Spec>, all: &[Event]) {
        let expected: HashMap<i64, Vec<Event>> = specs
            .iter()
            .map(|(&id, s)| (id, history::expected(all, s.key, s.end, s.start, s.prev_kv)))
            .collect();
        let done = |specs: &HashMap<i64, Spec>| {
            specs.iter().all(|(id, s)| s.got.len() >= expected[id].len())
        };
        while !done(specs) {
            let response = stream.next().await;
            let rev = response.header.as_ref().map_or(0, |h| h.revision);
            if response.watch_id == -1 {
                for (id, s) in specs.iter() {
                    let due = expected[id].iter().filter(|e| history::rev(e) <= rev).count();
                    assert!(s.got.len() >= due, "progress at {rev} ran ahead of watcher {id}");
                }
                continue;
            }
            let spec = specs.get_mut(&response.watch_id).expect("a known watcher");
            history::assert_whole_revisions(&response, &expected[&response.watch_id]);
            spec.got.extend(response.events);
        }
        assert!(
            stream
                .try_next(Duration::from_millis(300))
                .await
                .is_none_or(|r| r.watch_id == -1 && r.events.is_empty())
        );
        for (id, s) in specs.iter() {
            assert_eq!(s.got, expected[id], "watcher {id} ({} {}) from {}", s.key, s.end, s.start);
        }
    }

    async fn create_all(stream: &mut WatchStream, specs: Vec<Spec>) -> HashMap<i64, Spec> {
        let mut by_id = HashMap::new();
        for spec in specs {
            stream.send(RequestUnion::CreateRequest(spec.request())).await;
            // Watchers created before may already have events coming.
            let created = loop {
                let response = stream.next().await;
                if response.created {
                    break response;
                }
                let earlier: &mut Spec =
                    by_id.get_mut(&response.watch_id).expect("a known watcher");
                earlier.got.extend(response.events);
            };
            assert!(!created.canceled, "{created:?}");
            by_id.insert(created.watch_id, spec);
        }
        by_id
    }

    fn spec(key: &'static str, end: &'static str, start: i64, prev_kv: bool) -> Spec {
        Spec { key, end, start, prev_kv, progress_notify: false, got: Vec::new() }
    }

    /// Concurrent writers, live and historical watchers (prefix, single key, range,
    /// with and without prev_kv), progress requests in between, a compaction and a
    /// restart: every watcher sees exactly the committed history.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_watcher_sees_exactly_the_committed_history() {
        let member = TestMember::start(&[]).await;
        let endpoint = member.endpoint.clone();
        let mut live = WatchStream::open(&endpoint).await;
        let mut specs = vec![
            spec("h/", "h0", 0, true),
            spec("h/", "h0", 0, false),
            spec("h/3", "h/7", 0, true),
        ];
        specs.extend((0..10).map(|i| {
            spec(
                ["h/0", "h/1", "h/2", "h/3", "h/4", "h/5", "h/6", "h/7", "h/8", "h/9"][i],
                "",
                0,
                i % 2 == 0,
            )
        }));
        let mut live_specs = create_all(&mut live, specs).await;

        let history = Arc::new(Mutex::new(History::default()));
        let writers: Vec<_> = (0..4)
            .map(|id| tokio::spawn(writer(endpoint.clone(), id, 150, history.clone())))
            .collect();
        // Historical watchers join while the writes go on.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut late = WatchStream::open(&endpoint).await;
        let mut late_specs = create_all(
            &mut late,
            vec![spec("h/", "h0", 2, true), spec("h/4", "", 3, true), spec("h/", "h0", 40, false)],
        )
        .await;
        for _ in 0..5 {
            live.request_progress().await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for w in writers {
            w.await.expect("writer");
        }
        live.request_progress().await;
        let all = history.lock().unwrap().events();
        collect(&mut live, &mut live_specs, &all).await;
        collect(&mut late, &mut late_specs, &all).await;

        // Compaction: a start below it is refused, one at it is served.
        let last = *history.lock().unwrap().revisions.keys().last().expect("writes");
        let compact_at = last - 50;
        let mut kv = KvClient::connect(endpoint.clone()).await.expect("connect");
        kv.compact(CompactionRequest { revision: compact_at, physical: true })
            .await
            .expect("compact");
        let mut after = WatchStream::open(&endpoint).await;
        let refused = after
            .create(WatchCreateRequest { start_revision: compact_at - 1, ..watch_prefix("h/") })
            .await;
        assert!(refused.created);
        let canceled = after.next().await;
        assert!(canceled.canceled && canceled.compact_revision == compact_at, "{canceled:?}");
        let mut from_compaction =
            create_all(&mut after, vec![spec("h/", "h0", compact_at + 1, true)]).await;
        collect(&mut after, &mut from_compaction, &all).await;
        drop((live, late, after));

        // A restart: history survives, and new writes follow it without a gap.
        let member = TestMember::start_in(member.stop().await, &[]).await;
        let endpoint = member.endpoint.clone();
        let mut again = WatchStream::open(&endpoint).await;
        let mut specs = create_all(
            &mut again,
            vec![spec("h/", "h0", compact_at + 1, true), spec("h/", "h0", 0, true)],
        )
        .await;
        // Start revision 0: from the next revision on, i.e. after what came before.
        for s in specs.values_mut().filter(|s| s.start == 0) {
            s.start = last + 1;
        }
        writer(endpoint.clone(), 9, 40, history.clone()).await;
        let all = history.lock().unwrap().events();
        let fresh: Vec<Event> = all.iter().filter(|e| history::rev(e) > last).cloned().collect();
        assert!(!fresh.is_empty());
        collect(&mut again, &mut specs, &all).await;
        drop(again);
        member.stop().await;
    }

    /// With `--experimental-watch-progress-notify-interval=200ms`, watchers that asked for
    /// progress notifications get them periodically while writes come and go, and only
    /// they do. A notification at revision R says the watcher has every event up to R:
    /// checked against the committed history, it never runs ahead of the events
    /// delivered before it, nor behind them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn periodic_progress_notifications_never_run_ahead_of_delivered_events() {
        let member =
            TestMember::start(&["--experimental-watch-progress-notify-interval=200ms"]).await;
        let endpoint = member.endpoint.clone();
        let mut stream = WatchStream::open(&endpoint).await;
        let mut specs = create_all(
            &mut stream,
            vec![
                spec("h/", "h0", 0, false).with_progress_notify(),
                spec("h/3", "", 0, true).with_progress_notify(),
                // Never gets an event.
                spec("quiet/", "quiet0", 0, false).with_progress_notify(),
                // Did not ask: never gets a notification.
                spec("h/", "h0", 0, false),
            ],
        )
        .await;
        let mut asked: Vec<i64> =
            specs.iter().filter(|(_, s)| s.progress_notify).map(|(&id, _)| id).collect();
        // Joining while writes go on, these catch up from history first: no notification
        // may come before they are synced.
        let mut late = vec![
            spec("h/", "h0", 2, true).with_progress_notify(),
            spec("h/5", "", 1, false).with_progress_notify(),
        ];
        let join_at = tokio::time::Instant::now() + Duration::from_millis(1200);
        let mut joining = std::collections::VecDeque::new();

        // Bursts of writes with pauses longer than the interval in between, so ticks
        // fall both among events and in quiet spells.
        let history = Arc::new(Mutex::new(History::default()));
        let mut writes = tokio::spawn({
            let (endpoint, history) = (endpoint.clone(), history.clone());
            async move {
                for burst in 0..12 {
                    writer(endpoint.clone(), burst, 6, history.clone()).await;
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            }
        });

        // (watch id, revision, events the watcher had received before it).
        let mut notifications: Vec<(i64, i64, usize)> = Vec::new();
        let mut last = None;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            // Once the writes are done, read on until every watcher that asked has been
            // told it is at the last revision.
            if last.is_none() && writes.is_finished() {
                (&mut writes).await.expect("writer");
                last = Some(*history.lock().unwrap().revisions.keys().last().expect("writes"));
            }
            if let Some(rev) = last
                && asked
                    .iter()
                    .all(|id| notifications.iter().any(|&(n, at, _)| n == *id && at >= rev))
            {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "no progress to the last revision");
            if !late.is_empty() && tokio::time::Instant::now() >= join_at {
                for spec in late.drain(..) {
                    stream.send(RequestUnion::CreateRequest(spec.request())).await;
                    joining.push_back(spec);
                }
            }
            let Some(response) = stream.try_next(Duration::from_millis(100)).await else {
                continue;
            };
            assert!(!response.canceled, "{response:?}");
            if response.created {
                asked.push(response.watch_id);
                specs.insert(response.watch_id, joining.pop_front().expect("a create sent"));
                continue;
            }
            let spec = specs.get_mut(&response.watch_id).expect("a known watcher");
            if response.events.is_empty() {
                let rev = response.header.as_ref().map_or(0, |h| h.revision);
                notifications.push((response.watch_id, rev, spec.got.len()));
            } else {
                spec.got.extend(response.events);
            }
        }

        let all = history.lock().unwrap().events();
        for (id, s) in &specs {
            let expected = history::expected(&all, s.key, s.end, s.start, s.prev_kv);
            assert_eq!(s.got, expected, "watcher {id} ({} {}) from {}", s.key, s.end, s.start);
            let mine: Vec<&(i64, i64, usize)> =
                notifications.iter().filter(|(n, ..)| n == id).collect();
            if !s.progress_notify {
                assert!(mine.is_empty(), "watcher {id} did not ask for notifications: {mine:?}");
                continue;
            }
            // Several ticks, not one lucky response: the notifications are periodic.
            assert!(mine.len() >= 3, "watcher {id} got {} notifications", mine.len());
            for &&(_, rev, before) in &mine {
                let due = expected.iter().filter(|e| history::rev(e) <= rev).count();
                assert!(before >= due, "watcher {id}: progress at {rev} ran ahead of its events");
                assert_eq!(before, due, "watcher {id}: progress at {rev} behind delivered events");
            }
        }
        drop(stream);
        member.stop().await;
    }

    /// A client that does not read: the writes still complete (apply never waits for
    /// it), its watcher is parked and later catches up with nothing lost.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stalled_client_never_stalls_writes_and_loses_nothing() {
        let member = TestMember::start(&[]).await;
        let mut slow = WatchStream::open(&member.endpoint).await;
        let id = slow.create(watch("slow", b"")).await.watch_id;
        let mut kv = KvClient::connect(member.endpoint.clone()).await.expect("connect");
        let value = "v".repeat(4096);
        let mut first = 0;
        let mut last = 0;
        for i in 0..3000 {
            let rev = kv
                .put(put("slow", &value))
                .await
                .expect("put")
                .into_inner()
                .header
                .expect("header")
                .revision;
            if i == 0 {
                first = rev;
            }
            last = rev;
        }
        let mut next = first;
        while next <= last {
            let response = slow.next().await;
            assert_eq!(response.watch_id, id);
            for event in &response.events {
                assert_eq!(history::rev(event), next, "in order, exactly once");
                next += 1;
            }
        }
        drop(slow);
        member.stop().await;
    }

    /// Watches are served by followers, from their own apply.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_follower_serves_watches_of_writes_made_through_the_leader() {
        let cluster = TestCluster::start(3).await;
        let leader = cluster.leader().await;
        let follower = (leader + 1) % 3;
        let mut stream = WatchStream::open(&cluster.endpoint(follower)).await;
        let id = stream.create(watch_prefix("f/")).await.watch_id;
        let mut kv = KvClient::connect(cluster.endpoint(leader)).await.expect("connect");
        let rev = kv
            .put(put("f/a", "1"))
            .await
            .expect("put")
            .into_inner()
            .header
            .expect("header")
            .revision;
        let response = stream.next().await;
        assert_eq!((response.watch_id, response.header.map(|h| h.revision)), (id, Some(rev)));
        assert_eq!(response.events.len(), 1);
        drop(stream);
        cluster.stop_all().await;
    }
}

/// 100,000 watchers on one stream of one member, and what an idle one costs: the
/// growth of this process's resident memory (server and client together, so an upper
/// bound) per watcher.
mod scale {
    use oxetcd_api::etcdserverpb::kv_client::KvClient;
    use oxetcd_api::etcdserverpb::watch_request::RequestUnion;
    use oxetcd_api::etcdserverpb::{PutRequest, WatchCreateRequest};
    use oxetcd_tests::member::TestMember;
    use oxetcd_tests::watch_scenario::{WatchStream, watch};

    const WATCHERS: usize = 100_000;
    /// Creates in flight at once.
    const BATCH: usize = 1000;

    fn rss_bytes() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }

    fn key(i: usize) -> String {
        format!("/registry/pods/default/pod-{i:06}")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hundred_thousand_idle_watchers_on_one_member() {
        let member = TestMember::start(&[]).await;
        let mut stream = WatchStream::open(&member.endpoint).await;
        // Warm the stream and the allocator's arenas before measuring.
        assert!(stream.create(watch("warm", b"")).await.created);
        let before = rss_bytes();
        for batch in (0..WATCHERS).step_by(BATCH) {
            for i in batch..batch + BATCH {
                let create: WatchCreateRequest = watch(&key(i), b"");
                stream.send(RequestUnion::CreateRequest(create)).await;
            }
            for _ in 0..BATCH {
                let created = stream.next().await;
                assert!(created.created && !created.canceled, "{created:?}");
            }
        }
        let per_watcher = rss_bytes().saturating_sub(before) / WATCHERS as u64;
        // A measurement, not an assertion: other tests share this process (run this one
        // alone for the number in docs/benchmarks.md).
        println!("idle watcher over gRPC (server + client RSS growth): {per_watcher} bytes");

        let mut kv = KvClient::connect(member.endpoint.clone()).await.expect("connect");
        let put = PutRequest {
            key: key(54_321).into_bytes().into(),
            value: "x".into(),
            ..Default::default()
        };
        kv.put(put).await.expect("put");
        let event = stream.next().await;
        // Watch ids count from 0 per stream; the warm-up watcher took 0.
        assert_eq!((event.watch_id, event.events.len()), (54_322, 1));
        drop(stream);
        member.stop().await;
    }
}
