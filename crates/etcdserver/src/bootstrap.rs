//! Opening a member's data dir: a new member writes its WAL and the bootstrap
//! configuration entries; a restarting one reads back its snapshot and WAL and ignores
//! the `--initial-*` flags, as etcd does.
//!
//! A member joining a running cluster (`--initial-cluster-state existing`, no WAL yet)
//! takes one step before that, [`join_existing`], which is asynchronous because it asks
//! the running members over the network: it fetches their membership, checks that this
//! member was added with its peer URLs (etcd's `ValidateClusterAndAssignIDs`), and
//! writes a WAL holding only the member and cluster ids it found. The member then
//! starts like a restart with an empty log and no peers: the leader's appends or
//! snapshot bring the log and, with it, the membership.
//!
//! Layout (etcd's): `<data-dir>/member/wal/*.wal`, `<data-dir>/member/snap/*.snap`, and
//! the backend at `<data-dir>/member/snap/db`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use oxetcd_api::etcdserverpb::Member;
use oxetcd_api::oxetcdpb::{ClusterState, MembersResponse, Metadata};
use oxetcd_raft::{ConfChange, ConfChangeType, ConfState, Entry, EntryType, HardState, MemStorage};
use oxetcd_transport::{FetchError, FetchOptions};
use oxetcd_wal::{Snapshotter, Wal, WalError, WalOptions, WalSnapshot};
use prost::Message;

use crate::config::{InitialClusterState, ServerConfig};
use crate::id::Hex;
use crate::membership::{InitialMember, Membership};

/// Why a member could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Wal(#[from] WalError),
    #[error("couldn't find local name {0:?} in the initial cluster configuration")]
    NameNotInInitialCluster(String),
    #[error(
        "--initial-cluster has {name}={cluster:?} but missing from --initial-advertise-peer-urls={advertised:?}"
    )]
    PeerUrlMismatch { name: String, cluster: Vec<String>, advertised: Vec<String> },
    /// `--initial-cluster-state existing` without a WAL reached the synchronous start:
    /// [`join_existing`] must run first.
    #[error(
        "joining an existing cluster (--initial-cluster-state existing) needs its membership fetched first"
    )]
    JoinExisting,
    #[error("initial cluster {0} has duplicate url")]
    DuplicateUrl(String),
    /// No running member listed in `--initial-cluster` answered with the membership.
    #[error("cannot fetch cluster info from peer urls: {0}")]
    FetchCluster(FetchError),
    /// The running cluster's membership does not match `--initial-cluster` (etcd's
    /// `ValidateClusterAndAssignIDs`): `cluster` is the fetched one, as etcd prints it.
    #[error("error validating peerURLs {cluster}: {reason}")]
    ValidateCluster { cluster: String, reason: String },
    #[error("member data is corrupt: {0}")]
    Corrupt(String),
    #[error("cannot open the backend at {path}: {error}")]
    Backend { path: PathBuf, error: oxetcd_mvcc::Error },
    #[error("cannot listen on {url}: {error}")]
    Listen { url: String, error: std::io::Error },
    #[error("raft: {0}")]
    Raft(#[from] oxetcd_raft::Error),
    #[error("cannot start the peer runtime: {0}")]
    Runtime(std::io::Error),
    /// The JWT keys of `--auth-token` cannot be used.
    #[error("{0}")]
    AuthToken(String),
}

pub(crate) struct Opened {
    pub storage: MemStorage,
    pub wal: Wal,
    pub snapshotter: Snapshotter,
    pub membership: Membership,
    pub conf_state: ConfState,
    pub member_id: u64,
    pub cluster_id: u64,
    /// Raft's applied index to start from: the snapshot's.
    pub applied: u64,
}

pub(crate) fn member_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("member")
}

pub(crate) fn backend_path(data_dir: &Path) -> PathBuf {
    member_dir(data_dir).join("snap").join("db")
}

fn wal_dir(cfg: &ServerConfig) -> PathBuf {
    cfg.wal_dir.clone().unwrap_or_else(|| member_dir(&cfg.data_dir).join("wal"))
}

