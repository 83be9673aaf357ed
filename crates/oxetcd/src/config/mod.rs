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
mod refused;
mod sources;
mod url;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser};

use oxetcd_auth::{
    DEFAULT_BCRYPT_COST, DEFAULT_TOKEN_TTL, MAX_BCRYPT_COST, MIN_BCRYPT_COST, TokenSpec,
};
use oxetcd_etcdserver::compactor::AutoCompaction;
use oxetcd_etcdserver::config::{
    DEFAULT_BACKEND_BATCH_INTERVAL, DEFAULT_BACKEND_BATCH_LIMIT, DEFAULT_COMPACTION_BATCH_LIMIT,
    DEFAULT_LEASE_CHECKPOINT_INTERVAL, StoragePolicy,
};
use oxetcd_etcdserver::membership::InitialMember;
use oxetcd_etcdserver::server::ETCD_VERSION;
use oxetcd_etcdserver::{InitialClusterState, ServerConfig};
use oxetcd_tls::{TlsInfo, TlsOptions};
use sources::{Setting, Source};
use url::{parse_listen_urls, split_urls};

pub use duration::GoDuration;
pub use refused::{REFUSED, Refusal};
pub use url::Url;
pub(crate) use url::parse_listen_url;

const MEMBER: &str = "Member";
const CLUSTERING: &str = "Clustering";
const SECURITY: &str = "Security";
const AUTH: &str = "Auth";
const PROFILING: &str = "Profiling and Monitoring";
const LOGGING: &str = "Logging";
const V2_PROXY: &str = "v2 Proxy (etcd's, to be deprecated in v4; not served)";
const EXPERIMENTAL: &str = "Experimental feature";
const UNSAFE: &str = "Unsafe feature";
const DEPRECATED: &str = "To be deprecated";

/// etcd's `--log-outputs` default (embed.DefaultLogOutput): journald under systemd, else
/// stderr; oxetcd has no journald output, so it is stderr.
const DEFAULT_LOG_OUTPUT: &str = "default";

/// etcd's upper bound on `--election-timeout`, in milliseconds.
const MAX_ELECTION_MS: u64 = 50_000;
/// Shorter progress intervals are raised to this, as etcd does.
const MIN_WATCH_PROGRESS_INTERVAL: Duration = Duration::from_millis(100);
/// etcd's default `--experimental-watch-progress-notify-interval`, used for a zero or
/// negative value as etcd does.
const DEFAULT_WATCH_PROGRESS_INTERVAL: Duration = Duration::from_secs(10 * 60);

/// The exit status for a command line that does not parse (an unknown flag, a bad value):
/// 2, as etcd's Go flag parsing exits (`etcd --foo; echo $?` prints 2 for etcd 3.4.23).
pub const COMMAND_LINE_EXIT_CODE: u8 = 2;
/// The exit status for any other configuration error (environment, file, checks): 1, as
/// etcd's "error verifying flags".
pub const CONFIG_EXIT_CODE: u8 = 1;

/// The message for a command line clap refuses: its first line, plain text whatever the
/// terminal (no colour codes in logs), and etcd's pointer to the help.
pub fn command_line_error(error: &clap::Error) -> String {
    let rendered = error.render().to_string();
    let first = rendered.lines().next().unwrap_or_default();
    format!("{}\nSee 'oxetcd --help'.", first.trim_start_matches("error: "))
}

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
#[derive(Debug, Clone, PartialEq, Parser)]
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
    mut_args(etcd_bool)
)]
struct Values {
    /// Path to a YAML configuration file whose keys are the flag names. When given,
    /// other command-line flags and environment variables are ignored.
    #[arg(long = "config-file", value_name = "PATH")]
    config_file: Option<PathBuf>,

    /// Human-readable name for this member.
    #[arg(long, value_name = "NAME", default_value = "default", help_heading = MEMBER)]
    name: String,
    /// Path to the data directory [default: ${name}.oxetcd].
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
    /// Raise alarms when backend size exceeds the given quota (0 defaults to low space
    /// quota: 2 GiB; negative: no quota).
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

