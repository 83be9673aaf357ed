//! Failpoints armed and disarmed while a member runs, through its failpoint control over
//! HTTP: the binary built with the `failpoints` feature serves it where
//! `OXETCD_FAILPOINTS_HTTP` says (`PUT /<name>` arms with the actions as the body,
//! `DELETE /<name>` disarms; `crates/etcdserver/src/failpoint_http.rs`). The failpoints of
//! the transport that drop peer messages by direction are named here.
//!
//! The names are the binary's interface, written here as the harness writes flags and
//! the storage failpoints' names: it drives the binary from outside and depends on no
//! server crate. A name that drifted from the binary's fails the process tests that arm
//! it (`crates/oxetcd/tests/{cluster_process,robustness}.rs`).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The environment variable that tells a member where to serve its failpoint control.
pub const ADDRESS_ENV: &str = "OXETCD_FAILPOINTS_HTTP";
/// Drops what the member sends to the peers its argument names (hex ids, comma-separated;
/// none: every peer), message by message; connections stay up.
pub const DROP_SEND: &str = "rafthttp::drop-send";
/// Discards what the member receives from the peers its argument names.
pub const DROP_RECEIVE: &str = "rafthttp::drop-receive";

/// One request to the control, from connecting to the last byte of the answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Arms `failpoint` with `actions` (the `fail` crate's syntax) on the member whose
/// control listens at `address` (`ip:port`).
pub async fn arm(address: &str, failpoint: &str, actions: &str) -> Result<(), String> {
    request(address, "PUT", failpoint, actions).await
}

/// Disarms `failpoint` on the member at `address`; disarming one that is not armed is
/// an error (the control answers 404).
pub async fn disarm(address: &str, failpoint: &str) -> Result<(), String> {
    request(address, "DELETE", failpoint, "").await
}

/// Sends one request and expects `204 No Content`; any other answer is the error, with
/// its body.
async fn request(address: &str, method: &str, failpoint: &str, body: &str) -> Result<(), String> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(address).await?;
        let request = format!(
            "{method} /{failpoint} HTTP/1.1\r\nHost: {address}\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    let what = format!("{method} {failpoint} on {address}");
    let response = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("{what}: no answer within {REQUEST_TIMEOUT:?}"))?
        .map_err(|e| format!("{what}: {e}"))?;
    let (head, answer) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status_line = head.lines().next().unwrap_or_default();
    if status_line.split_whitespace().nth(1) == Some("204") {
        Ok(())
    } else {
        Err(format!("{what}: {status_line}: {}", answer.trim()))
    }
}
