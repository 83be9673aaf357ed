//! The core protocol: roles, terms, elections, replication, reads and membership.
//!
//! [`Raft`] is driven through [`Raft::step`] (messages, including local ones such as
//! `MsgHup`) and [`Raft::tick`]. It never performs I/O: outgoing messages are queued and
//! collected by [`crate::RawNode::ready`].

mod election;
mod follower;
mod leader;
mod membership;

use crate::confchange::{self, Changer};
use crate::config::{Config, ReadOnlyOption};
use crate::errors::{DropReason, Error, Result};
use crate::log::RaftLog;
use crate::progress::{ProgressMap, ProgressState, ProgressTracker, TrackerConfig};
use crate::quorum::VoteResult;
use crate::read_only::{ReadOnly, ReadState};
use crate::storage::Storage;
use crate::types::{
    ConfChangeI, ConfChangeV2, ConfState, Entry, HardState, Message, MessageType, Snapshot,
    decode_conf_change,
};
use crate::util::Prng;
use bytes::Bytes;

/// Context attached to vote requests caused by a leader transfer: they bypass the leader
/// lease of the voters, because the old leader asked for the election.
pub(crate) const CAMPAIGN_TRANSFER: &[u8] = b"CampaignTransfer";

/// The role of a node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StateRole {
    /// Follows a leader (or waits for one).
    #[default]
    Follower,
    /// Asks for votes in a new term.
    Candidate,
    /// Asks whether it could win an election, without bumping the term.
    PreCandidate,
    /// Leads the current term.
    Leader,
}

/// Volatile state that the application may want to observe (not persisted).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SoftState {
    /// Known leader of the current term (0 if none).
    pub leader_id: u64,
    /// This node's role.
    pub raft_state: StateRole,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CampaignKind {
    PreElection,
    Election,
    Transfer,
}

/// One raft node's protocol state.
pub struct Raft<S: Storage> {
    // Fields are crate-private so that nothing outside the protocol code can put the node in
    // an inconsistent state; read them through the accessors below.
    pub(crate) id: u64,
    pub(crate) term: u64,
    pub(crate) vote: u64,
    /// Known leader (0 if none).
    pub(crate) lead: u64,
    pub(crate) state: StateRole,
    pub(crate) raft_log: RaftLog<S>,
    /// Membership and replication progress.
    pub(crate) prs: ProgressTracker,
    /// Target of an ongoing leadership transfer.
    pub(crate) lead_transferee: Option<u64>,
    /// Whether this node is a learner in the current configuration.
    pub(crate) is_learner: bool,

    pub(crate) read_states: Vec<ReadState>,
    /// Messages that may be sent right away.
    pub(crate) msgs: Vec<Message>,
    /// Messages that may be sent only once the Ready they came with is persisted.
    pub(crate) msgs_after_persist: Vec<Message>,

    max_msg_size: u64,
    max_uncommitted_size: u64,
    /// Index of the latest conf-change entry in the leader's log; no new change is proposed
    /// until it is applied (one change at a time).
    pending_conf_index: u64,
    uncommitted_size: u64,
    read_only: ReadOnly,
    /// Reads received before this leader committed an entry of its term.
    pending_read_index: Vec<Message>,

    election_elapsed: usize,
    heartbeat_elapsed: usize,
    check_quorum: bool,
    pre_vote: bool,
    heartbeat_timeout: usize,
    election_timeout: usize,
    randomized_election_timeout: usize,
    disable_proposal_forwarding: bool,
    rng: Prng,
}

impl<S: Storage> Raft<S> {
    /// Creates a node from its configuration and persisted state.
    pub fn new(config: &Config, store: S) -> Result<Self> {
        config.validate()?;
        let rs = store.initial_state()?;
        let raft_log = RaftLog::new(store, config.committed_per_ready_limit());
        let mut r = Raft {
            id: config.id,
            term: 0,
            vote: 0,
            lead: 0,
            state: StateRole::Follower,
            raft_log,
            prs: ProgressTracker::new(config.max_inflight_msgs),
            lead_transferee: None,
            is_learner: false,
            read_states: Vec::new(),
            msgs: Vec::new(),
            msgs_after_persist: Vec::new(),
            max_msg_size: config.max_size_per_msg,
            max_uncommitted_size: config.uncommitted_limit(),
            pending_conf_index: 0,
            uncommitted_size: 0,
            read_only: ReadOnly::new(config.read_only_option),
            pending_read_index: Vec::new(),
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            check_quorum: config.check_quorum,
            pre_vote: config.pre_vote,
            heartbeat_timeout: config.heartbeat_tick,
            election_timeout: config.election_tick,
            randomized_election_timeout: config.election_tick,
            disable_proposal_forwarding: config.disable_proposal_forwarding,
            rng: Prng::new(config.seed ^ config.id.wrapping_mul(0x2545_F491_4F6C_DD1D)),
        };
        let (cfg, prs) = confchange::restore(&r.prs, r.raft_log.last_index(), &rs.conf_state)?;
        r.switch_to_config(cfg, prs);
        if !rs.hard_state.is_empty() {
            r.load_state(rs.hard_state)?;
        }
        if config.applied > 0 {
            if config.applied > r.raft_log.last_index() {
                return Err(Error::InvalidConfig("applied index is beyond the persisted log"));
            }
            // A commit-index-only change is written without fsync, so the persisted commit
            // index may trail what the application applied; applied entries were committed.
            r.raft_log.commit_to(config.applied);
            r.raft_log.applied_to(config.applied);
        }
        let term = r.term;
        r.become_follower(term, 0);
        Ok(r)
    }

