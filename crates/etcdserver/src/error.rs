//! Why a request failed, in the server's terms. `Display` is etcd's message for the same
//! failure; the gRPC code and wire message of each are decided in one place, the
//! services crate's `status` mapping (etcd's `rpctypes`).

use oxetcd_lease::LeaseError;

/// Why a request failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ServerError {
    #[error("etcdserver: no leader")]
    NoLeader,
    /// The server's own request timeout, or the client's deadline, passed while a
    /// proposal waited to be applied.
    #[error("etcdserver: request timed out")]
    Timeout,
    /// The client's deadline passed while a linearizable read waited (etcd answers with
    /// the context's error there).
    #[error("context deadline exceeded")]
    DeadlineExceeded,
    #[error("etcdserver: leader changed")]
    LeaderChanged,
    #[error("etcdserver: too many requests")]
    TooManyRequests,
    #[error("etcdserver: request is too large")]
    RequestTooLarge,
    #[error("etcdserver: server stopped")]
    Stopped,
    #[error("etcdserver: member not found")]
    MemberNotFound,
    #[error(transparent)]
    Mvcc(#[from] oxetcd_mvcc::Error),
    #[error(transparent)]
    Lease(#[from] LeaseError),
    /// A failure inside the server that a client cannot fix (storage, a bug).
    #[error("etcdserver: {0}")]
    Internal(String),
}
