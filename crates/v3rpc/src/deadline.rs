//! The client's gRPC deadline, carried into the server as etcd carries its request
//! context: a proposal still waiting when it passes is answered with etcd's
//! `UNAVAILABLE "etcdserver: request timed out"`, a read with `UNKNOWN "context deadline
//! exceeded"`.
//!
//! Why not leave it to tonic: tonic's server answers an expired `grpc-timeout` by
//! itself with `CANCELLED "Timeout expired"`, and etcd 3.4's Go client takes CANCELLED
//! as its own per-call timeout and resends the call, a Put or Txn included, to the next
//! endpoint: one client write would be applied twice. So the server's answer has to be
//! on the wire before tonic's timer fires. The client listeners no longer run tonic's
//! server (the binary serves them with hyper, `crates/oxetcd/src/serve.rs`), so there
//! the deadline is this module's alone; the in-process connection of Lock and Election
//! (`local.rs`) still is a tonic server, with its timer.

use std::time::{Duration, Instant};

use tonic::Request;

use crate::edge::GrpcRequest;

/// How much earlier than tonic's own timer (started as the request arrived) the server
/// gives up: enough for the answer to be written first, given a millisecond timer.
const ANSWER_AHEAD_OF_TONIC: Duration = Duration::from_millis(5);

/// The header in which a gRPC client sends its deadline.
const GRPC_TIMEOUT: &str = "grpc-timeout";

/// The longest timeout a `grpc-timeout` header can carry: 8 digits (gRPC's spec).
const MAX_TIMEOUT_DIGITS: usize = 8;

/// When the request arrived, stamped before tonic decodes it.
#[derive(Debug, Clone, Copy)]
struct Arrival(Instant);

/// Stamps a request that carries a deadline with its arrival time (the others need
/// none, and are spared the allocation).
pub(crate) fn stamp_arrival(request: &mut GrpcRequest) {
    if request.headers().contains_key(GRPC_TIMEOUT) {
        request.extensions_mut().insert(Arrival(Instant::now()));
    }
}

/// The timeout a `grpc-timeout` header in `headers` sets, if one does (the JSON gateway
/// takes its `Grpc-Timeout` header as its own client's deadline, as grpc-gateway does).
pub(crate) fn timeout_in(headers: &axum::http::HeaderMap) -> Option<Duration> {
    headers.get(GRPC_TIMEOUT)?.to_str().ok().and_then(parse)
}

/// When the server stops waiting for `request`: shortly before the client's deadline,
/// or never if the client sent none (the server's own request timeout still applies).
pub(crate) fn client_deadline<T>(request: &Request<T>) -> Option<Instant> {
    let timeout = request.metadata().get(GRPC_TIMEOUT)?.to_str().ok().and_then(parse)?;
    let arrived = request.extensions().get::<Arrival>().map_or_else(Instant::now, |a| a.0);
    Some(arrived + timeout.saturating_sub(ANSWER_AHEAD_OF_TONIC))
}

/// gRPC's `TimeoutValue TimeoutUnit`: up to 8 digits, then H, M, S, m, u or n.
fn parse(header: &str) -> Option<Duration> {
    let split = header.len().checked_sub(1)?;
    let (digits, unit) = header.split_at(split);
    if digits.is_empty()
        || digits.len() > MAX_TIMEOUT_DIGITS
        || !digits.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let value: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(value * 3600),
        "M" => Duration::from_secs(value * 60),
        "S" => Duration::from_secs(value),
        "m" => Duration::from_millis(value),
        "u" => Duration::from_micros(value),
        "n" => Duration::from_nanos(value),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_headers_parse_as_grpc_defines_them() {
        assert_eq!(parse("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse("1500m"), Some(Duration::from_millis(1500)));
        assert_eq!(parse("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse("99999999n"), Some(Duration::from_nanos(99_999_999)));
        assert_eq!(parse("100000000u"), None, "more than 8 digits");
        assert_eq!(parse("S"), None);
        assert_eq!(parse("10x"), None);
        assert_eq!(parse(""), None);
        assert_eq!(parse("-1S"), None);
        assert_eq!(parse("+1S"), None);
    }

    #[test]
    fn the_deadline_comes_ahead_of_tonics_timer() {
        let mut request = Request::new(());
        request.metadata_mut().insert("grpc-timeout", "2S".parse().unwrap());
        let arrived = Instant::now();
        request.extensions_mut().insert(Arrival(arrived));
        let deadline = client_deadline(&request).unwrap();
        assert_eq!(deadline, arrived + Duration::from_secs(2) - ANSWER_AHEAD_OF_TONIC);
        assert!(client_deadline(&Request::new(())).is_none());
    }
}
