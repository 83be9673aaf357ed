//! The lessor: leases, their attached keys, and (on the leader) their expiry.
//!
//! Granting and revoking go through the log, so every member holds the same leases;
//! expiry is tracked only by the leader, which revokes an expired lease by proposing a
//! revoke. A new leader extends every lease by an election timeout before expiring any,
//! so no lease whose client kept it alive expires because of the failover. Keep-alives
//! and time-to-live answers therefore come from the leader.
//!
//! Leases are stored in the backend's `lease` table (etcd's `leasepb.Lease` encoding,
//! written in the same commit as the entry that changed them); the keys attached to
//! them are rebuilt by the store, which reattaches every live key when it opens.
//!
//! **Checkpoints** (`--experimental-enable-lease-checkpoint`, etcd's lease checkpoints):
//! without them a new leader, or a restarted cluster, gives every lease its full TTL
//! again, so a long lease whose client is gone can live on indefinitely across leader
//! changes. With them the leader records, through the log, the remaining TTL of each
//! lease longer than the checkpoint interval, once per interval; every member keeps it
//! (in the lease table too, so it survives restarts, as etcd 3.6 does) and a new leader
//! starts the lease from there. A keep-alive of a lease with a recorded remaining TTL
//! first clears it through the log, so a lease its client keeps alive gets its full TTL
//! after a change of leader. A lease on the leader has a checkpoint scheduled whenever
//! its remaining TTL exceeds the interval; etcd 3.4 drops a lease from the schedule when
//! a keep-alive lands just before its checkpoint, we keep it scheduled.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use oxetcd_mvcc::LeaseId;
use prost::Message as _;

/// The backend table that holds leases.
pub const LEASE_TABLE: &str = "lease";
/// The largest TTL a lease may be granted with (etcd's limit, in seconds).
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;
/// Expired leases revoked per check, so a mass expiry cannot flood the log (etcd's
/// revoke rate is 1000 per second; the check runs every 500 ms).
pub const MAX_REVOKES_PER_CHECK: usize = 500;
/// Checkpoints carried by one log entry (etcd's `maxLeaseCheckpointBatchSize`).
pub const MAX_CHECKPOINTS_PER_PROPOSAL: usize = 1000;
/// Checkpoint entries proposed per check (every 500 ms): etcd's `leaseCheckpointRate`
/// of 1000 entries per second.
pub const MAX_CHECKPOINT_PROPOSALS_PER_CHECK: usize = 500;

/// etcd's `leasepb.Lease`: what the `lease` table stores per lease.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StoredLease {
    #[prost(int64, tag = "1")]
    pub id: i64,
    #[prost(int64, tag = "2")]
    pub ttl: i64,
    #[prost(int64, tag = "3")]
    pub remaining_ttl: i64,
}

/// Why a lease operation was refused; messages are etcd's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaseError {
    #[error("etcdserver: requested lease not found")]
    NotFound,
    #[error("etcdserver: lease already exists")]
    Exists,
    #[error("etcdserver: too large lease TTL")]
    TtlTooLarge,
}

/// Where "now" comes from: the system clock, or a test's.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> Instant;
}

#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

impl StoredLease {
    /// The lease's row in the lease table: its id in big-endian bytes (etcd's key), and
    /// the encoded lease.
    pub fn row(&self) -> (Bytes, Option<Bytes>) {
        (Bytes::copy_from_slice(&self.id.to_be_bytes()), Some(Bytes::from(self.encode_to_vec())))
    }
}

#[derive(Debug, Clone, Default)]
struct Lease {
    /// Granted TTL in seconds.
    ttl: i64,
    /// The remaining TTL the last checkpoint recorded, in seconds; 0 when none is.
    remaining_ttl: i64,
    /// When the lease runs out; `None` while this member is not the leader.
    expiry: Option<Instant>,
    /// On the leader: when the lease's next checkpoint is due, if one is scheduled.
    checkpoint_due: Option<Instant>,
    /// On the leader: a checkpoint was taken and may not be applied yet, so a keep-alive
    /// must clear it behind it in the log.
    checkpoint_taken: bool,
}

