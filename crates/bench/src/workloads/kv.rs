//! put, range and txn-put: one unary KV request per op.
//!
//! Requests go through the generated stubs on each connection's channel rather than
//! through `oxetcd_client::Client`'s calls: the client's per-call work (retry loop,
//! a channel clone per call) measurably costs client CPU, and a benchmark sends each
//! request once anyway.

use oxetcd_api::etcdserverpb::{
    PutRequest, RangeRequest, RequestOp, TxnRequest, kv_client::KvClient, request_op,
};
use tonic::Status;
use tonic::transport::Channel;

use super::Ctx;
use crate::args::{Consistency, KeyValueArgs};
use crate::error::BenchError;
use crate::keys::{KeyValues, Rng};
use crate::report::Report;
use crate::runner::{self, Op};

struct PutOp {
    kv: KvClient<Channel>,
    keys: KeyValues,
    rng: Rng,
    sequential: bool,
}

impl Op for PutOp {
    const RPC: &'static str = "KV.Put";

    async fn call(&mut self, seq: u64) -> Result<(), Status> {
        let n = if self.sequential { seq } else { self.rng.below(self.keys.space()) };
        let req =
            PutRequest { key: self.keys.key(n), value: self.keys.value(), ..PutRequest::default() };
        self.kv.put(req).await.map(drop)
    }
}

pub async fn put(ctx: &Ctx, args: &KeyValueArgs, sequential: bool) -> Result<Report, BenchError> {
    let keys = KeyValues::new(args)?;
    let ops = ctx.per_client(|i, conn| PutOp {
        kv: KvClient::new(conn.channel()),
        keys: keys.clone(),
        rng: Rng::new(i),
        sequential,
    });
    Ok(runner::run("put", ops, ctx.plan()).await?.report)
}

struct RangeOp {
    kv: KvClient<Channel>,
    req: RangeRequest,
}

impl Op for RangeOp {
    const RPC: &'static str = "KV.Range";

    async fn call(&mut self, _seq: u64) -> Result<(), Status> {
        self.kv.range(self.req.clone()).await.map(drop)
    }
}

pub async fn range(
    ctx: &Ctx,
    key: &str,
    end: Option<&str>,
    consistency: Consistency,
    limit: i64,
    keys_only: bool,
) -> Result<Report, BenchError> {
    let req = RangeRequest {
        key: key.as_bytes().to_vec().into(),
        range_end: end.unwrap_or_default().as_bytes().to_vec().into(),
        limit,
        serializable: consistency == Consistency::S,
        keys_only,
        ..RangeRequest::default()
    };
    let ops =
        ctx.per_client(|_, conn| RangeOp { kv: KvClient::new(conn.channel()), req: req.clone() });
    Ok(runner::run("range", ops, ctx.plan()).await?.report)
}

struct TxnPutOp {
    kv: KvClient<Channel>,
    keys: KeyValues,
    rng: Rng,
    ops: u64,
}

impl Op for TxnPutOp {
    const RPC: &'static str = "KV.Txn";

    async fn call(&mut self, _seq: u64) -> Result<(), Status> {
        // Consecutive keys from a random start: distinct, as a txn requires.
        let first = self.rng.below(self.keys.space());
        let success = (0..self.ops)
            .map(|j| RequestOp {
                request: Some(request_op::Request::RequestPut(PutRequest {
                    key: self.keys.key(first + j),
                    value: self.keys.value(),
                    ..PutRequest::default()
                })),
            })
            .collect();
        let req = TxnRequest { success, ..TxnRequest::default() };
        self.kv.txn(req).await.map(drop)
    }
}

pub async fn txn_put(ctx: &Ctx, args: &KeyValueArgs, txn_ops: u64) -> Result<Report, BenchError> {
    if args.key_space_size < txn_ops {
        return Err(BenchError::Usage(format!(
            "--key-space-size ({}) must be at least --txn-ops ({txn_ops}): keys in a txn are distinct",
            args.key_space_size
        )));
    }
    let keys = KeyValues::new(args)?;
    let ops = ctx.per_client(|i, conn| TxnPutOp {
        kv: KvClient::new(conn.channel()),
        keys: keys.clone(),
        rng: Rng::new(i),
        ops: txn_ops,
    });
    Ok(runner::run("txn-put", ops, ctx.plan()).await?.report)
}
