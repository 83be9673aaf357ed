use std::ffi::OsString;
use std::io::Write;

use super::*;
use oxetcd_tls::{ListenAddr, ListenScheme};

fn tcp(addr: &str) -> ListenAddr {
    ListenAddr::Tcp(addr.parse().expect("a socket address"))
}

/// Resolves `args` against the environment `env`, returning the notices too.
fn resolve(args: &[&str], env: &[(&str, &str)]) -> (Result<Config, ConfigError>, Vec<String>) {
    let argv = std::iter::once("oxetcd").chain(args.iter().copied());
    let flags = Flags::try_parse_from(argv).expect("flags parse");
    let env: Vec<(String, OsString)> =
        env.iter().map(|(k, v)| (k.to_string(), OsString::from(v))).collect();
    let mut notices = Vec::new();
    (flags.resolve(&env, &mut notices), notices)
}

fn parse(args: &[&str]) -> Result<Config, ConfigError> {
    resolve(args, &[]).0
}

fn yaml_file(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    file.write_all(text.as_bytes()).expect("write the config file");
    file
}

fn path_of(file: &tempfile::NamedTempFile) -> &str {
    file.path().to_str().expect("a UTF-8 temp path")
}

#[test]
fn defaults_are_etcds() {
    let cfg = parse(&[]).unwrap();
    assert_eq!(cfg.server.name, "default");
    assert_eq!(cfg.server.data_dir, PathBuf::from("default.oxetcd"));
    assert_eq!(cfg.listen_client_urls[0].addr, tcp("127.0.0.1:2379"));
    assert_eq!(cfg.server.advertise_client_urls, ["http://localhost:2379"]);
    assert_eq!(cfg.listen_peer_urls[0].addr, tcp("127.0.0.1:2380"));
    assert_eq!(
        cfg.server.initial_cluster,
        vec![InitialMember {
            name: "default".into(),
            peer_urls: vec!["http://localhost:2380".into()]
        }]
    );
    assert_eq!(cfg.server.initial_cluster_state, InitialClusterState::New);
    assert_eq!(cfg.server.initial_cluster_token, "etcd-cluster");
    assert_eq!((cfg.server.heartbeat, cfg.server.election_ticks), (Duration::from_millis(100), 10));
    assert_eq!((cfg.server.snapshot_count, cfg.server.snapshot_catchup_entries), (10_000, 5000));
    assert_eq!(
        (cfg.server.max_snapshots, cfg.server.max_wals, cfg.server.quota_backend_bytes),
        (5, 5, 0)
    );
    assert_eq!((cfg.server.max_request_bytes, cfg.server.max_txn_ops), (1_572_864, 128));
    assert_eq!((cfg.log_level, cfg.logger), (LogLevel::Info, Logger::Zap));
    assert_eq!(cfg.server.request_timeout(), Duration::from_secs(7));
    assert_eq!(cfg.server.watch_progress_notify_interval, Duration::from_secs(600));
    assert!(!cfg.server.enable_lease_checkpoint);
    assert_eq!(cfg.server.lease_checkpoint_interval, Duration::from_secs(300));
}

#[test]
fn initial_cluster_groups_urls_by_name() {
    let cfg = parse(&[
        "--initial-cluster",
        "a=http://127.0.0.1:1,b=http://127.0.0.2:1,a=http://127.0.0.1:2",
    ])
    .unwrap();
    assert_eq!(cfg.server.initial_cluster.len(), 2);
    assert_eq!(cfg.server.initial_cluster[0].peer_urls.len(), 2);
}

#[test]
fn a_repeated_flag_takes_its_last_value() {
    assert_eq!(parse(&["--name", "a", "--name=b"]).unwrap().server.name, "b");
}

#[test]
fn bad_values_are_refused_with_a_clear_message() {
    let err = parse(&["--listen-client-urls", "127.0.0.1:2379", "--advertise-client-urls", "x"])
        .unwrap_err();
    assert!(err.to_string().contains("missing scheme"), "{err}");
    let err = parse(&["--election-timeout", "200"]).unwrap_err();
    assert_eq!(err, ConfigError::ElectionTimeout { election: 200, heartbeat: 100 });
    let err = parse(&["--election-timeout", "50001"]).unwrap_err();
    assert_eq!(err, ConfigError::ElectionTimeoutTooLong(50_001));
    assert_eq!(parse(&["--heartbeat-interval", "0"]).unwrap_err(), ConfigError::ZeroHeartbeat);
    assert_eq!(
        parse(&["--max-txn-ops", "0"]).unwrap_err(),
        ConfigError::NotPositive("max-txn-ops")
    );
    let err = parse(&["--initial-cluster", "nourl"]).unwrap_err();
    assert!(matches!(err, ConfigError::BadInitialCluster(_)));
    for argv in [
        &["oxetcd", "--no-such-flag"][..],
        &["oxetcd", "--initial-cluster-state", "maybe"],
        &["oxetcd", "--heartbeat-interval", "soon"],
        &["oxetcd", "--enable-v2", "false"],
    ] {
        assert!(Flags::try_parse_from(argv).is_err(), "{argv:?}");
    }
}

#[test]
fn listening_for_clients_requires_advertising_like_etcd() {
    let err = parse(&["--listen-client-urls", "http://127.0.0.1:2379"]).unwrap_err();
    assert_eq!(err, ConfigError::AdvertiseClientUrlsRequired);
    let (result, _) = resolve(
        &["--listen-client-urls", "http://127.0.0.1:2379"],
        &[("ETCD_ADVERTISE_CLIENT_URLS", "http://127.0.0.1:2379")],
    );
    assert!(result.is_ok());
}

