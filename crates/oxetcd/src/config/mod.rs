//! The server's configuration: etcd's flag names, defaults, `ETCD_*` environment
//! variables and YAML configuration file, all checked before anything is written to disk.
//!
//! Sources and precedence, as in etcd 3.4:
//!
//! - **`--config-file <path>`** (or `ETCD_CONFIG_FILE`): the YAML file is then the *only*
//!   source. Its keys are the flag names (`name`, `data-dir`, `listen-client-urls`, …);
//!   every other command-line flag and `ETCD_*` variable is ignored, and a notice says
//!   so. Unknown keys are ignored with a warning (etcd ignores them silently); a `null`
//!   value leaves the default; a bad value fails naming the key and the file.
//! - Otherwise **command-line flags**, then **`ETCD_*` variables** for the flags not
//!   given (`--data-dir` ↔ `ETCD_DATA_DIR`), then the defaults. A flag given both ways
//!   is an error, as in etcd; an `ETCD_*` variable that names no flag draws a warning.
//!
//! Unknown flags and invalid values fail with a message naming where the value came from.
//! Notices and warnings go to stderr before logging starts, as etcd's do.

mod duration;
mod sources;

use std::ffi::OsString;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser};

use duration::GoDuration;
use oxetcd_etcdserver::config::{
    DEFAULT_BACKEND_BATCH_INTERVAL, DEFAULT_BACKEND_BATCH_LIMIT, DEFAULT_LEASE_CHECKPOINT_INTERVAL,
};
use oxetcd_etcdserver::membership::InitialMember;
use oxetcd_etcdserver::server::ETCD_VERSION;
use oxetcd_etcdserver::{InitialClusterState, ServerConfig};
use sources::{Setting, Source};

const MEMBER: &str = "Member";
const CLUSTERING: &str = "Clustering";
const LOGGING: &str = "Logging";
const EXPERIMENTAL: &str = "Experimental feature";

/// etcd's upper bound on `--election-timeout`, in milliseconds.
const MAX_ELECTION_MS: u64 = 50_000;
/// Shorter progress intervals are raised to this, as etcd does.
const MIN_WATCH_PROGRESS_INTERVAL: Duration = Duration::from_millis(100);
/// etcd's default `--experimental-watch-progress-notify-interval`, used for a zero or
/// negative value as etcd does.
const DEFAULT_WATCH_PROGRESS_INTERVAL: Duration = Duration::from_secs(10 * 60);

/// What `--version` prints after the program name.
static VERSION: LazyLock<String> = LazyLock::new(|| {
    format!(
        "Version: {}\netcd API Version: {ETCD_VERSION}\nGit SHA: {}\nOS/Arch: {}/{}",
        env!("CARGO_PKG_VERSION"),
        option_env!("OXETCD_GIT_SHA").unwrap_or("not provided"),
        std::env::consts::OS,
        std::env::consts::ARCH,
    )
});

/// The flags, as clap parses them from one list of `--flag=value` settings. Every flag is
/// also an `ETCD_*` variable and a key of the configuration file (see the module docs).
#[derive(Debug, Clone, Parser)]
#[command(
    name = "oxetcd",
    version = VERSION.as_str(),
    about = "oxetcd: a distributed, reliable key-value store that speaks etcd's v3 API.",
    long_about = None,
    args_override_self = true,
    after_help = "Every flag can also be set by an environment variable: ETCD_ and the flag's \
                  name in upper case, '-' as '_' (--data-dir is ETCD_DATA_DIR). A flag given \
                  both ways is an error. With --config-file, the file is the only source: \
                  other flags and ETCD_* variables are ignored.",
    mut_arg("enable_v2", etcd_bool),
    mut_arg("experimental_enable_lease_checkpoint", etcd_bool),
    mut_arg("experimental_initial_corrupt_check", etcd_bool),
    mut_arg("strict_reconfig_check", etcd_bool)
)]
struct Values {
    /// Path to a YAML configuration file whose keys are the flag names. When given,
    /// other command-line flags and environment variables are ignored.
    #[arg(long = "config-file", value_name = "PATH")]
    config_file: Option<PathBuf>,

