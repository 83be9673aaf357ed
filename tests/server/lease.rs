//! Leases on oxetcd: grant, attach, time-to-live, revoke, expiry, keep-alive,
//! keep-alives through a follower and across a change of leader, and checkpoints of
//! remaining TTLs across a change of leader and a restart.

use std::time::{Duration, Instant};

use oxetcd_api::etcdserverpb::lease_client::LeaseClient;
use oxetcd_api::etcdserverpb::{LeaseKeepAliveRequest, LeaseKeepAliveResponse};
use oxetcd_client::{Client, ClientOptions, PutOptions};
use oxetcd_etcdserver::ServerConfig;
use oxetcd_tests::member::{TestCluster, TestMember, single_member_config};
use tonic::Code;
use tonic::transport::Channel;

/// A client of the one member at `endpoint`, retries off: each call is one request,
/// answered by this member with its own error (code and message) if any.
async fn client(endpoint: &str) -> Client {
    let options = ClientOptions::default().with_max_retries(0);
    Client::connect([endpoint], options).await.expect("client connects")
}

/// A raw Lease stub, for the keep-alive streams: the tests check every answer (TTL 0
/// for a lease that is gone, the stream ending when its member closes), which
/// oxetcd-client's keep-alive loop handles itself.
async fn lease_client(endpoint: &str) -> LeaseClient<Channel> {
    LeaseClient::connect(endpoint.to_string()).await.unwrap()
}

async fn grant(endpoint: &str, id: i64, ttl: i64) -> Result<(i64, i64), tonic::Status> {
    let resp = client(endpoint).await.lease_grant(ttl, id).await.map_err(|e| e.into_status())?;
    Ok((resp.id, resp.ttl))
}

async fn ttl(endpoint: &str, id: i64) -> (i64, Vec<String>) {
    let resp = client(endpoint).await.lease_time_to_live(id, true).await.unwrap();
    (resp.ttl, resp.keys.iter().map(|k| String::from_utf8_lossy(k).into_owned()).collect())
}

