//! What a connection has to send leaves in as few writes as it can without waiting for
//! time the client would notice.
//!
//! On loopback a write costs its sender the peer's receive path too, so the number of
//! writes per request is much of a server's CPU; etcd's gRPC server, whose writer
//! goroutine drains its queue before it flushes, writes about once per four responses
//! with 1000 clients on 100 connections. Two things made hyper's HTTP/2 server write more
//! than once per response:
//!
//! - **Responses that complete together.** Puts are answered a batch at a time: the
//!   apply thread wakes every handler of a batch at once, each hands its response to its
//!   connection's task, and tokio runs the task a running task wakes right after it (its
//!   LIFO slot), so the connection wrote each response alone, before the next handler of
//!   the same connection had run. [`CoalescedWrites`] makes a connection's first write
//!   after a flush wait one turn of the worker's run queue when other requests of the
//!   connection are in flight ([`InFlight`]): it returns `Pending` and its driver wakes
//!   the task, tokio puts a task that woke itself at the back of the queue, the handlers
//!   already woken queue their responses, and the next poll writes them all. With
//!   nothing else queued the task runs again at once; a connection serving nothing else
//!   writes at once. (The streams a connection runs in its own task, connection.rs,
//!   answer in the same poll and need no turn.)
//! - **PING acknowledgements.** etcd's Go client (grpc-go's flow-control estimator) sends
//!   a PING with a request after each response it reads, and h2 acknowledged it in a
//!   write of its own, before the request was answered: two writes per request for a
//!   client alone on its connection (put-1c, and each of 1000 clients on 1000
//!   connections). An acknowledgement is held for the next write (the response) while
//!   the connection has requests in flight, at most [`PING_ACK_HOLD`]; with none, until
//!   the connection has been polled once more (by its driver, `connection::drive`, asked
//!   through [`InFlight`]), since the request that came with the PING is taken only after
//!   h2 flushed. It goes after the response's frames: the estimator sends a PING on the
//!   first DATA frame it reads with none outstanding, so a response read before the
//!   acknowledgement brings no new PING, and the client sends half as many (with their
//!   window updates, each a write of its own with 1000 connections: 10% more
//!   throughput there). The client only measures the round trip with it (a longer one
//!   makes its window grow less) and its keepalive waits seconds for any frame; the
//!   hold is far below both.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// The longest a PING acknowledgement waits for a response to go out with. Above a
/// loaded member's request latency (tens of milliseconds for 1000 clients), so that the
/// acknowledgement usually leaves with the response, and a small fraction of the
/// shortest keepalive timeout etcd's tools set (etcdctl's `--keepalive-timeout`, 6 s).
pub const PING_ACK_HOLD: Duration = Duration::from_millis(200);

/// An HTTP/2 PING frame with the ACK flag (RFC 9113 §6.7): a 9-byte header (length 8,
/// type 6, flags 1, stream 0) and 8 bytes of opaque data.
const PING_ACK_HEADER: [u8; 9] = [0, 0, 8, 6, 1, 0, 0, 0, 0];
const PING_ACK_LEN: usize = PING_ACK_HEADER.len() + 8;

/// The most acknowledgement bytes held at once (60 frames): a client that floods PINGs
/// while a request is in flight has them written as they come, not kept for the hold.
const HELD_BYTES_MAX: usize = 60 * PING_ACK_LEN;

/// The most slices one vectored write passes on, the held bytes' included (h2 writes
/// at most 64 at a time).
const MAX_SLICES: usize = 64;

/// What a connection's service, its I/O stream and the task driving it
/// (`connection::drive`) share: the requests it is serving (handlers called and not yet
/// returned) and how many of them run in the connection's task, and what the I/O
/// stream asked of the driver: to poll the connection once more at once, or once more
/// after the tasks already queued.
#[derive(Debug, Clone, Default)]
pub struct InFlight(Arc<Shared>);

#[derive(Debug, Default)]
struct Shared {
    requests: AtomicUsize,
    /// Streams the connection's task runs itself; set by that task only.
    local: AtomicUsize,
    repoll: AtomicBool,
    yield_turn: AtomicBool,
}

impl InFlight {
    /// Counts a request until the guard is dropped (its handler returned or was dropped).
    pub fn enter(&self) -> Serving {
        self.0.requests.fetch_add(1, Ordering::Relaxed);
        Serving(self.clone())
    }

