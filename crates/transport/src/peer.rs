//! One remote member: its bounded queue, the writer task that streams the queue to it,
//! its connection status, and its snapshot transfers.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use bytes::Bytes;
use oxetcd_api::oxetcdpb::RaftBatch;
use oxetcd_raft::Message;
use prost::Message as _;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Status};
use tracing::{debug, error, info, warn};

use crate::config::{FRAME_OVERHEAD, TransportConfig};
use crate::dial::{Backoff, dial};
use crate::header::{CallIds, stamp_peer_urls};
use crate::server::REMOVED_MEMBER;
use crate::shared::{HexId, Shared};
use crate::snapshot;
use crate::stats::Stats;

/// Batches encoded but not yet taken by the HTTP/2 stream. Small on purpose: when the
/// network is slower than raft, messages should wait (and be dropped) in the peer
/// queue, where they are counted, not pile up here.
const IN_FLIGHT_BATCHES: usize = 2;

/// When the connection to a peer last became active (`None` while inactive).
#[derive(Debug, Default)]
struct PeerStatus {
    active_since: Mutex<Option<Instant>>,
}

impl PeerStatus {
    fn set(&self, value: Option<Instant>) {
        *self.active_since.lock().unwrap_or_else(PoisonError::into_inner) = value;
    }

