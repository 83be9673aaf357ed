//! A distributed mutex: etcd's lock algorithm over KV, Lease and Watch.

use bytes::Bytes;
use oxetcd_api::etcdserverpb::response_op::Response;
use oxetcd_api::etcdserverpb::{ResponseHeader, TxnResponse};

use super::{Abandon, Session, wait_deletes};
use crate::{Compare, CompareOp, Error, GetOptions, PutOptions, Result, Txn, TxnOp};

/// A lock shared by every client that uses the same key prefix.
///
/// Each contender writes `prefix/<lease id in hex>` under its session's lease; the
/// contender whose key has the lowest create revision holds the lock; the others each
/// wait for the deletion of the key created just before theirs (so a release wakes
/// one waiter, not all). A holder that dies releases the lock when its lease expires.
///
/// ```no_run
/// # async fn example(client: oxetcd_client::Client) -> oxetcd_client::Result<()> {
/// use oxetcd_client::concurrency::{Mutex, Session, SessionOptions};
///
/// let session = Session::new(&client, SessionOptions::new().with_ttl(10)).await?;
/// let mut mutex = Mutex::new(&session, "locks/job-42");
/// mutex.lock().await?;
/// // … critical section: nobody else holds "locks/job-42" …
/// mutex.unlock().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Mutex {
    session: Session,
    prefix: Bytes,
    my_key: Bytes,
    my_revision: i64,
    header: Option<ResponseHeader>,
}

impl Mutex {
    /// A mutex on `prefix` for this session (nothing is sent yet). Keys are bytes, so
    /// the prefix need not be UTF-8.
    pub fn new(session: &Session, prefix: impl AsRef<[u8]>) -> Mutex {
        let prefix = super::with_slash(prefix.as_ref());
        let my_key = super::contender_key(&prefix, session.lease_id());
        Mutex { session: session.clone(), prefix, my_key, my_revision: -1, header: None }
    }

    /// The key this contender writes (`prefix/<lease id in hex>`).
    pub fn key(&self) -> &Bytes {
        &self.my_key
    }

    /// The create revision of this contender's key, once it has one.
    pub fn revision(&self) -> i64 {
        self.my_revision
    }

    /// The header of the response that granted the lock.
    pub fn header(&self) -> Option<&ResponseHeader> {
        self.header.as_ref()
    }

    /// Writes this contender's key if it is not there yet; returns the transaction's
    /// answer, whose last response is the current holder (the oldest key).
    async fn enqueue(&mut self) -> Result<TxnResponse> {
        let client = self.session.client();
        let lease = self.session.lease_id();
        let holder =
            TxnOp::get(&self.prefix, Some(GetOptions::new().with_prefix().with_first_create()));
        let txn = Txn::new()
            .when([Compare::create_revision(&self.my_key, CompareOp::Equal, 0)])
            .and_then([
                TxnOp::put(&self.my_key, "", Some(PutOptions::new().with_lease(lease))),
                holder.clone(),
            ])
            .or_else([TxnOp::get(&self.my_key, None), holder]);
        let resp = client.txn(txn).await?;
        self.my_revision = if resp.succeeded {
            resp.header.as_ref().ok_or(Error::MalformedResponse("txn without header"))?.revision
        } else {
            // Already queued (this session asked before): keep the original place.
            match resp.responses.first().and_then(|r| r.response.as_ref()) {
                Some(Response::ResponseRange(range)) => {
                    range.kvs.first().ok_or(Error::SessionExpired)?.create_revision
                }
                _ => return Err(Error::MalformedResponse("txn response lacks the key read")),
            }
        };
        Ok(resp)
    }

    fn holder_revision(resp: &TxnResponse) -> Option<i64> {
        match resp.responses.last().and_then(|r| r.response.as_ref()) {
            Some(Response::ResponseRange(range)) => range.kvs.first().map(|kv| kv.create_revision),
            _ => None,
        }
    }

    /// Takes the lock, waiting as long as it takes. If this future is dropped before it
    /// completes, the contender's key is deleted in the background.
    pub async fn lock(&mut self) -> Result<()> {
        let client = self.session.client().clone();
        let resp = self.enqueue().await?;
        let mut abandon = Abandon { client: client.clone(), key: Some(self.my_key.clone()) };
        if Self::holder_revision(&resp) == Some(self.my_revision) {
            abandon.key = None;
            self.header = resp.header;
            return Ok(());
        }
        // Wait for every older contender to go.
        let waited = wait_deletes(&client, &self.prefix, self.my_revision - 1).await;
        if let Err(e) = waited {
            drop(abandon);
            return Err(e);
        }
        // The key must still be ours: a lease that expired while waiting deleted it.
        let mine = client.get(&self.my_key, None).await?;
        if mine.kvs.is_empty() {
            abandon.key = None;
            return Err(Error::SessionExpired);
        }
        abandon.key = None;
        self.header = mine.header;
        Ok(())
    }

    /// Takes the lock if nobody holds it, or fails with [`Error::Locked`] at once.
    pub async fn try_lock(&mut self) -> Result<()> {
        let resp = self.enqueue().await?;
        if Self::holder_revision(&resp) == Some(self.my_revision) {
            self.header = resp.header;
            return Ok(());
        }
        self.session.client().delete(&self.my_key, None).await?;
        self.my_revision = -1;
        Err(Error::Locked)
    }

    /// Releases the lock (or leaves the queue).
    pub async fn unlock(&mut self) -> Result<()> {
        self.session.client().delete(&self.my_key, None).await?;
        self.my_revision = -1;
        self.header = None;
        Ok(())
    }

    /// Whether this contender holds the lock right now (one linearizable read).
    pub async fn is_owner(&self) -> Result<bool> {
        let resp = self
            .session
            .client()
            .get(&self.prefix, Some(GetOptions::new().with_prefix().with_first_create()))
            .await?;
        Ok(resp.kvs.first().is_some_and(|kv| kv.key == self.my_key))
    }
}