#[test]
fn only_the_v3_api_is_served() {
    assert!(parse(&["--enable-v2=false"]).is_ok());
    let err = parse(&["--enable-v2"]).unwrap_err();
    assert!(matches!(err, ConfigError::Unsupported { flag: "enable-v2", .. }), "{err}");
    assert!(parse(&["--enable-v2=true"]).is_err());
}

#[test]
fn the_quota_is_taken_as_given() {
    let (result, notices) = resolve(&["--quota-backend-bytes", "8589934592"], &[]);
    assert_eq!(result.unwrap().server.quota_backend_bytes, 8_589_934_592);
    assert!(notices.is_empty(), "{notices:?}");
}

#[test]
fn the_watch_progress_interval_follows_etcds_rules() {
    let interval = |args: &[&str]| {
        let (result, notices) = resolve(args, &[]);
        (result.unwrap().server.watch_progress_notify_interval, notices)
    };
    let flag = "--experimental-watch-progress-notify-interval";
    assert_eq!(interval(&[flag, "1m30s"]).0, Duration::from_secs(90));
    assert_eq!(interval(&[&format!("{flag}=200ms")]).0, Duration::from_millis(200));
    // etcd keeps its default for a zero or negative interval, and raises a short one.
    assert_eq!(interval(&[flag, "0"]).0, Duration::from_secs(600));
    assert_eq!(interval(&[&format!("{flag}=-5s")]).0, Duration::from_secs(600));
    let (short, notices) = interval(&[flag, "10ms"]);
    assert_eq!(short, Duration::from_millis(100));
    assert!(notices.iter().any(|n| n.contains("minimum period 100ms")), "{notices:?}");

    let (result, _) = resolve(&[], &[("ETCD_EXPERIMENTAL_WATCH_PROGRESS_NOTIFY_INTERVAL", "5s")]);
    assert_eq!(result.unwrap().server.watch_progress_notify_interval, Duration::from_secs(5));
    let (result, _) = resolve(&[], &[("ETCD_EXPERIMENTAL_WATCH_PROGRESS_NOTIFY_INTERVAL", "10")]);
    let err = result.unwrap_err().to_string();
    assert!(err.contains("time: missing unit in duration \"10\""), "{err}");
    assert!(Flags::try_parse_from(["oxetcd", flag, "10"]).is_err());
}

#[test]
fn lease_checkpoints_are_a_boolean_flag_like_etcds() {
    let enabled = |args: &[&str], env: &[(&str, &str)]| {
        resolve(args, env).0.map(|cfg| cfg.server.enable_lease_checkpoint)
    };
    assert_eq!(enabled(&["--experimental-enable-lease-checkpoint"], &[]), Ok(true));
    assert_eq!(enabled(&["--experimental-enable-lease-checkpoint=false"], &[]), Ok(false));
    assert_eq!(enabled(&[], &[("ETCD_EXPERIMENTAL_ENABLE_LEASE_CHECKPOINT", "true")]), Ok(true));
    assert!(enabled(&[], &[("ETCD_EXPERIMENTAL_ENABLE_LEASE_CHECKPOINT", "yes")]).is_err());
}

#[test]
fn initial_corrupt_check_is_a_boolean_flag_like_etcds() {
    // The bare flag must not swallow the next argument (etcd's e2e harness passes it so).
    let (result, notices) = resolve(&["--experimental-initial-corrupt-check", "--name", "n1"], &[]);
    let config = result.unwrap();
    assert_eq!(config.server.name, "n1");
    assert!(config.server.storage_policy.initial_corrupt_check);
    assert!(notices.is_empty(), "{notices:?}");
    let (result, notices) = resolve(&["--experimental-initial-corrupt-check=false"], &[]);
    assert!(!result.unwrap().server.storage_policy.initial_corrupt_check);
    assert!(notices.is_empty(), "{notices:?}");
}

#[test]
fn auto_compaction_reads_the_retention_as_etcd_does() {
    use oxetcd_etcdserver::compactor::AutoCompaction::{Periodic, Revision};
    let hours = |h: u64| Some(Periodic(Duration::from_secs(h * 3600)));
    let policy =
        |args: &[&str]| resolve(args, &[]).0.map(|c| c.server.storage_policy.auto_compaction);
    let table: &[(&[&str], Option<AutoCompaction>)] = &[
        (&[], None),
        (&["--auto-compaction-retention=0"], None),
        (&["--auto-compaction-retention=0s", "--auto-compaction-mode=periodic"], None),
        // A bare number is hours in periodic mode (the default mode) ...
        (&["--auto-compaction-retention=1"], hours(1)),
        (&["--auto-compaction-retention", "72"], hours(72)),
        // ... a Go duration otherwise.
        (&["--auto-compaction-retention=5m"], Some(Periodic(Duration::from_secs(300)))),
        (&["--auto-compaction-retention=1h30m"], Some(Periodic(Duration::from_secs(5400)))),
        // Revision mode: a count; a duration counts its nanoseconds, as in etcd.
        (
            &["--auto-compaction-mode=revision", "--auto-compaction-retention=1000"],
            Some(Revision(1000)),
        ),
        (
            &["--auto-compaction-mode=revision", "--auto-compaction-retention=1us"],
            Some(Revision(1000)),
        ),
    ];
    for (args, expected) in table {
        assert_eq!(policy(args), Ok(*expected), "{args:?}");
    }
    for bad in [
        "--auto-compaction-retention=5x",
        "--auto-compaction-retention=-5m",
        "--auto-compaction-retention=-1",
    ] {
        let err = policy(&[bad]).unwrap_err();
        assert!(err.to_string().starts_with("error parsing CompactionRetention: "), "{bad}: {err}");
    }
    assert!(Flags::try_parse_from(["oxetcd", "--auto-compaction-mode=hourly"]).is_err());
    let (_, notices) = resolve(&["--auto-compaction-retention=1"], &[]);
    assert!(notices.is_empty(), "{notices:?}");
    // From the environment and the file alike.
    let env = [("ETCD_AUTO_COMPACTION_MODE", "revision"), ("ETCD_AUTO_COMPACTION_RETENTION", "10")];
    let (result, _) = resolve(&[], &env);
    assert_eq!(result.unwrap().server.storage_policy.auto_compaction, Some(Revision(10)));
    let file = yaml_file("auto-compaction-retention: 2h\n");
    let config = parse(&["--config-file", path_of(&file)]).unwrap();
    assert_eq!(config.server.storage_policy.auto_compaction, hours(2));
}

