//! Software transactional memory over etcd (etcd's `clientv3/concurrency` STM): the
//! caller's function reads and writes through an [`Stm`]; its writes are committed in
//! one transaction that fails if what it read has changed, and then it runs again.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex as StdMutex};

use bytes::Bytes;
use oxetcd_api::etcdserverpb::response_op::Response;
use oxetcd_api::etcdserverpb::{RangeResponse, ResponseHeader};

use crate::{Client, Compare, CompareOp, Error, GetOptions, IntoBytes, Result, Txn, TxnOp};

/// How isolated an STM transaction is (etcd's isolation levels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Isolation {
    /// Every read sees the store as of the first read, and the commit fails if any key
    /// read, or any key written, changed after it: serializable snapshot isolation.
    #[default]
    SerializableSnapshot,
    /// Every read sees the store as of the first read; the commit fails if a key read
    /// has changed.
    Serializable,
    /// A key read twice reads the same; the commit fails if a key read has changed.
    RepeatableReads,
    /// No checks at commit: writes are applied whatever changed.
    ReadCommitted,
}

/// Options of [`run_stm`].
#[derive(Debug, Clone)]
pub struct StmOptions {
    isolation: Isolation,
    prefetch: Vec<Bytes>,
    max_attempts: u32,
}

impl Default for StmOptions {
    /// Serializable snapshot isolation, at most 1000 attempts.
    fn default() -> Self {
        StmOptions { isolation: Isolation::default(), prefetch: Vec::new(), max_attempts: 1000 }
    }
}

impl StmOptions {
    /// Serializable snapshot isolation, at most 1000 attempts.
    pub fn new() -> Self {
        Self::default()
    }

    /// The isolation level.
    pub fn with_isolation(mut self, isolation: Isolation) -> Self {
        self.isolation = isolation;
        self
    }

    /// Keys read in one request before the first attempt.
    pub fn with_prefetch(mut self, keys: impl IntoIterator<Item = impl IntoBytes>) -> Self {
        self.prefetch = keys.into_iter().map(IntoBytes::into_bytes).collect();
        self
    }

    /// How many times the function may run before [`run_stm`] gives up with
    /// [`Error::StmConflict`].
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }
}

#[derive(Debug, Default)]
struct State {
    /// Keys read in this attempt, as the server answered.
    reads: HashMap<Bytes, RangeResponse>,
    /// Keys fetched ahead (before the first attempt, or by a failed commit).
    prefetch: HashMap<Bytes, RangeResponse>,
    /// Pending writes: a value to put, or `None` to delete.
    writes: BTreeMap<Bytes, Option<Bytes>>,
    /// The revision reads are pinned to (serializable levels), set by the first read.
    read_revision: Option<i64>,
}

/// The reads and writes of one attempt of an STM transaction. Clones share the attempt.
#[derive(Debug, Clone)]
pub struct Stm {
    client: Client,
    isolation: Isolation,
    state: Arc<StdMutex<State>>,
}

impl Stm {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The value of `key` as this transaction sees it (its own writes included), or
    /// `None` when the key does not exist.
    pub async fn get(&self, key: impl IntoBytes) -> Result<Option<Bytes>> {
        Ok(self.read(key.into_bytes()).await?.map(|(value, _)| value))
    }

    /// The revision that last modified `key` as this transaction read it (0 when the key
    /// does not exist or was written by this transaction).
    pub async fn mod_revision(&self, key: impl IntoBytes) -> Result<i64> {
        Ok(self.read(key.into_bytes()).await?.map_or(0, |(_, revision)| revision))
    }

