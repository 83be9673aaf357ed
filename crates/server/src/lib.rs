//! The oxetcd server: etcd's `etcdserver`, `embed` and `v3rpc` packages in one crate.
//!
//! - [`config`]: etcd's flags, defaults and `ETCD_*` variables, checked up front.
//! - [`bootstrap`]: data-dir layout; a new member's bootstrap, a restart's recovery.
//! - [`node`]: the raft loop thread (tick, step, Ready → WAL → send → apply → advance).
//! - [`apply`]: the apply thread (committed entries → mvcc store, membership).
//! - [`server`]: `EtcdServer`, the way in for requests: propose and linearizable reads.
//! - [`v3rpc`]: the gRPC services; [`http`]: `/health`, `/version`.
//! - [`watch`]: the watchable store between apply and the Watch streams.
//! - [`embed`]: a running member with its listeners; used by `main` and by tests.

pub mod apply;
pub mod bootstrap;
pub mod config;
pub mod embed;
pub mod error;
pub mod http;
pub mod id;
pub mod lease;
pub mod logging;
pub mod membership;
pub mod node;
mod peers;
pub mod server;
pub mod state;
pub mod v3rpc;
pub mod wait;
pub mod watch;
