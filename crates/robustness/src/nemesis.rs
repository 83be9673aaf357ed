//! The faults: kill -9 and restart (one member, the leader, all), SIGSTOP/SIGCONT
//! pauses, failpoints that make storage fail (the member must stop through the fatal
//! path: exit code 1 after its one fatal line), network partitions (a member or the
//! leader isolated, or one link cut so a member sees both sides) and delayed, lossy
//! member traffic (`tc netem`). Drawn from the run's seed.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::cluster::{Cluster, FATAL_LINE};
use crate::rng::Rng;

/// A class of faults, as `--faults` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultClass {
    Kill,
    Pause,
    Failpoint,
    Partition,
    Delay,
}

impl FaultClass {
    /// Whether the class needs the members in network namespaces ([`crate::netns`]).
    pub fn needs_network(self) -> bool {
        matches!(self, FaultClass::Partition | FaultClass::Delay)
    }
}

/// Every class, in the order `run` takes them in turn.
pub const ALL_CLASSES: [FaultClass; 5] = [
    FaultClass::Kill,
    FaultClass::Pause,
    FaultClass::Failpoint,
    FaultClass::Partition,
    FaultClass::Delay,
];

impl FromStr for FaultClass {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "kill" => Ok(FaultClass::Kill),
            "pause" => Ok(FaultClass::Pause),
            "failpoint" => Ok(FaultClass::Failpoint),
            "partition" => Ok(FaultClass::Partition),
            "delay" => Ok(FaultClass::Delay),
            other => Err(format!(
                "unknown fault class {other:?} (kill, pause, failpoint, partition, delay)"
            )),
        }
    }
}

impl fmt::Display for FaultClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FaultClass::Kill => "kill",
            FaultClass::Pause => "pause",
            FaultClass::Failpoint => "failpoint",
            FaultClass::Partition => "partition",
            FaultClass::Delay => "delay",
        })
    }
}

/// The failpoints a storage failure is injected at, as an error (the member must take
/// the fatal path) or a panic (the process must end).
pub const STORAGE_FAILPOINTS: &[&str] = &[
    // The WAL append of a Ready, before and after its fdatasync.
    "raft::wal-save",
    "raft::wal-save-after",
    // A raft snapshot's file, before it is written.
    "raft::snapshot-save",
    // The apply thread's write of an entry to the store.
    "apply::store-write",
    // The store's committer, before and after the backend commit.
    "mvcc::backend-commit",
    "mvcc::backend-commit-after",
];

/// The quiet time between two faults.
const BETWEEN_FAULTS: (u64, u64) = (500, 1_500);
/// How long a killed member stays down.
const DOWN_MS: (u64, u64) = (100, 1_500);
/// How long a member stays paused: around the election timeout (750 ms), so some pauses
/// of a leader make a new one and some do not.
const PAUSE_MS: (u64, u64) = (300, 2_500);
/// Calls of a failpoint let through before it fails (spread over a run's early work).
const FAILPOINT_SKIPS: u64 = 30;
/// The same for the snapshot failpoint, which is called once per `--snapshot-count`
/// entries rather than per Ready or commit.
const SNAPSHOT_FAILPOINT_SKIPS: u64 = 2;
/// How long a partition lasts: from under an election timeout to several.
const PARTITION_MS: (u64, u64) = (300, 4_000);
/// How long member traffic is delayed, by how much (and jitter), and how much is lost.
const DELAY_MS: (u64, u64) = (1_000, 4_000);
const DELAY_BY_MS: (u64, u64) = (20, 300);
const DELAY_JITTER_MS: u64 = 20;
const LOSS_PERCENT: (u64, u64) = (0, 15);
/// Without netem: the rate a slowed member sends at (a few hundred requests a second).
const SLOW_KBIT: (u64, u64) = (200, 2_000);
/// One failpoint in this many panics instead of failing with an error.
const PANIC_ONE_IN: u64 = 3;
/// The binary's exit code after a panic (Go's, as etcd's).
const PANIC_EXIT_CODE: i32 = 2;
/// How long a member with an armed failpoint may take to reach it and stop.
const FAILPOINT_WAIT: Duration = Duration::from_secs(8);

