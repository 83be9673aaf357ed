//! Corruption checks (etcd's `etcdserver/corrupt.go`): members compare the HashKV of
//! their stores over the peer port (`Peer.HashKV`, answered by `peers.rs`).
//!
//! - **Initial** (`--experimental-initial-corrupt-check`, etcd 3.4's
//!   `CheckInitialHashKV`): a restarting member hashes its store at its current revision
//!   and asks every peer for its hash at that revision before it serves clients. A peer
//!   with the same compact revision and another hash makes it refuse to start
//!   ("… found data inconsistency with peers"); a peer that is unreachable, behind, or
//!   compacted differently only draws a warning.
//! - **Periodic** (`--experimental-corrupt-check-time`, etcd 3.4's `checkHashKV`): the
//!   leader hashes its store, asks each follower for its hash at the leader's revision,
//!   waits for a linearizable read, and hashes again. The leader's own hash changing at
//!   an unchanged revision, a follower ahead of the leader (revision or compact
//!   revision), or a follower at the leader's first compact revision with another hash,
//!   raises the CORRUPT alarm through the log, once per pass.
//! - **Compaction hashes** (`--experimental-compact-hash-check-enabled`, etcd 3.5's
//!   `CompactHashCheck`): the leader compares members' hashes at revisions just after
//!   compactions, newest first, stopping at the first revision every peer could be
//!   compared at (or at a mismatch, which raises the alarm).
//!
//! The decisions are pure functions over hashes ([`initial_mismatches`],
//! [`periodic_suspects`], [`compact_hash_outcome`]); the async functions gather the
//! hashes and act. Hashing reads the whole key table: it runs on the blocking pool, never
//! on the raft loop or the apply thread.
//!
//! Differences from etcd:
//! - The alarm names the member found divergent (the leader itself when its own hash
//!   changed), as etcd 3.4 before 3.4.23 and 3.5 before 3.5.7 did; later releases raise
//!   it for member 0, since a pairwise comparison cannot tell which side is wrong. Every
//!   member refuses writes under a CORRUPT alarm either way.
//! - etcd 3.5 computes a hash inside each compaction, over exactly the revisions it
//!   removes, and keeps the last ten. With only the store's public API (`hash_kv`,
//!   `compact_revision`), the leader here records, each time it sees the compact
//!   revision move, its hash at its current revision (the first it can hash after the
//!   compaction), keeping ten; peers are asked for their hash at that revision and
//!   compared when they report the same compact revision. It costs one more pass over
//!   the key table on the leader per compaction, and a revision compacted again before it
//!   is checked is dropped unchecked.

use std::collections::VecDeque;
use std::sync::{Arc, Weak};
use std::time::Duration;

use oxetcd_api::etcdserverpb::alarm_request::AlarmAction;
use oxetcd_api::etcdserverpb::{AlarmRequest, AlarmType};
use oxetcd_transport::HashKvError;
use tokio::sync::watch;

use crate::auth::Requester;
use crate::compactor::{Clock, ServerClock};
use crate::config::ServerConfig;
use crate::error::ServerError;
use crate::id::Hex;
use crate::server::EtcdServer;

/// Compaction hashes the leader keeps for the compact hash check (etcd 3.5's
/// `hashStorageMaxSize`, mvcc/hash.go).
pub const COMPACT_HASHES_KEPT: usize = 10;

/// A store's HashKV as compared: the hash at `revision`'s state, taken when the store had
/// compacted up to `compact_revision`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvHash {
    pub revision: i64,
    pub compact_revision: i64,
    pub hash: u32,
}

/// What a peer said when asked for its hash. For an answer, `revision` is the peer's
/// current revision (its response header's), not the one hashed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerHash {
    pub member: u64,
    pub answer: Result<KvHash, HashKvError>,
}

/// Why the initial check refused to start the member. `Display` is etcd's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CorruptError {
    #[error("{member:x} failed to fetch hash ({cause})")]
    LocalHash { member: u64, cause: String },
    #[error("{member:x} found data inconsistency with peers")]
    Inconsistent { member: u64 },
}

/// Why the periodic check suspects a member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Suspicion {
    /// The leader's own hash changed while its revision and compaction did not.
    OwnHashChanged,
    /// The follower's revision is ahead of the leader's.
    RevisionAhead,
    /// The follower's compact revision is ahead of the leader's.
    CompactRevisionAhead,
    /// Same compact revision as the leader's first hash, another hash.
    HashMismatch,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Suspect {
    pub member: u64,
    pub why: Suspicion,
}

