//! The one mapping from the server's errors to what etcd puts on the wire: gRPC code
//! and message (etcd's `rpctypes`). Clients match on the message text, so each string
//! is etcd's, byte for byte.
//!
//! | error | code | message |
//! |---|---|---|
//! | no leader, leader changed, server stopped | UNAVAILABLE | `etcdserver: no leader`, … |
//! | request timed out (a proposal's deadline) | UNAVAILABLE | `etcdserver: request timed out` |
//! | a read's client deadline | UNKNOWN | `context deadline exceeded` |
//! | too many requests | RESOURCE_EXHAUSTED | `etcdserver: too many requests` |
//! | request too large, key/txn validation | INVALID_ARGUMENT | `etcdserver: request is too large`, `etcdserver: key is not provided`, … |
//! | compacted / future revision | OUT_OF_RANGE | `etcdserver: mvcc: required revision has been compacted`, … |
//! | lease not found / member not found | NOT_FOUND | `etcdserver: requested lease not found`, … |
//! | lease exists | FAILED_PRECONDITION | `etcdserver: lease already exists` |
//! | lease TTL too large | OUT_OF_RANGE | `etcdserver: too large lease TTL` |
//! | storage and internal failures | UNKNOWN | the failure's text |
//! | bad password, empty names, invalid auth management, old auth revision | INVALID_ARGUMENT | `etcdserver: authentication failed, invalid user ID or password`, … |
//! | missing user/role, role or permission not granted, auth not enabled, no root | FAILED_PRECONDITION | `etcdserver: user name not found`, … |
//! | permission denied | PERMISSION_DENIED | `etcdserver: permission denied` |
//! | invalid auth token | UNAUTHENTICATED | `etcdserver: invalid auth token` |
//! | a password for a `no_password` user | UNKNOWN | `auth: authentication failed, password was given for no password user` |
//!
//! A read's deadline is UNKNOWN because etcd 3.4 returns its context's error, and its
//! gRPC server sends any error that is not a gRPC status as UNKNOWN.
//!
//! The Lock and Election services answer with what etcd's recipes return
//! ([`recipe_status`]): etcd's errors from the calls they make lose their code (etcd's
//! client turns them into errors without a gRPC status, which its gRPC server sends as
//! UNKNOWN) and keep their message; the recipes' own conditions are UNKNOWN too
//! (`election: not leader`, `election: no leader`, `"leader" field must be provided`).
//!
//! Refusals of the gRPC layer itself, worded as etcd's gRPC server (grpc-go) words them
//! ([`grpc_refusal`], [`unknown_service`]; tonic words them its own way or not at all):
//!
//! | refusal | code | message |
//! |---|---|---|
//! | message over `--max-request-bytes` + 512 KiB | RESOURCE_EXHAUSTED | `grpc: received message larger than max (N vs. M)` |
//! | no such service (or one not served yet) | UNIMPLEMENTED | `unknown service etcdserverpb.Auth` |
//! | no such method | UNIMPLEMENTED | `unknown method Nope for service etcdserverpb.KV` |
//! | a path that names no method | RESOURCE_EXHAUSTED | `malformed method name: "/nothing"` |

use oxetcd_auth::AuthError;
use oxetcd_etcdserver::ServerError;
use oxetcd_lease::LeaseError;
use tonic::{Code, Status};

/// The status etcd answers `error` with.
pub fn status(error: impl Into<ServerError>) -> Status {
    let error = error.into();
    let code = code(&error);
    let message = match &error {
        ServerError::Mvcc(e) => mvcc_message(e),
        other => other.to_string(),
    };
    Status::new(code, message)
}

/// The status etcd's Lock and Election services answer a failed recipe with: a gRPC
/// status that is not one of etcd's errors (a call cancelled or refused by the gRPC
/// layer) as it is, anything else as UNKNOWN with its message.
pub(crate) fn recipe_status(error: oxetcd_client::Error) -> Status {
    match error {
        oxetcd_client::Error::Grpc { status } => status,
        other => Status::unknown(other.to_string()),
    }
}

