//! A cluster of the real `oxetcd` binary, one child process per member, in a directory
//! of the run's own: on 127.0.0.1 ports, or, when the run cuts or delays traffic between
//! members, each in a network namespace of its own on a bridge ([`crate::netns`]).
//! Members are killed with SIGKILL, paused with SIGSTOP/SIGCONT and restarted, optionally
//! with failpoints (`FAILPOINTS`, read by a binary built with the `failpoints` feature);
//! failpoints are also armed while a member runs, through its failpoint control
//! ([`crate::failpoints`], on the member's own address), and disarmed when the cluster
//! heals. Each member's stderr (its log) is appended to `<name>.log` across restarts, so a
//! failing run keeps the whole story.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use oxetcd_client::{Client, ClientOptions};

use crate::failpoints;
use crate::netns::Netns;

/// How long a member may take to serve after a start.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a probe of one member may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a client waits for a TCP connection to a member.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(1);
/// Written into a member's log before each start, so the last run's part can be found.
pub const START_MARK: &str = "--- robustness: start ";
/// The line a member logs when it stops on a storage failure (the fatal path).
pub const FATAL_LINE: &str = "storage failed; the member stops";

/// `--snapshot-count` of the members (in [`MEMBER_FLAGS`]).
pub const SNAPSHOT_COUNT: u64 = 300;

/// Raft timing for the runs: faster than etcd's defaults (100 ms, 1 s) so a short run
/// sees several elections, slow enough for a debug build on two loaded cores.
const MEMBER_FLAGS: &[&str] = &[
    "--heartbeat-interval",
    "50",
    "--election-timeout",
    "750",
    // Raft snapshots (and snapshot catch-up of a restarted member) within seconds.
    "--snapshot-count",
    "300", // SNAPSHOT_COUNT
    "--snapshot-catchup-entries",
    "100",
];

/// One member: its flags and, while it runs, its process.
pub struct Member {
    pub name: String,
    /// The raft member id, as the member reports it (the same across restarts).
    pub id: u64,
    pub data_dir: PathBuf,
    pub client_url: String,
    pub peer_url: String,
    /// Where the member serves its failpoint control (`ip:port`).
    pub failpoint_address: String,
    pub log: PathBuf,
    child: Option<Child>,
    paused: bool,
}

impl Member {
    /// Everything the member logged since its last start.
    pub fn last_run_log(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        log.rfind(START_MARK).map_or(log.clone(), |at| log[at..].to_string())
    }
}

/// The cluster.
pub struct Cluster {
    binary: PathBuf,
    initial_cluster: String,
    token: String,
    pub members: Vec<Member>,
    /// The namespaced network, when the run has one (dropped after the members).
    pub network: Option<Netns>,
    /// Failpoints armed through the members' control, to disarm when the cluster heals.
    armed: Vec<Armed>,
}

/// A failpoint armed on a running member's process.
struct Armed {
    member: usize,
    /// The process it was armed in: a member restarted since starts without it.
    pid: u32,
    failpoint: &'static str,
}

/// The client and peer ports of a member in a namespace of its own (etcd's defaults),
/// and its failpoint control's.
const NAMESPACED_PORTS: (u16, u16, u16) = (2379, 2380, 2381);

/// Tells apart the namespaced networks one process makes.
static NETWORKS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// `n` ports free a moment ago, drawn below the kernel's ephemeral range so that no
/// outgoing connection takes one before its member listens. The listeners are held until
/// all are drawn, so no port comes twice.
fn free_ports(n: usize) -> Vec<u16> {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (low, high) = (10_000u64, u64::from(ephemeral_low.max(20_000)));
    // Ports are not part of a run's replay: draw them from the clock, not the seed.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut rng = crate::rng::Rng::new(u64::from(nanos) ^ u64::from(std::process::id()) << 32);
    let mut listeners = Vec::new();
    for attempt in 0.. {
        if listeners.len() == n {
            break;
        }
        assert!(attempt < 10_000, "no free ports in {low}..{high}");
        let port = u16::try_from(rng.between(low, high)).expect("a port");
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            listeners.push(listener);
        }
    }
    listeners.iter().map(|l| l.local_addr().expect("a bound port").port()).collect()
}

/// A client of the one member at `endpoint`, with no retries: its answer is that
/// member's own.
pub async fn member_client(endpoint: &str, timeout: Duration) -> oxetcd_client::Result<Client> {
    let options = ClientOptions::default()
        .with_dial_timeout(DIAL_TIMEOUT)
        .with_max_retries(0)
        .with_request_timeout(timeout);
    Client::connect([endpoint], options).await
}

