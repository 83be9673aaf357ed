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
    #[error("etcdserver: member ID already exist")]
    MemberExists,
    #[error("etcdserver: Peer URLs already exists")]
    PeerUrlExists,
    #[error("etcdserver: given member URLs are invalid")]
    MemberBadUrls,
    #[error("etcdserver: can only promote a learner member")]
    MemberNotLearner,
    #[error("etcdserver: can only promote a learner member which is in sync with leader")]
    LearnerNotReady,
    #[error("etcdserver: too many learner members in cluster")]
    TooManyLearners,
    #[error("etcdserver: re-configuration failed due to not enough started members")]
    NotEnoughStartedMembers,
    #[error("etcdserver: unhealthy cluster")]
    Unhealthy,
    #[error("etcdserver: not leader")]
    NotLeader,
    #[error("etcdserver: bad leader transferee")]
    BadLeaderTransferee,
    #[error("etcdserver: request timed out, leader transfer took too long")]
    LeaderTransferTimeout,
    #[error("etcdserver: rpc not supported for learner")]
    NotSupportedForLearner,
    /// Over `--quota-backend-bytes`, or refused while the NOSPACE alarm is active.
    #[error("etcdserver: mvcc: database space exceeded")]
    NoSpace,
    /// Refused while the CORRUPT alarm is active.
    #[error("etcdserver: corrupt cluster")]
    Corrupt,
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
/// and going on could acknowledge what is not durable or serve what was not applied.
/// Recorded once per member; the process exits non-zero on it, as etcd logs a fatal
/// line and exits.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{during}: {cause}")]
pub struct Fatal {
    /// What the member was doing, e.g. "saving raft entries to the WAL".
    pub during: &'static str,
    /// The failure, as the storage layer reported it.
    pub cause: String,
}

impl Fatal {
    pub(crate) fn new(during: &'static str, cause: impl std::fmt::Display) -> Fatal {
        Fatal { during, cause: cause.to_string() }
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
