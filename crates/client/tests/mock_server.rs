//! The client's retry, failover, timeout and auth-token behaviour against a mock
//! server whose answers the tests choose.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oxetcd_api::etcdserverpb as pb;
use oxetcd_api::etcdserverpb::auth_server::{Auth, AuthServer};
use oxetcd_api::etcdserverpb::kv_server::{Kv, KvServer};
use oxetcd_client::{Client, ClientOptions, Error, EtcdErrorKind};
use tonic::{Request, Response, Status};

#[derive(Default)]
struct State {
    range_calls: AtomicU32,
    /// Ranges answered `Unavailable` before one succeeds.
    failing_ranges: AtomicU32,
    range_delay_ms: AtomicU32,
    put_calls: AtomicU32,
    put_fails: std::sync::atomic::AtomicBool,
    auth_calls: AtomicU32,
    /// The token the server accepts, once auth is on.
    valid_token: Mutex<Option<String>>,
}

impl State {
    fn check_token<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let valid = self.valid_token.lock().unwrap().clone();
        let Some(valid) = valid else { return Ok(()) };
        let sent = request.metadata().get("token").and_then(|t| t.to_str().ok());
        if sent == Some(valid.as_str()) {
            Ok(())
        } else {
            Err(Status::unauthenticated("etcdserver: invalid auth token"))
        }
    }
}

struct MockKv(Arc<State>);
struct MockAuth(Arc<State>);

fn header() -> Option<pb::ResponseHeader> {
    Some(pb::ResponseHeader { revision: 1, ..Default::default() })
}

#[tonic::async_trait]
impl Kv for MockKv {
    async fn range(
        &self,
        request: Request<pb::RangeRequest>,
    ) -> Result<Response<pb::RangeResponse>, Status> {
        self.0.range_calls.fetch_add(1, Ordering::SeqCst);
        self.0.check_token(&request)?;
        let delay = self.0.range_delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay as u64)).await;
        }
        let failing = self.0.failing_ranges.load(Ordering::SeqCst);
        if failing > 0 {
            self.0.failing_ranges.store(failing - 1, Ordering::SeqCst);
            return Err(Status::unavailable("etcdserver: leader changed"));
        }
        Ok(Response::new(pb::RangeResponse { header: header(), ..Default::default() }))
    }
    async fn put(
        &self,
        request: Request<pb::PutRequest>,
    ) -> Result<Response<pb::PutResponse>, Status> {
        self.0.put_calls.fetch_add(1, Ordering::SeqCst);
        self.0.check_token(&request)?;
        if self.0.put_fails.load(Ordering::SeqCst) {
            return Err(Status::unavailable("etcdserver: request timed out"));
        }
        Ok(Response::new(pb::PutResponse { header: header(), prev_kv: None }))
    }
    async fn delete_range(
        &self,
        _: Request<pb::DeleteRangeRequest>,
    ) -> Result<Response<pb::DeleteRangeResponse>, Status> {
        Err(Status::unimplemented("mock"))
    }
    async fn txn(&self, _: Request<pb::TxnRequest>) -> Result<Response<pb::TxnResponse>, Status> {
        Err(Status::unimplemented("mock"))
    }
    async fn compact(
        &self,
        _: Request<pb::CompactionRequest>,
    ) -> Result<Response<pb::CompactionResponse>, Status> {
        Err(Status::unimplemented("mock"))
    }

    type RangeStreamStream = tokio_stream::Empty<Result<pb::RangeStreamResponse, Status>>;

    async fn range_stream(
        &self,
        _: Request<pb::RangeRequest>,
    ) -> Result<Response<Self::RangeStreamStream>, Status> {
        Err(Status::unimplemented("mock"))
    }
}

