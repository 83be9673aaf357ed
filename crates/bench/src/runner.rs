//! Runs `total` requests over a fixed set of clients (one task each, so at most
//! `clients` requests are in flight and nothing queues unboundedly), timing every
//! request into a per-client histogram.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Mutex;
use tokio::time::{Interval, MissedTickBehavior};

use crate::error::BenchError;
use crate::histogram::Histogram;
use crate::progress::Progress;
use crate::report::{LatencyLog, Report, Sample};

/// One client's request: `seq` is the request's number in the run (0..total).
pub trait Op: Send + 'static {
    /// The RPC this op sends, for error messages.
    const RPC: &'static str;
    fn call(&mut self, seq: u64) -> impl Future<Output = Result<(), tonic::Status>> + Send;
}

/// How requests are handed to clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Whichever client is free takes the next request (like etcd's benchmark).
    Shared,
    /// Client `i` of `n` sends requests `i, i+n, i+2n, ...`: exact per-client counts.
    Strided,
}

#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub total: u64,
    pub schedule: Schedule,
    /// Requests per second over all clients; `None`: as fast as possible.
    pub rate: Option<u64>,
    pub progress: bool,
    /// Stop taking new requests after this long.
    pub max_duration: Option<Duration>,
    /// Keep every request's send time and latency (`--latency-log`).
    pub latency_log: bool,
}

/// The report, and the clients back (their streams may still be needed).
pub struct Finished<O> {
    pub report: Report,
    pub ops: Vec<O>,
}

struct Shared {
    next: AtomicU64,
    done: Arc<AtomicU64>,
    /// Set when the server answers Unimplemented: no point in going on.
    abort: AtomicBool,
    pacer: Option<Mutex<Interval>>,
    deadline: Option<Instant>,
    start: Instant,
}

struct ClientResult<O> {
    op: O,
    latency: Histogram,
    errors: BTreeMap<String, u64>,
    unimplemented: Option<tonic::Status>,
    samples: Vec<Sample>,
}

async fn client<O: Op>(
    mut op: O,
    index: u64,
    clients: u64,
    plan: Plan,
    shared: Arc<Shared>,
) -> ClientResult<O> {
    let mut latency = Histogram::default();
    let mut errors = BTreeMap::new();
    let mut unimplemented = None;
    let mut samples = Vec::new();
    for round in 0.. {
        let seq = match plan.schedule {
            Schedule::Shared => shared.next.fetch_add(1, Ordering::Relaxed),
            Schedule::Strided => index + round * clients,
        };
        let late = shared.deadline.is_some_and(|d| Instant::now() >= d);
        if seq >= plan.total || late || shared.abort.load(Ordering::Relaxed) {
            break;
        }
        if let Some(pacer) = &shared.pacer {
            pacer.lock().await.tick().await;
        }
        let start = Instant::now();
        let result = op.call(seq).await;
        let took = start.elapsed().as_nanos() as u64;
        if plan.latency_log {
            let sent = start.duration_since(shared.start).as_nanos() as u64;
            samples.push(Sample { sent_ns: sent, latency_ns: took, ok: result.is_ok() });
        }
        match result {
            Ok(()) => latency.record(took),
            Err(status) if status.code() == tonic::Code::Unimplemented => {
                shared.abort.store(true, Ordering::Relaxed);
                unimplemented = Some(status);
                break;
            }
            Err(status) => {
                let key = format!("{:?}: {}", status.code(), status.message());
                *errors.entry(key).or_default() += 1;
            }
        }
        shared.done.fetch_add(1, Ordering::Relaxed);
    }
    ClientResult { op, latency, errors, unimplemented, samples }
}

/// Runs `plan.total` requests over `ops` (one task per op).
pub async fn run<O: Op>(name: &str, ops: Vec<O>, plan: Plan) -> Result<Finished<O>, BenchError> {
    let start = Instant::now();
    let start_unix = SystemTime::now();
    let clients = ops.len() as u64;
    if clients == 0 {
        return Err(BenchError::Usage("no clients".into()));
    }
    let pacer = plan.rate.filter(|&r| r > 0).map(|rate| {
        let mut interval = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Mutex::new(interval)
    });
    let shared = Arc::new(Shared {
        next: AtomicU64::new(0),
        done: Arc::new(AtomicU64::new(0)),
        abort: AtomicBool::new(false),
        pacer,
        deadline: plan.max_duration.map(|d| start + d),
        start,
    });
    let progress = Progress::start(plan.progress, shared.done.clone(), plan.total);
    let tasks: Vec<_> = ops
        .into_iter()
        .enumerate()
        .map(|(i, op)| tokio::spawn(client(op, i as u64, clients, plan, shared.clone())))
        .collect();
    let mut report = Report { name: name.to_string(), ..Report::default() };
    let mut ops = Vec::with_capacity(tasks.len());
    let mut unimplemented = None;
    let mut samples = Vec::new();
    for task in tasks {
        let mut r = task.await.expect("bench client task panicked");
        samples.append(&mut r.samples);
        report.latency.merge(&r.latency);
        for (message, count) in r.errors {
            *report.errors.entry(message).or_default() += count;
        }
        unimplemented = unimplemented.or(r.unimplemented);
        ops.push(r.op);
    }
    report.elapsed = start.elapsed();
    if plan.latency_log {
        samples.sort_unstable_by_key(|s| s.sent_ns);
        report.log = Some(LatencyLog { start: start_unix, samples });
    }
    drop(progress);
    match unimplemented {
        Some(status) => Err(BenchError::rpc(O::RPC, &status)),
        None => Ok(Finished { report, ops }),
    }
}
