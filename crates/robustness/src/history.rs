//! What clients did and what they heard back: a history of operations, each with the
//! time it was invoked, the time its answer came (if one came), and the outcome. The
//! checkers read nothing else, so a history saved as JSON can be checked again later.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// A key-value pair as a read (or a watch event) saw it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Kv {
    pub key: String,
    pub value: String,
    pub mod_revision: i64,
}

/// The condition of a compare-and-swap transaction.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Compare {
    /// The key's mod_revision equals this (0: the key does not exist).
    ModRevision(i64),
    /// The key exists and holds this value (etcd fails a value compare on a missing key).
    Value(String),
}

/// What a client asked for. Writes carry values unique in the history, so a value read
/// back names the write that made it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    Put {
        key: String,
        value: String,
    },
    /// A linearizable range read of `[key, range_end)`; no `range_end` reads the key alone.
    Range {
        key: String,
        range_end: Option<String>,
    },
    Delete {
        key: String,
    },
    /// `if compare(key) then put(key, value) else get(key)`.
    Txn {
        key: String,
        compare: Compare,
        value: String,
    },
}

impl Request {
    /// Whether the request can change the store (and so must be kept when unanswered).
    pub fn is_write(&self) -> bool {
        !matches!(self, Request::Range { .. })
    }

    /// Whether `key` lies in what the request touches.
    pub fn covers(&self, key: &str) -> bool {
        match self {
            Request::Range { key: start, range_end: Some(end) } => {
                key >= start.as_str() && key < end.as_str()
            }
            Request::Range { key: k, range_end: None }
            | Request::Put { key: k, .. }
            | Request::Delete { key: k }
            | Request::Txn { key: k, .. } => k == key,
        }
    }
}

/// The server's answer to a request that succeeded. `revision` is the response
/// header's: the store's revision after the request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    Put {
        revision: i64,
    },
    Range {
        revision: i64,
        kvs: Vec<Kv>,
    },
    Delete {
        revision: i64,
        deleted: i64,
    },
    /// `kv`: what the `else` branch's get read (nothing when the compare succeeded).
    Txn {
        revision: i64,
        succeeded: bool,
        kv: Option<Kv>,
    },
}

impl Response {
    pub fn revision(&self) -> i64 {
        match self {
            Response::Put { revision }
            | Response::Range { revision, .. }
            | Response::Delete { revision, .. }
            | Response::Txn { revision, .. } => *revision,
        }
    }
}

/// How a request ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Ok(Response),
    /// Certainly not applied (it never left the client, or it only read).
    Failed(String),
    /// No answer, or an error after the request may have reached a server: it may have
    /// been applied, at any time after it was invoked.
    Unknown(String),
}

/// One operation of one client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    pub client: u32,
    /// Nanoseconds since the history began.
    pub invoke: u64,
    /// When the answer came; `None` while there is none (an unknown outcome).
    pub complete: Option<u64>,
    pub request: Request,
    pub outcome: Outcome,
}

/// One response on a watch stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchResponse {
    /// Nanoseconds since the history began, when the client received it.
    pub at: u64,
    pub header_revision: i64,
    /// No events and neither a creation nor a cancellation: a progress notification.
    pub progress_notify: bool,
    pub events: Vec<WatchEvent>,
}

/// One event: a put (with the new key-value) or a delete (`value` empty).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WatchEvent {
    pub revision: i64,
    pub key: String,
    pub delete: bool,
    pub value: String,
}

/// A recorded watch: what it asked for and everything it received.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchStream {
    pub client: u32,
    pub key: String,
    /// The end of the watched range (exclusive); `None` is the key alone.
    pub range_end: Option<String>,
    /// The first revision asked for.
    pub start_revision: i64,
    pub responses: Vec<WatchResponse>,
    /// The store's revision at the end, which a complete stream must have reached;
    /// `None` when the stream was cut short (completeness is then not checked).
    pub reached: Option<i64>,
    /// Why the watch ended before the run did, if it did (but for compaction, no watch
    /// has a reason to end).
    #[serde(default)]
    pub ended_early: Option<String>,
    /// The compaction revision the server canceled the watch at, if it did (the watch
    /// goes on as a new stream from there; this one is not held to completeness).
    #[serde(default)]
    pub compacted: Option<i64>,
}

impl WatchStream {
    pub fn covers(&self, key: &str) -> bool {
        match &self.range_end {
            Some(end) => key >= self.key.as_str() && key < end.as_str(),
            None => key == self.key,
        }
    }
}

/// One lease of the lease workload and what is known of its life.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    pub id: i64,
    /// The key put with the lease (it goes when the lease goes).
    pub key: String,
    /// Each successful grant or keep-alive: when it was invoked (ns) and the TTL (s) it
    /// answered. The lease lives at least TTL after each: the server refreshed it after
    /// the invocation.
    pub refreshed: Vec<(u64, i64)>,
    /// When a revoke was invoked (answered or not): from then on the lease may go.
    pub revoke_invoked: Option<u64>,
    /// When a keep-alive was answered with TTL 0 (the lease was gone by then).
    pub gone_by: Option<u64>,
}

/// Everything a run recorded.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    pub seed: u64,
    pub operations: Vec<Operation>,
    pub watches: Vec<WatchStream>,
    /// Every change the cluster committed, revision by revision, from revision 2 on:
    /// read ahead of each compaction, the rest after the run (the reference for the
    /// watch checks and the end checks).
    pub committed: Vec<WatchEvent>,
    /// The revisions compactions were asked for during the run.
    #[serde(default)]
    pub compactions: Vec<i64>,
    /// The store's revision when the run ended (every member at it).
    pub final_revision: i64,
    #[serde(default)]
    pub leases: Vec<LeaseRecord>,
}

/// Records operations from many clients at once, timed against one clock.
#[derive(Clone, Debug)]
pub struct Recorder {
    start: Instant,
    operations: Arc<Mutex<Vec<Operation>>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder { start: Instant::now(), operations: Arc::default() }
    }
}

impl Recorder {
    /// Nanoseconds since the recorder was made.
    pub fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Records an operation invoked at `invoke` (from [`Recorder::now`]) that ended now
    /// with `outcome`; an unknown outcome gets no completion time.
    pub fn record(&self, client: u32, invoke: u64, request: Request, outcome: Outcome) {
        let complete = match outcome {
            Outcome::Unknown(_) => None,
            _ => Some(self.now()),
        };
        let op = Operation { client, invoke, complete, request, outcome };
        self.operations.lock().expect("the recorder's lock").push(op);
    }

    /// Everything recorded so far, in the order answers came.
    pub fn operations(&self) -> Vec<Operation> {
        self.operations.lock().expect("the recorder's lock").clone()
    }
}
