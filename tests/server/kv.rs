//! oxetcd's KV service against the scenario that etcd 3.4.23 passes (the compatibility
//! suite runs the same scenario against the real etcd).

use oxetcd_tests::member::TestMember;
use oxetcd_tests::scenario;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_semantics_match_etcd() {
    let member = TestMember::start(&[]).await;
    scenario::kv_semantics(&member.endpoint).await;
    member.stop().await;
}

/// Refusals of the gRPC layer, with etcd's codes and messages (the compatibility suite
/// runs the same checks against the real etcd).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_refusals_match_etcd() {
    let member = TestMember::start(&[]).await;
    oxetcd_tests::refusals::grpc_refusals(&member.endpoint).await;
    member.stop().await;
}

mod bad_input {
    use oxetcd_api::etcdserverpb::kv_client::KvClient;
    use oxetcd_api::etcdserverpb::request_op::Request;
    use oxetcd_api::etcdserverpb::{PutRequest, RangeRequest, RequestOp, TxnRequest};
    use oxetcd_tests::member::TestMember;
    use oxetcd_tests::refusals::raw_call;
    use tonic::Code;

    fn put(key: &str, value: Vec<u8>) -> PutRequest {
        PutRequest {
            key: key.as_bytes().to_vec().into(),
            value: value.into(),
            ..Default::default()
        }
    }

    /// Each refused request gets etcd's error and leaves the revision where it was.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn refused_requests_get_etcds_errors_and_change_nothing() {
        let member = TestMember::start(&[]).await;
        let mut kv = KvClient::connect(member.endpoint.clone()).await.unwrap();
        kv.put(put("a", b"1".to_vec())).await.unwrap();
        let revision = || async {
            let mut kv = KvClient::connect(member.endpoint.clone()).await.unwrap();
            kv.range(RangeRequest { key: "a".into(), ..Default::default() })
                .await
                .unwrap()
                .into_inner()
                .header
                .unwrap()
                .revision
        };
        let before = revision().await;

        let ops = (0..129).map(|i| RequestOp {
            request: Some(Request::RequestPut(put(&format!("t{i}"), vec![]))),
        });
        let too_many = TxnRequest { compare: vec![], success: ops.collect(), failure: vec![] };
        let err = kv.txn(too_many).await.unwrap_err();
        assert_eq!(
            (err.code(), err.message()),
            (Code::InvalidArgument, "etcdserver: too many operations in txn request")
        );

        let dup =
            (0..2).map(|_| RequestOp { request: Some(Request::RequestPut(put("same", vec![]))) });
        let err = kv
            .txn(TxnRequest { compare: vec![], success: dup.collect(), failure: vec![] })
            .await
            .unwrap_err();
        assert_eq!(
            (err.code(), err.message()),
            (Code::InvalidArgument, "etcdserver: duplicate key given in txn request")
        );

        // Over --max-request-bytes (1.5 MiB) but under the gRPC frame limit.
        let err = kv.put(put("big", vec![7; 1_600_000])).await.unwrap_err();
        assert_eq!(
            (err.code(), err.message()),
            (Code::InvalidArgument, "etcdserver: request is too large")
        );

        let err =
            kv.put(PutRequest { ignore_value: true, ..put("missing", vec![]) }).await.unwrap_err();
        assert_eq!(
            (err.code(), err.message()),
            (Code::InvalidArgument, "etcdserver: key not found")
        );

        let err = kv.put(PutRequest { lease: 42, ..put("leased", vec![]) }).await.unwrap_err();
        assert_eq!(
            (err.code(), err.message()),
            (Code::NotFound, "etcdserver: requested lease not found")
        );

        assert_eq!(revision().await, before, "a refused request changed the store");
        member.stop().await;
    }

    /// A body that is not a protobuf message is refused; the server keeps serving.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn malformed_protobuf_is_refused() {
        let member = TestMember::start(&[]).await;
        // Field 1 (key) declared with 100 bytes, but only 2 follow.
        let garbage = vec![0x0a, 100, b'x', b'y'];
        let result = raw_call(&member.endpoint, "/etcdserverpb.KV/Put", garbage).await;
        let err = result.unwrap_err();
        assert_eq!(err.code(), Code::Internal, "{err:?}");
        let mut kv = KvClient::connect(member.endpoint.clone()).await.unwrap();
        kv.put(put("after", b"ok".to_vec())).await.unwrap();
        member.stop().await;
    }
}

