//! The apply thread: turns committed entries into state. Requests that change the key
//! space go to the mvcc store with their raft index, so the store's consistent index
//! says exactly what it holds; entries at or below it (replayed after a restart) are
//! skipped for the store but still applied to membership and raft's configuration,
//! which are rebuilt from the newest snapshot on every start.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use oxetcd_api::etcdserverpb::{LeaseCheckpointRequest, LeaseGrantResponse};
use oxetcd_api::oxetcdpb::InternalRaftRequest;
use oxetcd_mvcc::store::PinnedSnapshot;
use oxetcd_mvcc::{ApplyIndex, Store, StoreConfig, WriteResult};
use oxetcd_raft::{
    ConfChange, ConfChangeType, Entry, EntryType, Message, Snapshot, SnapshotMetadata,
    SnapshotStatus,
};
use oxetcd_transport::Transport;
use prost::Message as _;

use crate::alarm::{self, Alarms};
use crate::auth::{self, AuthApplied, Requester};
use crate::error::{Fatal, ServerError};
use crate::etcd_encoding::{self, LogRequest};
use crate::id::Hex;
use crate::inbox::BoundedSender;
use crate::membership::{MemberChange, Membership};
use crate::node::{ApplyTask, Control, Input, LOG_TRIM_EVERY};
use crate::state::{Applied, ApplyResult, Shared};
use crate::stats::ServerStats;
use crate::watch::WatchHub;
use oxetcd_lease::{LEASE_TABLE, StoredLease};

/// Applying one entry slower than this is worth a warning (etcd's threshold).
const SLOW_APPLY: Duration = Duration::from_millis(100);

/// What the apply thread was doing when the backend failed under it.
const APPLYING: &str = "applying an entry to the backend";
const FINAL_COMMIT: &str = "the final backend commit";

pub(crate) struct Applier {
    pub shared: Arc<Shared>,
    pub transport: Arc<Transport>,
    /// Where raft snapshot files and received backends live (`member/snap`).
    pub snap_dir: PathBuf,
    /// The backend file (`member/snap/db`) and how to reopen it after an install.
    pub backend: PathBuf,
    pub store_config: StoreConfig,
    pub tasks: Receiver<ApplyTask>,
    pub control: Sender<Control>,
    pub inbox: BoundedSender<Input>,
    /// Take a snapshot after this many applied entries (`--snapshot-count`).
    pub snapshot_count: u64,
    pub last_snapshot: u64,
    /// The applied index of the last snapshot or trim of the log asked of the raft loop.
    pub last_trim: u64,
    /// Watchers hear of every write right after the store applied it, in log order.
    pub watch: Arc<WatchHub>,
    /// Peers whose snapshot's backend copy is still being written.
    pub copying: Arc<Mutex<HashSet<u64>>>,
}

/// Whether a committed entry's effects still have to reach the backend, or are there
/// already (the store's consistent index covers it: replayed from the WAL on restart,
/// where only membership changes, kept in memory, are applied again).
#[derive(Debug, Clone, Copy)]
enum Applying {
    New(ApplyIndex),
    Replayed,
}

impl Applier {
    /// Applies until told to stop or until the storage fails; on a failure the member
    /// stops (see [`Shared::fail_stop`]).
    pub(crate) fn run(mut self) {
        if let Err(fatal) = self.run_until_stopped() {
            self.shared.fail_stop(fatal);
            // Nothing after the failure is applied, so watchers hear of nothing more.
            self.watch.close();
            let _ = self.inbox.try_send(Input::Wake);
        }
    }

