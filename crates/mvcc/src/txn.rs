//! Txn: compares, branch choice, checks, and nested transactions, with etcd's semantics.
//!
//! Like etcd, every compare on the chosen path (nested ones included) is evaluated first,
//! against the state before the transaction; then the chosen ops are checked (a put's
//! `ignore_*` key and lease, a range's revision) so an error changes nothing; then all
//! ops run in one write transaction, at one revision.

use std::cmp::Ordering;

use oxetcd_api::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use oxetcd_api::etcdserverpb::request_op::Request;
use oxetcd_api::etcdserverpb::response_op::Response;
use oxetcd_api::etcdserverpb::{
    Compare, RequestOp, ResponseHeader, ResponseOp, TxnRequest, TxnResponse,
};
use oxetcd_api::mvccpb::KeyValue;

use crate::backend::Snapshot;
use crate::error::{Error, Result};
use crate::index::KeySpan;
use crate::read::header;
use crate::write::WriteTxn;

/// Runs `req` in `txn`.
pub fn run<S: Snapshot>(txn: &mut WriteTxn<'_, S>, req: &TxnRequest) -> Result<TxnResponse> {
    let mut path = Vec::new();
    choose_path(txn, req, &mut path)?;
    check(txn, req, &mut path.iter().copied())?;
    let mut resp = apply(txn, req, &mut path.iter().copied())?;
    resp.header = header(txn.read_rev());
    Ok(resp)
}

/// The branch each transaction on the chosen path takes, outermost first, depth first.
fn choose_path<S: Snapshot>(
    txn: &WriteTxn<'_, S>,
    req: &TxnRequest,
    path: &mut Vec<bool>,
) -> Result<()> {
    let mut succeeded = true;
    for c in &req.compare {
        if !compare(txn, c)? {
            succeeded = false;
            break;
        }
    }
    path.push(succeeded);
    for op in branch(req, succeeded) {
        if let Some(Request::RequestTxn(nested)) = &op.request {
            choose_path(txn, nested, path)?;
        }
    }
    Ok(())
}

fn branch(req: &TxnRequest, succeeded: bool) -> &[RequestOp] {
    if succeeded { &req.success } else { &req.failure }
}

/// Whether every key `c` names satisfies it. With no key in range, a VALUE compare fails
/// and any other compares against a zero key-value (so `version = 0` matches a missing
/// key), as etcd's `applyCompare` does.
fn compare<S: Snapshot>(txn: &WriteTxn<'_, S>, c: &Compare) -> Result<bool> {
    let found = txn.live(KeySpan::new(&c.key, &c.range_end));
    if found.is_empty() {
        let target = CompareTarget::try_from(c.target);
        return Ok(target != Ok(CompareTarget::Value) && compare_kv(c, &KeyValue::default()));
    }
    for (_, kr) in found {
        if !compare_kv(c, &txn.value(kr.modified)?) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// One key-value against one compare. A target union of the wrong kind counts as zero
/// (or the empty value); unknown targets compare equal and unknown results hold, as in
/// etcd.
fn compare_kv(c: &Compare, kv: &KeyValue) -> bool {
    let Ok(target) = CompareTarget::try_from(c.target) else {
        return compare_result(c, Ordering::Equal);
    };
    let wanted = match (target, &c.target_union) {
        (CompareTarget::Version, Some(TargetUnion::Version(v)))
        | (CompareTarget::Create, Some(TargetUnion::CreateRevision(v)))
        | (CompareTarget::Mod, Some(TargetUnion::ModRevision(v)))
        | (CompareTarget::Lease, Some(TargetUnion::Lease(v))) => *v,
        _ => 0,
    };
    let ord = match target {
        CompareTarget::Value => {
            let want: &[u8] = match &c.target_union {
                Some(TargetUnion::Value(v)) => v,
                _ => &[],
            };
            kv.value[..].cmp(want)
        }
        CompareTarget::Version => kv.version.cmp(&wanted),
        CompareTarget::Create => kv.create_revision.cmp(&wanted),
        CompareTarget::Mod => kv.mod_revision.cmp(&wanted),
        CompareTarget::Lease => kv.lease.cmp(&wanted),
    };
    compare_result(c, ord)
}

fn compare_result(c: &Compare, ord: Ordering) -> bool {
    match CompareResult::try_from(c.result) {
        Ok(CompareResult::Equal) => ord == Ordering::Equal,
        Ok(CompareResult::NotEqual) => ord != Ordering::Equal,
        Ok(CompareResult::Greater) => ord == Ordering::Greater,
        Ok(CompareResult::Less) => ord == Ordering::Less,
        Err(_) => true,
    }
}

/// etcd's `checkRequests`: the chosen ops' preconditions, before anything changes.
fn check<S: Snapshot>(
    txn: &WriteTxn<'_, S>,
    req: &TxnRequest,
    path: &mut impl Iterator<Item = bool>,
) -> Result<()> {
    let succeeded = path.next().unwrap_or(false);
    for op in branch(req, succeeded) {
        match &op.request {
            Some(Request::RequestTxn(nested)) => check(txn, nested, path)?,
            Some(Request::RequestPut(put)) => txn.check_put(put)?,
            Some(Request::RequestRange(range)) => {
                if range.revision > txn.begin_rev() {
                    return Err(Error::FutureRev);
                }
                if range.revision != 0 && range.revision < txn.compact_rev() {
                    return Err(Error::Compacted);
                }
            }
            Some(Request::RequestDeleteRange(_)) | None => {}
        }
    }
    Ok(())
}

fn apply<S: Snapshot>(
    txn: &mut WriteTxn<'_, S>,
    req: &TxnRequest,
    path: &mut impl Iterator<Item = bool>,
) -> Result<TxnResponse> {
    let succeeded = path.next().unwrap_or(false);
    let ops = branch(req, succeeded);
    let mut responses = Vec::with_capacity(ops.len());
    for op in ops {
        let response = match &op.request {
            Some(Request::RequestRange(r)) => Some(Response::ResponseRange(txn.range(r)?)),
            Some(Request::RequestPut(r)) => Some(Response::ResponsePut(txn.put(r)?)),
            Some(Request::RequestDeleteRange(r)) => {
                Some(Response::ResponseDeleteRange(txn.delete_range(r)?))
            }
            Some(Request::RequestTxn(r)) => Some(Response::ResponseTxn(apply(txn, r, path)?)),
            None => None,
        };
        responses.push(ResponseOp { response });
    }
    Ok(TxnResponse {
        // Nested responses carry an empty header, as in etcd; the caller sets the outer one.
        header: Some(ResponseHeader::default()),
        succeeded,
        responses,
    })
}