#[tonic::async_trait]
impl Auth for MockAuth {
    async fn authenticate(
        &self,
        request: Request<pb::AuthenticateRequest>,
    ) -> Result<Response<pb::AuthenticateResponse>, Status> {
        let request = request.into_inner();
        if (request.name.as_str(), request.password.as_str()) != ("alice", "pw") {
            return Err(Status::invalid_argument(
                "etcdserver: authentication failed, invalid user ID or password",
            ));
        }
        let n = self.0.auth_calls.fetch_add(1, Ordering::SeqCst) + 1;
        let token = format!("t{n}");
        *self.0.valid_token.lock().unwrap() = Some(token.clone());
        Ok(Response::new(pb::AuthenticateResponse { header: header(), token }))
    }
    async fn auth_enable(
        &self,
        _: Request<pb::AuthEnableRequest>,
    ) -> Result<Response<pb::AuthEnableResponse>, Status> {
        Err(Status::unimplemented("mock"))
    }
    async fn auth_disable(
        &self,
        _: Request<pb::AuthDisableRequest>,
    ) -> Result<Response<pb::AuthDisableResponse>, Status> {
        Err(Status::unimplemented("mock"))
    }
    async fn auth_status(
        &self,
        _: Request<pb::AuthStatusRequest>,
    ) -> Result<Response<pb::AuthStatusResponse>, Status> {
        Err(Status::unimplemented("mock"))
    }
    async fn user_add(
        &self,
        _: Request<pb::AuthUserAddRequest>,
    ) -> Result<Response<pb::AuthUserAddResponse>, Status> {
        Err(Status::unimplemented("mock"))
    }
    async fn user_get(
        &self,
        _: Request<pb::AuthUserGetRequest>,
    ) -> Result<Response<pb::AuthUserGetResponse>, Status> {
        Err(Status::unimplemented("mock"))
    }
    async fn user_list(
        &self,
        _: Request<pb::AuthUserListRequest>,
    ) -> Result<Response<pb::AuthUserListResponse>, Status> {
        Err(Status::unimplemented("mock"))
    }
    async fn user_delete(
        &self,
        _: Request<pb::AuthUserDeleteRequest>,
    ) -> Result<Response<pb::AuthUserDeleteResponse>, Status> {
        Err(Status::unimplemented("mock"))
    }
    async fn user_change_password(
        &self,
        _: Request<pb::AuthUserChangePasswordRequest>,
    ) -> Result<Response<pb::AuthUserChangePasswordResponse>, Status> {
        Err(Status::unimplemented("mock"))
    }
    async fn user_grant_role(
        &self,
        _: Request<pb::AuthUserGrantRoleRequest>,
    ) -> Result<Response<pb::AuthUserGrantRoleResponse>, Status> {
        Err(Status::unimplemented("mock"))
    }
    async fn user_revoke_role(
        &self,
        _: Request<pb::AuthUserRevokeRoleRequest>,
    ) -> Result<Response<pb::AuthUserRevokeRoleResponse>, Status> {
        Err(Status::unimplemented("mock"))
    }
    async fn role_add(
        &self,
        _: Request<pb::AuthRoleAddRequest>,
    ) -> Result<Response<pb::AuthRoleAddResponse>, Status> {
        Err(Status::unimplemented("mock"))
    }
    async fn role_get(
        &self,
        _: Request<pb::AuthRoleGetRequest>,
    ) -> Result<Response<pb::AuthRoleGetResponse>, Status> {
        Err(Status::unimplemented("mock"))
    }
    async fn role_list(
        &self,
        _: Request<pb::AuthRoleListRequest>,
    ) -> Result<Response<pb::AuthRoleListResponse>, Status> {
        Err(Status::unimplemented("mock"))
    }
    async fn role_delete(
        &self,
        _: Request<pb::AuthRoleDeleteRequest>,
    ) -> Result<Response<pb::AuthRoleDeleteResponse>, Status> {
        Err(Status::unimplemented("mock"))
    }
    async fn role_grant_permission(
        &self,
        _: Request<pb::AuthRoleGrantPermissionRequest>,
    ) -> Result<Response<pb::AuthRoleGrantPermissionResponse>, Status> {
        Err(Status::unimplemented("mock"))
    }
    async fn role_revoke_permission(
        &self,
        _: Request<pb::AuthRoleRevokePermissionRequest>,
    ) -> Result<Response<pb::AuthRoleRevokePermissionResponse>, Status> {
        Err(Status::unimplemented("mock"))
    }
}

