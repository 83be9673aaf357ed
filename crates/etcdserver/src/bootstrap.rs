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
//! With `--force-new-cluster`, a restart turns the member into a one-member cluster
//! (etcd's disaster recovery, [`force_standalone`]): the WAL's uncommitted entries are
//! dropped, and committed conf changes removing every other member the snapshot and the
//! log know of are appended and saved. The apply thread then removes them like any
//! removal, raft's configuration follows, and the member elects itself.
//!
//! Layout (etcd's): `<data-dir>/member/wal/*.wal`, `<data-dir>/member/snap/*.snap`, and
//! the backend at `<data-dir>/member/snap/db`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use oxetcd_api::etcdserverpb::Member;
use oxetcd_api::oxetcdpb::{MembersResponse, Metadata};
use oxetcd_mvcc::etcd_file::{self, BackendFormat};
use oxetcd_raft::{
    ConfChange, ConfChangeType, ConfState, Entry, EntryType, HardState, MemStorage, Snapshot,
};
use oxetcd_transport::{FetchError, FetchOptions};
use oxetcd_wal::{Snapshotter, Wal, WalError, WalOptions, WalSnapshot};
use prost::Message;

use crate::config::{InitialClusterState, ServerConfig};
use crate::etcd_encoding;
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
    /// `--force-new-cluster` on a learner's data dir: a learner cannot vote, so it
    /// cannot be a cluster on its own.
    #[error(
        "--force-new-cluster: member {0} is a learner; only a voting member can become a one-member cluster"
    )]
    ForceNewClusterLearner(String),
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
    /// The term of the snapshot's index.
    pub applied_term: u64,
}

pub(crate) fn member_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("member")
}

pub(crate) fn backend_path(data_dir: &Path) -> PathBuf {
    member_dir(data_dir).join("snap").join("db")
}

/// Where etcd's backend (bbolt) found in a data dir is kept once converted
/// (`member/snap/db.etcd`), so that the move can be undone: it is the file as etcd left
/// it, and knows nothing of what the member does after the conversion.
pub fn etcd_backend_path(data_dir: &Path) -> PathBuf {
    member_dir(data_dir).join("snap").join("db.etcd")
}

/// Converts the data dir's backend to oxetcd's format if etcd wrote it (a member started
/// on etcd's data dir, or on one `etcdctl snapshot restore` made), keeping etcd's file at
/// [`etcd_backend_path`]. Whether it did.
pub(crate) fn convert_etcd_backend(data_dir: &Path) -> Result<bool, StartError> {
    let backend = backend_path(data_dir);
    if !backend.exists() {
        return Ok(false);
    }
    let failed = |error| StartError::Backend { path: backend.clone(), error };
    if etcd_file::detect_format(&backend).map_err(failed)? != BackendFormat::Bbolt {
        return Ok(false);
    }
    let kept = etcd_backend_path(data_dir);
    tracing::info!(
        path = %backend.display(),
        kept_at = %kept.display(),
        "converting etcd's backend (bbolt) to oxetcd's"
    );
    let started = std::time::Instant::now();
    let converted = etcd_file::convert_in_place(&backend, Some(&kept), |bucket, keys| {
        tracing::info!(bucket, keys, "converted bucket");
    })
    .map_err(failed)?;
    if let Some(imported) = converted {
        tracing::info!(
            buckets = imported.tables,
            keys = imported.rows,
            size_bytes = imported.bytes,
            took = ?started.elapsed(),
            "converted etcd's backend"
        );
    }
    Ok(true)
}

pub(crate) fn wal_dir(cfg: &ServerConfig) -> PathBuf {
    cfg.wal_dir.clone().unwrap_or_else(|| member_dir(&cfg.data_dir).join("wal"))
}

pub(crate) fn has_wal(wal_dir: &Path) -> bool {
    std::fs::read_dir(wal_dir)
        .map(|mut d| d.any(|e| e.is_ok_and(|e| e.path().extension().is_some_and(|x| x == "wal"))))
        .unwrap_or(false)
}

