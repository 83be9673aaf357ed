//! The cluster's endpoints as the proxy reaches them (etcd's proxy is a clientv3 client with
//! its round-robin balancer): one HTTP/2 connection per endpoint, shared by every call sent
//! there, dialed when first needed and again after it closes.
//!
//! Each call starts at the next endpoint in turn. An endpoint that cannot be dialed is
//! passed over (tried last) for [`ENDPOINT_COOLDOWN`], and the call goes on to the next
//! one; a call is sent to an endpoint only once its connection stands, and one whose
//! connection closed before it went out is taken back and sent elsewhere. A call that
//! reached an endpoint is never sent again: the cluster may have acted on it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper::http::uri::{Authority, PathAndQuery, Scheme};
use hyper::http::{Request, Response, Uri, header};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use oxetcd_tls::Connector;
use tonic::Status;
use tonic::body::Body;
use tower_service::Service;

/// How long dialing an endpoint (TCP, TLS, HTTP/2 preface) may take: etcd's grpc-proxy
/// gives its client `DialTimeout: 5 * time.Second` (etcdmain/grpc_proxy.go).
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(5);

/// How long an endpoint that could not be dialed is tried only after the others. Our
/// client crate's rotation uses the same second; grpc-go's balancer retries a failed
/// address with a backoff starting at one second.
const ENDPOINT_COOLDOWN: Duration = Duration::from_secs(1);

/// HTTP/2 pings on a connection with calls open, and how long an answer may take before
/// the connection counts as dead (so calls fail over instead of hanging on a member that
/// vanished without closing). 10 s stays above the 5 s minimum an etcd member enforces
/// (`--grpc-keepalive-min-time`); 20 s is etcd's `--grpc-keepalive-timeout` default.
/// Idle connections are not pinged: etcd members punish pings without calls.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// Where an endpoint is and how calls address it.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    /// What the connector dials (`http`, `https`, `unix` or `unixs`).
    dial: Uri,
    /// The `:scheme` and `:authority` of the calls sent there.
    scheme: Scheme,
    authority: Authority,
}

/// One cluster endpoint and its connection.
struct Upstream {
    endpoint: Endpoint,
    connection: tokio::sync::Mutex<Option<http2::SendRequest<Body>>>,
    down_since: Mutex<Option<Instant>>,
}

/// The endpoints and how they are dialed.
pub(crate) struct Upstreams {
    endpoints: Vec<Upstream>,
    next: AtomicUsize,
    /// Dials for gRPC (TLS with ALPN `h2`).
    grpc: Connector,
    /// Dials for plain HTTP/1.1 requests (`/metrics`: an etcd member serves it over
    /// HTTP/1 only on a plaintext port).
    http1: Connector,
}

/// An endpoint as a URL: `host:port` takes `https` when the proxy dials the cluster with
/// TLS and `http` otherwise (clientv3 3.4 does the same); a scheme given is kept.
pub(crate) fn endpoint_url(given: &str, tls: bool) -> Result<Endpoint, String> {
    let given = given.trim_end_matches('/');
    let url = if given.contains("://") {
        given.to_string()
    } else {
        format!("{}://{given}", if tls { "https" } else { "http" })
    };
    let uri: Uri = url.parse().map_err(|e| format!("invalid endpoint {given:?}: {e}"))?;
    let secure = match uri.scheme_str() {
        Some("http" | "unix") => false,
        Some("https" | "unixs") => true,
        _ => return Err(format!("invalid endpoint {given:?}: the scheme must be http or https")),
    };
    if secure && !tls {
        return Err(format!(
            "endpoint {given:?} needs TLS to the cluster: give --cacert (or --insecure-skip-tls-verify)"
        ));
    }
    let tcp = matches!(uri.scheme_str(), Some("http" | "https"));
    match uri.authority().cloned() {
        Some(authority) if !tcp || authority.port_u16().is_some() => Ok(Endpoint {
            scheme: if secure { Scheme::HTTPS } else { Scheme::HTTP },
            authority,
            dial: uri,
        }),
        _ => Err(format!("invalid endpoint {given:?}: it needs a host and a port")),
    }
}