    fn get(&self) -> Option<Instant> {
        *self.active_since.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A remote member, as the transport's peer map holds it. Dropping it aborts its tasks.
pub(crate) struct Peer {
    id: u64,
    queue: mpsc::Sender<Message>,
    urls: watch::Sender<Vec<String>>,
    status: Arc<PeerStatus>,
    /// Set while messages are being dropped, so a burst of drops logs once.
    dropping: AtomicBool,
    /// The writer and any snapshot transfers.
    tasks: JoinSet<()>,
}

impl Peer {
    /// Starts the writer task for peer `id`.
    pub fn start(shared: Arc<Shared>, id: u64, urls: Vec<String>) -> Peer {
        let (queue, queued) = mpsc::channel(shared.config.queue_len);
        let (urls, url_updates) = watch::channel(urls);
        let status = Arc::new(PeerStatus::default());
        let writer = Writer {
            batcher: Batcher::new(&shared.config),
            shared: shared.clone(),
            id,
            queued,
            urls: url_updates,
            status: status.clone(),
        };
        let mut tasks = JoinSet::new();
        tasks.spawn_on(writer.run(), &shared.runtime);
        Peer { id, queue, urls, status, dropping: AtomicBool::new(false), tasks }
    }

    /// Queues `msg` without waiting; a full queue drops it and reports the peer.
    pub fn enqueue(&self, shared: &Shared, msg: Message) {
        match self.queue.try_send(msg) {
            Ok(()) => self.dropping.store(false, Ordering::Relaxed),
            Err(TrySendError::Full(msg)) => {
                Stats::add(&shared.stats.messages_dropped, 1);
                shared.reporter.unreachable(self.id);
                if !self.dropping.swap(true, Ordering::Relaxed) {
                    warn!(
                        peer = %HexId(self.id),
                        msg_type = msg.msg_type,
                        queue_len = shared.config.queue_len,
                        "dropped internal raft message since the sending queue is full (overloaded network)"
                    );
                }
            }
            Err(TrySendError::Closed(_)) => {}
        }
    }

    pub fn set_urls(&self, urls: Vec<String>) {
        self.urls.send_replace(urls);
    }

    pub fn urls(&self) -> Vec<String> {
        self.urls.borrow().clone()
    }

    pub fn active_since(&self) -> Option<Instant> {
        self.status.get()
    }

    /// Starts a snapshot transfer to this peer.
    pub fn send_snapshot(&mut self, shared: &Arc<Shared>, msg: Message, db: PathBuf) {
        while self.tasks.try_join_next().is_some() {}
        let transfer = snapshot::send(shared.clone(), self.urls.subscribe(), msg, db);
        self.tasks.spawn_on(transfer, &shared.runtime);
    }
}

/// How one outgoing stream ended.
enum StreamEnd {
    /// The peer was removed or the transport stopped.
    QueueClosed,
    /// The call ended: the peer closed it, refused it, or the connection failed.
    Closed(Result<(), Status>),
}

/// The task that owns a peer's queue and streams it.
struct Writer {
    shared: Arc<Shared>,
    id: u64,
    queued: mpsc::Receiver<Message>,
    urls: watch::Receiver<Vec<String>>,
    status: Arc<PeerStatus>,
    batcher: Batcher,
}

impl Writer {
    async fn run(mut self) {
        let mut backoff = Backoff::new(&self.shared.config);
        let mut next_url = 0;
        // Whether a dial failure has been logged at warn level already.
        let mut dial_warned = false;
        // Whether the peer refused the last stream: the next one is logged quietly, as it
        // is most likely refused again (its refusal is logged).
        let mut refused = false;
        loop {
            let urls = self.urls.borrow_and_update().clone();
            match dial(&self.shared.config, &urls, &mut next_url).await {
                Ok(client) => {
                    let url = &urls[next_url];
                    let since = Instant::now();
                    self.status.set(Some(since));
                    if refused {
                        debug!(peer = %HexId(self.id), %url, "stream established again after a refusal");
                    } else {
                        info!(peer = %HexId(self.id), %url, "peer became active (stream established)");
                    }
                    let result = match self.stream(client).await {
                        StreamEnd::QueueClosed => return,
                        StreamEnd::Closed(result) => result,
                    };
                    self.status.set(None);
                    self.shared.reporter.unreachable(self.id);
                    refused = self.log_stream_end(url, result);
                    dial_warned = true;
                    if since.elapsed() >= backoff.max() {
                        backoff.reset();
                    }
                }
                Err(error) => {
                    self.shared.reporter.unreachable(self.id);
                    if dial_warned {
                        debug!(peer = %HexId(self.id), %error, "failed to dial peer");
                    } else {
                        warn!(peer = %HexId(self.id), %error, "failed to dial peer; retrying with backoff");
                        dial_warned = true;
                    }
                }
            }
            if !self.wait(backoff.next_delay()).await {
                return;
            }
        }
    }

    /// Logs why a stream ended; returns whether the peer refused it.
    fn log_stream_end(&self, url: &str, result: Result<(), Status>) -> bool {
        let peer = HexId(self.id);
        let status = match result {
            Ok(()) => {
                warn!(%peer, %url, "peer became inactive (the peer closed the stream)");
                return false;
            }
            Err(status) => status,
        };
        // The cause below tonic's summary ("transport error"), TLS alerts in Go's words.
        let error = match std::error::Error::source(&status) {
            Some(cause) => format!("{}: {}", status.message(), oxetcd_tls::describe(cause)),
            None => status.message().to_string(),
        };
        let code = status.code();
        match code {
            Code::PermissionDenied if status.message() == REMOVED_MEMBER => {
                error!(%peer, %url, %error, "peer refused this member: it was removed from the cluster");
                self.shared.handler.removed_by_peer(self.id);
                true
            }
            Code::PermissionDenied
            | Code::FailedPrecondition
            | Code::InvalidArgument
            | Code::Unimplemented => {
                warn!(%peer, %url, ?code, %error, "peer refused the stream");
                true
            }
            _ => {
                warn!(%peer, %url, ?code, %error, "peer became inactive (message send to peer failed)");
                false
            }
        }
    }

    /// Waits `delay` before the next connection attempt, dropping (and reporting) what
    /// is queued meanwhile. A URL update ends the wait early. Returns `false` when the
    /// queue is closed.
    async fn wait(&mut self, delay: std::time::Duration) -> bool {
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep => return true,
                // New URLs are worth trying at once; an error means the peer is gone.
                changed = self.urls.changed() => return changed.is_ok(),
                msg = self.queued.recv() => match msg {
                    Some(_) => {
                        Stats::add(&self.shared.stats.messages_dropped, 1);
                        self.shared.reporter.unreachable(self.id);
                    }
                    None => return false,
                },
            }
        }
    }

