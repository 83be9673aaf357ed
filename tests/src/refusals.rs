//! Calls that etcd's gRPC layer refuses by itself, and the one size check of the server
//! that comes first, with etcd's code and message for each: checked against the
//! reference etcd (tests/compat/etcd_kv.rs) and oxetcd (tests/server/kv.rs), with etcd's
//! default limits (`--max-request-bytes` 1.5 MiB; gRPC messages up to 512 KiB more).

use oxetcd_api::etcdserverpb::PutRequest;
use oxetcd_api::etcdserverpb::kv_client::KvClient;
use tonic::Code;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;

/// etcd's largest gRPC message by default: `--max-request-bytes` + 512 KiB.
const MAX_MESSAGE_BYTES: usize = 3 * 1024 * 1024 / 2 + 512 * 1024;

/// Every refusal, answered by the server at `endpoint` with etcd's code and message.
pub async fn grpc_refusals(endpoint: &str) {
    // Raw stubs, not oxetcd-client: each refusal's exact code and message, one request
    // each, compared with etcd's (the client checks sizes itself and may retry).
    let mut kv = KvClient::new(connect(endpoint).await);
    let put = |size: usize| PutRequest {
        key: "big".into(),
        value: vec![b'x'; size].into(),
        ..Default::default()
    };
    // Over --max-request-bytes, within the gRPC limit: the server refuses it.
    assert_eq!(
        refusal(kv.put(put(1_600_000)).await),
        (Code::InvalidArgument, "etcdserver: request is too large".into())
    );
    // Over the gRPC limit: 10 bytes of key, tags and lengths around the value.
    let size = MAX_MESSAGE_BYTES + 100_000;
    assert_eq!(
        refusal(kv.put(put(size - 10)).await),
        (
            Code::ResourceExhausted,
            format!("grpc: received message larger than max ({size} vs. {MAX_MESSAGE_BYTES})")
        )
    );

    let cases = [
        ("/foo.Bar/Baz", Code::Unimplemented, "unknown service foo.Bar"),
        (
            "/etcdserverpb.KV/Nope",
            Code::Unimplemented,
            "unknown method Nope for service etcdserverpb.KV",
        ),
        (
            "/etcdserverpb.KV",
            Code::ResourceExhausted,
            r#"malformed method name: "/etcdserverpb.KV""#,
        ),
    ];
    for (path, code, message) in cases {
        assert_eq!(
            refusal(raw_call(endpoint, path, vec![]).await),
            (code, message.into()),
            "{path}"
        );
    }
    // The server still serves.
    kv.put(put(1)).await.expect("a put after the refusals");
}

async fn connect(endpoint: &str) -> Channel {
    let endpoint = Channel::from_shared(endpoint.to_string()).expect("a valid endpoint");
    endpoint.connect().await.expect("connect")
}

/// The code and message of a call's refusal.
fn refusal<T: std::fmt::Debug>(result: Result<T, tonic::Status>) -> (Code, String) {
    let status = result.expect_err("a refusal");
    (status.code(), status.message().to_string())
}

/// A unary call to `path` on `endpoint`, with `body` as the request message as it is.
pub async fn raw_call(
    endpoint: &str,
    path: &'static str,
    body: Vec<u8>,
) -> Result<tonic::Response<RawBytes>, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(connect(endpoint).await);
    grpc.ready().await.expect("a ready channel");
    let path = PathAndQuery::from_static(path);
    grpc.unary(tonic::Request::new(RawBytes(body)), path, RawCodec).await
}

/// Bytes sent and received as they are.
#[derive(Debug, Clone, Default)]
pub struct RawBytes(pub Vec<u8>);

#[derive(Debug, Clone, Default)]
pub struct RawCodec;

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
