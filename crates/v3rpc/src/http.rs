//! The HTTP endpoints served beside gRPC on the client port: `/health` and `/version`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;

use oxetcd_etcdserver::EtcdServer;
use oxetcd_etcdserver::server::ETCD_VERSION;

/// How long `/health` waits for the linearizable read that proves the member serves.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);

pub fn router(server: Arc<EtcdServer>) -> Router {
    Router::new()
        .route(
            "/health",
            get({
                let server = server.clone();
                move || health(server.clone())
            }),
        )
        .route("/version", get(move || version(server.clone())))
}

/// Healthy when there is a leader and a linearizable read goes through: `200
/// {"health":"true"}`; otherwise `503 {"health":"false"}` (etcd's answers).
async fn health(server: Arc<EtcdServer>) -> impl IntoResponse {
    let healthy = server.raft_status().leader != 0
        && server.linearizable_read(Some(Instant::now() + HEALTH_TIMEOUT)).await.is_ok();
    let (status, body) = if healthy {
        (StatusCode::OK, r#"{"health":"true"}"#)
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, r#"{"health":"false"}"#)
    };
    (status, [("content-type", "application/json")], body)
}

/// The server's version and the cluster's, `not_decided` until the leader has set it
/// (etcd's answer).
async fn version(server: Arc<EtcdServer>) -> impl IntoResponse {
    let cluster = server.cluster_version().unwrap_or_else(|| "not_decided".to_string());
    let body = format!(r#"{{"etcdserver":"{ETCD_VERSION}","etcdcluster":"{cluster}"}}"#);
    ([("content-type", "application/json")], body)
}
