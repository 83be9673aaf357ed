//! The application-facing driver: inputs (`tick`, `step`, `propose`, ...) and the
//! `Ready`/`advance` output cycle.

use crate::config::Config;
use crate::errors::{Error, Result};
use crate::raft::{Raft, SoftState};
use crate::read_only::ReadState;
use crate::status::Status;
use crate::storage::Storage;
use crate::types::{ConfChangeI, ConfState, Entry, HardState, Message, MessageType, Snapshot};
use bytes::Bytes;

/// Outcome of sending a snapshot, reported through [`RawNode::report_snapshot`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotStatus {
    /// The follower received the snapshot.
    Finish,
    /// Sending failed; the leader will probe again later.
    Failure,
}

/// Everything the application must do after the node's state changed. Handle it in this
/// order, then call [`RawNode::advance`]:
///
/// 1. Send `messages` (may happen in parallel with step 2).
/// 2. Persist `snapshot`, `entries` and `hard_state` (fsync if `must_sync`).
/// 3. Send `persisted_messages` (only after step 2 is durable).
/// 4. Apply `snapshot`, then `committed_entries` (calling [`RawNode::apply_conf_change`] for
///    conf-change entries); serve `read_states` once applied up to their index.
/// 5. Call [`RawNode::advance`] with this Ready.
///
/// Calling [`RawNode::ready`] again before advancing is allowed: a later Ready carries only
/// what is new, so several can be in flight; they must be persisted and advanced in the
/// order they were returned.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Ready {
    /// New leader/role, if changed since the last Ready.
    pub soft_state: Option<SoftState>,
    /// New term/vote/commit to persist, if changed since the last Ready.
    pub hard_state: Option<HardState>,
    /// Answers to read-index requests made on this node.
    pub read_states: Vec<ReadState>,
    /// Entries to append to stable storage (replacing any conflicting suffix).
    pub entries: Vec<Entry>,
    /// Snapshot to persist and apply.
    pub snapshot: Option<Snapshot>,
    /// Committed entries to apply, in order (size-limited; more follow in later Readys).
    pub committed_entries: Vec<Entry>,
    /// Messages that may be sent immediately, before persisting: a leader's appends,
    /// heartbeats and the like, once its term and vote are durable.
    pub messages: Vec<Message>,
    /// Messages that may only be sent after `entries`, `hard_state` and `snapshot` are
    /// durable (votes, append acknowledgements, anything from a non-leader).
    pub persisted_messages: Vec<Message>,
    /// Whether the writes must be synced to disk (entries, term or vote changed). A change of
    /// the commit index alone can be written lazily.
    pub must_sync: bool,
}

/// A raft node without threads: the application drives it.
pub struct RawNode<S: Storage> {
    pub(crate) raft: Raft<S>,
    prev_soft_state: SoftState,
    prev_hard_state: HardState,
}

impl<S: Storage> RawNode<S> {
    /// Creates a node over `store`; membership comes from `store.initial_state()`.
    pub fn new(config: &Config, store: S) -> Result<Self> {
        let raft = Raft::new(config, store)?;
        let prev_soft_state = raft.soft_state();
        let prev_hard_state = raft.hard_state();
        Ok(RawNode { raft, prev_soft_state, prev_hard_state })
    }

    /// Advances the logical clock.
    pub fn tick(&mut self) {
        self.raft.tick();
    }

    /// Starts an election now (if this node is a voter).
    pub fn campaign(&mut self) -> Result<()> {
        self.raft.step(Message::new(MessageType::MsgHup))
    }

    /// Proposes `data` for the log. `Err(ProposalDropped)` means it certainly was not
    /// appended; `Ok` does not mean it will commit (a forwarded proposal may be lost).
    pub fn propose(&mut self, data: impl Into<Bytes>) -> Result<()> {
        self.propose_entries(vec![Entry::normal(data)])
    }

    /// Proposes several entries at once (one message, one append).
    pub fn propose_entries(&mut self, entries: Vec<Entry>) -> Result<()> {
        let mut m = Message::new(MessageType::MsgProp);
        m.from = self.raft.id;
        m.entries = entries;
        self.raft.step(m)
    }

    /// Proposes a membership change ([`crate::ConfChange`] or [`ConfChangeV2`]).
    pub fn propose_conf_change(&mut self, cc: &impl ConfChangeI) -> Result<()> {
        self.propose_entries(vec![cc.to_entry()])
    }