#[test]
fn compaction_batch_and_corruption_checks_reach_the_server() {
    let policy = |args: &[&str]| resolve(args, &[]).0.map(|c| c.server.storage_policy);
    let defaults = policy(&[]).unwrap();
    assert_eq!(defaults, StoragePolicy::default());
    assert_eq!(defaults.compaction_batch_limit, 1000);
    assert_eq!(defaults.corrupt_check_time, None);
    assert_eq!(defaults.compact_hash_check_time, None);

    let set = policy(&[
        "--experimental-compaction-batch-limit=50",
        "--experimental-corrupt-check-time=2m",
        "--experimental-compact-hash-check-enabled",
        "--experimental-initial-corrupt-check=true",
    ])
    .unwrap();
    assert_eq!(set.compaction_batch_limit, 50);
    assert_eq!(set.corrupt_check_time, Some(Duration::from_secs(120)));
    assert_eq!(set.compact_hash_check_time, Some(Duration::from_secs(60)));
    assert!(set.initial_corrupt_check);
    let set = policy(&[
        "--experimental-compact-hash-check-enabled=true",
        "--experimental-compact-hash-check-time=10s",
        "--experimental-compaction-batch-limit=0",
    ])
    .unwrap();
    assert_eq!(set.compact_hash_check_time, Some(Duration::from_secs(10)));
    assert_eq!(set.compaction_batch_limit, 1000, "zero is the store's default, as in etcd");

    let err = policy(&["--experimental-compact-hash-check-time=0s"]).unwrap_err();
    assert_eq!(err.to_string(), "--experimental-compact-hash-check-time must be >0");
    let env = [("ETCD_EXPERIMENTAL_CORRUPT_CHECK_TIME", "30s")];
    let (result, _) = resolve(&[], &env);
    assert_eq!(
        result.unwrap().server.storage_policy.corrupt_check_time,
        Some(Duration::from_secs(30))
    );
}

#[test]
fn strict_reconfig_check_reaches_the_server() {
    let (result, notices) = resolve(&["--strict-reconfig-check=false", "--name", "n1"], &[]);
    assert!(!result.unwrap().server.strict_reconfig_check);
    assert!(notices.is_empty(), "{notices:?}");
    assert!(parse(&[]).unwrap().server.strict_reconfig_check, "on by default, as in etcd");
}

#[test]
fn force_new_cluster_reaches_the_server() {
    let (result, notices) = resolve(&["--force-new-cluster", "--name", "n1"], &[]);
    let cfg = result.unwrap();
    assert!(cfg.server.force_new_cluster && cfg.server.name == "n1");
    assert!(notices.is_empty(), "{notices:?}");
    let (result, _) = resolve(&[], &[("ETCD_FORCE_NEW_CLUSTER", "true")]);
    assert!(result.unwrap().server.force_new_cluster);
    assert!(!parse(&[]).unwrap().server.force_new_cluster, "off by default, as in etcd");
}

#[test]
fn max_concurrent_streams_defaults_to_etcds_no_limit() {
    assert_eq!(parse(&[]).unwrap().max_concurrent_streams, u32::MAX);
    assert_eq!(parse(&["--max-concurrent-streams", "2"]).unwrap().max_concurrent_streams, 2);
    assert!(Flags::try_parse_from(["oxetcd", "--max-concurrent-streams=-1"]).is_err());
}

#[test]
fn environment_variables_fill_in_flags_not_given() {
    let (result, notices) = resolve(
        &["--name", "cli"],
        &[
            ("ETCD_DATA_DIR", "/var/lib/x"),
            ("ETCD_MAX_TXN_OPS", "64"),
            ("ETCD_LOG_LEVEL", "debug"),
            ("ETCD_INITIAL_CLUSTER_TOKEN", ""),
            ("PATH", "/bin"),
            ("ETCDCTL_API", "3"),
        ],
    );
    let cfg = result.unwrap();
    assert_eq!(cfg.server.name, "cli");
    assert_eq!(cfg.server.data_dir, PathBuf::from("/var/lib/x"));
    assert_eq!((cfg.server.max_txn_ops, cfg.log_level), (64, LogLevel::Debug));
    assert_eq!(cfg.server.initial_cluster_token, "etcd-cluster", "an empty variable is ignored");
    assert_eq!(notices.len(), 3, "{notices:?}");
    assert!(notices[0].contains("recognized and used environment variable ETCD_DATA_DIR"));
}

