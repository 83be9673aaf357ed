//! The in-memory index: every key, in key order, with its history of revisions.
//!
//! Layout: a `BTreeMap<Box<[u8]>, KeyIndex>`. A live key with one remaining revision
//! (written once, or compacted) costs its bytes plus one map slot (a 16-byte boxed slice
//! and a 24-byte [`KeyIndex::Settled`]), with no other allocation; see the crate docs for
//! measured bytes per key.

use std::collections::{BTreeMap, HashSet, btree_map};
use std::ops::{Bound, ControlFlow};

use crate::key_index::{KeyIndex, KeyRevision, NotForward, NotLive};
use crate::revision::Revision;

/// The keys a request names: etcd's `key` / `range_end` convention.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeySpan<'a> {
    /// Exactly one key (`range_end` empty).
    Single(&'a [u8]),
    /// Keys in `[start, end)`; `end` of `None` means every key from `start` on (`range_end`
    /// of `"\0"`). A span whose end is not after its start is empty, as in etcd.
    Range {
        /// First key, inclusive.
        start: &'a [u8],
        /// End key, exclusive; `None` for no end.
        end: Option<&'a [u8]>,
    },
}

impl<'a> KeySpan<'a> {
    /// Interprets a request's `key` and `range_end`.
    pub fn new(key: &'a [u8], range_end: &'a [u8]) -> Self {
        match range_end {
            [] => Self::Single(key),
            [0] => Self::Range { start: key, end: None },
            end => Self::Range { start: key, end: Some(end) },
        }
    }
}

/// Every key's history.
#[derive(Debug, Default)]
pub struct Index {
    tree: BTreeMap<Box<[u8]>, KeyIndex>,
    /// Keys that exist now (etcd's `etcd_debugging_mvcc_keys_total`), kept as puts and
    /// deletes change them so that reading it costs nothing.
    live: usize,
}

impl Index {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of keys with any remaining history (live or not yet compacted away).
    pub fn len(&self) -> usize {
        self.tree.len()
    }

    /// Number of keys that exist now (not deleted).
    pub fn live_keys(&self) -> usize {
        self.live
    }

