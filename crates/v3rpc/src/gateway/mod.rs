//! etcd 3.4's JSON gateway (grpc-gateway v1) on the client port: `POST /v3/<path>`
//! (and `/v3beta/<path>`, which etcd 3.4 rewrites to `/v3/`) with a request message as
//! JSON, answered with the response message as JSON ([`json`] is the mapping).
//!
//! Each call goes through the same edge and services a gRPC client reaches, in process:
//! the JSON becomes a gRPC-framed request to `/<service>/<method>` with the caller's
//! `Authorization` header as metadata (where etcd's gateway puts it; `caller.rs` reads
//! it as a token) and its `Grpc-Timeout`, so the edge (a learner's refusals, the
//! deadline), auth and every error mapping apply unchanged. Services the client port
//! does not serve are answered as the gRPC call is.
//!
//! Streams are answered as grpc-gateway streams them: the request body of `/v3/watch`
//! and `/v3/lease/keepalive` is a stream of JSON requests, and the answers of those
//! and of `/v3/maintenance/snapshot` are newline-delimited `{"result":…}` objects, an
//! error after the stream started being `{"error":{…}}`. Every path is served over
//! WebSocket too ([`websocket`]), as etcd's wsproxy serves them.

mod json;
mod websocket;

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use bytes::{Buf, Bytes, BytesMut};
use http_body_util::BodyExt;
use prost_reflect::MessageDescriptor;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::deadline;
use crate::edge::{ClientServices, Edge};
use crate::http::{go_not_found, go_text};

/// The gateway's paths under `/v3/` and the gRPC methods behind them, as etcd 3.4's
/// `google.api.http` annotations bind them (`/v3/maintenance/hash` is bound twice,
/// and grpc-gateway 1.6's mux serves the first binding, Hash).
const BINDINGS: &[(&str, &str, &str)] = &[
    ("kv/range", "etcdserverpb.KV", "Range"),
    ("kv/put", "etcdserverpb.KV", "Put"),
    ("kv/deleterange", "etcdserverpb.KV", "DeleteRange"),
    ("kv/txn", "etcdserverpb.KV", "Txn"),
    ("kv/compaction", "etcdserverpb.KV", "Compact"),
    ("watch", "etcdserverpb.Watch", "Watch"),
    ("lease/grant", "etcdserverpb.Lease", "LeaseGrant"),
    ("lease/revoke", "etcdserverpb.Lease", "LeaseRevoke"),
    ("kv/lease/revoke", "etcdserverpb.Lease", "LeaseRevoke"),
    ("lease/keepalive", "etcdserverpb.Lease", "LeaseKeepAlive"),
    ("lease/timetolive", "etcdserverpb.Lease", "LeaseTimeToLive"),
    ("kv/lease/timetolive", "etcdserverpb.Lease", "LeaseTimeToLive"),
    ("lease/leases", "etcdserverpb.Lease", "LeaseLeases"),
    ("kv/lease/leases", "etcdserverpb.Lease", "LeaseLeases"),
    ("cluster/member/add", "etcdserverpb.Cluster", "MemberAdd"),
    ("cluster/member/remove", "etcdserverpb.Cluster", "MemberRemove"),
    ("cluster/member/update", "etcdserverpb.Cluster", "MemberUpdate"),
    ("cluster/member/list", "etcdserverpb.Cluster", "MemberList"),
    ("cluster/member/promote", "etcdserverpb.Cluster", "MemberPromote"),
    ("maintenance/alarm", "etcdserverpb.Maintenance", "Alarm"),
    ("maintenance/status", "etcdserverpb.Maintenance", "Status"),
    ("maintenance/defragment", "etcdserverpb.Maintenance", "Defragment"),
    ("maintenance/hash", "etcdserverpb.Maintenance", "Hash"),
    ("maintenance/snapshot", "etcdserverpb.Maintenance", "Snapshot"),
    ("maintenance/transfer-leadership", "etcdserverpb.Maintenance", "MoveLeader"),
    ("auth/enable", "etcdserverpb.Auth", "AuthEnable"),
    ("auth/disable", "etcdserverpb.Auth", "AuthDisable"),
    ("auth/authenticate", "etcdserverpb.Auth", "Authenticate"),
    ("auth/user/add", "etcdserverpb.Auth", "UserAdd"),
    ("auth/user/get", "etcdserverpb.Auth", "UserGet"),
    ("auth/user/list", "etcdserverpb.Auth", "UserList"),
    ("auth/user/delete", "etcdserverpb.Auth", "UserDelete"),
    ("auth/user/changepw", "etcdserverpb.Auth", "UserChangePassword"),
    ("auth/user/grant", "etcdserverpb.Auth", "UserGrantRole"),
    ("auth/user/revoke", "etcdserverpb.Auth", "UserRevokeRole"),
    ("auth/role/add", "etcdserverpb.Auth", "RoleAdd"),
    ("auth/role/get", "etcdserverpb.Auth", "RoleGet"),
    ("auth/role/list", "etcdserverpb.Auth", "RoleList"),
    ("auth/role/delete", "etcdserverpb.Auth", "RoleDelete"),
    ("auth/role/grant", "etcdserverpb.Auth", "RoleGrantPermission"),
    ("auth/role/revoke", "etcdserverpb.Auth", "RoleRevokePermission"),
    ("lock/lock", "v3lockpb.Lock", "Lock"),
    ("lock/unlock", "v3lockpb.Lock", "Unlock"),
    ("election/campaign", "v3electionpb.Election", "Campaign"),
    ("election/proclaim", "v3electionpb.Election", "Proclaim"),
    ("election/leader", "v3electionpb.Election", "Leader"),
    ("election/observe", "v3electionpb.Election", "Observe"),
    ("election/resign", "v3electionpb.Election", "Resign"),
];

