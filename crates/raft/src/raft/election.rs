//! Elections: campaigning (pre-vote, transfer, caretaker), voting, check-quorum.

use super::*;

impl<S: Storage> Raft<S> {
    /// Whether a committed configuration change has not been applied yet (the membership we
    /// act on is about to change).
    pub(super) fn has_unapplied_conf_change(&self) -> bool {
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

    /// Campaigns if this node may: a voter, not already leading, configuration settled.
    pub(super) fn hup(&mut self, transfer: bool) {
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
        // A pre-vote changes nothing durable, so our own pre-vote counts at once. A real vote
        // counts only once persisted (see `count_own_vote`): otherwise a single voter could
        // lead a term that a crash then lets it win a second time.
        if kind == CampaignKind::PreElection && self.poll(self.id, true) == VoteResult::Won {
            self.campaign(CampaignKind::Election);
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

    /// Our vote for ourselves in the current term is durable: count it.
    pub(super) fn count_own_vote(&mut self) {
        if self.state != StateRole::Candidate {
            return;
        }
        match self.poll(self.id, true) {
            VoteResult::Won => {
                self.become_leader();
                self.bcast_append();
            }
            VoteResult::Lost => {
                let term = self.term;
                self.become_follower(term, 0);
            }
            VoteResult::Pending => {}
        }
    }

    /// Records a vote and returns the election outcome so far.
    fn poll(&mut self, id: u64, granted: bool) -> VoteResult {
        self.prs.record_vote(id, granted);
        self.prs.tally_votes().2
    }

    /// Steps down unless a quorum was heard from since the last check, then clears the marks.
    pub(super) fn check_quorum_active(&mut self) {
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

    /// Answers a (pre-)vote request: one vote per term, only for an up-to-date log (§5.4.1).
    pub(super) fn handle_vote_request(&mut self, t: MessageType, m: &Message) {
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
            self.maybe_campaign_as_caretaker(m.from);
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
    /// request a removed node never campaigns, and a request from a node that is not a voter
    /// of our configuration (itself removed, just not aware of it) is not a reason either.
    fn maybe_campaign_as_caretaker(&mut self, requester: u64) {
        // Only when no leader is known or heard from lately (a pre-vote does not reset the
        // leader we last knew).
        let leaderless = self.lead == 0 || self.election_elapsed >= self.election_timeout;
        // A caretaker whose earlier campaign stalled (lost messages) starts over when asked.
        if self.promotable()
            || self.state == StateRole::Leader
            || !leaderless
            || !self.prs.config.voters.contains(requester)
            || self.has_unapplied_conf_change()
        {
            return;
        }
        let kind = if self.pre_vote { CampaignKind::PreElection } else { CampaignKind::Election };
        self.campaign(kind);
    }

    /// Message handling of a candidate or pre-candidate.
    pub(super) fn step_candidate(&mut self, t: MessageType, m: Message) -> Result<()> {
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
}
