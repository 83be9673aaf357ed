//! The Lock and Election services' behaviour, written once and run against any etcd v3
//! endpoint (the reference etcd 3.4.23 in the compatibility suite, oxetcd in the
//! default run), through raw stubs so every code and message is the server's own.
//! Each scenario works under its own key prefixes on a server with no other users.

use std::time::Duration;

use oxetcd_api::etcdserverpb::kv_client::KvClient;
use oxetcd_api::etcdserverpb::lease_client::LeaseClient;
use oxetcd_api::etcdserverpb::{
    LeaseGrantRequest, LeaseRevokeRequest, LeaseTimeToLiveRequest, RangeRequest, ResponseHeader,
};
use oxetcd_api::v3electionpb::election_client::ElectionClient;
use oxetcd_api::v3electionpb::{
    CampaignRequest, LeaderKey, LeaderRequest, LeaderResponse, ProclaimRequest, ResignRequest,
};
use oxetcd_api::v3lockpb::lock_client::LockClient;
use oxetcd_api::v3lockpb::{LockRequest, UnlockRequest};
use tonic::transport::Channel;
use tonic::{Code, Status};

/// Bound on a call that should answer at once.
const STEP: Duration = Duration::from_secs(20);
/// How long a blocked Lock or Campaign is watched to stay blocked.
const STAYS_BLOCKED: Duration = Duration::from_millis(500);

/// etcd's election errors, sent as UNKNOWN (not gRPC statuses in etcd's server).
pub const NOT_LEADER: &str = "election: not leader";
pub const NO_LEADER: &str = "election: no leader";
pub const MISSING_LEADER_KEY: &str = "\"leader\" field must be provided";
/// etcd's lease error, which its Lock and Election services send as UNKNOWN too.
pub const LEASE_NOT_FOUND: &str = "etcdserver: requested lease not found";

/// Raw stubs of the services a scenario calls, over one channel.
#[derive(Clone)]
pub struct Stubs {
    pub lock: LockClient<Channel>,
    pub election: ElectionClient<Channel>,
    pub lease: LeaseClient<Channel>,
    pub kv: KvClient<Channel>,
}

impl Stubs {
    pub async fn connect(endpoint: &str) -> Stubs {
        let channel = tokio::time::timeout(
            STEP,
            tonic::transport::Endpoint::from_shared(endpoint.to_string()).unwrap().connect(),
        )
        .await
        .expect("bounded")
        .expect("connect");
        Stubs {
            lock: LockClient::new(channel.clone()),
            election: ElectionClient::new(channel.clone()),
            lease: LeaseClient::new(channel.clone()),
            kv: KvClient::new(channel),
        }
    }

    pub async fn grant(&mut self, ttl: i64) -> i64 {
        let granted = self.lease.lease_grant(LeaseGrantRequest { ttl, id: 0 });
        bounded(granted).await.expect("grant").into_inner().id
    }

    pub async fn revoke(&mut self, id: i64) {
        bounded(self.lease.lease_revoke(LeaseRevokeRequest { id })).await.expect("revoke");
    }

    pub async fn exists(&mut self, key: &[u8]) -> bool {
        let range = self.kv.range(RangeRequest { key: key.to_vec().into(), ..Default::default() });
        bounded(range).await.expect("range").into_inner().count == 1
    }
}

/// `call`, which must answer within [`STEP`].
pub async fn bounded<T>(call: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP, call).await.expect("answered in time")
}

/// Whether `call` is still waiting after [`STAYS_BLOCKED`].
async fn blocked<T>(call: &mut tokio::task::JoinHandle<T>) -> bool {
    tokio::time::timeout(STAYS_BLOCKED, call).await.is_err()
}

fn assert_error<T: std::fmt::Debug>(answer: Result<T, Status>, code: Code, message: &str) {
    let status = answer.expect_err("refused");
    assert_eq!((status.code(), status.message()), (code, message), "{status:?}");
}

fn assert_header(header: &Option<ResponseHeader>) -> i64 {
    let header = header.as_ref().expect("a header");
    assert!(header.cluster_id != 0 && header.member_id != 0 && header.raft_term != 0);
    assert!(header.revision > 1);
    header.revision
}

/// A contender's key under `prefix`: the lease id in hex, as etcd's recipes write it.
fn contender_key(prefix: &str, lease: i64) -> Vec<u8> {
    format!("{prefix}/{lease:x}").into_bytes()
}

