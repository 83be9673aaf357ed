//! Maintenance calls: status, hashes, alarms, defragmentation, snapshots, leadership.

use oxetcd_api::etcdserverpb::alarm_request::AlarmAction as PbAlarmAction;
use oxetcd_api::etcdserverpb::{
    AlarmRequest, AlarmResponse, DefragmentRequest, DefragmentResponse, HashKvRequest,
    HashKvResponse, HashRequest, HashResponse, MoveLeaderRequest, MoveLeaderResponse,
    SnapshotRequest, SnapshotResponse, StatusRequest, StatusResponse,
};
use tonic::Streaming;

use crate::client::{Client, Retry, retryable};
use crate::error::{Error, Result};

pub use oxetcd_api::etcdserverpb::AlarmType;

/// What an alarm request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlarmAction {
    /// List the raised alarms.
    Get,
    /// Raise an alarm.
    Activate,
    /// Clear an alarm.
    Deactivate,
}

/// Maintenance calls, from [`Client::maintenance`]. They go to whichever endpoint the
/// round-robin picks: to ask one member in particular, connect a client to it alone.
///
/// ```no_run
/// # async fn example(client: oxetcd_client::Client) -> oxetcd_client::Result<()> {
/// let status = client.maintenance().status().await?;
/// println!("version {}, leader {:x}, db {} bytes", status.version, status.leader, status.db_size);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Maintenance<'a> {
    client: &'a Client,
}

impl Client {
    /// Maintenance calls.
    pub fn maintenance(&self) -> Maintenance<'_> {
        Maintenance { client: self }
    }
}

impl Maintenance<'_> {
    /// The member's status. Retried on `Unavailable`.
    pub async fn status(&self) -> Result<StatusResponse> {
        self.client
            .unary(Retry::Repeatable, StatusRequest {}, |conn, req| async move {
                conn.maintenance().status(req).await
            })
            .await
    }

    /// A hash of the member's whole backend. Retried on `Unavailable`.
    pub async fn hash(&self) -> Result<HashResponse> {
        self.client
            .unary(Retry::Repeatable, HashRequest {}, |conn, req| async move {
                conn.maintenance().hash(req).await
            })
            .await
    }

    /// A hash of the key-value history up to `revision` (0: the latest), comparable
    /// between members. Retried on `Unavailable`.
    pub async fn hash_kv(&self, revision: i64) -> Result<HashKvResponse> {
        self.client
            .unary(Retry::Repeatable, HashKvRequest { revision }, |conn, req| async move {
                conn.maintenance().hash_kv(req).await
            })
            .await
    }

    /// Lists, raises or clears alarms (`member_id` 0 and [`AlarmType::None`] for all).
    /// Retried on `Unavailable` (every action is idempotent).
    pub async fn alarm(
        &self,
        action: AlarmAction,
        member_id: u64,
        alarm: AlarmType,
    ) -> Result<AlarmResponse> {
        let action = match action {
            AlarmAction::Get => PbAlarmAction::Get,
            AlarmAction::Activate => PbAlarmAction::Activate,
            AlarmAction::Deactivate => PbAlarmAction::Deactivate,
        };
        let request = AlarmRequest { action: action as i32, member_id, alarm: alarm as i32 };
        self.client
            .unary(Retry::Repeatable, request, |conn, req| async move {
                conn.maintenance().alarm(req).await
            })
            .await
    }

    /// Defragments the backend of the member the call lands on.
    pub async fn defragment(&self) -> Result<DefragmentResponse> {
        self.client
            .unary(Retry::NonRepeatable, DefragmentRequest {}, |conn, req| async move {
                conn.maintenance().defragment(req).await
            })
            .await
    }

    /// Asks the leader to hand leadership to member `target_id`. Retried on
    /// `Unavailable`, as etcd's client does.
    pub async fn move_leader(&self, target_id: u64) -> Result<MoveLeaderResponse> {
        self.client
            .unary(Retry::Repeatable, MoveLeaderRequest { target_id }, |conn, req| async move {
                conn.maintenance().move_leader(req).await
            })
            .await
    }

    /// Streams a snapshot of the member's backend.
    ///
    /// ```no_run
    /// # async fn example(client: oxetcd_client::Client) -> oxetcd_client::Result<()> {
    /// let mut snapshot = client.maintenance().snapshot().await?;
    /// let mut bytes = Vec::new();
    /// while let Some(chunk) = snapshot.message().await? {
    ///     bytes.extend_from_slice(&chunk.blob);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn snapshot(&self) -> Result<SnapshotStream> {
        let max_retries = self.client.options().max_retries();
        let mut attempt = 0;
        loop {
            let (i, conn) = self.client.pick();
            let call = conn.maintenance().snapshot(self.client.request(SnapshotRequest {})).await;
            self.client.report(i, call.as_ref().err());
            match call {
                Ok(response) => return Ok(SnapshotStream { inner: response.into_inner() }),
                Err(status) if attempt < max_retries && retryable(Retry::Repeatable, &status) => {
                    attempt += 1;
                    tokio::time::sleep(self.client.backoff(attempt)).await;
                }
                Err(status) => return Err(status.into()),
            }
        }
    }
}

/// A backend snapshot, chunk by chunk (see [`Maintenance::snapshot`]).
#[derive(Debug)]
pub struct SnapshotStream {
    inner: Streaming<SnapshotResponse>,
}

impl SnapshotStream {
    /// The next chunk, or `None` at the end.
    pub async fn message(&mut self) -> Result<Option<SnapshotResponse>> {
        self.inner.message().await.map_err(Error::from)
    }
}
