//! The hub: every watcher of this member, the three groups, and the streams they
//! deliver to. One mutex guards it all; nothing done under it waits on a client.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use oxetcd_api::mvccpb::Event;
use oxetcd_mvcc::Store;
use tokio::sync::mpsc::{self, error::TrySendError};

use super::index::{Index, Slot};
use super::slots::Slots;
use super::watcher::{Filters, KeyRange, Place, WatchError, Watcher};

/// Where the hub reads history from: the member's store of the moment (a snapshot
/// install replaces it).
pub type StoreSource = Box<dyn Fn() -> Arc<Store> + Send + Sync>;

/// A client watch stream, as the hub knows it.
pub type StreamId = u64;

/// Responses queued per stream before its watchers are parked as victims (etcd
/// queues 128 per stream; a larger queue parks fewer watchers under bursts).
const STREAM_QUEUE: usize = 1024;

/// The watch id etcd reports for responses that concern no single watcher.
const NO_WATCH_ID: i64 = -1;

/// A create request, already checked.
#[derive(Debug, Clone)]
pub struct CreateWatch {
    /// 0 lets the hub pick the next free id of the stream.
    pub id: i64,
    pub range: KeyRange,
    /// 0 means "from the next revision".
    pub start_revision: i64,
    pub opts: Filters,
}

/// One response for a stream to send (the stream adds the header and, for history,
/// the previous key-values).
#[derive(Debug, Default)]
pub struct Delivery {
    pub watch_id: i64,
    /// The header revision: the events' revision, the revision history was read up to,
    /// or the hub's revision for progress notifications.
    pub revision: i64,
    pub events: Events,
    /// Non-zero: the watcher was canceled because this revision was compacted.
    pub compact_revision: i64,
    /// The watcher wants previous key-values: the stream loads those the events lack
    /// (puts' and history's).
    pub fill_prev_kv: bool,
    pub fragment: bool,
}

/// A delivery's events. A write's events are cloned once when published and shared by
/// every watcher that takes all of them (10,000 watchers of one key get one copy, not
/// 10,000: `docs/benchmarks.md`, the watch fan-out); a watcher that takes some of them,
/// or reads history, gets its own. The stream clones them into its response when it
/// sends it.
#[derive(Debug)]
pub enum Events {
    Shared(Arc<[Event]>),
    Own(Vec<Event>),
}

impl Events {
    /// The events, owned: for a response.
    pub fn into_vec(self) -> Vec<Event> {
        match self {
            Events::Shared(events) => events.to_vec(),
            Events::Own(events) => events,
        }
    }
}

impl Default for Events {
    fn default() -> Events {
        Events::Own(Vec::new())
    }
}

impl std::ops::Deref for Events {
    type Target = [Event];

    fn deref(&self) -> &[Event] {
        match self {
            Events::Shared(events) => events,
            Events::Own(events) => events,
        }
    }
}

/// The hub's size at one moment (etcd's `etcd_debugging_mvcc_watch_stream_total`,
/// `watcher_total`, `slow_watcher_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchCounts {
    pub streams: usize,
    pub watchers: usize,
    /// Watchers catching up on history or parked as victims.
    pub slow: usize,
}

#[derive(Debug)]
struct Stream {
    tx: mpsc::Sender<Delivery>,
    ids: HashMap<i64, Slot>,
    next_id: i64,
}

#[derive(Debug, Default)]
pub(super) struct Inner {
    /// The revision of the last publish (or of the store it was opened on).
    pub rev: i64,
    pub compact_rev: i64,
    /// Bumped when the store is replaced: history read before then is discarded.
    pub generation: u64,
    slots: Slots,
    free: Vec<Slot>,
    next_uid: u64,
    synced: Index,
    pub unsynced: BTreeSet<Slot>,
    pub victims: HashMap<Slot, Delivery>,
    streams: HashMap<StreamId, Stream>,
    next_stream: StreamId,
    /// The catch-up thread has work (a new unsynced watcher, a victim, a compaction).
    pub kicked: bool,
    pub closed: bool,
}

