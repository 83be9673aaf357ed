//! `rafthttp::drop-send` and `rafthttp::drop-receive` (src/failpoints.rs): raft
//! messages and snapshots between transports on 127.0.0.1 vanish in one direction while
//! the streams stay up, and flow again once the failpoint is removed. One test: the
//! failpoints are process-wide.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use oxetcd_raft::MessageType::{MsgApp, MsgHeartbeat, MsgSnap};
use oxetcd_raft::{Message, Snapshot, SnapshotMetadata, SnapshotStatus};

const CLUSTER: u64 = 0xd7;
/// Long enough for a message on an idle loopback stream to arrive, many times over.
const QUIET: Duration = Duration::from_millis(300);

fn snap_msg(from: u64, to: u64, index: u64) -> Message {
    let mut m = msg(MsgSnap, from, to, 0);
    m.snapshot = Some(Snapshot {
        data: Bytes::from_static(b"membership"),
        metadata: Some(SnapshotMetadata { index, term: 1, ..Default::default() }),
    });
    m
}

/// When `a`'s streams to members 2 and 3 were established.
fn streams(a: &Node) -> [Option<std::time::Instant>; 2] {
    [a.transport.active_since(2), a.transport.active_since(3)]
}

/// Sends a snapshot from `a` to member 2 and waits for the report of it.
async fn snapshot_outcome(a: &Node, db: &std::path::Path, index: u64) -> SnapshotStatus {
    let reports = || a.handler.snapshot_reports.lock().unwrap().len();
    let before = reports();
    a.transport.send_snapshot(snap_msg(1, 2, index), db.to_owned());
    wait_until("the snapshot's outcome", || reports() > before).await;
    a.handler.snapshot_reports.lock().unwrap()[before].1
}

/// With `failpoint` armed with `actions`, which cut what `a` (member 1) sends to `b`
/// (member 2): `a`'s messages and snapshots do not reach `b`, while `b`'s reach `a`;
/// once the failpoint is removed, `a`'s messages flow again. Messages are numbered from
/// `index` on.
async fn a_to_b_is_cut(
    a: &mut Node,
    b: &mut Node,
    db: &std::path::Path,
    failpoint: &str,
    actions: &str,
    index: u64,
) {
    fail::cfg(failpoint, actions).unwrap();
    a.transport.send(vec![msg(MsgApp, 1, 2, index)]);
    assert!(b.nothing_delivered(QUIET).await, "{failpoint}: a message from a reached b");
    b.transport.send(vec![msg(MsgHeartbeat, 2, 1, index + 1)]);
    assert_eq!(a.recv().await.index, index + 1, "{failpoint}: b's message to a");
    assert_eq!(snapshot_outcome(a, db, index + 2).await, SnapshotStatus::Failure);
    assert!(b.handler.snapshots.lock().unwrap().is_empty(), "{failpoint}: a snapshot got through");
    fail::remove(failpoint);
    a.transport.send(vec![msg(MsgApp, 1, 2, index + 3)]);
    assert_eq!(b.recv().await.index, index + 3, "{failpoint}: a message after the removal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_vanish_in_the_cut_direction_only_and_the_streams_stay_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Node::start(test_config(CLUSTER, 1, dir.path())).await;
    let mut b = Node::start(test_config(CLUSTER, 2, dir.path())).await;
    let mut c = Node::start(test_config(CLUSTER, 3, dir.path())).await;
    a.transport.add_peer(2, vec![b.url.clone()]);
    a.transport.add_peer(3, vec![c.url.clone()]);
    b.transport.add_peer(1, vec![a.url.clone()]);
    wait_until("a's streams up", || {
        a.transport.active_since(2).is_some() && a.transport.active_since(3).is_some()
    })
    .await;
    wait_until("b's stream up", || b.transport.active_since(1).is_some()).await;
    let established = streams(&a);
    let db = dir.path().join("db");
    std::fs::write(&db, b"backend").unwrap();

    // A peer the failpoint does not name is not cut.
    fail::cfg("rafthttp::drop-send", "return(2)").unwrap();
    a.transport.send(vec![msg(MsgApp, 1, 3, 1)]);
    assert_eq!(c.recv().await.index, 1);
    fail::remove("rafthttp::drop-send");

    // The same cut from either end.
    a_to_b_is_cut(&mut a, &mut b, &db, "rafthttp::drop-send", "return(2)", 2).await;
    a_to_b_is_cut(&mut a, &mut b, &db, "rafthttp::drop-receive", "return(1)", 6).await;
    assert_eq!(snapshot_outcome(&a, &db, 10).await, SnapshotStatus::Finish);

    // No stream was closed or opened again meanwhile.
    assert_eq!(streams(&a), established);
    assert_eq!(b.transport.stats().snapshots_received, 1);
    a.shutdown().await;
    b.shutdown().await;
    c.shutdown().await;
}
