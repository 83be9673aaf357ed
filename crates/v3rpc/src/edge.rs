//! The client port's request path. A gRPC call goes from tonic's connection straight to
//! its service, found by the name in its path, through one [`Edge`] that does what every
//! call meets; only other requests (the HTTP endpoints, the JSON gateway) go through
//! axum's router ([`ClientPort`]).
//!
//! Why not axum for gRPC too: routing each call through nested axum routers (the merged
//! HTTP routes, the gRPC routes, a middleware layer) cost about 20 heap allocations per
//! call, a quarter of a put's, as each level cloned a boxed service, matched the path
//! and stored extensions (`valgrind --tool=dhat`, issue #19). Here a call costs one
//! boxed future beyond the one tonic's generated service makes.

use std::convert::Infallible;
use std::future::ready;
use std::sync::Arc;
use std::task::{Context, Poll};

use oxetcd_api::etcdserverpb::auth_server::AuthServer;
use oxetcd_api::etcdserverpb::cluster_server::ClusterServer;
use oxetcd_api::etcdserverpb::kv_server::KvServer;
use oxetcd_api::etcdserverpb::lease_server::LeaseServer;
use oxetcd_api::etcdserverpb::maintenance_server::MaintenanceServer;
use oxetcd_api::etcdserverpb::watch_server::WatchServer;
use oxetcd_api::v3electionpb::election_server::ElectionServer;
use oxetcd_api::v3lockpb::lock_server::LockServer;
use oxetcd_etcdserver::{EtcdServer, ServerError};
use tonic::server::NamedService;
use tower_service::Service;

use crate::metrics::{self, Metrics};
use crate::{
    auth::AuthService, cluster::ClusterService, deadline, election::ElectionService, kv::KvService,
    lease::LeaseService, lock::LockService, maintenance::MaintenanceService, refusals, status,
    watch::WatchService,
};

pub(crate) type GrpcRequest = axum::http::Request<tonic::body::Body>;
pub(crate) type GrpcResponse = axum::http::Response<tonic::body::Body>;
/// What every generated tonic service answers with, and so what the edge answers with.
pub(crate) type Answer = tonic::codegen::BoxFuture<GrpcResponse, Infallible>;

/// One gRPC service of the client port.
type DynService =
    dyn Service<GrpcRequest, Response = GrpcResponse, Error = Infallible, Future = Answer> + Send;

/// A set of gRPC services, each found by its name (the `<service>` of
/// `/<service>/<method>`).
pub(crate) trait Services: Clone + Send + Sync + 'static {
    fn get(&mut self, name: &str) -> Option<&mut DynService>;
}

/// The services of `etcdserverpb`: what the Lock and Election recipes call in process.
#[derive(Clone)]
pub(crate) struct CoreServices {
    pub kv: KvServer<KvService>,
    pub maintenance: MaintenanceServer<MaintenanceService>,
    pub cluster: ClusterServer<ClusterService>,
    pub auth: AuthServer<AuthService>,
    pub lease: LeaseServer<LeaseService>,
    pub watch: WatchServer<WatchService>,
}

impl Services for CoreServices {
    fn get(&mut self, name: &str) -> Option<&mut DynService> {
        Some(match name {
            KvServer::<KvService>::NAME => &mut self.kv,
            MaintenanceServer::<MaintenanceService>::NAME => &mut self.maintenance,
            ClusterServer::<ClusterService>::NAME => &mut self.cluster,
            AuthServer::<AuthService>::NAME => &mut self.auth,
            LeaseServer::<LeaseService>::NAME => &mut self.lease,
            WatchServer::<WatchService>::NAME => &mut self.watch,
            _ => return None,
        })
    }
}

/// Every service a client port serves: the core ones, Lock and Election.
#[derive(Clone)]
pub(crate) struct ClientServices {
    pub core: CoreServices,
    pub lock: LockServer<LockService>,
    pub election: ElectionServer<ElectionService>,
}