#[test]
fn a_flag_given_on_the_command_line_and_in_the_environment_is_refused() {
    let (result, _) = resolve(&["--name", "cli"], &[("ETCD_NAME", "env")]);
    assert_eq!(result.unwrap_err(), ConfigError::ConflictingEnv("ETCD_NAME".into()));
}

#[test]
fn unrecognized_etcd_variables_draw_a_warning() {
    // ETCD_UNSUPPORTED_ARCH is etcd's own, not a flag: no warning, as from etcd.
    let env =
        [("ETCD_NO_SUCH_FLAG", "1"), ("ETCD_UNSUPPORTED_ARCH", "arm"), ("ETCD_NAMEE", "typo")];
    let (result, notices) = resolve(&[], &env);
    assert!(result.is_ok());
    assert_eq!(
        notices,
        [
            "warning: unrecognized environment variable ETCD_NO_SUCH_FLAG=1",
            "warning: unrecognized environment variable ETCD_NAMEE=typo",
        ]
    );
}

#[test]
fn invalid_environment_values_name_the_variable() {
    let (result, _) = resolve(&[], &[("ETCD_HEARTBEAT_INTERVAL", "fast")]);
    let err = result.unwrap_err();
    assert!(
        matches!(&err, ConfigError::InvalidValue { origin, value, .. }
            if origin == "ETCD_HEARTBEAT_INTERVAL" && value == "fast"),
        "{err}"
    );
    let (result, _) = resolve(&[], &[("ETCD_LOGGER", "syslog")]);
    let err = result.unwrap_err().to_string();
    assert!(err.contains("ETCD_LOGGER") && err.contains("zap, text, capnslog"), "{err}");
}

/// A value, different from the default, for every key of the configuration file.
const EVERY_KEY: &str = "
name: infra1
data-dir: /var/lib/infra1
snapshot-count: 20000
snapshot-catchup-entries: 100
heartbeat-interval: 50
election-timeout: 500
listen-peer-urls: http://127.0.0.1:12380
listen-client-urls: http://127.0.0.1:12379,http://127.0.0.2:12379
max-snapshots: 7
max-wals: 0
quota-backend-bytes: -1
max-txn-ops: 256
max-request-bytes: 10485760
max-concurrent-streams: 100
initial-advertise-peer-urls: http://127.0.0.1:12380
initial-cluster: infra1=http://127.0.0.1:12380,infra2=http://127.0.0.2:12380
initial-cluster-state: existing
initial-cluster-token: 1234
advertise-client-urls: http://127.0.0.1:12379
strict-reconfig-check: false
force-new-cluster: true
enable-v2: false
logger: text
log-level: warn
experimental-enable-lease-checkpoint: true
experimental-watch-progress-notify-interval: 2m
experimental-initial-corrupt-check: true
auto-compaction-mode: revision
auto-compaction-retention: 100
experimental-compaction-batch-limit: 64
experimental-corrupt-check-time: 3m
experimental-compact-hash-check-enabled: true
experimental-compact-hash-check-time: 2m
wal-dir: /var/lib/infra1-wal
initial-election-tick-advance: false
backend-batch-interval: 10ms
backend-batch-limit: 5000
grpc-keepalive-min-time: 1s
grpc-keepalive-interval: 1h
grpc-keepalive-timeout: 0
pre-vote: false
cert-file: /tls/server.crt
key-file: /tls/server.key
client-cert-auth: true
client-crl-file: /tls/client.crl
client-cert-allowed-hostname: client.example.com
trusted-ca-file: /tls/ca.crt
auto-tls: false
peer-cert-file: /tls/peer.crt
peer-key-file: /tls/peer.key
peer-client-cert-auth: true
peer-trusted-ca-file: /tls/peer-ca.crt
peer-cert-allowed-cn: etcd-peer
peer-cert-allowed-hostname: peer.example.com
peer-auto-tls: false
peer-crl-file: /tls/peer.crl
cipher-suites: TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
tls-min-version: TLS1.2
tls-max-version: TLS1.3
self-signed-cert-validity: 3
cors: http://a.example.com,http://b.example.com
host-whitelist: a.example.com
listen-metrics-urls: http://127.0.0.1:12381
metrics: extensive
enable-grpc-gateway: false
log-outputs: stdout
log-format: json
experimental-enable-lease-checkpoint-persist: true
experimental-peer-skip-client-san-verification: true
feature-gates: ''
debug: false
log-output: default
auth-token: jwt,pub-key=/keys/jwt.pub,sign-method=ES256,ttl=10m
bcrypt-cost: 12
auth-token-ttl: 60
";