    /// Applies a committed membership change (call while applying its entry).
    pub fn apply_conf_change(&mut self, cc: &impl ConfChangeI) -> Result<ConfState> {
        self.raft.apply_conf_change(&cc.as_v2())
    }

    /// Feeds a message received from a peer. Local message kinds and responses from
    /// unknown peers are refused.
    pub fn step(&mut self, m: Message) -> Result<()> {
        let t = m.msg_type();
        if MessageType::try_from(m.msg_type).is_ok_and(MessageType::is_local) {
            return Err(Error::StepLocalMsg);
        }
        if t.is_response() && !self.raft.prs.progress.contains_key(&m.from) {
            return Err(Error::StepPeerNotFound);
        }
        self.raft.step(m)
    }

    /// Requests a linearizable read; the answer arrives as a [`ReadState`] carrying `ctx`,
    /// which must be unique among outstanding requests.
    pub fn read_index(&mut self, ctx: impl Into<Bytes>) -> Result<()> {
        let mut m = Message::new(MessageType::MsgReadIndex);
        m.entries = vec![Entry::normal(ctx)];
        self.raft.step(m)
    }

    /// Asks to hand leadership to `transferee`. On the leader this starts the transfer; on a
    /// follower only `transferee == own id` is forwarded to the leader.
    pub fn transfer_leader(&mut self, transferee: u64) {
        let mut m = Message::new(MessageType::MsgTransferLeader);
        m.from = transferee;
        // Only "no leader" can fail here, which a caller cannot act upon besides retrying.
        let _ = self.raft.step(m);
    }

    /// The transport could not deliver to `id`.
    pub fn report_unreachable(&mut self, id: u64) {
        let mut m = Message::new(MessageType::MsgUnreachable);
        m.from = id;
        let _ = self.raft.step(m);
    }

    /// Result of sending a snapshot to `id`.
    pub fn report_snapshot(&mut self, id: u64, status: SnapshotStatus) {
        let mut m = Message::new(MessageType::MsgSnapStatus);
        m.from = id;
        m.reject = status == SnapshotStatus::Failure;
        let _ = self.raft.step(m);
    }

    /// Whether [`RawNode::ready`] has anything to hand out.
    pub fn has_ready(&self) -> bool {
        let r = &self.raft;
        if r.soft_state() != self.prev_soft_state {
            return true;
        }
        let hs = r.hard_state();
        if !hs.is_empty() && hs != self.prev_hard_state {
            return true;
        }
        r.raft_log.next_unstable_snapshot().is_some()
            || !r.raft_log.next_unstable_entries().is_empty()
            || !r.msgs.is_empty()
            || !r.msgs_after_persist.is_empty()
            || !r.read_states.is_empty()
            || r.raft_log.has_next_entries()
    }

    /// Collects pending work. Everything is handed out once (entries, snapshot, committed
    /// entries, messages, read states); only the hard and soft states are repeated until
    /// [`RawNode::advance`] confirms them.
    pub fn ready(&mut self) -> Ready {
        let r = &mut self.raft;
        let soft = r.soft_state();
        let hs = r.hard_state();
        let entries = r.raft_log.next_unstable_entries().to_vec();
        let snapshot = r.raft_log.next_unstable_snapshot().cloned();
        r.raft_log.accept_unstable();
        let term_or_vote_changed =
            hs.term != self.prev_hard_state.term || hs.vote != self.prev_hard_state.vote;
        let must_sync = !entries.is_empty() || snapshot.is_some() || term_or_vote_changed;
        let mut messages = std::mem::take(&mut r.msgs);
        let mut persisted_messages = std::mem::take(&mut r.msgs_after_persist);
        if term_or_vote_changed {
            // Nothing may leave before a new term or vote is durable. (A leader never has a
            // non-durable term: a candidate asks others only after persisting and counts its
            // own vote only once persisted. This keeps it so whatever produced the message.)
            messages.append(&mut persisted_messages);
            persisted_messages = messages;
            messages = Vec::new();
        }
        let committed_entries = r.raft_log.next_entries();
        if let Some(last) = committed_entries.last() {
            r.raft_log.applying_to(last.index);
        }
        Ready {
            soft_state: (soft != self.prev_soft_state).then_some(soft),
            hard_state: (hs != self.prev_hard_state).then_some(hs),
            read_states: std::mem::take(&mut r.read_states),
            entries,
            snapshot,
            committed_entries,
            messages,
            persisted_messages,
            must_sync,
        }
    }

