//! Leases: grant, revoke, time-to-live, list, a single keep-alive, and a keep-alive
//! loop that renews a lease in the background across endpoint failures.

use std::time::Duration;

use oxetcd_api::etcdserverpb::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse,
    LeaseLeasesRequest, LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse,
    LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

use crate::client::{Client, Retry, stream_retryable};
use crate::error::{Error, EtcdErrorKind, Result};

/// The shortest wait between two renewals of a lease.
const MIN_RENEW_INTERVAL: Duration = Duration::from_millis(100);
/// The longest wait between two attempts to reopen a keep-alive stream.
const MAX_REOPEN_BACKOFF: Duration = Duration::from_secs(1);
/// At least this many tries to reopen a keep-alive stream fit before the lease runs out.
const REOPEN_TRIES_LEFT: u32 = 4;

/// The longest TTL the keep-alive loop plans with (a server may answer anything).
const MAX_TTL: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// A TTL in seconds as a duration, within `[0, MAX_TTL]`.
fn ttl_duration(ttl: i64) -> Duration {
    Duration::from_secs(ttl.max(0) as u64).min(MAX_TTL)
}

fn lease_not_found() -> Error {
    Error::from(Status::not_found(EtcdErrorKind::LeaseNotFound.message()))
}

/// One keep-alive stream on one endpoint.
struct KeepAliveStream {
    requests: mpsc::Sender<LeaseKeepAliveRequest>,
    responses: Streaming<LeaseKeepAliveResponse>,
}

impl Client {
    /// Grants a lease of `ttl` seconds; `id` 0 lets the server choose the id.
    ///
    /// Sent again only if it never reached a server (a retried grant could leave an
    /// orphan lease behind; etcd 3.4's client retries it, this one does not).
    ///
    /// ```no_run
    /// # async fn example(client: oxetcd_client::Client) -> oxetcd_client::Result<()> {
    /// use oxetcd_client::PutOptions;
    ///
    /// let lease = client.lease_grant(10, 0).await?;
    /// client.put("ephemeral", "x", Some(PutOptions::new().with_lease(lease.id))).await?;
    /// client.lease_revoke(lease.id).await?; // "ephemeral" is gone
    /// # Ok(())
    /// # }
    /// ```
    pub async fn lease_grant(&self, ttl: i64, id: i64) -> Result<LeaseGrantResponse> {
        let request = LeaseGrantRequest { ttl, id };
        self.unary(Retry::NonRepeatable, request, |conn, req| async move {
            conn.lease().lease_grant(req).await
        })
        .await
    }

    /// Revokes a lease, deleting its keys. Sent again only if it never reached a server.
    pub async fn lease_revoke(&self, id: i64) -> Result<LeaseRevokeResponse> {
        let request = LeaseRevokeRequest { id };
        self.unary(Retry::NonRepeatable, request, |conn, req| async move {
            conn.lease().lease_revoke(req).await
        })
        .await
    }

    /// A lease's remaining and granted TTL (`ttl` is -1 when the lease does not exist),
    /// with its keys if `keys`. Retried on `Unavailable`.
    pub async fn lease_time_to_live(&self, id: i64, keys: bool) -> Result<LeaseTimeToLiveResponse> {
        let request = LeaseTimeToLiveRequest { id, keys };
        self.unary(Retry::Repeatable, request, |conn, req| async move {
            conn.lease().lease_time_to_live(req).await
        })
        .await
    }

    /// Every lease. Retried on `Unavailable`.
    pub async fn lease_leases(&self) -> Result<LeaseLeasesResponse> {
        self.unary(Retry::Repeatable, LeaseLeasesRequest {}, |conn, req| async move {
            conn.lease().lease_leases(req).await
        })
        .await
    }

    /// Renews a lease once. Fails with [`EtcdErrorKind::LeaseNotFound`] when the lease
    /// has expired or does not exist.
    pub async fn lease_keep_alive_once(&self, id: i64) -> Result<LeaseKeepAliveResponse> {
        let once = async {
            let max_retries = self.options().max_retries();
            let mut attempt = 0;
            loop {
                let status = match self.keep_alive_stream(id).await {
                    Ok(mut stream) => match stream.responses.message().await {
                        Ok(Some(resp)) if resp.ttl <= 0 => return Err(lease_not_found()),
                        Ok(Some(resp)) => return Ok(resp),
                        Ok(None) => Status::unavailable("keep-alive stream closed"),
                        Err(status) => status,
                    },
                    Err(status) => status,
                };
                // Renewing twice is harmless: retry whatever the transport broke.
                if attempt >= max_retries || !stream_retryable(&status) {
                    return Err(Error::from(status));
                }
                attempt += 1;
                tokio::time::sleep(self.backoff(attempt)).await;
            }
        };
        match self.options().request_timeout() {
            Some(timeout) => {
                tokio::time::timeout(timeout, once).await.unwrap_or(Err(Error::Timeout))
            }
            None => once.await,
        }
    }

