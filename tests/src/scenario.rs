//! Scenarios that pin down etcd's observable behaviour, written against any etcd v3
//! endpoint through oxetcd's generated client. Each starts from an empty server (the
//! store at revision 1) and checks every answer field by field.

use oxetcd_api::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use oxetcd_api::etcdserverpb::kv_client::KvClient;
use oxetcd_api::etcdserverpb::range_request::{SortOrder, SortTarget};
use oxetcd_api::etcdserverpb::request_op::Request;
use oxetcd_api::etcdserverpb::response_op::Response;
use oxetcd_api::etcdserverpb::{
    CompactionRequest, Compare, DeleteRangeRequest, PutRequest, RangeRequest, RangeResponse,
    RequestOp, ResponseHeader, TxnRequest,
};
use oxetcd_api::mvccpb::KeyValue;
use tonic::Code;

/// The end of the range that holds every key starting with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte was 0xff: the range runs to the end of the key space.
    vec![0]
}

/// A key as etcd should report it: (key, value, create_revision, mod_revision, version).
pub(crate) type Expected<'a> = (&'a str, &'a str, i64, i64, i64);

pub(crate) fn key_value(e: Expected<'_>) -> KeyValue {
    let (key, value, create_revision, mod_revision, version) = e;
    KeyValue {
        key: key.as_bytes().to_vec().into(),
        value: value.as_bytes().to_vec().into(),
        create_revision,
        mod_revision,
        version,
        lease: 0,
    }
}

/// A plain put of `key` = `value`.
pub fn put(key: &str, value: &str) -> PutRequest {
    PutRequest {
        key: key.as_bytes().to_vec().into(),
        value: value.as_bytes().to_vec().into(),
        ..Default::default()
    }
}

fn get(key: &str) -> RangeRequest {
    RangeRequest { key: key.as_bytes().to_vec().into(), ..Default::default() }
}

fn prefix(p: &str) -> RangeRequest {
    RangeRequest {
        key: p.as_bytes().to_vec().into(),
        range_end: prefix_end(p.as_bytes()).into(),
        ..Default::default()
    }
}

fn compare(key: &str, result: CompareResult, target: TargetUnion) -> Compare {
    let target_kind = match target {
        TargetUnion::Version(_) => CompareTarget::Version,
        TargetUnion::CreateRevision(_) => CompareTarget::Create,
        TargetUnion::ModRevision(_) => CompareTarget::Mod,
        TargetUnion::Value(_) => CompareTarget::Value,
        TargetUnion::Lease(_) => CompareTarget::Lease,
    };
    Compare {
        result: result as i32,
        target: target_kind as i32,
        key: key.as_bytes().to_vec().into(),
        target_union: Some(target),
        range_end: Default::default(),
    }
}

fn op(request: Request) -> RequestOp {
    RequestOp { request: Some(request) }
}

fn header(h: Option<ResponseHeader>) -> ResponseHeader {
    let h = h.expect("every response carries a header");
    assert_ne!(h.cluster_id, 0, "header.cluster_id");
    assert_ne!(h.member_id, 0, "header.member_id");
    assert!(h.raft_term >= 1, "header.raft_term");
    h
}

/// The header of a response nested in a txn: etcd fills in only the revision there.
fn nested_header(h: Option<ResponseHeader>) -> i64 {
    let h = h.expect("a nested response carries a header");
    assert_eq!((h.cluster_id, h.member_id, h.raft_term), (0, 0, 0), "nested header: {h:?}");
    h.revision
}

