//! Membership changes: computing the next configuration from the current one.
//!
//! The [`Changer`] works on copies and returns the new configuration and progress map only if
//! every invariant holds, so a rejected change leaves the node untouched.

use crate::errors::{Error, Result};
use crate::progress::{Progress, ProgressMap, ProgressTracker, TrackerConfig};
use crate::types::{ConfChangeSingle, ConfChangeType, ConfState};
use std::collections::BTreeSet;

/// Computes configuration transitions for a tracker.
pub(crate) struct Changer<'a> {
    pub(crate) tracker: &'a ProgressTracker,
    /// Last log index, used as the first probe index of new peers.
    pub(crate) last_index: u64,
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidConfChange(msg.into())
}

impl Changer<'_> {
    fn snapshot(&self) -> (TrackerConfig, ProgressMap) {
        (self.tracker.config.clone(), self.tracker.progress.clone())
    }

    /// Enters a joint configuration: the current voters become the outgoing half and the
    /// changes are applied to the incoming half.
    pub(crate) fn enter_joint(
        &self,
        auto_leave: bool,
        ccs: &[ConfChangeSingle],
    ) -> Result<(TrackerConfig, ProgressMap)> {
        let (mut cfg, mut prs) = self.snapshot();
        if cfg.voters.is_joint() {
            return Err(invalid("config is already joint"));
        }
        if cfg.voters.incoming.is_empty() {
            return Err(invalid("can't make a zero-voter config joint"));
        }
        cfg.voters.outgoing = cfg.voters.incoming.clone();
        self.apply(&mut cfg, &mut prs, ccs)?;
        cfg.auto_leave = auto_leave;
        check_invariants(&cfg, &prs)?;
        Ok((cfg, prs))
    }

    /// Leaves the joint configuration: the incoming half alone remains, outgoing voters not
    /// kept are dropped, and `learners_next` become learners.
    pub(crate) fn leave_joint(&self) -> Result<(TrackerConfig, ProgressMap)> {
        let (mut cfg, mut prs) = self.snapshot();
        if !cfg.voters.is_joint() {
            return Err(invalid("can't leave a non-joint config"));
        }
        for id in std::mem::take(&mut cfg.learners_next) {
            cfg.learners.insert(id);
            if let Some(pr) = prs.get_mut(&id) {
                pr.is_learner = true;
            }
        }
        let outgoing = std::mem::take(cfg.voters.outgoing.ids_mut());
        for id in outgoing {
            if !cfg.voters.incoming.contains(id) && !cfg.learners.contains(&id) {
                prs.remove(&id);
            }
        }
        cfg.auto_leave = false;
        check_invariants(&cfg, &prs)?;
        Ok((cfg, prs))
    }

    /// Applies changes directly, which is only allowed when at most one voter changes.
    pub(crate) fn simple(&self, ccs: &[ConfChangeSingle]) -> Result<(TrackerConfig, ProgressMap)> {
        let (mut cfg, mut prs) = self.snapshot();
        if cfg.voters.is_joint() {
            return Err(invalid("can't apply simple config change in joint config"));
        }
        self.apply(&mut cfg, &mut prs, ccs)?;
        let before = self.tracker.config.voters.incoming.ids();
        let after = cfg.voters.incoming.ids();
        if before.symmetric_difference(after).count() > 1 {
            return Err(invalid("more than one voter changed without entering joint config"));
        }
        check_invariants(&cfg, &prs)?;
        Ok((cfg, prs))
    }

    fn apply(
        &self,
        cfg: &mut TrackerConfig,
        prs: &mut ProgressMap,
        ccs: &[ConfChangeSingle],
    ) -> Result<()> {
        for cc in ccs {
            // The application zeroes the node id of changes it decided not to apply.
            if cc.node_id == 0 {
                continue;
            }
            match cc.change_type() {
                ConfChangeType::ConfChangeAddNode => self.make_voter(cfg, prs, cc.node_id),
                ConfChangeType::ConfChangeAddLearnerNode => self.make_learner(cfg, prs, cc.node_id),
                ConfChangeType::ConfChangeRemoveNode => remove(cfg, prs, cc.node_id),
                ConfChangeType::ConfChangeUpdateNode => {}
            }
        }
        if cfg.voters.incoming.is_empty() {
            return Err(invalid("removed all voters"));
        }
        Ok(())
    }

    fn new_progress(&self, is_learner: bool) -> Progress {
        // Probing from the last index lets the leader find the follower's log quickly.
        let mut pr = Progress::new(self.last_index.max(1), self.tracker.max_inflight);
        pr.is_learner = is_learner;
        // A new peer counts as active so that check-quorum does not depose the leader
        // before the peer had a chance to answer.
        pr.recent_active = true;
        pr
    }

    fn make_voter(&self, cfg: &mut TrackerConfig, prs: &mut ProgressMap, id: u64) {
        match prs.get_mut(&id) {
            Some(pr) => pr.is_learner = false,
            None => {
                prs.insert(id, self.new_progress(false));
            }
        }
        cfg.learners.remove(&id);
        cfg.learners_next.remove(&id);
        cfg.voters.incoming.ids_mut().insert(id);
    }

    fn make_learner(&self, cfg: &mut TrackerConfig, prs: &mut ProgressMap, id: u64) {
        let Some(mut pr) = prs.get(&id).cloned() else {
            prs.insert(id, self.new_progress(true));
            cfg.learners.insert(id);
            return;
        };
        if pr.is_learner {
            return;
        }
        // Drop it as a voter of the incoming half, keeping its progress.
        remove(cfg, prs, id);
        if cfg.voters.outgoing.contains(id) {
            // Still votes in the outgoing half: it becomes a learner on leaving the joint
            // config, because a node cannot be a voter and a learner at the same time.
            cfg.learners_next.insert(id);
        } else {
            pr.is_learner = true;
            cfg.learners.insert(id);
        }
        prs.insert(id, pr);
    }
}