/// What one pass of the periodic check found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Peers that answered.
    pub checked: usize,
    /// Every rule broken, in etcd's order.
    pub suspects: Vec<Suspect>,
    /// The member the CORRUPT alarm was proposed for (the first suspect), if any.
    pub alarmed: Option<u64>,
}

/// The outcome of the compact hash check at one revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompactCheck {
    /// A peer at the same compact revision has another hash.
    Mismatch { member: u64 },
    /// Every peer answered at the same compact revision, with the same hash.
    Checked,
    /// Some peers could not be compared (no answer, or another compact revision).
    Skipped { checked: usize, peers: usize },
}

/// etcd's initial check rule: the peers whose hash differs from `local` at the same
/// compact revision. A peer at another compact revision, or without an answer, is no
/// mismatch.
pub fn initial_mismatches(local: &KvHash, peers: &[PeerHash]) -> Vec<u64> {
    peers
        .iter()
        .filter(|p| {
            p.answer
                .as_ref()
                .is_ok_and(|a| a.hash != local.hash && a.compact_revision == local.compact_revision)
        })
        .map(|p| p.member)
        .collect()
}

/// etcd's periodic rules (`checkHashKV`), given the leader's hash before asking the
/// peers (`first`) and after a linearizable read (`second`).
pub fn periodic_suspects(
    leader: u64,
    first: &KvHash,
    second: &KvHash,
    peers: &[PeerHash],
) -> Vec<Suspect> {
    let mut suspects = Vec::new();
    if second.hash != first.hash
        && second.revision == first.revision
        && second.compact_revision == first.compact_revision
    {
        suspects.push(Suspect { member: leader, why: Suspicion::OwnHashChanged });
    }
    for peer in peers {
        let Ok(answer) = &peer.answer else { continue };
        let member = peer.member;
        if answer.revision > second.revision {
            suspects.push(Suspect { member, why: Suspicion::RevisionAhead });
        }
        if answer.compact_revision > second.compact_revision {
            suspects.push(Suspect { member, why: Suspicion::CompactRevisionAhead });
        }
        if answer.compact_revision == first.compact_revision && answer.hash != first.hash {
            suspects.push(Suspect { member, why: Suspicion::HashMismatch });
        }
    }
    suspects
}

/// etcd 3.5's compact hash rule at one recorded hash of the leader's: only peers that
/// answered at the same compact revision are compared; the first with another hash is a
/// mismatch.
pub fn compact_hash_outcome(leader: &KvHash, peers: &[PeerHash]) -> CompactCheck {
    let mut checked = 0;
    for peer in peers {
        let Ok(answer) = &peer.answer else { continue };
        if answer.compact_revision != leader.compact_revision {
            continue;
        }
        if answer.hash != leader.hash {
            return CompactCheck::Mismatch { member: peer.member };
        }
        checked += 1;
    }
    if checked == peers.len() {
        CompactCheck::Checked
    } else {
        CompactCheck::Skipped { checked, peers: peers.len() }
    }
}

/// Whether the member has a WAL already (etcd's `isMemberInitialized`): only such a
/// member is checked at start; a new one has nothing to compare. Call before the server
/// starts (which creates the WAL).
pub fn member_initialized(cfg: &ServerConfig) -> bool {
    crate::bootstrap::has_wal(&crate::bootstrap::wal_dir(cfg))
}

/// This member's HashKV at `revision` (0: its current one), on the blocking pool.
async fn local_hash(server: &EtcdServer, revision: i64) -> Result<KvHash, ServerError> {
    let store = server.store()?;
    let hashed = tokio::task::spawn_blocking(move || store.hash_kv(revision))
        .await
        .map_err(|e| ServerError::Internal(format!("hashing the store failed: {e}")))??;
    let revision = if revision == 0 { hashed.current_rev } else { revision };
    Ok(KvHash { revision, compact_revision: hashed.compact_rev, hash: hashed.hash })
}

