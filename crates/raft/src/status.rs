//! A snapshot of a node's state for monitoring and for the server's decisions.

use crate::progress::{Progress, ProgressMap, TrackerConfig};
use crate::raft::{Raft, SoftState, StateRole};
use crate::storage::Storage;
use crate::types::HardState;

/// What a node knows right now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// Node id.
    pub id: u64,
    /// Term, vote and commit index.
    pub hard_state: HardState,
    /// Leader and role.
    pub soft_state: SoftState,
    /// Applied index.
    pub applied: u64,
    /// Active membership.
    pub config: TrackerConfig,
    /// Progress of every peer; filled only on the leader.
    pub progress: ProgressMap,
    /// Target of an ongoing leadership transfer.
    pub lead_transferee: Option<u64>,
}

impl Status {
    /// Collects the status of `raft`.
    pub fn new<S: Storage>(raft: &Raft<S>) -> Self {
        let progress = if raft.state == StateRole::Leader {
            raft.prs.progress.clone()
        } else {
            ProgressMap::new()
        };
        Status {
            id: raft.id,
            hard_state: raft.hard_state(),
            soft_state: raft.soft_state(),
            applied: raft.raft_log.applied,
            config: raft.prs.config.clone(),
            progress,
            lead_transferee: raft.lead_transferee,
        }
    }

    /// Current term.
    pub fn term(&self) -> u64 {
        self.hard_state.term
    }

    /// Vote in the current term.
    pub fn vote(&self) -> u64 {
        self.hard_state.vote
    }

    /// Commit index.
    pub fn commit(&self) -> u64 {
        self.hard_state.commit
    }

    /// Known leader (0 if none).
    pub fn lead(&self) -> u64 {
        self.soft_state.leader_id
    }

    /// Role.
    pub fn state(&self) -> StateRole {
        self.soft_state.raft_state
    }

    /// Progress of `id` (leader only).
    pub fn progress_of(&self, id: u64) -> Option<&Progress> {
        self.progress.get(&id)
    }
}
