//! oxetcd members run in this process, on 127.0.0.1 ports the OS picks, each with
//! its own temporary data dir.

use clap::Parser;
use oxetcd::config::{Config, Flags};
use oxetcd::embed::Member;
use oxetcd_etcdserver::ServerConfig;

/// A single-member cluster in a temp dir; closed and removed on [`TestMember::close`].
pub struct TestMember {
    pub member: Member,
    pub endpoint: String,
    pub dir: tempfile::TempDir,
}

/// The configuration of a single member on a free port, in `dir`.
pub fn single_member_config(dir: &std::path::Path, extra: &[&str]) -> Config {
    // Members listen on their peer URL, so every test member needs a port of its own (a
    // restart gets a new one: the `--initial-*` flags no longer matter then).
    let peer = format!("http://127.0.0.1:{}", free_port());
    named_member_config("test", &peer, &dir.join("data"), extra)
}

/// The configuration of a one-member cluster: member `name` at `peer` on `data_dir`,
/// its client URL on a free port, then the `extra` flags.
pub fn named_member_config(
    name: &str,
    peer: &str,
    data_dir: &std::path::Path,
    extra: &[&str],
) -> Config {
    cluster_member_config(name, peer, data_dir, &format!("{name}={peer}"), extra)
}

/// [`named_member_config`] for a member of the cluster `initial_cluster` names
/// (`name=peer-url,…`).
pub fn cluster_member_config(
    name: &str,
    peer: &str,
    data_dir: &std::path::Path,
    initial_cluster: &str,
    extra: &[&str],
) -> Config {
    let mut args: Vec<String> = [
        "oxetcd",
        "--name",
        name,
        "--listen-client-urls",
        "http://127.0.0.1:0",
        "--advertise-client-urls",
        "http://127.0.0.1:2379",
        "--listen-peer-urls",
        peer,
        "--initial-advertise-peer-urls",
        peer,
        "--initial-cluster",
        initial_cluster,
        "--data-dir",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(data_dir.display().to_string());
    args.extend(extra.iter().map(|s| s.to_string()));
    Flags::try_parse_from(args)
        .expect("test flags parse")
        .into_config()
        .expect("test flags are valid")
}

impl TestMember {
    pub async fn start(extra: &[&str]) -> TestMember {
        let dir = tempfile::tempdir().expect("temp dir");
        TestMember::start_in(dir, extra).await
    }

    /// Starts (or restarts) a member on the data dir inside `dir`.
    pub async fn start_in(dir: tempfile::TempDir, extra: &[&str]) -> TestMember {
        let config = single_member_config(dir.path(), extra);
        TestMember::start_configured(dir, config).await
    }

    /// Starts a member with a configuration built by [`single_member_config`] for `dir`
    /// and then adjusted (for settings that are not flags).
    pub async fn start_configured(dir: tempfile::TempDir, config: Config) -> TestMember {
        let member = Member::start(config).await.expect("member starts");
        let endpoint = format!("http://{}", member.client_addrs[0]);
        TestMember { member, endpoint, dir }
    }

    /// Stops the member, keeping its data dir.
    pub async fn stop(self) -> tempfile::TempDir {
        self.member.close().await;
        self.dir
    }
}

/// How many raft snapshot files (`member/snap/*.snap`) the member on `data_dir` has.
pub fn raft_snapshot_files(data_dir: &std::path::Path) -> usize {
    std::fs::read_dir(data_dir.join("member").join("snap"))
        .expect("the member's snap dir")
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "snap"))
        .count()
}

/// With `OXETCD_TEST_LOG=debug` (or info, warn), members log to stderr as text.
pub fn init_test_logs() {
    use oxetcd::config::{LogLevel, LogOutput, Logger};
    let level = match std::env::var("OXETCD_TEST_LOG").as_deref() {
        Ok("debug") => LogLevel::Debug,
        Ok("info") => LogLevel::Info,
        Ok("warn") => LogLevel::Warn,
        _ => return,
    };
    oxetcd::logging::init(level, Logger::Text, &[LogOutput::Stderr]).expect("stderr logging");
}

