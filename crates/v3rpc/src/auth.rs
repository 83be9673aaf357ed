//! The Auth service. Changes go through the log and are checked at apply (an
//! administrator's, except Authenticate); reads of users and roles are served locally
//! after a ReadIndex round, which etcd 3.4 sends through the log instead.
//!
//! bcrypt is slow on purpose, so hashing a new password and checking a password run on
//! the blocking pool, at most [`MAX_CONCURRENT_BCRYPT`] at a time, never on the apply
//! thread; the log carries hashes, never passwords (etcd 3.4 logs the passwords of
//! UserAdd and Authenticate).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use oxetcd_api::etcdserverpb::auth_server::Auth;
use oxetcd_api::etcdserverpb::*;
use oxetcd_api::oxetcdpb::{InternalAuthenticateRequest, InternalRaftRequest};
use oxetcd_auth::{AuthError, AuthInfo, AuthStore, gen_token_prefix, hash_password};
use oxetcd_etcdserver::{AuthApplied, EtcdServer, Requester, ServerError};
use tokio::sync::Semaphore;
use tonic::{Request, Response, Status};

use crate::caller::{requester, require_admin};
use crate::deadline::client_deadline;
use crate::{status, unexpected};

/// Password hashes and checks running at once; more wait for a turn. bcrypt at cost 10
/// takes ~50 ms of a core: unbounded, a burst of logins would take every core from the
/// requests around it. etcd bounds nothing here.
const MAX_CONCURRENT_BCRYPT: usize = 4;
/// Logins and password changes waiting for a turn before the next is refused with
/// `too many requests`, so a flood of them cannot queue without end.
const MAX_WAITING_BCRYPT: usize = 1024;

pub struct AuthService {
    server: Arc<EtcdServer>,
    bcrypt: Arc<Semaphore>,
    /// bcrypt calls running or waiting for a turn.
    bcrypt_queued: Arc<AtomicUsize>,
}

/// One bcrypt call counted in [`AuthService::bcrypt_queued`] until it is done.
struct Queued(Arc<AtomicUsize>);

impl Drop for Queued {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl AuthService {
    pub fn new(server: Arc<EtcdServer>) -> AuthService {
        AuthService {
            server,
            bcrypt: Arc::new(Semaphore::new(MAX_CONCURRENT_BCRYPT)),
            bcrypt_queued: Arc::default(),
        }
    }

    fn header(&self) -> Option<ResponseHeader> {
        let revision = self.server.store().map_or(0, |s| s.current_revision());
        Some(self.server.header(revision))
    }

    /// Runs bcrypt work on the blocking pool, waiting for one of the bounded turns.
    async fn bcrypt<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Status> {
        let queued = Queued(self.bcrypt_queued.clone());
        if queued.0.fetch_add(1, Ordering::Relaxed) >= MAX_CONCURRENT_BCRYPT + MAX_WAITING_BCRYPT {
            return Err(status(ServerError::TooManyRequests));
        }
        let turn = self.bcrypt.clone().acquire_owned().await;
        let turn = turn.map_err(|_| status(ServerError::Stopped))?;
        // The turn and the count go with the work: a caller that gives up does not free
        // a core still hashing.
        let done = tokio::task::spawn_blocking(move || {
            let _held = (turn, queued);
            work()
        });
        done.await.map_err(|e| Status::internal(e.to_string()))
    }

    /// Proposes an auth change for `from` and waits for it to be applied.
    async fn propose(
        &self,
        from: &Requester,
        deadline: Option<Instant>,
        fill: impl FnOnce(&mut InternalRaftRequest),
    ) -> Result<AuthApplied, Status> {
        match self.server.propose(from, deadline, fill).await.map_err(status)? {
            oxetcd_etcdserver::Applied::Auth(applied) => Ok(applied),
            other => Err(unexpected(other)),
        }
    }

    /// An auth change whose answer is just a header.
    async fn change<T, R>(
        &self,
        request: Request<T>,
        fill: impl FnOnce(&mut InternalRaftRequest, T),
        respond: impl FnOnce(Option<ResponseHeader>) -> R,
    ) -> Result<Response<R>, Status> {
        let deadline = client_deadline(&request);
        let from = requester(&self.server, &request).await?;
        let req = request.into_inner();
        self.propose(&from, deadline, |r| fill(r, req)).await?;
        Ok(Response::new(respond(self.header())))
    }