/// Every other member's hash at `revision`, asked one after the other as etcd does, each
/// URL with the request timeout. Members without peer URLs are left out.
async fn peer_hashes(server: &EtcdServer, revision: i64) -> Vec<PeerHash> {
    let own = server.member_id();
    let timeout = server.config().request_timeout();
    let mut answers = Vec::new();
    for member in server.members() {
        if member.id == own || member.peer_ur_ls.is_empty() {
            continue;
        }
        let answer =
            server.transport().hash_kv(member.id, &member.peer_ur_ls, revision, timeout).await.map(
                |r| KvHash {
                    revision: r.header.map_or(0, |h| h.revision),
                    compact_revision: r.compact_revision,
                    hash: r.hash,
                },
            );
        answers.push(PeerHash { member: member.id, answer });
    }
    answers
}

/// How often the initial check looks whether the restart's replay has rebuilt the
/// membership.
const REPLAY_POLL: Duration = Duration::from_millis(10);

/// On a restart the membership is rebuilt by replaying the log (etcd loads it from its
/// store before the check; etcd leaves a member without it unchecked): waits, at most a
/// request timeout, until this member knows itself and has applied what it found
/// committed, so every peer the log names is asked.
async fn wait_for_replayed_membership(server: &EtcdServer) {
    let deadline = tokio::time::Instant::now() + server.config().request_timeout();
    loop {
        let status = server.raft_status();
        let knows_itself = server.members().iter().any(|m| m.id == server.member_id());
        if knows_itself && status.applied >= status.committed {
            return;
        }
        if tokio::time::Instant::now() >= deadline || server.is_stopped() {
            tracing::warn!("checking with the membership known so far: the log is still replaying");
            return;
        }
        tokio::time::sleep(REPLAY_POLL).await;
    }
}

/// etcd's `CheckInitialHashKV`: compares this member's hash with every peer's at this
/// member's revision; a mismatch at the same compact revision refuses the start. Run it
/// after the server started and before the client listeners serve, on a member that
/// was initialized before this start ([`member_initialized`]).
pub async fn check_initial_hash_kv(server: &EtcdServer) -> Result<(), CorruptError> {
    let id = server.member_id();
    let member = Hex(id);
    tracing::info!(
        local_member_id = %member,
        timeout = ?server.config().request_timeout(),
        "starting initial corruption check"
    );
    wait_for_replayed_membership(server).await;
    let local = local_hash(server, 0)
        .await
        .map_err(|e| CorruptError::LocalHash { member: id, cause: e.to_string() })?;
    let peers = peer_hashes(server, local.revision).await;
    for peer in &peers {
        let remote = Hex(peer.member);
        match &peer.answer {
            Ok(answer) if answer.hash != local.hash => {
                let message = if answer.compact_revision == local.compact_revision {
                    "found different hash values from remote peer"
                } else {
                    "found different compact revision values from remote peer"
                };
                tracing::warn!(
                    local_member_id = %member,
                    local_member_revision = local.revision,
                    local_member_compact_revision = local.compact_revision,
                    local_member_hash = local.hash,
                    remote_peer_id = %remote,
                    remote_peer_revision = answer.revision,
                    remote_peer_compact_revision = answer.compact_revision,
                    remote_peer_hash = answer.hash,
                    "{message}"
                );
            }
            Ok(_) => {}
            Err(error) => {
                let message = match error {
                    HashKvError::FutureRevision => "cannot fetch hash from slow remote peer",
                    HashKvError::Compacted => {
                        "cannot fetch hash from remote peer; local member is behind"
                    }
                    HashKvError::Unavailable(_) => "cannot fetch hash from remote peer",
                };
                tracing::warn!(
                    local_member_id = %member,
                    local_member_revision = local.revision,
                    local_member_compact_revision = local.compact_revision,
                    local_member_hash = local.hash,
                    remote_peer_id = %remote,
                    %error,
                    "{message}"
                );
            }
        }
    }
    if !initial_mismatches(&local, &peers).is_empty() {
        return Err(CorruptError::Inconsistent { member: id });
    }
    tracing::info!(local_member_id = %member, "initial corruption checking passed; no corruption");
    Ok(())
}

