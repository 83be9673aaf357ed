//! `check perf` and `check datascale`: etcdctl 3.4's cluster checks. `perf` writes at a
//! fixed rate for a while and judges the throughput and latencies; `datascale` writes a
//! number of keys and reports how much the first endpoint's resident memory grew. Both
//! delete their keys after (and compact and defragment when asked).
//!
//! The workloads, thresholds and printed lines are etcdctl 3.4's
//! (`etcdctl/ctlv3/command/check.go`). Unlike etcdctl, latencies are summed as they come
//! (count, mean, variance, maximum) instead of kept one by one, so memory stays bounded
//! whatever the load; the figures judged are the same.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use oxetcd_client::{Client, DeleteOptions, GetOptions};
use oxetcd_utl::progress::Progress;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::error::{CtlError, CtlResult, describe, exit};
use crate::global::Ctx;
use crate::output;

/// A `check perf` workload: writes per second, concurrent writers, and for how long
/// (etcdctl 3.4's `checkPerfCfgMap`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PerfLoad {
    pub writes_per_second: u32,
    pub clients: usize,
    pub duration: Duration,
}

/// A `check datascale` workload: how many keys, by how many concurrent writers
/// (etcdctl 3.4's `checkDatascaleCfgMap`; every key and value together take
/// [`DATASCALE_KV_SIZE`] bytes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DatascaleLoad {
    pub keys: u64,
    pub clients: usize,
}

const PERF_SECONDS: Duration = Duration::from_secs(60);
const PERF_LOADS: [(&str, PerfLoad); 4] = [
    ("s", PerfLoad { writes_per_second: 150, clients: 50, duration: PERF_SECONDS }),
    ("m", PerfLoad { writes_per_second: 1000, clients: 200, duration: PERF_SECONDS }),
    ("l", PerfLoad { writes_per_second: 8000, clients: 500, duration: PERF_SECONDS }),
    ("xl", PerfLoad { writes_per_second: 15000, clients: 1000, duration: PERF_SECONDS }),
];
const DATASCALE_LOADS: [(&str, DatascaleLoad); 4] = [
    ("s", DatascaleLoad { keys: 10_000, clients: 50 }),
    ("m", DatascaleLoad { keys: 100_000, clients: 200 }),
    ("l", DatascaleLoad { keys: 1_000_000, clients: 500 }),
    // etcd: the upper bound, three versions of a million keys.
    ("xl", DatascaleLoad { keys: 3_000_000, clients: 1000 }),
];

/// `check perf`'s keys and values (etcdctl: 256-byte keys after the prefix, 1 KiB values).
const PERF_KEY_SIZE: usize = 256;
const PERF_VALUE_SIZE: usize = 1024;
/// `check datascale`'s: 512 and 512, the 1 KiB per key-value its banner names.
const DATASCALE_KEY_SIZE: usize = 512;
const DATASCALE_VALUE_SIZE: usize = 512;
const DATASCALE_KV_SIZE: usize = DATASCALE_KEY_SIZE + DATASCALE_VALUE_SIZE;

/// `check perf` passes when at least this share of the target rate was written
/// (etcdctl: a ratio above 0.9)…
const MIN_THROUGHPUT_RATIO: f64 = 0.9;
/// …no write took longer than this (etcdctl: 500 ms)…
const MAX_SLOWEST: Duration = Duration::from_millis(500);
/// …and latencies spread no wider than this standard deviation (etcdctl: 100 ms).
const MAX_STDDEV: Duration = Duration::from_millis(100);

/// The time limit of the final delete and of `--auto-compact`/`--auto-defrag`'s calls
/// (etcdctl: 30 s each).
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(30);

/// How many connections carry the writers' requests at most. etcdctl opens one per
/// writer (a thousand for `xl`); HTTP/2 multiplexes the writers over a few here, which
/// keeps this process and the server from spending on connections what the check does
/// not measure.
const MAX_CONNECTIONS: usize = 16;

/// How many distinct error messages are counted one by one; any further kinds are
/// counted together, so that a failing server cannot make the tally grow without bound.
const MAX_ERROR_KINDS: usize = 32;
const OTHER_ERRORS: &str = "(other errors)";

