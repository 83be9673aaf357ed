//! The seam between the store and the lessor (which lives in the server).
//!
//! The store asks whether a lease exists before a put names it (etcd's "requested lease
//! not found"), and reports every key that gains or loses a lease so the lessor can delete
//! a lease's keys when it expires. Calls happen inside the write path, under the store's
//! write lock: implementations must be quick and must not call back into the store.

use std::fmt;

/// A lease id; 0 means "no lease".
pub type LeaseId = i64;

/// What the store needs from the lessor.
pub trait Lessor: Send + Sync + fmt::Debug {
    /// Whether `lease` exists (is granted and not revoked).
    fn lease_exists(&self, lease: LeaseId) -> bool;
    /// `key` is now attached to `lease` (a put with that lease, or a restore on open).
    fn attach(&self, lease: LeaseId, key: &[u8]);
    /// `key` is no longer attached to `lease` (overwritten or deleted).
    fn detach(&self, lease: LeaseId, key: &[u8]);
}

/// The lessor of a store without a lease subsystem: no lease exists, so a put naming one
/// fails with "requested lease not found" and nothing is ever attached.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoLeases;

impl Lessor for NoLeases {
    fn lease_exists(&self, _lease: LeaseId) -> bool {
        false
    }

    fn attach(&self, _lease: LeaseId, _key: &[u8]) {}

    fn detach(&self, _lease: LeaseId, _key: &[u8]) {}
}
