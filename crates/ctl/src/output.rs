//! The five output formats of etcdctl (`-w simple|json|protobuf|fields|table`), each
//! printing the same answers as etcdctl 3.4 does, byte for byte. A format a command does
//! not support fails as etcdctl's does: `Error: <format> not supported as output format`,
//! exit 4.

use std::fmt::Write as _;
use std::io::Write as _;

use oxetcd_client::KeyValue;
use oxetcd_client::proto::etcdserverpb::{
    AlarmResponse, DeleteRangeResponse, HashKvResponse, LeaseGrantResponse, LeaseKeepAliveResponse,
    LeaseLeasesResponse, LeaseTimeToLiveResponse, MemberListResponse, PutResponse, RangeResponse,
    ResponseHeader, StatusResponse, TxnResponse, WatchResponse, response_op,
};
use prost::Message;

use crate::error::{CtlError, CtlResult, exit};
use crate::go;
use crate::json::{self, Obj};

/// Writes to stdout; a closed pipe is not worth a panic.
pub fn stdout(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// Writes raw bytes to stdout (the protobuf format).
pub fn stdout_bytes(bytes: &[u8]) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(bytes);
    let _ = out.flush();
}

pub fn stderr(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    let _ = err.flush();
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Simple,
    Json,
    Protobuf,
    Fields,
    Table,
}

impl Format {
    pub fn parse(name: &str) -> Option<Format> {
        Some(match name {
            "simple" => Format::Simple,
            "json" => Format::Json,
            "protobuf" => Format::Protobuf,
            "fields" => Format::Fields,
            "table" => Format::Table,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Format::Simple => "simple",
            Format::Json => "json",
            Format::Protobuf => "protobuf",
            Format::Fields => "fields",
            Format::Table => "table",
        }
    }
}

/// One endpoint's health, as `endpoint health` reports it.
#[derive(Debug, Clone)]
pub struct EndpointHealth {
    pub endpoint: String,
    pub health: bool,
    pub took: String,
    pub error: String,
}

/// One endpoint's answer to Status or HashKV.
#[derive(Debug, Clone)]
pub struct EndpointAnswer<T> {
    pub endpoint: String,
    pub response: T,
}

#[derive(Debug, Clone, Copy)]
pub struct Printer {
    pub format: Format,
    pub hex: bool,
    /// `get --print-value-only`.
    pub value_only: bool,
}

fn unsupported(format: Format) -> CtlError {
    CtlError::new(exit::BAD_FEATURE, format!("{} not supported as output format", format.name()))
}

fn line(text: &mut String, s: impl std::fmt::Display) {
    let _ = writeln!(text, "{s}");
}

/// `%016x` of a lease id (Go prints the int64's bits as a signed number in hex; lease
/// ids are positive).
fn lease_hex(id: i64) -> String {
    if id < 0 { format!("-{:016x}", id.unsigned_abs()) } else { format!("{id:016x}") }
}

impl Printer {
    fn emit(&self, text: String) -> CtlResult {
        stdout(&text);
        Ok(())
    }

    fn json(&self, text: String) -> CtlResult {
        self.emit(text + "\n")
    }

    fn pb(&self, message: &impl Message) -> CtlResult {
        stdout_bytes(&message.encode_to_vec());
        Ok(())
    }

    fn rpc(&self, json_text: impl FnOnce() -> String, message: &impl Message) -> CtlResult {
        match self.format {
            Format::Json => self.json(json_text()),
            Format::Protobuf => self.pb(message),
            other => Err(unsupported(other)),
        }
    }

    /// A clientv3 struct that is no protobuf message: the protobuf format refuses it.
    fn not_protobuf(&self, type_name: &str) -> CtlError {
        CtlError::new(exit::BAD_FEATURE, format!("marshal unsupported for type {type_name}"))
    }

    fn kv_simple(&self, text: &mut String, kv: &KeyValue) {
        let (k, v) = if self.hex {
            (hex_escaped(&kv.key), hex_escaped(&kv.value))
        } else {
            (lossless(&kv.key), lossless(&kv.value))
        };
        if !self.value_only {
            text.push_str(&k);
            text.push('\n');
        }
        text.push_str(&v);
        text.push('\n');
    }

