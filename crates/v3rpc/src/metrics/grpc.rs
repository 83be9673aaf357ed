//! Counting gRPC calls as go-grpc-prometheus counts them for etcd: calls started and
//! handled (by code), messages received and sent, and (with `--metrics extensive`) the
//! handling time, per method. Each method's counters are atomics in a table built once
//! from the API's method list (`oxetcd_api::GRPC_METHODS`), so a call costs a lookup and
//! a few relaxed adds; only streams get their bodies wrapped (to count messages and see
//! how they end).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::Frame;
use oxetcd_stats::Histogram;
use tonic::Status;
use tonic::body::Body;

use crate::edge::{GrpcRequest, GrpcResponse};

/// go-grpc-prometheus' handling-time buckets: Prometheus' `DefBuckets`, in nanoseconds.
static HANDLING_BOUNDS: [u64; 11] = [
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// gRPC's codes by number, named as grpc-go's `codes.Code.String()` names them.
pub const CODES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];
const OK: usize = 0;
const CANCELED: usize = 1;
const UNKNOWN: usize = 2;

/// Packages whose services are counted. etcd registers its metrics for the
/// `etcdserverpb` services up front (they are listed at zero before any call); the lock
/// and election services are registered after, so they appear once called.
const LISTED_UP_FRONT: &str = "etcdserverpb.";
const COUNTED: [&str; 3] = [LISTED_UP_FRONT, "v3lockpb.", "v3electionpb."];

/// A method's streaming kind, as the `grpc_type` label names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallType {
    Unary,
    ClientStream,
    ServerStream,
    BidiStream,
}

impl CallType {
    pub fn label(self) -> &'static str {
        match self {
            CallType::Unary => "unary",
            CallType::ClientStream => "client_stream",
            CallType::ServerStream => "server_stream",
            CallType::BidiStream => "bidi_stream",
        }
    }
}

/// One method's counters.
#[derive(Debug)]
pub struct MethodStats {
    /// `/package.Service/Method`.
    pub path: String,
    pub service: String,
    pub method: String,
    pub call_type: CallType,
    /// Listed even before its first call.
    pub up_front: bool,
    pub started: AtomicU64,
    pub handled: [AtomicU64; CODES.len()],
    /// Messages received on client and bidi streams; see [`MethodStats::received`].
    msg_received: AtomicU64,
    /// Messages sent on streams; see [`MethodStats::sent`].
    msg_sent: AtomicU64,
    pub handling: Histogram,
}

impl MethodStats {
    /// Whether requests come as a stream of messages.
    fn streams_in(&self) -> bool {
        matches!(self.call_type, CallType::ClientStream | CallType::BidiStream)
    }

    /// Messages received. A call that is not a client stream receives exactly one once
    /// it starts, so its count is the calls started: a unary call, the hot path, costs
    /// two shared atomic adds (started, handled) rather than four.
    pub fn received(&self) -> u64 {
        let counter = if self.streams_in() { &self.msg_received } else { &self.started };
        counter.load(Ordering::Relaxed)
    }

    /// Messages sent. A unary call sends one exactly when it ends OK.
    pub fn sent(&self) -> u64 {
        let counter =
            if self.call_type == CallType::Unary { &self.handled[OK] } else { &self.msg_sent };
        counter.load(Ordering::Relaxed)
    }
}

/// Every counted method, sorted by path.
#[derive(Debug)]
pub struct GrpcStats {
    methods: Vec<MethodStats>,
    /// Whether handling times are measured (`--metrics extensive`).
    timed: bool,
}

impl GrpcStats {
    pub fn new(timed: bool) -> GrpcStats {
        let counted = oxetcd_api::GRPC_METHODS
            .iter()
            .filter(|m| COUNTED.iter().any(|package| m.service.starts_with(package)));
        let mut methods: Vec<_> = counted
            .map(|m| MethodStats {
                path: format!("/{}/{}", m.service, m.method),
                service: m.service.to_string(),
                method: m.method.to_string(),
                call_type: match (m.client_streaming, m.server_streaming) {
                    (false, false) => CallType::Unary,
                    (true, false) => CallType::ClientStream,
                    (false, true) => CallType::ServerStream,
                    (true, true) => CallType::BidiStream,
                },
                up_front: m.service.starts_with(LISTED_UP_FRONT),
                started: AtomicU64::new(0),
                handled: std::array::from_fn(|_| AtomicU64::new(0)),
                msg_received: AtomicU64::new(0),
                msg_sent: AtomicU64::new(0),
                handling: Histogram::new(&HANDLING_BOUNDS),
            })
            .collect();
        methods.sort_by(|a, b| a.path.cmp(&b.path));
        GrpcStats { methods, timed }
    }

