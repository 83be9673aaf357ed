//! Watch behaviour written once and run against any etcd v3 endpoint (the reference
//! etcd in the compatibility suite, oxetcd in the default run), plus [`WatchStream`],
//! a small client for one Watch stream that the server tests share.

use std::time::Duration;

use oxetcd_api::etcdserverpb::kv_client::KvClient;
use oxetcd_api::etcdserverpb::request_op::Request;
use oxetcd_api::etcdserverpb::watch_client::WatchClient;
use oxetcd_api::etcdserverpb::watch_create_request::FilterType;
use oxetcd_api::etcdserverpb::watch_request::RequestUnion;
use oxetcd_api::etcdserverpb::{
    CompactionRequest, DeleteRangeRequest, RequestOp, TxnRequest, WatchCancelRequest,
    WatchCreateRequest, WatchProgressRequest, WatchRequest, WatchResponse,
};
use oxetcd_api::mvccpb::event::EventType;
use oxetcd_api::mvccpb::{Event, KeyValue};
use tokio::sync::mpsc;
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;

use crate::scenario::{key_value, prefix_end, put};

/// How long a response may take before a test fails.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(20);

/// One Watch stream: requests go out through a queue, responses are read in order.
/// The call starts at the first read, with the requests sent so far already queued:
/// etcd (grpc-go) sends the response headers only with its first response.
pub struct WatchStream {
    requests: mpsc::Sender<WatchRequest>,
    call: Option<(WatchClient<tonic::transport::Channel>, mpsc::Receiver<WatchRequest>)>,
    responses: Option<tonic::Streaming<WatchResponse>>,
}

impl WatchStream {
    /// Raw stubs, not oxetcd-client: the scenarios check every response of the stream
    /// as the server sends it (created, canceled, progress), which the client's
    /// `Watcher` consumes or resumes from.
    pub async fn open(endpoint: &str) -> WatchStream {
        let client = WatchClient::connect(endpoint.to_string()).await.expect("connect");
        let (requests, rx) = mpsc::channel(1024);
        WatchStream { requests, call: Some((client, rx)), responses: None }
    }

    pub async fn send(&self, request: RequestUnion) {
        let request = WatchRequest { request_union: Some(request) };
        self.requests.send(request).await.expect("stream open");
    }

    /// Sends a create request and returns the next response (its answer when no other
    /// watcher of the stream has events coming).
    pub async fn create(&mut self, create: WatchCreateRequest) -> WatchResponse {
        self.send(RequestUnion::CreateRequest(create)).await;
        self.next().await
    }

    pub async fn cancel(&mut self, watch_id: i64) {
        self.send(RequestUnion::CancelRequest(WatchCancelRequest { watch_id })).await;
    }

    pub async fn request_progress(&mut self) {
        self.send(RequestUnion::ProgressRequest(WatchProgressRequest {})).await;
    }

    pub async fn next(&mut self) -> WatchResponse {
        self.try_next(RESPONSE_TIMEOUT).await.expect("a watch response in time")
    }

    /// The next response, or `None` if none comes within `wait`.
    pub async fn try_next(&mut self, wait: Duration) -> Option<WatchResponse> {
        if let Some((mut client, rx)) = self.call.take() {
            let call = client.watch(ReceiverStream::new(rx));
            let opened = tokio::time::timeout(RESPONSE_TIMEOUT, call).await;
            self.responses = Some(
                opened
                    .expect("watch stream opens in time")
                    .expect("watch stream opens")
                    .into_inner(),
            );
        }
        let responses = self.responses.as_mut()?;
        match tokio::time::timeout(wait, responses.message()).await {
            Ok(response) => Some(response.expect("stream healthy").expect("stream open")),
            Err(_) => None,
        }
    }
}

/// A create request for `[key, end)` (`end` empty: one key).
pub fn watch(key: &str, end: &[u8]) -> WatchCreateRequest {
    WatchCreateRequest {
        key: key.as_bytes().to_vec().into(),
        range_end: end.to_vec().into(),
        ..Default::default()
    }
}

