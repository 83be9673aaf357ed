//! The history of one key: its generations of revisions.
//!
//! A *generation* runs from the put that (re)creates a key to the delete that removes it; the
//! delete's revision (the tombstone) is the generation's last revision and is followed by a
//! new, empty generation. A key whose last generation is empty is deleted.
//!
//! Most keys are written once and never deleted, so they are stored as a bare revision
//! ([`KeyIndex::Single`]) with no heap allocation; anything else holds its generations.

use std::collections::HashSet;

use crate::revision::Revision;

/// What the index knows about a key at some revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyRevision {
    /// The revision of the write that produced the value visible at the asked revision.
    pub modified: Revision,
    /// The revision that created the key's current generation.
    pub created: Revision,
    /// Number of puts in the generation up to and including `modified`.
    pub version: i64,
}

/// A run of revisions from a key's creation to its deletion (the tombstone, if any, is last).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Generation {
    /// Revision of the put that created the generation (kept even after compaction drops it).
    created: Revision,
    /// Number of revisions in the generation (its tombstone included), compacted ones too.
    version: i64,
    /// Remaining revisions, ascending.
    revs: Vec<Revision>,
}

impl Generation {
    fn new(created: Revision, version: i64) -> Self {
        Self { created, version, revs: vec![created] }
    }

    /// Index of the newest revision whose main revision is at or below `at`.
    fn position_at(&self, at: i64) -> Option<usize> {
        self.revs.iter().rposition(|rev| rev.main <= at)
    }
}

/// One key's history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyIndex {
    /// A live key whose one remaining generation is a single put that created it (version 1).
    Single(Revision),
    /// Generations, oldest first. The last one is empty when the key is deleted.
    Full(Vec<Generation>),
}

/// The key has no live generation to end (a delete of a deleted key).
#[derive(Debug, PartialEq, Eq)]
pub struct NotLive;

impl KeyIndex {
    /// A key created by a put at `rev`.
    pub fn created(rev: Revision) -> Self {
        Self::Single(rev)
    }

    /// A key rebuilt from a stored value: `modified` is its revision, `created` and
    /// `version` come from the value.
    pub fn restored(created: Revision, modified: Revision, version: i64) -> Self {
        if created.main == modified.main && version == 1 {
            return Self::Single(modified);
        }
        Self::Full(vec![Generation { created, version, revs: vec![modified] }])
    }

    /// A deleted key whose history was compacted away entirely.
    fn is_empty(&self) -> bool {
        match self {
            Self::Single(_) => false,
            Self::Full(gens) => gens.iter().all(|g| g.revs.is_empty()),
        }
    }

    /// Whether the key currently exists.
    pub fn is_live(&self) -> bool {
        match self {
            Self::Single(_) => true,
            Self::Full(gens) => gens.last().is_some_and(|g| !g.revs.is_empty()),
        }
    }

    /// The latest revision of the key (put or tombstone).
    pub fn modified(&self) -> Option<Revision> {
        match self {
            Self::Single(rev) => Some(*rev),
            Self::Full(gens) => gens.iter().rev().find_map(|g| g.revs.last().copied()),
        }
    }

    fn generations_mut(&mut self) -> &mut Vec<Generation> {
        if let Self::Single(rev) = *self {
            *self = Self::Full(vec![Generation::new(rev, 1)]);
        }
        match self {
            Self::Full(gens) => gens,
            Self::Single(_) => unreachable!("Single was converted to Full above"),
        }
    }

    /// Records a put at `rev`, starting a new generation if the key is deleted.
    pub fn put(&mut self, rev: Revision) {
        debug_assert!(self.modified().is_none_or(|m| rev > m), "put must move forward");
        let gens = self.generations_mut();
        match gens.last_mut() {
            Some(g) if !g.revs.is_empty() => {
                g.revs.push(rev);
                g.version += 1;
            }
            Some(g) => *g = Generation::new(rev, 1),
            None => gens.push(Generation::new(rev, 1)),
        }
    }

    /// Records a delete at `rev`: ends the live generation with a tombstone.
    pub fn tombstone(&mut self, rev: Revision) -> Result<(), NotLive> {
        if !self.is_live() {
            return Err(NotLive);
        }
        debug_assert!(self.modified().is_none_or(|m| rev > m), "delete must move forward");
        let gens = self.generations_mut();
        if let Some(g) = gens.last_mut() {
            // Counted like a put (as etcd does), so versions of older revisions stay right.
            g.revs.push(rev);
            g.version += 1;
        }
        gens.push(Generation { created: Revision::default(), version: 0, revs: Vec::new() });
        Ok(())
    }

    /// The key's state at main revision `at`, or `None` if it did not exist then.
    pub fn get(&self, at: i64) -> Option<KeyRevision> {
        match self {
            Self::Single(rev) => (rev.main <= at).then_some(KeyRevision {
                modified: *rev,
                created: *rev,
                version: 1,
            }),
            Self::Full(gens) => {
                let last = gens.len().checked_sub(1)?;
                for (i, g) in gens.iter().enumerate().rev() {
                    let (Some(first), Some(tomb)) = (g.revs.first(), g.revs.last()) else {
                        continue;
                    };
                    if i != last && tomb.main <= at {
                        // The newest generation that started by `at` had already ended.
                        return None;
                    }
                    if first.main <= at {
                        let n = g.position_at(at)?;
                        let newer_puts = i64::try_from(g.revs.len() - n - 1).ok()?;
                        return Some(KeyRevision {
                            modified: g.revs[n],
                            created: g.created,
                            version: g.version - newer_puts,
                        });
                    }
                }
                None
            }
        }
    }

