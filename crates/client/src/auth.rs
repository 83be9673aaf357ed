//! Authentication and user/role management calls.

use oxetcd_api::authpb::{Permission as PbPermission, UserAddOptions, permission};
use oxetcd_api::etcdserverpb::*;

use crate::IntoBytes;
use crate::client::{Client, Retry};
use crate::error::Result;
use crate::kv::KeyRange;

/// What a role may do with a key range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PermissionType {
    /// Read.
    Read,
    /// Write.
    Write,
    /// Read and write.
    ReadWrite,
}

/// A permission on a key, a range or a prefix, for [`Auth::role_grant_permission`].
///
/// ```
/// use oxetcd_client::auth::{Permission, PermissionType};
///
/// let perm = Permission::new(PermissionType::Read, "app/").with_prefix();
/// assert_eq!(perm.into_inner().range_end.as_ref(), b"app0");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Permission(PbPermission);

impl Permission {
    /// `kind` on `key` alone.
    pub fn new(kind: PermissionType, key: impl IntoBytes) -> Permission {
        let perm_type = match kind {
            PermissionType::Read => permission::Type::Read,
            PermissionType::Write => permission::Type::Write,
            PermissionType::ReadWrite => permission::Type::Readwrite,
        };
        Permission(PbPermission {
            perm_type: perm_type as i32,
            key: key.into_bytes(),
            range_end: Default::default(),
        })
    }

    /// On every key in `[key, end)`.
    pub fn with_range(mut self, end: impl IntoBytes) -> Permission {
        self.0.range_end = end.into_bytes();
        self
    }

    /// On every key starting with the key.
    pub fn with_prefix(mut self) -> Permission {
        self.0.range_end = KeyRange::Prefix.range_end(&self.0.key);
        self
    }

    /// On every key greater than or equal to the key.
    pub fn with_from_key(mut self) -> Permission {
        self.0.range_end = KeyRange::FromKey.range_end(&self.0.key);
        self
    }

    /// The wire form.
    pub fn into_inner(self) -> PbPermission {
        self.0
    }
}

/// Auth calls, from [`Client::auth`]. With [`ClientOptions::with_user`](crate::ClientOptions::with_user)
/// the client authenticates by itself and attaches the token to every request.
///
/// ```no_run
/// # async fn example(client: oxetcd_client::Client) -> oxetcd_client::Result<()> {
/// use oxetcd_client::auth::{Permission, PermissionType};
///
/// let auth = client.auth();
/// auth.user_add("root", "secret", false).await?;
/// auth.role_add("root").await?;
/// auth.user_grant_role("root", "root").await?;
/// auth.role_add("reader").await?;
/// auth.role_grant_permission("reader", Permission::new(PermissionType::Read, "app/").with_prefix()).await?;
/// auth.auth_enable().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Auth<'a> {
    client: &'a Client,
}

impl Client {
    /// Auth calls.
    pub fn auth(&self) -> Auth<'_> {
        Auth { client: self }
    }
}

/// The requests the auth calls send, built apart so they can be checked without a server.
pub(crate) mod requests {
    use super::*;

    pub(crate) fn user_add(name: &str, password: &str, no_password: bool) -> AuthUserAddRequest {
        AuthUserAddRequest {
            name: name.to_string(),
            password: if no_password { String::new() } else { password.to_string() },
            options: Some(UserAddOptions { no_password }),
            hashed_password: String::new(),
        }
    }

    pub(crate) fn role_grant_permission(
        role: &str,
        perm: Permission,
    ) -> AuthRoleGrantPermissionRequest {
        AuthRoleGrantPermissionRequest { name: role.to_string(), perm: Some(perm.into_inner()) }
    }

    pub(crate) fn role_revoke_permission(
        role: &str,
        key: bytes::Bytes,
        range_end: bytes::Bytes,
    ) -> AuthRoleRevokePermissionRequest {
        AuthRoleRevokePermissionRequest { role: role.to_string(), key, range_end }
    }
}