pub struct WatchHub {
    inner: Mutex<Inner>,
    pub(super) work: Condvar,
    pub(super) store: StoreSource,
}

impl std::fmt::Debug for WatchHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.lock();
        f.debug_struct("WatchHub")
            .field("rev", &inner.rev)
            .field("synced", &inner.synced.len())
            .field("unsynced", &inner.unsynced.len())
            .field("victims", &inner.victims.len())
            .finish()
    }
}

impl WatchHub {
    /// A hub at the store's current revision; [`WatchHub::start`] also runs its
    /// catch-up thread.
    pub(super) fn new(store: StoreSource) -> Arc<WatchHub> {
        let current = store();
        let inner = Inner {
            rev: current.current_revision(),
            compact_rev: current.compact_revision(),
            ..Default::default()
        };
        drop(current);
        Arc::new(WatchHub { inner: Mutex::new(inner), work: Condvar::new(), store })
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes the catch-up thread if the last change gave it work.
    fn wake_if_kicked(&self, inner: MutexGuard<'_, Inner>) {
        let kicked = inner.kicked;
        drop(inner);
        if kicked {
            self.work.notify_one();
        }
    }

    /// How many streams and watchers there are now, for metrics.
    pub fn counts(&self) -> WatchCounts {
        let inner = self.lock();
        WatchCounts {
            streams: inner.streams.len(),
            watchers: inner.slots.len() - inner.free.len(),
            slow: inner.unsynced.len() + inner.victims.len(),
        }
    }

    /// The revision every synced watcher has been handed events up to.
    pub fn revision(&self) -> i64 {
        self.lock().rev
    }

    /// A new stream and the queue its responses arrive on.
    pub fn open_stream(&self) -> Result<(StreamId, mpsc::Receiver<Delivery>), WatchError> {
        let mut inner = self.lock();
        if inner.closed {
            return Err(WatchError::Closed);
        }
        let (tx, rx) = mpsc::channel(STREAM_QUEUE);
        let id = inner.next_stream;
        inner.next_stream += 1;
        inner.streams.insert(id, Stream { tx, ids: HashMap::new(), next_id: 0 });
        Ok((id, rx))
    }

    /// Drops a stream and all its watchers.
    pub fn close_stream(&self, stream: StreamId) {
        let mut inner = self.lock();
        if let Some(s) = inner.streams.remove(&stream) {
            for slot in s.ids.into_values() {
                inner.remove_watcher(slot);
            }
        }
    }

    /// Adds a watcher; returns its id and the revision for the created response.
    pub fn create(&self, stream: StreamId, req: CreateWatch) -> Result<(i64, i64), WatchError> {
        let mut inner = self.lock();
        let rev = inner.rev;
        let s = inner.streams.get_mut(&stream).ok_or(WatchError::Closed)?;
        let id = if req.id == 0 {
            while s.ids.contains_key(&s.next_id) {
                s.next_id += 1;
            }
            s.next_id += 1;
            s.next_id - 1
        } else if s.ids.contains_key(&req.id) {
            return Err(WatchError::DuplicateId);
        } else {
            req.id
        };
        let synced = req.start_revision == 0 || req.start_revision > rev;
        let next_rev =
            if synced { req.start_revision.max(rev + 1) } else { req.start_revision.max(1) };
        let slot = inner.free.pop().unwrap_or_else(|| inner.slots.add());
        let uid = inner.next_uid;
        inner.next_uid += 1;
        let place = if synced { Place::Synced } else { Place::Unsynced };
        let watcher =
            Watcher { uid, stream, id, range: req.range, next_rev, opts: req.opts, place };
        if synced {
            inner.synced.insert(slot, &watcher.range);
        } else {
            inner.unsynced.insert(slot);
            inner.kicked = true;
        }
        inner.slots.set(slot, watcher);
        if let Some(s) = inner.streams.get_mut(&stream) {
            s.ids.insert(id, slot);
        }
        self.wake_if_kicked(inner);
        Ok((id, rev))
    }

    /// Removes a watcher; `Some(revision)` for the canceled response if it existed.
    pub fn cancel(&self, stream: StreamId, id: i64) -> Option<i64> {
        let mut inner = self.lock();
        let slot = inner.streams.get_mut(&stream)?.ids.remove(&id)?;
        inner.remove_watcher(slot);
        Some(inner.rev)
    }

    /// A progress response for the whole stream (watch id -1) at the hub's revision,
    /// queued behind the events already handed out. Only when every watcher of the
    /// stream is synced and none starts beyond the next revision, as etcd: `false` means
    /// "not now, ask again later". A stream without watchers gets nothing, as in etcd.
    pub fn progress_all(&self, stream: StreamId) -> bool {
        let inner = self.lock();
        let Some(s) = inner.streams.get(&stream) else { return true };
        let rev = inner.rev;
        let not_yet = |w: &Watcher| w.place != Place::Synced || starts_ahead(w, rev);
        if s.ids.values().any(|&slot| inner.watcher(slot).is_some_and(not_yet)) {
            return false;
        }
        if s.ids.is_empty() {
            return true;
        }
        let progress =
            Delivery { watch_id: NO_WATCH_ID, revision: inner.rev, ..Default::default() };
        s.tx.try_send(progress).is_ok()
    }

    /// The periodic progress notification: for each watcher of the stream that asked
    /// for it, is synced, does not start beyond the next revision, and got no events
    /// since the last tick.
    pub fn progress_tick(&self, stream: StreamId) {
        let mut inner = self.lock();
        let rev = inner.rev;
        let Some(slots) =
            inner.streams.get(&stream).map(|s| s.ids.values().copied().collect::<Vec<_>>())
        else {
            return;
        };
        for slot in slots {
            let Some(w) = inner.watcher_mut(slot) else { continue };
            if !w.opts.has(Filters::PROGRESS_NOTIFY) {
                continue;
            }
            let due = !w.opts.has(Filters::SENT_SINCE_TICK)
                && w.place == Place::Synced
                && !starts_ahead(w, rev);
            w.opts.set(Filters::SENT_SINCE_TICK, false);
            if due {
                let progress = Delivery { watch_id: w.id, revision: rev, ..Default::default() };
                // A full queue means events are flowing: the notification is not needed.
                let _ = inner.deliver(slot, progress);
            }
        }
    }

    /// Hands the events of one applied write (one revision) to the synced watchers they
    /// concern: one response per watcher with all of its events. Never blocks: a watcher
    /// whose stream queue is full is parked as a victim.
    pub fn publish(&self, events: &[Event]) {
        let Some(rev) = events.first().and_then(|e| e.kv.as_ref()).map(|kv| kv.mod_revision) else {
            return;
        };
        let mut inner = self.lock();
        inner.rev = inner.rev.max(rev);
        if inner.synced.len() == 0 {
            return;
        }
        // Each watcher the events concern, once per event it takes; watchers that take
        // every event share one copy of them.
        let mut takers: Vec<Slot> = Vec::new();
        let view = &*inner;
        for event in events {
            let Some(kv) = &event.kv else { continue };
            view.synced.matching(
                &kv.key,
                |slot| view.watcher(slot),
                |slot| {
                    if view.watcher(slot).is_some_and(|w| w.next_rev <= rev && w.takes(event)) {
                        takers.push(slot);
                    }
                },
            );
        }
        takers.sort_unstable();
        let mut shared = SharedEvents::new(events);
        for run in takers.chunk_by(|a, b| a == b) {
            let slot = run[0];
            debug_assert!(run.len() <= events.len(), "a watcher matched an event twice");
            let Some(w) = inner.watcher(slot) else { continue };
            let mine = if run.len() == events.len() {
                Events::Shared(shared.for_watcher(w))
            } else {
                Events::Own(events.iter().filter_map(|e| w.shape(e)).collect())
            };
            inner.hand_out(slot, mine, rev);
        }
        self.wake_if_kicked(inner);
    }

    /// A compaction was applied: watchers still behind it get canceled on catch-up.
    pub fn compacted(&self, rev: i64) {
        let mut inner = self.lock();
        inner.compact_rev = inner.compact_rev.max(rev);
        inner.kicked |= !inner.unsynced.is_empty();
        self.wake_if_kicked(inner);
    }

    /// The store was replaced (a snapshot from the leader was installed): every synced
    /// watcher has seen everything up to the old revision and catches up on the rest
    /// from the new store's history (or is canceled if that was compacted away).
    pub fn store_replaced(&self) {
        let store = (self.store)();
        let mut inner = self.lock();
        let seen = inner.rev;
        inner.generation += 1;
        inner.rev = store.current_revision();
        inner.compact_rev = store.compact_revision();
        inner.synced = Index::default();
        for slot in 0..inner.slots.len() as Slot {
            if let Some(w) = inner.watcher_mut(slot).filter(|w| w.place == Place::Synced) {
                w.next_rev = w.next_rev.max(seen + 1);
                w.place = Place::Unsynced;
                inner.unsynced.insert(slot);
            }
        }
        inner.kicked = true;
        self.wake_if_kicked(inner);
    }

    /// Ends every stream (their queues close) and stops the catch-up thread: the member
    /// is shutting down.
    pub fn close(&self) {
        let mut inner = self.lock();
        inner.closed = true;
        inner.streams.clear();
        inner.slots.clear();
        inner.free.clear();
        inner.synced = Index::default();
        inner.unsynced.clear();
        inner.victims.clear();
        drop(inner);
        self.work.notify_all();
    }
}

impl Inner {
    pub fn watcher(&self, slot: Slot) -> Option<&Watcher> {
        self.slots.get(slot)
    }