    /// Runs one `Peer.Stream` call until it ends.
    async fn stream(
        &mut self,
        mut client: oxetcd_api::oxetcdpb::peer_client::PeerClient<tonic::transport::Channel>,
    ) -> StreamEnd {
        let (batches, outgoing) = mpsc::channel(IN_FLIGHT_BATCHES);
        let mut request = tonic::Request::new(ReceiverStream::new(outgoing));
        let config = &self.shared.config;
        CallIds { cluster_id: config.cluster_id, from: config.member_id, to: self.id }
            .stamp(request.metadata_mut());
        stamp_peer_urls(request.metadata_mut(), &config.peer_urls);
        let call = client.stream(request);
        tokio::pin!(call);
        tokio::select! {
            result = &mut call => StreamEnd::Closed(result.map(drop)),
            pumped = pump(&self.shared, self.id, &mut self.queued, &mut self.batcher, &batches) => {
                if pumped {
                    // The stream stopped taking batches: the call is over; fetch its status.
                    let wait = self.shared.config.keepalive_timeout;
                    match tokio::time::timeout(wait, call).await {
                        Ok(result) => StreamEnd::Closed(result.map(drop)),
                        Err(_) => StreamEnd::Closed(Err(Status::unavailable("stream stalled"))),
                    }
                } else {
                    StreamEnd::QueueClosed
                }
            }
        }
    }
}

/// Moves batches from the queue into the stream. Returns `true` when the stream stopped
/// accepting them, `false` when the queue closed.
async fn pump(
    shared: &Shared,
    id: u64,
    queued: &mut mpsc::Receiver<Message>,
    batcher: &mut Batcher,
    batches: &mpsc::Sender<RaftBatch>,
) -> bool {
    loop {
        let Some(batch) = batcher.next_batch(shared, id, queued).await else {
            return false;
        };
        let count = batch.messages.len() as u64;
        let bytes: usize = batch.messages.iter().map(Bytes::len).sum();
        if batches.send(batch).await.is_err() {
            Stats::add(&shared.stats.messages_dropped, count);
            return true;
        }
        Stats::add(&shared.stats.batches_sent, 1);
        Stats::add(&shared.stats.messages_sent, count);
        Stats::add(&shared.stats.bytes_sent, bytes as u64);
    }
}

/// Groups queued messages into batches within the configured limits.
#[derive(Debug)]
struct Batcher {
    max_messages: usize,
    max_bytes: usize,
    max_message_bytes: usize,
    /// An encoded message that did not fit in the previous batch.
    carry: Option<Bytes>,
}

impl Batcher {
    fn new(config: &TransportConfig) -> Self {
        Batcher {
            max_messages: config.max_batch_messages,
            max_bytes: config.max_batch_bytes,
            max_message_bytes: config.max_message_bytes,
            carry: None,
        }
    }

    /// Waits for at least one message, then takes whatever else is already queued,
    /// within the limits. `None` when the queue is closed.
    async fn next_batch(
        &mut self,
        shared: &Shared,
        id: u64,
        queued: &mut mpsc::Receiver<Message>,
    ) -> Option<RaftBatch> {
        let mut messages = Vec::new();
        let mut size = 0;
        if let Some(carried) = self.carry.take() {
            size += carried.len() + FRAME_OVERHEAD;
            messages.push(carried);
        }
        while messages.is_empty() {
            let msg = queued.recv().await?;
            if let Some(encoded) = self.encode(shared, id, &msg) {
                size += encoded.len() + FRAME_OVERHEAD;
                messages.push(encoded);
            }
        }
        while messages.len() < self.max_messages {
            let Ok(msg) = queued.try_recv() else { break };
            let Some(encoded) = self.encode(shared, id, &msg) else { continue };
            let grown = size + encoded.len() + FRAME_OVERHEAD;
            if grown > self.max_bytes {
                self.carry = Some(encoded);
                break;
            }
            size = grown;
            messages.push(encoded);
        }
        Some(RaftBatch { messages })
    }

