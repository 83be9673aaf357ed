//! `--force-new-cluster`, etcd's disaster recovery: a member of a lost cluster restarts
//! from its data dir as a one-member cluster, with every key at its revision, refuses
//! the old members as removed, and stays one after a restart without the flag.

use std::time::Duration;

use oxetcd_client::{Client, ClientOptions, GetOptions};
use oxetcd_tests::member::TestCluster;

/// The scenario ends within this, or fails.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(120);

async fn client(endpoint: &str) -> Client {
    let options = ClientOptions::default().with_max_retries(0);
    Client::connect([endpoint], options).await.expect("client connects")
}

/// Key, value, create revision, mod revision and version of every key, as `endpoint`
/// reads them (linearizable unless `serializable`), and the store's revision.
async fn snapshot(
    endpoint: &str,
    serializable: bool,
) -> (Vec<(String, String, i64, i64, i64)>, i64) {
    let mut options = GetOptions::new().with_prefix();
    if serializable {
        options = options.with_serializable();
    }
    let resp = client(endpoint).await.get("k", Some(options)).await.expect("range");
    let kvs = resp
        .kvs
        .iter()
        .map(|kv| {
            (
                String::from_utf8_lossy(&kv.key).into_owned(),
                String::from_utf8_lossy(&kv.value).into_owned(),
                kv.create_revision,
                kv.mod_revision,
                kv.version,
            )
        })
        .collect();
    (kvs, resp.header.expect("header").revision)
}

/// Waits until member `i` has applied the cluster's revision `revision`.
async fn caught_up(cluster: &TestCluster, i: usize, revision: i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while snapshot(&cluster.endpoint(i), true).await.1 < revision {
        assert!(tokio::time::Instant::now() < deadline, "member {i} did not catch up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The running member `i` leads alone and lists only itself.
async fn leads_alone(cluster: &TestCluster, i: usize) {
    let member = cluster.members[i].as_ref().expect("running");
    tokio::time::timeout(Duration::from_secs(30), member.server.wait_ready())
        .await
        .expect("the member becomes ready");
    assert_eq!(cluster.leader().await, i);
    assert_eq!(member.server.raft_status().leader, member.server.member_id());
    let members = client(&cluster.endpoint(i)).await.cluster().member_list().await.unwrap().members;
    assert_eq!(members.len(), 1, "{members:?}");
    assert_eq!(members[0].id, member.server.member_id());
    assert_eq!(members[0].name, cluster.names[i]);
    assert!(!members[0].is_learner);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_restarts_alone_with_all_its_data_and_stays_alone() {
    tokio::time::timeout(SCENARIO_TIMEOUT, async {
        // Small snapshots: the survivor knows the others from its raft snapshot's
        // configuration, not only from the conf changes in its log.
        let mut cluster = TestCluster::start_with(3, &["--snapshot-count", "8"]).await;
        let leader = cluster.leader().await;
        let writer = client(&cluster.endpoint(leader)).await;
        for n in 0..20 {
            writer.put(format!("k/{n:02}"), format!("v{n}"), None).await.unwrap();
        }
        // Versions above 1 and a deleted key, so revisions are not just one per key.
        writer.put("k/00", "again", None).await.unwrap();
        writer.delete("k/01", None).await.unwrap();
        let (before, revision) = snapshot(&cluster.endpoint(leader), false).await;
        assert_eq!((before.len(), revision), (19, 23));

        // A follower survives the loss of the cluster: every member stops.
        let survivor = (leader + 1) % 3;
        caught_up(&cluster, survivor, revision).await;
        for i in 0..3 {
            cluster.stop_member(i).await;
        }

        cluster.start_member_with(survivor, &["--force-new-cluster"]).await;
        leads_alone(&cluster, survivor).await;
        let endpoint = cluster.endpoint(survivor);
        assert_eq!(snapshot(&endpoint, false).await, (before.clone(), revision));
        let put = client(&endpoint).await.put("k/new", "after", None).await.unwrap();
        assert_eq!(put.header.unwrap().revision, revision + 1);

        // An old member that comes back is refused as removed, and stops: the old
        // cluster never forms again beside the new one.
        let old = (survivor + 1) % 3;
        cluster.start_member(old).await;
        let member = cluster.members[old].as_ref().unwrap();
        tokio::time::timeout(Duration::from_secs(30), member.server.wait_removed())
            .await
            .expect("the old member stops");
        assert!(member.server.fatal().is_none());
        cluster.stop_member(old).await;

        // Restarted without the flag, it is still a cluster of one.
        cluster.stop_member(survivor).await;
        cluster.start_member(survivor).await;
        leads_alone(&cluster, survivor).await;
        let endpoint = cluster.endpoint(survivor);
        let (after, at) = snapshot(&endpoint, false).await;
        assert_eq!(at, revision + 1);
        assert_eq!(after.len(), before.len() + 1);
        assert!(before.iter().all(|kv| after.contains(kv)), "{after:?}");
        let put = client(&endpoint).await.put("k/new", "again", None).await.unwrap();
        assert_eq!(put.header.unwrap().revision, revision + 2);
        cluster.stop_all().await;
    })
    .await
    .expect("the scenario ends in time");
}
