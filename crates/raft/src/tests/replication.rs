//! Log replication and commitment: §5.3 and §5.4 of the Raft paper, Ready/persistence
//! ordering, flow limits on the leader's uncommitted tail, committed-entries paging, and
//! robustness against malformed messages.

use super::*;
use crate::{DropReason, Error, HardState, MessageType::*};

fn data(d: &'static [u8]) -> Bytes {
    Bytes::from_static(d)
}

#[test]
fn leader_replicates_and_every_node_applies_in_order() {
    let mut net = Network::new(&[1, 2, 3]);
    net.campaign(1);
    for d in [&b"a"[..], b"b", b"c"] {
        net.propose(1, d).unwrap();
    }
    for id in 1..=3 {
        assert_eq!(net.applied[&id], vec![data(b"a"), data(b"b"), data(b"c")]);
        assert_eq!(net.committed(id), 4);
    }
}

#[test]
fn commit_requires_a_quorum() {
    let mut net = Network::new(&[1, 2, 3, 4, 5]);
    net.campaign(1);
    for id in [3, 4, 5] {
        net.isolate(id);
    }
    net.propose(1, b"x").unwrap();
    assert_eq!(net.committed(1), 1, "two of five is not a quorum");
    net.recover();
    net.tick(1, 1);
    assert_eq!(net.committed(1), 2);
    assert!(net.applied[&5].contains(&data(b"x")));
}

#[test]
fn leader_counts_its_own_ack_only_after_persisting() {
    let mut net = Network::new(&[1, 2, 3]);
    net.campaign(1);
    net.isolate(3);
    let n1 = net.raw(1);
    n1.propose(&b"x"[..]).unwrap();
    let rd = n1.ready();
    let index = rd.entries.last().unwrap().index;
    assert!(rd.persisted_messages.is_empty(), "a leader's appends need not wait");
    for m in rd.messages.iter().filter(|m| m.to == 2) {
        net.raw(2).raft.step(m.clone()).unwrap();
    }
    for m in net.drain(2) {
        net.raw(1).raft.step(m).unwrap();
    }
    assert_eq!(net.committed(1), index - 1, "follower ack alone is not a quorum of 3");
    let n1 = net.raw(1);
    handle_ready(n1, rd);
    assert_eq!(net.committed(1), index, "our own persisted ack completes the quorum");
}

#[test]
fn entries_of_previous_terms_are_not_committed_by_counting() {
    // Figure 8: a leader of term 3 holds an entry of term 2 that a majority stores; it must
    // not commit it until an entry of its own term is committed on top.
    let mut store = MemStorage::new_with_conf_state(conf(&[1, 2, 3], &[]));
    store.append(&[ent(1, 1), ent(2, 2)]);
    store.set_hard_state(HardState { term: 2, vote: 0, commit: 1 });
    let mut n = RawNode::new(&config(1), store).unwrap();
    n.raft.step(msg(MsgHup, 1, 1, 0)).unwrap();
    let rd = n.ready();
    handle_ready(&mut n, rd);
    n.raft.step(msg(MsgVoteResp, 2, 1, 3)).unwrap();
    let r = &n.raft;
    assert_eq!((r.state, r.term, r.raft_log.last_index()), (StateRole::Leader, 3, 3));
    let rd = n.ready();
    handle_ready(&mut n, rd);
    let mut ack = msg(MsgAppResp, 2, 1, 3);
    ack.index = 2;
    n.raft.step(ack).unwrap();
    assert_eq!(n.raft.raft_log.committed, 1, "index 2 (term 2) is on a majority but not committed");
    let mut ack = msg(MsgAppResp, 2, 1, 3);
    ack.index = 3;
    n.raft.step(ack).unwrap();
    let r = &n.raft;
    assert_eq!(r.raft_log.committed, 3, "committing 3 commits 2 indirectly");
}

#[test]
fn followers_replace_conflicting_suffixes() {
    let mut store = MemStorage::new_with_conf_state(conf(&[1, 2], &[]));
    store.append(&[ent(1, 1), ent(2, 1), ent(3, 1)]);
    let mut r = Raft::new(&config(1), store).unwrap();
    let mut m = msg(MsgApp, 2, 1, 2);
    m.index = 1;
    m.log_term = 1;
    m.entries = vec![ent(2, 2)];
    r.step(m).unwrap();
    assert_eq!(r.raft_log.last_index(), 2);
    assert_eq!(r.raft_log.term(2), Ok(2));
    // A duplicate of entries we already hold does not truncate anything.
    let mut m = msg(MsgApp, 2, 1, 2);
    m.index = 0;
    m.log_term = 0;
    m.entries = vec![ent(1, 1)];
    r.step(m).unwrap();
    assert_eq!(r.raft_log.last_index(), 2);
}

