//! The Watch service (etcd's v3rpc `watch.go`). One task per stream reads the client's
//! requests, talks to the watch hub, and turns the hub's deliveries into responses.
//! The task is the only writer of the stream, so a watcher's created response always
//! precedes its events. A slow client only fills its own queues: the task then stops
//! draining the hub's queue, and the hub parks that stream's watchers as victims.

use std::sync::Arc;
use std::time::Duration;

use oxetcd_api::etcdserverpb::watch_create_request::FilterType;
use oxetcd_api::etcdserverpb::watch_request::RequestUnion;
use oxetcd_api::etcdserverpb::watch_server::Watch;
use oxetcd_api::etcdserverpb::{RangeRequest, WatchCreateRequest, WatchRequest, WatchResponse};
use oxetcd_api::mvccpb::{Event, event::EventType};
use prost::Message as _;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::caller::StreamCredentials;
use oxetcd_etcdserver::EtcdServer;
use oxetcd_etcdserver::watch::{CreateWatch, Delivery, Filters, KeyRange, StreamId, WatchHub};

/// Responses buffered towards gRPC per stream; beyond it the stream's task waits.
const OUT_QUEUE: usize = 16;
/// How often a progress request that had to wait for watchers to sync is retried.
const DEFERRED_PROGRESS_RETRY: Duration = Duration::from_millis(50);
/// The watch id of responses that concern no watcher (etcd's `InvalidWatchID`).
const NO_WATCH_ID: i64 = -1;

pub struct WatchService {
    server: Arc<EtcdServer>,
}

impl WatchService {
    pub fn new(server: Arc<EtcdServer>) -> WatchService {
        WatchService { server }
    }
}

/// The period of a stream's progress notifications: the configured interval plus up to
/// a tenth of it, different per stream, so streams opened together (a client restarting
/// with many watchers) do not all get their notifications at the same moment (etcd
/// adds a random jitter for the same reason).
fn progress_period(interval: Duration, stream: StreamId) -> Duration {
    let tenth = (interval.as_nanos() / 10).max(1);
    // A multiplicative hash spreads consecutive stream ids over the whole tenth.
    let spread = u128::from(stream.wrapping_mul(0x9e37_79b9_7f4a_7c15)) % tenth;
    interval + Duration::from_nanos(spread as u64)
}

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = ReceiverStream<Result<WatchResponse, Status>>;

    async fn watch(
        &self,
        request: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let hub = self.server.watch_hub().clone();
        let (stream, deliveries) =
            hub.open_stream().map_err(|e| Status::unavailable(e.to_string()))?;
        let (out, responses) = mpsc::channel(OUT_QUEUE);
        let task = StreamTask {
            credentials: StreamCredentials::of(&request),
            max_bytes: crate::max_message_bytes(&self.server),
            server: self.server.clone(),
            hub,
            stream,
            out,
            deferred_progress: false,
        };
        let period = progress_period(self.server.config().watch_progress_notify_interval, stream);
        tokio::spawn(task.run(request.into_inner(), deliveries, period));
        Ok(Response::new(ReceiverStream::new(responses)))
    }
}

struct StreamTask {
    server: Arc<EtcdServer>,
    /// Who opened the stream: each create is checked as this caller, then.
    credentials: StreamCredentials,
    hub: Arc<WatchHub>,
    stream: StreamId,
    out: mpsc::Sender<Result<WatchResponse, Status>>,
    /// A progress request waits for every watcher of the stream to be synced.
    deferred_progress: bool,
    /// Fragmented responses are cut below this size.
    max_bytes: usize,
}

