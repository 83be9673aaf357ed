//! The seeds of the targets that read structured input, made with the encoders the
//! member itself uses (prost for requests, `Wal` for logs), so that they stay valid when
//! those encodings change. Regenerate them with
//! `RUSTC_BOOTSTRAP=1 cargo test --manifest-path fuzz/Cargo.toml --lib -- --ignored`, which
//! writes `fuzz/seeds/<target>/`.

use std::path::Path;

use oxetcd_api::authpb::{Permission, UserAddOptions, permission::Type as PermType};
use oxetcd_api::etcdserverpb::Member;
use oxetcd_api::etcdserverpb::alarm_request::AlarmAction;
use oxetcd_api::etcdserverpb::{
    AlarmRequest, AlarmType, AuthDisableRequest, AuthEnableRequest, AuthRoleAddRequest,
    AuthRoleDeleteRequest, AuthRoleGetRequest, AuthRoleGrantPermissionRequest, AuthRoleListRequest,
    AuthRoleRevokePermissionRequest, AuthStatusRequest, AuthUserAddRequest,
    AuthUserChangePasswordRequest, AuthUserDeleteRequest, AuthUserGetRequest,
    AuthUserGrantRoleRequest, AuthUserListRequest, AuthUserRevokeRoleRequest, AuthenticateRequest,
    PutRequest,
};
use oxetcd_api::oxetcdpb::{
    ClusterMemberAttrSetRequest, ClusterState, ClusterVersionSetRequest, InternalRaftRequest,
    MemberAttributes,
};
use oxetcd_etcdserver::etcd_encoding::{entry_for_etcd_3_4, snapshot_data_for_etcd_3_4};
use oxetcd_raft::{ConfChange, ConfChangeType, Entry, EntryType, HardState};
use oxetcd_wal::{Wal, WalOptions, WalSnapshot};
use prost::Message;

use crate::tagged;

/// The `auth_requests` target's message kinds (`tag % AUTH_KINDS`), in its order.
pub const AUTH_KINDS: u8 = 18;
/// `auth_requests` senders (`tag / AUTH_KINDS`): 0 the member, 1 nobody, 2 root, 3 root
/// at an old auth revision, 4 a user; 5 and up: the same, as etcd 3.4's log carries it.
const ANYONE: u8 = 1;
const ROOT: u8 = 2;
const A_USER: u8 = 4;
const ETCD_3_4_MEMBER: u8 = 5;

fn auth(kind: u8, who: u8, message: impl Message) -> (u8, Vec<u8>) {
    (kind + AUTH_KINDS * who, message.encode_to_vec())
}