    fn load_state(&mut self, hs: HardState) -> Result<()> {
        if hs.commit > self.raft_log.last_index() {
            return Err(Error::InvalidConfig("persisted commit index is beyond the persisted log"));
        }
        // A commit index written lazily (without fsync) may trail the snapshot, whose
        // entries are committed by definition.
        self.raft_log.committed = hs.commit.max(self.raft_log.committed);
        self.term = hs.term;
        self.vote = hs.vote;
        Ok(())
    }

    /// The state to persist.
    pub fn hard_state(&self) -> HardState {
        HardState { term: self.term, vote: self.vote, commit: self.raft_log.committed }
    }

    /// This node's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Current term.
    pub fn term(&self) -> u64 {
        self.term
    }

    /// Vote in the current term (0 if none).
    pub fn vote(&self) -> u64 {
        self.vote
    }

    /// Known leader of the current term (0 if none).
    pub fn lead(&self) -> u64 {
        self.lead
    }

    /// Current role.
    pub fn state(&self) -> StateRole {
        self.state
    }

    /// The log (read-only).
    pub fn raft_log(&self) -> &RaftLog<S> {
        &self.raft_log
    }

    /// Membership and, on the leader, replication progress (read-only).
    pub fn prs(&self) -> &ProgressTracker {
        &self.prs
    }

    /// Target of an ongoing leadership transfer.
    pub fn lead_transferee(&self) -> Option<u64> {
        self.lead_transferee
    }

    /// Whether this node is a learner in the current configuration.
    pub fn is_learner(&self) -> bool {
        self.is_learner
    }

    /// The observable volatile state.
    pub fn soft_state(&self) -> SoftState {
        SoftState { leader_id: self.lead, raft_state: self.state }
    }

    /// Ticks needed without a leader before campaigning, randomized per term.
    pub fn randomized_election_timeout(&self) -> usize {
        self.randomized_election_timeout
    }

    /// Number of read-index requests waiting for heartbeat confirmation.
    pub fn pending_read_count(&self) -> usize {
        self.read_only.pending_count() + self.pending_read_index.len()
    }

    // ---- sending -------------------------------------------------------------------------

    fn send(&mut self, mut m: Message) {
        m.from = self.id;
        let t = m.msg_type();
        if matches!(
            t,
            MessageType::MsgVote
                | MessageType::MsgVoteResp
                | MessageType::MsgPreVote
                | MessageType::MsgPreVoteResp
        ) {
            // Vote terms are set by the caller (a pre-vote carries the future term).
            debug_assert!(m.term != 0, "{t:?} must carry a term");
        } else if !matches!(t, MessageType::MsgProp | MessageType::MsgReadIndex) {
            // Forwarded proposals and reads are term-less, like local requests.
            m.term = self.term;
        }
        // A leader's appends may go out while it persists the same entries (its own ack only
        // counts once persisted). Everything a non-leader says reflects state (term, vote,
        // log) that must be durable first.
        if self.state == StateRole::Leader {
            self.msgs.push(m);
        } else {
            self.msgs_after_persist.push(m);
        }
    }

    fn send_append(&mut self, to: u64) {
        self.maybe_send_append(to, true);
    }

