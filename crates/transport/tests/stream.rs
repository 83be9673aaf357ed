//! Raft message streams between transports on 127.0.0.1.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use oxetcd_api::oxetcdpb::RaftBatch;
use oxetcd_raft::MessageType::{MsgApp, MsgHeartbeat};
use prost::Message as _;
use tokio_stream::StreamExt;

const CLUSTER: u64 = 0xc1;

#[tokio::test]
async fn messages_flow_both_ways_in_order_and_batched() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Node::start(test_config(CLUSTER, 1, dir.path())).await;
    let mut b = Node::start(test_config(CLUSTER, 2, dir.path())).await;
    let mut c = Node::start(test_config(CLUSTER, 3, dir.path())).await;
    for (node, peers) in [(&a, [&b, &c]), (&b, [&a, &c]), (&c, [&a, &b])] {
        for peer in peers {
            node.transport.add_peer(peer.id, vec![peer.url.clone()]);
        }
    }

    // Warm up every stream so the bulk send below is not dropped while dialing.
    for (from, to) in [(&a, &b), (&b, &a), (&a, &c), (&c, &b)] {
        let to_id = to.id;
        wait_until("stream up", || from.transport.active_since(to_id).is_some()).await;
    }

    const N: u64 = 2000;
    // One send() call: the writer finds everything queued and batches it.
    a.transport.send((0..N).map(|i| msg(MsgApp, 1, 2, i)).collect());
    b.transport.send((0..N).map(|i| msg(MsgHeartbeat, 2, 1, i)).collect());
    a.transport.send(vec![msg(MsgApp, 1, 3, 7)]);
    c.transport.send(vec![msg(MsgApp, 3, 2, 9)]);

    let mut from_c = None;
    let mut next_from_a = 0;
    while next_from_a < N {
        let m = b.recv().await;
        if m.from == 3 {
            from_c = Some(m.index);
            continue;
        }
        assert_eq!((m.from, m.to, m.index), (1, 2, next_from_a), "order from a to b");
        next_from_a += 1;
    }
    if from_c.is_none() {
        from_c = Some(b.recv().await.index);
    }
    assert_eq!(from_c, Some(9));
    for i in 0..N {
        let m = a.recv().await;
        assert_eq!((m.from, m.index, m.msg_type), (2, i, MsgHeartbeat as i32), "order from b to a");
    }
    assert_eq!(c.recv().await.index, 7);

    let sent = a.transport.stats();
    assert_eq!(sent.messages_dropped, 0);
    assert_eq!(sent.messages_sent, N + 1);
    assert!(sent.batches_sent < N / 4, "expected batching, got {sent:?}");
    let received = b.transport.stats();
    assert_eq!(received.messages_received, N + 1);
    assert!(received.batches_received < N / 4, "expected batching, got {received:?}");
    assert!(a.handler.unreachable.lock().unwrap().is_empty());

    a.shutdown().await;
    b.shutdown().await;
    c.shutdown().await;
}

#[tokio::test]
async fn unreachable_peer_is_reported_and_the_stream_reconnects() {
    let dir = tempfile::tempdir().unwrap();
    let (url, addr) = dead_url().await;
    let a = Node::start(test_config(CLUSTER, 1, dir.path())).await;
    a.transport.add_peer(2, vec![url]);

    a.transport.send(vec![msg(MsgHeartbeat, 1, 2, 0)]);
    wait_until("report_unreachable while down", || a.handler.unreachable_count(2) > 0).await;
    assert!(a.transport.active_since(2).is_none());

    // The peer comes up at that address: the writer reconnects on its own.
    let mut b = Node::start_on(test_config(CLUSTER, 2, dir.path()), bind(addr).await).await;
    wait_until("stream up", || a.transport.active_since(2).is_some()).await;
    a.transport.send(vec![msg(MsgHeartbeat, 1, 2, 1)]);
    assert_eq!(b.recv().await.index, 1);

    // The peer goes away mid-stream: reported again, and again it comes back.
    let before = a.handler.unreachable_count(2);
    b.shutdown().await;
    wait_until("report_unreachable after the peer died", || {
        a.handler.unreachable_count(2) > before
    })
    .await;
    wait_until("inactive", || a.transport.active_since(2).is_none()).await;

    let mut b = Node::start_on(test_config(CLUSTER, 2, dir.path()), bind(addr).await).await;
    wait_until("stream up again", || a.transport.active_since(2).is_some()).await;
    a.transport.send(vec![msg(MsgHeartbeat, 1, 2, 2)]);
    assert_eq!(b.recv().await.index, 2);
    b.shutdown().await;
}

