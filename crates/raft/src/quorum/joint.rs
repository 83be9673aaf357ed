use super::{MajorityConfig, VoteResult};
use std::collections::{BTreeMap, BTreeSet};

/// Incoming and outgoing majorities. Outside of a membership change the outgoing one is
/// empty and the incoming majority alone decides; during joint consensus both must agree.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JointConfig {
    /// The new (or only) configuration.
    pub incoming: MajorityConfig,
    /// The configuration being left; empty unless joint.
    pub outgoing: MajorityConfig,
}

impl JointConfig {
    /// Whether a joint transition is in progress.
    pub fn is_joint(&self) -> bool {
        !self.outgoing.is_empty()
    }

    /// Every voter of either half.
    pub fn ids(&self) -> BTreeSet<u64> {
        self.incoming.ids().union(self.outgoing.ids()).copied().collect()
    }

    /// Whether `id` votes in either half.
    pub fn contains(&self, id: u64) -> bool {
        self.incoming.contains(id) || self.outgoing.contains(id)
    }

    /// Largest index acknowledged by a quorum in both halves.
    pub fn committed_index(&self, acked: impl Fn(u64) -> Option<u64> + Copy) -> u64 {
        self.incoming.committed_index(acked).min(self.outgoing.committed_index(acked))
    }

    /// Combined vote: both halves must win; either losing loses.
    pub fn vote_result(&self, votes: &BTreeMap<u64, bool>) -> VoteResult {
        let a = self.incoming.vote_result(votes);
        let b = self.outgoing.vote_result(votes);
        if a == b {
            a
        } else if a == VoteResult::Lost || b == VoteResult::Lost {
            VoteResult::Lost
        } else {
            VoteResult::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joint(i: &[u64], o: &[u64]) -> JointConfig {
        JointConfig {
            incoming: MajorityConfig::new(i.iter().copied().collect()),
            outgoing: MajorityConfig::new(o.iter().copied().collect()),
        }
    }

    #[test]
    fn committed_is_min_of_halves() {
        let acks: BTreeMap<u64, u64> = [(1, 10), (2, 8), (3, 3), (4, 2)].into_iter().collect();
        let acked = |id| acks.get(&id).copied();
        assert_eq!(joint(&[1, 2, 3], &[]).committed_index(acked), 8);
        assert_eq!(joint(&[1, 2, 3], &[3, 4, 5]).committed_index(acked), 2);
        assert_eq!(joint(&[1, 2], &[1, 2, 3]).committed_index(acked), 8);
    }

    #[test]
    fn vote_needs_both_halves() {
        use VoteResult::*;
        let v = |p: &[(u64, bool)]| p.iter().copied().collect::<BTreeMap<_, _>>();
        let j = joint(&[1, 2, 3], &[3, 4, 5]);
        assert_eq!(j.vote_result(&v(&[(1, true), (2, true)])), Pending);
        assert_eq!(j.vote_result(&v(&[(1, true), (2, true), (3, true)])), Pending);
        assert_eq!(j.vote_result(&v(&[(1, true), (3, true), (4, true)])), Won);
        assert_eq!(j.vote_result(&v(&[(4, false), (5, false), (1, true)])), Lost);
        assert_eq!(joint(&[1], &[]).vote_result(&v(&[(1, true)])), Won);
    }
}
