//! Elections: §5.2 of the Raft paper, pre-vote, check-quorum, leader lease, leader transfer,
//! proposal dropping.

use super::*;
use crate::{DropReason, Error, MessageType::*};

#[test]
fn leader_election_needs_a_quorum() {
    // (cluster size, nodes cut off from the candidate, pre_vote, expected state, expected term)
    let cases = [
        (3, vec![], false, StateRole::Leader, 1),
        (3, vec![3], false, StateRole::Leader, 1),
        (3, vec![2, 3], false, StateRole::Candidate, 1),
        (5, vec![4, 5], false, StateRole::Leader, 1),
        (5, vec![3, 4, 5], false, StateRole::Candidate, 1),
        (3, vec![2, 3], true, StateRole::PreCandidate, 0),
        (3, vec![3], true, StateRole::Leader, 1),
    ];
    for (i, (size, down, pre_vote, want, term)) in cases.into_iter().enumerate() {
        let ids: Vec<u64> = (1..=size).collect();
        let mut net = Network::with_config(&ids, &[], |c| c.pre_vote = pre_vote);
        for id in down {
            net.isolate(id);
        }
        net.campaign(1);
        assert_eq!(net.state(1), want, "case {i}");
        assert_eq!(net.raft(1).term, term, "case {i}");
    }
}

#[test]
fn single_node_elects_itself_and_commits() {
    let mut net = Network::new(&[1]);
    net.campaign(1);
    assert_eq!(net.state(1), StateRole::Leader);
    net.propose(1, b"a").unwrap();
    assert_eq!(net.committed(1), 2);
    assert_eq!(net.applied[&1], vec![Bytes::from_static(b"a")]);
}

#[test]
fn followers_vote_once_per_term() {
    // (existing vote, candidate, granted)
    let cases = [(0, 2, true), (2, 2, true), (3, 2, false)];
    for (vote, candidate, granted) in cases {
        let mut net = Network::new(&[1, 2, 3]);
        let r = &mut net.raw(1).raft;
        r.become_follower(1, 0);
        r.vote = vote;
        let mut m = msg(MsgVote, candidate, 1, 1);
        m.index = 0;
        r.step(m).unwrap();
        assert_eq!(r.vote, if granted { candidate } else { vote });
        let resp = r.msgs_after_persist.pop().expect("a response");
        assert_eq!(resp.msg_type(), MsgVoteResp);
        assert_eq!(resp.reject, !granted, "vote {vote} candidate {candidate}");
    }
}

#[test]
fn vote_requires_an_up_to_date_log() {
    // Voter log: [1@1, 2@2]. (candidate last index, last term, granted) — §5.4.1.
    let cases =
        [(2, 2, true), (3, 2, true), (1, 2, false), (5, 1, false), (1, 3, true), (0, 0, false)];
    for (index, log_term, granted) in cases {
        let mut net = Network::new(&[1, 2]);
        let r = &mut net.raw(1).raft;
        r.raft_log.append(&[ent(1, 1), ent(2, 2)]);
        r.become_follower(2, 0);
        let mut m = msg(MsgVote, 2, 1, 3);
        m.index = index;
        m.log_term = log_term;
        r.step(m).unwrap();
        let resp = r.msgs_after_persist.pop().unwrap();
        assert_eq!(!resp.reject, granted, "candidate ({index}, {log_term})");
        assert_eq!(r.term, 3, "a higher term is adopted either way");
    }
}

#[test]
fn randomized_election_timeout_is_in_range_and_varies() {
    let mut seen = BTreeSet::new();
    for seed in 0..50 {
        let mut c = config(1);
        c.seed = seed;
        let mut r = Raft::new(&c, MemStorage::new_with_conf_state(conf(&[1, 2], &[]))).unwrap();
        for term in 1..5 {
            r.become_follower(term, 0);
            let t = r.randomized_election_timeout();
            assert!((10..20).contains(&t), "timeout {t}");
            seen.insert(t);
        }
    }
    assert!(seen.len() > 5, "timeouts should spread: {seen:?}");
}

#[test]
fn follower_campaigns_exactly_at_its_timeout() {
    let mut net = Network::new(&[1, 2, 3]);
    net.isolate(1);
    let t = net.raft(1).randomized_election_timeout();
    net.tick(1, t - 1);
    assert_eq!(net.state(1), StateRole::Follower);
    net.tick(1, 1);
    assert_eq!(net.state(1), StateRole::Candidate);
}

#[test]
fn candidate_yields_to_a_leader_of_its_term() {
    let mut net = Network::new(&[1, 2, 3]);
    net.isolate(1);
    net.campaign(1);
    assert_eq!((net.state(1), net.raft(1).term), (StateRole::Candidate, 1));
    let mut app = msg(MsgApp, 2, 1, 1);
    app.index = 0;
    net.raw(1).raft.step(app).unwrap();
    assert_eq!((net.state(1), net.raft(1).lead), (StateRole::Follower, 2));
}