    async fn read(&self, key: Bytes) -> Result<Option<(Bytes, i64)>> {
        let options = {
            let mut state = self.state();
            if let Some(write) = state.writes.get(&key) {
                return Ok(write.clone().map(|value| (value, 0)));
            }
            if let Some(prefetched) = state.prefetch.remove(&key) {
                state.reads.insert(key.clone(), prefetched);
            }
            if let Some(resp) = state.reads.get(&key) {
                let found = resp.kvs.first().map(|kv| (kv.value.clone(), kv.mod_revision));
                if state.read_revision.is_none() && self.pins_reads() {
                    state.read_revision = resp.header.as_ref().map(|h| h.revision);
                }
                return Ok(found);
            }
            match (self.isolation, state.read_revision) {
                (Isolation::SerializableSnapshot | Isolation::Serializable, Some(revision)) => {
                    GetOptions::new().with_revision(revision).with_serializable()
                }
                (Isolation::SerializableSnapshot | Isolation::Serializable, None) => {
                    GetOptions::new()
                }
                _ => GetOptions::new().with_serializable(),
            }
        };
        let resp = self.client.get(key.clone(), Some(options)).await?;
        let found = resp.kvs.first().map(|kv| (kv.value.clone(), kv.mod_revision));
        let mut state = self.state();
        if state.read_revision.is_none() && self.pins_reads() {
            state.read_revision = resp.header.as_ref().map(|h| h.revision);
        }
        state.reads.entry(key).or_insert(resp);
        Ok(found)
    }

    fn pins_reads(&self) -> bool {
        matches!(self.isolation, Isolation::SerializableSnapshot | Isolation::Serializable)
    }

    /// Writes `key` when the transaction commits.
    pub fn put(&self, key: impl IntoBytes, value: impl IntoBytes) {
        self.state().writes.insert(key.into_bytes(), Some(value.into_bytes()));
    }

    /// Deletes `key` when the transaction commits.
    pub fn delete(&self, key: impl IntoBytes) {
        self.state().writes.insert(key.into_bytes(), None);
    }

    /// The commit transaction: the conflict checks, the writes, and (for the serializable
    /// levels) reads of every key read, to start the next attempt from.
    fn commit_txn(&self) -> (Txn, Vec<Bytes>) {
        let state = self.state();
        let mut compares = Vec::new();
        if self.isolation != Isolation::ReadCommitted {
            for (key, resp) in &state.reads {
                let revision = resp.kvs.first().map_or(0, |kv| kv.mod_revision);
                compares.push(Compare::mod_revision(key, CompareOp::Equal, revision));
            }
        }
        if self.isolation == Isolation::SerializableSnapshot {
            let first =
                state.reads.values().filter_map(|r| r.header.as_ref().map(|h| h.revision)).min();
            if let Some(first) = first {
                for key in state.writes.keys() {
                    compares.push(Compare::mod_revision(key, CompareOp::Less, first + 1));
                }
            }
        }
        let writes = state.writes.iter().map(|(key, value)| match value {
            Some(value) => TxnOp::put(key, value, None),
            None => TxnOp::delete(key, None),
        });
        let mut txn = Txn::new().when(compares).and_then(writes);
        let mut keys = Vec::new();
        if self.pins_reads() {
            keys = state.reads.keys().cloned().collect();
            txn = txn.or_else(keys.iter().map(|k| TxnOp::get(k, None)));
        }
        (txn, keys)
    }

    /// Commits; on a conflict returns the fresh reads to prefetch for the next attempt.
    async fn commit(&self) -> Result<std::result::Result<(), HashMap<Bytes, RangeResponse>>> {
        let (txn, keys) = self.commit_txn();
        let resp = self.client.txn(txn).await?;
        if resp.succeeded {
            return Ok(Ok(()));
        }
        let revision = resp.header.as_ref().map_or(0, |h| h.revision);
        let mut prefetch = HashMap::new();
        for (key, op) in keys.into_iter().zip(resp.responses) {
            if let Some(Response::ResponseRange(mut range)) = op.response {
                if range.header.as_ref().is_none_or(|h| h.revision == 0) {
                    range.header = Some(ResponseHeader { revision, ..Default::default() });
                }
                prefetch.insert(key, range);
            }
        }
        Ok(Err(prefetch))
    }
}

