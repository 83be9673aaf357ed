//! Cluster membership calls.

use oxetcd_api::etcdserverpb::{
    MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse,
    MemberPromoteRequest, MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse,
    MemberUpdateRequest, MemberUpdateResponse,
};

use crate::client::{Client, Retry};
use crate::error::Result;

/// Membership calls, from [`Client::cluster`].
///
/// ```no_run
/// # async fn example(client: oxetcd_client::Client) -> oxetcd_client::Result<()> {
/// for member in client.cluster().member_list().await?.members {
///     println!("{:x} {} {:?}", member.id, member.name, member.client_ur_ls);
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Cluster<'a> {
    client: &'a Client,
}

impl Client {
    /// Membership calls.
    pub fn cluster(&self) -> Cluster<'_> {
        Cluster { client: self }
    }
}

impl Cluster<'_> {
    /// Every member (linearizable: served through the leader). Retried on `Unavailable`.
    pub async fn member_list(&self) -> Result<MemberListResponse> {
        self.client
            .unary(
                Retry::Repeatable,
                MemberListRequest { linearizable: true },
                |conn, req| async move { conn.cluster().member_list(req).await },
            )
            .await
    }

    /// Adds a member (a learner with `is_learner`) with these peer URLs.
    pub async fn member_add(
        &self,
        peer_urls: Vec<String>,
        is_learner: bool,
    ) -> Result<MemberAddResponse> {
        let request = MemberAddRequest { peer_ur_ls: peer_urls, is_learner };
        self.client
            .unary(Retry::NonRepeatable, request, |conn, req| async move {
                conn.cluster().member_add(req).await
            })
            .await
    }

    /// Removes a member.
    pub async fn member_remove(&self, id: u64) -> Result<MemberRemoveResponse> {
        self.client
            .unary(Retry::NonRepeatable, MemberRemoveRequest { id }, |conn, req| async move {
                conn.cluster().member_remove(req).await
            })
            .await
    }

    /// Changes a member's peer URLs.
    pub async fn member_update(
        &self,
        id: u64,
        peer_urls: Vec<String>,
    ) -> Result<MemberUpdateResponse> {
        let request = MemberUpdateRequest { id, peer_ur_ls: peer_urls };
        self.client
            .unary(Retry::NonRepeatable, request, |conn, req| async move {
                conn.cluster().member_update(req).await
            })
            .await
    }

    /// Promotes a learner to a voting member.
    pub async fn member_promote(&self, id: u64) -> Result<MemberPromoteResponse> {
        self.client
            .unary(Retry::NonRepeatable, MemberPromoteRequest { id }, |conn, req| async move {
                conn.cluster().member_promote(req).await
            })
            .await
    }
}