impl Lease {
    fn new(ttl: i64, remaining_ttl: i64) -> Lease {
        Lease { ttl, remaining_ttl, ..Lease::default() }
    }

    /// What a new leader starts the lease with: the checkpointed TTL, if any.
    fn starting_ttl(&self) -> i64 {
        if self.remaining_ttl > 0 { self.remaining_ttl } else { self.ttl }
    }

    fn stored(&self, id: LeaseId) -> StoredLease {
        StoredLease { id, ttl: self.ttl, remaining_ttl: self.remaining_ttl }
    }
}

#[derive(Debug, Default)]
struct State {
    leases: BTreeMap<LeaseId, Lease>,
    /// Kept apart from `leases`: the store reattaches keys while it opens, before the
    /// lease table has been read back.
    keys: BTreeMap<LeaseId, BTreeSet<Bytes>>,
    /// Whether this member leads, and so tracks expiry.
    primary: bool,
    /// On the leader: the scheduled checkpoints in due order (one per lease at most,
    /// mirrored by `Lease::checkpoint_due`).
    checkpoints: BTreeSet<(Instant, LeaseId)>,
}

impl State {
    /// Schedules the lease's next checkpoint an interval from `now` if its remaining
    /// TTL outlasts the interval (a shorter one ends before a checkpoint would matter),
    /// replacing any scheduled one.
    fn schedule_checkpoint(
        &mut self,
        id: LeaseId,
        now: Instant,
        remaining: i64,
        interval: Option<Duration>,
    ) {
        let Some(lease) = self.leases.get_mut(&id) else { return };
        if let Some(due) = lease.checkpoint_due.take() {
            self.checkpoints.remove(&(due, id));
        }
        if let Some(interval) = interval.filter(|i| secs(remaining) > *i) {
            lease.checkpoint_due = Some(now + interval);
            self.checkpoints.insert((now + interval, id));
        }
    }
}

/// A keep-alive's outcome on the leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Renewed {
    /// The lease's TTL, for the keep-alive response.
    pub ttl: i64,
    /// A checkpoint of this lease is recorded (or on its way): the caller clears it
    /// through the log with a checkpoint of 0, so a change of leader gives the renewed
    /// lease its full TTL again.
    pub clear_checkpoint: bool,
}

/// The remaining life of a lease, as TimeToLive reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseStatus {
    pub granted_ttl: i64,
    /// Whole seconds left (cut down, as etcd reports them); -1 once expired.
    pub remaining: i64,
    pub keys: Vec<Bytes>,
}

#[derive(Debug)]
pub struct Lessor {
    state: Mutex<State>,
    clock: Arc<dyn Clock>,
    /// Shorter TTLs are raised to this (etcd: 1.5 election timeouts, in whole seconds).
    min_ttl: i64,
    /// The wait between two checkpoints of a lease; `None`: the leader takes none.
    checkpoint_interval: Option<Duration>,
}

impl Lessor {
    pub fn new(min_ttl: i64, clock: Arc<dyn Clock>) -> Lessor {
        Lessor { state: Mutex::new(State::default()), clock, min_ttl, checkpoint_interval: None }
    }

    /// As leader, checkpoint every lease longer than `interval` once per interval.
    pub fn with_checkpoints(self, interval: Duration) -> Lessor {
        Lessor { checkpoint_interval: Some(interval), ..self }
    }

