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

mod bad_input {
    use oxetcd_api::etcdserverpb::kv_client::KvClient;
    use oxetcd_api::etcdserverpb::request_op::Request;
    use oxetcd_api::etcdserverpb::{PutRequest, RangeRequest, RequestOp, TxnRequest};
    use oxetcd_tests::member::TestMember;
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
        use tonic::codegen::http::uri::PathAndQuery;
        let member = TestMember::start(&[]).await;
        let channel = tonic::transport::Endpoint::from_shared(member.endpoint.clone())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready().await.unwrap();
        // Field 1 (key) declared with 100 bytes, but only 2 follow.
        let garbage = RawBytes(vec![0x0a, 100, b'x', b'y']);
        let path = PathAndQuery::from_static("/etcdserverpb.KV/Put");
        let result: Result<tonic::Response<RawBytes>, tonic::Status> =
            grpc.unary(tonic::Request::new(garbage), path, RawCodec).await;
        let err = result.unwrap_err();
        assert_eq!(err.code(), Code::Internal, "{err:?}");
        let mut kv = KvClient::connect(member.endpoint.clone()).await.unwrap();
        kv.put(put("after", b"ok".to_vec())).await.unwrap();
        member.stop().await;
    }

    /// Bytes sent and received as they are.
    #[derive(Debug, Clone, Default)]
    struct RawBytes(Vec<u8>);

    #[derive(Debug, Clone, Default)]
    struct RawCodec;

    impl tonic::codec::Codec for RawCodec {
        type Encode = RawBytes;
        type Decode = RawBytes;
        type Encoder = RawCodec;
        type Decoder = RawCodec;
        fn encoder(&mut self) -> Self::Encoder {
            RawCodec
        }
        fn decoder(&mut self) -> Self::Decoder {
            RawCodec
        }
    }

    impl tonic::codec::Encoder for RawCodec {
        type Item = RawBytes;
        type Error = tonic::Status;
        fn encode(
            &mut self,
            item: RawBytes,
            dst: &mut tonic::codec::EncodeBuf<'_>,
        ) -> Result<(), tonic::Status> {
            use bytes::BufMut;
            dst.put_slice(&item.0);
            Ok(())
        }
    }

    impl tonic::codec::Decoder for RawCodec {
        type Item = RawBytes;
        type Error = tonic::Status;
        fn decode(
            &mut self,
            src: &mut tonic::codec::DecodeBuf<'_>,
        ) -> Result<Option<RawBytes>, tonic::Status> {
            use bytes::Buf;
            Ok(Some(RawBytes(src.copy_to_bytes(src.remaining()).to_vec())))
        }
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