    /// Sends entries (or a snapshot) to `to` if its progress allows; returns whether a
    /// message was sent. With `send_if_empty`, an empty append is sent too (to convey the
    /// commit index or probe).
    fn maybe_send_append(&mut self, to: u64, send_if_empty: bool) -> bool {
        let Some(pr) = self.prs.progress.get(&to) else {
            return false;
        };
        if pr.is_paused() {
            return false;
        }
        let prev_index = pr.next_idx - 1;
        let prev_term = self.raft_log.term(prev_index);
        let ents = self.raft_log.entries(pr.next_idx, self.max_msg_size);
        let mut m = Message { to, ..Default::default() };
        match (prev_term, ents) {
            (Ok(prev_term), Ok(ents)) => {
                if ents.is_empty() && !send_if_empty {
                    return false;
                }
                m.set_msg_type(MessageType::MsgApp);
                m.index = prev_index;
                m.log_term = prev_term;
                m.commit = self.raft_log.committed;
                let pr = self.prs.progress.get_mut(&to).expect("checked above");
                if let Some(last) = ents.last().map(|e| e.index) {
                    match pr.state {
                        ProgressState::Replicate => {
                            pr.optimistic_update(last);
                            pr.inflights.add(last);
                        }
                        ProgressState::Probe => pr.probe_sent = true,
                        ProgressState::Snapshot { .. } => {
                            unreachable!("a peer in snapshot state is always paused")
                        }
                    }
                }
                m.entries = ents;
            }
            _ => {
                // The entries were compacted: the peer needs a snapshot.
                if !pr.recent_active {
                    // Do not ship a large snapshot to a peer that may well be down.
                    return false;
                }
                let Ok(snapshot) = self.raft_log.snapshot() else {
                    // Temporarily unavailable (or failing): retried on a later heartbeat.
                    return false;
                };
                if snapshot.is_empty() {
                    return false;
                }
                let pr = self.prs.progress.get_mut(&to).expect("checked above");
                pr.become_snapshot(snapshot.index());
                m.set_msg_type(MessageType::MsgSnap);
                m.snapshot = Some(snapshot);
            }
        }
        self.send(m);
        true
    }

    fn send_heartbeat(&mut self, to: u64, ctx: Option<Bytes>) {
        // Never tell a follower to commit past what it is known to hold: it might not have
        // those entries (or might hold different ones).
        let matched = self.prs.progress.get(&to).map_or(0, |p| p.matched);
        let mut m = Message::new(MessageType::MsgHeartbeat);
        m.to = to;
        m.commit = matched.min(self.raft_log.committed);
        m.context = ctx.unwrap_or_default();
        self.send(m);
    }

    fn peers(&self) -> Vec<u64> {
        self.prs.progress.keys().copied().filter(|&id| id != self.id).collect()
    }

    fn bcast_append(&mut self) {
        for id in self.peers() {
            self.send_append(id);
        }
    }

    fn bcast_heartbeat(&mut self) {
        let ctx = self.read_only.last_pending_request_ctx();
        self.bcast_heartbeat_with_ctx(ctx);
    }

    fn bcast_heartbeat_with_ctx(&mut self, ctx: Option<Bytes>) {
        for id in self.peers() {
            self.send_heartbeat(id, ctx.clone());
        }
    }

    // ---- commit and log -------------------------------------------------------------------

    /// Advances the commit index to what a quorum has persisted, if that entry is from the
    /// current term. Returns whether it moved.
    fn maybe_commit(&mut self) -> bool {
        let index = self.prs.committed();
        if !self.raft_log.maybe_commit(index, self.term) {
            return false;
        }
        if !self.pending_read_index.is_empty() {
            // The first commit of this term: deferred reads can now be served.
            for m in std::mem::take(&mut self.pending_read_index) {
                self.handle_leader_read_index(m);
            }
        }
        true
    }

    fn committed_entry_in_current_term(&self) -> bool {
        self.raft_log.term_or_zero(self.raft_log.committed) == self.term
    }

    fn append_entries(&mut self, ents: &mut [Entry]) -> bool {
        let last = self.raft_log.last_index();
        for (i, e) in ents.iter_mut().enumerate() {
            e.term = self.term;
            e.index = last + 1 + i as u64;
        }
        if !self.increase_uncommitted_size(ents) {
            return false;
        }
        self.raft_log.append(ents);
        true
    }

    fn increase_uncommitted_size(&mut self, ents: &[Entry]) -> bool {
        let size: u64 = ents.iter().map(Entry::payload_size).sum();
        // An empty log tail always accepts one proposal, however big, so that progress is
        // possible; empty entries (leader no-ops, auto-leave) are always accepted.
        if self.uncommitted_size > 0
            && size > 0
            && self.uncommitted_size.saturating_add(size) > self.max_uncommitted_size
        {
            return false;
        }
        self.uncommitted_size += size;
        true
    }

    pub(crate) fn reduce_uncommitted_size(&mut self, ents: &[Entry]) {
        if self.state != StateRole::Leader {
            return;
        }
        let size: u64 = ents.iter().map(Entry::payload_size).sum();
        self.uncommitted_size = self.uncommitted_size.saturating_sub(size);
    }

