//! Users, roles and the enabled flag, as etcd's `authStore` keeps them in its backend.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use oxetcd_api::authpb::{Permission, Role, User, UserAddOptions};

use crate::AuthError;
use crate::password;
use crate::perms::{PermType, UnifiedPerms};

/// The user who may enable auth and always passes every check (etcd's `rootUser`).
pub const ROOT_USER: &str = "root";
/// The role that makes a user an administrator (etcd's `rootRole`). It need not exist as a
/// role to be granted.
pub const ROOT_ROLE: &str = "root";

/// Who a request comes from: the user its token names, and the auth revision the token
/// was checked at (etcd's `AuthInfo`). The default, revision 0, is "no user".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthInfo {
    /// The user's name; empty for none.
    pub user: String,
    /// The auth revision the request's token was checked at; 0 for no token.
    pub revision: u64,
}

/// What AuthStatus answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthStatus {
    /// Whether requests are checked.
    pub enabled: bool,
    /// The auth revision: how many changes the users and roles have seen.
    pub revision: u64,
}

/// What a password check needs from the store, taken under its lock so the slow bcrypt
/// comparison ([`Credentials::check`]) can run outside it, as etcd does.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The user's hash; `None` for an unknown user.
    hash: Option<Bytes>,
    revision: u64,
}

impl Credentials {
    /// Checks the password; on success answers the auth revision it was checked at (the
    /// one the new token is valid from). Slow (bcrypt): never call it on the apply thread.
    pub fn check(&self, password: &str) -> Result<u64, AuthError> {
        // An unknown user is compared against a dummy hash: same cost as a real failure.
        let hash = self.hash.as_deref().unwrap_or_else(|| password::dummy_hash());
        if password::verify(password, hash) && self.hash.is_some() {
            Ok(self.revision)
        } else {
            Err(AuthError::AuthFailed)
        }
    }
}

/// The auth store's state: the enabled flag, the auth revision, users and roles.
///
/// Mutations take inputs the proposing side validated (and hashed), are applied in log
/// order, and bump the auth revision when they change anything, as etcd's
/// `commitRevision`; a request checked at an older revision is refused with
/// [`AuthError::AuthOldRevision`], so a permission change takes effect at once.
///
/// Merged permissions are cached per user and built on first use; any mutation drops the
/// whole cache. Compared with etcd, which rebuilds every user's permissions on every
/// change, a mutation costs O(1) here and the first check of each user after it costs
/// O(p log p) in that user's permissions p.
#[derive(Debug, Default)]
pub struct AuthStore {
    pub(crate) enabled: bool,
    pub(crate) revision: u64,
    pub(crate) users: BTreeMap<String, User>,
    pub(crate) roles: BTreeMap<String, Role>,
    perm_cache: Mutex<HashMap<String, Arc<UnifiedPerms>>>,
    /// What changed since the last [`AuthStore::take_changes`]: the rows to write.
    pub(crate) dirty: Dirty,
}

/// The parts of the store changed since they were last written to the backend.
#[derive(Debug, Default)]
pub(crate) struct Dirty {
    /// The enabled flag or the revision.
    pub(crate) meta: bool,
    pub(crate) users: BTreeSet<String>,
    pub(crate) roles: BTreeSet<String>,
}

/// Whether a permission names at least one key: a key, and a range end that is empty
/// (the key alone), `"\0"` (every key from it on) or after the key.
fn is_valid_permission_range(key: &[u8], range_end: &[u8]) -> bool {
    !key.is_empty() && (range_end.is_empty() || range_end == [0] || key < range_end)
}

fn has_root_role(user: &User) -> bool {
    user.roles.binary_search_by(|r| r.as_str().cmp(ROOT_ROLE)).is_ok()
}

impl AuthStore {
    /// An empty store: auth disabled, revision 0, no users, no roles.
    pub fn new() -> AuthStore {
        AuthStore::default()
    }

    /// A changed store: bump the revision, forget the merged permissions.
    fn commit_revision(&mut self) {
        self.revision += 1;
        self.dirty.meta = true;
        self.perm_cache.get_mut().unwrap_or_else(|e| e.into_inner()).clear();
    }

    fn user(&self, name: &str) -> Result<&User, AuthError> {
        self.users.get(name).ok_or(AuthError::UserNotFound)
    }

