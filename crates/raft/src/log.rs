//! The raft log: persisted entries (through [`Storage`]) followed by the unstable tail.
//!
//! ```text
//!   snapshot/compacted | storage entries        | unstable entries
//!   ...  first_index-1 | first_index ... offset-1 | offset ... last_index
//!                applied <= applying <= committed <= last_index
//! ```

use crate::errors::{Error, Result};
use crate::log_unstable::Unstable;
use crate::storage::Storage;
use crate::types::{Entry, Snapshot};
use crate::util::limit_size;

/// The log of one node.
pub struct RaftLog<S: Storage> {
    pub(crate) store: S,
    pub(crate) unstable: Unstable,
    /// Highest index known to be committed (stored on a quorum).
    pub(crate) committed: u64,
    /// Highest index the application has applied. Always `<= committed`.
    pub(crate) applied: u64,
    /// Highest index handed out for applying (in a Ready not yet advanced). Committed
    /// entries are handed out once, even if `ready()` is called again before `advance()`.
    applying: u64,
    /// Payload budget of committed entries handed out per Ready.
    max_next_ents_size: u64,
}

impl<S: Storage> RaftLog<S> {
    /// Opens the log over `store`. Storage errors at this point are fatal for the node.
    pub(crate) fn new(store: S, max_next_ents_size: u64) -> Self {
        let first = store.first_index().expect("storage first_index");
        let last = store.last_index().expect("storage last_index");
        RaftLog {
            store,
            unstable: Unstable::new(last + 1),
            committed: first - 1,
            applied: first - 1,
            applying: first - 1,
            max_next_ents_size,
        }
    }

    /// Index of the first entry still available.
    pub fn first_index(&self) -> u64 {
        self.unstable
            .maybe_first_index()
            .unwrap_or_else(|| self.store.first_index().expect("storage first_index"))
    }

    /// Index of the last entry (persisted or not).
    pub fn last_index(&self) -> u64 {
        self.unstable
            .maybe_last_index()
            .unwrap_or_else(|| self.store.last_index().expect("storage last_index"))
    }

    /// Term of the entry at `index`: `Compacted` below the log, `Unavailable` past its end.
    pub fn term(&self, index: u64) -> Result<u64> {
        let dummy = self.first_index() - 1;
        if index < dummy {
            return Err(Error::Compacted);
        }
        if index > self.last_index() {
            return Err(Error::Unavailable);
        }
        if let Some(t) = self.unstable.maybe_term(index) {
            return Ok(t);
        }
        self.store.term(index)
    }

    /// Term at `index`, or 0 when it is not in the log (never matches a real term).
    pub(crate) fn term_or_zero(&self, index: u64) -> u64 {
        self.term(index).unwrap_or(0)
    }

    pub(crate) fn last_term(&self) -> u64 {
        self.term(self.last_index()).expect("the last entry's term is always known")
    }

    pub(crate) fn match_term(&self, index: u64, term: u64) -> bool {
        self.term(index).is_ok_and(|t| t == term)
    }

    /// Candidate's log (`last_index`, `term`) is at least as up to date as ours (§5.4.1).
    pub(crate) fn is_up_to_date(&self, last_index: u64, term: u64) -> bool {
        term > self.last_term() || (term == self.last_term() && last_index >= self.last_index())
    }

    /// Follower side of AppendEntries: if our entry at `index` has `log_term`, appends the new
    /// entries (dropping a conflicting suffix) and returns the index of the last new entry.
    pub(crate) fn maybe_append(
        &mut self,
        index: u64,
        log_term: u64,
        committed: u64,
        ents: &[Entry],
    ) -> Option<u64> {
        if !self.match_term(index, log_term) {
            return None;
        }
        let last_new = index + ents.len() as u64;
        let conflict = self.find_conflict(ents);
        if conflict != 0 {
            if conflict <= self.committed {
                // Only a faulty or malicious leader would rewrite committed entries.
                return None;
            }
            let start = (conflict - (index + 1)) as usize;
            self.append(&ents[start..]);
        }
        self.commit_to(committed.min(last_new));
        Some(last_new)
    }

    /// Index of the first entry that is missing or has a different term, or 0.
    fn find_conflict(&self, ents: &[Entry]) -> u64 {
        ents.iter().find(|e| !self.match_term(e.index, e.term)).map_or(0, |e| e.index)
    }

