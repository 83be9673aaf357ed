//! Writing: one write transaction, which becomes one main revision.
//!
//! A [`WriteTxn`] runs under the store's exclusive index lock. Each change gets the next
//! sub revision, goes to the pending buffer (readable at once, committed to the backend
//! with its batch) and to the index, and yields an `mvccpb::Event`. Reads inside the
//! transaction see its earlier changes, as in etcd.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;

use bytes::Bytes;
use oxetcd_api::etcdserverpb::{
    DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse, RangeRequest, RangeResponse,
};
use oxetcd_api::mvccpb::event::EventType;
use oxetcd_api::mvccpb::{Event, KeyValue};
use prost::Message;

use crate::backend::{Row, Snapshot};
use crate::error::{Error, Result};
use crate::index::{Index, KeySpan};
use crate::key_index::KeyRevision;
use crate::lease::{LeaseId, Lessor};
use crate::read::{self, Buffer, Values, header};
use crate::revision::Revision;
use crate::stats::OpCounts;
use crate::sync::write;

/// The index and the revisions it is at.
#[derive(Debug)]
pub struct State {
    /// Every key's history.
    pub index: Index,
    /// The revision of the last write transaction (1 for an empty store, as in etcd).
    pub current_rev: i64,
    /// The last compaction's revision (-1 if never compacted, as in etcd).
    pub compact_rev: i64,
    /// The lease of every live key that has one, so that a put learns its key's old
    /// lease without reading the old value.
    pub leases: HashMap<Bytes, LeaseId>,
}

/// One write transaction in progress.
pub struct WriteTxn<'a, S> {
    state: &'a mut State,
    values: &'a Values<S>,
    pending: &'a Arc<Buffer>,
    lessor: &'a dyn Lessor,
    begin_rev: i64,
    events: Vec<Event>,
    /// For metrics: the ops this transaction ran.
    ops: OpCounts,
}

impl<'a, S: Snapshot> WriteTxn<'a, S> {
    /// Starts a transaction on `state`; `pending` must be the first of `values`' buffers.
    pub fn new(
        state: &'a mut State,
        values: &'a Values<S>,
        pending: &'a Arc<Buffer>,
        lessor: &'a dyn Lessor,
    ) -> Self {
        debug_assert!(values.buffers.first().is_some_and(|b| Arc::ptr_eq(b, pending)));
        let begin_rev = state.current_rev;
        Self {
            state,
            values,
            pending,
            lessor,
            begin_rev,
            events: Vec::new(),
            ops: OpCounts::default(),
        }
    }

    /// The revision before this transaction.
    pub fn begin_rev(&self) -> i64 {
        self.begin_rev
    }

    /// The compacted revision.
    pub fn compact_rev(&self) -> i64 {
        self.state.compact_rev
    }

    /// Whether the transaction has changed anything yet.
    pub fn changed(&self) -> bool {
        !self.events.is_empty()
    }

    /// The revision reads inside the transaction see: its own, once it has written.
    pub fn read_rev(&self) -> i64 {
        self.begin_rev + i64::from(self.changed())
    }

    /// The live keys of `span` at the transaction's read revision, with their state.
    pub fn live(&self, span: KeySpan<'_>) -> Vec<(Bytes, KeyRevision)> {
        let mut found = Vec::new();
        self.state.index.visit(span, self.read_rev(), |key, kr| {
            found.push((Bytes::copy_from_slice(key), kr));
            ControlFlow::Continue(())
        });
        found
    }

    /// `key`'s state at the read revision.
    pub fn get(&self, key: &[u8]) -> Option<KeyRevision> {
        self.state.index.get(key, self.read_rev())
    }

    /// The stored value at `rev`.
    pub fn value(&self, rev: Revision) -> Result<KeyValue> {
        self.values.get(rev)
    }

    /// The ops run so far.
    pub fn ops(&self) -> OpCounts {
        self.ops
    }

    /// A Range inside the transaction.
    pub fn range(&mut self, req: &RangeRequest) -> Result<RangeResponse> {
        self.ops.ranges += 1;
        let plan = read::plan(&self.state.index, self.read_rev(), self.state.compact_rev, req)?;
        read::execute(self.values, req, plan)
    }

    fn next_rev(&self) -> Result<Revision> {
        let sub = i64::try_from(self.events.len()).map_err(|_| Error::TooManyOps)?;
        Ok(Revision::new(self.begin_rev + 1, sub))
    }

