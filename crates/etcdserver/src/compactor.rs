//! Auto compaction (etcd 3.4's `etcdserver/api/v3compactor`): `--auto-compaction-mode`
//! and `--auto-compaction-retention`.
//!
//! - **periodic** (`periodic.go`): the current revision is sampled every tenth of the
//!   retention (a tenth of an hour for retentions over an hour); the window keeps the
//!   samples of one retention. Nothing is compacted during the first retention; from then
//!   on the compactor compacts to the oldest sample in the window (the revision seen one
//!   retention ago), the first time once the retention has passed since the start, then
//!   whenever `min(retention, 1h)` has passed since the last success. A failure is tried
//!   again a sample later.
//! - **revision** (`revision.go`): every 5 minutes, compact to the current revision minus
//!   the retention, if that is positive and moved since the last success.
//!
//! Both run on every member but act only on the leader (etcd pauses the compactor on
//! followers and resumes it on the leader; the periodic window keeps sampling while
//! paused). A compaction is an ordinary `CompactionRequest` through the log, proposed as
//! the member itself; a revision already compacted counts as success, as in etcd.
//!
//! Time comes from a [`Clock`], so the sampling is tested without sleeping.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use oxetcd_api::etcdserverpb::CompactionRequest;
use tokio::sync::watch;

use crate::auth::Requester;
use crate::error::ServerError;
use crate::server::EtcdServer;

/// The revision mode's interval between compactions (etcd's `revInterval`, revision.go).
pub const REVISION_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// The periodic mode samples (and retries) every retention divided by this, with the
/// retention capped at an hour (etcd's `retryDivisor`, periodic.go).
pub const PERIODIC_DIVISOR: u32 = 10;
/// The longest periodic interval between compactions and the retention the sampling
/// interval is cut from (periodic.go's `getCompactInterval`/`getRetryInterval` cap).
pub const PERIODIC_CAP: Duration = Duration::from_secs(60 * 60);
/// A floor under the sampling interval, so a retention of a few nanoseconds cannot spin
/// the task (etcd has none; no real retention is that short).
pub const MIN_SAMPLE_INTERVAL: Duration = Duration::from_millis(1);

/// `--auto-compaction-mode` with its `--auto-compaction-retention`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoCompaction {
    /// Keep this much history (a duration).
    Periodic(Duration),
    /// Keep this many revisions.
    Revision(i64),
}

/// Where the compactor's time comes from: the real clock, or a test's.
pub trait Clock: Send + Sync {
    fn now(&self) -> Instant;
    /// Waits `duration`; `false` when the compactor must stop instead.
    fn sleep(&self, duration: Duration) -> impl Future<Output = bool> + Send;
}

/// What the compactor acts on: the server, or a test's stand-in.
pub trait Compactable: Send + Sync {
    /// The store's current revision; `None` once the server stopped (the compactor ends).
    fn revision(&self) -> Option<i64>;
    /// Whether this member leads: only the leader compacts.
    fn is_leader(&self) -> bool;
    /// Compacts to `revision` through the log, waiting until it is applied here.
    fn compact(&self, revision: i64) -> impl Future<Output = Result<(), ServerError>> + Send;
}

/// The periodic mode's sliding window of sampled revisions (etcd's `Periodic`), without
/// the clock or the compaction itself.
#[derive(Debug)]
pub struct PeriodicWindow {
    sample_interval: Duration,
    compact_interval: Duration,
    /// Samples kept: one retention's worth, plus the newest.
    capacity: usize,
    revisions: VecDeque<i64>,
    last_success: Instant,
    /// How long after `last_success` the next compaction is due: the retention at first,
    /// then the compact interval.
    due_after: Duration,
}

impl PeriodicWindow {
    pub fn new(retention: Duration, start: Instant) -> PeriodicWindow {
        let capped = retention.min(PERIODIC_CAP);
        let sample_interval = (capped / PERIODIC_DIVISOR).max(MIN_SAMPLE_INTERVAL);
        let capacity = (retention.as_nanos() / sample_interval.as_nanos()) as usize + 1;
        PeriodicWindow {
            sample_interval,
            compact_interval: capped,
            capacity,
            revisions: VecDeque::with_capacity(capacity.min(1024)),
            last_success: start,
            due_after: retention,
        }
    }

