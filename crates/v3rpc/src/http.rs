//! The HTTP endpoints served beside gRPC on the client port (`/health` and `/version`),
//! those of a `--listen-metrics-urls` listener, and etcd's access controller in front of
//! them (`--host-whitelist`, `--cors`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;

use oxetcd_api::etcdserverpb::AlarmType;
use oxetcd_etcdserver::EtcdServer;
use oxetcd_etcdserver::server::ETCD_VERSION;

/// How long `/health` waits for the linearizable read that proves the member serves.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);

/// etcd's answer to a request for `/metrics`, which is not served yet.
const METRICS_NOT_SERVED: &str = "oxetcd: /metrics is not served yet\n";

/// Who may send plain HTTP requests (not gRPC) to the client port, as etcd's
/// `--host-whitelist` and `--cors` say.
#[derive(Debug, Clone)]
pub struct HttpAccess {
    /// Host names accepted in requests over plaintext connections; empty or `*`: any.
    pub host_whitelist: Vec<String>,
    /// Origins answered with CORS headers; `*`: any.
    pub cors: Vec<String>,
}

impl HttpAccess {
    fn host_allowed(&self, host: &str) -> bool {
        self.host_whitelist.is_empty() || self.host_whitelist.iter().any(|h| h == "*" || h == host)
    }

    /// The `Access-Control-Allow-Origin` to answer `origin` with, if any.
    fn cors_origin<'a>(&self, origin: Option<&'a str>) -> Option<&'a str> {
        if self.cors.iter().any(|c| c == "*") {
            return Some("*");
        }
        origin.filter(|o| self.cors.iter().any(|c| c == o))
    }
}

pub fn router(server: Arc<EtcdServer>, access: HttpAccess) -> Router {
    let routes = Router::new()
        .route("/health", health_route(server.clone()))
        .route("/version", get(move || version(server.clone())));
    with_access(routes, access)
}

/// `routes` behind etcd's access controller.
pub(crate) fn with_access(routes: Router, access: HttpAccess) -> Router {
    routes.layer(axum::middleware::from_fn(move |request, next| {
        control_access(access.clone(), request, next)
    }))
}

/// What a `--listen-metrics-urls` listener serves: `/health`, and `/metrics` (refused
/// until metrics are built).
pub fn metrics_router(server: Arc<EtcdServer>) -> Router {
    Router::new()
        .route("/health", health_route(server))
        .route("/metrics", get(|| async { (StatusCode::NOT_IMPLEMENTED, METRICS_NOT_SERVED) }))
}

fn health_route(server: Arc<EtcdServer>) -> axum::routing::MethodRouter {
    get(move |axum::extract::RawQuery(query): axum::extract::RawQuery| {
        health(server.clone(), query)
    })
}

/// etcd's access controller for HTTP requests: over plaintext, the `Host` must be in
/// the whitelist (DNS rebinding, CVE-2018-5702); allowed origins get CORS headers; an
/// `OPTIONS` preflight is answered at once.
async fn control_access(
    access: HttpAccess,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let plaintext = request
        .extensions()
        .get::<oxetcd_tls::ConnInfo>()
        .is_none_or(|info| info.identity.is_none());
    if plaintext {
        let host = request_host(&request);
        if !access.host_allowed(&host) {
            tracing::warn!(%host, "rejecting HTTP request to prevent DNS rebinding attacks");
            return (StatusCode::MISDIRECTED_REQUEST, unrecognized_host(&host)).into_response();
        }
    }
    let origin = request.headers().get("origin").and_then(|o| o.to_str().ok()).map(String::from);
    let cors = access.cors_origin(origin.as_deref()).map(String::from);
    let mut response = if request.method() == axum::http::Method::OPTIONS {
        StatusCode::OK.into_response()
    } else {
        next.run(request).await
    };
    if let Some(origin) = cors {
        let headers = response.headers_mut();
        for (name, value) in [
            ("access-control-allow-methods", "POST, GET, OPTIONS, PUT, DELETE"),
            ("access-control-allow-origin", origin.as_str()),
            ("access-control-allow-headers", "accept, content-type, authorization"),
        ] {
            if let Ok(value) = axum::http::HeaderValue::from_str(value) {
                headers.append(name, value);
            }
        }
    }
    response
}

/// The request's host name, without the port (Go's `GetHostname`).
fn request_host(request: &axum::extract::Request) -> String {
    let host = request
        .uri()
        .host()
        .map(String::from)
        .or_else(|| request.headers().get("host").and_then(|h| h.to_str().ok()).map(String::from))
        .unwrap_or_default();
    match host.rsplit_once(':') {
        // `[::1]:2379` and `host:2379`; a bare IPv6 address has more colons.
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) && !name.ends_with(':') => {
            name.trim_start_matches('[').trim_end_matches(']').to_string()
        }
        _ => host.trim_start_matches('[').trim_end_matches(']').to_string(),
    }
}

/// etcd's answer to a request whose `Host` is not whitelisted.
fn unrecognized_host(host: &str) -> String {
    format!(
        "\netcd received your request, but the Host header was unrecognized.\n\n\
         To fix this, choose one of the following options:\n\
         - Enable TLS, then any HTTPS request will be allowed.\n\
         - Add the hostname you want to use to the whitelist in settings.\n\
         \x20 - e.g. etcd --host-whitelist {host:?}\n\n\
         This requirement has been added to help prevent \"DNS Rebinding\" attacks (CVE-2018-5702).\n"
    )
}

/// Healthy when no alarm is raised (but those named in `?exclude=`), there is a leader
/// and a linearizable read goes through: `200 {"health":"true"}`; otherwise `503
/// {"health":"false"}` (etcd 3.4's answers).
async fn health(server: Arc<EtcdServer>, query: Option<String>) -> impl IntoResponse {
    let excluded = excluded_alarms(query.as_deref().unwrap_or_default());
    let alarmed = server.alarms(AlarmType::None).iter().any(|alarm| {
        let name = AlarmType::try_from(alarm.alarm).map_or("", |a| a.as_str_name());
        !excluded.contains(&name)
    });
    let healthy = !alarmed
        && server.raft_status().leader != 0
        && server.linearizable_read(Some(Instant::now() + HEALTH_TIMEOUT)).await.is_ok();
    let (status, body) = if healthy {
        (StatusCode::OK, r#"{"health":"true"}"#)
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, r#"{"health":"false"}"#)
    };
    (status, [("content-type", "application/json")], body)
}

/// The alarm names of every `exclude=` in a query string.
fn excluded_alarms(query: &str) -> Vec<&str> {
    query.split('&').filter_map(|pair| pair.strip_prefix("exclude=")).collect()
}

/// The server's version and the cluster's, `not_decided` until the leader has set it
/// (etcd's answer).
async fn version(server: Arc<EtcdServer>) -> impl IntoResponse {
    let cluster = server.cluster_version().unwrap_or_else(|| "not_decided".to_string());
    let body = format!(r#"{{"etcdserver":"{ETCD_VERSION}","etcdcluster":"{cluster}"}}"#);
    ([("content-type", "application/json")], body)
}
