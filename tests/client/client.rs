//! oxetcd-client against in-process clusters: failover when a member dies, watch
//! resume without loss or repetition, keep-alive across failover, compaction errors.

use std::time::Duration;

use oxetcd_client::{
    Client, ClientOptions, DeleteOptions, Error, EventType, GetOptions, PutOptions, WatchOptions,
};
use oxetcd_tests::member::{TestCluster, TestMember};

fn options() -> ClientOptions {
    ClientOptions::default()
        .with_dial_timeout(Duration::from_secs(2))
        .with_request_timeout(Duration::from_secs(20))
}

async fn connect(endpoints: Vec<String>) -> Client {
    Client::connect(endpoints, options()).await.expect("client connects")
}

/// The indices of the followers of a running cluster.
fn followers(cluster: &TestCluster, leader: usize) -> Vec<usize> {
    (0..cluster.members.len()).filter(|&i| i != leader && cluster.members[i].is_some()).collect()
}

/// Calls through a client with every endpoint while a member is down: every call
/// succeeds, and each put takes exactly one revision (a put is never applied twice).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_fail_over_when_an_endpoint_dies() {
    let mut cluster = TestCluster::start(3).await;
    let leader = cluster.leader().await;
    let follower = followers(&cluster, leader)[0];
    // The dying follower first, so the rotation meets it.
    let mut endpoints = vec![cluster.endpoint(follower)];
    endpoints.extend((0..3).filter(|&i| i != follower).map(|i| cluster.endpoint(i)));
    let client = connect(endpoints).await;

    let mut revisions = Vec::new();
    for n in 0..10 {
        revisions.push(
            client.put(format!("k{n}"), "before", None).await.unwrap().header.unwrap().revision,
        );
    }

    cluster.stop_member(follower).await;
    for n in 0..30 {
        let resp = client
            .put(format!("k{}", n % 10), format!("v{n}"), None)
            .await
            .expect("put fails over");
        revisions.push(resp.header.unwrap().revision);
        let got = client.get(format!("k{}", n % 10), None).await.expect("get fails over");
        assert_eq!(got.kvs[0].value, format!("v{n}").as_bytes());
    }
    let members = client.cluster().member_list().await.expect("member list fails over");
    assert_eq!(members.members.len(), 3);
    client.maintenance().status().await.expect("status fails over");
    let count =
        client.get("", Some(GetOptions::new().with_from_key().with_count_only())).await.unwrap();
    assert_eq!(count.count, 10);

    // One revision per put, none skipped: nothing was applied twice.
    assert!(revisions.windows(2).all(|w| w[1] == w[0] + 1), "revisions: {revisions:?}");
    cluster.stop_all().await;
}

#[derive(Debug, Clone, PartialEq)]
enum Change {
    Put(String, String),
    Delete(String),
}

/// A watcher on the member that dies resumes on another one: the events it delivers
/// are exactly the writes, in order, each once, with the right previous values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_resumes_on_another_member_without_loss_or_repetition() {
    let mut cluster = TestCluster::start(3).await;
    let leader = cluster.leader().await;
    let fs = followers(&cluster, leader);
    let (dying, other) = (fs[0], fs[1]);
    let writer = connect(vec![cluster.endpoint(leader), cluster.endpoint(other)]).await;
    let watch_client =
        connect(vec![cluster.endpoint(dying), cluster.endpoint(other), cluster.endpoint(leader)])
            .await;
    let mut watcher = watch_client
        .watch("w/", Some(WatchOptions::new().with_prefix().with_prev_kv()))
        .await
        .expect("watch created");

    let mut history: Vec<(i64, Change)> = Vec::new();
    for n in 0..300 {
        if n == 100 {
            cluster.stop_member(dying).await;
        }
        let key = format!("w/{}", n % 7);
        if n % 5 == 4 {
            let resp = writer.delete(key.clone(), None).await.unwrap();
            history.push((resp.header.unwrap().revision, Change::Delete(key)));
        } else {
            let value = format!("v{n}");
            let resp = writer.put(key.clone(), value.clone(), None).await.unwrap();
            history.push((resp.header.unwrap().revision, Change::Put(key, value)));
        }
    }
    // Deletes of absent keys change nothing: keep only the ones that deleted a key.
    let mut live = std::collections::HashMap::new();
    let mut expected = Vec::new();
    for (revision, change) in &history {
        match change {
            Change::Put(key, value) => {
                let prev = live.insert(key.clone(), value.clone());
                expected.push((*revision, change.clone(), prev));
            }
            Change::Delete(key) => {
                if let Some(prev) = live.remove(key) {
                    expected.push((*revision, change.clone(), Some(prev)));
                }
            }
        }
    }
    let last = expected.last().unwrap().0;

    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while seen.last().is_none_or(|(rev, _, _)| *rev < last) {
        let resp = tokio::time::timeout_at(deadline, watcher.message())
            .await
            .expect("watch delivers every event in time")
            .expect("watch keeps going")
            .expect("watch not canceled");
        for event in resp.events {
            let kv = event.kv.clone().unwrap();
            let key = String::from_utf8(kv.key.to_vec()).unwrap();
            let prev = event.prev_kv.as_ref().map(|p| String::from_utf8(p.value.to_vec()).unwrap());
            let change = match event.r#type() {
                EventType::Put => Change::Put(key, String::from_utf8(kv.value.to_vec()).unwrap()),
                EventType::Delete => Change::Delete(key),
            };
            seen.push((kv.mod_revision, change, prev));
        }
    }
    assert_eq!(seen.len(), expected.len(), "events lost or repeated");
    assert_eq!(seen, expected);
    cluster.stop_all().await;
}

