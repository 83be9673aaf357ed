//! The reference server: Debian's etcd 3.4.23, started on 127.0.0.1 for one test,
//! in plaintext or with the client-side TLS flags of a [`ServerTlsFlags`] (certificates from
//! etcd's own test fixtures, see [`fixture`]).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use oxetcd_api::etcdserverpb::RangeRequest;
use oxetcd_api::etcdserverpb::kv_client::KvClient;
use oxetcd_tls::{ClientTls, Connector, TlsInfo, TlsOptions};
use tonic::transport::Endpoint;

use crate::member::free_port;

/// Where Debian's golang-etcd-server-dev installs etcd 3.4's TLS test fixtures
/// (`integration/fixtures`: a CA, server certificates for 127.0.0.1/localhost, a CRL).
pub const ETCD_FIXTURES: &str = "/usr/share/gocode/src/go.etcd.io/etcd/integration/fixtures";

/// Environment variable that names the fixtures directory when it is not [`ETCD_FIXTURES`].
pub const ETCD_FIXTURES_VAR: &str = "OXETCD_ETCD_FIXTURES";

/// The path of one of etcd's test fixtures (`ca.crt`, `server.key.insecure`, …). Panics,
/// saying how to get them, when it is missing: the compatibility suite never skips.
pub fn fixture(name: &str) -> PathBuf {
    let dir = std::env::var(ETCD_FIXTURES_VAR).unwrap_or_else(|_| ETCD_FIXTURES.to_string());
    let path = Path::new(&dir).join(name);
    assert!(
        path.is_file(),
        "etcd's TLS test fixture {} is missing. The compatibility suite needs etcd 3.4's \
         fixtures: run scripts/compat.sh (it installs Debian's golang-etcd-server-dev), or set \
         {ETCD_FIXTURES_VAR} to a directory holding them",
        path.display()
    );
    path
}

/// The client-side TLS flags a server is started with (etcd's `--cert-file`,
/// `--key-file`, `--trusted-ca-file`, `--client-cert-auth`, `--client-crl-file`,
/// `--auto-tls`), as one [`TlsInfo`]; the default is plaintext. A side-by-side
/// comparison gives the same flags to the reference etcd and to oxetcd.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerTlsFlags {
    pub info: TlsInfo,
}

impl ServerTlsFlags {
    /// No TLS: `http://` client URLs.
    pub fn plaintext() -> ServerTlsFlags {
        ServerTlsFlags::default()
    }

    /// Serves etcd's fixture `<name>.crt` with its key `<name>.key.insecure`
    /// (`--cert-file`, `--key-file`).
    pub fn fixture_cert(name: &str) -> ServerTlsFlags {
        let info = TlsInfo {
            cert_file: Some(fixture(&format!("{name}.crt"))),
            key_file: Some(fixture(&format!("{name}.key.insecure"))),
            ..TlsInfo::default()
        };
        ServerTlsFlags { info }
    }

    /// `--auto-tls`: a self-signed certificate each server generates.
    pub fn auto() -> ServerTlsFlags {
        ServerTlsFlags { info: TlsInfo { auto_tls: true, ..TlsInfo::default() } }
    }

    /// With `--trusted-ca-file <fixture>`.
    pub fn trusted_ca(mut self, ca: &str) -> ServerTlsFlags {
        self.info.trusted_ca_file = Some(fixture(ca));
        self
    }

    /// With `--client-cert-auth`.
    pub fn client_cert_auth(mut self) -> ServerTlsFlags {
        self.info.client_cert_auth = true;
        self
    }

    /// With `--client-crl-file <fixture>`.
    pub fn crl(mut self, crl: &str) -> ServerTlsFlags {
        self.info.crl_file = Some(fixture(crl));
        self
    }