    fn push_row(&self, rev: Revision, tombstone: bool, kv: &KeyValue) {
        let row = Row { rev, tombstone, value: Bytes::from(kv.encode_to_vec()) };
        let mut pending = write(self.pending);
        debug_assert!(pending.rows.last().is_none_or(|last| last.rev < rev));
        pending.rows.push(row);
    }

    /// Checks a Put against the current state without changing anything (etcd's
    /// `checkRequestPut`): `ignore_value`/`ignore_lease` need the key, a lease must exist.
    pub fn check_put(&self, req: &PutRequest) -> Result<()> {
        if (req.ignore_value || req.ignore_lease) && self.get(&req.key).is_none() {
            return Err(Error::KeyNotFound);
        }
        if req.lease != 0 && !self.lessor.lease_exists(req.lease) {
            return Err(Error::LeaseNotFound);
        }
        Ok(())
    }

    /// A Put.
    pub fn put(&mut self, req: &PutRequest) -> Result<PutResponse> {
        self.check_put(req)?;
        self.ops.puts += 1;
        let rev = self.next_rev()?;
        let read_rev = self.read_rev();
        let slot = self.state.index.slot(&req.key);
        let prev = slot.get(read_rev);
        // The old value is read only when the request needs it: watchers that want
        // previous values load them themselves, as etcd's do. A failed read leaves the
        // index untouched (the slot is dropped before its put).
        let prev_kv = match prev {
            Some(kr) if req.prev_kv || req.ignore_value => Some(self.values.get(kr.modified)?),
            _ => None,
        };
        slot.put(rev);
        let old_lease = self.state.leases.get(&req.key).copied().unwrap_or(0);
        let value = match &prev_kv {
            Some(p) if req.ignore_value => p.value.clone(),
            _ => req.value.clone(),
        };
        let lease = if req.ignore_lease { old_lease } else { req.lease };
        let kv = KeyValue {
            key: req.key.clone(),
            create_revision: prev.map_or(rev.main, |p| p.created.main),
            mod_revision: rev.main,
            version: prev.map_or(1, |p| p.version + 1),
            value,
            lease,
        };
        self.push_row(rev, false, &kv);
        if old_lease != lease {
            if old_lease != 0 {
                self.lessor.detach(old_lease, &req.key);
                self.state.leases.remove(&req.key);
            }
            if lease != 0 {
                self.lessor.attach(lease, &req.key);
                // A copy: the request's key shares the buffer of the whole raft entry.
                self.state.leases.insert(Bytes::copy_from_slice(&req.key), lease);
            }
        }
        self.events.push(Event { r#type: EventType::Put as i32, kv: Some(kv), prev_kv: None });
        Ok(PutResponse { header: header(rev.main), prev_kv: prev_kv.filter(|_| req.prev_kv) })
    }

    /// A DeleteRange.
    pub fn delete_range(&mut self, req: &DeleteRangeRequest) -> Result<DeleteRangeResponse> {
        self.ops.deletes += 1;
        let found = self.live(KeySpan::new(&req.key, &req.range_end));
        let prev_kvs =
            found.iter().map(|(_, kr)| self.value(kr.modified)).collect::<Result<Vec<_>>>()?;
        for ((key, _), prev) in found.iter().zip(&prev_kvs) {
            let rev = self.next_rev()?;
            self.push_row(rev, true, &KeyValue { key: key.clone(), ..Default::default() });
            if self.state.index.tombstone(key, rev).is_err() {
                return Err(Error::Corrupt(format!(
                    "deleting {key:?}, which the index did not list as live"
                )));
            }
            if prev.lease != 0 {
                self.lessor.detach(prev.lease, key);
                self.state.leases.remove(key);
            }
            self.events.push(Event {
                r#type: EventType::Delete as i32,
                kv: Some(KeyValue {
                    key: key.clone(),
                    mod_revision: rev.main,
                    ..Default::default()
                }),
                prev_kv: Some(prev.clone()),
            });
        }
        let deleted = i64::try_from(found.len()).unwrap_or(i64::MAX);
        Ok(DeleteRangeResponse {
            header: header(self.read_rev()),
            deleted,
            prev_kvs: if req.prev_kv { prev_kvs } else { Vec::new() },
        })
    }

    /// Ends the transaction: the store moves to its revision if it changed anything.
    /// Returns the events, one per change.
    pub fn finish(self) -> Vec<Event> {
        if self.changed() {
            self.state.current_rev = self.begin_rev + 1;
        }
        self.events
    }
}
