//! One seeded run: a cluster of the real binary, the workload and the nemesis for a
//! while, then the end checks (every member back and equal by HashKV at the same
//! revision, the committed log against the history) and the history's checks
//! (linearizability, watch guarantees). A run with an anomaly keeps its directory: the
//! history as JSON, the member logs and data dirs, the faults, the anomalies and the
//! command that replays it.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::checks;
use crate::cluster::{Cluster, member_client};
use crate::history::{History, LeaseRecord, Outcome, Recorder, Request};
use crate::linearizability;
use crate::nemesis::{self, FaultClass};
use crate::rng::Rng;
use crate::workload::{self, KEY_PREFIX, Workload};

/// How long past its TTL an ended lease may still be there: the lessor looks for expired
/// leases every 500 ms (etcd's `expiredLeaseRetryInterval` is as often), and the revoke
/// is then proposed, committed and applied.
const LEASE_EXPIRY_SLACK: Duration = Duration::from_secs(3);
/// Rounds of waiting out what TimeToLive says is left before a lease that is still there
/// is an anomaly (a leader elected during the wait extends every lease once more).
const LEASE_EXPIRY_ROUNDS: usize = 2;
/// What a new leader adds to every lease's TTL: an election timeout (the runs'
/// `--election-timeout` is 750 ms; TimeToLive answers in whole seconds).
const PROMOTION_EXTENSION_SECS: i64 = 1;
/// How long the members may take to agree on the revision after the run.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(30);
/// One end-of-run request to one member.
const END_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// What to run.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// The `oxetcd` binary, built with the `failpoints` feature for failpoint faults.
    pub binary: PathBuf,
    pub seed: u64,
    pub faults: Vec<FaultClass>,
    /// How long the workload runs under faults.
    pub duration: Duration,
    pub members: usize,
    pub workload: Workload,
    /// Where the run's directory goes (kept only if the run finds an anomaly).
    pub work_dir: PathBuf,
    /// Search steps per key for the linearizability checker.
    pub max_explored: usize,
    /// Keep the run's directory even without an anomaly (to study a run).
    pub keep_always: bool,
}

impl Scenario {
    /// The command that runs this scenario again (same seed, faults and duration).
    pub fn replay_command(&self) -> String {
        let faults: Vec<String> = self.faults.iter().map(ToString::to_string).collect();
        format!(
            "scripts/robustness.sh --seed {} --faults {} --scenario-secs {} --members {} --runs 1",
            self.seed,
            faults.join(","),
            self.duration.as_secs(),
            self.members
        )
    }
}

/// What a run found.
#[derive(Debug, Default, Serialize)]
pub struct RunReport {
    pub seed: u64,
    pub operations: usize,
    pub unknown_outcomes: usize,
    pub watch_responses: usize,
    /// Compactions asked for during the run, and watches they canceled (each opened again).
    pub compactions: usize,
    pub watches_compacted: usize,
    pub faults: Vec<String>,
    pub anomalies: Vec<String>,
    /// Keys the linearizability search gave up on (not anomalies, but not checked).
    pub inconclusive: Vec<String>,
    /// The run's directory, if kept.
    pub kept: Option<PathBuf>,
    /// What was recorded (none if the run ended before the workload).
    #[serde(skip)]
    pub history: Option<History>,
}

/// Runs `scenario`; errors are anomalies in the report, never panics.
pub async fn run(scenario: &Scenario) -> RunReport {
    let faults: Vec<String> = scenario.faults.iter().map(ToString::to_string).collect();
    let dir = scenario.work_dir.join(format!("run-{}-{}", scenario.seed, faults.join("-")));
    let _ = std::fs::remove_dir_all(&dir);
    let mut report = RunReport { seed: scenario.seed, ..RunReport::default() };
    if let Err(e) = std::fs::create_dir_all(&dir) {
        report.anomalies.push(format!("create {}: {e}", dir.display()));
        return report;
    }
    let history = run_in(scenario, &dir, &mut report).await;
    if report.anomalies.is_empty() && !scenario.keep_always {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        keep(scenario, &dir, history.as_ref(), &report);
        report.kept = Some(dir);
    }
    report.history = history;
    report
}

