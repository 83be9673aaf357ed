//! Clusters of the real `oxetcd` binary, one child process per member: `kill -9` of the
//! leader under concurrent writes, loss and return of quorum, restarts of every member
//! from disk (SIGTERM, then SIGKILL), a follower that needs a snapshot to catch up (also
//! when the snapshot's transfer breaks off or its receipt fails, and when the follower
//! fails to install it: failpoints), and a frozen (SIGSTOP) leader. Afterwards every
//! acknowledged write is on every member at the revision it was acknowledged with,
//! revisions are dense, HashKV and MemberList agree.
//! Leases: `kill -9` of the leader while a client keeps leases alive loses none of them,
//! and a lease whose client stops expires within TTL + election timeout; a leader frozen
//! past a lease's TTL does not revoke it when it thaws (etcd's #15247; failpoints).
//! A Put with a gRPC deadline sent to a follower cut off from its peers, by a client
//! that retries as etcd 3.4's Go client does, is answered as etcd answers it and
//! applied at most once; a linearizable read there runs out of time as in etcd.
//! A rolling restart with SIGTERM never stops writes for an election timeout: a leader
//! hands leadership over before it stops.
//! A leader whose messages to its followers all vanish, every connection up (a failpoint
//! armed while it runs), is replaced and follows the new leader once they flow again; a
//! read whose ReadIndex request vanished is answered soon after messages flow again.
//! Everything on 127.0.0.1 in temp dirs, bounded in time; processes die with the test,
//! and a failing test prints the tail of every member's log.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oxetcd_api::etcdserverpb::kv_client::KvClient;
use oxetcd_api::etcdserverpb::{PutRequest, RangeRequest, StatusResponse};
use oxetcd_client::{Client, GetOptions, PutOptions, WatchOptions};
use oxetcd_robustness::failpoints;
use support::{MemberConfig, Process, member_client};
use tokio::task::JoinHandle;
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

/// Fast elections keep failovers short.
const TIMING: &[&str] = &["--heartbeat-interval", "50", "--election-timeout", "500"];
/// How long any awaited cluster condition (a leader, progress, catch-up) may take.
const WAIT: Duration = Duration::from_secs(30);
/// A writer gives up on one request after this long and tries the next member.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);
/// A write without quorum must fail within this (etcd's request timeout here is
/// 5 s + 2 election timeouts = 6 s).
const NO_QUORUM_BOUND: Duration = Duration::from_secs(10);
/// Every test key is under this prefix (and `KEYS_END` ends the range).
const KEYS: &str = "k/";
const KEYS_END: &str = "k0";

/// A lazily connecting channel for the raw keep-alive stream: it reconnects by itself
/// after a member restarts.
fn channel(endpoint: &str) -> Channel {
    Endpoint::from_shared(endpoint.to_string())
        .expect("a valid endpoint")
        .connect_timeout(Duration::from_secs(1))
        .connect_lazy()
}

/// Polls `condition` until it yields a value; panics naming `what` after [`WAIT`].
async fn wait_until<T>(what: &str, condition: impl AsyncFnMut() -> Option<T>) -> T {
    support::poll_until(what, WAIT, condition).await
}

/// Members `m0`, `m1`, … each in its own process, data dir and log inside one temp dir.
/// A killed member keeps its [`Process`] (exited) until it is restarted, so that every
/// member's log tail is printed if the test panics.
struct Cluster {
    configs: Vec<MemberConfig>,
    processes: Vec<Process>,
    running: Vec<bool>,
    /// Member ids, as the members report them in response headers.
    ids: Vec<u64>,
    /// Dropped last: after the processes are dead and their logs printed.
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts `n` members with [`TIMING`] and `extra` flags, and waits until all serve
    /// and agree on a leader.
    async fn start(n: usize, extra: &[&str]) -> Cluster {
        Cluster::start_timed(n, TIMING, extra).await
    }

    /// [`Cluster::start`] with `timing` instead of [`TIMING`].
    async fn start_timed(n: usize, timing: &[&str], extra: &[&str]) -> Cluster {
        Cluster::start_with(n, timing, extra, None).await
    }