/// A keep-alive loop keeps its lease alive when the leader dies (which ends every
/// keep-alive stream, direct or forwarded by a follower), and stops when dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_loop_survives_failover() {
    let mut cluster = TestCluster::start(3).await;
    let leader = cluster.leader().await;
    let mut endpoints = vec![cluster.endpoint(leader)];
    endpoints.extend(followers(&cluster, leader).into_iter().map(|i| cluster.endpoint(i)));
    let client = connect(endpoints).await;
    let lease = client.lease_grant(3, 0).await.expect("lease granted");
    let ttl = lease.ttl;
    client.put("leased", "x", Some(PutOptions::new().with_lease(lease.id))).await.unwrap();
    let keep_alive = client.lease_keep_alive(lease.id).await.expect("keep-alive starts");
    tokio::time::sleep(Duration::from_secs(ttl as u64)).await;

    cluster.stop_member(leader).await;
    cluster.leader().await;
    tokio::time::sleep(Duration::from_secs(ttl as u64 * 3)).await;
    assert!(keep_alive.is_alive(), "keep-alive ended after the leader died");
    let left = client.lease_time_to_live(lease.id, true).await.unwrap();
    assert!(left.ttl > 0, "lease expired: {left:?}");
    assert_eq!(client.get("leased", None).await.unwrap().kvs.len(), 1);

    // Dropping the handle stops the renewals: the lease then expires.
    drop(keep_alive);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(ttl as u64 * 4 + 10);
    while !client.get("leased", None).await.unwrap().kvs.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "lease outlived its dropped keep-alive");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    cluster.stop_all().await;
}

/// KV options, leases, compaction errors and the keep-alive's expiry report, on one member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_lease_and_watch_errors_on_one_member() {
    let member = TestMember::start(&[]).await;
    let client = connect(vec![member.endpoint.clone()]).await;

    for n in 0..5 {
        client.put(format!("p/{n}"), format!("{n}"), None).await.unwrap();
    }
    let resp = client
        .get("p/", Some(GetOptions::new().with_prefix().with_keys_only().with_limit(2)))
        .await
        .unwrap();
    assert_eq!((resp.kvs.len(), resp.more, resp.count), (2, true, 5));
    assert!(resp.kvs[0].value.is_empty());
    let prev = client.put("p/0", "new", Some(PutOptions::new().with_prev_kv())).await.unwrap();
    assert_eq!(prev.prev_kv.unwrap().value, "0".as_bytes());
    let deleted = client.delete("p/", Some(DeleteOptions::new().with_prefix())).await.unwrap();
    assert_eq!(deleted.deleted, 5);

    // A watch from a compacted revision fails, at creation and on the stream.
    let rev = client.put("c", "1", None).await.unwrap().header.unwrap().revision;
    client.put("c", "2", None).await.unwrap();
    client.compact(rev + 1, true).await.unwrap();
    let err = match client.watch("c", Some(WatchOptions::new().with_start_revision(rev))).await {
        Err(e) => e,
        Ok(mut watcher) => {
            watcher.message().await.expect_err("a compacted watch ends with an error")
        }
    };
    assert!(
        matches!(err, Error::WatchCompacted { compact_revision } if compact_revision == rev + 1),
        "{err}"
    );
    let err = client.get("c", Some(GetOptions::new().with_revision(rev))).await.unwrap_err();
    assert_eq!(err.etcd_kind(), Some(oxetcd_client::EtcdErrorKind::Compacted));

    // Unknown leases are told apart; a revoked lease ends its keep-alive loop.
    let err = client.lease_keep_alive_once(0x7777).await.unwrap_err();
    assert_eq!(err.etcd_kind(), Some(oxetcd_client::EtcdErrorKind::LeaseNotFound));
    let lease = client.lease_grant(5, 0).await.unwrap();
    let keep_alive = client.lease_keep_alive(lease.id).await.unwrap();
    client.lease_revoke(lease.id).await.unwrap();
    let reason = tokio::time::timeout(Duration::from_secs(20), keep_alive.ended()).await.unwrap();
    assert!(matches!(reason, Error::LeaseExpired { .. }), "{reason}");

    // Progress notifications on request, and cancel.
    let mut watcher = client.watch("quiet", None).await.unwrap();
    watcher.request_progress().await.unwrap();
    let progress = tokio::time::timeout(Duration::from_secs(10), watcher.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(progress.events.is_empty());
    watcher.cancel().await.unwrap();
    member.stop().await;
}
