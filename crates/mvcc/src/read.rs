//! Reading: fetching stored values and answering Range requests.
//!
//! A range runs in two steps so the index lock is held only while walking keys:
//! [`plan`] picks the revisions to fetch (under the index lock), [`execute`] fetches,
//! sorts and trims them (from a [`Values`] view captured under the same lock).

use std::cmp::Ordering;
use std::ops::ControlFlow;
use std::sync::{Arc, RwLock};

use oxetcd_api::etcdserverpb::range_request::{SortOrder, SortTarget};
use oxetcd_api::etcdserverpb::{RangeRequest, RangeResponse, ResponseHeader};
use oxetcd_api::mvccpb::event::EventType;
use oxetcd_api::mvccpb::{Event, KeyValue};
use prost::Message;

use crate::backend::{Batch, KEY_TABLE, Snapshot};
use crate::error::{Error, Result};
use crate::index::{Index, KeySpan};
use crate::key_index::KeyRevision;
use crate::revision::Revision;
use crate::sync::read;

/// Writes not yet committed to the backend, shared by the writer and readers.
pub type Buffer = RwLock<Batch>;

/// Where a reader finds values: the buffers of not-yet-committed writes, newest first,
/// then the backend's last commit. Captured atomically with the index state it serves.
#[derive(Debug)]
pub struct Values<S> {
    /// Buffers not yet in `committed` (the pending one, then the one being committed).
    pub buffers: Vec<Arc<Buffer>>,
    /// The backend as of its last commit.
    pub committed: S,
}

impl<S: Snapshot> Values<S> {
    /// The key-value written at `rev` (which the index says exists).
    pub fn get(&self, rev: Revision) -> Result<KeyValue> {
        for buffer in &self.buffers {
            if let Some(bytes) = read(buffer).get(rev) {
                return Ok(KeyValue::decode(bytes.clone())?);
            }
        }
        self.committed
            .get(KEY_TABLE, &rev.to_bytes(), |bytes| KeyValue::decode(bytes))?
            .ok_or_else(|| Error::Corrupt(format!("revision {rev:?} is indexed but not stored")))?
            .map_err(Error::from)
    }
}

