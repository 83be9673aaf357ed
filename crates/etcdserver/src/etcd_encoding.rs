//! etcd's own encodings of what the log and snapshot files carry besides key-value
//! requests, read so that oxetcd starts on a data dir etcd wrote.
//!
//! oxetcd writes etcd's file formats (WAL records, snap files) but encodes membership
//! its own way, as etcd 3.5+ does for attributes: a conf change's context is the
//! `Member` in protobuf (etcd: JSON), a raft snapshot's data is a `ClusterState`
//! (etcd 3.4/3.5: its v2 store as JSON), and attributes and the cluster version go
//! through the log as `InternalRaftRequest` fields (etcd 3.4: v2 `PUT`s of
//! `/0/members/<id>/attributes` and `/0/version`). This module is the one place that
//! reads etcd's forms and turns them into oxetcd's, at the points where entries and
//! snapshots are decoded; nothing past it knows etcd's forms exist.
//!
//! The two cannot be confused: JSON starts with `{` (0x7B), which as a protobuf tag is
//! field 15 with the deprecated group wire type, never written by prost for these
//! messages; and a v2 request's path field starts with `/` (0x2F), wire type 7, which no
//! protobuf decoder accepts, so an etcd v2 entry never decodes as an `InternalRaftRequest`.

use bytes::Bytes;
use oxetcd_api::etcdserverpb::Member;
use oxetcd_api::oxetcdpb::{
    ClusterMemberAttrSetRequest, ClusterState, ClusterVersionSetRequest, InternalRaftRequest,
    MemberAttributes, RequestHeader,
};
use oxetcd_raft::ConfChange;
use prost::Message;
use serde::Deserialize;

/// Where etcd's v2 store keeps members (`etcdserver.StoreClusterPrefix` + `members`).
const V2_MEMBERS: &str = "/0/members";
/// etcd's v2 store key of the cluster version.
const V2_VERSION: &str = "/0/version";

fn is_json(data: &[u8]) -> bool {
    data.first() == Some(&b'{')
}

/// A member as etcd's JSON has it (`membership.Member`, with `ConfigChangeContext`'s
/// `isPromote` for a promotion).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonMember {
    #[serde(default)]
    id: u64,
    #[serde(default, rename = "peerURLs")]
    peer_urls: Vec<String>,
    #[serde(default)]
    is_learner: bool,
    #[serde(default)]
    name: String,
    #[serde(default, rename = "clientURLs")]
    client_urls: Vec<String>,
    #[serde(default)]
    is_promote: bool,
}

/// A conf change from the log, its context in oxetcd's form: the member, protobuf-encoded,
/// for an add or update; empty for a promotion. etcd's JSON context is converted (its
/// promotion is an add whose context says `"isPromote":true`); one that does not parse
/// is left as it is, for the membership check to refuse.
pub fn decode_conf_change(data: Bytes) -> Result<ConfChange, prost::DecodeError> {
    let mut cc = ConfChange::decode(data)?;
    if is_json(&cc.context)
        && let Ok(member) = serde_json::from_slice::<JsonMember>(&cc.context)
    {
        cc.context = if member.is_promote {
            Bytes::new()
        } else {
            Member {
                id: member.id,
                name: member.name,
                peer_ur_ls: member.peer_urls,
                client_ur_ls: member.client_urls,
                is_learner: member.is_learner,
            }
            .encode_to_vec()
            .into()
        };
    }
    Ok(cc)
}

/// A normal log entry's request.
// Moved once per applied entry, straight into the apply match: boxing the common variant
// would cost an allocation per entry to shrink a value that never sits in a collection.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum LogRequest {
    /// A v3 request, or an etcd v2 one that oxetcd expresses as one (attributes, version).
    V3(InternalRaftRequest),
    /// An etcd v2 request with no meaning here (v2 keys, `SYNC`): applied as a no-op.
    IgnoredV2 { method: String, path: String },
}

/// etcd's v2 `Request` (`etcdserverpb.Request`), the fields read here.
#[derive(Clone, PartialEq, Message)]
struct V2Request {
    #[prost(uint64, tag = "1")]
    id: u64,
    #[prost(string, tag = "2")]
    method: String,
    #[prost(string, tag = "3")]
    path: String,
    #[prost(string, tag = "4")]
    val: String,
}

