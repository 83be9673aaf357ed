//! `EtcdServer`: starts the raft loop and the apply thread over an opened data dir,
//! and gives request handlers the two ways in: `propose` (through the log) and
//! `linearizable_read` (a batched ReadIndex round).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::mpsc::TrySendError;
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use oxetcd_api::etcdserverpb::{LeaseCheckpoint, LeaseCheckpointRequest, Member, ResponseHeader};
use oxetcd_api::oxetcdpb::{
    ClusterMemberAttrSetRequest, ClusterVersionSetRequest, InternalRaftRequest, MemberAttributes,
    RequestHeader,
};
use oxetcd_mvcc::{ApplyIndex, Store, StoreConfig};
use oxetcd_raft::{Config as RaftConfig, RawNode};
use oxetcd_transport::{Transport, TransportConfig};
use prost::Message as _;
use tokio::sync::{mpsc, oneshot};

use crate::alarm::Alarms;
use crate::apply::Applier;
use crate::auth::{Requester, ServerAuth, TokenProvider};
use crate::bootstrap::{self, StartError};
use crate::config::ServerConfig;
use crate::error::{Fatal, ServerError};
use crate::id::IdGenerator;
use crate::id::{Hex, LeaseHex};
use crate::inbox::{self, BoundedSender};
use crate::maintenance::MAX_CLIENT_SNAPSHOTS;
use crate::node::{Input, LOG_BYTES_HELD, RaftLoop, Retention};
use crate::peers::{PeerRuntime, RaftBridge, TransportOutbox};
use crate::quota::{self, Quota};
use crate::relay::WakeRelay;
pub use crate::state::Applied;
use crate::state::{ApplyResult, Recovered, Shared};
use crate::stats::{Pending, ServerStats};
use crate::watch::WatchHub;
use oxetcd_auth::{JwtTokens, SimpleTokens, TokenSpec};
use oxetcd_lease::{
    LEASE_TABLE, Lessor, MAX_CHECKPOINT_PROPOSALS_PER_CHECK, MAX_CHECKPOINTS_PER_PROPOSAL,
    MAX_REVOKES_PER_CHECK, StoredLease, SystemClock,
};

/// Proposals refused while apply lags commit by more than this (etcd's limit).
const MAX_APPLY_GAP: u64 = 5000;
/// Inputs queued for the raft loop before proposals are refused.
const INBOX_CAPACITY: usize = 16 * 1024;
/// Committed batches queued for the apply thread before the raft loop waits.
const APPLY_QUEUE: usize = 64;
/// Linearizable reads queued for the next ReadIndex round before reads are refused.
const READ_QUEUE: usize = 64 * 1024;
/// Raft messages are cut at this size (etcd's default).
const MAX_SIZE_PER_MSG: u64 = 1024 * 1024;
/// Appends in flight to one follower (etcd's default).
const MAX_INFLIGHT_MSGS: usize = 4096 / 8;
/// Uncommitted bytes a leader accepts before dropping proposals.
const MAX_UNCOMMITTED_BYTES: u64 = 1 << 30;
/// The etcd release oxetcd stands in for, reported wherever etcd reports its version
/// (Status, `/version`, `/metrics`, `--version`): the release its compatibility suite runs
/// against (etcd 3.4.23 and etcd 3.4's e2e suite), so that tools and dashboards comparing
/// versions see the etcd they were validated with. What oxetcd serves beyond 3.4 (some of
/// 3.5-3.7's API) is additive and needs no version check.
pub const ETCD_VERSION: &str = "3.4.23";
/// The cluster version a new cluster's first leader records: etcd's rule, the server's
/// major.minor. etcd 3.4 members accept it (they refuse a higher one), and etcd 3.5 and
/// later raise it themselves. A cluster an older oxetcd created keeps the 3.5.0 it recorded.
pub const ETCD_CLUSTER_VERSION: &str = "3.4.0";

type ReadWaiter = oneshot::Sender<Result<(), ServerError>>;

/// A member's view of raft, for status answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RaftStatus {
    /// 0 while no leader is known.
    pub leader: u64,
    pub term: u64,
    pub committed: u64,
    pub applied: u64,
}

pub struct EtcdServer {
    pub(crate) shared: Arc<Shared>,
    pub(crate) inbox: BoundedSender<Input>,
    reads: mpsc::Sender<ReadWaiter>,
    pub(crate) ids: IdGenerator,
    pub(crate) cfg: ServerConfig,
    pub(crate) transport: Arc<Transport>,
    peer_runtime: PeerRuntime,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// The watchable store: apply publishes to it, Watch streams subscribe to it.
    watch: Arc<WatchHub>,
    /// Set when the member begins to close.
    closing: tokio::sync::watch::Sender<bool>,
    /// `--quota-backend-bytes`, checked before a request enters the log.
    pub(crate) quota: Quota,
    /// Read views of the backend held for `Snapshot` streams.
    pub(crate) client_snapshots: Arc<tokio::sync::Semaphore>,
    /// Carries the apply thread's answers to the waiting requests (relay.rs says why).
    pub(crate) relay: WakeRelay,
}