fn code(error: &ServerError) -> Code {
    use oxetcd_mvcc::Error as Mvcc;
    match error {
        ServerError::NoLeader
        | ServerError::Timeout
        | ServerError::LeaderChanged
        | ServerError::Stopped => Code::Unavailable,
        ServerError::TooManyRequests | ServerError::NoSpace => Code::ResourceExhausted,
        ServerError::Corrupt => Code::DataLoss,
        ServerError::RequestTooLarge => Code::InvalidArgument,
        ServerError::MemberNotFound => Code::NotFound,
        ServerError::MemberExists
        | ServerError::PeerUrlExists
        | ServerError::MemberNotLearner
        | ServerError::LearnerNotReady
        | ServerError::TooManyLearners
        | ServerError::NotEnoughStartedMembers
        | ServerError::NotLeader
        | ServerError::BadLeaderTransferee => Code::FailedPrecondition,
        ServerError::MemberBadUrls => Code::InvalidArgument,
        ServerError::Unhealthy | ServerError::NotSupportedForLearner => Code::Unavailable,
        // etcd 3.4 maps no code to it: its gRPC server sends Unknown.
        ServerError::LeaderTransferTimeout => Code::Unknown,
        ServerError::DeadlineExceeded | ServerError::Internal(_) => Code::Unknown,
        ServerError::Lease(LeaseError::NotFound) => Code::NotFound,
        ServerError::Lease(LeaseError::Exists) => Code::FailedPrecondition,
        ServerError::Lease(LeaseError::TtlTooLarge) => Code::OutOfRange,
        ServerError::Auth(e) => auth_code(e),
        ServerError::Mvcc(Mvcc::Compacted | Mvcc::FutureRev) => Code::OutOfRange,
        ServerError::Mvcc(
            Mvcc::EmptyKey
            | Mvcc::KeyNotFound
            | Mvcc::ValueProvided
            | Mvcc::LeaseProvided
            | Mvcc::TooManyOps
            | Mvcc::DuplicateKey
            | Mvcc::RequestTooLarge,
        ) => Code::InvalidArgument,
        ServerError::Mvcc(Mvcc::LeaseNotFound) => Code::NotFound,
        ServerError::Mvcc(
            Mvcc::Backend(_) | Mvcc::Corrupt(_) | Mvcc::ReservedTable(_) | Mvcc::Closed,
        ) => Code::Unknown,
    }
}

/// etcd's `rpctypes` codes for the auth store's errors.
fn auth_code(error: &AuthError) -> Code {
    match error {
        AuthError::UserEmpty
        | AuthError::RoleEmpty
        | AuthError::AuthFailed
        | AuthError::InvalidAuthMgmt
        | AuthError::AuthOldRevision
        | AuthError::PermissionNotGiven => Code::InvalidArgument,
        AuthError::RootUserNotExist
        | AuthError::RootRoleNotExist
        | AuthError::UserAlreadyExist
        | AuthError::UserNotFound
        | AuthError::RoleAlreadyExist
        | AuthError::RoleNotFound
        | AuthError::RoleNotGranted
        | AuthError::PermissionNotGranted
        | AuthError::AuthNotEnabled => Code::FailedPrecondition,
        AuthError::PermissionDenied => Code::PermissionDenied,
        AuthError::InvalidAuthToken => Code::Unauthenticated,
        AuthError::NoPasswordUser => Code::Unknown,
    }
}

/// The store's errors read as etcd's mvcc messages inside the server; on the wire etcd
/// adds its `etcdserver: ` prefix to those it knows, and names a missing lease its own way.
fn mvcc_message(error: &oxetcd_mvcc::Error) -> String {
    use oxetcd_mvcc::Error as Mvcc;
    match error {
        Mvcc::LeaseNotFound => LeaseError::NotFound.to_string(),
        Mvcc::Backend(_) | Mvcc::Corrupt(_) | Mvcc::ReservedTable(_) | Mvcc::Closed => {
            error.to_string()
        }
        known => format!("etcdserver: {known}"),
    }
}

/// The status etcd's gRPC server gives where tonic refused a call to `path` by itself
/// with `refused`, or `None` if tonic's answer stands.
pub(crate) fn grpc_refusal(refused: &Status, path: &str) -> Option<Status> {
    match refused.code() {
        Code::OutOfRange => {
            let sizes = refused
                .message()
                .strip_prefix("Error, decoded message length too large: found ")?
                .strip_suffix(" bytes")?;
            let (size, limit) = sizes.split_once(" bytes, the limit is: ")?;
            Some(Status::resource_exhausted(format!(
                "grpc: received message larger than max ({size} vs. {limit})"
            )))
        }
        // A served service without the method: tonic's generated server says nothing.
        Code::Unimplemented if refused.message().is_empty() => Some(match split_method(path) {
            Some((service, method)) if !service.contains('/') => {
                Status::unimplemented(format!("unknown method {method} for service {service}"))
            }
            _ => unknown_service(path),
        }),
        _ => None,
    }
}

/// etcd's answer to a call to `path` when no service is served under it.
pub(crate) fn unknown_service(path: &str) -> Status {
    match split_method(path) {
        Some((service, _)) => Status::unimplemented(format!("unknown service {service}")),
        None => Status::resource_exhausted(format!("malformed method name: {path:?}")),
    }
}