    fn run_until_stopped(&mut self) -> Result<(), Fatal> {
        // The committer thread's failures have nobody else to stop the member: an idle
        // apply thread looks at the store as often as the committer commits.
        let store_check = self.store_config.batch_interval;
        loop {
            let task = match self.tasks.recv_timeout(store_check) {
                Ok(task) => Some(task),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            if let Some(e) = self.shared.store().failure() {
                return Err(Fatal::new("committing to the backend", e));
            }
            if self.shared.fatal().is_some() {
                // The raft loop stopped the member: apply nothing more.
                return Ok(());
            }
            match task {
                None => {}
                Some(ApplyTask::Entries(entries)) => {
                    let Some(last) = entries.last().map(|e| e.index) else { continue };
                    for entry in entries {
                        let (index, started) = (entry.index, std::time::Instant::now());
                        self.apply(entry)?;
                        let took = started.elapsed();
                        if took > SLOW_APPLY {
                            ServerStats::bump(&self.shared.stats.slow_applies);
                            tracing::warn!(index, took = ?took, expected = ?SLOW_APPLY, "apply request took too long");
                        }
                    }
                    self.shared.applied.send_replace(last);
                    self.after_applied(last)?;
                }
                Some(ApplyTask::SendSnapshot(msg)) => self.send_snapshot(*msg)?,
                // Applying on top of a half-installed state would diverge from the
                // cluster: the member stops instead (a restart retries from disk).
                Some(ApplyTask::InstallSnapshot(snapshot)) => self
                    .install_snapshot(*snapshot)
                    .map_err(|e| Fatal::new("installing the leader's snapshot", e))?,
                Some(ApplyTask::Stop) => break,
            }
        }
        failpoint!("apply::final-commit", |_| Err(Fatal::new(FINAL_COMMIT, "injected failure")));
        self.shared.store().force_commit().map_err(|e| Fatal::new(FINAL_COMMIT, e))
    }

    fn apply(&mut self, entry: Entry) -> Result<(), Fatal> {
        let at = ApplyIndex { index: entry.index, term: entry.term };
        // Already in the backend if the store's consistent index covers it.
        let applying = if entry.index > self.shared.store().consistent_index().index {
            Applying::New(at)
        } else {
            Applying::Replayed
        };
        let stop = |e: ServerError| Fatal::new(APPLYING, e);
        match EntryType::try_from(entry.entry_type) {
            Ok(EntryType::EntryNormal) if entry.data.is_empty() => {
                // A new leader's empty entry: it only moves the index.
                self.mark_applied(applying).map_err(stop)?;
            }
            Ok(EntryType::EntryNormal) => match etcd_encoding::decode_request(entry.data) {
                Ok(LogRequest::IgnoredV2 { method, path }) => {
                    tracing::debug!(index = entry.index, method, path, "etcd v2 request skipped");
                    self.mark_applied(applying).map_err(stop)?;
                }
                Ok(LogRequest::V3(request)) => {
                    let id = request.header.as_ref().map_or(request.id, |h| h.id);
                    let result = self.apply_request(request, applying);
                    match result {
                        // Its requester hears `Stopped` with every other one.
                        Err(e) if e.is_storage_failure() => return Err(stop(e)),
                        result => self.shared.wait.trigger(id, result),
                    }
                }
                Err(e) => {
                    // Every member meets the same bytes and skips them alike.
                    tracing::error!(index = entry.index, error = %e, "undecodable log entry skipped");
                    self.mark_applied(applying).map_err(stop)?;
                }
            },
            Ok(EntryType::EntryConfChange) => match etcd_encoding::decode_conf_change(entry.data) {
                Ok(cc) => {
                    let id = cc.id;
                    let result = self.apply_conf_change(cc);
                    self.mark_applied(applying).map_err(stop)?;
                    self.shared.wait.trigger(id, result.map(|()| Applied::Done));
                }
                Err(e) => {
                    tracing::error!(index = entry.index, error = %e, "undecodable conf change skipped");
                    self.mark_applied(applying).map_err(stop)?;
                }
            },
            Ok(EntryType::EntryConfChangeV2) | Err(_) => {
                tracing::error!(
                    index = entry.index,
                    entry_type = entry.entry_type,
                    "unsupported entry type skipped"
                );
                self.mark_applied(applying).map_err(stop)?;
            }
        }
        Ok(())
    }

    /// Records that a new entry was applied without a store write of its own.
    fn mark_applied(&self, entry: Applying) -> Result<(), ServerError> {
        if let Applying::New(at) = entry {
            self.shared.store().set_consistent_index(at)?;
        }
        Ok(())
    }

    fn apply_request(&mut self, request: InternalRaftRequest, entry: Applying) -> ApplyResult {
        if let Some(attr) = request.cluster_member_attr_set {
            let attributes = attr.member_attributes.unwrap_or_default();
            tracing::info!(member = %Hex(attr.member_id), name = %attributes.name, "set member attributes");
            self.shared.membership_mut().set_attributes(attr.member_id, attributes);
            self.mark_applied(entry)?;
            return Ok(Applied::Done);
        }
        if let Some(set) = request.cluster_version_set {
            let first = self.shared.membership().cluster_version().is_none();
            let message =
                if first { "set initial cluster version" } else { "updated cluster version" };
            tracing::info!(cluster_version = %set.ver, "{message}");
            // etcd's line, which its e2e harness waits for before using a member.
            tracing::info!(cluster_version = %set.ver, "enabled capabilities for version");
            self.shared.membership_mut().set_cluster_version(set.ver);
            self.mark_applied(entry)?;
            return Ok(Applied::Done);
        }
        let Applying::New(at) = entry else {
            // Applied before the restart; nobody in this process waits for it.
            return Err(ServerError::Stopped);
        };
        failpoint!("apply::store-write", |_| Err(oxetcd_mvcc::Error::Backend(
            "injected failure".into()
        )
        .into()));
        let from = Requester::from_header(request.header.as_ref());
        let authorized =
            auth::authorize(&self.shared.auth.store(), &self.shared.lessor, &from, &request);
        if let Err(e) = authorized {
            self.mark_applied(entry)?;
            return Err(e.into());
        }
        if let Some(refused) = self.shared.alarms().refusal(&request) {
            self.mark_applied(entry)?;
            return Err(refused);
        }
        let store = self.shared.store();
        let watch = &self.watch;
        let result = if let Some(put) = request.put {
            store
                .put(&put, at)
                .map(|w| Applied::Put(published(watch, w)))
                .map_err(ServerError::from)
        } else if let Some(delete) = request.delete_range {
            store
                .delete_range(&delete, at)
                .map(|w| Applied::DeleteRange(published(watch, w)))
                .map_err(ServerError::from)
        } else if let Some(txn) = request.txn {
            store
                .txn(&txn, at)
                .map(|w| Applied::Txn(published(watch, w)))
                .map_err(ServerError::from)
        } else if let Some(grant) = request.lease_grant {
            self.grant_lease(&store, grant.id, grant.ttl, at)
        } else if let Some(revoke) = request.lease_revoke {
            self.revoke_lease(&store, revoke.id, at)
        } else if let Some(checkpoint) = request.lease_checkpoint {
            self.checkpoint_leases(&store, checkpoint, at)
        } else if let Some(alarm) = request.alarm {
            alarm::apply(&self.shared.alarms, &store, &alarm, at).map(Applied::Alarm)
        } else if let Some(compaction) = request.compaction {
            store
                .compact(compaction.revision, at)
                .map(|(resp, done)| {
                    self.watch.compacted(compaction.revision);
                    Applied::Compaction(resp, done)
                })
                .map_err(ServerError::from)
        } else if let Some(result) =
            auth::apply(&self.shared.auth, &request, at.index, std::time::Instant::now())
        {
            self.persist_auth(&store, result, at)
        } else {
            self.mark_applied(entry)?;
            return Err(ServerError::Internal("request kind not served by this version".into()));
        };
        match result {
            // A refused request still occupies its log index.
            Err(e) if !e.is_storage_failure() => {
                self.mark_applied(entry)?;
                Err(e)
            }
            result => result,
        }
    }

    /// Writes what an applied auth request changed to the auth tables, in the same
    /// backend commit as the entry's index.
    fn persist_auth(
        &self,
        store: &Store,
        result: Result<AuthApplied, oxetcd_auth::AuthError>,
        at: ApplyIndex,
    ) -> ApplyResult {
        let changes = self.shared.auth.take_changes();
        if changes.is_empty() {
            store.set_consistent_index(at)?;
        }
        for (table, rows) in changes.tables() {
            store.aux_write(table, rows, at)?;
        }
        Ok(Applied::Auth(result?))
    }

    /// A committed grant: the lease joins the lessor and the lease table (in the same
    /// backend commit as the entry's index).
    fn grant_lease(&self, store: &Store, id: i64, ttl: i64, at: ApplyIndex) -> ApplyResult {
        let lease = self.shared.lessor.grant(id, ttl)?;
        store.aux_write(LEASE_TABLE, [lease.row()], at)?;
        Ok(Applied::LeaseGrant(LeaseGrantResponse {
            header: None,
            id,
            ttl: lease.ttl,
            error: String::new(),
        }))
    }

    /// A committed revoke: every attached key is deleted at one revision (watchers see
    /// the deletes), then the lease leaves the lease table and the lessor. In that order,
    /// as etcd's lessor does it: whoever finds the lease gone (LeaseLeases, TimeToLive)
    /// finds its keys gone too.
    fn revoke_lease(&self, store: &Store, id: i64, at: ApplyIndex) -> ApplyResult {
        let Some(lease) = self.shared.lessor.status(id) else {
            return Err(oxetcd_lease::LeaseError::NotFound.into());
        };
        let keys = lease.keys;
        // The revoke's backend write fails (its keys' deletes, the lease's row): a storage
        // failure like any other, so the member stops. Nothing of it reached the backend,
        // and a restart applies the committed revoke again from the log.
        failpoint!("apply::lease-revoke", |_| Err(oxetcd_mvcc::Error::Backend(
            "injected failure".into()
        )
        .into()));
        if !keys.is_empty() {
            published(&self.watch, store.delete_keys(&keys, at)?);
        }
        store.aux_write(LEASE_TABLE, [(Bytes::copy_from_slice(&id.to_be_bytes()), None)], at)?;
        self.shared.lessor.revoke(id)?;
        Ok(Applied::LeaseRevoke(store.current_revision()))
    }

    /// Committed checkpoints: each lease still there keeps its remaining TTL, in the
    /// lessor and in the lease table, for the next leader or a restart to start from.
    fn checkpoint_leases(
        &self,
        store: &Store,
        request: LeaseCheckpointRequest,
        at: ApplyIndex,
    ) -> ApplyResult {
        let rows: Vec<_> = request
            .checkpoints
            .iter()
            .filter_map(|c| self.shared.lessor.checkpoint(c.id, c.remaining_ttl))
            .map(|lease| lease.row())
            .collect();
        store.aux_write(LEASE_TABLE, rows, at)?;
        Ok(Applied::Done)
    }

    /// Applies a committed conf change to membership, the transport and raft. One that
    /// the members now refuse (etcd's `ValidateConfigurationChange`: an id taken or
    /// removed, peer URLs in use, too many learners, promoting a voter) is refused alike
    /// on every member, and raft applies it as a change of nobody.
    fn apply_conf_change(&mut self, mut cc: ConfChange) -> Result<(), ServerError> {
        let checked = match ConfChangeType::try_from(cc.change_type) {
            Ok(change_type) => {
                self.shared.membership().check_change(change_type, cc.node_id, &cc.context)
            }
            Err(_) => {
                Err(ServerError::Internal(format!("unknown conf change type {}", cc.change_type)))
            }
        };
        let result = match checked {
            Ok(change) => {
                self.member_change(&change);
                Ok(())
            }
            Err(e) => {
                tracing::warn!(member = %Hex(cc.node_id), error = %e, "refused a conf change");
                cc.node_id = 0;
                Err(e)
            }
        };
        let _ = self.control.send(Control::ApplyConfChange(cc));
        let _ = self.inbox.try_send(Input::Wake);
        result
    }

    fn member_change(&mut self, change: &MemberChange) {
        let local = self.shared.member_id;
        match change {
            MemberChange::Add(m) => {
                let kind = if m.is_learner { "added learner member" } else { "added member" };
                tracing::info!(member = %Hex(m.id), peers = ?m.peer_ur_ls, "{kind}");
                if m.id != local {
                    self.transport.add_peer(m.id, m.peer_ur_ls.clone());
                }
            }
            MemberChange::Promote(id) => {
                tracing::info!(member = %Hex(*id), "promoted learner member")
            }
            MemberChange::Remove(id) => {
                tracing::info!(member = %Hex(*id), "removed member");
                if *id != local {
                    self.transport.remove_peer(*id);
                }
            }
            MemberChange::Update(m) => {
                tracing::info!(member = %Hex(m.id), peers = ?m.peer_ur_ls, "updated member");
                if m.id != local {
                    self.transport.update_peer(m.id, m.peer_ur_ls.clone());
                }
            }
        }
        self.shared.membership_mut().apply_change(change);
        if *change == MemberChange::Remove(local) {
            self.shared.stop_removed();
        }
    }

    /// Every `snapshot_count` entries: make the backend durable, then ask the raft loop
    /// to snapshot, so the WAL files it then drops are covered by what is on disk. Every
    /// [`LOG_TRIM_EVERY`] entries in between: ask it to let go of the log it holds in
    /// memory (the WAL keeps it).
    fn after_applied(&mut self, applied: u64) -> Result<(), Fatal> {
        let snapshot_due = applied >= self.last_snapshot + self.snapshot_count;
        if !snapshot_due && applied < self.last_trim + LOG_TRIM_EVERY {
            return Ok(());
        }
        let data = Bytes::from(self.shared.membership().to_state().encode_to_vec());
        let control = if snapshot_due {
            self.shared
                .store()
                .force_commit()
                .map_err(|e| Fatal::new("committing the backend before a snapshot", e))?;
            self.last_snapshot = applied;
            Control::Snapshot { index: applied, data }
        } else {
            Control::TrimLog { index: applied, data }
        };
        self.last_trim = applied;
        let _ = self.control.send(control);
        let _ = self.inbox.try_send(Input::Wake);
        Ok(())
    }

    /// etcd's merged snapshot: the follower gets the backend as it is now, and the
    /// raft snapshot is rewritten to the position that backend holds. The backend and
    /// membership are taken here, between two entries, so they agree; the copy (the
    /// whole backend, fsynced) is written on a thread of its own, for apply not to stall
    /// on it. A failed commit stops the member; a failed copy is reported to raft, which
    /// tries again later.
    fn send_snapshot(&mut self, mut msg: Message) -> Result<(), Fatal> {
        let to = msg.to;
        // Raft asks for a peer's snapshot again only once it has given up on the last
        // one. If that one is still being copied, its outcome, reported when the copy or
        // the transfer ends, answers both: a second copy would only race it for the file.
        if !lock(&self.copying).insert(to) {
            tracing::warn!(to = %Hex(to), "a snapshot for this member is still being copied");
            return Ok(());
        }
        let pinned = match self.shared.store().pin_snapshot() {
            Ok(pinned) => pinned,
            Err(e) => {
                lock(&self.copying).remove(&to);
                return Err(Fatal::new("committing the backend for a snapshot", e));
            }
        };
        let membership = self.shared.membership();
        let at = pinned.at().index;
        msg.snapshot = Some(Snapshot {
            data: membership.to_state().encode_to_vec().into(),
            metadata: Some(SnapshotMetadata {
                conf_state: Some(membership.conf_state()),
                index: at.index,
                term: at.term,
            }),
        });
        drop(membership);
        let copy = SnapshotCopy {
            msg,
            pinned,
            // One file per peer: raft sends a peer no new snapshot before the last one's
            // outcome is reported, so the file is free to overwrite.
            path: self.snap_dir.join(format!("send-{to:016x}.snap.db")),
            transport: self.transport.clone(),
            copying: self.copying.clone(),
        };
        let inbox = self.inbox.clone();
        let spawned = std::thread::Builder::new()
            .name("oxetcd-snapshot-copy".into())
            .spawn(move || copy.run(&inbox));
        if let Err(e) = spawned {
            tracing::error!(to = %Hex(to), error = %e, "cannot start copying the backend for a snapshot");
            lock(&self.copying).remove(&to);
            let _ = self.inbox.try_send(Input::SnapshotStatus(to, SnapshotStatus::Failure));
        }
        Ok(())
    }

    /// Replaces the backend with the one that came with the leader's snapshot, and
    /// membership with the snapshot's.
    fn install_snapshot(&mut self, snapshot: Snapshot) -> Result<(), ServerError> {
        let meta = snapshot.metadata.unwrap_or_default();
        let received = self.snap_dir.join(oxetcd_transport::received_snapshot_file(meta.index));
        let io = |e: std::io::Error| ServerError::Internal(format!("{}: {e}", received.display()));
        if !received.exists() {
            return Err(ServerError::Internal(format!(
                "snapshot backend {} is missing",
                received.display()
            )));
        }
        let state =
            etcd_encoding::decode_snapshot_state(snapshot.data).map_err(ServerError::Internal)?;
        // The received backend cannot be put in place (this member's own disk): the
        // member stops. The raft loop has saved the snapshot already, so the next start
        // finds the received file under the snapshot's index and swaps it in then.
        failpoint!("apply::snapshot-install", |_| Err(oxetcd_mvcc::Error::Backend(
            "injected failure".into()
        )
        .into()));
        // The old store keeps its (now unlinked) file until its last reader is done. A
        // defragmentation of the old store would rename its copy over this file: it
        // finishes first.
        let _no_defrag = self.shared.backend_swap.lock().unwrap_or_else(|e| e.into_inner());
        std::fs::rename(&received, &self.backend).map_err(io)?;
        std::fs::File::open(&self.snap_dir).and_then(|d| d.sync_all()).map_err(io)?;
        // The new store reattaches its keys as it opens; the leases come from its table.
        self.shared.lessor.reset(std::iter::empty());
        let store =
            Store::open_path(&self.backend, self.store_config.clone(), self.shared.lessor.clone())?;
        let leases = store.aux_scan(LEASE_TABLE)?;
        let leases =
            leases.into_iter().map(|(_, v)| StoredLease::decode(v)).collect::<Result<Vec<_>, _>>();
        self.shared
            .lessor
            .recover(leases.map_err(|e| ServerError::Internal(format!("lease table: {e}")))?);
        let auth_store = crate::server::stored_auth(&store)?;
        self.shared.auth.replace_store(auth_store);
        *self.shared.alarms.write().unwrap_or_else(|e| e.into_inner()) = Alarms::recover(&store)?;
        let consistent = store.consistent_index();
        self.shared.replace_store(Arc::new(store));
        self.watch.store_replaced();

        let membership = Membership::from_state(state);
        let old = self.shared.membership().ids();
        for member in membership.members() {
            if member.id != self.shared.member_id {
                if old.contains(&member.id) {
                    self.transport.update_peer(member.id, member.peer_ur_ls);
                } else {
                    self.transport.add_peer(member.id, member.peer_ur_ls);
                }
            }
        }
        for id in old {
            if membership.member(id).is_none() {
                self.transport.remove_peer(id);
            }
        }
        membership.announce_recovered_version();
        self.shared.replace_membership(membership);
        self.shared.applied.send_replace(meta.index);
        self.last_snapshot = meta.index;
        self.last_trim = meta.index;
        tracing::info!(
            index = meta.index,
            backend_index = consistent.index,
            "installed snapshot from the leader"
        );
        Ok(())
    }
}

/// A follower's snapshot being written: the pinned backend, copied to `path`, then
/// handed to the transport with the raft message.
struct SnapshotCopy {
    msg: Message,
    pinned: PinnedSnapshot,
    path: PathBuf,
    transport: Arc<Transport>,
    copying: Arc<Mutex<HashSet<u64>>>,
}

impl SnapshotCopy {
    fn run(self, inbox: &BoundedSender<Input>) {
        let to = self.msg.to;
        let _ = std::fs::remove_file(&self.path);
        let saved = self.pinned.save(&self.path);
        // From here raft waits for the transfer's outcome before it asks again.
        lock(&self.copying).remove(&to);
        match saved {
            Ok(saved) => {
                tracing::info!(to = %Hex(to), index = saved.at.index.index, bytes = saved.bytes, "sending merged snapshot");
                self.transport.send_snapshot(self.msg, self.path);
            }
            Err(e) => {
                tracing::error!(to = %Hex(to), error = %e, "cannot copy the backend for a snapshot");
                let _ = inbox.try_send(Input::SnapshotStatus(to, SnapshotStatus::Failure));
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave a set of ids inconsistent.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Hands a write's events to the watchers, before anyone hears of the write.
fn published<T>(watch: &WatchHub, written: WriteResult<T>) -> T {
    watch.publish(&written.events);
    written.response
}