    /// A read of the auth store, after a ReadIndex round, checked by `allowed` (which
    /// is not consulted while auth is disabled).
    async fn read<T, R>(
        &self,
        request: Request<T>,
        allowed: impl FnOnce(&AuthStore, &AuthInfo, &T) -> Result<(), AuthError>,
        answer: impl FnOnce(&AuthStore, T) -> Result<R, AuthError>,
    ) -> Result<Response<R>, Status> {
        let deadline = client_deadline(&request);
        let from = requester(&self.server, &request).await?;
        self.server.linearizable_read(deadline).await.map_err(status)?;
        let req = request.into_inner();
        self.server
            .authorize_local(&from, |store, info| allowed(store, info, &req))
            .map_err(status)?;
        let store = self.server.auth().store();
        let answer = answer(&store, req).map_err(|e| status(ServerError::from(e)))?;
        Ok(Response::new(answer))
    }

    /// Hashes `password` for the log, unless the user has none; the request must come
    /// from an administrator first, so nobody else can make the server hash.
    async fn hash_for<T>(&self, request: &Request<T>, password: String) -> Result<String, Status> {
        require_admin(&self.server, request).await?;
        let cost = self.server.auth().bcrypt_cost;
        self.bcrypt(move || hash_password(&password, cost)).await
    }
}

fn admin(store: &AuthStore, info: &AuthInfo) -> Result<(), AuthError> {
    store.is_admin_permitted(info)
}

#[tonic::async_trait]
impl Auth for AuthService {
    async fn auth_enable(
        &self,
        request: Request<AuthEnableRequest>,
    ) -> Result<Response<AuthEnableResponse>, Status> {
        self.change(
            request,
            |r, req| r.auth_enable = Some(req),
            |header| AuthEnableResponse { header },
        )
        .await
    }

    async fn auth_disable(
        &self,
        request: Request<AuthDisableRequest>,
    ) -> Result<Response<AuthDisableResponse>, Status> {
        self.change(
            request,
            |r, req| r.auth_disable = Some(req),
            |header| AuthDisableResponse { header },
        )
        .await
    }

    async fn auth_status(
        &self,
        request: Request<AuthStatusRequest>,
    ) -> Result<Response<AuthStatusResponse>, Status> {
        let header = self.header();
        self.read(
            request,
            |_, _, _| Ok(()),
            |store, _| {
                let status = store.status();
                Ok(AuthStatusResponse {
                    header,
                    enabled: status.enabled,
                    auth_revision: status.revision,
                })
            },
        )
        .await
    }

    async fn authenticate(
        &self,
        request: Request<AuthenticateRequest>,
    ) -> Result<Response<AuthenticateResponse>, Status> {
        let deadline = client_deadline(&request);
        self.server.linearizable_read(deadline).await.map_err(status)?;
        let AuthenticateRequest { name, password } = request.into_inner();
        let password = Arc::new(password);
        loop {
            let credentials = self.server.auth().store().credentials(&name);
            let checked = match credentials {
                Ok(credentials) => {
                    let password = password.clone();
                    self.bcrypt(move || credentials.check(&password)).await?
                }
                Err(e) => Err(e),
            };
            let checked_revision = match checked {
                Ok(revision) => revision,
                Err(e) => {
                    if e != AuthError::AuthNotEnabled {
                        tracing::warn!(user = %name, error = %e, "invalid authentication was requested");
                    }
                    return Err(status(ServerError::from(e)));
                }
            };
            let authenticate = InternalAuthenticateRequest {
                name: name.clone(),
                password: String::new(),
                simple_token: gen_token_prefix(),
            };
            let applied = self
                .propose(&Requester::anonymous(), deadline, |r| r.authenticate = Some(authenticate))
                .await?;
            // A password changed while it was checked: check it again, as etcd does.
            if checked_revision != self.server.auth().store().revision() {
                tracing::info!("revision when password checked became stale; retrying");
                continue;
            }
            let token = match applied {
                AuthApplied::Token(token) => token,
                AuthApplied::Authenticated { revision } => self
                    .server
                    .auth()
                    .sign(&name, revision)
                    .map_err(|e| status(ServerError::from(e)))?,
                AuthApplied::Done => {
                    return Err(Status::internal(
                        "etcdserver: Authenticate applied without a token",
                    ));
                }
            };
            return Ok(Response::new(AuthenticateResponse { header: self.header(), token }));
        }
    }

    async fn user_add(
        &self,
        request: Request<AuthUserAddRequest>,
    ) -> Result<Response<AuthUserAddResponse>, Status> {
        let no_password = request.get_ref().options.is_some_and(|o| o.no_password);
        let hashed_password = if no_password {
            String::new()
        } else {
            let password = request.get_ref().password.clone();
            self.hash_for(&request, password).await?
        };
        self.change(
            request,
            |r, req| {
                r.auth_user_add =
                    Some(AuthUserAddRequest { password: String::new(), hashed_password, ..req })
            },
            |header| AuthUserAddResponse { header },
        )
        .await
    }

