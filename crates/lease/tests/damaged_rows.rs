//! Leases read back from a damaged lease table, or checkpointed with any remaining TTL,
//! never make the lessor panic when it leads (findings of the fuzz targets, `fuzz/`).

use std::sync::Arc;
use std::time::Duration;

use oxetcd_lease::{Lessor, StoredLease, SystemClock};

#[test]
fn a_stored_ttl_past_any_instant_leaves_the_lease_unexpiring_instead_of_panicking() {
    let lessor = Lessor::new(1, Arc::new(SystemClock));
    lessor.recover([StoredLease { id: 1, ttl: i64::MAX, remaining_ttl: 0 }]);
    lessor.promote(Duration::from_secs(1));
    assert!(lessor.renew(1).is_ok());
    assert!(lessor.status(1).is_some_and(|s| s.remaining > 0));
    assert!(lessor.expired(10).is_empty());
}

#[test]
fn a_checkpoint_past_any_instant_does_not_panic_the_next_leader() {
    let lessor = Lessor::new(1, Arc::new(SystemClock));
    lessor.grant(1, 60).unwrap();
    lessor.checkpoint(1, i64::MAX);
    lessor.promote(Duration::from_secs(1));
    assert!(lessor.status(1).is_some());
}
