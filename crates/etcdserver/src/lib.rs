//! The oxetcd server core: etcd's `etcdserver` package. It knows raft, the WAL, the
//! store and the peers; it knows nothing of gRPC services, flags or listeners.
//!
//! - [`config`]: [`ServerConfig`], the checked settings a member runs with.
//! - [`bootstrap`]: data-dir layout; a new member's bootstrap, a restart's recovery.
//! - `node`: the raft loop thread (tick, step, Ready → WAL → send → apply → advance).
//! - `apply`: the apply thread (committed entries → mvcc store, lessor, membership).
//! - [`server`]: [`EtcdServer`], the way in for requests: propose and linearizable reads.
//! - [`watch`]: the watchable store between apply and the Watch streams.
//! - [`membership`]: the cluster's members as the log has built them.

mod apply;
pub mod bootstrap;
pub mod config;
pub mod error;
pub mod id;
pub mod membership;
mod node;
mod peers;
pub mod server;
mod state;
mod wait;
pub mod watch;

pub use config::{InitialClusterState, ServerConfig};
pub use error::ServerError;
pub use server::{Applied, EtcdServer};