    /// The wire form of `msg`, or `None` (dropped, logged and reported) when it cannot
    /// fit in one gRPC message.
    fn encode(&self, shared: &Shared, id: u64, msg: &Message) -> Option<Bytes> {
        let encoded = Bytes::from(msg.encode_to_vec());
        if encoded.len() + FRAME_OVERHEAD <= self.max_message_bytes {
            return Some(encoded);
        }
        warn!(
            peer = %HexId(id),
            msg_type = msg.msg_type,
            size = encoded.len(),
            limit = self.max_message_bytes,
            "dropped raft message larger than the peer message size limit"
        );
        Stats::add(&shared.stats.messages_dropped, 1);
        shared.reporter.unreachable(id);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::testing;
    use oxetcd_raft::MessageType;
    use std::sync::atomic::Ordering::Relaxed;

    fn message(index: u64, payload: usize) -> Message {
        let mut m = Message::new(MessageType::MsgApp);
        m.index = index;
        m.context = Bytes::from(vec![7; payload]);
        m
    }

    /// Drains `msgs` through a batcher; returns the indexes of each batch.
    async fn batches(shared: &Shared, msgs: Vec<Message>) -> Vec<Vec<u64>> {
        let (tx, mut rx) = mpsc::channel(msgs.len().max(1));
        for m in msgs {
            tx.try_send(m).unwrap();
        }
        drop(tx);
        let mut batcher = Batcher::new(&shared.config);
        let mut out = Vec::new();
        while let Some(batch) = batcher.next_batch(shared, 2, &mut rx).await {
            let indexes = batch.messages.iter().map(|b| Message::decode(b.as_ref()).unwrap().index);
            out.push(indexes.collect());
        }
        out
    }

    #[tokio::test]
    async fn batches_are_limited_by_count() {
        let mut config = TransportConfig::new(1, 1, "/tmp");
        config.max_batch_messages = 3;
        let shared = testing::shared(config);
        let got = batches(&shared, (0..7).map(|i| message(i, 10)).collect()).await;
        assert_eq!(got, [vec![0, 1, 2], vec![3, 4, 5], vec![6]]);
    }

    #[tokio::test]
    async fn a_message_that_does_not_fit_opens_the_next_batch() {
        let mut config = TransportConfig::new(1, 1, "/tmp");
        let one = message(0, 1000).encoded_len() + FRAME_OVERHEAD;
        config.max_batch_bytes = 2 * one + 10;
        let shared = testing::shared(config);
        let got = batches(&shared, (0..5).map(|i| message(i, 1000)).collect()).await;
        assert_eq!(got, [vec![0, 1], vec![2, 3], vec![4]]);
    }

    #[tokio::test]
    async fn a_message_too_large_for_the_wire_is_dropped_and_counted() {
        let mut config = TransportConfig::new(1, 1, "/tmp");
        config.max_message_bytes = 64 * 1024;
        let shared = testing::shared(config);
        let msgs = vec![message(0, 10), message(1, 100 * 1024), message(2, 10)];
        let got = batches(&shared, msgs).await;
        assert_eq!(got, [vec![0, 2]]);
        assert_eq!(shared.stats.messages_dropped.load(Relaxed), 1);
    }

    #[test]
    fn peer_status_tracks_activity() {
        let status = PeerStatus::default();
        assert_eq!(status.get(), None);
        let now = Instant::now();
        status.set(Some(now));
        assert_eq!(status.get(), Some(now));
        status.set(None);
        assert_eq!(status.get(), None);
    }
}