impl Upstreams {
    /// The endpoints (from [`endpoint_url`]), dialed with `tls` for `https`/`unixs`.
    pub(crate) fn new(
        endpoints: Vec<Endpoint>,
        tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    ) -> Self {
        let endpoints = endpoints
            .into_iter()
            .map(|endpoint| Upstream {
                endpoint,
                connection: tokio::sync::Mutex::new(None),
                down_since: Mutex::new(None),
            })
            .collect();
        let http1_tls = tls.as_ref().map(|config| {
            let mut config = (**config).clone();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            std::sync::Arc::new(config)
        });
        Upstreams {
            endpoints,
            next: AtomicUsize::new(0),
            grpc: Connector::new(tls),
            http1: Connector::new(http1_tls),
        }
    }

    /// The endpoints' URLs.
    pub(crate) fn urls(&self) -> impl Iterator<Item = &Uri> {
        self.endpoints.iter().map(|e| &e.endpoint.dial)
    }

    /// The order this call tries the endpoints in: from the next in turn, those in
    /// cooldown last.
    fn order(&self) -> Vec<&Upstream> {
        let n = self.endpoints.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut order: Vec<&Upstream> = (0..n).map(|i| &self.endpoints[(start + i) % n]).collect();
        order.sort_by_key(|e| e.cooling_down());
        order
    }

    /// Sends a gRPC call (its path, headers and body stream) to an endpoint and returns
    /// the response as it arrives: headers now, the body streaming.
    pub(crate) async fn send(&self, request: Request<Body>) -> Result<Response<Incoming>, Status> {
        let (mut parts, body) = request.into_parts();
        let path = parts.uri.path_and_query().cloned().unwrap_or(PathAndQuery::from_static("/"));
        // An HTTP/1 client's `Host` has no place in an HTTP/2 call; `:authority` says it.
        parts.headers.remove(header::HOST);
        let mut request = Request::from_parts(parts, body);
        let mut last_error = String::from("no endpoint");
        for upstream in self.order() {
            let mut connection = match upstream.connection(&self.grpc).await {
                Ok(connection) => connection,
                Err(e) => {
                    last_error = e;
                    continue;
                }
            };
            *request.uri_mut() = upstream.uri(&path);
            match connection.try_send_request(request).await {
                Ok(response) => return Ok(response),
                Err(mut e) => match e.take_message() {
                    // The connection closed before the call went out: it goes elsewhere.
                    Some(unsent) => {
                        last_error = format!("{}: {}", upstream.endpoint.dial, e.error());
                        request = unsent;
                    }
                    None => {
                        return Err(Status::unavailable(format!(
                            "error reading from server: {}",
                            e.error()
                        )));
                    }
                },
            }
        }
        Err(Status::unavailable(format!(
            "all endpoints are unreachable; latest connection error: {last_error}"
        )))
    }

    /// `GET path` over HTTP/1.1 on the first endpoint that answers, in the calls' rotation.
    pub(crate) async fn get_http1(&self, path: &'static str) -> Result<Response<Incoming>, String> {
        let mut last_error = String::from("no endpoint");
        for upstream in self.order() {
            match upstream.get_http1(&self.http1, path).await {
                Ok(response) => return Ok(response),
                Err(e) => last_error = e,
            }
        }
        Err(last_error)
    }
}

impl Upstream {
    fn cooling_down(&self) -> bool {
        let down_since = self.down_since.lock().unwrap_or_else(|e| e.into_inner());
        down_since.is_some_and(|since| since.elapsed() < ENDPOINT_COOLDOWN)
    }

    fn set_down(&self, down: bool) {
        let mut down_since = self.down_since.lock().unwrap_or_else(|e| e.into_inner());
        *down_since = down.then(Instant::now);
    }

    fn uri(&self, path: &PathAndQuery) -> Uri {
        let mut parts = hyper::http::uri::Parts::default();
        parts.scheme = Some(self.endpoint.scheme.clone());
        parts.authority = Some(self.endpoint.authority.clone());
        parts.path_and_query = Some(path.clone());
        // Scheme, authority and path are each valid already.
        Uri::from_parts(parts).unwrap_or_default()
    }

