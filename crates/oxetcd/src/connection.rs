//! A client connection's task: hyper's connection future and, up to a limit, the
//! requests (HTTP/2 streams) it serves, polled together.
//!
//! hyper hands each stream's future to an executor; given tokio's, every request was a
//! task of its own: spawned, woken by the apply thread, polled, and then it woke the
//! connection's task to write its response, which took the lock of h2's stream table
//! the connection's task also takes. With 1000 clients on 100 connections that was a
//! fifth of the member's CPU on puts (docs/benchmarks.md). [`ConnectionStreams`] keeps
//! a connection's streams in the connection's own task instead, and [`drive`] polls
//! them right after the connection: the apply thread wakes one task, the responses of a
//! batch are queued in the same poll and written together.
//!
//! Not every stream stays: tokio's other workers cannot take part of a task, so a
//! connection that carries many requests at once (a Kubernetes API server has one per
//! member) or one that a request held up hands its later streams to the runtime as
//! before ([`LOCAL_STREAMS_MAX`], [`LOCAL_ROUND_MAX`]).

use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use futures_util::task::AtomicWaker;

use crate::coalesce::InFlight;

/// The most streams a connection runs in its own task at once, and the most requests
/// it may have in flight to take one more; other streams are spawned, for tokio's
/// other workers to share. Above the 10 requests each connection carries in put-1000c
/// (1000 clients on 100 connections), far below the hundreds a busy shared connection
/// (1000 clients on one, or a Kubernetes API server's, with its watches) has open,
/// whose handlers and response bodies are worth spreading over every core.
pub const LOCAL_STREAMS_MAX: usize = 16;

/// A round of a connection's own streams longer than this (a large range read in a
/// handler) makes the connection spawn every later stream: while its task runs a
/// handler, the connection reads nothing, and no other worker can take over. A round of
/// small requests takes microseconds; the bound is wall time, so it is kept well above
/// the few milliseconds a busy machine's scheduler may preempt the worker for.
pub const LOCAL_ROUND_MAX: Duration = Duration::from_millis(10);

/// The most times [`drive`] polls a connection again for wake-ups that came while it
/// was being polled, before it yields to other tasks: a connection whose streams keep
/// it busy shares its worker. (A task out of tokio's cooperative budget, whose
/// resources return `Pending` and wake it, yields at once.)
const POLLS_PER_WAKE_MAX: usize = 16;

type Stream = Pin<Box<dyn Future<Output = ()> + Send>>;

/// hyper's executor for one connection's streams: queues them for the connection's
/// [`drive`], or spawns them when the connection is busy ([`LOCAL_STREAMS_MAX`]) or was
/// held up by one ([`LOCAL_ROUND_MAX`]).
#[derive(Clone)]
pub struct ConnectionStreams(Arc<Streams>);

struct Streams {
    /// Handed over by hyper, not yet taken by [`drive`].
    queued: Mutex<Vec<Stream>>,
    /// The connection's requests, counted by its service before hyper hands over each.
    in_flight: InFlight,
    /// A round of local streams took longer than [`LOCAL_ROUND_MAX`].
    spawn_all: AtomicBool,
}

impl ConnectionStreams {
    pub fn new(in_flight: InFlight) -> Self {
        let queued = Mutex::default();
        ConnectionStreams(Arc::new(Streams {
            queued,
            in_flight,
            spawn_all: AtomicBool::new(false),
        }))
    }
}

impl std::fmt::Debug for ConnectionStreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionStreams")
            .field("in_flight", &self.0.in_flight.count())
            .field("spawn_all", &self.0.spawn_all.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl<F: Future<Output = ()> + Send + 'static> hyper::rt::Executor<F> for ConnectionStreams {
    fn execute(&self, stream: F) {
        let (streams, in_flight) = (&self.0, &self.0.in_flight);
        // `local` is only counted by the connection's task, which hyper calls this from.
        if streams.spawn_all.load(Ordering::Relaxed)
            || in_flight.local() >= LOCAL_STREAMS_MAX
            || in_flight.count() > LOCAL_STREAMS_MAX
        {
            tokio::spawn(stream);
            return;
        }
        in_flight.set_local(in_flight.local() + 1);
        streams.queued.lock().unwrap_or_else(PoisonError::into_inner).push(Box::pin(stream));
    }
}

/// Wakes a connection's task, unless the task is being polled by [`drive`], which then
/// polls the connection again in place: h2 wakes the connection's task whenever a
/// stream queues a frame, and a task woken while it runs is rescheduled by tokio, which
/// wakes an idle worker to share the work.
#[derive(Debug, Default)]
struct InPlaceWake {
    task: AtomicWaker,
    polling: AtomicBool,
    woken: AtomicBool,
}