#[test]
fn rejections_carry_a_hint_for_fast_backtracking() {
    // Follower log terms: [1, 1, 2, 2, 2] at indexes 1..=5.
    // (probe index, probe term, rejected, hint, hint term)
    let cases = [
        (7, 5, true, 5, 2),
        (5, 3, true, 5, 2),
        (4, 1, true, 2, 1),
        (2, 1, false, 0, 0),
        (5, 2, false, 0, 0),
    ];
    for (index, log_term, reject, hint, hint_term) in cases {
        let mut store = MemStorage::new_with_conf_state(conf(&[1, 2], &[]));
        store.append(&[ent(1, 1), ent(2, 1), ent(3, 2), ent(4, 2), ent(5, 2)]);
        let mut r = Raft::new(&config(1), store).unwrap();
        let mut m = msg(MsgApp, 2, 1, 5);
        m.index = index;
        m.log_term = log_term;
        r.step(m).unwrap();
        let resp = r.msgs_after_persist.pop().unwrap();
        assert_eq!(resp.reject, reject, "probe ({index}, {log_term})");
        if reject {
            assert_eq!((resp.index, resp.reject_hint, resp.log_term), (index, hint, hint_term));
        }
    }
}

#[test]
fn fast_backtracking_skips_whole_terms() {
    // Leader: 1@1 then 2..=30 in term 3. Follower: 1@1 then 2..=40 in term 2 (never
    // committed). Plain decrementing would need ~30 round trips; hints need one.
    let mut leader = MemStorage::new_with_conf_state(conf(&[1, 2], &[]));
    leader
        .append(&std::iter::once(ent(1, 1)).chain((2..=30).map(|i| ent(i, 3))).collect::<Vec<_>>());
    leader.set_hard_state(HardState { term: 3, vote: 1, commit: 1 });
    let mut follower = MemStorage::new_with_conf_state(conf(&[1, 2], &[]));
    follower
        .append(&std::iter::once(ent(1, 1)).chain((2..=40).map(|i| ent(i, 2))).collect::<Vec<_>>());
    follower.set_hard_state(HardState { term: 2, vote: 0, commit: 1 });
    let mut net = Network::from_stores(vec![(1, leader), (2, follower)]);
    net.campaign(1);
    assert_eq!(net.leader(), Some(1));
    let rejections =
        net.delivered.iter().filter(|m| m.msg_type() == MsgAppResp && m.reject).count();
    assert_eq!(rejections, 1);
    assert_eq!(net.last_index(2), 31);
    assert_eq!(net.raft(2).raft_log.term(30), Ok(3));
    assert_eq!(net.committed(2), 31);
}

#[test]
fn a_node_missing_committed_entries_cannot_be_elected() {
    let mut net = Network::new(&[1, 2, 3]);
    net.campaign(1);
    net.isolate(3);
    net.propose(1, b"a").unwrap();
    net.recover();
    net.campaign(3);
    assert_ne!(net.state(3), StateRole::Leader);
    net.campaign(2);
    assert_eq!(net.leader(), Some(2));
    assert_eq!(net.committed(2), 3, "the new leader commits its own entry on top");
    assert_eq!(net.applied[&2], vec![data(b"a")], "and kept the committed one");
}

#[test]
fn malformed_messages_are_ignored() {
    let mut net = Network::new(&[1, 2, 3]);
    net.campaign(1);
    let last = net.last_index(2);
    let r2 = &mut net.raw(2).raft;
    // Entries that do not follow `index` contiguously.
    let mut m = msg(MsgApp, 1, 2, 1);
    m.index = last;
    m.log_term = 1;
    m.entries = vec![ent(last + 2, 1)];
    r2.step(m).unwrap();
    assert!(r2.msgs_after_persist.is_empty());
    assert_eq!(r2.raft_log.last_index(), last);
    // A heartbeat claiming a commit index we cannot have.
    let mut m = msg(MsgHeartbeat, 1, 2, 1);
    m.commit = 1000;
    r2.step(m).unwrap();
    assert_eq!(r2.raft_log.committed, last);
    // An unknown message kind, a snapshot message without snapshot, a read without context.
    let mut m = msg(MsgApp, 1, 2, 1);
    m.msg_type = 99;
    r2.step(m).unwrap();
    r2.step(msg(MsgSnap, 1, 2, 1)).unwrap();
    net.raw(1).raft.step(msg(MsgReadIndex, 0, 1, 0)).unwrap();
    // The leader ignores acknowledgements of entries it never had.
    let r1 = &mut net.raw(1).raft;
    let mut m = msg(MsgAppResp, 2, 1, 1);
    m.index = 1000;
    r1.step(m).unwrap();
    assert_eq!(r1.prs.progress[&2].matched, last);
}