    /// Path to the dedicated wal directory [default: ${data-dir}/member/wal].
    #[arg(long = "wal-dir", value_name = "PATH", help_heading = MEMBER)]
    wal_dir: Option<PathBuf>,
    /// Whether to fast-forward initial election ticks on boot for faster election.
    #[arg(long = "initial-election-tick-advance", default_value_t = true, help_heading = MEMBER)]
    initial_election_tick_advance: bool,
    /// Maximum time before committing the backend transaction [default: the backend's].
    #[arg(long = "backend-batch-interval", value_name = "DURATION", help_heading = MEMBER)]
    backend_batch_interval: Option<GoDuration>,
    /// Maximum operations before committing the backend transaction (0: the backend's).
    #[arg(
        long = "backend-batch-limit",
        value_name = "N",
        default_value_t = 0,
        allow_negative_numbers = true,
        help_heading = MEMBER
    )]
    backend_batch_limit: i64,
    /// Minimum interval a client should wait before pinging the server.
    #[arg(
        long = "grpc-keepalive-min-time",
        value_name = "DURATION",
        default_value = "5s",
        help_heading = MEMBER
    )]
    grpc_keepalive_min_time: GoDuration,
    /// Frequency of server-to-client pings to check a connection is alive (0 disables).
    #[arg(
        long = "grpc-keepalive-interval",
        value_name = "DURATION",
        default_value = "2h",
        help_heading = MEMBER
    )]
    grpc_keepalive_interval: GoDuration,
    /// Additional wait before closing a non-responsive connection (0 disables).
    #[arg(
        long = "grpc-keepalive-timeout",
        value_name = "DURATION",
        default_value = "20s",
        help_heading = MEMBER
    )]
    grpc_keepalive_timeout: GoDuration,

    /// List of this member's peer URLs to advertise to the rest of the cluster.
    #[arg(
        long = "initial-advertise-peer-urls",
        value_name = "URLS",
        default_value = "http://localhost:2380",
        help_heading = CLUSTERING
    )]
    initial_advertise_peer_urls: String,
    /// Initial cluster configuration for bootstrapping [default: ${name}=${initial-advertise-peer-urls}].
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
    /// Reject reconfiguration requests that would cause quorum loss.
    #[arg(long = "strict-reconfig-check", default_value_t = true, help_heading = CLUSTERING)]
    strict_reconfig_check: bool,
    /// Enable to run an additional Raft election phase, so a member returning from a
    /// partition does not depose a working leader. On by default, as in etcd 3.5+ (etcd
    /// 3.4 defaults to off).
    #[arg(long = "pre-vote", default_value_t = true, help_heading = CLUSTERING)]
    pre_vote: bool,
    /// Discovery URL used to bootstrap the cluster.
    #[arg(long, value_name = "URL", default_value = "", help_heading = CLUSTERING)]
    discovery: String,
    /// Expected behavior ('exit' or 'proxy') when the discovery service fails.
    #[arg(
        long = "discovery-fallback",
        value_name = "FALLBACK",
        default_value = "proxy",
        help_heading = CLUSTERING
    )]
    discovery_fallback: DiscoveryFallback,
    /// HTTP proxy to use for traffic to the discovery service.
    #[arg(long = "discovery-proxy", value_name = "URL", default_value = "", help_heading = CLUSTERING)]
    discovery_proxy: String,
    /// DNS srv domain used to bootstrap the cluster.
    #[arg(long = "discovery-srv", value_name = "DOMAIN", default_value = "", help_heading = CLUSTERING)]
    discovery_srv: String,
    /// Suffix to the DNS srv name queried when bootstrapping.
    #[arg(
        long = "discovery-srv-name",
        value_name = "NAME",
        default_value = "",
        help_heading = CLUSTERING
    )]
    discovery_srv_name: String,
    /// Auto compaction retention for mvcc key value store. 0 means disable auto
    /// compaction.
    #[arg(
        long = "auto-compaction-retention",
        value_name = "RETENTION",
        default_value = "0",
        help_heading = CLUSTERING
    )]
    auto_compaction_retention: String,
    /// Interpret 'auto-compaction-retention' one of: periodic|revision. 'periodic' for
    /// duration based retention, defaulting to hours if no time unit is provided (e.g.
    /// '5m'). 'revision' for revision number based retention.
    #[arg(
        long = "auto-compaction-mode",
        value_name = "MODE",
        default_value = "periodic",
        help_heading = CLUSTERING
    )]
    auto_compaction_mode: CompactionMode,
    /// Serve etcd's v2 API: oxetcd serves only v3, so only 'false' is accepted.
    #[arg(long = "enable-v2", default_value_t = false, help_heading = CLUSTERING)]
    enable_v2: bool,

    /// Path to the client server TLS cert file.
    #[arg(long = "cert-file", value_name = "PATH", help_heading = SECURITY)]
    cert_file: Option<PathBuf>,
    /// Path to the client server TLS key file.
    #[arg(long = "key-file", value_name = "PATH", help_heading = SECURITY)]
    key_file: Option<PathBuf>,
    /// Enable client cert authentication.
    #[arg(long = "client-cert-auth", default_value_t = false, help_heading = SECURITY)]
    client_cert_auth: bool,
    /// Path to the client certificate revocation list file.
    #[arg(long = "client-crl-file", value_name = "PATH", help_heading = SECURITY)]
    client_crl_file: Option<PathBuf>,
    /// Allowed TLS hostname for client cert authentication.
    #[arg(long = "client-cert-allowed-hostname", value_name = "HOST", help_heading = SECURITY)]
    client_cert_allowed_hostname: Option<String>,
    /// Path to the client server TLS trusted CA cert file.
    #[arg(long = "trusted-ca-file", value_name = "PATH", help_heading = SECURITY)]
    trusted_ca_file: Option<PathBuf>,
    /// Client TLS using generated certificates.
    #[arg(long = "auto-tls", default_value_t = false, help_heading = SECURITY)]
    auto_tls: bool,
    /// Path to the peer server TLS cert file.
    #[arg(long = "peer-cert-file", value_name = "PATH", help_heading = SECURITY)]
    peer_cert_file: Option<PathBuf>,
    /// Path to the peer server TLS key file.
    #[arg(long = "peer-key-file", value_name = "PATH", help_heading = SECURITY)]
    peer_key_file: Option<PathBuf>,
    /// Enable peer client cert authentication.
    #[arg(long = "peer-client-cert-auth", default_value_t = false, help_heading = SECURITY)]
    peer_client_cert_auth: bool,
    /// Path to the peer server TLS trusted CA file.
    #[arg(long = "peer-trusted-ca-file", value_name = "PATH", help_heading = SECURITY)]
    peer_trusted_ca_file: Option<PathBuf>,
    /// Required CN for client certs connecting to the peer endpoint.
    #[arg(long = "peer-cert-allowed-cn", value_name = "CN", help_heading = SECURITY)]
    peer_cert_allowed_cn: Option<String>,
    /// Allowed TLS hostname for inter peer authentication.
    #[arg(long = "peer-cert-allowed-hostname", value_name = "HOST", help_heading = SECURITY)]
    peer_cert_allowed_hostname: Option<String>,
    /// Peer TLS using self-generated certificates if --peer-key-file and --peer-cert-file
    /// are not provided.
    #[arg(long = "peer-auto-tls", default_value_t = false, help_heading = SECURITY)]
    peer_auto_tls: bool,
    /// Path to the peer certificate revocation list file.
    #[arg(long = "peer-crl-file", value_name = "PATH", help_heading = SECURITY)]
    peer_crl_file: Option<PathBuf>,
    /// Comma-separated list of supported TLS cipher suites between client/server and
    /// peers (empty: the TLS library's defaults).
    #[arg(long = "cipher-suites", value_name = "SUITES", default_value = "", help_heading = SECURITY)]
    cipher_suites: String,
    /// Minimum TLS version (etcd 3.5): TLS1.2 or TLS1.3 [default: TLS1.2].
    #[arg(long = "tls-min-version", value_name = "VERSION", help_heading = SECURITY)]
    tls_min_version: Option<TlsVersion>,
    /// Maximum TLS version (etcd 3.5): TLS1.2 or TLS1.3 [default: the highest].
    #[arg(long = "tls-max-version", value_name = "VERSION", help_heading = SECURITY)]
    tls_max_version: Option<TlsVersion>,
    /// Validity period, in years, of the self-signed certificates of --auto-tls and
    /// --peer-auto-tls (etcd 3.5).
    #[arg(
        long = "self-signed-cert-validity",
        value_name = "YEARS",
        // etcd 3.5's default, which oxetcd-tls keeps.
        default_value_t = TlsOptions::default().self_signed_cert_validity_years,
        help_heading = SECURITY
    )]
    self_signed_cert_validity: u32,
    /// Comma-separated whitelist of origins for CORS (empty or * means allow all).
    #[arg(long, value_name = "ORIGINS", default_value = "*", help_heading = SECURITY)]
    cors: String,
    /// Acceptable hostnames from HTTP client requests, if the server is not secure (empty
    /// or * means allow all).
    #[arg(long = "host-whitelist", value_name = "HOSTS", default_value = "*", help_heading = SECURITY)]
    host_whitelist: String,

    /// Specify a v3 authentication token type and its options ('simple' or 'jwt').
    #[arg(long = "auth-token", value_name = "TOKEN", default_value = "simple", help_heading = AUTH)]
    auth_token: String,
    /// Cost of the bcrypt algorithm for hashing auth passwords (4 to 31).
    #[arg(long = "bcrypt-cost", value_name = "COST", default_value_t = 10, help_heading = AUTH)]
    bcrypt_cost: u32,
    /// Time (in seconds) of the auth-token-ttl.
    #[arg(long = "auth-token-ttl", value_name = "SECONDS", default_value_t = 300, help_heading = AUTH)]
    auth_token_ttl: u32,

    /// Enable runtime profiling data via HTTP server at client URL + "/debug/pprof/".
    #[arg(long = "enable-pprof", default_value_t = false, help_heading = PROFILING)]
    enable_pprof: bool,
    /// Level of detail for exported metrics: 'basic', or 'extensive' to include histograms.
    #[arg(long, value_name = "LEVEL", default_value = "basic", help_heading = PROFILING)]
    metrics: MetricsLevel,
    /// List of URLs to listen on for the metrics and health endpoints.
    #[arg(
        long = "listen-metrics-urls",
        value_name = "URLS",
        default_value = "",
        help_heading = PROFILING
    )]
    listen_metrics_urls: String,
    /// Serve the grpc-gateway (etcd's JSON API on the client port).
    #[arg(long = "enable-grpc-gateway", default_value_t = true, help_heading = PROFILING)]
    enable_grpc_gateway: bool,

    /// Specify 'zap' for structured (JSON) logging or 'text' for human-readable lines.
    /// etcd 3.4's deprecated 'capnslog' is read as 'text'.
    #[arg(long, value_name = "LOGGER", default_value = "zap", help_heading = LOGGING)]
    logger: LoggerFlag,
    /// Log format (etcd 3.5): 'json', or 'console' for human-readable lines; overrides
    /// --logger.
    #[arg(long = "log-format", value_name = "FORMAT", help_heading = LOGGING)]
    log_format: Option<LogFormat>,
    /// Comma-separated log outputs: 'default' (stderr), 'stderr', 'stdout', or file paths.
    #[arg(
        long = "log-outputs",
        value_name = "OUTPUTS",
        default_value = DEFAULT_LOG_OUTPUT,
        help_heading = LOGGING
    )]
    log_outputs: String,
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
    /// Enable to check data corruption before serving any client/peer traffic.
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

    /// Proxy mode setting ('off', 'readonly' or 'on').
    #[arg(long, value_name = "MODE", default_value = "off", help_heading = V2_PROXY)]
    proxy: ProxyMode,
    /// Time (in milliseconds) an endpoint will be held in a failed state.
    #[arg(long = "proxy-failure-wait", value_name = "MS", default_value_t = 5000, help_heading = V2_PROXY)]
    proxy_failure_wait: u32,
    /// Time (in milliseconds) of the endpoints refresh interval.
    #[arg(
        long = "proxy-refresh-interval",
        value_name = "MS",
        default_value_t = 30_000,
        help_heading = V2_PROXY
    )]
    proxy_refresh_interval: u32,
    /// Time (in milliseconds) for a dial to timeout.
    #[arg(long = "proxy-dial-timeout", value_name = "MS", default_value_t = 1000, help_heading = V2_PROXY)]
    proxy_dial_timeout: u32,
    /// Time (in milliseconds) for a write to timeout.
    #[arg(long = "proxy-write-timeout", value_name = "MS", default_value_t = 5000, help_heading = V2_PROXY)]
    proxy_write_timeout: u32,
    /// Time (in milliseconds) for a read to timeout.
    #[arg(long = "proxy-read-timeout", value_name = "MS", default_value_t = 0, help_heading = V2_PROXY)]
    proxy_read_timeout: u32,

    /// Duration of time between cluster corruption check passes.
    #[arg(
        long = "experimental-corrupt-check-time",
        value_name = "DURATION",
        default_value = "0s",
        help_heading = EXPERIMENTAL
    )]
    experimental_corrupt_check_time: GoDuration,
    /// Enable leader to periodically check followers compaction hashes (etcd 3.5).
    #[arg(
        long = "experimental-compact-hash-check-enabled",
        default_value_t = false,
        help_heading = EXPERIMENTAL
    )]
    experimental_compact_hash_check_enabled: bool,
    /// Duration of time between leader checks followers compaction hashes (etcd 3.5).
    #[arg(
        long = "experimental-compact-hash-check-time",
        value_name = "DURATION",
        default_value = "1m",
        help_heading = EXPERIMENTAL
    )]
    experimental_compact_hash_check_time: GoDuration,
    /// Serve v2 requests through the v3 backend under a given prefix.
    #[arg(
        long = "experimental-enable-v2v3",
        value_name = "PREFIX",
        default_value = "",
        help_heading = EXPERIMENTAL
    )]
    experimental_enable_v2v3: String,
    /// The type of freelist the bbolt backend uses ('array' or 'map').
    #[arg(
        long = "experimental-backend-bbolt-freelist-type",
        value_name = "TYPE",
        default_value = "array",
        help_heading = EXPERIMENTAL
    )]
    experimental_backend_bbolt_freelist_type: FreelistType,
    /// Persist leases' remaining TTLs (always so in oxetcd); requires
    /// --experimental-enable-lease-checkpoint.
    #[arg(
        long = "experimental-enable-lease-checkpoint-persist",
        default_value_t = false,
        help_heading = EXPERIMENTAL
    )]
    experimental_enable_lease_checkpoint_persist: bool,
    /// Sets the maximum revisions deleted in each compaction batch.
    #[arg(
        long = "experimental-compaction-batch-limit",
        value_name = "N",
        default_value_t = 1000,
        allow_negative_numbers = true,
        help_heading = EXPERIMENTAL
    )]
    experimental_compaction_batch_limit: i64,
    /// Skip verification of the SAN field in client certificates for peer connections.
    #[arg(
        long = "experimental-peer-skip-client-san-verification",
        default_value_t = false,
        help_heading = EXPERIMENTAL
    )]
    experimental_peer_skip_client_san_verification: bool,
    /// A warning is logged if a request takes more than this duration to apply.
    #[arg(
        long = "experimental-warning-apply-duration",
        value_name = "DURATION",
        default_value = "100ms",
        help_heading = EXPERIMENTAL
    )]
    experimental_warning_apply_duration: GoDuration,
    /// Feature gates (etcd 3.6), as gate=bool pairs; oxetcd has none, so only '' is accepted.
    #[arg(long = "feature-gates", value_name = "GATES", default_value = "", help_heading = EXPERIMENTAL)]
    feature_gates: String,

    /// Force to create a new one-member cluster.
    #[arg(long = "force-new-cluster", default_value_t = false, help_heading = UNSAFE)]
    force_new_cluster: bool,
    /// Disables fsync; unsafe, will cause data loss.
    #[arg(long = "unsafe-no-fsync", default_value_t = false, help_heading = UNSAFE)]
    unsafe_no_fsync: bool,

    /// Enable debug-level logging (deprecated: use --log-level=debug).
    #[arg(long, default_value_t = false, help_heading = DEPRECATED)]
    debug: bool,
    /// Per-package log levels of etcd's capnslog logger, e.g. 'etcdserver=DEBUG'.
    #[arg(
        long = "log-package-levels",
        value_name = "LEVELS",
        default_value = "",
        help_heading = DEPRECATED
    )]
    log_package_levels: String,
    /// The former name of --log-outputs.
    #[arg(
        long = "log-output",
        value_name = "OUTPUTS",
        default_value = DEFAULT_LOG_OUTPUT,
        help_heading = DEPRECATED
    )]
    log_output: String,
}

