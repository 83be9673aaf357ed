//! etcd's responses in JSON as etcdctl 3.4 prints them: Go's `encoding/json` over the
//! generated structs, so field names are the structs' JSON tags, in declaration order,
//! zero values left out (`omitempty`), bytes in base64, 64-bit integers as plain numbers.

use oxetcd_client::KeyValue;
use oxetcd_client::proto::authpb::Permission;
use oxetcd_client::proto::etcdserverpb::{
    AlarmMember, DeleteRangeResponse, HashKvResponse, Member, PutResponse, RangeResponse,
    ResponseHeader, StatusResponse, TxnResponse, WatchResponse, response_op,
};
use oxetcd_client::proto::mvccpb::Event;

use crate::go;

/// A JSON object written field by field, in order.
#[derive(Default)]
pub struct Obj {
    text: String,
}

impl Obj {
    pub fn new() -> Obj {
        Obj { text: String::from("{") }
    }

    /// A field whose value is already JSON.
    pub fn raw(&mut self, key: &str, value: &str) -> &mut Obj {
        if self.text.len() > 1 {
            self.text.push(',');
        }
        self.text.push_str(&go::json_string(key));
        self.text.push(':');
        self.text.push_str(value);
        self
    }

    /// A number, left out when zero.
    pub fn num(&mut self, key: &str, value: impl Into<i128>) -> &mut Obj {
        let value = value.into();
        if value != 0 { self.raw(key, &value.to_string()) } else { self }
    }

    /// `true`, left out when false.
    pub fn flag(&mut self, key: &str, value: bool) -> &mut Obj {
        if value { self.raw(key, "true") } else { self }
    }

    /// A string, left out when empty.
    pub fn str(&mut self, key: &str, value: &str) -> &mut Obj {
        if value.is_empty() { self } else { self.raw(key, &go::json_string(value)) }
    }

    /// Bytes in base64, left out when empty.
    pub fn bytes(&mut self, key: &str, value: &[u8]) -> &mut Obj {
        if value.is_empty() { self } else { self.raw(key, &format!("\"{}\"", go::base64(value))) }
    }

    /// An array, left out when empty.
    pub fn list(&mut self, key: &str, items: &[String]) -> &mut Obj {
        if items.is_empty() { self } else { self.raw(key, &format!("[{}]", items.join(","))) }
    }

    /// An object, left out when absent.
    pub fn obj(&mut self, key: &str, value: Option<String>) -> &mut Obj {
        match value {
            Some(v) => self.raw(key, &v),
            None => self,
        }
    }

    pub fn finish(&mut self) -> String {
        let mut text = std::mem::take(&mut self.text);
        text.push('}');
        text
    }
}

pub fn strings(items: &[String]) -> Vec<String> {
    items.iter().map(|s| go::json_string(s)).collect()
}

/// The header's fields, into an object (clientv3's lease responses embed the header, so
/// its fields stand at the top level there).
pub fn header_fields(obj: &mut Obj, h: &ResponseHeader) {
    obj.num("cluster_id", h.cluster_id)
        .num("member_id", h.member_id)
        .num("revision", h.revision)
        .num("raft_term", h.raft_term);
}

pub fn header(h: Option<&ResponseHeader>) -> Option<String> {
    h.map(|h| {
        let mut obj = Obj::new();
        header_fields(&mut obj, h);
        obj.finish()
    })
}

pub fn kv(kv: &KeyValue) -> String {
    Obj::new()
        .bytes("key", &kv.key)
        .num("create_revision", kv.create_revision)
        .num("mod_revision", kv.mod_revision)
        .num("version", kv.version)
        .bytes("value", &kv.value)
        .num("lease", kv.lease)
        .finish()
}

fn kvs(list: &[KeyValue]) -> Vec<String> {
    list.iter().map(kv).collect()
}

pub fn range(r: &RangeResponse) -> String {
    Obj::new()
        .obj("header", header(r.header.as_ref()))
        .list("kvs", &kvs(&r.kvs))
        .flag("more", r.more)
        .num("count", r.count)
        .finish()
}

