//! Multi-member clusters in one process: replication, forwarding, failover, catch-up.

use std::time::Duration;

use oxetcd_client::{Client, ClientOptions};
use oxetcd_tests::member::TestCluster;

/// A client of the one member at `endpoint`, retries off: each call is one request that
/// this member answers (a follower forwarding a write, a restarted member catching up).
async fn client(endpoint: &str) -> Client {
    let options = ClientOptions::default().with_max_retries(0);
    Client::connect([endpoint], options).await.expect("client connects")
}

async fn put(endpoint: &str, key: &str, value: &str) -> i64 {
    let resp = client(endpoint).await.put(key, value, None).await.unwrap();
    resp.header.unwrap().revision
}

async fn get(endpoint: &str, key: &str) -> Option<String> {
    let resp = client(endpoint).await.get(key, None).await.unwrap();
    resp.kvs.first().map(|kv| String::from_utf8_lossy(&kv.value).into_owned())
}

async fn hash_kv(endpoint: &str, revision: i64) -> u32 {
    client(endpoint).await.maintenance().hash_kv(revision).await.unwrap().hash
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_replicate_forward_and_fail_over() {
    let mut cluster = TestCluster::start(3).await;
    let leader = cluster.leader().await;

    // Every member takes writes (followers forward them) and serves linearizable reads.
    let mut last = 0;
    for i in 0..3 {
        last = put(&cluster.endpoint(i), &format!("from/{i}"), &format!("v{i}")).await;
    }
    for i in 0..3 {
        for j in 0..3 {
            assert_eq!(
                get(&cluster.endpoint(i), &format!("from/{j}")).await,
                Some(format!("v{j}"))
            );
        }
    }
    let list = client(&cluster.endpoint(0)).await.cluster().member_list().await.unwrap().members;
    let mut names: Vec<String> = list.iter().map(|m| m.name.clone()).collect();
    names.sort();
    assert_eq!(names, cluster.names);

    // The leader goes away: the other two elect a new one and keep taking writes.
    cluster.stop_member(leader).await;
    let new_leader = cluster.leader().await;
    assert_ne!(new_leader, leader);
    let survivor = (0..3).find(|&i| i != leader).unwrap();
    for n in 0..20 {
        last = put(&cluster.endpoint(survivor), &format!("after/{n:02}"), "x").await;
    }

    // The old leader comes back and catches up from the log.
    cluster.start_member(leader).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while get(&cluster.endpoint(leader), "after/19").await.is_none() {
        assert!(std::time::Instant::now() < deadline, "the restarted member did not catch up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let hashes: Vec<u32> = futures_hashes(&cluster, last).await;
    assert!(
        hashes.windows(2).all(|w| w[0] == w[1]),
        "members disagree on the key space: {hashes:?}"
    );
    cluster.stop_all().await;
}

async fn futures_hashes(cluster: &TestCluster, revision: i64) -> Vec<u32> {
    let mut hashes = Vec::new();
    for i in 0..3 {
        hashes.push(hash_kv(&cluster.endpoint(i), revision).await);
    }
    hashes
}

/// A follower that missed more than the leader keeps in its log gets the leader's
/// backend as a snapshot, installs it, and continues from there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_far_behind_catches_up_from_a_snapshot() {
    let mut cluster =
        TestCluster::start_with(3, &["--snapshot-count", "50", "--snapshot-catchup-entries", "5"])
            .await;
    let leader = cluster.leader().await;
    let follower = (0..3).find(|&i| i != leader).unwrap();
    cluster.stop_member(follower).await;

    // Far more entries than the leader keeps after its snapshots.
    let mut last = 0;
    for n in 0..300 {
        last = put(&cluster.endpoint(leader), &format!("behind/{n:03}"), &n.to_string()).await;
    }
    cluster.start_member(follower).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while get(&cluster.endpoint(follower), "behind/299").await.is_none() {
        assert!(std::time::Instant::now() < deadline, "the follower did not catch up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(get(&cluster.endpoint(follower), "behind/000").await.as_deref(), Some("0"));
    let hashes = futures_hashes(&cluster, last).await;
    assert!(
        hashes.windows(2).all(|w| w[0] == w[1]),
        "members disagree on the key space: {hashes:?}"
    );

    // It keeps up with new writes after the install.
    put(&cluster.endpoint(leader), "after/install", "yes").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while get(&cluster.endpoint(follower), "after/install").await.is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the follower stopped following after the install"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cluster.stop_all().await;
}

/// A member stopped while its peers and a client are connected can start again at once on
/// the same ports: stopping closes its listening sockets before it returns (once, the
/// restart of a removed member found its port still bound by the stopped one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_member_starts_again_at_once_on_its_ports() {
    let mut cluster = TestCluster::start(3).await;
    cluster.leader().await;
    for round in 0..3 {
        let connected = client(&cluster.endpoint(1)).await;
        connected.put("k", format!("{round}"), None).await.unwrap();
        cluster.stop_member(1).await;
        cluster.start_member(1).await;
        drop(connected);
        assert_eq!(
            get(&cluster.endpoint(1), "k").await.as_deref(),
            Some(format!("{round}").as_str())
        );
    }
    cluster.stop_all().await;
}