    /// The first generation that still matters at `at` (the last one, or the first whose
    /// tombstone is newer than `at`) and the position of its newest revision at or below
    /// `at`, which is added to `keep`.
    fn compaction_point(
        gens: &[Generation],
        at: i64,
        keep: &mut HashSet<Revision>,
    ) -> (usize, Option<usize>) {
        let mut gi = 0;
        while gi + 1 < gens.len() && gens[gi].revs.last().is_none_or(|tomb| tomb.main <= at) {
            gi += 1;
        }
        let pos = gens.get(gi).and_then(|g| g.position_at(at));
        if let (Some(g), Some(n)) = (gens.get(gi), pos) {
            keep.insert(g.revs[n]);
        }
        (gi, pos)
    }

    /// Adds to `keep` the revision that must survive a compaction at `at`, without changing
    /// anything (what HashKV needs).
    pub fn keep(&self, at: i64, keep: &mut HashSet<Revision>) {
        match self {
            Self::Single(rev) => {
                if rev.main <= at {
                    keep.insert(*rev);
                }
            }
            Self::Full(gens) => {
                let (gi, pos) = Self::compaction_point(gens, at, keep);
                // A tombstone at or below `at` is not kept: the key is gone by then.
                if let (Some(g), Some(n)) = (gens.get(gi), pos)
                    && n + 1 == g.revs.len()
                    && gi + 1 != gens.len()
                {
                    keep.remove(&g.revs[n]);
                }
            }
        }
    }

    /// Drops every revision older than the newest one at or below `at` of the generation
    /// live at `at`, adding the survivor to `keep`. Returns `true` if nothing is left and
    /// the key can be forgotten.
    pub fn compact(&mut self, at: i64, keep: &mut HashSet<Revision>) -> bool {
        let gens = match self {
            Self::Single(rev) => {
                if rev.main <= at {
                    keep.insert(*rev);
                }
                return false;
            }
            Self::Full(gens) => gens,
        };
        let (gi, pos) = Self::compaction_point(gens, at, keep);
        let mut first_kept = gi;
        let is_last = gi + 1 == gens.len();
        if let Some(g) = gens.get_mut(gi)
            && !g.revs.is_empty()
        {
            if let Some(n) = pos {
                g.revs.drain(..n);
            }
            if g.revs.len() == 1 && !is_last {
                // Only the tombstone is left: the generation is over.
                keep.remove(&g.revs[0]);
                first_kept += 1;
            }
        }
        gens.drain(..first_kept);
        if let [g] = gens.as_slice()
            && g.version == 1
            && let [only] = g.revs[..]
            && only.main == g.created.main
        {
            *self = Self::Single(only);
        }
        self.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev(main: i64) -> Revision {
        Revision::at_main(main)
    }

    /// The key from etcd's documentation: puts at 1,2,3; delete at 4; puts 5,6; delete 7;
    /// puts 8,9.
    fn history() -> KeyIndex {
        let mut ki = KeyIndex::created(rev(1));
        ki.put(rev(2));
        ki.put(rev(3));
        ki.tombstone(rev(4)).unwrap();
        ki.put(rev(5));
        ki.put(rev(6));
        ki.tombstone(rev(7)).unwrap();
        ki.put(rev(8));
        ki.put(rev(9));
        ki
    }

    #[test]
    fn layout_stays_small() {
        assert!(std::mem::size_of::<KeyIndex>() <= 24);
    }

    #[test]
    fn get_follows_generations() {
        let ki = history();
        assert_eq!(ki.get(0), None);
        let at3 = ki.get(3).unwrap();
        assert_eq!((at3.modified, at3.created, at3.version), (rev(3), rev(1), 3));
        assert_eq!(ki.get(4), None);
        assert_eq!(ki.get(6).unwrap().version, 2);
        assert_eq!(ki.get(7), None);
        let at9 = ki.get(100).unwrap();
        assert_eq!((at9.modified, at9.created, at9.version), (rev(9), rev(8), 2));
    }

    #[test]
    fn tombstone_of_deleted_key_fails() {
        let mut ki = KeyIndex::created(rev(1));
        ki.tombstone(rev(2)).unwrap();
        assert_eq!(ki.tombstone(rev(3)), Err(NotLive));
        assert!(!ki.is_live());
    }

    #[test]
    fn compaction_keeps_what_reads_need() {
        for at in 0..=10 {
            let mut ki = history();
            let mut kept = HashSet::new();
            let mut would_keep = HashSet::new();
            ki.keep(at, &mut would_keep);
            let empty = ki.compact(at, &mut kept);
            assert!(!empty);
            assert_eq!(kept, would_keep, "keep and compact agree at {at}");
            let full = history();
            for read in at..=10 {
                assert_eq!(ki.get(read), full.get(read), "read at {read} after compact at {at}");
            }
        }
    }

    #[test]
    fn compaction_forgets_deleted_keys() {
        let mut ki = KeyIndex::created(rev(1));
        ki.put(rev(2));
        ki.tombstone(rev(3)).unwrap();
        let mut kept = HashSet::new();
        assert!(!ki.compact(2, &mut kept));
        assert_eq!(kept, HashSet::from([rev(2)]));
        kept.clear();
        assert!(ki.compact(3, &mut kept));
        assert!(kept.is_empty());
    }

    #[test]
    fn compaction_returns_to_single() {
        let mut ki = KeyIndex::created(rev(1));
        ki.tombstone(rev(2)).unwrap();
        ki.put(rev(3));
        ki.compact(3, &mut HashSet::new());
        assert_eq!(ki, KeyIndex::Single(rev(3)));
    }
}