    /// Largest index `<= index` whose term is `<= term`: everything after it certainly
    /// differs from a log whose entry at `index` has `term`. Used for fast backtracking.
    pub(crate) fn find_conflict_by_term(&self, mut index: u64, term: u64) -> u64 {
        if index > self.last_index() {
            return index;
        }
        while index > 0 {
            match self.term(index) {
                Ok(t) if t > term => index -= 1,
                _ => break,
            }
        }
        index
    }

    /// Appends to the unstable tail, replacing anything at or after `ents[0].index`.
    pub(crate) fn append(&mut self, ents: &[Entry]) -> u64 {
        if let Some(first) = ents.first() {
            assert!(
                first.index > self.committed,
                "append at {} would overwrite committed index {}",
                first.index,
                self.committed
            );
            self.unstable.truncate_and_append(ents);
        }
        self.last_index()
    }

    /// Unstable entries not yet handed out in a Ready.
    pub(crate) fn next_unstable_entries(&self) -> &[Entry] {
        self.unstable.next_entries()
    }

    /// Pending snapshot to persist, if not yet handed out in a Ready.
    pub(crate) fn next_unstable_snapshot(&self) -> Option<&Snapshot> {
        self.unstable.next_snapshot()
    }

    /// Everything unstable was handed out in a Ready.
    pub(crate) fn accept_unstable(&mut self) {
        self.unstable.accept_in_progress();
    }

    /// Pending snapshot (handed out or not), not persisted yet.
    #[cfg(test)]
    pub(crate) fn unstable_snapshot(&self) -> Option<&Snapshot> {
        self.unstable.snapshot.as_ref()
    }

    fn next_ents_start(&self) -> u64 {
        (self.applying + 1).max(self.first_index())
    }

    /// Committed entries not yet applied, limited by the per-Ready budget.
    pub(crate) fn next_entries(&self) -> Vec<Entry> {
        let lo = self.next_ents_start();
        if self.committed < lo {
            return Vec::new();
        }
        self.slice(lo, self.committed + 1, self.max_next_ents_size)
            .expect("committed unapplied entries are always available")
    }

    pub(crate) fn has_next_entries(&self) -> bool {
        self.committed >= self.next_ents_start()
    }

    /// The newest snapshot: the pending one, else the one in storage.
    pub(crate) fn snapshot(&self) -> Result<Snapshot> {
        match &self.unstable.snapshot {
            Some(s) => Ok(s.clone()),
            None => self.store.snapshot(),
        }
    }

    /// Raises the commit index. Callers guarantee `index <= last_index`.
    pub(crate) fn commit_to(&mut self, index: u64) {
        if index > self.committed {
            assert!(
                index <= self.last_index(),
                "commit index {index} beyond last index {}",
                self.last_index()
            );
            self.committed = index;
        }
    }

    /// Leader rule: commit `index` only if its entry is from the current `term` (§5.4.2).
    pub(crate) fn maybe_commit(&mut self, index: u64, term: u64) -> bool {
        if index > self.committed && self.term_or_zero(index) == term {
            self.commit_to(index);
            true
        } else {
            false
        }
    }

    pub(crate) fn applied_to(&mut self, index: u64) {
        if index == 0 {
            return;
        }
        assert!(
            self.applied <= index && index <= self.committed,
            "applied index {index} out of range [{}, {}]",
            self.applied,
            self.committed
        );
        self.applied = index;
        self.applying = self.applying.max(index);
    }

    /// Committed entries up to `index` were handed out to be applied.
    pub(crate) fn applying_to(&mut self, index: u64) {
        debug_assert!(index <= self.committed);
        self.applying = self.applying.max(index);
    }

    pub(crate) fn stable_to(&mut self, index: u64, term: u64) {
        self.unstable.stable_to(index, term);
    }

    pub(crate) fn stable_snap_to(&mut self, index: u64) {
        self.unstable.stable_snap_to(index);
    }

    /// Highest index known to be durable on this node (a lower bound).
    pub(crate) fn persisted_index(&self) -> u64 {
        if self.unstable.snapshot.is_some() {
            // Nothing is known durable until the snapshot itself is persisted.
            return 0;
        }
        self.unstable.offset - 1
    }

