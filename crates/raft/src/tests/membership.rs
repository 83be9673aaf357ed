//! Membership changes: single-step changes, joint consensus (auto and explicit leave), one
//! pending change at a time, learners, removing the leader, removed nodes, restarts.

use super::*;
use crate::{
    ConfChange, ConfChangeI, ConfChangeSingle, ConfChangeTransition, ConfChangeType::*,
    ConfChangeV2, Error, HardState, MessageType::*,
};

fn simple(t: crate::ConfChangeType, id: u64) -> ConfChange {
    let mut cc = ConfChange { node_id: id, ..Default::default() };
    cc.set_change_type(t);
    cc
}

fn v2(changes: &[(crate::ConfChangeType, u64)], transition: ConfChangeTransition) -> ConfChangeV2 {
    let mut cc = ConfChangeV2 {
        changes: changes.iter().map(|&(t, id)| ConfChangeSingle::new(t, id)).collect(),
        ..Default::default()
    };
    cc.set_transition(transition);
    cc
}

fn propose_cc(net: &mut Network, id: u64, cc: &impl ConfChangeI) {
    net.act(id, |n| n.propose_conf_change(cc)).unwrap();
}

fn cs(net: &Network, id: u64) -> ConfState {
    net.raft(id).prs.config.to_conf_state()
}

#[test]
fn adding_a_voter_replicates_to_it() {
    let mut net = Network::new(&[1, 2, 3]);
    net.campaign(1);
    net.add_node(4, conf(&[1, 2, 3], &[]));
    propose_cc(&mut net, 1, &simple(ConfChangeAddNode, 4));
    assert_eq!(cs(&net, 1).voters, vec![1, 2, 3, 4]);
    assert_eq!(cs(&net, 4).voters, vec![1, 2, 3, 4]);
    net.propose(1, b"x").unwrap();
    assert_eq!(net.applied[&4], vec![Bytes::from_static(b"x")]);
    // Four voters: a quorum is three.
    net.isolate(3);
    net.isolate(4);
    net.propose(1, b"y").unwrap();
    assert!(!net.applied[&1].contains(&Bytes::from_static(b"y")));
}

#[test]
fn removing_a_voter_shrinks_the_quorum() {
    let mut net = Network::new(&[1, 2, 3]);
    net.campaign(1);
    propose_cc(&mut net, 1, &simple(ConfChangeRemoveNode, 3));
    assert_eq!(cs(&net, 1).voters, vec![1, 2]);
    assert!(!net.raft(1).prs.progress.contains_key(&3));
    net.isolate(3);
    net.propose(1, b"x").unwrap();
    assert_eq!(net.applied[&2], vec![Bytes::from_static(b"x")]);
}

#[test]
fn only_one_conf_change_may_be_pending() {
    let mut net = Network::new(&[1, 2, 3]);
    net.campaign(1);
    net.ignore(MsgAppResp);
    propose_cc(&mut net, 1, &simple(ConfChangeRemoveNode, 3));
    propose_cc(&mut net, 1, &simple(ConfChangeRemoveNode, 2));
    let last = net.last_index(1);
    let e = &net.raft(1).log_entries(last, last + 1, u64::MAX).unwrap()[0];
    assert_eq!(e.entry_type(), EntryType::EntryNormal, "the second change became a no-op");
    assert!(e.data.is_empty());
    net.recover();
    net.tick(1, 1);
    assert_eq!(cs(&net, 1).voters, vec![1, 2]);
    // Once applied, the next change is accepted.
    propose_cc(&mut net, 1, &simple(ConfChangeAddLearnerNode, 3));
    assert_eq!(cs(&net, 1).learners, vec![3]);
}

#[test]
fn joint_consensus_with_automatic_leave() {
    let mut net = Network::new(&[1, 2, 3]);
    net.campaign(1);
    net.add_node(4, conf(&[1, 2, 3], &[]));
    let cc = v2(
        &[(ConfChangeAddNode, 4), (ConfChangeRemoveNode, 3)],
        ConfChangeTransition::ConfChangeTransitionAuto,
    );
    propose_cc(&mut net, 1, &cc);
    // Entered the joint configuration, and the leader left it on its own.
    for id in [1, 2, 4] {
        let c = cs(&net, id);
        assert_eq!((c.voters, c.voters_outgoing), (vec![1, 2, 4], vec![]), "node {id}");
    }
    let entries = net.raft(1).log_entries(1, net.last_index(1) + 1, u64::MAX).unwrap();
    let v2_entries =
        entries.iter().filter(|e| e.entry_type() == EntryType::EntryConfChangeV2).count();
    assert_eq!(v2_entries, 2, "enter joint, then the automatic leave");
}