    /// [`Cluster::start_timed`], every member with `failpoints` (`FAILPOINTS`) if given.
    async fn start_with(
        n: usize,
        timing: &[&str],
        extra: &[&str],
        failpoints: Option<&str>,
    ) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut configs = Cluster::configs(dir.path(), n, timing, extra);
        if let Some(failpoints) = failpoints {
            for config in &mut configs {
                config.env.push(("FAILPOINTS".into(), failpoints.into()));
            }
        }
        Cluster::launch(dir, configs).await
    }

    /// [`Cluster::start`], each member serving its failpoint control on a port of its
    /// own ([`Cluster::arm`]).
    async fn start_with_failpoint_control(n: usize) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut configs = Cluster::configs(dir.path(), n, TIMING, &[]);
        let taken: Vec<String> =
            configs.iter().flat_map(|c| [c.client_url.clone(), c.peer_url.clone()]).collect();
        let mut ports = support::free_ports(3 * n)
            .into_iter()
            .filter(|port| !taken.iter().any(|url| url.ends_with(&format!(":{port}"))));
        for config in &mut configs {
            let port = ports.next().expect("a free port");
            config.env.push((failpoints::ADDRESS_ENV.into(), format!("127.0.0.1:{port}")));
        }
        Cluster::launch(dir, configs).await
    }

    /// The flags of `n` members `m0`, `m1`, … with `timing` and `extra` flags.
    fn configs(
        dir: &std::path::Path,
        n: usize,
        timing: &[&str],
        extra: &[&str],
    ) -> Vec<MemberConfig> {
        let names: Vec<String> = (0..n).map(|i| format!("m{i}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let flags: Vec<&str> = timing.iter().chain(extra).copied().collect();
        MemberConfig::cluster(dir, &names, &flags)
    }

    /// Starts a process per config, and waits until all serve and agree on a leader.
    async fn launch(dir: tempfile::TempDir, configs: Vec<MemberConfig>) -> Cluster {
        let n = configs.len();
        let processes = configs.iter().map(Process::spawn).collect();
        let mut cluster =
            Cluster { configs, processes, running: vec![true; n], ids: Vec::new(), _dir: dir };
        for process in &mut cluster.processes {
            process.wait_serving().await;
        }
        for i in 0..n {
            let status = wait_until("Status", async || cluster.status(i).await).await;
            cluster.ids.push(status.header.expect("a response header").member_id);
        }
        cluster.leader().await;
        cluster
    }

    fn name(&self, i: usize) -> &str {
        &self.configs[i].name
    }

    /// Where member `i` serves its failpoint control.
    fn failpoint_address(&self, i: usize) -> &str {
        let env = &self.configs[i].env;
        let address = env.iter().find(|(name, _)| name == failpoints::ADDRESS_ENV);
        &address.expect("a member started with its failpoint control").1
    }

    /// Arms `failpoint` with `actions` on member `i` while it runs.
    async fn arm(&self, i: usize, failpoint: &str, actions: &str) {
        let armed = failpoints::arm(self.failpoint_address(i), failpoint, actions).await;
        armed.unwrap_or_else(|e| panic!("arming {failpoint} on {}: {e}", self.name(i)));
    }

    /// Disarms `failpoint` on member `i`.
    async fn disarm(&self, i: usize, failpoint: &str) {
        let disarmed = failpoints::disarm(self.failpoint_address(i), failpoint).await;
        disarmed.unwrap_or_else(|e| panic!("disarming {failpoint} on {}: {e}", self.name(i)));
    }

    /// How many times a peer stream became active or inactive, in every member's log.
    fn stream_changes(&self) -> usize {
        self.configs.iter().map(|c| lines_with(&c.log(), "peer became")).sum()
    }

    fn running(&self) -> Vec<usize> {
        (0..self.configs.len()).filter(|&i| self.running[i]).collect()
    }

    fn endpoints(&self, members: &[usize]) -> Vec<String> {
        members.iter().map(|&i| self.configs[i].client_url.clone()).collect()
    }

    /// How many raft snapshot files (`member/snap/*.snap`) member `i` has on disk.
    fn snapshot_files(&self, i: usize) -> usize {
        let dir = self.configs[i].data_dir.join("member").join("snap");
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        entries
            .filter(|e| e.as_ref().is_ok_and(|e| e.path().extension() == Some("snap".as_ref())))
            .count()
    }

    /// A client of member `i` alone, each call bounded by [`CLIENT_TIMEOUT`], retries off.
    async fn client(&self, i: usize) -> Client {
        member_client(&self.configs[i].client_url, Some(CLIENT_TIMEOUT))
            .await
            .unwrap_or_else(|e| panic!("a client of {}: {e}", self.name(i)))
    }

    /// Member `i`'s Status, or `None` if it does not answer in time.
    async fn status(&self, i: usize) -> Option<StatusResponse> {
        let client = member_client(&self.configs[i].client_url, Some(CLIENT_TIMEOUT)).await.ok()?;
        client.maintenance().status().await.ok()
    }

    /// Statuses of all running members, once all of them answer.
    async fn statuses(&self) -> Option<Vec<StatusResponse>> {
        let mut statuses = Vec::new();
        for i in self.running() {
            statuses.push(self.status(i).await?);
        }
        Some(statuses)
    }

    /// The running member that every running member reports as leader, waiting for one.
    async fn leader(&self) -> usize {
        self.leader_among(&self.running()).await
    }

    /// The running member that all of `members` report as leader, waiting for one.
    async fn leader_among(&self, members: &[usize]) -> usize {
        wait_until("members to agree on a running leader", async || {
            let mut leaders = Vec::new();
            for &i in members {
                leaders.push(self.status(i).await?.leader);
            }
            if leaders.iter().any(|&l| l != leaders[0]) {
                return None;
            }
            let i = self.ids.iter().position(|&id| id == leaders[0])?;
            self.running[i].then_some(i)
        })
        .await
    }

    /// Waits until no running member reports a leader.
    async fn leaderless(&self) {
        wait_until("every running member to report no leader", async || {
            let statuses = self.statuses().await?;
            statuses.iter().all(|s| s.leader == 0).then_some(())
        })
        .await
    }

    /// A KV client of member `i`, connected, whose deadlines only the member enforces.
    /// A raw stub: the partition tests set each request's gRPC deadline and check the
    /// member's exact answer to it, which oxetcd-client's own timeout would hide.
    async fn server_timed_kv(&self, i: usize) -> KvClient<support::ServerTimedClient> {
        let origin = self.configs[i].client_url.parse().expect("a client URL");
        let mut kv = KvClient::with_origin(support::server_timed_client(), origin);
        let probe = RangeRequest { key: "probe".into(), serializable: true, ..Default::default() };
        kv.range(probe).await.unwrap_or_else(|e| panic!("a read on {}: {e}", self.name(i)));
        kv
    }

    /// Sends `signal` (`STOP`, `CONT`) to each of `members`. A process dropped by a
    /// failing test is killed, stopped or not.
    fn signal(&mut self, members: &[usize], signal: &str) {
        for &i in members {
            self.processes[i].signal(signal);
        }
    }

    /// SIGKILL to all of `members` at once, then waits until they are gone.
    fn kill(&mut self, members: &[usize]) {
        for &i in members {
            self.processes[i].send_kill();
        }
        for &i in members {
            self.processes[i].kill();
            self.running[i] = false;
        }
    }

    /// SIGTERM to all of `members` at once; each must exit cleanly in bounded time.
    async fn terminate(&mut self, members: &[usize]) {
        for &i in members {
            self.processes[i].signal("TERM");
        }
        for &i in members {
            let status = self.processes[i].wait_exit(Duration::from_secs(20)).await;
            assert!(status.success(), "{} exited with {status} on SIGTERM", self.name(i));
            self.running[i] = false;
        }
    }

    /// Restarts `members` on their data dirs (all at once: a member serves only once a
    /// quorum is back) and waits until each serves.
    async fn restart(&mut self, members: &[usize]) {
        for &i in members {
            assert!(!self.running[i], "{} is running", self.name(i));
            self.processes[i] = Process::spawn(&self.configs[i]);
            self.running[i] = true;
        }
        for &i in members {
            self.processes[i].wait_serving().await;
        }
    }

    /// Waits until every running member has applied all it committed, and all have the
    /// same applied index and revision; returns that revision.
    async fn caught_up(&self) -> i64 {
        wait_until("the running members to apply the same entries", async || {
            let statuses = self.statuses().await?;
            let applied = |s: &StatusResponse| {
                (s.raft_applied_index, s.header.as_ref().map_or(0, |h| h.revision))
            };
            let first = applied(&statuses[0]);
            let same = statuses
                .iter()
                .all(|s| applied(s) == first && s.raft_index == s.raft_applied_index);
            same.then_some(first.1)
        })
        .await
    }

    /// Member `i`'s test keys with their mod revisions (a serializable read: what this
    /// member itself holds), and its current revision.
    async fn contents(&self, i: usize) -> (BTreeMap<String, i64>, i64) {
        let range = GetOptions::new().with_range(KEYS_END).with_serializable();
        let response =
            self.client(i).await.get(KEYS, Some(range)).await.expect("a serializable range");
        let stored = response
            .kvs
            .iter()
            .map(|kv| (String::from_utf8_lossy(&kv.key).into_owned(), kv.mod_revision))
            .collect();
        (stored, response.header.expect("a response header").revision)
    }

    async fn hash_kv(&self, i: usize, revision: i64) -> u32 {
        let response = self.client(i).await.maintenance().hash_kv(revision).await;
        response.unwrap_or_else(|e| panic!("HashKV on {}: {e}", self.name(i))).hash
    }

    /// Once the running members have caught up: each holds every acknowledged write at
    /// its acknowledged revision, each revision from 2 to the current one belongs to
    /// exactly one key (every test put writes a new key), and HashKV agrees.
    async fn check(&self, acknowledged: &[(String, i64)]) {
        let revision = self.caught_up().await;
        let mut hashes = Vec::new();
        for i in self.running() {
            let name = self.name(i);
            let (stored, current) = self.contents(i).await;
            assert_eq!(current, revision, "{name}: current revision");
            for (key, acked) in acknowledged {
                assert_eq!(
                    stored.get(key),
                    Some(acked),
                    "{name}: the write of {key} acknowledged at revision {acked}"
                );
            }
            let mut revisions: Vec<i64> = stored.values().copied().collect();
            revisions.sort_unstable();
            for (expected, &found) in (2..).zip(&revisions) {
                assert_eq!(found, expected, "{name}: revisions are not dense");
            }
            assert_eq!(revisions.len() as i64, revision - 1, "{name}: puts up to {revision}");
            hashes.push((name, self.hash_kv(i, revision).await));
        }
        assert!(
            hashes.iter().all(|(_, h)| *h == hashes[0].1),
            "HashKV at revision {revision} differs: {hashes:?}"
        );
        self.check_membership().await;
    }

    /// Every running member lists every member under its id, name and URLs (each one
    /// published itself), and all report the same cluster id.
    async fn check_membership(&self) {
        let expected: Vec<(u64, String, Vec<String>, Vec<String>)> = self
            .configs
            .iter()
            .zip(&self.ids)
            .map(|(c, &id)| {
                (id, c.name.clone(), vec![c.peer_url.clone()], vec![c.client_url.clone()])
            })
            .collect();
        let mut cluster_ids = Vec::new();
        for i in self.running() {
            let response = self.client(i).await.cluster().member_list().await;
            let response =
                response.unwrap_or_else(|e| panic!("MemberList on {}: {e}", self.name(i)));
            let mut listed: Vec<_> = response
                .members
                .into_iter()
                .map(|m| (m.id, m.name, m.peer_ur_ls, m.client_ur_ls))
                .collect();
            listed.sort_by(|a, b| a.1.cmp(&b.1));
            assert_eq!(listed, expected, "{}: MemberList", self.name(i));
            cluster_ids.push(response.header.expect("a response header").cluster_id);
        }
        assert!(
            cluster_ids.iter().all(|&id| id == cluster_ids[0]),
            "cluster ids: {cluster_ids:x?}"
        );
    }
}

/// Tasks writing new keys as fast as they can, each starting on its own member and
/// moving to the next one on any error; they record every acknowledged put. Each writer
/// holds one client per member rather than one client over all of them: a client's
/// round-robin would keep sending every third put to a frozen (SIGSTOP) leader.
struct Writers {
    stop: Arc<AtomicBool>,
    acknowledged: Arc<Mutex<Vec<(String, i64)>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Writers {
    /// `count` writers over `endpoints`; their keys are `k/<phase>/<writer>/<attempt>`,
    /// new for every attempt, so a put that failed but was applied anyway is harmless.
    fn start(phase: &str, endpoints: &[String], count: usize) -> Writers {
        let stop = Arc::new(AtomicBool::new(false));
        let acknowledged: Arc<Mutex<Vec<(String, i64)>>> = Arc::default();
        let tasks = (0..count)
            .map(|writer| {
                let (stop, acknowledged) = (stop.clone(), acknowledged.clone());
                let endpoints = endpoints.to_vec();
                let prefix = format!("{KEYS}{phase}/{writer}/");
                tokio::spawn(async move {
                    let mut clients: Vec<Option<Client>> = vec![None; endpoints.len()];
                    let mut target = writer % clients.len();
                    for attempt in 0.. {
                        if stop.load(Ordering::SeqCst) {
                            return;
                        }
                        let key = format!("{prefix}{attempt:06}");
                        if clients[target].is_none() {
                            // Connected on first use; a member down then is tried later.
                            clients[target] =
                                member_client(&endpoints[target], Some(CLIENT_TIMEOUT)).await.ok();
                        }
                        let put = match &clients[target] {
                            Some(client) => client.put(key.clone(), key.clone(), None).await,
                            None => Err(oxetcd_client::Error::Closed("no connection")),
                        };
                        match put {
                            Ok(response) => {
                                let header = response.header.expect("a header");
                                acknowledged.lock().unwrap().push((key, header.revision));
                            }
                            Err(_) => {
                                target = (target + 1) % clients.len();
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                        }
                    }
                })
            })
            .collect();
        Writers { stop, acknowledged, tasks }
    }

    fn count(&self) -> usize {
        self.acknowledged.lock().unwrap().len()
    }

    /// Waits until `more` further puts have been acknowledged.
    async fn progress(&self, more: usize) {
        let target = self.count() + more;
        wait_until(&format!("{target} acknowledged writes"), async || {
            (self.count() >= target).then_some(())
        })
        .await;
    }

    /// Stops the writers and returns every acknowledged put with its revision.
    async fn stop(self) -> Vec<(String, i64)> {
        self.stop.store(true, Ordering::SeqCst);
        for task in self.tasks {
            task.await.expect("a writer");
        }
        std::mem::take(&mut *self.acknowledged.lock().unwrap())
    }
}

/// A write to `endpoint` without a quorum: it must fail (not hang) within
/// [`NO_QUORUM_BOUND`], with etcd's "unavailable" errors (the member's own answer: one
/// endpoint, retries off).
async fn put_fails_without_quorum(endpoint: String, key: &'static str) {
    let client = member_client(&endpoint, None).await.expect("a client of a survivor");
    let started = Instant::now();
    let result = tokio::time::timeout(NO_QUORUM_BOUND, client.put(key, key, None))
        .await
        .unwrap_or_else(|_| panic!("a write to {endpoint} without quorum hung"));
    let status = result.expect_err("a write without quorum succeeded").into_status();
    assert_eq!(status.code(), Code::Unavailable, "{endpoint}: {status:?}");
    assert!(status.message().starts_with("etcdserver: "), "{endpoint}: {status:?}");
    eprintln!("{endpoint}: {:?} after {:?}", status.message(), started.elapsed());
}

/// `GET /health` on a client URL: the status code and the body.
async fn health(endpoint: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = endpoint.trim_start_matches("http://");
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(address).await?;
        let request =
            format!("GET /health HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    let response = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .unwrap_or_else(|_| panic!("GET {endpoint}/health hung"))
        .unwrap_or_else(|e| panic!("GET {endpoint}/health: {e}"));
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    let code = head.split_whitespace().nth(1).and_then(|c| c.parse().ok());
    (code.unwrap_or_else(|| panic!("an HTTP status line: {head}")), body.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_lose_no_acknowledged_write_when_the_leader_is_killed() {
    let mut cluster = Cluster::start(3, &[]).await;
    let writers = Writers::start("failover", &cluster.endpoints(&[0, 1, 2]), 4);
    writers.progress(200).await;

    // Twice: the leader dies mid-stream, the others elect a new one and keep taking
    // writes, and the old leader comes back on its data dir and catches up while writes
    // go on.
    for _ in 0..2 {
        let old_leader = cluster.leader().await;
        cluster.kill(&[old_leader]);
        let new_leader = cluster.leader().await;
        assert_ne!(new_leader, old_leader);
        writers.progress(200).await;
        cluster.restart(&[old_leader]).await;
        writers.progress(100).await;
    }
    let acknowledged = writers.stop().await;
    cluster.check(&acknowledged).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_members_write_with_a_quorum_and_fail_in_bounded_time_without() {
    let mut cluster = Cluster::start(5, &[]).await;
    let leader = cluster.leader().await;
    let followers: Vec<usize> = (0..5).filter(|&i| i != leader).collect();

    // Two followers gone: three of five still commit.
    cluster.kill(&followers[..2]);
    let writers = Writers::start("quorum", &cluster.endpoints(&cluster.running()), 3);
    writers.progress(100).await;
    let mut acknowledged = writers.stop().await;

    // A third one gone: a write to either survivor fails, and does not hang.
    cluster.kill(&followers[2..3]);
    let survivors = cluster.endpoints(&cluster.running());
    tokio::join!(
        put_fails_without_quorum(survivors[0].clone(), "k/no-quorum/0"),
        put_fails_without_quorum(survivors[1].clone(), "k/no-quorum/1"),
    );
    // Nobody claims to lead without a quorum (etcd's leader checks its quorum), and
    // `/health` says so.
    cluster.leaderless().await;
    for endpoint in &survivors {
        assert_eq!(health(endpoint).await, (503, r#"{"health":"false"}"#.to_string()));
    }

    // The survivors stop gracefully even without a quorum; then all five return: the
    // cluster takes writes again and loses nothing.
    cluster.terminate(&cluster.running()).await;
    cluster.restart(&[0, 1, 2, 3, 4]).await;
    cluster.leader().await;
    let writers = Writers::start("recovered", &cluster.endpoints(&cluster.running()), 3);
    writers.progress(100).await;
    acknowledged.extend(writers.stop().await);
    cluster.check(&acknowledged).await;
    for endpoint in cluster.endpoints(&cluster.running()) {
        assert_eq!(health(&endpoint).await, (200, r#"{"health":"true"}"#.to_string()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_member_restarts_from_disk_after_sigterm_and_after_sigkill() {
    // Frequent snapshots and short logs: restarts go through snapshot, WAL and backend.
    let flags = ["--snapshot-count", "100", "--snapshot-catchup-entries", "20"];
    let mut cluster = Cluster::start(3, &flags).await;
    let all = [0, 1, 2];
    let writers = Writers::start("graceful", &cluster.endpoints(&all), 3);
    writers.progress(250).await;
    let mut acknowledged = writers.stop().await;

    cluster.terminate(&all).await;
    for i in all {
        assert!(cluster.snapshot_files(i) > 0, "{} saved no raft snapshot", cluster.name(i));
    }
    cluster.restart(&all).await;
    cluster.check(&acknowledged).await;

    // Now all die at once in the middle of writes.
    let writers = Writers::start("crash", &cluster.endpoints(&all), 3);
    writers.progress(250).await;
    cluster.kill(&all);
    acknowledged.extend(writers.stop().await);
    cluster.restart(&all).await;
    cluster.check(&acknowledged).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_far_behind_catches_up_from_a_snapshot() {
    let mut cluster = Cluster::start(3, SMALL_SNAPSHOTS).await;
    let leader = cluster.leader().await;
    let follower = (0..3).find(|&i| i != leader).expect("a follower");
    let writers = Writers::start("before", &cluster.endpoints(&[0, 1, 2]), 3);
    writers.progress(50).await;
    let mut acknowledged = writers.stop().await;

    // While the follower is down, the others write far past what their logs keep.
    cluster.kill(&[follower]);
    let writers = Writers::start("behind", &cluster.endpoints(&cluster.running()), 3);
    writers.progress(400).await;
    acknowledged.extend(writers.stop().await);

    cluster.restart(&[follower]).await;
    cluster.check(&acknowledged).await;
    assert_caught_up_from_a_snapshot(&cluster, follower);
}

/// The member's last run received a snapshot from the leader.
fn assert_caught_up_from_a_snapshot(cluster: &Cluster, member: usize) {
    let config = &cluster.configs[member];
    assert!(
        config.last_run_log().contains("received snapshot"),
        "{} caught up without a snapshot:\n{}",
        cluster.name(member),
        config.log_tail(40)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_in_memory_is_trimmed_between_snapshots_on_disk() {
    // No snapshot on disk for 100,000 entries, as etcd's default; the log held in memory
    // is trimmed every 1,000 applied entries to the last 20 (the apply thread's
    // LOG_TRIM_EVERY), so a follower down for 1,100 entries is past what the leader
    // holds: it must get a snapshot, which raft names from the trim alone.
    let flags = ["--snapshot-count", "100000", "--snapshot-catchup-entries", "20"];
    let mut cluster = Cluster::start(3, &flags).await;
    let leader = cluster.leader().await;
    let follower = (0..3).find(|&i| i != leader).expect("a follower");
    cluster.kill(&[follower]);
    let writers = Writers::start("behind", &cluster.endpoints(&cluster.running()), 3);
    writers.progress(1_100).await;
    let acknowledged = writers.stop().await;

    cluster.restart(&[follower]).await;
    cluster.check(&acknowledged).await;
    assert_caught_up_from_a_snapshot(&cluster, follower);
    let leader = cluster.leader().await;
    assert_eq!(cluster.snapshot_files(leader), 0, "the leader snapshotted to disk");
}

/// Snapshots every 100 entries, keeping only 20 behind them for slow followers.
const SMALL_SNAPSHOTS: &[&str] = &["--snapshot-count", "100", "--snapshot-catchup-entries", "20"];
/// What a sender logs when the `rafthttp::snapshot-send` failpoint breaks a transfer off.
const SNAPSHOT_SEND_INJECTED: &str = "injected failure: the transfer broke off";
/// What a receiver logs, once per transfer, when the `rafthttp::snapshot-receive`
/// failpoint fails its write (its refusal of the transfer quotes it again, prefixed).
const SNAPSHOT_RECEIVE_INJECTED: &str =
    r#""error":"injected failure: the received snapshot could not be written""#;
/// The line a member logs when it stops on a storage failure.
const FATAL_LINE: &str = "storage failed; the member stops";

/// Kills a follower, writes far past what the others' logs keep, and returns the
/// follower and the acknowledged writes: restarted, it needs a snapshot to catch up.
async fn leave_a_follower_behind(cluster: &mut Cluster) -> (usize, Vec<(String, i64)>) {
    let leader = cluster.leader().await;
    let follower = (0..3).find(|&i| i != leader).expect("a follower");
    cluster.kill(&[follower]);
    let writers = Writers::start("behind", &cluster.endpoints(&cluster.running()), 3);
    writers.progress(400).await;
    (follower, writers.stop().await)
}

/// Each member's first two snapshot transfers fail at `failpoint` (armed on every
/// member); a follower is left behind and restarted, and must catch up with every
/// acknowledged write by a transfer that went through, with no member stopping. Returns
/// the cluster and the follower.
async fn a_failed_snapshot_transfer_is_sent_again(failpoint: &str) -> (Cluster, usize) {
    let armed = format!("{failpoint}=2*return");
    let mut cluster = Cluster::start_with(3, TIMING, SMALL_SNAPSHOTS, Some(&armed)).await;
    let (follower, acknowledged) = leave_a_follower_behind(&mut cluster).await;
    cluster.restart(&[follower]).await;
    cluster.check(&acknowledged).await;
    let received = cluster.configs[follower].last_run_log();
    assert!(received.contains("installed snapshot from the leader"), "{received}");
    for i in 0..3 {
        assert!(!cluster.processes[i].has_exited(), "{} exited", cluster.name(i));
    }
    (cluster, follower)
}

/// How many lines of `log` contain `needle`.
fn lines_with(log: &str, needle: &str) -> usize {
    log.lines().filter(|l| l.contains(needle)).count()
}

/// A snapshot transfer that breaks off mid-file is the network's failure, not a
/// storage failure: the sender goes on, raft has it send a new snapshot, and the
/// follower catches up with every acknowledged write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_send_that_breaks_off_is_sent_again_and_the_follower_catches_up() {
    let (cluster, follower) =
        a_failed_snapshot_transfer_is_sent_again("rafthttp::snapshot-send").await;
    let senders: Vec<usize> = (0..3).filter(|&i| i != follower).collect();
    let logs: Vec<String> = senders.iter().map(|&i| cluster.configs[i].last_run_log()).collect();
    let broken: usize = logs.iter().map(|log| lines_with(log, SNAPSHOT_SEND_INJECTED)).sum();
    assert_eq!(broken, 2, "two transfers broke off:\n{}", cluster.configs[senders[0]].log_tail(40));
    assert!(logs.iter().any(|log| log.contains("sent database snapshot")), "then one went through");
}

/// A follower whose write of a received snapshot file fails partway (a full disk, on a
/// file not yet in use) answers the sender an error and lives on, as etcd answers 500;
/// the partial file is gone, and the next transfer catches it up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_whose_receipt_fails_is_sent_again_and_the_follower_catches_up() {
    let (cluster, follower) =
        a_failed_snapshot_transfer_is_sent_again("rafthttp::snapshot-receive").await;
    let log = cluster.configs[follower].last_run_log();
    assert_eq!(
        lines_with(&log, SNAPSHOT_RECEIVE_INJECTED),
        2,
        "{}",
        cluster.configs[follower].log_tail(40)
    );
    let snap_dir = cluster.configs[follower].data_dir.join("member").join("snap");
    let partial: Vec<String> = std::fs::read_dir(&snap_dir)
        .expect("the snap dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".tmp"))
        .collect();
    assert!(partial.is_empty(), "partial snapshot files left behind: {partial:?}");
}

/// A follower that cannot put the leader's snapshot in place of its backend stops
/// through the fatal path; restarted, it installs the snapshot it received (the raft
/// loop had saved the snapshot already) and catches up with every acknowledged write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_whose_snapshot_install_fails_stops_and_installs_it_when_restarted() {
    let mut cluster = Cluster::start(3, SMALL_SNAPSHOTS).await;
    let (follower, acknowledged) = leave_a_follower_behind(&mut cluster).await;

    let armed = ("FAILPOINTS".to_string(), "apply::snapshot-install=return".to_string());
    cluster.configs[follower].env.push(armed);
    cluster.processes[follower] = Process::spawn(&cluster.configs[follower]);
    let status = cluster.processes[follower].wait_exit(WAIT).await;
    let log = cluster.configs[follower].last_run_log();
    assert_eq!(status.code(), Some(1), "{log}");
    let fatal: Vec<&str> = log.lines().filter(|line| line.contains(FATAL_LINE)).collect();
    assert_eq!(fatal.len(), 1, "one fatal line:\n{log}");
    for part in ["installing the leader's snapshot", "injected failure"] {
        assert!(fatal[0].contains(part), "{part} missing from {}", fatal[0]);
    }

    cluster.configs[follower].env.clear();
    cluster.restart(&[follower]).await;
    cluster.check(&acknowledged).await;
    let log = cluster.configs[follower].last_run_log();
    assert!(
        log.contains("installing the leader's snapshot received before the member stopped"),
        "{}",
        cluster.configs[follower].log_tail(40)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_leader_is_replaced_and_steps_down_when_it_thaws() {
    let mut cluster = Cluster::start(3, &[]).await;
    let writers = Writers::start("freeze", &cluster.endpoints(&[0, 1, 2]), 4);
    writers.progress(100).await;

    // SIGSTOP: the leader still holds its connections but answers nothing.
    let old_leader = cluster.leader().await;
    cluster.processes[old_leader].signal("STOP");
    let others: Vec<usize> = (0..3).filter(|&i| i != old_leader).collect();
    wait_until("the others to elect a new leader", async || {
        let leader = cluster.leader_among(&others).await;
        (leader != old_leader).then_some(leader)
    })
    .await;
    writers.progress(200).await;

    // SIGCONT: it wakes up believing it leads, learns of the newer term and follows.
    cluster.processes[old_leader].signal("CONT");
    cluster.leader().await;
    writers.progress(100).await;
    let acknowledged = writers.stop().await;
    cluster.check(&acknowledged).await;
}

/// The TTL of the leases in the lease test, in seconds (the minimum here is 1 s).
const LEASE_TTL: u64 = 3;
/// The election timeout of [`TIMING`].
const ELECTION_TIMEOUT: Duration = Duration::from_millis(500);
/// Beyond TTL + election timeout, for the leader's expiry check (every 500 ms), the
/// revoke's way through the log and the test's polling.
const EXPIRY_SLACK: Duration = Duration::from_millis(1500);

/// What the keep-alive client of the lease test did.
#[derive(Default)]
struct KeepAlives {
    /// Stop renewing the second lease.
    drop_second: AtomicBool,
    /// When the last acknowledged keep-alive of the second lease was sent.
    second_renewed: Mutex<Option<Instant>>,
    /// A keep-alive of the first lease was answered with TTL 0: it was gone.
    first_lost: AtomicBool,
}

/// Keeps `first` (and `second`, until told to drop it) alive every sixth of the TTL,
/// like a client would: one stream at a time, moving to the next member when a stream
/// fails (its member died, or a follower's stream to the old leader ended).
/// A raw stub: the test needs when each keep-alive was sent and whether one was answered
/// with TTL 0, which oxetcd-client's keep-alive loop keeps to itself.
async fn keep_alive(endpoints: Vec<String>, first: i64, second: i64, state: Arc<KeepAlives>) {
    use oxetcd_api::etcdserverpb::LeaseKeepAliveRequest;
    use oxetcd_api::etcdserverpb::lease_client::LeaseClient;
    let period = Duration::from_secs(LEASE_TTL) / 6;
    for endpoint in endpoints.iter().cycle() {
        let (requests, rx) = tokio::sync::mpsc::channel(4);
        let mut client = LeaseClient::new(channel(endpoint));
        let call = client.lease_keep_alive(tokio_stream::wrappers::ReceiverStream::new(rx));
        let Ok(Ok(answers)) = tokio::time::timeout(CLIENT_TIMEOUT, call).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let mut answers = answers.into_inner();
        'stream: loop {
            let mut ids = vec![first];
            if !state.drop_second.load(Ordering::SeqCst) {
                ids.push(second);
            }
            for id in ids {
                let sent = Instant::now();
                if requests.send(LeaseKeepAliveRequest { id }).await.is_err() {
                    break 'stream;
                }
                let Ok(Ok(Some(answer))) =
                    tokio::time::timeout(CLIENT_TIMEOUT, answers.message()).await
                else {
                    break 'stream;
                };
                match (answer.id == first, answer.ttl > 0) {
                    (true, false) => state.first_lost.store(true, Ordering::SeqCst),
                    (false, true) => *state.second_renewed.lock().unwrap() = Some(sent),
                    _ => {}
                }
            }
            tokio::time::sleep(period).await;
        }
    }
}

/// Through member `i`: one lease of [`LEASE_TTL`] per key, and the key put with it.
/// Returns the leases' ids, in the keys' order.
async fn leased_keys(cluster: &Cluster, i: usize, keys: [&str; 2]) -> [i64; 2] {
    let client = cluster.client(i).await;
    let mut ids = [0; 2];
    for (key, id) in keys.into_iter().zip(&mut ids) {
        *id = client.lease_grant(LEASE_TTL as i64, 0).await.expect("a grant").id;
        client.put(key, "v", Some(PutOptions::new().with_lease(*id))).await.expect("a put");
    }
    ids
}

/// The leader is killed (-9) while a client keeps two leases alive through whichever
/// member answers: neither expires across the failover. Then the client stops renewing
/// the second: it expires no sooner than its TTL after its last keep-alive and within
/// TTL + election timeout (plus slack), while the first lives on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_alive_leases_survive_killing_the_leader_and_a_dropped_one_expires_in_bounds() {
    let mut cluster = Cluster::start(3, &[]).await;
    let leader = cluster.leader().await;
    let ids = leased_keys(&cluster, leader, ["lease/kept", "lease/dropped"]).await;
    let state = Arc::new(KeepAlives::default());
    // Followers first: their streams to the leader end when it dies.
    let mut endpoints = cluster.endpoints(&cluster.running());
    endpoints.rotate_left(leader + 1);
    let keeper = tokio::spawn(keep_alive(endpoints, ids[0], ids[1], state.clone()));

    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.kill(&[leader]);
    let new_leader = cluster.leader().await;
    // Longer than the TTL: only the keep-alives hold the leases now.
    tokio::time::sleep(Duration::from_secs(LEASE_TTL + 1)).await;
    let exists = async |key: &str| {
        cluster.client(new_leader).await.get(key, None).await.expect("a read").count == 1
    };
    assert!(exists("lease/kept").await, "a kept-alive lease expired across the failover");
    assert!(exists("lease/dropped").await, "a kept-alive lease expired across the failover");

    state.drop_second.store(true, Ordering::SeqCst);
    let stopped = Instant::now();
    let gone = wait_until("the dropped lease to expire", async || {
        (!exists("lease/dropped").await).then(Instant::now)
    })
    .await;
    let renewed = state.second_renewed.lock().unwrap().expect("the dropped lease was renewed");
    let ttl = Duration::from_secs(LEASE_TTL);
    assert!(gone >= renewed + ttl, "expired {:?} after its last keep-alive", gone - renewed);
    assert!(
        gone <= stopped + ttl + ELECTION_TIMEOUT + EXPIRY_SLACK,
        "expired {:?} after its client stopped",
        gone - stopped
    );
    assert!(exists("lease/kept").await, "the kept-alive lease expired");
    assert!(!state.first_lost.load(Ordering::SeqCst), "a keep-alive found the kept lease gone");
    assert!(!keeper.is_finished(), "the keep-alive client stopped");
    keeper.abort();
}

/// How long the old leader of the frozen-leader lease test keeps its lessor acting as the
/// leader's after raft stepped down (`raft::lessor-demote`), and how long its expiry check
/// waits between finding leases expired and proposing their revokes
/// (`lease::expired-found`): together they hold open, every time, the moment in which
/// etcd's #15247 revoked kept-alive leases, whichever of raft and the check runs first
/// after the thaw.
const DEMOTION_DELAY_MS: u64 = 2000;
const REVOKE_DELAY_MS: u64 = 500;

/// etcd's #15247 (found here by the robustness harness): a leader frozen (SIGSTOP) for
/// longer than a lease's TTL thaws with its lessor still the leader's and the lease's
/// deadline passed, while a client kept the lease alive through the new leader. It must
/// not revoke it: its revoke, forwarded to the new leader, would commit. Expired leases are
/// revoked only once a quorum confirms this member leads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_frozen_past_a_leases_ttl_does_not_revoke_it_when_it_thaws() {
    let failpoints = format!(
        "raft::lessor-demote=sleep({DEMOTION_DELAY_MS});lease::expired-found=sleep({REVOKE_DELAY_MS})"
    );
    let mut cluster = Cluster::start_with(3, TIMING, &[], Some(&failpoints)).await;
    let old_leader = cluster.leader().await;
    let ids = leased_keys(&cluster, old_leader, ["lease/first", "lease/second"]).await;

    cluster.processes[old_leader].signal("STOP");
    let others: Vec<usize> = (0..3).filter(|&i| i != old_leader).collect();
    let new_leader = wait_until("the others to elect a new leader", async || {
        let leader = cluster.leader_among(&others).await;
        (leader != old_leader).then_some(leader)
    })
    .await;
    let state = Arc::new(KeepAlives::default());
    let keeper =
        tokio::spawn(keep_alive(cluster.endpoints(&[new_leader]), ids[0], ids[1], state.clone()));
    // The old leader's deadlines pass while it is frozen; the keep-alives hold the leases.
    tokio::time::sleep(Duration::from_secs(LEASE_TTL + 2)).await;

    cluster.processes[old_leader].signal("CONT");
    let settled =
        Duration::from_millis(DEMOTION_DELAY_MS + REVOKE_DELAY_MS) + Duration::from_secs(2);
    tokio::time::sleep(settled).await;
    let reader = cluster.client(new_leader).await;
    for key in ["lease/first", "lease/second"] {
        let count = reader.get(key, None).await.expect("a read").count;
        assert_eq!(count, 1, "{key}: its kept-alive lease was revoked by the thawed leader");
    }
    assert!(!state.first_lost.load(Ordering::SeqCst), "a keep-alive found the lease gone");
    keeper.abort();
    // Its check may wait out a ReadIndex round that its stepping down dropped.
    wait_until("the thawed leader to find its leases expired and not revoke them", async || {
        let log = cluster.configs[old_leader].last_run_log();
        log.contains("a quorum does not confirm this member leads: not revoking them").then_some(())
    })
    .await;
}

/// The partition test's timing: an election timeout (3 s) well past the client's
/// deadline, so that the cut-off follower still follows its leader, and still waits for
/// the proposal it forwarded, when the deadline passes.
const PATIENT_TIMING: &[&str] = &["--heartbeat-interval", "100", "--election-timeout", "3000"];
/// The gRPC deadline of each attempt of the partition test's Put.
const CALL_DEADLINE: Duration = Duration::from_millis(1500);
/// The caller's budget across attempts (its context, in the Go client).
const CALL_BUDGET: Duration = Duration::from_secs(15);
/// The retry interceptor's backoff between attempts (clientv3's default: 25 ms).
const RETRY_BACKOFF: Duration = Duration::from_millis(25);
/// How long past its deadline a member may take to answer at all.
const ANSWER_SLACK: Duration = Duration::from_secs(2);

/// One attempt of [`put_like_clientv3`]: the member asked, and the revision it
/// answered or its refusal.
type Attempt = (usize, Result<i64, tonic::Status>);

/// Whether etcd 3.4's Go client sends a Put again after `status`: it takes CANCELLED
/// and DEADLINE_EXCEEDED for its own per-call timeout, and resends a mutating call on
/// UNAVAILABLE only when no address or connection was available (the request reached
/// no server).
fn clientv3_resends_put(status: &tonic::Status) -> bool {
    match status.code() {
        Code::Cancelled | Code::DeadlineExceeded => true,
        Code::Unavailable => matches!(
            status.message(),
            "there is no address available" | "there is no connection available"
        ),
        _ => false,
    }
}

/// A Put sent as clientv3's retry interceptor sends it: to `members` in turn, each
/// attempt with [`CALL_DEADLINE`] as its gRPC deadline (enforced by the server alone),
/// again after [`RETRY_BACKOFF`] while [`clientv3_resends_put`] says so and
/// [`CALL_BUDGET`] lasts. Each attempt is reported on `attempts` as it ends.
async fn put_like_clientv3(
    members: Vec<(usize, KvClient<support::ServerTimedClient>)>,
    put: PutRequest,
    attempts: tokio::sync::mpsc::UnboundedSender<Attempt>,
) {
    let budget = Instant::now() + CALL_BUDGET;
    for (member, kv) in members.iter().cycle() {
        let mut kv = kv.clone();
        let mut request = tonic::Request::new(put.clone());
        request.set_timeout(CALL_DEADLINE);
        let answer = tokio::time::timeout(CALL_DEADLINE + ANSWER_SLACK, kv.put(request))
            .await
            .unwrap_or_else(|_| panic!("member {member} did not answer within its deadline"));
        let answer = answer.map(|r| r.into_inner().header.expect("a response header").revision);
        let again = answer.as_ref().is_err_and(clientv3_resends_put);
        let _ = attempts.send((*member, answer));
        if !again || Instant::now() + RETRY_BACKOFF >= budget {
            return;
        }
        tokio::time::sleep(RETRY_BACKOFF).await;
    }
}

/// How many times `key` was put, as a watch from revision 1 sees it on member `i`: the
/// watch runs until it sees `sentinel` (put after everything else under `prefix`).
async fn puts_seen_by_watch(cluster: &Cluster, i: usize, prefix: &str, key: &str) -> usize {
    use oxetcd_client::EventType;
    let sentinel = format!("{prefix}~sentinel");
    let client = cluster.client(i).await;
    client.put(sentinel.clone(), "s", None).await.expect("the sentinel put");
    let count = async {
        let options = WatchOptions::new().with_prefix().with_start_revision(1);
        let mut events = client.watch(prefix, Some(options)).await.expect("a watch");
        let mut puts = 0;
        while let Some(response) = events.message().await.expect("watch responses") {
            for event in response.events {
                let kv = event.kv.expect("an event's key-value");
                if kv.key == sentinel.as_bytes() {
                    return puts;
                }
                if kv.key == key.as_bytes() && event.r#type == EventType::Put as i32 {
                    puts += 1;
                }
            }
        }
        panic!("the watch on {} ended before the sentinel", cluster.name(i));
    };
    tokio::time::timeout(WAIT, count).await.expect("the watch to reach the sentinel")
}

/// A follower cut off from both its peers (they are frozen with SIGSTOP: the proposal
/// it forwards to its leader waits, unread, in the leader's socket) gets a Put with a
/// gRPC deadline from a client that retries as etcd 3.4's Go client does. It must
/// answer as etcd does, `UNAVAILABLE "etcdserver: request timed out"`, which that client
/// does not resend; tonic's own answer, `CANCELLED "Timeout expired"`, made it resend
/// the Put to the next member, and the write was applied twice once the peers thawed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_to_a_cut_off_follower_times_out_as_in_etcd_and_is_applied_at_most_once() {
    const PREFIX: &str = "partition/";
    const KEY: &str = "partition/key";
    let mut cluster = Cluster::start_timed(3, PATIENT_TIMING, &[]).await;
    let leader = cluster.leader().await;
    let follower = (0..3).find(|&i| i != leader).expect("a follower");
    let others: Vec<usize> = (0..3).filter(|&i| i != follower).collect();
    // The follower first, then the others, as a client's endpoint list would have them;
    // connected before the freeze, as a client would be.
    let mut members = Vec::new();
    for i in [follower, others[0], others[1]] {
        members.push((i, cluster.server_timed_kv(i).await));
    }

    // Freeze the others, then send the Put at once: well within the election timeout,
    // the follower still forwards it to its leader.
    cluster.signal(&others, "STOP");
    let (report, mut attempts) = tokio::sync::mpsc::unbounded_channel();
    let put = PutRequest { key: KEY.into(), value: "once".into(), ..Default::default() };
    let client = tokio::spawn(put_like_clientv3(members, put, report));
    let first = tokio::time::timeout(CALL_DEADLINE + ANSWER_SLACK, attempts.recv())
        .await
        .expect("the follower to answer")
        .expect("an attempt");
    // The partition heals as the follower answers; the client goes on meanwhile.
    cluster.signal(&others, "CONT");
    tokio::time::timeout(CALL_BUDGET + CALL_DEADLINE + ANSWER_SLACK, client)
        .await
        .expect("the client to finish within its budget")
        .expect("the client");
    let mut all = vec![first.clone()];
    while let Ok(attempt) = attempts.try_recv() {
        all.push(attempt);
    }
    let attempts: Vec<String> = all
        .iter()
        .map(|(i, answer)| match answer {
            Ok(revision) => format!("{}: OK at revision {revision}", cluster.name(*i)),
            Err(status) => {
                format!("{}: {:?} {:?}", cluster.name(*i), status.code(), status.message())
            }
        })
        .collect();
    eprintln!("attempts: {attempts:?}");

    // Once the members agree again, the write is there at most once.
    cluster.leader().await;
    cluster.caught_up().await;
    for i in 0..3 {
        let read = GetOptions::new().with_serializable();
        let found = cluster.client(i).await.get(KEY, Some(read)).await.expect("a read").kvs;
        let version = found.first().map_or(0, |kv| kv.version);
        assert!(
            version <= 1,
            "{}: {KEY} has version {version}; attempts {attempts:?}",
            cluster.name(i)
        );
    }
    let puts = puts_seen_by_watch(&cluster, leader, PREFIX, KEY).await;
    eprintln!("a watch from revision 1 saw {puts} put(s) of {KEY}");
    assert!(puts <= 1, "a watch saw {puts} puts of {KEY}; attempts {attempts:?}");

    assert_eq!(all.len(), 1, "the client sent the Put again: {attempts:?}");
    let (member, answer) = first;
    assert_eq!(member, follower);
    let status = answer.expect_err("a cut-off follower acknowledged a write");
    assert_eq!(
        (status.code(), status.message()),
        (Code::Unavailable, "etcdserver: request timed out"),
        "attempts {attempts:?}"
    );
}

/// A linearizable read on a follower cut off from both its peers (frozen), still
/// waiting at its gRPC deadline, is answered as etcd 3.4 answers it:
/// `UNKNOWN "context deadline exceeded"`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_on_a_cut_off_follower_runs_out_of_time_as_in_etcd() {
    let mut cluster = Cluster::start_timed(3, PATIENT_TIMING, &[]).await;
    let leader = cluster.leader().await;
    let follower = (0..3).find(|&i| i != leader).expect("a follower");
    let others: Vec<usize> = (0..3).filter(|&i| i != follower).collect();
    let mut kv = cluster.server_timed_kv(follower).await;

    cluster.signal(&others, "STOP");
    let mut request = tonic::Request::new(RangeRequest { key: "k".into(), ..Default::default() });
    request.set_timeout(CALL_DEADLINE);
    let answer = tokio::time::timeout(CALL_DEADLINE + ANSWER_SLACK, kv.range(request)).await;
    cluster.signal(&others, "CONT");

    let status = answer.expect("the follower to answer").expect_err("a read without quorum");
    assert_eq!((status.code(), status.message()), (Code::Unknown, "context deadline exceeded"));
    cluster.leader().await;
}

/// Sends a put to one member every 10 ms, each on its own, until stopped; answers how
/// long each stretch of failed puts lasted, by send time: from the first put of the
/// stretch to the next put that succeeded. A put lost with a leader that went away fails
/// only at its 1 s deadline, but the puts sent after it count on their own, so the
/// stretch measures how long the cluster took no writes, not how long one put waited.
fn unavailability_probe(endpoint: String, stop: Arc<AtomicBool>) -> JoinHandle<Vec<Duration>> {
    tokio::spawn(async move {
        let kv = KvClient::new(channel(&endpoint));
        let mut puts = tokio::task::JoinSet::new();
        for attempt in 0u64.. {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let mut kv = kv.clone();
            let mut put = tonic::Request::new(PutRequest {
                key: format!("{KEYS}probe/{attempt}").into(),
                value: "v".into(),
                ..Default::default()
            });
            put.set_timeout(Duration::from_secs(1));
            let sent = Instant::now();
            puts.spawn(async move { (sent, kv.put(put).await.is_ok()) });
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut results = puts.join_all().await;
        results.sort_by_key(|(sent, _)| *sent);
        let (mut windows, mut failing_since) = (Vec::new(), None);
        for (sent, ok) in results {
            match (ok, failing_since) {
                (false, None) => failing_since = Some(sent),
                (true, Some(since)) => {
                    windows.push(sent - since);
                    failing_since = None;
                }
                _ => {}
            }
        }
        windows.extend(failing_since.map(|since: Instant| since.elapsed()));
        windows
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_with_sigterm_never_stalls_writes_for_an_election_timeout() {
    let mut cluster = Cluster::start(3, &[]).await;
    let election_timeout = Duration::from_millis(500);
    for round in 0..3 {
        // The leader first, then the others: every SIGTERM of a leader hands over.
        let leader = cluster.leader().await;
        let stopping = (leader + round) % 3;
        let others: Vec<usize> = (0..3).filter(|&i| i != stopping).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let probes: Vec<_> = cluster
            .endpoints(&others)
            .into_iter()
            .map(|endpoint| unavailability_probe(endpoint, stop.clone()))
            .collect();
        tokio::time::sleep(Duration::from_millis(200)).await;
        cluster.terminate(&[stopping]).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        cluster.restart(&[stopping]).await;
        cluster.leader().await;
        stop.store(true, Ordering::SeqCst);
        for probe in probes {
            let windows = probe.await.expect("a probe");
            let longest = windows.iter().max().copied().unwrap_or_default();
            assert!(
                longest < election_timeout,
                "round {round}: writes failed for {longest:?} while {} restarted (runs: {windows:?})",
                cluster.name(stopping)
            );
        }
    }
}

/// A leader whose messages to both followers vanish (`rafthttp::drop-send` naming them,
/// armed while it runs), every connection up: the followers elect a new leader among
/// themselves, which takes writes; the old leader, which hears the new one, follows it.
/// Once the failpoint is disarmed, it catches up with every acknowledged write. No peer
/// stream closes or opens meanwhile: the cut is in the messages, not in the network.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_messages_vanish_is_replaced_while_every_connection_stays_up() {
    let cluster = Cluster::start_with_failpoint_control(3).await;
    let writers = Writers::start("one-way", &cluster.endpoints(&[0, 1, 2]), 4);
    writers.progress(100).await;
    let streams = cluster.stream_changes();

    let old_leader = cluster.leader().await;
    let followers: Vec<usize> = (0..3).filter(|&i| i != old_leader).collect();
    let follower_ids: Vec<String> =
        followers.iter().map(|&i| format!("{:x}", cluster.ids[i])).collect();
    let actions = format!("return({})", follower_ids.join(","));
    cluster.arm(old_leader, failpoints::DROP_SEND, &actions).await;
    let new_leader = wait_until("the followers to elect a new leader", async || {
        let leader = cluster.leader_among(&followers).await;
        (leader != old_leader).then_some(leader)
    })
    .await;
    assert_eq!(cluster.leader().await, new_leader, "the old leader follows the new one");
    let put = cluster.client(new_leader).await.put("k/one-way", "new leader", None).await;
    let revision = put.expect("a write through the new leader").header.expect("a header").revision;
    writers.progress(200).await;
    assert_eq!(cluster.stream_changes(), streams, "a peer stream closed or opened during the cut");

    cluster.disarm(old_leader, failpoints::DROP_SEND).await;
    writers.progress(100).await;
    assert_ne!(cluster.leader().await, old_leader);
    let mut acknowledged = writers.stop().await;
    acknowledged.push(("k/one-way".into(), revision));
    cluster.check(&acknowledged).await;
    assert_eq!(cluster.stream_changes(), streams, "a peer stream closed or opened");
}

/// A linearizable read on a follower whose ReadIndex request to the leader was lost (its
/// messages to the leader dropped for a moment, `rafthttp::drop-send`; raft does not
/// send a ReadIndex again) is answered soon after messages flow again, as etcd 3.5 and
/// later answer it (they ask again every 500 ms), not failed after the whole request
/// timeout (6 s here) as etcd 3.4 does, with every read batched behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_whose_read_index_request_was_lost_is_answered_once_messages_flow_again() {
    let cluster = Cluster::start_with_failpoint_control(3).await;
    let leader = cluster.leader().await;
    let follower = (0..3).find(|&i| i != leader).expect("a follower");
    let to_leader = format!("return({:x})", cluster.ids[leader]);
    cluster.arm(follower, failpoints::DROP_SEND, &to_leader).await;
    let client =
        member_client(&cluster.configs[follower].client_url, Some(Duration::from_secs(20)))
            .await
            .expect("a client of the follower");
    let read = tokio::spawn(async move { client.get("k/read", None).await });
    // Long enough for the read's ReadIndex request to go (and vanish), well within an
    // election timeout: the follower still hears the leader and keeps following it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.disarm(follower, failpoints::DROP_SEND).await;
    let flowing = Instant::now();
    let answer = read.await.expect("the read task");
    let took = flowing.elapsed();
    answer.unwrap_or_else(|e| panic!("the read failed {took:?} after messages flowed again: {e}"));
    assert!(
        took < Duration::from_secs(2),
        "the read was answered {took:?} after messages flowed again"
    );
}
