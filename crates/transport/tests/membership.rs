//! What membership changes need of the transport: the `Members` call a joining member
//! asks, callers it does not know yet answered at the URLs they carry, and removed
//! members told so.

mod common;

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use oxetcd_api::etcdserverpb::Member;
use oxetcd_api::oxetcdpb::{MembersRequest, MembersResponse, RaftBatch};
use oxetcd_raft::MessageType::{MsgApp, MsgHeartbeat, MsgSnap};
use oxetcd_raft::{Snapshot, SnapshotMetadata};
use oxetcd_transport::{FetchOptions, PEER_URLS_HEADER, fetch_members};
use prost::Message as _;

const CLUSTER: u64 = 0x7c;

fn answer() -> MembersResponse {
    let member = |id: u64, name: &str| Member {
        id,
        name: name.into(),
        peer_ur_ls: vec![format!("http://127.0.0.1:{id}")],
        client_ur_ls: vec![],
        is_learner: id == 3,
    };
    MembersResponse { cluster_id: CLUSTER, members: vec![member(1, "a"), member(3, "")] }
}

fn quick() -> FetchOptions {
    FetchOptions { timeout: Duration::from_secs(2), ..Default::default() }
}

#[tokio::test]
async fn members_is_answered_without_ids_and_fetch_takes_the_first_answer() {
    let dir = tempfile::tempdir().unwrap();
    let silent = Node::start(test_config(CLUSTER, 1, dir.path())).await;
    let b = Node::start(test_config(CLUSTER, 2, dir.path())).await;
    *b.handler.members.lock().unwrap() = Some(answer());

    // No peer headers needed: the asker knows no ids yet.
    let got = raw_client(&b.url).await.members(MembersRequest {}).await.unwrap().into_inner();
    assert_eq!(got, answer());

    // A dead URL and a member with nothing to tell are skipped.
    let (dead, _) = dead_url().await;
    let urls = vec![dead.clone(), silent.url.clone(), b.url.clone()];
    assert_eq!(fetch_members(&urls, &quick()).await.unwrap(), answer());

    let err = fetch_members(&urls[..2], &quick()).await.unwrap_err();
    assert_eq!(err.failures.len(), 2);
    assert_eq!(err.failures[0].0, dead);
    assert!(err.failures[1].1.contains("no membership"), "{err:?}");

    // An empty membership counts as no answer.
    *b.handler.members.lock().unwrap() =
        Some(MembersResponse { cluster_id: CLUSTER, members: vec![] });
    let err = fetch_members(&urls[2..], &quick()).await.unwrap_err();
    assert!(err.failures[0].1.contains("no members"), "{err:?}");
}

#[tokio::test]
async fn a_stopped_transport_does_not_answer_members() {
    let dir = tempfile::tempdir().unwrap();
    let b = Node::start(test_config(CLUSTER, 2, dir.path())).await;
    *b.handler.members.lock().unwrap() = Some(answer());
    b.transport.stop();
    let err = raw_client(&b.url).await.members(MembersRequest {}).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable);
}

/// A member whose calls carry its own URL (as a server's do).
async fn advertising(id: u64, dir: &Path) -> Node {
    let listener = listener().await;
    let mut config = test_config(CLUSTER, id, dir);
    config.peer_urls = vec![format!("http://{}", listener.local_addr().unwrap())];
    Node::start_on(config, listener).await
}

#[tokio::test]
async fn an_unknown_caller_is_answered_at_the_urls_its_call_carries() {
    let dir = tempfile::tempdir().unwrap();
    // `a` is joining: `b` (the leader) knows it, it knows nobody.
    let mut a = advertising(1, dir.path()).await;
    let mut b = advertising(2, dir.path()).await;
    b.transport.add_peer(1, vec![a.url.clone()]);
    b.transport.send(vec![msg(MsgHeartbeat, 2, 1, 1)]);
    assert_eq!(a.recv().await.from, 2);
    // `a` answers without having been told of `b`.
    wait_until("a dials b back", || a.transport.active_since(2).is_some()).await;
    a.transport.send(vec![msg(MsgApp, 1, 2, 5)]);
    assert_eq!(b.recv().await.index, 5);
}

#[tokio::test]
async fn a_removed_peer_is_not_learned_again_from_its_calls() {
    let dir = tempfile::tempdir().unwrap();
    let a = advertising(1, dir.path()).await;
    let mut b = advertising(2, dir.path()).await;
    b.transport.add_peer(1, vec![a.url.clone()]);
    b.transport.remove_peer(1);

    // Calls from 1 are still taken (the server decides whether 1 is removed), but they
    // do not make `b` send to 1 again.
    let mut client = raw_client(&b.url).await;
    let batch = RaftBatch { messages: vec![Bytes::from(msg(MsgApp, 1, 2, 9).encode_to_vec())] };
    let mut request = with_headers(tokio_stream::iter(vec![batch]), CLUSTER, 1, 2);
    request.metadata_mut().insert(PEER_URLS_HEADER, a.url.parse().unwrap());
    client.stream(request).await.unwrap();
    assert_eq!(b.recv().await.index, 9);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(b.transport.active_since(1).is_none());

    // Adding it through the log again does.
    b.transport.add_peer(1, vec![a.url.clone()]);
    wait_until("b dials a", || b.transport.active_since(1).is_some()).await;
}

#[tokio::test]
async fn adding_a_known_peer_takes_the_log_s_urls() {
    let dir = tempfile::tempdir().unwrap();
    let (dead, _) = dead_url().await;
    let mut a = Node::start(test_config(CLUSTER, 1, dir.path())).await;
    let b = Node::start(test_config(CLUSTER, 2, dir.path())).await;
    b.transport.add_peer(1, vec![dead]);
    b.transport.add_peer(1, vec![a.url.clone()]);
    wait_until("b reaches a at its new URL", || b.transport.active_since(1).is_some()).await;
    b.transport.send(vec![msg(MsgHeartbeat, 2, 1, 4)]);
    assert_eq!(a.recv().await.index, 4);
}

#[tokio::test]
async fn a_removed_member_s_snapshot_is_refused_and_it_learns_why() {
    let dir = tempfile::tempdir().unwrap();
    let b = Node::start(test_config(CLUSTER, 2, dir.path())).await;
    b.handler.removed.lock().unwrap().insert(4);
    let removed = Node::start(test_config(CLUSTER, 4, dir.path())).await;
    removed.transport.add_peer(2, vec![b.url.clone()]);
    let db = dir.path().join("db");
    std::fs::write(&db, b"backend").unwrap();
    let mut snap = msg(MsgSnap, 4, 2, 0);
    snap.snapshot = Some(Snapshot {
        data: Bytes::new(),
        metadata: Some(SnapshotMetadata { index: 10, term: 2, ..Default::default() }),
    });
    removed.transport.send_snapshot(snap, db);
    wait_until("the removed member learns it", || {
        removed.handler.removed_by.lock().unwrap().contains(&2)
    })
    .await;
    assert!(b.handler.snapshots.lock().unwrap().is_empty());
}
