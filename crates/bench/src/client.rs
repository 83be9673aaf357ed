//! Connections to the endpoints (one oxetcd-client `Client` per connection), and
//! finding the leader.

use std::time::Duration;

use oxetcd_client::{Client, ClientOptions};
use oxetcd_tls::ClientTls;

use crate::args::endpoint_url;
use crate::error::BenchError;

/// One client, and so one HTTP/2 connection, to `url` (over TLS for `https://`, with
/// `tls`). Retries are off: every op the report counts is one request.
async fn dial(url: &str, tls: Option<&ClientTls>, timeout: Duration) -> Result<Client, BenchError> {
    let mut options = ClientOptions::default().with_dial_timeout(timeout).with_max_retries(0);
    if let Some(tls) = tls {
        options = options.with_tls(tls.config());
    } else if url.starts_with("https://") {
        return Err(BenchError::Usage(format!(
            "{url} is https: give --cacert (or --insecure-skip-tls-verify)"
        )));
    }
    Client::connect([url], options).await.map_err(|e| BenchError::connect(url, e))
}

/// The endpoint whose Maintenance.Status says it is the leader.
async fn find_leader(
    urls: &[String],
    tls: Option<&ClientTls>,
    timeout: Duration,
) -> Result<String, BenchError> {
    for url in urls {
        let Ok(client) = dial(url, tls, timeout).await else {
            continue;
        };
        let status = client
            .maintenance()
            .status()
            .await
            .map_err(|e| BenchError::rpc("Maintenance.Status", &e.into_status()))?;
        let member = status.header.map_or(0, |h| h.member_id);
        if status.leader != 0 && status.leader == member {
            return Ok(url.clone());
        }
    }
    Err(BenchError::NoLeader)
}

/// `conns` connections (one client, one HTTP/2 connection each), round-robin over the
/// endpoints, or all to the leader with `target_leader`; `https://` endpoints (and bare
/// ones, when `tls` is given) over TLS.
pub async fn connect(
    endpoints: &[String],
    conns: u64,
    target_leader: bool,
    tls: Option<&ClientTls>,
    timeout: Duration,
) -> Result<Vec<Client>, BenchError> {
    let mut urls: Vec<String> = endpoints.iter().map(|e| endpoint_url(e, tls.is_some())).collect();
    if urls.is_empty() {
        return Err(BenchError::Usage("--endpoints is empty".into()));
    }
    if target_leader {
        urls = vec![find_leader(&urls, tls, timeout).await?];
    }
    let mut clients = Vec::new();
    for i in 0..conns as usize {
        clients.push(dial(&urls[i % urls.len()], tls, timeout).await?);
    }
    Ok(clients)
}
