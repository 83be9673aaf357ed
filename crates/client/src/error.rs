//! The client's error type: etcd's gRPC errors, recognised by their message, and the
//! client's own failures (no endpoint reachable, timeouts, watch cancellations, the
//! concurrency recipes' conditions).

use tonic::{Code, Status};

/// A `Result` whose error is the client's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything an oxetcd-client call can fail with.
///
/// Errors the server answered keep the gRPC [`Status`]; the ones etcd defines (by their
/// message, which etcd's clients match on) are told apart by [`EtcdErrorKind`]:
///
/// ```
/// use oxetcd_client::{Error, EtcdErrorKind};
///
/// let status = tonic::Status::out_of_range("etcdserver: mvcc: required revision has been compacted");
/// let err = Error::from(status);
/// assert_eq!(err.etcd_kind(), Some(EtcdErrorKind::Compacted));
/// assert_eq!(err.code(), Some(tonic::Code::OutOfRange));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server answered with one of etcd's own errors.
    #[error("{}", status.message())]
    Etcd {
        /// Which of etcd's errors this is.
        kind: EtcdErrorKind,
        /// The status as the server sent it.
        status: Status,
    },
    /// Any other gRPC status (transport failures included: `Unavailable` when no
    /// connection could be made, `Unimplemented` for a service the server lacks…).
    #[error("grpc status {:?}: {}", status.code(), status.message())]
    Grpc {
        /// The status as the server (or the transport) produced it.
        status: Status,
    },
    /// An endpoint given to [`Client::connect`](crate::Client::connect) is not a valid
    /// `host:port` or `http://host:port`.
    #[error("invalid endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint {
        /// The endpoint as given.
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An argument the client checks before sending is invalid.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// No endpoint accepted a connection within the dial timeout.
    #[error("no endpoint reachable within the dial timeout ({endpoints}): {last_error}")]
    Unreachable {
        /// The endpoints tried, comma-separated.
        endpoints: String,
        /// The last connection error seen.
        last_error: String,
    },
    /// The request did not complete within the configured request timeout (all
    /// retries included).
    #[error("request timed out")]
    Timeout,
    /// A watch was asked to start at a revision that has been compacted away; events
    /// from `compact_revision` on are still available.
    #[error(
        "watch canceled: required revision has been compacted (compact revision {compact_revision})"
    )]
    WatchCompacted {
        /// The earliest revision the server still has.
        compact_revision: i64,
    },
    /// The server canceled a watch for a reason other than compaction.
    #[error("watch canceled by the server: {reason}")]
    WatchCanceled {
        /// The server's cancel reason (may be empty).
        reason: String,
    },
    /// The lease a keep-alive loop was renewing expired or no longer exists.
    #[error("lease {lease_id:x} expired or was revoked")]
    LeaseExpired {
        /// The lease's id.
        lease_id: i64,
    },
    /// A keep-alive loop could not renew its lease before the lease's deadline
    /// (every endpoint unreachable, or no response): the lease must be taken as expired.
    #[error("lease {lease_id:x} could not be renewed before its deadline: {last_error}")]
    LeaseKeepAliveTimeout {
        /// The lease's id.
        lease_id: i64,
        /// The last failure seen while trying.
        last_error: String,
    },
    /// A session's lease expired (or its key vanished) while a recipe depended on it.
    #[error("session expired")]
    SessionExpired,
    /// [`Mutex::try_lock`](crate::concurrency::Mutex::try_lock) found the lock held.
    #[error("mutex is locked by another session")]
    Locked,
    /// The election operation needs this candidate to be the leader, and it is not.
    #[error("election: not leader")]
    ElectionNotLeader,
    /// There is no leader in the election.
    #[error("election: no leader")]
    ElectionNoLeader,
    /// An STM transaction kept conflicting with concurrent writes.
    #[error("stm: transaction still conflicting after {attempts} attempts")]
    StmConflict {
        /// How many times it ran.
        attempts: u32,
    },
    /// The server's answer lacks something the protocol promises (a header, a
    /// response to a transaction operation…).
    #[error("malformed response: {0}")]
    MalformedResponse(&'static str),
    /// A background task or stream of the client has stopped.
    #[error("closed: {0}")]
    Closed(&'static str),
}

impl Error {
    /// The gRPC code, for errors the server (or transport) answered.
    pub fn code(&self) -> Option<Code> {
        self.status().map(Status::code)
    }

    /// The gRPC status, for errors the server (or transport) answered.
    pub fn status(&self) -> Option<&Status> {
        match self {
            Error::Etcd { status, .. } | Error::Grpc { status } => Some(status),
            _ => None,
        }
    }

    /// The error as a gRPC status: the server's own for errors it answered, a status
    /// with a fitting code for the client's (`DeadlineExceeded` for a timeout,
    /// `Unavailable` when no endpoint is reachable, …).
    pub fn into_status(self) -> Status {
        match self {
            Error::Etcd { status, .. } | Error::Grpc { status } => status,
            Error::Timeout => Status::deadline_exceeded(self.to_string()),
            Error::Unreachable { .. } | Error::LeaseKeepAliveTimeout { .. } => {
                Status::unavailable(self.to_string())
            }
            Error::InvalidEndpoint { .. } | Error::InvalidArgument(_) => {
                Status::invalid_argument(self.to_string())
            }
            Error::WatchCompacted { .. } => Status::out_of_range(self.to_string()),
            Error::WatchCanceled { .. } | Error::Closed(_) => Status::cancelled(self.to_string()),
            Error::LeaseExpired { .. } => Status::not_found(self.to_string()),
            Error::StmConflict { .. } => Status::aborted(self.to_string()),
            Error::MalformedResponse(_) => Status::internal(self.to_string()),
            Error::SessionExpired
            | Error::Locked
            | Error::ElectionNotLeader
            | Error::ElectionNoLeader => Status::failed_precondition(self.to_string()),
        }
    }

    /// Which of etcd's errors this is, if it is one of them. Watch compaction
    /// ([`Error::WatchCompacted`]) counts as [`EtcdErrorKind::Compacted`].
    pub fn etcd_kind(&self) -> Option<EtcdErrorKind> {
        match self {
            Error::Etcd { kind, .. } => Some(*kind),
            Error::WatchCompacted { .. } => Some(EtcdErrorKind::Compacted),
            _ => None,
        }
    }
}

impl From<Status> for Error {
    fn from(status: Status) -> Error {
        match EtcdErrorKind::from_message(status.message()) {
            Some(kind) => Error::Etcd { kind, status },
            None => Error::Grpc { status },
        }
    }
}

macro_rules! etcd_errors {
    ($($(#[$doc:meta])* $variant:ident => $message:literal,)*) => {
        /// etcd's errors, as its servers send them (the gRPC message is the contract:
        /// etcd's own clients recognise errors by it).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum EtcdErrorKind {
            $($(#[$doc])* $variant,)*
        }

        impl EtcdErrorKind {
            /// The message etcd sends with this error.
            pub fn message(self) -> &'static str {
                match self {
                    $(EtcdErrorKind::$variant => $message,)*
                }
            }

            /// The kind whose message is `message`, if any.
            pub fn from_message(message: &str) -> Option<EtcdErrorKind> {
                match message {
                    $($message => Some(EtcdErrorKind::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

etcd_errors! {
    /// A request without a key.
    EmptyKey => "etcdserver: key is not provided",
    /// The key does not exist (`ignore_value`/`ignore_lease` on a missing key).
    KeyNotFound => "etcdserver: key not found",
    /// `ignore_value` was set together with a value.
    ValueProvided => "etcdserver: value is provided",
    /// `ignore_lease` was set together with a lease.
    LeaseProvided => "etcdserver: lease is provided",
    /// A transaction with more operations than the server allows.
    TooManyOps => "etcdserver: too many operations in txn request",
    /// A transaction writing the same key twice.
    DuplicateKey => "etcdserver: duplicate key given in txn request",
    /// The requested revision has been compacted.
    Compacted => "etcdserver: mvcc: required revision has been compacted",
    /// The requested revision is ahead of the store.
    FutureRevision => "etcdserver: mvcc: required revision is a future revision",
    /// The backend quota is exhausted (a NOSPACE alarm is raised).
    NoSpace => "etcdserver: mvcc: database space exceeded",
    /// The lease does not exist (or has expired).
    LeaseNotFound => "etcdserver: requested lease not found",
    /// A lease with the requested id already exists.
    LeaseExist => "etcdserver: lease already exists",
    /// The requested lease TTL is above the server's maximum.
    LeaseTtlTooLarge => "etcdserver: too large lease TTL",
    /// The watch was canceled.
    WatchCanceled => "etcdserver: watch canceled",
    /// A member with this id already exists.
    MemberExist => "etcdserver: member ID already exist",
    /// A member already uses one of these peer URLs.
    PeerUrlExist => "etcdserver: Peer URLs already exists",
    /// The change would leave too few started members.
    MemberNotEnoughStarted => "etcdserver: re-configuration failed due to not enough started members",
    /// The member URLs are invalid.
    MemberBadUrls => "etcdserver: given member URLs are invalid",
    /// No member with this id.
    MemberNotFound => "etcdserver: member not found",
    /// Only learners can be promoted.
    MemberNotLearner => "etcdserver: can only promote a learner member",
    /// The learner is not caught up with the leader yet.
    LearnerNotReady => "etcdserver: can only promote a learner member which is in sync with leader",
    /// The cluster has as many learners as it allows.
    TooManyLearners => "etcdserver: too many learner members in cluster",
    /// The request is larger than the server accepts.
    RequestTooLarge => "etcdserver: request is too large",
    /// The server has too many pending proposals.
    TooManyRequests => "etcdserver: too many requests",
    /// Auth cannot be enabled without a root user.
    RootUserNotExist => "etcdserver: root user does not exist",
    /// The root user lacks the root role.
    RootRoleNotExist => "etcdserver: root user does not have root role",
    /// The user already exists.
    UserAlreadyExist => "etcdserver: user name already exists",
    /// The user name is empty.
    UserEmpty => "etcdserver: user name is empty",
    /// No such user.
    UserNotFound => "etcdserver: user name not found",
    /// The role already exists.
    RoleAlreadyExist => "etcdserver: role name already exists",
    /// No such role.
    RoleNotFound => "etcdserver: role name not found",
    /// The role name is empty.
    RoleEmpty => "etcdserver: role name is empty",
    /// Wrong user name or password.
    AuthFailed => "etcdserver: authentication failed, invalid user ID or password",
    /// The user may not do this.
    PermissionDenied => "etcdserver: permission denied",
    /// The role is not granted to the user.
    RoleNotGranted => "etcdserver: role is not granted to the user",
    /// The permission is not granted to the role.
    PermissionNotGranted => "etcdserver: permission is not granted to the role",
    /// Authentication is not enabled.
    AuthNotEnabled => "etcdserver: authentication is not enabled",
    /// The auth token is invalid or has expired (the client authenticates again).
    InvalidAuthToken => "etcdserver: invalid auth token",
    /// An invalid auth management request.
    InvalidAuthMgmt => "etcdserver: invalid auth management",
    /// The token predates a change of the auth store (the client authenticates again).
    AuthOldRevision => "etcdserver: revision of auth store is old",
    /// The member knows no leader.
    NoLeader => "etcdserver: no leader",
    /// The request needs the leader and this member is not.
    NotLeader => "etcdserver: not leader",
    /// The leader changed while the request was in flight.
    LeaderChanged => "etcdserver: leader changed",
    /// The cluster does not support this yet.
    NotCapable => "etcdserver: not capable",
    /// The member is stopping.
    Stopped => "etcdserver: server stopped",
    /// The request timed out inside the server (it may still be applied).
    RequestTimeout => "etcdserver: request timed out",
    /// The request timed out, possibly because the previous leader failed.
    TimeoutDueToLeaderFail => "etcdserver: request timed out, possibly due to previous leader failure",
    /// The request timed out, possibly because the connection to the leader was lost.
    TimeoutDueToConnectionLost => "etcdserver: request timed out, possibly due to connection lost",
    /// A linearizable read waited too long for the applied index.
    TimeoutWaitAppliedIndex => "etcdserver: request timed out, waiting for the applied index took too long",
    /// The cluster is unhealthy.
    Unhealthy => "etcdserver: unhealthy cluster",
    /// The cluster's data is corrupt.
    Corrupt => "etcdserver: corrupt cluster",
    /// A learner does not serve this request.
    NotSupportedForLearner => "etcdserver: rpc not supported for learner",
    /// The leader cannot be moved to that member.
    BadLeaderTransferee => "etcdserver: bad leader transferee",
}

/// A status as grpc-go writes one in an error's text (`rpc error: code = NotFound desc =
/// …`), which etcd's tools and server quote in their messages.
pub fn go_status_text(status: &Status) -> String {
    format!("rpc error: code = {} desc = {}", go_code_name(status.code()), status.message())
}

/// A gRPC code's name as grpc-go prints it (`codes.Code.String`).
fn go_code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_messages_map_to_kinds_and_keep_the_status() {
        let err = Error::from(Status::not_found("etcdserver: requested lease not found"));
        assert_eq!(err.etcd_kind(), Some(EtcdErrorKind::LeaseNotFound));
        assert_eq!(err.code(), Some(Code::NotFound));
        assert_eq!(err.to_string(), "etcdserver: requested lease not found");
        for kind in
            [EtcdErrorKind::Compacted, EtcdErrorKind::NoLeader, EtcdErrorKind::InvalidAuthToken]
        {
            assert_eq!(EtcdErrorKind::from_message(kind.message()), Some(kind));
        }
    }

    #[test]
    fn other_statuses_stay_plain_grpc_errors() {
        let err = Error::from(Status::unavailable("connection refused"));
        assert!(matches!(err, Error::Grpc { .. }));
        assert_eq!(err.etcd_kind(), None);
        assert_eq!(err.code(), Some(Code::Unavailable));
        assert_eq!(
            Error::WatchCompacted { compact_revision: 3 }.etcd_kind(),
            Some(EtcdErrorKind::Compacted)
        );
    }
}