    /// The scheme of the client URLs: `https` with TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.info.is_enabled() { "https" } else { "http" }
    }

    /// The flags, as etcd (and so oxetcd) takes them.
    pub fn flags(&self) -> Vec<String> {
        let TlsInfo { cert_file, key_file, trusted_ca_file, client_cert_auth, crl_file, .. } =
            &self.info;
        let mut flags = Vec::new();
        for (flag, path) in [
            ("--cert-file", cert_file),
            ("--key-file", key_file),
            ("--trusted-ca-file", trusted_ca_file),
            ("--client-crl-file", crl_file),
        ] {
            if let Some(path) = path {
                flags.push(format!("{flag}={}", path.display()));
            }
        }
        if *client_cert_auth {
            flags.push("--client-cert-auth".to_string());
        }
        if self.info.auto_tls {
            flags.push("--auto-tls".to_string());
        }
        flags
    }

    /// The URLs a server started with these flags listens on for clients (`listen`, for
    /// `--listen-client-urls`), advertises (`client`, the URL etcdctl is given) and the
    /// harness dials, on free ports, with the harness's client TLS.
    ///
    /// With certificate files the harness dials the client URL, presenting the server's
    /// own certificate (the fixtures' server certificates are client certificates too)
    /// and verifying the server against the trusted CA (etcd's `ca.crt` if none is set).
    /// Under auto-TLS it dials without verifying, as etcdctl's
    /// `--insecure-skip-tls-verify` (etcd 3.4's self-signed certificates are ECDSA P-521,
    /// which oxetcd-tls verifies in handshakes).
    pub fn urls(&self) -> ServerUrls {
        let client = format!("{}://127.0.0.1:{}", self.scheme(), free_port());
        let mut auto_tls_dir = None;
        let tls = self.info.is_enabled().then(|| {
            let (info, dir) = if self.info.auto_tls {
                let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
                let info = TlsInfo { auto_tls: true, ..TlsInfo::default() };
                auto_tls_dir = Some(dir.clone());
                (info, dir.path().to_path_buf())
            } else {
                let info = TlsInfo {
                    cert_file: self.info.cert_file.clone(),
                    key_file: self.info.key_file.clone(),
                    trusted_ca_file: Some(
                        self.info.trusted_ca_file.clone().unwrap_or_else(|| fixture("ca.crt")),
                    ),
                    ..TlsInfo::default()
                };
                (info, PathBuf::from("/nonexistent"))
            };
            ClientTls::new(&info, &TlsOptions::default(), &dir)
                .unwrap_or_else(|e| panic!("the harness's client TLS for {self:?}: {e}"))
        });
        ServerUrls {
            listen: client.clone(),
            client: client.clone(),
            harness: Harness { url: client, tls, _auto_tls_dir: auto_tls_dir },
        }
    }
}

/// Where a server listens for clients, see [`ServerTlsFlags::urls`].
#[derive(Clone, Debug)]
pub struct ServerUrls {
    /// `--listen-client-urls`.
    pub listen: String,
    /// `--advertise-client-urls`: the client URL.
    pub client: String,
    pub harness: Harness,
}

/// How the harness itself reaches a server (readiness probes, learning its ids): a URL
/// and, for `https://`, the client TLS to dial it with.
#[derive(Clone, Debug)]
pub struct Harness {
    pub url: String,
    pub tls: Option<ClientTls>,
    /// Where an auto-TLS client keeps its generated certificate, removed with the last
    /// clone.
    _auto_tls_dir: Option<Arc<tempfile::TempDir>>,
}

impl Harness {
    /// Plaintext, to `url`.
    pub fn plain(url: String) -> Harness {
        Harness { url, tls: None, _auto_tls_dir: None }
    }
}

/// How long the reference etcd may take to start serving before the test fails.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The reference member's name, unless a test gives one.
const REFERENCE_NAME: &str = "reference";

/// Environment variable that names the etcd binary when it is not `etcd` on `PATH`.
pub const ETCD_BIN_VAR: &str = "OXETCD_REFERENCE_ETCD";

/// A single-member etcd on free loopback ports, with its own data dir; killed and
/// removed when dropped.
pub struct ReferenceEtcd {
    child: Child,
    log: PathBuf,
    /// `http://127.0.0.1:<port>` (`https://` with TLS), the client URL.
    pub endpoint: String,
    /// How the harness reaches it (the client URL, in plaintext).
    pub harness: Harness,
    _dir: tempfile::TempDir,
}

impl ReferenceEtcd {
    /// Starts etcd and waits until it answers a Range. Panics, saying how to get the
    /// binary, when etcd is not installed: the compatibility suite never skips.
    pub async fn start() -> ReferenceEtcd {
        ReferenceEtcd::start_with(&ServerTlsFlags::plaintext()).await
    }