/// Runs `apply` as a transaction: it reads and writes through the [`Stm`] it is given;
/// its writes are committed atomically if nothing it depended on changed meanwhile
/// (per the isolation level), otherwise it runs again on fresh data. Returns what the
/// successful run returned; an error from `apply` aborts without committing.
///
/// ```no_run
/// # async fn example(client: oxetcd_client::Client) -> oxetcd_client::Result<()> {
/// use oxetcd_client::concurrency::{run_stm, StmOptions};
///
/// // Move 10 from account a to account b, atomically.
/// run_stm(&client, StmOptions::new(), |stm| async move {
///     let parse = |v: Option<bytes::Bytes>| -> i64 {
///         v.and_then(|v| std::str::from_utf8(&v).ok()?.parse().ok()).unwrap_or(0)
///     };
///     let a = parse(stm.get("accounts/a").await?);
///     let b = parse(stm.get("accounts/b").await?);
///     stm.put("accounts/a", (a - 10).to_string());
///     stm.put("accounts/b", (b + 10).to_string());
///     Ok::<_, oxetcd_client::Error>(())
/// })
/// .await?;
/// # Ok(())
/// # }
/// ```
pub async fn run_stm<T, E, F, Fut>(
    client: &Client,
    options: StmOptions,
    mut apply: F,
) -> std::result::Result<T, E>
where
    F: FnMut(Stm) -> Fut,
    Fut: Future<Output = std::result::Result<T, E>>,
    E: From<Error>,
{
    let mut prefetch = HashMap::new();
    if !options.prefetch.is_empty() {
        let reads = options.prefetch.iter().map(|k| TxnOp::get(k, None));
        let resp = client.txn(Txn::new().and_then(reads)).await?;
        let revision = resp.header.as_ref().map_or(0, |h| h.revision);
        for (key, op) in options.prefetch.iter().zip(resp.responses) {
            if let Some(Response::ResponseRange(mut range)) = op.response {
                if range.header.as_ref().is_none_or(|h| h.revision == 0) {
                    range.header = Some(ResponseHeader { revision, ..Default::default() });
                }
                prefetch.insert(key.clone(), range);
            }
        }
    }
    for _ in 0..options.max_attempts {
        let stm = Stm {
            client: client.clone(),
            isolation: options.isolation,
            state: Arc::new(StdMutex::new(State {
                prefetch: std::mem::take(&mut prefetch),
                ..State::default()
            })),
        };
        let value = apply(stm.clone()).await?;
        match stm.commit().await? {
            Ok(()) => return Ok(value),
            Err(fresh) => prefetch = fresh,
        }
    }
    Err(Error::StmConflict { attempts: options.max_attempts }.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxetcd_api::etcdserverpb::compare::CompareTarget;
    use oxetcd_api::mvccpb::KeyValue;

    fn stm(isolation: Isolation) -> Stm {
        Stm { client: Client::for_tests(), isolation, state: Default::default() }
    }

    fn read(stm: &Stm, key: &'static str, mod_revision: Option<i64>, header: i64) {
        let kvs = mod_revision.map(|r| KeyValue {
            key: key.into(),
            mod_revision: r,
            ..Default::default()
        });
        let resp = RangeResponse {
            header: Some(ResponseHeader { revision: header, ..Default::default() }),
            kvs: kvs.into_iter().collect(),
            ..Default::default()
        };
        stm.state().reads.insert(Bytes::from_static(key.as_bytes()), resp);
    }

    #[tokio::test]
    async fn serializable_snapshot_checks_reads_and_writes() {
        let stm = stm(Isolation::SerializableSnapshot);
        read(&stm, "a", Some(4), 10);
        read(&stm, "missing", None, 12);
        stm.put("b", "1");
        stm.delete("c");
        let (txn, keys) = stm.commit_txn();
        let txn = txn.into_request();
        // two reads pinned to their mod revisions, two writes checked against rev 10
        assert_eq!(txn.compare.len(), 4);
        let writes: Vec<_> = txn
            .compare
            .iter()
            .filter(|c| c.result == oxetcd_api::etcdserverpb::compare::CompareResult::Less as i32)
            .collect();
        assert_eq!(writes.len(), 2);
        assert!(txn.compare.iter().all(|c| c.target == CompareTarget::Mod as i32));
        assert_eq!(txn.success.len(), 2);
        assert_eq!(txn.failure.len(), 2);
        assert_eq!(keys.len(), 2);
    }

    #[tokio::test]
    async fn read_committed_has_no_checks_and_own_writes_are_read_back() {
        let stm = stm(Isolation::ReadCommitted);
        read(&stm, "a", Some(4), 10);
        stm.put("a", "mine");
        assert_eq!(stm.get("a").await.unwrap(), Some(Bytes::from_static(b"mine")));
        stm.delete("a");
        assert_eq!(stm.get("a").await.unwrap(), None);
        let (txn, _) = stm.commit_txn();
        let txn = txn.into_request();
        assert!(txn.compare.is_empty() && txn.failure.is_empty());
    }
}
