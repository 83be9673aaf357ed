//! `snapshot restore`: a new member's data dir made from a snapshot file, for a new
//! cluster that starts with every key at its revision.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use oxetcd_etcdserver::bootstrap::{self, RestoredMember};
use oxetcd_etcdserver::membership::InitialMember;
use oxetcd_mvcc::{ApplyIndex, NoLeases, Store, StoreConfig};

use crate::error::UtlError;
use crate::file::{self, Copied};
use crate::layout;
use crate::log;
use crate::progress::Progress;

/// The default `--name`.
pub const DEFAULT_NAME: &str = "default";
/// The default `--initial-cluster` (etcd's: the default name, whatever `--name` says).
pub const DEFAULT_INITIAL_CLUSTER: &str = "default=http://localhost:2380";
/// The default `--initial-cluster-token`.
pub const DEFAULT_TOKEN: &str = "etcd-cluster";
/// The default `--initial-advertise-peer-urls`.
pub const DEFAULT_PEER_URLS: &str = "http://localhost:2380";

/// Backend tables of an old cluster's membership, emptied on restore (etcd's
/// `members` and `members_removed` buckets): the new cluster's members come from the
/// restore's flags. oxetcd keeps membership in raft snapshots and the log, so its own
/// backends hold no such rows; an etcd backend brought in by migration may.
const MEMBERSHIP_TABLES: [&str; 2] = ["members", "members_removed"];

/// The flags of `snapshot restore`.
#[derive(Debug, Clone)]
pub struct RestoreConfig {
    /// The snapshot file (or, with `skip_hash_check`, a plain backend file).
    pub snapshot: PathBuf,
    pub name: String,
    /// `--initial-cluster`: `name=url,…`.
    pub initial_cluster: String,
    pub initial_cluster_token: String,
    /// `--initial-advertise-peer-urls`: comma-separated.
    pub initial_advertise_peer_urls: String,
    /// `--data-dir`; `<name>.etcd` if not given.
    pub data_dir: Option<PathBuf>,
    /// `--wal-dir`; `<data-dir>/member/wal` if not given.
    pub wal_dir: Option<PathBuf>,
    pub skip_hash_check: bool,
}

impl RestoreConfig {
    /// etcd's defaults for every flag but the file.
    pub fn new(snapshot: impl Into<PathBuf>) -> RestoreConfig {
        RestoreConfig {
            snapshot: snapshot.into(),
            name: DEFAULT_NAME.into(),
            initial_cluster: DEFAULT_INITIAL_CLUSTER.into(),
            initial_cluster_token: DEFAULT_TOKEN.into(),
            initial_advertise_peer_urls: DEFAULT_PEER_URLS.into(),
            data_dir: None,
            wal_dir: None,
            skip_hash_check: false,
        }
    }

    /// The data dir written: `--data-dir`, or `<name>.etcd`.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(|| PathBuf::from(format!("{}.etcd", self.name)))
    }
}

/// What a restore wrote.
#[derive(Debug, Clone)]
pub struct Restored {
    pub data_dir: PathBuf,
    pub wal_dir: PathBuf,
    /// The member and the new cluster, as the WAL records them.
    pub member: RestoredMember,
    /// The backend copied, and its checksum.
    pub copied: Copied,
}

/// Restores `cfg.snapshot` into a new data dir. Nothing is written until the flags
/// are checked; the data dir is built under a temporary name beside its place and
/// renamed into it at the end, so a refused snapshot (no trailer, a trailer that does
/// not match, a backend that does not open) leaves nothing behind.
pub fn restore(cfg: &RestoreConfig, progress: &Progress) -> Result<Restored, UtlError> {
    let peer_urls = parse_urls(&cfg.initial_advertise_peer_urls)?;
    let initial = parse_initial_cluster(&cfg.initial_cluster)?;
    let member =
        bootstrap::plan_restore(&cfg.name, &initial, &cfg.initial_cluster_token, &peer_urls)?;
    let data_dir = cfg.data_dir();
    if data_dir.exists() && !is_empty_dir(&data_dir) {
        return Err(UtlError::DataDirNotEmpty { path: data_dir });
    }
    if let Some(wal_dir) = &cfg.wal_dir
        && wal_dir.exists()
    {
        return Err(UtlError::WalDirExists { path: wal_dir.clone() });
    }
    let wal_dir = cfg.wal_dir.clone().unwrap_or_else(|| layout::wal_dir(&data_dir));
    let size = file::size(&cfg.snapshot)?;
    if !file::has_trailer(size) && !cfg.skip_hash_check {
        return Err(UtlError::MissingHash);
    }
    let fields = [
        ("path", cfg.snapshot.display().to_string()),
        ("wal-dir", wal_dir.display().to_string()),
        ("data-dir", data_dir.display().to_string()),
        ("snap-dir", layout::snap_dir(&data_dir).display().to_string()),
    ];
    log::info("restoring snapshot", &fields);

    let parent = match data_dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(UtlError::io("mkdir", &parent))?;
    let base = data_dir.file_name().map_or("data".into(), |n| n.to_string_lossy().into_owned());
    let staging = tempfile::Builder::new()
        .prefix(&format!(".{base}.restore-"))
        .tempdir_in(&parent)
        .map_err(UtlError::io("mkdir", &parent))?;
    let snap_dir = layout::snap_dir(staging.path());
    std::fs::create_dir_all(&snap_dir).map_err(UtlError::io("mkdir", &snap_dir))?;
    let db = layout::backend_path(staging.path());
    let copied = file::copy_backend(&cfg.snapshot, &db, progress)?;
    copied.verify(cfg.skip_hash_check)?;
    file::to_native(&db, &cfg.snapshot)?;
    prepare_backend(&db, &member)?;

    let separate_wal = cfg.wal_dir.is_some();
    let staged_wal = if separate_wal {
        // Absolute: the WAL syncs the directory it is created in, which a bare
        // relative name (`--wal-dir wal`) does not name.
        std::path::absolute(&wal_dir).map_err(UtlError::io("stat", &wal_dir))?
    } else {
        layout::wal_dir(staging.path())
    };
    bootstrap::restore_member(&staged_wal, &member)?;
    let staged = staging.keep();
    if let Err(e) = std::fs::rename(&staged, &data_dir) {
        let _ = std::fs::remove_dir_all(&staged);
        if separate_wal {
            let _ = std::fs::remove_dir_all(&staged_wal);
        }
        return Err(UtlError::io("rename", &staged)(e));
    }
    file::sync_dir(&parent)?;
    log::info("restored snapshot", &fields);
    Ok(Restored { data_dir, wal_dir, member, copied })
}

