//! What the leader knows about each follower's log.

mod inflights;
mod tracker;

pub use inflights::Inflights;
pub use tracker::{ProgressMap, ProgressTracker, TrackerConfig};

use std::fmt;

/// How the leader is currently replicating to a follower.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressState {
    /// Unknown match: send one append per heartbeat interval until the follower answers.
    Probe,
    /// Known match: stream appends optimistically, bounded by the inflight window.
    Replicate,
    /// The follower needs a snapshot; nothing is sent until it is reported done.
    Snapshot {
        /// Index of the snapshot being sent.
        pending: u64,
    },
}

impl fmt::Display for ProgressState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProgressState::Probe => f.write_str("StateProbe"),
            ProgressState::Replicate => f.write_str("StateReplicate"),
            ProgressState::Snapshot { pending } => write!(f, "StateSnapshot({pending})"),
        }
    }
}

/// Replication progress of one peer, as seen by the leader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Highest index known to be replicated on the peer.
    pub matched: u64,
    /// Next index to send.
    pub next_idx: u64,
    /// Replication state.
    pub state: ProgressState,
    /// In probe state: an append was sent and we wait for its answer before sending more.
    pub probe_sent: bool,
    /// Heard from the peer since the last check-quorum round.
    pub recent_active: bool,
    /// In-flight appends (meaningful in replicate state).
    pub inflights: Inflights,
    /// Whether the peer is a learner.
    pub is_learner: bool,
}

impl Progress {
    /// A fresh probe-state progress expecting `next_idx`.
    pub fn new(next_idx: u64, max_inflight: usize) -> Self {
        Progress {
            matched: 0,
            next_idx,
            state: ProgressState::Probe,
            probe_sent: false,
            recent_active: false,
            inflights: Inflights::new(max_inflight),
            is_learner: false,
        }
    }

    fn reset_state(&mut self, state: ProgressState) {
        self.probe_sent = false;
        self.state = state;
        self.inflights.reset();
    }

    /// Switches to probing from just after the known match (or after a pending snapshot,
    /// which is assumed to have been applied).
    pub fn become_probe(&mut self) {
        let after = match self.state {
            ProgressState::Snapshot { pending } => self.matched.max(pending),
            _ => self.matched,
        };
        self.reset_state(ProgressState::Probe);
        self.next_idx = after + 1;
    }

    /// Switches to optimistic streaming.
    pub fn become_replicate(&mut self) {
        self.reset_state(ProgressState::Replicate);
        self.next_idx = self.matched + 1;
    }

    /// Switches to waiting for snapshot `index` to be installed.
    pub fn become_snapshot(&mut self, index: u64) {
        self.reset_state(ProgressState::Snapshot { pending: index });
    }

    /// A successful append response for `index`: returns whether the match advanced.
    pub fn maybe_update(&mut self, index: u64) -> bool {
        let updated = self.matched < index;
        if updated {
            self.matched = index;
            self.probe_sent = false;
        }
        self.next_idx = self.next_idx.max(index + 1);
        updated
    }

    /// After sending entries up to `index` in replicate state.
    pub fn optimistic_update(&mut self, index: u64) {
        self.next_idx = index + 1;
    }

    /// A rejected append for `rejected` with the follower's `match_hint`: moves `next_idx`
    /// back. Returns false for stale rejections, which must be ignored.
    pub fn maybe_decr_to(&mut self, rejected: u64, match_hint: u64) -> bool {
        if self.state == ProgressState::Replicate {
            // Rejections at or below the match are duplicates of old messages.
            if rejected <= self.matched {
                return false;
            }
            self.next_idx = self.matched + 1;
            return true;
        }
        // In probe state only the rejection of the last probe counts.
        if self.next_idx == 0 || self.next_idx - 1 != rejected {
            return false;
        }
        self.next_idx = rejected.min(match_hint.saturating_add(1)).max(self.matched + 1);
        self.probe_sent = false;
        true
    }

    /// Whether sending appends to this peer is currently throttled.
    pub fn is_paused(&self) -> bool {
        match self.state {
            ProgressState::Probe => self.probe_sent,
            ProgressState::Replicate => self.inflights.full(),
            ProgressState::Snapshot { .. } => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pr(matched: u64, next: u64, state: ProgressState) -> Progress {
        let mut p = Progress::new(next, 4);
        p.matched = matched;
        p.state = state;
        p
    }

    #[test]
    fn maybe_update_table() {
        let cases = [
            (1, false, 5, 2), // stale: nothing moves
            (5, false, 5, 6), // same match, next catches up
            (6, true, 6, 7),  // advances
            (10, true, 10, 11),
        ];
        for (upd, want, wm, wn) in cases {
            let mut p = pr(5, 2, ProgressState::Probe);
            assert_eq!(p.maybe_update(upd), want, "update {upd}");
            assert_eq!((p.matched, p.next_idx), (wm, wn), "update {upd}");
        }
    }

    #[test]
    fn maybe_decr_to_table() {
        use ProgressState::*;
        // (state, match, next, rejected, hint, want, want next)
        let cases = [
            (Replicate, 5, 10, 5, 5, false, 10), // stale
            (Replicate, 5, 10, 4, 4, false, 10), // stale
            (Replicate, 5, 10, 9, 9, true, 6),   // back to match+1
            (Probe, 0, 0, 0, 0, false, 0),       // next 0 never rejected
            (Probe, 0, 10, 5, 5, false, 10),     // not the last probe
            (Probe, 0, 10, 9, 9, true, 9),
            (Probe, 0, 2, 1, 1, true, 1),
            (Probe, 0, 10, 9, 2, true, 3), // hint jumps back
            (Probe, 4, 10, 9, 2, true, 5), // never below match+1
        ];
        for (i, (st, m, n, rej, hint, want, wn)) in cases.into_iter().enumerate() {
            let mut p = pr(m, n, st);
            assert_eq!(p.maybe_decr_to(rej, hint), want, "case {i}");
            assert_eq!(p.next_idx, wn, "case {i}");
        }
    }

    #[test]
    fn pause_rules() {
        let mut p = pr(0, 1, ProgressState::Probe);
        assert!(!p.is_paused());
        p.probe_sent = true;
        assert!(p.is_paused());
        p.maybe_update(1);
        assert!(!p.is_paused(), "an ack resumes probing");
        p.become_replicate();
        for i in 2..6 {
            p.inflights.add(i);
        }
        assert!(p.is_paused());
        p.become_snapshot(10);
        assert!(p.is_paused());
        p.become_probe();
        assert_eq!(p.next_idx, 11, "probe resumes after the pending snapshot");
        assert!(!p.is_paused());
    }
}