impl Services for ClientServices {
    fn get(&mut self, name: &str) -> Option<&mut DynService> {
        match name {
            LockServer::<LockService>::NAME => Some(&mut self.lock),
            ElectionServer::<ElectionService>::NAME => Some(&mut self.election),
            _ => self.core.get(name),
        }
    }
}

/// The service name in a gRPC path, `/<service>/<method>`.
fn service_name(path: &str) -> Option<&str> {
    path.strip_prefix('/')?.split_once('/').map(|(service, _)| service)
}

/// `services` behind what every call meets before its handler: a learner's refusal of
/// what it does not serve, the arrival stamp for its deadline, etcd's wording for the
/// refusals tonic makes by itself, and the call's metrics if `counted`.
#[derive(Clone)]
pub(crate) struct Edge<S> {
    services: S,
    server: Arc<EtcdServer>,
    counted: Option<Arc<Metrics>>,
}

impl<S: Services> Edge<S> {
    pub fn new(services: S, server: Arc<EtcdServer>, counted: Option<Arc<Metrics>>) -> Edge<S> {
        Edge { services, server, counted }
    }

    /// Calls the service `request`'s path names, or gives `request` back if the set has
    /// none by that name (one lookup for both: the client port's dispatch).
    // The request goes back by value, as it came: boxing it would cost an allocation
    // on every call that is not gRPC.
    #[allow(clippy::result_large_err)]
    fn call_served(&mut self, mut request: GrpcRequest) -> Result<Answer, GrpcRequest> {
        let uri = request.uri().clone();
        let path = uri.path();
        let Some(service) = service_name(path).and_then(|name| self.services.get(name)) else {
            return Err(request);
        };
        if self.server.is_learner() && !served_by_learners(path) {
            return Ok(Box::pin(ready(
                Ok(status(ServerError::NotSupportedForLearner).into_http()),
            )));
        }
        deadline::stamp_arrival(&mut request);
        let counted =
            self.counted.as_ref().and_then(|m| metrics::Call::start(&m.grpc, &mut request));
        let answer = service.call(request);
        Ok(Box::pin(async move {
            let Ok(mut response) = answer.await;
            refusals::as_etcd(&mut response, uri.path());
            Ok(match counted {
                Some(call) => call.answered(response),
                None => response,
            })
        }))
    }
}

impl<S: Services> Service<GrpcRequest> for Edge<S> {
    type Response = GrpcResponse;
    type Error = Infallible;
    type Future = Answer;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // Every generated service is always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: GrpcRequest) -> Answer {
        self.call_served(request).unwrap_or_else(|request| {
            Box::pin(ready(Ok(status::unknown_service(request.uri().path()).into_http())))
        })
    }
}

/// What a learner serves (etcd's `isRPCSupportedForLearner`): Status, and Range, which
/// refuses linearizable reads by itself.
fn served_by_learners(path: &str) -> bool {
    matches!(path, "/etcdserverpb.Maintenance/Status" | "/etcdserverpb.KV/Range")
}

/// Everything a client listener serves: gRPC calls through the [`Edge`], every other
/// request through `http` (the HTTP endpoints, the JSON gateway, and the answer for a
/// path nothing serves).
#[derive(Clone)]
pub struct ClientPort {
    grpc: Edge<ClientServices>,
    http: axum::Router,
}

impl ClientPort {
    pub(crate) fn new(grpc: Edge<ClientServices>, http: axum::Router) -> ClientPort {
        ClientPort { grpc, http }
    }
}

impl Service<GrpcRequest> for ClientPort {
    type Response = GrpcResponse;
    type Error = Infallible;
    type Future = Answer;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // Both sides are always ready (axum's router is).
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: GrpcRequest) -> Answer {
        let request = match self.grpc.call_served(request) {
            Ok(answer) => return answer,
            Err(request) => request,
        };
        let answer = self.http.call(request);
        Box::pin(async move {
            let Ok(response) = answer.await;
            Ok(response.map(tonic::body::Body::new))
        })
    }
}