/// The workload `name` (or its long alias) stands for, among `loads`.
fn workload<T: Copy>(loads: &[(&str, T)], name: &str) -> CtlResult<T> {
    let short = match name {
        "small" => "s",
        "medium" => "m",
        "large" => "l",
        "xLarge" => "xl",
        other => other,
    };
    loads
        .iter()
        .find(|(n, _)| *n == short)
        .map(|(_, load)| *load)
        .ok_or_else(|| CtlError::new(exit::BAD_FEATURE, format!("unknown load option {name}")))
}

pub async fn perf(ctx: &Ctx) -> CtlResult {
    let load = workload(&PERF_LOADS, &ctx.flags.str("load"))?;
    let (lines, passed) = run_perf(ctx, load).await?;
    output::stdout(&lines.concat());
    if passed { Ok(()) } else { Err(CtlError::silent(exit::ERROR)) }
}

pub async fn datascale(ctx: &Ctx) -> CtlResult {
    let load = workload(&DATASCALE_LOADS, &ctx.flags.str("load"))?;
    let verdict = run_datascale(ctx, load).await?;
    output::stdout(&verdict);
    Ok(())
}

/// Runs `load` and returns the verdict lines (the `PASS`/`FAIL` lines etcdctl prints
/// last) and whether the check passed. Compaction and defragmentation lines are
/// printed as they happen.
pub async fn run_perf(ctx: &Ctx, load: PerfLoad) -> CtlResult<(Vec<String>, bool)> {
    let prefix = ctx.flags.str("prefix");
    let writers = Writers::connect(ctx, load.clients).await?;
    ensure_empty(ctx, writers.first(), &prefix, Some(load.duration)).await?;
    let progress = Progress::on_tty_counting("check perf", "writes");
    let planned = u64::from(load.writes_per_second) * load.duration.as_secs();
    progress.start(planned);
    let keys = RandomKeys::new(&prefix, PERF_KEY_SIZE);
    let value = Bytes::from(vec![0u8; PERF_VALUE_SIZE]);
    let period = Duration::from_secs(1) / load.writes_per_second.max(1);
    let stats = writers
        .run(value, progress.clone(), move |requests| async move {
            let mut keys = keys;
            let mut schedule = WriteSchedule::new(period, load.duration);
            while schedule.wait_turn().await {
                if requests.send(keys.next_key()).await.is_err() {
                    break;
                }
            }
        })
        .await;
    progress.finish();
    clean_up(ctx, writers.first(), &prefix).await?;
    Ok(perf_verdict(&stats, load))
}

/// How far behind its schedule `check perf`'s writer may fall and still catch up with
/// writes in a row. etcdctl's limiter (Go's, burst 1) never catches up, but Go's timers
/// are exact; tokio's fire up to a millisecond late and the writers share two threads, so
/// without some catching up a loaded client would write below the rate it checks (about
/// 10% below at 150 writes/s). A stall longer than this (a server that stopped answering)
/// is not made up for.
const MAX_CATCH_UP: Duration = Duration::from_millis(100);

/// When each `check perf` write is due: one every `period` until `duration` has passed.
struct WriteSchedule {
    period: Duration,
    next: tokio::time::Instant,
    end: tokio::time::Instant,
}

impl WriteSchedule {
    fn new(period: Duration, duration: Duration) -> WriteSchedule {
        let now = tokio::time::Instant::now();
        WriteSchedule { period, next: now, end: now + duration }
    }

    /// Waits for the next write's turn; false once the check's time is over (as Go's
    /// limiter refuses a wait that would end after its deadline).
    async fn wait_turn(&mut self) -> bool {
        if self.next >= self.end {
            return false;
        }
        tokio::time::sleep_until(self.next).await;
        let now = tokio::time::Instant::now();
        let earliest = now.checked_sub(MAX_CATCH_UP).unwrap_or(now);
        self.next = (self.next + self.period).max(earliest);
        true
    }
}

