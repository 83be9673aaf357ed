//! etcdctl's exit codes and `Error: …` lines, and how the client's errors read in them.

use oxetcd_client::Error as ClientError;
use tonic::Code;

/// etcdctl's exit codes (its `cobrautl` constants).
pub mod exit {
    pub const SUCCESS: i32 = 0;
    pub const ERROR: i32 = 1;
    pub const BAD_CONNECTION: i32 = 2;
    pub const INVALID_INPUT: i32 = 3;
    pub const BAD_FEATURE: i32 = 4;
    pub const INTERRUPTED: i32 = 5;
    /// Reserved by etcdctl for I/O failures; no command here exits with it yet.
    #[allow(dead_code)]
    pub const IO: i32 = 6;
    pub const BAD_ARGS: i32 = 128;
}

/// Why the command stopped: the exit code, and the text of its `Error: …` line (none
/// where etcdctl exits without one, having said what it had to already).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CtlError {
    pub code: i32,
    pub message: Option<String>,
}

impl CtlError {
    pub fn new(code: i32, message: impl Into<String>) -> CtlError {
        CtlError { code, message: Some(message.into()) }
    }

    pub fn bad_args(message: impl Into<String>) -> CtlError {
        CtlError::new(exit::BAD_ARGS, message)
    }

    pub fn error(message: impl Into<String>) -> CtlError {
        CtlError::new(exit::ERROR, message)
    }

    /// Exit with `code` and print nothing more.
    pub fn silent(code: i32) -> CtlError {
        CtlError { code, message: None }
    }

    /// A client error, as etcdctl prints it, with `code`.
    pub fn client(code: i32, err: &ClientError) -> CtlError {
        CtlError::new(code, describe(err))
    }

    /// A command etcdctl has that oxetcdctl does not have yet.
    pub fn not_built(what: &str) -> CtlError {
        CtlError::new(exit::BAD_FEATURE, format!("{what} is not implemented in oxetcdctl yet"))
    }
}

pub type CtlResult<T = ()> = Result<T, CtlError>;

/// The text clientv3 gives an error: etcd's own message for etcd's errors, Go gRPC's
/// `rpc error: …` for other statuses, and `context deadline exceeded` when the
/// command's time ran out (which is how clientv3 ends retries against endpoints that do
/// not answer).
pub fn describe(err: &ClientError) -> String {
    match err {
        ClientError::Etcd { status, .. } => status.message().to_string(),
        ClientError::Grpc { status } => match status.code() {
            Code::DeadlineExceeded => "context deadline exceeded".to_string(),
            Code::Unavailable if status.message().is_empty() || is_transport(status) => {
                "context deadline exceeded".to_string()
            }
            // A connection the server's TLS or HTTP/2 layer broke: clientv3 keeps
            // retrying until the command's time runs out.
            Code::Unknown | Code::Internal | Code::Cancelled
                if broken_connection(status.message()) =>
            {
                "context deadline exceeded".to_string()
            }
            Code::Cancelled => "context canceled".to_string(),
            _ => oxetcd_client::go_status_text(status),
        },
        ClientError::Timeout | ClientError::Unreachable { .. } => {
            "context deadline exceeded".to_string()
        }
        other => other.to_string(),
    }
}

/// Whether a status' text is the client transport's, about a broken connection.
fn broken_connection(message: &str) -> bool {
    ["transport error", "h2 protocol error", "operation was canceled", "connection"]
        .iter()
        .any(|text| message.contains(text))
}

/// Whether an `Unavailable` status was made by the transport (no server said it).
fn is_transport(status: &tonic::Status) -> bool {
    !status.message().starts_with("etcdserver:")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_read_as_etcd_wrote_them() {
        let err =
            ClientError::from(tonic::Status::not_found("etcdserver: requested lease not found"));
        assert_eq!(describe(&err), "etcdserver: requested lease not found");
        let err = ClientError::from(tonic::Status::unimplemented("unknown service x"));
        assert_eq!(describe(&err), "rpc error: code = Unimplemented desc = unknown service x");
        assert_eq!(describe(&ClientError::Timeout), "context deadline exceeded");
    }
}
