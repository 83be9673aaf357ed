//! Distributed-coordination recipes on top of KV, Lease and Watch, as etcd's
//! `clientv3/concurrency`: [`Session`], [`Mutex`], [`Election`] and the software
//! transactional memory [`run_stm`]. They work with any etcd v3 server and interoperate
//! with etcd's own recipes (same keys, same algorithms).

mod election;
mod mutex;
mod session;
mod stm;

pub use election::{Election, ElectionObserver, Leader, Observe};
pub use mutex::Mutex;
pub use session::{Session, SessionOptions};
pub use stm::{Isolation, Stm, StmOptions, run_stm};

use bytes::Bytes;
use oxetcd_api::mvccpb::event::EventType;

use crate::{Client, GetOptions, Result, WatchOptions};

/// `prefix/`: the keys of a lock's contenders or an election's candidates go under it.
pub(crate) fn with_slash(prefix: &[u8]) -> Bytes {
    let mut with_slash = Vec::with_capacity(prefix.len() + 1);
    with_slash.extend_from_slice(prefix);
    with_slash.push(b'/');
    Bytes::from(with_slash)
}

/// The key a contender writes under `prefix` (which ends in `/`): its lease id in hex.
pub(crate) fn contender_key(prefix: &[u8], lease: i64) -> Bytes {
    let mut key = prefix.to_vec();
    key.extend_from_slice(format!("{lease:x}").as_bytes());
    Bytes::from(key)
}

/// Waits until `key` is deleted, watching from revision `after + 1`.
pub(crate) async fn wait_delete(client: &Client, key: Bytes, after: i64) -> Result<()> {
    let mut watcher =
        client.watch(key, Some(WatchOptions::new().with_start_revision(after + 1))).await?;
    while let Some(resp) = watcher.message().await? {
        if resp.events.iter().any(|e| e.r#type() == EventType::Delete) {
            return Ok(());
        }
    }
    Err(crate::Error::Closed("watch ended before the key was deleted"))
}

/// Waits until every key under `prefix` created at or before `max_create_revision` is
/// gone (etcd's `waitDeletes`): the newest such key first, then the next, and so on.
pub(crate) async fn wait_deletes(
    client: &Client,
    prefix: &Bytes,
    max_create_revision: i64,
) -> Result<i64> {
    loop {
        let options = GetOptions::new()
            .with_prefix()
            .with_last_create()
            .with_max_create_revision(max_create_revision);
        let resp = client.get(prefix, Some(options)).await?;
        let revision = resp.header.as_ref().map_or(0, |h| h.revision);
        let Some(last) = resp.kvs.into_iter().next() else {
            return Ok(revision);
        };
        wait_delete(client, last.key, revision).await?;
    }
}

/// Deletes a contender's key when a `lock` or `campaign` call is abandoned half-way
/// (its future dropped, or an error after the key was written), as etcd's recipes do
/// when their context ends.
pub(crate) struct Abandon {
    pub(crate) client: Client,
    pub(crate) key: Option<Bytes>,
}

impl Drop for Abandon {
    fn drop(&mut self) {
        if let (Some(key), Ok(runtime)) = (self.key.take(), tokio::runtime::Handle::try_current()) {
            let client = self.client.clone();
            runtime.spawn(async move {
                let _ = client.delete(key, None).await;
            });
        }
    }
}