/// Answers in flight per stream before the gateway stops reading the gRPC answer.
const STREAM_BUFFER: usize = 16;

/// One gateway binding: the gRPC method and its messages.
struct Binding {
    grpc_path: String,
    input: MessageDescriptor,
    output: MessageDescriptor,
    client_streaming: bool,
    server_streaming: bool,
}

struct Gateway {
    grpc: Edge<ClientServices>,
    /// Largest request body read (JSON of a message at the gRPC size limit).
    max_body_bytes: usize,
    /// Calls in flight, when bounded (each holds a permit until its answer ends).
    streams: Option<Arc<Semaphore>>,
}

/// The gateway's routes, calling `grpc` (the client port's gRPC services behind their
/// edge) for every request.
pub(crate) fn router(
    grpc: Edge<ClientServices>,
    max_message_bytes: usize,
    max_streams: Option<u32>,
) -> Router {
    let gateway = Arc::new(Gateway {
        grpc,
        // base64 takes 4 bytes for 3, and JSON adds names and quotes.
        max_body_bytes: max_message_bytes.saturating_mul(2),
        streams: max_streams.map(|n| Arc::new(Semaphore::new(n as usize))),
    });
    let v3 = gateway.clone();
    let v3beta = gateway;
    Router::new()
        .route("/v3/{*path}", any(move |request: Request| dispatch(v3.clone(), request)))
        .route("/v3beta/{*path}", any(move |request: Request| dispatch(v3beta.clone(), request)))
        // etcd 3.4 no longer serves `/v3alpha/`: its HTTP mux answers Go's 404.
        .route("/v3alpha/{*path}", any(|| async { go_not_found() }))
}

/// The bindings by path, made on the first JSON call: they need the API's descriptors
/// decoded (`json::POOL`), 1.2 MB of heap that a member nobody calls through the gateway
/// should not hold.
static BINDINGS_BY_PATH: LazyLock<HashMap<&'static str, Binding>> = LazyLock::new(bindings);

