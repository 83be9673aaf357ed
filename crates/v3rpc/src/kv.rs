//! The KV service: reads are served locally (after a ReadIndex round unless
//! serializable), writes go through the log.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use oxetcd_api::etcdserverpb::kv_server::Kv;
use oxetcd_api::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    PutResponse, RangeRequest, RangeResponse, RangeStreamResponse, TxnRequest, TxnResponse,
};
use oxetcd_mvcc::range_stream::StreamedRange;
use oxetcd_mvcc::validate;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::caller::requester;
use crate::deadline::client_deadline;
use crate::status;
use oxetcd_etcdserver::{Requester, auth};

use crate::unexpected;
use oxetcd_etcdserver::Applied;
use oxetcd_etcdserver::{EtcdServer, ServerError};

/// Chunks of a RangeStream read ahead of a slow client (each about
/// `range_stream::CHUNK_BYTES`): the server's memory stays flat whatever the range.
const RANGE_STREAM_CHUNKS_QUEUED: usize = 1;

/// Reads `req`'s chunks and sends them, until the last one, an error, or a client that
/// went away. Each chunk is read on the blocking pool (the backend); waiting for a slow
/// client to take the one before holds no thread.
async fn stream_range(
    server: Arc<EtcdServer>,
    from: Requester,
    req: RangeRequest,
    tx: tokio::sync::mpsc::Sender<Result<RangeStreamResponse, Status>>,
) {
    let mut streamed = StreamedRange::new(req);
    loop {
        let (reader, requester) = (Arc::clone(&server), from.clone());
        let read = tokio::task::spawn_blocking(move || {
            let next = next_chunk(&reader, &requester, &mut streamed);
            (streamed, next)
        })
        .await;
        let next = match read {
            Ok((back, next)) => {
                streamed = back;
                next
            }
            Err(e) => {
                let _ = tx.send(Err(Status::internal(e.to_string()))).await;
                return;
            }
        };
        let message = match next {
            Ok(Some(message)) => Ok(message),
            Ok(None) => return,
            Err(e) => Err(e),
        };
        let failed = message.is_err();
        if tx.send(message).await.is_err() || failed {
            return;
        }
    }
}

/// The stream's next message, with the member's header on the first.
fn next_chunk(
    server: &EtcdServer,
    from: &Requester,
    streamed: &mut StreamedRange,
) -> Result<Option<RangeStreamResponse>, Status> {
    let store = server.store().map_err(status)?;
    let Some(mut message) = streamed.next_message(&store).map_err(status)? else {
        return Ok(None);
    };
    // As for a Range: a permission revoked while the chunk was read ends it.
    server.auth_unchanged(from).map_err(status)?;
    if let Some(header) = &message.header {
        message.header = Some(server.header(header.revision));
    }
    Ok(Some(RangeStreamResponse { range_response: Some(message) }))
}

pub struct KvService {
    server: Arc<EtcdServer>,
}

impl KvService {
    pub fn new(server: Arc<EtcdServer>) -> KvService {
        KvService { server }
    }

    fn revision_of(header: &Option<oxetcd_api::etcdserverpb::ResponseHeader>) -> i64 {
        header.as_ref().map_or(0, |h| h.revision)
    }

    fn full_header(&self, header: &mut Option<oxetcd_api::etcdserverpb::ResponseHeader>) {
        *header = Some(self.server.header(Self::revision_of(header)));
    }

    /// What a Range waits for and checks before it reads: a ReadIndex round unless
    /// serializable, then the requester's permission.
    async fn admit_range(
        &self,
        from: &Requester,
        deadline: Option<Instant>,
        req: &RangeRequest,
    ) -> Result<(), Status> {
        if !req.serializable {
            if self.server.is_learner() {
                return Err(status(ServerError::NotSupportedForLearner));
            }
            self.server.linearizable_read(deadline).await.map_err(status)?;
        }
        self.server.authorize_local(from, |s, i| auth::check_range(s, i, req)).map_err(status)
    }

    async fn range_local(
        &self,
        from: &Requester,
        deadline: Option<Instant>,
        req: &RangeRequest,
    ) -> Result<RangeResponse, Status> {
        self.admit_range(from, deadline, req).await?;
        let mut resp = self.server.store().map_err(status)?.range(req).map_err(status)?;
        self.server.auth_unchanged(from).map_err(status)?;
        self.full_header(&mut resp.header);
        Ok(resp)
    }