/// What happened, for the run's log.
#[derive(Debug, Default)]
pub struct NemesisLog {
    pub faults: Vec<String>,
    /// Broken promises of the fault handling itself (a member that did not come back,
    /// a failpoint that did not take the fatal path).
    pub anomalies: Vec<String>,
}

fn ms(range: (u64, u64), rng: &mut Rng) -> Duration {
    Duration::from_millis(rng.between(range.0, range.1))
}

/// Injects faults of `classes` until `until`; every fault is healed before the next.
pub async fn run(
    cluster: &mut Cluster,
    classes: &[FaultClass],
    rng: &mut Rng,
    until: tokio::time::Instant,
) -> NemesisLog {
    let mut log = NemesisLog::default();
    let started = tokio::time::Instant::now();
    while tokio::time::Instant::now() < until {
        tokio::time::sleep(ms(BETWEEN_FAULTS, rng)).await;
        if tokio::time::Instant::now() >= until {
            break;
        }
        let class = classes[rng.below(classes.len() as u64) as usize];
        let at = started.elapsed().as_millis();
        let fault = match class {
            FaultClass::Kill => kill(cluster, rng).await,
            FaultClass::Pause => pause(cluster, rng).await,
            FaultClass::Failpoint => failpoint(cluster, rng, &mut log.anomalies).await,
            FaultClass::Partition => partition(cluster, rng).await,
            FaultClass::Delay => delay(cluster, rng).await,
        };
        let fault = match fault {
            Ok(fault) => fault,
            Err(e) => {
                log.anomalies.push(format!("the nemesis failed: {e}"));
                break;
            }
        };
        log.faults.push(format!("+{at}ms {fault}"));
        if let Err(e) = cluster.heal().await {
            log.anomalies.push(format!("after {fault}: {e}"));
            break;
        }
    }
    log
}

/// A member to hit: the leader half of the time (if one is known), else any.
async fn target(cluster: &mut Cluster, rng: &mut Rng) -> (usize, &'static str) {
    let n = cluster.members.len();
    if rng.below(2) == 0
        && let Some(leader) = cluster.leader().await
    {
        return (leader, "leader");
    }
    (rng.below(n as u64) as usize, "member")
}

async fn kill(cluster: &mut Cluster, rng: &mut Rng) -> Result<String, String> {
    let all = rng.below(5) == 0;
    let down = ms(DOWN_MS, rng);
    let what = if all {
        for i in 0..cluster.members.len() {
            cluster.kill(i);
        }
        "kill -9 all members".to_string()
    } else {
        let (i, role) = target(cluster, rng).await;
        cluster.kill(i);
        format!("kill -9 {role} {}", cluster.members[i].name)
    };
    tokio::time::sleep(down).await;
    Ok(format!("{what}, down {down:?}"))
}

async fn pause(cluster: &mut Cluster, rng: &mut Rng) -> Result<String, String> {
    let (i, role) = target(cluster, rng).await;
    let paused = ms(PAUSE_MS, rng);
    cluster.pause(i);
    tokio::time::sleep(paused).await;
    cluster.resume(i);
    Ok(format!("SIGSTOP {role} {} for {paused:?}", cluster.members[i].name))
}

fn network(cluster: &mut Cluster) -> Result<&mut crate::netns::Netns, String> {
    cluster.network.as_mut().ok_or_else(|| "the cluster runs without its own network".into())
}

async fn partition(cluster: &mut Cluster, rng: &mut Rng) -> Result<String, String> {
    let lasts = ms(PARTITION_MS, rng);
    let n = cluster.members.len();
    let what = match rng.below(3) {
        // One link cut: a third member still sees both sides (etcd's "bridge").
        0 if n > 2 => {
            let a = rng.below(n as u64) as usize;
            let b = (a + 1 + rng.below(n as u64 - 1) as usize) % n;
            network(cluster)?.cut(a, b)?;
            format!("link {}-{} cut", cluster.members[a].name, cluster.members[b].name)
        }
        // The largest minority (two of five) apart from the majority, with the member
        // drawn as target (the leader half the time) in the minority.
        1 if n > 4 => {
            let (first, role) = target(cluster, rng).await;
            let mut minority = vec![first];
            while minority.len() < (n - 1) / 2 {
                let other = rng.below(n as u64) as usize;
                if !minority.contains(&other) {
                    minority.push(other);
                }
            }
            let net = network(cluster)?;
            for &a in &minority {
                for b in (0..n).filter(|b| !minority.contains(b)) {
                    net.cut(a, b)?;
                }
            }
            let names: Vec<&str> =
                minority.iter().map(|&i| cluster.members[i].name.as_str()).collect();
            format!("minority {names:?} (with the {role}) cut off")
        }
        _ => {
            let (i, role) = target(cluster, rng).await;
            network(cluster)?.isolate(i)?;
            format!("{role} {} isolated", cluster.members[i].name)
        }
    };
    tokio::time::sleep(lasts).await;
    network(cluster)?.heal()?;
    Ok(format!("{what} for {lasts:?}"))
}