    async fn user_get(
        &self,
        request: Request<AuthUserGetRequest>,
    ) -> Result<Response<AuthUserGetResponse>, Status> {
        let header = self.header();
        self.read(
            request,
            // Users may read themselves (etcd's rule).
            |store, info, req| match admin(store, info) {
                Err(_) if req.name == info.user => Ok(()),
                checked => checked,
            },
            |store, req| {
                Ok(AuthUserGetResponse { header, roles: store.user_get(&req.name)?.roles })
            },
        )
        .await
    }

    async fn user_list(
        &self,
        request: Request<AuthUserListRequest>,
    ) -> Result<Response<AuthUserListResponse>, Status> {
        let header = self.header();
        self.read(
            request,
            |store, info, _| admin(store, info),
            |store, _| Ok(AuthUserListResponse { header, users: store.user_list() }),
        )
        .await
    }

    async fn user_delete(
        &self,
        request: Request<AuthUserDeleteRequest>,
    ) -> Result<Response<AuthUserDeleteResponse>, Status> {
        self.change(
            request,
            |r, req| r.auth_user_delete = Some(req),
            |header| AuthUserDeleteResponse { header },
        )
        .await
    }

    async fn user_change_password(
        &self,
        request: Request<AuthUserChangePasswordRequest>,
    ) -> Result<Response<AuthUserChangePasswordResponse>, Status> {
        let password = request.get_ref().password.clone();
        let hashed_password = self.hash_for(&request, password).await?;
        self.change(
            request,
            |r, req| {
                r.auth_user_change_password = Some(AuthUserChangePasswordRequest {
                    password: String::new(),
                    hashed_password,
                    ..req
                })
            },
            |header| AuthUserChangePasswordResponse { header },
        )
        .await
    }

    async fn user_grant_role(
        &self,
        request: Request<AuthUserGrantRoleRequest>,
    ) -> Result<Response<AuthUserGrantRoleResponse>, Status> {
        self.change(
            request,
            |r, req| r.auth_user_grant_role = Some(req),
            |header| AuthUserGrantRoleResponse { header },
        )
        .await
    }

    async fn user_revoke_role(
        &self,
        request: Request<AuthUserRevokeRoleRequest>,
    ) -> Result<Response<AuthUserRevokeRoleResponse>, Status> {
        self.change(
            request,
            |r, req| r.auth_user_revoke_role = Some(req),
            |header| AuthUserRevokeRoleResponse { header },
        )
        .await
    }

    async fn role_add(
        &self,
        request: Request<AuthRoleAddRequest>,
    ) -> Result<Response<AuthRoleAddResponse>, Status> {
        self.change(
            request,
            |r, req| r.auth_role_add = Some(req),
            |header| AuthRoleAddResponse { header },
        )
        .await
    }

    async fn role_get(
        &self,
        request: Request<AuthRoleGetRequest>,
    ) -> Result<Response<AuthRoleGetResponse>, Status> {
        let header = self.header();
        self.read(
            request,
            // Users may read their own roles (etcd's rule).
            |store, info, req| match admin(store, info) {
                Err(_) if has_role(store, &info.user, &req.role) => Ok(()),
                checked => checked,
            },
            |store, req| {
                Ok(AuthRoleGetResponse { header, perm: store.role_get(&req.role)?.key_permission })
            },
        )
        .await
    }

    async fn role_list(
        &self,
        request: Request<AuthRoleListRequest>,
    ) -> Result<Response<AuthRoleListResponse>, Status> {
        let header = self.header();
        self.read(
            request,
            |store, info, _| admin(store, info),
            |store, _| Ok(AuthRoleListResponse { header, roles: store.role_list() }),
        )
        .await
    }

    async fn role_delete(
        &self,
        request: Request<AuthRoleDeleteRequest>,
    ) -> Result<Response<AuthRoleDeleteResponse>, Status> {
        self.change(
            request,
            |r, req| r.auth_role_delete = Some(req),
            |header| AuthRoleDeleteResponse { header },
        )
        .await
    }

    async fn role_grant_permission(
        &self,
        request: Request<AuthRoleGrantPermissionRequest>,
    ) -> Result<Response<AuthRoleGrantPermissionResponse>, Status> {
        self.change(
            request,
            |r, req| r.auth_role_grant_permission = Some(req),
            |header| AuthRoleGrantPermissionResponse { header },
        )
        .await
    }

    async fn role_revoke_permission(
        &self,
        request: Request<AuthRoleRevokePermissionRequest>,
    ) -> Result<Response<AuthRoleRevokePermissionResponse>, Status> {
        self.change(
            request,
            |r, req| r.auth_role_revoke_permission = Some(req),
            |header| AuthRoleRevokePermissionResponse { header },
        )
        .await
    }
}

/// Whether `user` has `role`.
fn has_role(store: &AuthStore, user: &str, role: &str) -> bool {
    store.user_get(user).is_ok_and(|u| u.roles.iter().any(|r| r == role))
}