/// `auth_requests` seeds: (file name, input).
pub fn auth_requests() -> Vec<(&'static str, Vec<u8>)> {
    let s = |x: &str| x.to_owned();
    let user_add = |name: &str, password: &str| AuthUserAddRequest {
        name: s(name),
        password: s(password),
        ..Default::default()
    };
    let perm = Permission {
        perm_type: PermType::Readwrite as i32,
        key: b"a".to_vec().into(),
        range_end: b"b".to_vec().into(),
    };
    let grant = |user: &str, role: &str| AuthUserGrantRoleRequest { user: s(user), role: s(role) };
    let lifecycle = tagged(&[
        auth(4, ANYONE, user_add("root", "pw")),
        auth(11, ANYONE, AuthRoleAddRequest { name: s("root") }),
        auth(7, ANYONE, grant("root", "root")),
        auth(0, ANYONE, AuthEnableRequest {}),
        auth(3, ANYONE, AuthenticateRequest { name: s("root"), password: s("pw") }),
        auth(2, ANYONE, AuthStatusRequest {}),
        auth(11, ROOT, AuthRoleAddRequest { name: s("r") }),
        auth(13, ROOT, AuthRoleGrantPermissionRequest { name: s("r"), perm: Some(perm.clone()) }),
        auth(
            4,
            ROOT,
            AuthUserAddRequest {
                name: s("alice"),
                options: Some(UserAddOptions { no_password: true }),
                ..Default::default()
            },
        ),
        auth(7, ROOT, grant("alice", "r")),
        auth(9, A_USER, AuthUserGetRequest { name: s("alice") }),
        auth(15, A_USER, AuthRoleGetRequest { role: s("r") }),
        auth(10, ROOT, AuthUserListRequest {}),
        auth(16, ROOT, AuthRoleListRequest {}),
        auth(
            6,
            ROOT,
            AuthUserChangePasswordRequest {
                name: s("root"),
                password: s("pw2"),
                ..Default::default()
            },
        ),
        auth(
            14,
            ROOT,
            AuthRoleRevokePermissionRequest {
                role: s("r"),
                key: perm.key.clone(),
                range_end: perm.range_end.clone(),
            },
        ),
        auth(8, ROOT, AuthUserRevokeRoleRequest { name: s("alice"), role: s("r") }),
        auth(12, ROOT, AuthRoleDeleteRequest { role: s("r") }),
        auth(5, ROOT, AuthUserDeleteRequest { name: s("alice") }),
        auth(1, ROOT, AuthDisableRequest {}),
    ]);
    let alarm = |action: AlarmAction, member_id, alarm: AlarmType| AlarmRequest {
        action: action as i32,
        member_id,
        alarm: alarm as i32,
    };
    let alarms = tagged(&[
        auth(17, 0, alarm(AlarmAction::Activate, 1, AlarmType::Nospace)),
        auth(17, 0, alarm(AlarmAction::Activate, 2, AlarmType::Corrupt)),
        auth(17, ANYONE, alarm(AlarmAction::Get, 0, AlarmType::None)),
        auth(4, ANYONE, user_add("root", "pw")),
        auth(17, ANYONE, alarm(AlarmAction::Deactivate, 1, AlarmType::Nospace)),
        auth(17, ANYONE, alarm(AlarmAction::Deactivate, 2, AlarmType::Corrupt)),
    ]);
    // Entries as etcd 3.4 wrote them: passwords in the log, hashed when applied.
    let etcd_3_4 = tagged(&[
        auth(4, ETCD_3_4_MEMBER, user_add("root", "pw")),
        auth(11, ETCD_3_4_MEMBER, AuthRoleAddRequest { name: s("root") }),
        auth(7, ETCD_3_4_MEMBER, grant("root", "root")),
        auth(0, ETCD_3_4_MEMBER, AuthEnableRequest {}),
        auth(9, ETCD_3_4_MEMBER, AuthUserGetRequest { name: s("root") }),
        auth(10, ETCD_3_4_MEMBER, AuthUserListRequest {}),
        auth(
            6,
            ETCD_3_4_MEMBER,
            AuthUserChangePasswordRequest {
                name: s("root"),
                password: s("pw2"),
                ..Default::default()
            },
        ),
        auth(3, ANYONE, AuthenticateRequest { name: s("root"), password: s("pw2") }),
    ]);
    vec![("lifecycle", lifecycle), ("alarms", alarms), ("etcd-3.4-log", etcd_3_4)]
}

/// `members` record kinds (the tag).
const CONF_CHANGE: u8 = 0;
const SNAPSHOT: u8 = 1;
const REQUEST: u8 = 2;