fn bindings() -> HashMap<&'static str, Binding> {
    BINDINGS
        .iter()
        .map(|&(path, service, method)| {
            let descriptor = json::POOL
                .get_service_by_name(service)
                .and_then(|s| s.methods().find(|m| m.name() == method))
                .unwrap_or_else(|| panic!("{service}/{method} is in oxetcd-api's protos"));
            let binding = Binding {
                grpc_path: format!("/{service}/{method}"),
                input: descriptor.input(),
                output: descriptor.output(),
                client_streaming: descriptor.is_client_streaming(),
                server_streaming: descriptor.is_server_streaming(),
            };
            (path, binding)
        })
        .collect()
}

fn json_response(status: StatusCode, body: impl Into<Body>) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body.into()).into_response()
}

/// A request that could not be read: grpc-gateway's `InvalidArgument` (unary) or
/// `Unknown` (the first request of a stream) error body.
fn unreadable(status: Status) -> Response {
    json_response(json::http_status(status.code()), json::error_body(&status))
}

/// A WebSocket upgrade becomes the call over the socket; any other request is the call.
async fn dispatch(gateway: Arc<Gateway>, request: Request) -> Response {
    if websocket::is_upgrade(request.headers()) {
        websocket::upgrade(gateway, request).await
    } else {
        serve(gateway, request).await
    }
}

async fn serve(gateway: Arc<Gateway>, request: Request) -> Response {
    let path = request.uri().path();
    let rest = path.strip_prefix("/v3/").or_else(|| path.strip_prefix("/v3beta/"));
    let Some(binding) = rest.and_then(|rest| BINDINGS_BY_PATH.get(rest)) else {
        return go_text(StatusCode::NOT_FOUND, "Not Found");
    };
    if request.method() != Method::POST {
        return go_text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
    }
    // Waits for room as a call waits for a stream on etcd's gateway connection.
    let permit = match &gateway.streams {
        Some(streams) => match streams.clone().acquire_owned().await {
            Ok(permit) => Some(permit),
            Err(_) => return unreadable(Status::unavailable("gateway: closed")),
        },
        None => None,
    };
    let (parts, body) = request.into_parts();
    // grpc-gateway calls with the `Grpc-Timeout` as its own deadline, and answers one
    // that passes with gRPC's client-side DeadlineExceeded (504), whatever the call was
    // waiting for (a Lock, a Campaign).
    let deadline = deadline::timeout_in(&parts.headers).map(|t| Instant::now() + t);
    let mut call = axum::http::Request::builder()
        .method(Method::POST)
        .uri(binding.grpc_path.as_str())
        .header(header::CONTENT_TYPE, "application/grpc")
        .header(header::TE, "trailers");
    if let Some(headers) = call.headers_mut() {
        forward_metadata(&parts.headers, headers);
    }
    let mut reader = JsonReader { body, buf: BytesMut::new(), limit: gateway.max_body_bytes };
    let body = if binding.client_streaming {
        // The first request is read before the call; the rest are sent as they come.
        let first = match reader.next().await {
            Ok(first) => first,
            Err(e) => return unreadable(Status::unknown(e.0)),
        };
        let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(STREAM_BUFFER);
        if let Some(first) = first {
            match json::to_proto(&binding.input, Some(first)) {
                Ok(encoded) => {
                    let _ = tx.send(Ok(frame(&encoded))).await;
                    let input = binding.input.clone();
                    tokio::spawn(forward_requests(reader, input, tx));
                }
                Err(e) => return unreadable(Status::unknown(e.0)),
            }
        }
        Body::from_stream(ReceiverStream::new(rx))
    } else {
        // The first value, without waiting for the body's end: grpc-gateway decodes one
        // value from the body as it comes, and a WebSocket's body ends only with it.
        let value = match reader.next().await {
            Ok(value) => value,
            Err(e) => return unreadable(Status::invalid_argument(e.0)),
        };
        match json::to_proto(&binding.input, value) {
            Ok(encoded) => Body::from(frame(&encoded)),
            Err(e) => return unreadable(Status::invalid_argument(e.0)),
        }
    };
    let Ok(call) = call.body(body) else {
        return unreadable(Status::internal("gateway: bad request"));
    };
    let mut grpc = gateway.grpc.clone();
    let called = tower_service::Service::call(&mut grpc, call.map(tonic::body::Body::new));
    let answer = match until(deadline, called).await {
        Some(Ok(answer)) => answer,
        Some(Err(never)) => match never {},
        None => return call_failed(&deadline_exceeded(), &HeaderMap::new(), &HeaderMap::new()),
    };
    let (parts, body) = answer.into_parts();
    let mut reply = GrpcReply { body, buf: BytesMut::new(), trailers: HeaderMap::new() };
    // A trailers-only answer: the call failed before any message (grpc-gateway's
    // `stream.Header()` or unary call fails, and it answers with its error body).
    if let Some(status) = Status::from_header_map(&parts.headers)
        && status.code() != tonic::Code::Ok
    {
        return call_failed(&status, &HeaderMap::new(), &parts.headers);
    }
    if binding.server_streaming {
        stream_answers(reply, binding.output.clone(), &parts.headers, permit, deadline).await
    } else {
        let answer = async {
            let message =
                reply.next().await?.ok_or_else(|| Status::internal("gateway: no answer"))?;
            reply.finish().await?;
            json::from_proto(&binding.output, &message)
        };
        let answer = until(deadline, answer).await.unwrap_or_else(|| Err(deadline_exceeded()));
        match answer {
            Ok(body) => {
                let mut response = json_response(StatusCode::OK, body);
                metadata_headers(&parts.headers, response.headers_mut());
                response
            }
            Err(status) => call_failed(&status, &parts.headers, &reply.trailers),
        }
    }
}