impl Cluster {
    /// Starts `n` members of `binary` with data dirs and logs in `dir`, each in a
    /// network namespace of its own if `namespaced`, and waits until every one serves.
    pub async fn start(
        binary: &Path,
        dir: &Path,
        n: usize,
        namespaced: bool,
    ) -> Result<Cluster, String> {
        let network = if namespaced {
            let k = NETWORKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Some(Netns::create(n, k)?)
        } else {
            None
        };
        // Each member's address and its client, peer and failpoint control ports.
        let addresses: Vec<(String, [u16; 3])> = match &network {
            Some(net) => {
                let (client, peer, failpoint) = NAMESPACED_PORTS;
                (0..n).map(|i| (net.address(i), [client, peer, failpoint])).collect()
            }
            None => {
                let ports = free_ports(3 * n);
                (0..n)
                    .map(|i| ("127.0.0.1".to_string(), [ports[i], ports[n + i], ports[2 * n + i]]))
                    .collect()
            }
        };
        let members: Vec<Member> = addresses
            .into_iter()
            .enumerate()
            .map(|(i, (address, [client, peer, failpoint]))| {
                let name = format!("m{i}");
                Member {
                    id: 0,
                    data_dir: dir.join(&name),
                    log: dir.join(format!("{name}.log")),
                    client_url: format!("http://{address}:{client}"),
                    peer_url: format!("http://{address}:{peer}"),
                    failpoint_address: format!("{address}:{failpoint}"),
                    name,
                    child: None,
                    paused: false,
                }
            })
            .collect();
        let initial_cluster =
            members.iter().map(|m| format!("{}={}", m.name, m.peer_url)).collect::<Vec<_>>();
        let token = dir.file_name().map_or("robustness".into(), |n| n.to_string_lossy().into());
        let mut cluster = Cluster {
            binary: binary.to_path_buf(),
            initial_cluster: initial_cluster.join(","),
            token,
            members,
            network,
            armed: Vec::new(),
        };
        for i in 0..n {
            cluster.spawn(i, None)?;
        }
        for i in 0..n {
            cluster.wait_serving(i).await?;
        }
        for member in &mut cluster.members {
            let client = member_client(&member.client_url, PROBE_TIMEOUT)
                .await
                .map_err(|e| format!("{}: {e}", member.name))?;
            let status = client.maintenance().status().await;
            let status = status.map_err(|e| format!("Status of {}: {e}", member.name))?;
            member.id = status.header.map_or(0, |h| h.member_id);
        }
        Ok(cluster)
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client_url.clone()).collect()
    }

    /// Starts member `i`'s process (it must not be running), with `failpoints` (the
    /// `fail` crate's `FAILPOINTS` syntax) if given. It serves its failpoint control at
    /// [`Member::failpoint_address`].
    pub fn spawn(&mut self, i: usize, failpoints: Option<&str>) -> Result<(), String> {
        use std::io::Write;
        let member = &mut self.members[i];
        assert!(member.child.is_none(), "{} is already running", member.name);
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&member.log)
            .map_err(|e| format!("open {}: {e}", member.log.display()))?;
        writeln!(log, "{START_MARK}{} failpoints={failpoints:?} ---", member.name)
            .map_err(|e| format!("write {}: {e}", member.log.display()))?;
        // `ip netns exec` execs the binary in the namespace: the child is the member.
        let mut command = match &self.network {
            Some(net) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", &net.namespace(i)]).arg(&self.binary);
                command
            }
            None => Command::new(&self.binary),
        };
        // Only the flags below configure the member.
        for (name, _) in std::env::vars_os() {
            let name_str = name.to_string_lossy();
            if name_str.starts_with("ETCD_") || name_str == "FAILPOINTS" {
                command.env_remove(name);
            }
        }
        if let Some(failpoints) = failpoints {
            command.env("FAILPOINTS", failpoints);
        }
        command.env(crate::failpoints::ADDRESS_ENV, &member.failpoint_address);
        let child = command
            .args(["--name", &member.name])
            .arg("--data-dir")
            .arg(&member.data_dir)
            .args(["--listen-client-urls", &member.client_url])
            .args(["--advertise-client-urls", &member.client_url])
            .args(["--listen-peer-urls", &member.peer_url])
            .args(["--initial-advertise-peer-urls", &member.peer_url])
            .args(["--initial-cluster", &self.initial_cluster])
            .args(["--initial-cluster-token", &self.token])
            .args(MEMBER_FLAGS)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", self.binary.display()))?;
        member.child = Some(child);
        member.paused = false;
        Ok(())
    }

    /// Whether member `i` has a process that has not exited.
    pub fn is_running(&mut self, i: usize) -> bool {
        self.members[i].child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Member `i`'s exit status, if it has exited by itself (the process is then reaped).
    pub fn exited(&mut self, i: usize) -> Option<ExitStatus> {
        let member = &mut self.members[i];
        let status = member.child.as_mut()?.try_wait().ok()??;
        member.child = None;
        Some(status)
    }

    /// SIGKILL member `i` (continuing it first if paused) and reap it.
    pub fn kill(&mut self, i: usize) {
        let member = &mut self.members[i];
        if let Some(mut child) = member.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        member.paused = false;
    }

    fn signal(&mut self, i: usize, signal: &str) {
        if let Some(child) = &self.members[i].child {
            // The process may have exited by itself meanwhile: nothing to report.
            let _ = Command::new("kill")
                .arg(format!("-{signal}"))
                .arg(child.id().to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }

    /// SIGSTOP member `i`.
    pub fn pause(&mut self, i: usize) {
        self.signal(i, "STOP");
        self.members[i].paused = true;
    }

    /// SIGCONT member `i`.
    pub fn resume(&mut self, i: usize) {
        self.signal(i, "CONT");
        self.members[i].paused = false;
    }

    /// Arms `failpoint` with `actions` on running member `i`, through its failpoint
    /// control, until [`Cluster::heal_network`] (or a restart of the member).
    pub async fn arm(
        &mut self,
        i: usize,
        failpoint: &'static str,
        actions: &str,
    ) -> Result<(), String> {
        let pid = self.pid(i).ok_or_else(|| format!("{} is not running", self.members[i].name))?;
        failpoints::arm(&self.members[i].failpoint_address, failpoint, actions).await?;
        self.armed.push(Armed { member: i, pid, failpoint });
        Ok(())
    }

    /// The process id of running member `i`.
    fn pid(&mut self, i: usize) -> Option<u32> {
        if !self.is_running(i) {
            return None;
        }
        self.members[i].child.as_ref().map(Child::id)
    }

    /// Restores traffic between the members: every cut and delay of the network undone,
    /// every failpoint armed through [`Cluster::arm`] disarmed. A member whose armed
    /// process is gone (killed, exited, restarted: a new process starts disarmed) has
    /// nothing to disarm. Everything is tried; the first error is returned.
    pub async fn heal_network(&mut self) -> Result<(), String> {
        let mut first_error = match &mut self.network {
            Some(net) => net.heal(),
            None => Ok(()),
        };
        for armed in std::mem::take(&mut self.armed) {
            if self.pid(armed.member) != Some(armed.pid) {
                continue;
            }
            let address = &self.members[armed.member].failpoint_address;
            let disarmed = failpoints::disarm(address, armed.failpoint).await;
            // A process that died meanwhile took its failpoints along.
            if disarmed.is_err() && self.pid(armed.member) == Some(armed.pid) {
                first_error = first_error.and(disarmed);
            }
        }
        first_error
    }

    /// Brings every member back: paused ones continued, stopped ones started, traffic
    /// between them restored ([`Cluster::heal_network`]).
    pub async fn heal(&mut self) -> Result<(), String> {
        for i in 0..self.members.len() {
            if self.members[i].paused {
                self.resume(i);
            }
            if !self.is_running(i) {
                self.kill(i);
                self.spawn(i, None)?;
            }
        }
        self.heal_network().await?;
        for i in 0..self.members.len() {
            self.wait_serving(i).await?;
        }
        Ok(())
    }

    /// Waits until member `i` answers a linearizable read (it knows a leader and has
    /// caught up to a ReadIndex), within [`START_TIMEOUT`].
    pub async fn wait_serving(&mut self, i: usize) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        let endpoint = self.members[i].client_url.clone();
        loop {
            if let Some(status) = self.exited(i) {
                return Err(format!("{} exited with {status}", self.members[i].name));
            }
            let probe = async {
                let client = member_client(&endpoint, PROBE_TIMEOUT).await.ok()?;
                client.get("robustness-probe", None).await.ok()
            };
            if tokio::time::timeout(PROBE_TIMEOUT, probe).await.ok().flatten().is_some() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{} did not serve within {START_TIMEOUT:?}",
                    self.members[i].name
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The member that says it leads, asking each running, unpaused member.
    pub async fn leader(&mut self) -> Option<usize> {
        for i in 0..self.members.len() {
            if self.members[i].paused || !self.is_running(i) {
                continue;
            }
            let endpoint = self.members[i].client_url.clone();
            let status = async {
                let client = member_client(&endpoint, PROBE_TIMEOUT).await.ok()?;
                client.maintenance().status().await.ok()
            };
            let Ok(Some(status)) = tokio::time::timeout(PROBE_TIMEOUT, status).await else {
                continue;
            };
            let leader = status.leader;
            if status.header.is_some_and(|h| h.member_id == leader) {
                return Some(i);
            }
        }
        None
    }

    /// The members' log files.
    pub fn logs(&self) -> Vec<PathBuf> {
        self.members.iter().map(|m| m.log.clone()).collect()
    }

    /// Kills every member.
    pub fn stop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}