    pub fn watcher_mut(&mut self, slot: Slot) -> Option<&mut Watcher> {
        self.slots.get_mut(slot)
    }

    /// Queues a response on the watcher's stream; gives it back if the queue is full.
    /// A closed stream takes it (its watchers go when the stream is closed).
    pub fn deliver(&self, slot: Slot, delivery: Delivery) -> Result<(), Delivery> {
        let Some(s) = self.watcher(slot).and_then(|w| self.streams.get(&w.stream)) else {
            return Ok(());
        };
        match s.tx.try_send(delivery) {
            Err(TrySendError::Full(delivery)) => Err(delivery),
            Ok(()) | Err(TrySendError::Closed(_)) => Ok(()),
        }
    }

    /// Sends a watcher its events up to `rev`; parks it as a victim if its queue is
    /// full.
    pub fn hand_out(&mut self, slot: Slot, events: Events, rev: i64) {
        let Some(w) = self.watcher_mut(slot) else { return };
        w.next_rev = rev + 1;
        if events.is_empty() {
            return;
        }
        w.opts.set(Filters::SENT_SINCE_TICK, true);
        let delivery = Delivery {
            watch_id: w.id,
            revision: rev,
            events,
            fill_prev_kv: w.opts.has(Filters::PREV_KV),
            fragment: w.opts.has(Filters::FRAGMENT),
            compact_revision: 0,
        };
        if let Err(delivery) = self.deliver(slot, delivery) {
            self.park(slot, delivery);
        }
    }

