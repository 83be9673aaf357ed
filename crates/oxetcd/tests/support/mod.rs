//! The real `oxetcd` binary as a child process, shared by the multi-process tests:
//! a member's flags, starting it, waiting until it serves, SIGTERM and SIGKILL.
//! Each member's stderr (its log) goes to a file; a member dropped while the test
//! panics prints the tail of that log. Everything on 127.0.0.1.
//! Clients go through `oxetcd-client` ([`member_client`]), but for a gRPC client that
//! leaves a request's deadline to the server ([`server_timed_client`]).

// Each test crate that includes this module uses its own part of it.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use oxetcd_client::{Client, ClientOptions};

/// How long a member may take to start serving clients.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The line a test writes into a member's log before each start.
const START_MARK: &str = "--- the test starts ";

/// Polls `condition` every 20 ms until it yields a value; panics naming `what` after
/// `within`.
pub async fn poll_until<T>(
    what: &str,
    within: Duration,
    mut condition: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = condition().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {within:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `n` distinct ports that were free a moment ago on 127.0.0.1 (peer URLs must be known
/// up front). They are picked at random below the kernel's ephemeral range, so that no
/// outgoing connection (of this or another test) takes one before its member listens;
/// the listeners are held until all are picked, so no port comes twice.
pub fn free_ports(n: usize) -> Vec<u16> {
    use std::hash::{BuildHasher, RandomState};
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (low, high) = (10_000, ephemeral_low.max(20_000));
    let mut listeners = Vec::new();
    for attempt in 0u64.. {
        if listeners.len() == n {
            break;
        }
        assert!(attempt < 10_000, "no free ports in {low}..{high}");
        let port = low + (RandomState::new().hash_one(attempt) % u64::from(high - low)) as u16;
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            listeners.push(listener);
        }
    }
    listeners.iter().map(|l| l.local_addr().expect("a bound port").port()).collect()
}

/// How long a [`member_client`] waits for its TCP connection.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(1);

/// An `oxetcd-client` of the one member at `endpoint`, each call bounded by `timeout`
/// (if any), with retries off: every call is one request to that member, so a test sees
/// the member's own answer (its error code, a write applied at most once) and does any
/// retrying or failing over itself. Fails if the member accepts no connection within
/// [`DIAL_TIMEOUT`]; once connected, it reconnects by itself after the member restarts.
pub async fn member_client(
    endpoint: &str,
    timeout: Option<Duration>,
) -> oxetcd_client::Result<Client> {
    let mut options = ClientOptions::default().with_dial_timeout(DIAL_TIMEOUT).with_max_retries(0);
    if let Some(timeout) = timeout {
        options = options.with_request_timeout(timeout);
    }
    Client::connect([endpoint], options).await
}

/// A gRPC transport for the generated clients (`KvClient::with_origin(client, url)`)
/// with no timer of its own: tonic's channel enforces a request's `grpc-timeout` on the
/// client side as well, answering `CANCELLED "Timeout expired"` itself at the same
/// instant as the server's deadline; over this one the answer is always the server's.
pub type ServerTimedClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    tonic::body::Body,
>;

pub fn server_timed_client() -> ServerTimedClient {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

/// The `oxetcdutl` binary, from the target dir this test's `oxetcd` binary was built in
/// (`target/<profile>/`). Cargo gives its path at build time only to the utl crate's own
/// tests, so the multi-process tests find it here: `cargo test --workspace` builds it,
/// and so does `cargo build -p oxetcd-utl`. Panics if it is missing.
pub fn oxetcdutl_bin() -> PathBuf {
    let oxetcd = Path::new(env!("CARGO_BIN_EXE_oxetcd"));
    let path = oxetcd.with_file_name(format!("oxetcdutl{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "{} is missing: build it first (`cargo build -p oxetcd-utl`; `cargo test --workspace` \
         builds it)",
        path.display()
    );
    path
}

/// The flags of one member.
#[derive(Clone, Debug)]
pub struct MemberConfig {
    pub name: String,
    pub data_dir: PathBuf,
    pub client_url: String,
    pub peer_url: String,
    /// `--initial-cluster`: `name=peer-url,...`.
    pub initial_cluster: String,
    /// Where the member's stderr goes (appended to across restarts).
    pub log: PathBuf,
    /// More flags, e.g. `--heartbeat-interval 50`.
    pub extra: Vec<String>,
    /// Environment variables for the process, e.g. `FAILPOINTS`.
    pub env: Vec<(String, String)>,
}

impl MemberConfig {
    /// A single-member cluster called `name`, with its data dir and log inside `dir`.
    pub fn single(dir: &Path, name: &str) -> MemberConfig {
        MemberConfig::cluster(dir, &[name], &[]).remove(0)
    }

    /// One member per name, on fresh ports, with data dirs and logs inside `dir` and an
    /// `--initial-cluster-token` of their own.
    pub fn cluster(dir: &Path, names: &[&str], extra: &[&str]) -> Vec<MemberConfig> {
        let ports = free_ports(2 * names.len());
        let peer_urls: Vec<String> =
            ports[names.len()..].iter().map(|p| format!("http://127.0.0.1:{p}")).collect();
        let initial_cluster: Vec<String> =
            names.iter().zip(&peer_urls).map(|(name, url)| format!("{name}={url}")).collect();
        let token = dir.file_name().map_or("oxetcd-test".into(), |n| n.to_string_lossy());
        let mut extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        extra.extend(["--initial-cluster-token".to_string(), token.into_owned()]);
        names
            .iter()
            .zip(peer_urls)
            .zip(&ports)
            .map(|((name, peer_url), client_port)| MemberConfig {
                name: name.to_string(),
                data_dir: dir.join(name),
                client_url: format!("http://127.0.0.1:{client_port}"),
                peer_url,
                initial_cluster: initial_cluster.join(","),
                log: dir.join(format!("{name}.log")),
                extra: extra.clone(),
                env: Vec::new(),
            })
            .collect()
    }

    /// Everything the member logged, across restarts.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// What the member logged since the test last started it.
    pub fn last_run_log(&self) -> String {
        let log = self.log();
        log.rfind(START_MARK).map_or(log.clone(), |at| log[at..].to_string())
    }

    /// The last `lines` lines of the member's log, headed by its name.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        let tail = all[all.len().saturating_sub(lines)..].join("\n");
        format!("=== {} ({}) ===\n{tail}", self.name, self.log.display())
    }
}

/// One running `oxetcd` process; killed (SIGKILL) when dropped, stopped (SIGSTOP) or not.
pub struct Process {
    child: Child,
    config: MemberConfig,
}

impl Process {
    /// Starts the process; does not wait for it to serve.
    pub fn spawn(config: &MemberConfig) -> Process {
        use std::io::Write;
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&config.log)
            .expect("open the member's log");
        writeln!(log, "{START_MARK}{} ---", config.name).expect("write the member's log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_oxetcd"));
        // Only the flags below configure the member.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("ETCD_") {
                command.env_remove(name);
            }
        }
        let child = command
            .args(["--name", &config.name])
            .arg("--data-dir")
            .arg(&config.data_dir)
            .args(["--listen-client-urls", &config.client_url])
            .args(["--advertise-client-urls", &config.client_url])
            .args(["--listen-peer-urls", &config.peer_url])
            .args(["--initial-advertise-peer-urls", &config.peer_url])
            .args(["--initial-cluster", &config.initial_cluster])
            .args(&config.extra)
            .envs(config.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn oxetcd");
        Process { child, config: config.clone() }
    }

    /// Starts the process and waits until it serves clients.
    pub async fn start(config: &MemberConfig) -> Process {
        let mut process = Process::spawn(config);
        process.wait_serving().await;
        process
    }

    pub fn endpoint(&self) -> &str {
        &self.config.client_url
    }

    pub fn config(&self) -> &MemberConfig {
        &self.config
    }

    /// Waits until the member answers a linearizable read (it has published itself and
    /// knows a leader); panics with its log if it exits or takes too long.
    pub async fn wait_serving(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the child") {
                panic!("{} exited with {status}:\n{}", self.config.name, self.log_tail(40));
            }
            let probe = async {
                let client = member_client(&self.config.client_url, None).await.ok()?;
                client.get("probe", None).await.ok()
            };
            if let Ok(Some(_)) = tokio::time::timeout(Duration::from_secs(2), probe).await {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not serve within {START_TIMEOUT:?}:\n{}",
                self.config.name,
                self.log_tail(40)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL, without waiting for the process to be gone (see [`Process::wait_exit`]).
    pub fn send_kill(&mut self) {
        let _ = self.child.kill();
    }

    /// Sends `signal` (a name `kill` knows: `TERM` for a graceful stop, `STOP`, `CONT`).
    pub fn signal(&mut self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {} failed", self.config.name);
    }

    /// SIGKILL and wait until the process is gone.
    pub fn kill(&mut self) {
        self.send_kill();
        let _ = self.child.wait();
    }

    /// Whether the process has exited (its status stays for [`Process::wait_exit`]).
    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Waits for the process to exit by itself; panics with its log after `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the child") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit within {timeout:?}:\n{}",
                self.config.name,
                self.log_tail(40)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The last `lines` lines of the member's log.
    pub fn log_tail(&self, lines: usize) -> String {
        self.config.log_tail(lines)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail(30));
        }
    }
}