async fn run_in(scenario: &Scenario, dir: &Path, report: &mut RunReport) -> Option<History> {
    let mut rng = Rng::new(scenario.seed);
    let namespaced = scenario.faults.iter().any(|f| f.needs_network());
    let started = Cluster::start(&scenario.binary, dir, scenario.members, namespaced).await;
    let mut cluster = match started {
        Ok(cluster) => cluster,
        Err(e) => {
            report.anomalies.push(format!("the cluster did not start: {e}"));
            return None;
        }
    };
    let endpoints = cluster.endpoints();
    let recorder = Recorder::default();
    let mut running =
        match workload::start(&endpoints, &scenario.workload, &mut rng.fork(), &recorder).await {
            Ok(running) => running,
            Err(e) => {
                report.anomalies.push(format!("the workload did not start: {e}"));
                return None;
            }
        };
    let until = tokio::time::Instant::now() + scenario.duration;
    let compactor = running.compactor().clone();
    let nemesis =
        nemesis::run(&mut cluster, &scenario.faults, &mut rng.fork(), until, &compactor).await;
    tokio::time::sleep_until(until).await;
    let leases = running.stop_clients().await;
    report.faults = nemesis.faults;
    report.anomalies.extend(nemesis.anomalies);
    if let Err(e) = cluster.heal().await {
        report.anomalies.push(format!("the cluster did not come back after the run: {e}"));
        return Some(History {
            seed: scenario.seed,
            operations: recorder.operations(),
            ..History::default()
        });
    }

    // A last read of every key, so a write lost at the very end shows too.
    let final_revision = final_read(&endpoints, &recorder).await;
    let converged = converge(&cluster, report).await;
    let revision = converged.unwrap_or(final_revision);
    report.anomalies.extend(leases_end(&cluster, &leases).await);
    let watches = running.finish_watches(revision).await;
    // The log the compactions kept, then the rest: up to the last change any watcher
    // saw, since leases may still expire after the final revision.
    let watched = watches.iter().flat_map(|w| &w.responses).flat_map(|r| &r.events);
    let log_end = watched.map(|e| e.revision).fold(revision, i64::max);
    let kept = compactor.kept().await;
    let mut committed = kept.events;
    match workload::committed_log(&endpoints[0], kept.up_to + 1, log_end).await {
        Ok(rest) => committed.extend(rest),
        Err(e) => {
            report.anomalies.push(e);
            committed.clear();
        }
    }
    cluster.stop();
    let history = History {
        seed: scenario.seed,
        operations: recorder.operations(),
        watches,
        committed,
        compactions: kept.compactions,
        final_revision: revision,
        leases,
    };
    check(&history, scenario.max_explored, report);
    Some(history)
}

/// Reads the whole key prefix once (recorded) and returns the revision it read at.
async fn final_read(endpoints: &[String], recorder: &Recorder) -> i64 {
    const FINAL_READER: u32 = u32::MAX;
    let Ok(client) = workload::connect(endpoints).await else { return 0 };
    let request =
        Request::Range { key: KEY_PREFIX.into(), range_end: Some(workload::prefix_end()) };
    let invoke = recorder.now();
    let result = client.get(KEY_PREFIX, Some(oxetcd_client::GetOptions::new().with_prefix())).await;
    let Ok(response) = result else { return 0 };
    let revision = response.header.as_ref().map_or(0, |h| h.revision);
    let kvs = response
        .kvs
        .iter()
        .map(|kv| crate::history::Kv {
            key: String::from_utf8_lossy(&kv.key).into_owned(),
            value: String::from_utf8_lossy(&kv.value).into_owned(),
            mod_revision: kv.mod_revision,
        })
        .collect();
    let outcome = Outcome::Ok(crate::history::Response::Range { revision, kvs });
    recorder.record(FINAL_READER, invoke, request, outcome);
    revision
}

