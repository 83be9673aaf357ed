//! The unstable tail of the log: entries (and possibly a snapshot) that raft has accepted but
//! the application has not yet persisted.

use crate::types::{Entry, Snapshot};

/// Entries at `offset..` plus an optional incoming snapshot, both not yet persisted.
///
/// Part of it may already be handed to the application in a Ready that was not advanced yet
/// ("in progress"): entries before `offset_in_progress`, and the snapshot if
/// `snapshot_in_progress`. Later Readys carry only what comes after, so each entry is written
/// once even with several Readys in flight.
#[derive(Clone, Debug, Default)]
pub(crate) struct Unstable {
    /// A snapshot received from the leader that replaces everything before `offset`.
    pub(crate) snapshot: Option<Snapshot>,
    pub(crate) entries: Vec<Entry>,
    /// Index of `entries[0]` (or where the next entry would go).
    pub(crate) offset: u64,
    /// First entry index not yet handed out; `offset <= offset_in_progress <= end`.
    offset_in_progress: u64,
    snapshot_in_progress: bool,
}

impl Unstable {
    pub(crate) fn new(offset: u64) -> Self {
        Unstable {
            snapshot: None,
            entries: Vec::new(),
            offset,
            offset_in_progress: offset,
            snapshot_in_progress: false,
        }
    }

    fn end(&self) -> u64 {
        self.offset + self.entries.len() as u64
    }

    /// Entries not yet handed out.
    pub(crate) fn next_entries(&self) -> &[Entry] {
        &self.entries[(self.offset_in_progress - self.offset) as usize..]
    }

