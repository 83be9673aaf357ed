//! The history of one key: its generations of revisions.
//!
//! A *generation* runs from the put that (re)creates a key to the delete that removes it; the
//! delete's revision (the tombstone) is the generation's last revision and is followed by a
//! new, empty generation. A key whose last generation is empty is deleted.
//!
//! Most keys are live with a single remaining revision: written once, or compacted down to
//! their latest write. Those are stored inline in 24 bytes ([`KeyIndex::Settled`]) with no
//! heap allocation; anything else holds its generations behind a box.

use std::collections::HashSet;
use std::num::NonZeroU32;

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

/// A live key with one generation and one remaining revision, packed so that
/// [`KeyIndex`] stays 24 bytes (the non-zero version is the enum's niche).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settled {
    main: i64,
    created_main: i64,
    sub: u32,
    version: NonZeroU32,
}

impl Settled {
    /// Packs `rev` of a generation created at main revision `created_main` with `version`
    /// puts; `None` if a field does not fit (the key then stays [`KeyIndex::Full`]).
    fn new(rev: Revision, created_main: i64, version: i64) -> Option<Self> {
        Some(Self {
            main: rev.main,
            created_main,
            sub: u32::try_from(rev.sub).ok()?,
            version: NonZeroU32::new(u32::try_from(version).ok()?)?,
        })
    }

    fn rev(self) -> Revision {
        Revision::new(self.main, i64::from(self.sub))
    }

    /// Its revision survives any compaction at or after it.
    fn keep(self, at: i64, keep: &mut HashSet<Revision>) {
        if self.main <= at {
            keep.insert(self.rev());
        }
    }

    /// The generation it stands for, about to take one more revision (a put or a
    /// tombstone: why it is unpacked), so with room for two: a `vec![rev]` would grow to
    /// four at that push, a second allocation on the write path and twice the memory.
    fn generation(self) -> Generation {
        let mut revs = Vec::with_capacity(2);
        revs.push(self.rev());
        Generation {
            created: Revision::at_main(self.created_main),
            version: i64::from(self.version.get()),
            revs,
        }
    }
}

/// One key's history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyIndex {
    /// A live key whose one generation has one remaining revision.
    Settled(Settled),
    /// Generations, oldest first. The last one is empty when the key is deleted.
    Full(Box<Vec<Generation>>),
}

/// The key has no live generation to end (a delete of a deleted key).
#[derive(Debug, PartialEq, Eq)]
pub struct NotLive;

/// A change at or before the key's latest revision (`latest`): history only moves forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotForward {
    pub latest: Revision,
}

impl KeyIndex {
    /// A key created by a put at `rev`.
    pub fn created(rev: Revision) -> Self {
        Self::restored(rev, rev, 1)
    }

    /// A key rebuilt from a stored value: `modified` is its revision, `created` and
    /// `version` come from the value.
    pub fn restored(created: Revision, modified: Revision, version: i64) -> Self {
        Self::from_generations(vec![Generation { created, version, revs: vec![modified] }])
    }

    /// Settles `gens` if they are one live generation with one revision.
    fn from_generations(gens: Vec<Generation>) -> Self {
        if let [g] = gens.as_slice()
            && let [only] = g.revs[..]
            && let Some(settled) = Settled::new(only, g.created.main, g.version)
        {
            return Self::Settled(settled);
        }
        Self::Full(Box::new(gens))
    }

    /// A deleted key whose history was compacted away entirely.
    fn is_empty(&self) -> bool {
        match self {
            Self::Settled(_) => false,
            Self::Full(gens) => gens.iter().all(|g| g.revs.is_empty()),
        }
    }

    /// Whether the key currently exists.
    pub fn is_live(&self) -> bool {
        match self {
            Self::Settled(_) => true,
            Self::Full(gens) => gens.last().is_some_and(|g| !g.revs.is_empty()),
        }
    }

    /// The latest revision of the key (put or tombstone).
    pub fn modified(&self) -> Option<Revision> {
        match self {
            Self::Settled(s) => Some(s.rev()),
            Self::Full(gens) => gens.iter().rev().find_map(|g| g.revs.last().copied()),
        }
    }

    fn generations_mut(&mut self) -> &mut Vec<Generation> {
        if let Self::Settled(s) = *self {
            *self = Self::Full(Box::new(vec![s.generation()]));
        }
        match self {
            Self::Full(gens) => gens,
            Self::Settled(_) => unreachable!("Settled was converted to Full above"),
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
            Self::Settled(s) => (s.main <= at).then(|| KeyRevision {
                modified: s.rev(),
                created: Revision::at_main(s.created_main),
                version: i64::from(s.version.get()),
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
            Self::Settled(s) => s.keep(at, keep),
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
            Self::Settled(s) => {
                s.keep(at, keep);
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
        if gens.len() == 1 && gens[0].revs.len() == 1 {
            *self = Self::from_generations(std::mem::take(&mut **gens));
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
    fn updated_keys_settle_after_compaction() {
        let mut ki = KeyIndex::created(rev(1));
        ki.put(rev(2));
        ki.put(Revision::new(5, 3));
        assert!(matches!(ki, KeyIndex::Full(_)));
        ki.compact(5, &mut HashSet::new());
        assert!(matches!(ki, KeyIndex::Settled(_)));
        let now = ki.get(9).unwrap();
        assert_eq!((now.modified, now.created.main, now.version), (Revision::new(5, 3), 1, 3));
        ki.put(rev(6));
        assert_eq!(ki.get(9).unwrap().version, 4);
    }

    #[test]
    fn values_that_do_not_pack_stay_full() {
        assert!(matches!(
            KeyIndex::restored(rev(1), Revision::new(2, 1 << 40), 2),
            KeyIndex::Full(_)
        ));
        assert!(matches!(KeyIndex::restored(rev(1), rev(2), 1 << 40), KeyIndex::Full(_)));
        assert!(matches!(KeyIndex::restored(rev(1), rev(2), 0), KeyIndex::Full(_)));
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
        assert_eq!(ki, KeyIndex::created(rev(3)));
        assert!(matches!(ki, KeyIndex::Settled(_)));
    }
}
