//! gRPC connections to the endpoints, and finding the leader.

use std::time::Duration;

use oxetcd_api::etcdserverpb::{StatusRequest, maintenance_client::MaintenanceClient};
use tonic::transport::{Channel, Endpoint};

use crate::args::endpoint_url;
use crate::error::BenchError;

async fn dial(url: &str, timeout: Duration) -> Result<Channel, BenchError> {
    Endpoint::from_shared(url.to_string())
        .map_err(|e| BenchError::connect(url, &e))?
        .connect_timeout(timeout)
        .tcp_nodelay(true)
        .connect()
        .await
        .map_err(|e| BenchError::connect(url, &e))
}

/// The endpoint whose Maintenance.Status says it is the leader.
async fn find_leader(urls: &[String], timeout: Duration) -> Result<String, BenchError> {
    for url in urls {
        let Ok(channel) = dial(url, timeout).await else {
            continue;
        };
        let status = MaintenanceClient::new(channel)
            .status(StatusRequest {})
            .await
            .map_err(|s| BenchError::rpc("Maintenance.Status", &s))?
            .into_inner();
        let member = status.header.map_or(0, |h| h.member_id);
        if status.leader != 0 && status.leader == member {
            return Ok(url.clone());
        }
    }
    Err(BenchError::NoLeader)
}

/// `conns` connections (one HTTP/2 connection each), round-robin over the
/// endpoints, or all to the leader with `target_leader`.
pub async fn connect(
    endpoints: &[String],
    conns: u64,
    target_leader: bool,
    timeout: Duration,
) -> Result<Vec<Channel>, BenchError> {
    let mut urls: Vec<String> = endpoints.iter().map(|e| endpoint_url(e)).collect();
    if urls.is_empty() {
        return Err(BenchError::Usage("--endpoints is empty".into()));
    }
    if target_leader {
        urls = vec![find_leader(&urls, timeout).await?];
    }
    let mut channels = Vec::new();
    for i in 0..conns as usize {
        channels.push(dial(&urls[i % urls.len()], timeout).await?);
    }
    Ok(channels)
}