pub fn put(r: &PutResponse) -> String {
    Obj::new()
        .obj("header", header(r.header.as_ref()))
        .obj("prev_kv", r.prev_kv.as_ref().map(kv))
        .finish()
}

pub fn delete(r: &DeleteRangeResponse) -> String {
    Obj::new()
        .obj("header", header(r.header.as_ref()))
        .num("deleted", r.deleted)
        .list("prev_kvs", &kvs(&r.prev_kvs))
        .finish()
}

pub fn txn(r: &TxnResponse) -> String {
    let responses: Vec<String> = r
        .responses
        .iter()
        .map(|op| {
            let inner = match &op.response {
                Some(response_op::Response::ResponseRange(x)) => {
                    format!("{{\"ResponseRange\":{}}}", range(x))
                }
                Some(response_op::Response::ResponsePut(x)) => {
                    format!("{{\"ResponsePut\":{}}}", put(x))
                }
                Some(response_op::Response::ResponseDeleteRange(x)) => {
                    format!("{{\"ResponseDeleteRange\":{}}}", delete(x))
                }
                Some(response_op::Response::ResponseTxn(x)) => {
                    format!("{{\"ResponseTxn\":{}}}", txn(x))
                }
                None => "null".to_string(),
            };
            format!("{{\"Response\":{inner}}}")
        })
        .collect();
    Obj::new()
        .obj("header", header(r.header.as_ref()))
        .flag("succeeded", r.succeeded)
        .list("responses", &responses)
        .finish()
}

pub fn event(e: &Event) -> String {
    Obj::new()
        .num("type", e.r#type)
        .obj("kv", e.kv.as_ref().map(kv))
        .obj("prev_kv", e.prev_kv.as_ref().map(kv))
        .finish()
}

/// clientv3's `WatchResponse` struct (not the protobuf): capitalized field names, no
/// `omitempty`.
pub fn watch(r: &WatchResponse) -> String {
    let header = header(r.header.as_ref()).unwrap_or_else(|| "{}".to_string());
    // clientv3 makes a slice for every server response: never `null`.
    let events = format!("[{}]", r.events.iter().map(event).collect::<Vec<_>>().join(","));
    Obj::new()
        .raw("Header", &header)
        .raw("Events", &events)
        .raw("CompactRevision", &r.compact_revision.to_string())
        .raw("Canceled", &r.canceled.to_string())
        .raw("Created", &r.created.to_string())
        .finish()
}

pub fn member(m: &Member) -> String {
    Obj::new()
        .num("ID", m.id)
        .str("name", &m.name)
        .list("peerURLs", &strings(&m.peer_ur_ls))
        .list("clientURLs", &strings(&m.client_ur_ls))
        .flag("isLearner", m.is_learner)
        .finish()
}

pub fn members(list: &[Member]) -> Vec<String> {
    list.iter().map(member).collect()
}

pub fn alarm(a: &AlarmMember) -> String {
    Obj::new().num("memberID", a.member_id).num("alarm", a.alarm).finish()
}

pub fn status(s: &StatusResponse) -> String {
    Obj::new()
        .obj("header", header(s.header.as_ref()))
        .str("version", &s.version)
        .num("dbSize", s.db_size)
        .num("leader", s.leader)
        .num("raftIndex", s.raft_index)
        .num("raftTerm", s.raft_term)
        .num("raftAppliedIndex", s.raft_applied_index)
        .list("errors", &strings(&s.errors))
        .num("dbSizeInUse", s.db_size_in_use)
        .flag("isLearner", s.is_learner)
        .finish()
}

pub fn hash_kv(h: &HashKvResponse) -> String {
    Obj::new()
        .obj("header", header(h.header.as_ref()))
        .num("hash", h.hash)
        .num("compact_revision", h.compact_revision)
        .finish()
}

pub fn permission(p: &Permission) -> String {
    Obj::new()
        .num("permType", p.perm_type)
        .bytes("key", &p.key)
        .bytes("range_end", &p.range_end)
        .finish()
}

/// A response with nothing but a header: `{"header":{…}}`.
pub fn header_only(h: Option<&ResponseHeader>) -> String {
    Obj::new().obj("header", header(h)).finish()
}
