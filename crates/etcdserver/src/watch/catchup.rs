//! The catch-up thread (etcd's sync and victim loops): brings unsynced watchers up to
//! the hub's revision from the store's history, in bounded rounds, and retries the
//! responses parked with victims.
//!
//! A round reads history without holding the hub's lock, so the apply thread keeps
//! publishing meanwhile. What was published during the read (already in the store,
//! which is written before it is published) is then read under the lock if it is
//! short, so a watcher joins the synced group with no gap even under a steady stream of
//! writes; a long tail just means another round.

use std::sync::{Arc, Weak};
use std::time::Duration;

use oxetcd_api::mvccpb::Event;

use super::hub::{Events, Inner, WatchHub};
use super::index::Slot;
use super::watcher::Place;

/// Watchers served by one round (etcd's `maxWatchersPerSync`).
const WATCHERS_PER_ROUND: usize = 512;
/// Revisions of history read per round, and so at most per catch-up response (etcd's
/// `watchBatchMaxRevs`).
const REVISIONS_PER_ROUND: i64 = 1000;
/// Revisions published during a round's read that are read under the lock to finish it.
const TAIL_UNDER_LOCK: i64 = 256;
/// Wait between rounds when nothing asks for one sooner (etcd syncs every 100 ms).
const IDLE_WAIT: Duration = Duration::from_millis(100);
/// Retry period for parked responses (etcd's victim loop).
const VICTIM_RETRY: Duration = Duration::from_millis(10);

pub(super) fn spawn(hub: Weak<WatchHub>) {
    let spawned = std::thread::Builder::new().name("oxetcd-watch".into()).spawn(move || {
        while let Some(hub) = hub.upgrade() {
            if !step(&hub) {
                return;
            }
        }
    });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the watch catch-up thread; historical watches will stall");
    }
}

/// One pass: victims, one catch-up round, then a wait unless more work is known.
/// `false` once the hub is closed.
fn step(hub: &WatchHub) -> bool {
    retry_victims(&mut hub.lock());
    let more = round(hub);
    let mut inner = hub.lock();
    if inner.closed {
        return false;
    }
    if !more && !inner.kicked {
        let wait = if inner.victims.is_empty() { IDLE_WAIT } else { VICTIM_RETRY };
        inner = hub.work.wait_timeout(inner, wait).unwrap_or_else(|e| e.into_inner()).0;
    }
    inner.kicked = false;
    !inner.closed
}

fn retry_victims(inner: &mut Inner) {
    for (slot, delivery) in std::mem::take(&mut inner.victims) {
        let compacted = delivery.compact_revision != 0;
        match inner.deliver(slot, delivery) {
            Ok(()) => inner.victim_delivered(slot, compacted),
            Err(delivery) => {
                inner.victims.insert(slot, delivery);
            }
        }
    }
}

/// What a round chose while holding the lock.
struct Round {
    generation: u64,
    /// (slot, uid): the uid tells whether the slot still holds the same watcher.
    chosen: Vec<(Slot, u64)>,
    from: i64,
    to: i64,
    /// The hub's revision when the round was planned.
    head: i64,
}

/// Runs one round; `true` if unsynced watchers remain.
fn round(hub: &WatchHub) -> bool {
    let Some(plan) = plan(&mut hub.lock()) else { return false };
    let store = (hub.store)();
    let events = match store.events(plan.from, plan.to + 1) {
        Ok(events) => events,
        // A compaction not yet told to the hub: the next round cancels those watchers.
        Err(oxetcd_mvcc::Error::Compacted) => return false,
        Err(e) => {
            tracing::warn!(error = %e, "reading history for watchers failed");
            return false;
        }
    };
    let mut inner = hub.lock();
    if inner.generation != plan.generation {
        return true;
    }
    let (events, to) = with_tail(&store, &inner, &plan, events);
    finish(&mut inner, &plan, &events, to);
    !inner.unsynced.is_empty()
}

fn plan(inner: &mut Inner) -> Option<Round> {
    let head = inner.rev;
    let candidates: Vec<Slot> = inner.unsynced.iter().take(WATCHERS_PER_ROUND).copied().collect();
    let mut chosen = Vec::new();
    let mut from = i64::MAX;
    for slot in candidates {
        let Some(w) = inner.watcher(slot) else {
            inner.unsynced.remove(&slot);
            continue;
        };
        if w.next_rev > head {
            // Moved here by a snapshot install while ahead of the new store.
            inner.set_synced(slot);
        } else if w.next_rev < inner.compact_rev {
            inner.cancel_compacted(slot);
        } else {
            from = from.min(w.next_rev);
            chosen.push((slot, w.uid));
        }
    }
    (!chosen.is_empty()).then(|| Round {
        generation: inner.generation,
        chosen,
        from,
        to: head.min(from.saturating_add(REVISIONS_PER_ROUND - 1)),
        head,
    })
}

/// Adds what was published while the round read, if the round read up to the head and
/// the tail is short; returns the events and the revision they cover.
fn with_tail(
    store: &Arc<oxetcd_mvcc::Store>,
    inner: &Inner,
    plan: &Round,
    mut events: Vec<Event>,
) -> (Vec<Event>, i64) {
    if plan.to < plan.head || inner.rev == plan.to || inner.rev - plan.to > TAIL_UNDER_LOCK {
        return (events, plan.to);
    }
    match store.events(plan.to + 1, inner.rev + 1) {
        Ok(tail) => {
            events.extend(tail);
            (events, inner.rev)
        }
        Err(_) => (events, plan.to),
    }
}

/// Hands each chosen watcher its part of `events` (which cover up to `to`), and moves
/// the ones that reached the hub's revision to the synced group.
fn finish(inner: &mut Inner, plan: &Round, events: &[Event], to: i64) {
    for &(slot, uid) in &plan.chosen {
        // A watcher further ahead than this round read waits for a later round.
        let Some(w) = inner
            .watcher(slot)
            .filter(|w| w.uid == uid && w.place == Place::Unsynced && w.next_rev <= to)
        else {
            continue;
        };
        let mine: Vec<Event> = events
            .iter()
            .filter(|e| e.kv.as_ref().is_some_and(|kv| kv.mod_revision >= w.next_rev))
            .filter_map(|e| w.shape(e))
            .collect();
        inner.hand_out(slot, Events::Own(mine), to);
        let parked = inner.watcher(slot).is_none_or(|w| w.place == Place::Victim);
        if !parked && to >= inner.rev {
            inner.set_synced(slot);
        }
    }
}
