//! The TLS flags to a client TLS configuration, built by oxetcd-tls's [`ClientTls`] (the
//! same code the server uses to dial its peers).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use oxetcd_tls::{ClientTls, TlsInfo, TlsOptions};

use crate::args::TlsArgs;
use crate::error::BenchError;

/// The TLS configuration the flags ask for, or `None` without TLS flags.
///
/// - `--cacert`: servers are verified against the CA bundle (their certificate must be
///   valid for the endpoint's host). System roots are not loaded, so verifying needs it.
/// - `--cert`/`--key`: presented to servers that ask for a client certificate.
/// - `--insecure-skip-tls-verify`: the server's certificate is not verified (signatures in
///   the handshake still are). This is `ClientTls`'s auto-TLS mode, which presents a
///   throwaway self-signed client certificate (generated into a temporary directory that is
///   removed at once); it therefore cannot be combined with `--cert`/`--key`, and it
///   replaces `--cacert`.
pub fn client_tls(args: &TlsArgs) -> Result<Option<ClientTls>, BenchError> {
    if !args.enabled() {
        return Ok(None);
    }
    let usage = |m: &str| Err(BenchError::Usage(m.into()));
    match (&args.cert, &args.key) {
        (Some(_), None) => return usage("--cert needs --key"),
        (None, Some(_)) => return usage("--key needs --cert"),
        _ => {}
    }
    if args.insecure_skip_tls_verify && args.cert.is_some() {
        return usage(
            "--insecure-skip-tls-verify cannot be combined with --cert/--key \
             (a client certificate is only presented with verification: use --cacert)",
        );
    }
    if !args.insecure_skip_tls_verify && args.cacert.is_none() {
        return usage(
            "TLS needs --cacert (system roots are not loaded) or --insecure-skip-tls-verify",
        );
    }
    let info = TlsInfo {
        cert_file: args.cert.clone(),
        key_file: args.key.clone(),
        trusted_ca_file: if args.insecure_skip_tls_verify { None } else { args.cacert.clone() },
        auto_tls: args.insecure_skip_tls_verify,
        ..TlsInfo::default()
    };
    let scratch = Scratch::new();
    let tls = ClientTls::new(&info, &TlsOptions::default(), &scratch.0)
        .map_err(|e| BenchError::Setup(format!("TLS: {}", oxetcd_tls::describe(&e))))?;
    Ok(Some(tls))
}

/// The directory `ClientTls` writes the throwaway certificate to under
/// `--insecure-skip-tls-verify` (it is kept in memory once loaded); removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    /// A directory name of its own (process id and a counter).
    fn new() -> Scratch {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("oxetcd-bench-tls-{}-{n}", std::process::id()));
        // A leftover of an earlier process with the same id would be reused as is.
        let _ = std::fs::remove_dir_all(&dir);
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(cacert: Option<&str>, cert: Option<&str>, key: Option<&str>, skip: bool) -> TlsArgs {
        TlsArgs {
            cacert: cacert.map(PathBuf::from),
            cert: cert.map(PathBuf::from),
            key: key.map(PathBuf::from),
            insecure_skip_tls_verify: skip,
        }
    }

    fn usage(a: &TlsArgs) -> String {
        match client_tls(a) {
            Err(BenchError::Usage(m)) => m,
            other => panic!("expected a usage error, got {other:?}"),
        }
    }

    #[test]
    fn no_flags_no_tls() {
        assert!(client_tls(&TlsArgs::default()).unwrap().is_none());
    }

    #[test]
    fn skip_verify_needs_no_files_and_leaves_none_behind() {
        let tls = client_tls(&args(None, None, None, true)).unwrap().unwrap();
        assert_eq!(tls.config().alpn_protocols, [b"h2".to_vec()]);
        let prefix = format!("oxetcd-bench-tls-{}-", std::process::id());
        let left = std::fs::read_dir(std::env::temp_dir())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with(&prefix))
            .count();
        assert_eq!(left, 0, "a scratch directory was left behind");
        // --cacert is replaced, not read.
        assert!(client_tls(&args(Some("/nonexistent/ca.crt"), None, None, true)).is_ok());
    }

    #[test]
    fn inconsistent_flags_are_usage_errors() {
        assert!(usage(&args(Some("ca"), Some("c"), None, false)).contains("--cert needs --key"));
        assert!(usage(&args(Some("ca"), None, Some("k"), false)).contains("--key needs --cert"));
        assert!(usage(&args(None, Some("c"), Some("k"), true)).contains("cannot be combined"));
        assert!(usage(&args(None, Some("c"), Some("k"), false)).contains("--cacert"));
    }

    #[test]
    fn unreadable_ca_names_the_file() {
        let Err(BenchError::Setup(m)) =
            client_tls(&args(Some("/nonexistent/ca.crt"), None, None, false))
        else {
            panic!("expected a setup error")
        };
        assert!(m.contains("/nonexistent/ca.crt"), "{m}");
    }
}
