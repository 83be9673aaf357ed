//! watch, watch-latency and watch-fanout: watchers are created on streams (creation
//! latency is measured), then one client puts to the watched keys, at `--put-rate` or
//! (watch-fanout) each put once every watcher has the previous one; every put carries
//! its number in the value's first 8 bytes, so each watcher measures the time from the
//! put's send to the event's arrival.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use oxetcd_api::etcdserverpb::{
    PutRequest, WatchCreateRequest, WatchRequest, WatchResponse, kv_client::KvClient,
    watch_client::WatchClient, watch_request,
};
use tokio::sync::watch as signal;
use tonic::Status;
use tonic::transport::Channel;

use super::Ctx;
use super::stream::Bidi;
use crate::args::{KeyValueArgs, WatchArgs};
use crate::client::Token;
use crate::error::BenchError;
use crate::histogram::Histogram;
use crate::keys::KeyValues;
use crate::report::Report;
use crate::runner::{self, Op, Plan, Schedule};

/// How long to wait for the last events after the last put.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

type WatchStream = Bidi<WatchRequest, WatchResponse>;

/// Creates watchers on one stream, opening it with the first.
struct CreateOp {
    watch: WatchClient<Channel>,
    token: Token,
    keys: KeyValues,
    stream: Option<WatchStream>,
}

impl Op for CreateOp {
    const RPC: &'static str = "Watch.Watch";

    async fn call(&mut self, seq: u64) -> Result<(), Status> {
        let req = WatchRequest {
            request_union: Some(watch_request::RequestUnion::CreateRequest(WatchCreateRequest {
                key: self.keys.key(seq),
                ..WatchCreateRequest::default()
            })),
        };
        let stream = match &mut self.stream {
            Some(stream) => {
                stream.send(req).await?;
                stream
            }
            None => {
                let mut watch = self.watch.clone();
                let token = &self.token;
                let opened =
                    Bidi::open(req, |r| async move { watch.watch(token.request(r)).await }).await?;
                self.stream.insert(opened)
            }
        };
        loop {
            let resp = stream.recv().await?;
            if resp.canceled {
                return Err(Status::aborted(resp.cancel_reason));
            }
            if resp.created {
                return Ok(());
            }
        }
    }
}

/// When each put was sent, by put number (nanoseconds since `base`, plus one;
/// zero: not sent yet).
struct Stamps {
    base: Instant,
    sent: Vec<AtomicU64>,
}

impl Stamps {
    fn new(puts: u64) -> Self {
        Self { base: Instant::now(), sent: (0..puts).map(|_| AtomicU64::new(0)).collect() }
    }

    fn now(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64 + 1
    }

    fn stamp(&self, seq: u64) {
        self.sent[seq as usize].store(self.now(), Ordering::Relaxed);
    }

    /// Time since the put whose number starts `value` was sent.
    fn latency(&self, value: &[u8]) -> Option<u64> {
        let seq = u64::from_be_bytes(value.get(..8)?.try_into().ok()?);
        let sent = self.sent.get(seq as usize)?.load(Ordering::Relaxed);
        (sent > 0).then(|| self.now().saturating_sub(sent))
    }
}

struct StampedPutOp {
    kv: KvClient<Channel>,
    token: Token,
    keys: KeyValues,
    stamps: Arc<Stamps>,
}

impl Op for StampedPutOp {
    const RPC: &'static str = "KV.Put";

    async fn call(&mut self, seq: u64) -> Result<(), Status> {
        let filler = self.keys.value();
        let mut value = BytesMut::with_capacity(filler.len());
        value.put_u64(seq);
        value.put_slice(&filler[8..]);
        self.stamps.stamp(seq);
        let req =
            PutRequest { key: self.keys.key(seq), value: value.freeze(), ..PutRequest::default() };
        self.kv.put(self.token.request(req)).await.map(drop)
    }
}

/// How long one put of watch-fanout may take to reach every watcher.
const FANOUT_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a watch-fanout put checks whether every watcher has it.
const FANOUT_POLL: Duration = Duration::from_millis(1);

