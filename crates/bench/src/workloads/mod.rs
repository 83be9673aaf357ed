//! The workloads: each builds one op per client and hands them to the runner.

mod kv;
mod lease;
mod stream;
mod watch;

use std::time::Duration;

use tonic::transport::Channel;

use crate::args::{KeyValueArgs, Workload};
use crate::client::{Conn, Token};
use crate::error::BenchError;
use crate::report::Report;
use crate::runner::{Plan, Schedule};

/// What every workload needs from the command line and the connections.
pub struct Ctx {
    /// One client (and auth token) per connection.
    pub conns: Vec<Conn>,
    pub clients: u64,
    pub total: u64,
    pub progress: bool,
    /// --max-seconds, if set.
    pub max_duration: Option<Duration>,
    /// --via-client: KV requests through `Client`'s calls, not the generated stubs.
    pub via_client: bool,
    /// --rate: requests per second over all clients, if limited.
    pub rate: Option<u64>,
    /// --latency-log given: keep every request's time and latency.
    pub latency_log: bool,
}

impl Ctx {
    /// The connection client `i` uses: clients are spread evenly over connections.
    fn conn(&self, i: u64) -> Conn {
        self.conns[i as usize % self.conns.len()].clone()
    }

    /// The raw channel of client `i`'s connection, for the generated stubs, and the
    /// token their requests carry.
    fn channel(&self, i: u64) -> (Channel, Token) {
        let conn = &self.conns[i as usize % self.conns.len()];
        (conn.client.channel(), conn.token.clone())
    }

    /// One op per client.
    fn per_client<O>(&self, mut make: impl FnMut(u64, Conn) -> O) -> Vec<O> {
        (0..self.clients).map(|i| make(i, self.conn(i))).collect()
    }

    /// `--total` requests, whichever client is free sends the next one.
    fn plan(&self) -> Plan {
        Plan {
            total: self.total,
            schedule: Schedule::Shared,
            rate: self.rate,
            progress: self.progress,
            max_duration: self.max_duration,
            latency_log: self.latency_log,
        }
    }
}

pub async fn run(workload: &Workload, ctx: &Ctx) -> Result<Report, BenchError> {
    match workload {
        Workload::Put { kv, sequential_keys } => kv::put(ctx, kv, *sequential_keys).await,
        Workload::Range {
            key,
            end,
            consistency,
            limit,
            keys_only,
            stream,
            random_keys,
            random_key_size,
            random_key_offset,
        } => {
            let random = random_keys.map(|key_space_size| KeyValueArgs {
                key_size: *random_key_size,
                val_size: 0,
                key_space_size,
                key_offset: *random_key_offset,
            });
            let key = key.as_deref().unwrap_or_default();
            let range = kv::RangeArgs { key, end: end.as_deref(), limit: *limit, random };
            let rpc = if *stream { kv::RangeRpc::Stream } else { kv::RangeRpc::Unary };
            kv::range(ctx, range, *consistency, *keys_only, rpc).await
        }
        Workload::TxnPut { kv, txn_ops } => kv::txn_put(ctx, kv, *txn_ops).await,
        Workload::Watch { watch, streams, watchers_per_stream } => {
            watch::watch(ctx, watch, *streams, *watchers_per_stream).await
        }
        Workload::WatchLatency { watch, watchers } => {
            watch::watch_latency(ctx, watch, *watchers).await
        }
        Workload::WatchFanout { watchers, streams, put_total, val_size } => {
            watch::watch_fanout(ctx, *watchers, *streams, *put_total, *val_size).await
        }
        Workload::LeaseKeepalive => lease::keepalive(ctx).await,
    }
}
