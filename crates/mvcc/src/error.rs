//! Errors, with etcd's messages.
//!
//! `Display` is the message of the matching error inside etcd (without the `etcdserver: `
//! prefix that etcd's gRPC layer adds). What goes on the wire (code and message) is the
//! services crate's business, decided in one place there.

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