/// Decodes a normal entry's data: an `InternalRaftRequest`, or failing that one of etcd
/// 3.4's v2 requests. The error is the `InternalRaftRequest` one when neither decodes.
pub fn decode_request(data: Bytes) -> Result<LogRequest, prost::DecodeError> {
    let err = match InternalRaftRequest::decode(data.clone()) {
        Ok(request) => return Ok(LogRequest::V3(request)),
        Err(e) => e,
    };
    let Ok(v2) = V2Request::decode(data) else { return Err(err) };
    if v2.method.is_empty() || !v2.path.starts_with('/') {
        return Err(err);
    }
    let header = Some(RequestHeader { id: v2.id, ..Default::default() });
    let attributes = v2
        .path
        .strip_prefix(V2_MEMBERS)
        .and_then(|p| p.strip_prefix('/'))
        .and_then(|p| p.strip_suffix("/attributes"))
        .and_then(|hex| u64::from_str_radix(hex, 16).ok());
    match (v2.method.as_str(), attributes) {
        ("PUT", Some(member_id)) => {
            let Ok(member) = serde_json::from_slice::<JsonMember>(v2.val.as_bytes()) else {
                return Err(err);
            };
            Ok(LogRequest::V3(InternalRaftRequest {
                header,
                cluster_member_attr_set: Some(ClusterMemberAttrSetRequest {
                    member_id,
                    member_attributes: Some(MemberAttributes {
                        name: member.name,
                        client_urls: member.client_urls,
                    }),
                }),
                ..Default::default()
            }))
        }
        ("PUT", None) if v2.path == V2_VERSION => Ok(LogRequest::V3(InternalRaftRequest {
            header,
            cluster_version_set: Some(ClusterVersionSetRequest { ver: v2.val }),
            ..Default::default()
        })),
        _ => Ok(LogRequest::IgnoredV2 { method: v2.method, path: v2.path }),
    }
}

/// A node of etcd's v2 store as its snapshot saves it.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct V2Node {
    #[serde(default)]
    path: String,
    #[serde(default)]
    value: String,
    #[serde(default)]
    children: Option<std::collections::BTreeMap<String, V2Node>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct V2Store {
    root: V2Node,
}

impl V2Node {
    fn child(&self, name: &str) -> Option<&V2Node> {
        self.children.as_ref()?.get(name)
    }

    fn children(&self) -> impl Iterator<Item = (&String, &V2Node)> {
        self.children.iter().flatten()
    }
}