/// A port on 127.0.0.1 that was free a moment ago and that this process has not handed
/// out before. It comes from below the kernel's range for outgoing connections
/// (32768 and up), so no client connection takes it before the member binds it; each
/// test process starts at its own offset.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 10_000;
    const SPAN: u32 = 22_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7919) % SPAN,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    loop {
        let port = (FIRST + NEXT.fetch_add(1, Ordering::SeqCst) % SPAN) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// An n-member cluster in this process, each member on its own 127.0.0.1 ports and
/// data dir. Members can be stopped and restarted individually.
pub struct TestCluster {
    pub members: Vec<Option<Member>>,
    pub names: Vec<String>,
    peer_urls: Vec<String>,
    /// Fixed per member, so what a member advertises is where it really listens (a
    /// follower forwards lease keep-alives to the leader's advertised URL).
    client_urls: Vec<String>,
    /// Flags added to every member's command line.
    extra: Vec<String>,
    /// Applied to every member's configuration, for settings that are not flags.
    adjust: fn(&mut ServerConfig),
    /// `http`, or `https` for every client and peer URL.
    scheme: &'static str,
    dir: tempfile::TempDir,
}

impl TestCluster {
    pub async fn start(n: usize) -> TestCluster {
        TestCluster::start_with(n, &[]).await
    }

    /// A cluster whose members all get the `extra` flags.
    pub async fn start_with(n: usize, extra: &[&str]) -> TestCluster {
        TestCluster::start_configured(n, extra, |_| {}).await
    }

    /// A cluster whose members all get the `extra` flags, then `adjust` on their
    /// configuration.
    pub async fn start_configured(
        n: usize,
        extra: &[&str],
        adjust: fn(&mut ServerConfig),
    ) -> TestCluster {
        TestCluster::start_scheme(n, extra, adjust, "http").await
    }

    /// A cluster whose client and peer URLs are all `https://`; `extra` must give the
    /// members certificates (`--auto-tls --peer-auto-tls`, or files).
    pub async fn start_secure(n: usize, extra: &[&str]) -> TestCluster {
        TestCluster::start_scheme(n, extra, |_| {}, "https").await
    }

    async fn start_scheme(
        n: usize,
        extra: &[&str],
        adjust: fn(&mut ServerConfig),
        scheme: &'static str,
    ) -> TestCluster {
        init_test_logs();
        let dir = tempfile::tempdir().expect("temp dir");
        let names: Vec<String> = (0..n).map(|i| format!("m{i}")).collect();
        let peer_urls: Vec<String> =
            (0..n).map(|_| format!("{scheme}://127.0.0.1:{}", free_port())).collect();
        let extra = extra.iter().map(|s| s.to_string()).collect();
        let members = (0..n).map(|_| None).collect();
        let client_urls = (0..n).map(|_| format!("{scheme}://127.0.0.1:{}", free_port())).collect();
        let mut cluster =
            TestCluster { members, names, peer_urls, client_urls, extra, adjust, scheme, dir };
        for i in 0..n {
            cluster.start_member(i).await;
        }
        for member in cluster.members.iter().flatten() {
            tokio::time::timeout(std::time::Duration::from_secs(30), member.server.wait_ready())
                .await
                .expect("every member becomes ready");
        }
        cluster
    }

    /// Member `i`'s configuration: the cluster's flags, then `extra`.
    fn config(&self, i: usize, extra: &[&str]) -> Config {
        let initial: Vec<String> = self
            .names
            .iter()
            .zip(&self.peer_urls)
            .map(|(name, url)| format!("{name}={url}"))
            .collect();
        let args = [
            "oxetcd".to_string(),
            "--name".into(),
            self.names[i].clone(),
            "--data-dir".into(),
            self.dir.path().join(&self.names[i]).display().to_string(),
            "--listen-client-urls".into(),
            self.client_urls[i].clone(),
            "--advertise-client-urls".into(),
            self.client_urls[i].clone(),
            "--listen-peer-urls".into(),
            self.peer_urls[i].clone(),
            "--initial-advertise-peer-urls".into(),
            self.peer_urls[i].clone(),
            "--initial-cluster".into(),
            initial.join(","),
        ];
        let args = args
            .into_iter()
            .chain(self.extra.iter().cloned())
            .chain(extra.iter().map(|s| s.to_string()));
        let mut config = Flags::try_parse_from(args)
            .expect("cluster flags parse")
            .into_config()
            .expect("cluster flags are valid");
        (self.adjust)(&mut config.server);
        config
    }

    /// Starts (or restarts) member `i` on its data dir; does not wait for readiness.
    pub async fn start_member(&mut self, i: usize) {
        self.start_member_with(i, &[]).await;
    }

    /// Like [`TestCluster::start_member`], with `extra` flags for this start only
    /// (`--force-new-cluster`).
    pub async fn start_member_with(&mut self, i: usize, extra: &[&str]) {
        assert!(self.members[i].is_none(), "member {i} is running");
        let config = self.config(i, extra);
        self.members[i] = Some(Member::start(config).await.expect("member starts"));
    }

    /// Like [`TestCluster::start_member_with`], giving back why the member did not start
    /// (the initial corruption check's refusal) instead of failing the test.
    pub async fn try_start_member_with(
        &mut self,
        i: usize,
        extra: &[&str],
    ) -> Result<(), oxetcd::embed::StartError> {
        assert!(self.members[i].is_none(), "member {i} is running");
        let config = self.config(i, extra);
        self.members[i] = Some(Member::start(config).await?);
        Ok(())
    }

    /// Member `i`'s data dir.
    pub fn data_dir(&self, i: usize) -> std::path::PathBuf {
        self.dir.path().join(&self.names[i])
    }

    pub async fn stop_member(&mut self, i: usize) {
        if let Some(member) = self.members[i].take() {
            member.close().await;
        }
    }

    pub fn endpoint(&self, i: usize) -> String {
        let member = self.members[i].as_ref().expect("member is running");
        format!("{}://{}", self.scheme, member.client_addrs[0])
    }

    /// The index of the member every running member agrees leads, waiting for one.
    pub async fn leader(&self) -> usize {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let running: Vec<(usize, &Member)> = self
                .members
                .iter()
                .enumerate()
                .filter_map(|(i, m)| m.as_ref().map(|m| (i, m)))
                .collect();
            let leaders: Vec<u64> =
                running.iter().map(|(_, m)| m.server.raft_status().leader).collect();
            if let Some(&leader) = leaders.first()
                && leader != 0
                && leaders.iter().all(|&l| l == leader)
                && let Some((i, _)) = running.iter().find(|(_, m)| m.server.member_id() == leader)
            {
                return *i;
            }
            assert!(std::time::Instant::now() < deadline, "no agreed leader among running members");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    pub async fn stop_all(mut self) {
        for i in 0..self.members.len() {
            self.stop_member(i).await;
        }
    }
}