    /// [`ReferenceEtcd::start`], serving its client URL with `tls` (peers stay plaintext).
    pub async fn start_with(tls: &ServerTlsFlags) -> ReferenceEtcd {
        ReferenceEtcd::start_with_flags(tls, &[]).await
    }

    /// [`ReferenceEtcd::start_with`], with `extra` flags after the harness's own.
    pub async fn start_with_flags(tls: &ServerTlsFlags, extra: &[&str]) -> ReferenceEtcd {
        let dir = tempfile::tempdir().expect("temp dir for the reference etcd");
        let data_dir = dir.path().join("data");
        let peer = format!("http://127.0.0.1:{}", free_port());
        ReferenceEtcd::launch(tls, dir, &data_dir, REFERENCE_NAME, &peer, extra).serving().await
    }

    /// A single member named `name` on `data_dir`, which outlives it (a data dir made by
    /// a restore, or to be handed to oxetcd afterwards), its peer URL `peer`.
    pub async fn start_on(data_dir: &Path, name: &str, peer: &str) -> ReferenceEtcd {
        let dir = tempfile::tempdir().expect("temp dir for the reference etcd's log");
        let plaintext = ServerTlsFlags::plaintext();
        ReferenceEtcd::launch(&plaintext, dir, data_dir, name, peer, &[]).serving().await
    }

    /// The members of one cluster, each `(data dir, name, peer URL)`, started together
    /// (none serves before a quorum runs); returns once each serves. The data dirs
    /// outlive them, as with [`ReferenceEtcd::start_on`].
    pub async fn start_cluster_on(members: &[(&Path, &str, &str)]) -> Vec<ReferenceEtcd> {
        let initial: Vec<String> = members.iter().map(|(_, n, p)| format!("{n}={p}")).collect();
        let initial = ["--initial-cluster", &initial.join(",")];
        let mut etcds: Vec<ReferenceEtcd> = members
            .iter()
            .map(|&(data_dir, name, peer)| {
                let dir = tempfile::tempdir().expect("temp dir for the reference etcd's log");
                let plaintext = ServerTlsFlags::plaintext();
                ReferenceEtcd::launch(&plaintext, dir, data_dir, name, peer, &initial)
            })
            .collect();
        for etcd in &mut etcds {
            etcd.wait_until_serving().await;
        }
        etcds
    }

    /// Once it serves.
    async fn serving(mut self) -> ReferenceEtcd {
        self.wait_until_serving().await;
        self
    }

    /// Starts the process of a one-member cluster (`extra` may name other members with a
    /// later `--initial-cluster`: etcd takes a flag's last value); does not wait.
    fn launch(
        tls: &ServerTlsFlags,
        dir: tempfile::TempDir,
        data_dir: &Path,
        name: &str,
        peer: &str,
        extra: &[&str],
    ) -> ReferenceEtcd {
        let bin = std::env::var(ETCD_BIN_VAR).unwrap_or_else(|_| "etcd".to_string());
        let log = dir.path().join("etcd.log");
        let ServerUrls { listen, client: endpoint, harness } = tls.urls();
        let log_file = std::fs::File::create(&log).expect("etcd log file");
        let child = Command::new(&bin)
            .args(["--name", name])
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen-client-urls", &listen])
            .args(["--advertise-client-urls", &endpoint])
            .args(["--listen-peer-urls", peer])
            .args(["--initial-advertise-peer-urls", peer])
            .args(["--initial-cluster", &format!("{name}={peer}")])
            .args(["--logger", "zap", "--log-outputs", "stderr"])
            .args(tls.flags())
            .args(extra)
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
        ReferenceEtcd { child, log, endpoint, harness, _dir: dir }
    }

    async fn wait_until_serving(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the reference etcd") {
                panic!("the reference etcd exited with {status}:\n{}", self.log_text());
            }
            // A raw stub, as the response-by-response comparisons against this server
            // use: one probe per try, no retries or failover to account for.
            let connector = Connector::new(self.harness.tls.as_ref().map(ClientTls::config));
            let endpoint = Endpoint::from_shared(self.harness.url.clone()).expect("a valid URL");
            if let Ok(channel) = endpoint.connect_with_connector(connector).await {
                let mut kv = KvClient::new(channel);
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
