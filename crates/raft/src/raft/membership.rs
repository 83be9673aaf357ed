//! Applying configuration changes, and handing leadership over when removed.

use super::*;

impl<S: Storage> Raft<S> {
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

    /// Installs a new configuration and progress map; returns the membership.
    pub(super) fn switch_to_config(&mut self, cfg: TrackerConfig, prs: ProgressMap) -> ConfState {
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
    pub(super) fn hand_over_leadership(&mut self) {
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
}