/// `future`'s output, or `None` if `deadline` passes first.
async fn until<F: Future>(deadline: Option<Instant>, future: F) -> Option<F::Output> {
    match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline, future).await.ok(),
        None => Some(future.await),
    }
}

/// What grpc-go's client answers when its deadline passes.
fn deadline_exceeded() -> Status {
    Status::deadline_exceeded("context deadline exceeded")
}

/// grpc-gateway's `DefaultHTTPError` for a call the server refused: the error body
/// with the code's HTTP status, the answer's header metadata as `Grpc-Metadata-*`
/// headers and its trailer metadata as `Grpc-Trailer-*` trailers.
fn call_failed(status: &Status, header_md: &HeaderMap, trailer_md: &HeaderMap) -> Response {
    let mut trailers = HeaderMap::new();
    for (name, value) in trailer_md.iter().filter(|(name, _)| is_metadata(name)) {
        if let Ok(name) = HeaderName::try_from(format!("grpc-trailer-{name}")) {
            trailers.append(name, value.clone());
        }
    }
    let body = Bytes::from(json::error_body(status));
    let body = if trailers.is_empty() {
        Body::from(body)
    } else {
        let frames = [
            Ok::<_, Infallible>(http_body::Frame::data(body)),
            Ok(http_body::Frame::trailers(trailers.clone())),
        ];
        Body::new(http_body_util::StreamBody::new(tokio_stream::iter(frames)))
    };
    let mut response = json_response(json::http_status(status.code()), body);
    let headers = response.headers_mut();
    metadata_headers(header_md, headers);
    for name in trailers.keys() {
        if let Ok(value) = HeaderValue::from_str(&canonical(name.as_str())) {
            headers.append(header::TRAILER, value);
        }
    }
    response
}

/// Go's canonical form of a header name (`Grpc-Trailer-Content-Type`).
fn canonical(name: &str) -> String {
    name.split('-')
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + &chars.as_str().to_ascii_lowercase()
            })
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// Whether a gRPC header is metadata grpc-go hands to the gateway (not one of gRPC's
/// own `grpc-*` headers or HTTP's).
fn is_metadata(name: &HeaderName) -> bool {
    let name = name.as_str();
    !name.starts_with("grpc-")
        && !matches!(name, "content-length" | "date" | "transfer-encoding" | "trailer" | "te")
}

