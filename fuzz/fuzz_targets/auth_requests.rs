//! Any sequence of auth and alarm requests, each through what the server does before it
//! proposes one (the v3rpc Auth service's admin check and password hashing,
//! Authenticate's password check, the request size limit) and then applied as the apply
//! thread applies it: `auth::authorize` against the auth state at that point of the log,
//! the alarms' refusal, `auth::apply` or `alarm::apply`, and the changed auth rows
//! written to an in-memory store in the entry's commit. The reads (AuthStatus, UserGet,
//! UserList, RoleGet, RoleList, Alarm GET) are served locally after their permission
//! check, and also applied as etcd 3.4's log carries them.
//!
//! Each piece of the input (`oxetcd_fuzz::tagged_pieces`) is one request: the tag picks
//! the message (`tag % KINDS`) and who sends it (`tag / KINDS`), the piece is its
//! protobuf encoding. At the end, what was written must read back as what was applied:
//! the auth tables recover to the same users, roles, flag and revision, and the alarm
//! table to the same alarms.
#![no_main]

use std::sync::{Arc, RwLock};
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use oxetcd_api::etcdserverpb::{
    AlarmRequest, AlarmType, AuthDisableRequest, AuthEnableRequest, AuthRoleAddRequest,
    AuthRoleDeleteRequest, AuthRoleGetRequest, AuthRoleGrantPermissionRequest, AuthRoleListRequest,
    AuthRoleRevokePermissionRequest, AuthStatusRequest, AuthUserAddRequest,
    AuthUserChangePasswordRequest, AuthUserDeleteRequest, AuthUserGetRequest,
    AuthUserGrantRoleRequest, AuthUserListRequest, AuthUserRevokeRoleRequest, AuthenticateRequest,
    alarm_request::AlarmAction,
};
use oxetcd_api::oxetcdpb::{InternalAuthenticateRequest, InternalRaftRequest};
use oxetcd_auth::{
    AUTH_ROLES_TABLE, AUTH_TABLE, AUTH_USERS_TABLE, AuthInfo, AuthRows, AuthStore,
    DEFAULT_TOKEN_TTL, MIN_BCRYPT_COST, ROOT_USER, SimpleTokens, gen_token_prefix, hash_password,
};
use oxetcd_etcdserver::Requester;
use oxetcd_etcdserver::alarm::{self, Alarms};
use oxetcd_etcdserver::auth::{self, AuthApplied, ServerAuth, TokenProvider};
use oxetcd_fuzz::tagged_pieces;
use oxetcd_lease::{Lessor, SystemClock};
use oxetcd_mvcc::backend::memory::MemoryBackend;
use oxetcd_mvcc::validate::{self, DEFAULT_MAX_REQUEST_BYTES};
use oxetcd_mvcc::{ApplyIndex, Store, StoreConfig};
use prost::Message;

/// Requests per input: enough for a history (root, a role, enable, a login, ...).
const MAX_REQUESTS: usize = 32;
/// Message kinds the tag picks from.
const KINDS: u8 = 18;
/// bcrypt calls (hashing or checking a password) per input. Each costs about 1 ms at
/// the lowest cost, which the target hashes at; past the budget, requests that would
/// hash are refused, as the server refuses them with `too many requests` when its
/// bcrypt queue is full. Logins of unknown users are never checked: the server compares
/// them with a dummy hash at the default cost (50 ms) and always fails them.
const MAX_BCRYPT_CALLS: usize = 4;

/// What the member does with one piece of input.
struct Member {
    auth: ServerAuth,
    alarms: RwLock<Alarms>,
    lessor: Arc<Lessor>,
    store: Store<MemoryBackend>,
    bcrypt_budget: usize,
}

impl Member {
    /// Whether one more bcrypt call fits the budget; takes it if so.
    fn bcrypt_turn(&mut self) -> bool {
        let turn = self.bcrypt_budget > 0;
        self.bcrypt_budget = self.bcrypt_budget.saturating_sub(1);
        turn
    }

    /// The v3rpc Auth service's admin check before it hashes a password
    /// (`require_admin`), which passes while auth is disabled.
    fn admin_may_hash(&self, from: &Requester) -> bool {
        let store = self.auth.store();
        match from {
            Requester::Client(info) if store.is_enabled() => store.is_admin_permitted(info).is_ok(),
            _ => true,
        }
    }

    /// A local read's permission check (`EtcdServer::authorize_local`): whether the
    /// read is served.
    fn may_read(
        &self,
        from: &Requester,
        allowed: impl FnOnce(&AuthStore, &AuthInfo) -> bool,
    ) -> bool {
        let store = self.auth.store();
        match from {
            Requester::Client(info) if store.is_enabled() => allowed(&store, info),
            _ => true,
        }
    }