    /// Enables auth; needs user `root` with role `root`. Already enabled: nothing to do.
    /// As in etcd 3.4, enabling leaves the auth revision as it is.
    pub fn auth_enable(&mut self) -> Result<(), AuthError> {
        if self.enabled {
            return Ok(());
        }
        let root = self.users.get(ROOT_USER).ok_or(AuthError::RootUserNotExist)?;
        if !has_root_role(root) {
            return Err(AuthError::RootRoleNotExist);
        }
        self.enabled = true;
        self.dirty.meta = true;
        Ok(())
    }

    /// Disables auth. The caller drops every token too (etcd's `tokenProvider.disable`).
    pub fn auth_disable(&mut self) {
        if self.enabled {
            self.enabled = false;
            self.commit_revision();
        }
    }

    /// Whether requests are checked.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// The auth revision a token checked now is valid at.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// What AuthStatus answers.
    pub fn status(&self) -> AuthStatus {
        AuthStatus { enabled: self.enabled, revision: self.revision }
    }

    /// Adds a user with an already hashed password, or with none (`no_password`: the user
    /// can only be authenticated by its TLS certificate's common name).
    pub fn user_add(
        &mut self,
        name: &str,
        hashed_password: Option<String>,
    ) -> Result<(), AuthError> {
        if name.is_empty() {
            return Err(AuthError::UserEmpty);
        }
        if self.users.contains_key(name) {
            return Err(AuthError::UserAlreadyExist);
        }
        let no_password = hashed_password.is_none();
        let user = User {
            name: Bytes::copy_from_slice(name.as_bytes()),
            password: hashed_password.map(Bytes::from).unwrap_or_default(),
            roles: Vec::new(),
            options: Some(UserAddOptions { no_password }),
        };
        self.users.insert(name.to_owned(), user);
        self.dirty.users.insert(name.to_owned());
        self.commit_revision();
        Ok(())
    }

    /// Deletes a user; `root` cannot be deleted while auth is enabled. The caller
    /// invalidates the user's tokens.
    pub fn user_delete(&mut self, name: &str) -> Result<(), AuthError> {
        if self.enabled && name == ROOT_USER {
            return Err(AuthError::InvalidAuthMgmt);
        }
        self.users.remove(name).ok_or(AuthError::UserNotFound)?;
        self.dirty.users.insert(name.to_owned());
        self.commit_revision();
        Ok(())
    }

    /// Replaces a user's password hash. The caller invalidates the user's tokens. As in
    /// etcd 3.4, a `no_password` user keeps that option (and so still cannot log in with
    /// a password).
    pub fn user_change_password(
        &mut self,
        name: &str,
        hashed_password: String,
    ) -> Result<(), AuthError> {
        let user = self.users.get_mut(name).ok_or(AuthError::UserNotFound)?;
        user.password = Bytes::from(hashed_password);
        self.dirty.users.insert(name.to_owned());
        self.commit_revision();
        Ok(())
    }

    /// Grants a role to a user; the `root` role needs not exist. Granting a role the user
    /// has changes nothing (and keeps the revision).
    pub fn user_grant_role(&mut self, name: &str, role: &str) -> Result<(), AuthError> {
        self.user(name)?;
        if role != ROOT_ROLE && !self.roles.contains_key(role) {
            return Err(AuthError::RoleNotFound);
        }
        let Some(user) = self.users.get_mut(name) else { return Err(AuthError::UserNotFound) };
        let Err(idx) = user.roles.binary_search_by(|r| r.as_str().cmp(role)) else { return Ok(()) };
        user.roles.insert(idx, role.to_owned());
        self.dirty.users.insert(name.to_owned());
        self.commit_revision();
        Ok(())
    }

    /// Revokes a role from a user; `root` keeps role `root` while auth is enabled.
    pub fn user_revoke_role(&mut self, name: &str, role: &str) -> Result<(), AuthError> {
        if self.enabled && name == ROOT_USER && role == ROOT_ROLE {
            return Err(AuthError::InvalidAuthMgmt);
        }
        let user = self.users.get_mut(name).ok_or(AuthError::UserNotFound)?;
        let idx = user
            .roles
            .binary_search_by(|r| r.as_str().cmp(role))
            .map_err(|_| AuthError::RoleNotGranted)?;
        user.roles.remove(idx);
        self.dirty.users.insert(name.to_owned());
        self.commit_revision();
        Ok(())
    }