/// etcd's boolean flags (every `bool` field): `--flag` alone is true and `--flag=false`
/// false; a separate value is not taken, so `--flag next-arg` never swallows the next
/// argument.
pub(crate) fn etcd_bool(arg: clap::Arg) -> clap::Arg {
    if !matches!(arg.get_action(), clap::ArgAction::SetTrue) {
        return arg;
    }
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

/// `--discovery-fallback`'s values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum DiscoveryFallback {
    Exit,
    Proxy,
}

/// `--auto-compaction-mode`'s values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum CompactionMode {
    Periodic,
    Revision,
}

/// `--metrics`' values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum MetricsLevel {
    Basic,
    Extensive,
}

/// `--proxy`'s values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ProxyMode {
    Off,
    Readonly,
    On,
}

/// `--auto-compaction-retention` read as etcd 3.4 reads it (`parseCompactionRetention`):
/// a bare non-negative integer is hours (periodic) or revisions; anything else is a Go
/// duration (in revision mode, its nanoseconds count as revisions, as in etcd). Zero
/// disables auto compaction; a negative retention is refused (etcd would spin on it).
fn auto_compaction(
    mode: CompactionMode,
    retention: &str,
) -> Result<Option<AutoCompaction>, ConfigError> {
    let invalid = |reason: String| {
        ConfigError::Rejected(format!("error parsing CompactionRetention: {reason}"))
    };
    if let Ok(count) = retention.parse::<i64>()
        && count >= 0
    {
        return match (count, mode) {
            (0, _) => Ok(None),
            (revisions, CompactionMode::Revision) => Ok(Some(AutoCompaction::Revision(revisions))),
            (hours, CompactionMode::Periodic) => (hours as u64)
                .checked_mul(3600)
                .map(|secs| Some(AutoCompaction::Periodic(Duration::from_secs(secs))))
                .ok_or_else(|| invalid(format!("{hours} hours is too long"))),
        };
    }
    let duration: GoDuration = retention.parse().map_err(|e| invalid(format!("{e}")))?;
    let Some(duration) = duration.positive() else {
        let zero: GoDuration = "0".parse().map_err(|e| invalid(format!("{e}")))?;
        return if duration == zero {
            Ok(None)
        } else {
            Err(invalid(format!("negative retention {retention:?}")))
        };
    };
    Ok(Some(match mode {
        CompactionMode::Periodic => AutoCompaction::Periodic(duration),
        CompactionMode::Revision => {
            AutoCompaction::Revision(i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX))
        }
    }))
}