    /// Applies `request` as the apply thread applies a committed entry at `at`.
    fn apply(&self, from: &Requester, request: InternalRaftRequest, at: ApplyIndex) {
        let authorized = auth::authorize(&self.auth.store(), &self.lessor, from, &request);
        let refused = self.alarms.read().unwrap().refusal(&request);
        if authorized.is_err() || refused.is_some() {
            let _ = self.store.set_consistent_index(at);
            return;
        }
        if let Some(alarm) = &request.alarm {
            let _ = alarm::apply(&self.alarms, &self.store, alarm, at);
            return;
        }
        let Some(result) = auth::apply(&self.auth, &request, at.index, Instant::now()) else {
            return;
        };
        // What the apply thread's `persist_auth` writes, in the entry's commit.
        let changes = self.auth.take_changes();
        if changes.is_empty() {
            let _ = self.store.set_consistent_index(at);
        }
        for (table, rows) in changes.tables() {
            self.store.aux_write(table, rows, at).expect("the in-memory backend writes");
        }
        if let (Some(login), Ok(AuthApplied::Token(token))) = (&request.authenticate, result) {
            // The token just assigned names the user who logged in.
            let info = self.auth.token_info(&token, Instant::now());
            assert_eq!(info.map(|i| i.user), Some(login.name.clone()), "token {token}");
        }
    }
}

