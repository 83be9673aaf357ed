//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use oxetcd_api::etcdserverpb::{
    Compare, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest, compare,
    request_op,
};
use oxetcd_mvcc::{Lessor, NoLeases, Store, StoreConfig};

/// A store in a temporary directory, removed when dropped.
pub struct TempStore {
    pub store: Option<Store>,
    pub dir: tempfile::TempDir,
    pub config: StoreConfig,
    pub lessor: Arc<dyn Lessor>,
}

/// A config that commits often, so tests cross batch boundaries.
pub fn test_config() -> StoreConfig {
    StoreConfig {
        batch_interval: Duration::from_millis(20),
        batch_limit: 16,
        compaction_batch_limit: 4,
        compaction_pause: Duration::ZERO,
        ..StoreConfig::default()
    }
}

impl TempStore {
    pub fn new() -> Self {
        Self::with(test_config(), Arc::new(NoLeases))
    }

    pub fn with(config: StoreConfig, lessor: Arc<dyn Lessor>) -> Self {
        let dir = temp_dir();
        let store =
            Store::open_path(db_path(dir.path()), config.clone(), lessor.clone()).expect("open");
        Self { store: Some(store), dir, config, lessor }
    }

    pub fn store(&self) -> &Store {
        self.store.as_ref().expect("open store")
    }

    /// Closes and reopens the store from disk.
    pub fn reopen(&mut self) {
        if let Some(store) = self.store.take() {
            store.close().expect("close");
        }
        self.store = Some(
            Store::open_path(db_path(self.dir.path()), self.config.clone(), self.lessor.clone())
                .expect("reopen"),
        );
    }
}

/// A temporary directory, in memory (`/dev/shm`) where there is one: the tests open
/// thousands of stores, and fsync on a shared disk would dominate their run time.
pub fn temp_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::Builder::new().prefix("oxetcd-mvcc-").tempdir_in(shm)
    } else {
        tempfile::tempdir()
    };
    dir.expect("temporary directory")
}

pub fn db_path(dir: &Path) -> PathBuf {
    dir.join("db")
}

pub fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

pub fn put(key: &str, value: &str) -> PutRequest {
    PutRequest { key: b(key), value: b(value), ..Default::default() }
}

pub fn range(key: &str, end: &str) -> RangeRequest {
    RangeRequest { key: b(key), range_end: b(end), ..Default::default() }
}

pub fn delete(key: &str, end: &str) -> DeleteRangeRequest {
    DeleteRangeRequest { key: b(key), range_end: b(end), ..Default::default() }
}

pub fn op_put(req: PutRequest) -> RequestOp {
    RequestOp { request: Some(request_op::Request::RequestPut(req)) }
}

pub fn op_range(req: RangeRequest) -> RequestOp {
    RequestOp { request: Some(request_op::Request::RequestRange(req)) }
}

pub fn op_delete(req: DeleteRangeRequest) -> RequestOp {
    RequestOp { request: Some(request_op::Request::RequestDeleteRange(req)) }
}

pub fn op_txn(req: TxnRequest) -> RequestOp {
    RequestOp { request: Some(request_op::Request::RequestTxn(req)) }
}

pub fn cmp(
    key: &str,
    target: compare::CompareTarget,
    result: compare::CompareResult,
    union: compare::TargetUnion,
) -> Compare {
    Compare {
        result: result as i32,
        target: target as i32,
        key: b(key),
        range_end: Bytes::new(),
        target_union: Some(union),
    }
}
