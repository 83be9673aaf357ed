//! Model-based tests: random sequences of puts, deletes, txns (nested too), compactions,
//! ranges and reopens, run against the store and against a naive model that keeps a full
//! copy of the key space at every revision. After every step, and at the end for every
//! past revision, the two must agree exactly (responses, events, errors).

mod common;

use std::collections::BTreeMap;

use bytes::Bytes;
use common::*;
use oxetcd_api::etcdserverpb::range_request::{SortOrder, SortTarget};
use oxetcd_api::etcdserverpb::request_op::Request;
use oxetcd_api::etcdserverpb::response_op::Response;
use oxetcd_api::etcdserverpb::{
    Compare, DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse, RangeRequest,
    RangeResponse, RequestOp, ResponseHeader, ResponseOp, TxnRequest, TxnResponse, compare,
};
use oxetcd_api::mvccpb::event::EventType;
use oxetcd_api::mvccpb::{Event, KeyValue};
use oxetcd_mvcc::{ApplyIndex, Error, validate};
use proptest::prelude::*;

const KEYS: [&str; 6] = ["a", "ab", "b", "c", "d", "e"];

type Map = BTreeMap<Bytes, KeyValue>;

fn header(revision: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader { revision, ..Default::default() })
}

fn in_span(key: &[u8], range_end: &[u8], k: &[u8]) -> bool {
    match range_end {
        [] => k == key,
        [0] => k >= key,
        end => k >= key && k < end,
    }
}

/// The naive model: the whole key space after every revision.
struct Model {
    states: Vec<Map>,
    compact: i64,
}

impl Model {
    fn new() -> Self {
        Self { states: vec![Map::new(), Map::new()], compact: -1 }
    }

    fn current(&self) -> i64 {
        self.states.len() as i64 - 1
    }

    fn range_in(map: &Map, req: &RangeRequest, header_rev: i64) -> RangeResponse {
        let mut kvs: Vec<KeyValue> =
            map.values().filter(|kv| in_span(&req.key, &req.range_end, &kv.key)).cloned().collect();
        let count = kvs.len() as i64;
        if req.count_only {
            return RangeResponse { header: header(header_rev), kvs: vec![], more: false, count };
        }
        let within = |v: i64, min: i64, max: i64| (min == 0 || v >= min) && (max == 0 || v <= max);
        kvs.retain(|kv| {
            within(kv.mod_revision, req.min_mod_revision, req.max_mod_revision)
                && within(kv.create_revision, req.min_create_revision, req.max_create_revision)
        });
        let target = SortTarget::try_from(req.sort_target).unwrap_or(SortTarget::Key);
        let mut order = SortOrder::try_from(req.sort_order).unwrap_or(SortOrder::None);
        if target != SortTarget::Key && order == SortOrder::None {
            order = SortOrder::Ascend;
        }
        if order != SortOrder::None {
            kvs.sort_by(|a, b| {
                let o = match target {
                    SortTarget::Key => a.key.cmp(&b.key),
                    SortTarget::Version => a.version.cmp(&b.version),
                    SortTarget::Create => a.create_revision.cmp(&b.create_revision),
                    SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
                    SortTarget::Value => a.value.cmp(&b.value),
                };
                if order == SortOrder::Descend { o.reverse() } else { o }
            });
        }
        let mut more = false;
        if req.limit > 0 && kvs.len() as i64 > req.limit {
            kvs.truncate(req.limit as usize);
            more = true;
        }
        if req.keys_only {
            for kv in &mut kvs {
                kv.value = Bytes::new();
            }
        }
        RangeResponse { header: header(header_rev), kvs, more, count }
    }

    fn range(&self, req: &RangeRequest) -> Result<RangeResponse, Error> {
        validate::check_range(req)?;
        let cur = self.current();
        if req.revision > cur {
            return Err(Error::FutureRev);
        }
        let rev = if req.revision <= 0 { cur } else { req.revision };
        if rev < self.compact {
            return Err(Error::Compacted);
        }
        Ok(Self::range_in(&self.states[rev as usize], req, cur))
    }