    /// Whether the index holds no key at all.
    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }

    /// `key`'s state at main revision `at`.
    pub fn get(&self, key: &[u8], at: i64) -> Option<KeyRevision> {
        self.tree.get(key).and_then(|ki| ki.get(at))
    }

    /// Calls `f` with every key of `span` that existed at `at`, in key order, until it breaks.
    pub fn visit(
        &self,
        span: KeySpan<'_>,
        at: i64,
        mut f: impl FnMut(&[u8], KeyRevision) -> ControlFlow<()>,
    ) {
        match span {
            KeySpan::Single(key) => {
                if let Some(kr) = self.get(key, at) {
                    let _ = f(key, kr);
                }
            }
            KeySpan::Range { start, end } => {
                if end.is_some_and(|end| end <= start) {
                    return;
                }
                let upper = end.map_or(Bound::Unbounded, Bound::Excluded);
                for (key, ki) in self.tree.range::<[u8], _>((Bound::Included(start), upper)) {
                    if let Some(kr) = ki.get(at)
                        && f(key, kr).is_break()
                    {
                        return;
                    }
                }
            }
        }
    }

    /// Records a put of `key` at `rev`.
    pub fn put(&mut self, key: &[u8], rev: Revision) {
        self.slot(key).put(rev);
    }

    /// `key`'s place in the index, found once for a put that reads the key's state
    /// first: one walk of the tree instead of two (or three for a new key). The key is
    /// copied whether or not it is there already; a new key needs the copy anyway.
    pub fn slot(&mut self, key: &[u8]) -> KeySlot<'_> {
        KeySlot { entry: self.tree.entry(key.into()), live: &mut self.live }
    }

    /// Records a delete of `key` at `rev`.
    pub fn tombstone(&mut self, key: &[u8], rev: Revision) -> Result<(), NotLive> {
        self.tree.get_mut(key).ok_or(NotLive)?.tombstone(rev)?;
        self.live -= 1;
        Ok(())
    }

    /// Rebuilds one stored row (in revision order) when the store is opened. A row at or
    /// before the key's latest revision (a put and a tombstone of the key at one revision:
    /// a damaged table) is refused, as a write would be.
    pub fn restore(
        &mut self,
        key: &[u8],
        rev: Revision,
        tombstone: bool,
        created: Revision,
        version: i64,
    ) -> Result<(), NotForward> {
        let key_index = self.tree.get_mut(key);
        if let Some(latest) = key_index.as_ref().and_then(|ki| ki.modified())
            && rev <= latest
        {
            return Err(NotForward { latest });
        }
        match (key_index, tombstone) {
            (Some(ki), false) => {
                self.live += usize::from(!ki.is_live());
                ki.put(rev);
            }
            (Some(ki), true) => {
                // A tombstone of a generation whose puts were compacted away ends nothing.
                if ki.tombstone(rev).is_ok() {
                    self.live -= 1;
                }
            }
            (None, false) => {
                self.tree.insert(key.into(), KeyIndex::restored(created, rev, version));
                self.live += 1;
            }
            (None, true) => {}
        }
        Ok(())
    }

    /// Compacts at most `max_keys` keys at main revision `at`, starting after `resume`
    /// (or at the first key). Adds surviving revisions at or below `at` to `keep`, forgets
    /// keys left without history, and returns where to resume, or `None` when done.
    pub fn compact_chunk(
        &mut self,
        at: i64,
        resume: Option<&[u8]>,
        max_keys: usize,
        keep: &mut HashSet<Revision>,
    ) -> Option<Box<[u8]>> {
        debug_assert!(max_keys > 0);
        let lower = resume.map_or(Bound::Unbounded, Bound::Excluded);
        let mut emptied = Vec::new();
        let mut last = None;
        let mut more = false;
        for (seen, (key, ki)) in
            self.tree.range_mut::<[u8], _>((lower, Bound::Unbounded)).enumerate()
        {
            if seen == max_keys {
                more = true;
                break;
            }
            if ki.compact(at, keep) {
                emptied.push(key.clone());
            }
            last = Some(key);
        }
        let resume_at = if more { last.cloned() } else { None };
        for key in emptied {
            self.tree.remove(&key);
        }
        resume_at
    }

    /// The revisions a compaction at `at` would keep, without compacting.
    pub fn keep(&self, at: i64) -> HashSet<Revision> {
        let mut keep = HashSet::new();
        for ki in self.tree.values() {
            ki.keep(at, &mut keep);
        }
        keep
    }
}

/// One key's place in the [`Index`] ([`Index::slot`]): read its state, then record a put.
/// Dropped without a put, it leaves the index as it was.
pub struct KeySlot<'a> {
    entry: btree_map::Entry<'a, Box<[u8]>, KeyIndex>,
    live: &'a mut usize,
}

