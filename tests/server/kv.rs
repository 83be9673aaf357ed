//! oxetcd's KV service against the scenario that etcd 3.4.23 passes (the compatibility
//! suite runs the same scenario against the real etcd).

use oxetcd_tests::member::TestMember;
use oxetcd_tests::scenario;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_semantics_match_etcd() {
    let member = TestMember::start(&[]).await;
    scenario::kv_semantics(&member.endpoint).await;
    member.stop().await;
}
