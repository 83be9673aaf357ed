//! RangeStream (etcd 3.7, KEP-5966) over gRPC: the chunks merge into the Range answer,
//! reads are linearizable on a follower, a compacted or future revision gets etcd's
//! error, and a range larger than a chunk comes in several messages.

use oxetcd_api::etcdserverpb::kv_client::KvClient;
use oxetcd_api::etcdserverpb::{
    CompactionRequest, PutRequest, RangeRequest, RangeResponse, RangeStreamResponse,
};
use oxetcd_client::{Client, ClientOptions, GetOptions};
use oxetcd_tests::member::{TestCluster, TestMember};
use prost::Message;
use tonic::Code;
use tonic::transport::Channel;

async fn put(kv: &mut KvClient<Channel>, key: String, value: Vec<u8>) -> i64 {
    let req =
        PutRequest { key: key.into_bytes().into(), value: value.into(), ..Default::default() };
    kv.put(req).await.unwrap().into_inner().header.unwrap().revision
}

/// Every message of a RangeStream, or the status that ended it.
async fn stream(
    kv: &mut KvClient<Channel>,
    req: RangeRequest,
) -> Result<Vec<RangeStreamResponse>, tonic::Status> {
    let mut messages = Vec::new();
    let mut stream = kv.range_stream(req).await?.into_inner();
    while let Some(message) = stream.message().await? {
        messages.push(message);
    }
    Ok(messages)
}

/// The messages merged as a protobuf client merges them.
fn merged(messages: &[RangeStreamResponse]) -> RangeResponse {
    let mut whole = RangeStreamResponse::default();
    for message in messages {
        whole.merge(message.encode_to_vec().as_slice()).unwrap();
    }
    whole.range_response.unwrap_or_default()
}

fn range(key: &str, end: &str) -> RangeRequest {
    RangeRequest {
        key: key.as_bytes().to_vec().into(),
        range_end: end.as_bytes().to_vec().into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_ranges_merge_into_the_range_answer() {
    let member = TestMember::start(&[]).await;
    let mut kv = KvClient::connect(member.endpoint.clone()).await.unwrap();
    // 3 MiB in 3,000 keys: more than one chunk by size and by key count.
    for i in 0..3000 {
        put(&mut kv, format!("k{i:05}"), vec![b'v'; 1024]).await;
    }
    let requests = [
        range("k", "l"),
        RangeRequest { limit: 1500, ..range("k", "l") },
        RangeRequest { keys_only: true, ..range("k", "l") },
        RangeRequest { count_only: true, ..range("k", "l") },
        RangeRequest { sort_order: 2, sort_target: 3, limit: 10, ..range("k", "l") },
        RangeRequest { min_mod_revision: 1000, max_mod_revision: 1200, ..range("\0", "\0") },
        range("k00007", ""),
        range("x", "y"),
    ];
    for req in requests {
        let messages = stream(&mut kv, req.clone()).await.unwrap();
        let unary = kv.range(req.clone()).await.unwrap().into_inner();
        assert_eq!(merged(&messages), unary, "{req:?}");
        let first = messages[0].range_response.as_ref().unwrap();
        assert_eq!(first.header, unary.header, "the first message has the whole header");
    }
    let messages = stream(&mut kv, range("k", "l")).await.unwrap();
    assert!(messages.len() >= 3, "3 MiB comes in chunks: {} messages", messages.len());

    // The client crate's RangeStream: chunk by chunk, or merged into Range's answer.
    let client = Client::connect([&member.endpoint], ClientOptions::default()).await.unwrap();
    let prefix = || Some(GetOptions::new().with_prefix());
    let mut chunks = client.get_stream("k", prefix()).await.unwrap();
    let mut sizes = Vec::new();
    while let Some(chunk) = chunks.message().await.unwrap() {
        sizes.push(chunk.kvs.len());
    }
    assert!(sizes.len() >= 3 && sizes.iter().sum::<usize>() == 3000, "{sizes:?}");
    let merged = client.get_stream("k", prefix()).await.unwrap().collect().await.unwrap();
    assert_eq!(merged, client.get("k", prefix()).await.unwrap());
    member.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_revisions_get_etcds_errors() {
    let member = TestMember::start(&[]).await;
    let mut kv = KvClient::connect(member.endpoint.clone()).await.unwrap();
    for i in 0..10 {
        put(&mut kv, format!("k{i}"), b"v".to_vec()).await;
    }
    kv.compact(CompactionRequest { revision: 5, physical: true }).await.unwrap();
    let compacted = stream(&mut kv, RangeRequest { revision: 3, ..range("k", "l") }).await;
    let status = compacted.unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange);
    assert_eq!(status.message(), "etcdserver: mvcc: required revision has been compacted");
    let future = stream(&mut kv, RangeRequest { revision: 100, ..range("k", "l") }).await;
    let status = future.unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange);
    assert_eq!(status.message(), "etcdserver: mvcc: required revision is a future revision");
    let empty_key = stream(&mut kv, range("", "")).await.unwrap_err();
    assert_eq!(empty_key.code(), Code::InvalidArgument);
    assert_eq!(empty_key.message(), "etcdserver: key is not provided");
    member.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_streams_what_the_leader_acknowledged() {
    let cluster = TestCluster::start(3).await;
    let leader = cluster.leader().await;
    let follower = (leader + 1) % 3;
    let mut to_leader = KvClient::connect(cluster.endpoint(leader)).await.unwrap();
    let mut to_follower = KvClient::connect(cluster.endpoint(follower)).await.unwrap();
    for i in 0..20 {
        let revision = put(&mut to_leader, format!("k{i:02}"), b"v".to_vec()).await;
        let messages = stream(&mut to_follower, range("k", "l")).await.unwrap();
        let seen = merged(&messages);
        assert_eq!(seen.count, i + 1, "a linearizable read sees every acknowledged put");
        assert!(seen.header.unwrap().revision >= revision);
    }
    cluster.stop_all().await;
}
