//! Stable storage: the trait raft reads its persisted log through, and an in-memory
//! implementation used by tests, the simulator and as a read cache in front of the WAL.

use crate::errors::{Error, Result};
use crate::types::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use crate::util::limit_size;
use bytes::Bytes;

/// Persisted state returned when a node starts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RaftState {
    /// Last persisted term, vote and commit.
    pub hard_state: HardState,
    /// Last persisted membership.
    pub conf_state: ConfState,
}

/// Read access to the persisted part of the log. Raft never writes through this trait: the
/// application persists what `Ready` hands out and then calls `advance`.
///
/// Errors: [`Error::Compacted`] for indexes before `first_index`, [`Error::Unavailable`] for
/// indexes after `last_index`, [`Error::SnapshotTemporarilyUnavailable`] from `snapshot` when
/// one is being produced.
pub trait Storage {
    /// Hard state and membership to start from.
    fn initial_state(&self) -> Result<RaftState>;
    /// Entries in `[lo, hi)`, trimmed to `max_size` encoded bytes (at least one entry).
    fn entries(&self, lo: u64, hi: u64, max_size: u64) -> Result<Vec<Entry>>;
    /// Term of the entry at `index`; `first_index() - 1` is answered from the snapshot.
    fn term(&self, index: u64) -> Result<u64>;
    /// Index of the first entry still available (snapshot index + 1 after compaction).
    fn first_index(&self) -> Result<u64>;
    /// Index of the last persisted entry.
    fn last_index(&self) -> Result<u64>;
    /// The most recent snapshot.
    fn snapshot(&self) -> Result<Snapshot>;
}

/// An in-memory [`Storage`].
#[derive(Clone, Debug, Default)]
pub struct MemStorage {
    hard_state: HardState,
    conf_state: ConfState,
    snapshot: Snapshot,
    /// Index and term of the entry just before `entries` (the compaction point).
    prev_index: u64,
    prev_term: u64,
    entries: Vec<Entry>,
}

impl MemStorage {
    /// Empty storage (a node that has never run).
    pub fn new() -> Self {
        MemStorage::default()
    }

    /// Storage for a brand-new cluster member that starts with the given voters, as if it had
    /// applied a snapshot at index 0 describing that membership.
    pub fn new_with_conf_state(conf_state: ConfState) -> Self {
        MemStorage { conf_state, ..MemStorage::default() }
    }

    /// Persists the hard state.
    pub fn set_hard_state(&mut self, hs: HardState) {
        self.hard_state = hs;
    }

    /// Persists the membership (call after applying a configuration change).
    pub fn set_conf_state(&mut self, cs: ConfState) {
        self.conf_state = cs;
    }

    /// The persisted hard state.
    pub fn hard_state(&self) -> HardState {
        self.hard_state
    }

    fn last(&self) -> u64 {
        self.prev_index + self.entries.len() as u64
    }

    /// Appends entries, replacing any conflicting suffix. Entries already compacted are
    /// skipped. Panics if the entries would leave a gap (a caller bug).
    pub fn append(&mut self, entries: &[Entry]) {
        let Some(first_new) = entries.first().map(|e| e.index) else {
            return;
        };
        let first = self.prev_index + 1;
        let skip = first.saturating_sub(first_new) as usize;
        if skip >= entries.len() {
            return;
        }
        let entries = &entries[skip..];
        let start = entries[0].index;
        assert!(
            start <= self.last() + 1,
            "append at {start} leaves a gap after last index {}",
            self.last()
        );
        self.entries.truncate((start - first) as usize);
        self.entries.extend_from_slice(entries);
    }

    /// Discards entries up to and including `index`, which must be at most the last index.
    pub fn compact(&mut self, index: u64) -> Result<()> {
        if index <= self.prev_index {
            return Err(Error::Compacted);
        }
        if index > self.last() {
            return Err(Error::Unavailable);
        }
        let n = (index - self.prev_index) as usize;
        self.prev_term = self.entries[n - 1].term;
        self.prev_index = index;
        self.entries.drain(..n);
        Ok(())
    }

