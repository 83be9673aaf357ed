//! What the raft loop, the apply thread and the request handlers share.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use oxetcd_api::etcdserverpb::{
    AlarmMember, CompactionResponse, DeleteRangeResponse, LeaseGrantResponse, PutResponse,
    TxnResponse,
};
use oxetcd_mvcc::{CompactionHandle, Store};
use tokio::sync::{oneshot, watch};

use crate::alarm::Alarms;
use crate::auth::{AuthApplied, ServerAuth};
use crate::error::{Fatal, ServerError};
use crate::id::Hex;
use crate::membership::Membership;
use crate::stats::ServerStats;
use crate::wait::Wait;
use oxetcd_lease::Lessor;

/// What applying a proposal produced, for the request that proposed it.
#[derive(Debug)]
pub enum Applied {
    Put(PutResponse),
    DeleteRange(DeleteRangeResponse),
    Txn(TxnResponse),
    Compaction(CompactionResponse, CompactionHandle),
    LeaseGrant(LeaseGrantResponse),
    /// The revision after the revoke (its keys' deletes, if any).
    LeaseRevoke(i64),
    Auth(AuthApplied),
    /// The alarms an ACTIVATE or DEACTIVATE changed.
    Alarm(Vec<AlarmMember>),
    /// A request with nothing to report (membership attributes, conf changes).
    Done,
}

pub type ApplyResult = Result<Applied, ServerError>;

#[derive(Debug)]
pub struct Shared {
    pub member_id: u64,
    pub cluster_id: u64,
    /// 0 while there is no known leader.
    pub leader: AtomicU64,
    pub is_leader: AtomicBool,
    pub term: AtomicU64,
    pub committed: AtomicU64,
    /// The index of the last applied entry; watched by linearizable reads.
    pub applied: watch::Sender<u64>,
    /// Set when the member stops serving: on a clean stop, or on a [`Fatal`] failure.
    pub stopped: AtomicBool,
    /// The failure that stopped the member, recorded once (see [`Shared::fail_stop`]).
    fatal: watch::Sender<Option<Fatal>>,
    /// Set when the member applied its own removal (see [`Shared::stop_removed`]).
    removed: watch::Sender<bool>,
    /// Set once the member has published itself to the cluster: clients are served
    /// from then on (etcd's ReadyNotify).
    pub ready: watch::Sender<bool>,
    pub membership: RwLock<Membership>,
    /// Replaced whole when a snapshot from the leader is installed; readers hold the
    /// `Arc` they took for the length of one request.
    store: RwLock<Arc<Store>>,
    pub wait: Wait<ApplyResult>,
    /// Leases: changed by apply, expired and kept alive on the leader.
    pub lessor: Arc<Lessor>,
    /// Users, roles and tokens: changed by apply, read by every request.
    pub auth: ServerAuth,
    /// Raised alarms: changed by apply, read by requests, `/health` and Status.
    pub alarms: RwLock<Alarms>,
    /// Held by a defragmentation for its whole run, and by a snapshot install: both
    /// replace the backend file, and one must not undo the other.
    pub backend_swap: std::sync::Mutex<()>,
    /// ReadIndex rounds in flight, by context.
    reads: Wait<Result<u64, ServerError>>,
    /// Counters for metrics.
    pub stats: ServerStats,
}

/// What a member starts from: the backend and the state kept in its tables.
pub struct Recovered {
    pub store: Arc<Store>,
    pub lessor: Arc<Lessor>,
    pub auth: ServerAuth,
    pub alarms: Alarms,
}

impl Shared {
    pub fn new(
        member_id: u64,
        cluster_id: u64,
        membership: Membership,
        applied: u64,
        recovered: Recovered,
        stats: ServerStats,
    ) -> Shared {
        let Recovered { store, lessor, auth, alarms } = recovered;
        Shared {
            member_id,
            cluster_id,
            leader: AtomicU64::new(0),
            is_leader: AtomicBool::new(false),
            term: AtomicU64::new(0),
            committed: AtomicU64::new(applied),
            applied: watch::Sender::new(applied),
            stopped: AtomicBool::new(false),
            fatal: watch::Sender::new(None),
            removed: watch::Sender::new(false),
            ready: watch::Sender::new(false),
            membership: RwLock::new(membership),
            store: RwLock::new(store),
            wait: Wait::default(),
            lessor,
            auth,
            alarms: RwLock::new(alarms),
            backend_swap: std::sync::Mutex::new(()),
            reads: Wait::default(),
            stats,
        }
    }