/// One pass of etcd's periodic check (`checkHashKV`), meant for the leader: proposes the
/// CORRUPT alarm for the first suspect and reports what it found. Errors are the local
/// hash's or the linearizable read's.
pub async fn check_hash_kv(server: &EtcdServer) -> Result<CheckReport, ServerError> {
    let first = local_hash(server, 0).await?;
    let peers = peer_hashes(server, first.revision).await;
    server.linearizable_read(None).await?;
    let second = local_hash(server, 0).await?;
    let suspects = periodic_suspects(server.member_id(), &first, &second, &peers);
    for suspect in &suspects {
        let answer =
            peers.iter().find(|p| p.member == suspect.member).and_then(|p| p.answer.as_ref().ok());
        let follower_revision = answer.map(|a| a.revision);
        let follower_compact_revision = answer.map(|a| a.compact_revision);
        let follower_hash = answer.map(|a| a.hash);
        let message = match suspect.why {
            Suspicion::OwnHashChanged => "found hash mismatch",
            Suspicion::RevisionAhead => {
                "revision from follower must be less than or equal to leader's"
            }
            Suspicion::CompactRevisionAhead => {
                "compact revision from follower must be less than or equal to leader's"
            }
            Suspicion::HashMismatch => "same compact revision then hashes must match",
        };
        tracing::warn!(
            member = %Hex(suspect.member),
            leader_revision = second.revision,
            leader_compact_revision = second.compact_revision,
            leader_hash = first.hash,
            leader_hash_after = second.hash,
            ?follower_revision,
            ?follower_compact_revision,
            ?follower_hash,
            "{message}"
        );
    }
    let alarmed = suspects.first().map(|s| s.member);
    if let Some(member) = alarmed {
        raise_corrupt_alarm(server, member).await;
    }
    let checked = peers.iter().filter(|p| p.answer.is_ok()).count();
    tracing::info!(number_of_peers_checked = checked, "finished peer corruption check");
    Ok(CheckReport { checked, suspects, alarmed })
}

/// Proposes `AlarmRequest{ACTIVATE, member, CORRUPT}` through the log as the member
/// itself (etcd's `triggerCorruptAlarm`), waiting until it is applied here.
async fn raise_corrupt_alarm(server: &EtcdServer, member: u64) {
    tracing::error!(member = %Hex(member), "raising the CORRUPT alarm: data inconsistency between members");
    let alarm = AlarmRequest {
        action: AlarmAction::Activate as i32,
        member_id: member,
        alarm: AlarmType::Corrupt as i32,
    };
    if let Err(error) = server.propose(&Requester::Member, None, |r| r.alarm = Some(alarm)).await {
        // Committed or not, the next pass finds the same divergence and proposes again.
        tracing::warn!(member = %Hex(member), %error, "proposing the CORRUPT alarm failed");
    }
}

/// The leader's memory for the compact hash check: hashes recorded after compactions,
/// newest first, and the newest revision checked on every peer.
#[derive(Debug, Default)]
pub struct CompactHashes {
    hashes: VecDeque<KvHash>,
    last_compact_revision: Option<i64>,
    latest_checked: i64,
}

impl CompactHashes {
    /// Records `hash` if it was taken at a compact revision not seen before; keeps
    /// [`COMPACT_HASHES_KEPT`].
    pub fn record(&mut self, hash: KvHash) {
        if self.last_compact_revision == Some(hash.compact_revision) {
            return;
        }
        self.last_compact_revision = Some(hash.compact_revision);
        // A store never compacted has nothing to compare yet.
        if hash.compact_revision <= 0 {
            return;
        }
        self.hashes.push_front(hash);
        self.hashes.truncate(COMPACT_HASHES_KEPT);
    }

    /// The recorded hashes newer than the last fully checked revision and not compacted
    /// away since (`compacted`: the store's compact revision now), newest first.
    pub fn unchecked(&mut self, compacted: i64) -> Vec<KvHash> {
        self.hashes.retain(|h| h.revision > compacted);
        self.hashes.iter().copied().filter(|h| h.revision > self.latest_checked).collect()
    }

    pub fn checked(&mut self, revision: i64) {
        self.latest_checked = self.latest_checked.max(revision);
    }
}

