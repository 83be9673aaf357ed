//! The server's configuration: etcd's flag names, defaults and `ETCD_*` environment
//! variables, checked before anything is written to disk.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::membership::InitialMember;

/// oxetcd: a distributed, reliable key-value store that speaks etcd's v3 API.
#[derive(Debug, Clone, Parser)]
#[command(name = "oxetcd", version, about, long_about = None)]
pub struct Flags {
    /// Human-readable name for this member.
    #[arg(long, env = "ETCD_NAME", default_value = "default")]
    pub name: String,
    /// Path to the data directory [default: <name>.oxetcd].
    #[arg(long = "data-dir", env = "ETCD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// List of URLs to listen on for client traffic.
    #[arg(
        long = "listen-client-urls",
        env = "ETCD_LISTEN_CLIENT_URLS",
        default_value = "http://localhost:2379"
    )]
    pub listen_client_urls: String,
    /// List of this member's client URLs to advertise to the rest of the cluster.
    #[arg(
        long = "advertise-client-urls",
        env = "ETCD_ADVERTISE_CLIENT_URLS",
        default_value = "http://localhost:2379"
    )]
    pub advertise_client_urls: String,
    /// List of URLs to listen on for peer traffic.
    #[arg(
        long = "listen-peer-urls",
        env = "ETCD_LISTEN_PEER_URLS",
        default_value = "http://localhost:2380"
    )]
    pub listen_peer_urls: String,
    /// List of this member's peer URLs to advertise to the rest of the cluster.
    #[arg(
        long = "initial-advertise-peer-urls",
        env = "ETCD_INITIAL_ADVERTISE_PEER_URLS",
        default_value = "http://localhost:2380"
    )]
    pub initial_advertise_peer_urls: String,
    /// Initial cluster configuration for bootstrapping [default: <name>=http://localhost:2380].
    #[arg(long = "initial-cluster", env = "ETCD_INITIAL_CLUSTER")]
    pub initial_cluster: Option<String>,
    /// Initial cluster state ('new' or 'existing').
    #[arg(
        long = "initial-cluster-state",
        env = "ETCD_INITIAL_CLUSTER_STATE",
        default_value = "new"
    )]
    pub initial_cluster_state: ClusterState,
    /// Initial cluster token for the etcd cluster during bootstrap.
    #[arg(
        long = "initial-cluster-token",
        env = "ETCD_INITIAL_CLUSTER_TOKEN",
        default_value = "etcd-cluster"
    )]
    pub initial_cluster_token: String,
    /// Time (in milliseconds) of a heartbeat interval.
    #[arg(long = "heartbeat-interval", env = "ETCD_HEARTBEAT_INTERVAL", default_value_t = 100)]
    pub heartbeat_interval: u64,
    /// Time (in milliseconds) for an election to timeout.
    #[arg(long = "election-timeout", env = "ETCD_ELECTION_TIMEOUT", default_value_t = 1000)]
    pub election_timeout: u64,
    /// Number of committed transactions to trigger a snapshot to disk.
    #[arg(long = "snapshot-count", env = "ETCD_SNAPSHOT_COUNT", default_value_t = 10_000)]
    pub snapshot_count: u64,
    /// Number of entries kept for slow followers to catch up after a snapshot.
    #[arg(
        long = "snapshot-catchup-entries",
        env = "ETCD_SNAPSHOT_CATCHUP_ENTRIES",
        default_value_t = 5000
    )]
    pub snapshot_catchup_entries: u64,
    /// Maximum number of snapshot files to retain (0 is unlimited).
    #[arg(long = "max-snapshots", env = "ETCD_MAX_SNAPSHOTS", default_value_t = 5)]
    pub max_snapshots: usize,
    /// Maximum number of wal files to retain (0 is unlimited).
    #[arg(long = "max-wals", env = "ETCD_MAX_WALS", default_value_t = 5)]
    pub max_wals: usize,
    /// Maximum client request size in bytes the server will accept.
    #[arg(long = "max-request-bytes", env = "ETCD_MAX_REQUEST_BYTES", default_value_t = 1_572_864)]
    pub max_request_bytes: usize,
    /// Maximum number of operations permitted in a transaction.
    #[arg(long = "max-txn-ops", env = "ETCD_MAX_TXN_OPS", default_value_t = 128)]
    pub max_txn_ops: usize,
    /// Configures log level. Only supports debug, info, warn, error, panic, or fatal.
    #[arg(long = "log-level", env = "ETCD_LOG_LEVEL", default_value = "info")]
    pub log_level: LogLevel,
    /// Specify 'zap' for structured (JSON) logging; oxetcd also accepts 'text'.
    #[arg(long, env = "ETCD_LOGGER", default_value = "zap")]
    pub logger: Logger,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ClusterState {
    New,
    Existing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
    Panic,
    Fatal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Logger {
    Zap,
    Text,
}

/// A parsed `http://host:port` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub text: String,
    pub addr: SocketAddr,
}

