/// Why an auth operation was refused. Messages are the ones etcd 3.4 puts on the wire
/// (its `rpctypes` strings, `etcdserver: ...`), since clients match on them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("etcdserver: root user does not exist")]
    RootUserNotExist,
    #[error("etcdserver: root user does not have root role")]
    RootRoleNotExist,
    #[error("etcdserver: user name already exists")]
    UserAlreadyExist,
    #[error("etcdserver: user name is empty")]
    UserEmpty,
    #[error("etcdserver: user name not found")]
    UserNotFound,
    #[error("etcdserver: role name already exists")]
    RoleAlreadyExist,
    #[error("etcdserver: role name not found")]
    RoleNotFound,
    #[error("etcdserver: role name is empty")]
    RoleEmpty,
    #[error("etcdserver: authentication failed, invalid user ID or password")]
    AuthFailed,
    /// A password was given for a user added with `no_password`. etcd 3.4 has no `rpctypes`
    /// error for it, so its gRPC layer sends the internal string (code Unknown); we keep it.
    #[error("auth: authentication failed, password was given for no password user")]
    NoPasswordUser,
    #[error("etcdserver: permission denied")]
    PermissionDenied,
    #[error("etcdserver: role is not granted to the user")]
    RoleNotGranted,
    #[error("etcdserver: permission is not granted to the role")]
    PermissionNotGranted,
    #[error("etcdserver: authentication is not enabled")]
    AuthNotEnabled,
    #[error("etcdserver: revision of auth store is old")]
    AuthOldRevision,
    #[error("etcdserver: invalid auth token")]
    InvalidAuthToken,
    /// A RoleGrantPermission without a permission (etcd 3.5's `ErrPermissionNotGiven`;
    /// etcd 3.4 crashes on it).
    #[error("etcdserver: permission not given")]
    PermissionNotGiven,
    #[error("etcdserver: invalid auth management")]
    InvalidAuthMgmt,
}
