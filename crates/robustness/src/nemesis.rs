//! The faults: kill -9 and restart (one member, the leader, all), SIGSTOP/SIGCONT
//! pauses, failpoints that make storage fail (the member must stop through the fatal
//! path: exit code 1 after its one fatal line) or that fail what a member survives (a
//! snapshot transfer, a defragmentation: it must go on), network partitions (a member or
//! the leader isolated, one link cut so a member sees both sides, or one way only:
//! message by message in the transport, or by IP) and delayed or lossy member traffic
//! (`tc`, and peer messages dropped at random by the transport). Drawn from the run's
//! seed.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::cluster::{Cluster, FATAL_LINE, SNAPSHOT_COUNT, START_TIMEOUT, member_client};
use crate::compaction::Compactor;
use crate::failpoints::{DROP_RECEIVE, DROP_SEND};
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
    // A raft snapshot's file, before it is written, and after it, before its WAL record.
    "raft::snapshot-save",
    "raft::snapshot-save-after",
    // The apply thread's write of an entry to the store.
    "apply::store-write",
    // The store's committer, before and after the backend commit.
    "mvcc::backend-commit",
    "mvcc::backend-commit-after",
    // A lease revoke's backend write (a client's revoke or an expiry), after the lessor
    // let the lease go.
    "apply::lease-revoke",
    // A lagging member putting the backend it received with the leader's snapshot in
    // place (the member is made to lag: see `lag_behind_snapshots`).
    "apply::snapshot-install",
    // A commit of the background compaction's batches (the nemesis compacts).
    "mvcc::compact",
];

/// The failpoints at failures a member survives, as etcd's does: the operation fails
/// and is tried again, nothing stops. Always errors, never panics.
pub const SURVIVED_FAILPOINTS: &[&str] = &[
    // A snapshot transfer to a lagging member breaks off mid-file (the network's
    // failure, not the disk's): the sender reports it to raft and sends again, and the
    // lagging member catches up.
    "rafthttp::snapshot-send",
    // The lagging member's write of a received snapshot file fails partway (a full or
    // failing disk, on a file not yet in use): it answers the sender an error, drops the
    // partial file, lives on, and the next transfer catches it up.
    "rafthttp::snapshot-receive",
    // A defragmentation fails before its swap: Defragment answers an error, the old
    // file serves on, and the next defragmentation succeeds.
    "mvcc::defrag",
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
/// The same for the lease revoke, applied every second or two (the workload's leases
/// live 2 to 5 s, and one in four is revoked early).
const LEASE_FAILPOINT_SKIPS: u64 = 3;
/// How many snapshot transfers to a lagging member break off before one goes through.
const SNAPSHOT_TRANSFER_FAILURES: (u64, u64) = (1, 3);
/// Entries the others commit while a member is down, so that it falls behind the
/// leader's log and must be sent a snapshot: three snapshots' worth (the leader may keep
/// up to `--snapshot-count` entries more for a follower it still replicates to).
const LAG_ENTRIES: u64 = 3 * SNAPSHOT_COUNT;
/// How long the filler writes may take to make a member lag.
const LAG_TIMEOUT: Duration = Duration::from_secs(20);
/// Filler writers, each putting one key of its own outside the workload's prefixes.
const FILLERS: usize = 8;
/// The prefix of the filler keys: not under `rb/` or `rbl/`, so no check reads them but
/// the committed log's density.
pub const FILLER_PREFIX: &str = "rbfill/";
/// One maintenance request (Defragment, Status) of the nemesis.
const MAINTENANCE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a partition lasts: from under an election timeout to several.
const PARTITION_MS: (u64, u64) = (300, 4_000);
/// How long member traffic is delayed, by how much (and jitter), and how much is lost.
const DELAY_MS: (u64, u64) = (1_000, 4_000);
const DELAY_BY_MS: (u64, u64) = (20, 300);
const DELAY_JITTER_MS: u64 = 20;
const LOSS_PERCENT: (u64, u64) = (0, 15);
/// The share of peer messages the transport drops at random, in percent.
const MESSAGE_LOSS_PERCENT: (u64, u64) = (10, 51);
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
    compactor: &Compactor,
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
            FaultClass::Failpoint => failpoint(cluster, rng, compactor, &mut log.anomalies).await,
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
    let what = match rng.below(6) {
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
        2 | 3 => one_way_messages(cluster, rng).await?,
        4 => one_way_packets(cluster, rng).await?,
        _ => {
            let (i, role) = target(cluster, rng).await;
            network(cluster)?.isolate(i)?;
            format!("{role} {} isolated", cluster.members[i].name)
        }
    };
    tokio::time::sleep(lasts).await;
    cluster.heal_network().await?;
    Ok(format!("{what} for {lasts:?}"))
}

