//! etcd's own encodings of what the log and snapshot files carry besides key-value
//! requests: read so that oxetcd starts on a data dir etcd wrote, and written so that
//! etcd 3.4 starts on one oxetcd wrote (`oxetcdutl migrate --to etcd`).
//!
//! oxetcd writes etcd's file formats (WAL records, snap files) but encodes membership
//! its own way, as etcd 3.5+ does for attributes: a conf change's context is the
//! `Member` in protobuf (etcd: JSON), a raft snapshot's data is a `ClusterState`
//! (etcd 3.4/3.5: its v2 store as JSON), and attributes and the cluster version go
//! through the log as `InternalRaftRequest` fields (etcd 3.4: v2 `PUT`s of
//! `/0/members/<id>/attributes` and `/0/version`). This module is the one place that
//! knows etcd's forms: the decoders turn them into oxetcd's where entries and snapshots
//! are decoded, so nothing past them knows etcd's forms exist; the `*_for_etcd_3_4`
//! encoders turn oxetcd's into etcd 3.4's for the way back.
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
use oxetcd_raft::{ConfChange, ConfChangeType, Entry, EntryType};
use prost::Message;
use serde::{Deserialize, Serialize};

/// Where etcd's v2 store keeps members (`etcdserver.StoreClusterPrefix` + `members`).
const V2_MEMBERS: &str = "/0/members";
/// Where etcd's v2 store keeps the ids of removed members.
const V2_MEMBERS_REMOVED: &str = "/0/members_removed";
/// etcd's v2 store key of the cluster version.
const V2_VERSION: &str = "/0/version";

fn is_json(data: &[u8]) -> bool {
    data.first() == Some(&b'{')
}

/// A member as etcd's JSON has it (`membership.Member`, with `ConfigChangeContext`'s
/// `isPromote` for a promotion). Written with etcd's `omitempty`s: the same JSON serves
/// a conf change's context, a member's `raftAttributes` (id and peer URLs, learner or
/// not) and its `attributes` (name and client URLs), each with the other fields empty.
#[derive(Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonMember {
    #[serde(default, skip_serializing_if = "is_zero")]
    id: u64,
    #[serde(default, rename = "peerURLs", skip_serializing_if = "Option::is_none")]
    peer_urls: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "is_false")]
    is_learner: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    name: String,
    #[serde(default, rename = "clientURLs", skip_serializing_if = "Vec::is_empty")]
    client_urls: Vec<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    is_promote: bool,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !b
}

impl JsonMember {
    /// A conf change's context for `member` (etcd always names the id and peer URLs).
    fn context(member: Member) -> JsonMember {
        JsonMember {
            id: member.id,
            peer_urls: Some(member.peer_ur_ls),
            is_learner: member.is_learner,
            name: member.name,
            client_urls: member.client_ur_ls,
            is_promote: false,
        }
    }

    fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a member serializes")
    }
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
                peer_ur_ls: member.peer_urls.unwrap_or_default(),
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

/// A node of etcd's v2 store as its snapshot saves it: a directory has children (an
/// empty map for an empty one), a value has none (`null`). Fields etcd has and these do
/// not (indexes, expiry) read as their zero values.
#[derive(Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
struct V2Node {
    #[serde(default)]
    path: String,
    #[serde(default)]
    value: String,
    #[serde(default)]
    children: Option<std::collections::BTreeMap<String, V2Node>>,
}

/// etcd's v2 store as a snapshot holds it. Only the tree is written: etcd reads a
/// snapshot into a fresh store, whose other fields (event history, statistics) keep
/// their initial values when the JSON leaves them out.
#[derive(Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
struct V2Store {
    root: V2Node,
}

impl V2Node {
    fn dir(path: String, children: impl IntoIterator<Item = (String, V2Node)>) -> V2Node {
        V2Node { path, value: String::new(), children: Some(children.into_iter().collect()) }
    }