impl KeySlot<'_> {
    /// The key's state at main revision `at` ([`Index::get`]).
    pub fn get(&self, at: i64) -> Option<KeyRevision> {
        match &self.entry {
            btree_map::Entry::Occupied(ki) => ki.get().get(at),
            btree_map::Entry::Vacant(_) => None,
        }
    }

    /// Records a put of the key at `rev`.
    pub fn put(self, rev: Revision) {
        match self.entry {
            btree_map::Entry::Occupied(mut ki) => {
                let ki = ki.get_mut();
                *self.live += usize::from(!ki.is_live());
                ki.put(rev);
            }
            btree_map::Entry::Vacant(slot) => {
                slot.insert(KeyIndex::created(rev));
                *self.live += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev(main: i64) -> Revision {
        Revision::at_main(main)
    }

    fn live_keys(index: &Index, span: KeySpan<'_>, at: i64) -> Vec<Vec<u8>> {
        let mut keys = Vec::new();
        index.visit(span, at, |k, _| {
            keys.push(k.to_vec());
            ControlFlow::Continue(())
        });
        keys
    }

    #[test]
    fn spans_follow_etcd_conventions() {
        let mut index = Index::new();
        for (i, key) in [&b"a"[..], b"b", b"c", b"d"].into_iter().enumerate() {
            index.put(key, rev(i as i64 + 1));
        }
        index.tombstone(b"c", rev(5)).unwrap();
        assert_eq!(live_keys(&index, KeySpan::new(b"b", b""), 9), vec![b"b".to_vec()]);
        assert_eq!(
            live_keys(&index, KeySpan::new(b"b", b"\0"), 9),
            vec![b"b".to_vec(), b"d".to_vec()]
        );
        assert_eq!(
            live_keys(&index, KeySpan::new(b"b", b"\0"), 4),
            vec![b"b".to_vec(), b"c".to_vec(), b"d".to_vec()]
        );
        assert_eq!(
            live_keys(&index, KeySpan::new(b"a", b"c"), 9),
            vec![b"a".to_vec(), b"b".to_vec()]
        );
        assert!(live_keys(&index, KeySpan::new(b"c", b"a"), 9).is_empty());
        assert!(live_keys(&index, KeySpan::new(b"c", b"c"), 9).is_empty());
    }

    #[test]
    fn chunked_compaction_visits_every_key_once() {
        let mut index = Index::new();
        for i in 0..100u32 {
            index.put(&i.to_be_bytes(), rev(i64::from(i) + 1));
            if i % 3 == 0 {
                index.tombstone(&i.to_be_bytes(), rev(i64::from(i) + 1000)).unwrap();
            }
        }
        let expected = index.keep(2000);
        let mut keep = HashSet::new();
        let mut resume = None;
        let mut rounds = 0;
        loop {
            rounds += 1;
            resume = index.compact_chunk(2000, resume.as_deref(), 7, &mut keep);
            if resume.is_none() {
                break;
            }
        }
        assert_eq!(rounds, 15);
        assert_eq!(keep, expected);
        assert_eq!(index.len(), 66);
        assert_eq!(index.live_keys(), 66, "compaction forgets only deleted keys");
    }

    #[test]
    fn a_slot_reads_the_key_and_changes_nothing_until_its_put() {
        let mut index = Index::new();
        index.put(b"a", rev(2));
        index.tombstone(b"a", rev(3)).unwrap();
        let slot = index.slot(b"a");
        assert_eq!(slot.get(2).map(|kr| kr.modified), Some(rev(2)));
        assert_eq!(slot.get(3), None, "deleted at 3");
        drop(slot);
        let slot = index.slot(b"b");
        assert_eq!(slot.get(9), None);
        drop(slot);
        assert_eq!((index.len(), index.live_keys()), (1, 0), "dropped slots change nothing");

        index.slot(b"a").put(rev(4));
        index.slot(b"b").put(rev(5));
        assert_eq!((index.len(), index.live_keys()), (2, 2));
        let a = index.get(b"a", 9).unwrap();
        assert_eq!((a.modified, a.created, a.version), (rev(4), rev(4), 1), "a new generation");
        assert_eq!(index.get(b"b", 9).map(|kr| kr.version), Some(1));
    }

    #[test]
    fn live_keys_follow_puts_deletes_and_restores() {
        let mut index = Index::new();
        index.put(b"a", rev(2));
        index.put(b"a", rev(3));
        index.put(b"b", rev(4));
        assert_eq!(index.live_keys(), 2, "a second put of a key adds nothing");
        index.tombstone(b"a", rev(5)).unwrap();
        assert!(index.tombstone(b"a", rev(6)).is_err());
        assert_eq!(index.live_keys(), 1, "a failed delete takes nothing away");
        index.put(b"a", rev(7));
        assert_eq!(index.live_keys(), 2, "a deleted key put again counts again");

        let mut restored = Index::new();
        restored.restore(b"a", rev(2), false, rev(2), 1).unwrap();
        restored.restore(b"a", rev(3), true, rev(2), 2).unwrap();
        restored.restore(b"b", rev(4), false, rev(4), 1).unwrap();
        restored.restore(b"c", rev(5), true, rev(5), 1).unwrap();
        assert_eq!(restored.live_keys(), 1);
    }
}