impl EtcdServer {
    /// Opens (or creates) the data dir and starts the member. Must run inside a tokio
    /// runtime, which serves the ReadIndex batching and the attribute publication.
    pub fn start(cfg: ServerConfig) -> Result<Arc<EtcdServer>, StartError> {
        let opened = bootstrap::open(&cfg)?;
        let converted = bootstrap::convert_etcd_backend(&cfg.data_dir)?;
        let backend = bootstrap::backend_path(&cfg.data_dir);
        let store_config = StoreConfig {
            max_txn_ops: cfg.max_txn_ops,
            max_request_bytes: cfg.max_request_bytes,
            batch_interval: cfg.backend_batch_interval,
            batch_limit: cfg.backend_batch_limit,
            compaction_batch_limit: cfg.storage_policy.compaction_batch_limit,
            ..Default::default()
        };
        let lessor = Lessor::new(
            Lessor::min_ttl_for(cfg.election_ticks, cfg.heartbeat),
            Arc::new(SystemClock),
        );
        let lessor = Arc::new(if cfg.enable_lease_checkpoint {
            lessor.with_checkpoints(cfg.lease_checkpoint_interval)
        } else {
            lessor
        });
        let backend_error = |error| StartError::Backend { path: backend.clone(), error };
        // The store reattaches every live key to its lease as it opens; the leases'
        // TTLs come from the lease table right after.
        let store = Store::open_path(&backend, store_config.clone(), lessor.clone())
            .map_err(backend_error)?;
        let store = install_received_backend(&cfg, &opened, store, &store_config, &lessor)?;
        lessor.recover(stored_leases(&store).map_err(backend_error)?);
        let auth_store = stored_auth(&store).map_err(backend_error)?;
        let auth = ServerAuth::new(auth_store, token_provider(&cfg)?, cfg.bcrypt_cost);
        let alarms = Alarms::recover(&store).map_err(backend_error)?;
        let quota = Quota::from_flag(cfg.quota_backend_bytes);
        let mut consistent = store.consistent_index();
        if converted && consistent.index < opened.applied {
            // etcd 3.4 records the consistent index only with key-value changes, so the
            // entries its last snapshot covers may end in conf changes past it. Those
            // are in the snapshot's membership: the backend is current up to it.
            consistent = ApplyIndex { index: opened.applied, term: opened.applied_term };
            store.set_consistent_index(consistent).map_err(backend_error)?;
            store.force_commit().map_err(backend_error)?;
        }
        if consistent.index < opened.applied {
            return Err(StartError::Corrupt(format!(
                "backend holds index {} but the snapshot is at {}: the backend lost data",
                consistent.index, opened.applied
            )));
        }
        let stats = ServerStats::new(opened.wal.stats(), store_config.stats.clone());
        let shared = Arc::new(Shared::new(
            opened.member_id,
            opened.cluster_id,
            opened.membership,
            opened.applied,
            Recovered { store: Arc::new(store), lessor, auth, alarms },
            stats,
        ));

        let watch = {
            let shared = shared.clone();
            WatchHub::start(Box::new(move || shared.store()))
        };

        let mut raft_config = RaftConfig::new(opened.member_id);
        raft_config.election_tick = cfg.election_ticks;
        raft_config.heartbeat_tick = 1;
        raft_config.applied = opened.applied;
        raft_config.max_size_per_msg = MAX_SIZE_PER_MSG;
        raft_config.max_committed_size_per_ready = MAX_SIZE_PER_MSG * 16;
        raft_config.max_inflight_msgs = MAX_INFLIGHT_MSGS;
        raft_config.max_uncommitted_entries_size = MAX_UNCOMMITTED_BYTES;
        raft_config.seed = opened.member_id ^ std::process::id() as u64;
        raft_config.pre_vote = cfg.pre_vote;
        let mut node = RawNode::new(&raft_config, opened.storage)?;
        // etcd's initial election tick advance: the first election comes after a tick or
        // a few rather than a whole election timeout.
        if cfg.initial_election_tick_advance {
            for _ in 1..cfg.election_ticks {
                node.tick();
            }
        }

        let (inbox, inbox_rx) = inbox::bounded(INBOX_CAPACITY);
        let snap_dir = bootstrap::member_dir(&cfg.data_dir).join("snap");
        let bridge = RaftBridge { inbox: inbox.clone(), shared: Arc::downgrade(&shared) };
        let peer_runtime = PeerRuntime::new().map_err(StartError::Runtime)?;
        let transport = {
            let _on_peer_runtime = peer_runtime.handle().enter();
            let mut transport_config =
                TransportConfig::new(opened.cluster_id, opened.member_id, snap_dir);
            transport_config.tls = cfg.peer_dial_tls.clone();
            transport_config.peer_urls = cfg.initial_advertise_peer_urls.clone();
            Arc::new(Transport::new(transport_config, Arc::new(bridge)))
        };
        // Members known from the snapshot; the log's conf changes add the rest.
        for member in shared.membership().members() {
            if member.id != opened.member_id {
                transport.add_peer(member.id, member.peer_ur_ls);
            }
        }
        let (control_tx, control_rx) = std::sync::mpsc::channel();
        let (apply_tx, apply_rx) = std::sync::mpsc::sync_channel(APPLY_QUEUE);
        let raft_loop = RaftLoop {
            node,
            wal: opened.wal,
            snapshotter: opened.snapshotter,
            conf_state: opened.conf_state,
            shared: shared.clone(),
            inbox: inbox_rx,
            control: control_rx,
            apply_tx,
            outbox: Arc::new(TransportOutbox { transport: transport.clone() }),
            tick: cfg.heartbeat,
            election_ticks: cfg.election_ticks as u32,
            retention: Retention {
                snapshot_catchup_entries: cfg.snapshot_catchup_entries,
                max_held_for_followers: cfg.snapshot_count,
                max_bytes_held: LOG_BYTES_HELD,
                max_snapshots: cfg.max_snapshots,
                max_wals: cfg.max_wals,
            },
            last_heartbeat: HashMap::new(),
        };
        let applier = Applier {
            shared: shared.clone(),
            transport: transport.clone(),
            snap_dir: bootstrap::member_dir(&cfg.data_dir).join("snap"),
            backend: backend.clone(),
            store_config,
            tasks: apply_rx,
            control: control_tx,
            inbox: inbox.clone(),
            snapshot_count: cfg.snapshot_count,
            last_snapshot: opened.applied,
            last_trim: opened.applied,
            watch: watch.clone(),
            copying: Arc::default(),
        };
        let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.to_string())
                .spawn(f)
                .expect("spawn a server thread")
        };
        let threads = vec![
            spawn("oxetcd-raft", Box::new(move || raft_loop.run())),
            spawn("oxetcd-apply", Box::new(move || applier.run())),
        ];

        let (reads, reads_rx) = mpsc::channel(READ_QUEUE);
        let server = Arc::new(EtcdServer {
            shared,
            inbox,
            reads,
            ids: IdGenerator::new(opened.member_id),
            cfg,
            transport,
            peer_runtime,
            threads: Mutex::new(threads),
            watch,
            closing: tokio::sync::watch::Sender::new(false),
            quota,
            client_snapshots: Arc::new(tokio::sync::Semaphore::new(MAX_CLIENT_SNAPSHOTS)),
            relay: WakeRelay::start(),
        });
        tokio::spawn(read_index_loop(Arc::downgrade(&server), reads_rx));
        tokio::spawn(publish_attributes(server.clone()));
        tokio::spawn(set_cluster_version(Arc::downgrade(&server)));
        tokio::spawn(revoke_expired_leases(Arc::downgrade(&server)));
        tokio::spawn(purge_expired_tokens(Arc::downgrade(&server)));
        crate::compactor::spawn(&server, server.closing.subscribe());
        crate::corrupt::spawn(&server, server.closing.subscribe());
        Ok(server)
    }

    /// The peer transport; its service is served on the peer listeners.
    pub fn transport(&self) -> &Arc<Transport> {
        &self.transport
    }

    /// Where peer traffic runs: the peer listeners belong there too.
    pub fn peer_runtime(&self) -> &tokio::runtime::Handle {
        self.peer_runtime.handle()
    }

    pub fn watch_hub(&self) -> &Arc<WatchHub> {
        &self.watch
    }

    pub fn config(&self) -> &ServerConfig {
        &self.cfg
    }

    /// What the member counted so far, for metrics.
    pub fn stats(&self) -> &ServerStats {
        &self.shared.stats
    }

    /// The raft state as this member sees it now.
    pub fn raft_status(&self) -> RaftStatus {
        let shared = &self.shared;
        RaftStatus {
            leader: shared.leader(),
            term: shared.term.load(Ordering::SeqCst),
            committed: shared.committed.load(Ordering::SeqCst),
            applied: shared.applied_index(),
        }
    }

    /// The cluster's members, as this member has applied them.
    pub fn members(&self) -> Vec<Member> {
        self.shared.membership().members()
    }

    /// The cluster version the leader recorded, if it has yet.
    pub fn cluster_version(&self) -> Option<String> {
        self.shared.membership().cluster_version().map(str::to_string)
    }

    /// The store as of now (a snapshot install may replace it later); `Stopped` once
    /// the member stopped, which never serves data again, not even a serializable read.
    pub fn store(&self) -> Result<Arc<Store>, ServerError> {
        if self.is_stopped() {
            return Err(ServerError::Stopped);
        }
        Ok(self.shared.store())
    }

    pub fn member_id(&self) -> u64 {
        self.shared.member_id
    }

    /// The header every response carries; `revision` is what the request saw or made.
    pub fn header(&self, revision: i64) -> ResponseHeader {
        ResponseHeader {
            cluster_id: self.shared.cluster_id,
            member_id: self.shared.member_id,
            revision,
            raft_term: self.shared.term.load(Ordering::SeqCst),
        }
    }

    /// Puts a request through the log and waits until it is applied here, at most until
    /// the server's request timeout or the client's deadline, whichever comes first
    /// (etcd's request context): then `Timeout`, though the request may still commit.
    /// A request that would take the backend past its quota is refused with `NoSpace`
    /// instead, and raises the NOSPACE alarm (etcd's quota servers).
    ///
    /// The request is built and encoded when this is called, so the future returned holds
    /// only the encoded bytes while it waits: a whole `InternalRaftRequest` (1,256
    /// bytes) held across an await made every write's future, which tonic boxes for each
    /// call, kilobytes larger.
    pub fn propose<F: FnOnce(&mut InternalRaftRequest)>(
        &self,
        from: &Requester,
        client_deadline: Option<Instant>,
        fill: F,
    ) -> impl Future<Output = ApplyResult> + Send + use<'_, F> {
        let proposal = self.build_proposal(from, fill);
        async move {
            match proposal? {
                Proposal::OverQuota => {
                    self.raise_nospace(client_deadline).await;
                    Err(ServerError::NoSpace)
                }
                Proposal::Encoded { id, data } => {
                    self.propose_encoded(id, data, client_deadline).await
                }
            }
        }
    }

    /// The request `fill` makes, from `from`, ready for the log.
    fn build_proposal(
        &self,
        from: &Requester,
        fill: impl FnOnce(&mut InternalRaftRequest),
    ) -> Result<Proposal, ServerError> {
        if self.is_stopped() {
            return Err(ServerError::Stopped);
        }
        let id = self.ids.next();
        let mut header = RequestHeader { id, ..Default::default() };
        from.fill_header(&mut header);
        let mut request = InternalRaftRequest { header: Some(header), ..Default::default() };
        fill(&mut request);
        let cost = quota::cost(&request);
        if cost > 0 && !self.quota.available(self.backend_in_use(), cost) {
            return Ok(Proposal::OverQuota);
        }
        Ok(Proposal::Encoded { id, data: self.encode_proposal(request)? })
    }

    /// Puts `request`, whose header carries `id`, through the log and waits for it; as
    /// [`EtcdServer::propose`], encoded when called.
    pub(crate) fn propose_request(
        &self,
        id: u64,
        request: InternalRaftRequest,
        client_deadline: Option<Instant>,
    ) -> impl Future<Output = ApplyResult> + Send + '_ {
        let proposal = self.encode_proposal(request);
        async move { self.propose_encoded(id, proposal?, client_deadline).await }
    }

    /// `request` as the log carries it, unless the log is too far ahead of the apply
    /// or the request too large. The request is dropped once encoded: its keys and
    /// values share the buffer the client's message was decoded from (8 KiB or more,
    /// tonic's), which would otherwise stay allocated for as long as the proposal waits,
    /// for every request in flight.
    fn encode_proposal(&self, request: InternalRaftRequest) -> Result<Vec<u8>, ServerError> {
        let committed = self.shared.committed.load(Ordering::SeqCst);
        if committed > self.shared.applied_index() + MAX_APPLY_GAP {
            return Err(ServerError::TooManyRequests);
        }
        let data = request.encode_to_vec();
        drop(request);
        if data.len() > self.cfg.max_request_bytes {
            return Err(ServerError::RequestTooLarge);
        }
        Ok(data)
    }

    /// Puts the encoded request `data`, whose header carries `id`, through the log and
    /// waits for it.
    async fn propose_encoded(
        &self,
        id: u64,
        data: Vec<u8>,
        client_deadline: Option<Instant>,
    ) -> ApplyResult {
        let stats = &self.shared.stats;
        let _pending = Pending::new(&stats.proposals_pending);
        let done = self.relay.relayed(self.shared.wait.register(id));
        match self.inbox.try_send(Input::Propose { id, data: data.into() }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.shared.wait.cancel(id);
                ServerStats::bump(&stats.proposals_failed);
                return Err(ServerError::TooManyRequests);
            }
            Err(TrySendError::Disconnected(_)) => {
                self.shared.wait.cancel(id);
                return Err(ServerError::Stopped);
            }
        }
        let own_deadline = Instant::now() + self.cfg.request_timeout();
        let deadline = client_deadline.map_or(own_deadline, |client| client.min(own_deadline));
        match tokio::time::timeout_at(deadline.into(), done).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(ServerError::Stopped),
            Err(_) => {
                self.shared.wait.cancel(id);
                ServerStats::bump(&stats.proposals_failed);
                Err(ServerError::Timeout)
            }
        }
    }

    /// Waits until this member has applied everything committed before the call:
    /// afterwards a local read is linearizable. A read still waiting at the client's
    /// deadline ends with `DeadlineExceeded` (etcd answers with its context's error); the
    /// server's own request timeout ends it with `Timeout`.
    pub async fn linearizable_read(
        &self,
        client_deadline: Option<Instant>,
    ) -> Result<(), ServerError> {
        if self.is_stopped() {
            return Err(ServerError::Stopped);
        }
        let (tx, rx) = oneshot::channel();
        self.reads.try_send(tx).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => ServerError::TooManyRequests,
            mpsc::error::TrySendError::Closed(_) => ServerError::Stopped,
        })?;
        let read = async { rx.await.unwrap_or(Err(ServerError::Stopped)) };
        match client_deadline {
            None => read.await,
            Some(deadline) => tokio::time::timeout_at(deadline.into(), read)
                .await
                .unwrap_or(Err(ServerError::DeadlineExceeded)),
        }
    }

    /// The first step of closing, before the listeners drain: ends the streams that
    /// never end on their own (peers', watches, lease keep-alives), or a graceful
    /// shutdown would wait for them until its grace period runs out, and their
    /// connections would keep the server, and so the data dir, open.
    pub fn begin_close(&self) {
        self.transport.stop();
        self.watch.close();
        self.closing.send_replace(true);
    }

    /// Whether [`EtcdServer::begin_close`] was called: new long-lived streams are refused.
    pub fn is_closing(&self) -> bool {
        *self.closing.borrow()
    }

    /// Resolves once [`EtcdServer::begin_close`] was called: long-lived streams end then.
    pub async fn closing(&self) {
        let _ = self.closing.subscribe().wait_for(|&closing| closing).await;
    }

    /// Stops the raft loop and the apply thread and waits for them; the backend gets a
    /// final commit. Safe to call more than once.
    pub fn stop(&self) {
        self.begin_close();
        let _ = self.inbox.send_beyond_bound(Input::Stop);
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for thread in threads {
            let _ = thread.join();
        }
        self.shared.stopped.store(true, Ordering::SeqCst);
        // Nothing can answer what still waits: its tasks (publishing the member, say)
        // would otherwise hold the server, and so the backend's file lock, until their
        // timeouts, and a restart in the same process would find the backend open.
        self.shared.halt();
    }

    /// Tells when the backend's file is closed. After [`EtcdServer::stop`] that is when
    /// the last task holding the server (or a read snapshot) lets go of it.
    pub fn backend_release(&self) -> oxetcd_mvcc::FileRelease {
        self.shared.store().file_release()
    }

    /// Waits until the member has published itself and serves clients.
    pub async fn wait_ready(&self) {
        let _ = self.shared.ready.subscribe().wait_for(|&ready| ready).await;
    }

    /// Users, roles and tokens.
    pub fn auth(&self) -> &ServerAuth {
        &self.shared.auth
    }

    /// Who a client request is for, from what it carries (etcd's `AuthInfoFromCtx`): a
    /// token names its user; without one, a verified client certificate's common name
    /// does, with `--client-cert-auth`; otherwise nobody. While auth is disabled nothing
    /// is checked, so credentials are not looked at.
    pub async fn requester(
        &self,
        credentials: ClientCredentials<'_>,
        client_deadline: Option<Instant>,
    ) -> Result<Requester, ServerError> {
        let auth = &self.shared.auth;
        if !auth.store().is_enabled() {
            return Ok(Requester::anonymous());
        }
        if let Some(token) = credentials.token {
            self.wait_token_applied(token, client_deadline).await?;
            return match auth.token_info(token, Instant::now()) {
                Some(info) => Ok(Requester::Client(info)),
                None => {
                    tracing::warn!(token, "invalid auth token");
                    Err(oxetcd_auth::AuthError::InvalidAuthToken.into())
                }
            };
        }
        match credentials.cert_common_name {
            Some(name) if self.cfg.client_cert_auth && !name.is_empty() => {
                let revision = auth.store().revision();
                Ok(Requester::Client(oxetcd_auth::AuthInfo { user: name.to_owned(), revision }))
            }
            _ => Ok(Requester::anonymous()),
        }
    }

    /// A simple token names the raft index of the Authenticate entry that made it: a
    /// member that has not applied it yet waits until it has (etcd's
    /// `isValidSimpleToken`), at most until the request's deadline. A malformed token
    /// is left for the lookup to refuse.
    async fn wait_token_applied(
        &self,
        token: &str,
        client_deadline: Option<Instant>,
    ) -> Result<(), ServerError> {
        let Some(index) = oxetcd_auth::token_index(token) else { return Ok(()) };
        if self.shared.applied_index() >= index {
            return Ok(());
        }
        let own_deadline = Instant::now() + self.cfg.request_timeout();
        let deadline = client_deadline.map_or(own_deadline, |client| client.min(own_deadline));
        let mut applied = self.shared.applied.subscribe();
        let shared = &self.shared;
        let caught_up = applied.wait_for(|&a| a >= index || shared.is_stopped());
        match tokio::time::timeout_at(deadline.into(), caught_up).await {
            Ok(Ok(_)) if !shared.is_stopped() => Ok(()),
            Ok(_) => Err(ServerError::Stopped),
            Err(_) => Err(oxetcd_auth::AuthError::InvalidAuthToken.into()),
        }
    }

    /// Checks a request served locally (a read) against the auth store as of now.
    /// Members pass; so does everyone while auth is disabled.
    pub fn authorize_local(
        &self,
        from: &Requester,
        check: impl FnOnce(
            &oxetcd_auth::AuthStore,
            &oxetcd_auth::AuthInfo,
        ) -> Result<(), oxetcd_auth::AuthError>,
    ) -> Result<(), ServerError> {
        let Requester::Client(info) = from else { return Ok(()) };
        let store = self.shared.auth.store();
        if !store.is_enabled() {
            return Ok(());
        }
        check(&store, info).map_err(ServerError::from)
    }

    /// After a local read was served: refuses it if the auth state changed since the
    /// requester's token was checked, for the read may have used a revoked permission
    /// (etcd's `doSerialize`).
    pub fn auth_unchanged(&self, from: &Requester) -> Result<(), ServerError> {
        match from {
            Requester::Client(info)
                if info.revision != 0 && info.revision != self.shared.auth.store().revision() =>
            {
                Err(oxetcd_auth::AuthError::AuthOldRevision.into())
            }
            _ => Ok(()),
        }
    }

    pub fn lessor(&self) -> &Lessor {
        &self.shared.lessor
    }

    /// A fresh lease id for a grant that did not choose one: positive, unique across
    /// members (the member id is in its high bits), as etcd makes them.
    pub fn next_lease_id(&self) -> i64 {
        (self.ids.next() & (i64::MAX as u64)) as i64
    }

    /// The leader's first advertised client URL, for requests only it can answer.
    pub fn leader_client_url(&self) -> Option<String> {
        let leader = self.shared.leader();
        self.shared.membership().member(leader).and_then(|m| m.client_ur_ls.first().cloned())
    }

    /// Whether this member is a learner: it replicates the log but does not vote, and
    /// serves only serializable reads and its status.
    pub fn is_learner(&self) -> bool {
        let id = self.shared.member_id;
        self.shared.membership().member(id).is_some_and(|m| m.is_learner)
    }

    pub fn is_leader(&self) -> bool {
        self.shared.is_leader.load(Ordering::SeqCst)
    }

    pub fn is_stopped(&self) -> bool {
        self.shared.is_stopped()
    }

    /// The storage failure that stopped the member, if one did.
    pub fn fatal(&self) -> Option<Fatal> {
        self.shared.fatal()
    }

    /// Waits until a storage failure stops the member: the embedder then closes the
    /// listeners and exits non-zero (etcd's fatal log line and exit).
    pub async fn wait_fatal(&self) -> Fatal {
        self.shared.wait_fatal().await
    }

    /// Waits until this member applied its own removal from the cluster: the embedder
    /// then closes the listeners and exits cleanly, as etcd does.
    pub async fn wait_removed(&self) {
        self.shared.wait_removed().await
    }
}

