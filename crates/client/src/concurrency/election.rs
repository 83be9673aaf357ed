//! Leader election: etcd's election algorithm over KV, Lease and Watch.

use bytes::Bytes;
use oxetcd_api::etcdserverpb::ResponseHeader;
use oxetcd_api::etcdserverpb::response_op::Response;
use oxetcd_api::mvccpb::KeyValue;
use oxetcd_api::mvccpb::event::EventType;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{Abandon, Session, wait_deletes};
use crate::{
    Client, Compare, CompareOp, Error, GetOptions, PutOptions, Result, Txn, TxnOp, WatchOptions,
};

/// Leader values buffered for an [`Observe`] stream.
const OBSERVE_BUFFER: usize = 16;

/// A candidate in the election named by a key prefix.
///
/// Candidates write `prefix/<lease id in hex>` under their session's lease; the oldest
/// key is the leader, and its value is the leader's proclamation. A candidate waits for
/// every older candidate's key to be deleted. A leader that dies loses the leadership
/// when its lease expires.
///
/// ```no_run
/// # async fn example(client: oxetcd_client::Client) -> oxetcd_client::Result<()> {
/// use oxetcd_client::concurrency::{Election, Session, SessionOptions};
///
/// let session = Session::new(&client, SessionOptions::new().with_ttl(10)).await?;
/// let mut election = Election::new(&session, "service/leader");
/// election.campaign("10.0.0.1:8080").await?; // returns once this candidate leads
/// election.proclaim("10.0.0.1:8081").await?;
/// election.resign().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Election {
    session: Session,
    prefix: Bytes,
    leader_key: Option<Bytes>,
    leader_revision: i64,
    header: Option<ResponseHeader>,
}

impl Election {
    /// A candidate in election `prefix` for this session (nothing is sent yet). Keys
    /// are bytes, so the prefix need not be UTF-8.
    pub fn new(session: &Session, prefix: impl AsRef<[u8]>) -> Election {
        Election {
            session: session.clone(),
            prefix: super::with_slash(prefix.as_ref()),
            leader_key: None,
            leader_revision: 0,
            header: None,
        }
    }

    /// The candidate that holds `key`, created at `revision`, in election `prefix`
    /// under this session, as a campaign left it (etcd's `ResumeElection`): so a
    /// leader can proclaim or resign from another process. `prefix` is taken as given,
    /// without the `/` [`Election::new`] appends.
    pub fn resume(
        session: &Session,
        prefix: impl Into<Bytes>,
        key: impl Into<Bytes>,
        revision: i64,
    ) -> Election {
        Election {
            session: session.clone(),
            prefix: prefix.into(),
            leader_key: Some(key.into()),
            leader_revision: revision,
            header: None,
        }
    }

    /// An observer of election `prefix` that does not campaign.
    pub fn observer(client: &Client, prefix: impl AsRef<[u8]>) -> ElectionObserver {
        ElectionObserver { client: client.clone(), prefix: super::with_slash(prefix.as_ref()) }
    }

    /// This candidate's key, while it leads (or campaigns).
    pub fn key(&self) -> Option<&Bytes> {
        self.leader_key.as_ref()
    }

    /// The create revision of this candidate's key.
    pub fn revision(&self) -> i64 {
        self.leader_revision
    }

    /// The header of the last response that changed this candidate's standing: the one
    /// that made it the leader, or of its last proclamation or resignation.
    pub fn header(&self) -> Option<&ResponseHeader> {
        self.header.as_ref()
    }

    /// Puts this candidate up with `value` and waits until it leads. If it was already
    /// a candidate under this session, keeps its place and updates the value. If this
    /// future is dropped before it completes, the candidacy is withdrawn in the background.
    pub async fn campaign(&mut self, value: impl Into<Bytes>) -> Result<()> {
        let value = value.into();
        let client = self.session.client().clone();
        let lease = self.session.lease_id();
        let key = super::contender_key(&self.prefix, lease);
        let txn = Txn::new()
            .when([Compare::create_revision(&key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(&key, value.clone(), Some(PutOptions::new().with_lease(lease)))])
            .or_else([TxnOp::get(&key, None)]);
        let resp = client.txn(txn).await?;
        self.leader_key = Some(key.clone());
        self.leader_revision =
            resp.header.as_ref().ok_or(Error::MalformedResponse("txn without header"))?.revision;
        if !resp.succeeded {
            let existing = match resp.responses.first().and_then(|r| r.response.as_ref()) {
                Some(Response::ResponseRange(range)) => {
                    range.kvs.first().cloned().ok_or(Error::SessionExpired)?
                }
                _ => return Err(Error::MalformedResponse("txn response lacks the key read")),
            };
            self.leader_revision = existing.create_revision;
            if existing.value != value
                && let Err(e) = self.proclaim(value.clone()).await
            {
                let _ = self.resign().await;
                return Err(e);
            }
        }
        // If this future is dropped while waiting, the candidacy is withdrawn.
        let mut abandon = Abandon { client: client.clone(), key: Some(key.clone()) };
        if let Err(e) = wait_deletes(&client, &self.prefix, self.leader_revision - 1).await {
            abandon.key = None;
            let _ = self.resign().await;
            return Err(e);
        }
        // Still a candidate? (the lease may have expired while waiting)
        let mine = client.get(&key, None).await?;
        abandon.key = None;
        if mine.kvs.is_empty() {
            self.leader_key = None;
            return Err(Error::SessionExpired);
        }
        self.header = mine.header;
        Ok(())
    }

    /// Changes the leader's value without an election. Fails with
    /// [`Error::ElectionNotLeader`] when this candidate does not lead (and from then
    /// on, as it lost its key).
    pub async fn proclaim(&mut self, value: impl Into<Bytes>) -> Result<()> {
        let Some(key) = &self.leader_key else {
            return Err(Error::ElectionNotLeader);
        };
        let lease = self.session.lease_id();
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, self.leader_revision)])
            .and_then([TxnOp::put(key, value.into(), Some(PutOptions::new().with_lease(lease)))]);
        let resp = self.session.client().txn(txn).await?;
        if !resp.succeeded {
            self.leader_key = None;
            return Err(Error::ElectionNotLeader);
        }
        self.header = resp.header;
        Ok(())
    }

    /// Gives up the leadership (or the candidacy); the next candidate takes over. A
    /// candidate whose key is gone (or was replaced) has nothing to give up: that is
    /// not an error.
    pub async fn resign(&mut self) -> Result<()> {
        let Some(key) = self.leader_key.take() else {
            return Ok(());
        };
        let txn = Txn::new()
            .when([Compare::create_revision(&key, CompareOp::Equal, self.leader_revision)])
            .and_then([TxnOp::delete(&key, None)]);
        let result = self.session.client().txn(txn).await;
        match result {
            Ok(resp) => {
                self.header = resp.header;
                self.leader_revision = 0;
                Ok(())
            }
            Err(e) => {
                self.leader_key = Some(key);
                Err(e)
            }
        }
    }

    /// The current leader, or [`Error::ElectionNoLeader`].
    pub async fn leader(&self) -> Result<Leader> {
        leader(self.session.client(), &self.prefix).await
    }

    /// A stream of the leader's key-value, each time the leader or its value changes.
    pub fn observe(&self) -> Observe {
        observe(self.session.client().clone(), self.prefix.clone())
    }
}

