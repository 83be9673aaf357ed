//! Linearizable reads: ReadIndex in Safe mode (heartbeat quorum, batching, new leaders wait
//! for a commit of their term) and in LeaseBased mode.

use super::*;
use crate::{DropReason, Error, MessageType::*, ReadOnlyOption};

fn ctxs(net: &Network, id: u64) -> Vec<(Bytes, u64)> {
    net.read_states
        .get(&id)
        .map(|v| v.iter().map(|rs| (rs.request_ctx.clone(), rs.index)).collect())
        .unwrap_or_default()
}

fn read(net: &mut Network, id: u64, ctx: &'static [u8]) -> crate::Result<()> {
    net.act(id, |n| n.read_index(ctx))
}

#[test]
fn safe_reads_are_batched_into_one_heartbeat_round() {
    let mut net = Network::new(&[1, 2, 3]);
    net.campaign(1);
    net.propose(1, b"x").unwrap();
    let committed = net.committed(1);
    net.ignore(MsgHeartbeatResp);
    for ctx in [&b"a"[..], b"b", b"c"] {
        read(&mut net, 1, ctx).unwrap();
    }
    assert!(ctxs(&net, 1).is_empty(), "no answer without a quorum of acknowledgements");
    assert_eq!(net.raft(1).pending_read_count(), 3);
    net.recover();
    let heartbeats = net.count(MsgHeartbeat, 2);
    net.tick(1, 1);
    assert_eq!(net.count(MsgHeartbeat, 2), heartbeats + 1, "a single round");
    let got = ctxs(&net, 1);
    let want: Vec<(Bytes, u64)> =
        [&b"a"[..], b"b", b"c"].iter().map(|c| (Bytes::from_static(c), committed)).collect();
    assert_eq!(got, want);
    assert_eq!(net.raft(1).pending_read_count(), 0);
}

#[test]
fn followers_forward_reads_to_the_leader() {
    let mut net = Network::new(&[1, 2, 3]);
    net.campaign(1);
    net.propose(1, b"x").unwrap();
    read(&mut net, 2, b"f").unwrap();
    assert_eq!(ctxs(&net, 2), vec![(Bytes::from_static(b"f"), net.committed(1))]);
    assert!(ctxs(&net, 1).is_empty());
}

#[test]
fn a_new_leader_answers_only_after_committing_in_its_term() {
    let mut net = Network::new(&[1, 2, 3]);
    net.ignore(MsgAppResp);
    net.campaign(1);
    assert_eq!(net.committed(1), 0);
    read(&mut net, 1, b"early").unwrap();
    assert!(ctxs(&net, 1).is_empty());
    assert_eq!(net.raft(1).pending_read_count(), 1);
    net.recover();
    net.tick(1, 1);
    assert_eq!(net.committed(1), 1);
    assert_eq!(ctxs(&net, 1), vec![(Bytes::from_static(b"early"), 1)]);
}

#[test]
fn an_isolated_stale_leader_never_answers() {
    let mut net = Network::new(&[1, 2, 3]);
    net.campaign(1);
    net.isolate(1);
    read(&mut net, 1, b"stale").unwrap();
    net.campaign(2);
    net.propose(2, b"newer").unwrap();
    net.tick(1, 5);
    assert_eq!(net.state(1), StateRole::Leader, "it does not know it was deposed");
    assert!(ctxs(&net, 1).is_empty());
}

#[test]
fn lease_based_reads_skip_the_heartbeat_round() {
    let mut net = Network::with_config(&[1, 2, 3], &[], |c| {
        c.check_quorum = true;
        c.read_only_option = ReadOnlyOption::LeaseBased;
    });
    net.campaign(1);
    let heartbeats = net.count(MsgHeartbeat, 2);
    read(&mut net, 1, b"l").unwrap();
    assert_eq!(net.count(MsgHeartbeat, 2), heartbeats);
    assert_eq!(ctxs(&net, 1), vec![(Bytes::from_static(b"l"), net.committed(1))]);
    read(&mut net, 3, b"f").unwrap();
    assert_eq!(ctxs(&net, 3), vec![(Bytes::from_static(b"f"), net.committed(1))]);
}

#[test]
fn a_single_voter_answers_without_a_round() {
    let mut net = Network::new(&[1]);
    net.campaign(1);
    read(&mut net, 1, b"s").unwrap();
    assert_eq!(ctxs(&net, 1), vec![(Bytes::from_static(b"s"), 1)]);
}

#[test]
fn reads_without_a_leader_are_refused() {
    let mut net = Network::new(&[1, 2, 3]);
    assert_eq!(read(&mut net, 1, b"x"), Err(Error::ProposalDropped(DropReason::NoLeader)));
}
