//! The seam between the raft loop and the peer transport: the transport's callbacks
//! feed the raft loop's bounded inbox, and the raft loop's messages go out through the
//! transport.

use std::path::PathBuf;
use std::sync::{Arc, Weak};

use oxetcd_api::etcdserverpb::{HashKvResponse, ResponseHeader};
use oxetcd_api::oxetcdpb::MembersResponse;
use oxetcd_raft::{Message, SnapshotStatus};
use oxetcd_transport::{Dropped, HashKvError, RaftHandler, Transport};
use tokio::runtime::{Handle, Runtime};

use crate::id::Hex;
use crate::inbox::BoundedSender;
use crate::node::{Input, Outbox};
use crate::state::Shared;

/// The runtime that carries peer traffic (the transport's streams and the peer
/// listener) on a thread of its own. On the main runtime, replication would queue
/// behind client requests, and under load every commit's round trip would stretch
/// with the client backlog.
pub(crate) struct PeerRuntime(Option<Runtime>);

impl PeerRuntime {
    pub fn new() -> std::io::Result<PeerRuntime> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("oxetcd-peer")
            .enable_all()
            .build()?;
        Ok(PeerRuntime(Some(runtime)))
    }

    pub fn handle(&self) -> &Handle {
        self.0.as_ref().expect("the runtime lives until drop").handle()
    }
}

impl Drop for PeerRuntime {
    /// Without waiting: the server may be dropped on an async thread, where blocking
    /// on the runtime's tasks is not allowed.
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// What the transport calls into. Holds the server state weakly: the transport lives
/// inside the server and must not keep it alive.
pub(crate) struct RaftBridge {
    pub inbox: BoundedSender<Input>,
    pub shared: Weak<Shared>,
}

impl RaftHandler for RaftBridge {
    fn process(&self, msg: Message) -> Result<(), Dropped> {
        self.inbox.try_send(Input::Step(Box::new(msg))).map_err(|_| Dropped)
    }

    fn is_removed(&self, id: u64) -> bool {
        self.shared.upgrade().is_some_and(|s| s.membership().is_removed(id))
    }

    fn report_unreachable(&self, id: u64) {
        let _ = self.inbox.try_send(Input::Unreachable(id));
    }

    fn report_snapshot(&self, id: u64, status: SnapshotStatus) {
        let _ = self.inbox.try_send(Input::SnapshotStatus(id, status));
    }

    fn receive_snapshot(&self, msg: Message, db_path: PathBuf) {
        // The backend file waits under its index until raft accepts the snapshot and
        // the apply thread installs it.
        tracing::info!(from = %Hex(msg.from), path = %db_path.display(), "received snapshot");
        let _ = self.inbox.try_send(Input::Step(Box::new(msg)));
    }

    fn removed_by_peer(&self, by_peer: u64) {
        tracing::error!(peer = %Hex(by_peer), "this member was removed from the cluster");
        if let Some(shared) = self.shared.upgrade() {
            shared.stop_removed();
        }
    }

    fn members(&self) -> Option<MembersResponse> {
        let shared = self.shared.upgrade().filter(|s| !s.is_stopped())?;
        let members = shared.membership().members();
        Some(MembersResponse { cluster_id: shared.cluster_id, members })
    }

    /// Runs on the transport's blocking thread: reading the key table here holds up
    /// neither the raft loop nor apply (the store serves readers beside its writer).
    fn hash_kv(&self, revision: i64) -> Result<HashKvResponse, HashKvError> {
        let shared = self.shared.upgrade().filter(|s| !s.is_stopped());
        let shared = shared.ok_or_else(|| HashKvError::Unavailable("the member stopped".into()))?;
        let hashed = shared.store().hash_kv(revision).map_err(|e| match e {
            oxetcd_mvcc::Error::Compacted => HashKvError::Compacted,
            oxetcd_mvcc::Error::FutureRev => HashKvError::FutureRevision,
            other => HashKvError::Unavailable(other.to_string()),
        })?;
        let header = ResponseHeader {
            cluster_id: shared.cluster_id,
            member_id: shared.member_id,
            revision: hashed.current_rev,
            raft_term: shared.term.load(std::sync::atomic::Ordering::SeqCst),
        };
        Ok(HashKvResponse {
            header: Some(header),
            hash: hashed.hash,
            compact_revision: hashed.compact_rev,
            hash_revision: if revision == 0 { hashed.current_rev } else { revision },
        })
    }
}

/// The raft loop's outbox over the transport. Snapshots never come here: the raft
/// loop hands them to the apply thread, which ships the backend with them.
pub(crate) struct TransportOutbox {
    pub transport: Arc<Transport>,
}

impl Outbox for TransportOutbox {
    fn send(&self, msgs: Vec<Message>) {
        self.transport.send(msgs);
    }
}