    /// Human-readable name for this member.
    #[arg(long, value_name = "NAME", default_value = "default", help_heading = MEMBER)]
    name: String,
    /// Path to the data directory [default: <name>.oxetcd].
    #[arg(long = "data-dir", value_name = "PATH", help_heading = MEMBER)]
    data_dir: Option<PathBuf>,
    /// Number of committed transactions to trigger a snapshot to disk.
    #[arg(
        long = "snapshot-count",
        value_name = "N",
        default_value_t = 10_000,
        help_heading = MEMBER
    )]
    snapshot_count: u64,
    /// Number of entries kept for slow followers to catch up after a snapshot.
    #[arg(
        long = "snapshot-catchup-entries",
        value_name = "N",
        default_value_t = 5000,
        help_heading = MEMBER
    )]
    snapshot_catchup_entries: u64,
    /// Time (in milliseconds) of a heartbeat interval.
    #[arg(
        long = "heartbeat-interval",
        value_name = "MS",
        default_value_t = 100,
        help_heading = MEMBER
    )]
    heartbeat_interval: u64,
    /// Time (in milliseconds) for an election to time out; at least 5 heartbeats.
    #[arg(
        long = "election-timeout",
        value_name = "MS",
        default_value_t = 1000,
        help_heading = MEMBER
    )]
    election_timeout: u64,
    /// List of URLs to listen on for peer traffic.
    #[arg(
        long = "listen-peer-urls",
        value_name = "URLS",
        default_value = "http://localhost:2380",
        help_heading = MEMBER
    )]
    listen_peer_urls: String,
    /// List of URLs to listen on for client traffic.
    #[arg(
        long = "listen-client-urls",
        value_name = "URLS",
        default_value = "http://localhost:2379",
        help_heading = MEMBER
    )]
    listen_client_urls: String,
    /// Maximum number of snapshot files to retain (0 is unlimited).
    #[arg(long = "max-snapshots", value_name = "N", default_value_t = 5, help_heading = MEMBER)]
    max_snapshots: usize,
    /// Maximum number of wal files to retain (0 is unlimited).
    #[arg(long = "max-wals", value_name = "N", default_value_t = 5, help_heading = MEMBER)]
    max_wals: usize,
    /// Backend size that raises the NOSPACE alarm (0: etcd's default of 2 GiB). Accepted and
    /// reported for compatibility; oxetcd does not enforce the quota yet.
    #[arg(
        long = "quota-backend-bytes",
        value_name = "BYTES",
        default_value_t = 0,
        help_heading = MEMBER
    )]
    quota_backend_bytes: i64,
    /// Maximum number of operations permitted in a transaction.
    #[arg(long = "max-txn-ops", value_name = "N", default_value_t = 128, help_heading = MEMBER)]
    max_txn_ops: usize,
    /// Maximum client request size in bytes the server will accept.
    #[arg(
        long = "max-request-bytes",
        value_name = "BYTES",
        default_value_t = 1_572_864,
        help_heading = MEMBER
    )]
    max_request_bytes: usize,
    /// Maximum concurrent streams that each client can open at a time.
    #[arg(
        long = "max-concurrent-streams",
        value_name = "N",
        default_value_t = u32::MAX,
        help_heading = MEMBER
    )]
    max_concurrent_streams: u32,

    /// List of this member's peer URLs to advertise to the rest of the cluster.
    #[arg(
        long = "initial-advertise-peer-urls",
        value_name = "URLS",
        default_value = "http://localhost:2380",
        help_heading = CLUSTERING
    )]
    initial_advertise_peer_urls: String,
    /// Initial cluster configuration for bootstrapping [default: <name>=<advertised peer URLs>].
    #[arg(long = "initial-cluster", value_name = "NAME=URL,...", help_heading = CLUSTERING)]
    initial_cluster: Option<String>,
    /// Initial cluster state: 'new' to bootstrap, 'existing' to join a running cluster.
    #[arg(
        long = "initial-cluster-state",
        value_name = "STATE",
        default_value = "new",
        help_heading = CLUSTERING
    )]
    initial_cluster_state: ClusterState,
    /// Initial cluster token for the cluster during bootstrap; distinct tokens keep
    /// clusters from joining each other by mistake.
    #[arg(
        long = "initial-cluster-token",
        value_name = "TOKEN",
        default_value = "etcd-cluster",
        help_heading = CLUSTERING
    )]
    initial_cluster_token: String,
    /// List of this member's client URLs to advertise to the public; required when
    /// --listen-client-urls is given.
    #[arg(
        long = "advertise-client-urls",
        value_name = "URLS",
        default_value = "http://localhost:2379",
        help_heading = CLUSTERING
    )]
    advertise_client_urls: String,
    /// Reject reconfiguration requests that would cause quorum loss. Accepted; oxetcd
    /// serves no runtime membership changes yet, so it has nothing to check.
    #[arg(long = "strict-reconfig-check", default_value_t = true, help_heading = CLUSTERING)]
    strict_reconfig_check: bool,
    /// Serve etcd's v2 API: oxetcd serves only v3, so only 'false' is accepted.
    #[arg(long = "enable-v2", default_value_t = false, help_heading = CLUSTERING)]
    enable_v2: bool,

    /// Specify 'zap' for structured (JSON) logging or 'text' for human-readable lines.
    #[arg(long, value_name = "LOGGER", default_value = "zap", help_heading = LOGGING)]
    logger: Logger,
    /// Configures log level.
    #[arg(long = "log-level", value_name = "LEVEL", default_value = "info", help_heading = LOGGING)]
    log_level: LogLevel,

    /// Enable the leader to record leases' remaining TTLs in the log, so a new leader (or
    /// a restart) continues each lease from there instead of granting it a full TTL again.
    #[arg(
        long = "experimental-enable-lease-checkpoint",
        default_value_t = false,
        help_heading = EXPERIMENTAL
    )]
    experimental_enable_lease_checkpoint: bool,
    /// Check data corruption before serving (compare hashes with peers). Accepted; the
    /// check is not performed yet, and a warning says so.
    #[arg(
        long = "experimental-initial-corrupt-check",
        default_value_t = false,
        help_heading = EXPERIMENTAL
    )]
    experimental_initial_corrupt_check: bool,
    /// Duration of periodic watch progress notifications, in Go's syntax (10m, 5s, 200ms).
    #[arg(
        long = "experimental-watch-progress-notify-interval",
        value_name = "DURATION",
        default_value = "10m",
        help_heading = EXPERIMENTAL
    )]
    experimental_watch_progress_notify_interval: GoDuration,
}