    /// etcd's minimum TTL for an election timeout: 3/2 of it, rounded up to seconds.
    pub fn min_ttl_for(election_ticks: usize, heartbeat: Duration) -> i64 {
        ceil_secs(heartbeat * ((3 * election_ticks / 2) as u32))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Rebuilds the leases from the backend's lease table when the member starts.
    pub fn recover(&self, rows: impl IntoIterator<Item = StoredLease>) {
        let mut state = self.lock();
        for row in rows {
            state.leases.insert(row.id, Lease::new(row.ttl, row.remaining_ttl));
        }
    }

    /// Forgets every lease (a snapshot from the leader replaces them all).
    pub fn reset(&self, rows: impl IntoIterator<Item = StoredLease>) {
        {
            let mut state = self.lock();
            state.leases.clear();
            state.keys.clear();
            state.checkpoints.clear();
        }
        self.recover(rows);
    }

    /// Applies a committed grant; returns what to store. The TTL is raised to the
    /// minimum, as etcd does.
    pub fn grant(&self, id: LeaseId, ttl: i64) -> Result<StoredLease, LeaseError> {
        if id == 0 {
            return Err(LeaseError::NotFound);
        }
        if ttl > MAX_LEASE_TTL {
            return Err(LeaseError::TtlTooLarge);
        }
        let ttl = ttl.max(self.min_ttl);
        let mut state = self.lock();
        if state.leases.contains_key(&id) {
            return Err(LeaseError::Exists);
        }
        let now = self.clock.now();
        let lease = Lease { expiry: state.primary.then(|| now + secs(ttl)), ..Lease::new(ttl, 0) };
        let stored = lease.stored(id);
        state.leases.insert(id, lease);
        if state.primary {
            state.schedule_checkpoint(id, now, ttl, self.checkpoint_interval);
        }
        Ok(stored)
    }

    /// Applies a committed revoke: the lease is gone; returns its keys, which the caller
    /// deletes in one revision.
    pub fn revoke(&self, id: LeaseId) -> Result<Vec<Bytes>, LeaseError> {
        let mut state = self.lock();
        let lease = state.leases.remove(&id).ok_or(LeaseError::NotFound)?;
        if let Some(due) = lease.checkpoint_due {
            state.checkpoints.remove(&(due, id));
        }
        Ok(state.keys.remove(&id).map(|keys| keys.into_iter().collect()).unwrap_or_default())
    }

    /// Applies a committed checkpoint: records the lease's remaining TTL (0 clears it)
    /// and returns what to store, or `None` if the lease is gone.
    pub fn checkpoint(&self, id: LeaseId, remaining_ttl: i64) -> Option<StoredLease> {
        let mut state = self.lock();
        let lease = state.leases.get_mut(&id)?;
        lease.remaining_ttl = remaining_ttl.max(0);
        lease.checkpoint_taken = false;
        Some(lease.stored(id))
    }

    /// This member became leader: start tracking expiry, giving every lease its full
    /// TTL (or what its last checkpoint left of it) plus `extend` (an election timeout),
    /// so no lease a client kept alive expires because of the change of leader.
    pub fn promote(&self, extend: Duration) {
        let now = self.clock.now();
        let mut state = self.lock();
        state.primary = true;
        let starting: Vec<(LeaseId, i64)> = state
            .leases
            .iter_mut()
            .map(|(&id, lease)| {
                lease.expiry = Some(now + secs(lease.starting_ttl()) + extend);
                (id, lease.starting_ttl())
            })
            .collect();
        for (id, remaining) in starting {
            state.schedule_checkpoint(id, now, remaining, self.checkpoint_interval);
        }
    }

    /// This member stopped leading: it no longer expires or checkpoints leases.
    pub fn demote(&self) {
        let mut state = self.lock();
        state.primary = false;
        state.checkpoints.clear();
        for lease in state.leases.values_mut() {
            lease.expiry = None;
            lease.checkpoint_due = None;
            lease.checkpoint_taken = false;
        }
    }

    pub fn is_primary(&self) -> bool {
        self.lock().primary
    }

    /// A keep-alive on the leader: the lease lives another TTL.
    pub fn renew(&self, id: LeaseId) -> Result<Renewed, LeaseError> {
        let now = self.clock.now();
        let mut state = self.lock();
        let primary = state.primary;
        let lease = state.leases.get_mut(&id).ok_or(LeaseError::NotFound)?;
        if primary && lease.expiry.is_some_and(|e| e <= now) {
            // Expired; its revoke is on its way through the log.
            return Err(LeaseError::NotFound);
        }
        lease.expiry = primary.then(|| now + secs(lease.ttl));
        // Cleared whether or not this member checkpoints: the recorded TTL may come from
        // a leader that did (etcd 3.4 clears it only when checkpointing itself).
        let renewed = Renewed {
            ttl: lease.ttl,
            clear_checkpoint: lease.remaining_ttl > 0 || lease.checkpoint_taken,
        };
        if primary && lease.checkpoint_due.is_none() {
            state.schedule_checkpoint(id, now, renewed.ttl, self.checkpoint_interval);
        }
        Ok(renewed)
    }

    pub fn status(&self, id: LeaseId) -> Option<LeaseStatus> {
        let now = self.clock.now();
        let state = self.lock();
        let lease = state.leases.get(&id)?;
        let remaining = match lease.expiry {
            Some(expiry) if expiry <= now => -1,
            Some(expiry) => (expiry - now).as_secs() as i64,
            None => lease.starting_ttl(),
        };
        let keys = state.keys.get(&id).map(|k| k.iter().cloned().collect()).unwrap_or_default();
        Some(LeaseStatus { granted_ttl: lease.ttl, remaining, keys })
    }

    /// The keys attached to a lease (none for an unknown one).
    pub fn keys(&self, id: LeaseId) -> Vec<Bytes> {
        self.lock().keys.get(&id).map(|k| k.iter().cloned().collect()).unwrap_or_default()
    }

    /// Every lease, the soonest to expire first (as etcd lists them), then by id.
    pub fn leases(&self) -> Vec<LeaseId> {
        let state = self.lock();
        let mut leases: Vec<(Option<Instant>, LeaseId)> =
            state.leases.iter().map(|(&id, lease)| (lease.expiry, id)).collect();
        leases.sort_unstable_by_key(|&(expiry, id)| (expiry.is_none(), expiry, id));
        leases.into_iter().map(|(_, id)| id).collect()
    }

    /// On the leader: leases past their expiry, at most `limit` of them.
    pub fn expired(&self, limit: usize) -> Vec<LeaseId> {
        let now = self.clock.now();
        let state = self.lock();
        if !state.primary {
            return Vec::new();
        }
        state
            .leases
            .iter()
            .filter(|(_, lease)| lease.expiry.is_some_and(|e| e <= now))
            .map(|(&id, _)| id)
            .take(limit)
            .collect()
    }

    /// On the leader: the checkpoints due now, at most `limit`, as (lease, remaining
    /// TTL in whole seconds, rounded up). Each lease taken is scheduled again if it
    /// outlasts another interval. An expired lease is skipped (its revoke is coming),
    /// and so is one renewed so recently that nothing of its TTL is used up.
    pub fn due_checkpoints(&self, limit: usize) -> Vec<(LeaseId, i64)> {
        let now = self.clock.now();
        let mut state = self.lock();
        let mut due = Vec::new();
        while due.len() < limit {
            let Some(&(at, id)) = state.checkpoints.first() else { break };
            if at > now {
                break;
            }
            state.checkpoints.pop_first();
            let Some(lease) = state.leases.get_mut(&id) else { continue };
            lease.checkpoint_due = None;
            let Some(left) = lease.expiry.and_then(|e| e.checked_duration_since(now)) else {
                continue;
            };
            let remaining = ceil_secs(left);
            if remaining < lease.ttl {
                lease.checkpoint_taken = true;
                due.push((id, remaining));
            }
            state.schedule_checkpoint(id, now, remaining, self.checkpoint_interval);
        }
        due
    }
}

impl oxetcd_mvcc::Lessor for Lessor {
    fn lease_exists(&self, lease: LeaseId) -> bool {
        self.lock().leases.contains_key(&lease)
    }