/// `members` seeds: (file name, input). Each record is written as oxetcd writes it and
/// as `entry_for_etcd_3_4` / `snapshot_data_for_etcd_3_4` turn it into etcd 3.4's form.
pub fn members() -> Vec<(&'static str, Vec<u8>)> {
    let member = |id: u64, port: u16, learner: bool| Member {
        id,
        name: String::new(),
        peer_ur_ls: vec![format!("http://127.0.0.1:{port}")],
        client_ur_ls: Vec::new(),
        is_learner: learner,
    };
    let cc = |change_type: ConfChangeType, node_id: u64, context: Vec<u8>| {
        let cc = ConfChange {
            id: node_id,
            change_type: change_type as i32,
            node_id,
            context: context.into(),
        };
        Entry {
            term: 1,
            index: 1,
            entry_type: EntryType::EntryConfChange as i32,
            data: cc.encode_to_vec().into(),
        }
    };
    let attributes = |member_id: u64, name: &str| {
        let request = InternalRaftRequest {
            cluster_member_attr_set: Some(ClusterMemberAttrSetRequest {
                member_id,
                member_attributes: Some(MemberAttributes {
                    name: name.to_owned(),
                    client_urls: vec![format!("http://127.0.0.1:2{member_id}79")],
                }),
            }),
            ..Default::default()
        };
        Entry { term: 1, index: 1, entry_type: 0, data: request.encode_to_vec().into() }
    };
    let version = InternalRaftRequest {
        cluster_version_set: Some(ClusterVersionSetRequest { ver: "3.5.0".into() }),
        ..Default::default()
    };
    let version = Entry { term: 1, index: 1, entry_type: 0, data: version.encode_to_vec().into() };
    let history = [
        (
            CONF_CHANGE,
            cc(ConfChangeType::ConfChangeAddNode, 1, member(1, 2380, false).encode_to_vec()),
        ),
        (REQUEST, attributes(1, "a")),
        (REQUEST, version),
        (
            CONF_CHANGE,
            cc(ConfChangeType::ConfChangeAddLearnerNode, 2, member(2, 2381, true).encode_to_vec()),
        ),
        (CONF_CHANGE, cc(ConfChangeType::ConfChangeAddNode, 2, Vec::new())),
        (
            CONF_CHANGE,
            cc(ConfChangeType::ConfChangeUpdateNode, 2, member(2, 2382, false).encode_to_vec()),
        ),
        (
            CONF_CHANGE,
            cc(ConfChangeType::ConfChangeAddNode, 3, member(3, 2383, false).encode_to_vec()),
        ),
        (CONF_CHANGE, cc(ConfChangeType::ConfChangeRemoveNode, 3, Vec::new())),
    ];
    let ours: Vec<(u8, Vec<u8>)> = history.iter().map(|(t, e)| (*t, e.data.to_vec())).collect();
    let etcd: Vec<(u8, Vec<u8>)> = history
        .iter()
        .map(|(t, e)| (*t, entry_for_etcd_3_4(e.clone()).expect("etcd's form").data.to_vec()))
        .collect();
    let state = ClusterState {
        members: vec![member(1, 2380, false), Member { name: "b".into(), ..member(2, 2381, true) }],
        removed: vec![3],
        cluster_version: "3.4.0".into(),
    };
    let state = state.encode_to_vec();
    let etcd_state =
        snapshot_data_for_etcd_3_4(state.clone().into()).expect("etcd's form").to_vec();
    vec![
        ("log", tagged(&ours)),
        ("etcd-3.4-log", tagged(&etcd)),
        ("snapshot-then-log", tagged(&[(SNAPSHOT, state), ours[6].clone(), ours[7].clone()])),
        ("etcd-3.4-snapshot", tagged(&[(SNAPSHOT, etcd_state), etcd[4].clone()])),
    ]
}

/// A log entry carrying a client's Put, as the member proposes one.
fn put_entry(term: u64, index: u64) -> Entry {
    let put = PutRequest {
        key: format!("key-{index}").into_bytes().into(),
        value: vec![b'v'; 40].into(),
        ..Default::default()
    };
    let request = InternalRaftRequest { put: Some(put), ..Default::default() };
    Entry { term, index, entry_type: 0, data: request.encode_to_vec().into() }
}

/// Packs the segments of the WAL in `dir` as the `wal_dir` target reads them, opened at
/// `snapshot` (`None`: at the origin).
fn pack_wal_dir(dir: &Path, snapshot: Option<&WalSnapshot>) -> Vec<u8> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("the log's dir")
        .map(|e| e.expect("a dir entry").file_name().into_string().expect("a UTF-8 name"))
        .filter(|n| n.ends_with(".wal"))
        .collect();
    names.sort();
    assert!((1..=3).contains(&names.len()), "{names:?}");
    let mut flags = names.len() as u8 & 3;
    let (index, term) = snapshot.map_or((0, 0), |s| (s.index, s.term));
    if snapshot.is_some() {
        flags |= 4;
    }
    let mut out = vec![flags];
    out.extend_from_slice(&index.to_le_bytes());
    out.extend_from_slice(&term.to_le_bytes());
    let mut pieces = Vec::new();
    let mut last_seq = 0;
    for (i, name) in names.iter().enumerate() {
        let (seq, first) = name.trim_end_matches(".wal").split_once('-').expect("seq-index");
        let seq = u64::from_str_radix(seq, 16).expect("hex");
        let first = u64::from_str_radix(first, 16).expect("hex");
        let step = if i == 0 { seq } else { seq - last_seq };
        last_seq = seq;
        let mut piece = first.to_le_bytes().to_vec();
        piece.extend(std::fs::read(dir.join(name)).expect("a segment"));
        pieces.push((u8::try_from(step).expect("a small step"), piece));
    }
    out.extend(tagged(&pieces));
    out
}