/// etcdctl's judgement of a `check perf` run.
pub fn perf_verdict(stats: &LatencyStats, load: PerfLoad) -> (Vec<String>, bool) {
    let mut lines = error_lines(stats);
    let rate = stats.writes_per_second();
    // etcdctl prints the rate truncated, plus one.
    let shown_rate = rate as i64 + 1;
    let slowest = stats.slowest_seconds();
    let stddev = stats.stddev_seconds();
    // Each criterion: whether it is met, and its line either way.
    let criteria = [
        (
            rate / f64::from(load.writes_per_second) > MIN_THROUGHPUT_RATIO,
            format!("PASS: Throughput is {shown_rate} writes/s\n"),
            format!("FAIL: Throughput too low: {shown_rate} writes/s\n"),
        ),
        (
            slowest <= MAX_SLOWEST.as_secs_f64(),
            format!("PASS: Slowest request took {slowest:.6}s\n"),
            format!("Slowest request took too long: {slowest:.6}s\n"),
        ),
        (
            stddev <= MAX_STDDEV.as_secs_f64(),
            format!("PASS: Stddev is {stddev:.6}s\n"),
            format!("Stddev too high: {stddev:.6}s\n"),
        ),
    ];
    let mut passed = lines.is_empty();
    for (met, pass, fail) in criteria {
        lines.push(if met { pass } else { fail });
        passed &= met;
    }
    lines.push(if passed { "PASS\n" } else { "FAIL\n" }.to_string());
    (lines, passed)
}

/// etcdctl's lines about failed writes (none when every write succeeded).
fn error_lines(stats: &LatencyStats) -> Vec<String> {
    if stats.errors.is_empty() {
        return Vec::new();
    }
    let mut lines = vec!["FAIL: too many errors\n".to_string()];
    for (error, count) in &stats.errors {
        lines.push(format!("FAIL: ERROR({error}) -> {count}\n"));
    }
    lines
}

/// Runs `load` and returns the last line, the memory used, when it passed (the lines
/// before it are printed as they come; a failure is printed and returned as an error).
async fn run_datascale(ctx: &Ctx, load: DatascaleLoad) -> CtlResult<String> {
    let prefix = ctx.flags.str("prefix");
    let writers = Writers::connect(ctx, load.clients).await?;
    // etcdctl gives this read no time limit.
    ensure_empty(ctx, writers.first(), &prefix, None).await?;
    let metrics = MetricsSource {
        endpoint: ctx.global.endpoints.first().cloned().unwrap_or_default(),
        tls: ctx.client_options()?.tls_config(),
    };
    let Some(before) = metrics.resident_memory_bytes().await else {
        output::stdout(
            "FAIL: Could not read process_resident_memory_bytes before the put operations.\n",
        );
        return Err(CtlError::silent(exit::ERROR));
    };
    output::stdout(&format!(
        "Start data scale check for work load [{} key-value pairs, {DATASCALE_KV_SIZE} bytes per key-value, {} concurrent clients].\n",
        load.keys, load.clients
    ));
    let progress = Progress::on_tty_counting("check datascale", "keys");
    progress.start(load.keys);
    let keys = RandomKeys::new(&prefix, DATASCALE_KEY_SIZE);
    let value = Bytes::from(vec![0u8; DATASCALE_VALUE_SIZE]);
    let stats = writers
        .run(value, progress.clone(), move |requests| async move {
            let mut keys = keys;
            for _ in 0..load.keys {
                if requests.send(keys.next_key()).await.is_err() {
                    break;
                }
            }
        })
        .await;
    progress.finish();
    let Some(after) = metrics.resident_memory_bytes().await else {
        output::stdout(
            "FAIL: Could not read process_resident_memory_bytes after the put operations.\n",
        );
        return Err(CtlError::silent(exit::ERROR));
    };
    clean_up(ctx, writers.first(), &prefix).await?;
    let errors = error_lines(&stats);
    if !errors.is_empty() {
        output::stdout(&errors.concat());
        return Err(CtlError::silent(exit::ERROR));
    }
    const MIB: f64 = 1024.0 * 1024.0;
    Ok(format!("PASS: Approximate system memory used : {:.2} MB.\n", (after - before) / MIB))
}