    /// The application persisted the Ready's entries up to (`index`, `term`) and/or its
    /// snapshot and hard state. A leader counts its own acknowledgement only now, and a
    /// candidate its own vote.
    pub(crate) fn on_persisted(
        &mut self,
        hard_state: Option<HardState>,
        entries_to: Option<(u64, u64)>,
        snapshot_to: Option<u64>,
    ) {
        if let Some(index) = snapshot_to {
            self.raft_log.stable_snap_to(index);
        }
        if let Some((index, term)) = entries_to {
            self.raft_log.stable_to(index, term);
        }
        if hard_state.is_some_and(|hs| hs.term == self.term && hs.vote == self.id) {
            self.count_own_vote();
        }
        if self.state != StateRole::Leader {
            return;
        }
        let persisted = self.raft_log.persisted_index();
        let updated =
            self.prs.progress.get_mut(&self.id).is_some_and(|pr| pr.maybe_update(persisted));
        if updated && self.maybe_commit() {
            self.bcast_append();
        }
    }

    /// The application applied entries up to `index`.
    pub(crate) fn on_applied(&mut self, index: u64) {
        self.raft_log.applied_to(index);
        let cfg = &self.prs.config;
        if self.state == StateRole::Leader
            && cfg.auto_leave
            && cfg.voters.is_joint()
            && index >= self.pending_conf_index
        {
            // The joint configuration is in effect everywhere it matters: leave it.
            let mut ents = [ConfChangeV2::default().to_entry()];
            if self.append_entries(&mut ents) {
                self.pending_conf_index = self.raft_log.last_index();
                self.bcast_append();
            } else {
                // Try again after the next application round.
                self.pending_conf_index = self.raft_log.last_index();
            }
        }
    }

    // ---- roles ----------------------------------------------------------------------------

    fn reset(&mut self, term: u64) {
        if self.term != term {
            self.term = term;
            self.vote = 0;
        }
        self.lead = 0;
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
        self.reset_randomized_election_timeout();
        self.lead_transferee = None;
        self.prs.reset_votes();
        let next = self.raft_log.last_index() + 1;
        let persisted = self.raft_log.persisted_index();
        let max_inflight = self.prs.max_inflight;
        for (&id, pr) in self.prs.progress.iter_mut() {
            let is_learner = pr.is_learner;
            *pr = crate::progress::Progress::new(next, max_inflight);
            pr.is_learner = is_learner;
            if id == self.id {
                pr.matched = persisted;
            }
        }
        self.pending_conf_index = 0;
        self.uncommitted_size = 0;
        self.read_only = ReadOnly::new(self.read_only.option);
        self.pending_read_index.clear();
    }

    fn reset_randomized_election_timeout(&mut self) {
        let e = self.election_timeout;
        self.randomized_election_timeout = e + self.rng.below(e as u64) as usize;
        debug_assert!((e..2 * e).contains(&self.randomized_election_timeout));
    }

    /// Becomes a follower of `lead` (0 if unknown) in `term`.
    pub(crate) fn become_follower(&mut self, term: u64, lead: u64) {
        self.reset(term);
        self.lead = lead;
        self.state = StateRole::Follower;
    }

    fn become_candidate(&mut self) {
        assert_ne!(self.state, StateRole::Leader, "leader cannot become candidate");
        let term = self.term + 1;
        self.reset(term);
        self.vote = self.id;
        self.state = StateRole::Candidate;
    }

    fn become_pre_candidate(&mut self) {
        assert_ne!(self.state, StateRole::Leader, "leader cannot become pre-candidate");
        // Neither the term nor the vote change: a failed pre-election leaves no trace.
        self.prs.reset_votes();
        self.lead = 0;
        self.state = StateRole::PreCandidate;
    }

    fn become_leader(&mut self) {
        assert_ne!(self.state, StateRole::Follower, "follower cannot become leader");
        let term = self.term;
        self.reset(term);
        self.lead = self.id;
        self.state = StateRole::Leader;
        if let Some(pr) = self.prs.progress.get_mut(&self.id) {
            // Our own log trivially matches; the match itself grows only when persisted.
            pr.become_replicate();
        }
        // Conf changes already in the log may be uncommitted: treat them as pending.
        self.pending_conf_index = self.raft_log.last_index();
        // An entry of our term lets us commit (and learn the commit index) quickly.
        let appended = self.append_entries(&mut [Entry::default()]);
        debug_assert!(appended, "an empty entry is never refused");
        if !self.promotable() {
            // Elected as a caretaker (see `maybe_campaign_as_caretaker`).
            self.hand_over_leadership();
        }
    }

