//! The Cluster service: MemberList (linearizable) and the runtime membership changes,
//! which take role `root` once auth is enabled. Promoting a learner needs the leader's
//! view of the learner's log: a follower forwards it to the leader.

use std::sync::Arc;

use oxetcd_api::etcdserverpb::cluster_client::ClusterClient;
use oxetcd_api::etcdserverpb::cluster_server::Cluster;
use oxetcd_api::etcdserverpb::{
    MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse,
    MemberPromoteRequest, MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse,
    MemberUpdateRequest, MemberUpdateResponse, ResponseHeader,
};
use tonic::{Request, Response, Status};

use crate::caller::{TOKEN_KEY, require_admin};
use crate::deadline::client_deadline;
use crate::leader::LeaderLink;
use crate::status;

use oxetcd_etcdserver::{EtcdServer, ServerError};

pub struct ClusterService {
    server: Arc<EtcdServer>,
    leader: LeaderLink,
}

impl ClusterService {
    pub fn new(server: Arc<EtcdServer>) -> ClusterService {
        ClusterService { leader: LeaderLink::new(server.clone()), server }
    }

    /// etcd's Cluster service leaves the revision out of its headers.
    fn header(&self) -> Option<ResponseHeader> {
        Some(self.server.header(0))
    }
}

/// Peer URLs as etcd accepts them (`types.NewURLs`): at least one; each `http`,
/// `https`, `unix` or `unixs`, with a `host:port` and no path; trimmed and sorted, as
/// etcd stores them.
fn peer_urls(urls: &[String]) -> Result<Vec<String>, Status> {
    let bad = || status(ServerError::MemberBadUrls);
    if urls.is_empty() {
        return Err(bad());
    }
    let mut checked = Vec::with_capacity(urls.len());
    for url in urls {
        let url = url.trim();
        let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
        if !matches!(scheme, "http" | "https" | "unix" | "unixs") {
            return Err(bad());
        }
        if rest.contains(['/', '?', '#']) {
            return Err(bad());
        }
        let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
        let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        // An IPv6 host must be bracketed: a bare one leaves a colon in what is left.
        if host.contains(':') && !rest.starts_with('[') || port.parse::<u16>().is_err() {
            return Err(bad());
        }
        checked.push(url.to_string());
    }
    checked.sort();
    Ok(checked)
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(
        &self,
        request: Request<MemberAddRequest>,
    ) -> Result<Response<MemberAddResponse>, Status> {
        require_admin(&self.server, &request).await?;
        let deadline = client_deadline(&request);
        let req = request.into_inner();
        let urls = peer_urls(&req.peer_ur_ls)?;
        let (member, members) =
            self.server.add_member(urls, req.is_learner, deadline).await.map_err(status)?;
        Ok(Response::new(MemberAddResponse {
            header: self.header(),
            member: Some(member),
            members,
        }))
    }

    async fn member_remove(
        &self,
        request: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        require_admin(&self.server, &request).await?;
        let deadline = client_deadline(&request);
        let id = request.into_inner().id;
        let members = self.server.remove_member(id, deadline).await.map_err(status)?;
        Ok(Response::new(MemberRemoveResponse { header: self.header(), members }))
    }

    async fn member_update(
        &self,
        request: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        require_admin(&self.server, &request).await?;
        let deadline = client_deadline(&request);
        let req = request.into_inner();
        let urls = peer_urls(&req.peer_ur_ls)?;
        let members = self.server.update_member(req.id, urls, deadline).await.map_err(status)?;
        Ok(Response::new(MemberUpdateResponse { header: self.header(), members }))
    }

    async fn member_list(
        &self,
        request: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        let deadline = client_deadline(&request);
        self.server.linearizable_read(deadline).await.map_err(status)?;
        let members = self.server.members();
        Ok(Response::new(MemberListResponse { header: self.header(), members }))
    }

    async fn member_promote(
        &self,
        request: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        require_admin(&self.server, &request).await?;
        let deadline = client_deadline(&request);
        let token = request.metadata().get(TOKEN_KEY).cloned();
        let id = request.get_ref().id;
        match self.server.promote_member(id, deadline).await {
            Ok(members) => {
                Ok(Response::new(MemberPromoteResponse { header: self.header(), members }))
            }
            // Only the leader knows how far the learner is (etcd forwards over the peer
            // port; the leader's client port serves the same request).
            Err(ServerError::NotLeader) => {
                let mut forwarded = Request::new(MemberPromoteRequest { id });
                if let Some(token) = token {
                    forwarded.metadata_mut().insert(TOKEN_KEY, token);
                }
                let mut leader = ClusterClient::new(self.leader.channel().await?);
                self.leader.forwarded(leader.member_promote(forwarded)).await
            }
            Err(e) => Err(status(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_urls_as_etcd_reads_them() {
        let ok = |urls: &[&str]| peer_urls(&urls.iter().map(|u| u.to_string()).collect::<Vec<_>>());
        assert_eq!(
            ok(&[" http://127.0.0.2:2380", "https://[::1]:2380"]).unwrap(),
            ["http://127.0.0.2:2380", "https://[::1]:2380"]
        );
        for bad in [
            &[][..],
            &["127.0.0.1:2380"],
            &["ftp://127.0.0.1:2380"],
            &["http://127.0.0.1"],
            &["http://127.0.0.1:2380/path"],
            &["http://::1:2380"],
            &["http://127.0.0.1:notaport"],
        ] {
            let refused = ok(bad).unwrap_err();
            assert_eq!(refused.message(), "etcdserver: given member URLs are invalid", "{bad:?}");
        }
    }
}