impl Wake for InPlaceWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // `woken` first: `drive` clears `polling` before it reads `woken`, so a wake
        // that finds it polling is seen by that read.
        self.woken.store(true, Ordering::SeqCst);
        if !self.polling.load(Ordering::SeqCst) {
            self.task.wake();
        }
    }
}

/// Drives a connection (hyper's future) with the streams its [`ConnectionStreams`]
/// keeps and the [`InFlight`] they share with its I/O stream: polls the connection, then
/// its streams, and again while they woke it or the I/O stream asked, at once or after
/// the tasks already queued. Streams still running when the connection ends are
/// dropped, as hyper drops a reset stream's.
pub async fn drive<F: Future>(connection: F, streams: ConnectionStreams) -> F::Output {
    let in_flight = streams.0.in_flight.clone();
    let mut connection = pin!(connection);
    let mut running = FuturesUnordered::<Stream>::new();
    let wake = Arc::new(InPlaceWake::default());
    let waker = Waker::from(Arc::clone(&wake));
    std::future::poll_fn(|cx| {
        wake.task.register(cx.waker());
        let mut in_place = Context::from_waker(&waker);
        for _ in 0..POLLS_PER_WAKE_MAX {
            wake.polling.store(true, Ordering::SeqCst);
            wake.woken.store(false, Ordering::SeqCst);
            if let Poll::Ready(done) = connection.as_mut().poll(&mut in_place) {
                wake.polling.store(false, Ordering::SeqCst);
                return Poll::Ready(done);
            }
            poll_streams(&streams.0, &mut running, &mut in_place);
            let (repoll, yield_turn) = (in_flight.take_repoll(), in_flight.take_yield());
            wake.polling.store(false, Ordering::SeqCst);
            let woken = wake.woken.swap(false, Ordering::SeqCst);
            if !(woken || repoll || yield_turn) {
                return Poll::Pending;
            }
            if yield_turn || !tokio::task::coop::has_budget_remaining() {
                break;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await
}

/// Takes the streams hyper queued and polls every one that is ready.
fn poll_streams(streams: &Streams, running: &mut FuturesUnordered<Stream>, cx: &mut Context<'_>) {
    running.extend(streams.queued.lock().unwrap_or_else(PoisonError::into_inner).drain(..));
    if running.is_empty() {
        return;
    }
    let started = Instant::now();
    while let Poll::Ready(Some(())) = running.poll_next_unpin(cx) {}
    if started.elapsed() > LOCAL_ROUND_MAX {
        streams.spawn_all.store(true, Ordering::Relaxed);
    }
    streams.in_flight.set_local(running.len());
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use hyper::rt::Executor;

    use super::*;
    use crate::coalesce::tests::Wakes;

    fn counting_waker() -> (Arc<Wakes>, Waker) {
        let wakes = Arc::new(Wakes::default());
        (Arc::clone(&wakes), Waker::from(Arc::clone(&wakes)))
    }

    fn wakes(wakes: &Wakes) -> usize {
        wakes.0.load(Ordering::Relaxed)
    }

    /// A stream that counts its polls and finishes on its `n`th.
    fn stream_done_after(polls: Arc<AtomicUsize>, n: usize) -> impl Future<Output = ()> + Send {
        std::future::poll_fn(move |cx| {
            if polls.fetch_add(1, Ordering::Relaxed) + 1 >= n {
                Poll::Ready(())
            } else {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        })
    }

    /// A connection that calls `on_poll` with the number of its poll (from 0) and the
    /// context, and never ends.
    fn connection(
        mut on_poll: impl FnMut(usize, &mut Context<'_>) + Send,
    ) -> impl Future<Output = ()> + Send {
        let mut polls = 0;
        std::future::poll_fn(move |cx| {
            on_poll(polls, cx);
            polls += 1;
            Poll::Pending
        })
    }

    fn tasks() -> usize {
        tokio::runtime::Handle::current().metrics().num_alive_tasks()
    }

    #[test]
    fn a_connections_streams_run_in_its_task() {
        // No runtime here: a spawned stream would panic.
        let streams = ConnectionStreams::new(InFlight::default());
        let polls = [Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0))];
        let connection = {
            let (streams, polls) = (streams.clone(), polls.clone());
            connection(move |poll, _| {
                if poll == 0 {
                    for polls in &polls {
                        streams.execute(stream_done_after(Arc::clone(polls), 2));
                    }
                }
            })
        };
        let mut driven = pin!(drive(connection, streams));
        let (woken, waker) = counting_waker();
        assert!(driven.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());
        for polls in &polls {
            assert_eq!(polls.load(Ordering::Relaxed), 2, "polled again in place");
        }
        assert_eq!(wakes(&woken), 0, "no wake-up of the task");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_connection_with_many_requests_in_flight_spawns_its_streams() {
        let in_flight = InFlight::default();
        let streams = ConnectionStreams::new(in_flight.clone());
        let _serving: Vec<_> = (0..LOCAL_STREAMS_MAX).map(|_| in_flight.enter()).collect();
        let before = tasks();
        streams.execute(std::future::pending::<()>());
        assert_eq!(tasks(), before, "up to the limit, kept");
        let _one_more = in_flight.enter();
        streams.execute(std::future::pending::<()>());
        assert_eq!(tasks(), before + 1, "past it, spawned");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_connection_with_many_open_streams_spawns_the_next() {
        // Streaming responses (watches) stay open after their handlers returned.
        let in_flight = InFlight::default();
        let streams = ConnectionStreams::new(in_flight.clone());
        let before = tasks();
        for _ in 0..LOCAL_STREAMS_MAX {
            streams.execute(std::future::pending::<()>());
        }
        assert_eq!((tasks(), in_flight.local()), (before, LOCAL_STREAMS_MAX));
        streams.execute(std::future::pending::<()>());
        assert_eq!(tasks(), before + 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_connection_held_up_by_a_stream_spawns_the_later_ones() {
        let streams = ConnectionStreams::new(InFlight::default());
        streams.execute(async { std::thread::sleep(LOCAL_ROUND_MAX * 2) });
        let mut running = FuturesUnordered::new();
        let (_, waker) = counting_waker();
        poll_streams(&streams.0, &mut running, &mut Context::from_waker(&waker));
        let before = tasks();
        streams.execute(std::future::pending::<()>());
        assert_eq!(tasks(), before + 1);
    }

    #[test]
    fn a_connection_waking_itself_forever_yields() {
        let polls = Arc::new(AtomicUsize::new(0));
        let connection = {
            let polls = Arc::clone(&polls);
            connection(move |_, cx| {
                polls.fetch_add(1, Ordering::Relaxed);
                cx.waker().wake_by_ref();
            })
        };
        let mut driven = pin!(drive(connection, ConnectionStreams::new(InFlight::default())));
        let (woken, waker) = counting_waker();
        assert!(driven.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());
        assert_eq!(polls.load(Ordering::Relaxed), POLLS_PER_WAKE_MAX);
        assert_eq!(wakes(&woken), 1, "woken once, to come back later");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_connection_out_of_budget_yields_at_once() {
        let polls = Arc::new(AtomicUsize::new(0));
        let connection = {
            let polls = Arc::clone(&polls);
            connection(move |_, cx| {
                polls.fetch_add(1, Ordering::Relaxed);
                // Spends the task's budget as busy streams would (tokio wakes the task
                // once it is back in the run queue), and is woken by h2 as it goes.
                while pin!(tokio::task::coop::consume_budget()).poll(cx).is_ready() {}
                cx.waker().wake_by_ref();
            })
        };
        let mut driven = pin!(drive(connection, ConnectionStreams::new(InFlight::default())));
        let (woken, waker) = counting_waker();
        assert!(driven.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());
        assert_eq!(polls.load(Ordering::Relaxed), 1, "not polled again in place");
        assert_eq!(wakes(&woken), 1);
    }

    #[test]
    fn a_wake_from_elsewhere_wakes_the_task() {
        let stored = Arc::new(Mutex::new(None::<Waker>));
        let connection = {
            let stored = Arc::clone(&stored);
            connection(move |_, cx| *stored.lock().unwrap() = Some(cx.waker().clone()))
        };
        let mut driven = pin!(drive(connection, ConnectionStreams::new(InFlight::default())));
        let (woken, waker) = counting_waker();
        assert!(driven.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());
        assert_eq!(wakes(&woken), 0);
        stored.lock().unwrap().take().unwrap().wake();
        assert_eq!(wakes(&woken), 1);
    }

    #[test]
    fn the_driver_polls_again_as_the_io_stream_asks() {
        let in_flight = InFlight::default();
        let polls = Arc::new(AtomicUsize::new(0));
        let connection = {
            let (in_flight, polls) = (in_flight.clone(), Arc::clone(&polls));
            connection(move |poll, _| {
                polls.fetch_add(1, Ordering::Relaxed);
                match poll {
                    0 => in_flight.ask_repoll(),
                    2 => in_flight.ask_yield(),
                    _ => {}
                }
            })
        };
        let mut driven = pin!(drive(connection, ConnectionStreams::new(in_flight)));
        let (woken, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(driven.as_mut().poll(&mut cx).is_pending());
        assert_eq!(polls.load(Ordering::Relaxed), 2, "asked to poll again at once");
        assert_eq!(wakes(&woken), 0);
        assert!(driven.as_mut().poll(&mut cx).is_pending());
        assert_eq!(polls.load(Ordering::Relaxed), 3, "asked to yield: not polled in place");
        assert_eq!(wakes(&woken), 1, "but woken");
    }
}