/// Rebinds a port released moments ago.
async fn bind(addr: std::net::SocketAddr) -> tokio::net::TcpListener {
    within("rebinding the peer port", async {
        loop {
            match tokio::net::TcpListener::bind(addr).await {
                Ok(l) => return l,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    })
    .await
}

#[tokio::test]
async fn update_peer_redirects_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let (dead, _) = dead_url().await;
    let a = Node::start(test_config(CLUSTER, 1, dir.path())).await;
    let mut b = Node::start(test_config(CLUSTER, 2, dir.path())).await;
    a.transport.add_peer(2, vec![dead]);
    wait_until("report_unreachable", || a.handler.unreachable_count(2) > 0).await;
    a.transport.update_peer(2, vec![b.url.clone()]);
    wait_until("stream up", || a.transport.active_since(2).is_some()).await;
    a.transport.send(vec![msg(MsgApp, 1, 2, 5)]);
    assert_eq!(b.recv().await.index, 5);
    a.transport.remove_peer(2);
    assert!(a.transport.active_since(2).is_none());
    a.transport.send(vec![msg(MsgApp, 1, 2, 6)]);
    assert!(b.nothing_delivered(Duration::from_millis(200)).await);
}

#[tokio::test]
async fn a_full_queue_drops_and_reports_instead_of_blocking() {
    let dir = tempfile::tempdir().unwrap();
    // A listener that never accepts: the peer is there but never answers.
    let silent = listener().await;
    let mut config = test_config(CLUSTER, 1, dir.path());
    config.queue_len = 8;
    config.dial_timeout = Duration::from_secs(30);
    let a = Node::start(config).await;
    a.transport.add_peer(2, vec![format!("http://{}", silent.local_addr().unwrap())]);

    let started = Instant::now();
    a.transport.send((0..1000).map(|i| msg(MsgApp, 1, 2, i)).collect());
    assert!(started.elapsed() < Duration::from_millis(500), "send() blocked");
    // On this single-threaded runtime nothing was taken off the queue meanwhile.
    assert_eq!(a.transport.stats().messages_dropped, 992);
    wait_until("report_unreachable", || a.handler.unreachable_count(2) > 0).await;
}

#[tokio::test]
async fn refused_senders_deliver_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = Node::start(test_config(CLUSTER, 2, dir.path())).await;
    b.handler.removed.lock().unwrap().insert(4);

    // Another cluster, the wrong recipient id, a removed member.
    let other_cluster = Node::start(test_config(0xbad, 1, dir.path())).await;
    other_cluster.transport.add_peer(2, vec![b.url.clone()]);
    let wrong_target = Node::start(test_config(CLUSTER, 1, dir.path())).await;
    wrong_target.transport.add_peer(3, vec![b.url.clone()]);
    let removed = Node::start(test_config(CLUSTER, 4, dir.path())).await;
    removed.transport.add_peer(2, vec![b.url.clone()]);

    for _ in 0..5 {
        other_cluster.transport.send(vec![msg(MsgHeartbeat, 1, 2, 1)]);
        wrong_target.transport.send(vec![msg(MsgHeartbeat, 1, 3, 2)]);
        removed.transport.send(vec![msg(MsgHeartbeat, 4, 2, 3)]);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_until("three refusals", || b.transport.stats().calls_refused >= 3).await;
    wait_until("the removed member learns it", || {
        removed.handler.removed_by.lock().unwrap().contains(&2)
    })
    .await;
    for sender in [&other_cluster, &wrong_target] {
        wait_until("refused sender reports unreachable", || {
            !sender.handler.unreachable.lock().unwrap().is_empty()
        })
        .await;
    }
    assert!(b.nothing_delivered(Duration::from_millis(300)).await);
    assert_eq!(b.transport.stats().messages_received, 0);
}

#[tokio::test]
async fn refusals_carry_clear_status_codes() {
    let dir = tempfile::tempdir().unwrap();
    let b = Node::start(test_config(CLUSTER, 2, dir.path())).await;
    b.handler.removed.lock().unwrap().insert(4);
    let mut client = raw_client(&b.url).await;
    let empty = || tokio_stream::iter(Vec::<RaftBatch>::new());

    let err = client.stream(tonic::Request::new(empty())).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    let err = client.stream(with_headers(empty(), 0xbad, 1, 2)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert!(err.message().contains("cluster ID mismatch"), "{err:?}");
    let err = client.stream(with_headers(empty(), CLUSTER, 1, 3)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert!(err.message().contains("member ID mismatch"), "{err:?}");
    let err = client.stream(with_headers(empty(), CLUSTER, 4, 2)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    assert!(err.message().contains("removed"), "{err:?}");
    assert_eq!(b.transport.stats().calls_refused, 4);
}

#[tokio::test]
async fn malformed_messages_are_discarded_and_the_stream_survives() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = Node::start(test_config(CLUSTER, 2, dir.path())).await;
    let mut client = raw_client(&b.url).await;
    let good = |i| bytes::Bytes::from(msg(MsgApp, 1, 2, i).encode_to_vec());
    let batches = vec![
        RaftBatch { messages: vec![bytes::Bytes::from_static(b"\xff\xff\xff\xff"), good(1)] },
        RaftBatch {
            messages: vec![
                bytes::Bytes::from(msg(MsgApp, 9, 2, 2).encode_to_vec()), // wrong sender
                bytes::Bytes::from(msg(MsgApp, 1, 2, 3).encode_to_vec()[..3].to_vec()), // cut short
                good(4),
            ],
        },
        RaftBatch { messages: vec![good(5)] },
    ];
    let stream = tokio_stream::iter(batches).chain(tokio_stream::pending());
    let call =
        tokio::spawn(async move { client.stream(with_headers(stream, CLUSTER, 1, 2)).await });
    for expected in [1, 4, 5] {
        assert_eq!(b.recv().await.index, expected);
    }
    let stats = b.transport.stats();
    assert_eq!(stats.messages_discarded, 3, "{stats:?}");
    assert_eq!(stats.batches_received, 3);
    assert!(!call.is_finished(), "the stream must stay open");

    // Stopping the receiving transport ends the incoming stream.
    b.shutdown().await;
    let result = within("stream ends on stop", call).await.unwrap();
    assert_eq!(result.unwrap_err().code(), tonic::Code::Unavailable);
}

#[tokio::test]
async fn a_full_receive_queue_drops_without_closing_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let a = Node::start(test_config(CLUSTER, 1, dir.path())).await;
    let mut b = Node::start(test_config(CLUSTER, 2, dir.path())).await;
    a.transport.add_peer(2, vec![b.url.clone()]);
    wait_until("stream up", || a.transport.active_since(2).is_some()).await;
    let since = a.transport.active_since(2);

    b.handler.full.store(true, Ordering::Relaxed);
    a.transport.send(vec![msg(MsgApp, 1, 2, 1)]);
    wait_until("drop counted", || b.transport.stats().messages_discarded == 1).await;
    b.handler.full.store(false, Ordering::Relaxed);
    a.transport.send(vec![msg(MsgApp, 1, 2, 2)]);
    assert_eq!(b.recv().await.index, 2);
    assert_eq!(a.transport.active_since(2), since, "same stream throughout");
}

#[tokio::test]
async fn stop_ends_streams_and_later_calls_do_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let a = Node::start(test_config(CLUSTER, 1, dir.path())).await;
    let mut b = Node::start(test_config(CLUSTER, 2, dir.path())).await;
    a.transport.add_peer(2, vec![b.url.clone()]);
    b.transport.add_peer(1, vec![a.url.clone()]);
    wait_until("streams up", || {
        a.transport.active_since(2).is_some() && b.transport.active_since(1).is_some()
    })
    .await;

    a.transport.stop();
    assert!(a.transport.active_since(2).is_none());
    // b's stream into the stopped member is ended by it: b finds a unreachable.
    wait_until("b sees a go", || b.handler.unreachable_count(1) > 0).await;
    a.transport.add_peer(2, vec![b.url.clone()]);
    a.transport.send(vec![msg(MsgApp, 1, 2, 1)]);
    assert!(b.nothing_delivered(Duration::from_millis(200)).await);
    assert_eq!(a.transport.stats().messages_sent, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sustained_traffic_keeps_order_and_accounts_for_every_message() {
    let dir = tempfile::tempdir().unwrap();
    let a = Node::start(test_config(CLUSTER, 1, dir.path())).await;
    let mut b = Node::start(test_config(CLUSTER, 2, dir.path())).await;
    a.transport.add_peer(2, vec![b.url.clone()]);
    wait_until("stream up", || a.transport.active_since(2).is_some()).await;

    const BURSTS: u64 = 50;
    const BURST: u64 = 500;
    let sender = a.transport.clone();
    let producer = tokio::spawn(async move {
        for burst in 0..BURSTS {
            sender.send((0..BURST).map(|i| msg(MsgApp, 1, 2, burst * BURST + i)).collect());
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
    within("producer", producer).await.unwrap();
    let total = BURSTS * BURST;
    wait_until("all sent or dropped", || {
        let s = a.transport.stats();
        s.messages_sent + s.messages_dropped == total
    })
    .await;
    let sent = a.transport.stats().messages_sent;
    let mut last = None;
    for _ in 0..sent {
        let index = b.recv().await.index;
        assert!(last.is_none_or(|l| index > l), "out of order: {index} after {last:?}");
        last = Some(index);
    }
    assert!(b.nothing_delivered(Duration::from_millis(100)).await);
    let stats = a.transport.stats();
    assert!(stats.batches_sent < stats.messages_sent, "{stats:?}");
}
