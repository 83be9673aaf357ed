//! Runtime membership changes and leadership transfer on an in-process cluster: etcd's
//! answers (code and message) for each refusal, membership unchanged after it, and the
//! same member list on every member after each change.

use std::time::Duration;

use oxetcd_api::etcdserverpb::cluster_client::ClusterClient;
use oxetcd_api::etcdserverpb::maintenance_client::MaintenanceClient;
use oxetcd_api::etcdserverpb::{
    Member, MemberAddRequest, MemberListRequest, MemberPromoteRequest, MemberRemoveRequest,
    MemberUpdateRequest, MoveLeaderRequest, PutRequest,
};
use oxetcd_tests::member::TestCluster;
use tonic::Code;
use tonic::transport::Channel;

/// Each scenario ends within this, or fails.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(90);

async fn cluster_client(endpoint: String) -> ClusterClient<Channel> {
    ClusterClient::connect(endpoint).await.expect("connect")
}

fn add(urls: &[&str], is_learner: bool) -> MemberAddRequest {
    MemberAddRequest { peer_ur_ls: urls.iter().map(|u| u.to_string()).collect(), is_learner }
}

/// The members as member `i` lists them, sorted by id.
async fn members(cluster: &TestCluster, i: usize) -> Vec<Member> {
    let mut client = cluster_client(cluster.endpoint(i)).await;
    let mut members = client
        .member_list(MemberListRequest { linearizable: false })
        .await
        .expect("member list")
        .into_inner()
        .members;
    members.sort_by_key(|m| m.id);
    members
}

