//! The JSON gateway over WebSocket (etcd's wsproxy on `/v3/`): one scripted session that
//! runs the same way against etcd 3.4.23 and oxetcd and prints a transcript, with the
//! ids that differ between servers (cluster, member, lease) replaced by placeholders.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

/// Bound on each step: a connection, a message, a server's end.
const STEP: Duration = Duration::from_secs(10);

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens a WebSocket to `path` on `endpoint` (`http://host:port`), offering
/// `subprotocol` if given; returns the socket and the subprotocol the server chose.
pub async fn open(endpoint: &str, path: &str, subprotocol: Option<&str>) -> (Socket, String) {
    let url = format!("ws://{}{path}", endpoint.trim_start_matches("http://"));
    let mut request = url.into_client_request().expect("a WebSocket URL");
    if let Some(protocol) = subprotocol {
        let value = HeaderValue::from_str(protocol).expect("a header value");
        request.headers_mut().insert("Sec-WebSocket-Protocol", value);
    }
    let (socket, response) = tokio::time::timeout(STEP, connect_async(request))
        .await
        .expect("the handshake is bounded")
        .unwrap_or_else(|e| panic!("WebSocket handshake to {path}: {e}"));
    let chosen = response
        .headers()
        .get("Sec-WebSocket-Protocol")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (socket, chosen)
}

/// Sends one text message.
pub async fn send(socket: &mut Socket, text: &str) {
    socket.send(Message::text(text)).await.expect("send a message");
}

