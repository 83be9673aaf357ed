//! The client-facing services: etcd's `v3rpc`. The gRPC services, the one mapping of
//! server errors to etcd's gRPC codes and messages ([`status`]), and the HTTP routes
//! served beside gRPC on the client port ([`http`]). Services that are not served yet
//! are not registered at all, so clients get gRPC `Unimplemented "unknown service …"`
//! for them, as from etcd for a service it does not know; docs/compatibility.md lists
//! them.

mod auth;
mod caller;
mod cluster;
mod deadline;
mod edge;
mod election;
mod gateway;
mod http;
mod kv;
mod leader;
mod lease;
mod local;
mod lock;
mod maintenance;
mod metrics;
mod refusals;
mod status;
mod watch;

use std::sync::Arc;

use oxetcd_api::etcdserverpb::{
    auth_server::AuthServer, cluster_server::ClusterServer, kv_server::KvServer,
    lease_server::LeaseServer, maintenance_server::MaintenanceServer, watch_server::WatchServer,
};
use oxetcd_api::v3electionpb::election_server::ElectionServer;
use oxetcd_api::v3lockpb::lock_server::LockServer;
use oxetcd_etcdserver::EtcdServer;

use edge::{ClientServices, CoreServices, Edge};

pub use edge::ClientPort;
pub use http::{HttpAccess, metrics_router};
pub use metrics::{Metrics, MetricsLevel};
pub use status::status;

/// Room etcd's gRPC server leaves above `--max-request-bytes` for framing
/// (`--max-request-bytes` + 512 KiB is its largest accepted message).
const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;

/// Largest gRPC message accepted.
fn max_message_bytes(server: &EtcdServer) -> usize {
    server.config().max_request_bytes + GRPC_OVERHEAD_BYTES
}

/// The JSON gateway on a client port (`--enable-grpc-gateway`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gateway {
    Off,
    /// Served, with at most `max_calls` calls in flight (`None`: no bound; the others
    /// wait): etcd's `--max-concurrent-streams` bounds its gateway so, since the gateway
    /// calls its gRPC server over one HTTP/2 connection.
    On {
        max_calls: Option<u32>,
    },
}

/// Every client service and the HTTP endpoints, to be served on one client listener;
/// gRPC calls are counted in `metrics`, which `/metrics` renders.
pub fn client_port(metrics: Arc<Metrics>, access: HttpAccess, gateway: Gateway) -> ClientPort {
    let server = metrics.server().clone();
    let limit = max_message_bytes(&server);
    let core = CoreServices {
        kv: KvServer::new(kv::KvService::new(server.clone()))
            .max_decoding_message_size(limit)
            .max_encoding_message_size(usize::MAX),
        maintenance: MaintenanceServer::new(maintenance::MaintenanceService::new(server.clone()))
            .max_decoding_message_size(limit),
        cluster: ClusterServer::new(cluster::ClusterService::new(server.clone()))
            .max_decoding_message_size(limit),
        auth: AuthServer::new(auth::AuthService::new(server.clone()))
            .max_decoding_message_size(limit),
        lease: LeaseServer::new(lease::LeaseService::new(server.clone()))
            .max_decoding_message_size(limit),
        watch: WatchServer::new(watch::WatchService::new(server.clone()))
            .max_decoding_message_size(limit)
            .max_encoding_message_size(usize::MAX),
    };
    // Lock and Election run their recipes over the core services, in process; those
    // calls are not counted, as etcd's v3client calls its server past the interceptors.
    let local = Arc::new(local::Local::new(Edge::new(core.clone(), server.clone(), None)));
    let services = ClientServices {
        core,
        lock: LockServer::new(lock::LockService::new(local.clone()))
            .max_decoding_message_size(limit),
        election: ElectionServer::new(election::ElectionService::new(local))
            .max_decoding_message_size(limit),
    };
    // The JSON gateway calls the gRPC services through the same edge, counted.
    let grpc = Edge::new(services, server, Some(metrics.clone()));
    let mut http = http::router(metrics, access.clone()).fallback(refusals::unknown_service);
    if let Gateway::On { max_calls } = gateway {
        http =
            http.merge(http::with_access(gateway::router(grpc.clone(), limit, max_calls), access));
    }
    ClientPort::new(grpc, http)
}

/// The reply when an applied request produced a result of the wrong kind: a bug.
fn unexpected(applied: oxetcd_etcdserver::Applied) -> tonic::Status {
    tonic::Status::internal(format!("etcdserver: unexpected apply result {applied:?}"))
}