fn has_wal(wal_dir: &Path) -> bool {
    std::fs::read_dir(wal_dir)
        .map(|mut d| d.any(|e| e.is_ok_and(|e| e.path().extension().is_some_and(|x| x == "wal"))))
        .unwrap_or(false)
}

pub(crate) fn open(cfg: &ServerConfig) -> Result<Opened, StartError> {
    let member = member_dir(&cfg.data_dir);
    let wal_dir = wal_dir(cfg);
    let snapshotter = Snapshotter::new(&member.join("snap"))?;
    if has_wal(&wal_dir) {
        restart(&wal_dir, snapshotter)
    } else {
        bootstrap_new(cfg, &wal_dir, snapshotter)
    }
}

fn restart(wal_dir: &Path, snapshotter: Snapshotter) -> Result<Opened, StartError> {
    let snapshot = match snapshotter.load_newest() {
        Ok(snapshot) => Some(snapshot),
        Err(WalError::NoSnapshot) => None,
        Err(e) => return Err(e.into()),
    };
    let meta = snapshot.as_ref().and_then(|s| s.metadata.clone()).unwrap_or_default();
    let marker =
        WalSnapshot { index: meta.index, term: meta.term, conf_state: meta.conf_state.clone() };
    let (wal, recovered) = Wal::open(wal_dir, &marker, WalOptions::default())?;
    let metadata = Metadata::decode(recovered.metadata)
        .map_err(|e| StartError::Corrupt(format!("wal metadata: {e}")))?;

    let mut storage = MemStorage::new();
    let mut membership = Membership::default();
    if let Some(snapshot) = snapshot {
        membership = Membership::from_state(
            ClusterState::decode(snapshot.data.clone())
                .map_err(|e| StartError::Corrupt(format!("snapshot: {e}")))?,
        );
        storage.apply_snapshot(snapshot)?;
        if let Some(version) = membership.cluster_version() {
            tracing::info!(cluster_version = %version, "enabled capabilities for version");
        }
    }
    let joining = meta.index == 0
        && recovered.entries.is_empty()
        && recovered.hard_state == HardState::default();
    storage.append(&recovered.entries);
    storage.set_hard_state(recovered.hard_state);
    if joining {
        // Written by `join_existing`: the log comes from the leader.
        tracing::info!(
            member = %Hex(metadata.node_id),
            cluster = %Hex(metadata.cluster_id),
            "starting local member"
        );
    } else {
        tracing::info!(
            member = %Hex(metadata.node_id),
            cluster = %Hex(metadata.cluster_id),
            commit_index = recovered.hard_state.commit,
            snapshot_index = meta.index,
            "restarting local member"
        );
    }
    Ok(Opened {
        storage,
        wal,
        snapshotter,
        membership,
        conf_state: meta.conf_state.unwrap_or_default(),
        member_id: metadata.node_id,
        cluster_id: metadata.cluster_id,
        applied: meta.index,
    })
}

