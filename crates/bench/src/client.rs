//! Connections to the endpoints (one oxetcd-client `Client` per connection), and
//! finding the leader.

use std::time::Duration;

use oxetcd_client::{Client, ClientOptions};

use crate::args::endpoint_url;
use crate::error::BenchError;

/// One client, and so one HTTP/2 connection, to `url`. Retries are off: every op the
/// report counts is one request.
async fn dial(url: &str, timeout: Duration) -> Result<Client, BenchError> {
    let options = ClientOptions::default().with_dial_timeout(timeout).with_max_retries(0);
    Client::connect([url], options).await.map_err(|e| BenchError::connect(url, e))
}

/// The endpoint whose Maintenance.Status says it is the leader.
async fn find_leader(urls: &[String], timeout: Duration) -> Result<String, BenchError> {
    for url in urls {
        let Ok(client) = dial(url, timeout).await else {
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
/// endpoints, or all to the leader with `target_leader`.
pub async fn connect(
    endpoints: &[String],
    conns: u64,
    target_leader: bool,
    timeout: Duration,
) -> Result<Vec<Client>, BenchError> {
    let mut urls: Vec<String> = endpoints.iter().map(|e| endpoint_url(e)).collect();
    if urls.is_empty() {
        return Err(BenchError::Usage("--endpoints is empty".into()));
    }
    if target_leader {
        urls = vec![find_leader(&urls, timeout).await?];
    }
    let mut clients = Vec::new();
    for i in 0..conns as usize {
        clients.push(dial(&urls[i % urls.len()], timeout).await?);
    }
    Ok(clients)
}