/// Data and revisions survive a clean stop and a restart on the same data dir.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_data_and_revisions() {
    use oxetcd_api::etcdserverpb::kv_client::KvClient;
    use oxetcd_api::etcdserverpb::{PutRequest, RangeRequest};
    let member = TestMember::start(&[]).await;
    let mut kv = KvClient::connect(member.endpoint.clone()).await.unwrap();
    for i in 0..50 {
        let put = PutRequest {
            key: format!("r/{i:02}").into_bytes().into(),
            value: vec![i].into(),
            ..Default::default()
        };
        kv.put(put).await.unwrap();
    }
    let dir = member.stop().await;
    let member = TestMember::start_in(dir, &[]).await;
    let mut kv = KvClient::connect(member.endpoint.clone()).await.unwrap();
    let all = kv
        .range(RangeRequest { key: "r/".into(), range_end: "r0".into(), ..Default::default() })
        .await
        .unwrap();
    let all = all.into_inner();
    assert_eq!(all.count, 50);
    assert_eq!(all.header.unwrap().revision, 51);
    assert_eq!(all.kvs[49].value.as_ref(), &[49]);
    member.stop().await;
}

/// `--wal-dir` puts the WAL outside the data dir, and a restart finds it there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dedicated_wal_dir_holds_the_log_across_restarts() {
    let wal_parent = tempfile::tempdir().unwrap();
    let wal_dir = wal_parent.path().join("wal");
    let wal_flag = format!("--wal-dir={}", wal_dir.display());
    let member = TestMember::start(&[&wal_flag]).await;
    let client = oxetcd_client::Client::connect([member.endpoint.as_str()], Default::default())
        .await
        .unwrap();
    client.put("in", "the wal dir", None).await.unwrap();
    let dir = member.stop().await;
    let segments = std::fs::read_dir(&wal_dir).unwrap().filter_map(Result::ok);
    assert!(segments.into_iter().any(|e| e.path().extension().is_some_and(|x| x == "wal")));
    assert!(!dir.path().join("data/member/wal").exists(), "nothing in the data dir's wal");

    let member = TestMember::start_in(dir, &[&wal_flag]).await;
    let client = oxetcd_client::Client::connect([member.endpoint.as_str()], Default::default())
        .await
        .unwrap();
    let got = client.get("in", None).await.unwrap();
    assert_eq!(got.kvs[0].value, &b"the wal dir"[..]);
    member.stop().await;
}

/// A call still unfinished when the listeners' grace period (5 s) runs out ends with its
/// connection: the client gets an error soon after, and the member's backend is free
/// when `close` returns. Before, each connection ran in a task of its own that aborting
/// the listener left running: the call stayed open, and kept the server (and its
/// backend file) until the client gave up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_a_member_ends_a_call_unfinished_after_the_grace_period() {
    use std::time::Duration;

    use oxetcd_tests::refusals::{RawBytes, RawCodec};
    use tonic::codegen::http::uri::PathAndQuery;

    let member = TestMember::start(&[]).await;
    let channel = tonic::transport::Channel::from_shared(member.endpoint.clone())
        .unwrap()
        .connect()
        .await
        .expect("connect");
    // The member serves (it answers once it has a leader).
    let mut kv = oxetcd_api::etcdserverpb::kv_client::KvClient::new(channel.clone());
    kv.put(oxetcd_api::etcdserverpb::PutRequest::default()).await.expect_err("an empty key");
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("a ready channel");
    // A Put whose request message never comes: the member waits for it.
    let never = tokio_stream::pending::<RawBytes>();
    let path = PathAndQuery::from_static("/etcdserverpb.KV/Put");
    let call = tokio::spawn(async move {
        grpc.client_streaming(tonic::Request::new(never), path, RawCodec).await
    });
    // The call has reached the member before it closes.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let dir = member.stop().await;
    let ended = tokio::time::timeout(Duration::from_secs(2), call).await;
    let answer = ended.expect("the call is still open after the member closed").unwrap();
    assert!(answer.is_err(), "the unfinished call was answered: {answer:?}");
    // The data dir opens again at once: nothing holds the backend.
    TestMember::start_in(dir, &[]).await.stop().await;
}