fn bootstrap_new(
    cfg: &ServerConfig,
    wal_dir: &Path,
    snapshotter: Snapshotter,
) -> Result<Opened, StartError> {
    if cfg.initial_cluster_state == InitialClusterState::Existing {
        return Err(StartError::JoinExisting);
    }
    let local = cfg
        .initial_cluster
        .iter()
        .find(|m| m.name == cfg.name)
        .ok_or_else(|| StartError::NameNotInInitialCluster(cfg.name.clone()))?;
    let mut advertised = cfg.initial_advertise_peer_urls.clone();
    let mut listed = local.peer_urls.clone();
    advertised.sort();
    listed.sort();
    if advertised != listed {
        return Err(StartError::PeerUrlMismatch {
            name: local.name.clone(),
            cluster: listed,
            advertised,
        });
    }
    let initial = Membership::initial(&cfg.initial_cluster, &cfg.initial_cluster_token);
    let member_id = crate::id::member_id(&local.peer_urls, &cfg.initial_cluster_token, None);
    let cluster_id = initial.cluster_id();

    let mut wal = create_wal(wal_dir, Metadata { node_id: member_id, cluster_id })?;

    // Like etcd, the initial members enter the log as committed conf changes of term 1;
    // applying them builds the configuration, on first start and on every restart alike.
    let entries: Vec<Entry> = initial
        .members()
        .into_iter()
        .enumerate()
        .map(|(i, member)| bootstrap_entry(i as u64 + 1, member))
        .collect();
    let hard_state = HardState { term: 1, vote: 0, commit: entries.len() as u64 };
    wal.save(&hard_state, &entries, true)?;
    let mut storage = MemStorage::new();
    storage.append(&entries);
    storage.set_hard_state(hard_state);
    tracing::info!(member = %Hex(member_id), cluster = %Hex(cluster_id), "starting local member");
    Ok(Opened {
        storage,
        wal,
        snapshotter,
        membership: Membership::default(),
        conf_state: ConfState::default(),
        member_id,
        cluster_id,
        applied: 0,
    })
}

/// Creates the WAL holding `metadata`. It is created beside its final place and renamed
/// into it: the parent must exist (the member dir, or wherever `--wal-dir` points).
fn create_wal(wal_dir: &Path, metadata: Metadata) -> Result<Wal, StartError> {
    if let Some(parent) = wal_dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| {
            StartError::Wal(WalError::Io { path: wal_dir.to_path_buf(), source: e })
        })?;
    }
    Ok(Wal::create(wal_dir, metadata.encode_to_vec().into(), WalOptions::default())?)
}

/// How long a joining member keeps asking the running members for the membership,
/// over all its attempts (etcd gives each URL 10 s, once).
pub const JOIN_FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// The most one attempt at one URL may take.
const JOIN_FETCH_ATTEMPT: Duration = Duration::from_secs(5);
/// The pause between two rounds over the URLs, doubling up to a second.
const JOIN_FETCH_RETRY: Duration = Duration::from_millis(100);

/// The step before [`crate::EtcdServer::start`] for a member started with
/// `--initial-cluster-state existing`: without a WAL, it fetches the running cluster's
/// membership from the other members' peer URLs in `--initial-cluster` (dialing
/// `https` ones with `peer_dial_tls`), retrying for up to [`JOIN_FETCH_TIMEOUT`],
/// checks that this member was added with its URLs, and writes a WAL with the member
/// and cluster ids found there. Does nothing for a new cluster or when a WAL exists (a
/// restart ignores the flag, as in etcd).
pub async fn join_existing(cfg: &ServerConfig) -> Result<(), StartError> {
    let wal_dir = wal_dir(cfg);
    if cfg.initial_cluster_state != InitialClusterState::Existing || has_wal(&wal_dir) {
        return Ok(());
    }
    verify_join(cfg)?;
    let mut urls: Vec<String> = cfg
        .initial_cluster
        .iter()
        .filter(|m| m.name != cfg.name)
        .flat_map(|m| m.peer_urls.iter().cloned())
        .collect();
    urls.sort();
    tracing::info!(peers = ?urls, "fetching the running cluster's members");
    let options = FetchOptions { tls: cfg.peer_dial_tls.clone(), timeout: JOIN_FETCH_ATTEMPT };
    let existing = fetch_with_retries(&urls, options, JOIN_FETCH_TIMEOUT).await?;
    let member_id = validate_join(&cfg.initial_cluster, &cfg.name, &existing)?;
    let metadata = Metadata { node_id: member_id, cluster_id: existing.cluster_id };
    tracing::info!(
        member = %Hex(member_id),
        cluster = %Hex(existing.cluster_id),
        "joining the running cluster as an added member"
    );
    // Creating a WAL preallocates and fsyncs: off the async threads.
    tokio::task::spawn_blocking(move || create_wal(&wal_dir, metadata).map(drop))
        .await
        .map_err(|e| StartError::Corrupt(format!("creating the WAL: {e}")))?
}