    /// Replaces the log with a snapshot (follower catching up).
    pub(crate) fn restore(&mut self, snapshot: Snapshot) {
        self.committed = snapshot.index();
        self.unstable.restore(snapshot);
    }

    /// Entries from `index` to the end, within `max_size`.
    pub(crate) fn entries(&self, index: u64, max_size: u64) -> Result<Vec<Entry>> {
        if index > self.last_index() {
            return Ok(Vec::new());
        }
        self.slice(index, self.last_index() + 1, max_size)
    }

    /// Entries in `[lo, hi)` within `max_size` (at least one entry).
    pub fn slice(&self, lo: u64, hi: u64, max_size: u64) -> Result<Vec<Entry>> {
        if lo > hi || hi > self.last_index() + 1 {
            return Err(Error::Unavailable);
        }
        if lo < self.first_index() {
            return Err(Error::Compacted);
        }
        if lo == hi {
            return Ok(Vec::new());
        }
        let offset = self.unstable.offset;
        let mut out = Vec::new();
        if lo < offset {
            let stored_hi = hi.min(offset);
            out = self.store.entries(lo, stored_hi, max_size)?;
            if (out.len() as u64) < stored_hi - lo {
                // The size limit was hit inside storage.
                return Ok(out);
            }
        }
        if hi > offset {
            out.extend_from_slice(self.unstable.slice(lo.max(offset), hi));
        }
        limit_size(&mut out, max_size);
        Ok(out)
    }

    /// Highest committed index.
    pub fn committed(&self) -> u64 {
        self.committed
    }

    /// Highest applied index.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// The underlying storage.
    pub fn store(&self) -> &S {
        &self.store
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemStorage;
    use crate::types::SnapshotMetadata;

    pub(crate) fn ent(index: u64, term: u64) -> Entry {
        Entry { index, term, ..Default::default() }
    }

    fn ents(pairs: &[(u64, u64)]) -> Vec<Entry> {
        pairs.iter().map(|&(i, t)| ent(i, t)).collect()
    }

    fn log_with(pairs: &[(u64, u64)]) -> RaftLog<MemStorage> {
        let mut l = RaftLog::new(MemStorage::new(), u64::MAX);
        l.append(&ents(pairs));
        l
    }

    #[test]
    fn find_conflict_table() {
        let l = log_with(&[(1, 1), (2, 2), (3, 3)]);
        let cases: &[(&[(u64, u64)], u64)] = &[
            (&[], 0),
            (&[(1, 1), (2, 2), (3, 3)], 0),
            (&[(2, 2), (3, 3)], 0),
            (&[(1, 1), (2, 2), (3, 3), (4, 4)], 4),
            (&[(4, 4), (5, 4)], 4),
            (&[(1, 4), (2, 4)], 1),
            (&[(2, 1), (3, 4), (4, 4)], 2),
            (&[(3, 1), (4, 2)], 3),
        ];
        for (i, &(e, want)) in cases.iter().enumerate() {
            assert_eq!(l.find_conflict(&ents(e)), want, "case {i}");
        }
    }

    #[test]
    fn find_conflict_by_term_table() {
        let l = log_with(&[(1, 2), (2, 2), (3, 5), (4, 5), (5, 5)]);
        let cases = [(5, 6, 5), (5, 5, 5), (5, 4, 2), (4, 2, 2), (3, 1, 0), (9, 1, 9)];
        for (index, term, want) in cases {
            assert_eq!(l.find_conflict_by_term(index, term), want, "({index},{term})");
        }
    }

    #[test]
    fn is_up_to_date_table() {
        let l = log_with(&[(1, 1), (2, 2), (3, 3)]);
        let cases = [
            (2, 4, true),
            (3, 4, true),
            (4, 4, true),
            (2, 2, false),
            (3, 2, false),
            (4, 2, false),
            (2, 3, false),
            (3, 3, true),
            (4, 3, true),
        ];
        for (li, t, want) in cases {
            assert_eq!(l.is_up_to_date(li, t), want, "({li},{t})");
        }
    }

    #[test]
    fn maybe_append_table() {
        // (index, log_term, commit, entries, want last-new, want commit, want last index)
        type Case<'a> = (u64, u64, u64, &'a [(u64, u64)], Option<u64>, u64, u64);
        let cases: &[Case] = &[
            (3, 2, 3, &[(4, 4)], None, 1, 3), // term mismatch
            (4, 3, 3, &[(5, 4)], None, 1, 3), // index past end
            (3, 3, 3, &[], Some(3), 3, 3),
            (3, 3, 4, &[], Some(3), 3, 3), // commit limited to last new entry
            (3, 3, 2, &[], Some(3), 2, 3),
            (3, 3, 4, &[(4, 4)], Some(4), 4, 4),
            (2, 2, 4, &[(3, 4)], Some(3), 3, 3), // conflict replaced
            (1, 1, 4, &[(2, 4), (3, 4)], Some(3), 3, 3),
            (1, 1, 1, &[(2, 2)], Some(2), 1, 3), // duplicate: log keeps the tail
        ];
        for (i, &(idx, lt, commit, e, want, wc, wl)) in cases.iter().enumerate() {
            let mut l = log_with(&[(1, 1), (2, 2), (3, 3)]);
            l.committed = 1;
            assert_eq!(l.maybe_append(idx, lt, commit, &ents(e)), want, "case {i}");
            assert_eq!((l.committed, l.last_index()), (wc, wl), "case {i}");
        }
    }