    /// The endpoint's connection, dialed first if there is none or it closed. Callers
    /// arriving meanwhile wait for the one dial.
    async fn connection(&self, connector: &Connector) -> Result<http2::SendRequest<Body>, String> {
        let mut slot = self.connection.lock().await;
        if let Some(connection) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(connection.clone());
        }
        *slot = None;
        match self.dial_http2(connector).await {
            Ok(connection) => {
                self.set_down(false);
                *slot = Some(connection.clone());
                Ok(connection)
            }
            Err(e) => {
                self.set_down(true);
                tracing::warn!(endpoint = %self.endpoint.dial, error = %e, "cannot reach endpoint");
                Err(format!("{}: {e}", self.endpoint.dial))
            }
        }
    }

    async fn dial_http2(&self, connector: &Connector) -> Result<http2::SendRequest<Body>, String> {
        let io = dial(connector, &self.endpoint.dial).await?;
        let mut builder = http2::Builder::new(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(false);
        let (send, connection) =
            builder.handshake(io).await.map_err(|e| format!("HTTP/2 handshake: {e}"))?;
        let endpoint = self.endpoint.dial.clone();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%endpoint, error = %e, "connection to endpoint closed");
            }
        });
        Ok(send)
    }

    async fn get_http1(
        &self,
        connector: &Connector,
        path: &'static str,
    ) -> Result<Response<Incoming>, String> {
        let io = dial(connector, &self.endpoint.dial).await?;
        let (mut send, connection) = http1::handshake::<_, Body>(io)
            .await
            .map_err(|e| format!("{}: {e}", self.endpoint.dial))?;
        tokio::spawn(async move {
            // Ends once the response is read (nothing else is sent on it).
            let _ = connection.await;
        });
        let request = Request::get(path)
            .header(header::HOST, self.endpoint.authority.as_str())
            .body(Body::empty())
            .map_err(|e| e.to_string())?;
        send.send_request(request).await.map_err(|e| format!("{}: {e}", self.endpoint.dial))
    }
}

async fn dial(
    connector: &Connector,
    uri: &Uri,
) -> Result<hyper_util::rt::TokioIo<oxetcd_tls::Stream>, String> {
    match tokio::time::timeout(DIAL_TIMEOUT, connector.clone().call(uri.clone())).await {
        Ok(Ok(io)) => Ok(io),
        Ok(Err(e)) => Err(format!("dial: {}", oxetcd_tls::describe(&e))),
        Err(_) => Err(format!("dial: timed out after {DIAL_TIMEOUT:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_become_urls_as_clientv3_reads_them() {
        let url = |given: &str, tls: bool| endpoint_url(given, tls).map(|e| e.dial.to_string());
        assert_eq!(url("127.0.0.1:2379", false).unwrap(), "http://127.0.0.1:2379/");
        assert_eq!(url("127.0.0.1:2379", true).unwrap(), "https://127.0.0.1:2379/");
        assert_eq!(url("http://localhost:2379/", true).unwrap(), "http://localhost:2379/");
        assert!(url("https://localhost:2379", false).unwrap_err().contains("needs TLS"));
        assert!(url("127.0.0.1", false).unwrap_err().contains("host and a port"));
        assert!(url("ftp://x:1", false).is_err());
    }

    #[tokio::test]
    async fn an_endpoint_that_cannot_be_dialed_is_tried_last() {
        // A port nothing listens on: bound, then closed.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead = listener.local_addr().unwrap();
        drop(listener);
        let endpoints = vec![
            endpoint_url(&dead.to_string(), false).unwrap(),
            endpoint_url("127.0.0.1:1", false).unwrap(),
        ];
        let upstreams = Upstreams::new(endpoints, None);
        let request = Request::post("/etcdserverpb.KV/Range").body(Body::empty()).unwrap();
        let status = upstreams.send(request).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert!(status.message().contains("all endpoints are unreachable"), "{status:?}");
        assert!(upstreams.endpoints.iter().all(Upstream::cooling_down));
    }
}