/// After the run, with nothing refreshing them any more: what TimeToLive says is left of
/// each lease is no more than its TTL (plus a new leader's extension), and once that has
/// passed the lease is gone and its key with it. Asked of the leader alone, whose lessor
/// decides: a lease is gone when the leader no longer lists it (TimeToLive cannot say:
/// etcd answers an expired lease not yet revoked with what is left, 0 or less, as for
/// one not found), and a revoke deletes the lease's keys before the lessor forgets it.
async fn leases_end(cluster: &Cluster, leases: &[LeaseRecord]) -> Vec<String> {
    let mut anomalies = Vec::new();
    let mut live: Vec<&LeaseRecord> = leases.iter().collect();
    for round in 1..=LEASE_EXPIRY_ROUNDS {
        let Some(leader) = leader_client(cluster).await else {
            return vec!["no leader to ask for the leases after the run".into()];
        };
        let listed: HashSet<i64> = match leader.lease_leases().await {
            Ok(answer) => answer.leases.iter().map(|lease| lease.id).collect(),
            Err(e) => return vec![format!("LeaseLeases after the run: {e}")],
        };
        let mut longest = 0;
        let mut still = Vec::new();
        for lease in live {
            if !listed.contains(&lease.id) {
                anomalies.extend(key_left_behind(&leader, lease).await);
                continue;
            }
            let left = match leader.lease_time_to_live(lease.id, false).await {
                Ok(answer) => answer.ttl,
                Err(e) => {
                    anomalies.push(format!("lease {:x}: TimeToLive after the run: {e}", lease.id));
                    continue;
                }
            };
            let granted = lease.refreshed.iter().map(|(_, ttl)| *ttl).max().unwrap_or(0);
            if left > granted + PROMOTION_EXTENSION_SECS {
                anomalies.push(format!(
                    "lease {:x}: {left} s left after the run, more than its TTL of {granted} s",
                    lease.id
                ));
            }
            longest = longest.max(left);
            still.push(lease);
        }
        live = still;
        if live.is_empty() {
            break;
        }
        if round == LEASE_EXPIRY_ROUNDS {
            for lease in &live {
                anomalies.push(format!(
                    "lease {:x} ({}): still there {LEASE_EXPIRY_ROUNDS} times after what \
                     TimeToLive said was left of it had passed",
                    lease.id, lease.key
                ));
            }
            break;
        }
        let wait = Duration::from_secs(u64::try_from(longest).unwrap_or(0)) + LEASE_EXPIRY_SLACK;
        tokio::time::sleep(wait).await;
    }
    anomalies
}

/// A client of the member that leads now, if one does.
async fn leader_client(cluster: &Cluster) -> Option<oxetcd_client::Client> {
    for member in &cluster.members {
        let Ok(client) = member_client(&member.client_url, END_REQUEST_TIMEOUT).await else {
            continue;
        };
        let Ok(status) = client.maintenance().status().await else { continue };
        if status.header.is_some_and(|h| h.member_id == status.leader) {
            return Some(client);
        }
    }
    None
}

/// The anomaly if the key put with an ended lease is still there.
async fn key_left_behind(client: &oxetcd_client::Client, lease: &LeaseRecord) -> Option<String> {
    match client.get(lease.key.as_str(), None).await {
        Ok(answer) if answer.kvs.iter().any(|kv| kv.lease == lease.id) => Some(format!(
            "lease {:x} has ended, but its key {} is still there",
            lease.id, lease.key
        )),
        Ok(_) => None,
        Err(e) => Some(format!("reading {} after the run: {e}", lease.key)),
    }
}