pub(crate) fn open(cfg: &ServerConfig) -> Result<Opened, StartError> {
    let member = member_dir(&cfg.data_dir);
    let wal_dir = wal_dir(cfg);
    let snapshotter = Snapshotter::new(&member.join("snap"))?;
    if has_wal(&wal_dir) {
        restart(cfg, &wal_dir, snapshotter)
    } else {
        bootstrap_new(cfg, &wal_dir, snapshotter)
    }
}

fn restart(
    cfg: &ServerConfig,
    wal_dir: &Path,
    snapshotter: Snapshotter,
) -> Result<Opened, StartError> {
    // The raft loop writes a snapshot's file before its WAL record (as etcd does): a
    // member stopped between the two has a newest file its WAL knows nothing of. It
    // starts from the newest snapshot the WAL has a record of (etcd's
    // `LoadNewestAvailable`), or from the WAL's beginning if none; the entries after it
    // are all in the WAL, which is purged only after a record is written.
    let mut candidates: Vec<Option<Snapshot>> =
        snapshotter.load_all()?.into_iter().map(Some).collect();
    candidates.push(None);
    let mut first_error = None;
    let mut found = None;
    for snapshot in candidates {
        let meta = snapshot.as_ref().and_then(|s| s.metadata.clone()).unwrap_or_default();
        let marker =
            WalSnapshot { index: meta.index, term: meta.term, conf_state: meta.conf_state.clone() };
        match Wal::open(wal_dir, &marker, WalOptions::default()) {
            Ok(opened) => {
                found = Some((snapshot, meta, opened));
                break;
            }
            Err(e @ WalError::SnapshotNotFound { .. }) => {
                if snapshot.is_some() {
                    tracing::warn!(
                        index = meta.index,
                        term = meta.term,
                        "snapshot file without its WAL record (the member stopped between writing the two); trying an older one"
                    );
                }
                first_error.get_or_insert(e);
            }
            Err(e) => return Err(e.into()),
        }
    }
    let Some((snapshot, meta, (mut wal, recovered))) = found else {
        return Err(first_error.expect("a candidate was tried").into());
    };
    let metadata = Metadata::decode(recovered.metadata)
        .map_err(|e| StartError::Corrupt(format!("wal metadata: {e}")))?;
    let (member_id, cluster_id) = (metadata.node_id, metadata.cluster_id);

    let mut storage = MemStorage::new();
    let mut membership = Membership::default();
    if let Some(snapshot) = snapshot {
        membership = Membership::from_state(
            etcd_encoding::decode_snapshot_state(snapshot.data.clone())
                .map_err(|e| StartError::Corrupt(format!("snapshot: {e}")))?,
        );
        storage.apply_snapshot(snapshot)?;
        membership.announce_recovered_version();
    }
    let joining = meta.index == 0
        && recovered.entries.is_empty()
        && recovered.hard_state == HardState::default();
    let (mut entries, mut hard_state) = (recovered.entries, recovered.hard_state);
    if cfg.force_new_cluster {
        let local = Member {
            id: member_id,
            peer_ur_ls: cfg.initial_advertise_peer_urls.clone(),
            ..Default::default()
        };
        let conf_state = meta.conf_state.clone().unwrap_or_default();
        let forced = force_standalone(&conf_state, meta.index, entries, hard_state, local)?;
        if let Some(first) = forced.discarded_from {
            tracing::info!(
                entry_index = first,
                commit_index_from_wal = hard_state.commit,
                number_of_discarded_entries = forced.discarded,
                "discarding uncommitted WAL entries"
            );
        }
        // Saved (and synced) before raft sees them: the removals are committed for good,
        // and a later restart without the flag finds the one-member cluster.
        wal.save(&forced.hard_state, &forced.appended, true)?;
        (entries, hard_state) = (forced.entries, forced.hard_state);
        tracing::info!(
            cluster = %Hex(cluster_id),
            member = %Hex(member_id),
            commit_index = hard_state.commit,
            removed_members = forced.appended.len(),
            "forcing restart member"
        );
    } else if joining {
        // Written by `join_existing`: the log comes from the leader.
        tracing::info!(member = %Hex(member_id), cluster = %Hex(cluster_id), "starting local member");
    } else {
        tracing::info!(
            member = %Hex(member_id),
            cluster = %Hex(cluster_id),
            commit_index = hard_state.commit,
            snapshot_index = meta.index,
            "restarting local member"
        );
    }
    storage.append(&entries);
    storage.set_hard_state(hard_state);
    Ok(Opened {
        storage,
        wal,
        snapshotter,
        membership,
        conf_state: meta.conf_state.unwrap_or_default(),
        member_id,
        cluster_id,
        applied: meta.index,
        applied_term: meta.term,
    })
}

