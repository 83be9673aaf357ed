//! etcd's gateway (`proxy/tcpproxy`): a TCP proxy that hands each client connection,
//! whole, to one of the cluster's endpoints, taking them in turn. It knows nothing of
//! gRPC or HTTP, so every API, TLS included, passes through unchanged.
//!
//! An endpoint that refuses a connection is left out for the retry delay (`--retry-delay`,
//! etcd's default a minute), and the connection tries the next one; every delay, each
//! left-out endpoint is dialed once and comes back if it answers. With every endpoint
//! left out, a connection is closed at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

/// How long a dial to an endpoint may take before it counts as refused. etcd dials with
/// no limit of its own, so an endpoint that drops packets holds each client for the
/// system's SYN timeout (minutes); a cluster endpoint answers in far less than this.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(3);

/// How long to wait after a failed `accept` (out of file descriptors, say) before the
/// next. etcd's gateway exits on the first such error; waiting lets it recover once
/// connections close.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// The proxy: endpoints (`host:port`) and the retry delay.
#[derive(Debug)]
pub struct TcpProxy {
    remotes: Arc<Remotes>,
    retry_delay: Duration,
}

#[derive(Debug)]
struct Remotes {
    remotes: Vec<Remote>,
    /// Round-robin position.
    next: AtomicUsize,
}

#[derive(Debug)]
struct Remote {
    addr: String,
    active: AtomicBool,
}

impl TcpProxy {
    /// A proxy to `endpoints` (each `host:port`, at least one).
    pub fn new(endpoints: Vec<String>, retry_delay: Duration) -> TcpProxy {
        assert!(!endpoints.is_empty(), "the gateway needs an endpoint");
        let remotes = endpoints
            .into_iter()
            .map(|addr| Remote { addr, active: AtomicBool::new(true) })
            .collect();
        TcpProxy { remotes: Arc::new(Remotes { remotes, next: AtomicUsize::new(0) }), retry_delay }
    }

    /// Serves the connections `listener` accepts, for as long as the future is polled.
    pub async fn run(self, listener: TcpListener) {
        let endpoints: Vec<&str> = self.remotes.remotes.iter().map(|r| r.addr.as_str()).collect();
        tracing::info!(?endpoints, "ready to proxy client requests");
        let monitor = tokio::spawn(monitor(self.remotes.clone(), self.retry_delay));
        let _stop_monitor = AbortOnDrop(monitor);
        loop {
            match listener.accept().await {
                Ok((inbound, _)) => {
                    tokio::spawn(serve(self.remotes.clone(), inbound, self.retry_delay));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "failed to accept a client connection");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                }
            }
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Remotes {
    /// The next active endpoint in turn, if any is.
    fn pick(&self) -> Option<&Remote> {
        let n = self.remotes.len();
        (0..n).find_map(|_| {
            let remote = &self.remotes[self.next.fetch_add(1, Ordering::Relaxed) % n];
            remote.active.load(Ordering::Relaxed).then_some(remote)
        })
    }
}

async fn dial(addr: &str) -> std::io::Result<TcpStream> {
    match tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(dialed) => dialed,
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    }
}

/// Connects `inbound` to an endpoint and copies both ways until either side closes.
async fn serve(remotes: Arc<Remotes>, mut inbound: TcpStream, retry_delay: Duration) {
    while let Some(remote) = remotes.pick() {
        match dial(&remote.addr).await {
            Ok(mut outbound) => {
                // Either side closing or failing ends the connection: nothing to report.
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                return;
            }
            Err(e) => {
                remote.active.store(false, Ordering::Relaxed);
                tracing::warn!(
                    address = %remote.addr,
                    interval = ?retry_delay,
                    error = %e,
                    "deactivated endpoint"
                );
            }
        }
    }
    tracing::warn!("no endpoint is active; closing the client connection");
}

/// Every `retry_delay`, dials each inactive endpoint and brings back those that answer.
async fn monitor(remotes: Arc<Remotes>, retry_delay: Duration) {
    loop {
        tokio::time::sleep(retry_delay).await;
        for remote in remotes.remotes.iter().filter(|r| !r.active.load(Ordering::Relaxed)) {
            match dial(&remote.addr).await {
                Ok(_) => {
                    remote.active.store(true, Ordering::Relaxed);
                    tracing::info!(address = %remote.addr, "activated");
                }
                Err(e) => tracing::warn!(
                    address = %remote.addr,
                    interval = ?retry_delay,
                    error = %e,
                    "failed to activate endpoint (stay inactive for another interval)"
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests;