    fn compare(map: &Map, c: &Compare) -> bool {
        let kvs: Vec<&KeyValue> =
            map.values().filter(|kv| in_span(&c.key, &c.range_end, &kv.key)).collect();
        let target = compare::CompareTarget::try_from(c.target).unwrap();
        let check = |kv: &KeyValue| {
            use compare::TargetUnion as U;
            let ord = match (target, &c.target_union) {
                (compare::CompareTarget::Value, Some(U::Value(v))) => {
                    kv.value.as_ref().cmp(v.as_ref())
                }
                (compare::CompareTarget::Version, Some(U::Version(v))) => kv.version.cmp(v),
                (compare::CompareTarget::Create, Some(U::CreateRevision(v))) => {
                    kv.create_revision.cmp(v)
                }
                (compare::CompareTarget::Mod, Some(U::ModRevision(v))) => kv.mod_revision.cmp(v),
                (compare::CompareTarget::Lease, Some(U::Lease(v))) => kv.lease.cmp(v),
                _ => unreachable!("the generator matches unions to targets"),
            };
            match compare::CompareResult::try_from(c.result).unwrap() {
                compare::CompareResult::Equal => ord.is_eq(),
                compare::CompareResult::NotEqual => ord.is_ne(),
                compare::CompareResult::Greater => ord.is_gt(),
                compare::CompareResult::Less => ord.is_lt(),
            }
        };
        if kvs.is_empty() {
            return target != compare::CompareTarget::Value && check(&KeyValue::default());
        }
        kvs.into_iter().all(check)
    }

    /// Applies a write (`f` on a copy of the current map); returns the response and events.
    fn write<T>(
        &mut self,
        f: impl FnOnce(&Self, &mut Map, i64, &mut Vec<Event>) -> Result<T, Error>,
    ) -> Result<(T, Vec<Event>), Error> {
        let mut ws = self.states.last().unwrap().clone();
        let mut events = Vec::new();
        let begin = self.current();
        let resp = f(self, &mut ws, begin, &mut events)?;
        if !events.is_empty() {
            self.states.push(ws);
        }
        Ok((resp, events))
    }