/// Rounds over `urls` until one answers or `total` has passed.
async fn fetch_with_retries(
    urls: &[String],
    mut options: FetchOptions,
    total: Duration,
) -> Result<MembersResponse, StartError> {
    let deadline = Instant::now() + total;
    let mut pause = JOIN_FETCH_RETRY;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        options.timeout = options.timeout.min(left).max(Duration::from_millis(100));
        let error = match oxetcd_transport::fetch_members(urls, &options).await {
            Ok(members) => return Ok(members),
            Err(error) => error,
        };
        if Instant::now() + pause >= deadline {
            return Err(StartError::FetchCluster(error));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

/// etcd's checks of the flags of a joining member: its name is in `--initial-cluster`,
/// and no URL is listed twice.
fn verify_join(cfg: &ServerConfig) -> Result<(), StartError> {
    if !cfg.initial_cluster.iter().any(|m| m.name == cfg.name) {
        return Err(StartError::NameNotInInitialCluster(cfg.name.clone()));
    }
    let mut seen = BTreeSet::new();
    if cfg.initial_cluster.iter().flat_map(|m| &m.peer_urls).any(|url| !seen.insert(url)) {
        let listed: Vec<String> = cfg
            .initial_cluster
            .iter()
            .flat_map(|m| m.peer_urls.iter().map(move |u| format!("{}={u}", m.name)))
            .collect();
        return Err(StartError::DuplicateUrl(listed.join(",")));
    }
    Ok(())
}

/// etcd's `ValidateClusterAndAssignIDs`: `--initial-cluster` must list as many members
/// as the running cluster has, and every running member's peer URLs must be those of
/// one listed member, which takes that member's id. Returns the id this member (named
/// `name`) takes.
pub fn validate_join(
    initial: &[InitialMember],
    name: &str,
    existing: &MembersResponse,
) -> Result<u64, StartError> {
    let invalid = |reason: String| StartError::ValidateCluster {
        cluster: describe_cluster(existing),
        reason,
    };
    if existing.members.len() != initial.len() {
        return Err(invalid("member count is unequal".to_owned()));
    }
    let mut ids: Vec<Option<u64>> = vec![None; initial.len()];
    for member in &existing.members {
        let wanted = sorted(&member.peer_ur_ls);
        let Some(i) = initial.iter().position(|m| sorted(&m.peer_urls) == wanted) else {
            return Err(invalid(format!(
                "PeerURLs: no match found for existing member ({}, [{}]), last resolver error (<nil>)",
                Hex(member.id),
                member.peer_ur_ls.join(" ")
            )));
        };
        ids[i] = Some(member.id);
    }
    let local = initial
        .iter()
        .position(|m| m.name == name)
        .ok_or_else(|| StartError::NameNotInInitialCluster(name.to_owned()))?;
    ids[local].ok_or_else(|| {
        invalid(format!(
            "PeerURLs: no match found for local member ({name}, [{}])",
            initial[local].peer_urls.join(" ")
        ))
    })
}

fn sorted(urls: &[String]) -> Vec<&str> {
    let mut urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    urls.sort_unstable();
    urls
}

/// A fetched cluster as etcd prints one (its `RaftCluster.String()`), members in id
/// order.
fn describe_cluster(cluster: &MembersResponse) -> String {
    let members: Vec<String> = cluster
        .members
        .iter()
        .map(|m| {
            format!(
                "&{{ID:{} RaftAttributes:{{PeerURLs:[{}] IsLearner:{}}} Attributes:{{Name:{} ClientURLs:[{}]}}}}",
                Hex(m.id),
                m.peer_ur_ls.join(" "),
                m.is_learner,
                m.name,
                m.client_ur_ls.join(" ")
            )
        })
        .collect();
    format!(
        "{{ClusterID:{} Members:[{}] RemovedMemberIDs:[]}}",
        Hex(cluster.cluster_id),
        members.join(" ")
    )
}

fn bootstrap_entry(index: u64, member: Member) -> Entry {
    let cc = ConfChange {
        id: 0,
        change_type: ConfChangeType::ConfChangeAddNode as i32,
        node_id: member.id,
        context: member.encode_to_vec().into(),
    };
    Entry {
        term: 1,
        index,
        entry_type: EntryType::EntryConfChange as i32,
        data: cc.encode_to_vec().into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn initial(list: &[(&str, &str)]) -> Vec<InitialMember> {
        list.iter()
            .map(|(name, url)| InitialMember {
                name: name.to_string(),
                peer_urls: vec![url.to_string()],
            })
            .collect()
    }

    fn member(id: u64, name: &str, url: &str) -> Member {
        Member {
            id,
            name: name.into(),
            peer_ur_ls: vec![url.into()],
            client_ur_ls: if name.is_empty() { vec![] } else { vec![format!("{url}9")] },
            is_learner: false,
        }
    }

    /// A running cluster of a, b, and c (added, not started yet: no name).
    fn running() -> MembersResponse {
        MembersResponse {
            cluster_id: 0xc1,
            members: vec![
                member(0xa, "a", "http://10.0.0.1:2380"),
                member(0xb, "b", "http://10.0.0.2:2380"),
                member(0xc, "", "http://10.0.0.3:2380"),
            ],
        }
    }

    #[test]
    fn an_added_member_takes_its_id_from_the_running_cluster() {
        let listed = initial(&[
            ("c", "http://10.0.0.3:2380"),
            ("a", "http://10.0.0.1:2380"),
            ("b", "http://10.0.0.2:2380"),
        ]);
        assert_eq!(validate_join(&listed, "c", &running()).unwrap(), 0xc);
        // Any listed member's name finds its id the same way.
        assert_eq!(validate_join(&listed, "a", &running()).unwrap(), 0xa);
    }

    #[test]
    fn several_urls_match_in_any_order() {
        let mut cluster = running();
        cluster.members[2].peer_ur_ls =
            vec!["http://10.0.0.3:2380".into(), "http://10.0.1.3:2380".into()];
        let mut listed = initial(&[
            ("a", "http://10.0.0.1:2380"),
            ("b", "http://10.0.0.2:2380"),
            ("c", "http://10.0.1.3:2380"),
        ]);
        listed[2].peer_urls.push("http://10.0.0.3:2380".into());
        assert_eq!(validate_join(&listed, "c", &cluster).unwrap(), 0xc);
    }

    #[test]
    fn a_member_count_other_than_the_cluster_s_is_refused() {
        // Not added yet: the cluster has two members, the flag lists three.
        let cluster =
            MembersResponse { cluster_id: 0xc1, members: running().members[..2].to_vec() };
        let listed = initial(&[
            ("a", "http://10.0.0.1:2380"),
            ("b", "http://10.0.0.2:2380"),
            ("c", "http://10.0.0.3:2380"),
        ]);
        let err = validate_join(&listed, "c", &cluster).unwrap_err().to_string();
        assert!(
            err.starts_with("error validating peerURLs {ClusterID:c1 Members:[&{ID:a "),
            "{err}"
        );
        assert!(err.ends_with("RemovedMemberIDs:[]}: member count is unequal"), "{err}");
    }

    #[test]
    fn a_running_member_missing_from_the_flag_is_refused() {
        let listed = initial(&[
            ("a", "http://10.0.0.1:2380"),
            ("b", "http://10.0.0.2:2380"),
            ("c", "http://10.0.0.4:2380"),
        ]);
        let err = validate_join(&listed, "c", &running()).unwrap_err().to_string();
        assert!(
            err.ends_with(
                ": PeerURLs: no match found for existing member (c, [http://10.0.0.3:2380]), last resolver error (<nil>)"
            ),
            "{err}"
        );
    }

    #[test]
    fn the_fetched_cluster_is_printed_as_etcd_prints_it() {
        let cluster =
            MembersResponse { cluster_id: 0xc1, members: running().members[..1].to_vec() };
        assert_eq!(
            describe_cluster(&cluster),
            "{ClusterID:c1 Members:[&{ID:a RaftAttributes:{PeerURLs:[http://10.0.0.1:2380] IsLearner:false} \
             Attributes:{Name:a ClientURLs:[http://10.0.0.1:23809]}}] RemovedMemberIDs:[]}"
        );
    }

    fn join_config(dir: &Path, listed: Vec<InitialMember>) -> ServerConfig {
        ServerConfig {
            name: "c".into(),
            data_dir: dir.to_path_buf(),
            advertise_client_urls: vec![],
            initial_advertise_peer_urls: vec![],
            initial_cluster: listed,
            initial_cluster_state: InitialClusterState::Existing,
            initial_cluster_token: "etcd-cluster".into(),
            heartbeat: Duration::from_millis(100),
            election_ticks: 10,
            snapshot_count: 100_000,
            snapshot_catchup_entries: 5000,
            max_snapshots: 5,
            max_wals: 5,
            quota_backend_bytes: 0,
            max_request_bytes: 1 << 20,
            max_txn_ops: 128,
            watch_progress_notify_interval: Duration::from_secs(600),
            enable_lease_checkpoint: false,
            lease_checkpoint_interval: Duration::from_secs(300),
            wal_dir: None,
            pre_vote: false,
            initial_election_tick_advance: true,
            backend_batch_interval: Duration::from_millis(100),
            backend_batch_limit: 10_000,
            peer_dial_tls: None,
            auth_token: oxetcd_auth::TokenSpec::Simple,
            auth_token_ttl: Duration::from_secs(300),
            bcrypt_cost: 4,
            client_cert_auth: false,
            client_dial_tls: None,
            strict_reconfig_check: true,
        }
    }

    #[tokio::test]
    async fn the_flags_are_checked_before_anything_is_asked() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = join_config(dir.path(), initial(&[("a", "http://10.0.0.1:2380")]));
        let err = join_existing(&cfg).await.unwrap_err().to_string();
        assert_eq!(err, "couldn't find local name \"c\" in the initial cluster configuration");
        let cfg = join_config(
            dir.path(),
            initial(&[("a", "http://10.0.0.1:2380"), ("c", "http://10.0.0.1:2380")]),
        );
        let err = join_existing(&cfg).await.unwrap_err().to_string();
        assert_eq!(
            err,
            "initial cluster a=http://10.0.0.1:2380,c=http://10.0.0.1:2380 has duplicate url"
        );
        assert!(!has_wal(&wal_dir(&cfg)), "nothing is written");
    }

    #[tokio::test]
    async fn nothing_is_asked_with_a_wal_or_for_a_new_cluster() {
        let dir = tempfile::tempdir().unwrap();
        // Nobody listens there: asking would fail.
        let listed = initial(&[("a", "http://127.0.0.1:1"), ("c", "http://127.0.0.1:2")]);
        let mut cfg = join_config(dir.path(), listed);
        cfg.initial_cluster_state = InitialClusterState::New;
        join_existing(&cfg).await.unwrap();
        cfg.initial_cluster_state = InitialClusterState::Existing;
        drop(create_wal(&wal_dir(&cfg), Metadata { node_id: 1, cluster_id: 2 }).unwrap());
        join_existing(&cfg).await.unwrap();
    }

    #[test]
    fn a_joined_member_restarts_from_its_ids_with_an_empty_log() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = join_config(dir.path(), initial(&[("c", "http://10.0.0.3:2380")]));
        drop(create_wal(&wal_dir(&cfg), Metadata { node_id: 0xc, cluster_id: 0xc1 }).unwrap());
        let opened = open(&cfg).unwrap();
        assert_eq!((opened.member_id, opened.cluster_id, opened.applied), (0xc, 0xc1, 0));
        assert!(opened.membership.members().is_empty());
        assert_eq!(opened.conf_state, ConfState::default());
        use oxetcd_raft::Storage;
        assert_eq!(opened.storage.last_index().unwrap(), 0);
    }
}
