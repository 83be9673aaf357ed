//! The core protocol: roles, terms, elections, replication, reads and membership.
//!
//! [`Raft`] is driven through [`Raft::step`] (messages, including local ones such as
//! `MsgHup`) and [`Raft::tick`]. It never performs I/O: outgoing messages are queued and
//! collected by [`crate::RawNode::ready`].

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
    /// This node's id.
    pub id: u64,
    /// Current term.
    pub term: u64,
    /// Vote in the current term (0 if none).
    pub vote: u64,
    /// Known leader (0 if none).
    pub lead: u64,
    /// Current role.
    pub state: StateRole,
    /// The log.
    pub raft_log: RaftLog<S>,
    /// Membership and replication progress.
    pub prs: ProgressTracker,
    /// Target of an ongoing leadership transfer.
    pub lead_transferee: Option<u64>,
    /// Whether this node is a learner in the current configuration.
    pub is_learner: bool,

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
            if config.applied > r.raft_log.committed {
                return Err(Error::InvalidConfig("applied index is beyond the commit index"));
            }
            r.raft_log.applied_to(config.applied);
        }
        let term = r.term;
        r.become_follower(term, 0);
        Ok(r)
    }

    fn load_state(&mut self, hs: HardState) -> Result<()> {
        if hs.commit < self.raft_log.committed || hs.commit > self.raft_log.last_index() {
            return Err(Error::InvalidConfig(
                "persisted commit index is outside of the persisted log",
            ));
        }
        self.raft_log.committed = hs.commit;
        self.term = hs.term;
        self.vote = hs.vote;
        Ok(())
    }

    /// The state to persist.
    pub fn hard_state(&self) -> HardState {
        HardState { term: self.term, vote: self.vote, commit: self.raft_log.committed }
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
    /// snapshot. A leader counts its own acknowledgement only now.
    pub(crate) fn on_persisted(
        &mut self,
        entries_to: Option<(u64, u64)>,
        snapshot_to: Option<u64>,
    ) {
        if let Some(index) = snapshot_to {
            self.raft_log.stable_snap_to(index);
        }
        if let Some((index, term)) = entries_to {
            self.raft_log.stable_to(index, term);
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
    pub fn become_follower(&mut self, term: u64, lead: u64) {
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

    fn has_unapplied_conf_change(&self) -> bool {
        let log = &self.raft_log;
        if log.committed <= log.applied {
            return false;
        }
        let lo = (log.applied + 1).max(log.first_index());
        match log.slice(lo, log.committed + 1, u64::MAX) {
            Ok(ents) => ents.iter().any(Entry::is_conf_change),
            // Unreadable committed entries: do not risk campaigning on a stale config.
            Err(_) => true,
        }
    }

    fn hup(&mut self, transfer: bool) {
        if self.state == StateRole::Leader || !self.promotable() {
            return;
        }
        // The configuration we would lead with might be about to change.
        if self.has_unapplied_conf_change() {
            return;
        }
        let kind = if transfer {
            CampaignKind::Transfer
        } else if self.pre_vote {
            CampaignKind::PreElection
        } else {
            CampaignKind::Election
        };
        self.campaign(kind);
    }

    /// Starts an election; callers decide whether this node may campaign at all.
    fn campaign(&mut self, kind: CampaignKind) {
        let (vote_msg, term) = if kind == CampaignKind::PreElection {
            self.become_pre_candidate();
            // Ask as if for the next term, without moving to it.
            (MessageType::MsgPreVote, self.term + 1)
        } else {
            self.become_candidate();
            (MessageType::MsgVote, self.term)
        };
        if self.poll(self.id, true) == VoteResult::Won {
            // Single-voter configuration.
            if kind == CampaignKind::PreElection {
                self.campaign(CampaignKind::Election);
            } else {
                self.become_leader();
            }
            return;
        }
        let last_index = self.raft_log.last_index();
        let last_term = self.raft_log.last_term();
        for id in self.prs.config.voters.ids() {
            if id == self.id {
                continue;
            }
            let mut m = Message::new(vote_msg);
            m.to = id;
            m.term = term;
            m.index = last_index;
            m.log_term = last_term;
            if kind == CampaignKind::Transfer {
                m.context = Bytes::from_static(CAMPAIGN_TRANSFER);
            }
            self.send(m);
        }
    }

    fn poll(&mut self, id: u64, granted: bool) -> VoteResult {
        self.prs.record_vote(id, granted);
        self.prs.tally_votes().2
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

    fn check_quorum_active(&mut self) {
        if let Some(pr) = self.prs.progress.get_mut(&self.id) {
            pr.recent_active = true;
        }
        if !self.prs.quorum_active() {
            let term = self.term;
            self.become_follower(term, 0);
        }
        let id = self.id;
        for (&pid, pr) in self.prs.progress.iter_mut() {
            if pid != id {
                pr.recent_active = false;
            }
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
        if (self.check_quorum || self.pre_vote)
            && matches!(t, MessageType::MsgHeartbeat | MessageType::MsgApp)
        {
            // A leader of an older term that cannot learn our term through votes (pre-vote
            // or lease suppress them) would otherwise never step down; tell it.
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

    fn handle_vote_request(&mut self, t: MessageType, m: &Message) {
        let can_vote = self.vote == m.from
            || (self.vote == 0 && self.lead == 0)
            || (t == MessageType::MsgPreVote && m.term > self.term);
        let mut resp = Message::new(t.vote_response());
        resp.to = m.from;
        let up_to_date = self.raft_log.is_up_to_date(m.index, m.log_term);
        if can_vote && up_to_date {
            // Answer with the request's term: for a pre-vote it is the future term, which the
            // pre-candidate uses to tell fresh answers from stale ones.
            resp.term = m.term;
            if t == MessageType::MsgVote {
                self.election_elapsed = 0;
                self.vote = m.from;
            }
        } else {
            resp.term = self.term;
            resp.reject = true;
        }
        self.send(resp);
        if !up_to_date {
            self.maybe_campaign_as_caretaker();
        }
    }

    /// A voter asked a non-voter (a removed or demoted node) for its vote, and the non-voter
    /// refused because its own log is more complete. This happens when a membership change
    /// committed but the remaining voters have not learned it: they still count the non-voter
    /// in their quorum, and only a node with the complete log can be elected. If the removed
    /// leader crashed before handing over, nobody else can finish the job, so the non-voter
    /// campaigns among the voters of its own (newer) configuration, leads just long enough to
    /// replicate the log and commit index, and then hands leadership over. Elections stay
    /// safe: votes are still counted per configuration and cast once per term. Without such a
    /// request a removed node never campaigns.
    fn maybe_campaign_as_caretaker(&mut self) {
        // Only when no leader is known or heard from lately (a pre-vote does not reset the
        // leader we last knew).
        let leaderless = self.lead == 0 || self.election_elapsed >= self.election_timeout;
        // A caretaker whose earlier campaign stalled (lost messages) starts over when asked.
        if self.promotable()
            || self.state == StateRole::Leader
            || !leaderless
            || self.prs.config.voters.incoming.is_empty()
            || self.has_unapplied_conf_change()
        {
            return;
        }
        let kind = if self.pre_vote {
            CampaignKind::PreElection
        } else {
            CampaignKind::Election
        };
        self.campaign(kind);
    }

    fn step_leader(&mut self, t: MessageType, mut m: Message) -> Result<()> {
        match t {
            MessageType::MsgBeat => {
                self.bcast_heartbeat();
                return Ok(());
            }
            MessageType::MsgCheckQuorum => {
                self.check_quorum_active();
                return Ok(());
            }
            MessageType::MsgProp => return self.leader_propose(&mut m),
            MessageType::MsgReadIndex => {
                if m.entries.len() != 1 {
                    return Ok(());
                }
                if !self.committed_entry_in_current_term() {
                    // Our commit index may still lag entries committed by earlier leaders.
                    self.pending_read_index.push(m);
                } else {
                    self.handle_leader_read_index(m);
                }
                return Ok(());
            }
            _ => {}
        }
        let from = m.from;
        let Some(pr) = self.prs.progress.get_mut(&from) else {
            return Ok(());
        };
        match t {
            MessageType::MsgAppResp => {
                pr.recent_active = true;
                self.handle_append_response(&m);
            }
            MessageType::MsgHeartbeatResp => {
                pr.recent_active = true;
                pr.probe_sent = false;
                if pr.state == ProgressState::Replicate && pr.inflights.full() {
                    pr.inflights.free_first_one();
                }
                if pr.matched < self.raft_log.last_index() {
                    self.send_append(from);
                }
                self.handle_read_ack(&m);
            }
            MessageType::MsgSnapStatus => {
                if let ProgressState::Snapshot { .. } = pr.state {
                    // Success or failure, go back to probing; after a failure wait for the next
                    // heartbeat response before probing, as the peer is likely unhealthy.
                    pr.become_probe();
                    pr.probe_sent = m.reject;
                }
            }
            // Streaming optimistically to an unreachable peer would only lose messages.
            MessageType::MsgUnreachable if pr.state == ProgressState::Replicate => {
                pr.become_probe();
            }
            MessageType::MsgTransferLeader => {
                if pr.is_learner {
                    return Ok(());
                }
                let matched = pr.matched;
                if self.lead_transferee == Some(from) || from == self.id {
                    return Ok(());
                }
                self.election_elapsed = 0;
                self.lead_transferee = Some(from);
                if matched == self.raft_log.last_index() {
                    self.send_timeout_now(from);
                } else {
                    self.send_append(from);
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn leader_propose(&mut self, m: &mut Message) -> Result<()> {
        if m.entries.is_empty() {
            return Ok(());
        }
        if !self.promotable() {
            // Removed or demoted: we only lead until a voter takes over.
            return Err(Error::ProposalDropped(DropReason::NotInConfiguration));
        }
        if self.lead_transferee.is_some() {
            return Err(Error::ProposalDropped(DropReason::LeaderTransferInProgress));
        }
        let last = self.raft_log.last_index();
        for (i, e) in m.entries.iter_mut().enumerate() {
            if !e.is_conf_change() {
                continue;
            }
            let refuse = match decode_conf_change(e) {
                None => true,
                Some(cc) => {
                    let already_pending = self.pending_conf_index > self.raft_log.applied;
                    let joint = self.prs.config.voters.is_joint();
                    let leave = cc.leave_joint();
                    already_pending || joint != leave
                }
            };
            if refuse {
                // Keep the proposal's position (the caller may track indexes) but make it a
                // no-op: one change at a time, leave a joint config before changing again.
                *e = Entry::default();
            } else {
                self.pending_conf_index = last + 1 + i as u64;
            }
        }
        if !self.append_entries(&mut m.entries) {
            return Err(Error::ProposalDropped(DropReason::UncommittedSizeExceeded));
        }
        self.bcast_append();
        Ok(())
    }

    fn handle_leader_read_index(&mut self, m: Message) {
        let Some(ctx) = m.entries.first().map(|e| e.data.clone()) else {
            return;
        };
        let committed = self.raft_log.committed;
        let alone = self.prs.is_singleton() && self.prs.config.voters.contains(self.id);
        if alone || self.read_only.option == ReadOnlyOption::LeaseBased {
            // The only voter, or trusting the lease: our commit index is current.
            self.send_read_index_response(m, committed);
            return;
        }
        self.read_only.add_request(committed, ctx.clone(), m);
        self.read_only.recv_ack(self.id, &ctx);
        self.bcast_heartbeat_with_ctx(Some(ctx));
    }

    fn handle_read_ack(&mut self, m: &Message) {
        if self.read_only.option != ReadOnlyOption::Safe || m.context.is_empty() {
            return;
        }
        let Some(acks) = self.read_only.recv_ack(m.from, &m.context) else {
            return;
        };
        if self.prs.config.voters.vote_result(acks) != VoteResult::Won {
            return;
        }
        for rs in self.read_only.advance(&m.context) {
            self.send_read_index_response(rs.req, rs.index);
        }
    }

    fn send_read_index_response(&mut self, req: Message, index: u64) {
        if req.from == 0 || req.from == self.id {
            let request_ctx = req.entries.first().map(|e| e.data.clone()).unwrap_or_default();
            self.read_states.push(ReadState { index, request_ctx });
            return;
        }
        let mut resp = Message::new(MessageType::MsgReadIndexResp);
        resp.to = req.from;
        resp.index = index;
        resp.entries = req.entries;
        self.send(resp);
    }

    fn send_timeout_now(&mut self, to: u64) {
        let mut m = Message::new(MessageType::MsgTimeoutNow);
        m.to = to;
        self.send(m);
    }

    fn handle_append_response(&mut self, m: &Message) {
        let from = m.from;
        let last_index = self.raft_log.last_index();
        if m.index > last_index {
            // Acknowledges entries we never sent: malformed.
            return;
        }
        let pr = self.prs.progress.get_mut(&from).expect("checked by caller");
        if m.reject {
            // Fast backtracking: the follower told us the last index where its log might
            // match ours (and that entry's term); skip every index whose term cannot match.
            let next_probe = if m.log_term > 0 {
                self.raft_log.find_conflict_by_term(m.reject_hint, m.log_term)
            } else {
                m.reject_hint
            };
            if pr.maybe_decr_to(m.index, next_probe) {
                if pr.state == ProgressState::Replicate {
                    pr.become_probe();
                }
                self.send_append(from);
            }
            return;
        }
        let was_paused = pr.is_paused();
        if !pr.maybe_update(m.index) {
            return;
        }
        match pr.state {
            ProgressState::Probe => pr.become_replicate(),
            ProgressState::Snapshot { pending } if pr.matched >= pending => {
                // The snapshot (or a later append) got through.
                pr.become_probe();
                pr.become_replicate();
            }
            ProgressState::Replicate => pr.inflights.free_le(m.index),
            ProgressState::Snapshot { .. } => {}
        }
        if self.maybe_commit() {
            self.bcast_append();
        } else if was_paused {
            self.send_append(from);
        }
        // Fill the window: the follower may be far behind.
        while self.maybe_send_append(from, false) {}
        let caught_up =
            self.prs.progress.get(&from).is_some_and(|pr| pr.matched == self.raft_log.last_index());
        if self.lead_transferee == Some(from) && caught_up {
            self.send_timeout_now(from);
        }
    }

    fn step_candidate(&mut self, t: MessageType, m: Message) -> Result<()> {
        let my_resp = if self.state == StateRole::PreCandidate {
            MessageType::MsgPreVoteResp
        } else {
            MessageType::MsgVoteResp
        };
        match t {
            MessageType::MsgProp => Err(Error::ProposalDropped(DropReason::Campaigning)),
            MessageType::MsgReadIndex => Err(Error::ProposalDropped(DropReason::Campaigning)),
            MessageType::MsgApp => {
                self.become_follower(m.term, m.from);
                self.handle_append(&m);
                Ok(())
            }
            MessageType::MsgHeartbeat => {
                self.become_follower(m.term, m.from);
                self.handle_heartbeat(&m);
                Ok(())
            }
            MessageType::MsgSnap => {
                self.become_follower(m.term, m.from);
                self.handle_snapshot(m);
                Ok(())
            }
            _ if t == my_resp => {
                match self.poll(m.from, !m.reject) {
                    VoteResult::Won => {
                        if self.state == StateRole::PreCandidate {
                            self.campaign(CampaignKind::Election);
                        } else {
                            self.become_leader();
                            self.bcast_append();
                        }
                    }
                    VoteResult::Lost => {
                        // A rejection with a newer term already made us a follower above.
                        let term = self.term;
                        self.become_follower(term, 0);
                    }
                    VoteResult::Pending => {}
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn step_follower(&mut self, t: MessageType, mut m: Message) -> Result<()> {
        match t {
            MessageType::MsgProp => {
                if self.lead == 0 {
                    return Err(Error::ProposalDropped(DropReason::NoLeader));
                }
                if self.disable_proposal_forwarding {
                    return Err(Error::ProposalDropped(DropReason::ForwardingDisabled));
                }
                if m.entries.is_empty() {
                    return Ok(());
                }
                m.to = self.lead;
                self.send(m);
            }
            MessageType::MsgApp => {
                self.election_elapsed = 0;
                self.lead = m.from;
                self.handle_append(&m);
            }
            MessageType::MsgHeartbeat => {
                self.election_elapsed = 0;
                self.lead = m.from;
                self.handle_heartbeat(&m);
            }
            MessageType::MsgSnap => {
                self.election_elapsed = 0;
                self.lead = m.from;
                self.handle_snapshot(m);
            }
            MessageType::MsgTransferLeader => {
                // Only a request to make *this* node leader is forwarded: `send` stamps our
                // id as the sender, which the leader reads as the transfer target.
                if self.lead == 0 {
                    return Err(Error::ProposalDropped(DropReason::NoLeader));
                }
                if m.from == self.id {
                    m.to = self.lead;
                    self.send(m);
                }
            }
            MessageType::MsgTimeoutNow => {
                // The leader asked us to take over: campaign now, skipping pre-vote and the
                // voters' leases.
                self.hup(true);
            }
            MessageType::MsgReadIndex => {
                if self.lead == 0 {
                    return Err(Error::ProposalDropped(DropReason::NoLeader));
                }
                m.to = self.lead;
                self.send(m);
            }
            MessageType::MsgReadIndexResp => {
                if let [e] = m.entries.as_slice() {
                    self.read_states
                        .push(ReadState { index: m.index, request_ctx: e.data.clone() });
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn handle_append(&mut self, m: &Message) {
        let mut resp = Message::new(MessageType::MsgAppResp);
        resp.to = m.from;
        if m.index < self.raft_log.committed {
            // Everything up to our commit index is known to match.
            resp.index = self.raft_log.committed;
            self.send(resp);
            return;
        }
        let contiguous = m
            .entries
            .iter()
            .enumerate()
            .all(|(i, e)| m.index.checked_add(1 + i as u64) == Some(e.index));
        if !contiguous {
            return;
        }
        match self.raft_log.maybe_append(m.index, m.log_term, m.commit, &m.entries) {
            Some(last_new) => resp.index = last_new,
            None => {
                // Tell the leader where our log might match: the last index at or before
                // its probe whose term is not newer than the probe's term.
                let hint = m.index.min(self.raft_log.last_index());
                let hint = self.raft_log.find_conflict_by_term(hint, m.log_term);
                resp.index = m.index;
                resp.reject = true;
                resp.reject_hint = hint;
                resp.log_term = self.raft_log.term_or_zero(hint);
            }
        }
        self.send(resp);
    }

    fn handle_heartbeat(&mut self, m: &Message) {
        if m.commit <= self.raft_log.last_index() {
            self.raft_log.commit_to(m.commit);
        }
        let mut resp = Message::new(MessageType::MsgHeartbeatResp);
        resp.to = m.from;
        resp.context = m.context.clone();
        self.send(resp);
    }

    fn handle_snapshot(&mut self, mut m: Message) {
        let Some(snapshot) = m.snapshot.take() else {
            return;
        };
        let mut resp = Message::new(MessageType::MsgAppResp);
        resp.to = m.from;
        resp.index = if self.restore(snapshot) {
            self.raft_log.last_index()
        } else {
            self.raft_log.committed
        };
        self.send(resp);
    }

    /// Installs `snapshot` if it brings news; returns whether the log was replaced.
    fn restore(&mut self, snapshot: Snapshot) -> bool {
        let (index, term) = (snapshot.index(), snapshot.term());
        if index <= self.raft_log.committed {
            return false;
        }
        if self.state != StateRole::Follower {
            // Only a follower of the sender may install its snapshot.
            return false;
        }
        // The snapshot's membership may predate our own addition (the leader's newest
        // snapshot can be older than the change that added us): install it anyway, the log
        // entries that follow it bring the change.
        let cs = snapshot.conf_state();
        if self.has_unapplied_conf_change() {
            // The application is still applying committed configuration changes (possibly
            // from a Ready handed out before this message): installing the snapshot's newer
            // configuration now would make it apply them on top of the wrong one. The leader
            // retries later.
            return false;
        }
        if self.raft_log.match_term(index, term) {
            // We already hold the snapshot's entries: just fast-forward the commit index.
            self.raft_log.commit_to(index);
            return false;
        }
        let Ok((cfg, prs)) =
            confchange::restore(&ProgressTracker::new(self.prs.max_inflight), index, &cs)
        else {
            return false;
        };
        self.raft_log.restore(snapshot);
        self.switch_to_config(cfg, prs);
        true
    }

    // ---- membership -------------------------------------------------------------------------

    /// Applies a committed configuration change; returns the new membership. An invalid
    /// change is rejected without effect (every node rejects it identically).
    pub fn apply_conf_change(&mut self, cc: &ConfChangeV2) -> Result<ConfState> {
        let changer = Changer { tracker: &self.prs, last_index: self.raft_log.last_index() };
        let (cfg, prs) = if cc.leave_joint() {
            changer.leave_joint()
        } else if let Some(auto_leave) = cc.enter_joint() {
            changer.enter_joint(auto_leave, &cc.changes)
        } else {
            changer.simple(&cc.changes)
        }?;
        Ok(self.switch_to_config(cfg, prs))
    }

    fn switch_to_config(&mut self, cfg: TrackerConfig, prs: ProgressMap) -> ConfState {
        self.prs.config = cfg;
        self.prs.progress = prs;
        let cs = self.prs.config.to_conf_state();
        let me = self.prs.progress.get(&self.id);
        self.is_learner = me.is_some_and(|p| p.is_learner);
        let removed = me.is_none();
        if self.state != StateRole::Leader {
            return cs;
        }
        if self.maybe_commit() {
            // The new quorum may already have acknowledged more.
            self.bcast_append();
        } else {
            for id in self.peers() {
                self.maybe_send_append(id, false);
            }
        }
        if let Some(t) = self.lead_transferee
            && !self.prs.config.voters.contains(t)
        {
            self.lead_transferee = None;
        }
        if removed || self.is_learner {
            self.hand_over_leadership();
        }
        cs
    }

    /// A leader that was removed or demoted keeps leading only to replicate the log and
    /// commit index to the remaining voters, then hands leadership to the most up-to-date
    /// voter. Stepping down at once could deadlock: the remaining voters may not know the
    /// change committed, still count us in their (joint) quorum, and we would refuse to vote
    /// for their shorter logs while not campaigning ourselves.
    fn hand_over_leadership(&mut self) {
        if self.lead_transferee.is_some() {
            return;
        }
        let voters = &self.prs.config.voters.incoming;
        let best = self
            .prs
            .progress
            .iter()
            .filter(|(id, _)| voters.contains(**id) && **id != self.id)
            .max_by_key(|(id, pr)| (pr.matched, std::cmp::Reverse(**id)))
            .map(|(&id, pr)| (id, pr.matched));
        let Some((target, matched)) = best else {
            return;
        };
        self.election_elapsed = 0;
        self.lead_transferee = Some(target);
        if matched == self.raft_log.last_index() {
            self.send_timeout_now(target);
        } else {
            self.send_append(target);
        }
    }

    /// Entries of the log, for tests and tools: `[lo, hi)` within `max_size`.
    pub fn log_entries(&self, lo: u64, hi: u64, max_size: u64) -> Result<Vec<Entry>> {
        self.raft_log.slice(lo, hi, max_size)
    }
}