/// A restarting member's log made into a one-member cluster's (`--force-new-cluster`).
#[derive(Debug)]
struct Standalone {
    /// The log after the snapshot: the committed entries, then `appended`.
    entries: Vec<Entry>,
    /// The conf changes that make this member the only one, committed.
    appended: Vec<Entry>,
    /// The hard state committing all of `entries`.
    hard_state: HardState,
    /// The index of the first uncommitted entry dropped, if any.
    discarded_from: Option<u64>,
    /// How many uncommitted entries were dropped.
    discarded: usize,
}

/// etcd's `restartAsStandaloneNode`: drops the entries after the commit index, then
/// appends, in the last term and committed, a ConfChange removing each member other than
/// `local` that the snapshot's configuration (`conf_state`, at `snapshot_index`) and the
/// kept conf changes know of, in id order. A member that knows itself not at all (an
/// empty log) adds itself first, so the configuration never loses its last voter. A
/// learner cannot be the one member left: it is refused.
fn force_standalone(
    conf_state: &ConfState,
    snapshot_index: u64,
    mut entries: Vec<Entry>,
    hard_state: HardState,
    local: Member,
) -> Result<Standalone, StartError> {
    // The snapshot is committed even if the hard state has not caught up with it.
    let commit = hard_state.commit.max(snapshot_index);
    let kept = entries.partition_point(|e| e.index <= commit);
    let discarded = entries.len() - kept;
    let discarded_from = entries.get(kept).map(|e| e.index);
    entries.truncate(kept);

    let known = known_members(conf_state, &entries);
    let term = hard_state.term.max(1);
    let mut next = entries.last().map_or(commit, |e| e.index) + 1;
    let mut appended = Vec::new();
    let mut push = |change_type: ConfChangeType, node_id: u64, context: Bytes| {
        let cc = ConfChange { id: 0, change_type: change_type as i32, node_id, context };
        appended.push(Entry {
            term,
            index: next,
            entry_type: EntryType::EntryConfChange as i32,
            data: cc.encode_to_vec().into(),
        });
        next += 1;
    };
    match known.get(&local.id) {
        Some(true) => {
            return Err(StartError::ForceNewClusterLearner(Hex(local.id).to_string()));
        }
        Some(false) => {}
        None => push(ConfChangeType::ConfChangeAddNode, local.id, local.encode_to_vec().into()),
    }
    for &id in known.keys().filter(|&&id| id != local.id) {
        push(ConfChangeType::ConfChangeRemoveNode, id, Bytes::new());
    }
    entries.extend_from_slice(&appended);
    let hard_state = HardState {
        term,
        vote: hard_state.vote,
        commit: entries.last().map_or(commit, |e| e.index),
    };
    Ok(Standalone { entries, appended, hard_state, discarded_from, discarded })
}

