//! The backend quota (etcd's `etcdserver/quota.go`): what a request costs, and whether
//! the backend has room for it under `--quota-backend-bytes`.
//!
//! The proposing member checks a request before it enters the log; over the quota, it
//! raises the NOSPACE alarm through the log and refuses the request. Requests already in
//! the log when the alarm is applied are let through: the backend can pass the quota by
//! what is in flight, which the next check catches. etcd also checks again at apply and,
//! over the quota, applies the write yet answers the client "database space exceeded" —
//! a write reported as failed that is in the store; oxetcd answers such a write with
//! its success.

use oxetcd_api::etcdserverpb::{PutRequest, RequestOp, TxnRequest, request_op};
use oxetcd_api::oxetcdpb::InternalRaftRequest;

/// `--quota-backend-bytes` when not given (etcd's `DefaultQuotaBytes`: 2 GiB).
pub const DEFAULT_QUOTA_BYTES: u64 = 2 << 30;
/// Above this, etcd 3.4 warns that performance may degrade (its `MaxQuotaBytes`: 8 GiB).
pub const MAX_RECOMMENDED_QUOTA_BYTES: u64 = 8 << 30;
/// etcd's estimate of what a key's metadata costs in the backend (`kvOverhead`).
const KV_OVERHEAD: u64 = 256;
/// etcd's estimate of what a lease costs in the backend (`leaseOverhead`).
const LEASE_OVERHEAD: u64 = 64;

/// The limit the backend's in-use bytes are held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quota {
    /// `--quota-backend-bytes` negative: no limit.
    Disabled,
    Bytes(u64),
}

impl Quota {
    /// The quota `--quota-backend-bytes` asks for (0: the default), logged as etcd does.
    pub fn from_flag(bytes: i64) -> Quota {
        let quota = match bytes {
            b if b < 0 => {
                tracing::info!(quota_size_bytes = b, "disabled backend quota");
                return Quota::Disabled;
            }
            0 => {
                tracing::info!(
                    quota_size_bytes = DEFAULT_QUOTA_BYTES,
                    "enabled backend quota with default value"
                );
                return Quota::Bytes(DEFAULT_QUOTA_BYTES);
            }
            b => b as u64,
        };
        if quota > MAX_RECOMMENDED_QUOTA_BYTES {
            tracing::warn!(
                quota_size_bytes = quota,
                quota_maximum_size_bytes = MAX_RECOMMENDED_QUOTA_BYTES,
                "quota exceeds the maximum value"
            );
        }
        tracing::info!(quota_size_bytes = quota, "enabled backend quota");
        Quota::Bytes(quota)
    }

    /// Whether a request costing `cost` fits beside `in_use` bytes (etcd's `Available`:
    /// a request that costs nothing always does).
    pub fn available(self, in_use: u64, cost: u64) -> bool {
        match self {
            Quota::Disabled => true,
            Quota::Bytes(quota) => cost == 0 || in_use.saturating_add(cost) < quota,
        }
    }

    /// The limit in bytes, for Status and metrics (0 when disabled).
    pub fn bytes(self) -> u64 {
        match self {
            Quota::Disabled => 0,
            Quota::Bytes(bytes) => bytes,
        }
    }
}

/// What `request` may add to the backend: puts and lease grants cost, the rest is free.
pub fn cost(request: &InternalRaftRequest) -> u64 {
    if let Some(put) = &request.put {
        cost_put(put)
    } else if let Some(txn) = &request.txn {
        cost_txn(txn)
    } else if request.lease_grant.is_some() {
        LEASE_OVERHEAD
    } else {
        0
    }
}

fn cost_put(put: &PutRequest) -> u64 {
    KV_OVERHEAD + put.key.len() as u64 + put.value.len() as u64
}

/// The dearer branch of a txn. Nested txns count too (etcd 3.4 charges them nothing,
/// though their puts take the same room).
fn cost_txn(txn: &TxnRequest) -> u64 {
    let branch = |ops: &[RequestOp]| -> u64 {
        ops.iter()
            .map(|op| match &op.request {
                Some(request_op::Request::RequestPut(put)) => cost_put(put),
                Some(request_op::Request::RequestTxn(nested)) => cost_txn(nested),
                _ => 0,
            })
            .sum()
    };
    branch(&txn.success).max(branch(&txn.failure))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put_op(value: &str) -> RequestOp {
        RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest {
                key: "k".into(),
                value: value.to_string().into(),
                ..Default::default()
            })),
        }
    }

    #[test]
    fn costs_are_etcds() {
        let put = InternalRaftRequest {
            put: Some(PutRequest {
                key: "key".into(),
                value: "value".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(cost(&put), 256 + 3 + 5);
        let txn = TxnRequest {
            success: vec![put_op("12345")],
            failure: vec![put_op("1"), put_op("1")],
            ..Default::default()
        };
        let request = InternalRaftRequest { txn: Some(txn.clone()), ..Default::default() };
        assert_eq!(cost(&request), 2 * (256 + 2), "the dearer branch");
        let nested = TxnRequest {
            success: vec![RequestOp { request: Some(request_op::Request::RequestTxn(txn)) }],
            ..Default::default()
        };
        assert_eq!(cost(&InternalRaftRequest { txn: Some(nested), ..Default::default() }), 516);
        let grant =
            InternalRaftRequest { lease_grant: Some(Default::default()), ..Default::default() };
        assert_eq!(cost(&grant), 64);
        assert_eq!(cost(&InternalRaftRequest::default()), 0);
    }

    #[test]
    fn a_request_fits_below_the_quota_only() {
        let quota = Quota::Bytes(1000);
        assert!(quota.available(700, 299));
        assert!(!quota.available(700, 300), "etcd's test is strict");
        assert!(quota.available(5000, 0), "free requests always pass");
        assert!(Quota::Disabled.available(u64::MAX, 10));
        assert_eq!(Quota::from_flag(0), Quota::Bytes(DEFAULT_QUOTA_BYTES));
        assert_eq!(Quota::from_flag(-1), Quota::Disabled);
    }
}
