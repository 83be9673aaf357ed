//! The hub's table of watchers, by slot.

use super::index::Slot;
use super::watcher::Watcher;

/// Slots are added a chunk at a time: the table grows without moving what it holds. A
/// `Vec` doubling past 8,192 watchers would hold the old and the new copy (0.6 and 1.3
/// MB) at once, and the allocator keeps the old one a while after it is freed.
const SLOTS_PER_CHUNK: usize = 1024;

#[derive(Debug, Default)]
pub(super) struct Slots {
    chunks: Vec<Box<[Option<Watcher>]>>,
    len: usize,
}

impl Slots {
    /// Slots handed out so far, empty or not.
    pub fn len(&self) -> usize {
        self.len
    }

    /// A new, empty slot at the end.
    pub fn add(&mut self) -> Slot {
        if self.len == self.chunks.len() * SLOTS_PER_CHUNK {
            self.chunks.push((0..SLOTS_PER_CHUNK).map(|_| None).collect());
        }
        self.len += 1;
        Slot::try_from(self.len - 1).expect("fewer than 2^32 watchers")
    }

    pub fn get(&self, slot: Slot) -> Option<&Watcher> {
        self.entry(slot).and_then(Option::as_ref)
    }

    pub fn get_mut(&mut self, slot: Slot) -> Option<&mut Watcher> {
        self.entry_mut(slot).and_then(Option::as_mut)
    }

    /// Puts `watcher` in `slot`, which [`Slots::add`] handed out.
    pub fn set(&mut self, slot: Slot, watcher: Watcher) {
        let entry = self.entry_mut(slot).expect("a slot that was added");
        *entry = Some(watcher);
    }

    pub fn take(&mut self, slot: Slot) -> Option<Watcher> {
        self.entry_mut(slot).and_then(Option::take)
    }

    pub fn clear(&mut self) {
        self.chunks.clear();
        self.len = 0;
    }

    fn entry(&self, slot: Slot) -> Option<&Option<Watcher>> {
        let slot = slot as usize;
        if slot >= self.len {
            return None;
        }
        Some(&self.chunks[slot / SLOTS_PER_CHUNK][slot % SLOTS_PER_CHUNK])
    }

    fn entry_mut(&mut self, slot: Slot) -> Option<&mut Option<Watcher>> {
        let slot = slot as usize;
        if slot >= self.len {
            return None;
        }
        Some(&mut self.chunks[slot / SLOTS_PER_CHUNK][slot % SLOTS_PER_CHUNK])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watch::watcher::{Filters, KeyRange, Place};

    fn watcher(uid: u64) -> Watcher {
        Watcher {
            uid,
            stream: 0,
            id: 0,
            range: KeyRange::new(b"k", b"").unwrap(),
            next_rev: 1,
            opts: Filters::default(),
            place: Place::Synced,
        }
    }

    #[test]
    fn slots_across_chunks_keep_their_watchers() {
        let mut slots = Slots::default();
        let n = 2 * SLOTS_PER_CHUNK + 3;
        for i in 0..n {
            let slot = slots.add();
            assert_eq!(slot as usize, i);
            assert!(slots.get(slot).is_none(), "a new slot is empty");
            slots.set(slot, watcher(i as u64));
        }
        assert_eq!(slots.len(), n);
        assert_eq!(slots.chunks.len(), 3);
        for i in 0..n as Slot {
            assert_eq!(slots.get(i).map(|w| w.uid), Some(u64::from(i)));
        }
        assert!(slots.get(n as Slot).is_none(), "beyond the slots handed out");
        let last_of_first = (SLOTS_PER_CHUNK - 1) as Slot;
        assert_eq!(slots.take(last_of_first).map(|w| w.uid), Some(u64::from(last_of_first)));
        assert!(slots.get(last_of_first).is_none());
        slots.get_mut(SLOTS_PER_CHUNK as Slot).unwrap().next_rev = 7;
        assert_eq!(slots.get(SLOTS_PER_CHUNK as Slot).unwrap().next_rev, 7);
        slots.clear();
        assert_eq!(slots.len(), 0);
        assert!(slots.get(0).is_none());
    }
}
