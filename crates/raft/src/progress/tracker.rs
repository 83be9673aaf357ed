use super::Progress;
use crate::quorum::{JointConfig, VoteResult};
use crate::types::ConfState;
use std::collections::{BTreeMap, BTreeSet};

/// Progress of every tracked peer (voters and learners), ordered by id so that iteration, and
/// therefore message order, is deterministic.
pub type ProgressMap = BTreeMap<u64, Progress>;

/// The active membership.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrackerConfig {
    /// Voters (two majorities while joint).
    pub voters: JointConfig,
    /// Learners: receive the log, never vote. Disjoint from both voter sets.
    pub learners: BTreeSet<u64>,
    /// Outgoing voters that become learners when the joint configuration is left. They are
    /// still voters of the outgoing half until then.
    pub learners_next: BTreeSet<u64>,
    /// Leave the joint configuration automatically.
    pub auto_leave: bool,
}

impl TrackerConfig {
    /// The membership as a [`ConfState`].
    pub fn to_conf_state(&self) -> ConfState {
        ConfState {
            voters: self.voters.incoming.ids().iter().copied().collect(),
            learners: self.learners.iter().copied().collect(),
            voters_outgoing: self.voters.outgoing.ids().iter().copied().collect(),
            learners_next: self.learners_next.iter().copied().collect(),
            auto_leave: self.auto_leave,
        }
    }
}

/// Membership, per-peer progress and votes of the current election.
#[derive(Clone, Debug)]
pub struct ProgressTracker {
    /// Active membership.
    pub(crate) config: TrackerConfig,
    /// Per-peer progress (exactly the voters and learners of `config`).
    pub(crate) progress: ProgressMap,
    votes: BTreeMap<u64, bool>,
    pub(crate) max_inflight: usize,
}

impl ProgressTracker {
    pub(crate) fn new(max_inflight: usize) -> Self {
        ProgressTracker {
            config: TrackerConfig::default(),
            progress: ProgressMap::new(),
            votes: BTreeMap::new(),
            max_inflight,
        }
    }

    /// Active membership.
    pub fn config(&self) -> &TrackerConfig {
        &self.config
    }

    /// Per-peer progress (meaningful on the leader).
    pub fn progress(&self) -> &ProgressMap {
        &self.progress
    }

    /// Exactly one voter and not joint.
    pub fn is_singleton(&self) -> bool {
        self.config.voters.incoming.len() == 1 && !self.config.voters.is_joint()
    }

    /// Highest index replicated on a quorum of voters.
    pub(crate) fn committed(&self) -> u64 {
        let progress = &self.progress;
        self.config.voters.committed_index(|id| progress.get(&id).map(|p| p.matched))
    }

    /// Whether a quorum was active since the last check (`recent_active`).
    pub(crate) fn quorum_active(&self) -> bool {
        let votes: BTreeMap<u64, bool> = self
            .progress
            .iter()
            .filter(|(_, p)| !p.is_learner)
            .map(|(&id, p)| (id, p.recent_active))
            .collect();
        self.config.voters.vote_result(&votes) == VoteResult::Won
    }

    pub(crate) fn reset_votes(&mut self) {
        self.votes.clear();
    }

    /// Records `id`'s vote; only the first answer of an election counts.
    pub(crate) fn record_vote(&mut self, id: u64, granted: bool) {
        self.votes.entry(id).or_insert(granted);
    }

    /// Granted and rejected counts plus the outcome.
    pub(crate) fn tally_votes(&self) -> (usize, usize, VoteResult) {
        let mut granted = 0;
        let mut rejected = 0;
        for (id, &v) in &self.votes {
            if self.config.voters.contains(*id) {
                if v {
                    granted += 1;
                } else {
                    rejected += 1;
                }
            }
        }
        (granted, rejected, self.config.voters.vote_result(&self.votes))
    }
}
