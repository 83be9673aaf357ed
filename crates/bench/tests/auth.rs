//! `--user`: the bench against a tiny in-process server (test scaffolding) that serves
//! Authenticate, KV and Lease and records the `token` metadata of every request: each
//! connection authenticates once, and every measured request carries its connection's
//! token, through the generated stubs and through `--via-client`, on unary calls and at
//! the opening of streams.

use std::net::SocketAddr;
use std::pin::Pin;
use std::process::Output;
use std::sync::{Arc, Mutex};

use oxetcd_api::etcdserverpb::auth_server::{Auth, AuthServer};
use oxetcd_api::etcdserverpb::kv_server::{Kv, KvServer};
use oxetcd_api::etcdserverpb::lease_server::{Lease, LeaseServer};
use oxetcd_api::etcdserverpb::*;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status, Streaming};

#[derive(Default)]
struct Seen {
    /// Tokens handed out, in order.
    issued: Vec<String>,
    /// (RPC, the request's `token` metadata) of every KV and Lease call.
    calls: Vec<(&'static str, Option<String>)>,
}

#[derive(Clone)]
struct Stub {
    seen: Arc<Mutex<Seen>>,
    /// Whether Authenticate answers with a token (else: auth is not enabled).
    enabled: bool,
}

impl Stub {
    fn record<T>(&self, rpc: &'static str, req: &Request<T>) {
        let token = req.metadata().get("token").map(|t| t.to_str().unwrap().to_string());
        self.seen.lock().unwrap().calls.push((rpc, token));
    }
}

/// `impl $service for Stub`: the methods given, and the RPCs listed as unserved
/// answering Unimplemented. (One macro for the whole impl: `async_trait` must see the
/// unserved methods expanded.)
macro_rules! stub {
    ($service:ident, unserved [$($name:ident($req:ty) -> $resp:ty;)*], $($methods:tt)*) => {
        #[tonic::async_trait]
        impl $service for Stub {
            $($methods)*
            $(
                async fn $name(&self, _: Request<$req>) -> Result<Response<$resp>, Status> {
                    Err(Status::unimplemented("stub"))
                }
            )*
        }
    };
}

stub! {
    Auth,
    unserved [
        auth_enable(AuthEnableRequest) -> AuthEnableResponse;
        auth_disable(AuthDisableRequest) -> AuthDisableResponse;
        auth_status(AuthStatusRequest) -> AuthStatusResponse;
        user_add(AuthUserAddRequest) -> AuthUserAddResponse;
        user_get(AuthUserGetRequest) -> AuthUserGetResponse;
        user_list(AuthUserListRequest) -> AuthUserListResponse;
        user_delete(AuthUserDeleteRequest) -> AuthUserDeleteResponse;
        user_change_password(AuthUserChangePasswordRequest) -> AuthUserChangePasswordResponse;
        user_grant_role(AuthUserGrantRoleRequest) -> AuthUserGrantRoleResponse;
        user_revoke_role(AuthUserRevokeRoleRequest) -> AuthUserRevokeRoleResponse;
        role_add(AuthRoleAddRequest) -> AuthRoleAddResponse;
        role_get(AuthRoleGetRequest) -> AuthRoleGetResponse;
        role_list(AuthRoleListRequest) -> AuthRoleListResponse;
        role_delete(AuthRoleDeleteRequest) -> AuthRoleDeleteResponse;
        role_grant_permission(AuthRoleGrantPermissionRequest) -> AuthRoleGrantPermissionResponse;
        role_revoke_permission(AuthRoleRevokePermissionRequest) -> AuthRoleRevokePermissionResponse;
    ],
    async fn authenticate(
        &self,
        req: Request<AuthenticateRequest>,
    ) -> Result<Response<AuthenticateResponse>, Status> {
        if !self.enabled {
            return Err(Status::failed_precondition("etcdserver: authentication is not enabled"));
        }
        let req = req.into_inner();
        if (req.name.as_str(), req.password.as_str()) != ("bench", "pa:ss") {
            return Err(Status::invalid_argument(
                "etcdserver: authentication failed, invalid user ID or password",
            ));
        }
        let mut seen = self.seen.lock().unwrap();
        let token = format!("tok.{}", seen.issued.len());
        seen.issued.push(token.clone());
        Ok(Response::new(AuthenticateResponse { token, ..AuthenticateResponse::default() }))
    }
}

stub! {
    Kv,
    unserved [
        delete_range(DeleteRangeRequest) -> DeleteRangeResponse;
        compact(CompactionRequest) -> CompactionResponse;
    ],
    async fn range(&self, req: Request<RangeRequest>) -> Result<Response<RangeResponse>, Status> {
        self.record("range", &req);
        Ok(Response::new(RangeResponse::default()))
    }

    async fn put(&self, req: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        self.record("put", &req);
        Ok(Response::new(PutResponse::default()))
    }

    async fn txn(&self, req: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        self.record("txn", &req);
        Ok(Response::new(TxnResponse::default()))
    }

    type RangeStreamStream = tokio_stream::Empty<Result<RangeStreamResponse, Status>>;

    async fn range_stream(
        &self,
        _: Request<RangeRequest>,
    ) -> Result<Response<Self::RangeStreamStream>, Status> {
        Err(Status::unimplemented("stub"))
    }
}

type KeepAlives =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<LeaseKeepAliveResponse, Status>> + Send>>;

stub! {
    Lease,
    unserved [
        lease_revoke(LeaseRevokeRequest) -> LeaseRevokeResponse;
        lease_time_to_live(LeaseTimeToLiveRequest) -> LeaseTimeToLiveResponse;
        lease_leases(LeaseLeasesRequest) -> LeaseLeasesResponse;
    ],
    async fn lease_grant(
        &self,
        req: Request<LeaseGrantRequest>,
    ) -> Result<Response<LeaseGrantResponse>, Status> {
        self.record("lease_grant", &req);
        let ttl = req.get_ref().ttl;
        Ok(Response::new(LeaseGrantResponse { id: 7, ttl, ..LeaseGrantResponse::default() }))
    }

    type LeaseKeepAliveStream = KeepAlives;

    /// Answers every keep-alive with a TTL of 60.
    async fn lease_keep_alive(
        &self,
        req: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<KeepAlives>, Status> {
        self.record("lease_keep_alive", &req);
        let mut inbound = req.into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            while let Ok(Some(ka)) = inbound.message().await {
                let resp = LeaseKeepAliveResponse { id: ka.id, ttl: 60, ..Default::default() };
                if tx.send(Ok(resp)).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

async fn serve(enabled: bool) -> (SocketAddr, Arc<Mutex<Seen>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stub = Stub { seen: Arc::default(), enabled };
    let seen = stub.seen.clone();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(AuthServer::new(stub.clone()))
            .add_service(KvServer::new(stub.clone()))
            .add_service(LeaseServer::new(stub))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    (addr, seen)
}

async fn bench(addr: SocketAddr, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_oxetcd-bench"))
        .arg("--endpoints")
        .arg(addr.to_string())
        .args(args)
        .output()
        .await
        .unwrap()
}

fn ok(out: &Output) -> u64 {
    assert!(out.status.success(), "bench failed: {}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(report["errors_total"], 0, "{report}");
    report["ok"].as_u64().unwrap()
}

/// Every call recorded carries one of the issued tokens; returns how many distinct ones.
fn tokens_used(seen: &Seen, rpcs: &[&str]) -> usize {
    let mut used: Vec<&str> = Vec::new();
    for (rpc, token) in &seen.calls {
        assert!(rpcs.contains(rpc), "unexpected {rpc}");
        let token = token.as_deref().unwrap_or_else(|| panic!("{rpc} without a token"));
        assert!(seen.issued.iter().any(|t| t == token), "{rpc} with {token:?}, not issued");
        if !used.contains(&token) {
            used.push(token);
        }
    }
    used.len()
}

#[tokio::test]
async fn each_connection_authenticates_once_and_every_request_carries_its_token() {
    let (addr, seen) = serve(true).await;
    let common = ["--user", "bench:pa:ss", "--conns=3", "--clients=9", "--total=40", "--json"];
    let put = bench(addr, &[&common[..], &["put", "--key-space-size=5"]].concat()).await;
    assert_eq!(ok(&put), 40);
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.issued.len(), 3, "one Authenticate per connection");
        assert_eq!(seen.calls.len(), 40);
        assert_eq!(tokens_used(&seen, &["put"]), 3, "each connection uses its own token");
    }
    for workload in [
        &["range", "000", "--consistency=s"][..],
        &["txn-put", "--txn-ops=2", "--key-space-size=5"],
        &["--via-client", "range", "000"],
    ] {
        assert_eq!(ok(&bench(addr, &[&common[..], workload].concat()).await), 40, "{workload:?}");
    }
    let seen = seen.lock().unwrap();
    assert_eq!(seen.issued.len(), 12);
    assert_eq!(tokens_used(&seen, &["put", "range", "txn"]), 12);
}

#[tokio::test]
async fn streams_carry_the_token_when_opened() {
    let (addr, seen) = serve(true).await;
    let args = ["--user=bench:pa:ss", "--conns=2", "--clients=4", "--total=30", "--json"];
    let out = bench(addr, &[&args[..], &["lease-keepalive"]].concat()).await;
    assert_eq!(ok(&out), 30);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.issued.len(), 2);
    let count = |rpc| seen.calls.iter().filter(|(r, _)| *r == rpc).count();
    assert_eq!((count("lease_grant"), count("lease_keep_alive")), (4, 4));
    assert_eq!(tokens_used(&seen, &["lease_grant", "lease_keep_alive"]), 2);
}

#[tokio::test]
async fn without_user_or_with_auth_disabled_no_token_is_sent() {
    let (addr, seen) = serve(false).await;
    assert_eq!(ok(&bench(addr, &["--total=5", "--json", "put"]).await), 5);
    let out = bench(addr, &["--user", "bench:pa:ss", "--total=5", "--json", "put"]).await;
    assert_eq!(ok(&out), 5, "auth not enabled: the bench goes on without a token");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.calls.len(), 10);
    assert!(seen.calls.iter().all(|(_, token)| token.is_none()), "{:?}", seen.calls);
}

#[tokio::test]
async fn a_wrong_password_stops_the_bench_with_the_servers_reason() {
    let (addr, seen) = serve(true).await;
    let out = bench(addr, &["--user", "bench:wrong", "--total=5", "put"]).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("authenticating as \"bench\""), "{stderr}");
    assert!(stderr.contains("authentication failed, invalid user ID or password"), "{stderr}");
    assert!(seen.lock().unwrap().calls.is_empty());
    // No password at all: refused before connecting (etcd's benchmark would prompt).
    let out = bench(addr, &["--user", "bench", "put"]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("NAME:PASSWORD"));
}