/// The membership a raft snapshot's data holds: oxetcd's `ClusterState`, or etcd's v2
/// store (JSON), whose `/0/members/<id>/raftAttributes` and `attributes`,
/// `/0/members_removed/<id>` and `/0/version` are read.
pub fn decode_snapshot_state(data: Bytes) -> Result<ClusterState, String> {
    if !is_json(&data) {
        return ClusterState::decode(data).map_err(|e| e.to_string());
    }
    let store: V2Store =
        serde_json::from_slice(&data).map_err(|e| format!("etcd's v2 store: {e}"))?;
    let cluster = store.root.child("0");
    let hex_id = |node: &V2Node, name: &str| {
        u64::from_str_radix(name, 16)
            .map_err(|_| format!("etcd's v2 store: {} is not a member id", node.path))
    };
    let mut state = ClusterState::default();
    for (name, node) in
        cluster.and_then(|c| c.child("members")).into_iter().flat_map(V2Node::children)
    {
        let id = hex_id(node, name)?;
        let parse = |key: &str| -> Result<Option<JsonMember>, String> {
            let Some(value) = node.child(key) else { return Ok(None) };
            serde_json::from_str(&value.value)
                .map(Some)
                .map_err(|e| format!("etcd's v2 store: {}: {e}", value.path))
        };
        let raft = parse("raftAttributes")?
            .ok_or_else(|| format!("etcd's v2 store: {} has no raftAttributes", node.path))?;
        let attributes = parse("attributes")?;
        let (name, client_urls) = attributes.map(|a| (a.name, a.client_urls)).unwrap_or_default();
        state.members.push(Member {
            id,
            name,
            peer_ur_ls: raft.peer_urls,
            client_ur_ls: client_urls,
            is_learner: raft.is_learner,
        });
    }
    for (name, node) in
        cluster.and_then(|c| c.child("members_removed")).into_iter().flat_map(V2Node::children)
    {
        state.removed.push(hex_id(node, name)?);
    }
    if let Some(version) = cluster.and_then(|c| c.child("version")) {
        state.cluster_version = version.value.clone();
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxetcd_raft::ConfChangeType;

    /// A snap file's data as `etcdctl snapshot restore` (3.4.23) writes it, cut down,
    /// with a second member's attributes, a removed member and the version added.
    const V2_STORE: &str = r#"{"Root":{"Path":"/","CreatedIndex":0,"ModifiedIndex":0,"ExpireTime":"0001-01-01T00:00:00Z","Value":"","Children":{"0":{"Path":"/0","Value":"","Children":{"members":{"Path":"/0/members","Value":"","Children":{"4e95e8bf5c055843":{"Path":"/0/members/4e95e8bf5c055843","Value":"","Children":{"raftAttributes":{"Path":"/0/members/4e95e8bf5c055843/raftAttributes","Value":"{\"peerURLs\":[\"http://127.0.0.1:43380\"]}","Children":null}}},"a":{"Path":"/0/members/a","Value":"","Children":{"raftAttributes":{"Path":"/0/members/a/raftAttributes","Value":"{\"peerURLs\":[\"http://h:2380\"],\"isLearner\":true}","Children":null},"attributes":{"Path":"/0/members/a/attributes","Value":"{\"name\":\"n\",\"clientURLs\":[\"http://h:2379\"]}","Children":null}}}}},"members_removed":{"Path":"/0/members_removed","Value":"","Children":{"b":{"Path":"/0/members_removed/b","Value":"removed","Children":null}}},"version":{"Path":"/0/version","Value":"3.4.0","Children":null}}},"1":{"Path":"/1","Value":"","Children":{}}}},"WatcherHub":{"EventHistory":{"Queue":{"Events":[null],"Size":0,"Front":0,"Back":0,"Capacity":1000},"StartIndex":1,"LastIndex":1}}}"#;

    #[test]
    fn etcds_v2_store_snapshot_gives_the_membership() {
        let state = decode_snapshot_state(Bytes::from_static(V2_STORE.as_bytes())).unwrap();
        assert_eq!(state.members.len(), 2);
        assert_eq!(state.members[0].id, 0x4e95_e8bf_5c05_5843);
        assert_eq!(state.members[0].peer_ur_ls, ["http://127.0.0.1:43380"]);
        assert!(state.members[0].name.is_empty() && !state.members[0].is_learner);
        assert_eq!(state.members[1].id, 0xa);
        assert_eq!(state.members[1].name, "n");
        assert_eq!(state.members[1].client_ur_ls, ["http://h:2379"]);
        assert!(state.members[1].is_learner);
        assert_eq!(state.removed, [0xb]);
        assert_eq!(state.cluster_version, "3.4.0");
        // oxetcd's own form still reads, and damage in either is an error.
        let own = ClusterState { cluster_version: "3.4.0".into(), ..state.clone() };
        assert_eq!(decode_snapshot_state(own.encode_to_vec().into()).unwrap(), own);
        assert!(decode_snapshot_state(Bytes::from_static(b"{\"Root\":")).is_err());
    }

    #[test]
    fn etcds_json_conf_change_contexts_read_as_oxetcds() {
        let add = |context: &str| ConfChange {
            change_type: ConfChangeType::ConfChangeAddNode as i32,
            node_id: 18_000_000_000_000_000_001,
            context: Bytes::copy_from_slice(context.as_bytes()),
            ..Default::default()
        };
        let json = r#"{"id":18000000000000000001,"peerURLs":["http://a:2380"],"name":"m1"}"#;
        let cc = decode_conf_change(add(json).encode_to_vec().into()).unwrap();
        let member = Member::decode(cc.context).unwrap();
        assert_eq!(member.id, 18_000_000_000_000_000_001);
        assert_eq!(
            (member.name.as_str(), member.peer_ur_ls.as_slice()),
            ("m1", &["http://a:2380".to_string()][..])
        );
        let promote =
            r#"{"id":18000000000000000001,"peerURLs":["http://a:2380"],"isPromote":true}"#;
        let cc = decode_conf_change(add(promote).encode_to_vec().into()).unwrap();
        assert!(cc.context.is_empty(), "a promotion names no member");
        // oxetcd's own context is left as it is.
        let own = Member { id: 7, ..Default::default() }.encode_to_vec();
        let cc = ConfChange { context: own.clone().into(), ..add("") };
        assert_eq!(decode_conf_change(cc.encode_to_vec().into()).unwrap().context, own);
    }

    #[test]
    fn etcd_3_4_v2_requests_become_attributes_and_version() {
        let v2 = |method: &str, path: &str, val: &str| -> Bytes {
            let r = V2Request { id: 9, method: method.into(), path: path.into(), val: val.into() };
            r.encode_to_vec().into()
        };
        let attrs = v2(
            "PUT",
            "/0/members/8e9e05c52164694d/attributes",
            r#"{"name":"default","clientURLs":["http://localhost:2379"]}"#,
        );
        let LogRequest::V3(request) = decode_request(attrs).unwrap() else { panic!("attributes") };
        let set = request.cluster_member_attr_set.unwrap();
        assert_eq!(set.member_id, 0x8e9e_05c5_2164_694d);
        let attributes = set.member_attributes.unwrap();
        assert_eq!(attributes.name, "default");
        assert_eq!(attributes.client_urls, ["http://localhost:2379"]);
        assert_eq!(request.header.unwrap().id, 9);

        let LogRequest::V3(request) = decode_request(v2("PUT", "/0/version", "3.4.0")).unwrap()
        else {
            panic!("version")
        };
        assert_eq!(request.cluster_version_set.unwrap().ver, "3.4.0");

        let sync = decode_request(v2("SYNC", "/", "")).unwrap();
        assert!(matches!(sync, LogRequest::IgnoredV2 { method, .. } if method == "SYNC"));
        // A v3 request is read as such; bytes that are neither are an error.
        let v3 = InternalRaftRequest { id: 3, ..Default::default() }.encode_to_vec();
        assert!(matches!(decode_request(v3.into()).unwrap(), LogRequest::V3(r) if r.id == 3));
        assert!(decode_request(Bytes::from_static(&[0xff, 0xff, 0xff])).is_err());
    }
}