#[test]
fn leader_steps_down_on_higher_term() {
    let mut net = Network::new(&[1, 2, 3]);
    net.campaign(1);
    net.raw(1).raft.step(msg(MsgHeartbeat, 2, 1, 5)).unwrap();
    assert_eq!((net.state(1), net.raft(1).term, net.raft(1).lead), (StateRole::Follower, 5, 2));
}

#[test]
fn pre_vote_keeps_a_partitioned_node_from_inflating_its_term() {
    let mut net = Network::with_config(&[1, 2, 3], &[], |c| c.pre_vote = true);
    net.campaign(1);
    net.isolate(3);
    for _ in 0..5 {
        net.timeout(3);
    }
    assert_eq!(net.state(3), StateRole::PreCandidate);
    assert_eq!(net.raft(3).term, 1, "pre-candidates do not bump the term");
    net.recover();
    net.tick_all(1);
    assert_eq!(net.leader(), Some(1), "the rejoining node does not disrupt the leader");
    assert_eq!(net.raft(1).term, 1);
}

#[test]
fn without_pre_vote_a_rejoining_node_disrupts_the_leader() {
    let mut net = Network::new(&[1, 2, 3]);
    net.campaign(1);
    net.isolate(3);
    net.timeout(3);
    net.timeout(3);
    assert_eq!(net.raft(3).term, 3);
    net.recover();
    // The old leader hears about the higher term from node 3's next vote request.
    net.timeout(3);
    assert_ne!(net.state(1), StateRole::Leader);
    assert!(net.raft(1).term >= 3);
}

#[test]
fn pre_vote_rejects_candidates_with_stale_logs_without_changing_terms() {
    let mut net = Network::with_config(&[1, 2, 3], &[], |c| c.pre_vote = true);
    net.campaign(1);
    net.isolate(3);
    net.propose(1, b"x").unwrap();
    net.recover();
    // Node 3 lacks an entry: its pre-vote fails, nobody's term moves.
    net.cut(1, 3);
    net.campaign(3);
    assert_eq!(net.state(3), StateRole::PreCandidate, "node 2 refused, node 1 unreachable");
    assert_eq!((net.raft(2).term, net.raft(3).term), (1, 1));
    assert_eq!(net.raft(2).lead, 1);
}

#[test]
fn check_quorum_makes_an_isolated_leader_step_down() {
    let mut net = Network::with_config(&[1, 2, 3], &[], |c| c.check_quorum = true);
    net.campaign(1);
    net.isolate(1);
    // Two full election timeouts: one to clear `recent_active`, one to notice.
    net.tick(1, 2 * 10);
    assert_eq!(net.state(1), StateRole::Follower);
    assert_eq!(net.raft(1).term, 1, "stepping down does not bump the term");
}

#[test]
fn check_quorum_leader_with_live_followers_stays() {
    let mut net = Network::with_config(&[1, 2, 3], &[], |c| c.check_quorum = true);
    net.campaign(1);
    net.tick_all(50);
    assert_eq!(net.leader(), Some(1));
}

#[test]
fn leader_lease_ignores_disruptive_vote_requests() {
    let mut net = Network::with_config(&[1, 2, 3], &[], |c| c.check_quorum = true);
    net.campaign(1);
    // Node 3 is partitioned and campaigns without pre-vote, bumping its term.
    net.isolate(3);
    net.timeout(3);
    net.timeout(3);
    let t3 = net.raft(3).term;
    assert!(t3 > 1);
    net.recover();
    // Node 2 heard from the leader recently: it ignores the higher-term request entirely.
    let mut m = msg(MsgVote, 3, 2, t3 + 1);
    m.index = 10;
    m.log_term = 10;
    net.raw(2).raft.step(m).unwrap();
    assert_eq!((net.raft(2).term, net.raft(2).vote), (1, 1));
    // Once the lease expired (no leader contact for an election timeout) it listens again.
    net.isolate(1);
    net.tick(2, 10);
    let mut m = msg(MsgVote, 3, 2, t3 + 1);
    m.index = 10;
    m.log_term = 10;
    net.raw(2).raft.step(m).unwrap();
    assert_eq!((net.raft(2).term, net.raft(2).vote), (t3 + 1, 3));
}

#[test]
fn leader_transfer_to_an_up_to_date_follower() {
    let mut net = Network::with_config(&[1, 2, 3], &[], |c| c.check_quorum = true);
    net.campaign(1);
    net.act(1, |n| n.transfer_leader(2));
    assert_eq!(net.leader(), Some(2));
    assert_eq!(net.raft(2).term, 2);
    assert_eq!(net.raft(1).lead, 2);
}