/// The checked configuration the server runs with.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub name: String,
    pub data_dir: PathBuf,
    pub listen_client_urls: Vec<Url>,
    pub advertise_client_urls: Vec<String>,
    pub listen_peer_urls: Vec<Url>,
    pub initial_advertise_peer_urls: Vec<String>,
    pub initial_cluster: Vec<InitialMember>,
    pub initial_cluster_state: ClusterState,
    pub initial_cluster_token: String,
    pub heartbeat: Duration,
    pub election_ticks: usize,
    pub snapshot_count: u64,
    pub snapshot_catchup_entries: u64,
    pub max_snapshots: usize,
    pub max_wals: usize,
    pub max_request_bytes: usize,
    pub max_txn_ops: usize,
    pub log_level: LogLevel,
    pub logger: Logger,
}

/// A configuration mistake, reported before the server touches the disk.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("invalid URL {0:?}: {1}")]
    BadUrl(String, String),
    #[error("--initial-cluster: {0}")]
    BadInitialCluster(String),
    #[error(
        "--election-timeout[{election}ms] should be at least 5 times as --heartbeat-interval[{heartbeat}ms]"
    )]
    ElectionTimeout { election: u64, heartbeat: u64 },
    #[error("--heartbeat-interval must be positive")]
    ZeroHeartbeat,
    #[error("--{0} must be positive")]
    NotPositive(&'static str),
}

impl Flags {
    pub fn into_config(self) -> Result<ServerConfig, ConfigError> {
        if self.heartbeat_interval == 0 {
            return Err(ConfigError::ZeroHeartbeat);
        }
        if self.election_timeout < 5 * self.heartbeat_interval {
            return Err(ConfigError::ElectionTimeout {
                election: self.election_timeout,
                heartbeat: self.heartbeat_interval,
            });
        }
        for (value, flag) in [
            (self.snapshot_count, "snapshot-count"),
            (self.max_request_bytes as u64, "max-request-bytes"),
            (self.max_txn_ops as u64, "max-txn-ops"),
        ] {
            if value == 0 {
                return Err(ConfigError::NotPositive(flag));
            }
        }
        let initial_cluster = self
            .initial_cluster
            .clone()
            .unwrap_or_else(|| format!("{}={}", self.name, self.initial_advertise_peer_urls));
        Ok(ServerConfig {
            data_dir: self
                .data_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(format!("{}.oxetcd", self.name))),
            listen_client_urls: parse_listen_urls(&self.listen_client_urls)?,
            advertise_client_urls: split_urls(&self.advertise_client_urls)?,
            listen_peer_urls: parse_listen_urls(&self.listen_peer_urls)?,
            initial_advertise_peer_urls: split_urls(&self.initial_advertise_peer_urls)?,
            initial_cluster: parse_initial_cluster(&initial_cluster)?,
            initial_cluster_state: self.initial_cluster_state,
            initial_cluster_token: self.initial_cluster_token,
            heartbeat: Duration::from_millis(self.heartbeat_interval),
            election_ticks: (self.election_timeout / self.heartbeat_interval) as usize,
            snapshot_count: self.snapshot_count,
            snapshot_catchup_entries: self.snapshot_catchup_entries,
            max_snapshots: self.max_snapshots,
            max_wals: self.max_wals,
            max_request_bytes: self.max_request_bytes,
            max_txn_ops: self.max_txn_ops,
            log_level: self.log_level,
            logger: self.logger,
            name: self.name,
        })
    }
}

impl ServerConfig {
    /// etcd's request timeout: 5 s plus two election timeouts.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(5) + 2 * self.heartbeat * self.election_ticks as u32
    }
}

/// Checks a comma-separated URL list; only plain `http` is served so far.
fn split_urls(list: &str) -> Result<Vec<String>, ConfigError> {
    let urls: Vec<String> =
        list.split(',').map(str::trim).filter(|u| !u.is_empty()).map(String::from).collect();
    if urls.is_empty() {
        return Err(ConfigError::BadUrl(list.to_string(), "no URL given".into()));
    }
    for url in &urls {
        host_port(url)?;
    }
    Ok(urls)
}

