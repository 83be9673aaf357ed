//! The settings a member runs with, already checked. Where they come from (flags,
//! `ETCD_*` variables, a YAML file) is the binary's business, not the server's.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::membership::InitialMember;

/// `--backend-batch-interval`'s default: the store's own.
pub const DEFAULT_BACKEND_BATCH_INTERVAL: Duration = oxetcd_mvcc::store::DEFAULT_BATCH_INTERVAL;
/// `--backend-batch-limit`'s default: the store's own.
pub const DEFAULT_BACKEND_BATCH_LIMIT: usize = oxetcd_mvcc::store::DEFAULT_BATCH_LIMIT;

/// etcd's interval between checkpoints of one lease (3.4 has no flag for it).
pub const DEFAULT_LEASE_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// `--initial-cluster-state`: whether this member starts a new cluster or joins one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitialClusterState {
    New,
    Existing,
}

/// The checked configuration the server runs with.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub name: String,
    pub data_dir: PathBuf,
    pub advertise_client_urls: Vec<String>,
    pub initial_advertise_peer_urls: Vec<String>,
    pub initial_cluster: Vec<InitialMember>,
    pub initial_cluster_state: InitialClusterState,
    pub initial_cluster_token: String,
    pub heartbeat: Duration,
    pub election_ticks: usize,
    pub snapshot_count: u64,
    pub snapshot_catchup_entries: u64,
    pub max_snapshots: usize,
    pub max_wals: usize,
    /// `--quota-backend-bytes` as given (0: etcd's default of 2 GiB; negative: none).
    pub quota_backend_bytes: i64,
    pub max_request_bytes: usize,
    pub max_txn_ops: usize,
    /// How often a watcher that asked for progress notifications gets one when idle.
    pub watch_progress_notify_interval: Duration,
    /// Whether the leader checkpoints leases' remaining TTLs through the log.
    pub enable_lease_checkpoint: bool,
    /// The wait between two checkpoints of a lease. Not a flag (etcd 3.4 has none): the
    /// default is etcd's, and tests shorten it.
    pub lease_checkpoint_interval: Duration,
    /// `--wal-dir`: where the WAL lives when not under the data dir.
    pub wal_dir: Option<PathBuf>,
    /// `--pre-vote`: a candidate first asks whether it could win, so a member rejoining
    /// after a partition does not depose a working leader.
    pub pre_vote: bool,
    /// `--initial-election-tick-advance`: a starting member's first election comes after
    /// a tick or two instead of a whole election timeout.
    pub initial_election_tick_advance: bool,
    /// `--backend-batch-interval`: the longest a change waits in the store's buffer
    /// before its backend commit.
    pub backend_batch_interval: Duration,
    /// `--backend-batch-limit`: changes that trigger a backend commit at once.
    pub backend_batch_limit: usize,
    /// How this member dials other members' `https://` peer URLs (built from the
    /// `--peer-*` TLS flags); `None`: plaintext peer URLs only.
    pub peer_dial_tls: Option<Arc<rustls::ClientConfig>>,
    /// `--strict-reconfig-check`: refuse a membership change that would leave fewer
    /// started members than a quorum, or that this member cannot see a quorum through.
    pub strict_reconfig_check: bool,
    /// `--force-new-cluster`: a member restarting from its data dir drops the WAL's
    /// uncommitted entries and commits the removal of every other member it knows,
    /// starting as a one-member cluster with all its data (etcd's disaster recovery).
    /// No effect on a data dir without a WAL.
    pub force_new_cluster: bool,
    /// `--auth-token`: simple tokens or JWTs, and the JWT keys.
    pub auth_token: oxetcd_auth::TokenSpec,
    /// `--auth-token-ttl`: how long a simple token lives after its last use.
    pub auth_token_ttl: Duration,
    /// `--bcrypt-cost`: what hashing a password costs.
    pub bcrypt_cost: u32,
    /// `--client-cert-auth`: a verified client certificate's common name authenticates
    /// a request that carries no token.
    pub client_cert_auth: bool,
    /// How this member dials the leader's `https://` client URLs to forward lease
    /// keep-alives (built from the client TLS flags); `None`: plaintext only.
    pub client_dial_tls: Option<Arc<rustls::ClientConfig>>,
    /// Auto compaction, the compaction batch size and the corruption checks
    /// (`compactor.rs`, `corrupt.rs`).
    pub storage_policy: StoragePolicy,
}

/// `--experimental-compaction-batch-limit`'s default (etcd's, and the store's own).
pub const DEFAULT_COMPACTION_BATCH_LIMIT: usize =
    oxetcd_mvcc::store::DEFAULT_COMPACTION_BATCH_LIMIT;
/// `--experimental-compact-hash-check-time`'s default (etcd 3.5's, embed/config.go).
pub const DEFAULT_COMPACT_HASH_CHECK_TIME: Duration = Duration::from_secs(60);

/// How the store's history is kept short and its consistency with peers checked.
/// The default is etcd's: no auto compaction, no checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoragePolicy {
    /// `--auto-compaction-mode` and `--auto-compaction-retention`; `None` with a zero
    /// retention (etcd's default: no auto compaction).
    pub auto_compaction: Option<crate::compactor::AutoCompaction>,
    /// `--experimental-compaction-batch-limit`: rows a compaction deletes per backend
    /// commit, so a compaction never holds writers back longer than one batch.
    pub compaction_batch_limit: usize,
    /// `--experimental-initial-corrupt-check`: a restarting member compares its HashKV
    /// with its peers' before it serves clients, and refuses to start on a mismatch.
    pub initial_corrupt_check: bool,
    /// `--experimental-corrupt-check-time`: how often the leader compares the members'
    /// HashKV (`None`: never, etcd's default `0s`).
    pub corrupt_check_time: Option<Duration>,
    /// `--experimental-compact-hash-check-enabled` with
    /// `--experimental-compact-hash-check-time` (etcd 3.5): how often the leader compares
    /// the members' hashes after compactions (`None`: disabled, etcd's default).
    pub compact_hash_check_time: Option<Duration>,
}

impl Default for StoragePolicy {
    fn default() -> Self {
        StoragePolicy {
            auto_compaction: None,
            compaction_batch_limit: DEFAULT_COMPACTION_BATCH_LIMIT,
            initial_corrupt_check: false,
            corrupt_check_time: None,
            compact_hash_check_time: None,
        }
    }
}

impl ServerConfig {
    /// etcd's request timeout: 5 s plus two election timeouts.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(5) + 2 * self.heartbeat * self.election_ticks as u32
    }
}