    /// Tells a watcher its next revision was compacted and drops it.
    pub fn cancel_compacted(&mut self, slot: Slot) {
        let Some(w) = self.watcher(slot) else { return };
        let delivery =
            Delivery { watch_id: w.id, compact_revision: self.compact_rev, ..Default::default() };
        match self.deliver(slot, delivery) {
            Ok(()) => self.remove_watcher(slot),
            Err(delivery) => self.park(slot, delivery),
        }
    }

    /// Takes a watcher out of its group and keeps the response that did not fit.
    fn park(&mut self, slot: Slot, delivery: Delivery) {
        self.leave_group(slot);
        if let Some(w) = self.watcher_mut(slot) {
            w.place = Place::Victim;
        }
        self.victims.insert(slot, delivery);
        self.kicked = true;
    }

    /// A watcher whose pending response went out: canceled if that was its compaction
    /// notice, otherwise synced or unsynced by how far it got.
    pub fn victim_delivered(&mut self, slot: Slot, compacted: bool) {
        if compacted {
            self.remove_watcher(slot);
            return;
        }
        let rev = self.rev;
        match self.watcher(slot) {
            Some(w) if w.next_rev <= rev => self.set_unsynced(slot),
            Some(_) => self.set_synced(slot),
            None => {}
        }
    }