    /// The snapshot, unless already handed out.
    pub(crate) fn next_snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref().filter(|_| !self.snapshot_in_progress)
    }

    /// Everything currently unstable was handed out to be persisted.
    pub(crate) fn accept_in_progress(&mut self) {
        self.offset_in_progress = self.end();
        self.snapshot_in_progress = self.snapshot.is_some();
    }

    /// First index known only through the pending snapshot.
    pub(crate) fn maybe_first_index(&self) -> Option<u64> {
        self.snapshot.as_ref().map(|s| s.index() + 1)
    }

    pub(crate) fn maybe_last_index(&self) -> Option<u64> {
        if !self.entries.is_empty() {
            return Some(self.offset + self.entries.len() as u64 - 1);
        }
        self.snapshot.as_ref().map(Snapshot::index)
    }

    pub(crate) fn maybe_term(&self, index: u64) -> Option<u64> {
        if index < self.offset {
            return self.snapshot.as_ref().filter(|s| s.index() == index).map(Snapshot::term);
        }
        if index > self.maybe_last_index()? {
            return None;
        }
        self.entries.get((index - self.offset) as usize).map(|e| e.term)
    }

    /// The application persisted entries up to `index` (with `term`). If the entry at `index`
    /// has since been replaced (different term), nothing is marked stable.
    pub(crate) fn stable_to(&mut self, index: u64, term: u64) {
        if index < self.offset || self.maybe_term(index) != Some(term) {
            return;
        }
        let n = (index + 1 - self.offset) as usize;
        self.entries.drain(..n);
        self.offset = index + 1;
        self.offset_in_progress = self.offset_in_progress.max(self.offset);
    }

    pub(crate) fn stable_snap_to(&mut self, index: u64) {
        if self.snapshot.as_ref().is_some_and(|s| s.index() == index) {
            self.snapshot = None;
            self.snapshot_in_progress = false;
        }
    }

    pub(crate) fn restore(&mut self, snapshot: Snapshot) {
        self.offset = snapshot.index() + 1;
        self.offset_in_progress = self.offset;
        self.entries.clear();
        self.snapshot = Some(snapshot);
        self.snapshot_in_progress = false;
    }

    /// Appends `ents`, discarding any existing entries at or after `ents[0].index`.
    pub(crate) fn truncate_and_append(&mut self, ents: &[Entry]) {
        let Some(after) = ents.first().map(|e| e.index) else {
            return;
        };
        let end = self.end();
        if after <= self.offset {
            // Replaces everything unstable (and possibly part of stable storage).
            self.offset = after;
            self.entries.clear();
        } else {
            debug_assert!(after <= end, "unstable append at {after} leaves a gap (end {end})");
            self.entries.truncate((after - self.offset) as usize);
        }
        // Replaced entries that were handed out must be handed out again (in their new form).
        self.offset_in_progress = self.offset_in_progress.min(after).max(self.offset);
        self.entries.extend_from_slice(ents);
    }

    /// Entries in `[lo, hi)`, which must lie within the unstable range.
    pub(crate) fn slice(&self, lo: u64, hi: u64) -> &[Entry] {
        assert!(
            self.offset <= lo && lo <= hi && hi <= self.end(),
            "unstable slice [{lo}, {hi}) out of bounds (offset {}, len {})",
            self.offset,
            self.entries.len()
        );
        &self.entries[(lo - self.offset) as usize..(hi - self.offset) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::SnapshotMetadata;

    fn ent(index: u64, term: u64) -> Entry {
        Entry { index, term, ..Default::default() }
    }

    fn snap(index: u64, term: u64) -> Snapshot {
        Snapshot {
            metadata: Some(SnapshotMetadata { index, term, conf_state: None }),
            ..Default::default()
        }
    }

    fn unstable(ents: &[(u64, u64)], offset: u64, snapshot: Option<Snapshot>) -> Unstable {
        Unstable {
            snapshot,
            entries: ents.iter().map(|&(i, t)| ent(i, t)).collect(),
            offset,
            offset_in_progress: offset,
            snapshot_in_progress: false,
        }
    }

    #[test]
    fn indexes_and_terms() {
        let u = unstable(&[(5, 1)], 5, Some(snap(4, 1)));
        assert_eq!(u.maybe_first_index(), Some(5));
        assert_eq!(u.maybe_last_index(), Some(5));
        assert_eq!(u.maybe_term(4), Some(1));
        assert_eq!(u.maybe_term(5), Some(1));
        assert_eq!(u.maybe_term(6), None);
        assert_eq!(u.maybe_term(3), None);
        let u = unstable(&[], 5, Some(snap(4, 1)));
        assert_eq!(u.maybe_last_index(), Some(4));
        let u = unstable(&[], 0, None);
        assert_eq!((u.maybe_first_index(), u.maybe_last_index()), (None, None));
    }

    #[test]
    fn stable_to_only_matching_terms() {
        type Case<'a> = (&'a [(u64, u64)], u64, u64, u64, u64, usize);
        let cases: &[Case] = &[
            // entries, offset, stable index, stable term, want offset, want len
            (&[], 0, 5, 1, 0, 0),
            (&[(5, 1)], 5, 5, 1, 6, 0),
            (&[(5, 1), (6, 1)], 5, 5, 1, 6, 1),
            (&[(6, 2)], 6, 6, 1, 6, 1), // term mismatch: replaced meanwhile
            (&[(5, 1)], 5, 4, 1, 5, 1), // below offset
            (&[(5, 1)], 5, 6, 1, 5, 1), // beyond end
        ];
        for (i, &(ents, off, si, st, woff, wlen)) in cases.iter().enumerate() {
            let mut u = unstable(ents, off, None);
            u.stable_to(si, st);
            assert_eq!((u.offset, u.entries.len()), (woff, wlen), "case {i}");
        }
    }

    #[test]
    fn truncate_and_append_cases() {
        type Pairs<'a> = &'a [(u64, u64)];
        let cases: &[(Pairs, u64, Pairs, u64, Pairs)] = &[
            (&[(5, 1)], 5, &[(6, 1), (7, 1)], 5, &[(5, 1), (6, 1), (7, 1)]),
            (&[(5, 1)], 5, &[(5, 2), (6, 2)], 5, &[(5, 2), (6, 2)]),
            (&[(5, 1)], 5, &[(4, 2), (5, 2)], 4, &[(4, 2), (5, 2)]),
            (&[(5, 1), (6, 1), (7, 1)], 5, &[(6, 2)], 5, &[(5, 1), (6, 2)]),
        ];
        for (i, &(ents, off, app, woff, want)) in cases.iter().enumerate() {
            let mut u = unstable(ents, off, None);
            let app: Vec<Entry> = app.iter().map(|&(i, t)| ent(i, t)).collect();
            u.truncate_and_append(&app);
            let got: Vec<(u64, u64)> = u.entries.iter().map(|e| (e.index, e.term)).collect();
            assert_eq!((u.offset, got.as_slice()), (woff, want), "case {i}");
        }
    }

    #[test]
    fn in_progress_entries_are_handed_out_once() {
        let mut u = unstable(&[(5, 1), (6, 1)], 5, None);
        assert_eq!(u.next_entries().len(), 2);
        u.accept_in_progress();
        assert!(u.next_entries().is_empty());
        u.truncate_and_append(&[ent(7, 1)]);
        assert_eq!(u.next_entries(), &[ent(7, 1)]);
        u.accept_in_progress();
        // A conflict rewrites 6 and 7: they must be handed out again.
        u.truncate_and_append(&[ent(6, 2)]);
        assert_eq!(u.next_entries(), &[ent(6, 2)]);
        u.stable_to(5, 1);
        assert_eq!(u.next_entries(), &[ent(6, 2)]);
        u.accept_in_progress();
        u.restore(snap(9, 2));
        assert!(u.next_entries().is_empty() && u.next_snapshot().is_some());
        u.accept_in_progress();
        assert!(u.next_snapshot().is_none());
        u.stable_snap_to(9);
        assert!(u.snapshot.is_none());
    }

    #[test]
    fn restore_and_stable_snap() {
        let mut u = unstable(&[(5, 1)], 5, None);
        u.restore(snap(6, 2));
        assert_eq!((u.offset, u.entries.len()), (7, 0));
        u.stable_snap_to(5);
        assert!(u.snapshot.is_some());
        u.stable_snap_to(6);
        assert!(u.snapshot.is_none());
    }
}
