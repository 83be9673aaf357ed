//! Joining a running cluster (`--initial-cluster-state existing`) and removed members,
//! in process: the `Peer.Members` call a joining member asks, etcd's refusals of a
//! member the cluster did not add, and the whole add → join → catch up → remove → stop →
//! refused again path.

use std::path::Path;
use std::time::Duration;

use clap::Parser;
use oxetcd::config::{Config, Flags};
use oxetcd::embed::Member;
use oxetcd_api::etcdserverpb::Member as MemberInfo;
use oxetcd_api::oxetcdpb::MembersRequest;
use oxetcd_api::oxetcdpb::peer_client::PeerClient;
use oxetcd_client::{Client, ClientOptions};
use oxetcd_tests::member::{TestCluster, TestMember, free_port, raft_snapshot_files};

/// How long a member may take to join, catch up, or stop.
const WAIT: Duration = Duration::from_secs(30);

async fn client(endpoint: &str) -> Client {
    let options = ClientOptions::default().with_max_retries(0);
    Client::connect([endpoint], options).await.expect("client connects")
}

/// The running members as member 0 has applied them, with the cluster id.
fn member_list(cluster: &TestCluster) -> (u64, Vec<MemberInfo>) {
    let server = &cluster.members[0].as_ref().expect("member 0 runs").server;
    (server.header(0).cluster_id, server.members())
}

/// `name=url` for each member, as `--initial-cluster` lists them.
fn listed(members: &[(String, String)]) -> String {
    members.iter().map(|(name, url)| format!("{name}={url}")).collect::<Vec<_>>().join(",")
}

/// The configuration of a member named `name` at `peer_url` (listening there) that
/// joins the cluster `initial` lists.
fn joining_config(dir: &Path, name: &str, peer_url: &str, initial: &str, extra: &[&str]) -> Config {
    let scheme = peer_url.split("://").next().unwrap_or("http");
    let client_url = format!("{scheme}://127.0.0.1:{}", free_port());
    let data_dir = dir.join(name).display().to_string();
    let args = [
        "oxetcd",
        "--name",
        name,
        "--data-dir",
        &data_dir,
        "--listen-client-urls",
        &client_url,
        "--advertise-client-urls",
        &client_url,
        "--listen-peer-urls",
        peer_url,
        "--initial-advertise-peer-urls",
        peer_url,
        "--initial-cluster",
        initial,
        "--initial-cluster-state",
        "existing",
    ];
    let args = args.iter().chain(extra).map(|s| s.to_string());
    Flags::try_parse_from(args).expect("flags parse").into_config().expect("flags are valid")
}