/// The members a snapshot's configuration and the conf changes after it leave, each
/// with whether it is a learner (etcd's `getIDs`, learners included). Read as the apply
/// thread reads the changes: one it cannot decode is skipped, and an add of a member
/// already there changes nothing.
fn known_members(conf_state: &ConfState, entries: &[Entry]) -> BTreeMap<u64, bool> {
    let mut known: BTreeMap<u64, bool> = conf_state.voters.iter().map(|&id| (id, false)).collect();
    known.extend(conf_state.learners.iter().map(|&id| (id, true)));
    for entry in entries.iter().filter(|e| e.entry_type == EntryType::EntryConfChange as i32) {
        let Ok(cc) = etcd_encoding::decode_conf_change(entry.data.clone()) else { continue };
        match ConfChangeType::try_from(cc.change_type) {
            // A promotion names no member: it applies only to a member already there.
            Ok(ConfChangeType::ConfChangeAddNode) if cc.context.is_empty() => {
                if let Some(learner) = known.get_mut(&cc.node_id) {
                    *learner = false;
                }
            }
            Ok(ConfChangeType::ConfChangeAddNode) => {
                known.entry(cc.node_id).or_insert(false);
            }
            Ok(ConfChangeType::ConfChangeAddLearnerNode) => {
                known.entry(cc.node_id).or_insert(true);
            }
            Ok(ConfChangeType::ConfChangeRemoveNode) => {
                known.remove(&cc.node_id);
            }
            Ok(ConfChangeType::ConfChangeUpdateNode) | Err(_) => {}
        }
    }
    known
}

fn bootstrap_new(
    cfg: &ServerConfig,
    wal_dir: &Path,
    snapshotter: Snapshotter,
) -> Result<Opened, StartError> {
    if cfg.initial_cluster_state == InitialClusterState::Existing {
        return Err(StartError::JoinExisting);
    }
    let local = local_member(&cfg.initial_cluster, &cfg.name, &cfg.initial_advertise_peer_urls)?;
    let initial = Membership::initial(&cfg.initial_cluster, &cfg.initial_cluster_token);
    let member_id = crate::id::member_id(&local.peer_urls, &cfg.initial_cluster_token, None);
    let cluster_id = initial.cluster_id();

    let mut wal = create_wal(wal_dir, Metadata { node_id: member_id, cluster_id })?;
    let (entries, hard_state) = bootstrap_log(initial.members());
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
        applied_term: 0,
    })
}

/// The member named `name` in `--initial-cluster`, whose peer URLs there must be the
/// advertised ones, in any order (etcd's `VerifyBootstrap`).
fn local_member<'a>(
    initial: &'a [InitialMember],
    name: &str,
    advertised: &[String],
) -> Result<&'a InitialMember, StartError> {
    let local = initial
        .iter()
        .find(|m| m.name == name)
        .ok_or_else(|| StartError::NameNotInInitialCluster(name.to_owned()))?;
    let mut advertised = advertised.to_vec();
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
    Ok(local)
}

/// A new cluster's log, as etcd writes it: the initial members (in id order) enter it as
/// committed conf changes of term 1; applying them builds the configuration, on first
/// start and on every restart alike.
fn bootstrap_log(members: Vec<Member>) -> (Vec<Entry>, HardState) {
    let entries: Vec<Entry> = members
        .into_iter()
        .enumerate()
        .map(|(i, member)| bootstrap_entry(i as u64 + 1, member))
        .collect();
    let hard_state = HardState { term: 1, vote: 0, commit: entries.len() as u64 };
    (entries, hard_state)
}

/// A member of a new cluster made from a snapshot (`oxetcdutl snapshot restore`, etcd's
/// `snapshot restore`): who it is, and the raft position its WAL ends at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoredMember {
    pub member_id: u64,
    /// The new cluster's id, derived from its members' ids as for any new cluster.
    pub cluster_id: u64,
    /// The new cluster's members, in id order (no client URLs: each member publishes
    /// its own once it runs).
    pub members: Vec<Member>,
    /// The index and term of the last bootstrap entry: the restored backend's consistent
    /// index must be this position, so that the store skips the bootstrap entries and
    /// applies every entry of the new cluster's log after them.
    pub index: u64,
    pub term: u64,
}

