//! Refusals that the gRPC layer makes by itself, before a handler runs (a message over
//! the size limit, a service or method that is not served), put on the wire as etcd's
//! gRPC server puts them: tonic words them its own way or not at all. The codes and
//! texts are the one mapping's ([`crate::status`]); this is only the plumbing.

use axum::extract::Request as HttpRequest;
use axum::response::Response as HttpResponse;
use tonic::Status;

use crate::edge::GrpcResponse;
use crate::status;

/// Rewrites tonic's own refusal in the answer to a call to `path`, if it is one.
pub(crate) fn as_etcd(response: &mut GrpcResponse, path: &str) {
    // A refusal is a trailers-only response: its status travels in the headers.
    if let Some(refused) = Status::from_header_map(response.headers())
        && let Some(etcd) = status::grpc_refusal(&refused, path)
    {
        let headers = response.headers_mut();
        for name in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
            headers.remove(name);
        }
        // Only fails for a message that is not a valid header value: etcd's never are.
        let _ = etcd.add_header(headers);
    }
}

/// The answer under a path where nothing is served (the HTTP router's fallback).
pub(crate) async fn unknown_service(request: HttpRequest) -> HttpResponse {
    if !oxetcd_api::is_grpc(request.headers()) {
        // An HTTP client (the JSON gateway's paths when it is off, any other path).
        return crate::http::go_not_found();
    }
    status::unknown_service(request.uri().path()).into_http()
}