/// etcd's boolean flags: `--flag` alone is true and `--flag=false` false; a separate
/// value is not taken, so `--flag next-arg` never swallows the next argument.
fn etcd_bool(arg: clap::Arg) -> clap::Arg {
    arg.value_name("BOOL")
        .num_args(0..=1)
        .require_equals(true)
        .default_missing_value("true")
        .action(clap::ArgAction::Set)
}

/// The command line as parsed: the flags it gives, checked by clap, not yet merged with
/// the environment or a configuration file (that is [`Flags::into_config`]'s job).
#[derive(Debug, Clone)]
pub struct Flags {
    command_line: Vec<Setting>,
}

impl CommandFactory for Flags {
    fn command() -> clap::Command {
        Values::command()
    }

    fn command_for_update() -> clap::Command {
        Values::command_for_update()
    }
}

impl FromArgMatches for Flags {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let command = Values::command();
        let command_line = command
            .get_arguments()
            .filter(|arg| {
                matches.value_source(arg.get_id().as_str()) == Some(ValueSource::CommandLine)
            })
            .filter_map(|arg| {
                let value = matches.get_raw(arg.get_id().as_str())?.next_back()?;
                Some(Setting {
                    key: arg.get_long()?.to_string(),
                    value: value.to_os_string(),
                    source: Source::CommandLine,
                })
            })
            .collect();
        Ok(Flags { command_line })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Flags::from_arg_matches(matches)?;
        Ok(())
    }
}

impl Parser for Flags {}

/// `--initial-cluster-state`'s values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ClusterState {
    New,
    Existing,
}

