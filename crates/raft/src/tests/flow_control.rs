//! Flow control (probe / replicate / snapshot states, inflight window, message size) and
//! snapshot catch-up.

use super::*;
use crate::{MessageType::*, SnapshotStatus, Storage, progress::ProgressState};

fn appends_with_entries(net: &Network, to: u64) -> usize {
    net.delivered
        .iter()
        .filter(|m| m.msg_type() == MsgApp && m.to == to && !m.entries.is_empty())
        .count()
}

#[test]
fn replicate_state_respects_the_inflight_window() {
    let mut net = Network::with_config(&[1, 2], &[], |c| {
        c.max_inflight_msgs = 3;
        c.max_size_per_msg = 0;
    });
    net.campaign(1);
    assert_eq!(net.raft(1).prs.progress[&2].state, ProgressState::Replicate);
    net.ignore(MsgAppResp);
    let before = appends_with_entries(&net, 2);
    for _ in 0..10 {
        net.propose(1, b"e").unwrap();
    }
    assert_eq!(appends_with_entries(&net, 2) - before, 3, "window of three");
    assert!(net.raft(1).prs.progress[&2].is_paused());
    // A heartbeat response proves the follower alive: one slot is freed.
    net.tick(1, 1);
    assert_eq!(appends_with_entries(&net, 2) - before, 4);
    net.recover();
    net.tick(1, 3);
    assert_eq!(net.committed(2), net.last_index(1));
}

#[test]
fn probe_state_sends_one_append_per_heartbeat() {
    let mut net = Network::new(&[1, 2]);
    net.ignore(MsgAppResp);
    net.campaign(1);
    let pr = &net.raft(1).prs.progress[&2];
    assert!(pr.state == ProgressState::Probe && pr.probe_sent);
    let before = net.count(MsgApp, 2);
    for _ in 0..3 {
        net.propose(1, b"e").unwrap();
    }
    assert_eq!(net.count(MsgApp, 2), before, "paused while probing");
    net.tick(1, 1);
    assert_eq!(net.count(MsgApp, 2), before + 1, "the heartbeat response resumes probing");
}

#[test]
fn appends_are_split_by_max_size_per_msg() {
    let mut net = Network::with_config(&[1, 2], &[], |c| c.max_size_per_msg = 100);
    net.campaign(1);
    net.isolate(2);
    for _ in 0..6 {
        net.act(1, |n| n.propose(vec![1u8; 40])).unwrap();
    }
    net.recover();
    let from = net.delivered.len();
    net.tick(1, 1);
    let sizes: Vec<usize> = net.delivered[from..]
        .iter()
        .filter(|m| m.msg_type() == MsgApp && m.to == 2 && !m.entries.is_empty())
        .map(|m| m.entries.len())
        .collect();
    assert!(sizes.len() >= 3, "split into several messages: {sizes:?}");
    assert!(sizes.iter().all(|&n| n <= 2), "at most 100 bytes each: {sizes:?}");
    assert_eq!(net.last_index(2), net.last_index(1));
}

#[test]
fn unreachable_peer_goes_back_to_probing() {
    let mut net = Network::new(&[1, 2]);
    net.campaign(1);
    assert_eq!(net.raft(1).prs.progress[&2].state, ProgressState::Replicate);
    net.raw(1).report_unreachable(2);
    assert_eq!(net.raft(1).prs.progress[&2].state, ProgressState::Probe);
}

fn compact_leader(net: &mut Network, id: u64) -> u64 {
    let applied = net.raft(id).raft_log.applied;
    let cs = net.raft(id).prs.config.to_conf_state();
    let store = net.raw(id).mut_store();
    store.create_snapshot(applied, cs, Bytes::from_static(b"state")).unwrap();
    store.compact(applied).unwrap();
    applied
}