impl StreamTask {
    async fn run(
        mut self,
        mut requests: Streaming<WatchRequest>,
        mut deliveries: mpsc::Receiver<Delivery>,
        progress_interval: Duration,
    ) {
        let start = tokio::time::Instant::now() + progress_interval;
        let mut progress = tokio::time::interval_at(start, progress_interval);
        // A stream that was busy gets one notification, not a burst of missed ones.
        progress.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // A client that half-closes still gets its events, as in etcd.
        let mut reading = true;
        loop {
            let open = tokio::select! {
                request = requests.message(), if reading => match request {
                    Ok(Some(request)) => self.handle(request).await,
                    Ok(None) => {
                        reading = false;
                        true
                    }
                    Err(status) => {
                        tracing::debug!(error = %status, "watch stream receive failed");
                        false
                    }
                },
                delivery = deliveries.recv() => match delivery {
                    Some(delivery) => self.deliver(delivery).await,
                    // The hub closed: the member is shutting down.
                    None => false,
                },
                _ = progress.tick() => {
                    self.hub.progress_tick(self.stream);
                    true
                }
                _ = tokio::time::sleep(DEFERRED_PROGRESS_RETRY), if self.deferred_progress => {
                    self.retry_progress();
                    true
                }
                _ = self.out.closed() => false,
            };
            if !open {
                break;
            }
        }
        self.hub.close_stream(self.stream);
    }

    async fn send(&self, response: WatchResponse) -> bool {
        self.out.send(Ok(response)).await.is_ok()
    }

    async fn handle(&mut self, request: WatchRequest) -> bool {
        match request.request_union {
            Some(RequestUnion::CreateRequest(create)) => self.create(create).await,
            Some(RequestUnion::CancelRequest(cancel)) => {
                match self.hub.cancel(self.stream, cancel.watch_id) {
                    Some(rev) => {
                        self.send(WatchResponse {
                            header: Some(self.server.header(rev)),
                            watch_id: cancel.watch_id,
                            canceled: true,
                            ..Default::default()
                        })
                        .await
                    }
                    // etcd ignores a cancel for an unknown watcher.
                    None => true,
                }
            }
            Some(RequestUnion::ProgressRequest(_)) => {
                if !self.deferred_progress {
                    self.retry_progress();
                }
                true
            }
            None => true,
        }
    }

    fn retry_progress(&mut self) {
        self.deferred_progress = !self.hub.progress_all(self.stream);
    }

    async fn create(&mut self, create: WatchCreateRequest) -> bool {
        if let Err(refused) = self.check_create(&create).await {
            let response = WatchResponse {
                header: Some(self.server.header(self.hub.revision())),
                watch_id: NO_WATCH_ID,
                created: true,
                canceled: true,
                cancel_reason: refused,
                ..Default::default()
            };
            return self.send(response).await;
        }
        let created = KeyRange::new(&create.key, &create.range_end).and_then(|range| {
            let request = CreateWatch {
                id: create.watch_id,
                range,
                start_revision: create.start_revision,
                opts: options(&create),
            };
            self.hub.create(self.stream, request)
        });
        let response = match created {
            Ok((watch_id, rev)) => WatchResponse {
                header: Some(self.server.header(rev)),
                watch_id,
                created: true,
                ..Default::default()
            },
            Err(e) => WatchResponse {
                header: Some(self.server.header(self.hub.revision())),
                watch_id: NO_WATCH_ID,
                created: true,
                canceled: true,
                cancel_reason: e.to_string(),
                ..Default::default()
            },
        };
        self.send(response).await
    }

    /// Whether the stream's caller may read the watched range; if not, the cancel
    /// reason etcd gives: the gRPC error as grpc-go prints it.
    async fn check_create(&self, create: &WatchCreateRequest) -> Result<(), String> {
        let server = &self.server;
        let checked = match self.credentials.requester(server).await {
            Ok(from) => server.authorize_local(&from, |store, info| {
                store.check(info, &create.key, &create.range_end, oxetcd_auth::PermType::Read)
            }),
            Err(e) => Err(e),
        };
        checked.map_err(|e| oxetcd_client::go_status_text(&crate::status(e)))
    }

    async fn deliver(&mut self, delivery: Delivery) -> bool {
        let mut events = delivery.events.into_vec();
        if delivery.fill_prev_kv {
            self.fill_prev_kv(&mut events);
        }
        let response = WatchResponse {
            header: Some(self.server.header(delivery.revision)),
            watch_id: delivery.watch_id,
            canceled: delivery.compact_revision != 0,
            compact_revision: delivery.compact_revision,
            events,
            ..Default::default()
        };
        let parts =
            if delivery.fragment { fragments(response, self.max_bytes) } else { vec![response] };
        for part in parts {
            if !self.send(part).await {
                return false;
            }
        }
        if self.deferred_progress {
            self.retry_progress();
        }
        true
    }

