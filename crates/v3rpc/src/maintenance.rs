//! The Maintenance service: status, alarms, hashes, snapshots and leadership transfer
//! are served; the rest answers `Unimplemented`.

use std::pin::Pin;
use std::sync::Arc;

use oxetcd_api::etcdserverpb::AlarmType;
use oxetcd_api::etcdserverpb::maintenance_server::Maintenance;
use oxetcd_api::etcdserverpb::{
    AlarmRequest, AlarmResponse, DefragmentRequest, DefragmentResponse, DowngradeRequest,
    DowngradeResponse, HashKvRequest, HashKvResponse, HashRequest, HashResponse, MoveLeaderRequest,
    MoveLeaderResponse, SnapshotRequest, SnapshotResponse, StatusRequest, StatusResponse,
};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::caller::{requester, require_admin};
use crate::status;

use oxetcd_etcdserver::maintenance::ClientSnapshot;
use oxetcd_etcdserver::server::ETCD_VERSION;
use oxetcd_etcdserver::{EtcdServer, ServerError, alarm};

pub struct MaintenanceService {
    server: Arc<EtcdServer>,
}

impl MaintenanceService {
    pub fn new(server: Arc<EtcdServer>) -> MaintenanceService {
        MaintenanceService { server }
    }
}

/// Runs a scan of the whole store (a hash) on tokio's blocking pool: it takes as long
/// as the store is large, and would hold up every request on its async worker.
async fn blocking<T: Send + 'static>(
    scan: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(scan).await.map_err(|e| Status::internal(e.to_string()))
}

/// Bytes of the backend copy per `SnapshotResponse` (etcd sends 32 KiB; larger chunks
/// cost fewer messages, and stay far below any client's 4 MiB receive limit).
pub const SNAPSHOT_CHUNK_BYTES: usize = 1 << 20;
/// Chunks generated ahead of a slow client: memory stays flat whatever the backend's size.
const SNAPSHOT_CHUNKS_QUEUED: usize = 2;

/// Sends the copy in chunks, each with the bytes still to come, then etcd's integrity
/// check: one more message holding the SHA-256 of everything sent (what `etcdctl
/// snapshot restore` verifies). Runs on the blocking pool, generating the copy as it
/// goes; stops when the client goes.
fn stream_snapshot(
    snapshot: &ClientSnapshot,
    tx: tokio::sync::mpsc::Sender<Result<SnapshotResponse, Status>>,
) {
    let started = std::time::Instant::now();
    let mut chunks = Chunks {
        tx,
        chunk: Vec::with_capacity(SNAPSHOT_CHUNK_BYTES),
        remaining: snapshot.bytes,
        sha: ring::digest::Context::new(&ring::digest::SHA256),
        client_gone: false,
    };
    let sent = snapshot
        .write_to(&mut chunks)
        .map(|_| ())
        .and_then(|()| chunks.send_chunk().map_err(|e| ServerError::Internal(e.to_string())));
    if let Err(e) = sent {
        if chunks.client_gone {
            tracing::warn!("snapshot client went away");
        } else {
            tracing::warn!(error = %e, "sending the snapshot failed");
            let _ = chunks.tx.blocking_send(Err(Status::internal(format!("snapshot: {e}"))));
        }
        return;
    }
    debug_assert_eq!(chunks.remaining, 0, "the layout said how much would be written");
    let digest = chunks.sha.finish();
    let last = SnapshotResponse {
        blob: bytes::Bytes::copy_from_slice(digest.as_ref()),
        ..Default::default()
    };
    if chunks.tx.blocking_send(Ok(last)).is_ok() {
        tracing::info!(
            total_bytes = snapshot.bytes,
            took = ?started.elapsed(),
            "successfully sent database snapshot to client"
        );
    }
}

/// The copy as it is written, cut into `SnapshotResponse`s and hashed on the way.
struct Chunks {
    tx: tokio::sync::mpsc::Sender<Result<SnapshotResponse, Status>>,
    chunk: Vec<u8>,
    /// Bytes not sent yet, this chunk's included.
    remaining: u64,
    sha: ring::digest::Context,
    /// The client stopped receiving: not an error of the member's.
    client_gone: bool,
}

impl Chunks {
    /// Sends the chunk gathered so far, if any.
    fn send_chunk(&mut self) -> std::io::Result<()> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(SNAPSHOT_CHUNK_BYTES));
        self.sha.update(&chunk);
        self.remaining = self
            .remaining
            .checked_sub(chunk.len() as u64)
            .ok_or_else(|| std::io::Error::other("the snapshot ran longer than its layout said"))?;
        let message = SnapshotResponse {
            remaining_bytes: self.remaining,
            blob: chunk.into(),
            ..Default::default()
        };
        if self.tx.blocking_send(Ok(message)).is_err() {
            self.client_gone = true;
            return Err(std::io::ErrorKind::BrokenPipe.into());
        }
        Ok(())
    }
}