    /// A txn with no writes in either branch is a read: served like a Range.
    fn is_read_only(txn: &TxnRequest) -> bool {
        use oxetcd_api::etcdserverpb::request_op::Request as Op;
        fn ops_read_only(ops: &[oxetcd_api::etcdserverpb::RequestOp]) -> bool {
            ops.iter().all(|op| match &op.request {
                Some(Op::RequestRange(_)) | None => true,
                Some(Op::RequestTxn(t)) => KvService::is_read_only(t),
                Some(Op::RequestPut(_) | Op::RequestDeleteRange(_)) => false,
            })
        }
        ops_read_only(&txn.success) && ops_read_only(&txn.failure)
    }

    fn is_serializable(txn: &TxnRequest) -> bool {
        use oxetcd_api::etcdserverpb::request_op::Request as Op;
        txn.success.iter().chain(&txn.failure).all(|op| match &op.request {
            Some(Op::RequestRange(r)) => r.serializable,
            Some(Op::RequestTxn(t)) => KvService::is_serializable(t),
            _ => true,
        })
    }
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(
        &self,
        request: Request<RangeRequest>,
    ) -> Result<Response<RangeResponse>, Status> {
        let deadline = client_deadline(&request);
        let from = requester(&self.server, &request).await?;
        let req = request.into_inner();
        validate::check_range(&req).map_err(status)?;
        Ok(Response::new(self.range_local(&from, deadline, &req).await?))
    }

    type RangeStreamStream =
        Pin<Box<dyn Stream<Item = Result<RangeStreamResponse, Status>> + Send>>;

    async fn range_stream(
        &self,
        request: Request<RangeRequest>,
    ) -> Result<Response<Self::RangeStreamStream>, Status> {
        let deadline = client_deadline(&request);
        let from = requester(&self.server, &request).await?;
        let req = request.into_inner();
        validate::check_range(&req).map_err(status)?;
        self.admit_range(&from, deadline, &req).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(RANGE_STREAM_CHUNKS_QUEUED);
        tokio::spawn(stream_range(Arc::clone(&self.server), from, req, tx));
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }

    async fn put(&self, request: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let deadline = client_deadline(&request);
        let from = requester(&self.server, &request).await?;
        let req = request.into_inner();
        validate::check_put(&req).map_err(status)?;
        match self.server.propose(&from, deadline, |r| r.put = Some(req)).await.map_err(status)? {
            Applied::Put(mut resp) => {
                self.full_header(&mut resp.header);
                Ok(Response::new(resp))
            }
            other => Err(unexpected(other)),
        }
    }

    async fn delete_range(
        &self,
        request: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        let deadline = client_deadline(&request);
        let from = requester(&self.server, &request).await?;
        let req = request.into_inner();
        validate::check_delete_range(&req).map_err(status)?;
        let proposed = self.server.propose(&from, deadline, |r| r.delete_range = Some(req));
        match proposed.await.map_err(status)? {
            Applied::DeleteRange(mut resp) => {
                self.full_header(&mut resp.header);
                Ok(Response::new(resp))
            }
            other => Err(unexpected(other)),
        }
    }

    async fn txn(&self, request: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        let deadline = client_deadline(&request);
        let from = requester(&self.server, &request).await?;
        let req = request.into_inner();
        validate::check_txn(&req, self.server.config().max_txn_ops).map_err(status)?;
        if Self::is_read_only(&req) {
            // As etcd does: a read-only txn skips the log, linearizable unless every
            // range in it is serializable.
            if !Self::is_serializable(&req) {
                self.server.linearizable_read(deadline).await.map_err(status)?;
            }
            let lessor = self.server.lessor();
            self.server
                .authorize_local(&from, |s, i| auth::check_txn(s, lessor, i, &req))
                .map_err(status)?;
            let store = self.server.store().map_err(status)?;
            let mut resp = store.txn_read(&req).map_err(status)?;
            self.server.auth_unchanged(&from).map_err(status)?;
            self.full_header(&mut resp.header);
            return Ok(Response::new(resp));
        }
        match self.server.propose(&from, deadline, |r| r.txn = Some(req)).await.map_err(status)? {
            Applied::Txn(mut resp) => {
                self.full_header(&mut resp.header);
                Ok(Response::new(resp))
            }
            other => Err(unexpected(other)),
        }
    }

    async fn compact(
        &self,
        request: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        let deadline = client_deadline(&request);
        let from = requester(&self.server, &request).await?;
        let req = request.into_inner();
        let physical = req.physical;
        let proposed = self.server.propose(&from, deadline, |r| r.compaction = Some(req));
        match proposed.await.map_err(status)? {
            Applied::Compaction(mut resp, done) => {
                if physical {
                    // Blocks on the compaction finishing; keep it off the async workers.
                    tokio::task::spawn_blocking(move || done.wait())
                        .await
                        .map_err(|e| Status::internal(e.to_string()))?
                        .map_err(status)?;
                }
                self.full_header(&mut resp.header);
                Ok(Response::new(resp))
            }
            other => Err(unexpected(other)),
        }
    }
}