    /// Puts and history carry no previous key-values: read each at the revision before
    /// its event, as etcd does (left empty if that was compacted away).
    fn fill_prev_kv(&self, events: &mut [Event]) {
        // A stopped member serves nothing; its watch streams are ending.
        let Ok(store) = self.server.store() else { return };
        for event in events.iter_mut().filter(|e| e.prev_kv.is_none() && !is_create(e)) {
            let Some(kv) = &event.kv else { continue };
            let request = RangeRequest {
                key: kv.key.clone(),
                revision: kv.mod_revision - 1,
                ..Default::default()
            };
            if let Ok(found) = store.range(&request) {
                event.prev_kv = found.kvs.into_iter().next();
            }
        }
    }
}

fn options(create: &WatchCreateRequest) -> Filters {
    let filtered = |f: FilterType| create.filters.contains(&(f as i32));
    Filters::default()
        .with(Filters::NO_PUT, filtered(FilterType::Noput))
        .with(Filters::NO_DELETE, filtered(FilterType::Nodelete))
        .with(Filters::PREV_KV, create.prev_kv)
        .with(Filters::FRAGMENT, create.fragment)
        .with(Filters::PROGRESS_NOTIFY, create.progress_notify)
}

fn is_create(event: &Event) -> bool {
    event.r#type == EventType::Put as i32
        && event.kv.as_ref().is_some_and(|kv| kv.create_revision == kv.mod_revision)
}

/// etcd's fragmentation: a response of at least `max` bytes with more than one event
/// is cut into parts below `max` (a part holds at least one event); every part but the
/// last says `fragment: true`.
fn fragments(mut response: WatchResponse, max: usize) -> Vec<WatchResponse> {
    if response.encoded_len() < max || response.events.len() < 2 {
        return vec![response];
    }
    let events = std::mem::take(&mut response.events);
    let empty = WatchResponse { fragment: true, ..response };
    let base = empty.encoded_len();
    let mut parts = Vec::new();
    let mut current = empty.clone();
    let mut size = base;
    for event in events {
        let len = prost::encoding::message::encoded_len(11, &event);
        if !current.events.is_empty() && size + len >= max {
            parts.push(std::mem::replace(&mut current, empty.clone()));
            size = base;
        }
        size += len;
        current.events.push(event);
    }
    current.fragment = false;
    parts.push(current);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxetcd_api::mvccpb::KeyValue;

    #[test]
    fn progress_periods_spread_streams_over_a_tenth_of_the_interval() {
        let interval = Duration::from_millis(200);
        let periods: Vec<Duration> = (0..100).map(|s| progress_period(interval, s)).collect();
        assert!(periods.iter().all(|p| *p >= interval && *p < interval + interval / 10));
        let distinct: std::collections::BTreeSet<_> = periods.iter().collect();
        assert!(distinct.len() > 90, "streams share periods: {}", distinct.len());
    }

    #[test]
    fn fragments_keep_every_event_in_order_below_the_limit() {
        let events: Vec<Event> = (0..10)
            .map(|i| Event {
                kv: Some(KeyValue {
                    key: format!("k{i}").into(),
                    value: vec![0; 100].into(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect();
        let response = WatchResponse { watch_id: 3, events: events.clone(), ..Default::default() };
        let parts = fragments(response.clone(), 350);
        assert!(parts.len() > 1);
        assert!(parts.iter().all(|p| p.encoded_len() < 350 && p.watch_id == 3));
        assert!(parts[..parts.len() - 1].iter().all(|p| p.fragment));
        assert!(!parts[parts.len() - 1].fragment);
        let joined: Vec<Event> = parts.into_iter().flat_map(|p| p.events).collect();
        assert_eq!(joined, events);
        assert_eq!(fragments(response.clone(), 1 << 20), vec![response]);
    }
}
