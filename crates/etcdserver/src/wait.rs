//! Requests waiting for their raft entry to be applied (or their ReadIndex round to be
//! answered), by id.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::oneshot;

/// A map from id to the channel its result goes to. Entries are removed when
/// triggered or when the waiter gives up, so the map holds only live requests; its
/// size is bounded by the server's limit on requests in flight.
///
/// Once closed (the member stopped), every waiter's channel is dropped and so is that of
/// any later registration: a waiter whose sender is gone knows the member stopped.
#[derive(Debug)]
pub struct Wait<T> {
    pending: Mutex<Pending<T>>,
}

#[derive(Debug)]
struct Pending<T> {
    waiters: HashMap<u64, oneshot::Sender<T>>,
    closed: bool,
}

impl<T> Default for Wait<T> {
    fn default() -> Self {
        Wait { pending: Mutex::new(Pending { waiters: HashMap::new(), closed: false }) }
    }
}

impl<T> Wait<T> {
    pub fn register(&self, id: u64) -> oneshot::Receiver<T> {
        let (tx, rx) = oneshot::channel();
        let mut pending = self.lock();
        if !pending.closed {
            let previous = pending.waiters.insert(id, tx);
            debug_assert!(previous.is_none(), "id {id:x} registered twice");
        }
        rx
    }

    /// Delivers `result` to the waiter of `id`, if it is still waiting.
    pub fn trigger(&self, id: u64, result: T) {
        if let Some(tx) = self.lock().waiters.remove(&id) {
            let _ = tx.send(result);
        }
    }

    /// Delivers `result()` to every waiter.
    pub fn trigger_all(&self, result: impl Fn() -> T) {
        for (_, tx) in self.lock().waiters.drain() {
            let _ = tx.send(result());
        }
    }

    /// Forgets `id` (its requester gave up).
    pub fn cancel(&self, id: u64) {
        self.lock().waiters.remove(&id);
    }

    /// Drops every waiter, now and from now on.
    pub fn close(&self) {
        let mut pending = self.lock();
        pending.closed = true;
        pending.waiters.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending<T>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}
