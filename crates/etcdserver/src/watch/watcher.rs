//! One watcher: what it watches, how its events are shaped, where it stands.

use bytes::Bytes;
use oxetcd_api::mvccpb::{Event, event::EventType};

/// Why a watch could not be created; the texts are etcd's (clients match on them).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WatchError {
    #[error("mvcc: watcher range is empty")]
    EmptyRange,
    #[error("mvcc: duplicate watch ID provided on the WatchStream")]
    DuplicateId,
    /// The member is shutting down.
    #[error("etcdserver: server stopped")]
    Closed,
}

/// The keys a watcher covers, classified once so publishing can find watchers fast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRange {
    Single(Bytes),
    /// `[p, prefix_end(p))`: every key starting with `p` (clients' `--prefix`).
    Prefix(Bytes),
    /// `range_end = "\0"`: every key from this one on.
    FromKey(Bytes),
    /// Any other `[key, range_end)`. Boxed, as clients seldom watch such ranges: it
    /// keeps every watcher's slot the size of a one-key range's (see [`Watcher`]).
    Range(Box<(Bytes, Bytes)>),
}

impl KeyRange {
    /// etcd's conventions: an empty key means `"\0"` (the smallest key), an empty end a
    /// single key, `"\0"` every key from `key`; otherwise `key` must sort before the end.
    pub fn new(key: &[u8], range_end: &[u8]) -> Result<KeyRange, WatchError> {
        let key =
            if key.is_empty() { Bytes::from_static(b"\0") } else { Bytes::copy_from_slice(key) };
        Ok(match range_end {
            [] => KeyRange::Single(key),
            [0] => KeyRange::FromKey(key),
            end if key.as_ref() >= end => return Err(WatchError::EmptyRange),
            end if prefix_end(&key).as_deref() == Some(end) => KeyRange::Prefix(key),
            end => KeyRange::Range(Box::new((key, Bytes::copy_from_slice(end)))),
        })
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        match self {
            KeyRange::Single(k) => key == k.as_ref(),
            KeyRange::Prefix(p) => key.starts_with(p),
            KeyRange::FromKey(k) => key >= k.as_ref(),
            KeyRange::Range(bounds) => key >= bounds.0.as_ref() && key < bounds.1.as_ref(),
        }
    }
}

/// The end of the range of keys starting with `prefix` (etcd's `GetPrefixRangeEnd`);
/// `None` when every byte is 0xff (then the range has no end: a from-key range).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let last = prefix.iter().rposition(|&b| b < 0xff)?;
    let mut end = prefix[..=last].to_vec();
    end[last] += 1;
    Some(end)
}

/// Per-watcher options, packed in one byte to keep idle watchers small.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Filters(u8);

impl Filters {
    pub const NO_PUT: Filters = Filters(1);
    pub const NO_DELETE: Filters = Filters(1 << 1);
    pub const PREV_KV: Filters = Filters(1 << 2);
    pub const FRAGMENT: Filters = Filters(1 << 3);
    pub const PROGRESS_NOTIFY: Filters = Filters(1 << 4);
    /// Internal: events went out since the last periodic progress tick (etcd skips
    /// the next progress notification then).
    pub(crate) const SENT_SINCE_TICK: Filters = Filters(1 << 5);

    pub fn has(self, f: Filters) -> bool {
        self.0 & f.0 == f.0
    }

    pub fn set(&mut self, f: Filters, on: bool) {
        if on { self.0 |= f.0 } else { self.0 &= !f.0 }
    }

    pub fn with(mut self, f: Filters, on: bool) -> Filters {
        self.set(f, on);
        self
    }
}

/// Where a watcher stands (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    Synced,
    Unsynced,
    Victim,
}

/// A member can hold hundreds of thousands of watchers, all in one table of slots
/// (the hub's): this is what each costs, idle.
const WATCHER_SLOT_BYTES: usize = 80;
const _: () = assert!(std::mem::size_of::<Option<Watcher>>() <= WATCHER_SLOT_BYTES);

#[derive(Debug)]
pub(crate) struct Watcher {
    /// Unique over the hub's life: tells a reused slot from the watcher a catch-up
    /// round chose before it let go of the lock.
    pub uid: u64,
    pub stream: u64,
    pub id: i64,
    pub range: KeyRange,
    /// The lowest revision not yet handed to this watcher.
    pub next_rev: i64,
    pub opts: Filters,
    pub place: Place,
}

impl Watcher {
    /// Whether this watcher sees the event: its key in range, its kind not filtered out.
    pub fn takes(&self, event: &Event) -> bool {
        let is_put = event.r#type == EventType::Put as i32;
        let dropped = if is_put { Filters::NO_PUT } else { Filters::NO_DELETE };
        !self.opts.has(dropped) && event.kv.as_ref().is_some_and(|kv| self.range.contains(&kv.key))
    }

    /// The event as this watcher sees it: with its previous key-value only if asked for.
    pub fn view(&self, event: &Event) -> Event {
        let mut event = event.clone();
        if !self.opts.has(Filters::PREV_KV) {
            event.prev_kv = None;
        }
        event
    }

    /// The event as this watcher should see it, or `None` if its filters drop it.
    pub fn shape(&self, event: &Event) -> Option<Event> {
        self.takes(event).then(|| self.view(event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_etcd_conventions() {
        assert_eq!(KeyRange::new(b"", b"").unwrap(), KeyRange::Single(Bytes::from_static(b"\0")));
        assert_eq!(KeyRange::new(b"a", b"b").unwrap(), KeyRange::Prefix(Bytes::from_static(b"a")));
        assert_eq!(
            KeyRange::new(b"a\xff", b"b").unwrap(),
            KeyRange::Prefix(Bytes::from_static(b"a\xff"))
        );
        assert_eq!(
            KeyRange::new(b"\xff", b"\0").unwrap(),
            KeyRange::FromKey(Bytes::from_static(b"\xff"))
        );
        assert!(matches!(KeyRange::new(b"a", b"c").unwrap(), KeyRange::Range(..)));
        assert_eq!(KeyRange::new(b"b", b"a"), Err(WatchError::EmptyRange));
        assert_eq!(KeyRange::new(b"a", b"a"), Err(WatchError::EmptyRange));
        let prefix = KeyRange::new(b"a\xff", b"b").unwrap();
        assert!(
            prefix.contains(b"a\xff") && prefix.contains(b"a\xff\x00") && !prefix.contains(b"b")
        );
        let range = KeyRange::new(b"a", b"c").unwrap();
        assert!(range.contains(b"a") && range.contains(b"bz") && !range.contains(b"c"));
        assert!(KeyRange::new(b"", b"\0").unwrap().contains(b"\0"));
    }
}