#[test]
fn leader_transfer_to_a_lagging_follower_catches_it_up_first() {
    let mut net = Network::new(&[1, 2, 3]);
    net.campaign(1);
    net.isolate(3);
    net.propose(1, b"a").unwrap();
    net.recover();
    // Hold back appends so the transfer has to wait for the catch-up.
    net.ignore(MsgApp);
    net.act(1, |n| n.transfer_leader(3));
    assert_eq!(net.raft(1).lead_transferee, Some(3));
    assert_eq!(net.state(1), StateRole::Leader);
    assert_eq!(
        net.propose(1, b"b"),
        Err(Error::ProposalDropped(DropReason::LeaderTransferInProgress))
    );
    net.recover();
    net.tick(1, 1); // heartbeat → the follower's response triggers the catch-up
    assert_eq!(net.leader(), Some(3));
    assert_eq!(net.last_index(3), net.last_index(1));
}

#[test]
fn leader_transfer_is_aborted_after_an_election_timeout() {
    let mut net = Network::new(&[1, 2, 3]);
    net.campaign(1);
    net.isolate(3);
    net.act(1, |n| n.transfer_leader(3));
    assert_eq!(net.raft(1).lead_transferee, Some(3));
    net.tick(1, 10);
    assert_eq!(net.raft(1).lead_transferee, None);
    assert_eq!(net.state(1), StateRole::Leader);
    net.propose(1, b"ok").unwrap();
}

#[test]
fn leader_transfer_ignores_self_learners_and_strangers() {
    let mut net = Network::with_config(&[1, 2], &[3], |_| {});
    net.campaign(1);
    for target in [1, 3, 9] {
        net.act(1, |n| n.transfer_leader(target));
        assert_eq!(net.raft(1).lead_transferee, None, "target {target}");
        assert_eq!(net.leader(), Some(1));
    }
}

#[test]
fn leader_transfer_bypasses_the_lease_and_pre_vote() {
    let mut net = Network::with_config(&[1, 2, 3], &[], |c| {
        c.check_quorum = true;
        c.pre_vote = true;
    });
    net.campaign(1);
    net.act(1, |n| n.transfer_leader(3));
    assert_eq!(net.leader(), Some(3));
}

#[test]
fn follower_forwards_a_transfer_to_itself() {
    let mut net = Network::new(&[1, 2, 3]);
    net.campaign(1);
    net.act(2, |n| n.transfer_leader(2));
    assert_eq!(net.leader(), Some(2));
}

#[test]
fn proposals_are_dropped_with_a_reason() {
    let mut net = Network::new(&[1, 2, 3]);
    assert_eq!(net.propose(1, b"x"), Err(Error::ProposalDropped(DropReason::NoLeader)));
    net.isolate(1);
    net.campaign(1);
    assert_eq!(net.propose(1, b"x"), Err(Error::ProposalDropped(DropReason::Campaigning)));
    let mut net = Network::with_config(&[1, 2, 3], &[], |c| c.disable_proposal_forwarding = true);
    net.campaign(1);
    assert_eq!(net.propose(2, b"x"), Err(Error::ProposalDropped(DropReason::ForwardingDisabled)));
}

#[test]
fn followers_forward_proposals_to_the_leader() {
    let mut net = Network::new(&[1, 2, 3]);
    net.campaign(1);
    net.propose(2, b"via-2").unwrap();
    for id in 1..=3 {
        assert_eq!(net.applied[&id], vec![Bytes::from_static(b"via-2")]);
    }
}

#[test]
fn stale_term_messages_are_answered_or_ignored() {
    let mut net = Network::with_config(&[1, 2, 3], &[], |c| c.check_quorum = true);
    net.campaign(1);
    net.act(1, |n| n.transfer_leader(2));
    assert_eq!(net.leader(), Some(2));
    let r = &mut net.raw(3).raft;
    // A heartbeat from the deposed leader gets an answer carrying the newer term.
    r.step(msg(MsgHeartbeat, 1, 3, 1)).unwrap();
    let resp = r.msgs_after_persist.pop().expect("answered");
    assert_eq!((resp.msg_type(), resp.term), (MsgAppResp, 2));
    // A stale vote response or append response is ignored.
    r.step(msg(MsgVoteResp, 1, 3, 1)).unwrap();
    assert!(r.msgs_after_persist.is_empty());
    assert_eq!((r.term, r.lead), (2, 2));
}

#[test]
fn a_learner_tells_a_stale_leader_about_newer_terms() {
    // Without pre-vote and check-quorum a stale leader normally learns newer terms from vote
    // requests; a learner never campaigns, so it answers stale appends instead.
    let mut net = Network::with_config(&[1, 2], &[3], |_| {});
    net.campaign(1);
    let r3 = &mut net.raw(3).raft;
    r3.become_follower(5, 0);
    r3.step(msg(MsgHeartbeat, 1, 3, 1)).unwrap();
    let resp = r3.msgs_after_persist.pop().expect("answered");
    assert_eq!((resp.msg_type(), resp.term), (MsgAppResp, 5));
    let r2 = &mut net.raw(2).raft;
    r2.become_follower(5, 0);
    r2.step(msg(MsgHeartbeat, 1, 2, 1)).unwrap();
    assert!(r2.msgs_after_persist.is_empty(), "a voter will campaign and tell it that way");
}