/// Checks the flags of a restore as a new member's are checked (the local member is
/// listed with the advertised peer URLs, no URL twice) and derives the new cluster's
/// ids from `--initial-cluster` and the token, as [`open`] does for a new member.
/// Nothing is written: the caller verifies the snapshot, then calls [`restore_member`].
pub fn plan_restore(
    name: &str,
    initial: &[InitialMember],
    token: &str,
    advertised: &[String],
) -> Result<RestoredMember, StartError> {
    check_duplicate_urls(initial)?;
    let local = local_member(initial, name, advertised)?;
    let membership = Membership::initial(initial, token);
    let members = membership.members();
    let (index, term) = (members.len() as u64, 1);
    Ok(RestoredMember {
        member_id: crate::id::member_id(&local.peer_urls, token, None),
        cluster_id: membership.cluster_id(),
        members,
        index,
        term,
    })
}

/// Writes the WAL of a restored member at `wal_dir` (which must not hold one): its
/// member and cluster ids, and the same committed bootstrap entries a new cluster's
/// member writes. A member started on it (with its backend beside it) restarts: it
/// replays those entries, builds the configuration, and elects a leader with the others.
pub fn restore_member(wal_dir: &Path, restored: &RestoredMember) -> Result<(), StartError> {
    let metadata = Metadata { node_id: restored.member_id, cluster_id: restored.cluster_id };
    let mut wal = create_wal(wal_dir, metadata)?;
    let (entries, hard_state) = bootstrap_log(restored.members.clone());
    debug_assert_eq!((hard_state.commit, hard_state.term), (restored.index, restored.term));
    wal.save(&hard_state, &entries, true)?;
    Ok(())
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
    check_duplicate_urls(&cfg.initial_cluster)
}

