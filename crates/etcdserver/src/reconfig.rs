//! Runtime membership changes and leadership transfer (etcd's `AddMember`,
//! `RemoveMember`, `UpdateMember`, `PromoteMember`, `MoveLeader`): checks on the proposing
//! member, then a raft conf change that every member checks again and applies
//! (`apply.rs`), answered with the members as this member has applied them.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use oxetcd_api::etcdserverpb::Member;
use oxetcd_raft::{ConfChange, ConfChangeType};
use prost::Message as _;

use crate::error::ServerError;
use crate::id::{self, Hex};
use crate::membership::quorum;
use crate::node::Input;
use crate::server::EtcdServer;
use crate::state::Applied;

/// A learner may be promoted once its log matches at least this share of the leader's
/// (etcd's `readyPercent`).
const LEARNER_READY_PERCENT: u64 = 90;
/// How recently a peer must have been reachable to count as connected for the strict
/// reconfiguration check (etcd's `HealthInterval`).
const HEALTH_INTERVAL: Duration = Duration::from_secs(5);

impl EtcdServer {
    /// Adds a member with these peer URLs, a voter or a learner; answers it (with its new
    /// id) and the members after the change.
    pub async fn add_member(
        &self,
        peer_urls: Vec<String>,
        is_learner: bool,
        client_deadline: Option<Instant>,
    ) -> Result<(Member, Vec<Member>), ServerError> {
        // etcd derives a new member's id from its URLs and the time (no cluster token).
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let member = Member {
            id: id::member_id(&peer_urls, "", Some(now)),
            name: String::new(),
            peer_ur_ls: peer_urls,
            client_ur_ls: Vec::new(),
            is_learner,
        };
        if self.cfg.strict_reconfig_check && !is_learner {
            if !self.shared.membership().ready_to_add_voter() {
                return Err(ServerError::NotEnoughStartedMembers);
            }
            if !self.connected_to_all_voters() {
                return Err(ServerError::Unhealthy);
            }
        }
        let change_type = if is_learner {
            ConfChangeType::ConfChangeAddLearnerNode
        } else {
            ConfChangeType::ConfChangeAddNode
        };
        let context = member.encode_to_vec().into();
        let members = self.configure(change_type, member.id, context, client_deadline).await?;
        Ok((member, members))
    }

    /// Removes a member. A leader asked to remove itself hands leadership to another
    /// voter first, so the cluster does not wait an election timeout for a new one.
    pub async fn remove_member(
        &self,
        id: u64,
        client_deadline: Option<Instant>,
    ) -> Result<Vec<Member>, ServerError> {
        let member = self.shared.membership().member(id).cloned();
        if self.cfg.strict_reconfig_check && member.as_ref().is_some_and(|m| !m.is_learner) {
            if !self.shared.membership().ready_to_remove_voter(id) {
                return Err(ServerError::NotEnoughStartedMembers);
            }
            if !self.quorum_connected_without(id) {
                return Err(ServerError::Unhealthy);
            }
        }
        let local = self.shared.member_id;
        if id == local && self.is_leader() {
            self.transfer_leadership().await?;
        }
        let removal = ConfChangeType::ConfChangeRemoveNode;
        match self.configure(removal, id, Bytes::new(), client_deadline).await {
            // A member removing itself may learn of it from its peers' refusals before it
            // applies the removal (the leader stops sending to it): it stopped because
            // the request succeeded.
            Err(ServerError::Stopped) if id == local && self.shared.is_removed() => {
                Ok(self.members().into_iter().filter(|m| m.id != local).collect())
            }
            answer => answer,
        }
    }

    /// Changes a member's peer URLs.
    pub async fn update_member(
        &self,
        id: u64,
        peer_urls: Vec<String>,
        client_deadline: Option<Instant>,
    ) -> Result<Vec<Member>, ServerError> {
        let context = Member { id, peer_ur_ls: peer_urls, ..Default::default() }.encode_to_vec();
        self.configure(ConfChangeType::ConfChangeUpdateNode, id, context.into(), client_deadline)
            .await
    }

    /// Makes a learner a voter, once its log has caught up with the leader's. Only the
    /// leader knows how far the learner is: elsewhere this answers `NotLeader`, and the
    /// caller forwards the request to the leader.
    pub async fn promote_member(
        &self,
        id: u64,
        client_deadline: Option<Instant>,
    ) -> Result<Vec<Member>, ServerError> {
        match self.shared.membership().member(id) {
            Some(m) if m.is_learner => {}
            Some(_) => return Err(ServerError::MemberNotLearner),
            None => return Err(ServerError::MemberNotFound),
        }
        let matched = self.raft_progress().await?.ok_or(ServerError::NotLeader)?;
        let of = |id: u64| matched.iter().find(|(m, _)| *m == id).map_or(0, |(_, i)| *i);
        if of(id) * 100 < of(self.shared.member_id) * LEARNER_READY_PERCENT {
            return Err(ServerError::LearnerNotReady);
        }
        if self.cfg.strict_reconfig_check && !self.shared.membership().ready_to_promote(id) {
            return Err(ServerError::NotEnoughStartedMembers);
        }
        // An AddNode without a member: a promotion (see `Membership::check_change`).
        self.configure(ConfChangeType::ConfChangeAddNode, id, Bytes::new(), client_deadline).await
    }