impl From<ClusterState> for InitialClusterState {
    fn from(state: ClusterState) -> InitialClusterState {
        match state {
            ClusterState::New => InitialClusterState::New,
            ClusterState::Existing => InitialClusterState::Existing,
        }
    }
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

/// Everything a member is started with: the server's settings plus what only the
/// binary uses (listeners, logging).
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub listen_client_urls: Vec<Url>,
    pub listen_peer_urls: Vec<Url>,
    /// HTTP/2 streams one client connection may have open at once (etcd's default,
    /// `u32::MAX`, means no limit).
    pub max_concurrent_streams: u32,
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
    #[error(
        "--election-timeout[{0}ms] is too long, and should be set less than {MAX_ELECTION_MS}ms"
    )]
    ElectionTimeoutTooLong(u64),
    #[error("--heartbeat-interval must be positive")]
    ZeroHeartbeat,
    #[error("--{0} must be positive")]
    NotPositive(&'static str),
    #[error("--advertise-client-urls is required when --listen-client-urls is set explicitly")]
    AdvertiseClientUrlsRequired,
    #[error("--{flag}={value} is not supported: {reason}")]
    Unsupported { flag: &'static str, value: String, reason: &'static str },
    /// `origin` names where the value came from: `--flag`, `ETCD_FLAG` or `key in file`.
    #[error("invalid value {value:?} for {origin}: {reason}")]
    InvalidValue { origin: String, value: String, reason: String },
    #[error(
        "conflicting environment variable {0} is shadowed by the corresponding command-line flag (unset the variable or drop the flag)"
    )]
    ConflictingEnv(String),
    #[error("{0}")]
    Settings(String),
    #[error("configuration file {path}: {reason}")]
    ConfigFile { path: String, reason: String },
}

impl Flags {
    /// Merges the command line with the environment, or reads the configuration file,
    /// and checks the result. Notices and warnings are printed on stderr.
    pub fn into_config(self) -> Result<Config, ConfigError> {
        let env: Vec<(String, OsString)> = std::env::vars_os()
            .filter_map(|(name, value)| Some((name.into_string().ok()?, value)))
            .collect();
        let mut notices = Vec::new();
        let config = self.resolve(&env, &mut notices);
        for notice in notices {
            eprintln!("oxetcd: {notice}");
        }
        config
    }

    /// [`Flags::into_config`] with the environment given, collecting notices.
    fn resolve(
        self,
        env: &[(String, OsString)],
        notices: &mut Vec<String>,
    ) -> Result<Config, ConfigError> {
        let keys = flag_names();
        let config_file = self
            .command_line
            .iter()
            .find(|s| s.key == sources::CONFIG_FILE)
            .map(|s| s.value.clone())
            .or_else(|| sources::env_value(env, sources::CONFIG_FILE).cloned());
        let config_file = config_file.map(PathBuf::from);
        let settings = match &config_file {
            Some(path) => sources::from_file(path, &keys, notices)?,
            None => {
                let settings = sources::with_env(self.command_line, &keys, env, notices)?;
                let given = |key: &str| settings.iter().any(|s| s.key == key);
                if given("listen-client-urls") && !given("advertise-client-urls") {
                    return Err(ConfigError::AdvertiseClientUrlsRequired);
                }
                settings
            }
        };
        let values = parse_values(&settings).map_err(|error| {
            // Name the setting at fault: the first one that fails on its own.
            settings
                .iter()
                .find_map(|s| parse_values(std::slice::from_ref(s)).err().map(|e| s.invalid(&e)))
                .unwrap_or_else(|| ConfigError::Settings(error.to_string()))
        })?;
        let config = values.check(notices)?;
        if let Some(path) = config_file {
            notices.push(format!(
                "loaded the configuration from {}; other command-line flags and environment \
                 variables are ignored",
                path.display()
            ));
        }
        Ok(config)
    }
}

/// The long names of every flag that takes a value (help and version do not).
fn flag_names() -> Vec<String> {
    Values::command()
        .get_arguments()
        .filter(|arg| arg.get_action().takes_values())
        .filter_map(|arg| arg.get_long().map(String::from))
        .collect()
}