#[test]
fn the_config_file_sets_every_key() {
    let file = yaml_file(EVERY_KEY);
    let (result, notices) = resolve(&["--config-file", path_of(&file)], &[]);
    let cfg = result.unwrap();
    assert_eq!(cfg.server.name, "infra1");
    assert_eq!(cfg.server.data_dir, PathBuf::from("/var/lib/infra1"));
    assert_eq!((cfg.server.snapshot_count, cfg.server.snapshot_catchup_entries), (20_000, 100));
    assert_eq!((cfg.server.heartbeat, cfg.server.election_ticks), (Duration::from_millis(50), 10));
    assert_eq!(cfg.listen_peer_urls[0].addr, tcp("127.0.0.1:12380"));
    assert_eq!(cfg.listen_client_urls.len(), 2);
    assert_eq!(
        (cfg.server.max_snapshots, cfg.server.max_wals, cfg.server.quota_backend_bytes),
        (7, 0, -1)
    );
    assert_eq!((cfg.server.max_txn_ops, cfg.server.max_request_bytes), (256, 10 << 20));
    assert_eq!(cfg.server.initial_advertise_peer_urls, ["http://127.0.0.1:12380"]);
    assert_eq!(cfg.server.initial_cluster.len(), 2);
    assert_eq!(cfg.server.initial_cluster_state, InitialClusterState::Existing);
    assert_eq!(cfg.server.initial_cluster_token, "1234", "a number is read as the string it is");
    assert_eq!(cfg.server.advertise_client_urls, ["http://127.0.0.1:12379"]);
    assert_eq!(cfg.max_concurrent_streams, 100);
    assert_eq!(cfg.log_level, LogLevel::Warn);
    assert!(cfg.server.enable_lease_checkpoint);
    assert_eq!(cfg.server.watch_progress_notify_interval, Duration::from_secs(120));
    assert!(notices.iter().any(|n| n.starts_with("loaded the configuration from")), "{notices:?}");
    let policy = &cfg.server.storage_policy;
    assert_eq!(policy.auto_compaction, Some(AutoCompaction::Revision(100)));
    assert_eq!(policy.compaction_batch_limit, 64);
    assert!(policy.initial_corrupt_check);
    assert_eq!(policy.corrupt_check_time, Some(Duration::from_secs(180)));
    assert_eq!(policy.compact_hash_check_time, Some(Duration::from_secs(120)));

    assert_eq!(cfg.server.wal_dir, Some(PathBuf::from("/var/lib/infra1-wal")));
    assert!(!cfg.server.initial_election_tick_advance && !cfg.server.pre_vote);
    assert_eq!(cfg.server.backend_batch_interval, Duration::from_millis(10));
    assert_eq!(cfg.server.backend_batch_limit, 5000);
    assert_eq!(
        (cfg.grpc_keepalive_min_time, cfg.grpc_keepalive_interval, cfg.grpc_keepalive_timeout),
        (Duration::from_secs(1), Duration::from_secs(3600), Duration::ZERO)
    );
    assert_eq!(cfg.client_tls.cert_file, Some(PathBuf::from("/tls/server.crt")));
    assert_eq!(cfg.client_tls.crl_file, Some(PathBuf::from("/tls/client.crl")));
    assert_eq!(cfg.client_tls.allowed_hostname.as_deref(), Some("client.example.com"));
    assert!(cfg.client_tls.client_cert_auth && cfg.peer_tls.client_cert_auth);
    assert_eq!(cfg.peer_tls.allowed_cn.as_deref(), Some("etcd-peer"));
    assert_eq!(cfg.peer_tls.trusted_ca_file, Some(PathBuf::from("/tls/peer-ca.crt")));
    assert!(cfg.peer_tls.skip_client_san_verification);
    assert_eq!(cfg.tls_options.cipher_suites.len(), 2);
    assert_eq!(cfg.tls_options.min_version.as_deref(), Some("TLS1.2"));
    assert_eq!(cfg.tls_options.max_version.as_deref(), Some("TLS1.3"));
    assert_eq!(cfg.tls_options.self_signed_cert_validity_years, 3);
    assert_eq!(cfg.cors, ["http://a.example.com", "http://b.example.com"]);
    assert_eq!(cfg.host_whitelist, ["a.example.com"]);
    assert_eq!(cfg.listen_metrics_urls[0].addr, tcp("127.0.0.1:12381"));
    assert_eq!(cfg.metrics, oxetcd_v3rpc::MetricsLevel::Extensive);
    assert!(!cfg.enable_grpc_gateway);
    assert_eq!(cfg.log_outputs, [LogOutput::Stdout]);
    assert_eq!(cfg.logger, Logger::Zap, "--log-format=json overrides --logger=text");
    assert_eq!(
        cfg.server.auth_token.to_string(),
        "jwt,pub-key=/keys/jwt.pub,sign-method=ES256,ttl=10m"
    );
    assert_eq!((cfg.server.bcrypt_cost, cfg.server.auth_token_ttl), (12, Duration::from_secs(60)));
    assert!(!cfg.server.strict_reconfig_check);
    assert!(cfg.server.force_new_cluster);

    // Every flag is a key of the file, so this test covers them all (the refused ones
    // have their own test: any value but their default fails).
    let refused = |flag: &str| REFUSED.iter().any(|(name, _)| *name == flag);
    for flag in flag_names().iter().filter(|f| *f != sources::CONFIG_FILE && !refused(f)) {
        assert!(EVERY_KEY.contains(&format!("\n{flag}: ")), "EVERY_KEY lacks {flag}");
    }
}

#[test]
fn the_config_file_ignores_other_flags_and_the_environment() {
    let file = yaml_file("name: from-file\n");
    let env = [("ETCD_NAME", "from-env"), ("ETCD_NO_SUCH", "x")];
    let (result, notices) = resolve(&["--config-file", path_of(&file), "--name", "cli"], &env);
    assert_eq!(result.unwrap().server.name, "from-file");
    assert_eq!(notices.len(), 1, "the environment is not even checked: {notices:?}");

    let env = [("ETCD_CONFIG_FILE", path_of(&file)), ("ETCD_NAME", "from-env")];
    let (result, _) = resolve(&["--name", "cli"], &env);
    assert_eq!(result.unwrap().server.name, "from-file", "ETCD_CONFIG_FILE names the file too");
}