    #[test]
    fn maybe_append_refuses_to_rewrite_committed() {
        let mut l = log_with(&[(1, 1), (2, 2), (3, 3)]);
        l.committed = 2;
        assert_eq!(l.maybe_append(0, 0, 3, &ents(&[(1, 1), (2, 5)])), None);
        assert_eq!(l.term(2), Ok(2));
    }

    #[test]
    fn commit_only_current_term() {
        let mut l = log_with(&[(1, 1), (2, 2)]);
        assert!(!l.maybe_commit(2, 3), "entry of an older term is not committed by counting");
        assert!(!l.maybe_commit(1, 2));
        assert!(l.maybe_commit(2, 2));
        assert_eq!(l.committed, 2);
    }

    #[test]
    fn slice_spans_storage_and_unstable() {
        let mut store = MemStorage::new();
        store.append(&ents(&[(1, 1), (2, 1), (3, 1)]));
        store.compact(1).unwrap();
        let mut l = RaftLog::new(store, u64::MAX);
        l.append(&ents(&[(4, 2), (5, 2)]));
        let idx = |v: Vec<Entry>| v.iter().map(|e| e.index).collect::<Vec<_>>();
        assert_eq!(l.slice(1, 2, u64::MAX), Err(Error::Compacted));
        assert_eq!(idx(l.slice(2, 6, u64::MAX).unwrap()), vec![2, 3, 4, 5]);
        assert_eq!(idx(l.slice(3, 5, u64::MAX).unwrap()), vec![3, 4]);
        assert_eq!(idx(l.slice(4, 6, u64::MAX).unwrap()), vec![4, 5]);
        assert_eq!(idx(l.slice(2, 6, 0).unwrap()), vec![2]);
        assert_eq!(l.slice(2, 7, u64::MAX), Err(Error::Unavailable));
        assert_eq!(l.term(1), Ok(1));
        assert_eq!(l.term(0), Err(Error::Compacted));
        assert_eq!(l.term(6), Err(Error::Unavailable));
    }

    #[test]
    fn next_entries_respect_applied_and_budget() {
        let mut l = RaftLog::new(MemStorage::new(), 0);
        l.append(&ents(&[(1, 1), (2, 1), (3, 1)]));
        assert!(!l.has_next_entries());
        l.commit_to(3);
        assert!(l.has_next_entries());
        assert_eq!(l.next_entries().len(), 1, "budget 0 still yields one entry");
        l.applied_to(2);
        assert_eq!(l.next_entries()[0].index, 3);
        l.applied_to(3);
        assert!(!l.has_next_entries());
    }

    #[test]
    fn restore_snapshot_resets_log() {
        let mut l = log_with(&[(1, 1)]);
        l.restore(Snapshot {
            metadata: Some(SnapshotMetadata { index: 100, term: 5, conf_state: None }),
            ..Default::default()
        });
        assert_eq!((l.committed, l.first_index(), l.last_index()), (100, 101, 100));
        assert_eq!(l.term(100), Ok(5));
        assert_eq!(l.persisted_index(), 0);
        l.stable_snap_to(100);
        assert_eq!(l.persisted_index(), 100);
    }
}