    pub fn methods(&self) -> &[MethodStats] {
        &self.methods
    }

    pub fn timed(&self) -> bool {
        self.timed
    }

    fn find(&self, path: &str) -> Option<usize> {
        self.methods.binary_search_by(|m| m.path.as_str().cmp(path)).ok()
    }

    fn finish(&self, method: usize, code: usize, started: Instant) {
        let m = &self.methods[method];
        m.handled[code].fetch_add(1, Ordering::Relaxed);
        if self.timed {
            m.handling.observe(started.elapsed());
        }
    }
}

/// A counted call, from its start to its answer. Dropped unanswered, it counts as
/// `Canceled`: its handler was dropped because the client went away, which grpc-go
/// reports so.
pub struct Call {
    stats: Arc<GrpcStats>,
    method: usize,
    started: Instant,
    answered: bool,
}

impl Call {
    /// Starts counting a call if it is to a counted method; a stream's request body is
    /// wrapped to count its messages.
    pub fn start(stats: &Arc<GrpcStats>, request: &mut GrpcRequest) -> Option<Call> {
        let method = stats.find(request.uri().path())?;
        let m = &stats.methods[method];
        m.started.fetch_add(1, Ordering::Relaxed);
        if m.streams_in() {
            let counted =
                Counted::new(std::mem::take(request.body_mut()), stats, method, Side::Received);
            *request.body_mut() = Body::new(counted);
        }
        Some(Call { stats: Arc::clone(stats), method, started: Instant::now(), answered: false })
    }

    /// Counts the answer: its code if it is known now, or as its stream ends.
    pub fn answered(mut self, response: GrpcResponse) -> GrpcResponse {
        self.answered = true;
        let (stats, method, started) = (&self.stats, self.method, self.started);
        // An error before any message is a trailers-only answer: its status is a header.
        if let Some(code) = header_code(response.headers()) {
            stats.finish(method, code, started);
            return response;
        }
        if stats.methods[method].call_type == CallType::Unary {
            // A unary answer that starts without a status carries the message and ends OK.
            stats.finish(method, OK, started);
            return response;
        }
        let (parts, body) = response.into_parts();
        let mut counted = Counted::new(body, stats, method, Side::Sent);
        counted.ending = Some(started);
        GrpcResponse::from_parts(parts, Body::new(counted))
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        if !self.answered {
            self.stats.finish(self.method, CANCELED, self.started);
        }
    }
}

/// The `grpc-status` in `headers`, as an index into [`CODES`].
fn header_code(headers: &axum::http::HeaderMap) -> Option<usize> {
    let status = headers.get("grpc-status")?;
    let code = status.to_str().ok().and_then(|s| s.parse::<usize>().ok());
    Some(code.filter(|&c| c < CODES.len()).unwrap_or(UNKNOWN))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Received,
    Sent,
}

/// A stream's body, counting the gRPC messages that pass (each is a 5-byte prefix, a
/// flag and a length, then the payload) and, on the answer's side, how the call ends:
/// the code in its trailers, or `Canceled` if the body is dropped before them.
struct Counted {
    inner: Body,
    stats: Arc<GrpcStats>,
    method: usize,
    side: Side,
    prefix: [u8; 5],
    prefix_len: usize,
    payload_left: u64,
    /// On the answer's side, until the call's end is recorded: when the call started.
    ending: Option<Instant>,
}

impl Counted {
    fn new(inner: Body, stats: &Arc<GrpcStats>, method: usize, side: Side) -> Counted {
        Counted {
            inner,
            stats: Arc::clone(stats),
            method,
            side,
            prefix: [0; 5],
            prefix_len: 0,
            payload_left: 0,
            ending: None,
        }
    }

