//! etcd's gRPC proxy (`proxy/grpcproxy`, run by `oxetcd grpc-proxy start`): a gRPC server
//! whose every call is passed on to the cluster, and the plain HTTP `/metrics` and
//! `/health` beside it.
//!
//! [`GrpcProxy`] is a service over HTTP requests. A gRPC call (any service, any method:
//! KV, Watch, Lease, Cluster, Maintenance, Auth, Lock, Election) goes to one of the
//! cluster's endpoints as it came: path, headers (the auth `token` and every other
//! metadata), and its body streamed both ways, frame by frame, with the answer's headers
//! and trailers (gRPC status and message) passed back unchanged. Unary and streaming calls
//! are alike to it. Messages are never decoded; their length prefixes are read to enforce
//! etcd's limits (`frames`). Which endpoint, and what happens when one is down:
//! `upstream`. `/metrics` and `/health`: `http`.
//!
//! What etcd's proxy does that this one does not (it would have to decode and answer
//! calls itself): the cache of serializable ranges, coalescing identical watchers onto one
//! watch, fanning lease keep-alives in onto one stream, key namespacing (`--namespace`),
//! and registering itself under `--resolver-prefix`.
//!
//! One call is answered by the proxy itself, as etcd's does: `Cluster.MemberList`, with
//! the proxy as the only member (`cluster`), unless `--advertise-client-url` is empty.
//!
//! Bounds: the listener's HTTP/2 settings bound the calls per client connection
//! (`--max-concurrent-streams`); calls share one HTTP/2 connection per endpoint, whose
//! flow control bounds what is buffered for each; a call waiting for a stream on an
//! endpoint that limits them is one the proxy's own stream limit admitted.

mod cluster;
mod frames;
mod http;
mod upstream;

use std::convert::Infallible;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use hyper::http::{Request, Response};
use tonic::body::Body;
use tower_service::Service;

use frames::{MessageLimit, Metered, OnRefusal, SizeCheck};
pub use upstream::DIAL_TIMEOUT;
use upstream::Upstreams;

/// `--max-send-bytes`' default: the largest request message the proxy sends on (etcd's
/// `defaultGRPCMaxCallSendMsgSize`, 1.5 MiB, etcdmain/grpc_proxy.go).
pub const DEFAULT_MAX_SEND_BYTES: usize = 3 * 512 * 1024;
/// `--max-recv-bytes`' default: the largest response message it takes from the cluster
/// (`math.MaxInt32`, etcdmain/grpc_proxy.go).
pub const DEFAULT_MAX_RECV_BYTES: usize = i32::MAX as usize;
/// The send limit when `--max-send-bytes` is not positive (clientv3's
/// `defaultMaxCallSendMsgSize`, 2 MiB, clientv3/options.go).
pub const CLIENT_DEFAULT_MAX_SEND_BYTES: usize = 2 * 1024 * 1024;
/// The largest request message the proxy's gRPC server takes whatever `--max-send-bytes`
/// says (grpc-go's `defaultServerMaxReceiveMessageSize`, 4 MiB; etcd's proxy sets none).
const SERVER_MAX_RECV_BYTES: usize = 4 * 1024 * 1024;
/// The largest response message the proxy's gRPC server sends (grpc-go's
/// `defaultServerMaxSendMessageSize`, `math.MaxInt32`).
const SERVER_MAX_SEND_BYTES: usize = i32::MAX as usize;

/// What the proxy is built from.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// The cluster's client endpoints: `host:port` or URLs (`http`, `https`, `unix`,
    /// `unixs`); `host:port` is dialed with TLS when `tls` is given.
    pub endpoints: Vec<String>,
    /// TLS for dialing the cluster (`--cert`, `--key`, `--cacert`,
    /// `--insecure-skip-tls-verify`).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// The largest request message sent to the cluster (`--max-send-bytes`).
    pub max_send_bytes: usize,
    /// The largest response message taken from the cluster (`--max-recv-bytes`).
    pub max_recv_bytes: usize,
    /// The client URL MemberList answers with (`--advertise-client-url`); empty: the
    /// cluster answers MemberList.
    pub advertise_client_url: String,
}