#[test]
fn explicit_joint_configurations_wait_for_an_explicit_leave() {
    let mut net = Network::new(&[1, 2, 3]);
    net.campaign(1);
    net.add_node(4, conf(&[1, 2, 3], &[]));
    let cc = v2(&[(ConfChangeAddNode, 4)], ConfChangeTransition::ConfChangeTransitionJointExplicit);
    propose_cc(&mut net, 1, &cc);
    let c = cs(&net, 1);
    assert_eq!((c.voters, c.voters_outgoing), (vec![1, 2, 3, 4], vec![1, 2, 3]));
    assert!(!c.auto_leave);
    // Another change is refused until the joint configuration is left.
    propose_cc(&mut net, 1, &simple(ConfChangeRemoveNode, 2));
    assert_eq!(cs(&net, 1).voters, vec![1, 2, 3, 4]);
    propose_cc(&mut net, 1, &ConfChangeV2::default());
    let c = cs(&net, 1);
    assert_eq!((c.voters, c.voters_outgoing), (vec![1, 2, 3, 4], vec![]));
    // Leaving when not joint is refused (becomes a no-op).
    propose_cc(&mut net, 1, &ConfChangeV2::default());
    assert_eq!(cs(&net, 1).voters, vec![1, 2, 3, 4]);
}

#[test]
fn joint_commit_needs_both_majorities() {
    let mut net = Network::new(&[1, 2, 3]);
    net.campaign(1);
    for id in [4, 5] {
        net.add_node(id, conf(&[1, 2, 3], &[]));
    }
    let cc = v2(
        &[
            (ConfChangeAddNode, 4),
            (ConfChangeAddNode, 5),
            (ConfChangeRemoveNode, 2),
            (ConfChangeRemoveNode, 3),
        ],
        ConfChangeTransition::ConfChangeTransitionJointExplicit,
    );
    propose_cc(&mut net, 1, &cc);
    assert_eq!(cs(&net, 1).voters_outgoing, vec![1, 2, 3]);
    // The old majority {1,2,3} alone is not enough...
    net.isolate(4);
    net.isolate(5);
    net.propose(1, b"x").unwrap();
    assert!(!net.applied.contains_key(&1));
    net.recover();
    // ...nor the new majority {1,4,5} alone (x commits now: both halves have acked it).
    net.isolate(2);
    net.isolate(3);
    net.tick(1, 1);
    net.propose(1, b"y").unwrap();
    assert_eq!(net.applied[&1], vec![Bytes::from_static(b"x")]);
    net.recover();
    net.tick(1, 1);
    assert_eq!(net.applied[&1].len(), 2);
}

#[test]
fn learners_replicate_but_never_vote_or_campaign() {
    let mut net = Network::with_config(&[1, 2], &[3], |_| {});
    net.campaign(1);
    net.propose(1, b"x").unwrap();
    assert_eq!(net.applied[&3], vec![Bytes::from_static(b"x")]);
    assert!(net.raft(3).is_learner && !net.raft(3).promotable());
    // A learner's acknowledgement does not count: with node 2 gone nothing commits.
    net.isolate(2);
    net.propose(1, b"y").unwrap();
    assert_eq!(net.applied[&1].len(), 1);
    net.recover();
    net.tick(1, 1);
    let term = net.raft(3).term;
    net.isolate(3);
    net.tick(3, 100);
    assert_eq!((net.state(3), net.raft(3).term), (StateRole::Follower, term));
    net.recover();
    // Promotion makes it a voter that may campaign.
    propose_cc(&mut net, 1, &simple(ConfChangeAddNode, 3));
    assert!(net.raft(3).promotable());
    net.campaign(3);
    assert_eq!(net.leader(), Some(3));
}

#[test]
fn a_removed_leader_hands_leadership_over() {
    let mut net = Network::with_config(&[1, 2, 3], &[], |c| c.check_quorum = true);
    net.campaign(1);
    propose_cc(&mut net, 1, &simple(ConfChangeRemoveNode, 1));
    let lead = net.leader().expect("a leader");
    assert_ne!(lead, 1);
    assert_eq!(cs(&net, lead).voters, vec![2, 3]);
    // The old leader learns about the new term from its next heartbeat's answer.
    net.tick(1, 1);
    assert_eq!(net.state(1), StateRole::Follower);
    // The removed node never campaigns again.
    net.isolate(1);
    net.tick(1, 100);
    assert_eq!(net.state(1), StateRole::Follower);
    net.recover();
    net.propose(lead, b"x").unwrap();
    let other = if lead == 2 { 3 } else { 2 };
    assert_eq!(net.applied[&other], vec![Bytes::from_static(b"x")]);
}

#[test]
fn a_removed_follower_stops_campaigning() {
    let mut net = Network::new(&[1, 2, 3]);
    net.campaign(1);
    propose_cc(&mut net, 1, &simple(ConfChangeRemoveNode, 3));
    assert!(!net.raft(3).promotable());
    let term = net.raft(3).term;
    net.isolate(3);
    net.tick(3, 100);
    assert_eq!((net.state(3), net.raft(3).term), (StateRole::Follower, term));
}

