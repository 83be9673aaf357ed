//! The receiving side: the `oxetcdpb.Peer` service.

use std::sync::{Arc, Weak};

use oxetcd_api::etcdserverpb::{HashKvRequest, HashKvResponse};
use oxetcd_api::oxetcdpb::peer_server::Peer;
use oxetcd_api::oxetcdpb::{
    MembersRequest, MembersResponse, RaftBatch, SnapshotChunk, SnapshotReceived, StreamClosed,
};
use oxetcd_raft::{Message, MessageType};
use prost::Message as _;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, warn};

use crate::handler::HashKvError;
use crate::header::{CallIds, peer_urls};
use crate::shared::{HexId, Shared, next_or_stop};
use crate::snapshot;
use crate::stats::Stats;

/// The message of the status refusing a removed member, as etcd words it.
pub(crate) const REMOVED_MEMBER: &str = "the member has been permanently removed from the cluster";

/// The gRPC service receiving raft messages and snapshots from peers; mount it with
/// [`crate::Transport::service`].
pub struct PeerService {
    shared: Arc<Shared>,
    /// The transport, to add callers it does not know yet; weak, as the service lives
    /// in the listener, which must not keep the transport alive.
    transport: Weak<crate::Inner>,
}

impl PeerService {
    pub(crate) fn new(shared: Arc<Shared>, transport: Weak<crate::Inner>) -> Self {
        PeerService { shared, transport }
    }

    /// An admitted caller this member does not send to yet is added at the URLs its call
    /// carries (see [`crate::Transport::add_remote`]).
    fn learn_caller(&self, from: u64, metadata: &MetadataMap) {
        let urls = peer_urls(metadata);
        if urls.is_empty() {
            return;
        }
        if let Some(inner) = self.transport.upgrade() {
            crate::Transport { inner }.add_remote(from, urls);
        }
    }

    /// Checks an incoming call's headers; refuses (and logs) calls of another cluster,
    /// for another member, or from a removed member.
    fn admit(&self, metadata: &MetadataMap, call: &'static str) -> Result<CallIds, Status> {
        let result = self.check(metadata, call);
        if result.is_err() {
            Stats::add(&self.shared.stats.calls_refused, 1);
        }
        result
    }

    fn check(&self, metadata: &MetadataMap, call: &'static str) -> Result<CallIds, Status> {
        let config = &self.shared.config;
        let local = HexId(config.member_id);
        let ids = CallIds::parse(metadata).inspect_err(|status| {
            warn!(%local, call, error = %status.message(), "refused peer call with bad headers");
        })?;
        let remote = HexId(ids.from);
        if ids.cluster_id != config.cluster_id {
            warn!(
                %local, %remote, call,
                local_cluster = %HexId(config.cluster_id),
                remote_cluster = %HexId(ids.cluster_id),
                "refused peer call: request cluster ID mismatch"
            );
            return Err(Status::failed_precondition(format!(
                "request cluster ID mismatch: member {local} is in cluster {}, the request is from cluster {}",
                HexId(config.cluster_id),
                HexId(ids.cluster_id)
            )));
        }
        if ids.to != config.member_id {
            warn!(%local, %remote, call, target = %HexId(ids.to), "refused peer call: request member ID mismatch");
            return Err(Status::failed_precondition(format!(
                "request member ID mismatch: the request is for member {}, this is member {local}",
                HexId(ids.to)
            )));
        }
        self.refuse_removed(ids.from, call)?;
        Ok(ids)
    }

    fn refuse_removed(&self, from: u64, call: &'static str) -> Result<(), Status> {
        if !self.shared.handler.is_removed(from) {
            return Ok(());
        }
        warn!(local = %HexId(self.shared.config.member_id), remote = %HexId(from), call, "refused peer call from a removed member");
        Err(Status::permission_denied(REMOVED_MEMBER))
    }

