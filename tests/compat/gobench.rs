//! oxetcd-gobench (bench/go: the load generator on etcd 3.4's Go clientv3, Debian's
//! golang-etcd-server-dev) builds with bench/go/build.sh (gofmt'ed, vet-clean, its Go
//! tests passing) and runs each of its workloads,
//! tiny, against oxetcd: every request succeeds and the JSON report is the one
//! bench/compare.sh parses. Behind the `compat` feature (scripts/compat.sh installs Go and
//! the package); without them the build fails naming the package to install.

use std::path::{Path, PathBuf};
use std::process::Command;

use oxetcd_tests::member::TestMember;
use serde_json::Value;

/// Checks and builds oxetcd-gobench into the test's target tmp dir; returns the binary.
fn build() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("gobench");
    let mut build = Command::new(root.join("bench/go/build.sh"));
    build.arg("--check").arg(&out);
    if std::env::var_os("GOCACHE").is_none() {
        build.env("GOCACHE", Path::new(env!("CARGO_TARGET_TMPDIR")).join("gocache"));
    }
    let built = build.output().expect("runs bench/go/build.sh");
    assert!(
        built.status.success(),
        "bench/go/build.sh failed:\n{}",
        String::from_utf8_lossy(&built.stderr)
    );
    out.join("oxetcd-gobench")
}

/// Runs the generator against `endpoint` with `args` and returns its JSON report.
async fn bench(bin: &Path, endpoint: &str, args: &[&str]) -> Value {
    let out = tokio::process::Command::new(bin)
        .args(["--endpoints", endpoint, "--json"])
        .args(args)
        .output()
        .await
        .expect("runs oxetcd-gobench");
    assert!(
        out.status.success(),
        "oxetcd-gobench {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{args:?}: not one JSON report ({e}):\n{}", String::from_utf8_lossy(&out.stdout))
    })
}

/// `report` counts `ok` successful requests of `workload`, no failure, and has the
/// fields bench/compare.sh reads.
fn assert_report(report: &Value, workload: &str, ok: u64) {
    assert_eq!(report["workload"], workload, "{report}");
    assert_eq!(report["ok"], ok, "{report}");
    assert_eq!(report["errors_total"], 0, "{report}");
    assert!(report["requests_per_sec"].as_f64().is_some_and(|r| r > 0.0), "{report}");
    for p in ["p50", "p99", "p99.9"] {
        assert!(report["latency_ms"][p].as_f64().is_some_and(|ms| ms > 0.0), "{p}: {report}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_go_load_generator_runs_every_workload_against_oxetcd() {
    let bin = tokio::task::spawn_blocking(build).await.expect("build task");
    let member = TestMember::start(&[]).await;
    let ep = member.endpoint.as_str();

    let put = ["--conns", "2", "--clients", "4", "--total", "40", "put", "--key-space-size", "10"];
    assert_report(&bench(&bin, ep, &put).await, "put", 40);
    let seq = ["--total", "10", "put", "--sequential-keys", "--key-size", "3"];
    assert_report(&bench(&bin, ep, &seq).await, "put", 10);
    for consistency in ["l", "s"] {
        let args =
            ["--clients", "4", "--total", "20", "range", "000", "--consistency", consistency];
        assert_report(&bench(&bin, ep, &args).await, "range", 20);
    }
    let random = ["--total", "10", "range", "--random-keys", "10", "--random-key-size", "3"];
    assert_report(&bench(&bin, ep, &random).await, "range", 10);
    let txn =
        ["--clients", "2", "--total", "10", "txn-put", "--txn-ops", "3", "--key-space-size", "10"];
    assert_report(&bench(&bin, ep, &txn).await, "txn-put", 10);
    let lease = ["--conns", "2", "--clients", "4", "--total", "20", "lease-keepalive"];
    assert_report(&bench(&bin, ep, &lease).await, "lease-keepalive", 20);

    // 3 puts to 6 watchers on 2 streams: 18 deliveries, then the puts and the creations.
    let fanout = [
        "--conns",
        "2",
        "watch-fanout",
        "--watchers",
        "6",
        "--streams",
        "2",
        "--put-total",
        "3",
        "--val-size",
        "16",
    ];
    let report = bench(&bin, ep, &fanout).await;
    assert_report(&report, "watch-fanout", 18);
    assert_eq!(report["extra"]["events_received"], 18, "{report}");
    assert_report(&report["phases"][0], "watch-fanout-put", 3);
    assert_report(&report["phases"][1], "watch-create", 6);

    // The text report has oxetcd-bench's summary lines.
    let text = tokio::process::Command::new(&bin)
        .args(["--endpoints", ep, "--total", "5", "put"])
        .output()
        .await
        .expect("runs oxetcd-gobench");
    let text = String::from_utf8_lossy(&text.stdout);
    for line in ["Summary (put):", "Requests:\t5 ok, 0 failed", "Requests/sec:", "p99 in"] {
        assert!(text.contains(line), "{line:?} missing from\n{text}");
    }
    member.stop().await;
}
