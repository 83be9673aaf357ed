//! The Watch scenario against the reference etcd 3.4.23: proves the expectations that
//! oxetcd's Watch service is held to (tests/server/watch.rs) are etcd's own.

use oxetcd_tests::reference::ReferenceEtcd;
use oxetcd_tests::watch_scenario;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_semantics_match_reference_etcd() {
    let etcd = ReferenceEtcd::start().await;
    watch_scenario::watch_semantics(&etcd.endpoint).await;
}
