//! A member whose storage fails stops: the request that met the failure is not
//! acknowledged, nothing is read from the member afterwards (linearizable or
//! serializable), and it reports the failure it stopped on. A restart recovers from the
//! WAL. Failpoints (the `fail` crate) inject the failures; they are global to this test
//! process, so each test holds a `FailScenario`, which runs them one at a time. (So the
//! test of a close racing the member's background work lives here too.)

use std::time::{Duration, Instant};

use fail::FailScenario;
use oxetcd_api::etcdserverpb::kv_client::KvClient;
use oxetcd_api::etcdserverpb::lease_client::LeaseClient;
use oxetcd_api::etcdserverpb::request_op::Request as Op;
use oxetcd_api::etcdserverpb::{
    CompactionRequest, LeaseGrantRequest, PutRequest, PutResponse, RangeRequest, RequestOp,
    TxnRequest,
};
use oxetcd_tests::member::TestMember;
use tonic::transport::Channel;
use tonic::{Code, Status};

/// How long a member may take to notice a failure nobody's request met.
const NOTICE_TIMEOUT: Duration = Duration::from_secs(5);

async fn client(member: &TestMember) -> KvClient<Channel> {
    KvClient::connect(member.endpoint.clone()).await.expect("connect")
}

async fn put(kv: &mut KvClient<Channel>, key: &str, value: &str) -> Result<PutResponse, Status> {
    let put = PutRequest {
        key: key.as_bytes().to_vec().into(),
        value: value.as_bytes().to_vec().into(),
        ..Default::default()
    };
    kv.put(put).await.map(tonic::Response::into_inner)
}

async fn get(kv: &mut KvClient<Channel>, key: &str) -> Option<String> {
    let range = RangeRequest { key: key.as_bytes().to_vec().into(), ..Default::default() };
    let kvs = kv.range(range).await.expect("range").into_inner().kvs;
    kvs.first().map(|kv| String::from_utf8_lossy(&kv.value).into_owned())
}

fn assert_stopped<T: std::fmt::Debug>(result: Result<T, Status>, what: &str) {
    let err = result.expect_err(what);
    assert_eq!(
        (err.code(), err.message()),
        (Code::Unavailable, "etcdserver: server stopped"),
        "{what}"
    );
}

/// Every way a client reads (and writes) gets UNAVAILABLE: a stopped member serves no
/// data, not even what it applied before the failure.
async fn assert_serves_nothing(member: &TestMember) {
    let mut kv = client(member).await;
    let linearizable = RangeRequest { key: "a".into(), ..Default::default() };
    assert_stopped(kv.range(linearizable).await, "a linearizable read");
    let serializable = RangeRequest { key: "a".into(), serializable: true, ..Default::default() };
    assert_stopped(kv.range(serializable).await, "a serializable read");
    let read = RequestOp {
        request: Some(Op::RequestRange(RangeRequest { key: "a".into(), ..Default::default() })),
    };
    let txn = TxnRequest { success: vec![read], ..Default::default() };
    assert_stopped(kv.txn(txn).await, "a read-only txn");
    assert_stopped(put(&mut kv, "after", "stop").await, "a write");
    assert!(member.member.server.is_stopped());
}

