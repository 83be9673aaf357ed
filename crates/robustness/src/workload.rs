//! Concurrent clients doing put, get, range, delete and compare-and-swap transactions on
//! a few keys, and watchers over the keys, all recorded. Every write carries a value
//! unique in the run (`c<client>-<n>`), so a value read back names its write.

use std::time::Duration;

use oxetcd_client::proto::etcdserverpb::response_op::Response as OpResponse;
use oxetcd_client::proto::etcdserverpb::watch_client::WatchClient;
use oxetcd_client::proto::etcdserverpb::watch_request::RequestUnion;
use oxetcd_client::proto::etcdserverpb::{
    WatchCreateRequest, WatchProgressRequest, WatchRequest as PbWatchRequest,
};
use oxetcd_client::{
    Client, ClientOptions, Compare as PbCompare, CompareOp, Error, EventType, GetOptions, Txn,
    TxnOp, WatchOptions, Watcher,
};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

use crate::compaction::Compactor;
use crate::history::{
    Compare, Kv, LeaseRecord, Outcome, Recorder, Request, Response, WatchEvent, WatchResponse,
    WatchStream,
};
use crate::rng::Rng;

/// Every key of a run starts with this, and nothing else writes under it.
pub const KEY_PREFIX: &str = "rb/";
/// The keys put with leases (apart: lease expiry deletes them without a client's delete).
pub const LEASE_PREFIX: &str = "rbl/";
/// The TTLs asked for, in seconds (at least etcd's minimum for the runs' election timeout).
const LEASE_TTL: (u64, u64) = (2, 5);
/// Keep-alives sent for one lease, at most.
const MAX_KEEP_ALIVES: u64 = 3;
/// How long one request may take, all attempts included, before its outcome is unknown.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// Attempts of a request on other members when its connection could not be made (a write
/// is sent again only then, so it is applied at most once).
const MAX_RETRIES: u32 = 3;
/// How often a watcher asks for a progress notification.
const PROGRESS_EVERY: Duration = Duration::from_millis(700);
/// A raw watcher opens its watch again from revision 1 once in so many times.
const REWIND_ONE_IN: u64 = 4;
/// How long a raw watcher waits before opening its watch again on the next member.
const REOPEN_BACKOFF: Duration = Duration::from_millis(200);
/// How long, at the end, a watcher may take to reach the final revision.
const WATCH_DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

/// What the workload does.
#[derive(Clone, Debug)]
pub struct Workload {
    pub clients: u32,
    pub keys: u32,
    /// Watches through the client library, which resumes them itself.
    pub watchers: u32,
    /// Watches on the bare gRPC stream, reopened by hand from revision 1 on.
    pub raw_watchers: u32,
    /// A client granting, keeping alive, revoking and letting expire leases.
    pub leases: bool,
    /// Compactions as the run goes ([`crate::compaction`]).
    pub compact: bool,
}

impl Default for Workload {
    fn default() -> Self {
        // Few keys, so that clients contend on each; few clients, for two cores.
        Workload { clients: 4, keys: 6, watchers: 2, raw_watchers: 1, leases: true, compact: true }
    }
}

fn key_name(i: u64) -> String {
    format!("{KEY_PREFIX}k{i}")
}

/// The first key after every key with the prefix.
pub fn prefix_end() -> String {
    end_of(KEY_PREFIX)
}

/// The first key after every key that starts with `prefix`.
fn end_of(prefix: &str) -> String {
    let mut end = prefix.as_bytes().to_vec();
    *end.last_mut().expect("a non-empty prefix") += 1;
    String::from_utf8(end).expect("ASCII")
}

/// A client over every member, failing over when a connection cannot be made.
pub async fn connect(endpoints: &[String]) -> oxetcd_client::Result<Client> {
    let options = ClientOptions::default()
        .with_dial_timeout(crate::cluster::DIAL_TIMEOUT)
        .with_max_retries(MAX_RETRIES)
        .with_request_timeout(REQUEST_TIMEOUT);
    Client::connect(endpoints.iter().cloned(), options).await
}