    /// Opens a keep-alive stream with a renewal of `id` already queued: a server may
    /// send the stream's headers only with its first answer (etcd's does), so the call
    /// cannot be waited on before a request is on its way.
    async fn keep_alive_stream(&self, id: i64) -> std::result::Result<KeepAliveStream, Status> {
        let (i, conn) = self.pick();
        let (requests, rx) = mpsc::channel(4);
        requests
            .try_send(LeaseKeepAliveRequest { id })
            .map_err(|_| Status::internal("keep-alive request queue full"))?;
        let call = conn.lease().lease_keep_alive(self.request(ReceiverStream::new(rx))).await;
        self.report(i, call.as_ref().err());
        Ok(KeepAliveStream { requests, responses: call?.into_inner() })
    }

    /// Keeps a lease alive in the background: renews it at a third of its TTL, moving
    /// to another endpoint when one fails, until the returned handle is dropped or
    /// stopped, or the lease expires.
    ///
    /// Renews once before returning, so an unknown lease fails here with
    /// [`EtcdErrorKind::LeaseNotFound`].
    ///
    /// ```no_run
    /// # async fn example(client: oxetcd_client::Client) -> oxetcd_client::Result<()> {
    /// let lease = client.lease_grant(5, 0).await?;
    /// let keep_alive = client.lease_keep_alive(lease.id).await?;
    /// // … the lease lives while `keep_alive` does …
    /// tokio::select! {
    ///     reason = keep_alive.ended() => eprintln!("lost the lease: {reason}"),
    ///     _ = tokio::time::sleep(std::time::Duration::from_secs(60)) => keep_alive.stop(),
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn lease_keep_alive(&self, id: i64) -> Result<LeaseKeepAlive> {
        let sent_at = Instant::now();
        let first = self.lease_keep_alive_once(id).await?;
        let deadline = sent_at + ttl_duration(first.ttl);
        let (state_tx, state) = watch::channel(KeepAliveState::Alive { ttl: first.ttl });
        let (stop, stop_rx) = oneshot::channel();
        let task =
            KeepAliveTask { client: self.clone(), id, ttl: first.ttl, deadline, state: state_tx };
        let task = tokio::spawn(task.run(stop_rx));
        Ok(LeaseKeepAlive { id, state, stop: Some(stop), task })
    }
}

/// Where a keep-alive loop stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum KeepAliveState {
    Alive { ttl: i64 },
    Expired,
    TimedOut(String),
    Failed(String),
    Stopped,
}

