//! The server's errors, with etcd's gRPC codes and messages (etcd's `rpctypes`).

use tonic::{Code, Status};

/// Why a request failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ServerError {
    #[error("etcdserver: no leader")]
    NoLeader,
    #[error("etcdserver: request timed out")]
    Timeout,
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
    Lease(#[from] crate::lease::LeaseError),
    /// A failure inside the server that a client cannot fix (storage, a bug).
    #[error("etcdserver: {0}")]
    Internal(String),
}

impl From<ServerError> for Status {
    fn from(e: ServerError) -> Status {
        use oxetcd_mvcc::GrpcCode;
        let code = match &e {
            ServerError::NoLeader
            | ServerError::Timeout
            | ServerError::LeaderChanged
            | ServerError::Stopped => Code::Unavailable,
            ServerError::TooManyRequests => Code::ResourceExhausted,
            ServerError::RequestTooLarge => Code::InvalidArgument,
            ServerError::MemberNotFound => Code::NotFound,
            ServerError::Internal(_) => Code::Unknown,
            ServerError::Lease(lease) => match lease {
                crate::lease::LeaseError::NotFound => Code::NotFound,
                crate::lease::LeaseError::Exists => Code::FailedPrecondition,
                crate::lease::LeaseError::TtlTooLarge => Code::OutOfRange,
            },
            ServerError::Mvcc(m) => match m.grpc_code() {
                GrpcCode::InvalidArgument => Code::InvalidArgument,
                GrpcCode::NotFound => Code::NotFound,
                GrpcCode::OutOfRange => Code::OutOfRange,
                GrpcCode::Unknown => Code::Unknown,
            },
        };
        let message = match &e {
            ServerError::Mvcc(m) => m.grpc_message(),
            other => other.to_string(),
        };
        Status::new(code, message)
    }
}