/// The gRPC answer's header metadata as grpc-gateway's `Grpc-Metadata-*` headers.
fn metadata_headers(grpc: &HeaderMap, http: &mut HeaderMap) {
    for (name, value) in grpc.iter().filter(|(name, _)| is_metadata(name)) {
        if let Ok(name) = HeaderName::try_from(format!("grpc-metadata-{name}")) {
            http.append(name, value.clone());
        }
    }
}

/// What grpc-gateway's `AnnotateContext` passes on as gRPC metadata: `Authorization`
/// (the token), `Grpc-Timeout` (the deadline), and `Grpc-Metadata-<key>` as `<key>`.
fn forward_metadata(http: &HeaderMap, grpc: &mut HeaderMap) {
    for (name, value) in http {
        let forwarded = match name.as_str() {
            "authorization" | "grpc-timeout" => Some(name.clone()),
            other => other
                .strip_prefix("grpc-metadata-")
                .filter(|key| !key.starts_with("grpc-"))
                .and_then(|key| HeaderName::try_from(key).ok()),
        };
        if let Some(name) = forwarded {
            grpc.append(name, value.clone());
        }
    }
}

/// A message in gRPC's length-prefixed framing, uncompressed.
fn frame(message: &[u8]) -> Bytes {
    let mut framed = BytesMut::with_capacity(5 + message.len());
    framed.extend_from_slice(&[0]);
    framed.extend_from_slice(&u32::try_from(message.len()).unwrap_or(u32::MAX).to_be_bytes());
    framed.extend_from_slice(message);
    framed.freeze()
}

/// Sends the stream's further JSON requests to the call as they arrive. A request
/// that cannot be read ends the sending side, as grpc-gateway's `CloseSend` does.
async fn forward_requests(
    mut reader: JsonReader,
    input: MessageDescriptor,
    tx: mpsc::Sender<Result<Bytes, Infallible>>,
) {
    loop {
        let value = match reader.next().await {
            Ok(Some(value)) => value,
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(
                    error = e.0,
                    "gateway: stream request unreadable; closing the sending side"
                );
                return;
            }
        };
        match json::to_proto(&input, Some(value)) {
            Ok(encoded) => {
                if tx.send(Ok(frame(&encoded))).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::debug!(
                    error = e.0,
                    "gateway: stream request unreadable; closing the sending side"
                );
                return;
            }
        }
    }
}

/// grpc-gateway's `ForwardResponseStream`: one `{"result":…}` line per answer; a
/// failure is one `{"error":{…}}` chunk, with the code's HTTP status when it comes
/// before any answer.
async fn stream_answers(
    mut reply: GrpcReply,
    output: MessageDescriptor,
    header_md: &HeaderMap,
    permit: Option<OwnedSemaphorePermit>,
    deadline: Option<Instant>,
) -> Response {
    let first = until(deadline, reply.next()).await.unwrap_or_else(|| Err(deadline_exceeded()));
    let (status, first_chunk) = match first {
        Ok(Some(message)) => (StatusCode::OK, Some(result_line(&output, &message))),
        Ok(None) => (StatusCode::OK, None),
        Err(status) => (json::http_status(status.code()), Some(Err(status))),
    };
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(STREAM_BUFFER);
    tokio::spawn(async move {
        let _permit = permit;
        let mut next = first_chunk;
        while let Some(chunk) = next.take() {
            let (bytes, more) = match chunk {
                Ok(line) => (line, true),
                Err(status) => (Bytes::from(json::stream_error_chunk(&status)), false),
            };
            if tx.send(Ok(bytes)).await.is_err() || !more {
                return;
            }
            // A caller that went away ends the call now, not at its next answer (an
            // election or a key may stay quiet for ever).
            let answer = tokio::select! {
                _ = tx.closed() => return,
                answer = until(deadline, reply.next()) => {
                    answer.unwrap_or_else(|| Err(deadline_exceeded()))
                }
            };
            next = match answer {
                Ok(Some(message)) => Some(result_line(&output, &message)),
                Ok(None) => None,
                Err(status) => Some(Err(status)),
            };
        }
    });
    let mut response = json_response(status, Body::from_stream(ReceiverStream::new(rx)));
    metadata_headers(header_md, response.headers_mut());
    response
}

