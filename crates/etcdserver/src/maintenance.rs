//! Maintenance on [`EtcdServer`]: alarms, the backend's size and quota, snapshots of the
//! backend for clients, defragmentation.

use std::time::Instant;

use oxetcd_api::etcdserverpb::alarm_request::AlarmAction;
use oxetcd_api::etcdserverpb::{AlarmMember, AlarmRequest, AlarmType};
use oxetcd_api::oxetcdpb::{InternalRaftRequest, RequestHeader};
use oxetcd_mvcc::etcd_file::Layout;
use oxetcd_mvcc::store::PinnedSnapshot;
use oxetcd_mvcc::{BackendSize, CommitPoint, Defragmented};

use crate::auth::Requester;
use crate::bootstrap;
use crate::error::ServerError;
use crate::server::{Applied, EtcdServer};

/// `Snapshot` streams at once. Each holds a read view of the backend for as long as its
/// client takes to receive it, and pages written since cannot reuse the space that view
/// pins (as with etcd's read transaction): more clients wait rather than grow the file.
pub const MAX_CLIENT_SNAPSHOTS: usize = 2;

/// A point-in-time view of the backend for one client, sent in etcd's format (bbolt)
/// straight from the view: no copy on disk.
pub struct ClientSnapshot {
    view: PinnedSnapshot,
    layout: Layout,
    /// What the copy holds.
    pub at: CommitPoint,
    /// The copy's length.
    pub bytes: u64,
    /// Held while the view is, so at most [`MAX_CLIENT_SNAPSHOTS`] exist.
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl ClientSnapshot {
    /// Writes the copy to `out`, front to back ([`ClientSnapshot::bytes`] in all). Blocks:
    /// run it on the blocking pool.
    pub fn write_to<W: std::io::Write>(&self, out: W) -> Result<W, ServerError> {
        Ok(self.view.stream_bbolt(self.layout, out)?)
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
        if let Err(e) = self.propose_request(id, request, deadline).await {
            tracing::warn!(error = %e, "failed to raise the NOSPACE alarm");
        }
    }

    /// A point-in-time view of the backend for `Snapshot`, with the size of its copy in
    /// etcd's format (a pass over every row, on the blocking pool): writers go on
    /// meanwhile.
    pub async fn snapshot(&self) -> Result<ClientSnapshot, ServerError> {
        let permit = self
            .client_snapshots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ServerError::Stopped)?;
        let store = self.store()?;
        let (view, layout) = tokio::task::spawn_blocking(move || {
            let view = store.pin_snapshot()?;
            let layout = view.bbolt_layout()?;
            Ok::<_, oxetcd_mvcc::Error>((view, layout))
        })
        .await
        .map_err(|e| ServerError::Internal(e.to_string()))??;
        let (at, bytes) = (view.at(), layout.file_size());
        Ok(ClientSnapshot { view, layout, at, bytes, _permit: permit })
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