    fn kv_fields(text: &mut String, prefix: &str, kv: &KeyValue) {
        line(text, format_args!("\"{prefix}Key\" : {}", go::quote(&kv.key)));
        line(text, format_args!("\"{prefix}CreateRevision\" : {}", kv.create_revision));
        line(text, format_args!("\"{prefix}ModRevision\" : {}", kv.mod_revision));
        line(text, format_args!("\"{prefix}Version\" : {}", kv.version));
        line(text, format_args!("\"{prefix}Value\" : {}", go::quote(&kv.value)));
        line(text, format_args!("\"{prefix}Lease\" : {}", kv.lease));
    }

    fn header_fields(text: &mut String, h: Option<&ResponseHeader>) {
        let h = h.cloned().unwrap_or_default();
        line(text, format_args!("\"ClusterID\" : {}", h.cluster_id));
        line(text, format_args!("\"MemberID\" : {}", h.member_id));
        line(text, format_args!("\"Revision\" : {}", h.revision));
        line(text, format_args!("\"RaftTerm\" : {}", h.raft_term));
    }

    pub fn get(&self, r: &RangeResponse) -> CtlResult {
        match self.format {
            Format::Simple => {
                let mut text = String::new();
                self.get_simple(&mut text, r);
                self.emit(text)
            }
            Format::Fields => {
                let mut text = String::new();
                Self::get_fields(&mut text, r);
                self.emit(text)
            }
            _ => self.rpc(|| json::range(r), r),
        }
    }

    fn get_simple(&self, text: &mut String, r: &RangeResponse) {
        for kv in &r.kvs {
            self.kv_simple(text, kv);
        }
    }

    fn get_fields(text: &mut String, r: &RangeResponse) {
        Self::header_fields(text, r.header.as_ref());
        for kv in &r.kvs {
            Self::kv_fields(text, "", kv);
        }
        line(text, format_args!("\"More\" : {}", r.more));
        line(text, format_args!("\"Count\" : {}", r.count));
    }

    pub fn put(&self, r: &PutResponse) -> CtlResult {
        let mut text = String::new();
        match self.format {
            Format::Simple => self.put_simple(&mut text, r),
            Format::Fields => Self::put_fields(&mut text, r),
            _ => return self.rpc(|| json::put(r), r),
        }
        self.emit(text)
    }

    fn put_simple(&self, text: &mut String, r: &PutResponse) {
        text.push_str("OK\n");
        if let Some(kv) = &r.prev_kv {
            self.kv_simple(text, kv);
        }
    }

    fn put_fields(text: &mut String, r: &PutResponse) {
        Self::header_fields(text, r.header.as_ref());
        if let Some(kv) = &r.prev_kv {
            Self::kv_fields(text, "Prev", kv);
        }
    }

    pub fn del(&self, r: &DeleteRangeResponse) -> CtlResult {
        let mut text = String::new();
        match self.format {
            Format::Simple => self.del_simple(&mut text, r),
            Format::Fields => Self::del_fields(&mut text, r),
            _ => return self.rpc(|| json::delete(r), r),
        }
        self.emit(text)
    }

    fn del_simple(&self, text: &mut String, r: &DeleteRangeResponse) {
        line(text, r.deleted);
        for kv in &r.prev_kvs {
            self.kv_simple(text, kv);
        }
    }

    fn del_fields(text: &mut String, r: &DeleteRangeResponse) {
        Self::header_fields(text, r.header.as_ref());
        line(text, format_args!("\"Deleted\" : {}", r.deleted));
        for kv in &r.prev_kvs {
            Self::kv_fields(text, "Prev", kv);
        }
    }

