//! Any sequence of client requests, each through the checks the server makes before it
//! proposes one (`mvcc::validate`, the request size limit) and then applied as the apply
//! thread applies it, to a store in memory and a lessor that leads: Range, Put,
//! DeleteRange, Txn, Compaction, and the lease requests (grant, revoke, checkpoint,
//! keep-alive, time-to-live). Each piece of the input (`oxetcd_fuzz::tagged_pieces`) is
//! one request: the tag picks the message, the piece is its protobuf encoding.
#![no_main]

use std::sync::Arc;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use oxetcd_api::etcdserverpb::{
    CompactionRequest, DeleteRangeRequest, LeaseCheckpointRequest, LeaseGrantRequest,
    LeaseKeepAliveRequest, LeaseRevokeRequest, LeaseTimeToLiveRequest, PutRequest, RangeRequest,
    TxnRequest,
};
use oxetcd_fuzz::tagged_pieces;
use oxetcd_lease::{LEASE_TABLE, Lessor, SystemClock};
use oxetcd_mvcc::backend::memory::MemoryBackend;
use oxetcd_mvcc::validate::{
    self, DEFAULT_MAX_REQUEST_BYTES, DEFAULT_MAX_TXN_OPS, check_delete_range, check_put,
    check_range, check_txn,
};
use oxetcd_mvcc::{ApplyIndex, Store, StoreConfig};
use prost::Message;

/// Requests per input: enough for a history, few enough to keep runs fast.
const MAX_REQUESTS: usize = 32;

fuzz_target!(|data: &[u8]| {
    let lessor = Arc::new(Lessor::new(1, Arc::new(SystemClock)));
    lessor.promote(Duration::from_secs(1));
    let store = Store::open(MemoryBackend::default(), StoreConfig::default(), lessor.clone())
        .expect("a store opens on an empty backend");
    for (index, (tag, bytes)) in tagged_pieces(data).take(MAX_REQUESTS).enumerate() {
        let at = ApplyIndex { index: index as u64 + 1, term: 1 };
        if validate::check_request_size(bytes.len(), DEFAULT_MAX_REQUEST_BYTES).is_err() {
            continue;
        }
        match tag % 10 {
            0 => {
                let Ok(req) = RangeRequest::decode(bytes) else { continue };
                if check_range(&req).is_ok() {
                    let _ = store.range(&req);
                }
            }
            1 => {
                let Ok(req) = PutRequest::decode(bytes) else { continue };
                if check_put(&req).is_ok() {
                    let _ = store.put(&req, at);
                }
            }
            2 => {
                let Ok(req) = DeleteRangeRequest::decode(bytes) else { continue };
                if check_delete_range(&req).is_ok() {
                    let _ = store.delete_range(&req, at);
                }
            }
            3 => {
                let Ok(req) = TxnRequest::decode(bytes) else { continue };
                if check_txn(&req, DEFAULT_MAX_TXN_OPS).is_ok() {
                    let _ = store.txn(&req, at);
                }
            }
            4 => {
                let Ok(req) = CompactionRequest::decode(bytes) else { continue };
                let _ = store.compact(req.revision, at);
            }
            5 => {
                let Ok(req) = LeaseGrantRequest::decode(bytes) else { continue };
                if let Ok(lease) = lessor.grant(req.id, req.ttl) {
                    let _ = store.aux_write(LEASE_TABLE, [lease.row()], at);
                }
            }
            6 => {
                let Ok(req) = LeaseRevokeRequest::decode(bytes) else { continue };
                if let Ok(keys) = lessor.revoke(req.id) {
                    let _ = store.delete_keys(&keys, at);
                }
            }
            7 => {
                let Ok(req) = LeaseCheckpointRequest::decode(bytes) else { continue };
                for checkpoint in req.checkpoints {
                    let _ = lessor.checkpoint(checkpoint.id, checkpoint.remaining_ttl);
                }
            }
            8 => {
                let Ok(req) = LeaseKeepAliveRequest::decode(bytes) else { continue };
                let _ = lessor.renew(req.id);
            }
            _ => {
                let Ok(req) = LeaseTimeToLiveRequest::decode(bytes) else { continue };
                let _ = lessor.status(req.id);
            }
        }
    }
    // A new leader starts every lease over, from what the checkpoints left.
    lessor.demote();
    lessor.promote(Duration::from_secs(1));
    let _ = store.hash_kv(0);
});