    pub fn set_synced(&mut self, slot: Slot) {
        self.leave_group(slot);
        if let Some(w) = self.slots.get_mut(slot) {
            w.place = Place::Synced;
            self.synced.insert(slot, &w.range);
        }
    }

    fn set_unsynced(&mut self, slot: Slot) {
        self.leave_group(slot);
        if let Some(w) = self.slots.get_mut(slot) {
            w.place = Place::Unsynced;
            self.unsynced.insert(slot);
        }
    }

    fn leave_group(&mut self, slot: Slot) {
        let Some(w) = self.slots.get(slot) else { return };
        match w.place {
            Place::Synced => self.synced.remove(slot, &w.range),
            Place::Unsynced => {
                self.unsynced.remove(&slot);
            }
            Place::Victim => {
                self.victims.remove(&slot);
            }
        }
    }

    pub fn remove_watcher(&mut self, slot: Slot) {
        self.leave_group(slot);
        let Some(w) = self.slots.take(slot) else { return };
        if let Some(s) = self.streams.get_mut(&w.stream)
            && s.ids.get(&w.id) == Some(&slot)
        {
            s.ids.remove(&w.id);
        }
        self.free.push(slot);
    }
}

/// One write's events as the watchers that take all of them see them, made once for
/// all watchers that see them alike, when the first of them needs it. Watchers that
/// asked for previous key-values and those that did not see a delete differently, a
/// put alike (a put's event carries none: the stream loads it).
struct SharedEvents<'a> {
    published: &'a [Event],
    /// Whether any event carries a previous key-value, which not every watcher sees.
    has_prev_kv: bool,
    /// Indexed by whether the watchers see previous key-values.
    views: [Option<Arc<[Event]>>; 2],
}

impl<'a> SharedEvents<'a> {
    fn new(published: &'a [Event]) -> SharedEvents<'a> {
        let has_prev_kv = published.iter().any(|e| e.prev_kv.is_some());
        SharedEvents { published, has_prev_kv, views: [None, None] }
    }

    fn for_watcher(&mut self, w: &Watcher) -> Arc<[Event]> {
        let published = self.published;
        let sees_prev_kv = self.has_prev_kv && w.opts.has(Filters::PREV_KV);
        let view = &mut self.views[usize::from(sees_prev_kv)];
        Arc::clone(view.get_or_insert_with(|| published.iter().map(|e| w.view(e)).collect()))
    }
}

/// Whether `w` starts beyond the revision after `rev`: a watch created with a future
/// start revision, typically a client resuming on a member that lags the one that
/// delivered its last events. A progress notification at `rev` would go back behind
/// those events, so there is none until the store reaches the watch's start (etcd's
/// #20221).
fn starts_ahead(w: &Watcher, rev: i64) -> bool {
    w.next_rev > rev + 1
}