/// One pass of the compact hash check (etcd 3.5's `CompactHashCheck`), meant for the
/// leader: records a hash if the store compacted since the last pass, then checks the
/// unchecked hashes newest first, stopping at the first revision every peer could be
/// compared at, or at a mismatch (which raises the CORRUPT alarm for that peer).
pub async fn check_compact_hashes(
    server: &EtcdServer,
    state: &mut CompactHashes,
) -> Result<Option<CompactCheck>, ServerError> {
    let local = local_hash(server, 0).await?;
    state.record(local);
    let hashes = state.unchecked(local.compact_revision);
    tracing::info!(
        local_member_id = %Hex(server.member_id()),
        timeout = ?server.config().request_timeout(),
        "starting compact hash check"
    );
    let mut last = None;
    for (i, hash) in hashes.iter().enumerate() {
        let peers = peer_hashes(server, hash.revision).await;
        if peers.is_empty() {
            continue;
        }
        let outcome = compact_hash_outcome(hash, &peers);
        last = Some(outcome);
        match outcome {
            CompactCheck::Mismatch { member } => {
                tracing::error!(
                    revision = hash.revision,
                    leader_hash = hash.hash,
                    peer_id = %Hex(member),
                    "failed compaction hash check"
                );
                raise_corrupt_alarm(server, member).await;
                return Ok(last);
            }
            CompactCheck::Checked => {
                tracing::info!(
                    revision = hash.revision,
                    hash = hash.hash,
                    "successfully checked hash on whole cluster"
                );
                state.checked(hash.revision);
                tracing::info!(number_of_hashes_checked = i + 1, "finished compaction hash check");
                return Ok(last);
            }
            CompactCheck::Skipped { checked, peers } => tracing::warn!(
                number_of_peers_checked = checked,
                number_of_peers = peers,
                revision = hash.revision,
                "skipped revision in compaction hash check; was not able to check all peers"
            ),
        }
    }
    tracing::info!(number_of_hashes_checked = hashes.len(), "finished compaction hash check");
    Ok(last)
}

/// Starts the periodic checks the configuration asks for, each ending when the server
/// closes. They run on every member and act only while it leads.
pub(crate) fn spawn(server: &Arc<EtcdServer>, closing: watch::Receiver<bool>) {
    let policy = &server.config().storage_policy;
    let member = Hex(server.member_id());
    if let Some(interval) = policy.corrupt_check_time {
        tracing::info!(local_member_id = %member, ?interval, "enabled corruption checking");
        let clock = ServerClock { closing: closing.clone() };
        let server = Arc::downgrade(server);
        tokio::spawn(async move {
            every(interval, &clock, &server, |server| async move {
                if let Err(error) = check_hash_kv(&server).await {
                    tracing::warn!(%error, "failed to check hash KV");
                }
            })
            .await
        });
    }
    if let Some(interval) = policy.compact_hash_check_time {
        tracing::info!(local_member_id = %member, ?interval, "enabled compaction hash check");
        let clock = ServerClock { closing };
        let server = Arc::downgrade(server);
        tokio::spawn(async move {
            let state = Arc::new(tokio::sync::Mutex::new(CompactHashes::default()));
            every(interval, &clock, &server, |server| {
                let state = state.clone();
                async move {
                    let mut state = state.lock().await;
                    if let Err(error) = check_compact_hashes(&server, &mut state).await {
                        tracing::warn!(%error, "failed to check compaction hashes");
                    }
                }
            })
            .await
        });
    }
}

