//! The watchable store (etcd's `mvcc/watchable_store.go`): the hub between the apply
//! thread, which publishes every write's events, and the client watch streams.
//!
//! A watcher is in one of three places:
//! - **synced**: it has been handed every event up to the hub's revision; the apply
//!   thread's [`WatchHub::publish`] delivers new events to it directly.
//! - **unsynced**: it needs history (a start revision in the past, a snapshot install,
//!   or it fell behind); the catch-up thread ([`catchup`]) reads the store in bounded
//!   batches and moves it to synced once it reaches the hub's revision.
//! - **victim**: its stream's bounded queue was full; the response that did not fit is
//!   parked with it and retried, then it catches up from the store like an unsynced one.
//!
//! Publishing never blocks on a client: deliveries use `try_send` on each stream's
//! bounded queue. The hub keeps its own revision (the last one published), so a
//! progress notification or a `start_revision` of 0 never runs ahead of the events
//! handed out.

mod catchup;
mod hub;
mod index;
mod slots;
mod watcher;

use std::sync::Arc;

pub use hub::{CreateWatch, Delivery, Events, StoreSource, StreamId, WatchCounts, WatchHub};
pub use watcher::{Filters, KeyRange, WatchError};

impl WatchHub {
    /// A hub at the store's current revision, with its catch-up thread running. Built
    /// here so that the hub knows nothing of the thread that catches its watchers up.
    pub fn start(store: StoreSource) -> Arc<WatchHub> {
        let hub = WatchHub::new(store);
        catchup::spawn(Arc::downgrade(&hub));
        hub
    }
}

#[cfg(test)]
mod tests;
