//! The multi-version store behind oxetcd: revisions, key index, backend, compaction.
//! (Crate docs are completed below.)

pub mod backend;
pub mod compaction;
pub mod error;
pub mod hash;
pub mod index;
pub mod key_index;
pub mod lease;
pub mod read;
pub mod revision;
pub mod store;
mod sync;
pub mod txn;
pub mod validate;
pub mod write;

pub use backend::redb::RedbBackend;
pub use compaction::CompactionHandle;
pub use error::{Error, GrpcCode, Result};
pub use lease::{LeaseId, Lessor, NoLeases};
pub use revision::Revision;
pub use store::{ApplyIndex, HashKv, Store, StoreConfig, WriteResult};