/// One ReadIndex round at a time; every read that arrived while the previous round was
/// in flight joins the next one, so a round's cost is shared by all of them. Holds the
/// server weakly: it ends when the server is dropped (which closes `waiting`).
async fn read_index_loop(server: Weak<EtcdServer>, mut waiting: mpsc::Receiver<ReadWaiter>) {
    while let Some(first) = waiting.recv().await {
        let mut batch = vec![first];
        while let Ok(next) = waiting.try_recv() {
            batch.push(next);
        }
        let Some(server) = server.upgrade() else { return };
        // The leader keeps pending ReadIndex requests by context, across every member's
        // requests: the context must be unique cluster-wide, like a request id.
        let ctx = server.ids.next();
        let result = read_index_round(&server, ctx, server.cfg.request_timeout()).await;
        for waiter in batch {
            let _ = waiter.send(result.clone());
        }
    }
}

/// How long a ReadIndex round waits for its answer before asking again. A follower's
/// request to the leader, or the leader's answer, can be lost on the way (a dropped peer
/// message, a stream that broke), and raft sends neither again: without asking again,
/// the round and every read batched in it would wait out the whole request timeout once
/// messages flow again. etcd (3.5 and later) asks again after 500 ms too.
const READ_INDEX_RETRY: Duration = Duration::from_millis(500);