    /// A user as stored (its roles sorted).
    pub fn user_get(&self, name: &str) -> Result<User, AuthError> {
        self.user(name).cloned()
    }

    /// Every user's name, sorted.
    pub fn user_list(&self) -> Vec<String> {
        self.users.keys().cloned().collect()
    }

    /// Adds a role with no permissions.
    pub fn role_add(&mut self, name: &str) -> Result<(), AuthError> {
        if name.is_empty() {
            return Err(AuthError::RoleEmpty);
        }
        if self.roles.contains_key(name) {
            return Err(AuthError::RoleAlreadyExist);
        }
        let role =
            Role { name: Bytes::copy_from_slice(name.as_bytes()), key_permission: Vec::new() };
        self.roles.insert(name.to_owned(), role);
        self.dirty.roles.insert(name.to_owned());
        self.commit_revision();
        Ok(())
    }

    /// Deletes a role and takes it from every user that has it; role `root` cannot be
    /// deleted while auth is enabled.
    pub fn role_delete(&mut self, name: &str) -> Result<(), AuthError> {
        if self.enabled && name == ROOT_ROLE {
            return Err(AuthError::InvalidAuthMgmt);
        }
        self.roles.remove(name).ok_or(AuthError::RoleNotFound)?;
        self.dirty.roles.insert(name.to_owned());
        for (user_name, user) in &mut self.users {
            if let Ok(idx) = user.roles.binary_search_by(|r| r.as_str().cmp(name)) {
                user.roles.remove(idx);
                self.dirty.users.insert(user_name.clone());
            }
        }
        self.commit_revision();
        Ok(())
    }

    /// A role as stored (its permissions sorted by key, then range end).
    pub fn role_get(&self, name: &str) -> Result<Role, AuthError> {
        self.roles.get(name).cloned().ok_or(AuthError::RoleNotFound)
    }

    /// Every role's name, sorted.
    pub fn role_list(&self) -> Vec<String> {
        self.roles.keys().cloned().collect()
    }

    /// Grants a permission to a role. A permission on the same key and range end is
    /// replaced (its type changes), as in etcd. etcd 3.4 only compares against the first
    /// permission with that key, so with several range ends on one key it can store a
    /// duplicate; we always find the match.
    pub fn role_grant_permission(&mut self, name: &str, perm: Permission) -> Result<(), AuthError> {
        let role = self.roles.get_mut(name).ok_or(AuthError::RoleNotFound)?;
        if !is_valid_permission_range(&perm.key, &perm.range_end) {
            // etcd 3.5's answer; etcd 3.4 stores such a permission, which grants nothing.
            return Err(AuthError::InvalidAuthMgmt);
        }
        let perms = &mut role.key_permission;
        match perms.binary_search_by(|p| (&p.key, &p.range_end).cmp(&(&perm.key, &perm.range_end)))
        {
            Ok(idx) => perms[idx].perm_type = perm.perm_type,
            Err(idx) => perms.insert(idx, perm),
        }
        self.dirty.roles.insert(name.to_owned());
        self.commit_revision();
        Ok(())
    }

    /// Revokes the permission on exactly `key` and `range_end` from a role.
    pub fn role_revoke_permission(
        &mut self,
        name: &str,
        key: &[u8],
        range_end: &[u8],
    ) -> Result<(), AuthError> {
        let role = self.roles.get_mut(name).ok_or(AuthError::RoleNotFound)?;
        let perms = &mut role.key_permission;
        let idx = perms
            .binary_search_by(|p| (p.key.as_ref(), p.range_end.as_ref()).cmp(&(key, range_end)))
            .map_err(|_| AuthError::PermissionNotGranted)?;
        perms.remove(idx);
        self.dirty.roles.insert(name.to_owned());
        self.commit_revision();
        Ok(())
    }

    /// The user's merged permissions, from the cache or built now.
    fn perms_of(&self, user: &User, name: &str) -> Arc<UnifiedPerms> {
        let mut cache = self.perm_cache.lock().unwrap_or_else(|e| e.into_inner());
        // The hit, the common case, allocates no key.
        if let Some(perms) = cache.get(name) {
            return Arc::clone(perms);
        }
        let perms = cache.entry(name.to_owned()).or_insert_with(|| {
            let granted =
                user.roles.iter().filter_map(|r| self.roles.get(r)).flat_map(|r| &r.key_permission);
            Arc::new(UnifiedPerms::new(granted))
        });
        Arc::clone(perms)
    }

