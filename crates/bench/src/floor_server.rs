//! The floor under a one-client put as a gRPC client sees it: a server that answers
//! `KV.Put` after one write and fdatasync of a record in a preallocated file, and does
//! nothing else (no raft, no index, no backend, no hand-over between threads: the one
//! thread that reads the request syncs and answers). `oxetcd-bench floor` measures the
//! fdatasync and a raw TCP round trip; this adds what no server can shed either, the
//! client's own gRPC and HTTP/2 work and the least a gRPC server does per call, so a
//! load generator's put-1c against it is the most any etcd server could reach with that
//! client on this machine.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Mutex;

use oxetcd_api::etcdserverpb as pb;
use oxetcd_api::etcdserverpb::kv_server::{Kv, KvServer};
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

use crate::args::FloorServerArgs;
use crate::error::BenchError;
use crate::floor;

/// Serves until the process is killed. On a runtime of one thread, so the request's
/// read, the sync and the answer happen on the same thread, as in the floor.
pub fn serve(args: &FloorServerArgs) -> Result<(), BenchError> {
    let failed =
        |what: &str, e: std::io::Error| BenchError::Setup(format!("floor-server: {what}: {e}"));
    let file =
        floor::scratch_file(&args.dir).map_err(|e| failed("preparing the synced file", e))?;
    let kv = FloorKv {
        log: Mutex::new(SyncedLog { file, record: vec![0x5a; args.record_size as usize], next: 0 }),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| failed("runtime", e))?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|e| failed(&format!("listening on {}", args.listen), e))?;
        eprintln!(
            "oxetcd-bench floor-server: serving KV.Put on {}",
            listener.local_addr().unwrap_or(args.listen)
        );
        // Nagle off, as every gRPC server sets it (a Go client's put waits 40 ms otherwise).
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        tonic::transport::Server::builder()
            .add_service(KvServer::new(kv))
            .serve_with_incoming(incoming)
            .await
            .map_err(|e| BenchError::Setup(format!("floor-server: {e}")))
    })
}

/// The synced file and where the next record goes (records wrap around inside it).
struct SyncedLog {
    file: File,
    record: Vec<u8>,
    next: u64,
}

impl SyncedLog {
    /// Writes and syncs one record; the revision the put gets (2 for the first, as in a
    /// fresh etcd, whose store starts at revision 1).
    fn append(&mut self) -> std::io::Result<i64> {
        let size = self.record.len() as u64;
        let slots = floor::PREALLOCATED_BYTES / size;
        self.file.write_all_at(&self.record, (self.next % slots) * size)?;
        self.file.sync_data()?;
        self.next += 1;
        Ok(i64::try_from(self.next).unwrap_or(i64::MAX) + 1)
    }
}

struct FloorKv {
    log: Mutex<SyncedLog>,
}

fn unimplemented<T>(method: &str) -> Result<Response<T>, Status> {
    Err(Status::unimplemented(format!("the floor server serves KV.Put only, not {method}")))
}

#[tonic::async_trait]
impl Kv for FloorKv {
    async fn put(&self, _: Request<pb::PutRequest>) -> Result<Response<pb::PutResponse>, Status> {
        // Blocking on the runtime's only thread is the point: the floor has no hand-over.
        let revision = self
            .log
            .lock()
            .map_err(|_| Status::internal("floor-server: the synced file's lock is poisoned"))?
            .append()
            .map_err(|e| Status::internal(format!("floor-server: fdatasync: {e}")))?;
        Ok(Response::new(pb::PutResponse {
            header: Some(pb::ResponseHeader { revision, ..Default::default() }),
            prev_kv: None,
        }))
    }

    async fn range(
        &self,
        _: Request<pb::RangeRequest>,
    ) -> Result<Response<pb::RangeResponse>, Status> {
        unimplemented("KV.Range")
    }

    async fn delete_range(
        &self,
        _: Request<pb::DeleteRangeRequest>,
    ) -> Result<Response<pb::DeleteRangeResponse>, Status> {
        unimplemented("KV.DeleteRange")
    }

    async fn txn(&self, _: Request<pb::TxnRequest>) -> Result<Response<pb::TxnResponse>, Status> {
        unimplemented("KV.Txn")
    }

    async fn compact(
        &self,
        _: Request<pb::CompactionRequest>,
    ) -> Result<Response<pb::CompactionResponse>, Status> {
        unimplemented("KV.Compact")
    }

    type RangeStreamStream = tokio_stream::Empty<Result<pb::RangeStreamResponse, Status>>;

    async fn range_stream(
        &self,
        _: Request<pb::RangeRequest>,
    ) -> Result<Response<Self::RangeStreamStream>, Status> {
        unimplemented("KV.RangeStream")
    }
}