    /// Counts the messages that start in `data`.
    fn count(&mut self, mut data: &[u8]) {
        let mut started = 0;
        while !data.is_empty() {
            if self.payload_left > 0 {
                let skip = data.len().min(usize::try_from(self.payload_left).unwrap_or(usize::MAX));
                self.payload_left -= skip as u64;
                data = &data[skip..];
                continue;
            }
            let take = (5 - self.prefix_len).min(data.len());
            self.prefix[self.prefix_len..self.prefix_len + take].copy_from_slice(&data[..take]);
            self.prefix_len += take;
            data = &data[take..];
            if self.prefix_len == 5 {
                started += 1;
                let len = [self.prefix[1], self.prefix[2], self.prefix[3], self.prefix[4]];
                self.payload_left = u64::from(u32::from_be_bytes(len));
                self.prefix_len = 0;
            }
        }
        if started > 0 {
            let m = &self.stats.methods[self.method];
            let counter = match self.side {
                Side::Received => &m.msg_received,
                Side::Sent => &m.msg_sent,
            };
            counter.fetch_add(started, Ordering::Relaxed);
        }
    }

    fn end(&mut self, code: usize) {
        if let Some(started) = self.ending.take() {
            self.stats.finish(self.method, code, started);
        }
    }
}

impl http_body::Body for Counted {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let data = data.clone();
                    self.count(&data);
                } else if let Some(trailers) = frame.trailers_ref() {
                    let code = header_code(trailers).unwrap_or(OK);
                    self.end(code);
                }
            }
            Poll::Ready(Some(Err(_))) => self.end(UNKNOWN),
            Poll::Ready(None) => self.end(OK),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.end(CANCELED);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(len: u32) -> Vec<u8> {
        let mut f = vec![0];
        f.extend_from_slice(&len.to_be_bytes());
        f.extend(std::iter::repeat_n(7, len as usize));
        f
    }

    #[test]
    fn messages_are_counted_across_any_split() {
        let stats = Arc::new(GrpcStats::new(false));
        let watch = stats.find("/etcdserverpb.Watch/Watch").expect("Watch is counted");
        let bytes: Vec<u8> = [frame(3), frame(0), frame(300)].concat();
        for split in [1, 2, 4, 5, 7, 64, bytes.len()] {
            let before = stats.methods[watch].sent();
            let mut counted = Counted::new(Body::empty(), &stats, watch, Side::Sent);
            for chunk in bytes.chunks(split) {
                counted.count(chunk);
            }
            let after = stats.methods[watch].sent();
            assert_eq!(after - before, 3, "split every {split} bytes");
        }
    }

    #[test]
    fn the_table_has_etcds_methods_and_types() {
        let stats = GrpcStats::new(false);
        let kind = |path: &str| stats.find(path).map(|i| stats.methods[i].call_type);
        assert_eq!(kind("/etcdserverpb.KV/Put"), Some(CallType::Unary));
        assert_eq!(kind("/etcdserverpb.Watch/Watch"), Some(CallType::BidiStream));
        assert_eq!(kind("/etcdserverpb.Lease/LeaseKeepAlive"), Some(CallType::BidiStream));
        assert_eq!(kind("/etcdserverpb.Maintenance/Snapshot"), Some(CallType::ServerStream));
        assert_eq!(kind("/v3electionpb.Election/Observe"), Some(CallType::ServerStream));
        assert_eq!(kind("/etcdserverpb.KV/Nope"), None);
        let up_front = stats.methods.iter().filter(|m| m.up_front).count();
        assert!(up_front >= 40, "every etcdserverpb method is listed: {up_front}");
    }

    #[test]
    fn the_method_list_is_the_descriptors_methods() {
        let pool = prost_reflect::DescriptorPool::decode(oxetcd_api::FILE_DESCRIPTOR_SET).unwrap();
        let described: Vec<_> = pool
            .services()
            .flat_map(|service| {
                service
                    .methods()
                    .map(|m| {
                        let shape = (m.is_client_streaming(), m.is_server_streaming());
                        (service.full_name().to_string(), m.name().to_string(), shape)
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        let listed: Vec<_> = oxetcd_api::GRPC_METHODS
            .iter()
            .map(|m| {
                let shape = (m.client_streaming, m.server_streaming);
                (m.service.to_string(), m.method.to_string(), shape)
            })
            .collect();
        assert_eq!(listed, described);
    }
}