/// etcdctl refuses to run on a prefix that already holds keys (its clean-up would delete
/// them).
async fn ensure_empty(
    ctx: &Ctx,
    client: &Client,
    prefix: &str,
    limit: Option<Duration>,
) -> CtlResult {
    let options = GetOptions::new().with_prefix().with_limit(1);
    let read = client.get(prefix, Some(options));
    let found = match limit {
        Some(limit) => ctx.logged(within(limit, read)).await,
        None => ctx.logged(read).await,
    }
    .map_err(|e| CtlError::client(exit::ERROR, &e))?;
    if !found.kvs.is_empty() {
        return Err(CtlError::new(
            exit::INVALID_INPUT,
            format!(
                "prefix {} has keys. Delete with etcdctl del --prefix {prefix} first",
                crate::go::quote(prefix)
            ),
        ));
    }
    Ok(())
}

/// Deletes the check's keys, then compacts and defragments if asked to.
async fn clean_up(ctx: &Ctx, client: &Client, prefix: &str) -> CtlResult {
    let failed = |e: oxetcd_client::Error| CtlError::client(exit::ERROR, &e);
    let delete = client.delete(prefix, Some(DeleteOptions::new().with_prefix()));
    let deleted = ctx.logged(within(CLEANUP_TIMEOUT, delete)).await.map_err(failed)?;
    if ctx.flags.bool("auto-compact") {
        let revision = deleted.header.map_or(0, |h| h.revision);
        output::stdout(&format!("Compacting with revision {revision}\n"));
        ctx.logged(within(CLEANUP_TIMEOUT, client.compact(revision, true)))
            .await
            .map_err(failed)?;
        output::stdout(&format!("Compacted with revision {revision}\n"));
    }
    if ctx.flags.bool("auto-defrag") {
        for endpoint in &ctx.global.endpoints {
            let quoted = crate::go::quote(endpoint);
            output::stdout(&format!("Defragmenting {quoted}\n"));
            let member = ctx.client_for(std::slice::from_ref(endpoint)).await?;
            let maintenance = member.maintenance();
            ctx.logged(within(CLEANUP_TIMEOUT, maintenance.defragment())).await.map_err(failed)?;
            output::stdout(&format!("Defragmented {quoted}\n"));
        }
    }
    Ok(())
}

/// `call`, or a timeout once `limit` has passed.
async fn within<T>(
    limit: Duration,
    call: impl std::future::Future<Output = Result<T, oxetcd_client::Error>>,
) -> Result<T, oxetcd_client::Error> {
    tokio::time::timeout(limit, call).await.unwrap_or(Err(oxetcd_client::Error::Timeout))
}

/// The writers of a check: a few connections, and as many concurrent writers over them
/// as the workload has clients.
struct Writers {
    connections: Vec<Client>,
    clients: usize,
}

impl Writers {
    async fn connect(ctx: &Ctx, clients: usize) -> CtlResult<Writers> {
        let options = ctx.client_options()?;
        let mut connections = Vec::new();
        for _ in 0..clients.clamp(1, MAX_CONNECTIONS) {
            connections.push(ctx.client_with(&ctx.global.endpoints, options.clone()).await?);
        }
        Ok(Writers { connections, clients: clients.max(1) })
    }

    fn first(&self) -> &Client {
        &self.connections[0]
    }

    /// Writes `value` under every key `produce` sends until it returns, and sums up how
    /// the writes went. The queue between them holds one key per writer, as etcdctl's.
    async fn run<P, F>(&self, value: Bytes, progress: Progress, produce: P) -> LatencyStats
    where
        P: FnOnce(mpsc::Sender<Bytes>) -> F,
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let (requests, queue) = mpsc::channel::<Bytes>(self.clients);
        let queue = Arc::new(tokio::sync::Mutex::new(queue));
        let stats = Arc::new(Mutex::new(LatencyStats::default()));
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for writer in 0..self.clients {
            let client = self.connections[writer % self.connections.len()].clone();
            let queue = Arc::clone(&queue);
            let stats = Arc::clone(&stats);
            let value = value.clone();
            let progress = progress.clone();
            tasks.spawn(async move {
                loop {
                    let Some(key) = queue.lock().await.recv().await else { break };
                    let start = Instant::now();
                    let result = client.put(key, value.clone(), None).await;
                    let took = start.elapsed();
                    progress.advance(1);
                    let mut stats = stats.lock().unwrap_or_else(|e| e.into_inner());
                    match result {
                        Ok(_) => stats.record(took),
                        Err(e) => stats.record_error(describe(&e)),
                    }
                }
            });
        }
        tokio::spawn(produce(requests));
        while tasks.join_next().await.is_some() {}
        let mut stats = std::mem::take(&mut *stats.lock().unwrap_or_else(|e| e.into_inner()));
        stats.total = started.elapsed();
        stats
    }
}

