//! Maintenance on [`EtcdServer`]: alarms, the backend's size and quota, snapshots of the
//! backend for clients, defragmentation.

use std::path::{Path, PathBuf};
use std::time::Instant;

use oxetcd_api::etcdserverpb::alarm_request::AlarmAction;
use oxetcd_api::etcdserverpb::{AlarmMember, AlarmRequest, AlarmType};
use oxetcd_api::oxetcdpb::{InternalRaftRequest, RequestHeader};
use oxetcd_mvcc::{BackendSize, CommitPoint, Defragmented};

use crate::auth::Requester;
use crate::bootstrap;
use crate::error::ServerError;
use crate::server::{Applied, EtcdServer};

/// Backend copies made for `Snapshot` at once: each is a whole copy of the backend on
/// disk, so more clients wait rather than fill the disk with copies.
pub const MAX_CLIENT_SNAPSHOT_COPIES: usize = 2;

/// The name ending of a backend copy being streamed to a client (in `member/snap`).
/// A copy left behind by a crash is removed when the member starts.
const CLIENT_SNAPSHOT_SUFFIX: &str = ".client-snapshot";

/// A point-in-time copy of the backend in a file of its own, removed when dropped.
#[derive(Debug)]
pub struct ClientSnapshot {
    path: PathBuf,
    /// What the copy holds.
    pub at: CommitPoint,
    /// The copy's length.
    pub bytes: u64,
    /// Held until the copy is removed, so at most [`MAX_CLIENT_SNAPSHOT_COPIES`] exist.
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl ClientSnapshot {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ClientSnapshot {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            tracing::warn!(path = %self.path.display(), error = %e, "could not remove a snapshot copy");
        }
    }
}

/// Removes the backend copies a crash left in `snap_dir`.
pub(crate) fn remove_stale_client_snapshots(snap_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(snap_dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.to_string_lossy().ends_with(CLIENT_SNAPSHOT_SUFFIX) {
            tracing::info!(path = %path.display(), "removing a snapshot copy left by a crash");
            let _ = std::fs::remove_file(&path);
        }
    }
}

impl EtcdServer {
    /// The backend's size now: the file's length (etcd's `dbSize`) and the bytes holding
    /// data (`dbSizeInUse`, what the quota is checked against).
    pub fn backend_size(&self) -> BackendSize {
        self.shared.store().backend_size()
    }

    pub(crate) fn backend_in_use(&self) -> u64 {
        self.backend_size().in_use_bytes
    }

    /// `--quota-backend-bytes` as enforced (0: no quota).
    pub fn quota_bytes(&self) -> u64 {
        self.quota.bytes()
    }

    /// The alarms of type `alarm` (every alarm for [`AlarmType::None`]) as this member
    /// has applied them.
    pub fn alarms(&self, alarm: AlarmType) -> Vec<AlarmMember> {
        self.shared.alarms().get(alarm)
    }

    /// The Alarm RPC: GET answers after a linearizable read; ACTIVATE and DEACTIVATE go
    /// through the log and answer the alarms they changed.
    pub async fn alarm(
        &self,
        from: &Requester,
        request: AlarmRequest,
        deadline: Option<Instant>,
    ) -> Result<Vec<AlarmMember>, ServerError> {
        if request.action == AlarmAction::Get as i32 {
            self.linearizable_read(deadline).await?;
            let alarm = AlarmType::try_from(request.alarm).unwrap_or(AlarmType::None);
            return Ok(self.alarms(alarm));
        }
        match self.propose(from, deadline, |r| r.alarm = Some(request)).await? {
            Applied::Alarm(changed) => Ok(changed),
            other => Err(ServerError::Internal(format!("alarm answered {other:?}"))),
        }
    }

    /// Raises this member's NOSPACE alarm through the log, unless it is raised already,
    /// and waits for it (so a client refused for space finds the alarm listed).
    pub(crate) async fn raise_nospace(&self, deadline: Option<Instant>) {
        let member_id = self.member_id();
        if self.shared.alarms().raised_by(member_id, AlarmType::Nospace) {
            return;
        }
        tracing::warn!(
            quota_size_bytes = self.quota_bytes(),
            "message exceeded backend quota; raising alarm"
        );
        let id = self.ids.next();
        let mut header = RequestHeader { id, ..Default::default() };
        Requester::Member.fill_header(&mut header);
        let request = InternalRaftRequest {
            header: Some(header),
            alarm: Some(AlarmRequest {
                action: AlarmAction::Activate as i32,
                member_id,
                alarm: AlarmType::Nospace as i32,
            }),
            ..Default::default()
        };
        if let Err(e) = self.propose_request(id, &request, deadline).await {
            tracing::warn!(error = %e, "failed to raise the NOSPACE alarm");
        }
    }

    /// A point-in-time copy of the backend for `Snapshot`, in etcd's format (bbolt), made
    /// on the blocking pool from a read view: writers go on meanwhile.
    pub async fn snapshot(&self) -> Result<ClientSnapshot, ServerError> {
        let permit =
            self.snapshot_copies.clone().acquire_owned().await.map_err(|_| ServerError::Stopped)?;
        let store = self.store()?;
        let snap_dir = bootstrap::member_dir(&self.cfg.data_dir).join("snap");
        let path = snap_dir.join(format!("{:016x}{CLIENT_SNAPSHOT_SUFFIX}", self.ids.next()));
        let copy = path.clone();
        let saved = tokio::task::spawn_blocking(move || store.pin_snapshot()?.save_bbolt(copy))
            .await
            .map_err(|e| ServerError::Internal(e.to_string()))?;
        match saved {
            Ok(saved) => {
                Ok(ClientSnapshot { path, at: saved.at, bytes: saved.bytes, _permit: permit })
            }
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                Err(e.into())
            }
        }
    }

    /// Rewrites the backend into a compact file while reads and writes go on, and swaps
    /// it in (etcd stops the member's reads and writes for the whole of it). Runs on the
    /// blocking pool. A snapshot from the leader is not installed meanwhile: both replace
    /// the backend file.
    pub async fn defragment(&self) -> Result<Defragmented, ServerError> {
        let shared = self.shared.clone();
        let path = bootstrap::backend_path(&self.cfg.data_dir);
        tracing::info!(path = %path.display(), "defragmenting");
        let done = tokio::task::spawn_blocking(move || {
            let _no_install = shared.backend_swap.lock().unwrap_or_else(|e| e.into_inner());
            shared.store().defragment()
        })
        .await
        .map_err(|e| ServerError::Internal(e.to_string()))?;
        match done {
            Ok(done) => {
                tracing::info!(
                    path = %path.display(),
                    current_db_size_bytes_diff = done.after.total_bytes as i64 - done.before.total_bytes as i64,
                    current_db_size_bytes = done.after.total_bytes,
                    current_db_size_in_use_bytes = done.after.in_use_bytes,
                    took = ?done.took,
                    commits_paused = ?done.commits_paused,
                    "defragmented"
                );
                Ok(done)
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "failed to defragment");
                Err(e.into())
            }
        }
    }
}