/// `--experimental-backend-bbolt-freelist-type`'s values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum FreelistType {
    Array,
    Map,
}

/// `--logger`'s values: etcd 3.4's `zap` and (deprecated) `capnslog`, and oxetcd's `text`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LoggerFlag {
    Zap,
    Text,
    Capnslog,
}

/// `--log-format`'s values (etcd 3.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Json,
    Console,
}

/// `--tls-min-version` and `--tls-max-version` values (etcd 3.5's names); rustls has no
/// TLS 1.0 or 1.1, and etcd 3.5 accepts neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
enum TlsVersion {
    #[value(name = "TLS1.2")]
    Tls12,
    #[value(name = "TLS1.3")]
    Tls13,
}

impl TlsVersion {
    fn name(self) -> &'static str {
        match self {
            TlsVersion::Tls12 => "TLS1.2",
            TlsVersion::Tls13 => "TLS1.3",
        }
    }
}

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

/// Where logs go (`--log-outputs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogOutput {
    /// `stderr`, and etcd's `default` (journald only under systemd, which oxetcd lacks).
    Stderr,
    Stdout,
    /// Any other value: a file, appended to.
    File(PathBuf),
}

/// Everything a member is started with: the server's settings plus what only the
/// binary uses (listeners, logging).
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub listen_client_urls: Vec<Url>,
    pub listen_peer_urls: Vec<Url>,
    /// `--listen-metrics-urls`: extra listeners serving only `/metrics` and the health
    /// probes (empty: none). An `https` one uses `client_tls`, as in etcd.
    pub listen_metrics_urls: Vec<Url>,
    /// `--metrics`: `extensive` adds the gRPC handling-time histograms.
    pub metrics: oxetcd_v3rpc::MetricsLevel,
    /// `--cert-file`, `--key-file`, `--trusted-ca-file`, `--client-cert-auth`,
    /// `--client-crl-file`, `--client-cert-allowed-hostname`, `--auto-tls`: TLS of the
    /// `https`/`unixs` client (and metrics) URLs.
    pub client_tls: TlsInfo,
    /// `--peer-*` TLS flags and `--experimental-peer-skip-client-san-verification`: TLS of
    /// the `https` peer URLs, and of dialing peers.
    pub peer_tls: TlsInfo,
    /// `--cipher-suites`, `--tls-min-version`, `--tls-max-version`,
    /// `--self-signed-cert-validity`: for both sides.
    pub tls_options: TlsOptions,
    /// HTTP/2 streams one client connection may have open at once (etcd's default,
    /// `u32::MAX`, means no limit).
    pub max_concurrent_streams: u32,
    /// `--grpc-keepalive-min-time`: in etcd, clients pinging more often are told to go
    /// away. Accepted and not enforced: the HTTP/2 server answers every ping (more lenient
    /// than etcd; docs/compatibility.md says so).
    pub grpc_keepalive_min_time: Duration,
    /// `--grpc-keepalive-interval`: the server pings an idle connection this often (zero:
    /// never; etcd pings only when this and the timeout are both non-zero).
    pub grpc_keepalive_interval: Duration,
    /// `--grpc-keepalive-timeout`: a ping unanswered this long closes the connection.
    pub grpc_keepalive_timeout: Duration,
    /// `--enable-grpc-gateway`: serve etcd's JSON API on the client ports (default on).
    pub enable_grpc_gateway: bool,
    /// `--host-whitelist`: host names accepted in HTTP requests to insecure listeners;
    /// empty or containing `*` means any.
    pub host_whitelist: Vec<String>,
    /// `--cors`: origins allowed for CORS; empty or containing `*` means any.
    pub cors: Vec<String>,
    /// `--log-level`, or `debug` with etcd 3.4's `--debug`.
    pub log_level: LogLevel,
    /// `--logger` (`capnslog` read as `text`), or `--log-format` when given.
    pub logger: Logger,
    /// `--log-outputs` (or the deprecated `--log-output`).
    pub log_outputs: Vec<LogOutput>,
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
    /// `--auth-token` names no token provider etcd knows, or its options are wrong.
    #[error("--auth-token: {0}")]
    AuthToken(String),
    #[error("--{0} must be positive")]
    NotPositive(&'static str),
    #[error("--advertise-client-urls is required when --listen-client-urls is set explicitly")]
    AdvertiseClientUrlsRequired,
    #[error("--{flag}={value} is not supported: {reason}")]
    Unsupported { flag: &'static str, value: String, reason: &'static str },
    /// A flag of [`REFUSED`] set to other than its default.
    #[error("--{flag} is not supported yet ({until})")]
    NotSupportedYet { flag: &'static str, until: &'static str },
    /// etcd's error for an `https`/`unixs` client URL without a certificate.
    #[error(
        "TLS key/cert (--cert-file, --key-file) must be provided for client url {0} with HTTPS scheme"
    )]
    ClientTlsRequired(String),
    /// etcd's error for a TLS listener (peer or metrics) without a certificate.
    #[error("cannot listen on TLS for {0}: KeyFile and CertFile are not presented")]
    TlsNotPresented(String),
    /// etcd's error for a TLS side with a certificate and no key, or the reverse.
    #[error("KeyFile and CertFile must both be present[key: {key}, cert: {cert}]")]
    KeyCertPair { key: String, cert: String },
    /// Another check of etcd's, in etcd's words.
    #[error("{0}")]
    Rejected(String),
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

    /// [`Flags::into_config`] with the environment given, collecting notices instead of
    /// printing them (public for the fuzz target, `fuzz/`).
    pub fn resolve(
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
        let config = checked(&settings, notices)?;
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

/// The configuration the YAML `text` of a `--config-file` gives, checked as
/// [`Flags::into_config`] checks a file's (public for the fuzz target, `fuzz/`).
pub fn config_from_yaml(text: &str, notices: &mut Vec<String>) -> Result<Config, ConfigError> {
    let settings = sources::from_yaml(text, Path::new("<yaml>"), &flag_names(), notices)?;
    checked(&settings, notices)
}

/// Parses `settings` into the flags' values and checks them.
fn checked(settings: &[Setting], notices: &mut Vec<String>) -> Result<Config, ConfigError> {
    let values = parse_values(settings).map_err(|error| {
        // Name the setting at fault: the first one that fails on its own.
        settings
            .iter()
            .find_map(|s| parse_values(std::slice::from_ref(s)).err().map(|e| s.invalid(&e)))
            .unwrap_or_else(|| ConfigError::Settings(error.to_string()))
    })?;
    check_refused(settings)?;
    values.check(notices)
}

/// The long names of every flag that takes a value (help and version do not).
fn flag_names() -> Vec<String> {
    Values::command()
        .get_arguments()
        .filter(|arg| arg.get_action().takes_values())
        .filter_map(|arg| arg.get_long().map(String::from))
        .collect()
}

/// Fails on the first setting of a [`REFUSED`] flag whose value differs from the default
/// (compared parsed, so `--bcrypt-cost=10` is the default however it is spelled).
fn check_refused(settings: &[Setting]) -> Result<(), ConfigError> {
    let defaults = parse_values(&[]).map_err(|e| ConfigError::Settings(e.to_string()))?;
    for setting in settings {
        let Some((flag, refusal)) = REFUSED.iter().find(|(flag, _)| *flag == setting.key) else {
            continue;
        };
        let parsed =
            parse_values(std::slice::from_ref(setting)).map_err(|e| setting.invalid(&e))?;
        if parsed == defaults {
            continue;
        }
        return Err(match *refusal {
            Refusal::NotYet(until) => ConfigError::NotSupportedYet { flag, until },
            Refusal::Never(reason) => ConfigError::Unsupported {
                flag,
                value: setting.value.to_string_lossy().into_owned(),
                reason,
            },
        });
    }
    Ok(())
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
        if !self.feature_gates.trim().is_empty() {
            return Err(ConfigError::Unsupported {
                flag: "feature-gates",
                value: self.feature_gates,
                reason: "oxetcd has no feature gates",
            });
        }
        if self.experimental_enable_lease_checkpoint_persist
            && !self.experimental_enable_lease_checkpoint
        {
            return Err(ConfigError::Rejected(
                "setting experimental-enable-lease-checkpoint-persist requires experimental-enable-lease-checkpoint".into(),
            ));
        }
        let storage_policy = self.storage_policy()?;
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
        let (log_level, logger, log_outputs) = self.logging(notices)?;
        let (client_tls, peer_tls, tls_options) = self.tls(notices)?;
        let initial_cluster = self
            .initial_cluster
            .clone()
            .unwrap_or_else(|| format!("{}={}", self.name, self.initial_advertise_peer_urls));
        let bcrypt_cost = if (MIN_BCRYPT_COST..=MAX_BCRYPT_COST).contains(&self.bcrypt_cost) {
            self.bcrypt_cost
        } else {
            // etcd's answer to a cost bcrypt cannot use: its default, with a warning.
            notices.push(format!(
                "--bcrypt-cost={} is not between {MIN_BCRYPT_COST} and {MAX_BCRYPT_COST}; using the default {DEFAULT_BCRYPT_COST}",
                self.bcrypt_cost
            ));
            DEFAULT_BCRYPT_COST
        };
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
            wal_dir: self.wal_dir.filter(|dir| !dir.as_os_str().is_empty()),
            pre_vote: self.pre_vote,
            initial_election_tick_advance: self.initial_election_tick_advance,
            // etcd's backend takes zero (or less) as "its default".
            backend_batch_interval: self
                .backend_batch_interval
                .and_then(GoDuration::positive)
                .unwrap_or(DEFAULT_BACKEND_BATCH_INTERVAL),
            backend_batch_limit: usize::try_from(self.backend_batch_limit)
                .ok()
                .filter(|&n| n > 0)
                .unwrap_or(DEFAULT_BACKEND_BATCH_LIMIT),
            peer_dial_tls: None,
            client_dial_tls: None,
            // etcd reads 0 as its default TTL.
            auth_token: TokenSpec::parse(&self.auth_token).map_err(ConfigError::AuthToken)?,
            auth_token_ttl: match self.auth_token_ttl {
                0 => DEFAULT_TOKEN_TTL,
                seconds => Duration::from_secs(seconds.into()),
            },
            bcrypt_cost,
            client_cert_auth: self.client_cert_auth,
            strict_reconfig_check: self.strict_reconfig_check,
            force_new_cluster: self.force_new_cluster,
            storage_policy,
            name: self.name,
        };
        let listen_client_urls = parse_listen_urls(&self.listen_client_urls)?;
        let listen_peer_urls = parse_listen_urls(&self.listen_peer_urls)?;
        let listen_metrics_urls = match self.listen_metrics_urls.trim() {
            "" => Vec::new(),
            list => parse_listen_urls(list)?,
        };
        check_tls_urls(&listen_client_urls, &client_tls, Side::Client, notices)?;
        check_tls_urls(&listen_peer_urls, &peer_tls, Side::Peer, notices)?;
        check_tls_urls(&listen_metrics_urls, &client_tls, Side::Metrics, notices)?;
        Ok(Config {
            server,
            listen_client_urls,
            listen_peer_urls,
            listen_metrics_urls,
            metrics: match self.metrics {
                MetricsLevel::Basic => oxetcd_v3rpc::MetricsLevel::Basic,
                MetricsLevel::Extensive => oxetcd_v3rpc::MetricsLevel::Extensive,
            },
            client_tls,
            peer_tls,
            tls_options,
            max_concurrent_streams: self.max_concurrent_streams,
            // etcd enforces, and pings, only for positive durations.
            grpc_keepalive_min_time: self.grpc_keepalive_min_time.positive().unwrap_or_default(),
            grpc_keepalive_interval: self.grpc_keepalive_interval.positive().unwrap_or_default(),
            grpc_keepalive_timeout: self.grpc_keepalive_timeout.positive().unwrap_or_default(),
            enable_grpc_gateway: self.enable_grpc_gateway,
            host_whitelist: split_list(&self.host_whitelist),
            cors: split_list(&self.cors),
            log_level,
            logger,
            log_outputs,
        })
    }

    /// `--auto-compaction-*`, `--experimental-compaction-batch-limit` and the corruption
    /// checks' flags.
    fn storage_policy(&self) -> Result<StoragePolicy, ConfigError> {
        let compact_hash_check_time =
            self.experimental_compact_hash_check_time.positive().ok_or_else(|| {
                // etcd 3.5's check, which also names the value in Go's notation.
                ConfigError::Rejected("--experimental-compact-hash-check-time must be >0".into())
            })?;
        Ok(StoragePolicy {
            auto_compaction: auto_compaction(
                self.auto_compaction_mode,
                &self.auto_compaction_retention,
            )?,
            // etcd's store takes zero as its default; less is no batch at all.
            compaction_batch_limit: usize::try_from(self.experimental_compaction_batch_limit)
                .ok()
                .filter(|&n| n > 0)
                .unwrap_or(DEFAULT_COMPACTION_BATCH_LIMIT),
            initial_corrupt_check: self.experimental_initial_corrupt_check,
            // Zero is etcd's "off"; a negative interval would spin, so it is off too.
            corrupt_check_time: self.experimental_corrupt_check_time.positive(),
            compact_hash_check_time: self
                .experimental_compact_hash_check_enabled
                .then_some(compact_hash_check_time),
        })
    }

    /// The log level, logger and outputs, with etcd 3.4's deprecated `--debug`,
    /// `--logger=capnslog` and `--log-output`, and etcd 3.5's `--log-format`.
    fn logging(
        &self,
        notices: &mut Vec<String>,
    ) -> Result<(LogLevel, Logger, Vec<LogOutput>), ConfigError> {
        let mut level = self.log_level;
        if self.debug {
            notices
                .push("warning: deprecated --debug is set (use --log-level=debug instead)".into());
            if level != LogLevel::Debug {
                notices.push(format!(
                    "warning: deprecated --debug is set with an inconsistent --log-level={}; logging at debug",
                    self.log_level_name()
                ));
            }
            level = LogLevel::Debug;
        }
        let outputs = match (self.log_output.as_str(), self.log_outputs.as_str()) {
            (DEFAULT_LOG_OUTPUT, outputs) => outputs,
            (output, DEFAULT_LOG_OUTPUT) => {
                notices.push(
                    "warning: '--log-output' flag has been deprecated! Please use '--log-outputs'!"
                        .into(),
                );
                output
            }
            _ => {
                return Err(ConfigError::Rejected(
                    "both '--log-output' and '--log-outputs' are set; only set '--log-outputs'"
                        .into(),
                ));
            }
        };
        let outputs = split_list(outputs);
        if outputs.is_empty() {
            return Err(ConfigError::Rejected(
                "either '--log-output' or '--log-outputs' flag must be set".into(),
            ));
        }
        if outputs.len() > 1 && outputs.iter().any(|o| o == DEFAULT_LOG_OUTPUT) {
            return Err(ConfigError::Rejected(format!(
                "multi logoutput for {DEFAULT_LOG_OUTPUT:?} is not supported yet"
            )));
        }
        let logger = match (self.log_format, self.logger) {
            (Some(LogFormat::Json), _) => Logger::Zap,
            (Some(LogFormat::Console), _) => Logger::Text,
            (None, LoggerFlag::Zap) => Logger::Zap,
            (None, LoggerFlag::Text) => Logger::Text,
            (None, LoggerFlag::Capnslog) => {
                notices.push(
                    "warning: deprecated '--logger=capnslog' flag is set; use '--logger=zap' flag instead (oxetcd logs text lines for capnslog)"
                        .into(),
                );
                if outputs.len() > 1 {
                    return Err(ConfigError::Rejected(format!(
                        "--logger=capnslog supports only 1 value in '--log-outputs', got {outputs:?}"
                    )));
                }
                Logger::Text
            }
        };
        let outputs = outputs
            .into_iter()
            .map(|output| match output.as_str() {
                DEFAULT_LOG_OUTPUT | "stderr" => Ok(LogOutput::Stderr),
                "stdout" => Ok(LogOutput::Stdout),
                "systemd/journal" => Err(ConfigError::Unsupported {
                    flag: "log-outputs",
                    value: output.clone(),
                    reason: "oxetcd does not write to journald; systemd captures stderr",
                }),
                _ => Ok(LogOutput::File(PathBuf::from(output))),
            })
            .collect::<Result<_, _>>()?;
        Ok((level, logger, outputs))
    }

    fn log_level_name(&self) -> String {
        use clap::ValueEnum;
        self.log_level.to_possible_value().map_or_else(String::new, |v| v.get_name().to_string())
    }

    /// Both sides' TLS settings and the shared options, with etcd's checks.
    fn tls(
        &self,
        notices: &mut Vec<String>,
    ) -> Result<(TlsInfo, TlsInfo, TlsOptions), ConfigError> {
        let path = |p: &Option<PathBuf>| p.clone().filter(|p| !p.as_os_str().is_empty());
        let text = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
        let client = TlsInfo {
            cert_file: path(&self.cert_file),
            key_file: path(&self.key_file),
            trusted_ca_file: path(&self.trusted_ca_file),
            client_cert_auth: self.client_cert_auth,
            crl_file: path(&self.client_crl_file),
            allowed_cn: None,
            allowed_hostname: text(&self.client_cert_allowed_hostname),
            auto_tls: self.auto_tls,
            skip_client_san_verification: false,
        };
        let peer = TlsInfo {
            cert_file: path(&self.peer_cert_file),
            key_file: path(&self.peer_key_file),
            trusted_ca_file: path(&self.peer_trusted_ca_file),
            client_cert_auth: self.peer_client_cert_auth,
            crl_file: path(&self.peer_crl_file),
            allowed_cn: text(&self.peer_cert_allowed_cn),
            allowed_hostname: text(&self.peer_cert_allowed_hostname),
            auto_tls: self.peer_auto_tls,
            skip_client_san_verification: self.experimental_peer_skip_client_san_verification,
        };
        for (side, tls) in [("client", &client), ("peer", &peer)] {
            if tls.auto_tls && has_cert_or_key(tls) {
                notices.push(format!("warning: ignoring {side} auto TLS since certs given"));
            }
        }
        if self.self_signed_cert_validity == 0 {
            return Err(ConfigError::NotPositive("self-signed-cert-validity"));
        }
        let options = TlsOptions {
            cipher_suites: split_list(&self.cipher_suites),
            min_version: self.tls_min_version.map(|v| v.name().to_string()),
            max_version: self.tls_max_version.map(|v| v.name().to_string()),
            self_signed_cert_validity_years: self.self_signed_cert_validity,
        };
        // etcd 3.5's checks of the version range.
        if let (Some(min), Some(max)) = (self.tls_min_version, self.tls_max_version)
            && min > max
        {
            return Err(ConfigError::Rejected(format!(
                "min version ({}) is greater than max version ({})",
                min.name(),
                max.name()
            )));
        }
        if self.tls_min_version == Some(TlsVersion::Tls13) && !options.cipher_suites.is_empty() {
            return Err(ConfigError::Rejected(
                "cipher suites cannot be configured when only TLS1.3 is enabled".into(),
            ));
        }
        Ok((client, peer, options))
    }
}

