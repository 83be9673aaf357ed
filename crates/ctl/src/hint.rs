//! Hints on the errors people meet most (no endpoint reachable, TLS on one side only,
//! auth required or refused), written after etcdctl's `Error: …` line when stderr is a
//! terminal. The error line, stdout and the exit code stay etcdctl's, and scripts (whose
//! stderr is a pipe or a file) see nothing more.
//!
//! The failing calls are seen where they fail (the client's errors, before they are
//! turned into etcdctl's texts, which lose the cause: `context deadline exceeded` reads
//! the same for a stopped server and a TLS mismatch), and the last cause is kept for the
//! end of the command.

use std::io::IsTerminal;
use std::sync::Mutex;

use oxetcd_client::{Error, EtcdErrorKind};
use tonic::Code;

/// What most likely went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// No endpoint accepted a connection.
    Unreachable,
    /// The connection broke during or right after the TLS handshake: TLS on one side only,
    /// or a certificate the other side refused.
    Tls,
    /// The cluster has auth enabled and no user was given.
    AuthRequired,
    /// The user or password was refused.
    AuthFailed,
    /// The user lacks a permission for the call.
    PermissionDenied,
}

/// The last failed call's cause, whether its client was set up for TLS, and the
/// endpoints it used.
struct Failure {
    cause: Cause,
    tls: bool,
    endpoints: Vec<String>,
}

static LAST_FAILURE: Mutex<Option<Failure>> = Mutex::new(None);

/// Notes the cause of `err` from a call to `endpoints`, if it is a common one. `tls`
/// says whether the client was set up for TLS (a broken connection means something else
/// with and without).
pub fn record(err: &Error, tls: bool, endpoints: &[String]) {
    if let Some(cause) = classify(err, tls) {
        let failure = Failure { cause, tls, endpoints: endpoints.to_vec() };
        *LAST_FAILURE.lock().unwrap_or_else(|e| e.into_inner()) = Some(failure);
    }
}

/// Words in the transport's texts about TLS (rustls' and the TLS layer's own).
const TLS_WORDS: &[&str] =
    &["tls", "certificate", "handshake", "InvalidContentType", "corrupt message", "alert"];

fn mentions_tls(text: &str) -> bool {
    let lower = text.to_lowercase();
    TLS_WORDS.iter().any(|word| lower.contains(&word.to_lowercase()))
}

pub fn classify(err: &Error, tls: bool) -> Option<Cause> {
    match err {
        Error::Unreachable { last_error, .. } => {
            Some(if mentions_tls(last_error) { Cause::Tls } else { Cause::Unreachable })
        }
        Error::Etcd { kind, .. } => match kind {
            EtcdErrorKind::UserEmpty | EtcdErrorKind::InvalidAuthToken => Some(Cause::AuthRequired),
            EtcdErrorKind::AuthFailed => Some(Cause::AuthFailed),
            EtcdErrorKind::PermissionDenied => Some(Cause::PermissionDenied),
            _ => None,
        },
        Error::Grpc { status } => {
            let transport = matches!(
                status.code(),
                Code::Unavailable | Code::Unknown | Code::Internal | Code::Cancelled
            );
            if !transport {
                return None;
            }
            if mentions_tls(status.message()) {
                return Some(Cause::Tls);
            }
            // A plaintext client's HTTP/2 preface read by a TLS server (or the other way
            // round) ends in a connection closed before any answer.
            let broken = ["h2 protocol error", "connection", "transport error", "frame"]
                .iter()
                .any(|text| status.message().contains(text));
            (broken && !tls).then_some(Cause::Tls)
        }
        _ => None,
    }
}

/// The hint for `cause`; `endpoints` are the ones the command used.
pub fn text(cause: Cause, tls: bool, endpoints: &[String]) -> String {
    let endpoints = endpoints.join(",");
    match cause {
        Cause::Unreachable => format!(
            "hint: no endpoint of {endpoints} accepted a connection: is etcd running there? \
             Check --endpoints (or ETCDCTL_ENDPOINTS) and --dial-timeout."
        ),
        Cause::Tls if tls => format!(
            "hint: the TLS connection to {endpoints} failed: if the server serves plaintext, \
             use http:// endpoints without --cacert/--cert/--key; otherwise check that \
             --cacert signed the server's certificate and that --cert/--key are accepted."
        ),
        Cause::Tls => format!(
            "hint: {endpoints} closed the plaintext connection: if the server serves TLS, \
             use https:// endpoints with --cacert (and --cert/--key for client certificate \
             auth)."
        ),
        Cause::AuthRequired => "hint: the cluster has authentication enabled: give \
             --user name[:password] (or ETCDCTL_USER)."
            .to_string(),
        Cause::AuthFailed => "hint: the user name or password was refused: check \
             --user name:password (or --user name --password p)."
            .to_string(),
        Cause::PermissionDenied => "hint: the user's roles do not grant this key range or \
             operation: see 'etcdctl user get <name> --detail' and 'role grant-permission'."
            .to_string(),
    }
}

/// Writes the hint for the last failed call on stderr, if stderr is a terminal.
pub fn print_on_tty() {
    if !std::io::stderr().is_terminal() {
        return;
    }
    if let Some(failure) = LAST_FAILURE.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
        let hint = text(failure.cause, failure.tls, &failure.endpoints);
        crate::output::stderr(&format!("{hint}\n"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_failures_are_recognized() {
        let unreachable = Error::Unreachable {
            endpoints: "127.0.0.1:1".into(),
            last_error: "connection refused".into(),
        };
        assert_eq!(classify(&unreachable, false), Some(Cause::Unreachable));
        let refused_cert = Error::Unreachable {
            endpoints: "127.0.0.1:1".into(),
            last_error: "invalid peer certificate: UnknownIssuer".into(),
        };
        assert_eq!(classify(&refused_cert, true), Some(Cause::Tls));
        let auth = Error::from(tonic::Status::invalid_argument("etcdserver: user name is empty"));
        assert_eq!(classify(&auth, false), Some(Cause::AuthRequired));
        let closed = Error::from(tonic::Status::unknown("h2 protocol error: connection reset"));
        assert_eq!(classify(&closed, false), Some(Cause::Tls));
        assert_eq!(classify(&closed, true), None);
        let not_found =
            Error::from(tonic::Status::not_found("etcdserver: requested lease not found"));
        assert_eq!(classify(&not_found, false), None);
    }

    #[test]
    fn hints_name_the_endpoints_and_the_flags() {
        let text = text(Cause::Tls, false, &["127.0.0.1:2379".to_string()]);
        assert!(text.starts_with("hint: 127.0.0.1:2379 closed"), "{text}");
        assert!(text.contains("--cacert"));
    }
}