/// Calls `pass` every `interval` while this member leads; ends when the clock says stop
/// or the server is gone. The server is held only during a pass.
async fn every<F, Fut>(interval: Duration, clock: &ServerClock, server: &Weak<EtcdServer>, pass: F)
where
    F: Fn(Arc<EtcdServer>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    while clock.sleep(interval).await {
        let Some(server) = server.upgrade().filter(|s| !s.is_stopped()) else { return };
        if server.is_leader() {
            pass(server).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEADER: u64 = 1;

    fn hash(revision: i64, compact_revision: i64, hash: u32) -> KvHash {
        KvHash { revision, compact_revision, hash }
    }

    fn peer(member: u64, revision: i64, compact_revision: i64, h: u32) -> PeerHash {
        PeerHash { member, answer: Ok(hash(revision, compact_revision, h)) }
    }

    fn failed(member: u64, error: HashKvError) -> PeerHash {
        PeerHash { member, answer: Err(error) }
    }

    #[test]
    fn initial_check_refuses_only_a_different_hash_at_the_same_compaction() {
        let local = hash(10, 4, 0xaa);
        let table: &[(&[PeerHash], &[u64])] = &[
            (&[peer(2, 12, 4, 0xaa), peer(3, 10, 4, 0xaa)], &[]),
            (&[peer(2, 12, 4, 0xbb), peer(3, 10, 4, 0xaa)], &[2]),
            // Compacted differently: a warning, no refusal.
            (&[peer(2, 12, 6, 0xbb)], &[]),
            // Unreachable, slow or compacted past our revision: warnings.
            (
                &[
                    failed(2, HashKvError::FutureRevision),
                    failed(3, HashKvError::Compacted),
                    failed(4, HashKvError::Unavailable("down".into())),
                ],
                &[],
            ),
            (&[peer(2, 10, 4, 0xbb), peer(3, 10, 4, 0xcc)], &[2, 3]),
        ];
        for (peers, expected) in table {
            assert_eq!(initial_mismatches(&local, peers), *expected, "{peers:?}");
        }
    }

    #[test]
    fn periodic_check_follows_etcd_rules() {
        use Suspicion::*;
        let first = hash(10, 4, 0xaa);
        let same = first;
        // (leader's second hash, peers, expected suspects).
        type Case<'a> = (KvHash, &'a [PeerHash], &'a [(u64, Suspicion)]);
        let table: &[Case] = &[
            (same, &[peer(2, 10, 4, 0xaa), peer(3, 9, 4, 0xaa)], &[]),
            // A follower with another hash at the same compaction.
            (same, &[peer(2, 10, 4, 0xbb), peer(3, 10, 4, 0xaa)], &[(2, HashMismatch)]),
            // Ahead of the leader: revision, compact revision.
            (same, &[peer(2, 11, 4, 0xaa)], &[(2, RevisionAhead)]),
            (same, &[peer(3, 10, 5, 0xcc)], &[(3, CompactRevisionAhead)]),
            // The leader's own hash changed with nothing else changed.
            (hash(10, 4, 0xab), &[], &[(LEADER, OwnHashChanged)]),
            // ... but moving on (a write, a compaction) between the two hashes is fine;
            // followers are compared with the first hash, taken at the revision asked.
            (hash(11, 4, 0xab), &[peer(2, 11, 4, 0xaa)], &[]),
            (hash(11, 6, 0xab), &[peer(2, 11, 6, 0xcc)], &[]),
            // Followers compacted differently, or not answering, are not compared.
            (same, &[peer(2, 10, 2, 0xbb), failed(3, HashKvError::FutureRevision)], &[]),
        ];
        for (second, peers, expected) in table {
            let got: Vec<_> = periodic_suspects(LEADER, &first, second, peers)
                .into_iter()
                .map(|s| (s.member, s.why))
                .collect();
            assert_eq!(got, *expected, "second {second:?}, peers {peers:?}");
        }
    }

    #[test]
    fn compact_hash_check_compares_peers_at_the_same_compaction() {
        let leader = hash(20, 15, 0xaa);
        let table: &[(&[PeerHash], CompactCheck)] = &[
            (&[peer(2, 22, 15, 0xaa), peer(3, 20, 15, 0xaa)], CompactCheck::Checked),
            (&[peer(2, 22, 15, 0xaa), peer(3, 20, 15, 0xbb)], CompactCheck::Mismatch { member: 3 }),
            // A peer not compacted yet (or compacted further) cannot be compared.
            (
                &[peer(2, 22, 10, 0xbb), peer(3, 20, 15, 0xaa)],
                CompactCheck::Skipped { checked: 1, peers: 2 },
            ),
            (
                &[failed(2, HashKvError::Compacted), peer(3, 20, 15, 0xaa)],
                CompactCheck::Skipped { checked: 1, peers: 2 },
            ),
        ];
        for (peers, expected) in table {
            assert_eq!(compact_hash_outcome(&leader, peers), *expected, "{peers:?}");
        }
    }

    #[test]
    fn compact_hashes_are_recorded_once_per_compaction_and_checked_newest_first() {
        let mut state = CompactHashes::default();
        // Never compacted: nothing to check.
        state.record(hash(5, -1, 1));
        assert!(state.unchecked(-1).is_empty());
        state.record(hash(12, 10, 2));
        state.record(hash(13, 10, 3)); // the same compaction: not recorded again
        state.record(hash(22, 20, 4));
        assert_eq!(state.unchecked(20), [hash(22, 20, 4)]); // 12 was compacted away
        state.record(hash(31, 30, 5));
        assert_eq!(state.unchecked(20), [hash(31, 30, 5), hash(22, 20, 4)]);
        state.checked(31);
        assert!(state.unchecked(20).is_empty());
        for i in 0..20 {
            state.record(hash(100 + i * 10 + 1, 100 + i * 10, 6));
        }
        assert_eq!(state.unchecked(20).len(), COMPACT_HASHES_KEPT);
    }
}