async fn read_index_round(
    server: &EtcdServer,
    ctx: u64,
    timeout: Duration,
) -> Result<(), ServerError> {
    let shared = &server.shared;
    let mut answer = server.relay.relayed(shared.register_read(ctx));
    if server.inbox.try_send(Input::ReadIndex(ctx)).is_err() {
        shared.fail_read(ctx);
        return Err(ServerError::TooManyRequests);
    }
    let deadline = tokio::time::Instant::now() + timeout;
    let index = loop {
        let retry = (tokio::time::Instant::now() + READ_INDEX_RETRY).min(deadline);
        match tokio::time::timeout_at(retry, &mut answer).await {
            Ok(Ok(result)) => break result?,
            Ok(Err(_)) => return Err(ServerError::Stopped),
            Err(_) if retry >= deadline => {
                shared.fail_read(ctx);
                return Err(ServerError::Timeout);
            }
            // Asked again under the same context: a leader still working on it ignores
            // the repeat, and whichever answer comes first completes the round. A full
            // inbox skips this turn.
            Err(_) => {
                tracing::debug!(ctx, "no answer to ReadIndex yet; asking again");
                let _ = server.inbox.try_send(Input::ReadIndex(ctx));
            }
        }
    };
    let mut applied = shared.applied.subscribe();
    // A member that stops applies nothing more: it wakes this wait to say so.
    let caught_up = applied.wait_for(|&a| a >= index || shared.is_stopped());
    match tokio::time::timeout(timeout, caught_up).await {
        Ok(Ok(_)) if !shared.is_stopped() => Ok(()),
        Ok(_) => Err(ServerError::Stopped),
        Err(_) => Err(ServerError::Timeout),
    }
}