fn remove(cfg: &mut TrackerConfig, prs: &mut ProgressMap, id: u64) {
    if !prs.contains_key(&id) {
        return;
    }
    cfg.voters.incoming.ids_mut().remove(&id);
    cfg.learners.remove(&id);
    cfg.learners_next.remove(&id);
    // An outgoing voter keeps its progress until the joint config is left.
    if !cfg.voters.outgoing.contains(id) {
        prs.remove(&id);
    }
}

fn check_invariants(cfg: &TrackerConfig, prs: &ProgressMap) -> Result<()> {
    let all: BTreeSet<u64> = cfg
        .voters
        .ids()
        .union(&cfg.learners)
        .copied()
        .chain(cfg.learners_next.iter().copied())
        .collect();
    for id in &all {
        if !prs.contains_key(id) {
            return Err(invalid(format!("no progress for {id}")));
        }
    }
    if prs.len() != all.len() {
        return Err(invalid("progress tracked for a node outside the config"));
    }
    for id in &cfg.learners_next {
        if !cfg.voters.outgoing.contains(*id) {
            return Err(invalid(format!("{id} is in learners_next but not outgoing")));
        }
        if prs[id].is_learner {
            return Err(invalid(format!("{id} is in learners_next but is a learner")));
        }
    }
    for id in &cfg.learners {
        if cfg.voters.contains(*id) {
            return Err(invalid(format!("{id} is both a learner and a voter")));
        }
        if !prs[id].is_learner {
            return Err(invalid(format!("{id} is a learner without the learner flag")));
        }
    }
    if !cfg.voters.is_joint() && (!cfg.learners_next.is_empty() || cfg.auto_leave) {
        return Err(invalid("learners_next or auto_leave set outside a joint config"));
    }
    Ok(())
}

