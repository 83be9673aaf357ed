//! The corruption checks against a member whose backend was altered while it was down
//! (etcd's `TestEtcdCorruptHash`, on redb): the initial check refuses to start it, and
//! the leader's periodic check raises the CORRUPT alarm for it through the log.

use std::ops::ControlFlow;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use oxetcd_api::etcdserverpb::alarm_request::AlarmAction;
use oxetcd_api::etcdserverpb::{AlarmRequest, AlarmType};
use oxetcd_api::mvccpb::KeyValue;
use oxetcd_api::oxetcdpb::InternalRaftRequest;
use oxetcd_client::{Client, ClientOptions};
use oxetcd_etcdserver::corrupt::{self, Suspicion};
use oxetcd_mvcc::backend::{Backend, Batch, KEY_TABLE, Row, Snapshot};
use oxetcd_mvcc::{RedbBackend, Revision};
use oxetcd_tests::member::TestCluster;
use prost::Message as _;

/// The scenario ends within this, or fails.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(120);
/// The leader's periodic check runs this often here.
const CHECK_EVERY: &str = "--experimental-corrupt-check-time=300ms";

/// Changes the value of the newest put row of the `key` table (as etcd's test changes
/// every row with bbolt): the index still matches, only the hash differs.
fn alter_backend(db: &Path) {
    let backend = RedbBackend::open(db).expect("open the stopped member's backend");
    let snapshot = backend.snapshot().expect("read it");
    let mut newest = None;
    snapshot
        .scan(KEY_TABLE, &[], |key, value| {
            if let Some((rev, false)) = Revision::from_key(key) {
                newest = Some((rev, value.to_vec()));
            }
            ControlFlow::Continue(())
        })
        .expect("scan the key table");
    let (rev, value) = newest.expect("a put row");
    let mut kv = KeyValue::decode(value.as_slice()).expect("a KeyValue row");
    kv.value = Bytes::from_static(b"flipped");
    let row = Row { rev, tombstone: false, value: kv.encode_to_vec().into() };
    let batch = Batch { rows: vec![row], ..Default::default() };
    backend.commit(&batch, true).expect("write the altered row");
}

/// The CORRUPT alarms committed to the raft log in `data_dir`'s WAL (member stopped),
/// by the member they name.
fn corrupt_alarms_in_log(data_dir: &Path) -> Vec<u64> {
    let wal_dir = data_dir.join("member").join("wal");
    let (_wal, recovered) = oxetcd_wal::Wal::open(
        &wal_dir,
        &oxetcd_wal::WalSnapshot::default(),
        oxetcd_wal::WalOptions::default(),
    )
    .expect("open the WAL");
    recovered
        .entries
        .iter()
        .filter(|e| !e.is_conf_change())
        .filter_map(|e| InternalRaftRequest::decode(e.data.as_ref()).ok()?.alarm)
        .filter(|a: &AlarmRequest| {
            a.action == AlarmAction::Activate as i32 && a.alarm == AlarmType::Corrupt as i32
        })
        .map(|a| a.member_id)
        .collect()
}

/// Waits until every running member applied the same revision.
async fn converged(cluster: &TestCluster) -> i64 {
    loop {
        let revisions: Vec<i64> = cluster
            .members
            .iter()
            .flatten()
            .map(|m| m.server.store().expect("running").current_revision())
            .collect();
        if revisions.windows(2).all(|w| w[0] == w[1]) {
            return revisions[0];
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_altered_member_is_refused_at_start_and_alarmed_by_the_leader() {
    tokio::time::timeout(SCENARIO_TIMEOUT, scenario()).await.expect("the scenario ends in time");
}

async fn scenario() {
    let mut cluster = TestCluster::start_with(3, &[CHECK_EVERY]).await;
    let leader = cluster.leader().await;
    let options = ClientOptions::default().with_max_retries(0);
    let client = Client::connect([cluster.endpoint(leader)], options).await.expect("connect");
    for n in 0..10 {
        client.put(format!("foo{n:05}"), format!("v{n:05}"), None).await.expect("put");
    }
    let revision = converged(&cluster).await;
    // Consistent members: the checks find nothing.
    let leader_server = &cluster.members[leader].as_ref().expect("leader runs").server;
    let report = corrupt::check_hash_kv(leader_server).await.expect("a check pass");
    assert_eq!((report.checked, report.alarmed), (2, None), "{report:?}");

    let victim = (leader + 1) % 3;
    let victim_id = cluster.members[victim].as_ref().expect("runs").server.member_id();
    cluster.stop_member(victim).await;
    alter_backend(&cluster.data_dir(victim).join("member").join("snap").join("db"));

    // (a) The initial check refuses to start it, in etcd's words.
    let err = cluster
        .try_start_member_with(victim, &["--experimental-initial-corrupt-check"])
        .await
        .expect_err("the altered member must not start");
    assert_eq!(err.to_string(), format!("{victim_id:x} found data inconsistency with peers"));

    // Without the check it starts.
    // At once: a member refused at start has closed its backend file.
    cluster.try_start_member_with(victim, &[]).await.expect("the altered member starts");
    assert_eq!(converged(&cluster).await, revision, "no write since");
    // etcd's rule counts any peer that differs: a healthy member restarting beside the
    // altered one refuses to start as well.
    let healthy = 3 - leader - victim;
    cluster.stop_member(healthy).await;
    let err = cluster
        .try_start_member_with(healthy, &["--experimental-initial-corrupt-check"])
        .await
        .expect_err("a peer differs");
    assert!(err.to_string().ends_with("found data inconsistency with peers"), "{err}");
    cluster.try_start_member_with(healthy, &[]).await.expect("the healthy member starts");
    converged(&cluster).await;

    // (b) The leader's periodic check (every 300 ms) raises CORRUPT for the victim; a
    // pass called here finds the same. Whoever leads, the checks get time to run and
    // their alarm to reach every member's log (an altered leader once had none: the
    // members were stopped before its first pass).
    let leader = cluster.leader().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    if leader != victim {
        let leader_server = &cluster.members[leader].as_ref().expect("leader runs").server;
        let report = corrupt::check_hash_kv(leader_server).await.expect("a check pass");
        assert_eq!(report.alarmed, Some(victim_id), "{report:?}");
        assert!(
            report
                .suspects
                .iter()
                .any(|s| s.member == victim_id && s.why == Suspicion::HashMismatch),
            "{report:?}"
        );
    }
    // The alarm went through the log: every member's WAL has it (the alarm table and
    // the refusals under it are the apply side's).
    for i in 0..3 {
        cluster.stop_member(i).await;
    }
    for dir in (0..3).map(|i| cluster.data_dir(i)) {
        let alarms = corrupt_alarms_in_log(&dir);
        if leader == victim {
            // The altered member leads: it finds both others differ from it and names the
            // first; the alarm is raised either way.
            assert!(!alarms.is_empty(), "{}: {alarms:x?}", dir.display());
        } else {
            // At least one from the timer and the one from the pass called above.
            assert!(alarms.len() >= 2, "{}: {alarms:x?}", dir.display());
            assert!(alarms.iter().all(|&m| m == victim_id), "{alarms:x?}");
        }
    }
}
