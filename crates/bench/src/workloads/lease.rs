//! lease-keepalive: each client grants a lease, then sends keep-alives on its own
//! LeaseKeepAlive stream, one at a time.

use oxetcd_api::etcdserverpb::{
    LeaseGrantRequest, LeaseKeepAliveRequest, LeaseKeepAliveResponse, lease_client::LeaseClient,
};
use tokio::task::JoinSet;
use tonic::Status;
use tonic::transport::Channel;

use super::Ctx;
use super::stream::Bidi;
use crate::client::Token;
use crate::error::BenchError;
use crate::report::Report;
use crate::runner::{self, Op};

/// Long enough that no lease expires during a run.
const LEASE_TTL: i64 = 60;

struct KeepAliveOp {
    lease: LeaseClient<Channel>,
    token: Token,
    id: i64,
    stream: Option<Bidi<LeaseKeepAliveRequest, LeaseKeepAliveResponse>>,
}

impl Op for KeepAliveOp {
    const RPC: &'static str = "Lease.LeaseKeepAlive";

    async fn call(&mut self, _seq: u64) -> Result<(), Status> {
        let req = LeaseKeepAliveRequest { id: self.id };
        let stream =
            match &mut self.stream {
                Some(stream) => {
                    stream.send(req).await?;
                    stream
                }
                None => {
                    let mut lease = self.lease.clone();
                    let token = &self.token;
                    let opened = Bidi::open(req, |r| async move {
                        lease.lease_keep_alive(token.request(r)).await
                    })
                    .await?;
                    self.stream.insert(opened)
                }
            };
        match stream.recv().await? {
            resp if resp.ttl > 0 => Ok(()),
            _ => Err(Status::not_found("lease expired or revoked")),
        }
    }
}

pub async fn keepalive(ctx: &Ctx) -> Result<Report, BenchError> {
    let mut grants = JoinSet::new();
    for (channel, token) in ctx.per_client(|_, conn| (conn.client.channel(), conn.token)) {
        let mut lease = LeaseClient::new(channel);
        grants.spawn(async move {
            let req = LeaseGrantRequest { ttl: LEASE_TTL, id: 0 };
            let id = lease.lease_grant(token.request(req)).await?.into_inner().id;
            Ok::<_, Status>(KeepAliveOp { lease, token, id, stream: None })
        });
    }
    let mut ops = Vec::new();
    while let Some(granted) = grants.join_next().await {
        let op = granted
            .expect("lease grant task panicked")
            .map_err(|s| BenchError::rpc("Lease.LeaseGrant", &s))?;
        ops.push(op);
    }
    Ok(runner::run("lease-keepalive", ops, ctx.plan()).await?.report)
}
