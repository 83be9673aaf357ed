//! Auth in the server (etcd's `authApplierV3` and the checks of its `v3_server`): the
//! auth store as apply keeps it, the member's tokens, and the permissions each request
//! needs.
//!
//! A write is checked where it takes effect, on the apply thread, against the auth state
//! at that point of the log, with the auth revision its token was checked at: a
//! permission revoked while the write waited in the log refuses it on every member alike.
//! A read is checked before it is served and its auth revision compared again after
//! (etcd's `doSerialize`), so a concurrent change cannot leak a read either.

use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Instant, SystemTime};

use oxetcd_api::etcdserverpb::request_op::Request as Op;
use oxetcd_api::etcdserverpb::{
    DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};
use oxetcd_api::oxetcdpb::{InternalRaftRequest, RequestHeader};
use oxetcd_auth::{
    AuthChanges, AuthError, AuthInfo, AuthStore, JwtTokens, PermType, SimpleTokens, hash_password,
};
use oxetcd_lease::Lessor;

/// Who a request is for: what apply checks it as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requester {
    /// The member itself (expired lease revokes, checkpoints, its attributes): trusted.
    Member,
    /// A client, as its token or certificate names it; `AuthInfo::default()` for none.
    Client(AuthInfo),
}

impl Requester {
    /// A client that presented no credentials.
    pub fn anonymous() -> Requester {
        Requester::Client(AuthInfo::default())
    }

    /// Writes who asked into a proposal's header.
    pub(crate) fn fill_header(&self, header: &mut RequestHeader) {
        match self {
            Requester::Member => header.by_member = true,
            Requester::Client(info) => {
                header.username.clone_from(&info.user);
                header.auth_revision = info.revision;
            }
        }
    }

    /// Who asked, as a committed entry's header says.
    pub(crate) fn from_header(header: Option<&RequestHeader>) -> Requester {
        match header {
            Some(h) if h.by_member => Requester::Member,
            Some(h) => {
                Requester::Client(AuthInfo { user: h.username.clone(), revision: h.auth_revision })
            }
            None => Requester::anonymous(),
        }
    }
}

/// How this member's tokens are made and checked (`--auth-token`).
#[derive(Debug)]
pub enum TokenProvider {
    /// Random tokens every member assigns when it applies the Authenticate entry.
    Simple(SimpleTokens),
    /// Signed tokens that carry the user and the auth revision; any member with the
    /// public key checks them, so no member keeps any.
    Jwt(Box<JwtTokens>),
}

/// The member's auth state: the store (changed only by apply) and its tokens.
#[derive(Debug)]
pub struct ServerAuth {
    store: RwLock<AuthStore>,
    pub(crate) tokens: TokenProvider,
    /// `--bcrypt-cost`: what password hashes cost to make.
    pub bcrypt_cost: u32,
}

impl ServerAuth {
    /// Auth state starting from `store` (public for the fuzz target, `fuzz/`, which
    /// plays the apply thread).
    pub fn new(store: AuthStore, tokens: TokenProvider, bcrypt_cost: u32) -> ServerAuth {
        ServerAuth { store: RwLock::new(store), tokens, bcrypt_cost }
    }

    /// The store as of now. Hold the guard briefly: apply waits for it.
    pub fn store(&self) -> RwLockReadGuard<'_, AuthStore> {
        self.store.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn store_mut(&self) -> RwLockWriteGuard<'_, AuthStore> {
        self.store.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The user a token names, checked now (`None`: unknown, expired or malformed).
    pub fn token_info(&self, token: &str, now: Instant) -> Option<AuthInfo> {
        match &self.tokens {
            TokenProvider::Simple(tokens) => {
                let user = tokens.user(token, now)?;
                // Simple tokens carry no revision: they are checked at the current one.
                Some(AuthInfo { user, revision: self.store().revision() })
            }
            // A JWT carries the revision it was signed at: any auth change since makes
            // its requests fail with `revision of auth store is old`, and clients log in
            // again (etcd's behaviour).
            TokenProvider::Jwt(tokens) => tokens.info(token, SystemTime::now()),
        }
    }

    /// The JWT for a user authenticated at auth revision `revision`, signed by the
    /// member that proposed the Authenticate entry (etcd signs on every member, in
    /// apply; signing is slow enough to keep off it).
    pub fn sign(&self, user: &str, revision: u64) -> Result<String, AuthError> {
        match &self.tokens {
            TokenProvider::Jwt(tokens) => tokens.assign(user, revision, SystemTime::now()),
            TokenProvider::Simple(_) => Err(AuthError::AuthFailed),
        }
    }

    /// The auth table rows changed since the last call, to write in the backend commit
    /// of the entry that changed them (`AuthStore::take_changes`).
    pub fn take_changes(&self) -> AuthChanges {
        self.store_mut().take_changes()
    }

