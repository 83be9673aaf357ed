//! The members table as the log and snapshots build it: any sequence of membership
//! records, each through its decoder in `etcdserver::etcd_encoding` and, when it
//! decodes, applied to a `Membership` as the apply thread (or a snapshot install)
//! applies it. Each piece of the input (`oxetcd_fuzz::tagged_pieces`) is one record; the
//! tag picks the kind:
//!
//! - 0: a conf change entry's data (`decode_conf_change`: the context as oxetcd's
//!   protobuf `Member` or etcd 3.4's JSON, a promotion included), checked against the
//!   members (`Membership::check_change`) and applied;
//! - 1: a raft snapshot's data (`decode_snapshot_state`: oxetcd's `ClusterState` or etcd
//!   3.4's v2 store JSON with `members`, `members_removed` and `version`), which replaces
//!   the members;
//! - 2: a normal entry's data (`decode_request`: `InternalRaftRequest` or etcd 3.4's v2
//!   `PUT`s of a member's attributes and the cluster version), applied when it sets
//!   attributes or the version.
//!
//! Invariants: each record converted to etcd 3.4's form (`entry_for_etcd_3_4`,
//! `snapshot_data_for_etcd_3_4`, what `oxetcdutl migrate --to etcd` writes) decodes to
//! what it decoded to before; an accepted conf change leaves no peer URL shared with the
//! member it added or updated, no removed id among the members, and no more learners than
//! allowed; and the membership survives a snapshot of itself in both encodings.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use oxetcd_api::etcdserverpb::Member;
use oxetcd_api::oxetcdpb::ClusterState;
use oxetcd_etcdserver::etcd_encoding::{
    LogRequest, decode_conf_change, decode_request, decode_snapshot_state, entry_for_etcd_3_4,
    snapshot_data_for_etcd_3_4,
};
use oxetcd_etcdserver::membership::{MAX_LEARNERS, MemberChange, Membership};
use oxetcd_fuzz::tagged_pieces;
use oxetcd_raft::{ConfChange, ConfChangeType, Entry, EntryType};
use prost::Message;

/// Records per input: a cluster's worth of adds, removes and snapshots.
const MAX_RECORDS: usize = 32;

fn entry(entry_type: EntryType, data: &[u8]) -> Entry {
    Entry { term: 1, index: 1, entry_type: entry_type as i32, data: Bytes::copy_from_slice(data) }
}

/// A conf change's context as a member, if it decodes as one (no bytes: every field
/// zero, as for a promotion).
fn context_member(cc: &ConfChange) -> Option<Member> {
    Member::decode(cc.context.clone()).ok()
}

/// A conf change, and the same change after a trip through etcd 3.4's form.
fn conf_change(members: &mut Membership, data: &[u8]) {
    let Ok(cc) = decode_conf_change(Bytes::copy_from_slice(data)) else { return };
    if let Ok(etcd) = entry_for_etcd_3_4(entry(EntryType::EntryConfChange, data)) {
        let back = decode_conf_change(etcd.data).expect("etcd's form of a conf change decodes");
        assert_eq!((back.id, back.change_type, back.node_id), (cc.id, cc.change_type, cc.node_id));
        assert_eq!(context_member(&back), context_member(&cc), "the member in etcd's form");
        // A member with every field zero encodes to no bytes, which reads as a promotion
        // (etcd itself never writes one: its ids are never 0).
        if context_member(&cc) != Some(Member::default()) {
            assert_eq!(back.context.is_empty(), cc.context.is_empty(), "a promotion stays one");
        }
    }

    let Ok(change_type) = ConfChangeType::try_from(cc.change_type) else { return };
    let learners_before = members.learners();
    let was_removed = members.is_removed(cc.node_id);
    let Ok(change) = members.check_change(change_type, cc.node_id, &cc.context) else { return };
    members.apply_change(&change);
    match &change {
        MemberChange::Add(m) | MemberChange::Update(m) => {
            assert!(!was_removed, "a removed id came back: {m:?}");
            let shared = members
                .members()
                .into_iter()
                .filter(|other| other.id != m.id)
                .any(|other| other.peer_ur_ls.iter().any(|u| m.peer_ur_ls.contains(u)));
            assert!(!shared, "peer URLs of {m:?} taken");
        }
        MemberChange::Remove(id) => {
            assert!(members.is_removed(*id) && members.member(*id).is_none());
        }
        MemberChange::Promote(id) => {
            assert!(members.member(*id).is_some_and(|m| !m.is_learner));
        }
    }
    assert!(members.learners() <= learners_before.max(MAX_LEARNERS), "too many learners");
}

/// A snapshot's membership; the one it replaces is gone.
fn snapshot(members: &mut Membership, data: &[u8]) {
    let Ok(state) = decode_snapshot_state(Bytes::copy_from_slice(data)) else { return };
    *members = Membership::from_state(state);
}

/// A normal entry: a member's attributes or the cluster version.
fn request(members: &mut Membership, data: &[u8]) {
    let Ok(LogRequest::V3(request)) = decode_request(Bytes::copy_from_slice(data)) else {
        return;
    };
    if let Some(attr) = &request.cluster_member_attr_set {
        if let Ok(etcd) = entry_for_etcd_3_4(entry(EntryType::EntryNormal, data)) {
            let back = decode_request(etcd.data).expect("etcd's form of a request decodes");
            let LogRequest::V3(back) = back else { panic!("attributes in etcd's form ignored") };
            let back = back.cluster_member_attr_set.expect("still attributes");
            let attributes = attr.member_attributes.clone().unwrap_or_default();
            assert_eq!(back.member_id, attr.member_id);
            assert_eq!(back.member_attributes.unwrap_or_default(), attributes);
        }
        members.set_attributes(attr.member_id, attr.member_attributes.clone().unwrap_or_default());
    } else if let Some(set) = request.cluster_version_set {
        members.set_cluster_version(set.ver);
    }
}

/// The members and removed ids of `state` as a membership holds them.
fn table(state: ClusterState) -> (Vec<Member>, Vec<u64>) {
    let state = Membership::from_state(state).to_state();
    (state.members, state.removed)
}

fuzz_target!(|data: &[u8]| {
    let mut members = Membership::default();
    for (tag, bytes) in tagged_pieces(data).take(MAX_RECORDS) {
        match tag % 3 {
            0 => conf_change(&mut members, bytes),
            1 => snapshot(&mut members, bytes),
            _ => request(&mut members, bytes),
        }
    }

    // A snapshot of these members, as oxetcd writes it and as etcd 3.4 does, reads back
    // as the same members (etcd's form caps the cluster version, so that is left out).
    let state = members.to_state();
    assert_eq!(Membership::from_state(state.clone()), members);
    let ours = decode_snapshot_state(state.encode_to_vec().into()).expect("our snapshot data");
    assert_eq!(Membership::from_state(ours), members);
    let etcd = snapshot_data_for_etcd_3_4(state.encode_to_vec().into())
        .expect("etcd's form of our snapshot data");
    let etcd = decode_snapshot_state(etcd).expect("etcd's form decodes");
    assert_eq!(table(etcd), (state.members, state.removed), "members in etcd's snapshot form");
});
