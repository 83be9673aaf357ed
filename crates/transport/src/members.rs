//! Asking running members for the cluster's membership over the peer port (etcd's
//! `GetClusterFromRemotePeers`): what a member started with `--initial-cluster-state
//! existing` and no data does before anything else.

use std::sync::Arc;
use std::time::Duration;

use oxetcd_api::oxetcdpb::peer_client::PeerClient;
use oxetcd_api::oxetcdpb::{MembersRequest, MembersResponse};
use tonic::transport::Endpoint;
use tracing::{info, warn};

/// How [`fetch_members`] asks.
#[derive(Clone, Debug)]
pub struct FetchOptions {
    /// How `https://` and `unixs://` URLs are dialed (the member's peer TLS flags).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// The most one URL may take, connecting and answering together.
    pub timeout: Duration,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions { tls: None, timeout: Duration::from_secs(5) }
    }
}

/// No URL gave a membership. `Display` is etcd's message; `failures` says, per URL, why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("could not retrieve cluster information from the given URLs")]
pub struct FetchError {
    /// `(url, reason)`, in the order tried.
    pub failures: Vec<(String, String)>,
}

/// Asks each of `urls` in turn for the cluster's id and members, once; the first
/// answer that lists members wins. A member that answers with no members (it has
/// applied nothing yet) counts as a failure and the next URL is tried.
pub async fn fetch_members(
    urls: &[String],
    options: &FetchOptions,
) -> Result<MembersResponse, FetchError> {
    let mut failures = Vec::new();
    for url in urls {
        let reason = match tokio::time::timeout(options.timeout, ask(url, options)).await {
            Ok(Ok(answer)) if !answer.members.is_empty() => {
                info!(
                    address = %url,
                    cluster_id = %format_args!("{:x}", answer.cluster_id),
                    members = answer.members.len(),
                    "fetched the cluster's members"
                );
                return Ok(answer);
            }
            Ok(Ok(_)) => "the member answered with no members".to_owned(),
            Ok(Err(reason)) => reason,
            Err(_) => format!("no answer within {:?}", options.timeout),
        };
        warn!(address = %url, error = %reason, "failed to get cluster response");
        failures.push((url.clone(), reason));
    }
    Err(FetchError { failures })
}

async fn ask(url: &str, options: &FetchOptions) -> Result<MembersResponse, String> {
    let endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(|e| format!("invalid peer URL: {e}"))?
        .connect_timeout(options.timeout)
        .timeout(options.timeout);
    let connector = oxetcd_tls::Connector::new(options.tls.clone());
    let channel =
        endpoint.connect_with_connector(connector).await.map_err(|e| oxetcd_tls::describe(&e))?;
    let mut request = tonic::Request::new(MembersRequest {});
    request.set_timeout(options.timeout);
    PeerClient::new(channel).members(request).await.map(tonic::Response::into_inner).map_err(
        |status| match std::error::Error::source(&status) {
            Some(cause) => format!("{}: {}", status.message(), oxetcd_tls::describe(cause)),
            None => format!("{:?}: {}", status.code(), status.message()),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_url_failing_names_each_failure() {
        // A port nothing listens on: taken and released at once.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let urls = vec![format!("http://127.0.0.1:{port}"), "not a url".to_owned()];
        let options = FetchOptions { timeout: Duration::from_secs(2), ..Default::default() };
        let err = fetch_members(&urls, &options).await.unwrap_err();
        assert_eq!(err.to_string(), "could not retrieve cluster information from the given URLs");
        assert_eq!(err.failures.len(), 2);
        assert_eq!(err.failures[0].0, urls[0]);
        assert!(err.failures[1].1.contains("invalid peer URL"), "{err:?}");
        let none = fetch_members(&[], &options).await.unwrap_err();
        assert!(none.failures.is_empty());
    }
}
