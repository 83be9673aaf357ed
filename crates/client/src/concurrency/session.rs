//! A session: a lease kept alive for as long as the session lives.

use std::sync::Arc;

use crate::{Client, Error, LeaseKeepAlive, Result};

/// Options of [`Session::new`].
#[derive(Debug, Clone)]
pub struct SessionOptions {
    ttl: i64,
    lease_id: i64,
    keep_alive: bool,
}

impl Default for SessionOptions {
    /// A new lease of 60 seconds (etcd's default session TTL).
    fn default() -> Self {
        SessionOptions { ttl: 60, lease_id: 0, keep_alive: true }
    }
}

impl SessionOptions {
    /// A new lease of 60 seconds.
    pub fn new() -> Self {
        Self::default()
    }

    /// The TTL of the session's lease, in seconds: how long its keys outlive the
    /// client when it dies.
    pub fn with_ttl(mut self, ttl: i64) -> Self {
        self.ttl = ttl;
        self
    }

    /// Use an existing lease instead of granting one.
    pub fn with_lease(mut self, lease_id: i64) -> Self {
        self.lease_id = lease_id;
        self
    }

    /// Do not keep the lease alive: it lives out its TTL (etcd's orphaned session, which
    /// its Lock and Election services use: the caller keeps the lease alive). The lease
    /// is not checked either; requests under a lease that is gone fail as they reach the
    /// server.
    pub fn without_keep_alive(mut self) -> Self {
        self.keep_alive = false;
        self
    }
}

struct Inner {
    client: Client,
    lease_id: i64,
    /// None for a session made [`SessionOptions::without_keep_alive`].
    keep_alive: Option<LeaseKeepAlive>,
}

/// A lease kept alive in the background, for locks and elections: their keys are
/// attached to it, so they vanish when the holder dies (its lease expires) or closes
/// the session. Cheap to clone; the lease is kept alive until the last clone is
/// dropped or [`Session::close`] is called.
///
/// ```no_run
/// # async fn example(client: oxetcd_client::Client) -> oxetcd_client::Result<()> {
/// use oxetcd_client::concurrency::{Session, SessionOptions};
///
/// let session = Session::new(&client, SessionOptions::new().with_ttl(10)).await?;
/// println!("lease {:x}", session.lease_id());
/// session.close().await?; // revokes the lease
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("lease_id", &self.inner.lease_id).finish_non_exhaustive()
    }
}

impl Session {
    /// Grants a lease (or takes the given one) and starts keeping it alive.
    pub async fn new(client: &Client, options: SessionOptions) -> Result<Session> {
        let lease_id = if options.lease_id != 0 {
            options.lease_id
        } else {
            client.lease_grant(options.ttl, 0).await?.id
        };
        let keep_alive = match options.keep_alive {
            true => Some(client.lease_keep_alive(lease_id).await?),
            false => None,
        };
        Ok(Session { inner: Arc::new(Inner { client: client.clone(), lease_id, keep_alive }) })
    }

    /// The client the session was made with.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// The session's lease.
    pub fn lease_id(&self) -> i64 {
        self.inner.lease_id
    }

    /// Whether the lease is still being kept alive (never, without keep-alive).
    pub fn is_alive(&self) -> bool {
        self.inner.keep_alive.as_ref().is_some_and(LeaseKeepAlive::is_alive)
    }

    /// Waits until the session ends (its lease expired or could not be renewed) and
    /// tells why; at once, without keep-alive.
    pub async fn done(&self) -> Error {
        match &self.inner.keep_alive {
            Some(keep_alive) => keep_alive.ended().await,
            None => Error::Closed("session without keep-alive"),
        }
    }

    /// Ends the session: stops the keep-alive and revokes the lease, deleting every key
    /// attached to it (held locks, candidacies).
    pub async fn close(self) -> Result<()> {
        let lease_id = self.inner.lease_id;
        let client = self.inner.client.clone();
        drop(self);
        match client.lease_revoke(lease_id).await {
            Err(e) if e.etcd_kind() == Some(crate::EtcdErrorKind::LeaseNotFound) => Ok(()),
            other => other.map(|_| ()),
        }
    }
}