    /// Decodes a batch and hands its messages to the handler, discarding (and logging)
    /// what is malformed or misaddressed.
    fn deliver(&self, from: u64, batch: RaftBatch) {
        let stats = &self.shared.stats;
        Stats::add(&stats.batches_received, 1);
        let mut refused = 0;
        for raw in batch.messages {
            Stats::add(&stats.bytes_received, raw.len() as u64);
            #[cfg(feature = "failpoints")]
            if crate::failpoints::drops(crate::failpoints::DROP_RECEIVE, from) {
                continue;
            }
            let msg = match decode(&raw, from, self.shared.config.member_id) {
                Ok(msg) => msg,
                Err(reason) => {
                    warn!(remote = %HexId(from), reason, "discarded raft message from peer");
                    Stats::add(&stats.messages_discarded, 1);
                    continue;
                }
            };
            match self.shared.handler.process(msg) {
                Ok(()) => Stats::add(&stats.messages_received, 1),
                Err(_) => refused += 1,
            }
        }
        if refused > 0 {
            Stats::add(&stats.messages_discarded, refused);
            warn!(
                remote = %HexId(from),
                count = refused,
                "dropped raft messages since the receiving queue is full (overloaded network)"
            );
        }
    }
}

/// Decodes one streamed raft message and checks it is one a peer may send on a stream
/// (snapshots have a call of their own).
fn decode(raw: &[u8], from: u64, local: u64) -> Result<Message, &'static str> {
    let msg = Message::decode(raw).map_err(|_| "malformed message")?;
    match MessageType::try_from(msg.msg_type) {
        Err(_) => Err("unknown message type"),
        Ok(
            MessageType::MsgHup
            | MessageType::MsgBeat
            | MessageType::MsgUnreachable
            | MessageType::MsgSnapStatus
            | MessageType::MsgCheckQuorum,
        ) => Err("local-only message type"),
        Ok(MessageType::MsgSnap) => Err("MsgSnap outside a snapshot transfer"),
        Ok(_) if msg.from != from => Err("sender does not match the stream's sender"),
        Ok(_) if msg.to != local => Err("addressed to another member"),
        Ok(_) => Ok(msg),
    }
}

#[tonic::async_trait]
impl Peer for PeerService {
    async fn stream(
        &self,
        request: Request<Streaming<RaftBatch>>,
    ) -> Result<Response<StreamClosed>, Status> {
        let ids = self.admit(request.metadata(), "stream")?;
        self.learn_caller(ids.from, request.metadata());
        let mut stopped = self.shared.stopped.subscribe();
        let mut incoming = request.into_inner();
        debug!(remote = %HexId(ids.from), "peer stream opened");
        loop {
            let batch = match next_or_stop(&mut incoming, &mut stopped).await {
                Ok(Some(batch)) => batch,
                Ok(None) => {
                    debug!(remote = %HexId(ids.from), "peer stream closed by the peer");
                    return Ok(Response::new(StreamClosed {}));
                }
                Err(status) => {
                    debug!(remote = %HexId(ids.from), error = %status, "peer stream ended");
                    return Err(status);
                }
            };
            self.refuse_removed(ids.from, "stream")?;
            self.deliver(ids.from, batch);
        }
    }