    fn value(path: String, value: String) -> V2Node {
        V2Node { path, value, children: None }
    }

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
            peer_ur_ls: raft.peer_urls.unwrap_or_default(),
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

/// The highest cluster version etcd 3.4 runs under: it refuses to start (a "downgrade")
/// on a higher one, and oxetcd's is 3.5.
const ETCD_3_4_CLUSTER_VERSION: &str = "3.4.0";

/// A cluster version as etcd 3.4 may be told it: capped at 3.4. etcd 3.5 reading a 3.4
/// cluster raises it again itself.
fn version_for_etcd_3_4(version: &str) -> String {
    let major_minor = |v: &str| -> Option<(u64, u64)> {
        let mut parts = v.split('.');
        Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
    };
    match (major_minor(version), major_minor(ETCD_3_4_CLUSTER_VERSION)) {
        (Some(v), Some(cap)) if v <= cap => version.to_string(),
        _ => ETCD_3_4_CLUSTER_VERSION.to_string(),
    }
}

/// A log entry as etcd 3.4 writes it: a conf change's context as JSON (a promotion as an
/// add with `isPromote`), a member's attributes and the cluster version as v2 `PUT`s;
/// anything else as it is. Idempotent: an entry already in etcd's forms comes out the
/// same. Refused: what etcd 3.4 cannot apply (a joint-consensus conf change, a request
/// it has no field for), which oxetcd does not write today.
pub fn entry_for_etcd_3_4(mut entry: Entry) -> Result<Entry, String> {
    match EntryType::try_from(entry.entry_type) {
        Ok(EntryType::EntryNormal) if entry.data.is_empty() => {}
        Ok(EntryType::EntryNormal) => {
            if let Some(data) = request_for_etcd_3_4(entry.data.clone())? {
                entry.data = data;
            }
        }
        Ok(EntryType::EntryConfChange) => entry.data = conf_change_for_etcd_3_4(&entry.data)?,
        Ok(EntryType::EntryConfChangeV2) | Err(_) => {
            return Err(format!("entry type {} is unknown to etcd 3.4", entry.entry_type));
        }
    }
    Ok(entry)
}

/// A normal entry's data in etcd 3.4's form; `None` when it already is.
fn request_for_etcd_3_4(data: Bytes) -> Result<Option<Bytes>, String> {
    let request = match decode_request(data).map_err(|e| format!("undecodable request: {e}"))? {
        LogRequest::V3(request) => request,
        LogRequest::IgnoredV2 { .. } => return Ok(None),
    };
    let id = request.header.as_ref().map_or(request.id, |h| h.id);
    let v2 = |path: String, val: String| {
        Some(V2Request { id, method: "PUT".into(), path, val }.encode_to_vec().into())
    };
    if let Some(set) = request.cluster_member_attr_set {
        let attributes = set.member_attributes.unwrap_or_default();
        let json = JsonMember {
            name: attributes.name,
            client_urls: attributes.client_urls,
            ..JsonMember::default()
        };
        let path = format!("{V2_MEMBERS}/{}/attributes", crate::id::Hex(set.member_id));
        return Ok(v2(path, json.to_json()));
    }
    if let Some(set) = request.cluster_version_set {
        return Ok(v2(V2_VERSION.to_string(), version_for_etcd_3_4(&set.ver)));
    }
    if request.downgrade_info_set.is_some() || request.auth_status.is_some() {
        return Err("a request etcd 3.4 has no field for (downgrade info or auth status)".into());
    }
    Ok(None)
}

/// A conf change's bytes with its context in etcd's JSON.
fn conf_change_for_etcd_3_4(data: &Bytes) -> Result<Bytes, String> {
    let mut cc =
        decode_conf_change(data.clone()).map_err(|e| format!("undecodable conf change: {e}"))?;
    let change_type = ConfChangeType::try_from(cc.change_type)
        .map_err(|_| format!("unknown conf change type {}", cc.change_type))?;
    let json = match change_type {
        ConfChangeType::ConfChangeRemoveNode => None,
        // oxetcd's promotion names no member; etcd's names the learner's id.
        ConfChangeType::ConfChangeAddNode if cc.context.is_empty() => {
            Some(JsonMember { id: cc.node_id, is_promote: true, ..JsonMember::default() })
        }
        ConfChangeType::ConfChangeAddNode
        | ConfChangeType::ConfChangeAddLearnerNode
        | ConfChangeType::ConfChangeUpdateNode => {
            let member = Member::decode(cc.context.clone())
                .map_err(|e| format!("undecodable member in a conf change: {e}"))?;
            Some(JsonMember::context(member))
        }
    };
    if let Some(json) = json {
        cc.context = json.to_json().into();
    }
    Ok(cc.encode_to_vec().into())
}

/// A raft snapshot's data as etcd 3.4 writes it: its v2 store (JSON) holding the
/// membership, from oxetcd's `ClusterState` or etcd's own store (idempotent).
pub fn snapshot_data_for_etcd_3_4(data: Bytes) -> Result<Bytes, String> {
    let state = decode_snapshot_state(data)?;
    let members = state.members.into_iter().map(|m| {
        let path = format!("{V2_MEMBERS}/{}", crate::id::Hex(m.id));
        let raft = JsonMember {
            peer_urls: Some(m.peer_ur_ls),
            is_learner: m.is_learner,
            ..JsonMember::default()
        };
        let mut children = vec![(
            "raftAttributes".to_string(),
            V2Node::value(format!("{path}/raftAttributes"), raft.to_json()),
        )];
        // A member that never published has no attributes in etcd's store either.
        if !m.name.is_empty() || !m.client_ur_ls.is_empty() {
            let attributes =
                JsonMember { name: m.name, client_urls: m.client_ur_ls, ..JsonMember::default() };
            let value = V2Node::value(format!("{path}/attributes"), attributes.to_json());
            children.push(("attributes".to_string(), value));
        }
        (crate::id::Hex(m.id).to_string(), V2Node::dir(path, children))
    });
    let removed = state.removed.into_iter().map(|id| {
        let name = crate::id::Hex(id).to_string();
        (name.clone(), V2Node::value(format!("{V2_MEMBERS_REMOVED}/{name}"), "removed".into()))
    });
    let mut cluster = vec![
        ("members".to_string(), V2Node::dir(V2_MEMBERS.into(), members)),
        ("members_removed".to_string(), V2Node::dir(V2_MEMBERS_REMOVED.into(), removed)),
    ];
    if !state.cluster_version.is_empty() {
        let version = version_for_etcd_3_4(&state.cluster_version);
        cluster.push(("version".to_string(), V2Node::value(V2_VERSION.into(), version)));
    }
    let root = V2Node::dir(
        "/".into(),
        [
            ("0".to_string(), V2Node::dir("/0".into(), cluster)),
            ("1".to_string(), V2Node::dir("/1".into(), [])),
        ],
    );
    let json = serde_json::to_vec(&V2Store { root }).expect("the v2 store serializes");
    Ok(json.into())
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

    #[test]
    fn etcd_3_5_membership_requests_read_with_etcds_field_numbers() {
        // etcd 3.5 writes the cluster version as InternalRaftRequest field 1300 and a
        // member's attributes as 1301 (raft_internal.proto).
        let version = ClusterVersionSetRequest { ver: "3.5.0".into() }.encode_to_vec();
        let mut data = vec![0xa2, 0x51, version.len() as u8];
        data.extend_from_slice(&version);
        let LogRequest::V3(request) = decode_request(data.into()).unwrap() else { panic!() };
        assert_eq!(request.cluster_version_set.unwrap().ver, "3.5.0");
        let attributes = ClusterMemberAttrSetRequest { member_id: 5, member_attributes: None };
        let attributes = attributes.encode_to_vec();
        let mut data = vec![0xaa, 0x51, attributes.len() as u8];
        data.extend_from_slice(&attributes);
        let LogRequest::V3(request) = decode_request(data.into()).unwrap() else { panic!() };
        assert_eq!(request.cluster_member_attr_set.unwrap().member_id, 5);
    }

    fn normal(data: Vec<u8>) -> Entry {
        Entry { index: 7, term: 2, entry_type: EntryType::EntryNormal as i32, data: data.into() }
    }

    fn conf_change(change_type: ConfChangeType, node_id: u64, context: Vec<u8>) -> Entry {
        let cc =
            ConfChange { id: 3, change_type: change_type as i32, node_id, context: context.into() };
        Entry { entry_type: EntryType::EntryConfChange as i32, ..normal(cc.encode_to_vec()) }
    }

    /// `entry` in etcd 3.4's form, checked to come out the same a second time.
    fn for_etcd(entry: Entry) -> Entry {
        let once = entry_for_etcd_3_4(entry).unwrap();
        assert_eq!(entry_for_etcd_3_4(once.clone()).unwrap(), once, "idempotent");
        once
    }

    fn context_of(entry: &Entry) -> String {
        let cc = ConfChange::decode(entry.data.clone()).unwrap();
        String::from_utf8(cc.context.to_vec()).unwrap()
    }

    #[test]
    fn conf_changes_go_out_with_etcds_json_contexts_and_read_back() {
        let member = Member {
            id: 0xa,
            name: "m2".into(),
            peer_ur_ls: vec!["http://a:2380".into()],
            client_ur_ls: vec![],
            is_learner: true,
        };
        let add =
            conf_change(ConfChangeType::ConfChangeAddLearnerNode, 0xa, member.encode_to_vec());
        let out = for_etcd(add);
        assert_eq!(
            context_of(&out),
            r#"{"id":10,"peerURLs":["http://a:2380"],"isLearner":true,"name":"m2"}"#
        );
        let back = decode_conf_change(out.data).unwrap();
        assert_eq!(Member::decode(back.context).unwrap(), member);

        let promote = for_etcd(conf_change(ConfChangeType::ConfChangeAddNode, 0xa, vec![]));
        assert_eq!(context_of(&promote), r#"{"id":10,"isPromote":true}"#);
        assert!(decode_conf_change(promote.data).unwrap().context.is_empty());

        let remove = conf_change(ConfChangeType::ConfChangeRemoveNode, 0xa, vec![]);
        assert_eq!(for_etcd(remove.clone()), remove);
    }

    #[test]
    fn attributes_and_version_go_out_as_etcd_3_4_v2_puts() {
        let header = Some(RequestHeader { id: 9, ..Default::default() });
        let attributes = InternalRaftRequest {
            header: header.clone(),
            cluster_member_attr_set: Some(ClusterMemberAttrSetRequest {
                member_id: 0x8e9e_05c5_2164_694d,
                member_attributes: Some(MemberAttributes {
                    name: "default".into(),
                    client_urls: vec!["http://localhost:2379".into()],
                }),
            }),
            ..Default::default()
        };
        let out = for_etcd(normal(attributes.encode_to_vec()));
        let v2 = V2Request::decode(out.data.clone()).unwrap();
        assert_eq!(
            (v2.id, v2.method.as_str(), v2.path.as_str(), v2.val.as_str()),
            (
                9,
                "PUT",
                "/0/members/8e9e05c52164694d/attributes",
                r#"{"name":"default","clientURLs":["http://localhost:2379"]}"#
            )
        );
        let LogRequest::V3(back) = decode_request(out.data).unwrap() else { panic!() };
        assert_eq!(back.cluster_member_attr_set, attributes.cluster_member_attr_set);

        let version = |ver: &str| InternalRaftRequest {
            header: header.clone(),
            cluster_version_set: Some(ClusterVersionSetRequest { ver: ver.into() }),
            ..Default::default()
        };
        for (ours, theirs) in [("3.5.0", "3.4.0"), ("3.4.0", "3.4.0"), ("3.0.0", "3.0.0")] {
            let out = for_etcd(normal(version(ours).encode_to_vec()));
            let v2 = V2Request::decode(out.data).unwrap();
            assert_eq!((v2.path.as_str(), v2.val.as_str()), ("/0/version", theirs));
        }
        // A key-value request and a leader's empty entry are etcd's as they are.
        let put =
            InternalRaftRequest { header, put: Some(Default::default()), ..Default::default() };
        for entry in [normal(put.encode_to_vec()), normal(vec![])] {
            assert_eq!(for_etcd(entry.clone()), entry);
        }
        let status =
            InternalRaftRequest { auth_status: Some(Default::default()), ..Default::default() };
        assert!(entry_for_etcd_3_4(normal(status.encode_to_vec())).is_err());
    }

    #[test]
    fn a_snapshots_membership_goes_out_as_etcds_v2_store_and_reads_back() {
        let state = ClusterState {
            members: vec![
                Member {
                    id: 0x4e95_e8bf_5c05_5843,
                    name: "m1".into(),
                    peer_ur_ls: vec!["http://127.0.0.1:43380".into()],
                    client_ur_ls: vec!["http://127.0.0.1:43379".into()],
                    is_learner: false,
                },
                Member {
                    id: 0xa,
                    peer_ur_ls: vec!["http://h:2380".into()],
                    is_learner: true,
                    ..Default::default()
                },
            ],
            removed: vec![0xb],
            cluster_version: "3.5.0".into(),
        };
        let json = snapshot_data_for_etcd_3_4(state.encode_to_vec().into()).unwrap();
        assert!(is_json(&json));
        assert_eq!(snapshot_data_for_etcd_3_4(json.clone()).unwrap(), json, "idempotent");
        let back = decode_snapshot_state(json.clone()).unwrap();
        assert_eq!(back, ClusterState { cluster_version: "3.4.0".into(), ..state });
        // The shape etcd's store reads: directories with children, values without.
        let text = String::from_utf8(json.to_vec()).unwrap();
        assert!(text.contains(r#""1":{"Path":"/1","Value":"","Children":{}}"#), "{text}");
        assert!(
            text.contains(r#"{"Path":"/0/members/a/raftAttributes","Value":"{\"peerURLs\":[\"http://h:2380\"],\"isLearner\":true}","Children":null}"#),
            "{text}"
        );
    }
}