/// Makes the copied backend part of the new cluster, as etcd's restore does: its
/// consistent index becomes the last bootstrap entry's position (the old cluster's
/// index means nothing to the new log, whose entries after the bootstrap must all
/// apply), and the old membership rows go. Every other table (keys at their
/// revisions, leases, auth, alarms) is kept as it is.
fn prepare_backend(db: &Path, member: &RestoredMember) -> Result<(), UtlError> {
    let store = Store::open_path(db, StoreConfig::default(), Arc::new(NoLeases))
        .map_err(UtlError::backend(db))?;
    let at = ApplyIndex { index: member.index, term: member.term };
    let prepared = (|| {
        for table in MEMBERSHIP_TABLES {
            let rows = store.aux_scan(table)?;
            if !rows.is_empty() {
                let deletes = rows.into_iter().map(|(k, _)| (k, None::<Bytes>));
                store.aux_write(table, deletes, at)?;
            }
        }
        store.set_consistent_index(at)?;
        store.force_commit()
    })();
    let closed = store.close();
    prepared?;
    closed?;
    Ok(())
}

fn is_empty_dir(path: &Path) -> bool {
    std::fs::read_dir(path).is_ok_and(|mut entries| entries.next().is_none())
}

/// A comma-separated list of URLs, each checked as etcd checks a peer URL.
fn parse_urls(list: &str) -> Result<Vec<String>, UtlError> {
    let urls: Vec<String> =
        list.split(',').map(str::trim).filter(|u| !u.is_empty()).map(String::from).collect();
    for url in &urls {
        check_url(url)?;
    }
    Ok(urls)
}

/// etcd's URL checks: one of its schemes, then `host:port`.
fn check_url(url: &str) -> Result<(), UtlError> {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    if !matches!(scheme, "http" | "https" | "unix" | "unixs") {
        return Err(UtlError::BadFlag(format!(
            "URL scheme must be http, https, unix, or unixs: {url}"
        )));
    }
    let host_port = rest.trim_end_matches('/');
    match host_port.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && !port.is_empty() && !host_port.contains('/') => {
            Ok(())
        }
        _ => Err(UtlError::BadFlag(format!(
            "URL address does not have the form \"host:port\": {url}"
        ))),
    }
}

/// `--initial-cluster`: `name=url` pairs; a name listed twice has several URLs.
fn parse_initial_cluster(value: &str) -> Result<Vec<InitialMember>, UtlError> {
    let mut members: Vec<InitialMember> = Vec::new();
    for pair in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((name, url)) = pair.split_once('=') else {
            return Err(UtlError::BadFlag(format!(
                "{value:?} is not a valid --initial-cluster: {pair:?} is not name=url"
            )));
        };
        check_url(url)?;
        match members.iter_mut().find(|m| m.name == name) {
            Some(m) => m.peer_urls.push(url.to_owned()),
            None => members
                .push(InitialMember { name: name.to_owned(), peer_urls: vec![url.to_owned()] }),
        }
    }
    Ok(members)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_as_etcd_reads_them() {
        let members =
            parse_initial_cluster("a=http://h1:2380,b=http://h2:2380,a=http://h3:2380").unwrap();
        assert_eq!(members.len(), 2);
        assert_eq!(members[0].peer_urls, ["http://h1:2380", "http://h3:2380"]);
        assert!(parse_initial_cluster("a").is_err());
        let err = parse_urls("ftp://h:1").unwrap_err().to_string();
        assert_eq!(err, "URL scheme must be http, https, unix, or unixs: ftp://h:1");
        let err = parse_urls("http://h").unwrap_err().to_string();
        assert_eq!(err, "URL address does not have the form \"host:port\": http://h");
    }
}