fn assert_range_body(resp: &RangeResponse, kvs: &[Expected<'_>], more: bool, count: i64) {
    let want: Vec<KeyValue> = kvs.iter().copied().map(key_value).collect();
    assert_eq!(resp.kvs, want, "range kvs");
    assert_eq!(resp.more, more, "range more");
    assert_eq!(resp.count, count, "range count");
}

fn assert_range(resp: &RangeResponse, revision: i64, kvs: &[Expected<'_>], more: bool, count: i64) {
    assert_eq!(header(resp.header).revision, revision, "range header.revision");
    assert_range_body(resp, kvs, more, count);
}

fn assert_status(err: tonic::Status, code: Code, message: &str) {
    assert_eq!((err.code(), err.message()), (code, message), "error status");
}

/// Put, Range (single, prefix, from-key, limit, historical, sorted, filtered,
/// keys-only, count-only), DeleteRange, Txn with compares, Compact and their errors.
pub async fn kv_semantics(endpoint: &str) {
    // Raw stubs, not oxetcd-client: responses are compared with etcd's field by field,
    // one request each, exactly as sent.
    let mut kv = KvClient::connect(endpoint.to_string()).await.expect("connect");

    let empty = kv.range(prefix("k/")).await.expect("range").into_inner();
    assert_range(&empty, 1, &[], false, 0);

    for (i, (key, value)) in [("k/a", "1"), ("k/b", "2"), ("k/c", "3")].into_iter().enumerate() {
        let resp = kv.put(put(key, value)).await.expect("put").into_inner();
        assert_eq!(header(resp.header).revision, 2 + i as i64, "put revision");
        assert_eq!(resp.prev_kv, None, "prev_kv is only sent when asked for");
    }
    let overwrite = PutRequest { prev_kv: true, ..put("k/a", "10") };
    let resp = kv.put(overwrite).await.expect("put").into_inner();
    assert_eq!(header(resp.header).revision, 5);
    assert_eq!(resp.prev_kv, Some(key_value(("k/a", "1", 2, 2, 1))));

    let a = kv.range(get("k/a")).await.expect("get").into_inner();
    assert_range(&a, 5, &[("k/a", "10", 2, 5, 2)], false, 1);

    let limited = RangeRequest { limit: 2, ..prefix("k/") };
    let resp = kv.range(limited).await.expect("limit").into_inner();
    assert_range(&resp, 5, &[("k/a", "10", 2, 5, 2), ("k/b", "2", 3, 3, 1)], true, 3);

    let historical = RangeRequest { revision: 4, ..get("k/a") };
    let resp = kv.range(historical).await.expect("historical").into_inner();
    assert_range(&resp, 5, &[("k/a", "1", 2, 2, 1)], false, 1);

    let by_key_desc = RangeRequest { sort_order: SortOrder::Descend as i32, ..prefix("k/") };
    let resp = kv.range(by_key_desc).await.expect("sort").into_inner();
    let all_desc = [("k/c", "3", 4, 4, 1), ("k/b", "2", 3, 3, 1), ("k/a", "10", 2, 5, 2)];
    assert_range(&resp, 5, &all_desc, false, 3);

    let by_mod_desc = RangeRequest {
        sort_order: SortOrder::Descend as i32,
        sort_target: SortTarget::Mod as i32,
        ..prefix("k/")
    };
    let resp = kv.range(by_mod_desc).await.expect("sort by mod").into_inner();
    let mod_desc = [("k/a", "10", 2, 5, 2), ("k/c", "3", 4, 4, 1), ("k/b", "2", 3, 3, 1)];
    assert_range(&resp, 5, &mod_desc, false, 3);

    let count_only = RangeRequest { count_only: true, ..prefix("k/") };
    let resp = kv.range(count_only).await.expect("count only").into_inner();
    assert_range(&resp, 5, &[], false, 3);

    let keys_only = RangeRequest { keys_only: true, ..get("k/b") };
    let resp = kv.range(keys_only).await.expect("keys only").into_inner();
    assert_range(&resp, 5, &[("k/b", "", 3, 3, 1)], false, 1);

    let from_key = RangeRequest { range_end: vec![0].into(), ..get("k/b") };
    let resp = kv.range(from_key).await.expect("from key").into_inner();
    assert_range(&resp, 5, &[("k/b", "2", 3, 3, 1), ("k/c", "3", 4, 4, 1)], false, 2);

    // Revision filters thin out kvs but, as in etcd, `count` is the size of the range.
    let min_mod = RangeRequest { min_mod_revision: 4, ..prefix("k/") };
    let resp = kv.range(min_mod).await.expect("min mod").into_inner();
    assert_range(&resp, 5, &[("k/a", "10", 2, 5, 2), ("k/c", "3", 4, 4, 1)], false, 3);

    let delete = DeleteRangeRequest { key: "k/b".into(), prev_kv: true, ..Default::default() };
    let resp = kv.delete_range(delete).await.expect("delete").into_inner();
    assert_eq!((header(resp.header).revision, resp.deleted), (6, 1));
    assert_eq!(resp.prev_kvs, vec![key_value(("k/b", "2", 3, 3, 1))]);
    let missing = DeleteRangeRequest { key: "k/zz".into(), ..Default::default() };
    let resp = kv.delete_range(missing).await.expect("delete missing").into_inner();
    assert_eq!(
        (header(resp.header).revision, resp.deleted),
        (6, 0),
        "no-op delete keeps the revision"
    );

    let txn = TxnRequest {
        compare: vec![compare("k/a", CompareResult::Equal, TargetUnion::Value("10".into()))],
        success: vec![
            op(Request::RequestPut(put("k/d", "4"))),
            op(Request::RequestRange(get("k/a"))),
        ],
        failure: vec![],
    };
    let resp = kv.txn(txn).await.expect("txn").into_inner();
    assert_eq!((header(resp.header).revision, resp.succeeded), (7, true));
    assert_eq!(resp.responses.len(), 2);
    match &resp.responses[0].response {
        Some(Response::ResponsePut(p)) => assert_eq!(nested_header(p.header), 7),
        other => panic!("txn response 0 should be a put, got {other:?}"),
    }
    match &resp.responses[1].response {
        Some(Response::ResponseRange(r)) => {
            assert_eq!(nested_header(r.header), 7);
            assert_range_body(r, &[("k/a", "10", 2, 5, 2)], false, 1)
        }
        other => panic!("txn response 1 should be a range, got {other:?}"),
    }

    // A deleted key compares as version 0; a read-only txn does not bump the revision.
    let txn = TxnRequest {
        compare: vec![compare("k/b", CompareResult::Greater, TargetUnion::Version(0))],
        success: vec![op(Request::RequestPut(put("k/never", "x")))],
        failure: vec![op(Request::RequestRange(get("k/b")))],
    };
    let resp = kv.txn(txn).await.expect("txn failure branch").into_inner();
    assert_eq!((header(resp.header).revision, resp.succeeded), (7, false));
    match &resp.responses[..] {
        [r] => match &r.response {
            Some(Response::ResponseRange(r)) => {
                assert_eq!(nested_header(r.header), 7);
                assert_range_body(r, &[], false, 0)
            }
            other => panic!("failure op should be a range, got {other:?}"),
        },
        other => panic!("one failure response expected, got {other:?}"),
    }

    // A range compare holds only if every key in the range satisfies it.
    let mut created_after_1 = compare("k/", CompareResult::Greater, TargetUnion::CreateRevision(1));
    created_after_1.range_end = prefix_end(b"k/").into();
    let txn = TxnRequest {
        compare: vec![
            created_after_1,
            compare("k/c", CompareResult::Less, TargetUnion::ModRevision(5)),
            compare("k/zz", CompareResult::Equal, TargetUnion::CreateRevision(0)),
        ],
        success: vec![op(Request::RequestDeleteRange(DeleteRangeRequest {
            key: "k/".into(),
            range_end: prefix_end(b"k/").into(),
            prev_kv: false,
        }))],
        failure: vec![],
    };
    let resp = kv.txn(txn).await.expect("txn delete").into_inner();
    assert_eq!((header(resp.header).revision, resp.succeeded), (8, true));
    match &resp.responses[0].response {
        Some(Response::ResponseDeleteRange(d)) => {
            assert_eq!((nested_header(d.header), d.deleted), (8, 3))
        }
        other => panic!("txn response should be a delete, got {other:?}"),
    }

    let compact = CompactionRequest { revision: 5, physical: true };
    let resp = kv.compact(compact).await.expect("compact").into_inner();
    assert_eq!(header(resp.header).revision, 8);
    let at_compacted = RangeRequest { revision: 5, ..get("k/a") };
    let resp = kv.range(at_compacted).await.expect("read at the compacted revision").into_inner();
    assert_range(&resp, 8, &[("k/a", "10", 2, 5, 2)], false, 1);

    const COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";
    const FUTURE: &str = "etcdserver: mvcc: required revision is a future revision";
    let before = RangeRequest { revision: 4, ..get("k/a") };
    assert_status(kv.range(before).await.unwrap_err(), Code::OutOfRange, COMPACTED);
    let future = RangeRequest { revision: 100, ..get("k/a") };
    assert_status(kv.range(future).await.unwrap_err(), Code::OutOfRange, FUTURE);
    let again = CompactionRequest { revision: 3, physical: false };
    assert_status(kv.compact(again).await.unwrap_err(), Code::OutOfRange, COMPACTED);
    let ahead = CompactionRequest { revision: 100, physical: false };
    assert_status(kv.compact(ahead).await.unwrap_err(), Code::OutOfRange, FUTURE);
    assert_status(
        kv.put(put("", "v")).await.unwrap_err(),
        Code::InvalidArgument,
        "etcdserver: key is not provided",
    );

    let after = kv.range(prefix("")).await;
    assert_status(after.unwrap_err(), Code::InvalidArgument, "etcdserver: key is not provided");
    let everything =
        RangeRequest { key: vec![0].into(), range_end: vec![0].into(), ..Default::default() };
    let resp = kv.range(everything).await.expect("range everything").into_inner();
    assert_range(&resp, 8, &[], false, 0);
}