fn host_port(url: &str) -> Result<&str, ConfigError> {
    let bad = |why: &str| ConfigError::BadUrl(url.to_string(), why.to_string());
    let rest = match url.split_once("://") {
        Some(("http", rest)) => rest,
        Some(("https", _)) => return Err(bad("TLS is not supported yet; use http")),
        Some((scheme, _)) => return Err(bad(&format!("URL scheme must be http, got {scheme}"))),
        None => return Err(bad("missing scheme (http://host:port)")),
    };
    let host_port = rest.trim_end_matches('/');
    if host_port.contains('/') || !host_port.contains(':') {
        return Err(bad("expected http://host:port"));
    }
    Ok(host_port)
}

fn parse_listen_urls(list: &str) -> Result<Vec<Url>, ConfigError> {
    split_urls(list)?
        .into_iter()
        .map(|text| {
            let host_port = host_port(&text)?;
            let addr = host_port
                .to_socket_addrs()
                .map_err(|e| ConfigError::BadUrl(text.clone(), e.to_string()))?
                // Prefer IPv4 for `localhost`, as clients dialing it mostly do.
                .min_by_key(|a| a.is_ipv6())
                .ok_or_else(|| {
                    ConfigError::BadUrl(text.clone(), "resolves to no address".into())
                })?;
            Ok(Url { text, addr })
        })
        .collect()
}

fn parse_initial_cluster(value: &str) -> Result<Vec<InitialMember>, ConfigError> {
    let mut members: Vec<InitialMember> = Vec::new();
    for pair in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, url) = pair
            .split_once('=')
            .ok_or_else(|| ConfigError::BadInitialCluster(format!("{pair:?} is not name=url")))?;
        host_port(url)?;
        match members.iter_mut().find(|m| m.name == name) {
            Some(m) => m.peer_urls.push(url.to_string()),
            None => members
                .push(InitialMember { name: name.to_string(), peer_urls: vec![url.to_string()] }),
        }
    }
    if members.is_empty() {
        return Err(ConfigError::BadInitialCluster("no members".into()));
    }
    Ok(members)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<ServerConfig, ConfigError> {
        let mut argv = vec!["oxetcd"];
        argv.extend_from_slice(args);
        Flags::try_parse_from(argv).expect("flags parse").into_config()
    }

    #[test]
    fn defaults_are_etcds() {
        let cfg = parse(&[]).unwrap();
        assert_eq!(cfg.data_dir, PathBuf::from("default.oxetcd"));
        assert_eq!(cfg.listen_client_urls[0].addr.port(), 2379);
        assert_eq!(
            cfg.initial_cluster,
            vec![InitialMember {
                name: "default".into(),
                peer_urls: vec!["http://localhost:2380".into()]
            }]
        );
        assert_eq!((cfg.heartbeat, cfg.election_ticks), (Duration::from_millis(100), 10));
        assert_eq!((cfg.max_request_bytes, cfg.max_txn_ops), (1_572_864, 128));
        assert_eq!(cfg.request_timeout(), Duration::from_secs(7));
    }

    #[test]
    fn initial_cluster_groups_urls_by_name() {
        let cfg = parse(&[
            "--initial-cluster",
            "a=http://127.0.0.1:1,b=http://127.0.0.2:1,a=http://127.0.0.1:2",
        ])
        .unwrap();
        assert_eq!(cfg.initial_cluster.len(), 2);
        assert_eq!(cfg.initial_cluster[0].peer_urls.len(), 2);
    }

    #[test]
    fn bad_values_are_refused_with_a_clear_message() {
        let err = parse(&["--listen-client-urls", "127.0.0.1:2379"]).unwrap_err();
        assert!(err.to_string().contains("missing scheme"), "{err}");
        let err = parse(&["--election-timeout", "200"]).unwrap_err();
        assert_eq!(err, ConfigError::ElectionTimeout { election: 200, heartbeat: 100 });
        let err = parse(&["--initial-cluster", "nourl"]).unwrap_err();
        assert!(matches!(err, ConfigError::BadInitialCluster(_)));
        assert!(Flags::try_parse_from(["oxetcd", "--no-such-flag"]).is_err());
        assert!(Flags::try_parse_from(["oxetcd", "--initial-cluster-state", "maybe"]).is_err());
    }
}
