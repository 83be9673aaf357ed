//! The `date` header on the client port's responses, as etcd's servers send it: none on
//! a gRPC response (grpc-go's server sends none, and etcd's Go client keeps a header it
//! does not know as the call's metadata, allocated for every response), one on every
//! other HTTP response, over HTTP/2 as over HTTP/1 (Go's HTTP server dates them all).
//! Spoken with h2's own client, and by hand for HTTP/1, to a member process.

mod support;

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request};
use support::{MemberConfig, Process};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Sends `request` with `body` over a new HTTP/2 connection to `process`; returns the
/// response's status, headers and, read to the end, its trailers (empty if none).
async fn h2_call(
    process: &Process,
    request: Request<()>,
    body: Option<Vec<u8>>,
) -> (http::StatusCode, HeaderMap, HeaderMap) {
    let address = process.endpoint().trim_start_matches("http://").to_string();
    let tcp = TcpStream::connect(address).await.unwrap();
    let (mut send, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let (response, mut stream) = send.send_request(request, body.is_none()).unwrap();
    if let Some(body) = body {
        stream.send_data(Bytes::from(body), true).unwrap();
    }
    let response = response.await.expect("a response");
    let (parts, mut received) = response.into_parts();
    while let Some(data) = received.data().await {
        let data = data.unwrap();
        let _ = received.flow_control().release_capacity(data.len());
    }
    let trailers = received.trailers().await.unwrap().unwrap_or_default();
    (parts.status, parts.headers, trailers)
}

/// A gRPC call to `path` at `endpoint`.
fn grpc_call(endpoint: &str, path: &str) -> Request<()> {
    Request::post(format!("{endpoint}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_responses_have_no_date_and_http_responses_have_one() {
    let dir = tempfile::tempdir().unwrap();
    let process = Process::start(&MemberConfig::single(dir.path(), "dates")).await;
    let endpoint = process.endpoint();

    tokio::time::timeout(Duration::from_secs(30), async {
        // A gRPC call (Maintenance/Status, an empty request), answered with its trailers.
        let status = grpc_call(endpoint, "/etcdserverpb.Maintenance/Status");
        let (code, headers, trailers) = h2_call(&process, status, Some(vec![0; 5])).await;
        assert_eq!(code, 200);
        assert_eq!(headers["content-type"], "application/grpc");
        assert_eq!(trailers["grpc-status"], "0", "trailers: {trailers:?}");
        assert!(!headers.contains_key("date"), "a gRPC response's headers: {headers:?}");
        assert!(!trailers.contains_key("date"), "a gRPC response's trailers: {trailers:?}");

        // A gRPC call nothing serves is answered as gRPC too (trailers only): no date.
        let unknown = grpc_call(endpoint, "/etcdserverpb.Nothing/Here");
        let (_, headers, _) = h2_call(&process, unknown, Some(vec![0; 5])).await;
        assert_eq!(headers["grpc-status"], "12", "headers: {headers:?}");
        assert!(!headers.contains_key("date"), "an unknown service's answer: {headers:?}");

        // HTTP over HTTP/2: one date, as from Go's HTTP server.
        for path in ["/health", "/metrics", "/no/such/path"] {
            let get = Request::get(format!("{endpoint}{path}")).body(()).unwrap();
            let (_, headers, _) = h2_call(&process, get, None).await;
            let dates: Vec<_> = headers.get_all("date").iter().collect();
            assert_eq!(dates.len(), 1, "GET {path} over HTTP/2: {headers:?}");
            let date = dates[0].to_str().unwrap();
            assert!(httpdate::parse_http_date(date).is_ok(), "GET {path}: date {date:?}");
        }

        // HTTP/1.1: one date (hyper's own).
        let address = endpoint.trim_start_matches("http://");
        let mut tcp = TcpStream::connect(address).await.unwrap();
        let get = format!("GET /health HTTP/1.1\r\nhost: {address}\r\nconnection: close\r\n\r\n");
        tcp.write_all(get.as_bytes()).await.unwrap();
        let mut response = String::new();
        tcp.read_to_string(&mut response).await.unwrap();
        let head = response.split("\r\n\r\n").next().unwrap().to_ascii_lowercase();
        let dates = head.lines().filter(|line| line.starts_with("date:")).count();
        assert_eq!(dates, 1, "GET /health over HTTP/1.1:\n{head}");
    })
    .await
    .expect("the calls took more than 30 s");
}