    /// The requests in flight. A hint, not a synchronization: a stale count costs a write
    /// more, a poll more, or a stream run elsewhere.
    pub fn count(&self) -> usize {
        self.0.requests.load(Ordering::Relaxed)
    }

    /// Whether the I/O stream asked for the connection to be polled again at once (at
    /// most once per held acknowledgement: `held_turn` is set before it asks); clears it.
    pub fn take_repoll(&self) -> bool {
        self.0.repoll.swap(false, Ordering::Relaxed)
    }

    /// Whether the I/O stream asked for the connection to be polled again after the
    /// tasks already queued (its task woken, not polled in place); clears it.
    pub fn take_yield(&self) -> bool {
        self.0.yield_turn.swap(false, Ordering::Relaxed)
    }

    /// Streams run in the connection's task, including any whose handler returned.
    pub(crate) fn local(&self) -> usize {
        self.0.local.load(Ordering::Relaxed)
    }

    pub(crate) fn set_local(&self, streams: usize) {
        self.0.local.store(streams, Ordering::Relaxed);
    }

    pub(crate) fn ask_repoll(&self) {
        self.0.repoll.store(true, Ordering::Relaxed);
    }

    pub(crate) fn ask_yield(&self) {
        self.0.yield_turn.store(true, Ordering::Relaxed);
    }

    fn any(&self) -> bool {
        self.count() > 0
    }

    /// Whether requests are in flight in tasks other than the connection's, whose
    /// responses come from elsewhere.
    fn any_elsewhere(&self) -> bool {
        self.count() > self.local()
    }
}

/// One request counted by [`InFlight::enter`].
#[derive(Debug)]
pub struct Serving(InFlight);

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.0.requests.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An HTTP/2 connection's I/O stream that coalesces its writes (the module's comment).
#[derive(Debug)]
pub struct CoalescedWrites<T> {
    inner: T,
    in_flight: InFlight,
    /// The current burst of writes has had its turn; cleared by a completed flush.
    waited: bool,
    /// PING acknowledgements accepted from h2 and not yet written; they go after the
    /// next write's frames.
    held: Vec<u8>,
    /// When `held` must go out whatever else happens; armed when it fills.
    hold_until: Option<Pin<Box<Sleep>>>,
    /// `held` has had its second poll with no request in flight.
    held_turn: bool,
}

impl<T> CoalescedWrites<T> {
    pub fn new(inner: T, in_flight: InFlight) -> Self {
        CoalescedWrites {
            inner,
            in_flight,
            waited: false,
            held: Vec::new(),
            hold_until: None,
            held_turn: false,
        }
    }

    /// `Pending` once per burst of writes, with the driver asked to poll again after
    /// the tasks already queued, if another response may be about to join it (the
    /// streams run in the connection's task have had their turn).
    fn wait_one_turn(&mut self) -> Poll<()> {
        if self.waited || !self.in_flight.any_elsewhere() {
            return Poll::Ready(());
        }
        self.waited = true;
        self.in_flight.ask_yield();
        Poll::Pending
    }