/// `/service/method` as grpc-go splits it: at the last `/`.
fn split_method(path: &str) -> Option<(&str, &str)> {
    path.strip_prefix('/').unwrap_or(path).rsplit_once('/')
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxetcd_mvcc::Error as Mvcc;

    fn wire(error: impl Into<ServerError>) -> (Code, String) {
        let status = status(error);
        (status.code(), status.message().to_string())
    }

    #[test]
    fn wire_codes_and_messages_are_etcds() {
        let cases: Vec<(ServerError, Code, &str)> = vec![
            (
                Mvcc::Compacted.into(),
                Code::OutOfRange,
                "etcdserver: mvcc: required revision has been compacted",
            ),
            (
                Mvcc::FutureRev.into(),
                Code::OutOfRange,
                "etcdserver: mvcc: required revision is a future revision",
            ),
            (Mvcc::EmptyKey.into(), Code::InvalidArgument, "etcdserver: key is not provided"),
            (
                Mvcc::DuplicateKey.into(),
                Code::InvalidArgument,
                "etcdserver: duplicate key given in txn request",
            ),
            (
                Mvcc::TooManyOps.into(),
                Code::InvalidArgument,
                "etcdserver: too many operations in txn request",
            ),
            (Mvcc::LeaseNotFound.into(), Code::NotFound, "etcdserver: requested lease not found"),
            (LeaseError::NotFound.into(), Code::NotFound, "etcdserver: requested lease not found"),
            (
                LeaseError::Exists.into(),
                Code::FailedPrecondition,
                "etcdserver: lease already exists",
            ),
            (LeaseError::TtlTooLarge.into(), Code::OutOfRange, "etcdserver: too large lease TTL"),
            (ServerError::Timeout, Code::Unavailable, "etcdserver: request timed out"),
            (ServerError::DeadlineExceeded, Code::Unknown, "context deadline exceeded"),
            (ServerError::NoLeader, Code::Unavailable, "etcdserver: no leader"),
            (ServerError::LeaderChanged, Code::Unavailable, "etcdserver: leader changed"),
            (ServerError::Stopped, Code::Unavailable, "etcdserver: server stopped"),
            (
                ServerError::TooManyRequests,
                Code::ResourceExhausted,
                "etcdserver: too many requests",
            ),
            (
                ServerError::NoSpace,
                Code::ResourceExhausted,
                "etcdserver: mvcc: database space exceeded",
            ),
            (ServerError::Corrupt, Code::DataLoss, "etcdserver: corrupt cluster"),
            (
                ServerError::RequestTooLarge,
                Code::InvalidArgument,
                "etcdserver: request is too large",
            ),
            (ServerError::MemberNotFound, Code::NotFound, "etcdserver: member not found"),
        ];
        for (error, code, message) in cases {
            assert_eq!(wire(error.clone()), (code, message.to_string()), "{error:?}");
        }
    }

    #[test]
    fn grpc_refusals_are_worded_as_etcds_grpc_server_words_them() {
        let wire = |status: Option<Status>| status.map(|s| (s.code(), s.message().to_string()));
        let too_large = Status::out_of_range(
            "Error, decoded message length too large: found 2200010 bytes, the limit is: 2097152 bytes",
        );
        assert_eq!(
            wire(grpc_refusal(&too_large, "/etcdserverpb.KV/Put")),
            Some((
                Code::ResourceExhausted,
                "grpc: received message larger than max (2200010 vs. 2097152)".into()
            ))
        );
        let no_method = Status::unimplemented("");
        assert_eq!(
            wire(grpc_refusal(&no_method, "/etcdserverpb.KV/Nope")),
            Some((Code::Unimplemented, "unknown method Nope for service etcdserverpb.KV".into()))
        );
        assert_eq!(
            wire(grpc_refusal(&no_method, "/etcdserverpb.KV/a/b")),
            Some((Code::Unimplemented, "unknown service etcdserverpb.KV/a".into()))
        );
        // The server's own refusals stand.
        let named = Status::unimplemented("oxetcd: MoveLeader is not implemented yet");
        assert!(grpc_refusal(&named, "/etcdserverpb.Maintenance/MoveLeader").is_none());
        assert!(
            grpc_refusal(
                &Status::out_of_range("etcdserver: mvcc: required revision is a future revision"),
                "/etcdserverpb.KV/Range"
            )
            .is_none()
        );

        let wire = |s: Status| (s.code(), s.message().to_string());
        assert_eq!(
            wire(unknown_service("/etcdserverpb.Auth/Authenticate")),
            (Code::Unimplemented, "unknown service etcdserverpb.Auth".into())
        );
        assert_eq!(
            wire(unknown_service("/nothing")),
            (Code::ResourceExhausted, r#"malformed method name: "/nothing""#.into())
        );
    }
}
