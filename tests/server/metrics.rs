//! `/metrics` and the health probes against a member in process: after a scripted
//! workload every metric a dashboard reads is there with etcd's type and labels and
//! moves as etcd's does; `/livez`, `/readyz` (etcd 3.6) and `/health` answer as etcd's,
//! and a raised alarm fails them.

use std::time::Duration;

use oxetcd_client::{AlarmAction, AlarmType, Client, ClientOptions};
use oxetcd_tests::member::{TestMember, free_port};
use oxetcd_tests::metrics::{Page, get};

/// Each scenario ends within this, or fails.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(60);
/// Puts of the workload.
const PUTS: u64 = 25;

fn put_handled(code: &str) -> String {
    format!(
        r#"grpc_server_handled_total{{grpc_code="{code}",grpc_method="Put",grpc_service="etcdserverpb.KV",grpc_type="unary"}}"#
    )
}

/// Every family a dashboard of etcd's reads, with its type and label names (etcd 3.4's).
const FAMILIES: &[(&str, &str, &[&str])] = &[
    ("etcd_server_has_leader", "gauge", &[]),
    ("etcd_server_is_leader", "gauge", &[]),
    ("etcd_server_leader_changes_seen_total", "counter", &[]),
    ("etcd_server_proposals_committed_total", "gauge", &[]),
    ("etcd_server_proposals_applied_total", "gauge", &[]),
    ("etcd_server_proposals_pending", "gauge", &[]),
    ("etcd_server_proposals_failed_total", "counter", &[]),
    ("etcd_server_heartbeat_send_failures_total", "counter", &[]),
    ("etcd_server_slow_apply_total", "counter", &[]),
    ("etcd_server_quota_backend_bytes", "gauge", &[]),
    ("etcd_server_version", "gauge", &["server_version"]),
    ("etcd_server_id", "gauge", &["server_id"]),
    ("etcd_cluster_version", "gauge", &["cluster_version"]),
    ("etcd_mvcc_db_total_size_in_bytes", "gauge", &[]),
    ("etcd_mvcc_db_total_size_in_use_in_bytes", "gauge", &[]),
    ("etcd_debugging_mvcc_db_total_size_in_bytes", "gauge", &[]),
    ("etcd_debugging_mvcc_keys_total", "gauge", &[]),
    ("etcd_debugging_mvcc_current_revision", "gauge", &[]),
    ("etcd_debugging_mvcc_compact_revision", "gauge", &[]),
    ("etcd_debugging_mvcc_watcher_total", "gauge", &[]),
    ("etcd_mvcc_put_total", "counter", &[]),
    ("etcd_mvcc_range_total", "counter", &[]),
    ("etcd_mvcc_delete_total", "counter", &[]),
    ("etcd_mvcc_txn_total", "counter", &[]),
    ("etcd_disk_wal_fsync_duration_seconds", "histogram", &[]),
    ("etcd_disk_backend_commit_duration_seconds", "histogram", &[]),
    ("grpc_server_started_total", "counter", &["grpc_method", "grpc_service", "grpc_type"]),
    (
        "grpc_server_handled_total",
        "counter",
        &["grpc_code", "grpc_method", "grpc_service", "grpc_type"],
    ),
    ("grpc_server_msg_received_total", "counter", &["grpc_method", "grpc_service", "grpc_type"]),
    ("grpc_server_msg_sent_total", "counter", &["grpc_method", "grpc_service", "grpc_type"]),
    ("grpc_server_handling_seconds", "histogram", &["grpc_method", "grpc_service", "grpc_type"]),
    ("process_cpu_seconds_total", "counter", &[]),
    ("process_resident_memory_bytes", "gauge", &[]),
    ("process_virtual_memory_bytes", "gauge", &[]),
    ("process_open_fds", "gauge", &[]),
    ("process_max_fds", "gauge", &[]),
    ("process_start_time_seconds", "gauge", &[]),
    ("os_fd_used", "gauge", &[]),
    ("os_fd_limit", "gauge", &[]),
    ("go_goroutines", "gauge", &[]),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_have_etcds_types_and_labels_and_move_with_a_workload() {
    tokio::time::timeout(SCENARIO_TIMEOUT, async {
        let metrics_addr = format!("127.0.0.1:{}", free_port());
        let metrics_url = format!("http://{metrics_addr}");
        let member =
            TestMember::start(&["--listen-metrics-urls", &metrics_url, "--metrics", "extensive"])
                .await;
        let client_addr = member.endpoint.trim_start_matches("http://").to_string();
        let client = Client::connect([member.endpoint.as_str()], ClientOptions::default())
            .await
            .expect("client connects");
        client.put("warm-up", "v", None).await.expect("put");
        let before = Page::scrape(&client_addr).await;

        for i in 0..PUTS {
            client.put(format!("k{i}"), "v", None).await.expect("put");
        }
        client.get("k0", None).await.expect("get");
        client.delete("k0", None).await.expect("delete");
        let mut watcher = client.watch("k1", None).await.expect("watch");
        client.put("k1", "v2", None).await.expect("put");
        watcher.message().await.expect("a watch response").expect("an event");
        drop(watcher);
        // A lock and its release: counted as Lock and Unlock calls; the recipe's own calls
        // inside the member are not (etcd's v3client calls its server past the
        // interceptors), though its put and delete are store ops like any other.
        let lease = client.lease_grant(60, 0).await.expect("grant").id;
        let held = client.lock().lock("mutex", lease).await.expect("lock").key;
        client.lock().unlock(held).await.expect("unlock");
        drop(client);

        // The watch stream ends when the client goes away: grpc-go reports that Canceled.
        let watch_canceled = r#"grpc_server_handled_total{grpc_code="Canceled",grpc_method="Watch",grpc_service="etcdserverpb.Watch",grpc_type="bidi_stream"}"#;
        let after = loop {
            let page = Page::scrape(&metrics_addr).await;
            if page.samples.get(watch_canceled).is_some_and(|&v| v >= 1.0) {
                break page;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };

        for (name, kind, labels) in FAMILIES {
            assert_eq!(after.types.get(*name).map(String::as_str), Some(*kind), "{name}'s type");
            let sample = if *kind == "histogram" { format!("{name}_bucket") } else { name.to_string() };
            let mut want: Vec<String> = labels.iter().map(|l| l.to_string()).collect();
            want.sort();
            assert_eq!(after.label_names(&sample), want, "{name}'s labels");
        }
        // etcd's buckets: 14 doubling from 1 ms for the disks, plus +Inf.
        for disk in ["etcd_disk_wal_fsync_duration_seconds", "etcd_disk_backend_commit_duration_seconds"] {
            let buckets = after.samples.keys().filter(|s| s.starts_with(&format!("{disk}_bucket"))).count();
            assert_eq!(buckets, 15, "{disk}");
            assert!(after.value(&format!("{disk}_bucket{{le=\"0.001\"}}")) >= 0.0);
            assert!(after.value(&format!("{disk}_count")) > 0.0, "{disk} observed nothing");
        }

        let grew = |sample: &str| after.value(sample) - before.value(sample);
        let n = PUTS as f64;
        assert!(grew("etcd_server_proposals_committed_total") >= n + 2.0);
        assert!(grew("etcd_server_proposals_applied_total") >= n + 2.0);
        assert_eq!(grew("etcd_mvcc_put_total"), n + 2.0, "the puts, the watched one, the lock's");
        assert_eq!(grew("etcd_mvcc_delete_total"), 2.0, "k0, and the lock's key");
        assert!(grew("etcd_mvcc_range_total") >= 1.0);
        assert_eq!(grew(&put_handled("OK")), n + 1.0);
        let put_labels = r#"{grpc_method="Put",grpc_service="etcdserverpb.KV",grpc_type="unary"}"#;
        for family in ["started", "msg_received", "msg_sent"] {
            let sample = format!("grpc_server_{family}_total{put_labels}");
            assert_eq!(grew(&sample), n + 1.0, "{sample}");
        }
        assert_eq!(grew(&format!("grpc_server_handling_seconds_count{put_labels}")), n + 1.0);
        // warm-up and k0..k{PUTS-1}, less the deleted k0.
        assert_eq!(after.value("etcd_debugging_mvcc_keys_total"), n);
        assert_eq!(after.value("etcd_server_has_leader"), 1.0);
        assert_eq!(after.value("etcd_server_is_leader"), 1.0);
        assert!(after.value("etcd_server_leader_changes_seen_total") >= 1.0);
        assert_eq!(after.value(r#"etcd_server_version{server_version="3.4.23"}"#), 1.0);
        assert_eq!(after.value(r#"etcd_cluster_version{cluster_version="3.4"}"#), 1.0);
        assert_eq!(after.value("etcd_server_quota_backend_bytes"), 2.0 * 1024.0 * 1024.0 * 1024.0);
        let watch_labels = r#"{grpc_method="Watch",grpc_service="etcdserverpb.Watch",grpc_type="bidi_stream"}"#;
        assert!(grew(&format!("grpc_server_msg_received_total{watch_labels}")) >= 1.0);
        assert!(grew(&format!("grpc_server_msg_sent_total{watch_labels}")) >= 2.0, "created, then the event");
        let lock = |method: &str| {
            format!(
                r#"grpc_server_handled_total{{grpc_code="OK",grpc_method="{method}",grpc_service="v3lockpb.Lock",grpc_type="unary"}}"#
            )
        };
        assert_eq!((after.value(&lock("Lock")), after.value(&lock("Unlock"))), (1.0, 1.0));
        let txn = r#"grpc_server_started_total{grpc_method="Txn",grpc_service="etcdserverpb.KV",grpc_type="unary"}"#;
        assert_eq!(grew(txn), 0.0, "the lock recipe's transactions are not client calls");
        // A method never called is listed at zero, as etcd lists every method up front.
        assert_eq!(after.value(&put_handled("Unavailable")), 0.0);

        // The client port serves the same page.
        let on_client_port = Page::scrape(&client_addr).await;
        assert_eq!(on_client_port.types, after.types);
        member.stop().await;
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn livez_and_readyz_report_their_checks_and_an_alarm_fails_readiness() {
    tokio::time::timeout(SCENARIO_TIMEOUT, async {
        let member = TestMember::start(&[]).await;
        let addr = member.endpoint.trim_start_matches("http://").to_string();
        let addr = addr.as_str();
        assert_eq!(get(addr, "/livez").await, (200, "ok\n".into()));
        assert_eq!(
            get(addr, "/livez?verbose").await,
            (200, "[+]serializable_read ok\nok\n".into())
        );
        assert_eq!(get(addr, "/readyz").await, (200, "ok\n".into()));
        let all = "[+]data_corruption ok\n[+]serializable_read ok\n[+]linearizable_read ok\nok\n";
        assert_eq!(get(addr, "/readyz?verbose").await, (200, all.into()));
        assert_eq!(
            get(addr, "/readyz?verbose&exclude=linearizable_read&exclude=no_such_check").await,
            (200, "[+]data_corruption ok\n[+]serializable_read ok\nok\n".into())
        );
        assert_eq!(
            get(addr, "/readyz/linearizable_read?verbose").await,
            (200, "[+]linearizable_read ok\nok\n".into())
        );
        assert_eq!(get(addr, "/readyz/no_such_check").await.0, 404);
        assert_eq!(get(addr, "/health").await, (200, r#"{"health":"true"}"#.into()));
        assert_eq!(
            get(addr, "/health?serializable=true").await,
            (200, r#"{"health":"true"}"#.into())
        );

        let client = Client::connect([member.endpoint.as_str()], ClientOptions::default())
            .await
            .expect("client connects");
        let id = member.member.server.member_id();
        client
            .maintenance()
            .alarm(AlarmAction::Activate, id, AlarmType::Corrupt)
            .await
            .expect("raise");
        let failed = "[-]data_corruption failed: alarm activated: CORRUPT\n\
                      [+]serializable_read ok\n[+]linearizable_read ok\n\n";
        assert_eq!(
            get(addr, "/readyz").await,
            (503, failed.into()),
            "failures are always detailed"
        );
        assert_eq!(get(addr, "/readyz?exclude=data_corruption").await, (200, "ok\n".into()));
        assert_eq!(get(addr, "/readyz/data_corruption").await.0, 503);
        assert_eq!(get(addr, "/livez").await, (200, "ok\n".into()), "a live member may be corrupt");
        assert_eq!(get(addr, "/health").await, (503, r#"{"health":"false"}"#.into()));
        assert_eq!(
            get(addr, "/health?exclude=CORRUPT").await,
            (200, r#"{"health":"true"}"#.into())
        );

        client
            .maintenance()
            .alarm(AlarmAction::Deactivate, id, AlarmType::Corrupt)
            .await
            .expect("disarm");
        assert_eq!(get(addr, "/readyz").await, (200, "ok\n".into()));
        assert_eq!(get(addr, "/health").await, (200, r#"{"health":"true"}"#.into()));
        drop(client);
        member.stop().await;
    })
    .await
    .expect("bounded");
}