/// Every running member lists the same members; answers them.
async fn agreed_members(cluster: &TestCluster) -> Vec<Member> {
    let running: Vec<usize> =
        (0..cluster.members.len()).filter(|&i| cluster.members[i].is_some()).collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut lists = Vec::new();
        for &i in &running {
            lists.push(members(cluster, i).await);
        }
        if lists.windows(2).all(|w| w[0] == w[1]) {
            return lists.remove(0);
        }
        assert!(tokio::time::Instant::now() < deadline, "members disagree: {lists:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn assert_refused<T: std::fmt::Debug>(
    result: Result<tonic::Response<T>, tonic::Status>,
    code: Code,
    message: &str,
) {
    let status = result.expect_err("refused");
    assert_eq!((status.code(), status.message()), (code, message));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_changes_get_etcds_answers_and_refusals_change_nothing() {
    tokio::time::timeout(SCENARIO_TIMEOUT, async {
        let cluster = TestCluster::start_with(3, &["--strict-reconfig-check=false"]).await;
        let before = agreed_members(&cluster).await;
        let mut client = cluster_client(cluster.endpoint(0)).await;

        let added =
            client.member_add(add(&["http://127.0.0.1:1"], true)).await.expect("add a learner");
        let added = added.into_inner();
        let learner = added.member.expect("the new member");
        assert!(learner.is_learner && learner.name.is_empty());
        assert_eq!(added.members.len(), 4);
        let with_learner = agreed_members(&cluster).await;
        assert_eq!(with_learner.len(), 4);

        // Each refusal, then the members as they were.
        assert_refused(
            client.member_add(add(&["http://127.0.0.1:2"], true)).await,
            Code::FailedPrecondition,
            "etcdserver: too many learner members in cluster",
        );
        let taken: Vec<&str> = before[1].peer_ur_ls.iter().map(String::as_str).collect();
        assert_refused(
            client.member_add(add(&taken, false)).await,
            Code::FailedPrecondition,
            "etcdserver: Peer URLs already exists",
        );
        for bad in [&["127.0.0.1:9"][..], &["http://127.0.0.1"], &["http://127.0.0.1:9/p"], &[]] {
            assert_refused(
                client.member_add(add(bad, false)).await,
                Code::InvalidArgument,
                "etcdserver: given member URLs are invalid",
            );
        }
        // A learner that never started has none of the log: not in sync. Asked of a
        // follower, the request goes to the leader, which alone knows.
        for i in 0..3 {
            let mut client = cluster_client(cluster.endpoint(i)).await;
            assert_refused(
                client.member_promote(MemberPromoteRequest { id: learner.id }).await,
                Code::FailedPrecondition,
                "etcdserver: can only promote a learner member which is in sync with leader",
            );
        }
        assert_refused(
            client.member_promote(MemberPromoteRequest { id: before[0].id }).await,
            Code::FailedPrecondition,
            "etcdserver: can only promote a learner member",
        );
        assert_refused(
            client
                .member_update(MemberUpdateRequest {
                    id: before[0].id,
                    peer_ur_ls: before[1].peer_ur_ls.clone(),
                })
                .await,
            Code::FailedPrecondition,
            "etcdserver: Peer URLs already exists",
        );
        assert_refused(
            client.member_remove(MemberRemoveRequest { id: 0x1234 }).await,
            Code::NotFound,
            "etcdserver: member not found",
        );
        assert_eq!(agreed_members(&cluster).await, with_learner, "refusals change nothing");

        // An update changes the peer URLs only.
        let moved = vec!["http://127.0.0.1:3".to_string()];
        client
            .member_update(MemberUpdateRequest { id: learner.id, peer_ur_ls: moved.clone() })
            .await
            .expect("update");
        let updated = agreed_members(&cluster).await;
        let found = updated.iter().find(|m| m.id == learner.id).expect("still a member");
        assert_eq!((&found.peer_ur_ls, found.is_learner), (&moved, true));

        // Removed, the id never comes back.
        client.member_remove(MemberRemoveRequest { id: learner.id }).await.expect("remove");
        assert_eq!(agreed_members(&cluster).await, before);
        assert_refused(
            client.member_update(MemberUpdateRequest { id: learner.id, peer_ur_ls: moved }).await,
            Code::NotFound,
            "etcdserver: member not found",
        );
        cluster.stop_all().await;
    })
    .await
    .expect("the scenario ends in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn move_leader_hands_leadership_to_a_voter() {
    tokio::time::timeout(SCENARIO_TIMEOUT, async {
        let cluster = TestCluster::start(3).await;
        let leader = cluster.leader().await;
        let follower = (leader + 1) % 3;
        let target = cluster.members[follower].as_ref().unwrap().server.member_id();

        let mut at_follower = MaintenanceClient::connect(cluster.endpoint(follower)).await.unwrap();
        assert_refused(
            at_follower.move_leader(MoveLeaderRequest { target_id: target }).await,
            Code::FailedPrecondition,
            "etcdserver: not leader",
        );
        let mut at_leader = MaintenanceClient::connect(cluster.endpoint(leader)).await.unwrap();
        assert_refused(
            at_leader.move_leader(MoveLeaderRequest { target_id: 0x1234 }).await,
            Code::FailedPrecondition,
            "etcdserver: bad leader transferee",
        );
        at_leader.move_leader(MoveLeaderRequest { target_id: target }).await.expect("moved");
        assert_eq!(cluster.leader().await, follower, "answered once the transferee leads");
        cluster.stop_all().await;
    })
    .await
    .expect("the scenario ends in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_leader_hands_over_first_and_stops() {
    tokio::time::timeout(SCENARIO_TIMEOUT, async {
        let mut cluster = TestCluster::start(3).await;
        let leader = cluster.leader().await;
        let leader_id = cluster.members[leader].as_ref().unwrap().server.member_id();
        let mut client = cluster_client(cluster.endpoint(leader)).await;
        // `--strict-reconfig-check` counts a peer as connected after 5 s of connection.
        let left = loop {
            match client.member_remove(MemberRemoveRequest { id: leader_id }).await {
                Err(e) if e.message() == "etcdserver: unhealthy cluster" => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                answer => break answer.expect("the leader removes itself").into_inner().members,
            }
        };
        assert_eq!(left.len(), 2);
        assert!(left.iter().all(|m| m.id != leader_id));

        let removed = cluster.members[leader].as_ref().unwrap().server.clone();
        tokio::time::timeout(Duration::from_secs(10), removed.wait_removed())
            .await
            .expect("the removed member stops");
        assert!(removed.is_stopped() && removed.fatal().is_none(), "a clean stop, no failure");
        // Closing waits for the backend file, which this clone would hold open.
        drop(removed);
        cluster.stop_member(leader).await;

        // The two left have a leader and take writes.
        let new_leader = cluster.leader().await;
        assert_ne!(new_leader, leader);
        let mut kv =
            oxetcd_api::etcdserverpb::kv_client::KvClient::connect(cluster.endpoint(new_leader))
                .await
                .unwrap();
        kv.put(PutRequest { key: "k".into(), value: "v".into(), ..Default::default() })
            .await
            .expect("the cluster takes writes");
        assert_eq!(agreed_members(&cluster).await.len(), 2);
        cluster.stop_all().await;
    })
    .await
    .expect("the scenario ends in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_reconfig_check_refuses_a_removal_that_breaks_quorum() {
    tokio::time::timeout(SCENARIO_TIMEOUT, async {
        let mut cluster = TestCluster::start(3).await;
        let leader = cluster.leader().await;
        let down = (leader + 1) % 3;
        let other = (leader + 2) % 3;
        let other_id = cluster.members[other].as_ref().unwrap().server.member_id();
        cluster.stop_member(down).await;
        let before = members(&cluster, leader).await;
        // With one voter down, removing another leaves the leader alone with a member it
        // cannot reach: etcd refuses, and so does oxetcd.
        let mut client = cluster_client(cluster.endpoint(leader)).await;
        assert_refused(
            client.member_remove(MemberRemoveRequest { id: other_id }).await,
            Code::Unavailable,
            "etcdserver: unhealthy cluster",
        );
        assert_eq!(members(&cluster, leader).await, before);
        cluster.stop_all().await;
    })
    .await
    .expect("the scenario ends in time");
}