    /// Whether this node may campaign: it is a voter of the current configuration.
    pub fn promotable(&self) -> bool {
        self.prs.progress.get(&self.id).is_some_and(|pr| !pr.is_learner)
    }

    // ---- ticks ----------------------------------------------------------------------------

    /// Advances the logical clock by one tick.
    pub fn tick(&mut self) {
        match self.state {
            StateRole::Leader => self.tick_heartbeat(),
            _ => self.tick_election(),
        }
    }

    fn tick_election(&mut self) {
        self.election_elapsed += 1;
        if self.promotable() && self.election_elapsed >= self.randomized_election_timeout {
            self.election_elapsed = 0;
            self.hup(false);
        }
    }

    fn tick_heartbeat(&mut self) {
        self.heartbeat_elapsed += 1;
        self.election_elapsed += 1;
        if self.election_elapsed >= self.election_timeout {
            self.election_elapsed = 0;
            if self.check_quorum {
                self.check_quorum_active();
            }
            // A transfer that did not finish within an election timeout is abandoned (and
            // retried, possibly towards another voter, if we must hand over leadership).
            if self.state == StateRole::Leader {
                self.lead_transferee = None;
                if !self.promotable() {
                    self.hand_over_leadership();
                }
            }
        }
        if self.state != StateRole::Leader {
            return;
        }
        if self.heartbeat_elapsed >= self.heartbeat_timeout {
            self.heartbeat_elapsed = 0;
            self.bcast_heartbeat();
        }
    }

    // ---- step -----------------------------------------------------------------------------

    /// Processes one message. Stale or malformed messages are ignored; errors only report
    /// dropped proposals and reads.
    pub fn step(&mut self, m: Message) -> Result<()> {
        let Ok(t) = MessageType::try_from(m.msg_type) else {
            return Ok(());
        };
        if m.term > self.term {
            if matches!(t, MessageType::MsgVote | MessageType::MsgPreVote) {
                let force = m.context.as_ref() == CAMPAIGN_TRANSFER;
                let in_lease = self.check_quorum
                    && self.lead != 0
                    && self.election_elapsed < self.election_timeout;
                if !force && in_lease {
                    // We heard from a live leader recently: this candidate is disruptive
                    // (e.g. just rejoined after a partition). Do not even bump our term.
                    return Ok(());
                }
            }
            match t {
                // A pre-vote does not move anyone's term.
                MessageType::MsgPreVote => {}
                // Granted pre-votes carry the future term; we move to it when we win.
                MessageType::MsgPreVoteResp if !m.reject => {}
                MessageType::MsgApp | MessageType::MsgHeartbeat | MessageType::MsgSnap => {
                    self.become_follower(m.term, m.from);
                }
                _ => self.become_follower(m.term, 0),
            }
        } else if m.term != 0 && m.term < self.term {
            self.step_stale(t, &m);
            return Ok(());
        }

        match t {
            MessageType::MsgHup => {
                self.hup(false);
                Ok(())
            }
            MessageType::MsgVote | MessageType::MsgPreVote => {
                self.handle_vote_request(t, &m);
                Ok(())
            }
            _ => match self.state {
                StateRole::Leader => self.step_leader(t, m),
                StateRole::Candidate | StateRole::PreCandidate => self.step_candidate(t, m),
                StateRole::Follower => self.step_follower(t, m),
            },
        }
    }

    /// A message from an older term.
    fn step_stale(&mut self, t: MessageType, m: &Message) {
        // A leader of an older term learns about newer terms from vote requests, unless
        // pre-vote or the lease suppress them, or we never campaign (learner, removed node):
        // then it would never step down, and we would never listen to it again. Tell it.
        if (self.check_quorum || self.pre_vote || !self.promotable())
            && matches!(t, MessageType::MsgHeartbeat | MessageType::MsgApp)
        {
            let mut resp = Message::new(MessageType::MsgAppResp);
            resp.to = m.from;
            self.send(resp);
        } else if t == MessageType::MsgPreVote {
            // Reject with our term so the pre-candidate learns it is behind.
            let mut resp = Message::new(MessageType::MsgPreVoteResp);
            resp.to = m.from;
            resp.term = self.term;
            resp.reject = true;
            self.send(resp);
        }
    }

    /// Entries of the log, for tests and tools: `[lo, hi)` within `max_size`.
    pub fn log_entries(&self, lo: u64, hi: u64, max_size: u64) -> Result<Vec<Entry>> {
        self.raft_log.slice(lo, hi, max_size)
    }
}
