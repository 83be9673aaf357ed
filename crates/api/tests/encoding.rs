//! Golden encodings, derived by hand from the protobuf wire format and etcd's field
//! numbers: they fail if a field number, a type or a service name drifts. (The
//! compatibility suite checks the whole contract against etcd's own .proto files.)

use oxetcd_api::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use oxetcd_api::etcdserverpb::watch_request::RequestUnion;
use oxetcd_api::etcdserverpb::{
    Compare, LeaseGrantRequest, PutRequest, RangeRequest, WatchCreateRequest, WatchRequest,
};
use oxetcd_api::mvccpb::KeyValue;
use oxetcd_api::oxetcdpb::{InternalRaftRequest, RequestHeader};
use prost::Message;

#[test]
fn put_request_fields() {
    let put = PutRequest {
        key: "a".into(),
        value: "b".into(),
        lease: 5,
        prev_kv: true,
        ignore_value: false,
        ignore_lease: true,
    };
    // key=1 (len), value=2 (len), lease=3 (varint), prev_kv=4, ignore_lease=6.
    let want = [0x0a, 1, b'a', 0x12, 1, b'b', 0x18, 5, 0x20, 1, 0x30, 1];
    assert_eq!(put.encode_to_vec(), want);
    assert_eq!(PutRequest::decode(&want[..]).unwrap(), put);
}

#[test]
fn range_request_high_fields() {
    let range = RangeRequest { count_only: true, max_create_revision: 300, ..Default::default() };
    // count_only=9 → tag 0x48; max_create_revision=13 → tag 0x68, 300 = 0xac 0x02.
    assert_eq!(range.encode_to_vec(), [0x48, 1, 0x68, 0xac, 0x02]);
}

#[test]
fn key_value_negative_numbers_are_ten_byte_varints() {
    // int64 (not sint64), as in etcd: -1 takes ten bytes.
    let kv = KeyValue { lease: -1, ..Default::default() };
    let mut want = vec![0x30];
    want.extend([0xff; 9]);
    want.push(0x01);
    assert_eq!(kv.encode_to_vec(), want);
}

#[test]
fn compare_range_end_is_field_64() {
    let cmp = Compare {
        result: CompareResult::NotEqual as i32,
        target: CompareTarget::Value as i32,
        key: "k".into(),
        target_union: Some(TargetUnion::Value("v".into())),
        range_end: "l".into(),
    };
    // result=1, target=2, key=3, value=7, range_end=64 (tag (64<<3)|2 = 0x82 0x04).
    let want = [0x08, 3, 0x10, 3, 0x1a, 1, b'k', 0x3a, 1, b'v', 0x82, 0x04, 1, b'l'];
    assert_eq!(cmp.encode_to_vec(), want);
}

#[test]
fn watch_create_is_field_1_of_the_request_union() {
    let create =
        WatchCreateRequest { key: "w".into(), watch_id: 7, fragment: true, ..Default::default() };
    let req = WatchRequest { request_union: Some(RequestUnion::CreateRequest(create)) };
    // create_request=1 (len 7): key=1, watch_id=7 → 0x38, fragment=8 → 0x40.
    assert_eq!(req.encode_to_vec(), [0x0a, 7, 0x0a, 1, b'w', 0x38, 7, 0x40, 1]);
}

#[test]
fn lease_grant_upper_case_fields() {
    let grant = LeaseGrantRequest { ttl: 10, id: 2 };
    assert_eq!(grant.encode_to_vec(), [0x08, 10, 0x10, 2]);
}

#[test]
fn internal_request_header_is_field_100() {
    let req = InternalRaftRequest {
        header: Some(RequestHeader { id: 9, ..Default::default() }),
        put: Some(PutRequest { key: "k".into(), ..Default::default() }),
        ..Default::default()
    };
    // put=4 comes first in field order; header=100 → tag 0xa2 0x06.
    assert_eq!(req.encode_to_vec(), [0x22, 3, 0x0a, 1, b'k', 0xa2, 0x06, 2, 0x08, 9]);
}

#[test]
fn grpc_service_names_match_etcd() {
    use oxetcd_api::etcdserverpb::{
        auth_server, cluster_server, kv_server, lease_server, maintenance_server, watch_server,
    };
    use oxetcd_api::{v3electionpb::election_server, v3lockpb::lock_server};
    assert_eq!(
        [
            kv_server::SERVICE_NAME,
            watch_server::SERVICE_NAME,
            lease_server::SERVICE_NAME,
            cluster_server::SERVICE_NAME,
            maintenance_server::SERVICE_NAME,
            auth_server::SERVICE_NAME,
            lock_server::SERVICE_NAME,
            election_server::SERVICE_NAME,
        ],
        [
            "etcdserverpb.KV",
            "etcdserverpb.Watch",
            "etcdserverpb.Lease",
            "etcdserverpb.Cluster",
            "etcdserverpb.Maintenance",
            "etcdserverpb.Auth",
            "v3lockpb.Lock",
            "v3electionpb.Election",
        ]
    );
}
