//! Watches that survive endpoint failures: each [`Watcher`] has a background task that
//! owns its gRPC stream and, when the stream breaks, opens a new one on another endpoint
//! starting at the revision after the last one delivered.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use oxetcd_api::etcdserverpb::watch_create_request::FilterType;
use oxetcd_api::etcdserverpb::watch_request::RequestUnion;
use oxetcd_api::etcdserverpb::{
    WatchCancelRequest, WatchCreateRequest, WatchProgressRequest, WatchRequest, WatchResponse,
};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

use crate::IntoBytes;
use crate::client::{Client, stream_retryable};
use crate::error::{Error, Result};
use crate::kv::{KeyRange, key_range_options};

/// Responses buffered between a watch's task and its [`Watcher`]; past it the task
/// stops reading, and HTTP/2 flow control slows the server down.
const WATCH_BUFFER: usize = 64;
/// The longest wait between two attempts to resume a broken watch.
const MAX_RESUME_BACKOFF: Duration = Duration::from_secs(2);

/// Options of [`Client::watch`].
///
/// ```
/// use oxetcd_client::WatchOptions;
///
/// let request = WatchOptions::new()
///     .with_prefix()
///     .with_start_revision(42)
///     .with_prev_kv()
///     .with_progress_notify()
///     .with_filter_delete()
///     .to_request("config/");
/// assert_eq!(request.range_end.as_ref(), b"config0");
/// assert_eq!(request.start_revision, 42);
/// assert_eq!(request.filters.len(), 1);
/// ```
#[derive(Debug, Clone, Default)]
pub struct WatchOptions {
    range: KeyRange,
    start_revision: i64,
    progress_notify: bool,
    no_put: bool,
    no_delete: bool,
    prev_kv: bool,
    fragment: bool,
}

impl WatchOptions {
    /// Only the key itself, from the next revision on.
    pub fn new() -> Self {
        Self::default()
    }

    key_range_options!();

    /// Deliver events from `revision` on (history included); 0 means "from now".
    pub fn with_start_revision(mut self, revision: i64) -> Self {
        self.start_revision = revision;
        self
    }

    /// Have the server send empty responses now and then when nothing changes, telling
    /// the revision the watch has reached.
    pub fn with_progress_notify(mut self) -> Self {
        self.progress_notify = true;
        self
    }

    /// Leave out put events.
    pub fn with_filter_put(mut self) -> Self {
        self.no_put = true;
        self
    }

    /// Leave out delete events.
    pub fn with_filter_delete(mut self) -> Self {
        self.no_delete = true;
        self
    }

    /// Include each event's previous key-value.
    pub fn with_prev_kv(mut self) -> Self {
        self.prev_kv = true;
        self
    }

    /// Let the server split large responses; the [`Watcher`] joins the fragments back
    /// together, so callers always see whole revisions.
    pub fn with_fragment(mut self) -> Self {
        self.fragment = true;
        self
    }

    /// The create request these options make for `key`.
    pub fn to_request(&self, key: impl IntoBytes) -> WatchCreateRequest {
        let key: Bytes = key.into_bytes();
        let mut filters = Vec::new();
        if self.no_put {
            filters.push(FilterType::Noput as i32);
        }
        if self.no_delete {
            filters.push(FilterType::Nodelete as i32);
        }
        let (key, range_end) = self.range.resolve(key);
        WatchCreateRequest {
            range_end,
            key,
            start_revision: self.start_revision,
            progress_notify: self.progress_notify,
            filters,
            prev_kv: self.prev_kv,
            watch_id: 0,
            fragment: self.fragment,
        }
    }
}

enum Command {
    Progress,
    Cancel(oneshot::Sender<()>),
}

/// A watch on a key or range: a stream of [`WatchResponse`]s, in revision order.
///
/// After a broken connection the watch resumes on another endpoint from the revision
/// after the last one delivered; no event is lost or repeated. Progress notifications
/// (responses without events) tell how far the watch has got. When the requested
/// start revision has been compacted, the stream yields [`Error::WatchCompacted`]
/// and ends. Dropping the watcher ends the watch.
///
/// ```no_run
/// # async fn example(client: oxetcd_client::Client) -> oxetcd_client::Result<()> {
/// use oxetcd_client::{EventType, WatchOptions};
///
/// let mut watcher = client.watch("jobs/", Some(WatchOptions::new().with_prefix().with_prev_kv())).await?;
/// while let Some(resp) = watcher.message().await? {
///     for event in &resp.events {
///         let kv = event.kv.as_ref().expect("events carry their key-value");
///         match event.r#type() {
///             EventType::Put => println!("put {:?} at {}", kv.key, kv.mod_revision),
///             EventType::Delete => println!("deleted {:?}", kv.key),
///         }
///     }
/// }
/// # Ok(())
/// # }
/// ```
pub struct Watcher {
    rx: mpsc::Receiver<Result<WatchResponse>>,
    commands: mpsc::Sender<Command>,
    watch_id: Arc<AtomicI64>,
    created_revision: i64,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("watch_id", &self.watch_id())
            .field("created_revision", &self.created_revision)
            .finish_non_exhaustive()
    }
}

