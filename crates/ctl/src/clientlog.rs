//! The one log line of etcd's Go client that etcdctl users (and etcd's e2e tests) see: a
//! JSON warning on stderr for each failed call (`retrying of unary invoker failed`),
//! written by clientv3's retry interceptor whether or not it retries.

use std::hash::{BuildHasher, Hasher};

use oxetcd_client::Error;
use tonic::Code;

use crate::go;

/// Logs a failed call to `endpoints` as clientv3 3.4 does.
pub fn failed_call(endpoints: &[String], err: &Error) {
    let error = match err {
        // A broken connection reads differently in every transport (Go's, tonic's): it
        // is not logged; a server's answer is.
        Error::Grpc { status }
            if matches!(
                status.code(),
                Code::Unavailable | Code::Internal | Code::Unknown | Code::Cancelled
            ) =>
        {
            return;
        }
        Error::Etcd { status, .. } | Error::Grpc { status } => {
            oxetcd_client::go_status_text(status)
        }
        Error::Timeout | Error::Unreachable { .. } => {
            "rpc error: code = DeadlineExceeded desc = context deadline exceeded".to_string()
        }
        _ => return,
    };
    let target = format!(
        "endpoint://client-{}/{}",
        client_id(),
        endpoints.first().map(String::as_str).unwrap_or_default()
    );
    crate::output::stderr(&format!(
        "{{\"level\":\"warn\",\"ts\":{},\"caller\":\"clientv3/retry_interceptor.go:62\",\"msg\":\"retrying of unary invoker failed\",\"target\":{},\"attempt\":0,\"error\":{}}}\n",
        go::json_string(&timestamp()),
        go::json_string(&target),
        go::json_string(&error)
    ));
}

/// A random client id in the UUID form clientv3 names its resolver with.
fn client_id() -> String {
    let random = |salt: u64| {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(salt);
        hasher.finish()
    };
    let (a, b) = (random(1), random(2));
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | (b >> 48 & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

/// zap's ISO 8601 time, in milliseconds, UTC: `2006-01-02T15:04:05.000Z`.
fn timestamp() -> String {
    format!("{}Z", go::utc_now('T', 3))
}