    pub fn txn(&self, r: &TxnResponse) -> CtlResult {
        let mut text = String::new();
        match self.format {
            Format::Simple => {
                text.push_str(if r.succeeded { "SUCCESS\n" } else { "FAILURE\n" });
                for op in &r.responses {
                    text.push('\n');
                    match &op.response {
                        Some(response_op::Response::ResponseRange(x)) => {
                            self.get_simple(&mut text, x)
                        }
                        Some(response_op::Response::ResponsePut(x)) => {
                            self.put_simple(&mut text, x)
                        }
                        Some(response_op::Response::ResponseDeleteRange(x)) => {
                            self.del_simple(&mut text, x)
                        }
                        _ => line(&mut text, "unexpected response"),
                    }
                }
            }
            Format::Fields => {
                Self::header_fields(&mut text, r.header.as_ref());
                line(&mut text, format_args!("\"Succeeded\" : {}", r.succeeded));
                for op in &r.responses {
                    match &op.response {
                        Some(response_op::Response::ResponseRange(x)) => {
                            Self::get_fields(&mut text, x)
                        }
                        Some(response_op::Response::ResponsePut(x)) => {
                            Self::put_fields(&mut text, x)
                        }
                        Some(response_op::Response::ResponseDeleteRange(x)) => {
                            Self::del_fields(&mut text, x)
                        }
                        _ => line(&mut text, "\"Unknown\" : \"\""),
                    }
                }
            }
            _ => return self.rpc(|| json::txn(r), r),
        }
        self.emit(text)
    }