/// Watches an election without campaigning (see [`Election::observer`]).
#[derive(Debug, Clone)]
pub struct ElectionObserver {
    client: Client,
    prefix: Bytes,
}

impl ElectionObserver {
    /// The current leader, or [`Error::ElectionNoLeader`].
    pub async fn leader(&self) -> Result<Leader> {
        leader(&self.client, &self.prefix).await
    }

    /// A stream of the leader's key-value, each time the leader or its value changes.
    pub fn observe(&self) -> Observe {
        observe(self.client.clone(), self.prefix.clone())
    }
}

/// The leader of an election, as a read or a watch saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Leader {
    /// The header of the read or watch response that saw it.
    pub header: Option<ResponseHeader>,
    /// The leader's key-value: its key, its proclaimed value, its revisions and lease.
    pub kv: KeyValue,
}

async fn leader(client: &Client, prefix: &Bytes) -> Result<Leader> {
    let resp =
        client.get(prefix, Some(GetOptions::new().with_prefix().with_first_create())).await?;
    let kv = resp.kvs.into_iter().next().ok_or(Error::ElectionNoLeader)?;
    Ok(Leader { header: resp.header, kv })
}

/// The leaders of an election as they change (see [`Election::observe`]). Ends with an
/// error if the watches under it fail; dropping it stops observing.
#[derive(Debug)]
pub struct Observe {
    rx: mpsc::Receiver<Result<Leader>>,
    task: JoinHandle<()>,
}

impl Observe {
    /// The next leader (a new leader, or the same leader's new value).
    pub async fn next(&mut self) -> Option<Result<Leader>> {
        self.rx.recv().await
    }
}

impl tokio_stream::Stream for Observe {
    type Item = Result<Leader>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

impl Drop for Observe {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn observe(client: Client, prefix: Bytes) -> Observe {
    let (tx, rx) = mpsc::channel(OBSERVE_BUFFER);
    let task = tokio::spawn(async move {
        if let Err(e) = observe_loop(&client, &prefix, &tx).await {
            let _ = tx.send(Err(e)).await;
        }
    });
    Observe { rx, task }
}

async fn observe_loop(
    client: &Client,
    prefix: &Bytes,
    tx: &mpsc::Sender<Result<Leader>>,
) -> Result<()> {
    loop {
        let resp =
            client.get(prefix, Some(GetOptions::new().with_prefix().with_first_create())).await?;
        let revision = resp.header.as_ref().map_or(0, |h| h.revision);
        let leader = match resp.kvs.into_iter().next() {
            Some(kv) => Leader { header: resp.header, kv },
            None => {
                // No leader: wait for the first candidate to appear.
                let options = WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(revision + 1)
                    .with_filter_delete();
                let mut watcher = client.watch(prefix, Some(options)).await?;
                loop {
                    let Some(resp) = watcher.message().await? else {
                        return Err(Error::Closed("election watch ended"));
                    };
                    if let Some(kv) = resp.events.into_iter().find_map(|e| e.kv) {
                        // Of a batch of puts, the header is the first one's (as etcd's).
                        let header =
                            resp.header.map(|h| ResponseHeader { revision: kv.mod_revision, ..h });
                        break Leader { header, kv };
                    }
                }
            }
        };
        let key = leader.kv.key.clone();
        let from = leader.header.as_ref().map_or(leader.kv.mod_revision, |h| h.revision);
        if tx.send(Ok(leader)).await.is_err() {
            return Ok(());
        }
        // Follow this leader's key until it is deleted.
        let options = WatchOptions::new().with_start_revision(from + 1);
        let mut watcher = client.watch(key, Some(options)).await?;
        'leader: loop {
            let Some(resp) = watcher.message().await? else {
                return Err(Error::Closed("election watch ended"));
            };
            for event in resp.events {
                if event.r#type() == EventType::Delete {
                    break 'leader;
                }
                if let Some(kv) = event.kv
                    && tx.send(Ok(Leader { header: resp.header, kv })).await.is_err()
                {
                    return Ok(());
                }
            }
        }
    }
}