    /// Forgets tokens that went unused for their TTL.
    pub(crate) fn purge_expired(&self, now: Instant) {
        if let TokenProvider::Simple(tokens) = &self.tokens {
            tokens.purge_expired(now);
        }
    }

    /// Replaces the store with one read from a new backend (a snapshot installed).
    pub(crate) fn replace_store(&self, store: AuthStore) {
        *self.store_mut() = store;
    }

    /// Forgets tokens the change made invalid.
    /// JWTs cannot be taken back: the auth revision they carry is what stops them.
    fn after_change(&self, change: &AuthChange) {
        let TokenProvider::Simple(tokens) = &self.tokens else { return };
        match change {
            AuthChange::UserGone(user) => tokens.invalidate_user(user),
            AuthChange::Disabled => tokens.clear(),
            AuthChange::Other => {}
        }
    }
}

/// What an applied auth request produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthApplied {
    Done,
    /// Authenticate: the simple token this member assigned.
    Token(String),
    /// Authenticate with JWTs: the auth revision the proposer signs the token at.
    Authenticated {
        revision: u64,
    },
}

/// What an auth change means for the tokens held.
enum AuthChange {
    /// The user was deleted or its password changed.
    UserGone(String),
    Disabled,
    Other,
}

/// Applies an auth change, if `request` is one, at raft index `index`; `None` if it is
/// not an auth request. The apply thread's (public for the fuzz target, `fuzz/`).
pub fn apply(
    auth: &ServerAuth,
    request: &InternalRaftRequest,
    index: u64,
    now: Instant,
) -> Option<Result<AuthApplied, AuthError>> {
    let mut store = auth.store_mut();
    let store = &mut *store;
    let (result, change) = if request.auth_enable.is_some() {
        let result = store.auth_enable();
        if result.is_ok() {
            tracing::info!("enabled authentication");
        }
        (result, AuthChange::Other)
    } else if request.auth_disable.is_some() {
        store.auth_disable();
        tracing::info!("disabled authentication");
        (Ok(()), AuthChange::Disabled)
    } else if let Some(r) = &request.authenticate {
        // The password was checked by the proposer; the user may be gone since.
        if !store.is_enabled() {
            return Some(Err(AuthError::AuthNotEnabled));
        }
        if store.user_get(&r.name).is_err() {
            return Some(Err(AuthError::AuthFailed));
        }
        return Some(Ok(match &auth.tokens {
            TokenProvider::Simple(tokens) => {
                AuthApplied::Token(tokens.assign(&r.name, &r.simple_token, index, now))
            }
            TokenProvider::Jwt(_) => AuthApplied::Authenticated { revision: store.revision() },
        }));
    } else if let Some(r) = &request.auth_user_add {
        let no_password = r.options.is_some_and(|o| o.no_password);
        let hashed = if no_password {
            None
        } else if r.hashed_password.is_empty() {
            // Only an entry written by etcd 3.4 carries the password itself; its own
            // members hash it when they apply it, and so must we to agree with them.
            Some(hash_password(&r.password, auth.bcrypt_cost))
        } else {
            Some(r.hashed_password.clone())
        };
        (store.user_add(&r.name, hashed), AuthChange::Other)
    } else if let Some(r) = &request.auth_user_delete {
        (store.user_delete(&r.name), AuthChange::UserGone(r.name.clone()))
    } else if let Some(r) = &request.auth_user_change_password {
        let hashed = if r.hashed_password.is_empty() {
            hash_password(&r.password, auth.bcrypt_cost)
        } else {
            r.hashed_password.clone()
        };
        (store.user_change_password(&r.name, hashed), AuthChange::UserGone(r.name.clone()))
    } else if let Some(r) = &request.auth_user_grant_role {
        (store.user_grant_role(&r.user, &r.role), AuthChange::Other)
    } else if let Some(r) = &request.auth_user_revoke_role {
        (store.user_revoke_role(&r.name, &r.role), AuthChange::Other)
    } else if let Some(r) = &request.auth_role_add {
        (store.role_add(&r.name), AuthChange::Other)
    } else if let Some(r) = &request.auth_role_delete {
        (store.role_delete(&r.role), AuthChange::Other)
    } else if let Some(r) = &request.auth_role_grant_permission {
        match &r.perm {
            Some(perm) => (store.role_grant_permission(&r.name, perm.clone()), AuthChange::Other),
            None => (Err(AuthError::PermissionNotGiven), AuthChange::Other),
        }
    } else if let Some(r) = &request.auth_role_revoke_permission {
        (store.role_revoke_permission(&r.role, &r.key, &r.range_end), AuthChange::Other)
    } else if request.auth_status.is_some()
        || request.auth_user_get.is_some()
        || request.auth_user_list.is_some()
        || request.auth_role_get.is_some()
        || request.auth_role_list.is_some()
    {
        // Reads, in a log etcd 3.4 wrote (it sends them through raft; oxetcd serves them
        // locally): nothing to change.
        (Ok(()), AuthChange::Other)
    } else {
        return None;
    };
    if result.is_ok() {
        auth.after_change(&change);
    }
    Some(result.map(|()| AuthApplied::Done))
}