/// Whether the request surely had no effect: its connection was never made.
fn never_sent(error: &Error) -> bool {
    match error {
        Error::Unreachable { .. } | Error::InvalidArgument(_) | Error::InvalidEndpoint { .. } => {
            true
        }
        Error::Grpc { status } | Error::Etcd { status, .. } => {
            let mut source: Option<&(dyn std::error::Error + 'static)> =
                std::error::Error::source(status);
            while let Some(err) = source {
                if err.is::<tonic::ConnectError>() {
                    return status.code() == tonic::Code::Unavailable;
                }
                source = err.source();
            }
            false
        }
        _ => false,
    }
}

fn kv_of(kv: &oxetcd_client::KeyValue) -> Kv {
    Kv {
        key: String::from_utf8_lossy(&kv.key).into_owned(),
        value: String::from_utf8_lossy(&kv.value).into_owned(),
        mod_revision: kv.mod_revision,
    }
}

fn revision_of(header: Option<&oxetcd_client::ResponseHeader>) -> i64 {
    header.map_or(0, |h| h.revision)
}

/// Sends `request` and says how it ended.
async fn execute(client: &Client, request: &Request) -> Outcome {
    let result: Result<Response, Error> = match request {
        Request::Put { key, value } => client
            .put(key.as_str(), value.as_str(), None)
            .await
            .map(|r| Response::Put { revision: revision_of(r.header.as_ref()) }),
        Request::Range { key, range_end } => {
            let options = range_end.as_ref().map(|end| GetOptions::new().with_range(end.as_str()));
            client.get(key.as_str(), options).await.map(|r| Response::Range {
                revision: revision_of(r.header.as_ref()),
                kvs: r.kvs.iter().map(kv_of).collect(),
            })
        }
        Request::Delete { key } => client.delete(key.as_str(), None).await.map(|r| {
            Response::Delete { revision: revision_of(r.header.as_ref()), deleted: r.deleted }
        }),
        Request::Txn { key, compare, value } => {
            let compare = match compare {
                Compare::ModRevision(r) => {
                    PbCompare::mod_revision(key.as_str(), CompareOp::Equal, *r)
                }
                Compare::Value(v) => PbCompare::value(key.as_str(), CompareOp::Equal, v.as_str()),
            };
            let txn = Txn::new()
                .when([compare])
                .and_then([TxnOp::put(key.as_str(), value.as_str(), None)])
                .or_else([TxnOp::get(key.as_str(), None)]);
            client.txn(txn).await.map(|r| {
                let kv = r.responses.iter().find_map(|op| match &op.response {
                    Some(OpResponse::ResponseRange(range)) => range.kvs.first().map(kv_of),
                    _ => None,
                });
                Response::Txn {
                    revision: revision_of(r.header.as_ref()),
                    succeeded: r.succeeded,
                    kv,
                }
            })
        }
    };
    match result {
        Ok(response) => Outcome::Ok(response),
        // A read that failed changed nothing.
        Err(e) if !request.is_write() || never_sent(&e) => Outcome::Failed(e.to_string()),
        Err(e) => Outcome::Unknown(e.to_string()),
    }
}

/// What one client remembers of each key, to make swaps that may succeed.
#[derive(Clone, Default)]
struct Seen {
    mod_revision: i64,
    value: Option<String>,
}

/// One client's loop, until `stop` turns true.
async fn client_loop(
    id: u32,
    client: Client,
    workload: Workload,
    mut rng: Rng,
    recorder: Recorder,
    stop: watch::Receiver<bool>,
) {
    let mut seen = vec![Seen::default(); workload.keys as usize];
    let mut written = 0u64;
    while !*stop.borrow() {
        let k = rng.below(u64::from(workload.keys));
        let key = key_name(k);
        let mut value = || {
            written += 1;
            format!("c{id}-{written}")
        };
        let request = match rng.below(100) {
            0..30 => Request::Put { key, value: value() },
            30..50 => Request::Range { key, range_end: None },
            50..58 => Request::Range { key: KEY_PREFIX.into(), range_end: Some(prefix_end()) },
            58..78 => Request::Txn {
                key,
                compare: Compare::ModRevision(seen[k as usize].mod_revision),
                value: value(),
            },
            78..88 => match seen[k as usize].value.clone() {
                Some(expected) => {
                    Request::Txn { key, compare: Compare::Value(expected), value: value() }
                }
                None => Request::Put { key, value: value() },
            },
            _ => Request::Delete { key },
        };
        let invoke = recorder.now();
        let outcome = execute(&client, &request).await;
        remember(&mut seen, &request, &outcome);
        recorder.record(id, invoke, request, outcome);
    }
}

fn key_index(key: &str) -> Option<usize> {
    key.strip_prefix(KEY_PREFIX)?.strip_prefix('k')?.parse().ok()
}

fn remember(seen: &mut [Seen], request: &Request, outcome: &Outcome) {
    let Outcome::Ok(response) = outcome else { return };
    let keys = seen.len();
    let mut note = |key: &str, state: Seen| {
        if let Some(slot) = key_index(key).and_then(|i| seen.get_mut(i)) {
            *slot = state;
        }
    };
    match (request, response) {
        (Request::Put { key, value }, Response::Put { revision })
        | (Request::Txn { key, value, .. }, Response::Txn { revision, succeeded: true, .. }) => {
            note(key, Seen { mod_revision: *revision, value: Some(value.clone()) });
        }
        (Request::Txn { key, .. }, Response::Txn { kv, .. }) => note(
            key,
            kv.as_ref().map_or(Seen::default(), |kv| Seen {
                mod_revision: kv.mod_revision,
                value: Some(kv.value.clone()),
            }),
        ),
        (Request::Range { key, range_end }, Response::Range { kvs, .. }) => {
            for i in 0..keys {
                let name = key_name(i as u64);
                let covered = match range_end {
                    Some(end) => name >= *key && name < *end,
                    None => name == *key,
                };
                if covered {
                    let kv = kvs.iter().find(|kv| kv.key == name);
                    note(
                        &name,
                        kv.map_or(Seen::default(), |kv| Seen {
                            mod_revision: kv.mod_revision,
                            value: Some(kv.value.clone()),
                        }),
                    );
                }
            }
        }
        (Request::Delete { key }, Response::Delete { .. }) => note(key, Seen::default()),
        _ => {}
    }
}

fn watch_response(
    recorder: &Recorder,
    response: &oxetcd_client::proto::etcdserverpb::WatchResponse,
) -> WatchResponse {
    let events: Vec<WatchEvent> = response
        .events
        .iter()
        .filter_map(|event| {
            let kv = event.kv.as_ref()?;
            let delete = event.r#type() == EventType::Delete;
            Some(WatchEvent {
                revision: kv.mod_revision,
                key: String::from_utf8_lossy(&kv.key).into_owned(),
                delete,
                value: if delete {
                    String::new()
                } else {
                    String::from_utf8_lossy(&kv.value).into_owned()
                },
            })
        })
        .collect();
    WatchResponse {
        at: recorder.now(),
        header_revision: revision_of(response.header.as_ref()),
        progress_notify: events.is_empty() && !response.created && !response.canceled,
        events,
    }
}

/// Records one watch until `stop`, then until it reaches the revision `stop` carries
/// (the store's revision once the run is over) or [`WATCH_DRAIN_TIMEOUT`] passes. A
/// watch canceled as compacted is opened again from the compaction revision, as a new
/// stream (each is held to the guarantees from its own start).
async fn watch_loop(
    id: u32,
    client: Client,
    mut watcher: Watcher,
    mut stream: WatchStream,
    recorder: Recorder,
    mut end: watch::Receiver<Option<i64>>,
) -> Vec<WatchStream> {
    let mut streams = Vec::new();
    let mut progress = tokio::time::interval(PROGRESS_EVERY);
    let mut drain_deadline: Option<tokio::time::Instant> = None;
    let mut reached = 0i64;
    loop {
        let target = *end.borrow();
        if let Some(target) = target {
            let deadline =
                *drain_deadline.get_or_insert(tokio::time::Instant::now() + WATCH_DRAIN_TIMEOUT);
            // Past the deadline, held to the end anyway: the completeness check says what
            // is missing.
            if reached >= target || tokio::time::Instant::now() > deadline {
                stream.reached = Some(target);
                streams.push(stream);
                return streams;
            }
        }
        tokio::select! {
            message = watcher.message() => match message {
                Ok(Some(response)) => {
                    let response = watch_response(&recorder, &response);
                    reached = reached.max(response.header_revision);
                    if !response.progress_notify {
                        reached = reached.max(response.events.last().map_or(0, |e| e.revision));
                    }
                    stream.responses.push(response);
                }
                Err(Error::WatchCompacted { compact_revision }) => {
                    stream.compacted = Some(compact_revision);
                    let range_end = stream.range_end.clone().unwrap_or_default();
                    let options = WatchOptions::new()
                        .with_range(range_end.as_str())
                        .with_start_revision(compact_revision);
                    let reopened = client.watch(stream.key.as_str(), Some(options)).await;
                    let next = WatchStream::empty(id, &stream.key, compact_revision);
                    streams.push(std::mem::replace(&mut stream, next));
                    match reopened {
                        Ok(reopened) => watcher = reopened,
                        Err(e) => {
                            stream.ended_early =
                                Some(format!("watcher {id}: not opened again after compaction: {e}"));
                            streams.push(stream);
                            return streams;
                        }
                    }
                }
                Ok(None) | Err(_) => {
                    // What it got is still checked; completeness cannot be.
                    stream.ended_early = Some(format!("watcher {id}: {message:?}"));
                    stream.reached = None;
                    streams.push(stream);
                    return streams;
                }
            },
            _ = progress.tick() => {
                let _ = watcher.request_progress().await;
            }
            _ = end.changed() => {}
        }
    }
}

impl WatchStream {
    /// A stream of the keys under `prefix` from `start_revision`, nothing received yet.
    fn empty(client: u32, prefix: &str, start_revision: i64) -> WatchStream {
        WatchStream {
            client,
            key: prefix.into(),
            range_end: Some(end_of(prefix)),
            start_revision,
            responses: Vec::new(),
            reached: None,
            ended_early: None,
            compacted: None,
        }
    }
}

/// One gRPC watch stream opened on one member, without the client library's resume:
/// what the server itself sends, events below the start revision included.
struct RawStream {
    requests: mpsc::Sender<PbWatchRequest>,
    responses: tonic::Streaming<oxetcd_client::proto::etcdserverpb::WatchResponse>,
}

async fn open_raw(endpoint: &str, start_revision: i64) -> Result<RawStream, String> {
    let channel = tonic::transport::Endpoint::from_shared(endpoint.to_string())
        .map_err(|e| e.to_string())?
        .connect_timeout(crate::cluster::DIAL_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    let (requests, rx) = mpsc::channel(4);
    let create = WatchCreateRequest {
        key: KEY_PREFIX.as_bytes().to_vec().into(),
        range_end: prefix_end().into_bytes().into(),
        start_revision,
        ..WatchCreateRequest::default()
    };
    requests
        .send(PbWatchRequest { request_union: Some(RequestUnion::CreateRequest(create)) })
        .await
        .map_err(|e| e.to_string())?;
    let opened = tokio::time::timeout(
        REQUEST_TIMEOUT,
        WatchClient::new(channel).watch(ReceiverStream::new(rx)),
    )
    .await
    .map_err(|_| "the watch was not opened in time".to_string())?
    .map_err(|e| e.to_string())?;
    Ok(RawStream { requests, responses: opened.into_inner() })
}

/// A watch kept open by hand across member failures: each time its stream breaks it is
/// opened again on the next member, from the revision after the last event received
/// (one time in [`REWIND_ONE_IN`] from revision 1, which a compaction has usually
/// removed by then: the server must cancel it with the compaction revision, and it is
/// opened again from there). Each opening is recorded as a stream of its own, so every
/// one is held to the guarantees with its own start revision (a server that replays
/// events before it shows).
async fn raw_watch_loop(
    id: u32,
    endpoints: Vec<String>,
    recorder: Recorder,
    mut rng: Rng,
    mut end: watch::Receiver<Option<i64>>,
) -> Vec<WatchStream> {
    let mut streams = Vec::new();
    let mut next_revision = 1;
    let mut reached = 0i64;
    let mut drain_deadline: Option<tokio::time::Instant> = None;
    for attempt in 0usize.. {
        let endpoint = &endpoints[(id as usize + attempt) % endpoints.len()];
        let rewind = attempt > 0 && end.borrow().is_none() && rng.below(REWIND_ONE_IN) == 0;
        let from = if rewind { 1 } else { next_revision };
        let mut stream = WatchStream::empty(id, KEY_PREFIX, from);
        if end.borrow().is_some() {
            let deadline =
                *drain_deadline.get_or_insert(tokio::time::Instant::now() + WATCH_DRAIN_TIMEOUT);
            if tokio::time::Instant::now() > deadline {
                // Every member serves at the end: one of them should have taken it.
                let mut missing = WatchStream::empty(id, KEY_PREFIX, next_revision);
                missing.ended_early = Some("no member took the watch again".into());
                streams.push(missing);
                return streams;
            }
        }
        let Ok(mut raw) = open_raw(endpoint, from).await else {
            // Nothing opened, nothing to check: try the next member after a while.
            tokio::time::sleep(REOPEN_BACKOFF).await;
            continue;
        };
        let mut progress = tokio::time::interval(PROGRESS_EVERY);
        loop {
            let target = *end.borrow();
            if let Some(target) = target {
                let deadline = *drain_deadline
                    .get_or_insert(tokio::time::Instant::now() + WATCH_DRAIN_TIMEOUT);
                if reached >= target || tokio::time::Instant::now() > deadline {
                    // Held to the end even if it did not get there: completeness says what
                    // is missing.
                    stream.reached = Some(target);
                    streams.push(stream);
                    return streams;
                }
            }
            tokio::select! {
                message = raw.responses.message() => match message {
                    Ok(Some(response)) if response.canceled && response.compact_revision > 0 => {
                        // Opened again from the compaction revision, as a new stream.
                        stream.compacted = Some(response.compact_revision);
                        next_revision = response.compact_revision;
                        break;
                    }
                    Ok(Some(response)) if response.created || response.canceled => {
                        if response.canceled {
                            stream.ended_early = Some(format!(
                                "canceled by {endpoint}: {}", response.cancel_reason
                            ));
                            streams.push(stream);
                            return streams;
                        }
                    }
                    Ok(Some(response)) => {
                        let response = watch_response(&recorder, &response);
                        reached = reached.max(response.header_revision);
                        if let Some(last) = response.events.last() {
                            reached = reached.max(last.revision);
                            next_revision = next_revision.max(last.revision + 1);
                        }
                        stream.responses.push(response);
                    }
                    // The member went away: open again elsewhere.
                    Ok(None) | Err(_) => break,
                },
                _ = progress.tick() => {
                    let request = PbWatchRequest {
                        request_union: Some(RequestUnion::ProgressRequest(WatchProgressRequest {})),
                    };
                    let _ = raw.requests.send(request).await;
                }
                _ = end.changed() => {}
            }
        }
        streams.push(stream);
        tokio::time::sleep(REOPEN_BACKOFF).await;
    }
    streams
}

/// Grants leases one after another, puts a key with each, keeps some alive a while,
/// revokes some, and lets the rest expire; records what bounds each lease's life.
async fn lease_loop(
    id: u32,
    client: Client,
    mut rng: Rng,
    recorder: Recorder,
    stop: watch::Receiver<bool>,
) -> Vec<LeaseRecord> {
    let mut leases = Vec::new();
    for n in 0u64.. {
        if *stop.borrow() {
            break;
        }
        let ttl = rng.between(LEASE_TTL.0, LEASE_TTL.1) as i64;
        let invoke = recorder.now();
        let Ok(granted) = client.lease_grant(ttl, 0).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let key = format!("{LEASE_PREFIX}{id}-{n}");
        let mut lease = LeaseRecord {
            id: granted.id,
            key: key.clone(),
            refreshed: vec![(invoke, granted.ttl)],
            revoke_invoked: None,
            gone_by: None,
        };
        let value = format!("l{id}-{n}");
        let request = Request::Put { key: key.clone(), value: value.clone() };
        let invoke = recorder.now();
        let options = oxetcd_client::PutOptions::new().with_lease(granted.id);
        let outcome = match client.put(key.as_str(), value.as_str(), Some(options)).await {
            Ok(r) => Outcome::Ok(Response::Put { revision: revision_of(r.header.as_ref()) }),
            Err(e) if never_sent(&e) => Outcome::Failed(e.to_string()),
            Err(e) => Outcome::Unknown(e.to_string()),
        };
        recorder.record(id, invoke, request, outcome);
        for _ in 0..rng.below(MAX_KEEP_ALIVES + 1) {
            tokio::time::sleep(Duration::from_millis(granted.ttl.max(1) as u64 * 1000 / 3)).await;
            let invoke = recorder.now();
            match client.lease_keep_alive_once(granted.id).await {
                Ok(r) if r.ttl > 0 => lease.refreshed.push((invoke, r.ttl)),
                Ok(_) => {
                    lease.gone_by = Some(recorder.now());
                    break;
                }
                Err(_) => {}
            }
        }
        if rng.below(4) == 0 {
            lease.revoke_invoked = Some(recorder.now());
            let _ = client.lease_revoke(granted.id).await;
        }
        leases.push(lease);
    }
    leases
}

/// The running workload.
pub struct Running {
    stop: watch::Sender<bool>,
    end: watch::Sender<Option<i64>>,
    clients: Vec<tokio::task::JoinHandle<()>>,
    watchers: Vec<tokio::task::JoinHandle<Vec<WatchStream>>>,
    leases: Option<tokio::task::JoinHandle<Vec<LeaseRecord>>>,
    compactor: Compactor,
    compactions: Option<tokio::task::JoinHandle<()>>,
}

/// Starts the clients and watchers; `recorder` gets every operation.
pub async fn start(
    endpoints: &[String],
    workload: &Workload,
    rng: &mut Rng,
    recorder: &Recorder,
) -> oxetcd_client::Result<Running> {
    let (stop, stop_rx) = watch::channel(false);
    let (end, end_rx) = watch::channel(None);
    let mut watchers = Vec::new();
    for id in 0..workload.watchers {
        let client = connect(endpoints).await?;
        // Half the watchers start from revision 1 (replaying history), half from now.
        let mut options = WatchOptions::new().with_range(prefix_end().as_str());
        if id % 2 == 0 {
            options = options.with_start_revision(1);
        }
        let watcher = client.watch(KEY_PREFIX, Some(options)).await?;
        let start_revision = if id % 2 == 0 { 1 } else { watcher.created_revision() + 1 };
        let stream = WatchStream::empty(id, KEY_PREFIX, start_revision);
        let recorder = recorder.clone();
        let end_rx = end_rx.clone();
        watchers.push(tokio::spawn(watch_loop(id, client, watcher, stream, recorder, end_rx)));
    }
    let mut leases = None;
    if workload.leases {
        // Its events' times bound when each lease key went.
        let id = workload.watchers + workload.raw_watchers;
        let client = connect(endpoints).await?;
        let options = WatchOptions::new().with_range(end_of(LEASE_PREFIX).as_str());
        let watcher = client.watch(LEASE_PREFIX, Some(options)).await?;
        let stream = WatchStream::empty(id, LEASE_PREFIX, watcher.created_revision() + 1);
        let (recorder_w, end_w) = (recorder.clone(), end_rx.clone());
        watchers.push(tokio::spawn(watch_loop(id, client, watcher, stream, recorder_w, end_w)));
        let client = connect(endpoints).await?;
        let task = lease_loop(id + 1, client, rng.fork(), recorder.clone(), stop_rx.clone());
        leases = Some(tokio::spawn(task));
    }
    for i in 0..workload.raw_watchers {
        let id = workload.watchers + i;
        watchers.push(tokio::spawn(raw_watch_loop(
            id,
            endpoints.to_vec(),
            recorder.clone(),
            rng.fork(),
            end_rx.clone(),
        )));
    }
    let compactor = Compactor::new(endpoints);
    let compaction_rng = rng.fork();
    let compactions = workload
        .compact
        .then(|| tokio::spawn(compactor.clone().run(compaction_rng, stop_rx.clone())));
    let mut clients = Vec::new();
    for id in 0..workload.clients {
        let client = connect(endpoints).await?;
        clients.push(tokio::spawn(client_loop(
            id,
            client,
            workload.clone(),
            rng.fork(),
            recorder.clone(),
            stop_rx.clone(),
        )));
    }
    Ok(Running { stop, end, clients, watchers, leases, compactor, compactions })
}

impl Running {
    /// The compactor, for faults that need a compaction now.
    pub fn compactor(&self) -> &Compactor {
        &self.compactor
    }

    /// Stops the clients and the compactions and waits for their last requests;
    /// returns the leases.
    pub async fn stop_clients(&mut self) -> Vec<LeaseRecord> {
        let _ = self.stop.send(true);
        for client in self.clients.drain(..) {
            let _ = client.await;
        }
        if let Some(compactions) = self.compactions.take() {
            let _ = compactions.await;
        }
        match self.leases.take() {
            Some(task) => task.await.unwrap_or_default(),
            None => Vec::new(),
        }
    }

    /// Lets the watchers run to `final_revision` and returns their streams.
    pub async fn finish_watches(self, final_revision: i64) -> Vec<WatchStream> {
        let _ = self.end.send(Some(final_revision));
        let mut streams = Vec::new();
        for watcher in self.watchers {
            if let Ok(opened) = watcher.await {
                streams.extend(opened);
            }
        }
        streams
    }
}

/// Reads every change the cluster committed from revision `from` to `to`, through a
/// watch on one member over the whole key space.
pub async fn committed_log(endpoint: &str, from: i64, to: i64) -> Result<Vec<WatchEvent>, String> {
    let client = crate::cluster::member_client(endpoint, REQUEST_TIMEOUT)
        .await
        .map_err(|e| format!("connect {endpoint}: {e}"))?;
    let options = WatchOptions::new().with_from_key().with_start_revision(from);
    let mut watcher = client.watch("\0", Some(options)).await.map_err(|e| e.to_string())?;
    let recorder = Recorder::default();
    let mut events = Vec::new();
    if to < from.max(2) {
        // A new cluster starts at revision 1 with nothing committed.
        return Ok(events);
    }
    let read = async {
        while events.last().is_none_or(|e: &WatchEvent| e.revision < to) {
            match watcher.message().await {
                Ok(Some(response)) => events.extend(watch_response(&recorder, &response).events),
                other => return Err(format!("the committed log's watch ended: {other:?}")),
            }
        }
        Ok(())
    };
    tokio::time::timeout(WATCH_DRAIN_TIMEOUT, read)
        .await
        .map_err(|_| format!("the committed log did not reach revision {to}"))??;
    // A revision's changes come in one response (atomic): none past `to` is cut in two.
    events.retain(|e| e.revision <= to);
    Ok(events)
}
