//! Peer transport between oxetcd members: etcd's rafthttp, over gRPC.
//!
//! A [`Transport`] moves raft messages and raft snapshots between the members of one
//! cluster, using the `oxetcdpb.Peer` service of `oxetcd-api`:
//!
//! * **Messages.** Each peer gets one long-lived outgoing `Peer.Stream` call, fed by a
//!   bounded per-peer queue ([`TransportConfig::queue_len`]). A writer task takes
//!   everything queued at that moment (up to [`TransportConfig::max_batch_messages`] and
//!   [`TransportConfig::max_batch_bytes`]) and sends it as one `RaftBatch`, without
//!   waiting for anything per message, so order per peer is preserved and throughput
//!   comes from pipelining. [`Transport::send`] never blocks or awaits: when a peer's
//!   queue is full the message is dropped and the peer reported unreachable, as etcd
//!   does; raft retransmits.
//! * **Snapshots.** [`Transport::send_snapshot`] opens a `Peer.Snapshot` call on a
//!   connection of its own (a large transfer never delays heartbeats), sends the
//!   encoded `MsgSnap`, then the backend file in chunks of
//!   [`TransportConfig::snapshot_chunk_bytes`], then a last chunk with the file's
//!   CRC32C. The receiver writes a temporary file in
//!   [`TransportConfig::snapshot_dir`], checks size and checksum, fsyncs it, renames it
//!   to `<index as 16 hex digits>.snap.db`, fsyncs the directory, and only then calls
//!   [`RaftHandler::receive_snapshot`]. A truncated or corrupt transfer leaves no file.
//! * **Incoming calls.** [`Transport::service`] is the gRPC service to mount on the
//!   member's peer listener. Every decoded message goes to [`RaftHandler::process`];
//!   malformed, misaddressed or local-only messages are logged and discarded, never a
//!   reason to close the stream. A caller this member does not send to yet (it is
//!   joining, or this member has not applied its addition) is added as a peer at the
//!   URLs its call carries (etcd's `addRemoteFromRequest`), unless it was removed with
//!   [`Transport::remove_peer`].
//! * **Membership.** `Peer.Members` answers [`RaftHandler::members`] (the cluster id
//!   and the applied members) to anyone, without ids: [`fetch_members`] is how a member
//!   started with `--initial-cluster-state existing` asks the running ones.
//! * **Hashes.** `Peer.HashKV` answers [`RaftHandler::hash_kv`] (computed on a blocking
//!   thread, at most two at a time) to a caller with this cluster's ids, as `Stream` is
//!   checked; [`Transport::hash_kv`] is the asking side, for the corruption checks. A
//!   compacted or future revision travels as `OUT_OF_RANGE` with etcd's message and comes
//!   back as [`HashKvError::Compacted`] or [`HashKvError::FutureRevision`].
//!
//! # Metadata
//!
//! Every stream and snapshot call carries three ASCII metadata entries, each a
//! lowercase hexadecimal id without prefix (as etcd prints ids): [`CLUSTER_ID_HEADER`]
//! (`x-oxetcd-cluster-id`), [`FROM_HEADER`] (`x-oxetcd-from`) and [`TO_HEADER`]
//! (`x-oxetcd-to`); and, when [`TransportConfig::peer_urls`] is set, the sender's peer
//! URLs, comma-separated, in [`PEER_URLS_HEADER`] (`x-oxetcd-peer-urls`). The
//! receiver refuses, with a `warn` log line naming both sides:
//!
//! * a missing or malformed header: `InvalidArgument`;
//! * another cluster's call: `FailedPrecondition`, "request cluster ID mismatch";
//! * a call meant for another member: `FailedPrecondition`, "request member ID
//!   mismatch";
//! * a call from a removed member ([`RaftHandler::is_removed`], checked when the call
//!   opens and again for every batch): `PermissionDenied`, "the member has been
//!   permanently removed from the cluster". The refused sender (of a stream or of a
//!   snapshot) logs an error and calls [`RaftHandler::removed_by_peer`]; the server
//!   stops on it, as etcd does.
//!
//! # Limits
//!
//! Everything is bounded: the per-peer queue, the batch size, the stream's in-flight
//! batches (a few), the gRPC message size ([`DEFAULT_MAX_MESSAGE_BYTES`], 64 MiB, set
//! explicitly on both client and server because tonic's 4 MiB default is below one
//! large append), the snapshot size ([`TransportConfig::max_snapshot_bytes`]). A single
//! raft message too large for one gRPC message is dropped and the peer reported
//! unreachable. Queues count messages, not bytes (as etcd's do): the memory a slow peer
//! can pin is bounded by raft itself, whose in-flight appends per follower are limited
//! (`max_inflight_msgs` × `max_size_per_msg`).
//!
//! # Reconnecting
//!
//! A writer dials the peer's URLs in turn (starting with the last that worked, each
//! with [`TransportConfig::dial_timeout`]). When no URL answers, or the stream ends or
//! fails, the peer is reported unreachable, becomes inactive ([`Transport::active_since`]
//! returns `None`), and the writer waits before the next attempt: 100 ms at first,
//! doubling up to 5 s ([`TransportConfig::backoff_min`], [`TransportConfig::backoff_max`]);
//! the delay is reset after a stream that lasted at least the maximum delay, and cut
//! short by [`Transport::update_peer`]. Messages sent while the writer waits between
//! attempts are dropped and reported (raft retransmits); while it dials they wait in the
//! queue. HTTP/2 keepalive pings ([`TransportConfig::keepalive_interval`],
//! [`TransportConfig::keepalive_timeout`]) detect a silently dead peer. A refused stream
//! (wrong cluster, removed member) is retried with the same backoff, so a fixed
//! configuration heals without a restart. Peer URLs are `http://` or `https://` (with
//! [`TransportConfig::tls`]), or unix sockets.
//!
//! # Mounting
//!
//! ```no_run
//! # async fn serve(transport: oxetcd_transport::Transport) -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! tonic::transport::Server::builder()
//!     // The accepting side pings too, so it drops dead senders' streams.
//!     .http2_keepalive_interval(Some(Duration::from_secs(1)))
//!     .http2_keepalive_timeout(Some(Duration::from_secs(5)))
//!     // Lets a busy stream grow its HTTP/2 window beyond the default.
//!     .http2_adaptive_window(Some(true))
//!     .add_service(transport.service())
//!     .serve("127.0.0.1:2380".parse()?)
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! [`Transport::stats`] counts batches, messages, bytes, drops, refusals and snapshots.
//!
//! # Failpoints
//!
//! With the `failpoints` feature (tests and the robustness harness only; without it none
//! of this is compiled): `rafthttp::snapshot-send` breaks a transfer off mid-file,
//! `rafthttp::snapshot-receive` fails the receiver's write of the file partway, and
//! `rafthttp::drop-send` / `rafthttp::drop-receive` drop the raft messages and snapshot
//! transfers to / from the peers their `return` argument names (hex member ids,
//! comma-separated; none: every peer), every connection up: a clean one-way partition,
//! or with a probability (`30%return`) random loss. Dropped messages are neither
//! reported nor counted, as on a lossy network.
//!
//! # Handler calls
//!
//! [`RaftHandler`] methods are called from the transport's tasks and from tonic's
//! request tasks, never from inside [`Transport::send`] or any other `Transport`
//! method, so the server may call the transport while holding its raft lock.

