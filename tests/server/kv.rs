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

/// Returns once the client listener of the member at `endpoint` serves (it does once
/// the member has a leader): a Put is answered, here with a refusal.
async fn serving(endpoint: &str) {
    let mut kv = oxetcd_api::etcdserverpb::kv_client::KvClient::connect(endpoint.to_string())
        .await
        .expect("connect");
    kv.put(oxetcd_api::etcdserverpb::PutRequest::default()).await.expect_err("an empty key");
}

/// How many Put calls the member at `endpoint` has started (`/metrics`).
async fn puts_started(endpoint: &str) -> f64 {
    let page = oxetcd_tests::metrics::Page::scrape(endpoint.trim_start_matches("http://")).await;
    page.value(
        r#"grpc_server_started_total{grpc_method="Put",grpc_service="etcdserverpb.KV",grpc_type="unary"}"#,
    )
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
    serving(&member.endpoint).await;
    let started = puts_started(&member.endpoint).await;
    let channel = tonic::transport::Channel::from_shared(member.endpoint.clone())
        .unwrap()
        .connect()
        .await
        .expect("connect");
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("a ready channel");
    // A Put whose request message never comes: the member waits for it.
    let never = tokio_stream::pending::<RawBytes>();
    let path = PathAndQuery::from_static("/etcdserverpb.KV/Put");
    let call = tokio::spawn(async move {
        grpc.client_streaming(tonic::Request::new(never), path, RawCodec).await
    });
    // The call has reached the member before it closes.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while puts_started(&member.endpoint).await <= started {
        assert!(std::time::Instant::now() < deadline, "the call never reached the member");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let dir = member.stop().await;
    let ended = tokio::time::timeout(Duration::from_secs(2), call).await;
    let answer = ended.expect("the call is still open after the member closed").unwrap();
    assert!(answer.is_err(), "the unfinished call was answered: {answer:?}");
    // The data dir opens again at once: nothing holds the backend.
    TestMember::start_in(dir, &[]).await.stop().await;
}

/// `--grpc-keepalive-interval` and `--grpc-keepalive-timeout`, as etcd's gRPC server
/// applies them: a client connection quiet for the interval gets an HTTP/2 PING; one
/// that answers stays, one that does not is closed once the timeout passes. (etcd
/// 3.4.23 with both at 1 s, seen from a raw client: the PING 1.00 s after the
/// preface, pings every second while answered, the end 1.00 s after an unanswered one;
/// oxetcd sends a GOAWAY just before that end, etcd does not.)
mod keepalive {
    use std::time::{Duration, Instant};

    use oxetcd_tests::member::TestMember;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    const SETTINGS: u8 = 0x4;
    const PING: u8 = 0x6;
    const ACK: u8 = 0x1;
    /// Far beyond the interval and timeout the member is given (1 s each).
    const BOUND: Duration = Duration::from_secs(10);

    struct Frame {
        kind: u8,
        flags: u8,
        payload: Vec<u8>,
    }

    fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let len = payload.len().to_be_bytes();
        let mut bytes = vec![len[5], len[6], len[7], kind, flags, 0, 0, 0, 0];
        bytes.extend_from_slice(payload);
        bytes
    }

    /// The next frame, or `None` once the member closed the connection.
    async fn next_frame(conn: &mut TcpStream) -> Option<Frame> {
        let mut head = [0u8; 9];
        let read = tokio::time::timeout(BOUND, conn.read_exact(&mut head)).await;
        read.expect("a frame or the end within the bound").ok()?;
        let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
        let mut payload = vec![0; len];
        conn.read_exact(&mut payload).await.ok()?;
        Some(Frame { kind: head[3], flags: head[4], payload })
    }

    /// A connection that has said its preface and acknowledged the member's settings.
    async fn open(member: &TestMember) -> TcpStream {
        let addr = member.endpoint.trim_start_matches("http://");
        let mut conn = TcpStream::connect(addr).await.expect("connect");
        conn.write_all(PREFACE).await.unwrap();
        conn.write_all(&frame(SETTINGS, 0, &[])).await.unwrap();
        loop {
            let frame = next_frame(&mut conn).await.expect("the member's settings");
            if frame.kind == SETTINGS && frame.flags & ACK == 0 {
                conn.write_all(&self::frame(SETTINGS, ACK, &[])).await.unwrap();
                return conn;
            }
        }
    }

    /// Reads until the member's next PING, answering nothing.
    async fn next_ping(conn: &mut TcpStream) -> Option<Vec<u8>> {
        loop {
            let frame = next_frame(conn).await?;
            if frame.kind == PING && frame.flags & ACK == 0 {
                return Some(frame.payload);
            }
        }
    }

    async fn member() -> TestMember {
        let flags = ["--grpc-keepalive-interval", "1s", "--grpc-keepalive-timeout", "1s"];
        let member = TestMember::start(&flags).await;
        super::serving(&member.endpoint).await;
        member
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_that_answers_pings_stays_connected() {
        let member = member().await;
        let mut conn = open(&member).await;
        let started = Instant::now();
        for _ in 0..3 {
            let payload = next_ping(&mut conn).await.expect("a ping, the connection open");
            conn.write_all(&frame(PING, ACK, &payload)).await.unwrap();
        }
        // Three intervals of quiet, each answered: the connection lived past the timeout.
        assert!(started.elapsed() >= Duration::from_secs(2), "pinged too often");
        member.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_that_does_not_answer_is_closed_after_the_timeout() {
        let member = member().await;
        let mut conn = open(&member).await;
        let opened = Instant::now();
        next_ping(&mut conn).await.expect("a ping after the interval");
        let pinged = opened.elapsed();
        assert!(pinged >= Duration::from_millis(900), "pinged after {pinged:?} of quiet");
        let pinged = Instant::now();
        // Nothing answered: what follows the ping is at most a GOAWAY, then the end.
        while let Some(frame) = next_frame(&mut conn).await {
            assert!(frame.kind != PING || frame.flags & ACK != 0, "pinged again");
        }
        let closed = pinged.elapsed();
        assert!(closed >= Duration::from_millis(900), "closed {closed:?} after the ping");
        member.stop().await;
    }
}