    /// Takes `bufs` into `held` if they are nothing but PING acknowledgements and fit.
    fn hold_ping_acks(&mut self, bufs: &[io::IoSlice<'_>]) -> Hold {
        let mut non_empty = bufs.iter().filter(|b| !b.is_empty());
        let (Some(only), None) = (non_empty.next(), non_empty.next()) else {
            return Hold::NotAcks;
        };
        if !is_ping_acks(only) {
            return Hold::NotAcks;
        }
        if self.held.len() + only.len() > HELD_BYTES_MAX {
            return Hold::Full;
        }
        if self.held.is_empty() {
            let deadline = Instant::now() + PING_ACK_HOLD;
            match &mut self.hold_until {
                Some(sleep) => sleep.as_mut().reset(deadline),
                None => self.hold_until = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
            self.held_turn = false;
        }
        self.held.extend_from_slice(only);
        Hold::Taken(only.len())
    }

    /// Whether the first of `held` is partly written (it then goes before anything
    /// else): `held` takes whole frames and is written from its front.
    fn held_cut(&self) -> bool {
        !self.held.len().is_multiple_of(PING_ACK_LEN)
    }

    /// Whether `held` waits longer (the connection is polled again when it may not any
    /// more): while requests are in flight, until its time is up; with none, until the
    /// connection has been polled once more, for the request that came with the PING (h2
    /// flushes the acknowledgement before hyper takes the request and calls its handler).
    fn keep_holding(&mut self, cx: &mut Context<'_>) -> bool {
        if self.in_flight.any() {
            return self
                .hold_until
                .as_mut()
                .is_some_and(|sleep| sleep.as_mut().poll(cx).is_pending());
        }
        if self.held_turn {
            return false;
        }
        self.held_turn = true;
        self.in_flight.ask_repoll();
        true
    }
}

impl<T: AsyncWrite + Unpin> CoalescedWrites<T> {
    /// Writes `bufs` and what is held in one vectored write, the held acknowledgements
    /// after `bufs` (the module's comment says why); the count is of `bufs`' bytes, as
    /// `poll_write_vectored`'s. An acknowledgement partly written is finished first.
    fn write_with_held(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // h2 hands a vectored stream all it has buffered, whole frames in one or two
        // slices, so `bufs` ends on a frame's end; a stream that is not vectored gets a
        // slice at a time, which may end inside a DATA frame: there the acknowledgements go
        // first, alone (they were held from a write of their own, on a frame boundary).
        if self.held_cut() || !self.inner.is_write_vectored() {
            ready!(self.write_held(cx))?;
        }
        if self.held.is_empty() || bufs.len() >= MAX_SLICES {
            return Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        }
        let mut slices = [io::IoSlice::new(&[]); MAX_SLICES];
        slices[..bufs.len()].copy_from_slice(bufs);
        slices[bufs.len()] = io::IoSlice::new(&self.held);
        let written =
            ready!(Pin::new(&mut self.inner).poll_write_vectored(cx, &slices[..=bufs.len()]))?;
        let of_bufs = bufs.iter().map(|b| b.len()).sum::<usize>().min(written);
        let of_held = written - of_bufs;
        self.held.drain(..of_held);
        Poll::Ready(Ok(of_bufs))
    }

    /// Writes everything held, alone.
    fn write_held(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.held.is_empty() {
            let written = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.held))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.held.drain(..written);
        }
        Poll::Ready(Ok(()))
    }
}

/// What [`CoalescedWrites::hold_ping_acks`] made of a write.
enum Hold {
    /// Held; the count of bytes taken.
    Taken(usize),
    /// Acknowledgements that would pass [`HELD_BYTES_MAX`].
    Full,
    NotAcks,
}

/// Whether `bytes` is one or more whole PING acknowledgement frames.
fn is_ping_acks(bytes: &[u8]) -> bool {
    !bytes.is_empty()
        && bytes.len().is_multiple_of(PING_ACK_LEN)
        && bytes.chunks_exact(PING_ACK_LEN).all(|frame| frame.starts_with(&PING_ACK_HEADER))
}