fn parse_values(settings: &[Setting]) -> Result<Values, clap::Error> {
    let argv = std::iter::once(OsString::from("oxetcd")).chain(settings.iter().map(Setting::arg));
    Values::try_parse_from(argv)
}

impl Values {
    fn check(self, notices: &mut Vec<String>) -> Result<Config, ConfigError> {
        if self.heartbeat_interval == 0 {
            return Err(ConfigError::ZeroHeartbeat);
        }
        if self.election_timeout < 5 * self.heartbeat_interval {
            return Err(ConfigError::ElectionTimeout {
                election: self.election_timeout,
                heartbeat: self.heartbeat_interval,
            });
        }
        if self.election_timeout > MAX_ELECTION_MS {
            return Err(ConfigError::ElectionTimeoutTooLong(self.election_timeout));
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
        if self.enable_v2 {
            return Err(ConfigError::Unsupported {
                flag: "enable-v2",
                value: "true".into(),
                reason: "oxetcd serves only etcd's v3 API",
            });
        }
        if self.quota_backend_bytes != 0 {
            notices.push(format!(
                "warning: --quota-backend-bytes={} is accepted but not enforced yet: no NOSPACE alarm is raised",
                self.quota_backend_bytes
            ));
        }
        if !self.strict_reconfig_check {
            notices.push(
                "warning: --strict-reconfig-check=false has no effect: oxetcd serves no runtime membership changes yet".into(),
            );
        }
        if self.experimental_initial_corrupt_check {
            notices.push(
                "warning: --experimental-initial-corrupt-check is accepted but the check is not performed yet".into(),
            );
        }
        let watch_progress_notify_interval = match self
            .experimental_watch_progress_notify_interval
            .positive()
        {
            None => DEFAULT_WATCH_PROGRESS_INTERVAL,
            Some(short) if short < MIN_WATCH_PROGRESS_INTERVAL => {
                notices.push(format!(
                        "warning: adjusting watch progress notify interval to minimum period {MIN_WATCH_PROGRESS_INTERVAL:?}"
                    ));
                MIN_WATCH_PROGRESS_INTERVAL
            }
            Some(interval) => interval,
        };
        let initial_cluster = self
            .initial_cluster
            .clone()
            .unwrap_or_else(|| format!("{}={}", self.name, self.initial_advertise_peer_urls));
        let server = ServerConfig {
            data_dir: self
                .data_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(format!("{}.oxetcd", self.name))),
            advertise_client_urls: split_urls(&self.advertise_client_urls)?,
            initial_advertise_peer_urls: split_urls(&self.initial_advertise_peer_urls)?,
            initial_cluster: parse_initial_cluster(&initial_cluster)?,
            initial_cluster_state: self.initial_cluster_state.into(),
            initial_cluster_token: self.initial_cluster_token,
            heartbeat: Duration::from_millis(self.heartbeat_interval),
            election_ticks: (self.election_timeout / self.heartbeat_interval) as usize,
            snapshot_count: self.snapshot_count,
            snapshot_catchup_entries: self.snapshot_catchup_entries,
            max_snapshots: self.max_snapshots,
            max_wals: self.max_wals,
            quota_backend_bytes: self.quota_backend_bytes,
            max_request_bytes: self.max_request_bytes,
            max_txn_ops: self.max_txn_ops,
            watch_progress_notify_interval,
            enable_lease_checkpoint: self.experimental_enable_lease_checkpoint,
            lease_checkpoint_interval: DEFAULT_LEASE_CHECKPOINT_INTERVAL,
            wal_dir: None,
            pre_vote: true,
            initial_election_tick_advance: true,
            backend_batch_interval: DEFAULT_BACKEND_BATCH_INTERVAL,
            backend_batch_limit: DEFAULT_BACKEND_BATCH_LIMIT,
            peer_dial_tls: None,
            client_dial_tls: None,
            name: self.name,
        };
        Ok(Config {
            server,
            listen_client_urls: parse_listen_urls(&self.listen_client_urls)?,
            listen_peer_urls: parse_listen_urls(&self.listen_peer_urls)?,
            max_concurrent_streams: self.max_concurrent_streams,
            log_level: self.log_level,
            logger: self.logger,
        })
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
mod tests;