/// Whether only an administrator (a user with role `root`) may make the request
/// (etcd's `needAdminPermission`). Compaction and alarms stay open to every user, as in
/// etcd 3.4 and 3.5: a Kubernetes API server compacts as whatever user it runs as, and
/// refusing it would let the history grow without bound after a move to oxetcd.
fn needs_admin(request: &InternalRaftRequest) -> bool {
    request.auth_enable.is_some()
        || request.auth_disable.is_some()
        || request.auth_user_add.is_some()
        || request.auth_user_delete.is_some()
        || request.auth_user_change_password.is_some()
        || request.auth_user_grant_role.is_some()
        || request.auth_user_revoke_role.is_some()
        || request.auth_user_list.is_some()
        || request.auth_role_add.is_some()
        || request.auth_role_delete.is_some()
        || request.auth_role_grant_permission.is_some()
        || request.auth_role_revoke_permission.is_some()
        || request.auth_role_list.is_some()
}

/// Checks a committed request against the auth store at its place in the log (etcd's
/// `authApplierV3`). Members' own requests and Authenticate (its password was checked
/// before proposing) pass. Public for the fuzz target (`fuzz/`).
pub fn authorize(
    store: &AuthStore,
    lessor: &Lessor,
    from: &Requester,
    request: &InternalRaftRequest,
) -> Result<(), AuthError> {
    let Requester::Client(info) = from else { return Ok(()) };
    if !store.is_enabled() {
        return Ok(());
    }
    if needs_admin(request) {
        return store.is_admin_permitted(info);
    }
    if let Some(put) = &request.put {
        check_put(store, lessor, info, put)
    } else if let Some(delete) = &request.delete_range {
        check_delete(store, info, delete)
    } else if let Some(txn) = &request.txn {
        check_txn(store, lessor, info, txn)
    } else if let Some(revoke) = &request.lease_revoke {
        check_lease_keys(store, lessor, info, revoke.id, PermType::Write)
    } else {
        Ok(())
    }
}

/// A Range: read on its key range.
pub fn check_range(
    store: &AuthStore,
    info: &AuthInfo,
    range: &RangeRequest,
) -> Result<(), AuthError> {
    store.check(info, &range.key, &range.range_end, PermType::Read)
}

/// A Put: write on its key; read too if it asks for the previous value; write on every
/// key already attached to its lease, or a user could keep alive, and so keep, keys it
/// may not delete (etcd's `checkLeasePuts`).
fn check_put(
    store: &AuthStore,
    lessor: &Lessor,
    info: &AuthInfo,
    put: &PutRequest,
) -> Result<(), AuthError> {
    store.check(info, &put.key, b"", PermType::Write)?;
    if put.prev_kv {
        store.check(info, &put.key, b"", PermType::Read)?;
    }
    if put.lease != 0 {
        check_lease_keys(store, lessor, info, put.lease, PermType::Write)?;
    }
    Ok(())
}

/// A DeleteRange: write on its range; read too if it asks for the deleted values.
fn check_delete(
    store: &AuthStore,
    info: &AuthInfo,
    delete: &DeleteRangeRequest,
) -> Result<(), AuthError> {
    if delete.prev_kv {
        store.check(info, &delete.key, &delete.range_end, PermType::Read)?;
    }
    store.check(info, &delete.key, &delete.range_end, PermType::Write)
}

/// A Txn: read on every compare's range, and each op of both branches as if sent
/// alone, nested txns included (etcd 3.4 skips nested ones: a hole we do not copy).
pub fn check_txn(
    store: &AuthStore,
    lessor: &Lessor,
    info: &AuthInfo,
    txn: &TxnRequest,
) -> Result<(), AuthError> {
    for compare in &txn.compare {
        store.check(info, &compare.key, &compare.range_end, PermType::Read)?;
    }
    let ops = |ops: &[RequestOp]| -> Result<(), AuthError> {
        for op in ops {
            match &op.request {
                Some(Op::RequestRange(r)) => check_range(store, info, r)?,
                Some(Op::RequestPut(p)) => check_put(store, lessor, info, p)?,
                Some(Op::RequestDeleteRange(d)) => check_delete(store, info, d)?,
                Some(Op::RequestTxn(t)) => check_txn(store, lessor, info, t)?,
                None => {}
            }
        }
        Ok(())
    };
    ops(&txn.success)?;
    ops(&txn.failure)
}