    /// Whether `user` may access `key` (one key if `range_end` is empty, `[key,
    /// range_end)` otherwise, every key from `key` on if `range_end` is `"\0"`) for
    /// `need`, by its roles' permissions together; a user with role `root` may access
    /// everything, an unknown user nothing. Ignores whether auth is enabled.
    pub fn is_range_permitted(
        &self,
        user: &str,
        key: &[u8],
        range_end: &[u8],
        need: PermType,
    ) -> bool {
        let Some(u) = self.users.get(user) else { return false };
        has_root_role(u) || self.perms_of(u, user).permits(key, range_end, need)
    }

    /// Checks a key request as etcd's `isOpPermitted`: everything passes while auth is
    /// disabled; otherwise the request needs a user, a token checked at the current auth
    /// revision, and the permission.
    pub fn check(
        &self,
        info: &AuthInfo,
        key: &[u8],
        range_end: &[u8],
        need: PermType,
    ) -> Result<(), AuthError> {
        if !self.enabled {
            return Ok(());
        }
        if info.revision == 0 {
            return Err(AuthError::UserEmpty);
        }
        if info.revision < self.revision {
            return Err(AuthError::AuthOldRevision);
        }
        if self.is_range_permitted(&info.user, key, range_end, need) {
            Ok(())
        } else {
            Err(AuthError::PermissionDenied)
        }
    }

    /// Checks an administrative request (membership, defragment, auth management...): the
    /// user needs role `root` while auth is enabled (etcd's `IsAdminPermitted`).
    pub fn is_admin_permitted(&self, info: &AuthInfo) -> Result<(), AuthError> {
        if !self.enabled {
            return Ok(());
        }
        if info.user.is_empty() {
            return Err(AuthError::UserEmpty);
        }
        if has_root_role(self.user(&info.user)?) {
            Ok(())
        } else {
            Err(AuthError::PermissionDenied)
        }
    }

    /// What checking `user`'s password needs (etcd's `CheckPassword` up to the bcrypt
    /// comparison): auth must be enabled, and a `no_password` user cannot log in with a
    /// password. An unknown user gets credentials that fail, after the same work.
    pub fn credentials(&self, user: &str) -> Result<Credentials, AuthError> {
        if !self.enabled {
            return Err(AuthError::AuthNotEnabled);
        }
        let hash = match self.users.get(user) {
            Some(u) if u.options.is_some_and(|o| o.no_password) => {
                return Err(AuthError::NoPasswordUser);
            }
            Some(u) => Some(u.password.clone()),
            None => None,
        };
        Ok(Credentials { hash, revision: self.revision })
    }

    /// [`AuthStore::credentials`] then [`Credentials::check`]: slow, see there.
    pub fn check_password(&self, user: &str, password: &str) -> Result<u64, AuthError> {
        self.credentials(user)?.check(password)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MIN_BCRYPT_COST, hash_password};

    fn perm(key: &str, end: &str, t: PermType) -> Permission {
        Permission {
            perm_type: t as i32,
            key: Bytes::copy_from_slice(key.as_bytes()),
            range_end: Bytes::copy_from_slice(end.as_bytes()),
        }
    }

    /// A store with `root` (role root) and `alice`, auth not yet enabled.
    fn store() -> AuthStore {
        let mut s = AuthStore::new();
        s.user_add("root", Some(hash_password("rootpw", MIN_BCRYPT_COST))).unwrap();
        s.user_grant_role("root", ROOT_ROLE).unwrap();
        s.user_add("alice", Some(hash_password("alicepw", MIN_BCRYPT_COST))).unwrap();
        s
    }

    fn info(s: &AuthStore, user: &str) -> AuthInfo {
        AuthInfo { user: user.to_owned(), revision: s.revision() }
    }

    #[test]
    fn enable_needs_root_with_root_role() {
        let mut s = AuthStore::new();
        assert_eq!(s.auth_enable(), Err(AuthError::RootUserNotExist));
        s.user_add("root", None).unwrap();
        assert_eq!(s.auth_enable(), Err(AuthError::RootRoleNotExist));
        s.user_grant_role("root", ROOT_ROLE).unwrap();
        let rev = s.revision();
        s.auth_enable().unwrap();
        assert_eq!(s.status(), AuthStatus { enabled: true, revision: rev });
        s.auth_enable().unwrap();
        s.auth_disable();
        assert_eq!(s.status(), AuthStatus { enabled: false, revision: rev + 1 });
        s.auth_disable();
        assert_eq!(s.revision(), rev + 1);
    }