    /// How often revisions are sampled and a due compaction tried.
    pub fn sample_interval(&self) -> Duration {
        self.sample_interval
    }

    /// Records the current revision; the oldest sample leaves a full window.
    pub fn sample(&mut self, revision: i64) {
        self.revisions.push_back(revision);
        if self.revisions.len() > self.capacity {
            self.revisions.pop_front();
        }
    }

    /// The revision to compact to if a compaction is due at `now`. Once the first one is
    /// due, later ones come every compact interval (etcd switches its base interval then,
    /// whether or not the attempt succeeds).
    pub fn due(&mut self, now: Instant) -> Option<i64> {
        if now.saturating_duration_since(self.last_success) < self.due_after {
            return None;
        }
        self.due_after = self.compact_interval;
        self.revisions.front().copied()
    }

    /// The compaction succeeded (or the revision was compacted already) at `now`.
    pub fn succeeded(&mut self, now: Instant) {
        self.last_success = now;
    }
}

/// The periodic compactor's loop; returns when the clock says stop or the server is gone.
pub async fn run_periodic(retention: Duration, clock: &impl Clock, target: &impl Compactable) {
    let mut window = PeriodicWindow::new(retention, clock.now());
    loop {
        let Some(current) = target.revision() else { return };
        window.sample(current);
        if !clock.sleep(window.sample_interval()).await {
            return;
        }
        if !target.is_leader() {
            continue;
        }
        let Some(revision) = window.due(clock.now()) else { continue };
        let started = clock.now();
        tracing::info!(revision, compact_period = ?retention, "starting auto periodic compaction");
        match target.compact(revision).await {
            Ok(()) | Err(ServerError::Mvcc(oxetcd_mvcc::Error::Compacted)) => {
                window.succeeded(clock.now());
                tracing::info!(
                    revision,
                    compact_period = ?retention,
                    took = ?clock.now().saturating_duration_since(started),
                    "completed auto periodic compaction"
                );
            }
            Err(error) => tracing::warn!(
                revision,
                compact_period = ?retention,
                retry_interval = ?window.sample_interval(),
                %error,
                "failed auto periodic compaction"
            ),
        }
    }
}

/// The revision compactor's loop (etcd's `Revision`): every [`REVISION_INTERVAL`], on the
/// leader, compacts to `current - retention` when that is positive and new.
pub async fn run_revision(retention: i64, clock: &impl Clock, target: &impl Compactable) {
    let mut previous = 0;
    loop {
        if !clock.sleep(REVISION_INTERVAL).await {
            return;
        }
        if !target.is_leader() {
            continue;
        }
        let Some(current) = target.revision() else { return };
        let revision = current.saturating_sub(retention);
        if revision <= 0 || revision == previous {
            continue;
        }
        let started = clock.now();
        tracing::info!(
            revision,
            revision_compaction_retention = retention,
            "starting auto revision compaction"
        );
        match target.compact(revision).await {
            Ok(()) | Err(ServerError::Mvcc(oxetcd_mvcc::Error::Compacted)) => {
                previous = revision;
                tracing::info!(
                    revision,
                    revision_compaction_retention = retention,
                    took = ?clock.now().saturating_duration_since(started),
                    "completed auto revision compaction"
                );
            }
            Err(error) => tracing::warn!(
                revision,
                revision_compaction_retention = retention,
                retry_interval = ?REVISION_INTERVAL,
                %error,
                "failed auto revision compaction"
            ),
        }
    }
}

/// The real clock; its sleeps end early, with `false`, when the server begins to close
/// (or is dropped), so the compactor never outlives it by a sampling interval.
pub(crate) struct ServerClock {
    pub closing: watch::Receiver<bool>,
}

impl Clock for ServerClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep(&self, duration: Duration) -> impl Future<Output = bool> + Send {
        let mut closing = self.closing.clone();
        async move {
            // Closing, or the server dropped its sender.
            let closed = async move {
                let _ = closing.wait_for(|&c| c).await;
            };
            tokio::select! {
                biased;
                _ = closed => false,
                _ = tokio::time::sleep(duration) => true,
            }
        }
    }
}