impl std::io::Write for Chunks {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = buf.len().min(SNAPSHOT_CHUNK_BYTES - self.chunk.len());
        self.chunk.extend_from_slice(&buf[..n]);
        if self.chunk.len() == SNAPSHOT_CHUNK_BYTES {
            self.send_chunk()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn not_yet(what: &str) -> Status {
    Status::unimplemented(format!("oxetcd: {what} is not implemented yet"))
}

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    async fn alarm(
        &self,
        request: Request<AlarmRequest>,
    ) -> Result<Response<AlarmResponse>, Status> {
        let deadline = crate::deadline::client_deadline(&request);
        let from = requester(&self.server, &request).await?;
        let alarms =
            self.server.alarm(&from, request.into_inner(), deadline).await.map_err(status)?;
        let revision = self.server.store().map_err(status)?.current_revision();
        Ok(Response::new(AlarmResponse { header: Some(self.server.header(revision)), alarms }))
    }

    async fn status(
        &self,
        _request: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        let server = &self.server;
        let raft = server.raft_status();
        let size = server.backend_size();
        let revision = server.store().map_err(status)?.current_revision();
        // etcd lists a missing leader and every alarm as the member's errors.
        let mut errors = Vec::new();
        if raft.leader == 0 {
            errors.push(ServerError::NoLeader.to_string());
        }
        errors.extend(server.alarms(AlarmType::None).iter().map(alarm::describe));
        Ok(Response::new(StatusResponse {
            header: Some(server.header(revision)),
            version: ETCD_VERSION.to_string(),
            db_size: size.total_bytes as i64,
            leader: raft.leader,
            raft_index: raft.committed,
            raft_term: raft.term,
            raft_applied_index: raft.applied,
            errors,
            db_size_in_use: size.in_use_bytes as i64,
            is_learner: server.is_learner(),
            // etcd 3.6's field: the quota the member enforces.
            db_size_quota: server.quota_bytes() as i64,
            ..Default::default()
        }))
    }

    async fn defragment(
        &self,
        request: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        require_admin(&self.server, &request).await?;
        self.server.defragment().await.map_err(status)?;
        let revision = self.server.store().map_err(status)?.current_revision();
        Ok(Response::new(DefragmentResponse { header: Some(self.server.header(revision)) }))
    }

    async fn hash(&self, request: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        require_admin(&self.server, &request).await?;
        let store = self.server.store().map_err(status)?;
        let (hash, revision) = blocking(move || store.hash()).await?.map_err(status)?;
        Ok(Response::new(HashResponse { header: Some(self.server.header(revision)), hash }))
    }

    async fn hash_kv(
        &self,
        request: Request<HashKvRequest>,
    ) -> Result<Response<HashKvResponse>, Status> {
        require_admin(&self.server, &request).await?;
        let revision = request.get_ref().revision;
        let store = self.server.store().map_err(status)?;
        let result = blocking(move || store.hash_kv(revision)).await?.map_err(status)?;
        Ok(Response::new(HashKvResponse {
            header: Some(self.server.header(result.current_rev)),
            hash: result.hash,
            compact_revision: result.compact_rev,
            hash_revision: if revision > 0 { revision } else { result.current_rev },
        }))
    }

    type SnapshotStream = Pin<Box<dyn Stream<Item = Result<SnapshotResponse, Status>> + Send>>;

    async fn snapshot(
        &self,
        request: Request<SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        require_admin(&self.server, &request).await?;
        let copy = self.server.snapshot().await.map_err(status)?;
        tracing::info!(
            total_bytes = copy.bytes,
            revision = copy.at.revision,
            "sending database snapshot to client"
        );
        let (tx, rx) = tokio::sync::mpsc::channel(SNAPSHOT_CHUNKS_QUEUED);
        tokio::task::spawn_blocking(move || stream_snapshot(&copy, tx));
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }

    async fn move_leader(
        &self,
        request: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderResponse>, Status> {
        require_admin(&self.server, &request).await?;
        let deadline = crate::deadline::client_deadline(&request);
        let target = request.into_inner().target_id;
        self.server.move_leader(target, deadline).await.map_err(status)?;
        let revision = self.server.store().map_err(status)?.current_revision();
        Ok(Response::new(MoveLeaderResponse { header: Some(self.server.header(revision)) }))
    }

    async fn downgrade(
        &self,
        request: Request<DowngradeRequest>,
    ) -> Result<Response<DowngradeResponse>, Status> {
        require_admin(&self.server, &request).await?;
        Err(not_yet("Downgrade"))
    }
}
