//! Snapshot transfers between transports on 127.0.0.1.

mod common;

use std::path::Path;

use bytes::Bytes;
use common::*;
use oxetcd_api::oxetcdpb::SnapshotChunk;
use oxetcd_raft::MessageType::MsgSnap;
use oxetcd_raft::{Message, Snapshot, SnapshotMetadata, SnapshotStatus};
use prost::Message as _;

const CLUSTER: u64 = 0x5a;

fn snap_msg(from: u64, to: u64, index: u64) -> Message {
    let mut m = msg(MsgSnap, from, to, 0);
    m.snapshot = Some(Snapshot {
        data: Bytes::from_static(b"membership"),
        metadata: Some(SnapshotMetadata { index, term: 3, ..Default::default() }),
    });
    m
}

/// Pseudo-random bytes, so a misplaced chunk cannot go unnoticed.
fn content(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn files_in(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            entries.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()
        }
        Err(_) => Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_mib_snapshot_arrives_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let a = Node::start(test_config(CLUSTER, 1, dir.path())).await;
    let b = Node::start(test_config(CLUSTER, 2, dir.path())).await;
    a.transport.add_peer(2, vec![b.url.clone()]);

    let data = content(5 * 1024 * 1024 + 12345);
    let db = dir.path().join("db-copy");
    std::fs::write(&db, &data).unwrap();
    a.transport.send_snapshot(snap_msg(1, 2, 0x1234), db.clone());

    wait_until("snapshot reported", || !a.handler.snapshot_reports.lock().unwrap().is_empty())
        .await;
    assert_eq!(*a.handler.snapshot_reports.lock().unwrap(), [(2, SnapshotStatus::Finish)]);
    let received = b.handler.snapshots.lock().unwrap().clone();
    assert_eq!(received.len(), 1);
    let (msg, path) = &received[0];
    assert_eq!(msg.snapshot.as_ref().unwrap().index(), 0x1234);
    assert_eq!(msg.snapshot.as_ref().unwrap().data, Bytes::from_static(b"membership"));
    assert_eq!(*path, b.snapshot_dir.join("0000000000001234.snap.db"));
    assert!(std::fs::read(path).unwrap() == data, "file differs");
    assert_eq!(files_in(&b.snapshot_dir), ["0000000000001234.snap.db"]);
    assert!(db.exists(), "the sender's file is not removed");
    assert_eq!(a.transport.stats().snapshots_sent, 1);
    assert_eq!(b.transport.stats().snapshots_received, 1);
}

#[tokio::test]
async fn an_empty_file_is_a_valid_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let a = Node::start(test_config(CLUSTER, 1, dir.path())).await;
    let b = Node::start(test_config(CLUSTER, 2, dir.path())).await;
    a.transport.add_peer(2, vec![b.url.clone()]);
    let db = dir.path().join("empty");
    std::fs::write(&db, b"").unwrap();
    a.transport.send_snapshot(snap_msg(1, 2, 1), db);
    wait_until("snapshot received", || !b.handler.snapshots.lock().unwrap().is_empty()).await;
    let path = b.handler.snapshots.lock().unwrap()[0].1.clone();
    assert_eq!(std::fs::metadata(path).unwrap().len(), 0);
}

#[tokio::test]
async fn a_failed_transfer_reports_failure() {
    let dir = tempfile::tempdir().unwrap();
    let (dead, _) = dead_url().await;
    let a = Node::start(test_config(CLUSTER, 1, dir.path())).await;
    a.transport.add_peer(2, vec![dead]);
    let db = dir.path().join("db");
    std::fs::write(&db, b"data").unwrap();
    a.transport.send_snapshot(snap_msg(1, 2, 5), db.clone());
    // A missing file, and an unknown peer, fail the same way.
    a.transport.send_snapshot(snap_msg(1, 2, 6), dir.path().join("missing"));
    a.transport.send_snapshot(snap_msg(1, 9, 7), db.clone());
    wait_until("three failures", || a.handler.snapshot_reports.lock().unwrap().len() == 3).await;
    let mut reports = a.handler.snapshot_reports.lock().unwrap().clone();
    reports.sort_by_key(|r| r.0);
    assert_eq!(
        reports,
        [(2, SnapshotStatus::Failure), (2, SnapshotStatus::Failure), (9, SnapshotStatus::Failure)]
    );
    assert!(a.handler.unreachable_count(2) > 0);
    assert!(db.exists());
}

