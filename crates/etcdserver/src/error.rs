//! Why a request failed, in the server's terms. `Display` is etcd's message for the same
//! failure; the gRPC code and wire message of each are decided in one place, the
//! services crate's `status` mapping (etcd's `rpctypes`).

use oxetcd_auth::AuthError;
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
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// A failure inside the server that a client cannot fix (storage, a bug).
    #[error("etcdserver: {0}")]
    Internal(String),
}

/// Why a member stopped for good: its storage (WAL, backend, snapshot files) failed,
/// and going on could acknowledge what is not durable or serve what was not applied;
/// or the cluster removed it ([`Fatal::is_removal`]). Recorded once per member; the
/// process exits non-zero on it, as etcd logs a fatal line and exits.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{during}: {cause}")]
pub struct Fatal {
    /// What the member was doing, e.g. "saving raft entries to the WAL".
    pub during: &'static str,
    /// The failure, as the storage layer reported it.
    pub cause: String,
}

/// etcd's words for a member the cluster removed, in its log and in its peers' refusal.
pub const REMOVED_MEMBER: &str = "the member has been permanently removed from the cluster";

impl Fatal {
    pub(crate) fn new(during: &'static str, cause: impl std::fmt::Display) -> Fatal {
        Fatal { during, cause: cause.to_string() }
    }

    /// The stop of a member the cluster removed; `how` it learned it is the `during`.
    pub(crate) fn removed(how: &'static str) -> Fatal {
        Fatal { during: how, cause: REMOVED_MEMBER.to_owned() }
    }

    /// Whether this stop is a removal from the cluster rather than a storage failure.
    pub fn is_removal(&self) -> bool {
        self.cause == REMOVED_MEMBER
    }
}

impl ServerError {
    /// Whether the storage failed under a request, rather than the request being
    /// refused: a refusal is deterministic (every member refuses the same entry, and the
    /// log goes on), a storage failure is this member's alone and stops it.
    pub(crate) fn is_storage_failure(&self) -> bool {
        use oxetcd_mvcc::Error as Mvcc;
        matches!(self, ServerError::Mvcc(Mvcc::Backend(_) | Mvcc::Corrupt(_) | Mvcc::Closed))
    }
}
