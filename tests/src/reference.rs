//! The reference server: Debian's etcd 3.4.23, started on 127.0.0.1 for one test.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use oxetcd_api::etcdserverpb::RangeRequest;
use oxetcd_api::etcdserverpb::kv_client::KvClient;

use crate::member::free_port;

/// How long the reference etcd may take to start serving before the test fails.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Environment variable that names the etcd binary when it is not `etcd` on `PATH`.
pub const ETCD_BIN_VAR: &str = "OXETCD_REFERENCE_ETCD";

/// A single-member etcd on free loopback ports, with its own data dir; killed and
/// removed when dropped.
pub struct ReferenceEtcd {
    child: Child,
    log: PathBuf,
    /// `http://127.0.0.1:<port>`, the client URL.
    pub endpoint: String,
    _dir: tempfile::TempDir,
}

impl ReferenceEtcd {
    /// Starts etcd and waits until it answers a Range. Panics, saying how to get the
    /// binary, when etcd is not installed: the compatibility suite never skips.
    pub async fn start() -> ReferenceEtcd {
        let bin = std::env::var(ETCD_BIN_VAR).unwrap_or_else(|_| "etcd".to_string());
        let dir = tempfile::tempdir().expect("temp dir for the reference etcd");
        let log = dir.path().join("etcd.log");
        let client_port = free_port();
        let peer_port = free_port();
        let endpoint = format!("http://127.0.0.1:{client_port}");
        let peer = format!("http://127.0.0.1:{peer_port}");
        let log_file = std::fs::File::create(&log).expect("etcd log file");
        let child = Command::new(&bin)
            .args(["--name", "reference"])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--listen-client-urls", &endpoint])
            .args(["--advertise-client-urls", &endpoint])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("reference={peer}")])
            .args(["--logger", "zap", "--log-outputs", "stderr"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run the reference etcd `{bin}`: {e}. The compatibility suite needs \
                     etcd 3.4.23: run scripts/compat.sh (it installs Debian's etcd-server), or \
                     set {ETCD_BIN_VAR} to the etcd binary"
                )
            });
        let mut etcd = ReferenceEtcd { child, log, endpoint, _dir: dir };
        etcd.wait_until_serving().await;
        etcd
    }

    async fn wait_until_serving(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the reference etcd") {
                panic!("the reference etcd exited with {status}:\n{}", self.log_text());
            }
            // A raw stub, as the response-by-response comparisons against this server
            // use: one probe per try, no retries or failover to account for.
            if let Ok(mut kv) = KvClient::connect(self.endpoint.clone()).await {
                let probe = RangeRequest { key: "probe".into(), ..Default::default() };
                if kv.range(probe).await.is_ok() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the reference etcd did not serve within {START_TIMEOUT:?}:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What the server logged so far, for failure messages.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ReferenceEtcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