    fn attach(&self, lease: LeaseId, key: &[u8]) {
        self.lock().keys.entry(lease).or_default().insert(Bytes::copy_from_slice(key));
    }

    fn detach(&self, lease: LeaseId, key: &[u8]) {
        let mut state = self.lock();
        if let Some(keys) = state.keys.get_mut(&lease) {
            keys.remove(key);
            if keys.is_empty() {
                state.keys.remove(&lease);
            }
        }
    }
}

/// A TTL in seconds as a duration, cut to [`MAX_LEASE_TTL`]: a TTL read from the lease
/// table or a checkpoint entry is not checked like a grant's, and an `Instant` this far
/// out overflows.
fn secs(s: i64) -> Duration {
    Duration::from_secs(s.clamp(0, MAX_LEASE_TTL) as u64)
}

/// Whole seconds, rounded up.
fn ceil_secs(d: Duration) -> i64 {
    d.as_secs() as i64 + i64::from(d.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxetcd_mvcc::Lessor as _;

    /// A clock the test moves by hand.
    #[derive(Debug)]
    struct TestClock(Mutex<Instant>);

    impl TestClock {
        fn advance(&self, by: Duration) {
            *self.0.lock().unwrap() += by;
        }
    }

    impl Clock for TestClock {
        fn now(&self) -> Instant {
            *self.0.lock().unwrap()
        }
    }

    fn lessor() -> (Lessor, Arc<TestClock>) {
        let clock = Arc::new(TestClock(Mutex::new(Instant::now())));
        (Lessor::new(2, clock.clone()), clock)
    }

    #[test]
    fn min_ttl_is_etcds() {
        // 10 ticks of 100 ms: 1.5 s, rounded up to 2 s.
        assert_eq!(Lessor::min_ttl_for(10, Duration::from_millis(100)), 2);
        assert_eq!(Lessor::min_ttl_for(10, Duration::from_millis(200)), 3);
    }

    #[test]
    fn grant_validates_and_raises_short_ttls() {
        let (lessor, _) = lessor();
        assert_eq!(lessor.grant(7, 1).unwrap().ttl, 2);
        assert_eq!(lessor.grant(7, 10), Err(LeaseError::Exists));
        assert_eq!(lessor.grant(8, MAX_LEASE_TTL + 1), Err(LeaseError::TtlTooLarge));
        assert_eq!(lessor.grant(0, 10), Err(LeaseError::NotFound));
        assert_eq!(lessor.leases(), vec![7]);
    }

    #[test]
    fn only_the_leader_expires_and_keep_alives_postpone_expiry() {
        let (lessor, clock) = lessor();
        lessor.grant(1, 10).unwrap();
        clock.advance(Duration::from_secs(60));
        assert!(lessor.expired(10).is_empty(), "a follower never expires leases");

        lessor.promote(Duration::from_secs(1));
        clock.advance(Duration::from_secs(10));
        assert!(lessor.expired(10).is_empty(), "promotion extends by the election timeout");
        assert_eq!(lessor.renew(1).map(|r| r.ttl), Ok(10));
        clock.advance(Duration::from_secs(9));
        assert!(lessor.expired(10).is_empty());
        assert_eq!(lessor.status(1).unwrap().remaining, 1);
        clock.advance(Duration::from_secs(1));
        assert_eq!(lessor.expired(10), vec![1]);
        assert_eq!(
            lessor.renew(1),
            Err(LeaseError::NotFound),
            "an expired lease cannot be renewed"
        );
        assert_eq!(lessor.status(1).unwrap().remaining, -1);

        lessor.demote();
        assert!(lessor.expired(10).is_empty());
    }

    #[test]
    fn time_to_live_cuts_seconds_down_and_leases_list_the_soonest_first() {
        let (lessor, clock) = lessor();
        lessor.promote(Duration::ZERO);
        lessor.grant(9, 30).unwrap();
        lessor.grant(5, 60).unwrap();
        lessor.grant(7, 30).unwrap();
        clock.advance(Duration::from_millis(1500));
        assert_eq!(lessor.status(9).unwrap().remaining, 28);
        assert_eq!(lessor.leases(), vec![7, 9, 5]);
    }

    #[test]
    fn revoke_returns_the_attached_keys() {
        let (lessor, _) = lessor();
        lessor.grant(3, 10).unwrap();
        lessor.attach(3, b"a");
        lessor.attach(3, b"b");
        lessor.detach(3, b"a");
        assert!(lessor.lease_exists(3));
        assert_eq!(lessor.status(3).unwrap().keys, vec![Bytes::from_static(b"b")]);
        assert_eq!(lessor.revoke(3), Ok(vec![Bytes::from_static(b"b")]));
        assert!(!lessor.lease_exists(3));
        assert_eq!(lessor.revoke(3), Err(LeaseError::NotFound));
    }

    const INTERVAL: Duration = Duration::from_secs(10);

    /// A leader whose lessor checkpoints every `INTERVAL`.
    fn checkpointing_leader() -> (Lessor, Arc<TestClock>) {
        let (lessor, clock) = lessor();
        let lessor = lessor.with_checkpoints(INTERVAL);
        lessor.promote(Duration::ZERO);
        (lessor, clock)
    }

    #[test]
    fn leases_longer_than_the_interval_are_checkpointed_once_per_interval() {
        let (leader, clock) = checkpointing_leader();
        leader.grant(1, 60).unwrap();
        leader.grant(2, 10).unwrap();
        clock.advance(INTERVAL - Duration::from_millis(1));
        assert!(leader.due_checkpoints(10).is_empty());
        clock.advance(Duration::from_millis(1));
        // Lease 2 runs out before a checkpoint could matter: never checkpointed.
        assert_eq!(leader.due_checkpoints(10), vec![(1, 50)]);
        assert!(leader.due_checkpoints(10).is_empty(), "one checkpoint per interval");
        clock.advance(INTERVAL);
        assert_eq!(leader.due_checkpoints(10), vec![(1, 40)]);
        // 40 s left: another interval fits, so one more comes (taken late here, with 10 s
        // left, too little for another), then none.
        clock.advance(INTERVAL * 3);
        assert_eq!(leader.due_checkpoints(10), vec![(1, 10)]);
        clock.advance(INTERVAL);
        assert!(leader.due_checkpoints(10).is_empty());

        let (follower, clock) = lessor();
        let follower = follower.with_checkpoints(INTERVAL);
        follower.grant(1, 60).unwrap();
        clock.advance(INTERVAL * 2);
        assert!(follower.due_checkpoints(10).is_empty(), "only the leader checkpoints");
    }

    #[test]
    fn checkpoints_are_taken_in_batches_of_the_limit() {
        let (leader, clock) = checkpointing_leader();
        for id in 1..=5 {
            leader.grant(id, 60).unwrap();
        }
        clock.advance(INTERVAL);
        let first = leader.due_checkpoints(2);
        let rest = leader.due_checkpoints(10);
        assert_eq!((first.len(), rest.len()), (2, 3));
        let mut ids: Vec<LeaseId> = first.iter().chain(&rest).map(|&(id, _)| id).collect();
        ids.sort_unstable();
        assert_eq!(ids, vec![1, 2, 3, 4, 5]);
    }

    #[test]
    fn a_new_leader_and_a_restart_continue_from_the_checkpoint() {
        let (leader, clock) = checkpointing_leader();
        leader.grant(1, 60).unwrap();
        clock.advance(INTERVAL);
        let [(id, remaining)] = leader.due_checkpoints(10)[..] else { panic!("one checkpoint") };
        // Every member applies the committed checkpoint.
        let (follower, _) = lessor();
        follower.grant(1, 60).unwrap();
        let stored = follower.checkpoint(id, remaining).unwrap();
        assert_eq!(stored, StoredLease { id: 1, ttl: 60, remaining_ttl: 50 });
        assert_eq!(follower.status(1).unwrap().remaining, 50, "TimeToLive reports it");
        follower.promote(Duration::from_secs(1));
        assert_eq!(follower.status(1).unwrap().remaining, 51, "not the full 60 + 1");

        // A restart reads it back from the lease table.
        let (restarted, _) = lessor();
        restarted.recover([stored]);
        restarted.promote(Duration::from_secs(1));
        let status = restarted.status(1).unwrap();
        assert_eq!((status.granted_ttl, status.remaining), (60, 51));

        // Without a checkpoint, a new leader grants the full TTL again.
        let (other, _) = lessor();
        other.grant(1, 60).unwrap();
        other.promote(Duration::from_secs(1));
        assert_eq!(other.status(1).unwrap().remaining, 61);
    }

    #[test]
    fn a_keep_alive_clears_a_recorded_or_pending_checkpoint() {
        let (leader, clock) = checkpointing_leader();
        leader.grant(1, 60).unwrap();
        assert_eq!(leader.renew(1), Ok(Renewed { ttl: 60, clear_checkpoint: false }));
        clock.advance(INTERVAL);
        assert_eq!(leader.due_checkpoints(10), vec![(1, 50)]);
        // Taken but not applied yet: the clear must follow it in the log.
        assert!(leader.renew(1).unwrap().clear_checkpoint);
        leader.checkpoint(1, 50).unwrap();
        assert!(leader.renew(1).unwrap().clear_checkpoint);
        assert_eq!(leader.checkpoint(1, 0).unwrap().remaining_ttl, 0);
        assert!(!leader.renew(1).unwrap().clear_checkpoint);
        leader.demote();
        leader.promote(Duration::ZERO);
        assert_eq!(leader.status(1).unwrap().remaining, 60, "the cleared lease starts full");
        assert_eq!(leader.checkpoint(9, 5), None, "a lease that is gone is skipped");
    }

    #[test]
    fn a_lease_renewed_just_before_its_checkpoint_stays_scheduled() {
        let (leader, clock) = checkpointing_leader();
        leader.grant(1, 60).unwrap();
        clock.advance(INTERVAL - Duration::from_millis(500));
        leader.renew(1).unwrap();
        clock.advance(Duration::from_millis(500));
        assert!(leader.due_checkpoints(10).is_empty(), "nothing of its TTL is used up");
        clock.advance(INTERVAL);
        assert_eq!(leader.due_checkpoints(10), vec![(1, 50)]);
    }

    #[test]
    fn demotion_and_revocation_drop_scheduled_checkpoints() {
        let (leader, clock) = checkpointing_leader();
        leader.grant(1, 60).unwrap();
        leader.grant(2, 60).unwrap();
        leader.revoke(2).unwrap();
        clock.advance(INTERVAL);
        assert_eq!(leader.due_checkpoints(10), vec![(1, 50)]);
        leader.demote();
        clock.advance(INTERVAL);
        assert!(leader.due_checkpoints(10).is_empty());
        // Promotion schedules from the lease's starting TTL.
        leader.promote(Duration::ZERO);
        clock.advance(INTERVAL);
        assert_eq!(leader.due_checkpoints(10), vec![(1, 50)]);
    }

    #[test]
    fn keys_attached_before_recovery_are_kept() {
        let (lessor, _) = lessor();
        lessor.attach(9, b"k");
        lessor.recover([StoredLease { id: 9, ttl: 30, remaining_ttl: 0 }]);
        assert_eq!(lessor.status(9).unwrap().keys, vec![Bytes::from_static(b"k")]);
    }
}
