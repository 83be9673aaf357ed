//! The `oxetcd` binary's library half: etcd's `etcdmain` and `embed`.
//!
//! - [`config`]: etcd's flags, defaults, `ETCD_*` variables and YAML file, checked up
//!   front into a [`config::Config`].
//! - [`logging`]: the log format and level.
//! - [`embed`]: a running member with its client and peer listeners; `main` runs one,
//!   tests run several in one process.
//! - [`gateway`]: `oxetcd gateway start`, etcd's L4 gateway (on `crates/proxy`).
//! - [`grpc_proxy`]: `oxetcd grpc-proxy start`, etcd's gRPC proxy (on `crates/proxy`).
//! - [`signal`]: SIGINT and SIGTERM, which stop either.

mod coalesce;
pub mod config;
mod connection;
pub mod embed;
pub mod gateway;
pub mod grpc_proxy;
pub mod logging;
mod serve;
pub mod signal;