/// The next text message; `None` once the server ended the connection (a close frame, or
/// the connection closed without one, as etcd's wsproxy does).
pub async fn next(socket: &mut Socket) -> Option<String> {
    loop {
        let message = tokio::time::timeout(STEP, socket.next())
            .await
            .expect("a message or the end within the step's bound");
        match message {
            Some(Ok(Message::Text(text))) => return Some(text.to_string()),
            Some(Ok(Message::Binary(bytes))) => {
                return Some(String::from_utf8_lossy(&bytes).into_owned());
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
            Some(Ok(Message::Close(_)) | Err(_)) | None => return None,
        }
    }
}

/// Every message until the server ends the connection.
pub async fn until_end(socket: &mut Socket) -> Vec<String> {
    let mut messages = Vec::new();
    while let Some(message) = next(socket).await {
        messages.push(message);
    }
    messages
}

/// One unary call over a WebSocket: `request` sent, the messages until the end.
pub async fn unary(endpoint: &str, path: &str, request: &str) -> Vec<String> {
    let (mut socket, _) = open(endpoint, path, None).await;
    send(&mut socket, request).await;
    until_end(&mut socket).await
}

/// A raw HTTP/1.1 handshake attempt: the status line, the `Sec-Websocket-Version`
/// header if any, and the body.
async fn handshake(endpoint: &str, method: &str, headers: &str) -> String {
    let authority = endpoint.trim_start_matches("http://");
    let mut stream = TcpStream::connect(authority).await.expect("connect");
    let request = format!(
        "{method} /v3/watch HTTP/1.1\r\nHost: {authority}\r\nConnection: Upgrade\r\n\
         Upgrade: websocket\r\n{headers}Content-Length: 0\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    // The answer ends with its body (`Content-Length`); the connection may stay open.
    loop {
        let n = tokio::time::timeout(STEP, stream.read(&mut buf))
            .await
            .expect("an answer within the step's bound")
            .expect("read");
        raw.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&raw).into_owned();
        if n == 0 || text.split_once("\r\n\r\n").is_some_and(|(_, body)| body.ends_with('\n')) {
            break;
        }
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.lines().next().unwrap_or("");
    let version = head
        .lines()
        .find_map(|line| {
            line.to_ascii_lowercase()
                .strip_prefix("sec-websocket-version:")
                .map(str::trim)
                .map(String::from)
        })
        .unwrap_or_default();
    format!("{status} | version {version} | {}", body.trim_end())
}

/// The session's transcript against `endpoint`, on a fresh single member.
pub async fn session(endpoint: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut log = |step: &str, messages: Vec<String>| {
        out.push(format!("{step}:"));
        out.extend(messages.into_iter().map(|m| format!("  {}", placeholders(&m))));
    };

    log(
        "put over a socket",
        unary(endpoint, "/v3/kv/put", r#"{"key":"YQ==","value":"MQ=="}"#).await,
    );
    log("range over /v3beta", unary(endpoint, "/v3beta/kv/range", r#"{"key":"YQ=="}"#).await);

    // A watch from revision 2 sees the put above, then one made while it is open.
    let (mut watch, _) = open(endpoint, "/v3/watch", None).await;
    send(&mut watch, r#"{"create_request":{"key":"YQ==","start_revision":"2"}}"#).await;
    let mut seen = vec![next(&mut watch).await.unwrap_or_default()];
    seen.push(next(&mut watch).await.unwrap_or_default());
    let put = unary(endpoint, "/v3/kv/put", r#"{"key":"YQ==","value":"Mg=="}"#).await;
    seen.push(next(&mut watch).await.unwrap_or_default());
    // Two requests in one message: a second watcher, then the first one cancelled.
    send(
        &mut watch,
        "{\"create_request\":{\"key\":\"Yg==\"}}\n{\"cancel_request\":{\"watch_id\":\"0\"}}",
    )
    .await;
    seen.push(next(&mut watch).await.unwrap_or_default());
    seen.push(next(&mut watch).await.unwrap_or_default());
    let _ = watch.close(None).await;
    log("second put", put);
    log("watch", seen);

    let grant = unary(endpoint, "/v3/lease/grant", r#"{"TTL":"60"}"#).await;
    let id = grant
        .first()
        .and_then(|g| g.split(r#""ID":""#).nth(1))
        .and_then(|rest| rest.split('"').next())
        .unwrap_or("0")
        .to_string();
    log("lease grant", grant);
    let (mut keepalive, _) = open(endpoint, "/v3/lease/keepalive", None).await;
    let mut kept = Vec::new();
    for _ in 0..2 {
        send(&mut keepalive, &format!(r#"{{"ID":"{id}"}}"#)).await;
        kept.push(next(&mut keepalive).await.unwrap_or_default());
    }
    log("keep-alives", kept);

    log("a body of the wrong type", unary(endpoint, "/v3/kv/range", r#"{"key":5}"#).await);
    log("a path nothing serves", unary(endpoint, "/v3/kv/nothing", "{}").await);
    log("a stream's error", unary(endpoint, "/v3/watch", r#"{"create_request":{"key":7}}"#).await);

    // Only the handshake: what the token does differs on purpose (docs/compatibility.md).
    let (_, chosen) = open(endpoint, "/v3/kv/range", Some("Bearer, not-a-token")).await;
    log("a token offered as a subprotocol", vec![format!("subprotocol {chosen:?}")]);

    let key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    log(
        "a handshake without a key",
        vec![handshake(endpoint, "GET", "Sec-WebSocket-Version: 13\r\n").await],
    );
    log(
        "a handshake of another version",
        vec![handshake(endpoint, "GET", &format!("{key}Sec-WebSocket-Version: 8\r\n")).await],
    );
    log(
        "a handshake that is not a GET",
        vec![handshake(endpoint, "POST", &format!("{key}Sec-WebSocket-Version: 13\r\n")).await],
    );
    out
}

/// `message` with the values that differ between servers replaced.
fn placeholders(message: &str) -> String {
    let mut out = message.to_string();
    for (field, placeholder) in
        [("cluster_id", "CLUSTER"), ("member_id", "MEMBER"), ("ID", "LEASE")]
    {
        let prefix = format!("\"{field}\":\"");
        let mut rest = out.as_str();
        let mut replaced = String::new();
        while let Some(at) = rest.find(&prefix) {
            let value_start = at + prefix.len();
            replaced.push_str(&rest[..value_start]);
            replaced.push_str(placeholder);
            let value_len = rest[value_start..].find('"').unwrap_or(0);
            rest = &rest[value_start + value_len..];
        }
        replaced.push_str(rest);
        out = replaced;
    }
    out
}