/// Tells the cluster this member's name and client URLs, through the log, retrying
/// until it sticks (etcd's publish).
async fn publish_attributes(server: Arc<EtcdServer>) {
    let attributes = MemberAttributes {
        name: server.cfg.name.clone(),
        client_urls: server.cfg.advertise_client_urls.clone(),
    };
    let member_id = server.member_id();
    while !server.is_stopped() {
        let request =
            ClusterMemberAttrSetRequest { member_id, member_attributes: Some(attributes.clone()) };
        match server
            .propose(&Requester::Member, None, |r| r.cluster_member_attr_set = Some(request))
            .await
        {
            Ok(_) => {
                // A leader records the cluster version before serving, so clients never
                // see the log without it (etcd's leader sets it right after starting).
                propose_cluster_version(&server).await;
                server.shared.ready.send_replace(true);
                tracing::info!(
                    member = %Hex(member_id),
                    name = %attributes.name,
                    client_urls = ?attributes.client_urls,
                    "published local member to cluster through raft"
                );
                return;
            }
            Err(_) if server.is_stopped() => return,
            Err(e) => {
                tracing::debug!(error = %e, "publishing member attributes failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// How often a member checks whether, as leader, it must set the cluster version.
const CLUSTER_VERSION_CHECK: Duration = Duration::from_millis(200);

/// On the leader, once this member is ready: records the cluster version through the
/// log if nobody has yet (a leader elected after the first one published). Ends with the
/// server.
async fn set_cluster_version(server: Weak<EtcdServer>) {
    loop {
        let Some(server) = server.upgrade() else { return };
        if server.is_stopped() {
            return;
        }
        if *server.shared.ready.borrow() {
            propose_cluster_version(&server).await;
        }
        drop(server);
        tokio::time::sleep(CLUSTER_VERSION_CHECK).await;
    }
}

/// Proposes the cluster version if this member leads and it is not set yet.
async fn propose_cluster_version(server: &EtcdServer) {
    if !server.is_leader() || server.shared.membership().cluster_version().is_some() {
        return;
    }
    tracing::info!(cluster_version = ETCD_CLUSTER_VERSION, "setting up initial cluster version");
    let set = ClusterVersionSetRequest { ver: ETCD_CLUSTER_VERSION.to_string() };
    if let Err(e) =
        server.propose(&Requester::Member, None, |r| r.cluster_version_set = Some(set)).await
    {
        tracing::debug!(error = %e, "setting the cluster version failed; retrying");
    }
}

/// What a client request carries to say who sends it.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientCredentials<'a> {
    /// The `token` (or `authorization`) metadata.
    pub token: Option<&'a str>,
    /// The common name of the client's verified TLS certificate.
    pub cert_common_name: Option<&'a str>,
}

/// How often expired simple tokens are forgotten (etcd sweeps every second).
const TOKEN_PURGE_INTERVAL: Duration = Duration::from_secs(1);

/// Forgets expired simple tokens, so unused ones do not pile up. Ends with the server.
async fn purge_expired_tokens(server: Weak<EtcdServer>) {
    loop {
        tokio::time::sleep(TOKEN_PURGE_INTERVAL).await;
        let Some(server) = server.upgrade() else { return };
        if server.is_stopped() {
            return;
        }
        server.shared.auth.purge_expired(Instant::now());
    }
}

/// How often the leader looks for expired leases (etcd checks every 500 ms).
const LEASE_EXPIRY_CHECK: Duration = Duration::from_millis(500);

/// The backend of a leader's snapshot that the raft loop saved (its snap file and WAL
/// marker are on disk) but that the member stopped before swapping in: the apply
/// thread's install failed, or the process died between the two. The received file is
/// still in `member/snap` under the snapshot's index, and the backend in service lags
/// the snapshot. It is swapped in now, as the install would have (etcd opens the
/// snapshot's backend at start for the same reason); without it the member could not
/// start at all, its backend being behind its log.
fn install_received_backend(
    cfg: &ServerConfig,
    opened: &bootstrap::Opened,
    store: Store,
    store_config: &StoreConfig,
    lessor: &Arc<Lessor>,
) -> Result<Store, StartError> {
    let backend = bootstrap::backend_path(&cfg.data_dir);
    let received = bootstrap::member_dir(&cfg.data_dir)
        .join("snap")
        .join(oxetcd_transport::received_snapshot_file(opened.applied));
    if store.consistent_index().index >= opened.applied || !received.exists() {
        return Ok(store);
    }
    let failed = |error| StartError::Backend { path: backend.clone(), error };
    let io = |e: std::io::Error| {
        failed(oxetcd_mvcc::Error::Backend(format!("{}: {e}", received.display())))
    };
    tracing::info!(
        index = opened.applied,
        backend_index = store.consistent_index().index,
        path = %received.display(),
        "installing the leader's snapshot received before the member stopped"
    );
    store.close().map_err(failed)?;
    std::fs::rename(&received, &backend).map_err(io)?;
    if let Some(dir) = backend.parent() {
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
    }
    // The old store attached its keys to the lessor as it opened.
    lessor.reset(std::iter::empty());
    Store::open_path(&backend, store_config.clone(), lessor.clone()).map_err(failed)
}

/// The leases in the backend's lease table.
fn stored_leases(store: &Store) -> Result<Vec<StoredLease>, oxetcd_mvcc::Error> {
    let rows = store.aux_scan(LEASE_TABLE)?;
    rows.into_iter()
        .map(|(_, value)| {
            StoredLease::decode(value).map_err(|e| oxetcd_mvcc::Error::Corrupt(e.to_string()))
        })
        .collect()
}

/// The token provider `--auth-token` names, its keys loaded.
fn token_provider(cfg: &ServerConfig) -> Result<TokenProvider, StartError> {
    match &cfg.auth_token {
        TokenSpec::Simple => Ok(TokenProvider::Simple(SimpleTokens::new(cfg.auth_token_ttl))),
        TokenSpec::Jwt(options) => {
            for unknown in &options.unknown_options {
                tracing::warn!(option = %unknown, "unknown token option");
            }
            let tokens = JwtTokens::new(options).map_err(StartError::AuthToken)?;
            if tokens.is_verify_only() {
                tracing::warn!("JWT has no private key: this member cannot sign tokens");
            }
            Ok(TokenProvider::Jwt(Box::new(tokens)))
        }
    }
}

/// The auth store the backend's auth tables hold.
pub(crate) fn stored_auth(store: &Store) -> Result<oxetcd_auth::AuthStore, oxetcd_mvcc::Error> {
    let rows = oxetcd_auth::AuthRows {
        auth: store.aux_scan(oxetcd_auth::AUTH_TABLE)?,
        users: store.aux_scan(oxetcd_auth::AUTH_USERS_TABLE)?,
        roles: store.aux_scan(oxetcd_auth::AUTH_ROLES_TABLE)?,
    };
    oxetcd_auth::AuthStore::recover(rows).map_err(|e| oxetcd_mvcc::Error::Corrupt(e.to_string()))
}

/// On the leader, with checkpoints enabled: records the remaining TTL of the leases
/// whose checkpoint is due, in bounded batches and a bounded number of entries per check
/// (etcd's checkpoint rate).
async fn checkpoint_leases(server: &EtcdServer) {
    for _ in 0..MAX_CHECKPOINT_PROPOSALS_PER_CHECK {
        let due = server.lessor().due_checkpoints(MAX_CHECKPOINTS_PER_PROPOSAL);
        let full = due.len() == MAX_CHECKPOINTS_PER_PROPOSAL;
        if due.is_empty() {
            return;
        }
        let checkpoints = due
            .into_iter()
            .map(|(id, remaining_ttl)| LeaseCheckpoint { id, remaining_ttl })
            .collect();
        let request = LeaseCheckpointRequest { checkpoints };
        if let Err(e) =
            server.propose(&Requester::Member, None, |r| r.lease_checkpoint = Some(request)).await
        {
            // The leases are scheduled again; a new leader schedules its own anyway.
            tracing::debug!(error = %e, "proposing lease checkpoints failed");
        }
        if !full {
            return;
        }
    }
}

/// Whether this member still leads, as a quorum says (a ReadIndex round), not as its own
/// view says. A leader paused (SIGSTOP, a stalled disk) past an election keeps its view
/// and its lessor's deadlines when it resumes; the leases that "expired" meanwhile were
/// kept alive through the new leader, and a revoke proposed now would be forwarded to
/// it and commit (etcd's #15247; its fix is the same check, `ensureLeadership`). Found
/// by the robustness harness: a key deleted 161 ms before its lease's TTL ran out, with
/// the leader paused (`scripts/robustness.sh --seed 811 --faults pause --scenario-secs
/// 30 --runs 1`).
async fn confirmed_leader(server: &EtcdServer) -> bool {
    server.linearizable_read(None).await.is_ok() && server.is_leader()
}

/// Between finding leases expired and proposing their revokes: tests widen this moment
/// (`lease::expired-found=sleep(N)`), in which the member may stop leading.
fn found_expired_leases() {
    failpoint!("lease::expired-found", |_| ());
}

/// On the leader: revokes expired leases through the log, a bounded number per check so
/// a mass expiry cannot flood it; checkpoints leases first, if enabled. Ends with the
/// server.
async fn revoke_expired_leases(server: Weak<EtcdServer>) {
    loop {
        tokio::time::sleep(LEASE_EXPIRY_CHECK).await;
        let Some(server) = server.upgrade() else { return };
        if server.is_stopped() {
            return;
        }
        checkpoint_leases(&server).await;
        let expired = server.lessor().expired(MAX_REVOKES_PER_CHECK);
        if expired.is_empty() {
            continue;
        }
        found_expired_leases();
        if !confirmed_leader(&server).await {
            tracing::info!(
                leases = expired.len(),
                "leases look expired, but a quorum does not confirm this member leads: not revoking them"
            );
            continue;
        }
        for id in expired {
            let revoke = oxetcd_api::etcdserverpb::LeaseRevokeRequest { id };
            match server.propose(&Requester::Member, None, |r| r.lease_revoke = Some(revoke)).await
            {
                Ok(_) => tracing::info!(lease = %LeaseHex(id), "revoked expired lease"),
                Err(e) => {
                    tracing::debug!(lease = %LeaseHex(id), error = %e, "revoking an expired lease failed; retrying")
                }
            }
        }
    }
}

/// A request built for the log, not yet put through it.
enum Proposal {
    /// It would take the backend past its quota: refused, the NOSPACE alarm raised.
    OverQuota,
    /// Encoded, its header carrying `id`, which its result is waited for under.
    Encoded { id: u64, data: Vec<u8> },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of what `call` returns, for a call that is never made.
    fn returned_size<A, B, C, R>(_call: impl Fn(A, B, C) -> R) -> usize {
        std::mem::size_of::<R>()
    }

    /// A write's future holds its request encoded, not the request itself: every gRPC
    /// write boxes one, and copies it whole into the box.
    #[test]
    fn a_proposals_future_is_smaller_than_its_request() {
        let request = std::mem::size_of::<InternalRaftRequest>();
        let propose = returned_size(|s: &EtcdServer, from: &Requester, d: Option<Instant>| {
            s.propose(from, d, |r: &mut InternalRaftRequest| r.put = None)
        });
        let propose_request =
            returned_size(|s: &EtcdServer, r: InternalRaftRequest, d: Option<Instant>| {
                s.propose_request(1, r, d)
            });
        assert!(propose < request, "propose's future: {propose} bytes, a request {request}");
        assert!(
            propose_request < request,
            "propose_request's future: {propose_request} bytes, a request {request}"
        );
    }
}