async fn wait_stopped(member: &TestMember) {
    let deadline = Instant::now() + NOTICE_TIMEOUT;
    while !member.member.server.is_stopped() {
        assert!(Instant::now() < deadline, "the member did not stop within {NOTICE_TIMEOUT:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A member holding `a` = `1` (at the returned revision), and a client of it.
async fn member_with_a() -> (TestMember, KvClient<Channel>, i64) {
    let member = TestMember::start(&[]).await;
    let mut kv = client(&member).await;
    let written = put(&mut kv, "a", "1").await.expect("a write before the failure");
    (member, kv, written.header.expect("a header").revision)
}

/// The member restarted on its data dir, with `failpoint` off, and a client of it.
async fn restart_without(failpoint: &str, member: TestMember) -> (TestMember, KvClient<Channel>) {
    fail::remove(failpoint);
    let member = TestMember::start_in(member.stop().await, &[]).await;
    let kv = client(&member).await;
    (member, kv)
}

fn stopped_during(member: &TestMember) -> &'static str {
    member.member.server.fatal().expect("the member reports why it stopped").during
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_backend_write_fails_is_not_acknowledged() {
    let scenario = FailScenario::setup();
    let (member, mut kv, _) = member_with_a().await;

    fail::cfg("apply::store-write", "return").unwrap();
    assert_stopped(put(&mut kv, "b", "2").await, "the write that met the failure");
    assert_eq!(stopped_during(&member), "applying an entry to the backend");
    assert_serves_nothing(&member).await;

    // The write was committed to the log though not applied: a restart applies it.
    let (member, mut kv) = restart_without("apply::store-write", member).await;
    assert_eq!(get(&mut kv, "a").await.as_deref(), Some("1"));
    assert_eq!(get(&mut kv, "b").await.as_deref(), Some("2"));
    member.stop().await;
    scenario.teardown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_backend_commit_fails_is_not_acknowledged() {
    let scenario = FailScenario::setup();
    let (member, mut kv, revision) = member_with_a().await;

    fail::cfg("mvcc::backend-commit", "return").unwrap();
    // A compaction commits before it answers: it is the request that meets the failure.
    let compact = CompactionRequest { revision, physical: false };
    assert_stopped(kv.compact(compact).await, "the compaction that met the failure");
    wait_stopped(&member).await;
    assert_serves_nothing(&member).await;
    fail::remove("mvcc::backend-commit");
    member.stop().await;
    scenario.teardown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_background_commit_stops_the_member() {
    let scenario = FailScenario::setup();
    let (member, mut kv, _) = member_with_a().await;
    member.member.server.store().unwrap().force_commit().expect("a commit before the failure");

    fail::cfg("mvcc::backend-commit", "return").unwrap();
    // Acknowledged once applied, before its batch commits (as etcd does): it is in the
    // WAL already.
    put(&mut kv, "b", "2").await.expect("a write whose batch then fails to commit");
    // Nobody's request meets the committer's failure: the member notices it anyway.
    wait_stopped(&member).await;
    assert_eq!(stopped_during(&member), "committing to the backend");
    assert_serves_nothing(&member).await;

    let (member, mut kv) = restart_without("mvcc::backend-commit", member).await;
    assert_eq!(get(&mut kv, "b").await.as_deref(), Some("2"), "an acknowledged write is lost");
    member.stop().await;
    scenario.teardown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_wal_save_fails_is_not_acknowledged() {
    let scenario = FailScenario::setup();
    let (member, mut kv, _) = member_with_a().await;
    let applied = member.member.server.raft_status().applied;

    fail::cfg("raft::wal-save", "return").unwrap();
    assert_stopped(put(&mut kv, "b", "2").await, "the write that met the failure");
    assert_eq!(stopped_during(&member), "saving raft entries to the WAL");
    assert_serves_nothing(&member).await;
    assert_eq!(member.member.server.raft_status().applied, applied, "applied moved on");

    // The write never reached the log.
    let (member, mut kv) = restart_without("raft::wal-save", member).await;
    assert_eq!(get(&mut kv, "a").await.as_deref(), Some("1"));
    assert_eq!(get(&mut kv, "b").await, None);
    member.stop().await;
    scenario.teardown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_final_commit_is_reported() {
    let scenario = FailScenario::setup();
    let (member, _, _) = member_with_a().await;
    fail::cfg("apply::final-commit", "return").unwrap();
    let fatal = member.member.close().await;
    assert_eq!(fatal.expect("a fatal failure").during, "the final backend commit");
    scenario.teardown();
}

/// A member closed while a background task holds it (the leader's expiry check, held
/// between finding an expired lease and proposing its revoke) returns from `close` only
/// once the task let go: its backend file is closed and the data dir opens again at once
/// in this process. Before, `close` returned while the task still held the file's lock,
/// and the restart failed with redb's "Database already open" (a flaky CI run of
/// `a_keep_alive_clears_the_checkpoint_so_the_lease_starts_full_again`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_member_has_closed_its_backend_file() {
    /// Longer than a close takes without waiting for the task.
    const HELD: Duration = Duration::from_millis(1500);
    let scenario = FailScenario::setup();
    let member = TestMember::start(&[]).await;
    let (found_tx, found) = std::sync::mpsc::channel();
    fail::cfg_callback("lease::expired-found", move || {
        let _ = found_tx.send(());
        std::thread::sleep(HELD);
    })
    .unwrap();
    let mut leases = LeaseClient::connect(member.endpoint.clone()).await.expect("connect");
    // Raised to the minimum TTL (1.5 s with the default election timeout).
    leases.lease_grant(LeaseGrantRequest { ttl: 1, id: 0 }).await.expect("grant");
    let found = tokio::task::spawn_blocking(move || found.recv_timeout(NOTICE_TIMEOUT));
    found.await.unwrap().expect("the leader finds the lease expired");
    fail::remove("lease::expired-found");

    let member = TestMember::start_in(member.stop().await, &[]).await;
    member.stop().await;
    scenario.teardown();
}