#[test]
fn invalid_changes_are_rejected_without_effect() {
    let mut net = Network::new(&[1, 2, 3]);
    let r = &mut net.raw(1).raft;
    let two_voters = v2(
        &[(ConfChangeAddNode, 4), (ConfChangeAddNode, 5)],
        ConfChangeTransition::ConfChangeTransitionAuto,
    );
    // Auto with two changes means joint: fine. Forcing them through a single step is not.
    assert!(r.apply_conf_change(&two_voters).is_ok());
    assert!(matches!(
        r.apply_conf_change(&simple(ConfChangeAddNode, 6).as_v2()),
        Err(Error::InvalidConfChange(_))
    ));
    let before = r.prs.config.clone();
    assert!(r.apply_conf_change(&two_voters).is_err(), "already joint");
    assert_eq!(r.prs.config, before);
}

#[test]
fn a_restarted_node_recovers_its_hard_state_and_membership() {
    let mut store = MemStorage::new_with_conf_state(conf(&[1, 2, 3], &[4]));
    store.append(&[ent(1, 1), ent(2, 2)]);
    store.set_hard_state(HardState { term: 2, vote: 3, commit: 1 });
    let mut c = config(1);
    c.applied = 1;
    let n = RawNode::new(&c, store.clone()).unwrap();
    let st = n.status();
    assert_eq!((st.term(), st.vote(), st.commit(), st.applied), (2, 3, 1, 1));
    assert_eq!(st.config.to_conf_state(), conf(&[1, 2, 3], &[4]));
    assert_eq!(st.state(), StateRole::Follower);
    assert!(!n.has_ready(), "nothing new to persist or apply");
    // Applied beyond the (lazily written) commit index: the commit index catches up.
    c.applied = 2;
    let n = RawNode::new(&c, store.clone()).unwrap();
    assert_eq!((n.status().commit(), n.status().applied), (2, 2));
    c.applied = 3;
    assert!(matches!(RawNode::new(&c, store), Err(Error::InvalidConfig(_))));
}

#[test]
fn status_reports_progress_only_on_the_leader() {
    let mut net = Network::new(&[1, 2, 3]);
    net.campaign(1);
    net.propose(1, b"x").unwrap();
    let st = net.raw(1).status();
    assert_eq!((st.id, st.lead(), st.state()), (1, 1, StateRole::Leader));
    assert_eq!(st.progress.len(), 3);
    assert_eq!(st.progress_of(2).unwrap().matched, 2);
    assert!(net.raw(2).status().progress.is_empty());
}

#[test]
fn a_crashed_removed_leader_is_replaced_through_a_caretaker_election() {
    // Node 1 led, committed its own removal (index 2) and crashed before telling node 2,
    // which still counts node 1 in its quorum and has a shorter log.
    let removal = {
        let mut e = simple(ConfChangeRemoveNode, 1).to_entry();
        e.index = 2;
        e.term = 1;
        e
    };
    let mut s1 = MemStorage::new_with_conf_state(conf(&[2], &[]));
    s1.append(&[ent(1, 1), removal.clone(), ent(3, 1)]);
    s1.set_hard_state(HardState { term: 1, vote: 1, commit: 3 });
    let mut s2 = MemStorage::new_with_conf_state(conf(&[1, 2], &[]));
    s2.append(&[ent(1, 1), removal]);
    s2.set_hard_state(HardState { term: 1, vote: 1, commit: 1 });
    let mut c1 = config(1);
    c1.applied = 3;
    let n1 = RawNode::new(&c1, s1).unwrap();
    let n2 = RawNode::new(&config(2), s2).unwrap();
    let mut net = Network::from_stores(vec![]);
    net.nodes.insert(1, n1);
    net.nodes.insert(2, n2);
    assert!(!net.raft(1).promotable());
    // Node 2 cannot win alone and node 1 refuses it (longer log): node 1 steps in, brings
    // node 2 up to date, and hands leadership over.
    net.campaign(2);
    assert_eq!(net.leader(), Some(2));
    assert_eq!(cs(&net, 2).voters, vec![2]);
    assert!(net.committed(2) >= 3);
    net.propose(2, b"x").unwrap();
    assert_eq!(net.applied[&2], vec![Bytes::from_static(b"x")]);
}

#[test]
fn no_snapshot_is_installed_while_conf_changes_are_being_applied() {
    let cc = {
        let mut e = simple(ConfChangeAddLearnerNode, 3).to_entry();
        e.index = 2;
        e.term = 1;
        e
    };
    let mut store = MemStorage::new_with_conf_state(conf(&[1, 2], &[]));
    store.append(&[ent(1, 1), cc]);
    store.set_hard_state(HardState { term: 1, vote: 0, commit: 2 });
    let mut r = Raft::new(&config(2), store).unwrap();
    let mut m = msg(MsgSnap, 1, 2, 1);
    m.snapshot = Some(crate::Snapshot {
        data: Bytes::new(),
        metadata: Some(crate::SnapshotMetadata {
            conf_state: Some(conf(&[1, 2], &[3])),
            index: 10,
            term: 1,
        }),
    });
    r.step(m).unwrap();
    assert!(r.raft_log.unstable_snapshot().is_none());
    let resp = r.msgs_after_persist.pop().unwrap();
    assert_eq!((resp.msg_type(), resp.index), (MsgAppResp, 2));
}