    /// The first index from which the entries up to the last one carry at most
    /// `max_bytes` of payload; one past the last index when the last entry alone carries
    /// more. Where to compact to bound the log's memory by size rather than by count.
    pub fn first_index_within(&self, max_bytes: u64) -> u64 {
        let mut held = 0u64;
        for (i, entry) in self.entries.iter().enumerate().rev() {
            held += entry.data.len() as u64;
            if held > max_bytes {
                return self.prev_index + i as u64 + 2;
            }
        }
        self.prev_index + 1
    }

    /// Replaces the whole log with a snapshot received from the leader.
    pub fn apply_snapshot(&mut self, snapshot: Snapshot) -> Result<()> {
        if snapshot.index() <= self.snapshot.index() {
            return Err(Error::SnapOutOfDate);
        }
        self.prev_index = snapshot.index();
        self.prev_term = snapshot.term();
        self.entries.clear();
        self.conf_state = snapshot.conf_state();
        self.hard_state.term = self.hard_state.term.max(snapshot.term());
        self.hard_state.commit = self.hard_state.commit.max(snapshot.index());
        self.snapshot = snapshot;
        Ok(())
    }

    /// Records a snapshot of the application state at `index` (which must be available) so
    /// that lagging followers can be caught up; usually followed by `compact`.
    pub fn create_snapshot(
        &mut self,
        index: u64,
        conf_state: ConfState,
        data: Bytes,
    ) -> Result<Snapshot> {
        if index <= self.snapshot.index() {
            return Err(Error::SnapOutOfDate);
        }
        let term = self.term(index)?;
        self.snapshot = Snapshot {
            data,
            metadata: Some(SnapshotMetadata { conf_state: Some(conf_state), index, term }),
        };
        Ok(self.snapshot.clone())
    }
}

impl Storage for MemStorage {
    fn initial_state(&self) -> Result<RaftState> {
        Ok(RaftState { hard_state: self.hard_state, conf_state: self.conf_state.clone() })
    }

    fn entries(&self, lo: u64, hi: u64, max_size: u64) -> Result<Vec<Entry>> {
        if lo <= self.prev_index {
            return Err(Error::Compacted);
        }
        if hi > self.last() + 1 || lo > hi {
            return Err(Error::Unavailable);
        }
        let from = (lo - self.prev_index - 1) as usize;
        let to = (hi - self.prev_index - 1) as usize;
        let mut out = self.entries[from..to].to_vec();
        limit_size(&mut out, max_size);
        Ok(out)
    }

    fn term(&self, index: u64) -> Result<u64> {
        if index == self.prev_index {
            return Ok(self.prev_term);
        }
        if index < self.prev_index {
            return Err(Error::Compacted);
        }
        if index > self.last() {
            return Err(Error::Unavailable);
        }
        Ok(self.entries[(index - self.prev_index - 1) as usize].term)
    }

    fn first_index(&self) -> Result<u64> {
        Ok(self.prev_index + 1)
    }

    fn last_index(&self) -> Result<u64> {
        Ok(self.last())
    }

