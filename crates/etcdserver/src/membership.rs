//! Who is in the cluster. Rebuilt on every start from the newest raft snapshot plus
//! the conf changes and attribute updates in the log after it, then kept current by
//! the apply loop. Readers take a short read lock, never across an await.

use std::collections::{BTreeMap, BTreeSet};

use oxetcd_api::etcdserverpb::Member;
use oxetcd_api::oxetcdpb::{ClusterState, MemberAttributes};
use prost::Message as _;

use crate::error::ServerError;
use crate::id;

/// Learners a cluster may have at once (etcd's `maxLearners`).
pub const MAX_LEARNERS: usize = 1;

/// A majority of `voters`.
pub fn quorum(voters: usize) -> usize {
    voters / 2 + 1
}

/// A conf change as this membership reads it, once checked.
#[derive(Debug, Clone, PartialEq)]
pub enum MemberChange {
    /// A new member, voter or learner.
    Add(Member),
    /// A learner becomes a voter.
    Promote(u64),
    Remove(u64),
    /// New peer URLs for a member.
    Update(Member),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Membership {
    members: BTreeMap<u64, Member>,
    removed: BTreeSet<u64>,
    /// Set through the log by the first leader (etcd's cluster version).
    cluster_version: Option<String>,
}

/// One `name=peer-url` pair of `--initial-cluster`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitialMember {
    pub name: String,
    pub peer_urls: Vec<String>,
}

impl Membership {
    /// The members named by `--initial-cluster`, with ids derived from their peer URLs
    /// and the cluster token. Names are known from the flag; client URLs are published
    /// by each member once it starts.
    pub fn initial(initial: &[InitialMember], token: &str) -> Membership {
        let mut membership = Membership::default();
        for m in initial {
            let member_id = id::member_id(&m.peer_urls, token, None);
            let member = Member {
                id: member_id,
                name: m.name.clone(),
                peer_ur_ls: m.peer_urls.clone(),
                client_ur_ls: Vec::new(),
                is_learner: false,
            };
            membership.members.insert(member_id, member);
        }
        membership
    }

    pub fn from_state(state: ClusterState) -> Membership {
        Membership {
            members: state.members.into_iter().map(|m| (m.id, m)).collect(),
            removed: state.removed.into_iter().collect(),
            cluster_version: Some(state.cluster_version).filter(|v| !v.is_empty()),
        }
    }

    pub fn to_state(&self) -> ClusterState {
        ClusterState {
            members: self.members.values().cloned().collect(),
            removed: self.removed.iter().copied().collect(),
            cluster_version: self.cluster_version.clone().unwrap_or_default(),
        }
    }

    pub fn cluster_version(&self) -> Option<&str> {
        self.cluster_version.as_deref()
    }

    /// Logs the cluster version a snapshot brought back, in etcd's words (its e2e
    /// harness waits for this line before it uses a member).
    pub(crate) fn announce_recovered_version(&self) {
        if let Some(version) = self.cluster_version() {
            tracing::info!(cluster_version = %version, "enabled capabilities for version");
        }
    }

    /// Records the cluster version the log set. An empty one is no version and is
    /// ignored: a snapshot stores "no version" as empty, so keeping it would leave a
    /// member that restarts from the snapshot with another state than those that applied
    /// the entry (etcd panics on it).
    pub fn set_cluster_version(&mut self, version: String) {
        if !version.is_empty() {
            self.cluster_version = Some(version);
        }
    }

    /// Members in id order, as MemberList reports them.
    pub fn members(&self) -> Vec<Member> {
        self.members.values().cloned().collect()
    }

    pub fn member(&self, id: u64) -> Option<&Member> {
        self.members.get(&id)
    }

    pub fn ids(&self) -> Vec<u64> {
        self.members.keys().copied().collect()
    }

    /// Raft's configuration as this membership describes it (single-step changes only,
    /// so there is never an outgoing joint half).
    pub fn conf_state(&self) -> oxetcd_raft::ConfState {
        let (learners, voters): (Vec<&Member>, Vec<&Member>) =
            self.members.values().partition(|m| m.is_learner);
        oxetcd_raft::ConfState {
            voters: voters.iter().map(|m| m.id).collect(),
            learners: learners.iter().map(|m| m.id).collect(),
            ..Default::default()
        }
    }

    pub fn is_removed(&self, id: u64) -> bool {
        self.removed.contains(&id)
    }

    pub fn cluster_id(&self) -> u64 {
        id::cluster_id(&self.ids())
    }

