//! Request validation, as etcd's gRPC layer (`v3rpc/key.go`) does it before proposing.
//!
//! The server calls these before a request enters raft; the store calls them again so a
//! bad request can never change anything. Things etcd does not reject are not rejected
//! here either: a `range_end` before `key` selects nothing, a negative `limit` means no
//! limit, a non-positive `revision` means the current one.

use std::cmp::Ordering;
use std::collections::HashSet;

use bytes::Bytes;
use oxetcd_api::etcdserverpb::request_op::Request;
use oxetcd_api::etcdserverpb::{
    DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};

use crate::error::{Error, Result};

/// etcd's default `--max-txn-ops`.
pub const DEFAULT_MAX_TXN_OPS: usize = 128;
/// etcd's default `--max-request-bytes` (1.5 MiB).
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 3 << 19;

/// Checks a Range request.
pub fn check_range(req: &RangeRequest) -> Result<()> {
    if req.key.is_empty() {
        return Err(Error::EmptyKey);
    }
    Ok(())
}

/// Checks a Put request.
pub fn check_put(req: &PutRequest) -> Result<()> {
    if req.key.is_empty() {
        return Err(Error::EmptyKey);
    }
    if req.ignore_value && !req.value.is_empty() {
        return Err(Error::ValueProvided);
    }
    if req.ignore_lease && req.lease != 0 {
        return Err(Error::LeaseProvided);
    }
    Ok(())
}

/// Checks a DeleteRange request.
pub fn check_delete_range(req: &DeleteRangeRequest) -> Result<()> {
    if req.key.is_empty() {
        return Err(Error::EmptyKey);
    }
    Ok(())
}

/// Checks the encoded size of a request against the limit (etcd: "request is too large").
pub fn check_request_size(encoded_len: usize, max_request_bytes: usize) -> Result<()> {
    if encoded_len > max_request_bytes {
        return Err(Error::RequestTooLarge);
    }
    Ok(())
}

/// Checks a Txn request: op counts (each nested level against what its parent leaves),
/// keys, and that no key is written twice.
pub fn check_txn(req: &TxnRequest, max_txn_ops: usize) -> Result<()> {
    check_txn_ops(req, max_txn_ops)?;
    check_writes(&req.success)?;
    check_writes(&req.failure)?;
    Ok(())
}

fn check_txn_ops(req: &TxnRequest, max_txn_ops: usize) -> Result<()> {
    let ops = req.compare.len().max(req.success.len()).max(req.failure.len());
    if ops > max_txn_ops {
        return Err(Error::TooManyOps);
    }
    if req.compare.iter().any(|c| c.key.is_empty()) {
        return Err(Error::EmptyKey);
    }
    for op in req.success.iter().chain(&req.failure) {
        check_request_op(op, max_txn_ops - ops)?;
    }
    Ok(())
}

fn check_request_op(op: &RequestOp, max_txn_ops: usize) -> Result<()> {
    match &op.request {
        Some(Request::RequestRange(r)) => check_range(r),
        Some(Request::RequestPut(r)) => check_put(r),
        Some(Request::RequestDeleteRange(r)) => check_delete_range(r),
        Some(Request::RequestTxn(r)) => check_txn_ops(r, max_txn_ops),
        None => Err(Error::KeyNotFound),
    }
}

/// A key bound where the empty string stands for "no end" (etcd's affine strings).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Affine(Bytes);

impl Ord for Affine {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self.0.is_empty(), other.0.is_empty()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => self.0.cmp(&other.0),
        }
    }
}

impl PartialOrd for Affine {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The keys a delete in a txn covers: `[start, end)`, compared as etcd's interval tree
/// compares them (an end of `"\0"` is taken literally, as etcd does here).
#[derive(Clone, Debug)]
struct Interval {
    start: Affine,
    end: Affine,
}

impl Interval {
    fn point(key: &Bytes) -> Self {
        let mut end = key.to_vec();
        end.push(0);
        Self { start: Affine(key.clone()), end: Affine(end.into()) }
    }

    fn of_delete(req: &DeleteRangeRequest) -> Self {
        if req.range_end.is_empty() {
            Self::point(&req.key)
        } else {
            Self { start: Affine(req.key.clone()), end: Affine(req.range_end.clone()) }
        }
    }

    fn intersects(&self, other: &Self) -> bool {
        self.start < other.end && other.start < self.end
    }
}

/// Deletes seen so far at one txn level.
#[derive(Default)]
struct Deletes(Vec<Interval>);

impl Deletes {
    fn covers(&self, key: &Bytes) -> bool {
        let point = Interval::point(key);
        self.0.iter().any(|iv| iv.intersects(&point))
    }