/// A put that returns once every watcher received it: `per_put` events more than
/// before the run's first put.
struct FannedOutPutOp {
    put: StampedPutOp,
    received: Arc<AtomicU64>,
    per_put: u64,
}

impl Op for FannedOutPutOp {
    const RPC: &'static str = "KV.Put";

    async fn call(&mut self, seq: u64) -> Result<(), Status> {
        self.put.call(seq).await?;
        let target = (seq + 1) * self.per_put;
        let deadline = Instant::now() + FANOUT_TIMEOUT;
        while self.received.load(Ordering::Relaxed) < target {
            if Instant::now() > deadline {
                return Err(Status::deadline_exceeded("a put did not reach every watcher"));
            }
            tokio::time::sleep(FANOUT_POLL).await;
        }
        Ok(())
    }
}

/// How the puts of a watch workload are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Puts {
    /// At `--put-rate` per second, whatever the watchers do.
    Paced,
    /// Each once every watcher has the previous one.
    OneAtATime,
}

/// Reads events until `expect` arrived, the stream ends, or `stop`.
async fn read_events(
    mut stream: WatchStream,
    expect: u64,
    received: Arc<AtomicU64>,
    stamps: Arc<Stamps>,
    mut stop: signal::Receiver<bool>,
) -> Histogram {
    let mut latency = Histogram::default();
    let mut count = 0;
    while count < expect {
        let resp = tokio::select! {
            _ = stop.changed() => break,
            resp = stream.recv() => resp,
        };
        let Ok(resp) = resp else { break };
        for kv in resp.events.iter().filter_map(|e| e.kv.as_ref()) {
            if let Some(nanos) = stamps.latency(&kv.value) {
                latency.record(nanos);
            }
        }
        count += resp.events.len() as u64;
        received.fetch_add(resp.events.len() as u64, Ordering::Relaxed);
    }
    latency
}

/// Puts numbered `0..puts` land on keys `n % space`: how many on key `k`.
fn puts_on(k: u64, puts: u64, space: u64) -> u64 {
    puts / space + u64::from(k < puts % space)
}

/// Creation, put and event reports of one run.
struct Phases {
    create: Report,
    put: Report,
    events: Report,
}

/// `streams` streams with `per_stream` watchers each; watcher `w` (stream
/// `w % streams`) watches key `w % key-space-size`.
async fn run(
    ctx: &Ctx,
    args: &WatchArgs,
    streams: u64,
    per_stream: u64,
    puts: Puts,
) -> Result<Phases, BenchError> {
    if args.kv.val_size < 8 {
        return Err(BenchError::Usage(
            "--val-size must be at least 8 (puts carry their number)".into(),
        ));
    }
    let keys = KeyValues::new(&args.kv)?;
    let creators = (0..streams)
        .map(|s| {
            let (channel, token) = ctx.channel(s);
            CreateOp { watch: WatchClient::new(channel), token, keys: keys.clone(), stream: None }
        })
        .collect();
    let plan = Plan {
        total: streams * per_stream,
        schedule: Schedule::Strided,
        rate: None,
        progress: ctx.progress,
        // Every watcher must exist before the puts start.
        max_duration: None,
        latency_log: false,
    };
    let created = runner::run("watch-create", creators, plan).await?;
    if created.report.failed() > 0 {
        return Err(BenchError::Setup(format!(
            "creating watchers failed: {:?}",
            created.report.errors
        )));
    }

    let stamps = Arc::new(Stamps::new(args.put_total));
    let received = Arc::new(AtomicU64::new(0));
    let (stop, stopped) = signal::channel(false);
    let mut expected = 0;
    let mut readers = Vec::new();
    for (s, op) in created.ops.into_iter().enumerate() {
        let stream = op.stream.expect("every stream created its watchers");
        let expect: u64 = (0..per_stream)
            .map(|i| puts_on((s as u64 + i * streams) % keys.space(), args.put_total, keys.space()))
            .sum();
        expected += expect;
        readers.push(tokio::spawn(read_events(
            stream,
            expect,
            received.clone(),
            stamps.clone(),
            stopped.clone(),
        )));
    }

    let start = Instant::now();
    let (channel, token) = ctx.channel(0);
    let putter = StampedPutOp { kv: KvClient::new(channel), token, keys, stamps };
    let plan = Plan {
        total: args.put_total,
        schedule: Schedule::Shared,
        rate: Some(args.put_rate),
        ..ctx.plan()
    };
    let put = match puts {
        Puts::Paced => runner::run("watch-put", vec![putter], plan).await?.report,
        Puts::OneAtATime => {
            let per_put = streams * per_stream;
            let op = FannedOutPutOp { put: putter, received: received.clone(), per_put };
            let plan = Plan { rate: None, ..plan };
            runner::run("watch-fanout-put", vec![op], plan).await?.report
        }
    };
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    while received.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = stop.send(true);
    let mut events = Report { name: "watch-events".into(), ..Report::default() };
    for reader in readers {
        events.latency.merge(&reader.await.expect("watch reader panicked"));
    }
    events.elapsed = start.elapsed();
    let got = received.load(Ordering::Relaxed);
    events.extra.insert("events_expected", expected);
    events.extra.insert("events_received", got);
    if got < expected {
        events.errors.insert("events not received".into(), expected - got);
    }
    Ok(Phases { create: created.report, put, events })
}