/// The ids of `members`, as the transport's drop failpoints take them.
fn hex_ids(cluster: &Cluster, members: &[usize]) -> String {
    let ids: Vec<String> =
        members.iter().map(|&i| format!("{:x}", cluster.members[i].id)).collect();
    ids.join(",")
}

/// A clean one-way partition, message by message: the target (the leader half the time)
/// sends nothing that arrives, or hears nothing, while every connection stays up (the
/// transport's drop failpoints). The cut is armed on the target, or on each of the others
/// (the same cut seen from the other end), as drawn.
async fn one_way_messages(cluster: &mut Cluster, rng: &mut Rng) -> Result<String, String> {
    let (i, role) = target(cluster, rng).await;
    let deaf = rng.below(2) == 0;
    let on_target = rng.below(2) == 0;
    let others: Vec<usize> = (0..cluster.members.len()).filter(|&o| o != i).collect();
    // What the target does not send is what the others do not receive, and the reverse.
    let (at_target, at_others) =
        if deaf { (DROP_RECEIVE, DROP_SEND) } else { (DROP_SEND, DROP_RECEIVE) };
    let name = cluster.members[i].name.clone();
    let armed = if on_target {
        let actions = format!("return({})", hex_ids(cluster, &others));
        cluster.arm(i, at_target, &actions).await?;
        format!("{at_target} on {name}")
    } else {
        let actions = format!("return({})", hex_ids(cluster, &[i]));
        for &other in &others {
            cluster.arm(other, at_others, &actions).await?;
        }
        format!("{at_others} on the others")
    };
    Ok(if deaf {
        format!("nothing reaches {role} {name} (messages dropped by {armed}, connections up)")
    } else {
        format!(
            "nothing from {role} {name} reaches the others (messages dropped by {armed}, \
             connections up)"
        )
    })
}

/// One way by IP, with blackhole routes: the packets the target (the leader half the
/// time) sends to the others are dropped, or those they send to it. TCP makes this
/// unclean (the data of established connections still flows the other way while its
/// acknowledgements are lost, and no connection opens), which is what it is kept for:
/// it is the fault of a half-dead network path, where the transport must notice its
/// connections stalled (HTTP/2 keepalive) and dial again once the path is back.
async fn one_way_packets(cluster: &mut Cluster, rng: &mut Rng) -> Result<String, String> {
    let (i, role) = target(cluster, rng).await;
    let deaf = rng.below(2) == 0;
    let n = cluster.members.len();
    let net = network(cluster)?;
    for other in (0..n).filter(|&o| o != i) {
        if deaf {
            net.cut_one_way(other, i)?;
        } else {
            net.cut_one_way(i, other)?;
        }
    }
    let name = &cluster.members[i].name;
    let direction = if deaf { "to" } else { "from" };
    Ok(format!(
        "packets {direction} {role} {name} blackholed (IP one way: TCP connections stall both \
         ways)"
    ))
}

/// Slowed member traffic (`tc`), or peer messages lost at random.
async fn delay(cluster: &mut Cluster, rng: &mut Rng) -> Result<String, String> {
    if rng.below(2) == 0 {
        return message_loss(cluster, rng).await;
    }
    let (i, role) = target(cluster, rng).await;
    let lasts = ms(DELAY_MS, rng);
    let by = rng.between(DELAY_BY_MS.0, DELAY_BY_MS.1);
    let loss = rng.between(LOSS_PERCENT.0, LOSS_PERCENT.1);
    let kbit = rng.between(SLOW_KBIT.0, SLOW_KBIT.1);
    let used = network(cluster)?.delay(i, by, DELAY_JITTER_MS, loss, kbit)?;
    tokio::time::sleep(lasts).await;
    cluster.heal_network().await?;
    let how = match used {
        "netem" => format!("{by}ms±{DELAY_JITTER_MS}ms delay, {loss}% loss"),
        _ => format!("{kbit} kbit/s, {by}ms queue (tbf)"),
    };
    Ok(format!("{role} {} sends at {how} for {lasts:?}", cluster.members[i].name))
}