async fn delay(cluster: &mut Cluster, rng: &mut Rng) -> Result<String, String> {
    let (i, role) = target(cluster, rng).await;
    let lasts = ms(DELAY_MS, rng);
    let by = rng.between(DELAY_BY_MS.0, DELAY_BY_MS.1);
    let loss = rng.between(LOSS_PERCENT.0, LOSS_PERCENT.1);
    let kbit = rng.between(SLOW_KBIT.0, SLOW_KBIT.1);
    let used = network(cluster)?.delay(i, by, DELAY_JITTER_MS, loss, kbit)?;
    tokio::time::sleep(lasts).await;
    network(cluster)?.heal()?;
    let how = match used {
        "netem" => format!("{by}ms±{DELAY_JITTER_MS}ms delay, {loss}% loss"),
        _ => format!("{kbit} kbit/s, {by}ms queue (tbf)"),
    };
    Ok(format!("{role} {} sends at {how} for {lasts:?}", cluster.members[i].name))
}

/// Restarts a member with a storage failpoint armed and waits for it to stop by itself.
async fn failpoint(
    cluster: &mut Cluster,
    rng: &mut Rng,
    anomalies: &mut Vec<String>,
) -> Result<String, String> {
    let (i, role) = target(cluster, rng).await;
    let name = STORAGE_FAILPOINTS[rng.below(STORAGE_FAILPOINTS.len() as u64) as usize];
    let skips = rng.below(if name.contains("snapshot") {
        SNAPSHOT_FAILPOINT_SKIPS
    } else {
        FAILPOINT_SKIPS
    });
    // Mostly a storage error (the fatal path); sometimes a panic (the process must end,
    // as etcd's does).
    let panics = rng.below(PANIC_ONE_IN) == 0;
    let action = if panics { "panic" } else { "return" };
    let spec = format!("{name}={skips}*off->{action}");
    cluster.kill(i);
    let member = cluster.members[i].name.clone();
    if let Err(e) = cluster.spawn(i, Some(&spec)) {
        anomalies.push(format!("restart {member} with {spec}: {e}"));
        return Ok(format!("failpoint {spec} on {role} {member}: not started"));
    }
    let deadline = tokio::time::Instant::now() + FAILPOINT_WAIT;
    let status = loop {
        if let Some(status) = cluster.exited(i) {
            break Some(status);
        }
        if tokio::time::Instant::now() > deadline {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let Some(status) = status else {
        // Not reached in time (a snapshot failpoint needs enough writes): no fault.
        cluster.kill(i);
        return Ok(format!("failpoint {spec} on {role} {member}: not reached"));
    };
    let log = cluster.members[i].last_run_log();
    let fatal_lines = log.lines().filter(|l| l.contains(FATAL_LINE)).count();
    let expected = if panics {
        status.code() == Some(PANIC_EXIT_CODE) && log.contains("panicked")
    } else {
        status.code() == Some(1) && fatal_lines == 1
    };
    if !expected {
        let path = if panics {
            format!("exit code {PANIC_EXIT_CODE} after the panic")
        } else {
            "the fatal path: exit code 1 after one fatal line".to_string()
        };
        anomalies.push(format!(
            "failpoint {spec} on {member}: exit {status} with {fatal_lines} fatal lines, not \
             {path}; see {}",
            cluster.members[i].log.display()
        ));
    }
    Ok(format!("failpoint {spec} on {role} {member}: {status}"))
}