impl<S: Snapshot> Values<S> {
    /// Every change with a main revision in `from..to`, in revision order, as watch events
    /// (without `prev_kv`).
    pub fn events(&self, from: i64, to: i64) -> Result<Vec<Event>> {
        let end = Revision::at_main(to).to_bytes();
        let mut events = Vec::new();
        let mut failure = None;
        self.committed.scan(KEY_TABLE, &Revision::at_main(from).to_bytes(), |k, v| {
            if k >= &end[..] {
                return ControlFlow::Break(());
            }
            let decoded = Revision::from_key(k)
                .ok_or_else(|| Error::Corrupt(format!("key table row {k:?} is not a revision")))
                .and_then(|(rev, tomb)| Ok(event(rev, tomb, KeyValue::decode(v)?)));
            match decoded {
                Ok(e) => events.push(e),
                Err(e) => {
                    failure = Some(e);
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
        // The buffer being committed holds older writes than the pending one.
        for buffer in self.buffers.iter().rev() {
            for row in read(buffer).rows.iter().filter(|r| (from..to).contains(&r.rev.main)) {
                events.push(event(row.rev, row.tombstone, KeyValue::decode(row.value.clone())?));
            }
        }
        Ok(events)
    }
}

/// The watch event a stored row stands for (a tombstone's value holds only the key).
fn event(rev: Revision, tombstone: bool, mut kv: KeyValue) -> Event {
    let kind = if tombstone {
        kv.mod_revision = rev.main;
        EventType::Delete
    } else {
        EventType::Put
    };
    Event { r#type: kind as i32, kv: Some(kv), prev_kv: None }
}

/// A response header carrying only the revision; the server fills in the rest.
pub fn header(revision: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader { revision, ..Default::default() })
}

/// The revision a read at `requested` sees, given the current and compacted revisions.
pub fn read_revision(requested: i64, current: i64, compacted: i64) -> Result<i64> {
    if requested > current {
        return Err(Error::FutureRev);
    }
    let rev = if requested <= 0 { current } else { requested };
    if rev < compacted {
        return Err(Error::Compacted);
    }
    Ok(rev)
}

/// How a range sorts its result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Sort {
    order: SortOrder,
    target: SortTarget,
}

impl Sort {
    fn of(req: &RangeRequest) -> Self {
        // Unknown enum values fall back to the defaults (etcd would not sort either).
        let target = SortTarget::try_from(req.sort_target).unwrap_or(SortTarget::Key);
        let mut order = SortOrder::try_from(req.sort_order).unwrap_or(SortOrder::None);
        if target != SortTarget::Key && order == SortOrder::None {
            order = SortOrder::Ascend;
        }
        Self { order, target }
    }

    /// Whether key order already is the requested order.
    fn is_key_order(self) -> bool {
        self.order == SortOrder::None
            || (self.order == SortOrder::Ascend && self.target == SortTarget::Key)
    }

    fn compare(self, a: &KeyValue, b: &KeyValue) -> Ordering {
        let ord = match self.target {
            SortTarget::Key => a.key.cmp(&b.key),
            SortTarget::Version => a.version.cmp(&b.version),
            SortTarget::Create => a.create_revision.cmp(&b.create_revision),
            SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
            SortTarget::Value => a.value.cmp(&b.value),
        };
        if self.order == SortOrder::Descend { ord.reverse() } else { ord }
    }
}

/// Whether `req`'s answer is in key order (no sort, or ascending by key).
pub fn in_key_order(req: &RangeRequest) -> bool {
    Sort::of(req).is_key_order()
}

/// The revisions a range fetches, chosen from the index.
#[derive(Debug)]
pub struct Plan {
    header_revision: i64,
    count: i64,
    revs: Vec<Revision>,
}

/// Picks what `req` reads, at `current` (the revision the reader sees) with the store
/// compacted at `compacted`. Counts every key in range (filters do not change `count`,
/// as in etcd); applies the revision filters using the index alone; stops collecting at
/// `limit + 1` keys when key order is the result order.
pub fn plan(index: &Index, current: i64, compacted: i64, req: &RangeRequest) -> Result<Plan> {
    let rev = read_revision(req.revision, current, compacted)?;
    let sort = Sort::of(req);
    let cap = match usize::try_from(req.limit) {
        Ok(limit) if limit > 0 && sort.is_key_order() => limit.saturating_add(1),
        _ => usize::MAX,
    };
    let mut count = 0i64;
    let mut revs = Vec::new();
    index.visit(KeySpan::new(&req.key, &req.range_end), rev, |_, kr| {
        count += 1;
        if !req.count_only && revs.len() < cap && passes_filters(req, kr) {
            revs.push(kr.modified);
        }
        ControlFlow::Continue(())
    });
    Ok(Plan { header_revision: current, count, revs })
}

/// Whether a key passes `req`'s revision filters (which never change `count`).
fn passes_filters(req: &RangeRequest, kr: KeyRevision) -> bool {
    let keep = |v: i64, min: i64, max: i64| (min == 0 || v >= min) && (max == 0 || v <= max);
    keep(kr.modified.main, req.min_mod_revision, req.max_mod_revision)
        && keep(kr.created.main, req.min_create_revision, req.max_create_revision)
}

/// What one chunk of a streamed range reads (etcd 3.7's RangeStream): the keys of
/// `req`'s range from `from` on, at one revision, until `max_kvs` pass the filters.
#[derive(Debug)]
pub struct ChunkPlan {
    read_revision: i64,
    header_revision: i64,
    /// The revisions to fetch, each with the number of keys in range visited up to and
    /// including it (filtered out or not), so that a chunk cut short still counts exactly.
    revs: Vec<(Revision, i64)>,
    keys_visited: i64,
    /// Where the walk stopped, if before the range's end: the smallest key after the last
    /// one visited.
    resume_at: Option<Vec<u8>>,
}

/// Picks one chunk of a streamed range. Unlike [`plan`] it walks only as far as the
/// chunk reaches, so a whole stream walks the index once.
pub fn plan_chunk(
    index: &Index,
    current: i64,
    compacted: i64,
    req: &RangeRequest,
    at: i64,
    from: &[u8],
    max_kvs: usize,
) -> Result<ChunkPlan> {
    assert!(max_kvs > 0, "a chunk holds at least one key");
    assert!(!req.range_end.is_empty(), "a single key is not streamed");
    let read_revision = read_revision(at, current, compacted)?;
    let mut revs = Vec::new();
    let mut keys_visited = 0i64;
    let mut resume_at = None;
    index.visit(KeySpan::new(from, &req.range_end), read_revision, |key, kr| {
        keys_visited += 1;
        if passes_filters(req, kr) {
            revs.push((kr.modified, keys_visited));
        }
        if revs.len() < max_kvs {
            return ControlFlow::Continue(());
        }
        resume_at = Some(key_after(key));
        ControlFlow::Break(())
    });
    Ok(ChunkPlan { read_revision, header_revision: current, revs, keys_visited, resume_at })
}

/// The smallest key after `key`.
fn key_after(key: &[u8]) -> Vec<u8> {
    let mut next = Vec::with_capacity(key.len() + 1);
    next.extend_from_slice(key);
    next.push(0);
    next
}

/// A chunk of a streamed range, fetched.
#[derive(Debug)]
pub struct Chunk {
    /// The revision read (the pinned one, or the current one for a stream's first chunk).
    pub read_revision: i64,
    /// The store's revision when the chunk was read.
    pub header_revision: i64,
    pub kvs: Vec<KeyValue>,
    /// Keys in range this chunk covers, filtered out or not.
    pub keys_visited: i64,
    /// Where the next chunk starts; `None` once the range is read to its end.
    pub resume_at: Option<Vec<u8>>,
}

/// Fetches what `plan` chose, in key order, stopping once the values fetched reach
/// `byte_budget` (at least one is fetched, whatever its size).
pub fn execute_chunk<S: Snapshot>(
    values: &Values<S>,
    keys_only: bool,
    plan: ChunkPlan,
    byte_budget: usize,
) -> Result<Chunk> {
    let mut kvs = Vec::new();
    let mut bytes = 0usize;
    for (i, (rev, visited_through)) in plan.revs.iter().enumerate() {
        let mut kv = values.get(*rev)?;
        if keys_only {
            kv.value.clear();
        }
        bytes = bytes.saturating_add(kv.encoded_len());
        let resume_at = key_after(&kv.key);
        kvs.push(kv);
        let last = i + 1 == plan.revs.len();
        if bytes >= byte_budget && !last {
            return Ok(Chunk {
                read_revision: plan.read_revision,
                header_revision: plan.header_revision,
                kvs,
                keys_visited: *visited_through,
                resume_at: Some(resume_at),
            });
        }
    }
    Ok(Chunk {
        read_revision: plan.read_revision,
        header_revision: plan.header_revision,
        kvs,
        keys_visited: plan.keys_visited,
        resume_at: plan.resume_at,
    })
}

fn clear_values(kvs: &mut [KeyValue]) {
    for kv in kvs {
        kv.value.clear();
    }
}

/// Fetches, sorts and trims what `plan` chose.
pub fn execute<S: Snapshot>(
    values: &Values<S>,
    req: &RangeRequest,
    plan: Plan,
) -> Result<RangeResponse> {
    let mut kvs = plan.revs.iter().map(|rev| values.get(*rev)).collect::<Result<Vec<_>>>()?;
    let sort = Sort::of(req);
    if !sort.is_key_order() {
        kvs.sort_by(|a, b| sort.compare(a, b));
    }
    let mut more = false;
    if let Ok(limit) = usize::try_from(req.limit)
        && limit > 0
        && kvs.len() > limit
    {
        kvs.truncate(limit);
        more = true;
    }
    if req.keys_only {
        clear_values(&mut kvs);
    }
    Ok(RangeResponse { header: header(plan.header_revision), kvs, more, count: plan.count })
}
