//! The client-facing gRPC services (etcd's v3rpc). Services that are not served yet
//! are not registered at all, so clients get gRPC `Unimplemented` for them;
//! docs/compatibility.md lists them.

mod cluster;
mod kv;
mod lease;
mod maintenance;
mod watch;

use std::sync::Arc;

use oxetcd_api::etcdserverpb::{
    cluster_server::ClusterServer, kv_server::KvServer, lease_server::LeaseServer,
    maintenance_server::MaintenanceServer, watch_server::WatchServer,
};
use tonic::service::Routes;

use crate::server::EtcdServer;

/// Largest gRPC message accepted: the request limit plus room for framing, as etcd
/// sizes its gRPC server (`--max-request-bytes` + 512 KiB).
fn max_message_bytes(server: &EtcdServer) -> usize {
    server.config().max_request_bytes + 512 * 1024
}

/// All client services, ready to be served beside the HTTP endpoints.
pub fn routes(server: Arc<EtcdServer>) -> Routes {
    let limit = max_message_bytes(&server);
    Routes::new(
        KvServer::new(kv::KvService::new(server.clone()))
            .max_decoding_message_size(limit)
            .max_encoding_message_size(usize::MAX),
    )
    .add_service(
        MaintenanceServer::new(maintenance::MaintenanceService::new(server.clone()))
            .max_decoding_message_size(limit),
    )
    .add_service(
        ClusterServer::new(cluster::ClusterService::new(server.clone()))
            .max_decoding_message_size(limit),
    )
    .add_service(
        LeaseServer::new(lease::LeaseService::new(server.clone())).max_decoding_message_size(limit),
    )
    .add_service(
        WatchServer::new(watch::WatchService::new(server))
            .max_decoding_message_size(limit)
            .max_encoding_message_size(usize::MAX),
    )
}

/// The reply when an applied request produced a result of the wrong kind: a bug.
fn unexpected(applied: crate::state::Applied) -> tonic::Status {
    tonic::Status::internal(format!("etcdserver: unexpected apply result {applied:?}"))
}
