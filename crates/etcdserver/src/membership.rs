//! Who is in the cluster. Rebuilt on every start from the newest raft snapshot plus
//! the conf changes and attribute updates in the log after it, then kept current by
//! the apply loop. Readers take a short read lock, never across an await.

use std::collections::{BTreeMap, BTreeSet};

use oxetcd_api::etcdserverpb::Member;
use oxetcd_api::oxetcdpb::{ClusterState, MemberAttributes};

use crate::id;

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

    pub fn set_cluster_version(&mut self, version: String) {
        self.cluster_version = Some(version);
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
}
