//! The raft loop: one thread owns the raft state machine, the WAL and the snapshot
//! files. It ticks, steps what arrives, and turns each `Ready` into I/O in the order
//! the raft contract requires:
//!
//! 1. messages that may go out at once (the leader's appends): sent first, so the
//!    leader's fsync overlaps replication;
//! 2. a snapshot, if any: saved to a snap file and marked in the WAL;
//! 3. entries and hard state: appended to the WAL with one fdatasync (group commit:
//!    every proposal that arrived since the last Ready shares it);
//! 4. messages that must follow persistence (votes, append responses);
//! 5. committed entries: handed to the apply thread over a bounded channel, which
//!    stalls this loop, and so new proposals, when apply falls behind. Entries the WAL
//!    already held before this Ready go right after step 1;
//! 6. advance.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use oxetcd_raft::progress::ProgressState;
use oxetcd_raft::{
    ConfChange, ConfState, Entry, MemStorage, Message, MessageType, RawNode, Ready, Snapshot,
    SnapshotStatus, StateRole, Storage,
};
use oxetcd_wal::{Snapshotter, Wal, WalSnapshot};

use crate::error::{Fatal, ServerError};
use crate::id::Hex;
use crate::inbox::BoundedReceiver;
use crate::state::Shared;
use crate::stats::ServerStats;

/// Inputs from the rest of the server, over a bounded channel.
pub(crate) enum Input {
    /// Propose an encoded `InternalRaftRequest`; its waiter is registered under `id`.
    Propose {
        id: u64,
        data: Bytes,
    },
    /// Propose a membership change; its waiter is registered under `cc.id`.
    ProposeConfChange(ConfChange),
    /// Hand leadership to this voter (raft's leadership transfer).
    TransferLeader(u64),
    /// The leader's view of how far each member's log matches its own: `None` on a
    /// member that does not lead.
    Progress(tokio::sync::oneshot::Sender<Option<Vec<(u64, u64)>>>),
    /// A raft message from a peer.
    Step(Box<Message>),
    /// Messages to this peer could not be delivered.
    Unreachable(u64),
    /// How sending a snapshot to this peer ended.
    SnapshotStatus(u64, SnapshotStatus),
    /// Start a ReadIndex round identified by `ctx`.
    ReadIndex(u64),
    /// Something is waiting on the control channel.
    Wake,
    Stop,
}

/// Requests from the apply thread. They travel on their own channel so the two threads
/// never wait on each other's full queues; it stays small because raft allows one
/// pending conf change at a time and the apply thread asks for one snapshot, or one
/// trim of the log, per [`LOG_TRIM_EVERY`] entries it applies.
pub(crate) enum Control {
    ApplyConfChange(ConfChange),
    /// Snapshot the state machine at `index` (the backend is durable up to it): on disk,
    /// then trim the log as [`Control::TrimLog`] does and purge WAL and snap files.
    Snapshot {
        index: u64,
        data: Bytes,
    },
    /// The apply thread has applied up to `index`: let go of the log in memory up to
    /// the catch-up entries (WAL files stay until the next snapshot on disk).
    TrimLog {
        index: u64,
        data: Bytes,
    },
}

/// How many applied entries apart the apply thread asks the raft loop to trim the log
/// held in memory. etcd cuts it only at a snapshot, every `--snapshot-count` (100,000)
/// entries, so its memory holds up to that many whole requests (etcd issues #7162,
/// #17098); trimming this often holds `--snapshot-catchup-entries` plus this many. Each
/// trim moves the entries kept (a few hundred KiB at the defaults), so not every entry.
pub(crate) const LOG_TRIM_EVERY: u64 = 1_000;

/// The most entry payload the log in memory keeps for followers beyond what the
/// catch-up count alone would: 5,000 entries of 1.5 MiB (etcd's largest request) would
/// be 7 GiB. A follower further behind than this gets a snapshot. Not in etcd, which
/// keeps whatever the count allows.
pub(crate) const LOG_BYTES_HELD: u64 = 64 << 20;