/// The handle of a lease keep-alive loop (see [`Client::lease_keep_alive`]). Dropping
/// it stops the loop (the lease then expires after its TTL unless revoked).
#[derive(Debug)]
pub struct LeaseKeepAlive {
    id: i64,
    state: watch::Receiver<KeepAliveState>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl LeaseKeepAlive {
    /// The lease being kept alive.
    pub fn lease_id(&self) -> i64 {
        self.id
    }

    /// The TTL the server granted at the last renewal; 0 once the loop has ended.
    pub fn ttl(&self) -> i64 {
        match *self.state.borrow() {
            KeepAliveState::Alive { ttl } => ttl,
            _ => 0,
        }
    }

    /// Whether the loop is still renewing the lease.
    pub fn is_alive(&self) -> bool {
        matches!(*self.state.borrow(), KeepAliveState::Alive { .. })
    }

    /// Waits until the loop ends and tells why: [`Error::LeaseExpired`] when the server
    /// no longer knows the lease, [`Error::LeaseKeepAliveTimeout`] when it could not be
    /// renewed before its deadline, [`Error::Closed`] when stopped.
    pub async fn ended(&self) -> Error {
        let mut state = self.state.clone();
        let ended =
            state.wait_for(|s| !matches!(s, KeepAliveState::Alive { .. })).await.map(|s| s.clone());
        match ended {
            Ok(KeepAliveState::Expired) => Error::LeaseExpired { lease_id: self.id },
            Ok(KeepAliveState::TimedOut(last_error)) => {
                Error::LeaseKeepAliveTimeout { lease_id: self.id, last_error }
            }
            Ok(KeepAliveState::Failed(reason)) => {
                Error::LeaseKeepAliveTimeout { lease_id: self.id, last_error: reason }
            }
            _ => Error::Closed("keep-alive stopped"),
        }
    }

    /// Stops renewing (the lease itself stays until it expires or is revoked).
    pub fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Drop for LeaseKeepAlive {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct KeepAliveTask {
    client: Client,
    id: i64,
    ttl: i64,
    /// When the lease expires unless renewed before.
    deadline: Instant,
    state: watch::Sender<KeepAliveState>,
}

impl KeepAliveTask {
    fn renew_interval(&self) -> Duration {
        (ttl_duration(self.ttl) / 3).max(MIN_RENEW_INTERVAL)
    }

    async fn run(mut self, mut stop: oneshot::Receiver<()>) {
        let end = self.keep_alive(&mut stop).await;
        let _ = self.state.send(end);
    }

    async fn keep_alive(&mut self, stop: &mut oneshot::Receiver<()>) -> KeepAliveState {
        let mut failures: u32 = 0;
        let mut last_error = String::from("no attempt");
        // Wait a renewal interval after the first renewal (done by the caller).
        tokio::select! {
            _ = &mut *stop => return KeepAliveState::Stopped,
            _ = tokio::time::sleep(self.renew_interval()) => {}
        }
        loop {
            if Instant::now() >= self.deadline {
                return KeepAliveState::TimedOut(last_error);
            }
            let opened_at = Instant::now();
            let opened = tokio::select! {
                _ = &mut *stop => return KeepAliveState::Stopped,
                _ = tokio::time::sleep_until(self.deadline) => return KeepAliveState::TimedOut(last_error),
                opened = self.client.keep_alive_stream(self.id) => opened,
            };
            let mut stream = match opened {
                Ok(stream) => stream,
                Err(status) => {
                    if !stream_retryable(&status) {
                        return KeepAliveState::Failed(status.to_string());
                    }
                    last_error = status.to_string();
                    failures += 1;
                    // Backing off must leave room for several more tries before the
                    // lease runs out: during an election every member refuses at once,
                    // and the next leader is usually there within an election timeout.
                    let remaining = self.deadline.saturating_duration_since(Instant::now());
                    let wait = self.client.jittered(
                        (self.client.options_backoff().saturating_mul(2u32.pow(failures.min(8))))
                            .min(MAX_REOPEN_BACKOFF)
                            .min(remaining / REOPEN_TRIES_LEFT),
                    );
                    tokio::select! {
                        _ = &mut *stop => return KeepAliveState::Stopped,
                        _ = tokio::time::sleep(wait) => {}
                    }
                    continue;
                }
            };
            // Renew on this stream until it fails (its first renewal was queued when
            // it opened).
            let mut queued = true;
            loop {
                let sent_at = if queued { opened_at } else { Instant::now() };
                if !std::mem::take(&mut queued)
                    && stream.requests.send(LeaseKeepAliveRequest { id: self.id }).await.is_err()
                {
                    last_error = "keep-alive stream closed".into();
                    break;
                }
                // A member that does not answer within a renewal interval is left for
                // the next one (it may be cut off from the leader).
                let answer_by = (sent_at + self.renew_interval()).min(self.deadline);
                let message = tokio::select! {
                    _ = &mut *stop => return KeepAliveState::Stopped,
                    _ = tokio::time::sleep_until(answer_by) => {
                        last_error = "no keep-alive response in time".into();
                        break;
                    }
                    message = stream.responses.message() => message,
                };
                match message {
                    Ok(Some(resp)) if resp.ttl <= 0 => return KeepAliveState::Expired,
                    Ok(Some(resp)) => {
                        self.ttl = resp.ttl;
                        self.deadline = sent_at + ttl_duration(resp.ttl);
                        failures = 0;
                        let _ = self.state.send(KeepAliveState::Alive { ttl: resp.ttl });
                    }
                    Ok(None) => {
                        last_error = "keep-alive stream ended".into();
                        break;
                    }
                    Err(status) if stream_retryable(&status) => {
                        last_error = status.to_string();
                        break;
                    }
                    Err(status) => return KeepAliveState::Failed(status.to_string()),
                }
                tokio::select! {
                    _ = &mut *stop => return KeepAliveState::Stopped,
                    _ = tokio::time::sleep_until(sent_at + self.renew_interval()) => {}
                }
            }
            tracing::debug!(lease = self.id, error = %last_error, "keep-alive stream broke; reopening");
        }
    }
}
