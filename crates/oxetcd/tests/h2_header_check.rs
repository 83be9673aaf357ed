//! The header check h2 makes before it sends a HEADERS frame, which oxetcd patches to
//! walk the names once (third_party/h2/OXETCD-PATCH.md): the fields refused must be
//! upstream's exactly. Spoken over an in-memory pipe between h2's own client and
//! server, since hyper strips these fields from a response before h2 could see them.

use h2::server::SendResponse;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response};
use tokio::io::duplex;

/// One stream: the client's GET, and the server's handle to answer it.
async fn one_stream() -> (SendResponse<bytes::Bytes>, tokio::task::JoinHandle<()>) {
    let (client_io, server_io) = duplex(64 * 1024);
    let client = tokio::spawn(async move {
        let (mut send, connection) = h2::client::handshake(client_io).await.unwrap();
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let request = Request::get("http://localhost/").body(()).unwrap();
        let (response, _) = send.send_request(request, true).unwrap();
        let _ = response.await;
    });
    let mut server = h2::server::handshake(server_io).await.unwrap();
    let (_, respond) = server.accept().await.unwrap().unwrap();
    tokio::spawn(async move { while server.accept().await.is_some() {} });
    (respond, client)
}

fn fields(name: &'static str, value: &'static str) -> HeaderMap {
    let mut map = HeaderMap::new();
    map.insert(
        HeaderName::from_static("content-type"),
        HeaderValue::from_static("application/grpc"),
    );
    map.insert(HeaderName::from_static(name), HeaderValue::from_static(value));
    map
}

const REFUSED: [(&str, &str); 6] = [
    ("connection", "close"),
    ("transfer-encoding", "chunked"),
    ("upgrade", "websocket"),
    ("keep-alive", "timeout=5"),
    ("proxy-connection", "keep-alive"),
    ("te", "gzip"),
];

const SENT: [(&str, &str); 3] =
    [("te", "trailers"), ("grpc-status", "0"), ("x-connection", "close")];

#[tokio::test]
async fn connection_specific_fields_are_refused_in_headers_and_trailers() {
    for (name, value) in REFUSED {
        let (mut respond, _client) = one_stream().await;
        let mut response = Response::new(());
        *response.headers_mut() = fields(name, value);
        let refused = respond.send_response(response, false);
        assert!(refused.is_err(), "a response with {name}: {value} was sent");

        let (mut respond, _client) = one_stream().await;
        let mut body = respond.send_response(Response::new(()), false).unwrap();
        let refused = body.send_trailers(fields(name, value));
        assert!(refused.is_err(), "trailers with {name}: {value} were sent");
    }
}

#[tokio::test]
async fn other_fields_are_sent() {
    for (name, value) in SENT {
        let (mut respond, client) = one_stream().await;
        let mut response = Response::new(());
        *response.headers_mut() = fields(name, value);
        let mut body = respond.send_response(response, false).unwrap();
        body.send_trailers(fields(name, value)).unwrap();
        client.await.unwrap();
    }
}