/// `wal_dir` seeds: (file name, input), logs `Wal` wrote in a scratch dir under `scratch`.
pub fn wal_dir(scratch: &Path) -> Vec<(&'static str, Vec<u8>)> {
    // Small segments, so that a few entries fill three.
    let options = || WalOptions { segment_bytes: 450 };
    let metadata = bytes::Bytes::from_static(b"\x08\x01\x10\x02");
    let state = |term, commit| HardState { term, vote: 1, commit };
    let mut seeds = Vec::new();

    // Entries 1-9 over three segments, opened at the origin.
    let dir = scratch.join("plain");
    let mut wal = Wal::create(&dir, metadata.clone(), options()).expect("a new log");
    for index in 1..=9 {
        let entry = put_entry(1, index);
        wal.save(&state(1, index), &[entry], true).expect("an append");
    }
    drop(wal);
    seeds.push(("three-segments", pack_wal_dir(&dir, None)));

    // A snapshot at 5 recorded in the second segment; opened there.
    let dir = scratch.join("snapshot");
    let mut wal = Wal::create(&dir, metadata.clone(), options()).expect("a new log");
    let snapshot = WalSnapshot { index: 5, term: 1, conf_state: None };
    for index in 1..=9 {
        wal.save(&state(1, index), &[put_entry(1, index)], true).expect("an append");
        if index == 5 {
            wal.save_snapshot(&snapshot).expect("a snapshot marker");
        }
    }
    drop(wal);
    seeds.push(("at-snapshot", pack_wal_dir(&dir, Some(&snapshot))));

    // A new leader's entries overwrite 5-7 in a later segment than they were written.
    let dir = scratch.join("overwrite");
    let mut wal = Wal::create(&dir, metadata.clone(), options()).expect("a new log");
    for index in 1..=7 {
        wal.save(&state(1, 4), &[put_entry(1, index)], true).expect("an append");
    }
    let tail = [put_entry(2, 5), put_entry(2, 6)];
    wal.save(&state(2, 6), &tail, true).expect("an overwrite");
    drop(wal);
    seeds.push(("overwritten-tail", pack_wal_dir(&dir, None)));

    // An overwrite from 3, then a snapshot at 5 (a leader's, before the new branch
    // reached 5): opened there, the stale 6-7 written before the overwrite must not come back.
    let dir = scratch.join("overwrite-below-snapshot");
    let mut wal = Wal::create(&dir, metadata, options()).expect("a new log");
    let stale: Vec<Entry> = (1..=7).map(|index| put_entry(1, index)).collect();
    wal.save(&state(1, 2), &stale, true).expect("an append");
    let branch = [put_entry(2, 3), put_entry(2, 4)];
    wal.save(&state(2, 4), &branch, true).expect("an overwrite");
    let snapshot = WalSnapshot { index: 5, term: 2, conf_state: None };
    wal.save_snapshot(&snapshot).expect("a snapshot marker");
    drop(wal);
    seeds.push(("overwrite-below-snapshot", pack_wal_dir(&dir, Some(&snapshot))));
    seeds
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn write(target: &str, seeds: Vec<(&str, Vec<u8>)>) {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("seeds").join(target);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in seeds {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }

    /// Writes the seeds into `fuzz/seeds/` (run on demand: `--ignored`).
    #[test]
    #[ignore]
    fn write_seeds() {
        let scratch =
            std::env::temp_dir().join(format!("oxetcd-fuzz-seeds-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&scratch);
        std::fs::create_dir_all(&scratch).unwrap();
        write("auth_requests", auth_requests());
        write("wal_dir", wal_dir(&scratch));
        write("members", members());
        std::fs::remove_dir_all(&scratch).unwrap();
    }
}