/// What a run of writes came to, summed as the writes finish (Welford's running mean and
/// variance), in constant memory.
#[derive(Debug, Clone, Default)]
pub struct LatencyStats {
    successes: u64,
    mean_seconds: f64,
    /// The sum of squared differences from the mean.
    squared_deviations: f64,
    slowest_seconds: f64,
    /// Failed writes by error message (at most [`MAX_ERROR_KINDS`] messages).
    pub errors: BTreeMap<String, u64>,
    /// From the first write queued to the last one answered.
    pub total: Duration,
}

impl LatencyStats {
    pub fn record(&mut self, took: Duration) {
        let seconds = took.as_secs_f64();
        self.successes += 1;
        let delta = seconds - self.mean_seconds;
        self.mean_seconds += delta / self.successes as f64;
        self.squared_deviations += delta * (seconds - self.mean_seconds);
        self.slowest_seconds = self.slowest_seconds.max(seconds);
    }

    pub fn record_error(&mut self, message: String) {
        let known = self.errors.contains_key(&message);
        let key = if known || self.errors.len() < MAX_ERROR_KINDS {
            message
        } else {
            OTHER_ERRORS.to_string()
        };
        *self.errors.entry(key).or_default() += 1;
    }

    /// Successful writes per second over the whole run (etcd's report: `RPS`).
    pub fn writes_per_second(&self) -> f64 {
        let seconds = self.total.as_secs_f64();
        if seconds == 0.0 { 0.0 } else { self.successes as f64 / seconds }
    }

    pub fn slowest_seconds(&self) -> f64 {
        self.slowest_seconds
    }

    /// The population standard deviation of the successful writes' latencies.
    pub fn stddev_seconds(&self) -> f64 {
        if self.successes == 0 {
            return 0.0;
        }
        (self.squared_deviations / self.successes as f64).sqrt()
    }
}

/// Keys under a prefix, each padded to a fixed size after it and starting with a random
/// number in Go's varint encoding, as etcdctl draws them (so that they land all over the
/// key space rather than in order).
struct RandomKeys {
    prefix: Vec<u8>,
    size: usize,
    state: u64,
}

impl RandomKeys {
    fn new(prefix: &str, size: usize) -> RandomKeys {
        let seed = std::collections::hash_map::RandomState::new().build_hasher().finish();
        RandomKeys { prefix: prefix.as_bytes().to_vec(), size, state: seed | 1 }
    }

    /// xorshift64*: random enough to spread keys, and no dependency for it.
    fn next_number(&mut self) -> u64 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn next_key(&mut self) -> Bytes {
        // A non-negative int63, as Go's rand.Int63n gives.
        let number = (self.next_number() >> 1) as i64;
        let mut suffix = vec![0u8; self.size];
        put_varint(&mut suffix, number);
        let mut key = self.prefix.clone();
        key.extend_from_slice(&suffix);
        Bytes::from(key)
    }
}

/// Go's `binary.PutVarint`: zig-zag, then 7 bits a byte, low first, into the start of
/// `buffer` (which must hold ten bytes).
fn put_varint(buffer: &mut [u8], number: i64) {
    let mut zigzag = ((number << 1) ^ (number >> 63)) as u64;
    let mut i = 0;
    while zigzag >= 0x80 && i + 1 < buffer.len() {
        buffer[i] = (zigzag as u8) | 0x80;
        zigzag >>= 7;
        i += 1;
    }
    if let Some(last) = buffer.get_mut(i) {
        *last = zigzag as u8;
    }
}