    pub fn watch(&self, r: &WatchResponse) -> CtlResult {
        let mut text = String::new();
        match self.format {
            Format::Simple => {
                for e in &r.events {
                    line(&mut text, if e.r#type == 1 { "DELETE" } else { "PUT" });
                    if let Some(kv) = &e.prev_kv {
                        self.kv_simple(&mut text, kv);
                    }
                    self.kv_simple(&mut text, &e.kv.clone().unwrap_or_default());
                }
            }
            Format::Fields => {
                Self::header_fields(&mut text, r.header.as_ref());
                for e in &r.events {
                    line(
                        &mut text,
                        format_args!("\"Type\" : {}", if e.r#type == 1 { "DELETE" } else { "PUT" }),
                    );
                    if let Some(kv) = &e.prev_kv {
                        Self::kv_fields(&mut text, "Prev", kv);
                    }
                    Self::kv_fields(&mut text, "", &e.kv.clone().unwrap_or_default());
                }
            }
            Format::Json => return self.json(json::watch(r)),
            Format::Protobuf => {
                // etcdctl rebuilds the protobuf from clientv3's struct, which keeps only
                // these fields.
                let message = WatchResponse {
                    header: Some(r.header.unwrap_or_default()),
                    events: r.events.clone(),
                    compact_revision: r.compact_revision,
                    canceled: r.canceled,
                    created: r.created,
                    ..Default::default()
                };
                return self.pb(&message);
            }
            other => return Err(unsupported(other)),
        }
        self.emit(text)
    }

    /// clientv3's lease responses embed the header: its fields stand at the top level.
    fn lease_json(h: Option<&ResponseHeader>, rest: impl FnOnce(&mut Obj)) -> String {
        let mut obj = Obj::new();
        json::header_fields(&mut obj, &h.cloned().unwrap_or_default());
        rest(&mut obj);
        obj.finish()
    }

    pub fn grant(&self, r: &LeaseGrantResponse) -> CtlResult {
        match self.format {
            Format::Simple => {
                self.emit(format!("lease {} granted with TTL({}s)\n", lease_hex(r.id), r.ttl))
            }
            Format::Fields => {
                let mut text = String::new();
                Self::header_fields(&mut text, r.header.as_ref());
                line(&mut text, format_args!("\"ID\" : {}", r.id));
                line(&mut text, format_args!("\"TTL\" : {}", r.ttl));
                self.emit(text)
            }
            Format::Json => self.json(Self::lease_json(r.header.as_ref(), |o| {
                o.raw("ID", &r.id.to_string())
                    .raw("TTL", &r.ttl.to_string())
                    .raw("Error", &go::json_string(&r.error));
            })),
            Format::Protobuf => Err(self.not_protobuf("clientv3.LeaseGrantResponse")),
            other => Err(unsupported(other)),
        }
    }

    pub fn revoke(
        &self,
        id: i64,
        r: &oxetcd_client::proto::etcdserverpb::LeaseRevokeResponse,
    ) -> CtlResult {
        match self.format {
            Format::Simple => self.emit(format!("lease {} revoked\n", lease_hex(id))),
            Format::Fields => {
                let mut text = String::new();
                Self::header_fields(&mut text, r.header.as_ref());
                self.emit(text)
            }
            _ => self.rpc(|| json::header_only(r.header.as_ref()), r),
        }
    }

    pub fn keep_alive(&self, r: &LeaseKeepAliveResponse) -> CtlResult {
        match self.format {
            Format::Simple => {
                self.emit(format!("lease {} keepalived with TTL({})\n", lease_hex(r.id), r.ttl))
            }
            Format::Fields => {
                let mut text = String::new();
                Self::header_fields(&mut text, r.header.as_ref());
                line(&mut text, format_args!("\"ID\" : {}", r.id));
                line(&mut text, format_args!("\"TTL\" : {}", r.ttl));
                self.emit(text)
            }
            Format::Json => self.json(Self::lease_json(r.header.as_ref(), |o| {
                o.raw("ID", &r.id.to_string()).raw("TTL", &r.ttl.to_string());
            })),
            Format::Protobuf => Err(self.not_protobuf("clientv3.LeaseKeepAliveResponse")),
            other => Err(unsupported(other)),
        }
    }

    pub fn time_to_live(&self, r: &LeaseTimeToLiveResponse, keys: bool) -> CtlResult {
        match self.format {
            Format::Simple => {
                if r.granted_ttl == 0 && r.ttl == -1 {
                    return self.emit(format!("lease {} already expired\n", lease_hex(r.id)));
                }
                let mut text = format!(
                    "lease {} granted with TTL({}s), remaining({}s)",
                    lease_hex(r.id),
                    r.granted_ttl,
                    r.ttl
                );
                if keys {
                    let names: Vec<String> = r.keys.iter().map(|k| lossless(k)).collect();
                    let _ = write!(text, ", attached keys([{}])", names.join(" "));
                }
                text.push('\n');
                self.emit(text)
            }
            Format::Fields => {
                let mut text = String::new();
                Self::header_fields(&mut text, r.header.as_ref());
                line(&mut text, format_args!("\"ID\" : {}", r.id));
                line(&mut text, format_args!("\"TTL\" : {}", r.ttl));
                line(&mut text, format_args!("\"GrantedTTL\" : {}", r.granted_ttl));
                for k in &r.keys {
                    line(&mut text, format_args!("\"Key\" : {}", go::quote(k)));
                }
                self.emit(text)
            }
            Format::Json => {
                let keys = if r.keys.is_empty() {
                    "null".to_string()
                } else {
                    let items: Vec<String> =
                        r.keys.iter().map(|k| format!("\"{}\"", go::base64(k))).collect();
                    format!("[{}]", items.join(","))
                };
                self.json(Self::lease_json(r.header.as_ref(), |o| {
                    o.raw("id", &r.id.to_string())
                        .raw("ttl", &r.ttl.to_string())
                        .raw("granted-ttl", &r.granted_ttl.to_string())
                        .raw("keys", &keys);
                }))
            }
            Format::Protobuf => Err(self.not_protobuf("*clientv3.LeaseTimeToLiveResponse")),
            other => Err(unsupported(other)),
        }
    }

    pub fn leases(&self, r: &LeaseLeasesResponse) -> CtlResult {
        match self.format {
            Format::Simple => {
                let mut text = format!("found {} leases\n", r.leases.len());
                for l in &r.leases {
                    line(&mut text, lease_hex(l.id));
                }
                self.emit(text)
            }
            Format::Fields => {
                let mut text = String::new();
                Self::header_fields(&mut text, r.header.as_ref());
                for l in &r.leases {
                    line(&mut text, format_args!("\"ID\" : {}", l.id));
                }
                self.emit(text)
            }
            Format::Json => {
                let items: Vec<String> =
                    r.leases.iter().map(|l| format!("{{\"id\":{}}}", l.id)).collect();
                self.json(Self::lease_json(r.header.as_ref(), |o| {
                    o.raw("leases", &format!("[{}]", items.join(",")));
                }))
            }
            Format::Protobuf => Err(self.not_protobuf("*clientv3.LeaseLeasesResponse")),
            other => Err(unsupported(other)),
        }
    }

    /// member add/remove/update/promote: a one-line message in simple; the response
    /// otherwise.
    pub fn member_change<M: Message>(
        &self,
        simple: String,
        header: Option<&ResponseHeader>,
        json_text: impl FnOnce() -> String,
        message: &M,
    ) -> CtlResult {
        match self.format {
            Format::Simple => self.emit(simple + "\n"),
            Format::Fields => {
                let mut text = String::new();
                Self::header_fields(&mut text, header);
                self.emit(text)
            }
            _ => self.rpc(json_text, message),
        }
    }

    pub fn member_list(&self, r: &MemberListResponse) -> CtlResult {
        let header = ["ID", "Status", "Name", "Peer Addrs", "Client Addrs", "Is Learner"];
        let rows: Vec<Vec<String>> = r
            .members
            .iter()
            .map(|m| {
                vec![
                    go::id_hex(m.id),
                    if m.name.is_empty() { "unstarted" } else { "started" }.to_string(),
                    m.name.clone(),
                    m.peer_ur_ls.join(","),
                    m.client_ur_ls.join(","),
                    m.is_learner.to_string(),
                ]
            })
            .collect();
        match self.format {
            Format::Simple => self.emit(simple_rows(&rows)),
            Format::Table => self.emit(table(&header, &rows)),
            Format::Fields => {
                let mut text = String::new();
                Self::header_fields(&mut text, r.header.as_ref());
                for m in &r.members {
                    line(&mut text, format_args!("\"ID\" : {}", m.id));
                    line(&mut text, format_args!("\"Name\" : {}", go::quote(&m.name)));
                    for u in &m.peer_ur_ls {
                        line(&mut text, format_args!("\"PeerURL\" : {}", go::quote(u)));
                    }
                    for u in &m.client_ur_ls {
                        line(&mut text, format_args!("\"ClientURL\" : {}", go::quote(u)));
                    }
                    line(&mut text, format_args!("\"IsLearner\" : {}", m.is_learner));
                    text.push('\n');
                }
                self.emit(text)
            }
            _ => self.rpc(
                || {
                    Obj::new()
                        .obj("header", json::header(r.header.as_ref()))
                        .list("members", &json::members(&r.members))
                        .finish()
                },
                r,
            ),
        }
    }

    pub fn endpoint_health(&self, list: &[EndpointHealth]) -> CtlResult {
        match self.format {
            Format::Simple => {
                let mut text = String::new();
                for h in list {
                    if h.error.is_empty() {
                        line(
                            &mut text,
                            format_args!(
                                "{} is healthy: successfully committed proposal: took = {}",
                                h.endpoint, h.took
                            ),
                        );
                    } else {
                        line(
                            &mut text,
                            format_args!(
                                "{} is unhealthy: failed to commit proposal: {}",
                                h.endpoint, h.error
                            ),
                        );
                    }
                }
                stderr(&text);
                Ok(())
            }
            Format::Json => {
                let items: Vec<String> = list
                    .iter()
                    .map(|h| {
                        Obj::new()
                            .raw("endpoint", &go::json_string(&h.endpoint))
                            .raw("health", &h.health.to_string())
                            .raw("took", &go::json_string(&h.took))
                            .str("error", &h.error)
                            .finish()
                    })
                    .collect();
                self.json(format!("[{}]", items.join(",")))
            }
            Format::Fields => {
                let mut text = String::new();
                for h in list {
                    line(&mut text, format_args!("\"Endpoint\" : {}", go::quote(&h.endpoint)));
                    line(&mut text, format_args!("\"Health\" : {}", h.health));
                    line(&mut text, format_args!("\"Took\" : {}", h.took));
                    line(&mut text, format_args!("\"Error\" : {}", h.error));
                    text.push('\n');
                }
                self.emit(text)
            }
            Format::Table => {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|h| {
                        vec![
                            h.endpoint.clone(),
                            h.health.to_string(),
                            h.took.clone(),
                            h.error.clone(),
                        ]
                    })
                    .collect();
                self.emit(table(&["endpoint", "health", "took", "error"], &rows))
            }
            Format::Protobuf => Err(unsupported(Format::Protobuf)),
        }
    }

    pub fn endpoint_status(&self, list: &[EndpointAnswer<StatusResponse>]) -> CtlResult {
        let rows: Vec<Vec<String>> = list
            .iter()
            .map(|s| {
                let r = &s.response;
                let member_id = r.header.as_ref().map(|h| h.member_id).unwrap_or_default();
                vec![
                    s.endpoint.clone(),
                    go::id_hex(member_id),
                    r.version.clone(),
                    go::humanize_bytes(r.db_size.max(0) as u64),
                    (r.leader == member_id).to_string(),
                    r.is_learner.to_string(),
                    r.raft_term.to_string(),
                    r.raft_index.to_string(),
                    r.raft_applied_index.to_string(),
                    r.errors.join(", "),
                ]
            })
            .collect();
        match self.format {
            Format::Simple => self.emit(simple_rows(&rows)),
            Format::Table => {
                let text = table(
                    &[
                        "endpoint",
                        "ID",
                        "version",
                        "db size",
                        "is leader",
                        "is learner",
                        "raft term",
                        "raft index",
                        "raft applied index",
                        "errors",
                    ],
                    &rows,
                );
                if !colors_on_stdout() {
                    return self.emit(text);
                }
                let roles: Vec<Role> = list.iter().map(|s| Role::of(&s.response)).collect();
                self.emit(mark_roles(&text, &roles))
            }
            Format::Json => {
                let items: Vec<String> = list
                    .iter()
                    .map(|s| {
                        Obj::new()
                            .raw("Endpoint", &go::json_string(&s.endpoint))
                            .raw("Status", &json::status(&s.response))
                            .finish()
                    })
                    .collect();
                self.json(format!("[{}]", items.join(",")))
            }
            Format::Fields => {
                let mut text = String::new();
                for s in list {
                    let r = &s.response;
                    Self::header_fields(&mut text, r.header.as_ref());
                    line(&mut text, format_args!("\"Version\" : {}", go::quote(&r.version)));
                    line(&mut text, format_args!("\"DBSize\" : {}", r.db_size));
                    line(&mut text, format_args!("\"Leader\" : {}", r.leader));
                    line(&mut text, format_args!("\"IsLearner\" : {}", r.is_learner));
                    line(&mut text, format_args!("\"RaftIndex\" : {}", r.raft_index));
                    line(&mut text, format_args!("\"RaftTerm\" : {}", r.raft_term));
                    line(
                        &mut text,
                        format_args!("\"RaftAppliedIndex\" : {}", r.raft_applied_index),
                    );
                    line(&mut text, format_args!("\"Errors\" : [{}]", r.errors.join(" ")));
                    line(&mut text, format_args!("\"Endpoint\" : {}", go::quote(&s.endpoint)));
                    text.push('\n');
                }
                self.emit(text)
            }
            Format::Protobuf => Err(unsupported(Format::Protobuf)),
        }
    }

    pub fn endpoint_hash_kv(&self, list: &[EndpointAnswer<HashKvResponse>]) -> CtlResult {
        let rows: Vec<Vec<String>> =
            list.iter().map(|h| vec![h.endpoint.clone(), h.response.hash.to_string()]).collect();
        match self.format {
            Format::Simple => self.emit(simple_rows(&rows)),
            Format::Table => self.emit(table(&["endpoint", "hash"], &rows)),
            Format::Json => {
                let items: Vec<String> = list
                    .iter()
                    .map(|h| {
                        Obj::new()
                            .raw("Endpoint", &go::json_string(&h.endpoint))
                            .raw("HashKV", &json::hash_kv(&h.response))
                            .finish()
                    })
                    .collect();
                self.json(format!("[{}]", items.join(",")))
            }
            Format::Fields => {
                let mut text = String::new();
                for h in list {
                    Self::header_fields(&mut text, h.response.header.as_ref());
                    line(&mut text, format_args!("\"Endpoint\" : {}", go::quote(&h.endpoint)));
                    line(&mut text, format_args!("\"Hash\" : {}", h.response.hash));
                    text.push('\n');
                }
                self.emit(text)
            }
            Format::Protobuf => Err(unsupported(Format::Protobuf)),
        }
    }

    pub fn alarm(&self, r: &AlarmResponse) -> CtlResult {
        let name = |alarm: i32| match alarm {
            1 => "NOSPACE",
            2 => "CORRUPT",
            _ => "NONE",
        };
        match self.format {
            Format::Simple => {
                let mut text = String::new();
                for a in &r.alarms {
                    // Go's `%+v` of the generated struct: its compact text form.
                    let mut compact = String::new();
                    if a.member_id != 0 {
                        let _ = write!(compact, "memberID:{} ", a.member_id);
                    }
                    if a.alarm != 0 {
                        let _ = write!(compact, "alarm:{} ", name(a.alarm));
                    }
                    line(&mut text, compact);
                }
                self.emit(text)
            }
            Format::Fields => {
                let mut text = String::new();
                Self::header_fields(&mut text, r.header.as_ref());
                for a in &r.alarms {
                    line(&mut text, format_args!("\"MemberID\" : {}", a.member_id));
                    line(&mut text, format_args!("\"AlarmType\" : {}", name(a.alarm)));
                    text.push('\n');
                }
                self.emit(text)
            }
            _ => self.rpc(
                || {
                    let alarms: Vec<String> = r.alarms.iter().map(json::alarm).collect();
                    Obj::new()
                        .obj("header", json::header(r.header.as_ref()))
                        .list("alarms", &alarms)
                        .finish()
                },
                r,
            ),
        }
    }

    /// The auth commands whose simple output is one line, and whose fields output is
    /// the header.
    pub fn auth_change<M: Message>(
        &self,
        simple: String,
        header: Option<&ResponseHeader>,
        message: &M,
    ) -> CtlResult {
        match self.format {
            Format::Simple => self.emit(simple),
            Format::Fields => {
                let mut text = String::new();
                Self::header_fields(&mut text, header);
                self.emit(text)
            }
            _ => self.rpc(|| json::header_only(header), message),
        }
    }

    /// A response that has a simple form and, in json/protobuf, its message (no fields
    /// form: etcdctl has none for it).
    pub fn other<M: Message>(
        &self,
        simple: String,
        json_text: impl FnOnce() -> String,
        message: &M,
    ) -> CtlResult {
        match self.format {
            Format::Simple => self.emit(simple),
            _ => self.rpc(json_text, message),
        }
    }

    /// A response with a simple form, a fields form and the message.
    pub fn with_fields<M: Message>(
        &self,
        simple: String,
        fields: String,
        json_text: impl FnOnce() -> String,
        message: &M,
    ) -> CtlResult {
        match self.format {
            Format::Simple => self.emit(simple),
            Format::Fields => self.emit(fields),
            _ => self.rpc(json_text, message),
        }
    }

    /// The header in the fields format.
    pub fn fields_header(h: Option<&ResponseHeader>) -> String {
        let mut text = String::new();
        Self::header_fields(&mut text, h);
        text
    }
}

/// Bytes as Go's `string(b)` prints them: unchanged, even when not UTF-8.
fn lossless(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        // Printing goes through `stdout`, which takes a str: invalid bytes are replaced.
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// etcdctl's `--hex`: every byte as `\xNN`.
fn hex_escaped(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 4);
    for b in bytes {
        let _ = write!(out, "\\x{b:02x}");
    }
    out
}

fn simple_rows(rows: &[Vec<String>]) -> String {
    let mut text = String::new();
    for row in rows {
        line(&mut text, row.join(", "));
    }
    text
}

/// Whether stdout is a terminal that may be colored (`NO_COLOR` unset, as
/// <https://no-color.org> asks). Only then does a table carry more than etcdctl's.
fn colors_on_stdout() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stdout())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// A member's part in its cluster, as `endpoint status` shows it on a terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Leader,
    Learner,
    Follower,
}

