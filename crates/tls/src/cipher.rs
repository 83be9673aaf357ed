//! `--cipher-suites`, `--tls-min-version` and `--tls-max-version`: from etcd's (Go's) names to
//! a rustls [`CryptoProvider`] and protocol versions.
//!
//! Go's `tls.Config.CipherSuites` governs TLS 1.0–1.2 only: TLS 1.3 stays on with all of its
//! suites whatever the list says. etcd 3.4 relies on that (its e2e
//! `TestV3CurlCipherSuitesMismatch` passes because the client cannot even set the 3DES suite
//! it asks for, not because the server refuses TLS 1.3), so we do the same: the listed TLS 1.2
//! suites, in the given order, and TLS 1.3 with its usual suites. Going beyond Go, naming
//! TLS 1.3 suites in the list restricts TLS 1.3 to those; a list with no TLS 1.2 suite turns
//! TLS 1.2 off (Go would fail every TLS 1.2 handshake for want of a common suite).

use std::sync::Arc;

use rustls::SupportedCipherSuite;
use rustls::SupportedProtocolVersion;
use rustls::crypto::CryptoProvider;
use rustls::crypto::ring::cipher_suite as cs;

use crate::TlsOptions;
use crate::error::TlsError;

/// Go's names for the suites rustls implements (with ring), including the two short
/// ChaCha20 names etcd's `tlsutil` accepts as aliases.
const SUPPORTED: &[(&str, SupportedCipherSuite)] = &[
    ("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256),
    ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256),
    ("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384),
    ("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384),
    (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    ("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305", cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256),
    (
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    ("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305", cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256),
    ("TLS_AES_128_GCM_SHA256", cs::TLS13_AES_128_GCM_SHA256),
    ("TLS_AES_256_GCM_SHA384", cs::TLS13_AES_256_GCM_SHA384),
    ("TLS_CHACHA20_POLY1305_SHA256", cs::TLS13_CHACHA20_POLY1305_SHA256),
];

/// Suites Go's `tls.CipherSuites()`/`InsecureCipherSuites()` name that rustls does not
/// implement: RSA key exchange, CBC, RC4 and 3DES.
const GO_ONLY: &[&str] = &[
    "TLS_RSA_WITH_RC4_128_SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
];

/// Maps one of etcd's cipher-suite names to the rustls suite.
pub fn cipher_suite(name: &str) -> Result<SupportedCipherSuite, TlsError> {
    if let Some((_, suite)) = SUPPORTED.iter().find(|(n, _)| *n == name) {
        return Ok(*suite);
    }
    if GO_ONLY.contains(&name) {
        return Err(TlsError::UnsupportedCipherSuite(name.to_owned()));
    }
    Err(TlsError::UnknownCipherSuite(name.to_owned()))
}

/// Maps `--tls-min-version`/`--tls-max-version` values (etcd 3.5's names) to a version.
fn version(flag: &'static str, value: &str) -> Result<&'static SupportedProtocolVersion, TlsError> {
    match value {
        "TLS1.2" => Ok(&rustls::version::TLS12),
        "TLS1.3" => Ok(&rustls::version::TLS13),
        "TLS1.0" | "TLS1.1" => Err(TlsError::BadVersion {
            flag,
            value: value.to_owned(),
            extra: "; rustls does not implement TLS 1.0 or 1.1",
        }),
        _ => Err(TlsError::BadVersion { flag, value: value.to_owned(), extra: "" }),
    }
}

/// ring's provider, the workspace's one crypto backend, with ECDSA P-521/SHA-512 added to its
/// signature verification algorithms (`p521.rs`: ring has none, and etcd 3.4's auto-TLS
/// certificates are P-521). Every configuration and verifier of the crate is built from it.
/// rustls 0.23.48 deprecates ring's provider for lacking post-quantum key exchange (aws-lc-rs
/// has it but needs a C/cmake build, which the workspace avoids); Go 1.x as etcd 3.4 ships it
/// has none either.
#[allow(deprecated)]
pub(crate) fn ring_provider() -> CryptoProvider {
    let mut provider = rustls::crypto::ring::default_provider();
    provider.signature_verification_algorithms =
        crate::p521::with_p521(provider.signature_verification_algorithms);
    provider
}

/// What the options allow: the provider (ring with the chosen suites) and the versions.
#[derive(Debug, Clone)]
pub(crate) struct Protocols {
    pub provider: Arc<CryptoProvider>,
    pub versions: Vec<&'static SupportedProtocolVersion>,
}

/// Builds the provider and versions for `options` (see the module docs for the policy).
pub(crate) fn protocols(options: &TlsOptions) -> Result<Protocols, TlsError> {
    let mut provider = ring_provider();
    let mut tls12_on = true;
    if !options.cipher_suites.is_empty() {
        let mut tls12 = Vec::new();
        let mut tls13 = Vec::new();
        for name in &options.cipher_suites {
            let suite = cipher_suite(name)?;
            let list = match suite {
                SupportedCipherSuite::Tls12(_) => &mut tls12,
                SupportedCipherSuite::Tls13(_) => &mut tls13,
            };
            if !list.iter().any(|s: &SupportedCipherSuite| s.suite() == suite.suite()) {
                list.push(suite);
            }
        }
        if tls13.is_empty() {
            tls13 = provider
                .cipher_suites
                .iter()
                .filter(|s| matches!(s, SupportedCipherSuite::Tls13(_)))
                .copied()
                .collect();
        }
        tls12_on = !tls12.is_empty();
        tls12.extend(tls13);
        provider.cipher_suites = tls12;
    }
    let min = match &options.min_version {
        Some(v) => version("--tls-min-version", v)?,
        None => &rustls::version::TLS12,
    };
    let max = match &options.max_version {
        Some(v) => version("--tls-max-version", v)?,
        None => &rustls::version::TLS13,
    };
    let rank = |v: &SupportedProtocolVersion| u16::from(v.version);
    if rank(min) > rank(max) {
        return Err(TlsError::BadVersionRange(format!(
            "--tls-min-version {} is higher than --tls-max-version {}",
            options.min_version.as_deref().unwrap_or("TLS1.2"),
            options.max_version.as_deref().unwrap_or("TLS1.3"),
        )));
    }
    let versions: Vec<_> = [&rustls::version::TLS12, &rustls::version::TLS13]
        .into_iter()
        .filter(|v| rank(v) >= rank(min) && rank(v) <= rank(max))
        .filter(|v| tls12_on || v.version != rustls::ProtocolVersion::TLSv1_2)
        .collect();
    if versions.is_empty() {
        return Err(TlsError::BadVersionRange(
            "--cipher-suites names no TLS 1.2 suite but --tls-max-version is TLS1.2: no cipher suite left"
                .to_owned(),
        ));
    }
    Ok(Protocols { provider: Arc::new(provider), versions })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(suites: &[&str]) -> TlsOptions {
        TlsOptions {
            cipher_suites: suites.iter().map(|s| s.to_string()).collect(),
            ..TlsOptions::default()
        }
    }

    #[test]
    fn etcd_e2e_suite_list_parses() {
        let p = protocols(&opts(&[
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
        ]))
        .unwrap();
        let tls12 = p
            .provider
            .cipher_suites
            .iter()
            .filter(|s| matches!(s, SupportedCipherSuite::Tls12(_)))
            .count();
        assert_eq!(tls12, 6);
        // TLS 1.3 stays on with its suites, as in Go.
        assert_eq!(p.provider.cipher_suites.len(), 9);
        assert_eq!(p.versions.len(), 2);
        assert_eq!(
            p.provider.cipher_suites[0].suite(),
            rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
        );
    }

    #[test]
    fn unknown_and_unimplemented_names_are_refused() {
        let e = protocols(&opts(&["TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA"])).unwrap_err();
        assert!(matches!(e, TlsError::UnsupportedCipherSuite(_)), "{e}");
        assert!(e.to_string().contains("rustls does not implement"), "{e}");
        let e = protocols(&opts(&["TLS_BOGUS"])).unwrap_err();
        assert_eq!(e.to_string(), "unexpected TLS cipher suite \"TLS_BOGUS\"");
    }

    #[test]
    fn tls13_only_list_turns_tls12_off() {
        let p = protocols(&opts(&["TLS_AES_128_GCM_SHA256"])).unwrap();
        assert_eq!(p.versions.len(), 1);
        assert_eq!(p.provider.cipher_suites.len(), 1);
        let mut o = opts(&["TLS_AES_128_GCM_SHA256"]);
        o.max_version = Some("TLS1.2".into());
        assert!(matches!(protocols(&o), Err(TlsError::BadVersionRange(_))));
    }

    #[test]
    fn versions() {
        let mut o = TlsOptions::default();
        assert_eq!(protocols(&o).unwrap().versions.len(), 2);
        o.min_version = Some("TLS1.3".into());
        assert_eq!(protocols(&o).unwrap().versions.len(), 1);
        o.max_version = Some("TLS1.2".into());
        assert!(matches!(protocols(&o), Err(TlsError::BadVersionRange(_))));
        o.min_version = Some("TLS1.1".into());
        let e = protocols(&o).unwrap_err();
        assert!(e.to_string().contains("rustls does not implement TLS 1.0"), "{e}");
        o.min_version = Some("SSL3".into());
        assert!(matches!(protocols(&o), Err(TlsError::BadVersion { .. })));
    }
}
