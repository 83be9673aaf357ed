//! Errors, with etcd's messages and their gRPC mapping.
//!
//! `Display` is the message of the matching error inside etcd (without the `etcdserver: `
//! prefix that etcd's gRPC layer adds). [`Error::grpc_code`] and [`Error::grpc_message`] give
//! what etcd puts on the wire (from its `rpctypes`):
//!
//! | variant           | gRPC code          | gRPC message                                              |
//! |-------------------|--------------------|-----------------------------------------------------------|
//! | `Compacted`       | OUT_OF_RANGE       | `etcdserver: mvcc: required revision has been compacted`  |
//! | `FutureRev`       | OUT_OF_RANGE       | `etcdserver: mvcc: required revision is a future revision`|
//! | `EmptyKey`        | INVALID_ARGUMENT   | `etcdserver: key is not provided`                         |
//! | `KeyNotFound`     | INVALID_ARGUMENT   | `etcdserver: key not found`                               |
//! | `ValueProvided`   | INVALID_ARGUMENT   | `etcdserver: value is provided`                           |
//! | `LeaseProvided`   | INVALID_ARGUMENT   | `etcdserver: lease is provided`                           |
//! | `TooManyOps`      | INVALID_ARGUMENT   | `etcdserver: too many operations in txn request`          |
//! | `DuplicateKey`    | INVALID_ARGUMENT   | `etcdserver: duplicate key given in txn request`          |
//! | `RequestTooLarge` | INVALID_ARGUMENT   | `etcdserver: request is too large`                        |
//! | `LeaseNotFound`   | NOT_FOUND          | `etcdserver: requested lease not found`                   |
//! | `Backend`, `Corrupt`, `ReservedTable`, `Closed` | UNKNOWN | the `Display` text (etcd: unmapped errors → Unknown) |

/// gRPC status codes used by the mapping (numeric values as in the gRPC spec).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum GrpcCode {
    /// 2
    Unknown = 2,
    /// 3
    InvalidArgument = 3,
    /// 5
    NotFound = 5,
    /// 11
    OutOfRange = 11,
}

/// Everything the store can refuse or fail with.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Error {
    /// The asked revision is at or below the compacted revision.
    #[error("mvcc: required revision has been compacted")]
    Compacted,
    /// The asked revision is above the current revision.
    #[error("mvcc: required revision is a future revision")]
    FutureRev,
    /// A request or compare names the empty key.
    #[error("key is not provided")]
    EmptyKey,
    /// `ignore_value`/`ignore_lease` on a key that does not exist (or an empty request op).
    #[error("key not found")]
    KeyNotFound,
    /// `ignore_value` together with a value.
    #[error("value is provided")]
    ValueProvided,
    /// `ignore_lease` together with a lease.
    #[error("lease is provided")]
    LeaseProvided,
    /// More compares or ops in a txn than allowed.
    #[error("too many operations in txn request")]
    TooManyOps,
    /// A txn writes the same key twice (or puts and deletes it).
    #[error("duplicate key given in txn request")]
    DuplicateKey,
    /// The encoded request is above the size limit.
    #[error("request is too large")]
    RequestTooLarge,
    /// A put names a lease the lessor does not know.
    #[error("lease not found")]
    LeaseNotFound,
    /// The storage engine failed.
    #[error("mvcc: backend: {0}")]
    Backend(String),
    /// Stored data does not decode.
    #[error("mvcc: corrupt data: {0}")]
    Corrupt(String),
    /// An auxiliary table named like one of the store's own.
    #[error("mvcc: table {0:?} is reserved")]
    ReservedTable(String),
    /// The store is shut down.
    #[error("mvcc: store is closed")]
    Closed,
}

impl Error {
    /// The gRPC status code etcd answers this error with.
    pub fn grpc_code(&self) -> GrpcCode {
        match self {
            Self::Compacted | Self::FutureRev => GrpcCode::OutOfRange,
            Self::EmptyKey
            | Self::KeyNotFound
            | Self::ValueProvided
            | Self::LeaseProvided
            | Self::TooManyOps
            | Self::DuplicateKey
            | Self::RequestTooLarge => GrpcCode::InvalidArgument,
            Self::LeaseNotFound => GrpcCode::NotFound,
            Self::Backend(_) | Self::Corrupt(_) | Self::ReservedTable(_) | Self::Closed => {
                GrpcCode::Unknown
            }
        }
    }

    /// The gRPC status message etcd answers this error with.
    pub fn grpc_message(&self) -> String {
        match self {
            Self::LeaseNotFound => "etcdserver: requested lease not found".to_owned(),
            Self::Backend(_) | Self::Corrupt(_) | Self::ReservedTable(_) | Self::Closed => {
                self.to_string()
            }
            _ => format!("etcdserver: {self}"),
        }
    }
}

impl From<redb::Error> for Error {
    fn from(e: redb::Error) -> Self {
        Self::Backend(e.to_string())
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Self::Backend(e.to_string())
            }
        }
    )*};
}
from_redb!(
    redb::StorageError,
    redb::TableError,
    redb::TransactionError,
    redb::CommitError,
    redb::DatabaseError,
    redb::SetDurabilityError
);

impl From<prost::DecodeError> for Error {
    fn from(e: prost::DecodeError) -> Self {
        Self::Corrupt(e.to_string())
    }
}

/// The store's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_messages_match_etcd() {
        assert_eq!(
            Error::Compacted.grpc_message(),
            "etcdserver: mvcc: required revision has been compacted"
        );
        assert_eq!(
            Error::FutureRev.grpc_message(),
            "etcdserver: mvcc: required revision is a future revision"
        );
        assert_eq!(Error::EmptyKey.grpc_message(), "etcdserver: key is not provided");
        assert_eq!(
            Error::DuplicateKey.grpc_message(),
            "etcdserver: duplicate key given in txn request"
        );
        assert_eq!(Error::LeaseNotFound.grpc_message(), "etcdserver: requested lease not found");
        assert_eq!(Error::LeaseNotFound.grpc_code(), GrpcCode::NotFound);
        assert_eq!(Error::Compacted.grpc_code() as i32, 11);
    }
}
