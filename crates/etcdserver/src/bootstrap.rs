//! Opening a member's data dir: a new member writes its WAL and the bootstrap
//! configuration entries; a restarting one reads back its snapshot and WAL and ignores
//! the `--initial-*` flags, as etcd does.
//!
//! Layout (etcd's): `<data-dir>/member/wal/*.wal`, `<data-dir>/member/snap/*.snap`, and
//! the backend at `<data-dir>/member/snap/db`.

use std::path::{Path, PathBuf};

use oxetcd_api::etcdserverpb::Member;
use oxetcd_api::oxetcdpb::{ClusterState, Metadata};
use oxetcd_raft::{ConfChange, ConfChangeType, ConfState, Entry, EntryType, HardState, MemStorage};
use oxetcd_wal::{Snapshotter, Wal, WalError, WalOptions, WalSnapshot};
use prost::Message;

use crate::config::{InitialClusterState, ServerConfig};
use crate::id::Hex;
use crate::membership::Membership;

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
    #[error("joining an existing cluster (--initial-cluster-state existing) is not supported yet")]
    JoinExisting,
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

pub(crate) fn open(cfg: &ServerConfig) -> Result<Opened, StartError> {
    let member = member_dir(&cfg.data_dir);
    let wal_dir = cfg.wal_dir.clone().unwrap_or_else(|| member.join("wal"));
    let snapshotter = Snapshotter::new(&member.join("snap"))?;
    let has_wal = std::fs::read_dir(&wal_dir)
        .map(|mut d| d.any(|e| e.is_ok_and(|e| e.path().extension().is_some_and(|x| x == "wal"))))
        .unwrap_or(false);
    if has_wal { restart(&wal_dir, snapshotter) } else { bootstrap_new(cfg, &wal_dir, snapshotter) }
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
    storage.append(&recovered.entries);
    storage.set_hard_state(recovered.hard_state);
    tracing::info!(
        member = %Hex(metadata.node_id),
        cluster = %Hex(metadata.cluster_id),
        commit_index = recovered.hard_state.commit,
        snapshot_index = meta.index,
        "restarting local member"
    );
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

    let metadata = Metadata { node_id: member_id, cluster_id };
    // The WAL is created beside its final place and renamed into it: the parent must exist
    // (the member dir, or wherever `--wal-dir` points).
    if let Some(parent) = wal_dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| {
            StartError::Wal(WalError::Io { path: wal_dir.to_path_buf(), source: e })
        })?;
    }
    let mut wal = Wal::create(wal_dir, metadata.encode_to_vec().into(), WalOptions::default())?;

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