/// The server as the compactor sees it: held weakly, so the task keeps nothing alive.
pub(crate) struct ServerTarget(pub Weak<EtcdServer>);

impl ServerTarget {
    fn server(&self) -> Option<Arc<EtcdServer>> {
        self.0.upgrade().filter(|s| !s.is_stopped())
    }
}

impl Compactable for ServerTarget {
    fn revision(&self) -> Option<i64> {
        self.server()?.store().ok().map(|store| store.current_revision())
    }

    fn is_leader(&self) -> bool {
        self.server().is_some_and(|s| s.is_leader())
    }

    fn compact(&self, revision: i64) -> impl Future<Output = Result<(), ServerError>> + Send {
        let server = self.server();
        async move {
            let server = server.ok_or(ServerError::Stopped)?;
            let request = CompactionRequest { revision, physical: false };
            server
                .propose(&Requester::Member, None, |r| r.compaction = Some(request))
                .await
                .map(drop)
        }
    }
}

/// Starts the compactor `--auto-compaction-*` asks for, if any, on the current runtime.
/// It ends when the server closes (`closing` turns true or its sender is dropped).
pub(crate) fn spawn(server: &Arc<EtcdServer>, closing: watch::Receiver<bool>) {
    let Some(policy) = server.config().storage_policy.auto_compaction else { return };
    let target = ServerTarget(Arc::downgrade(server));
    let clock = ServerClock { closing };
    match policy {
        AutoCompaction::Periodic(retention) => {
            tracing::info!(compact_period = ?retention, "enabled periodic auto compaction");
            tokio::spawn(async move { run_periodic(retention, &clock, &target).await });
        }
        AutoCompaction::Revision(retention) => {
            tracing::info!(revision_retention = retention, "enabled revision auto compaction");
            tokio::spawn(async move { run_revision(retention, &clock, &target).await });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    /// Virtual time: each sleep advances it at once; the run ends after `run`.
    struct FakeClock {
        start: Instant,
        now: Mutex<Instant>,
        end: Instant,
    }

    impl FakeClock {
        fn new(run: Duration) -> FakeClock {
            let start = Instant::now();
            FakeClock { start, now: Mutex::new(start), end: start + run }
        }

        fn elapsed(&self) -> Duration {
            *self.now.lock().unwrap() - self.start
        }
    }

    impl Clock for FakeClock {
        fn now(&self) -> Instant {
            *self.now.lock().unwrap()
        }

        fn sleep(&self, duration: Duration) -> impl Future<Output = bool> + Send {
            let mut now = self.now.lock().unwrap();
            *now += duration;
            let go_on = *now <= self.end;
            async move { go_on }
        }
    }

    /// A store whose revision, leadership and failures are functions of the virtual
    /// time; records compactions as (minute, revision).
    struct FakeStore<'a> {
        clock: &'a FakeClock,
        revision_at: fn(Duration) -> i64,
        leader_since: Duration,
        failing_until: Duration,
        compactions: Mutex<Vec<(u64, i64)>>,
    }

    impl<'a> FakeStore<'a> {
        fn new(clock: &'a FakeClock, revision_at: fn(Duration) -> i64) -> Self {
            let (leader_since, failing_until) = (Duration::ZERO, Duration::ZERO);
            FakeStore {
                clock,
                revision_at,
                leader_since,
                failing_until,
                compactions: Mutex::default(),
            }
        }
    }

    impl Compactable for FakeStore<'_> {
        fn revision(&self) -> Option<i64> {
            Some((self.revision_at)(self.clock.elapsed()))
        }

        fn is_leader(&self) -> bool {
            self.clock.elapsed() >= self.leader_since
        }

        fn compact(&self, revision: i64) -> impl Future<Output = Result<(), ServerError>> + Send {
            let elapsed = self.clock.elapsed();
            let result = if elapsed < self.failing_until {
                Err(ServerError::Timeout)
            } else {
                self.compactions.lock().unwrap().push((elapsed.as_secs() / 60, revision));
                Ok(())
            };
            async move { result }
        }
    }

    /// One write a minute: the revision at minute m is m + 1.
    fn per_minute(elapsed: Duration) -> i64 {
        (elapsed.as_secs() / 60) as i64 + 1
    }

    /// The fakes never wait on anything real: polling to the end is enough.
    fn block_on<F: Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(future)
    }

    fn periodic(store: &FakeStore<'_>, retention: Duration) -> Vec<(u64, i64)> {
        block_on(run_periodic(retention, store.clock, store));
        store.compactions.lock().unwrap().clone()
    }

    #[test]
    fn periodic_sampling_matches_etcd_3_4() {
        // (retention, run time, expected compactions as (minute, revision)).
        type Case = (Duration, Duration, &'static [(u64, i64)]);
        let table: &[Case] = &[
            // 1h: a sample every 6 minutes, 11 kept; the first compaction once an hour
            // has passed, to the first sample; then hourly, to the oldest sample kept
            // (taken 66 minutes before: the window spans an hour before the newest).
            (60 * MIN, 59 * MIN, &[]),
            (60 * MIN, 60 * MIN, &[(60, 1)]),
            (60 * MIN, 180 * MIN, &[(60, 1), (120, 55), (180, 115)]),
            // 2h: still 6-minute samples (the retention is capped at 1h for sampling),
            // 21 kept; the first compaction after 2h, then hourly (capped too).
            (120 * MIN, 240 * MIN, &[(120, 1), (180, 55), (240, 115)]),
            // 30m: samples every 3 minutes, compactions every 30.
            (30 * MIN, 90 * MIN, &[(30, 1), (60, 28), (90, 58)]),
            // 10m: samples every minute.
            (10 * MIN, 30 * MIN, &[(10, 1), (20, 10), (30, 20)]),
        ];
        for &(retention, run, expected) in table {
            let clock = FakeClock::new(run);
            let store = FakeStore::new(&clock, per_minute);
            assert_eq!(
                periodic(&store, retention),
                expected,
                "retention {retention:?}, run {run:?}"
            );
        }
    }

    #[test]
    fn periodic_compacts_only_on_the_leader_and_retries_a_sample_later() {
        let clock = FakeClock::new(55 * MIN);
        let mut store = FakeStore::new(&clock, per_minute);
        store.leader_since = 25 * MIN;
        store.failing_until = 40 * MIN;
        // Due from minute 10, but a follower until 25 and failing every minute until 40:
        // the first success at 40, to the oldest of the 11 samples (minute 29); the next
        // ten minutes after that success.
        assert_eq!(periodic(&store, 10 * MIN), [(40, 30), (50, 40)]);
    }

    #[test]
    fn revision_mode_compacts_every_five_minutes_when_the_target_moved() {
        type Case = (i64, fn(Duration) -> i64, Duration, &'static [(u64, i64)]);
        let table: &[Case] = &[
            // 100 revisions a minute, keep 1000: -500 and 0 are skipped.
            (1000, |e| (e.as_secs() / 60) as i64 * 100, 16 * MIN, &[(15, 500)]),
            // No writes: compacted once, not again to the same revision.
            (10, |_| 100, 16 * MIN, &[(5, 90)]),
            (10, per_minute, 16 * MIN, &[(10, 1), (15, 6)]),
        ];
        for &(retention, revision_at, run, expected) in table {
            let clock = FakeClock::new(run);
            let store = FakeStore::new(&clock, revision_at);
            block_on(run_revision(retention, &clock, &store));
            assert_eq!(store.compactions.into_inner().unwrap(), expected, "retention {retention}");
        }
        // A follower never compacts.
        let clock = FakeClock::new(16 * MIN);
        let mut store = FakeStore::new(&clock, per_minute);
        store.leader_since = 60 * MIN;
        block_on(run_revision(10, &clock, &store));
        assert!(store.compactions.into_inner().unwrap().is_empty());
    }

    #[test]
    fn tiny_retentions_do_not_spin() {
        let window = PeriodicWindow::new(Duration::from_nanos(5), Instant::now());
        assert_eq!(window.sample_interval(), MIN_SAMPLE_INTERVAL);
        let window = PeriodicWindow::new(24 * 60 * MIN, Instant::now());
        assert_eq!(window.sample_interval(), 6 * MIN);
        assert_eq!(window.capacity, 241);
    }
}
