//! Short seeded robustness runs of each fault class against a three-member cluster of
//! this build of the binary (it has failpoints), and of partitions against five members:
//! a recorded workload under kill -9, SIGSTOP pauses, storage failpoints (errors and
//! panics), partitions (one way too: peer messages dropped by direction, connections up)
//! and slowed or lossy links, then the history's checks (linearizability, watch
//! guarantees, the committed log, leases) and the end checks (every member back, HashKV
//! equal at one revision). The harness is `crates/robustness`; longer runs are
//! `scripts/robustness.sh`. A failing run names its seed and keeps its history, member
//! logs and replay command under `target/tmp/robustness/`. `ROBUSTNESS_SEED=<n>` runs a
//! given seed.
//! Also: the harness's heal disarms the failpoints it armed while members ran, passing
//! over a member restarted since.
//!
//! Partitions and slowed links need network namespaces (root, iproute2); without them
//! those tests fail, unless `ROBUSTNESS_SKIP_NETNS=1` says to leave them out.

use std::path::Path;
use std::time::Duration;

use oxetcd_robustness::cluster::Cluster;
use oxetcd_robustness::failpoints::{self, DROP_RECEIVE, DROP_SEND};
use oxetcd_robustness::history::{History, Kv, Outcome, Response};
use oxetcd_robustness::linearizability::MAX_EXPLORED;
use oxetcd_robustness::nemesis::FaultClass;
use oxetcd_robustness::netns::Netns;
use oxetcd_robustness::scenario::{self, RunReport, Scenario};
use oxetcd_robustness::workload::Workload;

/// How long the workload runs under faults, per class.
const SCENARIO: Duration = Duration::from_secs(10);
/// Fewer operations than this means the workload hardly ran: nothing was tested.
const MIN_OPERATIONS: usize = 300;