/// `--initial-cluster` lists no peer URL twice.
fn check_duplicate_urls(initial: &[InitialMember]) -> Result<(), StartError> {
    let mut seen = BTreeSet::new();
    if initial.iter().flat_map(|m| &m.peer_urls).any(|url| !seen.insert(url)) {
        let listed: Vec<String> = initial
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
            storage_policy: Default::default(),
            strict_reconfig_check: true,
            force_new_cluster: false,
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

    fn conf_change(index: u64, term: u64, change_type: ConfChangeType, node_id: u64) -> Entry {
        let context = match change_type {
            ConfChangeType::ConfChangeRemoveNode => Bytes::new(),
            _ => {
                member(node_id, "", &format!("http://10.0.0.{node_id}:2380")).encode_to_vec().into()
            }
        };
        let cc = ConfChange { id: 0, change_type: change_type as i32, node_id, context };
        Entry {
            term,
            index,
            entry_type: EntryType::EntryConfChange as i32,
            data: cc.encode_to_vec().into(),
        }
    }

    fn normal(index: u64, term: u64) -> Entry {
        Entry { term, index, data: Bytes::from_static(b"put"), ..Default::default() }
    }

    /// The conf changes of `entries`, as (type, node).
    fn changes(entries: &[Entry]) -> Vec<(ConfChangeType, u64)> {
        entries
            .iter()
            .filter(|e| e.entry_type == EntryType::EntryConfChange as i32)
            .map(|e| {
                let cc = ConfChange::decode(e.data.clone()).unwrap();
                (ConfChangeType::try_from(cc.change_type).unwrap(), cc.node_id)
            })
            .collect()
    }

    #[test]
    fn force_new_cluster_removes_the_others_known_from_the_snapshot_and_the_committed_log() {
        use ConfChangeType::*;
        // The snapshot at 10 has voters 1, 2 and 3.
        let conf_state = ConfState { voters: vec![1, 2, 3], ..Default::default() };
        let mut promotion = conf_change(14, 2, ConfChangeAddNode, 4);
        let mut cc = ConfChange::decode(promotion.data.clone()).unwrap();
        cc.context = Bytes::new();
        promotion.data = cc.encode_to_vec().into();
        let entries = vec![
            normal(11, 2),
            conf_change(12, 2, ConfChangeAddLearnerNode, 4),
            conf_change(13, 2, ConfChangeRemoveNode, 2),
            promotion,
            conf_change(15, 3, ConfChangeAddLearnerNode, 5),
            // Not committed: dropped, and member 6 is not known.
            normal(16, 3),
            conf_change(17, 3, ConfChangeAddNode, 6),
        ];
        let hard_state = HardState { term: 3, vote: 1, commit: 15 };
        let local = member(1, "a", "http://10.0.0.1:2380");
        let forced = force_standalone(&conf_state, 10, entries.clone(), hard_state, local).unwrap();

        assert_eq!((forced.discarded_from, forced.discarded), (Some(16), 2));
        // 2 was removed, 4 promoted, 5 is a learner: 3, 4 and 5 go, in id order, right
        // after the commit index, in the last term.
        assert_eq!(
            changes(&forced.appended),
            [(ConfChangeRemoveNode, 3), (ConfChangeRemoveNode, 4), (ConfChangeRemoveNode, 5)]
        );
        let at: Vec<(u64, u64)> = forced.appended.iter().map(|e| (e.index, e.term)).collect();
        assert_eq!(at, [(16, 3), (17, 3), (18, 3)]);
        assert_eq!(&forced.entries[..5], &entries[..5], "the committed entries are kept");
        assert_eq!(&forced.entries[5..], &forced.appended[..]);
        assert_eq!(forced.hard_state, HardState { term: 3, vote: 1, commit: 18 });
    }

    #[test]
    fn force_new_cluster_adds_a_member_that_knows_itself_not_and_refuses_a_learner() {
        use ConfChangeType::*;
        // An empty log (a joined member that never heard from the leader).
        let local = member(7, "", "http://10.0.0.7:2380");
        let forced =
            force_standalone(&ConfState::default(), 0, vec![], HardState::default(), local.clone())
                .unwrap();
        assert_eq!(changes(&forced.appended), [(ConfChangeAddNode, 7)]);
        let cc = ConfChange::decode(forced.appended[0].data.clone()).unwrap();
        assert_eq!(Member::decode(cc.context).unwrap(), local);
        assert_eq!((forced.appended[0].index, forced.appended[0].term), (1, 1));
        assert_eq!(forced.hard_state.commit, 1);
        assert_eq!(forced.discarded_from, None);

        // A committed add of this member as a learner.
        let entries = vec![conf_change(11, 2, ConfChangeAddLearnerNode, 7)];
        let conf_state = ConfState { voters: vec![1], ..Default::default() };
        let hard_state = HardState { term: 2, vote: 0, commit: 11 };
        let err = force_standalone(&conf_state, 10, entries, hard_state, local).unwrap_err();
        assert!(matches!(err, StartError::ForceNewClusterLearner(_)), "{err}");
    }

    #[test]
    fn a_restored_member_restarts_on_the_log_a_new_member_writes() {
        use oxetcd_raft::Storage;
        let listed = initial(&[
            ("a", "http://10.0.0.1:2380"),
            ("b", "http://10.0.0.2:2380"),
            ("c", "http://10.0.0.3:2380"),
        ]);
        let advertised = vec!["http://10.0.0.2:2380".to_string()];
        let restored = plan_restore("b", &listed, "tok", &advertised).unwrap();
        assert_eq!(restored.member_id, crate::id::member_id(&advertised, "tok", None));
        let ids: Vec<u64> = restored.members.iter().map(|m| m.id).collect();
        assert_eq!(restored.cluster_id, crate::id::cluster_id(&ids));
        assert_eq!((restored.index, restored.term), (3, 1));

        let restored_dir = tempfile::tempdir().unwrap();
        let mut cfg = join_config(restored_dir.path(), listed.clone());
        cfg.name = "b".into();
        cfg.initial_cluster_token = "tok".into();
        cfg.initial_cluster_state = InitialClusterState::New;
        cfg.initial_advertise_peer_urls = advertised.clone();
        restore_member(&wal_dir(&cfg), &restored).unwrap();
        let reopened = open(&cfg).unwrap();

        let fresh_dir = tempfile::tempdir().unwrap();
        let mut fresh_cfg = cfg.clone();
        fresh_cfg.data_dir = fresh_dir.path().to_path_buf();
        let fresh = open(&fresh_cfg).unwrap();
        assert_eq!((reopened.member_id, reopened.cluster_id), (fresh.member_id, fresh.cluster_id));
        assert_eq!(
            reopened.storage.entries(1, 4, u64::MAX).unwrap(),
            fresh.storage.entries(1, 4, u64::MAX).unwrap()
        );
        assert_eq!(reopened.storage.hard_state(), fresh.storage.hard_state());
        drop(reopened);
        let err = restore_member(&wal_dir(&cfg), &restored).unwrap_err();
        assert!(matches!(err, StartError::Wal(WalError::AlreadyExists(_))), "{err}");
    }

    #[test]
    fn a_restore_checks_its_flags_as_a_new_member_does() {
        let listed = initial(&[("a", "http://10.0.0.1:2380"), ("b", "http://10.0.0.1:2380")]);
        let err = plan_restore("a", &listed, "t", &["http://10.0.0.1:2380".into()]).unwrap_err();
        assert!(matches!(err, StartError::DuplicateUrl(_)), "{err}");
        let listed = initial(&[("a", "http://10.0.0.1:2380")]);
        let err = plan_restore("x", &listed, "t", &["http://10.0.0.1:2380".into()]).unwrap_err();
        assert!(matches!(err, StartError::NameNotInInitialCluster(_)), "{err}");
        let err = plan_restore("a", &listed, "t", &["http://10.0.0.9:2380".into()]).unwrap_err();
        assert!(matches!(err, StartError::PeerUrlMismatch { .. }), "{err}");
    }

    #[test]
    fn force_new_cluster_overwrites_the_uncommitted_tail_in_the_wal_and_lasts() {
        use ConfChangeType::*;
        use oxetcd_raft::Storage;
        let dir = tempfile::tempdir().unwrap();
        let listed = initial(&[
            ("a", "http://10.0.0.1:2380"),
            ("b", "http://10.0.0.2:2380"),
            ("c", "http://10.0.0.3:2380"),
        ]);
        let mut cfg = join_config(dir.path(), listed);
        cfg.name = "a".into();
        cfg.initial_cluster_state = InitialClusterState::New;
        cfg.initial_advertise_peer_urls = vec!["http://10.0.0.1:2380".into()];
        // A new member: three committed adds in term 1; then uncommitted writes of term 2.
        let mut opened = open(&cfg).unwrap();
        let local = opened.member_id;
        let tail: Vec<Entry> = (4..=6).map(|i| normal(i, 2)).collect();
        opened.wal.save(&HardState { term: 2, vote: local, commit: 3 }, &tail, true).unwrap();
        drop(opened);

        cfg.force_new_cluster = true;
        let opened = open(&cfg).unwrap();
        let entries = opened.storage.entries(1, 6, u64::MAX).unwrap();
        let others: Vec<u64> =
            Membership::initial(&cfg.initial_cluster, &cfg.initial_cluster_token)
                .ids()
                .into_iter()
                .filter(|&id| id != local)
                .collect();
        let removals: Vec<(ConfChangeType, u64)> =
            others.iter().map(|&id| (ConfChangeRemoveNode, id)).collect();
        assert_eq!(changes(&entries[3..]), removals);
        assert_eq!(opened.storage.last_index().unwrap(), 5, "the uncommitted 6 is gone");
        assert_eq!(opened.storage.hard_state(), HardState { term: 2, vote: local, commit: 5 });
        drop(opened);

        // Without the flag, the log read back is the forced one, committed.
        cfg.force_new_cluster = false;
        let opened = open(&cfg).unwrap();
        assert_eq!(opened.storage.last_index().unwrap(), 5);
        assert_eq!(opened.storage.entries(1, 6, u64::MAX).unwrap(), entries);
        assert_eq!(opened.storage.hard_state().commit, 5);
    }
}
