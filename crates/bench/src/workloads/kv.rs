//! put, range and txn-put: one unary KV request per op.
//!
//! Requests go through the generated stubs on each connection's channel rather than
//! through `oxetcd_client::Client`'s calls (unless `--via-client`): the client's calls
//! cost about 3 % more client CPU per request, and a benchmark sends each request once
//! anyway (its clients have retries off). See [`Kv`] for why and the measurements.

use oxetcd_api::etcdserverpb::{
    PutRequest, RangeRequest, RequestOp, TxnRequest, kv_client::KvClient, request_op,
};
use oxetcd_client::Client;
use tonic::Status;
use tonic::transport::Channel;

use super::Ctx;
use crate::args::{Consistency, KeyValueArgs};
use crate::client::{Conn, Token};
use crate::error::BenchError;
use crate::keys::{KeyValues, Rng};
use crate::report::Report;
use crate::runner::{self, Op};

/// How an op sends its KV requests.
///
/// `Stub` (the default) is a generated stub kept by the op across requests, on its
/// connection's channel, with the connection's auth token (attached to each request).
/// `Client` (`--via-client`) is the connection's `Client` (one endpoint, retries off,
/// attaching the token itself). Per request the client clones the channel (tower's
/// buffer sender: an allocation and a few atomics, where the stub reuses its own),
/// builds a stub on it, clones the request for a possible retry (a `Bytes` key built
/// from a `Vec` becomes shared on its first clone: another allocation), and nests the
/// call in its retry loop and timeout wrapper (larger futures to move about).
///
/// Measured with `--via-client` against the stubs (`/usr/bin/time` of the bench process,
/// user + sys; one fresh oxetcd member per run, release builds, 3 alternating runs each,
/// on the 2-core machine shared with other builds, load average ~6: median (range)):
///
/// | workload | stub req/s | client req/s | stub CPU | client CPU |
/// |---|---|---|---|---|
/// | put 100k, 1000 clients, 100 conns, 8 B keys, 256 B values | 7625 (7463–8823) | 7500 (7224–10702) | 4.17 s (4.09–4.29) | 4.28 s (4.22–4.31), +2.6 % |
/// | range 200k serializable, same clients/conns | 19079 (19037–20059) | 19278 (18773–21025) | 6.04 s (5.95–6.16) | 6.26 s (6.24–6.55), +3.6 % |
///
/// Throughput does not tell them apart (the noise is ±15 %); the client costs about
/// 3 % more client CPU per request, so the stubs stay the default and the report's
/// numbers stay comparable with earlier runs.
enum Kv {
    Stub(KvClient<Channel>, Token),
    Client(Client),
}

impl Kv {
    fn new(ctx: &Ctx, conn: Conn) -> Kv {
        if ctx.via_client {
            Kv::Client(conn.client)
        } else {
            Kv::Stub(KvClient::new(conn.client.channel()), conn.token)
        }
    }

    async fn put(&mut self, req: PutRequest) -> Result<(), Status> {
        match self {
            Kv::Stub(kv, token) => kv.put(token.request(req)).await.map(drop),
            Kv::Client(client) => {
                client.put_request(req).await.map(drop).map_err(|e| e.into_status())
            }
        }
    }

    async fn range(&mut self, req: RangeRequest) -> Result<(), Status> {
        match self {
            Kv::Stub(kv, token) => kv.range(token.request(req)).await.map(drop),
            Kv::Client(client) => client.range(req).await.map(drop).map_err(|e| e.into_status()),
        }
    }

    /// A RangeStream, its chunks read and dropped. Only through the stubs: the client
    /// has no call for it.
    async fn range_stream(&mut self, req: RangeRequest) -> Result<(), Status> {
        let Kv::Stub(kv, token) = self else {
            unreachable!("range --stream refuses --via-client");
        };
        let mut chunks = kv.range_stream(token.request(req)).await?.into_inner();
        while chunks.message().await?.is_some() {}
        Ok(())
    }