macro_rules! auth_call {
    ($(#[$doc:meta])* $name:ident($($arg:ident: $ty:ty),*) -> $resp:ty, $policy:ident, $req:expr) => {
        $(#[$doc])*
        pub async fn $name(&self, $($arg: $ty),*) -> Result<$resp> {
            let request = $req;
            self.client
                .unary(Retry::$policy, request, |conn, req| {
                    async move { conn.auth().$name(req).await }
                })
                .await
        }
    };
}

impl Auth<'_> {
    auth_call!(
        /// Turns authentication on (a `root` user with the `root` role must exist).
        auth_enable() -> AuthEnableResponse, NonRepeatable, AuthEnableRequest {}
    );
    auth_call!(
        /// Turns authentication off.
        auth_disable() -> AuthDisableResponse, NonRepeatable, AuthDisableRequest {}
    );
    auth_call!(
        /// Whether authentication is on, and the auth store's revision.
        auth_status() -> AuthStatusResponse, Repeatable, AuthStatusRequest {}
    );
    auth_call!(
        /// Checks a user's password and returns a token. (The client does this by itself
        /// when built with a user; this is for callers managing tokens by hand.)
        authenticate(name: &str, password: &str) -> AuthenticateResponse, NonRepeatable,
        AuthenticateRequest { name: name.to_string(), password: password.to_string() }
    );
    auth_call!(
        /// Adds a user; with `no_password`, one that can only authenticate by other means.
        user_add(name: &str, password: &str, no_password: bool) -> AuthUserAddResponse, NonRepeatable,
        requests::user_add(name, password, no_password)
    );
    auth_call!(
        /// A user's roles.
        user_get(name: &str) -> AuthUserGetResponse, Repeatable, AuthUserGetRequest { name: name.to_string() }
    );
    auth_call!(
        /// Every user.
        user_list() -> AuthUserListResponse, Repeatable, AuthUserListRequest {}
    );
    auth_call!(
        /// Deletes a user.
        user_delete(name: &str) -> AuthUserDeleteResponse, NonRepeatable,
        AuthUserDeleteRequest { name: name.to_string() }
    );
    auth_call!(
        /// Changes a user's password.
        user_change_password(name: &str, password: &str) -> AuthUserChangePasswordResponse, NonRepeatable,
        AuthUserChangePasswordRequest { name: name.to_string(), password: password.to_string(), hashed_password: String::new() }
    );
    auth_call!(
        /// Grants a role to a user.
        user_grant_role(user: &str, role: &str) -> AuthUserGrantRoleResponse, NonRepeatable,
        AuthUserGrantRoleRequest { user: user.to_string(), role: role.to_string() }
    );
    auth_call!(
        /// Revokes a role from a user.
        user_revoke_role(name: &str, role: &str) -> AuthUserRevokeRoleResponse, NonRepeatable,
        AuthUserRevokeRoleRequest { name: name.to_string(), role: role.to_string() }
    );
    auth_call!(
        /// Adds a role.
        role_add(name: &str) -> AuthRoleAddResponse, NonRepeatable, AuthRoleAddRequest { name: name.to_string() }
    );
    auth_call!(
        /// A role's permissions.
        role_get(role: &str) -> AuthRoleGetResponse, Repeatable, AuthRoleGetRequest { role: role.to_string() }
    );
    auth_call!(
        /// Every role.
        role_list() -> AuthRoleListResponse, Repeatable, AuthRoleListRequest {}
    );
    auth_call!(
        /// Deletes a role.
        role_delete(role: &str) -> AuthRoleDeleteResponse, NonRepeatable,
        AuthRoleDeleteRequest { role: role.to_string() }
    );
    auth_call!(
        /// Grants a permission to a role.
        role_grant_permission(role: &str, perm: Permission) -> AuthRoleGrantPermissionResponse, NonRepeatable,
        requests::role_grant_permission(role, perm)
    );
    auth_call!(
        /// Revokes a role's permission on `key` (and `range_end`, as granted).
        role_revoke_permission(role: &str, key: bytes::Bytes, range_end: bytes::Bytes)
            -> AuthRoleRevokePermissionResponse, NonRepeatable,
        requests::role_revoke_permission(role, key, range_end)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_add_requests_carry_the_no_password_option() {
        let r = requests::user_add("alice", "pw", false);
        assert_eq!((r.name.as_str(), r.password.as_str()), ("alice", "pw"));
        assert_eq!(r.options, Some(UserAddOptions { no_password: false }));
        let r = requests::user_add("bob", "ignored", true);
        assert!(r.password.is_empty());
        assert_eq!(r.options, Some(UserAddOptions { no_password: true }));
    }

    #[test]
    fn permission_requests_name_the_role_and_range() {
        let perm = Permission::new(PermissionType::ReadWrite, "k").with_from_key();
        let r = requests::role_grant_permission("ops", perm);
        assert_eq!(r.name, "ops");
        let p = r.perm.unwrap();
        assert_eq!(p.perm_type, permission::Type::Readwrite as i32);
        assert_eq!((p.key.as_ref(), p.range_end.as_ref()), (b"k".as_ref(), b"\0".as_ref()));
        let r = requests::role_revoke_permission("ops", "k".into(), "l".into());
        assert_eq!((r.role.as_str(), r.range_end.as_ref()), ("ops", b"l".as_ref()));
    }

    #[tokio::test]
    async fn the_token_travels_as_metadata() {
        let client = Client::for_tests();
        client.set_token_for_tests("abc");
        let request = client.request(AuthUserListRequest {});
        assert_eq!(request.metadata().get("token").unwrap(), "abc");
    }
}