    #[test]
    fn user_errors_and_revisions() {
        let mut s = store();
        assert_eq!(s.revision(), 3);
        assert_eq!(s.user_add("", None), Err(AuthError::UserEmpty));
        assert_eq!(s.user_add("alice", None), Err(AuthError::UserAlreadyExist));
        assert_eq!(s.user_delete("bob"), Err(AuthError::UserNotFound));
        assert_eq!(s.user_change_password("bob", "x".into()), Err(AuthError::UserNotFound));
        assert_eq!(s.user_grant_role("bob", "r"), Err(AuthError::UserNotFound));
        assert_eq!(s.user_grant_role("alice", "r"), Err(AuthError::RoleNotFound));
        assert_eq!(s.user_revoke_role("bob", "r"), Err(AuthError::UserNotFound));
        assert_eq!(s.user_revoke_role("alice", "r"), Err(AuthError::RoleNotGranted));
        assert_eq!(s.user_get("bob"), Err(AuthError::UserNotFound));
        assert_eq!(s.revision(), 3, "failures change nothing");

        s.role_add("b").unwrap();
        s.role_add("a").unwrap();
        s.user_grant_role("alice", "b").unwrap();
        s.user_grant_role("alice", "a").unwrap();
        let rev = s.revision();
        s.user_grant_role("alice", "a").unwrap();
        assert_eq!(s.revision(), rev, "granting a granted role changes nothing");
        assert_eq!(s.user_get("alice").unwrap().roles, ["a", "b"]);
        s.user_revoke_role("alice", "a").unwrap();
        assert_eq!(s.user_get("alice").unwrap().roles, ["b"]);
        s.user_add("bob", None).unwrap();
        assert_eq!(s.user_list(), ["alice", "bob", "root"]);
        let bob = s.user_get("bob").unwrap();
        assert_eq!(
            (bob.name.as_ref(), bob.options),
            (&b"bob"[..], Some(UserAddOptions { no_password: true }))
        );
        s.user_delete("bob").unwrap();
        assert_eq!(s.user_list(), ["alice", "root"]);
        assert_eq!(s.revision(), rev + 3);
    }

    #[test]
    fn root_is_protected_while_enabled() {
        let mut s = store();
        s.auth_enable().unwrap();
        assert_eq!(s.user_delete("root"), Err(AuthError::InvalidAuthMgmt));
        assert_eq!(s.user_revoke_role("root", ROOT_ROLE), Err(AuthError::InvalidAuthMgmt));
        assert_eq!(s.role_delete(ROOT_ROLE), Err(AuthError::InvalidAuthMgmt));
        s.auth_disable();
        s.user_revoke_role("root", ROOT_ROLE).unwrap();
        s.user_delete("root").unwrap();
    }

    #[test]
    fn role_errors_and_permission_grants() {
        let mut s = store();
        assert_eq!(s.role_add(""), Err(AuthError::RoleEmpty));
        s.role_add("r").unwrap();
        assert_eq!(s.role_add("r"), Err(AuthError::RoleAlreadyExist));
        assert_eq!(s.role_get("x"), Err(AuthError::RoleNotFound));
        assert_eq!(s.role_delete("x"), Err(AuthError::RoleNotFound));
        assert_eq!(
            s.role_grant_permission("x", perm("a", "", PermType::Read)),
            Err(AuthError::RoleNotFound)
        );
        assert_eq!(s.role_revoke_permission("x", b"a", b""), Err(AuthError::RoleNotFound));
        assert_eq!(s.role_revoke_permission("r", b"a", b""), Err(AuthError::PermissionNotGranted));
        // Permissions that name no key change nothing (etcd 3.5's rule).
        let rev = s.revision();
        for (key, end) in [("", ""), ("", "b"), ("b", "a"), ("b", "b")] {
            assert_eq!(
                s.role_grant_permission("r", perm(key, end, PermType::Read)),
                Err(AuthError::InvalidAuthMgmt),
                "[{key:?}, {end:?})"
            );
        }
        assert_eq!(s.revision(), rev);
        assert!(s.role_get("r").unwrap().key_permission.is_empty());

        s.role_grant_permission("r", perm("b", "c", PermType::Read)).unwrap();
        s.role_grant_permission("r", perm("a", "", PermType::Read)).unwrap();
        s.role_grant_permission("r", perm("b", "", PermType::Read)).unwrap();
        // Same key and range end: the type is replaced.
        s.role_grant_permission("r", perm("b", "c", PermType::Write)).unwrap();
        let got = s.role_get("r").unwrap().key_permission;
        assert_eq!(
            got,
            [
                perm("a", "", PermType::Read),
                perm("b", "", PermType::Read),
                perm("b", "c", PermType::Write)
            ]
        );
        assert_eq!(s.role_revoke_permission("r", b"b", b"d"), Err(AuthError::PermissionNotGranted));
        s.role_revoke_permission("r", b"b", b"c").unwrap();
        assert_eq!(s.role_get("r").unwrap().key_permission.len(), 2);

        s.role_add("q").unwrap();
        assert_eq!(s.role_list(), ["q", "r"]);
        s.user_grant_role("alice", "r").unwrap();
        s.user_grant_role("alice", "q").unwrap();
        s.role_delete("r").unwrap();
        assert_eq!(s.user_get("alice").unwrap().roles, ["q"]);
        assert_eq!(s.role_list(), ["q"]);
    }