#[test]
fn uncommitted_tail_is_bounded_on_the_leader() {
    let mut net = Network::with_config(&[1, 2, 3], &[], |c| c.max_uncommitted_entries_size = 100);
    net.campaign(1);
    net.isolate(2);
    net.isolate(3);
    let big = &[7u8; 60][..];
    net.act(1, |n| n.propose(big)).unwrap();
    assert_eq!(
        net.act(1, |n| n.propose(big)),
        Err(Error::ProposalDropped(DropReason::UncommittedSizeExceeded))
    );
    // Empty entries do not count.
    net.act(1, |n| n.propose(Bytes::new())).unwrap();
    net.recover();
    net.tick(1, 1);
    assert_eq!(net.committed(1), net.last_index(1));
    net.act(1, |n| n.propose(big)).unwrap();
}

#[test]
fn committed_entries_are_paged_across_readys() {
    let mut c = config(1);
    c.max_committed_size_per_ready = 1;
    let mut n = RawNode::new(&c, MemStorage::new_with_conf_state(conf(&[1], &[]))).unwrap();
    n.campaign().unwrap();
    let rd = n.ready();
    handle_ready(&mut n, rd);
    n.propose_entries((0..5).map(|i| Entry::normal(vec![i; 8])).collect()).unwrap();
    let mut pages = Vec::new();
    while n.has_ready() {
        let rd = n.ready();
        if !rd.committed_entries.is_empty() {
            pages.push(rd.committed_entries.len());
        }
        handle_ready(&mut n, rd);
    }
    assert_eq!(pages, vec![1; 6], "the no-op and five proposals, one per Ready");
    assert_eq!(n.status().applied, 6);
}

#[test]
fn messages_that_depend_on_persisted_state_wait_for_it() {
    let mut net = Network::new(&[1, 2, 3]);
    let n1 = net.raw(1);
    n1.campaign().unwrap();
    let rd = n1.ready();
    assert!(rd.must_sync, "the vote for ourselves must be durable");
    assert!(rd.messages.is_empty());
    assert_eq!(rd.persisted_messages.len(), 2);
    assert!(rd.persisted_messages.iter().all(|m| m.msg_type() == MsgVote));
    let votes = handle_ready(n1, rd);
    for m in votes.into_iter().filter(|m| m.to == 2) {
        net.raw(2).raft.step(m).unwrap();
    }
    let rd = net.raw(2).ready();
    assert!(rd.must_sync);
    assert_eq!(rd.hard_state.map(|h| h.vote), Some(1));
    assert_eq!(rd.persisted_messages[0].msg_type(), MsgVoteResp);
    let resp = handle_ready(net.raw(2), rd);
    for m in resp {
        net.raw(1).raft.step(m).unwrap();
    }
    let rd = net.raw(1).ready();
    assert_eq!(net.state(1), StateRole::Leader);
    assert!(rd.messages.iter().all(|m| m.msg_type() == MsgApp));
    assert_eq!(rd.messages.len(), 2, "a leader's appends go out before persisting");
}

#[test]
fn a_candidate_counts_its_own_vote_only_once_durable() {
    // A single voter needs nobody's vote. Were its vote to count at once, it could lead (and
    // append to the learner) in a term that a crash then lets it win a second time, creating
    // different entries at the same indexes.
    let mut net = Network::with_config(&[1], &[2], |_| {});
    let n1 = net.raw(1);
    n1.campaign().unwrap();
    assert_eq!(n1.raft().state(), StateRole::Candidate);
    let rd = n1.ready();
    assert_eq!(rd.hard_state.map(|h| (h.term, h.vote)), Some((1, 1)));
    assert!(rd.messages.is_empty() && rd.persisted_messages.is_empty());
    handle_ready(n1, rd);
    assert_eq!(n1.raft().state(), StateRole::Leader);
    let rd = n1.ready();
    assert!(
        rd.messages.iter().any(|m| m.msg_type() == MsgApp && m.to == 2),
        "with its term durable, the leader's appends go out in parallel with its fsync"
    );
}