/// A keep-alive stream: requests go in through the sender, answers come out in order.
async fn keep_alive_stream(
    endpoint: &str,
) -> (tokio::sync::mpsc::Sender<LeaseKeepAliveRequest>, tonic::Streaming<LeaseKeepAliveResponse>) {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let answers = lease_client(endpoint)
        .await
        .lease_keep_alive(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    (tx, answers)
}

async fn put_with_lease(endpoint: &str, key: &str, lease: i64) -> Result<i64, tonic::Status> {
    let options = PutOptions::new().with_lease(lease);
    let resp = client(endpoint).await.put(key, "v", Some(options)).await;
    Ok(resp.map_err(|e| e.into_status())?.header.unwrap().revision)
}

async fn exists(endpoint: &str, key: &str) -> bool {
    client(endpoint).await.get(key, None).await.unwrap().count == 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grant_attach_time_to_live_and_revoke() {
    let member = TestMember::start(&[]).await;
    let ep = member.endpoint.clone();

    // A TTL below the minimum (1.5 election timeouts = 2 s here) is raised to it.
    let (id, granted) = grant(&ep, 0, 1).await.unwrap();
    assert!(id > 0);
    assert_eq!(granted, 2);
    let (client_id, _) = grant(&ep, 4242, 60).await.unwrap();
    assert_eq!(client_id, 4242);
    let err = grant(&ep, 4242, 60).await.unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::FailedPrecondition, "etcdserver: lease already exists")
    );
    let err = grant(&ep, 0, 9_000_000_001).await.unwrap_err();
    assert_eq!((err.code(), err.message()), (Code::OutOfRange, "etcdserver: too large lease TTL"));

    put_with_lease(&ep, "leased/a", 4242).await.unwrap();
    put_with_lease(&ep, "leased/b", 4242).await.unwrap();
    let (left, keys) = ttl(&ep, 4242).await;
    assert!(left > 55 && left <= 60, "{left}");
    assert_eq!(keys, vec!["leased/a", "leased/b"]);
    let leases = client(&ep).await.lease_leases().await.unwrap().leases;
    let mut ids: Vec<i64> = leases.iter().map(|l| l.id).collect();
    ids.sort_unstable();
    assert_eq!(ids, {
        let mut want = vec![id, 4242];
        want.sort_unstable();
        want
    });

    // Revoking deletes every attached key in one revision.
    let before = put_with_lease(&ep, "plain", 0).await.unwrap();
    let resp = client(&ep).await.lease_revoke(4242).await.unwrap();
    assert_eq!(resp.header.unwrap().revision, before + 1);
    assert!(
        !exists(&ep, "leased/a").await
            && !exists(&ep, "leased/b").await
            && exists(&ep, "plain").await
    );
    assert_eq!(ttl(&ep, 4242).await.0, -1, "a revoked lease reports TTL -1");
    let err = put_with_lease(&ep, "leased/c", 4242).await.unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::NotFound, "etcdserver: requested lease not found")
    );
    let err = client(&ep).await.lease_revoke(4242).await.unwrap_err().into_status();
    assert_eq!(err.message(), "etcdserver: requested lease not found");
    member.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_lease_expires_and_a_kept_one_does_not_and_both_survive_restart() {
    let member = TestMember::start(&[]).await;
    let ep = member.endpoint.clone();
    let (kept, _) = grant(&ep, 0, 3).await.unwrap();
    let (abandoned, _) = grant(&ep, 0, 3).await.unwrap();
    put_with_lease(&ep, "kept", kept).await.unwrap();
    put_with_lease(&ep, "abandoned", abandoned).await.unwrap();

    let (tx, mut answers) = keep_alive_stream(&ep).await;
    // Expiry comes within TTL plus an election timeout after the last keep-alive.
    let deadline = Instant::now() + Duration::from_secs(3 + 1 + 3);
    while exists(&ep, "abandoned").await {
        assert!(Instant::now() < deadline, "the abandoned lease did not expire");
        tx.send(LeaseKeepAliveRequest { id: kept }).await.unwrap();
        let answer = answers.message().await.unwrap().unwrap();
        assert_eq!((answer.id, answer.ttl), (kept, 3));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(exists(&ep, "kept").await, "a kept-alive lease expired");
    assert_eq!(ttl(&ep, abandoned).await.0, -1);
    // A keep-alive of a lease that is gone answers TTL 0, as etcd does.
    tx.send(LeaseKeepAliveRequest { id: abandoned }).await.unwrap();
    assert_eq!(answers.message().await.unwrap().unwrap().ttl, 0);
    drop(tx);

    // Leases are durable: after a restart the kept lease and its key are still there.
    let dir = member.stop().await;
    let member = TestMember::start_in(dir, &[]).await;
    let (left, keys) = ttl(&member.endpoint, kept).await;
    assert!(left > 0, "the lease did not survive the restart");
    assert_eq!(keys, vec!["kept"]);
    member.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alives_through_a_follower_survive_the_leader_going_away() {
    let mut cluster = TestCluster::start(3).await;
    let leader = cluster.leader().await;
    let follower = (0..3).find(|&i| i != leader).unwrap();
    let ep = cluster.endpoint(follower);
    let (id, _) = grant(&ep, 0, 4).await.unwrap();
    put_with_lease(&ep, "held", id).await.unwrap();

    // Keep the lease alive through the follower, reconnecting whenever a stream ends.
    // A raw stream, not oxetcd-client's keep-alive: it must stay on the follower (the
    // client's would fail over to another member) and check every answer's TTL.
    let keeper = tokio::spawn(async move {
        loop {
            let Ok(mut client) = LeaseClient::connect(ep.clone()).await else {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            let (tx, rx) = tokio::sync::mpsc::channel(4);
            let Ok(resp) =
                client.lease_keep_alive(tokio_stream::wrappers::ReceiverStream::new(rx)).await
            else {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            let mut answers = resp.into_inner();
            loop {
                if tx.send(LeaseKeepAliveRequest { id }).await.is_err() {
                    break;
                }
                match answers.message().await {
                    Ok(Some(answer)) => assert!(answer.ttl > 0, "the lease was lost"),
                    _ => break,
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.stop_member(leader).await;
    let new_leader = cluster.leader().await;
    assert_ne!(new_leader, leader);
    // Longer than the TTL: only the keep-alives (and the new leader's extension) hold it.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(!keeper.is_finished(), "the keep-alive task failed");
    assert!(
        exists(&cluster.endpoint(follower), "held").await,
        "a kept-alive lease expired across the failover"
    );
    keeper.abort();
    cluster.stop_all().await;
}

const CHECKPOINTS: &str = "--experimental-enable-lease-checkpoint";

/// A checkpoint interval of a second (etcd's is 5 minutes), so that 3.5 s into a 60 s
/// lease a checkpoint with at most 58 s left has been taken.
fn checkpoint_every_second(config: &mut ServerConfig) {
    config.lease_checkpoint_interval = Duration::from_secs(1);
}

/// Long enough for checkpoints at 1 s and 2 s after a grant, with slack for the leader's
/// check every 500 ms.
const CHECKPOINTED: Duration = Duration::from_millis(3500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_continues_a_lease_from_its_checkpoint() {
    let mut cluster =
        TestCluster::start_configured(3, &[CHECKPOINTS], checkpoint_every_second).await;
    let leader = cluster.leader().await;
    let (id, _) = grant(&cluster.endpoint(leader), 0, 60).await.unwrap();
    tokio::time::sleep(CHECKPOINTED).await;
    cluster.stop_member(leader).await;
    let new_leader = cluster.leader().await;
    let (left, _) = ttl(&cluster.endpoint(new_leader), id).await;
    // Without the checkpoint, the new leader would start the lease over: 60 s plus its
    // election timeout (1 s).
    assert!((50..=59).contains(&left), "the new leader gave the lease {left} s");
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_continues_a_lease_from_its_checkpoint_only_when_enabled() {
    for flags in [&[CHECKPOINTS][..], &[]] {
        let dir = tempfile::tempdir().unwrap();
        let mut config = single_member_config(dir.path(), flags);
        checkpoint_every_second(&mut config.server);
        let member = TestMember::start_configured(dir, config).await;
        let (id, _) = grant(&member.endpoint, 0, 60).await.unwrap();
        tokio::time::sleep(CHECKPOINTED).await;
        let member = TestMember::start_in(member.stop().await, flags).await;
        let (left, _) = ttl(&member.endpoint, id).await;
        if flags.is_empty() {
            assert!(left >= 60, "without checkpoints a restart starts over, got {left} s");
        } else {
            assert!((50..=59).contains(&left), "the restarted member gave the lease {left} s");
        }
        member.stop().await;
    }
}

/// A keep-alive clears the recorded remaining TTL through the log, so a lease its client
/// kept alive starts with its full TTL on the next leader. Checked across restarts of a
/// member that no longer checkpoints, so no later checkpoint hides a missing clear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keep_alive_clears_the_checkpoint_so_the_lease_starts_full_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = single_member_config(dir.path(), &[CHECKPOINTS]);
    checkpoint_every_second(&mut config.server);
    let member = TestMember::start_configured(dir, config).await;
    let (id, _) = grant(&member.endpoint, 0, 60).await.unwrap();
    tokio::time::sleep(CHECKPOINTED).await;

    let member = TestMember::start_in(member.stop().await, &[]).await;
    let (left, _) = ttl(&member.endpoint, id).await;
    assert!(left <= 59, "the recorded checkpoint was lost: {left} s");
    let (tx, mut answers) = keep_alive_stream(&member.endpoint).await;
    tx.send(LeaseKeepAliveRequest { id }).await.unwrap();
    assert_eq!(answers.message().await.unwrap().unwrap().ttl, 60);
    drop((tx, answers));

    let member = TestMember::start_in(member.stop().await, &[]).await;
    let (left, _) = ttl(&member.endpoint, id).await;
    assert!(left >= 60, "the kept-alive lease restarted with {left} s, not its full TTL");
    member.stop().await;
}

/// An open keep-alive stream never ends on its own; closing the member ends it, so the
/// member closes without waiting out the grace period and its data dir can be opened
/// again at once (before, the stream's connection kept the backend open).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_a_member_ends_its_keep_alive_streams() {
    let member = TestMember::start(&[]).await;
    let (id, _) = grant(&member.endpoint, 0, 60).await.unwrap();
    let (tx, mut answers) = keep_alive_stream(&member.endpoint).await;
    tx.send(LeaseKeepAliveRequest { id }).await.unwrap();
    assert!(answers.message().await.unwrap().is_some_and(|a| a.ttl > 0));
    let started = Instant::now();
    let dir = member.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "closing took {:?}: the stream held it open",
        started.elapsed()
    );
    assert!(answers.message().await.map_or(true, |a| a.is_none()), "the stream ended");
    let member = TestMember::start_in(dir, &[]).await;
    assert!(ttl(&member.endpoint, id).await.0 > 0, "the lease survived the restart");
    drop(tx);
    member.stop().await;
}