/// Dropped peer traffic, as netem loss would drop it (this machine's kernel has no
/// netem): a share of every raft message one member sends and receives, or of every
/// member's, vanishes at random (the transport's drop failpoints with a probability, each
/// message drawn on its own), connections up.
async fn message_loss(cluster: &mut Cluster, rng: &mut Rng) -> Result<String, String> {
    let lasts = ms(DELAY_MS, rng);
    let percent = rng.between(MESSAGE_LOSS_PERCENT.0, MESSAGE_LOSS_PERCENT.1);
    let actions = format!("{percent}%return");
    let what = if rng.below(3) == 0 {
        for i in 0..cluster.members.len() {
            cluster.arm(i, DROP_SEND, &actions).await?;
        }
        format!("{percent}% of every peer message dropped")
    } else {
        let (i, role) = target(cluster, rng).await;
        cluster.arm(i, DROP_SEND, &actions).await?;
        cluster.arm(i, DROP_RECEIVE, &actions).await?;
        format!(
            "{percent}% of the peer messages of {role} {} dropped, both ways",
            cluster.members[i].name
        )
    };
    tokio::time::sleep(lasts).await;
    cluster.heal_network().await?;
    Ok(format!("{what} (connections up) for {lasts:?}"))
}

/// How many calls of failpoint `name` to let through, at most (exclusive).
fn skips_below(name: &str) -> u64 {
    match name {
        "raft::snapshot-save" | "raft::snapshot-save-after" => SNAPSHOT_FAILPOINT_SKIPS,
        // Reached once per fault: the one install, the one compaction.
        "apply::snapshot-install" | "mvcc::compact" => 1,
        "apply::lease-revoke" => LEASE_FAILPOINT_SKIPS,
        _ => FAILPOINT_SKIPS,
    }
}

