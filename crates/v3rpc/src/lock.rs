//! The Lock service (etcd's `v3lock`): the client crate's mutex recipe run for the
//! caller against this member (see [`crate::local`]).

use std::sync::Arc;

use oxetcd_api::v3lockpb::lock_server::Lock;
use oxetcd_api::v3lockpb::{LockRequest, LockResponse, UnlockRequest, UnlockResponse};
use oxetcd_client::concurrency::{Mutex, Session, SessionOptions};
use oxetcd_client::{Client, Result as RecipeResult};
use tonic::{Request, Response, Status};

use crate::local::Local;
use crate::status::recipe_status;

pub(crate) struct LockService {
    local: Arc<Local>,
}

impl LockService {
    pub(crate) fn new(local: Arc<Local>) -> LockService {
        LockService { local }
    }
}

/// The session a Lock or Election call works in, as etcd's services make it: under
/// `lease`, or a new lease of etcd's default session TTL (60 s) when it is 0, and not
/// kept alive (the caller keeps its lease alive; a lease granted here lives out its TTL).
pub(crate) async fn session(client: &Client, lease: i64) -> RecipeResult<Session> {
    Session::new(client, SessionOptions::new().with_lease(lease).without_keep_alive()).await
}

#[tonic::async_trait]
impl Lock for LockService {
    /// Waits until the caller holds lock `name`. If the caller goes away first, its
    /// place in the queue is given up (the mutex recipe deletes its key).
    async fn lock(&self, request: Request<LockRequest>) -> Result<Response<LockResponse>, Status> {
        let client = self.local.client_for(&request);
        let LockRequest { name, lease } = request.into_inner();
        let session = session(&client, lease).await.map_err(recipe_status)?;
        let mut mutex = Mutex::new(&session, &name);
        mutex.lock().await.map_err(recipe_status)?;
        Ok(Response::new(LockResponse {
            header: mutex.header().cloned(),
            key: mutex.key().clone(),
        }))
    }

    /// Deletes the ownership key: etcd's Unlock is a plain delete, whoever holds it.
    async fn unlock(
        &self,
        request: Request<UnlockRequest>,
    ) -> Result<Response<UnlockResponse>, Status> {
        let client = self.local.client_for(&request);
        let deleted = client.delete(request.into_inner().key, None).await.map_err(recipe_status)?;
        Ok(Response::new(UnlockResponse { header: deleted.header }))
    }
}
