//! The HTTP endpoints served beside gRPC on the client port (`/health`, `/livez`,
//! `/readyz`, `/metrics`, `/version`), those of a `--listen-metrics-urls` listener, and
//! etcd's access controller in front of them (`--host-whitelist`, `--cors`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, RawQuery};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use oxetcd_api::etcdserverpb::AlarmType;
use oxetcd_etcdserver::server::ETCD_VERSION;
use oxetcd_etcdserver::{EtcdServer, ServerError};

use crate::metrics::Metrics;

/// How long `/health` waits for the linearizable read that proves the member serves.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);

/// Prometheus' text exposition format, as etcd's `/metrics` answers.
const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

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

pub fn router(metrics: Arc<Metrics>, access: HttpAccess) -> Router {
    let server = metrics.server().clone();
    let routes = probes(metrics).route("/version", get(move || version(server.clone())));
    with_access(routes, access)
}

/// `routes` behind etcd's access controller.
pub(crate) fn with_access(routes: Router, access: HttpAccess) -> Router {
    routes.layer(axum::middleware::from_fn(move |request, next| {
        control_access(access.clone(), request, next)
    }))
}

/// What a `--listen-metrics-urls` listener serves: `/metrics` and the health probes.
pub fn metrics_router(metrics: Arc<Metrics>) -> Router {
    probes(metrics)
}

/// `/metrics`, `/health`, `/livez` and `/readyz` (with a path per check, as etcd 3.6).
fn probes(metrics: Arc<Metrics>) -> Router {
    let server = metrics.server().clone();
    let (health, livez, readyz) = (server.clone(), server.clone(), server.clone());
    let (live_one, ready_one) = (server.clone(), server);
    Router::new()
        .route("/metrics", get(move || render_metrics(metrics.clone())))
        .route("/health", get(move |RawQuery(q): RawQuery| self::health(health.clone(), q)))
        .route("/livez", get(move |RawQuery(q): RawQuery| probe(livez.clone(), Probe::Livez, q)))
        .route("/readyz", get(move |RawQuery(q): RawQuery| probe(readyz.clone(), Probe::Readyz, q)))
        .route(
            "/livez/{check}",
            get(move |Path(check): Path<String>, RawQuery(q): RawQuery| {
                probe_one(live_one.clone(), Probe::Livez, check, q)
            }),
        )
        .route(
            "/readyz/{check}",
            get(move |Path(check): Path<String>, RawQuery(q): RawQuery| {
                probe_one(ready_one.clone(), Probe::Readyz, check, q)
            }),
        )
}

async fn render_metrics(metrics: Arc<Metrics>) -> Response {
    // Reading `/proc` and the store's figures is quick, but not for the async runtime.
    match tokio::task::spawn_blocking(move || metrics.render()).await {
        Ok(page) => ([("content-type", METRICS_CONTENT_TYPE)], page).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("rendering metrics failed: {e}\n"))
            .into_response(),
    }
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
/// {"health":"false"}` (etcd 3.4's answers). With `?serializable=true` (etcd 3.5), the
/// leader and the linearizable read are not required, only a local read.
async fn health(server: Arc<EtcdServer>, query: Option<String>) -> impl IntoResponse {
    let query = query.unwrap_or_default();
    let excluded = query_values(&query, "exclude");
    let serializable = query_values(&query, "serializable").contains(&"true");
    let alarmed = server.alarms(AlarmType::None).iter().any(|alarm| {
        let name = AlarmType::try_from(alarm.alarm).map_or("", |a| a.as_str_name());
        !excluded.contains(&name)
    });
    let healthy = !alarmed
        && if serializable {
            server.store().is_ok()
        } else {
            server.raft_status().leader != 0
                && server.linearizable_read(Some(Instant::now() + HEALTH_TIMEOUT)).await.is_ok()
        };
    let (status, body) = if healthy {
        (StatusCode::OK, r#"{"health":"true"}"#)
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, r#"{"health":"false"}"#)
    };
    (status, [("content-type", "application/json")], body)
}

/// etcd 3.6's probes: `/livez` says the process serves local reads; `/readyz` that the
/// member is part of a working cluster and its data is not corrupt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    Livez,
    Readyz,
}

/// A named check of a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    DataCorruption,
    SerializableRead,
    LinearizableRead,
}