    /// Confirms that `rd` was persisted, sent and applied as documented on [`Ready`].
    pub fn advance(&mut self, rd: Ready) {
        if let Some(ss) = rd.soft_state {
            self.prev_soft_state = ss;
        }
        if let Some(hs) = rd.hard_state {
            self.prev_hard_state = hs;
        }
        let snapshot_index = rd.snapshot.as_ref().map(Snapshot::index);
        let last_entry = rd.entries.last().map(|e| (e.index, e.term));
        self.raft.on_persisted(rd.hard_state, last_entry, snapshot_index);
        if let Some(index) = snapshot_index {
            self.raft.on_applied(index);
        }
        if let Some(last) = rd.committed_entries.last() {
            self.raft.on_applied(last.index);
        }
        self.raft.reduce_uncommitted_size(&rd.committed_entries);
    }

    /// The protocol state (read-only: all changes go through the methods above).
    pub fn raft(&self) -> &Raft<S> {
        &self.raft
    }

    /// Current status.
    pub fn status(&self) -> Status {
        Status::new(&self.raft)
    }

    /// The storage (e.g. to append what a Ready handed out).
    pub fn store(&self) -> &S {
        self.raft.raft_log.store()
    }

    /// Mutable access to the storage.
    pub fn mut_store(&mut self) -> &mut S {
        &mut self.raft.raft_log.store
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::StateRole;
    use crate::storage::MemStorage;
    use crate::types::ConfState;

    fn single() -> RawNode<MemStorage> {
        let store =
            MemStorage::new_with_conf_state(ConfState { voters: vec![1], ..Default::default() });
        RawNode::new(&Config::new(1), store).unwrap()
    }

    fn persist(n: &mut RawNode<MemStorage>, rd: &Ready) {
        if let Some(s) = &rd.snapshot {
            n.mut_store().apply_snapshot(s.clone()).unwrap();
        }
        n.mut_store().append(&rd.entries);
        if let Some(hs) = rd.hard_state {
            n.mut_store().set_hard_state(hs);
        }
    }

    #[test]
    fn single_node_commits_after_persisting() {
        let mut n = single();
        n.campaign().unwrap();
        let rd = n.ready();
        assert_eq!(rd.soft_state.unwrap().raft_state, StateRole::Candidate);
        assert_eq!(rd.hard_state.map(|h| (h.term, h.vote)), Some((1, 1)));
        assert!(rd.must_sync, "our vote for ourselves counts once durable");
        persist(&mut n, &rd);
        n.advance(rd);
        assert_eq!(n.raft().state(), StateRole::Leader);
        let rd = n.ready();
        assert_eq!(rd.soft_state.unwrap().leader_id, 1);
        assert_eq!(rd.entries.len(), 1, "the leader's empty entry");
        assert!(rd.committed_entries.is_empty(), "nothing commits before it is persisted");
        persist(&mut n, &rd);
        n.advance(rd);
        n.propose(&b"x"[..]).unwrap();
        let rd = n.ready();
        assert_eq!(rd.committed_entries.len(), 1, "the empty entry committed");
        assert_eq!(rd.entries.len(), 1);
        persist(&mut n, &rd);
        n.advance(rd);
        let rd = n.ready();
        assert_eq!(rd.committed_entries[0].data.as_ref(), b"x");
        assert!(!rd.must_sync, "a commit-only change needs no sync");
        persist(&mut n, &rd);
        n.advance(rd);
        assert!(!n.has_ready());
        assert_eq!(n.status().applied, 2);
    }

    #[test]
    fn committed_entries_are_handed_out_once() {
        let mut n = single();
        n.campaign().unwrap();
        for _ in 0..2 {
            // Candidate, then leader with its empty entry.
            let rd = n.ready();
            persist(&mut n, &rd);
            n.advance(rd);
        }
        let first = n.ready();
        assert_eq!(first.committed_entries.len(), 1);
        let second = n.ready();
        assert!(second.committed_entries.is_empty());
        n.advance(first);
        n.advance(second);
        assert_eq!(n.status().applied, 1);
        assert!(!n.has_ready());
    }

    #[test]
    fn step_refuses_local_messages_and_unknown_peers() {
        let mut n = single();
        assert_eq!(n.step(Message::new(MessageType::MsgHup)), Err(Error::StepLocalMsg));
        let mut m = Message::new(MessageType::MsgAppResp);
        m.from = 9;
        m.term = 1;
        assert_eq!(n.step(m), Err(Error::StepPeerNotFound));
        let mut bad = Message::new(MessageType::MsgApp);
        bad.msg_type = 1234;
        assert_eq!(n.step(bad), Ok(()), "unknown kinds are ignored");
    }
}
