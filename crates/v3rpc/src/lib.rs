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
use tonic::service::Routes;

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
pub fn routes(metrics: Arc<Metrics>, access: HttpAccess, gateway: Gateway) -> Routes {
    let server = metrics.server().clone();
    let limit = max_message_bytes(&server);
    let grpc = Routes::new(
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
        AuthServer::new(auth::AuthService::new(server.clone())).max_decoding_message_size(limit),
    )
    .add_service(
        LeaseServer::new(lease::LeaseService::new(server.clone())).max_decoding_message_size(limit),
    )
    .add_service(
        WatchServer::new(watch::WatchService::new(server.clone()))
            .max_decoding_message_size(limit)
            .max_encoding_message_size(usize::MAX),
    );
    // Lock and Election run their recipes over the routes above, in process; those
    // calls are not counted, as etcd's v3client calls its server past the interceptors.
    let local = Arc::new(local::Local::new(Routes::from(with_edge(
        &server,
        None,
        grpc.clone().into_axum_router(),
    ))));
    let grpc = grpc
        .add_service(
            LockServer::new(lock::LockService::new(local.clone())).max_decoding_message_size(limit),
        )
        .add_service(
            ElectionServer::new(election::ElectionService::new(local))
                .max_decoding_message_size(limit),
        );
    // The gRPC routes with what every call meets; the JSON gateway calls them too.
    let grpc = with_edge(
        &server,
        Some(&metrics),
        grpc.into_axum_router().fallback(refusals::unknown_service),
    );
    let served = grpc.clone().merge(http::router(metrics, access.clone()));
    Routes::from(match gateway {
        Gateway::Off => served,
        Gateway::On { max_calls } => {
            served.merge(http::with_access(gateway::router(grpc, limit, max_calls), access))
        }
    })
}

/// `routes` behind [`edge`], their calls counted in `counted`'s metrics if given.
fn with_edge(
    server: &Arc<EtcdServer>,
    counted: Option<&Arc<Metrics>>,
    routes: axum::Router,
) -> axum::Router {
    let server = server.clone();
    let counted = counted.cloned();
    routes.layer(axum::middleware::from_fn(move |request, next| {
        edge(server.clone(), counted.clone(), request, next)
    }))
}

/// What every request meets before its handler, in one middleware (each one costs an
/// allocation per request): the arrival stamp for its deadline, a learner's refusal of
/// what it does not serve, the call's metrics, and etcd's wording for the refusals tonic
/// makes by itself.
async fn edge(
    server: Arc<EtcdServer>,
    counted: Option<Arc<Metrics>>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if server.is_learner() && !served_by_learners(request.uri().path()) {
        return status(oxetcd_etcdserver::ServerError::NotSupportedForLearner).into_http();
    }
    deadline::stamp_arrival(&mut request);
    match counted {
        Some(metrics) => {
            let next = async |request| refusals::as_etcd(request, next).await;
            metrics::observe(&metrics.grpc, request, next).await
        }
        None => refusals::as_etcd(request, next).await,
    }
}

/// What a learner serves (etcd's `isRPCSupportedForLearner`): Status, and Range, which
/// refuses linearizable reads by itself; and the HTTP endpoints (`/health`, `/version`).
fn served_by_learners(path: &str) -> bool {
    const GRPC_PREFIXES: [&str; 5] =
        ["/etcdserverpb.", "/v3lockpb.", "/v3electionpb.", "/grpc.", "/mvccpb."];
    matches!(path, "/etcdserverpb.Maintenance/Status" | "/etcdserverpb.KV/Range")
        || !GRPC_PREFIXES.iter().any(|prefix| path.starts_with(prefix))
}

/// The reply when an applied request produced a result of the wrong kind: a bug.
fn unexpected(applied: oxetcd_etcdserver::Applied) -> tonic::Status {
    tonic::Status::internal(format!("etcdserver: unexpected apply result {applied:?}"))
}
