//! A client for etcd's v3 API — etcd or oxetcd — in the manner of etcd's Go `clientv3`.
//!
//! - [`Client::connect`] takes several endpoints, goes round-robin over them and fails
//!   over when one is down. Reads and other idempotent calls are retried on
//!   `Unavailable`; writes only when they provably never left the client, so a write
//!   is never applied twice by the client's doing.
//! - Key-value: [`Client::get`], [`Client::put`], [`Client::delete`], [`Client::txn`]
//!   ([`Txn`], [`Compare`], [`TxnOp`]), [`Client::compact`].
//! - [`Client::watch`] returns a [`Watcher`] that resumes after a disconnect from the
//!   revision after the last one it delivered, on another endpoint: no event is lost
//!   or repeated.
//! - Leases: [`Client::lease_grant`] and friends, and [`Client::lease_keep_alive`], a
//!   background loop that renews a lease at a third of its TTL across failovers.
//! - [`Client::cluster`], [`Client::maintenance`], [`Client::auth`], and the server-side
//!   [`Client::lock`] and [`Client::election`] services.
//! - [`concurrency`]: [`Session`](concurrency::Session), [`Mutex`](concurrency::Mutex),
//!   [`Election`](concurrency::Election) and the software transactional memory
//!   [`run_stm`](concurrency::run_stm), built on KV, Lease and Watch as etcd's
//!   `clientv3/concurrency` is.
//!
//! Responses are etcd's protobuf messages, from [`proto`].
//!
//! ```no_run
//! use oxetcd_client::{Client, ClientOptions, GetOptions, WatchOptions};
//!
//! # async fn example() -> oxetcd_client::Result<()> {
//! let client = Client::connect(["127.0.0.1:2379"], ClientOptions::default()).await?;
//! let mut watcher = client.watch("jobs/", Some(WatchOptions::new().with_prefix())).await?;
//! client.put("jobs/1", "pending", None).await?;
//! if let Some(resp) = watcher.message().await? {
//!     for event in resp.events {
//!         println!("{:?}", event.kv.map(|kv| kv.key));
//!     }
//! }
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

pub mod auth;
mod client;
mod cluster;
pub mod concurrency;
mod error;
mod kv;
mod lease;
mod lock;
mod maintenance;
mod watch;

pub use auth::Auth;
pub use client::{Client, ClientOptions, TlsFiles};
pub use cluster::Cluster;
pub use error::{Error, EtcdErrorKind, Result, go_status_text};
pub use kv::{
    Compare, CompareOp, DeleteOptions, GetOptions, PutOptions, RangeStream, SortOrder, SortTarget,
    Txn, TxnOp, prefix_range_end,
};
pub use lease::LeaseKeepAlive;
pub use lock::{ElectionService, LockService};
pub use maintenance::{AlarmAction, AlarmType, Maintenance, SnapshotStream};
pub use watch::{WatchOptions, Watcher};

/// etcd's protobuf messages and gRPC stubs (re-exported from `oxetcd-api`).
pub use oxetcd_api as proto;
pub use oxetcd_api::etcdserverpb::ResponseHeader;
pub use oxetcd_api::mvccpb::{Event, KeyValue, event::EventType};

use bytes::Bytes;

/// Keys and values: anything that turns into [`Bytes`] (without a copy for owned
/// buffers).
///
/// ```
/// use oxetcd_client::IntoBytes;
///
/// fn key(k: impl IntoBytes) -> bytes::Bytes {
///     k.into_bytes()
/// }
/// assert_eq!(key("k"), key(String::from("k")));
/// assert_eq!(key(vec![1u8, 2]).as_ref(), &[1, 2]);
/// ```
pub trait IntoBytes {
    /// The bytes.
    fn into_bytes(self) -> Bytes;
}

impl IntoBytes for Bytes {
    fn into_bytes(self) -> Bytes {
        self
    }
}

impl IntoBytes for &Bytes {
    fn into_bytes(self) -> Bytes {
        self.clone()
    }
}

impl IntoBytes for Vec<u8> {
    fn into_bytes(self) -> Bytes {
        Bytes::from(self)
    }
}

impl IntoBytes for &Vec<u8> {
    fn into_bytes(self) -> Bytes {
        Bytes::copy_from_slice(self)
    }
}

impl IntoBytes for &[u8] {
    fn into_bytes(self) -> Bytes {
        Bytes::copy_from_slice(self)
    }
}

impl<const N: usize> IntoBytes for &[u8; N] {
    fn into_bytes(self) -> Bytes {
        Bytes::copy_from_slice(self)
    }
}

impl IntoBytes for String {
    fn into_bytes(self) -> Bytes {
        Bytes::from(self)
    }
}

impl IntoBytes for &String {
    fn into_bytes(self) -> Bytes {
        Bytes::copy_from_slice(self.as_bytes())
    }
}

impl IntoBytes for &str {
    fn into_bytes(self) -> Bytes {
        Bytes::copy_from_slice(self.as_bytes())
    }
}
