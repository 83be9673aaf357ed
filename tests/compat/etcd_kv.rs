//! The KV scenario against the reference etcd 3.4.23 through oxetcd's generated
//! client: proves the wire contract (names, numbers, types) before our server exists,
//! and proves the scenario's expectations are etcd's own.

use oxetcd_tests::reference::ReferenceEtcd;
use oxetcd_tests::scenario;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_semantics_match_reference_etcd() {
    let etcd = ReferenceEtcd::start().await;
    scenario::kv_semantics(&etcd.endpoint).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_refusals_match_reference_etcd() {
    let etcd = ReferenceEtcd::start().await;
    oxetcd_tests::refusals::grpc_refusals(&etcd.endpoint).await;
}