/// Restarts a member with a failpoint armed: at a storage failure, it must stop by
/// itself through the fatal path; at a failure it survives, it must go on.
async fn failpoint(
    cluster: &mut Cluster,
    rng: &mut Rng,
    compactor: &Compactor,
    anomalies: &mut Vec<String>,
) -> Result<String, String> {
    let all = STORAGE_FAILPOINTS.len() + SURVIVED_FAILPOINTS.len();
    let drawn = rng.below(all as u64) as usize;
    let Some(&name) = STORAGE_FAILPOINTS.get(drawn) else {
        let name = SURVIVED_FAILPOINTS[drawn - STORAGE_FAILPOINTS.len()];
        return match name {
            "rafthttp::snapshot-send" => {
                snapshot_transfer(cluster, rng, anomalies, TransferSide::Send).await
            }
            "rafthttp::snapshot-receive" => {
                snapshot_transfer(cluster, rng, anomalies, TransferSide::Receive).await
            }
            _ => defrag(cluster, rng, anomalies).await,
        };
    };
    let (i, role) = target(cluster, rng).await;
    let skips = rng.below(skips_below(name));
    // Mostly a storage error (the fatal path); sometimes a panic (the process must end,
    // as etcd's does).
    let panics = rng.below(PANIC_ONE_IN) == 0;
    let action = if panics { "panic" } else { "return" };
    let spec = format!("{name}={skips}*off->{action}");
    cluster.kill(i);
    let member = cluster.members[i].name.clone();
    if name == "apply::snapshot-install"
        && let Err(e) = lag_behind_snapshots(cluster, i).await
    {
        return Ok(format!("failpoint {spec} on {role} {member}: not reached ({e})"));
    }
    if let Err(e) = cluster.spawn(i, Some(&spec)) {
        anomalies.push(format!("restart {member} with {spec}: {e}"));
        return Ok(format!("failpoint {spec} on {role} {member}: not started"));
    }
    if name == "mvcc::compact" {
        // Compacted on every member once the armed one applies the entry; it then stops.
        if let Err(e) = compact(cluster, i, compactor).await {
            cluster.kill(i);
            return Ok(format!("failpoint {spec} on {role} {member}: not reached ({e})"));
        }
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

/// The running members' highest applied raft index, asking each in turn.
async fn applied_index(cluster: &mut Cluster) -> Option<u64> {
    let mut highest = None;
    for i in 0..cluster.members.len() {
        if !cluster.is_running(i) {
            continue;
        }
        let endpoint = cluster.members[i].client_url.clone();
        let status = async {
            let client = member_client(&endpoint, MAINTENANCE_TIMEOUT).await.ok()?;
            client.maintenance().status().await.ok()
        };
        if let Ok(Some(status)) = tokio::time::timeout(MAINTENANCE_TIMEOUT, status).await {
            highest = highest.max(Some(status.raft_applied_index));
        }
    }
    highest
}

/// With member `down` stopped, writes filler keys through the others until their log
/// has moved [`LAG_ENTRIES`] past where it was: the leader has then snapshotted and cut
/// its log beyond what `down` holds, so `down` catches up only from a snapshot.
async fn lag_behind_snapshots(cluster: &mut Cluster, down: usize) -> Result<(), String> {
    assert!(!cluster.is_running(down), "the lagging member must be down");
    let from = applied_index(cluster).await.ok_or("no member answered Status")?;
    let endpoints: Vec<String> = (0..cluster.members.len())
        .filter(|&i| i != down)
        .map(|i| cluster.members[i].client_url.clone())
        .collect();
    let client = crate::workload::connect(&endpoints).await.map_err(|e| e.to_string())?;
    let deadline = tokio::time::Instant::now() + LAG_TIMEOUT;
    loop {
        let mut fillers = tokio::task::JoinSet::new();
        for w in 0..FILLERS {
            let client = client.clone();
            fillers.spawn(async move {
                for _ in 0..SNAPSHOT_COUNT / FILLERS as u64 {
                    let _ = client.put(format!("{FILLER_PREFIX}{w}"), "x", None).await;
                }
            });
        }
        fillers.join_all().await;
        let now = applied_index(cluster).await.unwrap_or(from);
        if now >= from + LAG_ENTRIES {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!(
                "the log moved {} entries in {LAG_TIMEOUT:?}, not {LAG_ENTRIES}",
                now - from
            ));
        }
    }
}

/// Compacts at the head (through any member, the log kept first) once member `i`
/// serves.
async fn compact(cluster: &mut Cluster, i: usize, compactor: &Compactor) -> Result<(), String> {
    cluster.wait_serving(i).await?;
    compactor.compact(0).await.map(|_| ())
}

/// The side of a snapshot transfer a failpoint breaks.
#[derive(Clone, Copy)]
enum TransferSide {
    /// `rafthttp::snapshot-send`, armed on every member but the lagging one (whichever
    /// leads sends).
    Send,
    /// `rafthttp::snapshot-receive`, armed on the lagging member.
    Receive,
}

impl TransferSide {
    fn failpoint(self) -> &'static str {
        match self {
            TransferSide::Send => "rafthttp::snapshot-send",
            TransferSide::Receive => "rafthttp::snapshot-receive",
        }
    }

    /// What the armed member logs once each time the failpoint breaks a transfer.
    fn injected(self) -> &'static str {
        match self {
            TransferSide::Send => "injected failure: the transfer broke off",
            // The error field of the failed write's line (the refusal of the transfer
            // quotes it again, prefixed).
            TransferSide::Receive => {
                r#""error":"injected failure: the received snapshot could not be written""#
            }
        }
    }
}