/// Where `check datascale` reads the server's memory: the first endpoint's `/metrics`,
/// over TLS with the client's settings for an `https://` endpoint.
struct MetricsSource {
    endpoint: String,
    tls: Option<Arc<rustls::ClientConfig>>,
}

/// How long reading `/metrics` may take, and how much of it is read (a page of a few
/// hundred metrics is tens of KiB; the limit keeps a wrong endpoint from filling memory).
const METRICS_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_METRICS_BYTES: u64 = 16 * 1024 * 1024;

impl MetricsSource {
    /// The `process_resident_memory_bytes` the server reports, or `None` after printing
    /// why not (etcdctl's lines, on stdout).
    async fn resident_memory_bytes(&self) -> Option<f64> {
        const METRIC: &str = "process_resident_memory_bytes";
        let body = match self.fetch().await {
            Ok(body) => body,
            Err(e) => {
                output::stdout(&format!("fetch error: {e}\n"));
                return None;
            }
        };
        let Some(value) = body.lines().find_map(|line| line.strip_prefix(METRIC)) else {
            output::stdout(&format!("could not find: {METRIC}\n"));
            return None;
        };
        match value.trim().parse::<f64>() {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                output::stdout(&format!("parse error: {e}\n"));
                None
            }
        }
    }

    /// The body of a `GET /metrics` answered with 200. HTTP/1.0, so that the server
    /// answers with the body as it is and closes.
    async fn fetch(&self) -> Result<String, String> {
        let (secure, host) = match self.endpoint.split_once("://") {
            Some(("https", rest)) => (true, rest),
            Some((_, rest)) => (false, rest),
            None => (false, self.endpoint.as_str()),
        };
        let host = host.trim_end_matches('/');
        let url = format!("{}://{host}/metrics", if secure { "https" } else { "http" });
        let failed = |e: &dyn std::fmt::Display| format!("Get {}: {e}", crate::go::quote(&url));
        let request = format!("GET /metrics HTTP/1.0\r\nHost: {host}\r\n\r\n");
        let fetch = async {
            let tcp = tokio::net::TcpStream::connect(host).await.map_err(|e| failed(&e))?;
            if !secure {
                return exchange(tcp, &request).await.map_err(|e| failed(&e));
            }
            let Some(tls) = &self.tls else {
                return Err(failed(
                    &"no TLS settings for an https endpoint (--cacert, or --insecure-skip-tls-verify)",
                ));
            };
            // The client's settings offer HTTP/2 only (gRPC); this request is HTTP/1.0.
            let mut config = (**tls).clone();
            config.alpn_protocols.clear();
            let bare = host.rsplit_once(':').map_or(host, |(name, _)| name);
            let name = rustls::pki_types::ServerName::try_from(
                bare.trim_start_matches('[').trim_end_matches(']').to_string(),
            )
            .map_err(|e| failed(&e))?;
            let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
                .connect(name, tcp)
                .await
                .map_err(|e| failed(&e))?;
            exchange(stream, &request).await.map_err(|e| failed(&e))
        };
        let answer = tokio::time::timeout(METRICS_TIMEOUT, fetch)
            .await
            .map_err(|_| failed(&"timed out"))??;
        let text = String::from_utf8_lossy(&answer);
        let (head, body) =
            text.split_once("\r\n\r\n").ok_or_else(|| format!("reading {url}: a cut answer"))?;
        let status = head.split(' ').nth(1).unwrap_or_default();
        if status != "200" {
            return Err(failed(&format!("status {status}")));
        }
        Ok(body.to_string())
    }
}

