//! Storage maintenance on a running cluster: the backend quota and the NOSPACE alarm,
//! the CORRUPT alarm, Snapshot streams, Defragment.

use std::time::Duration;

use oxetcd_client::{AlarmAction, AlarmType, Client, ClientOptions, GetOptions};
use oxetcd_tests::member::TestCluster;
use tonic::Code;

/// Each scenario ends within this, or fails.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(120);

async fn client(endpoint: &str) -> Client {
    let options = ClientOptions::default().with_max_retries(0);
    Client::connect([endpoint], options).await.expect("client connects")
}

fn code_and_message(error: &oxetcd_client::Error) -> (Option<Code>, String) {
    (error.code(), error.to_string())
}

const NO_SPACE: &str = "etcdserver: mvcc: database space exceeded";

/// Alarms as member `endpoint` lists them: (member id, alarm type).
async fn alarms(endpoint: &str) -> Vec<(u64, i32)> {
    let resp =
        client(endpoint).await.maintenance().alarm(AlarmAction::Get, 0, AlarmType::None).await;
    resp.expect("alarm list").alarms.iter().map(|a| (a.member_id, a.alarm)).collect()
}

/// Fills a 3-member cluster with a 1 MiB quota until a put is refused: the NOSPACE
/// alarm is raised through the log on every member, every write that grows the store
/// is refused on every member, reads and deletes still work, and after compact, defrag
/// and disarm, writes resume. No acknowledged write is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_quota_raises_nospace_on_every_member_and_compact_defrag_disarm_recover() {
    tokio::time::timeout(SCENARIO_TIMEOUT, async {
        let cluster = TestCluster::start_with(3, &["--quota-backend-bytes", "1048576"]).await;
        let leader = cluster.leader().await;
        let follower = (leader + 1) % 3;
        let writer = client(&cluster.endpoint(follower)).await;
        let value = "v".repeat(4096);
        let mut acknowledged = 0;
        let refusal = loop {
            match writer.put(format!("k{acknowledged:05}"), value.as_str(), None).await {
                Ok(_) => acknowledged += 1,
                Err(e) => break e,
            }
            assert!(acknowledged < 10_000, "the quota never refused a put");
        };
        assert_eq!(code_and_message(&refusal), (Some(Code::ResourceExhausted), NO_SPACE.into()));
        assert!(acknowledged > 10, "only {acknowledged} puts fit in 1 MiB");

        // The alarm, raised by the member that refused, is on every member.
        let raised_by = cluster.members[follower].as_ref().unwrap().server.member_id();
        for i in 0..3 {
            assert_eq!(
                alarms(&cluster.endpoint(i)).await,
                vec![(raised_by, AlarmType::Nospace as i32)]
            );
        }
        let status = client(&cluster.endpoint(leader)).await.maintenance().status().await.unwrap();
        assert_eq!(status.errors, vec![format!("memberID:{raised_by} alarm:NOSPACE ")]);

        // Capped on every member: a small put through the leader, a lease grant, a txn
        // that puts. Reads and deletes go on.
        let other = client(&cluster.endpoint(leader)).await;
        let err = other.put("small", "x", None).await.expect_err("capped");
        assert_eq!(code_and_message(&err), (Some(Code::ResourceExhausted), NO_SPACE.into()));
        let err = other.lease_grant(60, 0).await.expect_err("capped");
        assert_eq!(code_and_message(&err), (Some(Code::ResourceExhausted), NO_SPACE.into()));
        let all = other.get("k", Some(GetOptions::new().with_prefix())).await.unwrap();
        assert_eq!(all.kvs.len(), acknowledged, "every acknowledged write is there");
        let deleted = other
            .delete("k", Some(oxetcd_client::DeleteOptions::new().with_prefix()))
            .await
            .expect("deletes work under NOSPACE");
        assert_eq!(deleted.deleted as usize, acknowledged);

        // Compact, defragment every member, disarm: writes resume.
        let revision = deleted.header.unwrap().revision;
        other.compact(revision, true).await.expect("compaction works under NOSPACE");
        for i in 0..3 {
            client(&cluster.endpoint(i)).await.maintenance().defragment().await.expect("defrag");
        }
        // Every alarm listed now, as `etcdctl alarm disarm` does: the refused put and
        // grant through the leader may have raised the leader's own NOSPACE too.
        let listed = alarms(&cluster.endpoint(leader)).await;
        assert!(listed.contains(&(raised_by, AlarmType::Nospace as i32)), "{listed:?}");
        for (member, _) in listed {
            other
                .maintenance()
                .alarm(AlarmAction::Deactivate, member, AlarmType::Nospace)
                .await
                .expect("disarm");
        }
        for i in 0..3 {
            assert!(alarms(&cluster.endpoint(i)).await.is_empty());
        }
        writer.put("after", "disarm", None).await.expect("writes resume");
        cluster.stop_all().await;
    })
    .await
    .expect("scenario within its time");
}