    /// Reads and checks a committed conf change against the members now (etcd's
    /// `ValidateConfigurationChange`): a removed id never comes back, a new member's id
    /// and peer URLs are its own, a cluster has at most [`MAX_LEARNERS`] learners, and
    /// only a learner is promoted. `context` is the conf change's: the member, encoded,
    /// for an add or an update; empty for a promotion (an AddNode that names no member;
    /// etcd marks it in a JSON context instead).
    pub fn check_change(
        &self,
        change_type: oxetcd_raft::ConfChangeType,
        node_id: u64,
        context: &[u8],
    ) -> Result<MemberChange, ServerError> {
        use oxetcd_raft::ConfChangeType as T;
        if self.removed.contains(&node_id) {
            return Err(ServerError::MemberNotFound);
        }
        let existing = self.members.get(&node_id);
        let member = (!context.is_empty()).then(|| Member::decode(context).ok()).flatten();
        let urls_taken = |member: &Member| {
            self.members
                .values()
                .filter(|m| m.id != member.id)
                .any(|m| m.peer_ur_ls.iter().any(|u| member.peer_ur_ls.contains(u)))
        };
        match change_type {
            T::ConfChangeAddNode if context.is_empty() => match existing {
                Some(m) if m.is_learner => Ok(MemberChange::Promote(node_id)),
                Some(_) => Err(ServerError::MemberNotLearner),
                None => Err(ServerError::MemberNotFound),
            },
            T::ConfChangeAddNode | T::ConfChangeAddLearnerNode => {
                if existing.is_some() {
                    return Err(ServerError::MemberExists);
                }
                let mut member = member
                    .filter(|m| m.id == node_id)
                    .ok_or(ServerError::Internal("conf change without its member".into()))?;
                member.is_learner = change_type == T::ConfChangeAddLearnerNode;
                if urls_taken(&member) {
                    return Err(ServerError::PeerUrlExists);
                }
                if member.is_learner && self.learners() + 1 > MAX_LEARNERS {
                    return Err(ServerError::TooManyLearners);
                }
                Ok(MemberChange::Add(member))
            }
            T::ConfChangeRemoveNode => {
                existing.ok_or(ServerError::MemberNotFound)?;
                Ok(MemberChange::Remove(node_id))
            }
            T::ConfChangeUpdateNode => {
                let current = existing.ok_or(ServerError::MemberNotFound)?;
                let mut member = member
                    .filter(|m| m.id == node_id)
                    .ok_or(ServerError::Internal("conf change without its member".into()))?;
                if urls_taken(&member) {
                    return Err(ServerError::PeerUrlExists);
                }
                // Only the peer URLs change; the rest is what the member published.
                member.name.clone_from(&current.name);
                member.client_ur_ls.clone_from(&current.client_ur_ls);
                member.is_learner = current.is_learner;
                Ok(MemberChange::Update(member))
            }
        }
    }

    /// Applies a checked change.
    pub fn apply_change(&mut self, change: &MemberChange) {
        match change {
            MemberChange::Add(member) | MemberChange::Update(member) => self.add(member.clone()),
            MemberChange::Promote(id) => {
                if let Some(m) = self.members.get_mut(id) {
                    m.is_learner = false;
                }
            }
            MemberChange::Remove(id) => self.remove(*id),
        }
    }

    /// How many members are learners.
    pub fn learners(&self) -> usize {
        self.members.values().filter(|m| m.is_learner).count()
    }

    /// Voting members, in id order.
    pub fn voters(&self) -> Vec<&Member> {
        self.members.values().filter(|m| !m.is_learner).collect()
    }

    /// Whether a member has started: it published its name (etcd's `IsStarted`).
    pub fn is_started(member: &Member) -> bool {
        !member.name.is_empty()
    }

    /// Whether enough voters have started for a new voter to keep a quorum of started
    /// members (etcd's `IsReadyToAddVotingMember`).
    pub fn ready_to_add_voter(&self) -> bool {
        let voters = self.voters();
        let started = voters.iter().filter(|m| Self::is_started(m)).count();
        let members = voters.len() + 1;
        // A one-member cluster may always grow to two.
        (started == 1 && members == 2) || started >= quorum(members)
    }

    /// Whether the voters left after removing `id` keep a quorum of started members
    /// (etcd's `IsReadyToRemoveVotingMember`).
    pub fn ready_to_remove_voter(&self, id: u64) -> bool {
        let left: Vec<&Member> = self.voters().into_iter().filter(|m| m.id != id).collect();
        let started = left.iter().filter(|m| Self::is_started(m)).count();
        started >= quorum(left.len())
    }

    /// Whether promoting learner `id` keeps a quorum of started voters (etcd's
    /// `IsReadyToPromoteMember`; the learner counts as started).
    pub fn ready_to_promote(&self, id: u64) -> bool {
        let voters = self.voters();
        let started = voters.iter().filter(|m| Self::is_started(m)).count() + 1;
        let members = voters.len() + usize::from(self.members.contains_key(&id));
        started >= quorum(members)
    }

    /// Adds or replaces a member (a committed AddNode or AddLearnerNode).
    pub fn add(&mut self, member: Member) {
        self.removed.remove(&member.id);
        self.members.insert(member.id, member);
    }

    /// Removes a member for good: its id is never accepted again.
    pub fn remove(&mut self, id: u64) {
        self.members.remove(&id);
        self.removed.insert(id);
    }

    /// Records what a started member published about itself.
    pub fn set_attributes(&mut self, id: u64, attributes: MemberAttributes) {
        if let Some(member) = self.members.get_mut(&id) {
            member.name = attributes.name;
            member.client_ur_ls = attributes.client_urls;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_removed_ids_stay_removed() {
        let initial = [
            InitialMember { name: "a".into(), peer_urls: vec!["http://127.0.0.1:2380".into()] },
            InitialMember { name: "b".into(), peer_urls: vec!["http://127.0.0.2:2380".into()] },
        ];
        let mut m = Membership::initial(&initial, "tok");
        let ids = m.ids();
        assert_eq!(ids.len(), 2);
        m.remove(ids[0]);
        assert!(m.is_removed(ids[0]) && m.member(ids[0]).is_none());
        assert_eq!(Membership::from_state(m.to_state()), m);
    }

    /// Found by the `members` fuzz target: an empty version set through the log made
    /// `Some("")`, which a snapshot brought back as `None`.
    #[test]
    fn an_empty_cluster_version_is_no_version() {
        let mut m = Membership::default();
        m.set_cluster_version(String::new());
        assert_eq!(m.cluster_version(), None);
        assert_eq!(Membership::from_state(m.to_state()), m);
        m.set_cluster_version("3.5.0".into());
        m.set_cluster_version(String::new());
        assert_eq!(m.cluster_version(), Some("3.5.0"));
        assert_eq!(Membership::from_state(m.to_state()), m);
    }
}