impl<T: AsyncRead + Unpin> AsyncRead for CoalescedWrites<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for CoalescedWrites<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match this.hold_ping_acks(bufs) {
            Hold::Taken(taken) => return Poll::Ready(Ok(taken)),
            // A flood: the held acknowledgements go out first, in the order they came.
            Hold::Full => ready!(this.write_held(cx))?,
            Hold::NotAcks => {}
        }
        ready!(this.wait_one_turn());
        this.write_with_held(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.held.is_empty() {
            // Part of a frame on the wire stalls the client's reader: it is never held.
            if !this.held_cut() && this.keep_holding(cx) {
                return Poll::Pending;
            }
            ready!(this.write_held(cx))?;
        }
        let flushed = ready!(Pin::new(&mut this.inner).poll_flush(cx));
        this.waited = false;
        Poll::Ready(flushed)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.write_held(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::task::{Wake, Waker};

    use super::*;

    /// Records each write it is given (vectored writes as one) and takes every byte, or
    /// at most `accepts` bytes of each write once that is set (a full socket buffer).
    #[derive(Debug, Default)]
    struct Recorder {
        writes: Vec<Vec<u8>>,
        accepts: Option<usize>,
        not_vectored: bool,
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.poll_write_vectored(cx, &[io::IoSlice::new(buf)])
        }

        fn poll_write_vectored(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[io::IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            let mut write: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            write.truncate(this.accepts.unwrap_or(usize::MAX));
            let len = write.len();
            this.writes.push(write);
            Poll::Ready(Ok(len))
        }

        fn is_write_vectored(&self) -> bool {
            !self.not_vectored
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// Counts its wake-ups.
    #[derive(Debug, Default)]
    pub(crate) struct Wakes(pub(crate) AtomicUsize);

    impl Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    struct Harness {
        stream: CoalescedWrites<Recorder>,
        in_flight: InFlight,
        wakes: Arc<Wakes>,
        waker: Waker,
    }

    impl Harness {
        fn new() -> Harness {
            let in_flight = InFlight::default();
            let wakes = Arc::new(Wakes::default());
            let waker = Waker::from(wakes.clone());
            let stream = CoalescedWrites::new(Recorder::default(), in_flight.clone());
            Harness { stream, in_flight, wakes, waker }
        }

        fn write(&mut self, bytes: &[u8]) -> Poll<io::Result<usize>> {
            let mut cx = Context::from_waker(&self.waker);
            Pin::new(&mut self.stream).poll_write(&mut cx, bytes)
        }

        fn flush(&mut self) -> Poll<io::Result<()>> {
            let mut cx = Context::from_waker(&self.waker);
            Pin::new(&mut self.stream).poll_flush(&mut cx)
        }

        fn written(&self) -> &[Vec<u8>] {
            &self.stream.inner.writes
        }

        fn wakes(&self) -> usize {
            self.wakes.0.load(Ordering::Relaxed)
        }

        fn asked_to_repoll(&self) -> bool {
            self.in_flight.take_repoll()
        }
    }

    fn ping_ack(data: u8) -> Vec<u8> {
        let mut frame = PING_ACK_HEADER.to_vec();
        frame.extend([data; 8]);
        frame
    }

    const RESPONSE: &[u8] = b"a response's HEADERS and DATA";

    #[test]
    fn ping_acknowledgements_are_told_from_other_frames() {
        assert!(is_ping_acks(&ping_ack(1)));
        assert!(is_ping_acks(&[ping_ack(1), ping_ack(2)].concat()));
        let ping = [0, 0, 8, 6, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8];
        assert!(!is_ping_acks(&ping), "a PING that is not an acknowledgement");
        assert!(!is_ping_acks(&ping_ack(1)[..16]), "part of a frame");
        assert!(!is_ping_acks(&[ping_ack(1), RESPONSE.to_vec()].concat()));
        assert!(!is_ping_acks(&[]));
    }

    #[test]
    fn a_connection_serving_nothing_else_writes_at_once() {
        let mut h = Harness::new();
        let _serving = h.in_flight.enter();
        drop(_serving);
        assert!(matches!(h.write(RESPONSE), Poll::Ready(Ok(n)) if n == RESPONSE.len()));
        assert!(h.flush().is_ready());
        assert_eq!(h.written(), [RESPONSE.to_vec()]);
        assert!(!h.in_flight.take_yield());
    }

    #[test]
    fn a_write_waits_one_turn_while_other_requests_are_in_flight() {
        let mut h = Harness::new();
        let _serving = h.in_flight.enter();
        assert!(h.write(RESPONSE).is_pending());
        assert!(h.in_flight.take_yield(), "to come back after the others");
        assert!(h.written().is_empty());
        assert!(h.write(RESPONSE).is_ready(), "one turn only");
        assert!(h.write(b"more of the same burst").is_ready());
        assert!(h.flush().is_ready());
        assert_eq!(h.written().len(), 2);
        assert!(h.write(RESPONSE).is_pending(), "the next burst waits again");
        assert!(h.in_flight.take_yield());
    }

    #[test]
    fn a_write_does_not_wait_for_the_streams_of_its_own_task() {
        let mut h = Harness::new();
        let _serving = h.in_flight.enter();
        h.in_flight.set_local(1);
        assert!(h.write(RESPONSE).is_ready(), "they were polled before the write");
        assert!(!h.in_flight.take_yield());
        let _elsewhere = h.in_flight.enter();
        assert!(h.flush().is_ready());
        assert!(h.write(RESPONSE).is_pending(), "one in another task");
    }

    #[tokio::test(start_paused = true)]
    async fn a_ping_acknowledgement_leaves_with_the_response() {
        let mut h = Harness::new();
        let serving = h.in_flight.enter();
        assert!(matches!(h.write(&ping_ack(7)), Poll::Ready(Ok(17))));
        assert!(h.flush().is_pending(), "held while the request is in flight");
        assert!(h.written().is_empty());
        drop(serving);
        assert!(h.write(RESPONSE).is_ready());
        assert_eq!(
            h.written(),
            [[RESPONSE.to_vec(), ping_ack(7)].concat()],
            "one write, the acknowledgement after the response"
        );
        assert!(h.flush().is_ready());
    }

    #[tokio::test(start_paused = true)]
    async fn an_acknowledgement_cut_by_a_short_write_is_finished_before_the_next_frames() {
        let mut h = Harness::new();
        let serving = h.in_flight.enter();
        assert!(h.write(&ping_ack(7)).is_ready());
        drop(serving);
        h.stream.inner.accepts = Some(RESPONSE.len() + 5);
        assert!(
            matches!(h.write(RESPONSE), Poll::Ready(Ok(n)) if n == RESPONSE.len()),
            "the response's bytes are counted, not the acknowledgement's"
        );
        h.stream.inner.accepts = None;
        assert!(h.write(b"the next response").is_ready());
        assert_eq!(
            h.written().concat(),
            [RESPONSE, &ping_ack(7), b"the next response"].concat(),
            "no frame is split by another"
        );
        assert_eq!(h.written()[1], ping_ack(7)[5..], "its rest first, alone");
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_that_is_not_vectored_gets_the_acknowledgement_first() {
        let mut h = Harness::new();
        h.stream.inner.not_vectored = true;
        let serving = h.in_flight.enter();
        assert!(h.write(&ping_ack(7)).is_ready());
        drop(serving);
        let head_of_a_data_frame = &RESPONSE[..9];
        assert!(h.write(head_of_a_data_frame).is_ready());
        assert_eq!(
            h.written(),
            [ping_ack(7), head_of_a_data_frame.to_vec()],
            "nothing after a slice that may end inside a frame"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_cut_acknowledgement_is_finished_at_the_flush() {
        let mut h = Harness::new();
        let serving = h.in_flight.enter();
        h.in_flight.set_local(1);
        assert!(h.write(&ping_ack(7)).is_ready());
        h.stream.inner.accepts = Some(RESPONSE.len() + 5);
        assert!(h.write(RESPONSE).is_ready());
        h.stream.inner.accepts = None;
        assert!(h.flush().is_ready(), "not held, though a request is in flight");
        assert_eq!(h.written().concat(), [RESPONSE, &ping_ack(7)].concat());
        drop(serving);
    }

    #[tokio::test(start_paused = true)]
    async fn a_held_ping_acknowledgement_leaves_when_its_time_is_up() {
        let mut h = Harness::new();
        let _serving = h.in_flight.enter();
        assert!(h.write(&ping_ack(1)).is_ready());
        assert!(h.flush().is_pending());
        tokio::time::advance(PING_ACK_HOLD / 2).await;
        assert!(h.write(&ping_ack(2)).is_ready());
        assert!(h.flush().is_pending(), "a second acknowledgement does not move the deadline");
        tokio::time::advance(PING_ACK_HOLD / 2).await;
        assert!(h.wakes() > 0, "the timer wakes the connection");
        assert!(h.flush().is_ready());
        assert_eq!(h.written(), [[ping_ack(1), ping_ack(2)].concat()]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_flood_of_pings_is_acknowledged_as_it_comes() {
        let mut h = Harness::new();
        let _serving = h.in_flight.enter();
        let held = HELD_BYTES_MAX / PING_ACK_LEN;
        for _ in 0..held {
            assert!(h.write(&ping_ack(1)).is_ready());
        }
        assert!(h.written().is_empty(), "up to the bound, held");
        assert!(h.write(&ping_ack(2)).is_pending(), "past it, written as any other write");
        assert_eq!(h.written(), [ping_ack(1).repeat(held)], "the held ones first");
        assert!(h.write(&ping_ack(2)).is_ready(), "and the next is held afresh");
        assert_eq!(h.written().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn with_no_request_in_flight_a_ping_acknowledgement_waits_one_poll() {
        let mut h = Harness::new();
        assert!(h.write(&ping_ack(1)).is_ready());
        assert!(h.flush().is_pending(), "a request may have come with the PING");
        assert!(h.asked_to_repoll());
        assert_eq!(h.wakes(), 0, "polled again by its driver, not woken");
        assert!(h.flush().is_ready(), "no request came");
        assert_eq!(h.written(), [ping_ack(1)]);
        assert!(!h.asked_to_repoll());
    }
}
