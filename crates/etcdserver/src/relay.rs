//! Wake-ups from the raft and apply threads, delivered to the client runtime as I/O
//! readiness instead of tokio's wake from outside its workers.
//!
//! A task woken from a thread that is not one of the runtime's workers (the apply thread
//! answering a proposal, the raft loop answering a read) goes to tokio's shared queue,
//! and the worker tokio unparks for it counts as "searching"; a worker that stops
//! searching because it found work unparks a second one, which finds nothing and parks
//! again. With one client that is a futex wake, a context switch and a park of the other
//! worker for every put (the thirteenth session's count in docs/benchmarks.md). An I/O
//! event is different: the worker parked on the I/O driver wakes as that driver's owner,
//! not searching, and a task woken by the driver runs on it with no one else unparked.
//! So the first wake-up of a burst these threads fire is queued here and rings an
//! eventfd the runtime polls; a task of the runtime's wakes what was queued, from a
//! worker, as tokio wakes tasks from within. The rest of the burst (an apply batch's
//! other answers) go straight to tokio while the ring is on its way: the workers are
//! awake or being woken then, and tokio's shared queue lets both take them, where one
//! worker's queue would hold a whole batch (measured: docs/benchmarks.md, "the wake
//! relay").

use std::future::Future;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

use rustix::event::{EventfdFlags, eventfd};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// Hands wake-ups from threads outside the runtime it serves to a task of that runtime.
/// Without one (started outside a runtime, or with no eventfd to be had) wake-ups are
/// delivered directly, as tokio would.
#[derive(Debug, Clone)]
pub(crate) struct WakeRelay(Option<Arc<Relay>>);

#[derive(Debug)]
struct Relay {
    /// Wakers fired outside the runtime, not yet woken by the relay's task: the first
    /// of each burst, so rarely more than one (never more than the requests waiting).
    queued: Mutex<Vec<Waker>>,
    /// A waker was queued and its ring not yet answered.
    rung: AtomicBool,
    /// Written after a waker is queued: the runtime polls the relay's task.
    bell: OwnedFd,
    /// The relay's task is running; once it is not (its runtime shut down), wake-ups
    /// are delivered directly.
    serving: AtomicBool,
}

impl WakeRelay {
    /// A relay serving the runtime this is called from.
    pub(crate) fn start() -> WakeRelay {
        WakeRelay(
            Relay::start()
                .inspect_err(|error| {
                    tracing::warn!(%error, "no wake relay (eventfd); waking requests directly");
                })
                .ok()
                .flatten(),
        )
    }

    /// `future`, whose wake-ups from outside the runtime go through the relay.
    pub(crate) fn relayed<F: Future + Unpin>(&self, future: F) -> Relayed<F> {
        Relayed { future, relay: self.0.clone(), wakers: None }
    }
}

impl Relay {
    fn start() -> std::io::Result<Option<Arc<Relay>>> {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return Ok(None);
        };
        let bell = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        let relay = Arc::new(Relay {
            queued: Mutex::default(),
            rung: AtomicBool::new(false),
            bell,
            serving: AtomicBool::new(true),
        });
        // tokio deprecates its safe registration because a `T` could hand out another
        // descriptor later, or close it; an `OwnedFd` cannot (the unsafe replacement's
        // contract, which this crate's `forbid(unsafe_code)` keeps us from stating).
        #[allow(deprecated)]
        let polled = AsyncFd::with_interest(relay.bell.try_clone()?, Interest::READABLE)?;
        handle.spawn(serve(Serving(Arc::clone(&relay)), polled));
        Ok(Some(relay))
    }

    fn wake(&self, waker: Waker) {
        // Only the first wake-up of a burst needs the relay: it is what unparks a
        // worker. While its ring is on the way, later ones go straight to tokio, whose
        // workers are then awake or being woken, and which spreads them over both.
        if !self.serving.load(Ordering::Acquire) || self.rung.swap(true, Ordering::AcqRel) {
            waker.wake();
            return;
        }
        self.queued.lock().unwrap_or_else(PoisonError::into_inner).push(waker);
        // The counter cannot overflow: the task reads (and so zeroes) it on each ring.
        if let Err(error) = rustix::io::write(&self.bell, &1u64.to_ne_bytes()) {
            tracing::warn!(%error, "wake relay's eventfd write failed; waking directly");
            self.serving.store(false, Ordering::Release);
            self.drain();
        }
    }

    /// Wakes what was queued. A waker is queued before its ring, so one queued after this
    /// takes the queue is woken on the next ring.
    fn drain(&self) {
        let woken =
            std::mem::take(&mut *self.queued.lock().unwrap_or_else(PoisonError::into_inner));
        self.rung.store(false, Ordering::Release);
        for waker in woken {
            waker.wake();
        }
    }
}

/// The relay's hold on its task: when the task is dropped (its runtime shut down, even
/// before the task first ran), later wake-ups go directly and what is queued is woken.
struct Serving(Arc<Relay>);

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.serving.store(false, Ordering::Release);
        self.0.drain();
    }
}