/// A snapshot transfer that fails on one side: a member is stopped and left behind (see
/// `lag_behind_snapshots`), the side's failpoint is armed (the others restarted with it
/// for `Send`, the lagging member started with it for `Receive`), and the lagging member
/// is started again. No member may stop; the lagging member must catch up (it serves,
/// and the run's end checks compare every member's HashKV).
async fn snapshot_transfer(
    cluster: &mut Cluster,
    rng: &mut Rng,
    anomalies: &mut Vec<String>,
    side: TransferSide,
) -> Result<String, String> {
    let (lagging, role) = target(cluster, rng).await;
    let failures = rng.between(SNAPSHOT_TRANSFER_FAILURES.0, SNAPSHOT_TRANSFER_FAILURES.1);
    let spec = format!("{}={failures}*return", side.failpoint());
    let member = cluster.members[lagging].name.clone();
    let others: Vec<usize> = (0..cluster.members.len()).filter(|&i| i != lagging).collect();
    let (armed, what) = match side {
        TransferSide::Send => {
            (others.clone(), format!("failpoint {spec} on the others, {role} {member} lagging"))
        }
        TransferSide::Receive => {
            (vec![lagging], format!("failpoint {spec} on {role} {member}, lagging"))
        }
    };
    cluster.kill(lagging);
    if let Err(e) = lag_behind_snapshots(cluster, lagging).await {
        return Ok(format!("{what}: not reached ({e})"));
    }
    if let TransferSide::Send = side {
        for &i in &others {
            cluster.kill(i);
        }
        for &i in &others {
            if let Err(e) = cluster.spawn(i, Some(&spec)) {
                anomalies.push(format!("restart {} with {spec}: {e}", cluster.members[i].name));
                return Ok(format!("{what}: not started"));
            }
        }
        for &i in &others {
            if let Err(e) = cluster.wait_serving(i).await {
                anomalies.push(format!("{} with {spec}: {e}", cluster.members[i].name));
                return Ok(format!("{what}: a sender did not serve"));
            }
        }
    }
    let lagging_spec = matches!(side, TransferSide::Receive).then_some(spec.as_str());
    cluster.spawn(lagging, lagging_spec)?;
    if let Err(e) = cluster.wait_serving(lagging).await {
        anomalies.push(format!(
            "{member}, whose snapshot transfers failed, did not catch up within \
             {START_TIMEOUT:?}: {e}"
        ));
        return Ok(format!("{what}: no catch-up"));
    }
    for i in 0..cluster.members.len() {
        if !cluster.is_running(i) {
            anomalies.push(format!(
                "{} stopped after a snapshot transfer failed; see {}",
                cluster.members[i].name,
                cluster.members[i].log.display()
            ));
        }
    }
    let broken: usize = armed
        .iter()
        .map(|&i| {
            let log = cluster.members[i].last_run_log();
            log.lines().filter(|l| l.contains(side.injected())).count()
        })
        .sum();
    if broken == 0 {
        // It caught up from the log after all: no snapshot was sent.
        return Ok(format!("{what}: not reached"));
    }
    Ok(format!("{what}: transfers failed: {broken}, {member} caught up"))
}

/// A defragmentation that fails: a member restarted with `mvcc::defrag` armed must
/// answer Defragment with an error and go on serving; the next Defragment succeeds.
async fn defrag(
    cluster: &mut Cluster,
    rng: &mut Rng,
    anomalies: &mut Vec<String>,
) -> Result<String, String> {
    let (i, role) = target(cluster, rng).await;
    let spec = "mvcc::defrag=1*return";
    let member = cluster.members[i].name.clone();
    let what = format!("failpoint {spec} on {role} {member}");
    cluster.kill(i);
    cluster.spawn(i, Some(spec))?;
    if let Err(e) = cluster.wait_serving(i).await {
        anomalies.push(format!("{member} with {spec}: {e}"));
        return Ok(format!("{what}: did not serve"));
    }
    let endpoint = cluster.members[i].client_url.clone();
    let defragment = async || {
        let client = member_client(&endpoint, MAINTENANCE_TIMEOUT).await?;
        client.maintenance().defragment().await
    };
    let refused = match defragment().await {
        Ok(done) => {
            anomalies.push(format!("{what}: Defragment succeeded through the failure: {done:?}"));
            return Ok(format!("{what}: not refused"));
        }
        Err(e) => e.to_string(),
    };
    if let Err(e) = cluster.wait_serving(i).await {
        anomalies.push(format!("{what}: the member did not serve after the failure: {e}"));
        return Ok(format!("{what}: stopped"));
    }
    if !refused.contains("injected") {
        // Another error (a timeout under load): the failpoint may not have been reached.
        return Ok(format!("{what}: not reached ({refused})"));
    }
    if let Err(e) = defragment().await {
        anomalies.push(format!("{what}: the next Defragment failed: {e}"));
    }
    Ok(format!("{what}: refused, then defragmented"))
}