#[test]
fn the_config_file_keeps_defaults_for_absent_and_null_keys() {
    for text in ["", "# nothing\n", "name:\nmax-wals: ~\n"] {
        let file = yaml_file(text);
        let cfg = parse(&["--config-file", path_of(&file)]).unwrap();
        assert_eq!((cfg.server.name.as_str(), cfg.server.max_wals), ("default", 5), "{text:?}");
    }
}

#[test]
fn unknown_config_file_keys_are_ignored_with_one_warning() {
    let file = yaml_file("name: a\nwal-dir:\nno-such-key: 1\nconfig-file: x\n");
    let (result, notices) = resolve(&["--config-file", path_of(&file)], &[]);
    assert_eq!(result.unwrap().server.name, "a");
    let warning = format!(
        "warning: {}: ignoring keys oxetcd does not know: no-such-key, config-file",
        path_of(&file)
    );
    assert_eq!(notices[0], warning, "a null value sets nothing, so it draws no warning");
}

#[test]
fn bad_config_files_are_refused_naming_the_key_and_the_file() {
    let bad = |text: &str| {
        let file = yaml_file(text);
        let err = parse(&["--config-file", path_of(&file)]).unwrap_err().to_string();
        assert!(err.contains(path_of(&file)), "{err}");
        err
    };
    let err = bad("heartbeat-interval: often\n");
    assert!(err.starts_with("invalid value \"often\" for heartbeat-interval in "), "{err}");
    assert!(bad("initial-cluster-state: maybe\n").contains("new, existing"));
    assert!(bad("enable-v2: maybe\n").contains("enable-v2"));
    assert!(bad("max-wals: -1\n").contains("max-wals"));
    assert!(bad("listen-client-urls: [http://a:1]\n").contains("listen-client-urls: expected a"));
    assert!(bad("name: a\nname: b\n").contains("duplicate"));
    assert!(bad("name: [unclosed\n").contains("line"));
    assert!(bad("- a list\n").contains("configuration file"));
    assert!(bad("1: one\n").contains("not a string"));

    let err = parse(&["--config-file", "/no/such/oxetcd.yml"]).unwrap_err();
    assert!(
        matches!(&err, ConfigError::ConfigFile { path, .. } if path == "/no/such/oxetcd.yml"),
        "{err}"
    );
    // The values a file gives are checked like flags.
    let file = yaml_file("heartbeat-interval: 100\nelection-timeout: 100\n");
    let err = parse(&["--config-file", path_of(&file)]).unwrap_err();
    assert_eq!(err, ConfigError::ElectionTimeout { election: 100, heartbeat: 100 });
}

#[test]
fn help_lists_every_flag_in_etcds_groups() {
    let help = Flags::command().render_help().to_string();
    for flag in flag_names() {
        assert!(help.contains(&format!("--{flag}")), "--help lacks --{flag}");
    }
    for heading in [MEMBER, CLUSTERING, LOGGING, EXPERIMENTAL] {
        assert!(help.contains(&format!("{heading}:")), "--help lacks {heading}");
    }
    assert!(help.contains("ETCD_DATA_DIR"));
}

#[test]
fn version_reads_like_etcds() {
    let version = Flags::command().render_long_version();
    assert!(version.starts_with("oxetcd Version: "), "{version}");
    for line in ["etcd API Version: 3.4.23", "Git SHA: ", "OS/Arch: "] {
        assert!(version.contains(line), "{version}");
    }
}

/// etcd 3.4.23's flags, from `etcd --help` and etcdmain's flag set.
const ETCD_FLAGS: &str = include_str!("etcd-3.4-flags.txt");

#[test]
fn every_etcd_3_4_flag_is_accepted_by_name() {
    let mut command = Flags::command();
    command.build(); // adds --help and --version
    let ours: Vec<&str> = command.get_arguments().filter_map(|arg| arg.get_long()).collect();
    let etcds: Vec<&str> = ETCD_FLAGS
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert!(etcds.len() > 80, "the fixture lists etcd's flags");
    let missing: Vec<&&str> = etcds.iter().filter(|flag| !ours.contains(flag)).collect();
    assert!(missing.is_empty(), "flags of etcd 3.4 oxetcd does not accept: {missing:?}");
    // And each parses at its default, on its own, from the command line.
    for flag in etcds.iter().filter(|f| !["version", "config-file"].contains(f)) {
        let default = command
            .get_arguments()
            .find(|arg| arg.get_long() == Some(flag))
            .and_then(|arg| arg.get_default_values().first().cloned());
        if let Some(default) = default {
            let arg = format!("--{flag}={}", default.to_string_lossy());
            // etcd too requires advertising with --listen-client-urls.
            let args = [arg.as_str(), "--advertise-client-urls=http://localhost:2379"];
            let args = if *flag == "listen-client-urls" { &args[..] } else { &args[..1] };
            assert!(parse(args).is_ok(), "{arg} refused: {:?}", parse(args).err());
        }
    }
}

/// A value other than the default for each refused flag.
fn non_default(flag: &str) -> &'static str {
    match flag {
        "discovery-fallback" => "exit",
        "experimental-backend-bbolt-freelist-type" => "map",
        "experimental-warning-apply-duration" => "1m",
        "proxy" => "on",
        "discovery" | "discovery-proxy" => "http://discovery.example.com:2379",
        "discovery-srv" | "discovery-srv-name" | "experimental-enable-v2v3" => "x",
        "log-package-levels" => "etcdserver=DEBUG",
        "enable-v2" | "enable-pprof" | "unsafe-no-fsync" => "true",
        _ => "7",
    }
}