mod config;
mod dial;
#[cfg(feature = "failpoints")]
mod failpoints;
mod handler;
mod hashkv;
mod header;
mod members;
mod peer;
mod report;
mod server;
mod shared;
mod snapshot;
mod stats;

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use oxetcd_api::oxetcdpb::peer_server::PeerServer;
use oxetcd_raft::{Message, MessageType};
use tokio::runtime::Handle;
use tokio::task::JoinSet;
use tracing::{debug, error, info};

pub use config::{DEFAULT_MAX_MESSAGE_BYTES, TransportConfig};
pub use handler::{Dropped, HashKvError, RaftHandler};
pub use header::{CLUSTER_ID_HEADER, FROM_HEADER, PEER_URLS_HEADER, TO_HEADER};
pub use members::{FetchError, FetchOptions, fetch_members};
pub use server::PeerService;
pub use snapshot::received_snapshot_file;
pub use stats::TransportStats;

use peer::Peer;
use shared::{HexId, Shared};

/// The peer transport of one member. Cheap to clone: clones share everything.
#[derive(Clone)]
pub struct Transport {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    peers: Mutex<Peers>,
    /// The report task; aborted when the last clone is dropped.
    _tasks: JoinSet<()>,
}

/// The members this one sends to, and those it must not learn of again from their calls.
#[derive(Default)]
struct Peers {
    active: HashMap<u64, Peer>,
    /// Ids given to [`Transport::remove_peer`]: a call from one of them never adds it
    /// back as a remote.
    removed: HashSet<u64>,
}