impl Watcher {
    /// The next response: `Ok(None)` once the watch has been canceled, an error when
    /// the server ended it (compaction, permission) — the watch is over after either.
    pub async fn message(&mut self) -> Result<Option<WatchResponse>> {
        self.rx.recv().await.transpose()
    }

    /// The watch id the server gave (it changes when the watch resumes elsewhere).
    pub fn watch_id(&self) -> i64 {
        self.watch_id.load(Ordering::Relaxed)
    }

    /// The store's revision when the watch was created: with no start revision, events
    /// start after it.
    pub fn created_revision(&self) -> i64 {
        self.created_revision
    }

    /// Asks the server for a progress notification (a response without events whose
    /// header revision the watch has reached).
    pub async fn request_progress(&self) -> Result<()> {
        self.commands.send(Command::Progress).await.map_err(|_| Error::Closed("watch ended"))
    }

    /// Cancels the watch on the server and ends it.
    pub async fn cancel(self) -> Result<()> {
        let (done, wait) = oneshot::channel();
        if self.commands.send(Command::Cancel(done)).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(5), wait).await;
        }
        Ok(())
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl tokio_stream::Stream for Watcher {
    type Item = Result<WatchResponse>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

/// An open watch stream on one endpoint.
struct Opened {
    requests: mpsc::Sender<WatchRequest>,
    responses: Streaming<WatchResponse>,
    created: WatchResponse,
}

/// Why opening a watch failed, and whether trying another endpoint may help.
enum OpenError {
    Retry(Error),
    Fatal(Error),
}

fn create_message(create: WatchCreateRequest) -> WatchRequest {
    WatchRequest { request_union: Some(RequestUnion::CreateRequest(create)) }
}

/// The error a cancellation response carries, if it is not an answer to our own cancel.
fn cancel_error(resp: &WatchResponse) -> Option<Error> {
    if resp.compact_revision > 0 {
        Some(Error::WatchCompacted { compact_revision: resp.compact_revision })
    } else if !resp.cancel_reason.is_empty() {
        Some(Error::WatchCanceled { reason: resp.cancel_reason.clone() })
    } else {
        None
    }
}

async fn open(
    client: &Client,
    create: WatchCreateRequest,
) -> std::result::Result<Opened, OpenError> {
    let (i, conn) = client.pick();
    let (requests, rx) = mpsc::channel(8);
    requests
        .try_send(create_message(create))
        .map_err(|_| OpenError::Fatal(Error::Closed("watch request queue")))?;
    let call = conn.watch().watch(client.request(ReceiverStream::new(rx))).await;
    client.report(i, call.as_ref().err());
    let mut responses = match call {
        Ok(response) => response.into_inner(),
        Err(status) if stream_retryable(&status) => return Err(OpenError::Retry(status.into())),
        Err(status) => return Err(OpenError::Fatal(status.into())),
    };
    loop {
        match responses.message().await {
            Ok(Some(resp)) if resp.canceled => {
                let err =
                    cancel_error(&resp).unwrap_or(Error::WatchCanceled { reason: String::new() });
                return Err(OpenError::Fatal(err));
            }
            Ok(Some(resp)) if resp.created => {
                return Ok(Opened { requests, responses, created: resp });
            }
            // Nothing else comes before the creation is confirmed; skip it if it does.
            Ok(Some(_)) => continue,
            Ok(None) => {
                return Err(OpenError::Retry(Error::Closed("watch stream closed before creation")));
            }
            Err(status) if stream_retryable(&status) => {
                return Err(OpenError::Retry(status.into()));
            }
            Err(status) => return Err(OpenError::Fatal(status.into())),
        }
    }
}

impl Client {
    /// Watches a key, or a range of keys with [`WatchOptions`]. Returns once the server
    /// has created the watch: every change after [`Watcher::created_revision`] (or from
    /// the start revision) is delivered.
    ///
    /// When the start revision has been compacted, the watcher's first message is
    /// [`Error::WatchCompacted`] (some servers refuse the creation itself; then this
    /// call fails with it).
    pub async fn watch(
        &self,
        key: impl IntoBytes,
        options: Option<WatchOptions>,
    ) -> Result<Watcher> {
        let create = options.unwrap_or_default().to_request(key);
        let max_retries = self.options().max_retries();
        let establish = async {
            let mut attempt = 0;
            loop {
                match open(self, create.clone()).await {
                    Ok(opened) => return Ok(opened),
                    Err(OpenError::Fatal(e)) => return Err(e),
                    Err(OpenError::Retry(e)) => {
                        if attempt >= max_retries {
                            return Err(e);
                        }
                        attempt += 1;
                        tokio::time::sleep(self.backoff(attempt)).await;
                    }
                }
            }
        };
        // The request timeout bounds the creation (not the watch's life).
        let opened = match self.options().request_timeout() {
            Some(timeout) => {
                tokio::time::timeout(timeout, establish).await.unwrap_or(Err(Error::Timeout))?
            }
            None => establish.await?,
        };
        let created_revision = opened.created.header.as_ref().map_or(0, |h| h.revision);
        let next_revision =
            if create.start_revision > 0 { create.start_revision } else { created_revision + 1 };
        let watch_id = Arc::new(AtomicI64::new(opened.created.watch_id));
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        let (commands, command_rx) = mpsc::channel(8);
        let task = WatchTask {
            client: self.clone(),
            create,
            next_revision,
            tx,
            commands: command_rx,
            watch_id: watch_id.clone(),
        };
        let task = tokio::spawn(task.run(opened));
        Ok(Watcher { rx, commands, watch_id, created_revision, task })
    }
}

struct WatchTask {
    client: Client,
    create: WatchCreateRequest,
    /// The first revision not yet delivered: where a resumed watch starts.
    next_revision: i64,
    tx: mpsc::Sender<Result<WatchResponse>>,
    commands: mpsc::Receiver<Command>,
    watch_id: Arc<AtomicI64>,
}

/// How serving one stream ended.
enum Served {
    /// The watch is over (canceled, failed, or its watcher is gone).
    Done,
    /// The stream broke: resume elsewhere.
    Broken(String),
}

impl WatchTask {
    async fn run(mut self, mut opened: Opened) {
        let mut failures: u32 = 0;
        loop {
            self.watch_id.store(opened.created.watch_id, Ordering::Relaxed);
            let floor = self.next_revision;
            match self.serve(&mut opened, floor).await {
                Served::Done => return,
                Served::Broken(why) => {
                    tracing::debug!(reason = %why, next_revision = self.next_revision, "watch stream broke; resuming");
                }
            }
            // Open again, on the next endpoint, until it works or the watcher goes.
            loop {
                let wait = self.client.jittered(
                    (self
                        .client
                        .options_backoff()
                        .saturating_mul(2u32.saturating_pow(failures.min(10))))
                    .min(MAX_RESUME_BACKOFF),
                );
                failures = failures.saturating_add(1);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = self.tx.closed() => return,
                }
                let mut create = self.create.clone();
                create.start_revision = self.next_revision;
                let result = tokio::select! {
                    result = open(&self.client, create) => result,
                    _ = self.tx.closed() => return,
                };
                match result {
                    Ok(again) => {
                        opened = again;
                        failures = 0;
                        break;
                    }
                    Err(OpenError::Retry(e)) => {
                        tracing::debug!(error = %e, "watch resume failed; trying the next endpoint");
                    }
                    Err(OpenError::Fatal(e)) => {
                        let _ = self.tx.send(Err(e)).await;
                        return;
                    }
                }
            }
        }
    }

    async fn serve(&mut self, opened: &mut Opened, floor: i64) -> Served {
        // Fragments of one response, joined before delivery.
        let mut pending: Option<WatchResponse> = None;
        loop {
            tokio::select! {
                command = self.commands.recv() => match command {
                    None => return Served::Done,
                    Some(Command::Progress) => {
                        let progress = WatchRequest {
                            request_union: Some(RequestUnion::ProgressRequest(WatchProgressRequest {})),
                        };
                        let _ = opened.requests.try_send(progress);
                    }
                    Some(Command::Cancel(done)) => {
                        let cancel = WatchRequest {
                            request_union: Some(RequestUnion::CancelRequest(WatchCancelRequest {
                                watch_id: self.watch_id.load(Ordering::Relaxed),
                            })),
                        };
                        if opened.requests.send(cancel).await.is_ok() {
                            // Wait (briefly) for the server to confirm.
                            let confirm = async {
                                while let Ok(Some(resp)) = opened.responses.message().await {
                                    if resp.canceled {
                                        break;
                                    }
                                }
                            };
                            let _ = tokio::time::timeout(Duration::from_secs(1), confirm).await;
                        }
                        let _ = done.send(());
                        return Served::Done;
                    }
                },
                message = opened.responses.message() => match message {
                    Ok(Some(resp)) => {
                        if self.deliver(resp, &mut pending, floor).await {
                            return Served::Done;
                        }
                    }
                    Ok(None) => return Served::Broken("stream ended".into()),
                    Err(status) if stream_retryable(&status) => return Served::Broken(status.to_string()),
                    Err(status) => {
                        let _ = self.tx.send(Err(status.into())).await;
                        return Served::Done;
                    }
                },
                _ = self.tx.closed() => return Served::Done,
            }
        }
    }

    /// Handles one response; true when the watch is over.
    async fn deliver(
        &mut self,
        mut resp: WatchResponse,
        pending: &mut Option<WatchResponse>,
        floor: i64,
    ) -> bool {
        if resp.canceled {
            if let Some(err) = cancel_error(&resp) {
                let _ = self.tx.send(Err(err)).await;
            }
            return true;
        }
        if resp.created {
            return false;
        }
        if let Some(mut joined) = pending.take() {
            joined.events.append(&mut resp.events);
            joined.header = resp.header.take().or(joined.header);
            joined.fragment = resp.fragment;
            resp = joined;
        }
        if resp.fragment {
            *pending = Some(resp);
            return false;
        }
        let had_events = !resp.events.is_empty();
        // A resumed watch starts at `floor`; anything older was delivered already.
        resp.events.retain(|event| event.kv.as_ref().is_none_or(|kv| kv.mod_revision >= floor));
        if let Some(last) = resp.events.last().and_then(|e| e.kv.as_ref()) {
            self.next_revision = self.next_revision.max(last.mod_revision + 1);
        } else if had_events {
            return false;
        } else if let Some(header) = &resp.header {
            // A progress notification: nothing below its revision is left to deliver.
            self.next_revision = self.next_revision.max(header.revision + 1);
        }
        resp.fragment = false;
        self.tx.send(Ok(resp)).await.is_err()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxetcd_api::etcdserverpb::ResponseHeader;
    use oxetcd_api::mvccpb::{Event, KeyValue};

    fn event(rev: i64) -> Event {
        Event {
            kv: Some(KeyValue { mod_revision: rev, ..Default::default() }),
            ..Default::default()
        }
    }

    fn task() -> (WatchTask, mpsc::Receiver<Result<WatchResponse>>) {
        // A client is needed only for its type; the task never connects in these tests.
        let (tx, rx) = mpsc::channel(16);
        let (_commands, command_rx) = mpsc::channel(1);
        let client = Client::for_tests();
        let task = WatchTask {
            client,
            create: WatchCreateRequest::default(),
            next_revision: 5,
            tx,
            commands: command_rx,
            watch_id: Arc::new(AtomicI64::new(0)),
        };
        (task, rx)
    }

    #[tokio::test]
    async fn fragments_join_and_progress_advances_the_resume_point() {
        let (mut task, mut rx) = task();
        let mut pending = None;
        let first = WatchResponse {
            fragment: true,
            events: vec![event(5), event(5)],
            ..Default::default()
        };
        assert!(!task.deliver(first, &mut pending, 5).await);
        assert!(rx.try_recv().is_err());
        assert_eq!(task.next_revision, 5);
        let last = WatchResponse { events: vec![event(5)], ..Default::default() };
        assert!(!task.deliver(last, &mut pending, 5).await);
        assert_eq!(rx.try_recv().unwrap().unwrap().events.len(), 3);
        assert_eq!(task.next_revision, 6);

        let progress = WatchResponse {
            header: Some(ResponseHeader { revision: 9, ..Default::default() }),
            ..Default::default()
        };
        assert!(!task.deliver(progress, &mut pending, 5).await);
        assert!(rx.try_recv().unwrap().unwrap().events.is_empty());
        assert_eq!(task.next_revision, 10);

        // After a resume at 10, a repeated older event is dropped, not delivered.
        let stale = WatchResponse { events: vec![event(8)], ..Default::default() };
        assert!(!task.deliver(stale, &mut pending, 10).await);
        assert!(rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn compaction_ends_the_watch_with_an_error() {
        let (mut task, mut rx) = task();
        let resp = WatchResponse { canceled: true, compact_revision: 3, ..Default::default() };
        assert!(task.deliver(resp, &mut None, 1).await);
        assert!(matches!(
            rx.try_recv().unwrap(),
            Err(Error::WatchCompacted { compact_revision: 3 })
        ));
    }
}
