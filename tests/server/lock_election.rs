//! The Lock and Election services against a member in process: the scenarios of
//! `oxetcd_tests::lock_election_scenario` (which pass against etcd 3.4.23 too, in the
//! compatibility suite), and the caller's token carried into the calls the services
//! make for it.

use std::time::Duration;

use oxetcd_api::v3electionpb::{CampaignRequest, LeaderRequest, ResignRequest};
use oxetcd_api::v3lockpb::{LockRequest, UnlockRequest};
use oxetcd_client::auth::{Permission, PermissionType};
use oxetcd_client::{Client, ClientOptions};
use oxetcd_tests::lock_election_scenario::{self as scenario, Stubs, bounded};
use oxetcd_tests::member::TestMember;
use tonic::metadata::AsciiMetadataValue;
use tonic::{Code, Request};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_excludes_releases_and_refuses_a_lease_that_is_gone() {
    let member = TestMember::start(&[]).await;
    scenario::lock_semantics(&member.endpoint).await;
    member.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn election_campaigns_proclaims_observes_and_resigns() {
    let member = TestMember::start(&[]).await;
    scenario::election_semantics(&member.endpoint).await;
    member.stop().await;
}

fn with_token<T>(message: T, token: Option<&str>) -> Request<T> {
    let mut request = Request::new(message);
    if let Some(token) = token {
        let token = AsciiMetadataValue::try_from(token).unwrap();
        request.metadata_mut().insert("token", token);
    }
    request
}

/// With auth enabled, the services act with the caller's permissions: its token goes
/// with the calls they make for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callers_token_carries_its_permissions() {
    let member = TestMember::start(&[]).await;
    let admin = Client::connect([&member.endpoint], ClientOptions::default()).await.unwrap();
    let auth = admin.auth();
    auth.user_add("root", "root-pw", false).await.unwrap();
    auth.user_grant_role("root", "root").await.unwrap();
    auth.user_add("alice", "alice-pw", false).await.unwrap();
    auth.role_add("locker").await.unwrap();
    let allowed = Permission::new(PermissionType::ReadWrite, "allowed").with_prefix();
    auth.role_grant_permission("locker", allowed).await.unwrap();
    auth.user_grant_role("alice", "locker").await.unwrap();
    auth.auth_enable().await.unwrap();
    let options = ClientOptions::default().with_user("alice", "alice-pw");
    let alice = Client::connect([&member.endpoint], options).await.unwrap();
    let token = alice.auth_token().expect("alice's token");
    let lease = alice.lease_grant(30, 0).await.unwrap().id;

    let mut stubs = Stubs::connect(&member.endpoint).await;
    let lock =
        |name: &str, token| with_token(LockRequest { name: name.to_string().into(), lease }, token);
    let held = bounded(stubs.lock.lock(lock("allowed", Some(&token)))).await.expect("alice's lock");
    assert_eq!(held.into_inner().key, format!("allowed/{lease:x}").into_bytes());
    let refused = bounded(stubs.lock.lock(lock("elsewhere", Some(&token)))).await.unwrap_err();
    assert_eq!(
        (refused.code(), refused.message()),
        (Code::Unknown, "etcdserver: permission denied")
    );
    let refused = bounded(stubs.lock.lock(lock("allowed", None))).await.unwrap_err();
    assert_eq!(
        (refused.code(), refused.message()),
        (Code::Unknown, "etcdserver: user name is empty")
    );

    let campaign = CampaignRequest { name: "allowed-e".into(), lease, value: "a".into() };
    bounded(stubs.election.campaign(with_token(campaign, Some(&token)))).await.expect("campaign");
    let leader = LeaderRequest { name: "allowed-e".into() };
    let seen = bounded(stubs.election.leader(with_token(leader.clone(), Some(&token)))).await;
    assert_eq!(seen.expect("leader").into_inner().kv.expect("a leader").value, "a".as_bytes());
    // Observe without a token: its first read is refused, which ends the stream
    // without a leader and without an error, as etcd's does.
    let mut observed =
        bounded(stubs.election.observe(with_token(leader, None))).await.expect("observe");
    assert_eq!(bounded(observed.get_mut().message()).await.expect("no error"), None);
    member.stop().await;
}