#[test]
fn refused_flags_start_at_their_default_and_fail_otherwise() {
    let command = Flags::command();
    for (flag, refusal) in REFUSED {
        let arg = command.get_arguments().find(|arg| arg.get_long() == Some(flag));
        let default = arg.and_then(|arg| arg.get_default_values().first().cloned());
        let default = default.unwrap_or_else(|| panic!("--{flag} has a default"));
        let at_default = format!("--{flag}={}", default.to_string_lossy());
        assert!(parse(&[&at_default]).is_ok(), "{at_default}");

        let value = non_default(flag);
        let err = parse(&[&format!("--{flag}={value}")]).unwrap_err();
        match refusal {
            Refusal::NotYet(_) => {
                assert!(err.to_string().starts_with(&format!("--{flag} is not supported yet (")))
            }
            Refusal::Never(reason) => {
                assert_eq!(err.to_string(), format!("--{flag}={value} is not supported: {reason}"))
            }
        }
        // From the environment and the file alike.
        let (result, _) = resolve(&[], &[(&sources::env_name(flag), value)]);
        assert!(result.is_err(), "{flag} from the environment");
        let file = yaml_file(&format!("{flag}: {value:?}\n"));
        assert!(parse(&["--config-file", path_of(&file)]).is_err(), "{flag} from a file");
    }
    // The default however spelled, and defaults that are what oxetcd does, start.
    assert!(parse(&["--experimental-warning-apply-duration=100ms"]).is_ok());
    assert!(parse(&["--bcrypt-cost", "10", "--enable-grpc-gateway", "--proxy=off"]).is_ok());
}

#[test]
fn https_urls_need_a_certificate_as_in_etcd() {
    let client = [
        "--listen-client-urls=https://127.0.0.1:2379",
        "--advertise-client-urls=https://127.0.0.1:2379",
    ];
    assert_eq!(
        parse(&client).unwrap_err().to_string(),
        "TLS key/cert (--cert-file, --key-file) must be provided for client url https://127.0.0.1:2379 with HTTPS scheme"
    );
    let cfg = parse(&[&client[..], &["--cert-file=s.crt", "--key-file=s.key"]].concat()).unwrap();
    assert_eq!(cfg.listen_client_urls[0].scheme, ListenScheme::Https);
    assert_eq!(cfg.client_tls.cert_file, Some(PathBuf::from("s.crt")));
    assert!(parse(&[&client[..], &["--auto-tls"]].concat()).unwrap().client_tls.auto_tls);
    let err = parse(&[&client[..], &["--cert-file=s.crt"]].concat()).unwrap_err();
    assert_eq!(err.to_string(), "KeyFile and CertFile must both be present[key: , cert: s.crt]");

    let peer = ["--listen-peer-urls=https://127.0.0.1:2380"];
    assert_eq!(
        parse(&peer).unwrap_err().to_string(),
        "cannot listen on TLS for https://127.0.0.1:2380: KeyFile and CertFile are not presented"
    );
    let cfg = parse(
        &[&peer[..], &["--peer-auto-tls", "--initial-advertise-peer-urls=https://127.0.0.1:2380"]]
            .concat(),
    )
    .unwrap();
    assert!(cfg.peer_tls.is_enabled());
    assert_eq!(cfg.server.initial_cluster[0].peer_urls, ["https://127.0.0.1:2380"]);
    let metrics = ["--listen-metrics-urls=https://127.0.0.1:2381"];
    assert!(matches!(parse(&metrics).unwrap_err(), ConfigError::TlsNotPresented(_)));
}

#[test]
fn plain_urls_ignore_certificates_with_etcds_warnings() {
    let (result, notices) = resolve(
        &["--cert-file=s.crt", "--key-file=s.key", "--client-cert-auth", "--auto-tls"],
        &[],
    );
    assert!(result.is_ok());
    for warning in [
        "ignoring client auto TLS since certs given",
        "scheme is HTTP while key and cert files are present; ignoring key and cert files (client-url http://localhost:2379)",
        "scheme is HTTP while --client-cert-auth is enabled",
    ] {
        assert!(notices.iter().any(|n| n.contains(warning)), "{warning}: {notices:?}");
    }
}

#[test]
fn unix_urls_name_a_socket_file_as_in_etcd() {
    let cfg = parse(&[
        "--listen-client-urls=unix://localhost:2379,unixs:///run/oxetcd.sock,http://127.0.0.1:2379",
        "--advertise-client-urls=unix://localhost:2379",
        "--cert-file=s.crt",
        "--key-file=s.key",
    ])
    .unwrap();
    let urls = &cfg.listen_client_urls;
    assert_eq!(
        (urls[0].scheme, &urls[0].addr),
        (ListenScheme::Unix, &ListenAddr::Unix("localhost:2379".into()))
    );
    assert_eq!(
        (urls[1].scheme, &urls[1].addr),
        (ListenScheme::Unixs, &ListenAddr::Unix("/run/oxetcd.sock".into()))
    );
    assert_eq!((urls[2].scheme, &urls[2].addr), (ListenScheme::Http, &tcp("127.0.0.1:2379")));
    // etcd binds IP addresses, and `localhost`, only.
    let err = parse(&["--listen-peer-urls=http://example.com:2380"]).unwrap_err();
    assert_eq!(err.to_string(), "expected IP in URL for binding (http://example.com:2380)");
    let err = parse(&["--listen-peer-urls=ftp://127.0.0.1:2380"]).unwrap_err();
    assert!(err.to_string().contains("must be http, https, unix, or unixs"), "{err}");
}

