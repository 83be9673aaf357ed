//! `/metrics` side by side with etcd 3.4.23: every family oxetcd serves exists in etcd's
//! page with the same type and the same label names, after the same small workload on
//! each (both with `--metrics extensive`).

use oxetcd_client::{Client, ClientOptions};
use oxetcd_tests::member::TestMember;
use oxetcd_tests::metrics::Page;
use oxetcd_tests::reference::{ReferenceEtcd, ServerTlsFlags};

/// A put, a get, a delete and a watch that sees an event: the calls that make etcd list
/// the series it creates lazily.
async fn workload(endpoint: &str) {
    let client = Client::connect([endpoint], ClientOptions::default()).await.expect("connects");
    client.put("k", "v", None).await.expect("put");
    client.get("k", None).await.expect("get");
    let mut watcher = client.watch("k", None).await.expect("watch");
    client.delete("k", None).await.expect("delete");
    watcher.message().await.expect("a watch response").expect("an event");
}

/// The label names of every family on `page`, by family (from its first sample).
fn label_names(page: &Page, name: &str, kind: &str) -> Vec<String> {
    let sample = if kind == "histogram" { format!("{name}_bucket") } else { name.to_string() };
    page.label_names(&sample)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_served_family_is_etcds_with_its_type_and_labels() {
    let etcd =
        ReferenceEtcd::start_with_flags(&ServerTlsFlags::plaintext(), &["--metrics", "extensive"])
            .await;
    let member = TestMember::start(&["--metrics", "extensive"]).await;
    workload(&etcd.endpoint).await;
    workload(&member.endpoint).await;
    let theirs = Page::scrape(etcd.endpoint.trim_start_matches("http://")).await;
    let ours = Page::scrape(member.endpoint.trim_start_matches("http://")).await;

    let mut differences = Vec::new();
    let mut names: Vec<_> = ours.types.iter().collect();
    names.sort();
    for (name, kind) in names {
        match theirs.types.get(name) {
            None => differences.push(format!("{name}: not in etcd 3.4.23's page")),
            Some(their_kind) if their_kind != kind => {
                differences.push(format!("{name}: ours a {kind}, etcd's a {their_kind}"))
            }
            Some(_) => {
                let (ours, theirs) =
                    (label_names(&ours, name, kind), label_names(&theirs, name, kind));
                if ours != theirs {
                    differences.push(format!("{name}: labels {ours:?}, etcd's {theirs:?}"));
                }
            }
        }
    }
    assert!(
        differences.is_empty(),
        "families that differ from etcd's:\n{}",
        differences.join("\n")
    );
    // A page that parsed to nothing would compare equal too.
    assert!(ours.types.len() >= 40, "only {} families served", ours.types.len());
    member.stop().await;
}