/// Builds the tracker configuration described by `cs` (from a snapshot or storage) on top of
/// an empty tracker.
pub(crate) fn restore(
    tracker: &ProgressTracker,
    last_index: u64,
    cs: &ConfState,
) -> Result<(TrackerConfig, ProgressMap)> {
    use ConfChangeType::*;
    let single = |t, ids: &[u64]| -> Vec<ConfChangeSingle> {
        ids.iter().map(|&id| ConfChangeSingle::new(t, id)).collect()
    };
    let outgoing = single(ConfChangeAddNode, &cs.voters_outgoing);
    // The incoming half starts as a copy of the outgoing one when entering the joint state,
    // so the outgoing voters are first removed from it.
    let incoming: Vec<ConfChangeSingle> = [
        single(ConfChangeRemoveNode, &cs.voters_outgoing),
        single(ConfChangeAddNode, &cs.voters),
        single(ConfChangeAddLearnerNode, &cs.learners),
        single(ConfChangeAddLearnerNode, &cs.learners_next),
    ]
    .concat();

    let mut scratch = ProgressTracker::new(tracker.max_inflight);
    let install = |scratch: &mut ProgressTracker, (cfg, prs): (TrackerConfig, ProgressMap)| {
        scratch.config = cfg;
        scratch.progress = prs;
    };
    let (singles, joint) =
        if outgoing.is_empty() { (&incoming, None) } else { (&outgoing, Some(&incoming)) };
    for cc in singles {
        let next = Changer { tracker: &scratch, last_index }.simple(std::slice::from_ref(cc))?;
        install(&mut scratch, next);
    }
    if let Some(incoming) = joint {
        let next =
            Changer { tracker: &scratch, last_index }.enter_joint(cs.auto_leave, incoming)?;
        install(&mut scratch, next);
    }
    Ok((scratch.config, scratch.progress))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ConfChangeType::*;

    fn tracker_from(cs: &ConfState) -> ProgressTracker {
        let mut t = ProgressTracker::new(16);
        let (cfg, prs) = restore(&t, 10, cs).unwrap();
        t.config = cfg;
        t.progress = prs;
        t
    }

    fn cc(t: ConfChangeType, id: u64) -> ConfChangeSingle {
        ConfChangeSingle::new(t, id)
    }

    fn voters(ids: &[u64]) -> ConfState {
        ConfState { voters: ids.to_vec(), ..Default::default() }
    }

    #[test]
    fn restore_round_trips_conf_states() {
        let cases = [
            voters(&[1, 2, 3]),
            ConfState { voters: vec![1, 2], learners: vec![3], ..Default::default() },
            ConfState {
                voters: vec![1, 2, 4],
                voters_outgoing: vec![1, 2, 3],
                learners: vec![5],
                learners_next: vec![3],
                auto_leave: true,
            },
        ];
        for cs in cases {
            let t = tracker_from(&cs);
            assert_eq!(t.config.to_conf_state(), cs);
        }
        // A node that joins later starts without any configuration.
        let empty = ProgressTracker::new(16);
        let (cfg, prs) = restore(&empty, 0, &ConfState::default()).unwrap();
        assert!(cfg.voters.incoming.is_empty() && prs.is_empty());
    }

    #[test]
    fn simple_allows_one_voter_change_only() {
        let t = tracker_from(&voters(&[1, 2, 3]));
        let ch = Changer { tracker: &t, last_index: 10 };
        let (cfg, prs) = ch.simple(&[cc(ConfChangeAddNode, 4)]).unwrap();
        assert_eq!(cfg.voters.incoming.len(), 4);
        assert_eq!(prs[&4].next_idx, 10);
        assert!(ch.simple(&[cc(ConfChangeAddNode, 4), cc(ConfChangeAddNode, 5)]).is_err());
        // Adding a learner does not change voters and is always simple.
        let (cfg, _) = ch.simple(&[cc(ConfChangeAddLearnerNode, 9)]).unwrap();
        assert!(cfg.learners.contains(&9));
        // Demoting a voter to a learner is one voter change.
        let (cfg, prs) = ch.simple(&[cc(ConfChangeAddLearnerNode, 3)]).unwrap();
        assert!(cfg.learners.contains(&3) && prs[&3].is_learner);
        assert!(ch.simple(&[cc(ConfChangeRemoveNode, 1), cc(ConfChangeRemoveNode, 2)]).is_err());
        // Node id 0 means "skip".
        assert!(ch.simple(&[cc(ConfChangeAddNode, 0)]).is_ok());
        let single = tracker_from(&voters(&[1]));
        let ch = Changer { tracker: &single, last_index: 1 };
        assert!(ch.simple(&[cc(ConfChangeRemoveNode, 1)]).is_err(), "removed all voters");
    }

    #[test]
    fn joint_enter_and_leave() {
        let t = tracker_from(&voters(&[1, 2, 3]));
        let ch = Changer { tracker: &t, last_index: 10 };
        let (cfg, prs) = ch
            .enter_joint(
                true,
                &[
                    cc(ConfChangeAddNode, 4),
                    cc(ConfChangeRemoveNode, 1),
                    cc(ConfChangeAddLearnerNode, 3),
                ],
            )
            .unwrap();
        assert!(cfg.voters.is_joint() && cfg.auto_leave);
        assert_eq!(cfg.learners_next, BTreeSet::from([3]));
        assert!(prs.contains_key(&1), "outgoing voter keeps its progress");
        let mut joint = t.clone();
        joint.config = cfg;
        joint.progress = prs;
        let ch = Changer { tracker: &joint, last_index: 10 };
        assert!(ch.enter_joint(false, &[]).is_err(), "already joint");
        assert!(ch.simple(&[cc(ConfChangeAddNode, 7)]).is_err());
        let (cfg, prs) = ch.leave_joint().unwrap();
        assert!(!cfg.voters.is_joint() && !cfg.auto_leave);
        assert_eq!(cfg.voters.incoming.ids(), &BTreeSet::from([2, 4]));
        assert_eq!(cfg.learners, BTreeSet::from([3]));
        assert!(!prs.contains_key(&1) && prs[&3].is_learner);
        let mut left = joint.clone();
        left.config = cfg;
        left.progress = prs;
        assert!(Changer { tracker: &left, last_index: 10 }.leave_joint().is_err());
    }
}