impl Drop for Inner {
    /// The last clone is gone: incoming calls end as on [`Transport::stop`] (dropping the
    /// peers and tasks aborts the rest).
    fn drop(&mut self) {
        self.shared.stopped.send_replace(true);
    }
}

impl Transport {
    /// A transport for `config.member_id`, running its tasks on the current tokio
    /// runtime (it panics outside of one, like `tokio::spawn`). Leftover temporary files
    /// of interrupted snapshot transfers in the snapshot directory are removed.
    pub fn new(config: TransportConfig, handler: Arc<dyn RaftHandler>) -> Transport {
        let config = config.normalized();
        snapshot::remove_stale_temp_files(&config.snapshot_dir);
        let shared = Arc::new(Shared::new(config, handler, Handle::current()));
        let mut tasks = JoinSet::new();
        tasks.spawn_on(shared.reporter.clone().run(shared.handler.clone()), &shared.runtime);
        Transport { inner: Arc::new(Inner { shared, peers: Mutex::default(), _tasks: tasks }) }
    }

    fn peers(&self) -> MutexGuard<'_, Peers> {
        self.inner.peers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.inner.shared
    }

    fn is_stopped(&self) -> bool {
        *self.shared().stopped.borrow()
    }

    /// Starts sending to member `id` at `peer_urls`. Adding this member does nothing;
    /// adding a known peer only takes the given URLs if they differ (a peer first
    /// learned from its own call, see below, gets the URLs the log has for it).
    pub fn add_peer(&self, id: u64, peer_urls: Vec<String>) {
        if self.is_stopped() || id == self.shared().config.member_id {
            return;
        }
        let mut peers = self.peers();
        peers.removed.remove(&id);
        match peers.active.entry(id) {
            Entry::Occupied(known) => {
                if known.get().urls() == peer_urls {
                    debug!(peer = %HexId(id), "ignored adding a known peer");
                } else {
                    info!(peer = %HexId(id), urls = ?peer_urls, "updated remote peer URLs");
                    known.get().set_urls(peer_urls);
                }
            }
            Entry::Vacant(slot) => {
                info!(peer = %HexId(id), urls = ?peer_urls, "added remote peer");
                slot.insert(Peer::start(self.shared().clone(), id, peer_urls));
            }
        }
    }

    /// A member this one does not know called it with its peer URLs (etcd's
    /// `addRemoteFromRequest`): it is sent to at those URLs from now on, so a member
    /// that is joining, or that restarts before its log names the others, can answer
    /// the leader. Known peers, peers removed through [`Transport::remove_peer`] and
    /// this member are left alone.
    pub(crate) fn add_remote(&self, id: u64, peer_urls: Vec<String>) {
        if self.is_stopped() || id == self.shared().config.member_id || peer_urls.is_empty() {
            return;
        }
        let mut peers = self.peers();
        if peers.removed.contains(&id) {
            return;
        }
        if let Entry::Vacant(slot) = peers.active.entry(id) {
            info!(peer = %HexId(id), urls = ?peer_urls, "added remote peer from its call");
            slot.insert(Peer::start(self.shared().clone(), id, peer_urls));
        }
    }

    /// Replaces the URLs of peer `id`; they are used from the next connection attempt
    /// on (a waiting reconnection starts at once). Unknown peers are ignored.
    pub fn update_peer(&self, id: u64, peer_urls: Vec<String>) {
        match self.peers().active.get(&id) {
            Some(peer) => {
                info!(peer = %HexId(id), urls = ?peer_urls, "updated remote peer URLs");
                peer.set_urls(peer_urls);
            }
            None => debug!(peer = %HexId(id), "ignored updating an unknown peer"),
        }
    }

    /// Stops sending to peer `id`: its stream, queue and snapshot transfers end. A call
    /// from it does not add it back; only [`Transport::add_peer`] does.
    pub fn remove_peer(&self, id: u64) {
        let mut peers = self.peers();
        peers.removed.insert(id);
        let removed = peers.active.remove(&id);
        drop(peers);
        if removed.is_some() {
            info!(peer = %HexId(id), "removed remote peer");
        }
    }

    /// Queues each message for its peer (`msg.to`). Never blocks and never awaits: a
    /// full queue drops the message and the peer is reported unreachable. Messages to
    /// unknown peers are ignored. A `MsgSnap` must go through
    /// [`Transport::send_snapshot`]; one given here is refused and reported as a
    /// failed snapshot.
    pub fn send(&self, msgs: Vec<Message>) {
        if self.is_stopped() {
            return;
        }
        let shared = self.shared();
        let peers = self.peers();
        for msg in msgs {
            let to = msg.to;
            if msg.msg_type == MessageType::MsgSnap as i32 {
                error!(peer = %HexId(to), "refused a MsgSnap given to send(); snapshots need send_snapshot()");
                shared.reporter.snapshot_failed(to);
                continue;
            }
            #[cfg(feature = "failpoints")]
            if failpoints::drops(failpoints::DROP_SEND, to) {
                continue;
            }
            match peers.active.get(&to) {
                Some(peer) => peer.enqueue(shared, msg),
                None => debug!(peer = %HexId(to), "ignored message to an unknown peer"),
            }
        }
    }

    /// Sends the `MsgSnap` `msg` with the backend file `db` (prepared by the server,
    /// e.g. a consistent copy of the backend) to peer `msg.to`, in the background.
    /// The outcome is reported through [`RaftHandler::report_snapshot`] (and
    /// [`RaftHandler::report_unreachable`] on failure). `db` is read, never removed.
    pub fn send_snapshot(&self, msg: Message, db: PathBuf) {
        let to = msg.to;
        let shared = self.shared();
        let sent = !self.is_stopped()
            && self
                .peers()
                .active
                .get_mut(&to)
                .map(|peer| peer.send_snapshot(shared, msg, db))
                .is_some();
        if !sent {
            error!(peer = %HexId(to), "cannot send snapshot to an unknown peer");
            shared.reporter.snapshot_failed(to);
        }
    }

    /// The gRPC service to mount on this member's peer listener.
    pub fn service(&self) -> PeerServer<PeerService> {
        let max = self.shared().config.max_message_bytes;
        PeerServer::new(PeerService::new(self.shared().clone(), Arc::downgrade(&self.inner)))
            .max_decoding_message_size(max)
            .max_encoding_message_size(max)
    }

    /// When the stream to peer `id` was last established, or `None` while it is down
    /// (or the peer is unknown).
    pub fn active_since(&self, id: u64) -> Option<Instant> {
        self.peers().active.get(&id).and_then(Peer::active_since)
    }

    /// The transport's counters so far.
    pub fn stats(&self) -> TransportStats {
        self.shared().stats.snapshot()
    }

    /// Stops everything: outgoing streams and snapshot transfers are aborted, incoming
    /// calls end with `Unavailable`, and later calls to this transport do nothing.
    pub fn stop(&self) {
        self.shared().stopped.send_replace(true);
        let peers = std::mem::take(&mut self.peers().active);
        drop(peers);
    }
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("member_id", &HexId(self.shared().config.member_id))
            .field("cluster_id", &HexId(self.shared().config.cluster_id))
            .finish_non_exhaustive()
    }
}