/// The relay's task: on each ring, wakes what was queued.
async fn serve(serving: Serving, bell: AsyncFd<OwnedFd>) {
    let relay = &serving.0;
    loop {
        let Ok(mut ready) = bell.readable().await else {
            return;
        };
        // Zeroes the counter. Readiness is cleared after the read, so a ring that comes
        // after it is a new edge the driver reports (tokio clears only what this guard saw).
        let rung = rustix::io::read(bell.get_ref(), &mut [0u8; 8]);
        ready.clear_ready();
        if rung.is_ok() {
            relay.drain();
        }
    }
}

/// A future whose wake-ups from threads outside the runtime go through a [`WakeRelay`].
#[derive(Debug)]
pub(crate) struct Relayed<F> {
    future: F,
    relay: Option<Arc<Relay>>,
    /// The task's waker of the last poll and the relaying waker made for it, reused
    /// while the task's is the same.
    wakers: Option<(Waker, Waker)>,
}

struct RelayedWaker {
    task: Waker,
    relay: Arc<Relay>,
}

impl Wake for RelayedWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // A runtime's own threads wake as tokio would; only other threads are relayed.
        if tokio::runtime::Handle::try_current().is_ok() {
            self.task.wake_by_ref();
        } else {
            self.relay.wake(self.task.clone());
        }
    }
}

impl<F: Future + Unpin> Future for Relayed<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        let Some(relay) = &this.relay else {
            return Pin::new(&mut this.future).poll(cx);
        };
        let task = cx.waker();
        if !this.wakers.as_ref().is_some_and(|(last, _)| last.will_wake(task)) {
            let relayed = Arc::new(RelayedWaker { task: task.clone(), relay: Arc::clone(relay) });
            this.wakers = Some((task.clone(), Waker::from(relayed)));
        }
        let (_, relayed) = this.wakers.as_ref().expect("set above");
        Pin::new(&mut this.future).poll(&mut Context::from_waker(relayed))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use super::*;

    /// Counts its wake-ups.
    #[derive(Default)]
    struct Counted(AtomicUsize);

    impl Wake for Counted {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counted() -> (Arc<Counted>, Waker) {
        let count = Arc::new(Counted::default());
        (Arc::clone(&count), Waker::from(Arc::clone(&count)))
    }

    fn woken(count: &Counted) -> usize {
        count.0.load(Ordering::SeqCst)
    }

    /// Lets the runtime's tasks (the relay's) run until nothing is left to do.
    fn run_tasks(runtime: &tokio::runtime::Runtime) {
        runtime.block_on(async {
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
        });
    }

    fn current_thread() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
    }

    #[test]
    fn the_first_wake_up_of_a_burst_waits_for_the_runtime_and_the_rest_go_directly() {
        let runtime = current_thread();
        let relay = runtime.block_on(async { Relay::start() }).unwrap().expect("a runtime");
        let (first, first_waker) = counted();
        let (second, second_waker) = counted();
        // This thread is outside the runtime, as the apply thread is.
        relay.wake(first_waker);
        relay.wake(second_waker);
        assert_eq!((woken(&first), woken(&second)), (0, 1), "the first is queued");
        run_tasks(&runtime);
        assert_eq!(woken(&first), 1, "the relay's task woke it");
        // Answered: the next wake-up is a burst's first again.
        let (third, third_waker) = counted();
        relay.wake(third_waker);
        assert_eq!(woken(&third), 0);
        run_tasks(&runtime);
        assert_eq!(woken(&third), 1);
    }

    #[test]
    fn wake_ups_go_directly_once_the_runtime_is_gone() {
        let runtime = current_thread();
        let relay = runtime.block_on(async { Relay::start() }).unwrap().expect("a runtime");
        let (queued, queued_waker) = counted();
        relay.wake(queued_waker);
        drop(runtime);
        assert_eq!(woken(&queued), 1, "what was queued is woken when the relay's task ends");
        let (later, later_waker) = counted();
        relay.wake(later_waker);
        assert_eq!(woken(&later), 1);
    }

    #[test]
    fn a_relayed_future_woken_from_another_thread_completes() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let relay = WakeRelay::start();
            assert!(relay.0.is_some());
            for _ in 0..100 {
                let (tx, rx) = tokio::sync::oneshot::channel();
                let answering = std::thread::spawn(move || tx.send(7).unwrap());
                let answer = tokio::time::timeout(Duration::from_secs(10), relay.relayed(rx));
                assert_eq!(answer.await.expect("woken").unwrap(), 7);
                answering.join().unwrap();
            }
        });
    }

    #[test]
    fn without_a_runtime_a_relayed_future_is_the_future() {
        let relay = WakeRelay::start();
        assert!(relay.0.is_none());
        let (tx, rx) = tokio::sync::oneshot::channel();
        tx.send(1).unwrap();
        assert_eq!(current_thread().block_on(relay.relayed(rx)).unwrap(), 1);
    }
}