/// Work for the apply thread, in log order.
pub(crate) enum ApplyTask {
    Entries(Vec<Entry>),
    /// Raft wants a follower to get a snapshot: send it the current backend.
    SendSnapshot(Box<Message>),
    /// A snapshot from the leader was persisted: install its backend before applying
    /// anything after it.
    InstallSnapshot(Box<Snapshot>),
    Stop,
}

/// Where raft messages for other members go.
pub trait Outbox: Send + Sync {
    /// Must not block; a message that cannot be queued is dropped (raft retries).
    fn send(&self, msgs: Vec<Message>);
}

/// How many inputs one loop turn takes before handling a Ready: large enough to group
/// many proposals under one fsync, small enough to keep ticks on time.
const MAX_INPUTS_PER_TURN: usize = 4096;

/// What the raft loop was doing when the WAL failed under it.
const SAVING_ENTRIES: &str = "saving raft entries to the WAL";

/// An fsync slower than this is worth a warning (etcd's threshold).
pub(crate) const SLOW_FSYNC: Duration = Duration::from_millis(100);

/// Snapshot and WAL retention, from the flags of the same names.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Retention {
    pub snapshot_catchup_entries: u64,
    /// How much further back than `snapshot_catchup_entries` a leader keeps the log for
    /// a follower that is replicating but behind.
    pub max_held_for_followers: u64,
    /// The most payload kept in memory, whatever the counts allow ([`LOG_BYTES_HELD`]).
    pub max_bytes_held: u64,
    pub max_snapshots: usize,
    pub max_wals: usize,
}

pub(crate) struct RaftLoop {
    pub node: RawNode<MemStorage>,
    pub wal: Wal,
    pub snapshotter: Snapshotter,
    pub conf_state: ConfState,
    pub shared: Arc<Shared>,
    pub inbox: BoundedReceiver<Input>,
    pub control: Receiver<Control>,
    pub apply_tx: SyncSender<ApplyTask>,
    pub outbox: Arc<dyn Outbox>,
    pub tick: Duration,
    /// Election timeout in ticks: how much a new leader extends every lease.
    pub election_ticks: u32,
    pub retention: Retention,
    /// When the last heartbeat went to each follower, while leading.
    pub last_heartbeat: HashMap<u64, Instant>,
}

impl RaftLoop {
    /// Runs until stopped, until storage fails here, or until the apply thread stops the
    /// member; either way the server is marked stopped and the apply thread told to
    /// finish.
    pub(crate) fn run(mut self) {
        if let Err(fatal) = self.run_until_stopped() {
            self.shared.fail_stop(fatal);
        }
        self.shared.stopped.store(true, Ordering::SeqCst);
        let _ = self.apply_tx.send(ApplyTask::Stop);
    }