/// A waiter whose lease expires while it waits is told so when its turn comes, where
/// etcd 3.4 answers success with an ownership key that no longer exists (see
/// docs/compatibility.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_whose_lease_expired_is_told_its_session_expired() {
    let member = TestMember::start(&[]).await;
    let mut stubs = Stubs::connect(&member.endpoint).await;
    let holder = stubs.grant(30).await;
    let lock = |lease| LockRequest { name: "expiring".into(), lease };
    let held = bounded(stubs.lock.lock(lock(holder))).await.expect("lock").into_inner();
    let campaign = |lease, value: &str| CampaignRequest {
        name: "expiring-e".into(),
        lease,
        value: value.to_string().into(),
    };
    let leader = bounded(stubs.election.campaign(campaign(holder, "h"))).await.expect("campaign");
    let leader = leader.into_inner().leader;

    // The shortest lease the member grants (its minimum TTL, about two seconds).
    let waiter = stubs.grant(1).await;
    let waiting_lock = tokio::spawn({
        let mut lock_stub = stubs.lock.clone();
        async move { lock_stub.lock(lock(waiter)).await }
    });
    let waiting_campaign = tokio::spawn({
        let mut election = stubs.election.clone();
        async move { election.campaign(campaign(waiter, "w")).await }
    });
    let keys = [format!("expiring/{waiter:x}"), format!("expiring-e/{waiter:x}")];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    // Both queued first, then deleted with the lease when it expires.
    for gone in [false, true] {
        for key in &keys {
            while stubs.exists(key.as_bytes()).await == gone {
                assert!(tokio::time::Instant::now() < deadline, "{key}: exists is {gone}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    bounded(stubs.lock.unlock(UnlockRequest { key: held.key })).await.expect("unlock");
    let refused = bounded(waiting_lock).await.expect("joined").unwrap_err();
    assert_eq!((refused.code(), refused.message()), (Code::Unknown, "session expired"));
    bounded(stubs.election.resign(ResignRequest { leader })).await.expect("resign");
    let refused = bounded(waiting_campaign).await.expect("joined").unwrap_err();
    assert_eq!((refused.code(), refused.message()), (Code::Unknown, "session expired"));
    member.stop().await;
}

/// Observe streams end, with the observation and the watches under them, when their
/// callers go away: the runtime that runs the member and the callers comes back to
/// the tasks it had.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observers_that_go_away_leave_no_tasks_behind() {
    const OBSERVERS: usize = 20;
    let member = TestMember::start(&[]).await;
    let mut stubs = Stubs::connect(&member.endpoint).await;
    let lease = stubs.grant(30).await;
    let campaign = CampaignRequest { name: "observed".into(), lease, value: "v".into() };
    bounded(stubs.election.campaign(campaign)).await.expect("campaign");
    let observe = |mut election: oxetcd_api::v3electionpb::election_client::ElectionClient<_>| async move {
        let mut observed = election
            .observe(LeaderRequest { name: "observed".into() })
            .await
            .expect("observe")
            .into_inner();
        observed.message().await.expect("observe").expect("the leader");
        observed
    };
    // The first observation opens the member's in-process connection, which stays.
    drop(bounded(observe(stubs.election.clone())).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let tasks = || tokio::runtime::Handle::current().metrics().num_alive_tasks();
    let before = tasks();

    let mut observers = Vec::new();
    for _ in 0..OBSERVERS {
        observers.push(bounded(observe(stubs.election.clone())).await);
    }
    // Each observation runs in tasks of its own (so the count below can tell).
    assert!(tasks() >= before + OBSERVERS, "{} tasks, {before} before", tasks());
    drop(observers);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tasks() > before + 2 {
        assert!(tokio::time::Instant::now() < deadline, "{} tasks, {before} before", tasks());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    member.stop().await;
}
