//! The server-side Lock and Election services (etcd's v3lock and v3election), for
//! servers that offer them. The client-side recipes in [`crate::concurrency`] do the
//! same over plain KV, Lease and Watch, with any server.

use oxetcd_api::v3electionpb::{
    CampaignRequest, CampaignResponse, LeaderKey, LeaderRequest, LeaderResponse, ProclaimRequest,
    ProclaimResponse, ResignRequest, ResignResponse,
};
use oxetcd_api::v3lockpb::{LockRequest, LockResponse, UnlockRequest, UnlockResponse};
use tonic::Streaming;

use crate::IntoBytes;
use crate::client::{Client, Retry, retryable};
use crate::error::{Error, Result};

/// The Lock service, from [`Client::lock`].
///
/// ```no_run
/// # async fn example(client: oxetcd_client::Client) -> oxetcd_client::Result<()> {
/// let lease = client.lease_grant(30, 0).await?;
/// let held = client.lock().lock("my-lock", lease.id).await?;
/// // … critical section …
/// client.lock().unlock(held.key).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct LockService<'a> {
    client: &'a Client,
}

/// The Election service, from [`Client::election`].
#[derive(Debug, Clone, Copy)]
pub struct ElectionService<'a> {
    client: &'a Client,
}

impl Client {
    /// The server-side Lock service.
    pub fn lock(&self) -> LockService<'_> {
        LockService { client: self }
    }

    /// The server-side Election service.
    pub fn election(&self) -> ElectionService<'_> {
        ElectionService { client: self }
    }
}

/// The requests these services send, built apart so they can be checked without a server.
pub(crate) mod requests {
    use super::*;

    pub(crate) fn lock(name: impl IntoBytes, lease: i64) -> LockRequest {
        LockRequest { name: name.into_bytes(), lease }
    }

    pub(crate) fn unlock(key: impl IntoBytes) -> UnlockRequest {
        UnlockRequest { key: key.into_bytes() }
    }

    pub(crate) fn campaign(
        name: impl IntoBytes,
        lease: i64,
        value: impl IntoBytes,
    ) -> CampaignRequest {
        CampaignRequest { name: name.into_bytes(), lease, value: value.into_bytes() }
    }

    pub(crate) fn proclaim(leader: LeaderKey, value: impl IntoBytes) -> ProclaimRequest {
        ProclaimRequest { leader: Some(leader), value: value.into_bytes() }
    }

    pub(crate) fn leader(name: impl IntoBytes) -> LeaderRequest {
        LeaderRequest { name: name.into_bytes() }
    }

    pub(crate) fn resign(leader: LeaderKey) -> ResignRequest {
        ResignRequest { leader: Some(leader) }
    }
}

impl LockService<'_> {
    /// Waits for the lock `name`, held under `lease` (the lock goes when the lease
    /// does); the response's key is the ownership key to unlock with.
    pub async fn lock(&self, name: impl IntoBytes, lease: i64) -> Result<LockResponse> {
        self.client
            .unary(Retry::NonRepeatable, requests::lock(name, lease), |conn, req| async move {
                conn.lock().lock(req).await
            })
            .await
    }

    /// Releases a lock by its ownership key.
    pub async fn unlock(&self, key: impl IntoBytes) -> Result<UnlockResponse> {
        self.client
            .unary(Retry::NonRepeatable, requests::unlock(key), |conn, req| async move {
                conn.lock().unlock(req).await
            })
            .await
    }
}

impl ElectionService<'_> {
    /// Waits to become leader of election `name` with `value`, under `lease`.
    pub async fn campaign(
        &self,
        name: impl IntoBytes,
        lease: i64,
        value: impl IntoBytes,
    ) -> Result<CampaignResponse> {
        self.client
            .unary(
                Retry::NonRepeatable,
                requests::campaign(name, lease, value),
                |conn, req| async move { conn.election().campaign(req).await },
            )
            .await
    }

    /// Changes the leader's value, as the leader `leader`.
    pub async fn proclaim(
        &self,
        leader: LeaderKey,
        value: impl IntoBytes,
    ) -> Result<ProclaimResponse> {
        self.client
            .unary(
                Retry::NonRepeatable,
                requests::proclaim(leader, value),
                |conn, req| async move { conn.election().proclaim(req).await },
            )
            .await
    }

    /// The current leader's key-value. Retried on `Unavailable`.
    pub async fn leader(&self, name: impl IntoBytes) -> Result<LeaderResponse> {
        self.client
            .unary(Retry::Repeatable, requests::leader(name), |conn, req| async move {
                conn.election().leader(req).await
            })
            .await
    }

    /// Gives up leadership.
    pub async fn resign(&self, leader: LeaderKey) -> Result<ResignResponse> {
        self.client
            .unary(Retry::NonRepeatable, requests::resign(leader), |conn, req| async move {
                conn.election().resign(req).await
            })
            .await
    }

    /// Streams the leader's key-value each time it changes.
    pub async fn observe(&self, name: impl IntoBytes) -> Result<Streaming<LeaderResponse>> {
        let request = requests::leader(name);
        let max_retries = self.client.options().max_retries();
        let mut attempt = 0;
        loop {
            let (i, conn) = self.client.pick();
            let call = conn.election().observe(self.client.request(request.clone())).await;
            self.client.report(i, call.as_ref().err());
            match call {
                Ok(response) => return Ok(response.into_inner()),
                Err(status) if attempt < max_retries && retryable(Retry::Repeatable, &status) => {
                    attempt += 1;
                    tokio::time::sleep(self.client.backoff(attempt)).await;
                }
                Err(status) => return Err(Error::from(status)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_requests() {
        let r = requests::lock("jobs", 0x1f);
        assert_eq!((r.name.as_ref(), r.lease), (b"jobs".as_ref(), 0x1f));
        assert_eq!(requests::unlock("jobs/1f").key.as_ref(), b"jobs/1f");
    }

    #[test]
    fn election_requests() {
        let r = requests::campaign("e", 7, "me");
        assert_eq!(
            (r.name.as_ref(), r.lease, r.value.as_ref()),
            (b"e".as_ref(), 7, b"me".as_ref())
        );
        let leader = LeaderKey { name: "e".into(), key: "e/7".into(), rev: 3, lease: 7 };
        let r = requests::proclaim(leader.clone(), "new");
        assert_eq!(r.leader.as_ref(), Some(&leader));
        assert_eq!(r.value.as_ref(), b"new");
        assert_eq!(requests::resign(leader.clone()).leader, Some(leader));
        assert_eq!(requests::leader("e").name.as_ref(), b"e");
    }
}
