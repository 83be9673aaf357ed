use super::VoteResult;
use std::collections::{BTreeMap, BTreeSet};

/// A set of voters deciding by simple majority.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MajorityConfig {
    voters: BTreeSet<u64>,
}

impl MajorityConfig {
    /// A majority over `voters`.
    pub fn new(voters: BTreeSet<u64>) -> Self {
        MajorityConfig { voters }
    }

    /// The voter ids.
    pub fn ids(&self) -> &BTreeSet<u64> {
        &self.voters
    }

    pub(crate) fn ids_mut(&mut self) -> &mut BTreeSet<u64> {
        &mut self.voters
    }

    /// Whether `id` is a voter.
    pub fn contains(&self, id: u64) -> bool {
        self.voters.contains(&id)
    }

    /// Number of voters.
    pub fn len(&self) -> usize {
        self.voters.len()
    }

    /// Whether there are no voters.
    pub fn is_empty(&self) -> bool {
        self.voters.is_empty()
    }

    /// Largest index acknowledged by a majority, given each voter's acknowledged index
    /// (`None` counts as 0). An empty config returns `u64::MAX` so that it never limits a
    /// joint configuration.
    pub fn committed_index(&self, acked: impl Fn(u64) -> Option<u64>) -> u64 {
        if self.voters.is_empty() {
            return u64::MAX;
        }
        let mut matched: Vec<u64> = self.voters.iter().map(|&id| acked(id).unwrap_or(0)).collect();
        // Sorted descending, the quorum-th largest value is acknowledged by a quorum.
        matched.sort_unstable_by(|a, b| b.cmp(a));
        matched[self.quorum() - 1]
    }

    fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    /// Tallies `votes` (true = granted). An empty config wins, matching the convention that
    /// it does not constrain a joint configuration.
    pub fn vote_result(&self, votes: &BTreeMap<u64, bool>) -> VoteResult {
        if self.voters.is_empty() {
            return VoteResult::Won;
        }
        let (mut yes, mut missing) = (0, 0);
        for id in &self.voters {
            match votes.get(id) {
                Some(true) => yes += 1,
                Some(false) => {}
                None => missing += 1,
            }
        }
        let q = self.quorum();
        if yes >= q {
            VoteResult::Won
        } else if yes + missing >= q {
            VoteResult::Pending
        } else {
            VoteResult::Lost
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(ids: &[u64]) -> MajorityConfig {
        MajorityConfig::new(ids.iter().copied().collect())
    }

    #[test]
    fn committed_index_table() {
        type Case<'a> = (&'a [u64], &'a [(u64, u64)], u64);
        let cases: &[Case] = &[
            (&[], &[], u64::MAX),
            (&[1], &[(1, 5)], 5),
            (&[1, 2], &[(1, 5), (2, 3)], 3),
            (&[1, 2, 3], &[(1, 5), (2, 3)], 3),
            (&[1, 2, 3], &[(1, 5)], 0),
            (&[1, 2, 3], &[(1, 5), (2, 7), (3, 6)], 6),
            (&[1, 2, 3, 4], &[(1, 5), (2, 7), (3, 6), (4, 1)], 5),
            (&[1, 2, 3, 4, 5], &[(1, 9), (2, 2), (3, 8), (4, 1), (5, 4)], 4),
        ];
        for (i, &(ids, acks, want)) in cases.iter().enumerate() {
            let acks: BTreeMap<u64, u64> = acks.iter().copied().collect();
            assert_eq!(cfg(ids).committed_index(|id| acks.get(&id).copied()), want, "case {i}");
        }
    }

    #[test]
    fn vote_result_table() {
        use VoteResult::*;
        type Case<'a> = (&'a [u64], &'a [(u64, bool)], VoteResult);
        let cases: &[Case] = &[
            (&[], &[], Won),
            (&[1], &[], Pending),
            (&[1], &[(1, true)], Won),
            (&[1], &[(1, false)], Lost),
            (&[1, 2, 3], &[(1, true)], Pending),
            (&[1, 2, 3], &[(1, true), (2, true)], Won),
            (&[1, 2, 3], &[(1, false), (2, false)], Lost),
            (&[1, 2, 3], &[(1, true), (2, false)], Pending),
            (&[1, 2, 3, 4], &[(1, true), (2, true)], Pending),
            (&[1, 2, 3, 4], &[(1, false), (2, false)], Lost),
            (&[1, 2], &[(1, true), (9, true)], Pending),
        ];
        for (i, &(ids, votes, want)) in cases.iter().enumerate() {
            let votes: BTreeMap<u64, bool> = votes.iter().copied().collect();
            assert_eq!(cfg(ids).vote_result(&votes), want, "case {i}");
        }
    }
}