/// The proxy as a service over HTTP requests: gRPC calls go to the cluster, anything else
/// to the HTTP endpoints. Cheap to clone.
#[derive(Clone)]
pub struct GrpcProxy {
    shared: Arc<Shared>,
    /// Whether gRPC calls are served (not on the `--metrics-addr` listener).
    serves_grpc: bool,
}

struct Shared {
    upstreams: Upstreams,
    /// The proxy's own MemberList answer, if it gives one.
    member_list: Option<bytes::Bytes>,
    requests: MessageLimit,
    responses: MessageLimit,
}

impl GrpcProxy {
    /// A proxy to `config.endpoints`. Errors: no endpoint, or one that is no URL or
    /// `host:port`, or an `https` one with no TLS to dial it.
    pub fn new(config: ProxyConfig) -> Result<GrpcProxy, String> {
        let tls = config.tls.is_some();
        let endpoints = config
            .endpoints
            .iter()
            .filter(|e| !e.is_empty())
            .map(|e| upstream::endpoint_url(e, tls))
            .collect::<Result<Vec<_>, _>>()?;
        if endpoints.is_empty() {
            return Err("no endpoints given".into());
        }
        let requests = MessageLimit([
            SizeCheck {
                max: SERVER_MAX_RECV_BYTES,
                refusal: "grpc: received message larger than max",
            },
            SizeCheck {
                max: config.max_send_bytes,
                refusal: "trying to send message larger than max",
            },
        ]);
        let responses = MessageLimit([
            SizeCheck {
                max: config.max_recv_bytes,
                refusal: "grpc: received message larger than max",
            },
            SizeCheck {
                max: SERVER_MAX_SEND_BYTES,
                refusal: "grpc: trying to send message larger than max",
            },
        ]);
        let member_list = (!config.advertise_client_url.is_empty())
            .then(|| cluster::member_list_message(&config.advertise_client_url));
        let upstreams = Upstreams::new(endpoints, config.tls);
        let shared = Shared { upstreams, member_list, requests, responses };
        Ok(GrpcProxy { shared: Arc::new(shared), serves_grpc: true })
    }

    /// The endpoints as URLs, in the order given.
    pub fn endpoints(&self) -> Vec<String> {
        self.shared
            .upstreams
            .urls()
            .map(|u| u.to_string().trim_end_matches('/').to_owned())
            .collect()
    }

    /// The same proxy serving only `/metrics` and `/health` (etcd's `--metrics-addr`).
    pub fn http_only(&self) -> GrpcProxy {
        GrpcProxy { shared: self.shared.clone(), serves_grpc: false }
    }

    fn grpc(&self) -> GrpcProxy {
        GrpcProxy { shared: self.shared.clone(), serves_grpc: true }
    }

    /// Passes a gRPC call on to the cluster and its answer back (or answers MemberList).
    async fn forward(&self, request: Request<Body>) -> Response<Body> {
        if let Some(message) = &self.shared.member_list
            && request.uri().path() == cluster::MEMBER_LIST_PATH
        {
            return cluster::answer(message.clone());
        }
        // A refused request message is the call's answer, whatever the cluster says after
        // its stream is reset.
        let verdict = Arc::new(OnceLock::new());
        let on_refusal = OnRefusal::Fail(verdict.clone());
        let request =
            request.map(|body| Body::new(Metered::new(body, self.shared.requests, on_refusal)));
        match self.shared.upstreams.send(request).await {
            Ok(response) => response.map(|body| {
                Body::new(Metered::new(body, self.shared.responses, OnRefusal::Trailers(verdict)))
            }),
            Err(status) => verdict.get().cloned().unwrap_or(status).into_http(),
        }
    }
}

impl Service<Request<Body>> for GrpcProxy {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = tonic::codegen::BoxFuture<Response<Body>, Infallible>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let proxy = self.clone();
        Box::pin(async move {
            Ok(if proxy.serves_grpc && oxetcd_api::is_grpc(request.headers()) {
                proxy.forward(request).await
            } else {
                http::serve(&proxy, request).await
            })
        })
    }
}
