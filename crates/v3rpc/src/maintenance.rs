//! The Maintenance service: status, hashes and leadership transfer are served; alarms
//! can be listed (none is ever raised yet); the rest answers `Unimplemented`.

use std::pin::Pin;
use std::sync::Arc;

use oxetcd_api::etcdserverpb::alarm_request::AlarmAction;
use oxetcd_api::etcdserverpb::maintenance_server::Maintenance;
use oxetcd_api::etcdserverpb::{
    AlarmRequest, AlarmResponse, DefragmentRequest, DefragmentResponse, DowngradeRequest,
    DowngradeResponse, HashKvRequest, HashKvResponse, HashRequest, HashResponse, MoveLeaderRequest,
    MoveLeaderResponse, SnapshotRequest, SnapshotResponse, StatusRequest, StatusResponse,
};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::caller::require_admin;
use crate::status;

use oxetcd_etcdserver::EtcdServer;
use oxetcd_etcdserver::server::ETCD_VERSION;

pub struct MaintenanceService {
    server: Arc<EtcdServer>,
}

impl MaintenanceService {
    pub fn new(server: Arc<EtcdServer>) -> MaintenanceService {
        MaintenanceService { server }
    }
}

/// Runs a scan of the whole store (a hash) on tokio's blocking pool: it takes as long
/// as the store is large, and would hold up every request on its async worker.
async fn blocking<T: Send + 'static>(
    scan: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(scan).await.map_err(|e| Status::internal(e.to_string()))
}

fn not_yet(what: &str) -> Status {
    Status::unimplemented(format!("oxetcd: {what} is not implemented yet"))
}

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    async fn alarm(
        &self,
        request: Request<AlarmRequest>,
    ) -> Result<Response<AlarmResponse>, Status> {
        if request.get_ref().action != AlarmAction::Get as i32 {
            return Err(not_yet("raising or clearing alarms"));
        }
        let revision = self.server.store().map_err(status)?.current_revision();
        Ok(Response::new(AlarmResponse {
            header: Some(self.server.header(revision)),
            alarms: Vec::new(),
        }))
    }

    async fn status(
        &self,
        _request: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        let server = &self.server;
        let raft = server.raft_status();
        let db_size = server.backend_size() as i64;
        let revision = server.store().map_err(status)?.current_revision();
        Ok(Response::new(StatusResponse {
            header: Some(server.header(revision)),
            version: ETCD_VERSION.to_string(),
            db_size,
            leader: raft.leader,
            raft_index: raft.committed,
            raft_term: raft.term,
            raft_applied_index: raft.applied,
            errors: Vec::new(),
            db_size_in_use: db_size,
            is_learner: server.is_learner(),
            ..Default::default()
        }))
    }

    async fn defragment(
        &self,
        request: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        require_admin(&self.server, &request).await?;
        Err(not_yet("Defragment"))
    }

    async fn hash(&self, request: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        require_admin(&self.server, &request).await?;
        let store = self.server.store().map_err(status)?;
        let (hash, revision) = blocking(move || store.hash()).await?.map_err(status)?;
        Ok(Response::new(HashResponse { header: Some(self.server.header(revision)), hash }))
    }

    async fn hash_kv(
        &self,
        request: Request<HashKvRequest>,
    ) -> Result<Response<HashKvResponse>, Status> {
        require_admin(&self.server, &request).await?;
        let revision = request.get_ref().revision;
        let store = self.server.store().map_err(status)?;
        let result = blocking(move || store.hash_kv(revision)).await?.map_err(status)?;
        Ok(Response::new(HashKvResponse {
            header: Some(self.server.header(result.current_rev)),
            hash: result.hash,
            compact_revision: result.compact_rev,
            hash_revision: if revision > 0 { revision } else { result.current_rev },
        }))
    }

    type SnapshotStream = Pin<Box<dyn Stream<Item = Result<SnapshotResponse, Status>> + Send>>;

    async fn snapshot(
        &self,
        request: Request<SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        require_admin(&self.server, &request).await?;
        Err(not_yet("Snapshot"))
    }

    async fn move_leader(
        &self,
        request: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderResponse>, Status> {
        require_admin(&self.server, &request).await?;
        let deadline = crate::deadline::client_deadline(&request);
        let target = request.into_inner().target_id;
        self.server.move_leader(target, deadline).await.map_err(status)?;
        let revision = self.server.store().map_err(status)?.current_revision();
        Ok(Response::new(MoveLeaderResponse { header: Some(self.server.header(revision)) }))
    }

    async fn downgrade(
        &self,
        request: Request<DowngradeRequest>,
    ) -> Result<Response<DowngradeResponse>, Status> {
        require_admin(&self.server, &request).await?;
        Err(not_yet("Downgrade"))
    }
}