/// One answer of a stream as a `{"result":…}` line.
fn result_line(output: &MessageDescriptor, message: &[u8]) -> Result<Bytes, Status> {
    let json = json::from_proto(output, message)?;
    let mut line = Vec::with_capacity(json.len() + 12);
    line.extend_from_slice(b"{\"result\":");
    line.extend_from_slice(&json);
    line.extend_from_slice(b"}\n");
    Ok(Bytes::from(line))
}

/// The JSON values of a request body, one at a time.
struct JsonReader {
    body: Body,
    buf: BytesMut,
    limit: usize,
}

impl JsonReader {
    /// Reads more of the body; false at its end.
    async fn fill(&mut self) -> Result<bool, json::DecodeError> {
        loop {
            match self.body.frame().await {
                None => return Ok(false),
                Some(Err(e)) => return Err(json::DecodeError(e.to_string())),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        if self.buf.len() + data.len() > self.limit {
                            return Err(json::DecodeError(format!(
                                "gateway: request body larger than {} bytes",
                                self.limit
                            )));
                        }
                        self.buf.extend_from_slice(&data);
                        return Ok(true);
                    }
                }
            }
        }
    }

    /// The next JSON value; `None` at the end of the body.
    async fn next(&mut self) -> Result<Option<serde_json::Value>, json::DecodeError> {
        loop {
            let mut values =
                serde_json::Deserializer::from_slice(&self.buf).into_iter::<serde_json::Value>();
            match values.next() {
                Some(Ok(value)) => {
                    let used = values.byte_offset();
                    self.buf.advance(used);
                    return Ok(Some(value));
                }
                Some(Err(e)) if !e.is_eof() => return Err(json::syntax_error(&e)),
                // Nothing but white space yet, or a value cut short: read on.
                _ => {
                    if !self.fill().await? {
                        let rest = std::mem::take(&mut self.buf);
                        return match json::first_value(&rest)? {
                            Some(value) => Ok(Some(value)),
                            None => Ok(None),
                        };
                    }
                }
            }
        }
    }
}

/// The gRPC answer's messages, then its status.
struct GrpcReply {
    body: tonic::body::Body,
    buf: BytesMut,
    trailers: HeaderMap,
}

impl GrpcReply {
    /// The next message; `None` at a successful end; the call's status if it failed.
    async fn next(&mut self) -> Result<Option<Bytes>, Status> {
        loop {
            if self.buf.len() >= 5 {
                let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]])
                    as usize;
                if self.buf[0] != 0 {
                    return Err(Status::internal("gateway: compressed answer"));
                }
                if self.buf.len() >= 5 + len {
                    self.buf.advance(5);
                    return Ok(Some(self.buf.split_to(len).freeze()));
                }
            }
            match self.body.frame().await {
                None => return Ok(None),
                Some(Err(e)) => return Err(Status::unknown(e.to_string())),
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => self.buf.extend_from_slice(&data),
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers() {
                            self.trailers = trailers;
                            return match Status::from_header_map(&self.trailers) {
                                Some(status) if status.code() != tonic::Code::Ok => Err(status),
                                _ => Ok(None),
                            };
                        }
                    }
                },
            }
        }
    }

    /// Reads to the end of the answer for its status.
    async fn finish(&mut self) -> Result<(), Status> {
        while self.next().await?.is_some() {}
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_binding_names_a_method_of_the_protos() {
        let bindings = bindings();
        assert_eq!(bindings.len(), BINDINGS.len());
        assert!(bindings["watch"].client_streaming && bindings["watch"].server_streaming);
        assert!(bindings["maintenance/snapshot"].server_streaming);
        assert!(!bindings["kv/range"].server_streaming);
    }

    #[test]
    fn header_names_are_written_in_gos_canonical_form() {
        assert_eq!(canonical("grpc-trailer-content-type"), "Grpc-Trailer-Content-Type");
    }
}