/// Who sends a request, from the tag's upper part: the member itself, nobody, root at
/// the current auth revision or at an old one, or a user the store holds.
fn requester(who: u8, auth: &ServerAuth) -> Requester {
    let store = auth.store();
    let client =
        |user: &str, revision| Requester::Client(AuthInfo { user: user.to_owned(), revision });
    match who % 5 {
        0 => Requester::Member,
        1 => Requester::anonymous(),
        2 => client(ROOT_USER, store.revision()),
        3 => client(ROOT_USER, store.revision().saturating_sub(1)),
        _ => {
            let users = store.user_list();
            match users.get(usize::from(who) % users.len().max(1)) {
                Some(user) => client(user, store.revision()),
                None => Requester::anonymous(),
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let lessor = Arc::new(Lessor::new(1, Arc::new(SystemClock)));
    let store = Store::open(MemoryBackend::default(), StoreConfig::default(), lessor.clone())
        .expect("a store opens on an empty backend");
    let tokens = TokenProvider::Simple(SimpleTokens::new(DEFAULT_TOKEN_TTL));
    let mut member = Member {
        auth: ServerAuth::new(AuthStore::new(), tokens, MIN_BCRYPT_COST),
        alarms: RwLock::default(),
        lessor,
        store,
        bcrypt_budget: MAX_BCRYPT_CALLS,
    };
    for (index, (tag, bytes)) in tagged_pieces(data).take(MAX_REQUESTS).enumerate() {
        let at = ApplyIndex { index: index as u64 + 1, term: 1 };
        if validate::check_request_size(bytes.len(), DEFAULT_MAX_REQUEST_BYTES).is_err() {
            continue;
        }
        let who = tag / KINDS;
        let from = requester(who, &member.auth);
        // The upper half of senders stand for entries as etcd 3.4 wrote them: passwords
        // in the log, hashed when applied, and no checks of this server before them.
        let etcd_3_4 = who >= 5;
        let mut r = InternalRaftRequest::default();
        macro_rules! decode {
            ($t:ty) => {{
                let Ok(req) = <$t>::decode(bytes) else { continue };
                req
            }};
        }
        match tag % KINDS {
            0 => r.auth_enable = Some(decode!(AuthEnableRequest)),
            1 => r.auth_disable = Some(decode!(AuthDisableRequest)),
            2 => {
                let req = decode!(AuthStatusRequest);
                let _ = member.auth.store().status();
                r.auth_status = Some(req);
            }
            3 => {
                let req = decode!(AuthenticateRequest);
                // The Authenticate RPC checks the password before it proposes.
                let Ok(credentials) = member.auth.store().credentials(&req.name) else {
                    continue;
                };
                let known = member.auth.store().user_get(&req.name).is_ok();
                if !known || !member.bcrypt_turn() || credentials.check(&req.password).is_err() {
                    continue;
                }
                r.authenticate = Some(InternalAuthenticateRequest {
                    name: req.name,
                    password: String::new(),
                    simple_token: gen_token_prefix(),
                });
                member.apply(&Requester::anonymous(), r, at);
                continue;
            }
            4 => {
                let mut req = decode!(AuthUserAddRequest);
                let no_password = req.options.is_some_and(|o| o.no_password);
                if etcd_3_4 {
                    req.hashed_password.clear();
                    if !no_password && !member.bcrypt_turn() {
                        continue;
                    }
                } else {
                    if !member.admin_may_hash(&from) {
                        continue;
                    }
                    req.hashed_password = if no_password {
                        String::new()
                    } else if member.bcrypt_turn() {
                        hash_password(&req.password, MIN_BCRYPT_COST)
                    } else {
                        continue;
                    };
                    req.password.clear();
                }
                r.auth_user_add = Some(req);
            }
            5 => r.auth_user_delete = Some(decode!(AuthUserDeleteRequest)),
            6 => {
                let mut req = decode!(AuthUserChangePasswordRequest);
                if (!etcd_3_4 && !member.admin_may_hash(&from)) || !member.bcrypt_turn() {
                    continue;
                }
                if etcd_3_4 {
                    req.hashed_password.clear();
                } else {
                    req.hashed_password = hash_password(&req.password, MIN_BCRYPT_COST);
                    req.password.clear();
                }
                r.auth_user_change_password = Some(req);
            }
            7 => r.auth_user_grant_role = Some(decode!(AuthUserGrantRoleRequest)),
            8 => r.auth_user_revoke_role = Some(decode!(AuthUserRevokeRoleRequest)),
            9 => {
                let req = decode!(AuthUserGetRequest);
                // Users may read themselves.
                let allowed = member.may_read(&from, |store, info| {
                    store.is_admin_permitted(info).is_ok() || req.name == info.user
                });
                if allowed {
                    let _ = member.auth.store().user_get(&req.name);
                }
                r.auth_user_get = Some(req);
            }
            10 => {
                let req = decode!(AuthUserListRequest);
                if member.may_read(&from, |store, info| store.is_admin_permitted(info).is_ok()) {
                    let _ = member.auth.store().user_list();
                }
                r.auth_user_list = Some(req);
            }
            11 => r.auth_role_add = Some(decode!(AuthRoleAddRequest)),
            12 => r.auth_role_delete = Some(decode!(AuthRoleDeleteRequest)),
            13 => r.auth_role_grant_permission = Some(decode!(AuthRoleGrantPermissionRequest)),
            14 => r.auth_role_revoke_permission = Some(decode!(AuthRoleRevokePermissionRequest)),
            15 => {
                let req = decode!(AuthRoleGetRequest);
                // Users may read their own roles.
                let allowed = member.may_read(&from, |store, info| {
                    store.is_admin_permitted(info).is_ok()
                        || store.user_get(&info.user).is_ok_and(|u| u.roles.contains(&req.role))
                });
                if allowed {
                    let _ = member.auth.store().role_get(&req.role);
                }
                r.auth_role_get = Some(req);
            }
            16 => {
                let req = decode!(AuthRoleListRequest);
                if member.may_read(&from, |store, info| store.is_admin_permitted(info).is_ok()) {
                    let _ = member.auth.store().role_list();
                }
                r.auth_role_list = Some(req);
            }
            _ => {
                let req = decode!(AlarmRequest);
                // GET is answered without the log.
                if req.action == AlarmAction::Get as i32 {
                    let kind = AlarmType::try_from(req.alarm).unwrap_or(AlarmType::None);
                    let _ = member.alarms.read().unwrap().get(kind);
                    continue;
                }
                r.alarm = Some(req);
            }
        }
        member.apply(&from, r, at);
    }

    // What the backend holds reads back as what was applied (a restart's recovery).
    let scan = |table| member.store.aux_scan(table).expect("the in-memory backend reads");
    let rows = AuthRows {
        auth: scan(AUTH_TABLE),
        users: scan(AUTH_USERS_TABLE),
        roles: scan(AUTH_ROLES_TABLE),
    };
    let recovered = AuthStore::recover(rows).expect("the auth rows written read back");
    let live = member.auth.store();
    assert_eq!(recovered.status(), live.status());
    assert_eq!(recovered.user_list(), live.user_list());
    assert_eq!(recovered.role_list(), live.role_list());
    for user in live.user_list() {
        assert_eq!(recovered.user_get(&user), live.user_get(&user), "user {user:?}");
    }
    for role in live.role_list() {
        assert_eq!(recovered.role_get(&role), live.role_get(&role), "role {role:?}");
    }
    let alarms = Alarms::recover(&member.store).expect("the alarm rows written read back");
    assert_eq!(alarms, *member.alarms.read().unwrap());
});
