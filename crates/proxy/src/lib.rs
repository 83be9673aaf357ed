//! Proxies in front of a cluster (etcd's `proxy/`). One so far: [`tcpproxy`], the L4
//! proxy that `oxetcd gateway start` runs. etcd's gRPC proxy (`grpc-proxy`) is not built.

pub mod tcpproxy;
