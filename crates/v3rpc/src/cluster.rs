//! The Cluster service: MemberList is served (linearizable); runtime membership
//! changes answer `Unimplemented` until they land.

use std::sync::Arc;

use oxetcd_api::etcdserverpb::cluster_server::Cluster;
use oxetcd_api::etcdserverpb::{
    MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse,
    MemberPromoteRequest, MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse,
    MemberUpdateRequest, MemberUpdateResponse,
};
use tonic::{Request, Response, Status};

use crate::caller::require_admin;
use crate::deadline::client_deadline;
use crate::status;

use oxetcd_etcdserver::EtcdServer;

pub struct ClusterService {
    server: Arc<EtcdServer>,
}

impl ClusterService {
    pub fn new(server: Arc<EtcdServer>) -> ClusterService {
        ClusterService { server }
    }
}

fn not_yet(what: &str) -> Status {
    Status::unimplemented(format!("oxetcd: {what} is not implemented yet"))
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(
        &self,
        request: Request<MemberAddRequest>,
    ) -> Result<Response<MemberAddResponse>, Status> {
        require_admin(&self.server, &request).await?;
        Err(not_yet("MemberAdd"))
    }

    async fn member_remove(
        &self,
        request: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        require_admin(&self.server, &request).await?;
        Err(not_yet("MemberRemove"))
    }

    async fn member_update(
        &self,
        request: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        require_admin(&self.server, &request).await?;
        Err(not_yet("MemberUpdate"))
    }

    async fn member_list(
        &self,
        request: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        let deadline = client_deadline(&request);
        self.server.linearizable_read(deadline).await.map_err(status)?;
        let members = self.server.members();
        // etcd's Cluster service leaves the revision out of its headers.
        Ok(Response::new(MemberListResponse { header: Some(self.server.header(0)), members }))
    }

    async fn member_promote(
        &self,
        request: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        require_admin(&self.server, &request).await?;
        Err(not_yet("MemberPromote"))
    }
}