/// A create request for every key starting with `prefix`.
pub fn watch_prefix(prefix: &str) -> WatchCreateRequest {
    watch(prefix, &prefix_end(prefix.as_bytes()))
}

fn kv(key: &str, value: &str, create_revision: i64, mod_revision: i64, version: i64) -> KeyValue {
    key_value((key, value, create_revision, mod_revision, version))
}

fn put_event(kv: KeyValue, prev_kv: Option<KeyValue>) -> Event {
    Event { r#type: EventType::Put as i32, kv: Some(kv), prev_kv }
}

fn delete_event(key: &str, mod_revision: i64, prev_kv: Option<KeyValue>) -> Event {
    let kv = KeyValue { key: key.as_bytes().to_vec().into(), mod_revision, ..Default::default() };
    Event { r#type: EventType::Delete as i32, kv: Some(kv), prev_kv }
}

fn put_op(key: &str, value: &str) -> RequestOp {
    RequestOp { request: Some(Request::RequestPut(put(key, value))) }
}

fn revision(response: &WatchResponse) -> i64 {
    response.header.as_ref().map_or(0, |h| h.revision)
}

/// The created response etcd sends: the id, the revision the watch was made at.
fn assert_created(response: &WatchResponse, watch_id: i64, rev: i64) {
    assert!(response.created && !response.canceled, "{response:?}");
    assert_eq!((response.watch_id, revision(response)), (watch_id, rev), "{response:?}");
}

fn assert_events(response: &WatchResponse, watch_id: i64, rev: i64, events: Vec<Event>) {
    assert!(!response.created && !response.canceled, "{response:?}");
    assert_eq!((response.watch_id, revision(response)), (watch_id, rev), "{response:?}");
    assert_eq!(response.events, events, "{response:?}");
}

/// A refused create: `created` and `canceled` with etcd's reason, on watch id -1.
fn assert_refused(response: &WatchResponse, reason: &str) {
    assert!(response.created && response.canceled, "{response:?}");
    assert_eq!((response.watch_id, response.cancel_reason.as_str()), (-1, reason));
}

/// Two responses of one revision to different watchers come in no set order.
async fn next_two(stream: &mut WatchStream) -> (WatchResponse, WatchResponse) {
    let (a, b) = (stream.next().await, stream.next().await);
    if a.watch_id < b.watch_id { (a, b) } else { (b, a) }
}

/// etcd's watch semantics, from an empty server (revision 1): ids, created responses,
/// live events one response per watcher and revision (a txn's events together),
/// prev_kv, filters, duplicate ids, empty ranges, cancel, progress, historical replay
/// and a compacted start revision.
pub async fn watch_semantics(endpoint: &str) {
    // Raw stubs (see `WatchStream::open`): each response is compared with etcd's.
    let mut client = KvClient::connect(endpoint.to_string()).await.expect("connect");
    let mut s = WatchStream::open(endpoint).await;

    assert_created(&s.create(watch("a", b"")).await, 0, 1);
    let with_prev = WatchCreateRequest { prev_kv: true, ..watch_prefix("p/") };
    assert_created(&s.create(with_prev).await, 1, 1);
    let no_put =
        WatchCreateRequest { filters: vec![FilterType::Noput as i32], ..watch_prefix("p/") };
    assert_created(&s.create(no_put).await, 2, 1);

    client.put(put("a", "1")).await.expect("put");
    assert_events(&s.next().await, 0, 2, vec![put_event(kv("a", "1", 2, 2, 1), None)]);
    client.put(put("p/x", "old")).await.expect("put");
    assert_events(&s.next().await, 1, 3, vec![put_event(kv("p/x", "old", 3, 3, 1), None)]);

    let delete_a = RequestOp {
        request: Some(Request::RequestDeleteRange(DeleteRangeRequest {
            key: "a".into(),
            ..Default::default()
        })),
    };
    let txn = TxnRequest {
        success: vec![put_op("p/x", "new"), put_op("p/y", "1"), delete_a],
        ..Default::default()
    };
    client.txn(txn).await.expect("txn");
    let (single, prefix) = next_two(&mut s).await;
    assert_events(&single, 0, 4, vec![delete_event("a", 4, None)]);
    let previous = Some(kv("p/x", "old", 3, 3, 1));
    let txn_events = vec![
        put_event(kv("p/x", "new", 3, 4, 2), previous),
        put_event(kv("p/y", "1", 4, 4, 1), None),
    ];
    assert_events(&prefix, 1, 4, txn_events);

    client
        .delete_range(DeleteRangeRequest { key: "p/y".into(), ..Default::default() })
        .await
        .expect("delete");
    let (prev, filtered) = next_two(&mut s).await;
    assert_events(&prev, 1, 5, vec![delete_event("p/y", 5, Some(kv("p/y", "1", 4, 4, 1)))]);
    assert_events(&filtered, 2, 5, vec![delete_event("p/y", 5, None)]);

    assert_created(&s.create(WatchCreateRequest { watch_id: 7, ..watch("d", b"") }).await, 7, 5);
    let duplicate = s.create(WatchCreateRequest { watch_id: 7, ..watch("d", b"") }).await;
    assert_refused(&duplicate, "mvcc: duplicate watch ID provided on the WatchStream");
    assert_created(&s.create(watch("e", b"")).await, 3, 5);
    assert_refused(&s.create(watch("b", b"a")).await, "mvcc: watcher range is empty");
    s.cancel(7).await;
    let canceled = s.next().await;
    assert!(canceled.canceled && !canceled.created, "{canceled:?}");
    assert_eq!((canceled.watch_id, revision(&canceled)), (7, 5));

    // Every watcher is synced: the progress response comes at once, for all of them.
    s.request_progress().await;
    let progress = s.next().await;
    assert_eq!((progress.watch_id, revision(&progress)), (-1, 5), "{progress:?}");
    assert!(progress.events.is_empty() && !progress.created && !progress.canceled);

    // History is replayed in one response whose header is the current revision.
    let mut h = WatchStream::open(endpoint).await;
    let history = WatchCreateRequest { start_revision: 3, prev_kv: true, ..watch_prefix("p/") };
    assert_created(&h.create(history).await, 0, 5);
    let replay = vec![
        put_event(kv("p/x", "old", 3, 3, 1), None),
        put_event(kv("p/x", "new", 3, 4, 2), Some(kv("p/x", "old", 3, 3, 1))),
        put_event(kv("p/y", "1", 4, 4, 1), None),
        delete_event("p/y", 5, Some(kv("p/y", "1", 4, 4, 1))),
    ];
    assert_events(&h.next().await, 0, 5, replay);

    // A start revision below the compacted one: created, then canceled with it.
    client.compact(CompactionRequest { revision: 4, physical: true }).await.expect("compact");
    assert_created(
        &h.create(WatchCreateRequest { start_revision: 3, ..watch_prefix("p/") }).await,
        1,
        5,
    );
    let compacted = h.next().await;
    assert!(compacted.canceled && !compacted.created, "{compacted:?}");
    // etcd's header carries no revision on this response.
    let got = (compacted.watch_id, compacted.compact_revision, revision(&compacted));
    assert_eq!(got, (1, 4, 0), "{compacted:?}");
    assert!(compacted.events.is_empty());
    // At the compacted revision itself the history is still there.
    assert_created(
        &h.create(WatchCreateRequest { start_revision: 4, ..watch_prefix("p/") }).await,
        2,
        5,
    );
    let at_compaction = vec![
        put_event(kv("p/x", "new", 3, 4, 2), None),
        put_event(kv("p/y", "1", 4, 4, 1), None),
        delete_event("p/y", 5, None),
    ];
    assert_events(&h.next().await, 2, 5, at_compaction);
}
