//! The client listeners' HTTP server: hyper directly, with one service for every
//! connection (a member's client port, or the gRPC proxy).
//!
//! Why not tonic's server, as the peer and metrics listeners use: for every call it
//! clones a boxed copy of the service and boxes its future again, wraps the call in a
//! tracing span, error recovery and its own `grpc-timeout` timer, and its timer answers
//! an expired call `CANCELLED` by itself, which etcd's Go client takes as its own
//! timeout and retries on another endpoint (`oxetcd_v3rpc`'s `deadline.rs` has the
//! story). Here a call costs what the client port costs; a call whose client gives up
//! ends when the client resets its stream, as in etcd's gRPC server, and the handlers
//! that wait on raft stop at the client's deadline themselves.

use std::cell::RefCell;
use std::convert::Infallible;
use std::pin::pin;
use std::time::{Duration, SystemTime};

use hyper::body::Incoming;
use hyper::header::{DATE, Entry, HeaderValue};
use hyper::{Request, Response, Version};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use oxetcd_tls::Conn;
use tokio::task::JoinSet;
use tokio_stream::{Stream, StreamExt};
use tonic::body::Body;
use tonic::transport::server::Connected;
use tower_service::Service;

use crate::coalesce::{CoalescedWrites, InFlight};
use crate::connection::{ConnectionStreams, drive};

/// HTTP/2 settings of a client listener (etcd's `--max-concurrent-streams`,
/// `--grpc-keepalive-interval` and `--grpc-keepalive-timeout`).
#[derive(Debug, Clone, Copy)]
pub struct ClientHttp2 {
    /// `None`: no limit, etcd's default.
    pub max_concurrent_streams: Option<u32>,
    /// Pings an idle client at this interval and drops it if no answer comes within the
    /// timeout; `None`: never.
    pub keepalive: Option<(Duration, Duration)>,
}

impl ClientHttp2 {
    /// A connection's HTTP server, whose streams `streams` runs.
    fn builder(&self, streams: ConnectionStreams) -> auto::Builder<ConnectionStreams> {
        let mut builder = auto::Builder::new(streams);
        // hyper enforces its HTTP/1 header read timeout only with a timer.
        builder.http1().timer(TokioTimer::new());
        // No `date` on HTTP/2 responses from hyper: etcd's gRPC server sends none, and
        // etcd's Go client keeps each header it does not know as the call's metadata, in
        // a map it allocates for every response that has one (grpc-go's
        // `operateHeaders`). The other HTTP/2 responses get theirs from `with_date`, as
        // Go's HTTP server gives them one.
        // `max_concurrent_streams` is set even when `None`: hyper's own default is 200.
        builder
            .http2()
            .timer(TokioTimer::new())
            .auto_date_header(false)
            .max_concurrent_streams(self.max_concurrent_streams);
        if let Some((interval, timeout)) = self.keepalive {
            builder.http2().keep_alive_interval(interval).keep_alive_timeout(timeout);
        }
        builder
    }
}

/// Whether the response to `request` is to be given a `date` here: an HTTP/2 request
/// that is not a gRPC call (hyper dates HTTP/1 responses itself; see
/// [`ClientHttp2::builder`] for HTTP/2).
fn needs_date<B>(request: &Request<B>) -> bool {
    request.version() == Version::HTTP_2 && !oxetcd_api::is_grpc(request.headers())
}

/// Gives `response` a `date` of now unless it has one.
fn with_date<B>(response: &mut Response<B>) {
    if let Entry::Vacant(date) = response.headers_mut().entry(DATE) {
        let now = httpdate::fmt_http_date(SystemTime::now());
        // An HTTP date is ASCII: always a valid header value.
        if let Ok(now) = HeaderValue::try_from(now) {
            date.insert(now);
        }
    }
}

/// Serves `port` (a member's [`oxetcd_v3rpc::ClientPort`], or the gRPC proxy) on each connection
/// `incoming` yields until `stop` completes, then lets every open connection finish what
/// it is serving (HTTP/2 `GOAWAY`) and returns.
///
/// The connections' tasks belong to this future: dropping it (a caller whose grace
/// period ran out aborts it) ends every connection still open, with the requests it
/// was serving.
pub async fn serve_client_port<S>(
    incoming: impl Stream<Item = std::io::Result<Conn>>,
    port: S,
    http2: ClientHttp2,
    stop: impl Future<Output = ()>,
) where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let mut stop = pin!(stop);
    let mut incoming = Box::pin(incoming);
    loop {
        let conn = tokio::select! {
            () = &mut stop => break,
            // Reaps the connections that ended, so the set holds only the open ones.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            conn = incoming.next() => match conn {
                Some(Ok(conn)) => conn,
                // The listener logged it and goes on accepting.
                Some(Err(_)) => continue,
                None => break,
            },
        };
        // Each request over TLS carries its connection's identity in its extensions, as
        // the services read it (auth's common name, the HTTP access check). A plaintext
        // connection has none to carry: its requests are spared an extension map each.
        let info = conn.connect_info();
        let info = info.identity.is_some().then_some(info);
        // hyper calls a connection's service through `&`; a tower service is called
        // through `&mut`, and its answer owns what it needs. Borrowing the connection's
        // copy for the call, rather than cloning it for every request, saves a dozen
        // reference counts shared by every connection's calls (one per gRPC service).
        let port = RefCell::new(port.clone());
        // Counts the connection's requests, for its writes to be coalesced (coalesce.rs)
        // and its streams to run in its task or not (connection.rs).
        let in_flight = InFlight::default();
        let io = TokioIo::new(CoalescedWrites::new(conn, in_flight.clone()));
        let requests = in_flight.clone();
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let mut request = request.map(Body::new);
            if let Some(info) = &info {
                request.extensions_mut().insert(info.clone());
            }
            let dated = needs_date(&request);
            let serving = requests.enter();
            let answer = port.borrow_mut().call(request);
            async move {
                let mut response = answer.await.unwrap_or_else(|e| match e {});
                drop(serving);
                if dated {
                    with_date(&mut response);
                }
                Ok::<_, Infallible>(response)
            }
        });
        let streams = ConnectionStreams::new(in_flight);
        // With upgrades: the JSON gateway's streams are served over WebSocket too.
        let connection =
            http2.builder(streams.clone()).serve_connection_with_upgrades(io, service).into_owned();
        let connection = drive(graceful.watch(connection), streams);
        connections.spawn(async move {
            // A connection's end is the client's business (reset, closed, broken).
            let _ = connection.await;
        });
    }
    // The listening socket closes before the connections drain: the port is free for a
    // restart, and new clients are refused rather than left waiting.
    drop(incoming);
    graceful.shutdown().await;
}