    async fn txn(&mut self, req: TxnRequest) -> Result<(), Status> {
        match self {
            Kv::Stub(kv, token) => kv.txn(token.request(req)).await.map(drop),
            Kv::Client(client) => {
                client.txn_request(req).await.map(drop).map_err(|e| e.into_status())
            }
        }
    }
}

struct PutOp {
    kv: Kv,
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
        self.kv.put(req).await
    }
}

pub async fn put(ctx: &Ctx, args: &KeyValueArgs, sequential: bool) -> Result<Report, BenchError> {
    let keys = KeyValues::new(args)?;
    let ops = ctx.per_client(|i, conn| PutOp {
        kv: Kv::new(ctx, conn),
        keys: keys.clone(),
        rng: Rng::new(i),
        sequential,
    });
    Ok(runner::run("put", ops, ctx.plan()).await?.report)
}

struct RangeOp {
    kv: Kv,
    req: RangeRequest,
    /// `--random-keys`: a random key of these per request instead of `req.key`.
    random: Option<(KeyValues, Rng)>,
}

impl RangeOp {
    fn next_request(&mut self) -> RangeRequest {
        let mut req = self.req.clone();
        if let Some((keys, rng)) = &mut self.random {
            req.key = keys.key(rng.below(keys.space()));
        }
        req
    }
}

impl Op for RangeOp {
    const RPC: &'static str = "KV.Range";

    async fn call(&mut self, _seq: u64) -> Result<(), Status> {
        let req = self.next_request();
        self.kv.range(req).await
    }
}

/// `range --stream`.
struct RangeStreamOp(RangeOp);

impl Op for RangeStreamOp {
    const RPC: &'static str = "KV.RangeStream";

    async fn call(&mut self, _seq: u64) -> Result<(), Status> {
        let req = self.0.next_request();
        self.0.kv.range_stream(req).await
    }
}

/// Which RPC a range workload reads with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRpc {
    Unary,
    /// RangeStream (etcd 3.7).
    Stream,
}

/// What a range request reads.
pub struct RangeArgs<'a> {
    pub key: &'a str,
    pub end: Option<&'a str>,
    pub limit: i64,
    /// `--random-keys`: one random key of this numbering per request instead of `key`.
    pub random: Option<KeyValueArgs>,
}

pub async fn range(
    ctx: &Ctx,
    args: RangeArgs<'_>,
    consistency: Consistency,
    keys_only: bool,
    rpc: RangeRpc,
) -> Result<Report, BenchError> {
    if rpc == RangeRpc::Stream && ctx.via_client {
        return Err(BenchError::Usage("range --stream has no --via-client form".into()));
    }
    let req = RangeRequest {
        key: args.key.as_bytes().to_vec().into(),
        range_end: args.end.unwrap_or_default().as_bytes().to_vec().into(),
        limit: args.limit,
        serializable: consistency == Consistency::S,
        keys_only,
        ..RangeRequest::default()
    };
    let random = args.random.as_ref().map(KeyValues::new).transpose()?;
    let ops = ctx.per_client(|i, conn| RangeOp {
        kv: Kv::new(ctx, conn),
        req: req.clone(),
        random: random.clone().map(|keys| (keys, Rng::new(i))),
    });
    Ok(match rpc {
        RangeRpc::Unary => runner::run("range", ops, ctx.plan()).await?.report,
        RangeRpc::Stream => {
            let ops = ops.into_iter().map(RangeStreamOp).collect();
            runner::run("range-stream", ops, ctx.plan()).await?.report
        }
    })
}

struct TxnPutOp {
    kv: Kv,
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
        self.kv.txn(req).await
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
        kv: Kv::new(ctx, conn),
        keys: keys.clone(),
        rng: Rng::new(i),
        ops: txn_ops,
    });
    Ok(runner::run("txn-put", ops, ctx.plan()).await?.report)
}