    /// Hands leadership to `transferee`, a voter, and waits until it leads (etcd's
    /// `MoveLeader`). Only the leader can.
    pub async fn move_leader(
        &self,
        transferee: u64,
        client_deadline: Option<Instant>,
    ) -> Result<(), ServerError> {
        if !self.is_leader() {
            return Err(ServerError::NotLeader);
        }
        let is_voter = self.shared.membership().member(transferee).is_some_and(|m| !m.is_learner);
        if !is_voter {
            return Err(ServerError::BadLeaderTransferee);
        }
        let leader = self.shared.member_id;
        if transferee == leader {
            return Ok(());
        }
        tracing::info!(from = %Hex(leader), to = %Hex(transferee), "leadership transfer starting");
        let started = Instant::now();
        self.send(Input::TransferLeader(transferee))?;
        let deadline = self.deadline(client_deadline);
        let mut applied = self.shared.applied.subscribe();
        loop {
            if self.shared.leader() == transferee {
                tracing::info!(from = %Hex(leader), to = %Hex(transferee), took = ?started.elapsed(), "leadership transfer finished");
                return Ok(());
            }
            if self.is_stopped() {
                return Err(ServerError::Stopped);
            }
            // Leadership shows in the raft loop's soft state, not in an applied index:
            // look again every tick, or as soon as anything is applied.
            let tick = tokio::time::sleep(self.cfg.heartbeat);
            tokio::select! {
                _ = tick => {}
                _ = applied.changed() => {}
                _ = tokio::time::sleep_until(deadline.into()) => {
                    return Err(ServerError::LeaderTransferTimeout);
                }
            }
        }
    }

    /// Before a leader stops (SIGTERM), hands leadership to the voter it heard from
    /// most recently, so the cluster does not wait an election timeout for a new leader
    /// (etcd's `TransferLeadership`). Does nothing on a follower or a lone voter.
    pub async fn transfer_leadership(&self) -> Result<(), ServerError> {
        if !self.is_leader() {
            return Ok(());
        }
        let local = self.shared.member_id;
        let transferee = {
            let membership = self.shared.membership();
            membership
                .voters()
                .into_iter()
                .filter(|m| m.id != local)
                .filter_map(|m| self.transport.active_since(m.id).map(|since| (since, m.id)))
                .min()
                .map(|(_, id)| id)
        };
        let has_other_voters = self.shared.membership().voters().len() > 1;
        match transferee {
            Some(to) => self.move_leader(to, None).await,
            None if has_other_voters => Err(ServerError::Unhealthy),
            None => Ok(()),
        }
    }

    /// Proposes a conf change of `node_id` and waits until this member applied it.
    async fn configure(
        &self,
        change_type: ConfChangeType,
        node_id: u64,
        context: Bytes,
        client_deadline: Option<Instant>,
    ) -> Result<Vec<Member>, ServerError> {
        if self.is_stopped() {
            return Err(ServerError::Stopped);
        }
        let id = self.ids.next();
        let cc = ConfChange { id, change_type: change_type as i32, node_id, context };
        let done = self.relay.relayed(self.shared.wait.register(id));
        if let Err(e) = self.send(Input::ProposeConfChange(cc)) {
            self.shared.wait.cancel(id);
            return Err(e);
        }
        let deadline = self.deadline(client_deadline);
        match tokio::time::timeout_at(deadline.into(), done).await {
            Ok(Ok(Ok(Applied::Done))) => Ok(self.members()),
            Ok(Ok(Ok(other))) => {
                Err(ServerError::Internal(format!("unexpected conf change result {other:?}")))
            }
            Ok(Ok(Err(e))) => Err(e),
            Ok(Err(_)) => Err(ServerError::Stopped),
            Err(_) => {
                self.shared.wait.cancel(id);
                Err(ServerError::Timeout)
            }
        }
    }

    /// The leader's match index of every member, or `None` off the leader.
    async fn raft_progress(&self) -> Result<Option<Vec<(u64, u64)>>, ServerError> {
        let (reply, progress) = tokio::sync::oneshot::channel();
        self.send(Input::Progress(reply))?;
        progress.await.map_err(|_| ServerError::Stopped)
    }

    fn send(&self, input: Input) -> Result<(), ServerError> {
        use std::sync::mpsc::TrySendError;
        self.inbox.try_send(input).map_err(|e| match e {
            TrySendError::Full(_) => ServerError::TooManyRequests,
            TrySendError::Disconnected(_) => ServerError::Stopped,
        })
    }

    /// The request's deadline: the client's, or the server's request timeout.
    fn deadline(&self, client_deadline: Option<Instant>) -> Instant {
        let own = Instant::now() + self.cfg.request_timeout();
        client_deadline.map_or(own, |client| client.min(own))
    }

    /// Whether this member heard from every other voter lately (etcd's
    /// `isConnectedFullySince`): adding a voter while one is unreachable could leave no
    /// quorum.
    fn connected_to_all_voters(&self) -> bool {
        let local = self.shared.member_id;
        let membership = self.shared.membership();
        membership.voters().iter().filter(|m| m.id != local).all(|m| self.steadily_connected(m.id))
    }

    /// Whether, without `removed`, the voters this member heard from lately still make a
    /// quorum of those left (etcd's check in `mayRemoveMember`).
    fn quorum_connected_without(&self, removed: u64) -> bool {
        let local = self.shared.member_id;
        // A member never heard from can go: it counts for nothing now.
        if removed != local && self.transport.active_since(removed).is_none() {
            return true;
        }
        let membership = self.shared.membership();
        let voters = membership.voters();
        let active =
            voters.iter().filter(|m| m.id == local || self.steadily_connected(m.id)).count();
        // The one being removed may be among them; a quorum of the others must stay.
        active.saturating_sub(1) >= quorum(voters.len() - 1)
    }

    /// Whether the stream to peer `id` has been up for [`HEALTH_INTERVAL`] at least
    /// (etcd counts a peer as connected only then).
    fn steadily_connected(&self, id: u64) -> bool {
        self.transport
            .active_since(id)
            .is_some_and(|since| since + HEALTH_INTERVAL <= Instant::now())
    }
}
