//! The gateway's calls over WebSocket, as etcd 3.4 serves `/v3/` through
//! grpc-websocket-proxy's `wsproxy` (its users: browser dashboards, and programs such as
//! Vitastor's monitor that watch over `/v3/watch`).
//!
//! An upgrade request to a gateway path becomes the same call a `POST` to that path is:
//! each WebSocket message the client sends is one line of the request body (a JSON
//! request), and each non-empty line of the answer (a `{"result":…}` line of a stream,
//! or a unary call's JSON, or an error body) goes back as one text message. The call's
//! end closes the socket; the socket's end (a close frame, a broken connection) ends
//! the call, closing its request stream.
//!
//! The token travels as wsproxy takes it: from `Sec-WebSocket-Protocol: Bearer, <token>`
//! (browsers cannot set `Authorization` on a WebSocket) or from a `token` cookie.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{FromRequestParts, Request};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use http_body_util::BodyExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::{Gateway, STREAM_BUFFER, serve};
use crate::http::go_text;

/// The cookie wsproxy reads a token from (its `TokenCookieName`).
const TOKEN_COOKIE: &str = "token";

/// The subprotocol a client offers first to carry its token (`Bearer, <token>`), and
/// the one the server then answers with (gorilla/websocket's subprotocol choice).
const BEARER: &str = "Bearer";

/// Whether `headers` ask to switch to WebSocket (gorilla's `IsWebSocketUpgrade`): only
/// those requests are taken over; any other goes to the gateway as it is.
pub(super) fn is_upgrade(headers: &HeaderMap) -> bool {
    let has_token = |name: header::HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|value| value.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    };
    has_token(header::CONNECTION, "upgrade") && has_token(header::UPGRADE, "websocket")
}

/// Completes the handshake and serves the call over the socket. A handshake that is
/// not valid (not a GET, no key, another version) gets gorilla's status with Go's text
/// for it, as etcd answers.
pub(super) async fn upgrade(gateway: Arc<Gateway>, request: Request) -> Response {
    let (mut parts, _) = request.into_parts();
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => {
            let status = rejection.status();
            let text = status.canonical_reason().unwrap_or("Bad Request");
            let mut response = go_text(status, text);
            response
                .headers_mut()
                .insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
            return response;
        }
    };
    let offered = parts.headers.get(header::SEC_WEBSOCKET_PROTOCOL).and_then(|v| v.to_str().ok());
    let upgrade = if offered.is_some_and(|p| p.starts_with(BEARER)) {
        upgrade.protocols([BEARER])
    } else {
        upgrade
    };
    let call = call_request(&parts.uri, &parts.headers);
    upgrade
        .max_message_size(gateway.max_body_bytes)
        .on_upgrade(move |socket| relay(gateway, call, socket))
        .into_response()
}

/// The gateway request a WebSocket stands for: a `POST` to the same path (wsproxy's
/// method, which etcd's request mutator fixes to `POST`), with the token and the few
/// headers wsproxy forwards. Its body comes from the socket.
fn call_request(uri: &axum::http::Uri, headers: &HeaderMap) -> axum::http::request::Builder {
    let mut call = axum::http::Request::builder().method(Method::POST).uri(uri.clone());
    for name in [header::ORIGIN, header::REFERER] {
        if let Some(value) = headers.get(&name) {
            call = call.header(name, value.clone());
        }
    }
    if let Some(token) = token(headers)
        && let Ok(value) = HeaderValue::from_str(&token)
    {
        call = call.header(header::AUTHORIZATION, value);
    }
    call
}

/// The token the client sends: the `token` cookie, else the subprotocol after `Bearer,`.
///
/// wsproxy hands these on as `Authorization: Bearer <token>`, and etcd then takes the
/// whole value, `Bearer ` and all, as the token, so a WebSocket call with a token is
/// always refused (`etcdserver: invalid auth token`). The bare token is what the client
/// meant; oxetcd passes that.
fn token(headers: &HeaderMap) -> Option<String> {
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|cookies| cookies.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == TOKEN_COOKIE)
        .map(|(_, value)| value.to_string());
    cookie.or_else(|| {
        let protocols = headers.get(header::SEC_WEBSOCKET_PROTOCOL)?.to_str().ok()?;
        let (_, token) = protocols.split_once(&format!("{BEARER},"))?;
        Some(token.trim().to_string())
    })
}