/// Lock: mutual exclusion between two callers, release by Unlock, the waiter's key
/// withdrawn when its caller gives up, a lease that is gone, and no lease at all.
pub async fn lock_semantics(endpoint: &str) {
    let mut stubs = Stubs::connect(endpoint).await;
    let (first, second) = (stubs.grant(30).await, stubs.grant(30).await);

    let held = bounded(stubs.lock.lock(LockRequest { name: "scn-lock".into(), lease: first }))
        .await
        .expect("the free lock is taken at once")
        .into_inner();
    assert_eq!(held.key, contender_key("scn-lock", first));
    let held_at = assert_header(&held.header);

    // A second caller waits while the lock is held.
    let mut waiter = {
        let mut lock = stubs.lock.clone();
        tokio::spawn(async move {
            lock.lock(LockRequest { name: "scn-lock".into(), lease: second }).await
        })
    };
    assert!(blocked(&mut waiter).await, "two callers hold the lock at once");
    assert!(stubs.exists(&contender_key("scn-lock", second)).await, "the waiter is queued");

    let unlocked = bounded(stubs.lock.unlock(UnlockRequest { key: held.key.clone() }))
        .await
        .expect("unlock")
        .into_inner();
    assert!(assert_header(&unlocked.header) > held_at);
    let taken = bounded(waiter).await.expect("joined").expect("the waiter gets the lock");
    assert_eq!(taken.into_inner().key, contender_key("scn-lock", second));

    // A waiter whose caller goes away leaves the queue: its key is deleted.
    let third = stubs.grant(30).await;
    let gave_up = tokio::time::timeout(
        STAYS_BLOCKED,
        stubs.lock.clone().lock(LockRequest { name: "scn-lock".into(), lease: third }),
    )
    .await;
    assert!(gave_up.is_err(), "the lock is still held");
    let mut withdrawn = false;
    for _ in 0..100 {
        if !stubs.exists(&contender_key("scn-lock", third)).await {
            withdrawn = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(withdrawn, "an abandoned waiter's key stays queued");

    // Unlocking a key nobody holds is a delete of nothing.
    let missing = bounded(stubs.lock.unlock(UnlockRequest { key: "scn-lock/none".into() })).await;
    assert_header(&missing.expect("unlock of a missing key").into_inner().header);

    // A lease that is gone: the recipe's write under it fails with etcd's message.
    let expired = stubs.grant(30).await;
    stubs.revoke(expired).await;
    let refused =
        bounded(stubs.lock.lock(LockRequest { name: "scn-gone".into(), lease: expired })).await;
    assert_error(refused, Code::Unknown, LEASE_NOT_FOUND);
    assert!(!stubs.exists(&contender_key("scn-gone", expired)).await);

    // No lease: the service grants one of 60 s for the caller, not kept alive.
    let own = bounded(stubs.lock.lock(LockRequest { name: "scn-own".into(), lease: 0 }))
        .await
        .expect("lock without a lease")
        .into_inner();
    let key = String::from_utf8(own.key.to_vec()).unwrap();
    let lease = i64::from_str_radix(key.strip_prefix("scn-own/").expect("under the name"), 16)
        .expect("a lease id in hex");
    let ttl =
        bounded(stubs.lease.lease_time_to_live(LeaseTimeToLiveRequest { id: lease, keys: true }))
            .await
            .expect("time to live")
            .into_inner();
    assert_eq!(ttl.granted_ttl, 60);
    assert_eq!(ttl.keys, [own.key]);
    for lease in [first, second, third, lease] {
        stubs.revoke(lease).await;
    }
}

fn leader_of(answer: Result<tonic::Response<LeaderResponse>, Status>) -> (Vec<u8>, Vec<u8>) {
    let answer = answer.expect("a leader").into_inner();
    assert_header(&answer.header);
    let kv = answer.kv.expect("the leader's key-value");
    (kv.key.to_vec(), kv.value.to_vec())
}

/// Election: no leader, a campaign, Leader and Observe following proclamations and a
/// change of leader, and the errors of Proclaim and Resign.
pub async fn election_semantics(endpoint: &str) {
    let mut stubs = Stubs::connect(endpoint).await;
    let name = || -> bytes::Bytes { "scn-election".into() };
    let leader = bounded(stubs.election.leader(LeaderRequest { name: name() })).await;
    assert_error(leader, Code::Unknown, NO_LEADER);

    // An observer from before the first campaign: its first answer is the first leader
    // (etcd sends the stream's headers with its first answer, so it is awaited apart).
    let observer = {
        let mut election = stubs.election.clone();
        tokio::spawn(async move {
            let mut observed = election.observe(LeaderRequest { name: name() }).await?;
            let first = observed.get_mut().message().await?;
            Ok::<_, Status>((observed, first))
        })
    };
    let (first, second) = (stubs.grant(30).await, stubs.grant(30).await);
    let campaign = CampaignRequest { name: name(), lease: first, value: "v1".into() };
    let won = bounded(stubs.election.campaign(campaign)).await.expect("campaign").into_inner();
    assert_header(&won.header);
    let leader_key = won.leader.expect("the leader's key");
    assert_eq!(leader_key.name, name());
    assert_eq!(leader_key.key, contender_key("scn-election", first));
    assert_eq!(leader_key.lease, first);
    assert!(leader_key.rev > 1);
    let leader = bounded(stubs.election.leader(LeaderRequest { name: name() })).await;
    assert_eq!(leader_of(leader), (leader_key.key.to_vec(), b"v1".to_vec()));
    let (mut observed, first_seen) = bounded(observer).await.expect("joined").expect("observe");
    let mut seen = vec![first_seen.expect("a first leader")];

    // A second candidate waits.
    let mut waiting = {
        let mut election = stubs.election.clone();
        let campaign = CampaignRequest { name: name(), lease: second, value: "w".into() };
        tokio::spawn(async move { election.campaign(campaign).await })
    };
    assert!(blocked(&mut waiting).await, "two leaders at once");

    let proclaim = ProclaimRequest { leader: Some(leader_key.clone()), value: "v2".into() };
    let proclaimed = bounded(stubs.election.proclaim(proclaim)).await.expect("proclaim");
    assert_header(&proclaimed.into_inner().header);

    // Proclaiming with a key that does not lead (a wrong revision), and without one.
    let stale = LeaderKey { rev: leader_key.rev + 1000, ..leader_key.clone() };
    let proclaim = ProclaimRequest { leader: Some(stale.clone()), value: "no".into() };
    assert_error(bounded(stubs.election.proclaim(proclaim)).await, Code::Unknown, NOT_LEADER);
    let proclaim = ProclaimRequest { leader: None, value: "no".into() };
    assert_error(
        bounded(stubs.election.proclaim(proclaim)).await,
        Code::Unknown,
        MISSING_LEADER_KEY,
    );
    let resign = ResignRequest { leader: None };
    assert_error(bounded(stubs.election.resign(resign)).await, Code::Unknown, MISSING_LEADER_KEY);
    // Resigning with a key that does not lead changes nothing and is no error.
    let resigned = bounded(stubs.election.resign(ResignRequest { leader: Some(stale) })).await;
    assert_header(&resigned.expect("a resignation of nothing").into_inner().header);
    assert!(blocked(&mut waiting).await, "a stale resignation removed the leader");

    let resigned = bounded(stubs.election.resign(ResignRequest { leader: Some(leader_key) })).await;
    assert_header(&resigned.expect("resign").into_inner().header);
    let next = bounded(waiting).await.expect("joined").expect("the next candidate leads");
    let next_key = next.into_inner().leader.expect("the new leader's key");
    assert_eq!(next_key.key, contender_key("scn-election", second));
    let leader = bounded(stubs.election.leader(LeaderRequest { name: name() })).await;
    assert_eq!(leader_of(leader).1, b"w");

    // The observer saw each leader and value in turn.
    while seen.len() < 3 {
        let answer = bounded(observed.get_mut().message()).await.expect("observe").expect("open");
        seen.push(answer);
    }
    let values: Vec<_> = seen
        .iter()
        .map(|answer| {
            assert_header(&answer.header);
            String::from_utf8(answer.kv.as_ref().expect("a leader").value.to_vec()).unwrap()
        })
        .collect();
    assert_eq!(values, ["v1", "v2", "w"]);
    drop(observed);
    for lease in [first, second] {
        stubs.revoke(lease).await;
    }
}