    #[test]
    fn checks_follow_revision_and_permission_changes() {
        let mut s = store();
        s.role_add("r").unwrap();
        s.user_grant_role("alice", "r").unwrap();
        // Disabled: everything passes, even with no user.
        s.check(&AuthInfo::default(), b"k", b"", PermType::Write).unwrap();
        s.is_admin_permitted(&AuthInfo::default()).unwrap();
        s.auth_enable().unwrap();

        assert_eq!(
            s.check(&AuthInfo::default(), b"k", b"", PermType::Read),
            Err(AuthError::UserEmpty)
        );
        assert_eq!(
            s.check(&info(&s, "alice"), b"k", b"", PermType::Read),
            Err(AuthError::PermissionDenied)
        );
        let stale = info(&s, "alice");
        s.role_grant_permission("r", perm("k", "", PermType::Read)).unwrap();
        assert_eq!(s.check(&stale, b"k", b"", PermType::Read), Err(AuthError::AuthOldRevision));
        s.check(&info(&s, "alice"), b"k", b"", PermType::Read).unwrap();
        assert_eq!(
            s.check(&info(&s, "alice"), b"k", b"", PermType::Write),
            Err(AuthError::PermissionDenied)
        );
        // The cache is dropped when the role changes.
        s.role_revoke_permission("r", b"k", b"").unwrap();
        assert_eq!(
            s.check(&info(&s, "alice"), b"k", b"", PermType::Read),
            Err(AuthError::PermissionDenied)
        );
        assert_eq!(
            s.check(&info(&s, "ghost"), b"k", b"", PermType::Read),
            Err(AuthError::PermissionDenied)
        );
        // Root may do anything.
        s.check(&info(&s, "root"), b"k", b"\0", PermType::Readwrite).unwrap();

        assert_eq!(s.is_admin_permitted(&AuthInfo::default()), Err(AuthError::UserEmpty));
        assert_eq!(s.is_admin_permitted(&info(&s, "ghost")), Err(AuthError::UserNotFound));
        assert_eq!(s.is_admin_permitted(&info(&s, "alice")), Err(AuthError::PermissionDenied));
        s.is_admin_permitted(&info(&s, "root")).unwrap();
    }

    #[test]
    fn passwords() {
        let mut s = store();
        assert_eq!(s.check_password("alice", "alicepw").unwrap_err(), AuthError::AuthNotEnabled);
        s.user_add("cert-only", None).unwrap();
        s.auth_enable().unwrap();
        assert_eq!(s.check_password("alice", "alicepw"), Ok(s.revision()));
        assert_eq!(s.check_password("alice", "wrong"), Err(AuthError::AuthFailed));
        assert_eq!(s.check_password("ghost", "x"), Err(AuthError::AuthFailed));
        assert_eq!(s.check_password("cert-only", ""), Err(AuthError::NoPasswordUser));
        s.user_change_password("alice", hash_password("new", MIN_BCRYPT_COST)).unwrap();
        assert_eq!(s.check_password("alice", "alicepw"), Err(AuthError::AuthFailed));
        assert_eq!(s.check_password("alice", "new"), Ok(s.revision()));
    }
}