#[test]
fn lagging_follower_catches_up_through_a_snapshot() {
    let mut net = Network::new(&[1, 2, 3]);
    net.campaign(1);
    net.isolate(3);
    for _ in 0..5 {
        net.propose(1, b"e").unwrap();
    }
    let snap_index = compact_leader(&mut net, 1);
    assert!(snap_index > net.last_index(3));
    net.recover();
    net.tick(1, 1);
    assert!(net.count(MsgSnap, 3) >= 1);
    let store = net.raw(3).store();
    assert_eq!(store.snapshot().unwrap().index(), snap_index);
    assert_eq!(net.committed(3), net.committed(1));
    assert_eq!(net.raft(1).prs.progress[&3].state, ProgressState::Replicate);
    net.propose(1, b"after").unwrap();
    assert_eq!(net.applied[&3], vec![Bytes::from_static(b"after")]);
}

#[test]
fn snapshot_reports_drive_the_progress_state() {
    let mut net = Network::new(&[1, 2, 3]);
    net.campaign(1);
    net.isolate(3);
    net.propose(1, b"e").unwrap();
    let snap_index = compact_leader(&mut net, 1);
    // Make the leader send the snapshot, but lose it.
    net.recover();
    net.ignore(MsgSnap);
    net.tick(1, 1);
    assert_eq!(net.raft(1).prs.progress[&3].state, ProgressState::Snapshot { pending: snap_index });
    net.raw(1).report_snapshot(3, SnapshotStatus::Failure);
    let pr = &net.raft(1).prs.progress[&3];
    assert!(
        pr.state == ProgressState::Probe && pr.probe_sent,
        "wait for a heartbeat before retrying"
    );
    net.recover();
    net.tick(1, 1);
    assert_eq!(net.committed(3), net.committed(1));
    // A finished report moves to probing right after the snapshot.
    let r = &mut net.raw(1).raft;
    r.prs.progress.get_mut(&3).unwrap().become_snapshot(snap_index);
    net.raw(1).report_snapshot(3, SnapshotStatus::Finish);
    let pr = &net.raft(1).prs.progress[&3];
    assert!(pr.state == ProgressState::Probe && !pr.probe_sent);
    assert_eq!(pr.next_idx, snap_index + 1);
}

#[test]
fn followers_ignore_stale_snapshots_and_fast_forward_on_known_ones() {
    let mut net = Network::new(&[1, 2]);
    net.campaign(1);
    net.propose(1, b"e").unwrap();
    let committed = net.committed(2);
    let term = net.raft(2).term;
    let snap = |index: u64| crate::Snapshot {
        data: Bytes::new(),
        metadata: Some(crate::SnapshotMetadata {
            conf_state: Some(conf(&[1, 2], &[])),
            index,
            term,
        }),
    };
    // Older than our commit index: answered with the commit index, nothing restored.
    let mut m = msg(MsgSnap, 1, 2, term);
    m.snapshot = Some(snap(committed - 1));
    net.raw(2).raft.step(m).unwrap();
    assert!(net.raft(2).raft_log.unstable_snapshot().is_none());
    // Matching our log beyond the commit index: the commit index moves, the log stays.
    net.isolate(2);
    net.propose(1, b"f").unwrap();
    net.recover();
    let mut store = MemStorage::new_with_conf_state(conf(&[1, 2], &[]));
    store.append(&[ent(1, 1), ent(2, 1), ent(3, 1)]);
    store.set_hard_state(crate::HardState { term: 1, vote: 1, commit: 1 });
    let mut r = Raft::new(&config(2), store).unwrap();
    let mut m = msg(MsgSnap, 1, 2, 1);
    m.snapshot = Some(crate::Snapshot {
        data: Bytes::new(),
        metadata: Some(crate::SnapshotMetadata {
            conf_state: Some(conf(&[1, 2], &[])),
            index: 2,
            term: 1,
        }),
    });
    r.step(m).unwrap();
    assert_eq!(r.raft_log.committed, 2);
    assert!(r.raft_log.unstable_snapshot().is_none());
    assert_eq!(r.raft_log.last_index(), 3);
}