/// Main report: watcher creation; then the puts and the event latencies.
pub async fn watch(
    ctx: &Ctx,
    args: &WatchArgs,
    streams: u64,
    per_stream: u64,
) -> Result<Report, BenchError> {
    let Phases { mut create, put, events } =
        run(ctx, args, streams, per_stream, Puts::Paced).await?;
    create.phases = vec![put, events];
    Ok(create)
}

/// Main report: put-to-event latency over `watchers` streams of one watcher each.
pub async fn watch_latency(
    ctx: &Ctx,
    args: &WatchArgs,
    watchers: u64,
) -> Result<Report, BenchError> {
    let Phases { create, put, mut events } = run(ctx, args, watchers, 1, Puts::Paced).await?;
    events.phases = vec![put, create];
    Ok(events)
}

/// Main report: the latency of every delivery of `put_total` puts, one at a time, to
/// `watchers` watchers of one key over `streams` streams; then the puts (each timed
/// until its last delivery) and the watcher creation.
pub async fn watch_fanout(
    ctx: &Ctx,
    watchers: u64,
    streams: u64,
    put_total: u64,
    val_size: u64,
) -> Result<Report, BenchError> {
    if !watchers.is_multiple_of(streams) {
        return Err(BenchError::Usage("--watchers must be a multiple of --streams".into()));
    }
    let kv = KeyValueArgs { key_size: 8, val_size, key_space_size: 1, key_offset: 0 };
    let args = WatchArgs { put_total, put_rate: 0, kv };
    let Phases { create, put, mut events } =
        run(ctx, &args, streams, watchers / streams, Puts::OneAtATime).await?;
    events.name = "watch-fanout".into();
    events.phases = vec![put, create];
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn puts_spread_over_the_key_space() {
        assert_eq!((0..3).map(|k| puts_on(k, 10, 3)).collect::<Vec<_>>(), [4, 3, 3]);
        assert_eq!(puts_on(0, 10, 1), 10);
        assert_eq!(puts_on(4, 3, 5), 0);
    }

    #[test]
    fn stamps_measure_from_send() {
        let stamps = Stamps::new(2);
        assert_eq!(stamps.latency(&1u64.to_be_bytes()), None, "not sent yet");
        stamps.stamp(1);
        assert!(stamps.latency(&1u64.to_be_bytes()).is_some());
        assert_eq!(stamps.latency(&7u64.to_be_bytes()), None, "not a put of this run");
        assert_eq!(stamps.latency(b"short"), None);
    }
}