/// Sends hand-made chunks to `node` and returns the call's outcome.
async fn send_chunks(node: &Node, chunks: Vec<SnapshotChunk>) -> Result<u64, tonic::Status> {
    let mut client = raw_client(&node.url).await;
    let request = with_headers(tokio_stream::iter(chunks), CLUSTER, 1, 2);
    within("snapshot call", client.snapshot(request)).await.map(|r| r.into_inner().bytes)
}

fn data_chunk(data: &[u8]) -> SnapshotChunk {
    SnapshotChunk { data: Bytes::copy_from_slice(data), ..Default::default() }
}

fn first_chunk(index: u64) -> SnapshotChunk {
    SnapshotChunk { message: snap_msg(1, 2, index).encode_to_vec().into(), ..Default::default() }
}

#[tokio::test]
async fn corrupt_or_truncated_transfers_are_rejected_and_leave_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let b = Node::start(test_config(CLUSTER, 2, dir.path())).await;
    let data = content(3000);
    let crc = crc32c::crc32c(&data);
    let last = |crc32c| SnapshotChunk { crc32c, last: true, ..Default::default() };

    // Wrong checksum.
    let err = send_chunks(
        &b,
        vec![first_chunk(7), data_chunk(&data[..1000]), data_chunk(&data[1000..]), last(crc ^ 1)],
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), tonic::Code::DataLoss, "{err:?}");
    // A chunk lost on the way (same checksum, missing data).
    let err = send_chunks(&b, vec![first_chunk(7), data_chunk(&data[1000..]), last(crc)])
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::DataLoss, "{err:?}");
    // Ends without its last chunk.
    let err = send_chunks(&b, vec![first_chunk(7), data_chunk(&data)]).await.unwrap_err();
    assert!(err.message().contains("truncated"), "{err:?}");
    // No message, a message that is not a MsgSnap, an empty call.
    let err = send_chunks(&b, vec![data_chunk(&data), last(crc)]).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    let not_snap = SnapshotChunk {
        message: msg(oxetcd_raft::MessageType::MsgApp, 1, 2, 1).encode_to_vec().into(),
        ..Default::default()
    };
    let err = send_chunks(&b, vec![not_snap, last(0)]).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    let err = send_chunks(&b, vec![]).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");

    assert!(b.handler.snapshots.lock().unwrap().is_empty());
    assert_eq!(files_in(&b.snapshot_dir), Vec::<String>::new());
    assert_eq!(b.transport.stats().snapshots_rejected, 6);

    // The same transfer done right is accepted.
    let bytes = send_chunks(&b, vec![first_chunk(7), data_chunk(&data), last(crc)]).await.unwrap();
    assert_eq!(bytes, data.len() as u64);
    assert_eq!(files_in(&b.snapshot_dir), ["0000000000000007.snap.db"]);
}

#[tokio::test]
async fn oversized_snapshots_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(CLUSTER, 2, dir.path());
    config.max_snapshot_bytes = 100;
    let b = Node::start(config).await;
    let data = content(101);
    let last = SnapshotChunk { crc32c: crc32c::crc32c(&data), last: true, ..Default::default() };
    let err = send_chunks(&b, vec![first_chunk(1), data_chunk(&data), last]).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err:?}");
    assert_eq!(files_in(&b.snapshot_dir), Vec::<String>::new());
}