/// Serves the mock on a free 127.0.0.1 port; returns the address.
async fn serve(state: Arc<State>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(KvServer::new(MockKv(state.clone())))
            .add_service(AuthServer::new(MockAuth(state)))
            .serve_with_incoming(incoming),
    );
    addr.to_string()
}

/// An address where nothing listens.
fn dead_endpoint() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

#[tokio::test]
async fn reads_are_retried_on_unavailable_and_writes_are_not() {
    let state = Arc::new(State::default());
    let client =
        Client::connect([serve(state.clone()).await], ClientOptions::default()).await.unwrap();

    state.failing_ranges.store(3, Ordering::SeqCst);
    client.get("k", None).await.expect("the read is retried until it succeeds");
    assert_eq!(state.range_calls.load(Ordering::SeqCst), 4);

    // A write the server received may have been applied: it is not sent again.
    state.put_fails.store(true, Ordering::SeqCst);
    let err = client.put("k", "v", None).await.unwrap_err();
    assert_eq!(err.etcd_kind(), Some(EtcdErrorKind::RequestTimeout));
    assert_eq!(state.put_calls.load(Ordering::SeqCst), 1);

    // Retries are bounded.
    let bounded = Client::connect(client.endpoints(), ClientOptions::default().with_max_retries(2))
        .await
        .unwrap();
    state.range_calls.store(0, Ordering::SeqCst);
    state.failing_ranges.store(10, Ordering::SeqCst);
    let err = bounded.get("k", None).await.unwrap_err();
    assert_eq!(err.etcd_kind(), Some(EtcdErrorKind::LeaderChanged));
    assert_eq!(state.range_calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn writes_that_never_left_go_to_the_next_endpoint() {
    let state = Arc::new(State::default());
    let endpoints = [dead_endpoint(), serve(state.clone()).await];
    let client = Client::connect(endpoints, ClientOptions::default()).await.unwrap();
    // Let the dead endpoint back into the rotation, so calls meet it.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for n in 0..6 {
        client.put(format!("k{n}"), "v", None).await.expect("put goes to the live endpoint");
    }
    // Each put reached the server once.
    assert_eq!(state.put_calls.load(Ordering::SeqCst), 6);
}

#[tokio::test]
async fn the_request_timeout_bounds_every_call() {
    let state = Arc::new(State::default());
    state.range_delay_ms.store(2_000, Ordering::SeqCst);
    let options = ClientOptions::default().with_request_timeout(Duration::from_millis(200));
    let client = Client::connect([serve(state).await], options).await.unwrap();
    let started = std::time::Instant::now();
    assert!(matches!(client.get("k", None).await, Err(Error::Timeout)));
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn the_token_is_attached_and_renewed_when_rejected() {
    let state = Arc::new(State::default());
    let endpoint = serve(state.clone()).await;
    let options = ClientOptions::default().with_user("alice", "pw");
    let client = Client::connect([endpoint.clone()], options).await.unwrap();
    assert_eq!(client.auth_token().as_deref(), Some("t1"));
    client.get("k", None).await.expect("the token is accepted");

    // The server forgets the token (as after a restart): the client authenticates
    // again, once, and the call goes through.
    *state.valid_token.lock().unwrap() = Some("rotated".into());
    let calls = state.range_calls.load(Ordering::SeqCst);
    client.get("k", None).await.expect("the client authenticates again");
    assert_eq!(state.auth_calls.load(Ordering::SeqCst), 2);
    assert_eq!(state.range_calls.load(Ordering::SeqCst), calls + 2);
    assert_eq!(client.auth_token().as_deref(), Some("t2"));

    // Renewal happens once per rejected call.
    *state.valid_token.lock().unwrap() = Some("never".into());
    let auth_calls = state.auth_calls.load(Ordering::SeqCst);
    let result = client.put("k", "v", None).await;
    // One renewal (which makes "t3" valid) and the put goes through.
    assert!(result.is_ok());
    assert_eq!(state.auth_calls.load(Ordering::SeqCst), auth_calls + 1);

    // A wrong password fails the connection.
    let wrong = ClientOptions::default().with_user("alice", "nope");
    let err = Client::connect([endpoint], wrong).await.unwrap_err();
    assert_eq!(err.etcd_kind(), Some(EtcdErrorKind::AuthFailed));
}