impl Role {
    fn of(status: &StatusResponse) -> Role {
        let member_id = status.header.as_ref().map(|h| h.member_id).unwrap_or_default();
        if status.leader == member_id {
            Role::Leader
        } else if status.is_learner {
            Role::Learner
        } else {
            Role::Follower
        }
    }
}

const BOLD_GREEN: &str = "\x1b[1;32m";
const YELLOW: &str = "\x1b[33m";
const RESET: &str = "\x1b[0m";

/// `text`, a [`table`] with a row per entry of `roles`, with the leader's row in bold green
/// and learners' in yellow, and a line saying so. The escape codes wrap whole lines, so
/// the cells and columns stay etcdctl's.
pub fn mark_roles(text: &str, roles: &[Role]) -> String {
    // A table is a border, the header, a border, the rows and a border.
    const LINES_BEFORE_ROWS: usize = 3;
    let mut marked = String::new();
    for (i, line) in text.lines().enumerate() {
        let role = i.checked_sub(LINES_BEFORE_ROWS).and_then(|row| roles.get(row));
        match role {
            Some(Role::Leader) => writeln!(marked, "{BOLD_GREEN}{line}{RESET}"),
            Some(Role::Learner) => writeln!(marked, "{YELLOW}{line}{RESET}"),
            _ => writeln!(marked, "{line}"),
        }
        .unwrap_or_default();
    }
    if roles.iter().any(|r| *r != Role::Follower) {
        marked.push_str(&format!("{BOLD_GREEN}leader{RESET}  {YELLOW}learner{RESET}\n"));
    }
    marked
}