/// The running members' names and peer URLs, in id order.
fn running(cluster: &TestCluster) -> Vec<(String, String)> {
    let (_, members) = member_list(cluster);
    members.iter().map(|m| (m.name.clone(), m.peer_ur_ls[0].clone())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_answers_the_applied_membership_over_the_peer_port() {
    let cluster = TestCluster::start(3).await;
    // Each member is ready once its own attributes are applied; another member may
    // apply them a moment later, so wait until member 0 lists every client URL.
    let deadline = tokio::time::Instant::now() + WAIT;
    let (cluster_id, listed) = loop {
        let (cluster_id, listed) = member_list(&cluster);
        if listed.iter().all(|m| !m.client_ur_ls.is_empty()) {
            break (cluster_id, listed);
        }
        assert!(tokio::time::Instant::now() < deadline, "attributes published: {listed:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(listed.len(), 3);
    for member in &listed {
        let url = member.peer_ur_ls[0].clone();
        let mut peer = PeerClient::connect(url).await.expect("peer port answers");
        let answer = loop {
            let answer = peer.members(MembersRequest {}).await.unwrap().into_inner();
            if answer.members == listed || tokio::time::Instant::now() >= deadline {
                break answer;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(answer.cluster_id, cluster_id);
        assert_eq!(answer.members, listed, "every member tells the same membership");
        assert!(answer.members.iter().all(|m| !m.is_learner));
    }
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_the_cluster_did_not_add_is_refused_with_etcd_s_errors() {
    let cluster = TestCluster::start(3).await;
    let (cluster_id, _) = member_list(&cluster);
    let mut members = running(&cluster);
    let dir = tempfile::tempdir().unwrap();
    let new_url = format!("http://127.0.0.1:{}", free_port());

    // Listed beside the three running members, but never added: four against three.
    members.push(("m3".into(), new_url.clone()));
    let config = joining_config(dir.path(), "m3", &new_url, &listed(&members), &[]);
    let err = Member::start(config).await.err().expect("the join is refused").to_string();
    let cluster_text =
        format!("error validating peerURLs {{ClusterID:{cluster_id:x} Members:[&{{ID:");
    assert!(err.starts_with(&cluster_text), "{err}");
    assert!(err.ends_with("RemovedMemberIDs:[]}: member count is unequal"), "{err}");

    // In place of a running member: the count matches, that member's URLs do not.
    let (_, by_id) = member_list(&cluster);
    let replaced = &by_id[2];
    members.truncate(2);
    members.push(("m3".into(), new_url.clone()));
    let config = joining_config(dir.path(), "m3", &new_url, &listed(&members), &[]);
    let err = Member::start(config).await.err().expect("the join is refused").to_string();
    let expected = format!(
        ": PeerURLs: no match found for existing member ({:x}, [{}]), last resolver error (<nil>)",
        replaced.id, replaced.peer_ur_ls[0]
    );
    assert!(err.starts_with(&cluster_text) && err.ends_with(&expected), "{err}");

    // Nothing was written: a corrected command line can join later.
    assert!(!dir.path().join("m3").join("member").join("wal").exists());
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_peers_are_asked_with_the_peer_tls_flags() {
    let cluster = TestCluster::start_secure(3, &["--auto-tls", "--peer-auto-tls"]).await;
    let (cluster_id, _) = member_list(&cluster);
    let mut members = running(&cluster);
    assert!(members[0].1.starts_with("https://"));
    let dir = tempfile::tempdir().unwrap();
    let new_url = format!("https://127.0.0.1:{}", free_port());
    members.push(("m3".into(), new_url.clone()));
    let flags = ["--auto-tls", "--peer-auto-tls"];
    let config = joining_config(dir.path(), "m3", &new_url, &listed(&members), &flags);
    // The membership came back over TLS: what is refused is the member count.
    let err = Member::start(config).await.err().expect("the join is refused").to_string();
    let cluster_text = format!("error validating peerURLs {{ClusterID:{cluster_id:x} ");
    assert!(err.starts_with(&cluster_text), "{err}");
    assert!(err.ends_with(": member count is unequal"), "{err}");
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joining_with_no_running_member_reachable_fails_in_bounded_time() {
    let dir = tempfile::tempdir().unwrap();
    let own = format!("http://127.0.0.1:{}", free_port());
    let nobody = format!("http://127.0.0.1:{}", free_port());
    let initial = format!("m0={nobody},m1={own}");
    let started = std::time::Instant::now();
    let config = joining_config(dir.path(), "m1", &own, &initial, &[]);
    let err = Member::start(config).await.err().expect("nobody answers").to_string();
    assert_eq!(
        err,
        "cannot fetch cluster info from peer urls: could not retrieve cluster information from the given URLs"
    );
    let took = started.elapsed();
    let bound = oxetcd_etcdserver::bootstrap::JOIN_FETCH_TIMEOUT + Duration::from_secs(5);
    assert!(took < bound, "took {took:?}");
    assert!(!dir.path().join("m1").join("member").join("wal").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_with_data_restarts_as_always_whatever_the_flag_says() {
    let member = TestMember::start(&[]).await;
    client(&member.endpoint).await.put("k", "v", None).await.unwrap();
    let id = member.member.server.member_id();
    let dir = member.stop().await;
    // The restart lists nobody else to ask: with a WAL, nobody is asked.
    let member = TestMember::start_in(dir, &["--initial-cluster-state", "existing"]).await;
    assert_eq!(member.member.server.member_id(), id);
    tokio::time::timeout(WAIT, member.member.server.wait_ready()).await.expect("ready");
    let resp = client(&member.endpoint).await.get("k", None).await.unwrap();
    assert_eq!(resp.kvs[0].value.as_ref(), b"v");
    member.stop().await;
}

/// Runs a membership change until the cluster takes it: right after a start (or a
/// restart) `--strict-reconfig-check` refuses changes with `unhealthy cluster` until
/// the member has been connected to the others for 5 s, as etcd's does.
async fn reconfigure<T>(mut change: impl AsyncFnMut() -> Result<T, oxetcd_client::Error>) -> T {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        match change().await {
            Ok(done) => return done,
            Err(e) if e.etcd_kind() == Some(oxetcd_client::EtcdErrorKind::Unhealthy) => {
                assert!(std::time::Instant::now() < deadline, "the cluster stayed unhealthy");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("membership change refused: {e}"),
        }
    }
}

/// Waits until `endpoint` serves `key` locally (a serializable read).
async fn wait_for_key(endpoint: &str, key: &str) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let got = client(endpoint)
            .await
            .get(key, Some(oxetcd_client::GetOptions::default().with_serializable()))
            .await;
        if got.is_ok_and(|r| !r.kvs.is_empty()) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{endpoint} never served {key}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The full path: a member added with MemberAdd joins with `existing`, catches up (from
/// the leader's log, or from a snapshot when `flags` make the log short), serves, and is
/// then removed: it stops with etcd's words, and its data dir, restarted, is refused and
/// stops again.
async fn add_join_catch_up_remove(flags: &[&str]) {
    let cluster = TestCluster::start_with(3, flags).await;
    let endpoint = cluster.endpoint(0);
    for i in 0..100 {
        client(&endpoint).await.put(format!("before/{i:03}"), "v", None).await.unwrap();
    }

    let dir = tempfile::tempdir().unwrap();
    let new_url = format!("http://127.0.0.1:{}", free_port());
    let admin = client(&endpoint).await;
    let added =
        reconfigure(async || admin.cluster().member_add(vec![new_url.clone()], false).await).await;
    let new_id = added.member.unwrap().id;
    // MemberAdd answers once the leader applied it; member 0 may lag a little.
    let deadline = std::time::Instant::now() + WAIT;
    while member_list(&cluster).1.iter().all(|m| m.id != new_id) {
        assert!(std::time::Instant::now() < deadline, "member 0 never applied the addition");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut members = running(&cluster);
    members.retain(|(name, _)| !name.is_empty());
    members.push(("m3".into(), new_url.clone()));
    let config = joining_config(dir.path(), "m3", &new_url, &listed(&members), flags);
    let joined = Member::start(config.clone()).await.expect("the added member joins");
    assert_eq!(joined.server.member_id(), new_id);
    tokio::time::timeout(WAIT, joined.server.wait_ready()).await.expect("it becomes ready");
    let joined_endpoint = format!("http://{}", joined.client_addrs[0]);
    wait_for_key(&joined_endpoint, "before/099").await;
    client(&endpoint).await.put("after", "v", None).await.unwrap();
    wait_for_key(&joined_endpoint, "after").await;
    let (_, listed_now) = member_list(&cluster);
    let me = listed_now.iter().find(|m| m.id == new_id).expect("listed");
    assert_eq!(me.name, "m3");
    let revision =
        client(&endpoint).await.get("after", None).await.unwrap().header.unwrap().revision;
    let mut hashes = Vec::new();
    for e in [cluster.endpoint(0), cluster.endpoint(1), cluster.endpoint(2), joined_endpoint] {
        hashes.push(client(&e).await.maintenance().hash_kv(revision).await.unwrap().hash);
    }
    assert!(hashes.windows(2).all(|w| w[0] == w[1]), "{hashes:?}");

    // Removed: it applies its removal (or is refused) and stops, as etcd's does.
    reconfigure(async || admin.cluster().member_remove(new_id).await).await;
    tokio::time::timeout(WAIT, joined.server.wait_removed()).await.expect("it stops");
    assert!(joined.server.is_stopped() && joined.server.fatal().is_none());
    joined.close().await;

    // Its data dir never rejoins.
    let again = Member::start(config).await.expect("the data dir opens");
    tokio::time::timeout(WAIT, again.server.wait_removed()).await.expect("it stops again");
    assert!(again.server.is_stopped());
    again.close().await;
    assert!(member_list(&cluster).1.iter().all(|m| m.id != new_id));
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_added_member_catches_up_from_the_log_and_once_removed_cannot_come_back() {
    add_join_catch_up_remove(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_added_member_catches_up_from_a_snapshot_and_once_removed_cannot_come_back() {
    add_join_catch_up_remove(&["--snapshot-count", "20", "--snapshot-catchup-entries", "5"]).await;
}

/// A member removed while it was down learns it from its peers when it comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_removed_while_down_is_refused_by_its_peers_and_stops() {
    let mut cluster = TestCluster::start(3).await;
    let leader = cluster.leader().await;
    let gone = (leader + 1) % 3;
    let gone_id = cluster.members[gone].as_ref().unwrap().server.member_id();
    cluster.stop_member(gone).await;
    let survivor = (gone + 1) % 3;
    let admin = client(&cluster.endpoint(survivor)).await;
    reconfigure(async || admin.cluster().member_remove(gone_id).await).await;

    cluster.start_member(gone).await;
    let member = cluster.members[gone].as_ref().unwrap();
    tokio::time::timeout(WAIT, member.server.wait_removed()).await.expect("it stops");
    assert!(member.server.is_stopped() && member.server.fatal().is_none());
    cluster.stop_all().await;
}

/// A learner end to end: added, joined, caught up; it serves serializable reads and its
/// status, refuses everything else with etcd's error, and once promoted votes and serves
/// like any member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_serves_serializable_reads_only_until_promoted() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let cluster = TestCluster::start(3).await;
        let endpoint = cluster.endpoint(0);
        let admin = client(&endpoint).await;
        admin.put("before", "v", None).await.unwrap();

        let dir = tempfile::tempdir().unwrap();
        let url = format!("http://127.0.0.1:{}", free_port());
        let added = admin.cluster().member_add(vec![url.clone()], true).await.expect("learner");
        let learner_id = added.member.unwrap().id;
        let mut members = running(&cluster);
        members.retain(|(name, _)| !name.is_empty());
        members.push(("learner".into(), url.clone()));
        let config = joining_config(dir.path(), "learner", &url, &listed(&members), &[]);
        let learner = Member::start(config).await.expect("the learner joins");
        tokio::time::timeout(WAIT, learner.server.wait_ready()).await.expect("ready");
        let learner_endpoint = format!("http://{}", learner.client_addrs[0]);
        wait_for_key(&learner_endpoint, "before").await;

        // What a learner refuses, with etcd's code and message.
        let mut kv =
            oxetcd_api::etcdserverpb::kv_client::KvClient::connect(learner_endpoint.clone())
                .await
                .unwrap();
        let linearizable =
            oxetcd_api::etcdserverpb::RangeRequest { key: "before".into(), ..Default::default() };
        let put = oxetcd_api::etcdserverpb::PutRequest {
            key: "k".into(),
            value: "v".into(),
            ..Default::default()
        };
        for refused in [kv.range(linearizable.clone()).await.err(), kv.put(put).await.err()] {
            let refused = refused.expect("refused on a learner");
            assert_eq!(
                (refused.code(), refused.message()),
                (tonic::Code::Unavailable, "etcdserver: rpc not supported for learner")
            );
        }
        let status = client(&learner_endpoint).await.maintenance().status().await.unwrap();
        assert!(status.is_learner);

        // Promoted once in sync (the leader decides; asked of member 0 it may forward).
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            match admin.cluster().member_promote(learner_id).await {
                Ok(_) => break,
                Err(e)
                    if matches!(
                        e.etcd_kind(),
                        Some(
                            oxetcd_client::EtcdErrorKind::LearnerNotReady
                                | oxetcd_client::EtcdErrorKind::Unhealthy
                        )
                    ) =>
                {
                    assert!(std::time::Instant::now() < deadline, "never in sync: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("promotion refused: {e}"),
            }
        }
        let deadline = std::time::Instant::now() + WAIT;
        while learner.server.is_learner() {
            assert!(std::time::Instant::now() < deadline, "the promotion never applied there");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let got = kv.range(linearizable).await.expect("a voter serves linearizable reads");
        assert_eq!(got.into_inner().kvs.len(), 1);
        assert!(member_list(&cluster).1.iter().all(|m| !m.is_learner));
        learner.close().await;
        cluster.stop_all().await;
    })
    .await
    .expect("the scenario ends in time");
}

/// A cluster grows from one member to five and shrinks to three, one change at a time,
/// while a client writes: every acknowledged write is on every member left, at the
/// revision it was acknowledged with, and their HashKV agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_grows_to_five_and_shrinks_to_three_while_a_client_writes() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    tokio::time::timeout(Duration::from_secs(240), async {
        let cluster = TestCluster::start(1).await;
        let seed = cluster.endpoint(0);
        let stop = Arc::new(AtomicBool::new(false));
        let acknowledged: Arc<Mutex<Vec<(String, i64)>>> = Arc::default();
        let writer = {
            let (stop, acknowledged, seed) = (stop.clone(), acknowledged.clone(), seed.clone());
            tokio::spawn(async move {
                let options = ClientOptions::default()
                    .with_max_retries(0)
                    .with_request_timeout(Duration::from_secs(2));
                let writes = Client::connect([seed.as_str()], options).await.unwrap();
                for i in 0u64.. {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let key = format!("w/{i:06}");
                    // A put that fails may still apply; only acknowledged ones are checked.
                    if let Ok(put) = writes.put(key.clone(), "v", None).await {
                        let revision = put.header.expect("a header").revision;
                        acknowledged.lock().unwrap().push((key, revision));
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        };
        let admin = client(&seed).await;
        let dir = tempfile::tempdir().unwrap();
        let mut joined: Vec<Member> = Vec::new();
        for n in 1..=4 {
            let url = format!("http://127.0.0.1:{}", free_port());
            reconfigure(async || admin.cluster().member_add(vec![url.clone()], false).await).await;
            let mut members: Vec<(String, String)> = member_list(&cluster)
                .1
                .iter()
                .filter(|m| !m.name.is_empty())
                .map(|m| (m.name.clone(), m.peer_ur_ls[0].clone()))
                .collect();
            let name = format!("j{n}");
            members.push((name.clone(), url.clone()));
            let config = joining_config(dir.path(), &name, &url, &listed(&members), &[]);
            let member = Member::start(config).await.expect("joins");
            tokio::time::timeout(WAIT, member.server.wait_ready()).await.expect("ready");
            joined.push(member);
        }
        assert_eq!(member_list(&cluster).1.len(), 5);
        for _ in 0..2 {
            let leaving = joined.remove(0);
            let id = leaving.server.member_id();
            reconfigure(async || admin.cluster().member_remove(id).await).await;
            tokio::time::timeout(WAIT, leaving.server.wait_removed()).await.expect("it stops");
            leaving.close().await;
        }
        stop.store(true, Ordering::SeqCst);
        writer.await.unwrap();
        let acknowledged = std::mem::take(&mut *acknowledged.lock().unwrap());
        assert!(acknowledged.len() > 50, "the client wrote throughout: {}", acknowledged.len());

        let endpoints: Vec<String> = std::iter::once(seed.clone())
            .chain(joined.iter().map(|m| format!("http://{}", m.client_addrs[0])))
            .collect();
        assert_eq!(member_list(&cluster).1.len(), 3);
        let last = admin.put("last", "v", None).await.unwrap().header.unwrap().revision;
        let mut hashes = Vec::new();
        for endpoint in &endpoints {
            // Linearizable: every member has applied up to `last` first.
            let stored = client(endpoint)
                .await
                .get("w/", Some(oxetcd_client::GetOptions::default().with_prefix()))
                .await
                .unwrap();
            let stored: std::collections::HashMap<_, _> = stored
                .kvs
                .iter()
                .map(|kv| (String::from_utf8_lossy(&kv.key).into_owned(), kv.mod_revision))
                .collect();
            for (key, revision) in &acknowledged {
                assert_eq!(stored.get(key), Some(revision), "{key} on {endpoint}");
            }
            hashes.push(client(endpoint).await.maintenance().hash_kv(last).await.unwrap().hash);
        }
        assert!(hashes.windows(2).all(|w| w[0] == w[1]), "{hashes:?}");
        for member in joined {
            member.close().await;
        }
        cluster.stop_all().await;
    })
    .await
    .expect("the scenario ends in time");
}

/// A member alone in its cluster keeps no catch-up entries in memory (nobody could use
/// them), so once it has applied a trim's worth of entries, a member added later catches
/// up from a snapshot, as it would from a cluster that has served more than the catch-up
/// count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_added_to_a_lone_member_catches_up_from_a_snapshot() {
    let cluster = TestCluster::start(1).await;
    let endpoint = cluster.endpoint(0);
    let writer = client(&endpoint).await;
    // More than the raft loop's LOG_TRIM_EVERY (1,000), far fewer than the 5,000
    // catch-up entries a member with peers keeps.
    for i in 0..1_100 {
        writer.put(format!("k/{i:04}"), "v", None).await.unwrap();
    }

    let dir = tempfile::tempdir().unwrap();
    let new_url = format!("http://127.0.0.1:{}", free_port());
    let added =
        reconfigure(async || writer.cluster().member_add(vec![new_url.clone()], false).await).await;
    let mut members = running(&cluster);
    members.retain(|(name, _)| !name.is_empty());
    members.push(("m1".into(), new_url.clone()));
    let config = joining_config(dir.path(), "m1", &new_url, &listed(&members), &[]);
    let joined = Member::start(config).await.expect("the added member joins");
    assert_eq!(joined.server.member_id(), added.member.unwrap().id);
    let joined_endpoint = format!("http://{}", joined.client_addrs[0]);
    wait_for_key(&joined_endpoint, "k/1099").await;
    let snaps = raft_snapshot_files(&dir.path().join("m1"));
    assert_eq!(snaps, 1, "the leader's log no longer held the first entries: a snapshot was sent");
    joined.close().await;
    cluster.stop_all().await;
}