    fn run_until_stopped(&mut self) -> Result<(), Fatal> {
        let mut next_tick = Instant::now() + self.tick;
        loop {
            if self.shared.is_stopped() {
                return Ok(());
            }
            let wait = next_tick.saturating_duration_since(Instant::now());
            match self.inbox.recv_timeout(wait) {
                Ok(Input::Stop) | Err(RecvTimeoutError::Disconnected) => return Ok(()),
                Ok(input) => {
                    self.handle(input);
                    for _ in 0..MAX_INPUTS_PER_TURN {
                        match self.inbox.try_recv() {
                            Ok(Input::Stop) => return Ok(()),
                            Ok(input) => self.handle(input),
                            Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            self.handle_control()?;
            let now = Instant::now();
            if now >= next_tick {
                self.node.tick();
                // After a long stall, tick once and resynchronize rather than burst.
                next_tick = (next_tick + self.tick).max(now);
            }
            // Advancing can make the next Ready ready at once (a single member's entry
            // commits once persisted): handle them all before waiting for input, or a
            // lone proposal would wait for the next tick.
            while self.node.has_ready() {
                let ready = self.node.ready();
                self.on_ready(ready)?;
            }
        }
    }

    fn handle(&mut self, input: Input) {
        match input {
            Input::Propose { id, data } => {
                if let Err(e) = self.node.propose(data) {
                    tracing::debug!(error = %e, "proposal dropped");
                    ServerStats::bump(&self.shared.stats.proposals_failed);
                    self.shared.wait.trigger(id, Err(ServerError::NoLeader));
                }
            }
            Input::ProposeConfChange(cc) => {
                if let Err(e) = self.node.propose_conf_change(&cc) {
                    tracing::debug!(error = %e, "conf change dropped");
                    self.shared.wait.trigger(cc.id, Err(ServerError::NoLeader));
                }
            }
            Input::TransferLeader(to) => self.node.transfer_leader(to),
            Input::Progress(reply) => {
                let status = self.node.status();
                let matched = (status.soft_state.raft_state == StateRole::Leader)
                    .then(|| status.progress.iter().map(|(id, pr)| (*id, pr.matched)).collect());
                let _ = reply.send(matched);
            }
            Input::Step(msg) => {
                if let Err(e) = self.node.step(*msg) {
                    tracing::debug!(error = %e, "raft message ignored");
                }
            }
            Input::Unreachable(id) => self.node.report_unreachable(id),
            Input::SnapshotStatus(id, status) => self.node.report_snapshot(id, status),
            Input::ReadIndex(ctx) => {
                if let Err(e) = self.node.read_index(Bytes::copy_from_slice(&ctx.to_be_bytes())) {
                    tracing::debug!(error = %e, "read index dropped");
                    self.shared.fail_read(ctx);
                }
            }
            Input::Wake | Input::Stop => {}
        }
    }

    fn handle_control(&mut self) -> Result<(), Fatal> {
        while let Ok(control) = self.control.try_recv() {
            match control {
                Control::ApplyConfChange(cc) => match self.node.apply_conf_change(&cc) {
                    Ok(conf_state) => {
                        self.node.mut_store().set_conf_state(conf_state.clone());
                        self.conf_state = conf_state;
                    }
                    Err(e) => tracing::warn!(error = %e, "conf change not applied"),
                },
                Control::Snapshot { index, data } => self.snapshot(index, data)?,
                Control::TrimLog { index, data } => {
                    self.trim_log(index, data)?;
                }
            }
        }
        Ok(())
    }

    fn on_ready(&mut self, mut ready: Ready) -> Result<(), Fatal> {
        if let Some(soft) = &ready.soft_state {
            self.on_soft_state(soft.leader_id, soft.raft_state);
        }
        for read in ready.read_states.drain(..) {
            if let Ok(ctx) = <[u8; 8]>::try_from(read.request_ctx.as_ref()) {
                self.shared.complete_read(u64::from_be_bytes(ctx), read.index);
            }
        }
        let messages = std::mem::take(&mut ready.messages);
        self.send(messages)?;

        // Entries committed up to what the WAL already holds are durable here and on a
        // quorum: apply need not wait for this Ready's fdatasync (a leader's Ready often
        // carries new proposals along with the commit of earlier ones). etcd hands them
        // over first too. After a snapshot, or for entries of this very Ready, it waits.
        let apply_first = ready.snapshot.is_none()
            && ready.committed_entries.last().is_some_and(|e| e.index <= self.wal.last_index());
        if apply_first {
            self.hand_committed(&ready)?;
        }
        // `advance` reads the snapshot too, so it stays in the Ready.
        if let Some(snapshot) = &ready.snapshot {
            self.persist_snapshot(snapshot)?;
            self.to_apply(ApplyTask::InstallSnapshot(Box::new(snapshot.clone())))?;
        }
        let hard_state = ready.hard_state.unwrap_or_default();
        failpoint!("raft::wal-save", |_| Err(Fatal::new(SAVING_ENTRIES, "injected failure")));
        let started = Instant::now();
        self.wal
            .save(&hard_state, &ready.entries, ready.must_sync)
            .map_err(|e| Fatal::new(SAVING_ENTRIES, e))?;
        // Durable but not yet acknowledged to raft: the member must stop, and a restart
        // must find the entries.
        failpoint!("raft::wal-save-after", |_| Err(Fatal::new(SAVING_ENTRIES, "injected failure")));
        let took = started.elapsed();
        if took > SLOW_FSYNC {
            tracing::warn!(took = ?took, expected = ?SLOW_FSYNC, "slow fdatasync");
        }
        let storage = self.node.mut_store();
        storage.append(&ready.entries);
        if let Some(hs) = ready.hard_state {
            storage.set_hard_state(hs);
            self.shared.term.store(hs.term, Ordering::SeqCst);
        }
        let messages = std::mem::take(&mut ready.persisted_messages);
        self.send(messages)?;

        if !apply_first {
            self.hand_committed(&ready)?;
        }
        self.node.advance(ready);
        Ok(())
    }

    fn hand_committed(&self, ready: &Ready) -> Result<(), Fatal> {
        if let Some(last) = ready.committed_entries.last() {
            self.shared.committed.fetch_max(last.index, Ordering::SeqCst);
            // `advance` reads the committed entries to move raft's applied index, so the
            // apply thread gets a copy (entry data is shared, not copied).
            self.to_apply(ApplyTask::Entries(ready.committed_entries.clone()))?;
        }
        Ok(())
    }

    /// Sends raft messages; a snapshot goes through the apply thread, which knows what
    /// the backend holds and ships it with the message.
    fn send(&mut self, mut messages: Vec<Message>) -> Result<(), Fatal> {
        if self.shared.is_stopped() {
            // The apply thread stopped the member during this Ready: a member whose
            // storage failed acknowledges and votes no more.
            return Ok(());
        }
        let snapshot = MessageType::MsgSnap as i32;
        if messages.iter().any(|m| m.msg_type == snapshot) {
            let (snapshots, rest): (Vec<Message>, Vec<Message>) =
                messages.into_iter().partition(|m| m.msg_type == snapshot);
            messages = rest;
            for msg in snapshots {
                self.to_apply(ApplyTask::SendSnapshot(Box::new(msg)))?;
            }
        }
        self.watch_heartbeats(&messages);
        self.outbox.send(messages);
        Ok(())
    }

    /// Counts heartbeats that leave later than twice the heartbeat interval after the
    /// previous one to the same follower: a leader that cannot keep time (slow disk,
    /// starved CPU) risks elections (etcd's heartbeat send failures).
    fn watch_heartbeats(&mut self, messages: &[Message]) {
        let heartbeat = MessageType::MsgHeartbeat as i32;
        let now = Instant::now();
        for msg in messages.iter().filter(|m| m.msg_type == heartbeat) {
            if let Some(last) = self.last_heartbeat.insert(msg.to, now)
                && now.duration_since(last) > 2 * self.tick
            {
                ServerStats::bump(&self.shared.stats.heartbeat_send_failures);
                tracing::warn!(to = %Hex(msg.to), late = ?now.duration_since(last), "leader failed to send out heartbeat on time");
            }
        }
    }

    fn to_apply(&self, task: ApplyTask) -> Result<(), Fatal> {
        // The apply thread ends only on a stop, recorded first; if it panicked, this is
        // the record.
        self.apply_tx
            .send(task)
            .map_err(|_| Fatal::new("handing entries to the apply thread", "it has ended"))
    }

    fn on_soft_state(&mut self, leader: u64, role: StateRole) {
        let previous = self.shared.leader.swap(leader, Ordering::SeqCst);
        let leads = role == StateRole::Leader;
        let led = self.shared.is_leader.swap(leads, Ordering::SeqCst);
        if !leads {
            // A new term of leadership starts counting afresh.
            self.last_heartbeat.clear();
        }
        if leads && !led {
            // No lease expires before its clients could reach the new leader.
            self.shared.lessor.promote(self.tick * self.election_ticks);
        } else if led && !leads {
            // Tests widen the moment in which this member no longer leads but its lessor
            // still acts as the leader's (`raft::lessor-demote=sleep(N)`).
            failpoint!("raft::lessor-demote", |_| ());
            self.shared.lessor.demote();
        }
        if previous != leader {
            if leader != 0 {
                ServerStats::bump(&self.shared.stats.leader_changes);
            }
            let term = self.node.status().term();
            self.shared.term.store(term, Ordering::SeqCst);
            if leader == 0 {
                tracing::info!(member = %Hex(self.shared.member_id), term, lost = %Hex(previous), "raft lost leader");
            } else {
                tracing::info!(member = %Hex(self.shared.member_id), term, leader = %Hex(leader), "raft elected leader");
            }
            // Reads waiting on the old leader's ReadIndex will never be answered.
            self.shared.fail_all_reads(ServerError::LeaderChanged);
        }
    }

    /// A snapshot from the leader: keep it on disk before raft's storage adopts it.
    fn persist_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), Fatal> {
        const DURING: &str = "saving the leader's snapshot";
        let meta = snapshot.metadata.clone().unwrap_or_default();
        self.snapshotter.save(snapshot).map_err(|e| Fatal::new(DURING, e))?;
        let marker =
            WalSnapshot { index: meta.index, term: meta.term, conf_state: meta.conf_state.clone() };
        self.wal.save_snapshot(&marker).map_err(|e| Fatal::new(DURING, e))?;
        if let Some(conf_state) = meta.conf_state {
            self.conf_state = conf_state;
        }
        self.node.mut_store().apply_snapshot(snapshot.clone()).map_err(|e| Fatal::new(DURING, e))
    }

    /// Records in raft's storage a snapshot of the state machine at `index` (the one raft
    /// names when a follower needs entries the log no longer holds; the apply thread
    /// makes its content when it sends it, etcd's merged snapshot), then lets go of the
    /// log before the catch-up entries. Memory only. Returns the snapshot and the index
    /// the log was cut at, or `None` when raft's storage has a later snapshot already.
    fn trim_log(&mut self, index: u64, data: Bytes) -> Result<Option<(Snapshot, u64)>, Fatal> {
        let conf_state = self.conf_state.clone();
        let snapshot = match self.node.mut_store().create_snapshot(index, conf_state, data) {
            Ok(snapshot) => snapshot,
            Err(e) => {
                tracing::debug!(error = %e, index, "snapshot skipped");
                return Ok(None);
            }
        };
        let compact_to = self.compact_index(index);
        let storage = self.node.mut_store();
        if compact_to > storage.first_index().unwrap_or(0) {
            storage.compact(compact_to).map_err(|e| Fatal::new("compacting the raft log", e))?;
            tracing::debug!(compact_index = compact_to, "compacted raft logs");
        }
        Ok(Some((snapshot, compact_to)))
    }

    /// Snapshots the state machine at `index` to disk, trims the log in memory as
    /// [`RaftLoop::trim_log`] does, and purges the WAL files before the cut.
    fn snapshot(&mut self, index: u64, data: Bytes) -> Result<(), Fatal> {
        const DURING: &str = "saving a snapshot";
        let Some((snapshot, compact_to)) = self.trim_log(index, data)? else {
            return Ok(());
        };
        let meta = snapshot.metadata.clone().unwrap_or_default();
        failpoint!("raft::snapshot-save", |_| Err(Fatal::new(DURING, "injected failure")));
        self.snapshotter.save(&snapshot).map_err(|e| Fatal::new(DURING, e))?;
        // The file is written, its WAL record not yet: a restart must start from the
        // snapshot before it.
        failpoint!("raft::snapshot-save-after", |_| Err(Fatal::new(DURING, "injected failure")));
        let marker = WalSnapshot { index, term: meta.term, conf_state: meta.conf_state };
        self.wal.save_snapshot(&marker).map_err(|e| Fatal::new(DURING, e))?;
        tracing::info!(index, term = meta.term, compact_index = compact_to, "saved snapshot");

        let purge = |e| Fatal::new("purging old WAL and snapshot files", e);
        for path in self.wal.purge(compact_to, self.retention.max_wals).map_err(purge)? {
            tracing::info!(path = %path.display(), "purged file");
        }
        for path in self.snapshotter.purge(self.retention.max_snapshots).map_err(purge)? {
            tracing::info!(path = %path.display(), "purged file");
        }
        Ok(())
    }

    /// Where the log is cut after a snapshot at `index`: `snapshot_catchup_entries`
    /// before it, or, on a leader, back to the last entry a replicating follower has,
    /// up to `max_held_for_followers` further. A follower that trails a busy leader by a
    /// few thousand entries then catches up from the log; cutting at the fixed distance
    /// (as etcd does) would make the leader copy and ship the whole backend to it. Never
    /// before what keeps the payload held within `max_bytes_held`.
    ///
    /// A member alone in its cluster keeps no catch-up entries: there is no follower to
    /// catch up, and a member added later starts from an empty log, so it needs a
    /// snapshot unless the log still reaches back to the first entry, which a cluster
    /// that has served more than the catch-up count has cut in any case. etcd keeps them
    /// (2 MB of 256-byte puts that nobody reads).
    fn compact_index(&self, index: u64) -> u64 {
        let status = self.node.status();
        let alone = self.conf_state.voters == [status.id]
            && self.conf_state.learners.is_empty()
            && self.conf_state.voters_outgoing.is_empty()
            && self.conf_state.learners_next.is_empty();
        let catchup_entries = if alone { 0 } else { self.retention.snapshot_catchup_entries };
        let replicating = status
            .progress
            .iter()
            .filter(|(id, p)| {
                **id != status.id && p.recent_active && matches!(p.state, ProgressState::Replicate)
            })
            .map(|(_, p)| p.matched);
        let within_bytes = self.node.store().first_index_within(self.retention.max_bytes_held);
        let held_for_followers = self.retention.max_held_for_followers;
        log_cut(index, catchup_entries, held_for_followers, replicating, within_bytes)
    }
}

/// The cut for [`RaftLoop::compact_index`], given the catch-up entries to keep, how much
/// further back a replicating follower may hold the log, what each replicating follower
/// has, and the first index from which the log holds no more than `max_bytes_held`.
fn log_cut(
    index: u64,
    catchup_entries: u64,
    max_held_for_followers: u64,
    replicating: impl Iterator<Item = u64>,
    within_bytes: u64,
) -> u64 {
    let cut = index.saturating_sub(catchup_entries);
    let cut = match replicating.min() {
        Some(matched) if matched < cut => matched.max(cut.saturating_sub(max_held_for_followers)),
        _ => cut,
    };
    cut.max(within_bytes.saturating_sub(1)).min(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// etcd's defaults: 5,000 catch-up entries, snapshots every 100,000 (how far back a
    /// replicating follower may hold the log).
    const CATCHUP: u64 = 5_000;
    const HELD: u64 = 100_000;

    #[test]
    fn the_log_is_kept_for_a_replicating_follower_within_bounds() {
        let cut = |followers: &[u64]| log_cut(200_000, CATCHUP, HELD, followers.iter().copied(), 1);
        assert_eq!(cut(&[]), 195_000, "no follower replicating: the catch-up entries are kept");
        assert_eq!(cut(&[199_990, 196_000]), 195_000, "everyone is close");
        assert_eq!(cut(&[199_990, 187_000]), 187_000, "the slow follower keeps its entries");
        assert_eq!(cut(&[20_000]), 95_000, "holding back is bounded");
        assert_eq!(log_cut(3_000, CATCHUP, HELD, [10].into_iter(), 1), 0, "nothing to cut yet");
        assert_eq!(log_cut(200_000, 0, HELD, [].into_iter(), 1), 200_000, "alone: all applied");
    }

    #[test]
    fn the_log_held_is_bounded_by_its_payload_too() {
        let cut = |followers: &[u64], within_bytes| {
            log_cut(200_000, CATCHUP, HELD, followers.iter().copied(), within_bytes)
        };
        assert_eq!(cut(&[], 190_000), 195_000, "small entries: the count decides");
        assert_eq!(cut(&[], 199_000), 198_999, "large entries: fewer are kept");
        assert_eq!(cut(&[187_000], 190_001), 190_000, "a slow follower keeps no more bytes");
        assert_eq!(cut(&[], 250_000), 200_000, "never past the applied index");
    }
}
