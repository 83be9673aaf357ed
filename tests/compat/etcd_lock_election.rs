//! The Lock and Election scenarios against the reference etcd 3.4.23: proves the
//! expectations that oxetcd's services are held to (tests/server/lock_election.rs) are
//! etcd's own, codes and messages included.

use oxetcd_tests::lock_election_scenario;
use oxetcd_tests::reference::ReferenceEtcd;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_semantics_match_reference_etcd() {
    let etcd = ReferenceEtcd::start().await;
    lock_election_scenario::lock_semantics(&etcd.endpoint).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn election_semantics_match_reference_etcd() {
    let etcd = ReferenceEtcd::start().await;
    lock_election_scenario::election_semantics(&etcd.endpoint).await;
}