/// Sends `request` on `stream` and reads the whole answer (at most
/// [`MAX_METRICS_BYTES`]).
async fn exchange<S>(mut stream: S, request: &str) -> std::io::Result<Vec<u8>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    stream.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    stream.take(MAX_METRICS_BYTES).read_to_end(&mut answer).await?;
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::{COMMANDS, inherited, local};
    use oxetcd_tests::member::{TestCluster, TestMember};

    /// The context `args` give `command path` (as the command line would).
    fn ctx_for(path: &str, args: &[&str]) -> Ctx {
        let command = COMMANDS.iter().find(|c| c.path == path).expect("a command");
        let mut specs = local(command);
        specs.extend(inherited(command));
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        Ctx::new(command, crate::flags::parse(&specs, &args).expect("flags")).expect("context")
    }

    async fn keys_under(ctx: &Ctx, prefix: &str) -> i64 {
        let client = ctx.client().await.expect("client");
        let options = GetOptions::new().with_prefix().with_count_only();
        client.get(prefix, Some(options)).await.expect("count").count
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_short_perf_load_against_a_member_reads_as_etcdctls() {
        let member = TestMember::start(&[]).await;
        let endpoint = member.endpoint.as_str();
        let ctx = ctx_for(
            "check perf",
            &["--endpoints", endpoint, "--prefix", "/perf/", "--auto-compact", "--auto-defrag"],
        );
        let load = PerfLoad { writes_per_second: 40, clients: 4, duration: Duration::from_secs(3) };
        let (lines, passed) = run_perf(&ctx, load).await.expect("the check runs");
        // Latencies on a shared test machine are not the check's to judge here; the
        // throughput, the absence of errors and the lines' shape are.
        assert_eq!(lines.len(), 4, "{lines:?}");
        let rate: u32 = lines[0]
            .strip_prefix("PASS: Throughput is ")
            .and_then(|rest| rest.strip_suffix(" writes/s\n"))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{lines:?}"));
        assert!((30..=41).contains(&rate), "{lines:?}");
        assert!(
            lines[1].starts_with("PASS: Slowest request took ")
                || lines[1].starts_with("Slowest request took too long: "),
            "{lines:?}"
        );
        assert!(lines[1].ends_with("s\n") && lines[2].ends_with("s\n"), "{lines:?}");
        assert_eq!(lines[3], if passed { "PASS\n" } else { "FAIL\n" });
        assert_eq!(keys_under(&ctx, "/perf/").await, 0, "the check deletes its keys");
        member.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn checks_refuse_a_prefix_that_holds_keys() {
        let member = TestMember::start(&[]).await;
        let ctx = ctx_for("check perf", &["--endpoints", &member.endpoint]);
        let client = ctx.client().await.expect("client");
        client.put("/etcdctl-check-perf/x", "1", None).await.expect("put");
        let load = PerfLoad { writes_per_second: 10, clients: 1, duration: Duration::from_secs(1) };
        let refused = run_perf(&ctx, load).await.expect_err("refused");
        assert_eq!(
            refused,
            CtlError::new(
                exit::INVALID_INPUT,
                "prefix \"/etcdctl-check-perf/\" has keys. Delete with etcdctl del --prefix /etcdctl-check-perf/ first"
            )
        );
        member.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_short_datascale_load_reports_the_memory_used() {
        let member = TestMember::start(&[]).await;
        let ctx = ctx_for("check datascale", &["--endpoints", &member.endpoint]);
        let load = DatascaleLoad { keys: 300, clients: 8 };
        let verdict = run_datascale(&ctx, load).await.expect("the check runs");
        let megabytes = verdict
            .strip_prefix("PASS: Approximate system memory used : ")
            .and_then(|rest| rest.strip_suffix(" MB.\n"))
            .unwrap_or_else(|| panic!("{verdict:?}"));
        assert!(megabytes.parse::<f64>().is_ok(), "{verdict:?}");
        assert_eq!(megabytes.split('.').nth(1).map(str::len), Some(2), "{verdict:?}");
        assert_eq!(keys_under(&ctx, "/etcdctl-check-datascale/").await, 0);
        member.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn datascale_reads_the_memory_of_an_https_endpoint() {
        let cluster = TestCluster::start_secure(1, &["--auto-tls", "--peer-auto-tls"]).await;
        let endpoint = cluster.endpoint(0);
        assert!(endpoint.starts_with("https://"), "{endpoint}");
        let ctx = ctx_for(
            "check datascale",
            &["--endpoints", &endpoint, "--insecure-transport=false", "--insecure-skip-tls-verify"],
        );
        let load = DatascaleLoad { keys: 50, clients: 2 };
        let verdict = run_datascale(&ctx, load).await.expect("the check runs");
        assert!(verdict.starts_with("PASS: Approximate system memory used : "), "{verdict:?}");
        cluster.stop_all().await;
    }

    #[test]
    fn loads_are_found_by_short_and_long_names() {
        assert_eq!(workload(&PERF_LOADS, "s").unwrap().writes_per_second, 150);
        assert_eq!(workload(&PERF_LOADS, "xLarge").unwrap().clients, 1000);
        assert_eq!(workload(&DATASCALE_LOADS, "medium").unwrap().keys, 100_000);
        let refused = workload(&PERF_LOADS, "huge").unwrap_err();
        assert_eq!(refused, CtlError::new(exit::BAD_FEATURE, "unknown load option huge"));
    }

    #[test]
    fn stats_match_the_definitions() {
        let mut stats = LatencyStats::default();
        for ms in [10, 20, 30, 40] {
            stats.record(Duration::from_millis(ms));
        }
        stats.total = Duration::from_secs(2);
        assert_eq!(stats.writes_per_second(), 2.0);
        assert!((stats.slowest_seconds() - 0.04).abs() < 1e-12);
        // Population stddev of 10, 20, 30, 40 ms: sqrt(125) ms.
        assert!((stats.stddev_seconds() - 125f64.sqrt() / 1000.0).abs() < 1e-12);
    }

    #[test]
    fn error_kinds_are_bounded() {
        let mut stats = LatencyStats::default();
        for i in 0..(MAX_ERROR_KINDS + 10) {
            stats.record_error(format!("error {i}"));
        }
        stats.record_error("error 0".to_string());
        assert_eq!(stats.errors.len(), MAX_ERROR_KINDS + 1);
        assert_eq!(stats.errors["error 0"], 2);
        assert_eq!(stats.errors[OTHER_ERRORS], 10);
    }

    #[test]
    fn verdict_lines_read_as_etcdctls() {
        let load = PerfLoad { writes_per_second: 150, clients: 50, duration: PERF_SECONDS };
        let mut stats = LatencyStats::default();
        for _ in 0..9000 {
            stats.record(Duration::from_millis(5));
        }
        stats.total = PERF_SECONDS;
        let (lines, passed) = perf_verdict(&stats, load);
        assert!(passed);
        assert_eq!(
            lines.concat(),
            "PASS: Throughput is 151 writes/s\nPASS: Slowest request took 0.005000s\nPASS: Stddev is 0.000000s\nPASS\n"
        );
        stats.record(Duration::from_millis(700));
        stats.record_error("etcdserver: request timed out".to_string());
        stats.total = PERF_SECONDS * 2;
        let (lines, passed) = perf_verdict(&stats, load);
        assert!(!passed);
        assert_eq!(lines[0], "FAIL: too many errors\n");
        assert_eq!(lines[1], "FAIL: ERROR(etcdserver: request timed out) -> 1\n");
        assert_eq!(lines[2], "FAIL: Throughput too low: 76 writes/s\n");
        assert_eq!(lines[3], "Slowest request took too long: 0.700000s\n");
        assert_eq!(lines.last().unwrap(), "FAIL\n");
    }

    #[test]
    fn keys_have_the_prefix_and_size_and_differ() {
        let mut keys = RandomKeys::new("/p/", PERF_KEY_SIZE);
        let (a, b) = (keys.next_key(), keys.next_key());
        assert_eq!(a.len(), 3 + PERF_KEY_SIZE);
        assert!(a.starts_with(b"/p/"));
        assert_ne!(a, b);
    }

    #[test]
    fn varints_are_gos() {
        let mut buffer = [0u8; 10];
        put_varint(&mut buffer, 1);
        assert_eq!(buffer[..2], [2, 0]);
        put_varint(&mut buffer, -1);
        assert_eq!(buffer[0], 1);
        put_varint(&mut buffer, 300);
        assert_eq!(buffer[..3], [0xd8, 0x04, 0]);
        put_varint(&mut buffer, i64::MAX);
        assert_eq!(buffer[9], 1);
    }
}