/// `need` on every key attached to lease `id` (none: nothing to check). An
/// administrator skips the walk over the keys (etcd's early exit for big leases).
pub fn check_lease_keys(
    store: &AuthStore,
    lessor: &Lessor,
    info: &AuthInfo,
    id: i64,
    need: PermType,
) -> Result<(), AuthError> {
    if !store.is_enabled() || store.is_admin_permitted(info).is_ok() {
        return Ok(());
    }
    for key in lessor.keys(id) {
        store.check(info, &key, b"", need)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use oxetcd_api::authpb::Permission;
    use oxetcd_api::etcdserverpb::{LeaseRevokeRequest, RequestOp};
    use oxetcd_auth::{MIN_BCRYPT_COST, ROOT_ROLE};
    use oxetcd_lease::SystemClock;
    use oxetcd_mvcc::Lessor as _;

    use super::*;

    /// Auth enabled; `alice` may read and write `a` only.
    fn store() -> AuthStore {
        let mut s = AuthStore::new();
        s.user_add("root", Some(hash_password("pw", MIN_BCRYPT_COST))).unwrap();
        s.user_grant_role("root", ROOT_ROLE).unwrap();
        s.user_add("alice", None).unwrap();
        s.role_add("r").unwrap();
        let perm = Permission {
            perm_type: PermType::Readwrite as i32,
            key: Bytes::from_static(b"a"),
            range_end: Bytes::new(),
        };
        s.role_grant_permission("r", perm).unwrap();
        s.user_grant_role("alice", "r").unwrap();
        s.auth_enable().unwrap();
        s
    }

    fn alice(s: &AuthStore) -> Requester {
        Requester::Client(AuthInfo { user: "alice".into(), revision: s.revision() })
    }

    fn put(key: &'static [u8]) -> RequestOp {
        RequestOp {
            request: Some(Op::RequestPut(PutRequest {
                key: Bytes::from_static(key),
                ..Default::default()
            })),
        }
    }

    fn lessor() -> Lessor {
        Lessor::new(1, Arc::new(SystemClock))
    }

    #[test]
    fn a_write_in_a_nested_txn_needs_its_permission() {
        let s = store();
        let nested = |op| TxnRequest { success: vec![op], ..Default::default() };
        let outer = |inner: TxnRequest| InternalRaftRequest {
            txn: Some(TxnRequest {
                success: vec![RequestOp { request: Some(Op::RequestTxn(inner)) }],
                ..Default::default()
            }),
            ..Default::default()
        };
        let lessor = lessor();
        authorize(&s, &lessor, &alice(&s), &outer(nested(put(b"a")))).unwrap();
        assert_eq!(
            authorize(&s, &lessor, &alice(&s), &outer(nested(put(b"b")))),
            Err(AuthError::PermissionDenied)
        );
    }

    #[test]
    fn members_pass_and_anonymous_clients_do_not() {
        let s = store();
        let lessor = lessor();
        let request = InternalRaftRequest {
            lease_revoke: Some(LeaseRevokeRequest { id: 7 }),
            ..Default::default()
        };
        lessor.grant(7, 60).unwrap();
        lessor.attach(7, b"b");
        authorize(&s, &lessor, &Requester::Member, &request).unwrap();
        assert_eq!(
            authorize(&s, &lessor, &alice(&s), &request),
            Err(AuthError::PermissionDenied),
            "alice may not delete b"
        );
        assert_eq!(
            authorize(&s, &lessor, &Requester::anonymous(), &request),
            Err(AuthError::UserEmpty)
        );
    }

    #[test]
    fn the_header_says_who_asked() {
        for from in [Requester::Member, Requester::anonymous(), alice(&store())] {
            let mut header = RequestHeader::default();
            from.fill_header(&mut header);
            assert_eq!(Requester::from_header(Some(&header)), from);
        }
    }

    #[test]
    fn a_put_on_a_lease_needs_write_on_the_lease_keys() {
        let s = store();
        let lessor = lessor();
        lessor.grant(9, 60).unwrap();
        lessor.attach(9, b"b");
        let request = InternalRaftRequest {
            put: Some(PutRequest { key: Bytes::from_static(b"a"), lease: 9, ..Default::default() }),
            ..Default::default()
        };
        assert_eq!(authorize(&s, &lessor, &alice(&s), &request), Err(AuthError::PermissionDenied));
        let root = Requester::Client(AuthInfo { user: "root".into(), revision: s.revision() });
        authorize(&s, &lessor, &root, &request).unwrap();
    }
}
