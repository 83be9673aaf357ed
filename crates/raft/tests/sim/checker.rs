//! Safety invariants, checked after every simulator step. A violation panics with a
//! description; the test harness adds the seed and the reproduction command.

use bytes::Bytes;
use oxetcd_raft::{ConfState, Entry, MemStorage, RawNode, ReadState, StateRole};
use std::collections::BTreeMap;

#[derive(Default)]
pub struct Checker {
    pub step: u64,
    pub ticks: u64,
    /// Election safety: the leader of each term.
    leaders: BTreeMap<u64, u64>,
    /// Every entry known to be committed, by index: (term, data).
    committed: BTreeMap<u64, (u64, Bytes)>,
    /// Per node: committed indexes already compared with `committed`.
    verified_commit: BTreeMap<u64, u64>,
    /// Per node: the term in which its leadership was last checked for completeness.
    completeness_checked: BTreeMap<u64, u64>,
    /// Result of applying the conf change at each index (must agree across nodes).
    conf_results: BTreeMap<u64, Result<ConfState, String>>,
    /// Votes granted, by (voter, term): a voter grants one candidate per term, even across
    /// crashes (the vote is persisted before the answer leaves).
    votes: BTreeMap<(u64, u64), u64>,
    /// Highest commit index any node ever reported.
    max_commit: u64,
    /// Read requests: the highest commit index known when each was issued.
    reads: BTreeMap<Bytes, u64>,
    pub reads_answered: u64,
    pub entries_applied: u64,
    /// Ticks from healing until a new proposal was applied by the leader.
    pub recovery_ticks: u64,
}

impl Checker {
    fn record_committed(&mut self, who: &str, index: u64, term: u64, data: &Bytes) {
        match self.committed.get(&index) {
            Some((t, d)) => assert!(
                *t == term && d == data,
                "committed entry {index} changed: was term {t} data {d:?}, {who} has term {term} \
                 data {data:?}"
            ),
            None => {
                self.committed.insert(index, (term, data.clone()));
            }
        }
    }

    pub fn check_step(&mut self, nodes: &[(u64, &RawNode<MemStorage>)]) {
        self.step += 1;
        for &(id, node) in nodes {
            let r = node.raft();
            if r.state() == StateRole::Leader {
                let prev = *self.leaders.entry(r.term()).or_insert(id);
                assert_eq!(prev, id, "two leaders in term {}: {prev} and {id}", r.term());
                if self.completeness_checked.get(&id) != Some(&r.term()) {
                    self.completeness_checked.insert(id, r.term());
                    self.check_leader_completeness(id, node);
                }
            }
            let log = r.raft_log();
            let commit = log.committed();
            let from = self.verified_commit.get(&id).copied().unwrap_or(0) + 1;
            let from = from.max(log.first_index());
            if from <= commit {
                let ents = log
                    .slice(from, commit + 1, u64::MAX)
                    .unwrap_or_else(|e| panic!("node {id}: committed entries unreadable: {e}"));
                for e in &ents {
                    self.record_committed(&format!("node {id}"), e.index, e.term, &e.data);
                }
            }
            self.verified_commit.insert(id, commit.max(from - 1));
            self.max_commit = self.max_commit.max(commit);
        }
    }

    /// A new leader holds every entry committed so far (that it has not compacted).
    fn check_leader_completeness(&self, id: u64, node: &RawNode<MemStorage>) {
        let log = &node.raft().raft_log();
        for (&index, (term, _)) in self.committed.range(log.first_index()..) {
            let have = log.term(index).ok();
            assert_eq!(
                have,
                Some(*term),
                "leader {id} (term {}) lacks committed entry {index} of term {term}",
                node.raft().term()
            );
        }
        let snap_index = log.first_index() - 1;
        assert!(
            self.committed.range(..=snap_index).next_back().is_none() || snap_index > 0,
            "leader {id} compacted entries it never had"
        );
    }

    pub fn vote_granted(&mut self, voter: u64, term: u64, candidate: u64) {
        let prev = *self.votes.entry((voter, term)).or_insert(candidate);
        assert_eq!(
            prev, candidate,
            "node {voter} granted its term-{term} vote to both {prev} and {candidate}"
        );
    }

    pub fn restarted(&mut self, id: u64, applied: u64) {
        // After a restart the node re-verifies its committed prefix from its snapshot on.
        let v = self.verified_commit.entry(id).or_insert(0);
        *v = (*v).min(applied);
    }

    pub fn apply(&mut self, id: u64, prev_applied: u64, e: &Entry) {
        assert_eq!(
            e.index,
            prev_applied + 1,
            "node {id} applied index {} after {prev_applied}",
            e.index
        );
        self.record_committed(&format!("node {id} (apply)"), e.index, e.term, &e.data);
        self.entries_applied += 1;
    }

    pub fn snapshot_applied(&mut self, id: u64, index: u64) {
        assert!(
            index <= self.max_commit,
            "node {id} applied snapshot {index} beyond any known commit {}",
            self.max_commit
        );
    }

    pub fn conf_applied(&mut self, id: u64, index: u64, result: Result<ConfState, String>) {
        match self.conf_results.get(&index) {
            Some(prev) => {
                assert_eq!(prev, &result, "node {id} applied conf change {index} differently")
            }
            None => {
                self.conf_results.insert(index, result);
            }
        }
    }

    pub fn read_started(&mut self, ctx: Bytes) {
        self.reads.insert(ctx, self.max_commit);
    }

    pub fn read_answered(&mut self, id: u64, rs: &ReadState) {
        let Some(&min) = self.reads.get(&rs.request_ctx) else {
            panic!("node {id} got an answer to unknown read {:?}", rs.request_ctx);
        };
        assert!(
            rs.index >= min,
            "node {id}: read {:?} answered with index {} but {min} was committed before it began",
            rs.request_ctx,
            rs.index
        );
        self.reads_answered += 1;
    }
}
