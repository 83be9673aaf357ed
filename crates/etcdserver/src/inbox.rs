//! The raft loop's inbox: a bounded queue that holds memory only for what is queued.
//!
//! `std::sync::mpsc::sync_channel(n)` allocates and writes all `n` slots when it is made:
//! 1.2 MB for the raft loop's 16,384 inputs, resident for the member's life although the
//! queue is nearly always empty (a sixth of an idle member's heap). This queue is std's
//! unbounded channel, which allocates a block of slots at a time as messages arrive and
//! frees it once they are taken, with a count of queued messages that refuses a send at
//! the bound, so the bound is what it was.
//!
//! Contract: at most `capacity` messages are queued at any time; `try_send` fails with
//! `Full` when accepting would exceed it (briefly also when senders race at the bound:
//! a refused send is the caller's back-pressure anyway) and with `Disconnected` once the
//! receiver is gone; a message is counted out when the receiver takes it. Only
//! `send_beyond_bound` (the stop) passes the bound, by its one message.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, TryRecvError, TrySendError};
use std::time::Duration;

pub(crate) fn bounded<T>(capacity: usize) -> (BoundedSender<T>, BoundedReceiver<T>) {
    assert!(capacity > 0, "a bounded queue holds at least one message");
    let (tx, rx) = mpsc::channel();
    let queued = Arc::new(AtomicUsize::new(0));
    (BoundedSender { tx, queued: queued.clone(), capacity }, BoundedReceiver { rx, queued })
}

pub(crate) struct BoundedSender<T> {
    tx: mpsc::Sender<T>,
    queued: Arc<AtomicUsize>,
    capacity: usize,
}

// Derived `Clone` would ask `T: Clone`.
impl<T> Clone for BoundedSender<T> {
    fn clone(&self) -> Self {
        Self { tx: self.tx.clone(), queued: self.queued.clone(), capacity: self.capacity }
    }
}

impl<T> BoundedSender<T> {
    pub(crate) fn try_send(&self, message: T) -> Result<(), TrySendError<T>> {
        // Counted in before it is sent, so the receiver never counts out a message the
        // count does not hold yet.
        if self.queued.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(TrySendError::Full(message));
        }
        self.tx.send(message).map_err(|mpsc::SendError(message)| {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            TrySendError::Disconnected(message)
        })
    }

    /// Queues `message` even at the bound: for the one message that must not be refused
    /// (the raft loop's stop), where a bounded queue would make the sender wait.
    pub(crate) fn send_beyond_bound(&self, message: T) -> Result<(), mpsc::SendError<T>> {
        self.queued.fetch_add(1, Ordering::AcqRel);
        self.tx.send(message).inspect_err(|_| {
            self.queued.fetch_sub(1, Ordering::AcqRel);
        })
    }
}

pub(crate) struct BoundedReceiver<T> {
    rx: mpsc::Receiver<T>,
    queued: Arc<AtomicUsize>,
}

impl<T> BoundedReceiver<T> {
    pub(crate) fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.rx.recv_timeout(timeout).inspect(|_| self.taken())
    }

    pub(crate) fn try_recv(&self) -> Result<T, TryRecvError> {
        self.rx.try_recv().inspect(|_| self.taken())
    }

    fn taken(&self) {
        let before = self.queued.fetch_sub(1, Ordering::AcqRel);
        debug_assert!(before > 0, "a message taken that was never counted in");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_send_beyond_the_bound_is_refused_until_a_message_is_taken() {
        let (tx, rx) = bounded(3);
        let other = tx.clone();
        for i in 0..3 {
            tx.try_send(i).unwrap();
        }
        assert!(matches!(other.try_send(3), Err(TrySendError::Full(3))));
        assert!(matches!(tx.try_send(4), Err(TrySendError::Full(4))));
        assert_eq!(rx.try_recv().unwrap(), 0);
        other.try_send(5).unwrap();
        assert!(matches!(tx.try_send(6), Err(TrySendError::Full(6))));
        let rest: Vec<_> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
        assert_eq!(rest, [1, 2, 5]);
        assert!(matches!(rx.try_recv(), Err(TryRecvError::Empty)));
        assert!(matches!(
            rx.recv_timeout(Duration::from_millis(1)),
            Err(RecvTimeoutError::Timeout)
        ));
    }

    #[test]
    fn a_send_beyond_the_bound_is_queued_and_counted_out() {
        let (tx, rx) = bounded(1);
        tx.try_send("propose").unwrap();
        tx.send_beyond_bound("stop").unwrap();
        assert!(matches!(tx.try_send("late"), Err(TrySendError::Full(_))));
        assert_eq!(rx.try_recv().unwrap(), "propose");
        assert_eq!(rx.recv_timeout(Duration::from_millis(1)).unwrap(), "stop");
        assert_eq!(tx.queued.load(Ordering::Acquire), 0);
        tx.try_send("again").unwrap();
    }

    #[test]
    fn a_send_after_the_receiver_is_gone_is_disconnected_and_counts_nothing() {
        let (tx, rx) = bounded(1);
        drop(rx);
        assert!(matches!(tx.try_send(1), Err(TrySendError::Disconnected(1))));
        assert!(matches!(tx.try_send(2), Err(TrySendError::Disconnected(2))));
        assert_eq!(tx.queued.load(Ordering::Acquire), 0);
    }

    #[test]
    fn senders_on_many_threads_never_queue_more_than_the_bound() {
        const CAPACITY: usize = 64;
        const SENDERS: usize = 4;
        let (tx, rx) = bounded(CAPACITY);
        let accepted = AtomicUsize::new(0);
        let finished = AtomicUsize::new(0);
        let mut taken = 0;
        std::thread::scope(|scope| {
            for _ in 0..SENDERS {
                let tx = tx.clone();
                let (accepted, finished) = (&accepted, &finished);
                scope.spawn(move || {
                    for i in 0..10_000 {
                        if tx.try_send(i).is_ok() {
                            accepted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    finished.fetch_add(1, Ordering::Release);
                });
            }
            loop {
                // A sender counts in before it is refused, so the count can pass the
                // bound by one per racing sender, never the queue.
                assert!(tx.queued.load(Ordering::Acquire) <= CAPACITY + SENDERS);
                let done = finished.load(Ordering::Acquire) == SENDERS;
                match rx.try_recv() {
                    Ok(_) => taken += 1,
                    Err(_) if done => break,
                    Err(_) => std::thread::yield_now(),
                }
            }
        });
        assert_eq!(accepted.into_inner(), taken);
        assert_eq!(tx.queued.load(Ordering::Acquire), 0);
    }
}