/// Waits until every member reports the same revision, then compares their HashKV at
/// it; returns the revision.
async fn converge(cluster: &Cluster, report: &mut RunReport) -> Option<i64> {
    let deadline = tokio::time::Instant::now() + CONVERGE_TIMEOUT;
    let mut clients = Vec::new();
    for member in &cluster.members {
        match member_client(&member.client_url, END_REQUEST_TIMEOUT).await {
            Ok(client) => clients.push(client),
            Err(e) => {
                report.anomalies.push(format!("{} unreachable after the run: {e}", member.name));
                return None;
            }
        }
    }
    let revisions = loop {
        let mut revisions = Vec::new();
        for client in &clients {
            let status = client.maintenance().status().await.ok();
            revisions.push(status.and_then(|s| s.header).map_or(-1, |h| h.revision));
        }
        if revisions.iter().all(|r| *r == revisions[0] && *r >= 0) {
            break revisions;
        }
        if tokio::time::Instant::now() > deadline {
            report.anomalies.push(format!(
                "the members did not reach one revision within {CONVERGE_TIMEOUT:?}: {revisions:?}"
            ));
            return None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let revision = revisions[0];
    let mut hashes = Vec::new();
    for (client, member) in clients.iter().zip(&cluster.members) {
        match client.maintenance().hash_kv(revision).await {
            Ok(hash) => hashes.push((member.name.clone(), hash.hash, hash.compact_revision)),
            Err(e) => report.anomalies.push(format!("HashKV on {}: {e}", member.name)),
        }
    }
    if hashes.windows(2).any(|w| (w[0].1, w[0].2) != (w[1].1, w[1].2)) {
        report.anomalies.push(format!("HashKV differs at revision {revision}: {hashes:?}"));
    }
    Some(revision)
}

/// Runs every checker on `history`, adding what they find to `report`.
pub fn check(history: &History, max_explored: usize, report: &mut RunReport) {
    report.operations = history.operations.len();
    report.unknown_outcomes =
        history.operations.iter().filter(|op| matches!(op.outcome, Outcome::Unknown(_))).count();
    report.watch_responses = history.watches.iter().map(|w| w.responses.len()).sum();
    report.compactions = history.compactions.len();
    report.watches_compacted = history.watches.iter().filter(|w| w.compacted.is_some()).count();
    // Unanswered writes settled by the committed log, when the log is there to say.
    let operations = if history.committed.is_empty() {
        history.operations.clone()
    } else {
        linearizability::settle_unknown_writes(&history.operations, &history.committed)
    };
    let linearizable = linearizability::check(&operations, max_explored);
    for (key, verdict) in &linearizable.violations {
        report.anomalies.push(format!("not linearizable on {key}: {verdict:?}"));
    }
    report.inconclusive = linearizable.inconclusive;
    report.anomalies.extend(checks::check_committed(history, KEY_PREFIX, history.final_revision));
    let lease_streams: Vec<_> =
        history.watches.iter().filter(|w| w.key == workload::LEASE_PREFIX).collect();
    report.anomalies.extend(checks::check_leases(&history.leases, &lease_streams));
    for (i, stream) in history.watches.iter().enumerate() {
        report.anomalies.extend(checks::check_watch(
            &format!("watch {i}"),
            stream,
            &history.committed,
            &history.compactions,
        ));
    }
}

/// Writes what a failing run leaves behind next to the member logs.
fn keep(scenario: &Scenario, dir: &Path, history: Option<&History>, report: &RunReport) {
    if let Some(history) = history
        && let Ok(json) = serde_json::to_string(history)
    {
        let _ = std::fs::write(dir.join("history.json"), json);
    }
    let _ = std::fs::write(dir.join("seed"), format!("{}\n", scenario.seed));
    let _ = std::fs::write(dir.join("faults.txt"), report.faults.join("\n") + "\n");
    let _ = std::fs::write(dir.join("anomalies.txt"), report.anomalies.join("\n") + "\n");
    let replay = format!(
        "# run the scenario again (same seed: same workload and faults, timing aside)\n{}\n\
         # check the recorded history again\n\
         cargo run -p oxetcd-robustness -- check {}\n",
        scenario.replay_command(),
        dir.join("history.json").display()
    );
    let _ = std::fs::write(dir.join("replay.txt"), replay);
}