/// Each run starts three (or five) members: one at a time on two cores.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn seed(default: u64) -> u64 {
    std::env::var("ROBUSTNESS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

async fn run_class(class: FaultClass, default_seed: u64) -> RunReport {
    run_class_on(class, 3, default_seed).await
}

async fn run_class_on(class: FaultClass, members: usize, default_seed: u64) -> RunReport {
    let _one = ONE_AT_A_TIME.lock().await;
    let scenario = Scenario {
        binary: env!("CARGO_BIN_EXE_oxetcd").into(),
        seed: seed(default_seed),
        faults: vec![class],
        duration: SCENARIO,
        members,
        workload: Workload::default(),
        work_dir: Path::new(env!("CARGO_TARGET_TMPDIR")).join("robustness"),
        max_explored: MAX_EXPLORED,
        keep_always: false,
    };
    let report = scenario::run(&scenario).await;
    assert!(
        report.anomalies.is_empty(),
        "seed {} ({class}): {:#?}\nfaults: {:#?}\nkept in {:?}; replay: {}",
        scenario.seed,
        report.anomalies,
        report.faults,
        report.kept,
        scenario.replay_command()
    );
    assert!(
        report.operations >= MIN_OPERATIONS,
        "seed {}: only {} operations",
        scenario.seed,
        report.operations
    );
    assert!(!report.faults.is_empty(), "seed {}: no fault injected", scenario.seed);
    let history = report.history.as_ref().expect("a recorded history");
    assert_checkers_see(history, scenario.seed);
    report
}

/// The same history made wrong on purpose fails the checks: the checkers read this run.
fn assert_checkers_see(history: &History, seed: u64) {
    // The final read of every key sees a value nobody wrote. (Dropping a key from it would
    // not do: a delete of unknown outcome may explain a missing key.)
    let mut lost = history.clone();
    let last = lost.operations.last_mut().expect("operations");
    let Outcome::Ok(Response::Range { kvs, .. }) = &mut last.outcome else {
        panic!("seed {seed}: the last operation is not the final read: {last:?}")
    };
    match kvs.first_mut() {
        Some(kv) => kv.value = "never-written".into(),
        None => {
            kvs.push(Kv { key: "rb/k0".into(), value: "never-written".into(), mod_revision: 2 })
        }
    }
    let mut report = RunReport::default();
    scenario::check(&lost, MAX_EXPLORED, &mut report);
    assert!(
        report.anomalies.iter().any(|a| a.contains("not linearizable")),
        "seed {seed}: a changed final read passed: {:?} (inconclusive keys {:?})",
        report.anomalies,
        report.inconclusive
    );
    // A watch that skips one event.
    let mut gap = history.clone();
    let watch = gap.watches.iter_mut().find(|w| w.responses.iter().any(|r| !r.events.is_empty()));
    let watch = watch.expect("a watch that saw events");
    let response = watch.responses.iter_mut().find(|r| !r.events.is_empty()).expect("events");
    response.events.remove(0);
    let mut report = RunReport::default();
    scenario::check(&gap, MAX_EXPLORED, &mut report);
    assert!(!report.anomalies.is_empty(), "seed {seed}: a watch that skipped an event passed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_and_restart_loses_nothing() {
    run_class(FaultClass::Kill, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_members_break_no_guarantee() {
    run_class(FaultClass::Pause, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_failpoints_take_the_fatal_path() {
    // A seed whose first faults are quick ones at storage failures (some draws, such as a
    // snapshot send, take most of a short run).
    let report = run_class(FaultClass::Failpoint, 15).await;
    assert!(
        report.faults.iter().any(|f| f.contains("exit status: 1")),
        "no failpoint was reached: {:#?}",
        report.faults
    );
}

/// Whether the namespaced-network tests run here; panics if they cannot and were not
/// told to leave them out.
fn namespaces_available() -> bool {
    if std::env::var_os("ROBUSTNESS_SKIP_NETNS").is_some() {
        eprintln!("ROBUSTNESS_SKIP_NETNS is set: partitions and slowed links not tested");
        return false;
    }
    assert!(
        Netns::available(),
        "network namespaces are unavailable (root and iproute2 needed); set \
         ROBUSTNESS_SKIP_NETNS=1 to leave these tests out"
    );
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_break_no_guarantee() {
    if namespaces_available() {
        // A seed that draws both one-way partitions: by messages and by IP.
        let report = run_class(FaultClass::Partition, 4).await;
        let drawn = |what: &str| report.faults.iter().any(|f| f.contains(what));
        assert!(drawn("messages dropped") && drawn("blackholed"), "{:#?}", report.faults);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowed_links_break_no_guarantee() {
    if namespaces_available() {
        // A seed that draws both a slowed link and lost peer messages.
        let report = run_class(FaultClass::Delay, 5).await;
        let drawn = |what: &str| report.faults.iter().any(|f| f.contains(what));
        assert!(drawn("sends at") && drawn("peer messages"), "{:#?}", report.faults);
    }
}

/// Five members, where a partition can also split two from three (the leader among the
/// two, or among the three; which partitions a short run draws depends on its timing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_members_partitioned_break_no_guarantee() {
    if namespaces_available() {
        let report = run_class_on(FaultClass::Partition, 5, 8).await;
        let partitioned = |f: &String| ["cut", "isolated", "reaches"].iter().any(|p| f.contains(p));
        assert!(report.faults.iter().any(partitioned), "{:#?}", report.faults);
    }
}

/// Failpoints the nemesis armed through the members' control are disarmed when the
/// cluster heals; a member restarted since is a new process, which starts without them,
/// and does not make the heal fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healing_disarms_failpoints_and_passes_over_restarted_members() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let binary = Path::new(env!("CARGO_BIN_EXE_oxetcd"));
    let mut cluster = Cluster::start(binary, dir.path(), 3, false).await.expect("a cluster");
    // Armed, but dropping nothing: the cluster stays whole.
    cluster.arm(0, DROP_SEND, "off").await.expect("armed on m0");
    cluster.arm(1, DROP_RECEIVE, "off").await.expect("armed on m1");
    cluster.kill(0);
    cluster.spawn(0, None).expect("m0 restarted");
    cluster.wait_serving(0).await.expect("m0 serves");
    cluster.heal_network().await.expect("the heal");
    for (i, failpoint) in [(0, DROP_SEND), (1, DROP_RECEIVE)] {
        let address = &cluster.members[i].failpoint_address;
        let left = failpoints::disarm(address, failpoint).await;
        assert!(
            left.as_ref().is_err_and(|e| e.contains("404")),
            "m{i}: {failpoint} left: {left:?}"
        );
    }
}
