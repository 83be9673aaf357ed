//! The proxy's plain HTTP endpoints, as etcd's proxy serves them (`grpcproxy.HandleMetrics`,
//! `HandleHealth`, and `http.NotFound` for the rest): `/metrics` is an endpoint's own
//! `/metrics` page, fetched for each request; `/health` says whether the cluster answers a
//! read.

use std::time::Duration;

use hyper::http::{HeaderValue, Method, Request, Response, StatusCode, header};
use oxetcd_api::etcdserverpb::RangeRequest;
use oxetcd_api::etcdserverpb::kv_client::KvClient;
use tonic::body::Body;

use super::GrpcProxy;

/// How long the health check's read may take (etcd's `checkHealth`: one second).
const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);

/// The key the health check reads (etcd's `checkHealth` gets "a").
const HEALTH_KEY: &[u8] = b"a";

/// The page's content type etcd's proxy sets (Prometheus' text format).
const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// etcd's `permission denied`, which the health check counts as an answer (auth is on
/// and the proxy's read has no user: the cluster answered all the same).
const PERMISSION_DENIED: &str = "etcdserver: permission denied";

/// Answers a request that is not a gRPC call.
pub(super) async fn serve(proxy: &GrpcProxy, request: Request<Body>) -> Response<Body> {
    match request.uri().path() {
        "/metrics" => metrics(proxy).await,
        "/health" if request.method() != Method::GET => {
            let mut response = error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
            response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET"));
            response
        }
        "/health" => health(proxy).await,
        _ => error(StatusCode::NOT_FOUND, "404 page not found"),
    }
}

async fn metrics(proxy: &GrpcProxy) -> Response<Body> {
    match proxy.shared.upstreams.get_http1("/metrics").await {
        Ok(page) => {
            let mut response = Response::new(Body::new(page.into_body()));
            let content_type = HeaderValue::from_static(METRICS_CONTENT_TYPE);
            response.headers_mut().insert(header::CONTENT_TYPE, content_type);
            response
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot fetch /metrics from the cluster");
            error(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
        }
    }
}

async fn health(proxy: &GrpcProxy) -> Response<Body> {
    let mut kv = KvClient::new(proxy.grpc());
    let read = RangeRequest { key: HEALTH_KEY.into(), ..RangeRequest::default() };
    let healthy = match tokio::time::timeout(HEALTH_TIMEOUT, kv.range(read)).await {
        Ok(Ok(_)) => true,
        Ok(Err(status)) => {
            status.code() == tonic::Code::PermissionDenied && status.message() == PERMISSION_DENIED
        }
        Err(_) => false,
    };
    let body = format!(r#"{{"health":"{healthy}"}}"#);
    if healthy {
        let mut response = Response::new(Body::new(body));
        let content_type = HeaderValue::from_static("text/plain; charset=utf-8");
        response.headers_mut().insert(header::CONTENT_TYPE, content_type);
        response
    } else {
        error(StatusCode::SERVICE_UNAVAILABLE, &body)
    }
}

/// Go's `http.Error`: the text and a newline, as plain text, not to be sniffed.
fn error(status: StatusCode, text: &str) -> Response<Body> {
    let mut response = Response::new(Body::new(format!("{text}\n")));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}
