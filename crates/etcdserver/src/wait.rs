//! Requests waiting for their raft entry to be applied, by request id.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::oneshot;

/// A map from request id to the channel its result goes to. Entries are removed when
/// triggered or when the waiter gives up, so the map holds only live requests; its
/// size is bounded by the server's limit on requests in flight.
#[derive(Debug)]
pub struct Wait<T> {
    pending: Mutex<HashMap<u64, oneshot::Sender<T>>>,
}

impl<T> Default for Wait<T> {
    fn default() -> Self {
        Wait { pending: Mutex::new(HashMap::new()) }
    }
}

impl<T> Wait<T> {
    pub fn register(&self, id: u64) -> oneshot::Receiver<T> {
        let (tx, rx) = oneshot::channel();
        let previous = self.lock().insert(id, tx);
        debug_assert!(previous.is_none(), "request id {id:x} registered twice");
        rx
    }

    /// Delivers `result` to the waiter of `id`, if it is still waiting.
    pub fn trigger(&self, id: u64, result: T) {
        if let Some(tx) = self.lock().remove(&id) {
            let _ = tx.send(result);
        }
    }

    /// Forgets `id` (its requester gave up).
    pub fn cancel(&self, id: u64) {
        self.lock().remove(&id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<T>>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}