/// Runs the call with the socket as its request body and its answer as the socket's
/// messages, until either side ends.
async fn relay(gateway: Arc<Gateway>, call: axum::http::request::Builder, socket: WebSocket) {
    let (mut to_client, mut from_client) = socket.split();
    let (requests, body) = mpsc::channel::<Result<Bytes, Infallible>>(STREAM_BUFFER);
    let Ok(call) = call.body(Body::from_stream(ReceiverStream::new(body))) else {
        return;
    };
    let read = async move {
        while let Some(Ok(message)) = from_client.next().await {
            let payload = match message {
                Message::Text(text) => Bytes::from(text),
                Message::Binary(bytes) => bytes,
                Message::Close(_) => return,
                // tungstenite answers pings itself.
                Message::Ping(_) | Message::Pong(_) => continue,
            };
            let mut line = BytesMut::with_capacity(payload.len() + 1);
            line.extend_from_slice(&payload);
            line.extend_from_slice(b"\n");
            if requests.send(Ok(line.freeze())).await.is_err() {
                return;
            }
        }
    };
    let write = async {
        let answer = serve(gateway, call).await;
        let mut lines = Lines::default();
        let mut body = answer.into_body();
        while let Some(Ok(frame)) = body.frame().await {
            let Ok(data) = frame.into_data() else { continue };
            for line in lines.push(&data) {
                if to_client.send(Message::Text(line.into())).await.is_err() {
                    return;
                }
            }
        }
        if let Some(line) = lines.rest()
            && to_client.send(Message::Text(line.into())).await.is_err()
        {
            return;
        }
        // wsproxy drops the connection here; a close frame tells the client the call
        // ended normally rather than broke.
        let close = CloseFrame { code: close_code::NORMAL, reason: "".into() };
        let _ = to_client.send(Message::Close(Some(close))).await;
    };
    // Whichever ends first ends the call: the other side is dropped with it.
    tokio::select! {
        () = read => {}
        () = write => {}
    }
}

/// Splits an answer's bytes into its non-empty lines (wsproxy's `bufio.Scanner`).
#[derive(Default)]
struct Lines {
    partial: Vec<u8>,
}

impl Lines {
    /// The lines `data` completes.
    fn push(&mut self, data: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        for piece in data.split_inclusive(|&b| b == b'\n') {
            self.partial.extend_from_slice(piece);
            if self.partial.last() == Some(&b'\n') {
                let line = std::mem::take(&mut self.partial);
                if let Some(line) = Self::text(line) {
                    lines.push(line);
                }
            }
        }
        lines
    }

    /// The last line, if the answer did not end with a newline (a unary call's JSON).
    fn rest(&mut self) -> Option<String> {
        Self::text(std::mem::take(&mut self.partial))
    }

    fn text(mut line: Vec<u8>) -> Option<String> {
        while matches!(line.last(), Some(b'\n' | b'\r')) {
            line.pop();
        }
        if line.is_empty() {
            return None;
        }
        Some(String::from_utf8_lossy(&line).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_split_into_its_non_empty_lines_across_chunks() {
        let mut lines = Lines::default();
        assert_eq!(lines.push(b"{\"result\":1}\n{\"res"), vec!["{\"result\":1}"]);
        assert_eq!(lines.push(b"ult\":2}\r\n\n"), vec!["{\"result\":2}"]);
        assert_eq!(lines.push(b"{\"header\":{}}"), Vec::<String>::new());
        assert_eq!(lines.rest().as_deref(), Some("{\"header\":{}}"));
        assert_eq!(lines.rest(), None);
    }

    #[test]
    fn the_token_comes_from_the_cookie_or_the_bearer_subprotocol() {
        let headers = |pairs: &[(header::HeaderName, &'static str)]| {
            let mut headers = HeaderMap::new();
            for (name, value) in pairs {
                headers.append(name.clone(), HeaderValue::from_static(value));
            }
            headers
        };
        let protocol = headers(&[(header::SEC_WEBSOCKET_PROTOCOL, "Bearer, abc.7")]);
        assert_eq!(token(&protocol).as_deref(), Some("abc.7"));
        // Browsers that leave out the space (wsproxy's comment names IE and Edge).
        let tight = headers(&[(header::SEC_WEBSOCKET_PROTOCOL, "Bearer,abc.7")]);
        assert_eq!(token(&tight).as_deref(), Some("abc.7"));
        let both = headers(&[
            (header::SEC_WEBSOCKET_PROTOCOL, "Bearer, abc.7"),
            (header::COOKIE, "theme=dark; token=xyz.9"),
        ]);
        assert_eq!(token(&both).as_deref(), Some("xyz.9"));
        assert_eq!(token(&headers(&[(header::SEC_WEBSOCKET_PROTOCOL, "chat")])), None);
        assert_eq!(token(&HeaderMap::new()), None);
    }

    #[test]
    fn only_a_request_naming_both_upgrade_tokens_is_taken_over() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, Upgrade"));
        assert!(!is_upgrade(&headers));
        headers.insert(header::UPGRADE, HeaderValue::from_static("WebSocket"));
        assert!(is_upgrade(&headers));
        headers.insert(header::UPGRADE, HeaderValue::from_static("h2c"));
        assert!(!is_upgrade(&headers));
    }
}
