//! Proxies in front of a cluster (etcd's `proxy/`):
//!
//! - [`tcpproxy`]: the L4 proxy that `oxetcd gateway start` runs; it copies bytes and
//!   knows nothing of what runs over them.
//! - [`grpcproxy`]: the gRPC proxy that `oxetcd grpc-proxy start` runs; it passes each
//!   gRPC call on to the cluster at the HTTP/2 level (path, metadata, message stream,
//!   status), reading only the messages' length prefixes, and serves `/metrics` and
//!   `/health`.

pub mod grpcproxy;
pub mod tcpproxy;