    fn snapshot(&self) -> Result<Snapshot> {
        Ok(self.snapshot.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ent(index: u64, term: u64) -> Entry {
        Entry { index, term, ..Default::default() }
    }

    fn storage(ents: &[(u64, u64)]) -> MemStorage {
        let mut s = MemStorage::new();
        // Start from a compaction point at the first pair, as etcd's tests do.
        s.prev_index = ents[0].0;
        s.prev_term = ents[0].1;
        let rest: Vec<Entry> = ents[1..].iter().map(|&(i, t)| ent(i, t)).collect();
        s.append(&rest);
        s
    }

    #[test]
    fn term_answers_by_range() {
        let s = storage(&[(3, 3), (4, 4), (5, 5)]);
        let cases = [
            (2, Err(Error::Compacted)),
            (3, Ok(3)),
            (4, Ok(4)),
            (5, Ok(5)),
            (6, Err(Error::Unavailable)),
        ];
        for (i, want) in cases {
            assert_eq!(s.term(i), want, "index {i}");
        }
    }

    #[test]
    fn entries_respects_bounds_and_size() {
        let mut s = storage(&[(3, 3), (4, 4), (5, 5)]);
        s.append(&[ent(6, 6)]);
        assert_eq!(s.entries(2, 6, u64::MAX), Err(Error::Compacted));
        assert_eq!(s.entries(3, 4, u64::MAX), Err(Error::Compacted));
        assert_eq!(s.entries(4, 5, u64::MAX), Ok(vec![ent(4, 4)]));
        assert_eq!(s.entries(4, 7, u64::MAX).unwrap().len(), 3);
        assert_eq!(s.entries(4, 7, 0).unwrap().len(), 1);
        assert_eq!(s.entries(4, 8, 0), Err(Error::Unavailable));
        assert_eq!(s.first_index(), Ok(4));
        assert_eq!(s.last_index(), Ok(6));
    }

    #[test]
    fn append_truncates_conflicts_and_skips_compacted() {
        let mut s = storage(&[(3, 3), (4, 4), (5, 5)]);
        s.append(&[ent(1, 1), ent(2, 2), ent(3, 3)]);
        assert_eq!(s.last_index(), Ok(5));
        s.append(&[ent(4, 6), ent(5, 6)]);
        assert_eq!((s.term(4), s.term(5)), (Ok(6), Ok(6)));
        s.append(&[ent(6, 5)]);
        assert_eq!(s.last_index(), Ok(6));
        s.append(&[ent(5, 7)]);
        assert_eq!(s.last_index(), Ok(5));
        assert_eq!(s.term(5), Ok(7));
    }

    #[test]
    fn first_index_within_counts_payload_from_the_end() {
        let mut s = storage(&[(3, 3)]);
        let sized = |index: u64, len: usize| Entry {
            index,
            term: 3,
            data: Bytes::from(vec![0; len]),
            ..Default::default()
        };
        assert_eq!(s.first_index_within(0), 4, "an empty log holds nothing");
        s.append(&[sized(4, 100), sized(5, 10), sized(6, 20)]);
        assert_eq!(s.first_index_within(1_000), 4, "everything fits");
        assert_eq!(s.first_index_within(130), 4, "exactly fits");
        assert_eq!(s.first_index_within(129), 5);
        assert_eq!(s.first_index_within(30), 5);
        assert_eq!(s.first_index_within(29), 6);
        assert_eq!(s.first_index_within(19), 7, "the last entry alone is too big");
        s.compact(4).unwrap();
        assert_eq!(s.first_index_within(1_000), 5, "counted from the compaction point");
    }

    #[test]
    fn compact_and_snapshots() {
        let mut s = storage(&[(3, 3), (4, 4), (5, 5)]);
        assert_eq!(s.compact(2), Err(Error::Compacted));
        assert_eq!(s.compact(3), Err(Error::Compacted));
        assert_eq!(s.compact(6), Err(Error::Unavailable));
        assert_eq!(s.compact(4), Ok(()));
        assert_eq!(s.first_index(), Ok(5));
        assert_eq!(s.term(4), Ok(4));

        let cs = ConfState { voters: vec![1, 2, 3], ..Default::default() };
        let snap = s.create_snapshot(5, cs.clone(), Bytes::from_static(b"d")).unwrap();
        assert_eq!((snap.index(), snap.term()), (5, 5));
        assert_eq!(s.create_snapshot(5, cs.clone(), Bytes::new()), Err(Error::SnapOutOfDate));

        let mut fresh = MemStorage::new();
        fresh.apply_snapshot(snap.clone()).unwrap();
        assert_eq!(fresh.apply_snapshot(snap), Err(Error::SnapOutOfDate));
        assert_eq!(fresh.first_index(), Ok(6));
        assert_eq!(fresh.last_index(), Ok(5));
        assert_eq!(fresh.term(5), Ok(5));
        assert_eq!(fresh.initial_state().unwrap().conf_state, cs);
    }
}