fn has_cert_or_key(tls: &TlsInfo) -> bool {
    tls.cert_file.is_some() || tls.key_file.is_some()
}

/// Which listeners a URL list is for, for etcd's messages.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Client,
    Peer,
    Metrics,
}

/// etcd's checks of listen URLs against their side's TLS: a TLS URL needs a certificate
/// and its key (or auto-TLS); a plain one ignores them, with a warning.
fn check_tls_urls(
    urls: &[Url],
    tls: &TlsInfo,
    side: Side,
    notices: &mut Vec<String>,
) -> Result<(), ConfigError> {
    let (url_kind, auth_flag) = match side {
        Side::Client => ("client-url", "--client-cert-auth"),
        Side::Peer => ("peer-url", "--peer-client-cert-auth"),
        // etcd serves metrics URLs with the client side's TLS and warns nothing.
        Side::Metrics => ("metrics-url", ""),
    };
    for url in urls {
        if url.scheme.is_tls() {
            if tls.cert_file.is_some() != tls.key_file.is_some() {
                let shown = |p: &Option<PathBuf>| {
                    p.as_ref().map(|p| p.display().to_string()).unwrap_or_default()
                };
                return Err(ConfigError::KeyCertPair {
                    key: shown(&tls.key_file),
                    cert: shown(&tls.cert_file),
                });
            }
            if !tls.is_enabled() {
                return Err(match side {
                    Side::Client => ConfigError::ClientTlsRequired(url.text.clone()),
                    Side::Peer | Side::Metrics => ConfigError::TlsNotPresented(url.text.clone()),
                });
            }
        } else if side != Side::Metrics {
            if has_cert_or_key(tls) {
                notices.push(format!(
                    "warning: scheme is HTTP while key and cert files are present; ignoring key and cert files ({url_kind} {})",
                    url.text
                ));
            }
            if tls.client_cert_auth {
                notices.push(format!(
                    "warning: scheme is HTTP while {auth_flag} is enabled; ignoring client cert auth for this URL ({url_kind} {})",
                    url.text
                ));
            }
        }
    }
    Ok(())
}

/// A comma-separated list, trimmed, without empty items or repeats (etcd's
/// `UniqueStrings` flags).
fn split_list(list: &str) -> Vec<String> {
    let mut items: Vec<String> = Vec::new();
    for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        if !items.iter().any(|i| i == item) {
            items.push(item.to_string());
        }
    }
    items
}

fn parse_initial_cluster(value: &str) -> Result<Vec<InitialMember>, ConfigError> {
    let mut members: Vec<InitialMember> = Vec::new();
    for pair in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, url) = pair
            .split_once('=')
            .ok_or_else(|| ConfigError::BadInitialCluster(format!("{pair:?} is not name=url")))?;
        url::host_port(url)?;
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