/// A table as etcdctl's tablewriter draws it: headers upper-cased and centred, cells
/// right-aligned, borders of `+`, `-` and `|`.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let header: Vec<String> = header.iter().map(|h| h.to_uppercase()).collect();
    let width = |s: &str| s.chars().count();
    let mut widths: Vec<usize> = header.iter().map(|h| width(h)).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(width(cell));
            }
        }
    }
    let border = {
        let mut s = String::from("+");
        for w in &widths {
            s.push_str(&"-".repeat(w + 2));
            s.push('+');
        }
        s.push('\n');
        s
    };
    let mut text = border.clone();
    text.push('|');
    for (h, w) in header.iter().zip(&widths) {
        let gap = w - width(h);
        let left = gap / 2;
        let _ = write!(text, " {}{}{} |", " ".repeat(left), h, " ".repeat(gap - left));
    }
    text.push('\n');
    text.push_str(&border);
    for row in rows {
        text.push('|');
        for (cell, w) in row.iter().zip(&widths) {
            let _ = write!(text, " {}{} |", " ".repeat(w - width(cell)), cell);
        }
        text.push('\n');
    }
    text.push_str(&border);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marked_tables_keep_their_cells() {
        let rows = vec![
            vec!["a:1".to_string(), "true".to_string()],
            vec!["b:2".to_string(), "false".to_string()],
        ];
        let text = table(&["endpoint", "is leader"], &rows);
        let marked = mark_roles(&text, &[Role::Leader, Role::Learner]);
        let plain = marked.replace(BOLD_GREEN, "").replace(YELLOW, "").replace(RESET, "");
        assert_eq!(plain, format!("{text}leader  learner\n"));
        let lines: Vec<&str> = text.lines().collect();
        assert!(marked.contains(&format!("{BOLD_GREEN}{}{RESET}\n", lines[3])));
        assert!(marked.contains(&format!("{YELLOW}{}{RESET}\n", lines[4])));
        let followers = mark_roles(&text, &[Role::Follower, Role::Follower]);
        assert_eq!(followers, text);
    }

    #[test]
    fn tables_center_headers_and_right_align_cells() {
        let rows = vec![vec!["127.0.0.1:42379".to_string(), "4071776589".to_string()]];
        assert_eq!(
            table(&["endpoint", "hash"], &rows),
            "+-----------------+------------+\n\
             |    ENDPOINT     |    HASH    |\n\
             +-----------------+------------+\n\
             | 127.0.0.1:42379 | 4071776589 |\n\
             +-----------------+------------+\n"
        );
    }

    #[test]
    fn hex_output_escapes_every_byte() {
        assert_eq!(hex_escaped(b"ab"), "\\x61\\x62");
    }

    #[test]
    fn lease_ids_print_in_sixteen_hex_digits() {
        assert_eq!(lease_hex(0x1234), "0000000000001234");
    }
}
