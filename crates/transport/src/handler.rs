//! The seam to the server: what the transport calls ([`RaftHandler`]).

use std::fmt;
use std::path::PathBuf;

use oxetcd_api::etcdserverpb::HashKvResponse;
use oxetcd_api::oxetcdpb::MembersResponse;
use oxetcd_raft::{Message, SnapshotStatus};

/// The server's receive queue was full: the message was not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dropped;

impl fmt::Display for Dropped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("raft message dropped: receive queue full")
    }
}

impl std::error::Error for Dropped {}

/// Why a `Peer.HashKV` call got no hash. `Display` is etcd's message for each (the asking
/// side tells a slow or compacted peer from a failure, as etcd's checks do).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HashKvError {
    /// The revision asked for is compacted on the answering member.
    #[error("etcdserver: mvcc: required revision has been compacted")]
    Compacted,
    /// The answering member has not reached the revision asked for yet.
    #[error("etcdserver: mvcc: required revision is a future revision")]
    FutureRevision,
    /// No answer: the peer is unreachable, stopped, refused the call, or failed.
    #[error("{0}")]
    Unavailable(String),
}

/// What the transport needs from the server. Every method must return quickly and must
/// not block: they run on the transport's tasks.
pub trait RaftHandler: Send + Sync + 'static {
    /// A raft message from a peer. Must not block (`Err` = the message is dropped).
    fn process(&self, msg: Message) -> Result<(), Dropped>;
    /// Whether `id` was removed from the cluster (its traffic is refused).
    fn is_removed(&self, id: u64) -> bool;
    /// Messages to `id` could not be delivered (raft then probes the peer).
    fn report_unreachable(&self, id: u64);
    /// The outcome of a [`Transport::send_snapshot`](crate::Transport::send_snapshot) to `id`.
    fn report_snapshot(&self, id: u64, status: SnapshotStatus);
    /// A `MsgSnap` arrived and its backend file was fully received, checksum-verified
    /// and fsynced at `db_path` (inside the snapshot directory); the server installs
    /// it and then steps `msg`.
    fn receive_snapshot(&self, msg: Message, db_path: PathBuf);
    /// Peer `by_peer` refused this member's traffic because this member was removed
    /// from the cluster (etcd stops the member when it learns this). Default: nothing.
    fn removed_by_peer(&self, by_peer: u64) {
        let _ = by_peer;
    }
    /// The cluster id and the members as this member has applied them, for a member
    /// about to join (`Peer.Members`); `None` while there is nothing to tell (the call
    /// is answered `Unavailable`). Default: `None`.
    fn members(&self) -> Option<MembersResponse> {
        None
    }
    /// The store's HashKV at `revision` (0: the current one) for `Peer.HashKV`, with the
    /// header's revision the store's current one. Unlike the other methods this one may
    /// block (it reads the whole key table): the transport calls it on a blocking thread,
    /// a bounded number at a time. Default: `Unavailable`.
    fn hash_kv(&self, revision: i64) -> Result<HashKvResponse, HashKvError> {
        let _ = revision;
        Err(HashKvError::Unavailable("this member does not serve HashKV".to_owned()))
    }
}