    /// Adds the intervals of `other` that etcd's union keeps (those meeting `["\0", ∞)`).
    fn union(&mut self, other: Deletes) {
        let everything =
            Interval { start: Affine(Bytes::from_static(b"\0")), end: Affine(Bytes::new()) };
        self.0.extend(other.0.into_iter().filter(|iv| iv.intersects(&everything)));
    }
}

fn check_writes(ops: &[RequestOp]) -> Result<()> {
    collect_writes(ops).map(drop)
}

/// etcd's `checkIntervals`: the keys put and the ranges deleted by `ops`, refusing a key
/// put twice or put and deleted (nested txns' success and failure branches may put the
/// same key, since only one of them runs).
fn collect_writes(ops: &[RequestOp]) -> Result<(HashSet<Bytes>, Deletes)> {
    let mut dels = Deletes::default();
    for op in ops {
        if let Some(Request::RequestDeleteRange(d)) = &op.request {
            dels.0.push(Interval::of_delete(d));
        }
    }
    let mut puts: HashSet<Bytes> = HashSet::new();
    for op in ops {
        let Some(Request::RequestTxn(txn)) = &op.request else {
            continue;
        };
        let (puts_then, dels_then) = collect_writes(&txn.success)?;
        let (puts_else, dels_else) = collect_writes(&txn.failure)?;
        for key in &puts_then {
            if puts.contains(key) || dels.covers(key) {
                return Err(Error::DuplicateKey);
            }
            puts.insert(key.clone());
        }
        for key in puts_else {
            if (puts.contains(&key) && !puts_then.contains(&key)) || dels.covers(&key) {
                return Err(Error::DuplicateKey);
            }
            puts.insert(key);
        }
        dels.union(dels_then);
        dels.union(dels_else);
    }
    for op in ops {
        let Some(Request::RequestPut(put)) = &op.request else {
            continue;
        };
        if puts.contains(&put.key) || dels.covers(&put.key) {
            return Err(Error::DuplicateKey);
        }
        puts.insert(put.key.clone());
    }
    Ok((puts, dels))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str) -> RequestOp {
        RequestOp {
            request: Some(Request::RequestPut(PutRequest {
                key: Bytes::copy_from_slice(key.as_bytes()),
                ..Default::default()
            })),
        }
    }

    fn del(key: &str, end: &str) -> RequestOp {
        RequestOp {
            request: Some(Request::RequestDeleteRange(DeleteRangeRequest {
                key: Bytes::copy_from_slice(key.as_bytes()),
                range_end: Bytes::copy_from_slice(end.as_bytes()),
                ..Default::default()
            })),
        }
    }

    fn txn(success: Vec<RequestOp>, failure: Vec<RequestOp>) -> TxnRequest {
        TxnRequest { compare: vec![], success, failure }
    }

    fn nested(t: TxnRequest) -> RequestOp {
        RequestOp { request: Some(Request::RequestTxn(t)) }
    }

    #[test]
    fn duplicate_writes_are_refused_like_etcd() {
        let max = DEFAULT_MAX_TXN_OPS;
        assert_eq!(
            check_txn(&txn(vec![put("a"), put("a")], vec![]), max),
            Err(Error::DuplicateKey)
        );
        assert_eq!(
            check_txn(&txn(vec![del("a", "c"), put("b")], vec![]), max),
            Err(Error::DuplicateKey)
        );
        assert_eq!(
            check_txn(&txn(vec![del("a", ""), put("a")], vec![]), max),
            Err(Error::DuplicateKey)
        );
        // Success and failure are separate: the same key in both is fine.
        assert_eq!(check_txn(&txn(vec![put("a")], vec![put("a")]), max), Ok(()));
        // A nested txn may put the same key in both branches, but not next to a put of it.
        let inner = txn(vec![put("x")], vec![put("x")]);
        assert_eq!(check_txn(&txn(vec![nested(inner.clone())], vec![]), max), Ok(()));
        assert_eq!(
            check_txn(&txn(vec![nested(inner), put("x")], vec![]), max),
            Err(Error::DuplicateKey)
        );
        // etcd takes a "\0" range end literally here, so a from-key delete meets nothing.
        assert_eq!(check_txn(&txn(vec![del("a", "\0"), put("b")], vec![]), max), Ok(()));
    }

    #[test]
    fn op_limits_apply_per_level() {
        let ops: Vec<_> = (0..4).map(|i| put(&format!("k{i}"))).collect();
        assert_eq!(check_txn(&txn(ops.clone(), vec![]), 4), Ok(()));
        assert_eq!(check_txn(&txn(ops.clone(), vec![]), 3), Err(Error::TooManyOps));
        // A nested txn gets what its parent leaves.
        let inner = txn(vec![put("z")], vec![]);
        assert_eq!(check_txn(&txn(vec![nested(inner)], vec![]), 1), Err(Error::TooManyOps));
    }

    #[test]
    fn single_requests() {
        assert_eq!(check_range(&RangeRequest::default()), Err(Error::EmptyKey));
        let mut p = PutRequest {
            key: Bytes::from_static(b"k"),
            ignore_value: true,
            value: Bytes::from_static(b"v"),
            ..Default::default()
        };
        assert_eq!(check_put(&p), Err(Error::ValueProvided));
        p.value = Bytes::new();
        p.ignore_lease = true;
        p.lease = 5;
        assert_eq!(check_put(&p), Err(Error::LeaseProvided));
        assert_eq!(check_delete_range(&DeleteRangeRequest::default()), Err(Error::EmptyKey));
        assert_eq!(
            check_txn_ops(
                &TxnRequest { success: vec![RequestOp { request: None }], ..Default::default() },
                8
            ),
            Err(Error::KeyNotFound)
        );
        assert_eq!(check_request_size(11, 10), Err(Error::RequestTooLarge));
    }
}