    fn put_in(ws: &mut Map, req: &PutRequest, begin: i64, events: &mut Vec<Event>) -> PutResponse {
        let rev = begin + 1;
        let prev = ws.get(&req.key).cloned();
        let kv = KeyValue {
            key: req.key.clone(),
            create_revision: prev.as_ref().map_or(rev, |p| p.create_revision),
            mod_revision: rev,
            version: prev.as_ref().map_or(1, |p| p.version + 1),
            value: match (&prev, req.ignore_value) {
                (Some(p), true) => p.value.clone(),
                _ => req.value.clone(),
            },
            lease: 0,
        };
        ws.insert(req.key.clone(), kv.clone());
        events.push(Event { r#type: EventType::Put as i32, kv: Some(kv), prev_kv: None });
        PutResponse { header: header(rev), prev_kv: prev.filter(|_| req.prev_kv) }
    }

    fn delete_in(
        ws: &mut Map,
        req: &DeleteRangeRequest,
        begin: i64,
        events: &mut Vec<Event>,
    ) -> DeleteRangeResponse {
        let doomed: Vec<KeyValue> =
            ws.values().filter(|kv| in_span(&req.key, &req.range_end, &kv.key)).cloned().collect();
        for kv in &doomed {
            ws.remove(&kv.key);
            events.push(Event {
                r#type: EventType::Delete as i32,
                kv: Some(KeyValue {
                    key: kv.key.clone(),
                    mod_revision: begin + 1,
                    ..Default::default()
                }),
                prev_kv: Some(kv.clone()),
            });
        }
        DeleteRangeResponse {
            header: header(begin + i64::from(!events.is_empty())),
            deleted: doomed.len() as i64,
            prev_kvs: if req.prev_kv { doomed } else { vec![] },
        }
    }

    fn path(pre: &Map, req: &TxnRequest, path: &mut Vec<bool>) {
        let ok = req.compare.iter().all(|c| Self::compare(pre, c));
        path.push(ok);
        for op in if ok { &req.success } else { &req.failure } {
            if let Some(Request::RequestTxn(t)) = &op.request {
                Self::path(pre, t, path);
            }
        }
    }

    fn check(&self, req: &TxnRequest, path: &mut std::vec::IntoIter<bool>) -> Result<(), Error> {
        let ok = path.next().unwrap();
        for op in if ok { &req.success } else { &req.failure } {
            match &op.request {
                Some(Request::RequestTxn(t)) => self.check(t, path)?,
                Some(Request::RequestRange(r)) if r.revision > self.current() => {
                    return Err(Error::FutureRev);
                }
                Some(Request::RequestRange(r)) if r.revision != 0 && r.revision < self.compact => {
                    return Err(Error::Compacted);
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn apply_txn(
        &self,
        ws: &mut Map,
        req: &TxnRequest,
        begin: i64,
        events: &mut Vec<Event>,
        path: &mut std::vec::IntoIter<bool>,
    ) -> TxnResponse {
        let ok = path.next().unwrap();
        let mut responses = vec![];
        for op in if ok { &req.success } else { &req.failure } {
            let response = match &op.request {
                Some(Request::RequestPut(p)) => {
                    Response::ResponsePut(Self::put_in(ws, p, begin, events))
                }
                Some(Request::RequestDeleteRange(d)) => {
                    Response::ResponseDeleteRange(Self::delete_in(ws, d, begin, events))
                }
                Some(Request::RequestRange(r)) => {
                    let now = begin + i64::from(!events.is_empty());
                    let map =
                        if r.revision <= 0 { &*ws } else { &self.states[r.revision as usize] };
                    Response::ResponseRange(Self::range_in(map, r, now))
                }
                Some(Request::RequestTxn(t)) => {
                    Response::ResponseTxn(self.apply_txn(ws, t, begin, events, path))
                }
                None => unreachable!(),
            };
            responses.push(ResponseOp { response: Some(response) });
        }
        TxnResponse { header: Some(ResponseHeader::default()), succeeded: ok, responses }
    }

    fn txn(&mut self, req: &TxnRequest) -> Result<(TxnResponse, Vec<Event>), Error> {
        validate::check_txn(req, validate::DEFAULT_MAX_TXN_OPS)?;
        let mut path = vec![];
        Self::path(self.states.last().unwrap(), req, &mut path);
        self.check(req, &mut path.clone().into_iter())?;
        self.write(|m, ws, begin, events| {
            let mut resp = m.apply_txn(ws, req, begin, events, &mut path.into_iter());
            resp.header = header(begin + i64::from(!events.is_empty()));
            Ok(resp)
        })
    }

    fn compact(&mut self, rev: i64) -> Result<(), Error> {
        if rev <= self.compact {
            return Err(Error::Compacted);
        }
        if rev > self.current() {
            return Err(Error::FutureRev);
        }
        self.compact = rev;
        Ok(())
    }
}

// ---- generators ----

fn key() -> impl Strategy<Value = Bytes> {
    (0..KEYS.len()).prop_map(|i| b(KEYS[i]))
}

fn range_end() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        3 => Just(Bytes::new()),
        1 => Just(Bytes::from_static(b"\0")),
        2 => key(),
    ]
}

fn value() -> impl Strategy<Value = Bytes> {
    (0u8..4).prop_map(|v| Bytes::from(vec![b'0' + v]))
}

/// A revision hint: resolved against the model's current revision when run.
fn rev_hint() -> impl Strategy<Value = i64> {
    prop_oneof![3 => Just(0i64), 1 => -2i64..40]
}

fn range_req() -> impl Strategy<Value = RangeRequest> {
    (
        key(),
        range_end(),
        rev_hint(),
        -1i64..4,
        (0i32..3, 0i32..5),
        (any::<bool>(), prop::bool::weighted(0.1)),
        prop::option::weighted(0.2, (0i64..12, 0i64..12, 0i64..12, 0i64..12)),
    )
        .prop_map(
            |(
                key,
                range_end,
                revision,
                limit,
                (order, target),
                (keys_only, count_only),
                filters,
            )| {
                let (min_mod_revision, max_mod_revision, min_create_revision, max_create_revision) =
                    filters.unwrap_or_default();
                RangeRequest {
                    key,
                    range_end,
                    limit,
                    revision,
                    sort_order: order,
                    sort_target: target,
                    keys_only,
                    count_only,
                    min_mod_revision,
                    max_mod_revision,
                    min_create_revision,
                    max_create_revision,
                    ..Default::default()
                }
            },
        )
}

fn put_req() -> impl Strategy<Value = PutRequest> {
    (key(), value(), any::<bool>(), prop::bool::weighted(0.15)).prop_map(
        |(key, value, prev_kv, ignore_value)| PutRequest {
            key,
            value: if ignore_value { Bytes::new() } else { value },
            prev_kv,
            ignore_value,
            ..Default::default()
        },
    )
}

fn delete_req() -> impl Strategy<Value = DeleteRangeRequest> {
    (key(), range_end(), any::<bool>()).prop_map(|(key, range_end, prev_kv)| DeleteRangeRequest {
        key,
        range_end,
        prev_kv,
    })
}

fn compare_strategy() -> impl Strategy<Value = Compare> {
    use compare::TargetUnion as U;
    (key(), prop::option::weighted(0.2, range_end()), 0i32..5, 0i32..4, 0i64..8, value()).prop_map(
        |(key, end, target, result, n, v)| Compare {
            result,
            target,
            key,
            range_end: end.unwrap_or_default(),
            target_union: Some(match target {
                0 => U::Version(n % 4),
                1 => U::CreateRevision(n),
                2 => U::ModRevision(n),
                3 => U::Value(v),
                _ => U::Lease(n % 2),
            }),
        },
    )
}

fn plain_op() -> impl Strategy<Value = RequestOp> {
    prop_oneof![
        3 => put_req().prop_map(|mut p| { p.ignore_value = false; p.value = Bytes::from_static(b"t"); op_put(p) }),
        2 => delete_req().prop_map(op_delete),
        2 => range_req().prop_map(op_range),
    ]
}

fn txn_req() -> impl Strategy<Value = TxnRequest> {
    let flat = (
        prop::collection::vec(compare_strategy(), 0..3),
        prop::collection::vec(plain_op(), 0..4),
        prop::collection::vec(plain_op(), 0..3),
    )
        .prop_map(|(compare, success, failure)| TxnRequest { compare, success, failure });
    flat.prop_recursive(2, 8, 2, |inner| {
        (
            prop::collection::vec(compare_strategy(), 0..3),
            prop::collection::vec(
                prop_oneof![3 => plain_op(), 1 => inner.clone().prop_map(op_txn)],
                0..4,
            ),
            prop::collection::vec(prop_oneof![3 => plain_op(), 1 => inner.prop_map(op_txn)], 0..3),
        )
            .prop_map(|(compare, success, failure)| TxnRequest {
                compare,
                success,
                failure,
            })
    })
}

#[derive(Clone, Debug)]
enum Op {
    Put(PutRequest),
    Delete(DeleteRangeRequest),
    Txn(TxnRequest),
    Range(RangeRequest),
    /// Compact at `current - back`.
    Compact(i64),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => put_req().prop_map(Op::Put),
        3 => delete_req().prop_map(Op::Delete),
        4 => txn_req().prop_map(Op::Txn),
        4 => range_req().prop_map(Op::Range),
        1 => (-1i64..6).prop_map(Op::Compact),
        1 => Just(Op::Reopen),
    ]
}

/// Resolves revision hints: 0 stays 0 (current), others are taken relative to `current`
/// so that past, compacted and future revisions all occur.
fn resolve(rev: i64, current: i64) -> i64 {
    if rev <= 0 { rev } else { current + 2 - rev.min(current + 2) }
}

fn resolve_txn(req: &mut TxnRequest, current: i64) {
    for op in req.success.iter_mut().chain(req.failure.iter_mut()) {
        match &mut op.request {
            Some(Request::RequestRange(r)) => r.revision = resolve(r.revision, current),
            Some(Request::RequestTxn(t)) => resolve_txn(t, current),
            _ => {}
        }
    }
}

fn check_history(store: &oxetcd_mvcc::Store, model: &Model) -> Result<(), TestCaseError> {
    let current = model.current();
    prop_assert_eq!(store.current_revision(), current);
    prop_assert_eq!(store.compact_revision(), model.compact);
    for rev in 1..=current {
        for req in [
            RangeRequest { revision: rev, ..range("\0", "\0") },
            RangeRequest { revision: rev, limit: 2, ..range("ab", "d") },
        ] {
            prop_assert_eq!(store.range(&req), model.range(&req), "history at {}", rev);
        }
    }
    Ok(())
}

/// Every event since `from` must come back from the store's history.
fn check_events(
    store: &oxetcd_mvcc::Store,
    model: &Model,
    all: &[Event],
) -> Result<(), TestCaseError> {
    let next = model.current() + 1;
    for from in (model.compact + 1).max(1)..=next {
        let want: Vec<Event> = all
            .iter()
            .filter(|e| e.kv.as_ref().is_some_and(|kv| kv.mod_revision >= from))
            .map(|e| Event { prev_kv: None, ..e.clone() })
            .collect();
        prop_assert_eq!(store.events(from, next).unwrap(), want, "events from {}", from);
    }
    if model.compact > 1 {
        prop_assert_eq!(store.events(model.compact - 1, next), Err(Error::Compacted));
    }
    Ok(())
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut t = TempStore::new();
    let mut model = Model::new();
    let mut events = Vec::new();
    for op in ops {
        let current = model.current();
        match op {
            Op::Put(req) => {
                let got = t.store().put(&req, ApplyIndex::ZERO).map(|w| (w.response, w.events));
                events.extend(got.iter().flat_map(|(_, e)| e.clone()));
                let want = validate::check_put(&req).and_then(|()| {
                    if req.ignore_value && !model.states.last().unwrap().contains_key(&req.key) {
                        return Err(Error::KeyNotFound);
                    }
                    model.write(|_, ws, begin, events| Ok(Model::put_in(ws, &req, begin, events)))
                });
                prop_assert_eq!(got, want);
            }
            Op::Delete(req) => {
                let got =
                    t.store().delete_range(&req, ApplyIndex::ZERO).map(|w| (w.response, w.events));
                events.extend(got.iter().flat_map(|(_, e)| e.clone()));
                let want = model
                    .write(|_, ws, begin, events| Ok(Model::delete_in(ws, &req, begin, events)));
                prop_assert_eq!(got, want);
            }
            Op::Txn(mut req) => {
                resolve_txn(&mut req, current);
                let got = t.store().txn(&req, ApplyIndex::ZERO).map(|w| (w.response, w.events));
                events.extend(got.iter().flat_map(|(_, e)| e.clone()));
                prop_assert_eq!(got, model.txn(&req));
            }
            Op::Range(mut req) => {
                req.revision = resolve(req.revision, current);
                prop_assert_eq!(t.store().range(&req), model.range(&req));
            }
            Op::Compact(back) => {
                let rev = current - back;
                let got = t.store().compact(rev, ApplyIndex::ZERO).and_then(|(_, h)| h.wait());
                prop_assert_eq!(got, model.compact(rev));
            }
            Op::Reopen => {
                let hash = t.store().hash_kv(0).unwrap();
                t.reopen();
                prop_assert_eq!(t.store().hash_kv(0).unwrap(), hash);
            }
        }
        prop_assert_eq!(t.store().current_revision(), model.current());
    }
    check_history(t.store(), &model)?;
    check_events(t.store(), &model, &events)?;
    t.reopen();
    check_history(t.store(), &model)?;
    check_events(t.store(), &model, &events)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, max_shrink_iters: 2000, ..ProptestConfig::default() })]

    #[test]
    fn store_matches_model(ops in prop::collection::vec(op(), 1..40)) {
        run(ops)?;
    }
}