/// A CORRUPT alarm refuses every write on every member, is kept across a restart, and
/// writes resume once it is disarmed; reads are served throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn corrupt_refuses_writes_until_disarmed_and_survives_a_restart() {
    tokio::time::timeout(SCENARIO_TIMEOUT, async {
        let mut cluster = TestCluster::start(3).await;
        let leader = cluster.leader().await;
        let c = client(&cluster.endpoint(leader)).await;
        c.put("k", "v", None).await.unwrap();
        let raised = c.maintenance().alarm(AlarmAction::Activate, 42, AlarmType::Corrupt).await;
        assert_eq!(raised.unwrap().alarms.len(), 1);

        cluster.stop_member(2).await;
        cluster.start_member(2).await;
        let restarted = client(&cluster.endpoint(2)).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while alarms(&cluster.endpoint(2)).await.is_empty() {
            assert!(tokio::time::Instant::now() < deadline, "restarted member lost the alarm");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for (i, c) in [(leader, &c), (2, &restarted)] {
            let err = c.put("k", "w", None).await.expect_err("refused under CORRUPT");
            assert_eq!(
                code_and_message(&err),
                (Some(Code::DataLoss), "etcdserver: corrupt cluster".into()),
                "member {i}"
            );
            let err = c.delete("k", None).await.expect_err("refused under CORRUPT");
            assert_eq!(err.code(), Some(Code::DataLoss));
            assert_eq!(c.get("k", None).await.unwrap().kvs[0].value, "v".as_bytes());
        }
        c.maintenance().alarm(AlarmAction::Deactivate, 42, AlarmType::Corrupt).await.unwrap();
        restarted.put("k", "after", None).await.expect("writes resume");
        cluster.stop_all().await;
    })
    .await
    .expect("scenario within its time");
}

/// A Snapshot stream carries the backend in chunks, each with the bytes still to come,
/// then the SHA-256 of all of them; the copy opens as a store holding every key written
/// before the call, while writes went on during the stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_snapshot_streams_a_consistent_backend_and_its_sha256() {
    tokio::time::timeout(SCENARIO_TIMEOUT, async {
        let cluster = TestCluster::start(1).await;
        let c = client(&cluster.endpoint(0)).await;
        for i in 0..500 {
            c.put(format!("k{i:04}"), "x".repeat(1000), None).await.unwrap();
        }
        let revision = c.get("k0000", None).await.unwrap().header.unwrap().revision;
        let mut stream = c.maintenance().snapshot().await.expect("snapshot");
        // Writes during the stream neither block nor show up in it.
        let writer = {
            let c = c.clone();
            tokio::spawn(async move {
                for i in 0..100 {
                    c.put(format!("later{i}"), "y", None).await.unwrap();
                }
            })
        };
        let mut data = Vec::new();
        let mut messages = Vec::new();
        while let Some(message) = stream.message().await.expect("stream") {
            messages.push((message.remaining_bytes, message.blob.len()));
            data.extend_from_slice(&message.blob);
        }
        writer.await.unwrap();
        let (sha, body) = {
            let (body, sha) = data.split_at(data.len() - 32);
            (sha.to_vec(), body.to_vec())
        };
        assert_eq!(messages.last().unwrap(), &(0, 32), "the last message is the checksum");
        let mut sent = 0;
        for (remaining, len) in &messages[..messages.len() - 1] {
            sent += len;
            assert_eq!(*remaining as usize, body.len() - sent);
        }
        assert_eq!(sha, ring_sha256(&body));

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        std::fs::write(&path, &body).unwrap();
        // etcd's format (bbolt), which oxetcd reads back by converting it.
        let format = oxetcd_mvcc::etcd_file::detect_format(&path).unwrap();
        assert_eq!(format, oxetcd_mvcc::etcd_file::BackendFormat::Bbolt);
        oxetcd_mvcc::etcd_file::convert_in_place(&path, None, |_, _| {}).unwrap();
        let store = oxetcd_mvcc::Store::open_path(
            &path,
            Default::default(),
            std::sync::Arc::new(oxetcd_mvcc::NoLeases),
        )
        .expect("the snapshot opens as a store");
        assert!(store.current_revision() >= revision);
        let range = oxetcd_api::etcdserverpb::RangeRequest {
            key: "k".into(),
            range_end: "l".into(),
            ..Default::default()
        };
        assert_eq!(store.range(&range).unwrap().count, 500);
        cluster.stop_all().await;
    })
    .await
    .expect("scenario within its time");
}

fn ring_sha256(data: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, data).as_ref().to_vec()
}

/// `--auto-compaction-mode periodic --auto-compaction-retention 1s`: the leader compacts
/// on its own, keeping about a second of history.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn periodic_auto_compaction_keeps_the_retention_window() {
    tokio::time::timeout(SCENARIO_TIMEOUT, async {
        let flags = ["--auto-compaction-mode", "periodic", "--auto-compaction-retention", "1s"];
        let cluster = TestCluster::start_with(3, &flags).await;
        let c = client(&cluster.endpoint(cluster.leader().await)).await;
        let first = c.put("k", "0", None).await.unwrap().header.unwrap().revision;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let mut i = 0;
        loop {
            i += 1;
            c.put("k", i.to_string(), None).await.unwrap();
            let old = c.get("k", Some(GetOptions::new().with_revision(first))).await;
            if let Err(e) = old {
                assert_eq!(e.code(), Some(Code::OutOfRange), "{e}");
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "no auto compaction in 30 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // What was written within the retention is still there.
        let recent = c.put("k", "recent", None).await.unwrap().header.unwrap().revision;
        let at = c.get("k", Some(GetOptions::new().with_revision(recent))).await.unwrap();
        assert_eq!(at.kvs[0].value, "recent".as_bytes());
        cluster.stop_all().await;
    })
    .await
    .expect("scenario within its time");
}
