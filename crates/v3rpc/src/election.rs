//! The Election service (etcd's `v3election`): the client crate's election recipe run
//! for the caller against this member (see [`crate::local`]).

use std::pin::Pin;
use std::sync::Arc;

use oxetcd_api::v3electionpb::election_server::Election as ElectionApi;
use oxetcd_api::v3electionpb::{
    CampaignRequest, CampaignResponse, LeaderKey, LeaderRequest, LeaderResponse, ProclaimRequest,
    ProclaimResponse, ResignRequest, ResignResponse,
};
use oxetcd_client::concurrency::{Election, Leader};
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use crate::local::Local;
use crate::lock::session;
use crate::status::recipe_status;

/// etcd's `ErrMissingLeaderKey`: Proclaim and Resign need the leader's key.
const MISSING_LEADER_KEY: &str = "\"leader\" field must be provided";

pub(crate) struct ElectionService {
    local: Arc<Local>,
}

impl ElectionService {
    pub(crate) fn new(local: Arc<Local>) -> ElectionService {
        ElectionService { local }
    }
}

fn leader_response(leader: Leader) -> LeaderResponse {
    LeaderResponse { header: leader.header, kv: Some(leader.kv) }
}

fn leader_key(leader: Option<LeaderKey>) -> Result<LeaderKey, Status> {
    leader.ok_or_else(|| Status::unknown(MISSING_LEADER_KEY))
}

type LeaderStream = Pin<Box<dyn Stream<Item = Result<LeaderResponse, Status>> + Send>>;

#[tonic::async_trait]
impl ElectionApi for ElectionService {
    /// Waits until the caller leads election `name`. If the caller goes away first,
    /// its candidacy is withdrawn (the election recipe deletes its key).
    async fn campaign(
        &self,
        request: Request<CampaignRequest>,
    ) -> Result<Response<CampaignResponse>, Status> {
        let client = self.local.client_for(&request);
        let CampaignRequest { name, lease, value } = request.into_inner();
        let session = session(&client, lease).await.map_err(recipe_status)?;
        let mut election = Election::new(&session, &name);
        election.campaign(value).await.map_err(recipe_status)?;
        let leader = LeaderKey {
            key: election.key().cloned().unwrap_or_default(),
            rev: election.revision(),
            lease: session.lease_id(),
            name,
        };
        Ok(Response::new(CampaignResponse {
            header: election.header().cloned(),
            leader: Some(leader),
        }))
    }

    /// Sets the leader's value, if the caller's key still leads (`election: not
    /// leader` otherwise).
    async fn proclaim(
        &self,
        request: Request<ProclaimRequest>,
    ) -> Result<Response<ProclaimResponse>, Status> {
        let client = self.local.client_for(&request);
        let ProclaimRequest { leader, value } = request.into_inner();
        let leader = leader_key(leader)?;
        let session = session(&client, leader.lease).await.map_err(recipe_status)?;
        let mut election = Election::resume(&session, leader.name, leader.key, leader.rev);
        election.proclaim(value).await.map_err(recipe_status)?;
        Ok(Response::new(ProclaimResponse { header: election.header().cloned() }))
    }

    /// The current leader, or `election: no leader`.
    async fn leader(
        &self,
        request: Request<LeaderRequest>,
    ) -> Result<Response<LeaderResponse>, Status> {
        let client = self.local.client_for(&request);
        let observer = Election::observer(&client, &request.get_ref().name);
        let leader = observer.leader().await.map_err(recipe_status)?;
        Ok(Response::new(leader_response(leader)))
    }

    type ObserveStream = LeaderStream;

    /// Each leader in turn, and each value it proclaims. The stream ends (without an
    /// error, as etcd's) when a read or watch under it fails; when the caller goes
    /// away, dropping the stream stops the observation and its watches.
    async fn observe(
        &self,
        request: Request<LeaderRequest>,
    ) -> Result<Response<Self::ObserveStream>, Status> {
        let client = self.local.client_for(&request);
        let leaders = Election::observer(&client, &request.get_ref().name).observe();
        let stream = leaders.map_while(|leader| match leader {
            Ok(leader) => Some(Ok(leader_response(leader))),
            Err(error) => {
                tracing::debug!(%error, "election observation ended");
                None
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }

    /// Gives up the leadership. A key that no longer leads (or is gone) is not an
    /// error, as in etcd.
    async fn resign(
        &self,
        request: Request<ResignRequest>,
    ) -> Result<Response<ResignResponse>, Status> {
        let client = self.local.client_for(&request);
        let leader = leader_key(request.into_inner().leader)?;
        let session = session(&client, leader.lease).await.map_err(recipe_status)?;
        let mut election = Election::resume(&session, leader.name, leader.key, leader.rev);
        election.resign().await.map_err(recipe_status)?;
        Ok(Response::new(ResignResponse { header: election.header().cloned() }))
    }
}
