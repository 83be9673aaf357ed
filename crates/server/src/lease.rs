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

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use oxetcd_mvcc::LeaseId;

/// The backend table that holds leases.
pub const LEASE_TABLE: &str = "lease";
/// The largest TTL a lease may be granted with (etcd's limit, in seconds).
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;
/// Expired leases revoked per check, so a mass expiry cannot flood the log (etcd's
/// revoke rate is 1000 per second; the check runs every 500 ms).
pub const MAX_REVOKES_PER_CHECK: usize = 500;

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

#[derive(Debug, Clone)]
struct Lease {
    /// Granted TTL in seconds.
    ttl: i64,
    /// When the lease runs out; `None` while this member is not the leader.
    expiry: Option<Instant>,
}

#[derive(Debug, Default)]
struct State {
    leases: BTreeMap<LeaseId, Lease>,
    /// Kept apart from `leases`: the store reattaches keys while it opens, before the
    /// lease table has been read back.
    keys: BTreeMap<LeaseId, BTreeSet<Bytes>>,
    /// Whether this member leads, and so tracks expiry.
    primary: bool,
}

/// The remaining life of a lease, as TimeToLive reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseStatus {
    pub granted_ttl: i64,
    /// Seconds left (rounded up); -1 once expired.
    pub remaining: i64,
    pub keys: Vec<Bytes>,
}

#[derive(Debug)]
pub struct Lessor {
    state: Mutex<State>,
    clock: Arc<dyn Clock>,
    /// Shorter TTLs are raised to this (etcd: 1.5 election timeouts, in whole seconds).
    min_ttl: i64,
}

impl Lessor {
    pub fn new(min_ttl: i64, clock: Arc<dyn Clock>) -> Lessor {
        Lessor { state: Mutex::new(State::default()), clock, min_ttl }
    }

    /// etcd's minimum TTL for an election timeout: 3/2 of it, rounded up to seconds.
    pub fn min_ttl_for(election_ticks: usize, heartbeat: Duration) -> i64 {
        let min = heartbeat * ((3 * election_ticks / 2) as u32);
        min.as_secs() as i64 + i64::from(min.subsec_nanos() > 0)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Rebuilds the leases from the backend's lease table when the member starts.
    pub fn recover(&self, rows: impl IntoIterator<Item = StoredLease>) {
        let mut state = self.lock();
        for row in rows {
            state.leases.insert(row.id, Lease { ttl: row.ttl, expiry: None });
        }
    }

    /// Forgets every lease (a snapshot from the leader replaces them all).
    pub fn reset(&self, rows: impl IntoIterator<Item = StoredLease>) {
        {
            let mut state = self.lock();
            state.leases.clear();
            state.keys.clear();
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
        let expiry = state.primary.then(|| self.clock.now() + secs(ttl));
        state.leases.insert(id, Lease { ttl, expiry });
        Ok(StoredLease { id, ttl, remaining_ttl: 0 })
    }

    /// Applies a committed revoke: the lease is gone; returns its keys, which the caller
    /// deletes in one revision.
    pub fn revoke(&self, id: LeaseId) -> Result<Vec<Bytes>, LeaseError> {
        let mut state = self.lock();
        state.leases.remove(&id).ok_or(LeaseError::NotFound)?;
        Ok(state.keys.remove(&id).map(|keys| keys.into_iter().collect()).unwrap_or_default())
    }

    /// This member became leader: start tracking expiry, giving every lease its full
    /// TTL plus `extend` (an election timeout), so no lease a client kept alive expires
    /// because of the change of leader.
    pub fn promote(&self, extend: Duration) {
        let now = self.clock.now();
        let mut state = self.lock();
        state.primary = true;
        for lease in state.leases.values_mut() {
            lease.expiry = Some(now + secs(lease.ttl) + extend);
        }
    }

    /// This member stopped leading: it no longer expires leases.
    pub fn demote(&self) {
        let mut state = self.lock();
        state.primary = false;
        for lease in state.leases.values_mut() {
            lease.expiry = None;
        }
    }

    pub fn is_primary(&self) -> bool {
        self.lock().primary
    }

    /// A keep-alive on the leader: the lease lives another TTL. Returns the TTL.
    pub fn renew(&self, id: LeaseId) -> Result<i64, LeaseError> {
        let now = self.clock.now();
        let mut state = self.lock();
        let primary = state.primary;
        let lease = state.leases.get_mut(&id).ok_or(LeaseError::NotFound)?;
        if primary && lease.expiry.is_some_and(|e| e <= now) {
            // Expired; its revoke is on its way through the log.
            return Err(LeaseError::NotFound);
        }
        lease.expiry = primary.then(|| now + secs(lease.ttl));
        Ok(lease.ttl)
    }

    pub fn status(&self, id: LeaseId) -> Option<LeaseStatus> {
        let now = self.clock.now();
        let state = self.lock();
        let lease = state.leases.get(&id)?;
        let remaining = match lease.expiry {
            Some(expiry) if expiry <= now => -1,
            Some(expiry) => {
                let left = expiry - now;
                left.as_secs() as i64 + i64::from(left.subsec_nanos() > 0)
            }
            None => lease.ttl,
        };
        let keys = state.keys.get(&id).map(|k| k.iter().cloned().collect()).unwrap_or_default();
        Some(LeaseStatus { granted_ttl: lease.ttl, remaining, keys })
    }

    pub fn leases(&self) -> Vec<LeaseId> {
        self.lock().leases.keys().copied().collect()
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

fn secs(s: i64) -> Duration {
    Duration::from_secs(s.max(0) as u64)
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
        assert_eq!(lessor.renew(1), Ok(10));
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

    #[test]
    fn keys_attached_before_recovery_are_kept() {
        let (lessor, _) = lessor();
        lessor.attach(9, b"k");
        lessor.recover([StoredLease { id: 9, ttl: 30, remaining_ttl: 0 }]);
        assert_eq!(lessor.status(9).unwrap().keys, vec![Bytes::from_static(b"k")]);
    }
}
