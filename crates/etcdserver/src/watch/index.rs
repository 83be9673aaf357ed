//! The synced group's lookup: which watchers does a changed key concern? Single keys
//! and prefixes (what clients use in practice) are found by key lookups; from-key and
//! arbitrary ranges are scanned, which is linear in their number.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use super::watcher::{KeyRange, Watcher};

/// A watcher's slot in the hub's table.
pub(crate) type Slot = u32;

#[derive(Debug, Default)]
pub(crate) struct Index {
    keys: BTreeSet<(Bytes, Slot)>,
    prefixes: BTreeSet<(Bytes, Slot)>,
    /// How many prefixes of each length are watched: a key is looked up only at those.
    prefix_lens: BTreeMap<usize, usize>,
    scanned: Vec<Slot>,
}

impl Index {
    pub fn len(&self) -> usize {
        self.keys.len() + self.prefixes.len() + self.scanned.len()
    }

    pub fn insert(&mut self, slot: Slot, range: &KeyRange) {
        match range {
            KeyRange::Single(k) => {
                self.keys.insert((k.clone(), slot));
            }
            KeyRange::Prefix(p) => {
                self.prefixes.insert((p.clone(), slot));
                *self.prefix_lens.entry(p.len()).or_default() += 1;
            }
            KeyRange::FromKey(_) | KeyRange::Range(..) => self.scanned.push(slot),
        }
    }

    pub fn remove(&mut self, slot: Slot, range: &KeyRange) {
        match range {
            KeyRange::Single(k) => {
                self.keys.remove(&(k.clone(), slot));
            }
            KeyRange::Prefix(p) => {
                if self.prefixes.remove(&(p.clone(), slot))
                    && let Some(n) = self.prefix_lens.get_mut(&p.len())
                {
                    *n -= 1;
                    if *n == 0 {
                        self.prefix_lens.remove(&p.len());
                    }
                }
            }
            KeyRange::FromKey(_) | KeyRange::Range(..) => {
                if let Some(at) = self.scanned.iter().position(|&s| s == slot) {
                    self.scanned.swap_remove(at);
                }
            }
        }
    }

    /// Calls `found` for every watcher whose range holds `key` (each once).
    pub fn matching<'w>(
        &self,
        key: &Bytes,
        watcher: impl Fn(Slot) -> Option<&'w Watcher>,
        mut found: impl FnMut(Slot),
    ) {
        let mut by = |set: &BTreeSet<(Bytes, Slot)>, k: Bytes| {
            for (_, slot) in set.range((k.clone(), Slot::MIN)..=(k, Slot::MAX)) {
                found(*slot);
            }
        };
        by(&self.keys, key.clone());
        for &len in self.prefix_lens.range(..=key.len()).map(|(len, _)| len) {
            by(&self.prefixes, key.slice(..len));
        }
        for &slot in &self.scanned {
            if watcher(slot).is_some_and(|w| w.range.contains(key)) {
                found(slot);
            }
        }
    }
}
