//! The Lease service. Grant and revoke go through the log; keep-alives and
//! time-to-live are answered by the leader, which alone tracks expiry, so a follower
//! forwards them to the leader's client URL (one upstream stream per client stream).
//! Forwarded calls carry no credentials: keep-alives need none (as in etcd), and a
//! time-to-live's keys, which do, are checked and filled in by the member the client
//! asked, from its own lessor, which apply keeps as the leader's.

use std::pin::Pin;
use std::sync::Arc;

use oxetcd_api::etcdserverpb::lease_client::LeaseClient;
use oxetcd_api::etcdserverpb::lease_server::Lease;
use oxetcd_api::etcdserverpb::{
    LeaseCheckpoint, LeaseCheckpointRequest, LeaseGrantRequest, LeaseGrantResponse,
    LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseLeasesRequest, LeaseLeasesResponse,
    LeaseRevokeRequest, LeaseRevokeResponse, LeaseStatus, LeaseTimeToLiveRequest,
    LeaseTimeToLiveResponse,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::transport::Channel;
use tonic::{Request, Response, Status, Streaming};

use oxetcd_etcdserver::id::LeaseHex;

use crate::caller::requester;
use crate::deadline::client_deadline;
use crate::leader::LeaderLink;
use crate::status;
use oxetcd_auth::PermType;
use oxetcd_etcdserver::{Requester, auth};

use crate::unexpected;
use oxetcd_etcdserver::Applied;
use oxetcd_etcdserver::EtcdServer;
use oxetcd_etcdserver::ServerError;
use oxetcd_lease::LeaseError;

/// Keep-alive answers buffered per stream before the stream waits for its client.
const KEEPALIVE_BUFFER: usize = 16;

pub struct LeaseService {
    server: Arc<EtcdServer>,
    leader: LeaderLink,
}

impl LeaseService {
    pub fn new(server: Arc<EtcdServer>) -> LeaseService {
        LeaseService { leader: LeaderLink::new(server.clone()), server }
    }

    /// A client of the current leader's Lease service.
    async fn leader(&self) -> Result<LeaseClient<Channel>, Status> {
        Ok(LeaseClient::new(self.leader.channel().await?))
    }
}

/// Clears a renewed lease's recorded remaining TTL through the log before the keep-alive
/// is answered, so a leader elected after the answer gives the lease its full TTL. A
/// failure is logged and the keep-alive still answered, as etcd does: the client's next
/// keep-alive retries.
async fn clear_checkpoint(server: &EtcdServer, id: i64) {
    let clear =
        LeaseCheckpointRequest { checkpoints: vec![LeaseCheckpoint { id, remaining_ttl: 0 }] };
    let proposed = server.propose(&Requester::Member, None, |r| r.lease_checkpoint = Some(clear));
    if let Err(e) = proposed.await {
        tracing::debug!(lease = %LeaseHex(id), error = %e, "clearing a lease checkpoint failed");
    }
}

/// The client's next keep-alive, or `None` once the member begins to close: a stream
/// never ends on its own, and an open one would hold the member open.
async fn next_unless_closing(
    server: &EtcdServer,
    requests: &mut Streaming<LeaseKeepAliveRequest>,
) -> Option<Result<LeaseKeepAliveRequest, Status>> {
    tokio::select! {
        next = requests.next() => next,
        () = server.closing() => None,
    }
}

type KeepAliveStream = Pin<Box<dyn Stream<Item = Result<LeaseKeepAliveResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Lease for LeaseService {
    async fn lease_grant(
        &self,
        request: Request<LeaseGrantRequest>,
    ) -> Result<Response<LeaseGrantResponse>, Status> {
        let deadline = client_deadline(&request);
        let from = requester(&self.server, &request).await?;
        let mut req = request.into_inner();
        if req.id == 0 {
            // Chosen by the proposer, so every member grants the same id.
            req.id = self.server.next_lease_id();
        }
        let proposed = self.server.propose(&from, deadline, |r| r.lease_grant = Some(req));
        match proposed.await.map_err(status)? {
            Applied::LeaseGrant(mut resp) => {
                let revision = self.server.store().map_err(status)?.current_revision();
                resp.header = Some(self.server.header(revision));
                Ok(Response::new(resp))
            }
            other => Err(unexpected(other)),
        }
    }

    async fn lease_revoke(
        &self,
        request: Request<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        let deadline = client_deadline(&request);
        let from = requester(&self.server, &request).await?;
        let req = request.into_inner();
        let proposed = self.server.propose(&from, deadline, |r| r.lease_revoke = Some(req));
        match proposed.await.map_err(status)? {
            Applied::LeaseRevoke(revision) => Ok(Response::new(LeaseRevokeResponse {
                header: Some(self.server.header(revision)),
            })),
            other => Err(unexpected(other)),
        }
    }

    type LeaseKeepAliveStream = KeepAliveStream;

    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let mut requests = request.into_inner();
        if self.server.is_closing() {
            return Err(status(ServerError::Stopped));
        }
        if !self.server.is_leader() {
            // Proxy the whole stream to the leader; if leadership moves, the stream
            // ends and the client reconnects, as with etcd.
            let mut leader = self.leader().await?;
            let (tx, rx) = mpsc::channel(KEEPALIVE_BUFFER);
            let server = self.server.clone();
            tokio::spawn(async move {
                while let Some(Ok(req)) = next_unless_closing(&server, &mut requests).await {
                    if tx.send(req).await.is_err() {
                        return;
                    }
                }
            });
            let upstream = self
                .leader
                .forwarded(leader.lease_keep_alive(ReceiverStream::new(rx)))
                .await?
                .into_inner();
            return Ok(Response::new(Box::pin(upstream)));
        }
        let server = self.server.clone();
        let (tx, rx) = mpsc::channel(KEEPALIVE_BUFFER);
        tokio::spawn(async move {
            while let Some(Ok(req)) = next_unless_closing(&server, &mut requests).await {
                // Only a running leader may renew: a member that stopped or lost the lead
                // ends the stream, so the client reconnects and reaches the new leader
                // before the leases expire there.
                let store = match server.store() {
                    Ok(store) if server.is_leader() => store,
                    _ => {
                        let _ = tx.send(Err(Status::unavailable("etcdserver: not leader"))).await;
                        return;
                    }
                };
                let answer = match server.lessor().renew(req.id) {
                    Ok(renewed) => {
                        if renewed.clear_checkpoint {
                            clear_checkpoint(&server, req.id).await;
                        }
                        Ok(renewed.ttl)
                    }
                    // etcd answers a keep-alive of an unknown lease with TTL 0.
                    Err(LeaseError::NotFound) => Ok(0),
                    Err(e) => Err(status(e)),
                };
                let resp = answer.map(|ttl| LeaseKeepAliveResponse {
                    header: Some(server.header(store.current_revision())),
                    id: req.id,
                    ttl,
                });
                if tx.send(resp).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        let from = requester(&self.server, &request).await?;
        let req = request.into_inner();
        if req.keys {
            // The keys' names are data too: read on each (etcd 3.6's rule).
            let lessor = self.server.lessor();
            self.server
                .authorize_local(&from, |s, i| {
                    auth::check_lease_keys(s, lessor, i, req.id, PermType::Read)
                })
                .map_err(status)?;
        }
        if !self.server.is_leader() {
            let mut leader = self.leader().await?;
            let upstream = LeaseTimeToLiveRequest { keys: false, ..req };
            let mut resp = self.leader.forwarded(leader.lease_time_to_live(upstream)).await?;
            if req.keys && resp.get_ref().ttl >= 0 {
                resp.get_mut().keys = self.server.lessor().keys(req.id);
            }
            return Ok(resp);
        }
        let revision = self.server.store().map_err(status)?.current_revision();
        let header = Some(self.server.header(revision));
        let resp = match self.server.lessor().status(req.id) {
            Some(status) => LeaseTimeToLiveResponse {
                header,
                id: req.id,
                ttl: status.remaining,
                granted_ttl: status.granted_ttl,
                keys: if req.keys { status.keys } else { Vec::new() },
            },
            // etcd reports a missing lease as TTL -1 rather than an error.
            None => LeaseTimeToLiveResponse {
                header,
                id: req.id,
                ttl: -1,
                granted_ttl: 0,
                keys: Vec::new(),
            },
        };
        Ok(Response::new(resp))
    }

    async fn lease_leases(
        &self,
        _request: Request<LeaseLeasesRequest>,
    ) -> Result<Response<LeaseLeasesResponse>, Status> {
        let leases =
            self.server.lessor().leases().into_iter().map(|id| LeaseStatus { id }).collect();
        let revision = self.server.store().map_err(status)?.current_revision();
        let header = Some(self.server.header(revision));
        Ok(Response::new(LeaseLeasesResponse { header, leases }))
    }
}