impl Check {
    fn name(self) -> &'static str {
        match self {
            Check::DataCorruption => "data_corruption",
            Check::SerializableRead => "serializable_read",
            Check::LinearizableRead => "linearizable_read",
        }
    }

    /// `Err` with why the check failed, in etcd's words.
    async fn run(self, server: &EtcdServer) -> Result<(), String> {
        let read_error = |e: ServerError| e.to_string();
        match self {
            Check::DataCorruption => {
                if server.alarms(AlarmType::Corrupt).is_empty() {
                    Ok(())
                } else {
                    Err(format!("alarm activated: {}", AlarmType::Corrupt.as_str_name()))
                }
            }
            Check::SerializableRead => server.store().map(drop).map_err(read_error),
            Check::LinearizableRead => {
                // etcd bounds the read by its request timeout.
                let deadline = Instant::now() + server.config().request_timeout();
                server.linearizable_read(Some(deadline)).await.map_err(read_error)
            }
        }
    }
}

impl Probe {
    fn checks(self) -> &'static [Check] {
        match self {
            Probe::Livez => &[Check::SerializableRead],
            Probe::Readyz => {
                &[Check::DataCorruption, Check::SerializableRead, Check::LinearizableRead]
            }
        }
    }
}

/// `/livez` or `/readyz`: every check of the probe but those in `?exclude=` (unknown
/// names are ignored, as etcd does). `200 ok` when all pass (with a `[+]name ok` line
/// per check before it under `?verbose`); otherwise `503` with a line per check, the
/// failed ones `[-]name failed: why`.
async fn probe(server: Arc<EtcdServer>, probe: Probe, query: Option<String>) -> Response {
    let query = query.unwrap_or_default();
    let excluded = query_values(&query, "exclude");
    let checks = probe.checks().iter().filter(|c| !excluded.contains(&c.name()));
    run_checks(&server, checks.copied().collect(), &query).await
}

/// `/livez/<check>` or `/readyz/<check>`: that check alone; `404` for another name.
async fn probe_one(
    server: Arc<EtcdServer>,
    probe: Probe,
    name: String,
    query: Option<String>,
) -> Response {
    match probe.checks().iter().find(|c| c.name() == name) {
        Some(check) => run_checks(&server, vec![*check], &query.unwrap_or_default()).await,
        None => go_not_found(),
    }
}

async fn run_checks(server: &EtcdServer, checks: Vec<Check>, query: &str) -> Response {
    let mut report = String::new();
    let mut failed = false;
    for check in checks {
        match check.run(server).await {
            Ok(()) => report.push_str(&format!("[+]{} ok\n", check.name())),
            Err(why) => {
                failed = true;
                report.push_str(&format!("[-]{} failed: {why}\n", check.name()));
            }
        }
    }
    if failed {
        // etcd answers with Go's `http.Error`.
        return go_text(StatusCode::SERVICE_UNAVAILABLE, &report);
    }
    let verbose = query.split('&').any(|pair| pair == "verbose" || pair.starts_with("verbose="));
    if !verbose {
        report.clear();
    }
    report.push_str("ok\n");
    (StatusCode::OK, GO_TEXT_HEADERS, report).into_response()
}

/// The values of every `name=` in a query string (empty ones left out, as etcd does).
fn query_values<'a>(query: &'a str, name: &str) -> Vec<&'a str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(key, value)| *key == name && !value.is_empty())
        .map(|(_, value)| value)
        .collect()
}

/// The server's version and the cluster's, `not_decided` until the leader has set it
/// (etcd's answer).
async fn version(server: Arc<EtcdServer>) -> impl IntoResponse {
    let cluster = server.cluster_version().unwrap_or_else(|| "not_decided".to_string());
    let body = format!(r#"{{"etcdserver":"{ETCD_VERSION}","etcdcluster":"{cluster}"}}"#);
    ([("content-type", "application/json")], body)
}

/// A text answer as Go's `http.Error` writes one (a newline after the text).
pub(crate) fn go_text(status: StatusCode, text: &str) -> Response {
    (status, GO_TEXT_HEADERS, format!("{text}\n")).into_response()
}

/// The headers of a text answer written by Go's `http.Error`.
const GO_TEXT_HEADERS: [(&str, &str); 2] =
    [("content-type", "text/plain; charset=utf-8"), ("x-content-type-options", "nosniff")];

/// Go's `http.NotFound`: what etcd's HTTP mux answers under a path it does not serve.
pub(crate) fn go_not_found() -> Response {
    go_text(StatusCode::NOT_FOUND, "404 page not found")
}