    async fn snapshot(
        &self,
        request: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<SnapshotReceived>, Status> {
        let ids = self.admit(request.metadata(), "snapshot")?;
        #[cfg(feature = "failpoints")]
        if crate::failpoints::drops(crate::failpoints::DROP_RECEIVE, ids.from) {
            return Err(Status::unavailable(format!(
                "dropped: failpoint {} names the sender",
                crate::failpoints::DROP_RECEIVE
            )));
        }
        self.learn_caller(ids.from, request.metadata());
        let stopped = self.shared.stopped.subscribe();
        snapshot::receive(&self.shared, ids.from, request.into_inner(), stopped)
            .await
            .map(Response::new)
    }

    /// Needs no ids: the caller is a member about to join, which knows neither its own
    /// nor the cluster's yet.
    async fn members(
        &self,
        _request: Request<MembersRequest>,
    ) -> Result<Response<MembersResponse>, Status> {
        if *self.shared.stopped.borrow() {
            return Err(Status::unavailable("the member's peer transport stopped"));
        }
        match self.shared.handler.members() {
            Some(members) => {
                debug!(members = members.members.len(), "answered a membership request");
                Ok(Response::new(members))
            }
            None => Err(Status::unavailable("the member has no membership to tell yet")),
        }
    }

    /// Checked like a stream (ids, cluster, removed members); the caller is not learned
    /// as a peer: a hash request is no reason to start sending raft messages to it.
    async fn hash_kv(
        &self,
        request: Request<HashKvRequest>,
    ) -> Result<Response<HashKvResponse>, Status> {
        let ids = self.admit(request.metadata(), "hash_kv")?;
        if *self.shared.stopped.borrow() {
            return Err(Status::unavailable("the member's peer transport stopped"));
        }
        let revision = request.into_inner().revision;
        let _slot = self
            .shared
            .hash_kv_slots
            .acquire()
            .await
            .map_err(|_| Status::unavailable("the member's peer transport stopped"))?;
        let handler = self.shared.handler.clone();
        // Hashing reads the whole key table: never on the transport's async threads.
        let answer = tokio::task::spawn_blocking(move || handler.hash_kv(revision))
            .await
            .map_err(|e| Status::internal(format!("computing the hash failed: {e}")))?;
        match answer {
            Ok(response) => {
                debug!(remote = %HexId(ids.from), revision, "answered a hash request");
                Ok(Response::new(response))
            }
            Err(error) => {
                warn!(remote = %HexId(ids.from), requested_revision = revision, %error, "failed to get hashKV");
                Err(hash_kv_status(&error))
            }
        }
    }
}

/// The status a refused `Peer.HashKV` call carries: etcd's gRPC code and message for a
/// compacted or future revision (`OUT_OF_RANGE`), `UNAVAILABLE` otherwise. The asking
/// side reads it back with [`hash_kv_error`].
pub(crate) fn hash_kv_status(error: &HashKvError) -> Status {
    match error {
        HashKvError::Compacted | HashKvError::FutureRevision => {
            Status::out_of_range(error.to_string())
        }
        HashKvError::Unavailable(reason) => Status::unavailable(reason.clone()),
    }
}

/// The refusal a `Peer.HashKV` status stands for (the inverse of [`hash_kv_status`]).
pub(crate) fn hash_kv_error(status: &Status) -> HashKvError {
    let compacted = HashKvError::Compacted.to_string();
    let future = HashKvError::FutureRevision.to_string();
    match status.code() {
        tonic::Code::OutOfRange if status.message() == compacted => HashKvError::Compacted,
        tonic::Code::OutOfRange if status.message() == future => HashKvError::FutureRevision,
        code => HashKvError::Unavailable(format!("{code:?}: {}", status.message())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(t: MessageType, from: u64, to: u64) -> Vec<u8> {
        let mut m = Message::new(t);
        m.from = from;
        m.to = to;
        m.encode_to_vec()
    }

    #[test]
    fn decode_accepts_network_messages() {
        let msg = decode(&encoded(MessageType::MsgApp, 2, 1), 2, 1).unwrap();
        assert_eq!(msg.msg_type, MessageType::MsgApp as i32);
    }

    #[test]
    fn decode_rejects_bad_input() {
        assert_eq!(decode(&[0xff, 0xff, 0xff], 2, 1).unwrap_err(), "malformed message");
        assert!(decode(&encoded(MessageType::MsgHup, 2, 1), 2, 1).is_err());
        assert!(decode(&encoded(MessageType::MsgSnap, 2, 1), 2, 1).is_err());
        assert!(decode(&encoded(MessageType::MsgApp, 3, 1), 2, 1).is_err());
        assert!(decode(&encoded(MessageType::MsgApp, 2, 4), 2, 1).is_err());
        let m = Message { msg_type: 99, from: 2, to: 1, ..Default::default() };
        assert_eq!(decode(&m.encode_to_vec(), 2, 1).unwrap_err(), "unknown message type");
    }
}