    pub fn leader(&self) -> u64 {
        self.leader.load(Ordering::SeqCst)
    }

    pub fn applied_index(&self) -> u64 {
        *self.applied.borrow()
    }

    pub fn store(&self) -> Arc<Store> {
        self.store.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Swaps in the store built from an installed snapshot; the old one closes once the
    /// last request using it is done.
    pub(crate) fn replace_store(&self, store: Arc<Store>) {
        *self.store.write().unwrap_or_else(|e| e.into_inner()) = store;
    }

    pub fn membership(&self) -> std::sync::RwLockReadGuard<'_, Membership> {
        self.membership.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn alarms(&self) -> std::sync::RwLockReadGuard<'_, Alarms> {
        self.alarms.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn membership_mut(&self) -> std::sync::RwLockWriteGuard<'_, Membership> {
        self.membership.write().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn replace_membership(&self, membership: Membership) {
        *self.membership_mut() = membership;
    }

    pub(crate) fn register_read(&self, ctx: u64) -> oneshot::Receiver<Result<u64, ServerError>> {
        self.reads.register(ctx)
    }

    pub(crate) fn complete_read(&self, ctx: u64, index: u64) {
        self.reads.trigger(ctx, Ok(index));
    }

    pub(crate) fn fail_read(&self, ctx: u64) {
        self.reads.trigger(ctx, Err(ServerError::NoLeader));
    }

    pub(crate) fn fail_all_reads(&self, error: ServerError) {
        self.reads.trigger_all(|| Err(error.clone()));
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    /// The failure that stopped the member, if one did.
    pub fn fatal(&self) -> Option<Fatal> {
        self.fatal.borrow().clone()
    }

    /// Waits until a failure stops the member.
    pub async fn wait_fatal(&self) -> Fatal {
        let mut fatal = self.fatal.subscribe();
        let recorded = fatal.wait_for(Option::is_some).await;
        // The sender lives in `self`: the channel cannot close while this borrows it.
        recorded.ok().and_then(|f| f.clone()).expect("a recorded failure")
    }

    /// The one way a member stops on a storage failure, from whichever thread meets it.
    /// The first failure is kept and logged; from then on no request is taken, every
    /// request and read still waiting is answered `Stopped` (their senders are dropped),
    /// and reads waiting for `applied` wake to see the stop. The raft loop and the apply
    /// thread check [`Shared::is_stopped`] and end: no more acks, votes or applies. The
    /// embedder awaits [`Shared::wait_fatal`] to close the listeners and exit.
    pub(crate) fn fail_stop(&self, fatal: Fatal) {
        self.stopped.store(true, Ordering::SeqCst);
        let first = self.fatal.send_if_modified(|slot| {
            if slot.is_some() {
                return false;
            }
            *slot = Some(fatal.clone());
            true
        });
        if !first {
            tracing::debug!(during = fatal.during, error = %fatal.cause, "after the member stopped");
            return;
        }
        tracing::error!(
            member = %Hex(self.member_id),
            during = fatal.during,
            error = %fatal.cause,
            "storage failed; the member stops"
        );
        self.halt();
    }

    /// Stops the member once the cluster removed it: like a failure, nothing more is
    /// taken or applied, but nothing failed, so the process ends cleanly (as etcd's).
    pub(crate) fn stop_removed(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        if self.removed.send_replace(true) {
            return;
        }
        tracing::warn!(
            member = %Hex(self.member_id),
            "the member has been permanently removed from the cluster"
        );
        self.halt();
    }

    /// Whether the cluster removed this member.
    pub fn is_removed(&self) -> bool {
        *self.removed.borrow()
    }

    /// Waits until the cluster removed this member.
    pub async fn wait_removed(&self) {
        // The sender lives in `self`: the channel cannot close while this borrows it.
        let _ = self.removed.subscribe().wait_for(|&removed| removed).await;
    }

    /// Answers every waiting request and read `Stopped`, and wakes the reads waiting for
    /// `applied` to see the stop.
    pub(crate) fn halt(&self) {
        self.wait.close();
        self.reads.close();
        self.applied.send_modify(|_| {});
    }
}