#[test]
fn new_flags_come_from_the_environment_too() {
    let (result, _) = resolve(
        &[],
        &[
            ("ETCD_PRE_VOTE", "false"),
            ("ETCD_GRPC_KEEPALIVE_INTERVAL", "30s"),
            ("ETCD_PEER_CERT_ALLOWED_CN", "peer"),
            ("ETCD_CIPHER_SUITES", "A, B,A"),
            ("ETCD_LOG_OUTPUTS", "stderr,/var/log/oxetcd.log"),
            ("ETCD_EXPERIMENTAL_PEER_SKIP_CLIENT_SAN_VERIFICATION", "true"),
        ],
    );
    let cfg = result.unwrap();
    assert!(!cfg.server.pre_vote && cfg.peer_tls.skip_client_san_verification);
    assert_eq!(cfg.grpc_keepalive_interval, Duration::from_secs(30));
    assert_eq!(cfg.peer_tls.allowed_cn.as_deref(), Some("peer"));
    assert_eq!(cfg.tls_options.cipher_suites, ["A", "B"]);
    assert_eq!(cfg.log_outputs, [LogOutput::Stderr, LogOutput::File("/var/log/oxetcd.log".into())]);
}

#[test]
fn defaults_of_the_new_flags_are_etcds() {
    let cfg = parse(&[]).unwrap();
    assert_eq!(cfg.grpc_keepalive_min_time, Duration::from_secs(5));
    assert_eq!(cfg.grpc_keepalive_interval, Duration::from_secs(2 * 60 * 60));
    assert_eq!(cfg.grpc_keepalive_timeout, Duration::from_secs(20));
    // Pre-vote is on by default as in etcd 3.5+ (etcd 3.4: off), a deliberate difference.
    assert!(cfg.server.pre_vote && cfg.server.initial_election_tick_advance);
    assert!(cfg.enable_grpc_gateway);
    assert_eq!(
        (cfg.server.backend_batch_interval, cfg.server.backend_batch_limit, cfg.server.wal_dir),
        (DEFAULT_BACKEND_BATCH_INTERVAL, DEFAULT_BACKEND_BATCH_LIMIT, None)
    );
    assert_eq!((cfg.cors, cfg.host_whitelist), (vec!["*".to_string()], vec!["*".to_string()]));
    assert_eq!(cfg.log_outputs, [LogOutput::Stderr]);
    assert!(cfg.listen_metrics_urls.is_empty());
    assert_eq!(cfg.metrics, oxetcd_v3rpc::MetricsLevel::Basic);
    assert_eq!((cfg.client_tls, cfg.peer_tls), (TlsInfo::default(), TlsInfo::default()));
    assert_eq!(cfg.tls_options, TlsOptions::default());
}

#[test]
fn deprecated_logging_flags_behave_as_in_etcd_3_4() {
    let (result, notices) = resolve(&["--debug"], &[]);
    assert_eq!(result.unwrap().log_level, LogLevel::Debug);
    assert!(notices.iter().any(|n| n.contains("deprecated --debug")), "{notices:?}");
    let (result, notices) = resolve(&["--logger=capnslog"], &[]);
    assert_eq!(result.unwrap().logger, Logger::Text);
    assert!(notices.iter().any(|n| n.contains("'--logger=capnslog'")), "{notices:?}");
    assert_eq!(parse(&["--log-format=console"]).unwrap().logger, Logger::Text);
    let (result, notices) = resolve(&["--log-output=stdout"], &[]);
    assert_eq!(result.unwrap().log_outputs, [LogOutput::Stdout]);
    assert!(notices.iter().any(|n| n.contains("deprecated")), "{notices:?}");
    assert!(parse(&["--log-output=stdout", "--log-outputs=stderr"]).is_err());
    let err = parse(&["--log-outputs=default,stdout"]).unwrap_err();
    assert_eq!(err.to_string(), "multi logoutput for \"default\" is not supported yet");
    assert!(parse(&["--log-outputs=systemd/journal"]).is_err());
}

#[test]
fn tls_versions_and_feature_gates_follow_etcd_3_5_and_3_6() {
    let err = parse(&["--tls-min-version=TLS1.3", "--tls-max-version=TLS1.2"]).unwrap_err();
    assert_eq!(err.to_string(), "min version (TLS1.3) is greater than max version (TLS1.2)");
    let err = parse(&["--tls-min-version=TLS1.3", "--cipher-suites=X"]).unwrap_err();
    assert_eq!(err.to_string(), "cipher suites cannot be configured when only TLS1.3 is enabled");
    assert!(Flags::try_parse_from(["oxetcd", "--tls-min-version=TLS1.1"]).is_err());
    assert!(parse(&["--feature-gates="]).is_ok());
    let err = parse(&["--feature-gates=StopGRPCServiceOnDefrag=true"]).unwrap_err();
    assert!(matches!(err, ConfigError::Unsupported { flag: "feature-gates", .. }), "{err}");
    let err = parse(&["--experimental-enable-lease-checkpoint-persist"]).unwrap_err();
    assert!(err.to_string().contains("requires experimental-enable-lease-checkpoint"), "{err}");
}

#[test]
fn command_line_errors_are_plain_text() {
    let err = Flags::try_parse_from(["oxetcd", "--foo"]).unwrap_err();
    let text = command_line_error(&err);
    assert_eq!(text, "unexpected argument '--foo' found\nSee 'oxetcd --help'.");
    assert!(!text.contains('\u{1b}'));
}
