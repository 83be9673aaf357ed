//! [`TlsError`]: why a TLS configuration could not be built or a connection was refused.

use std::path::PathBuf;

/// Why a TLS configuration could not be built, or why an accepted connection was refused.
///
/// Messages name the file and the problem; where etcd (Go's `crypto/tls`) has a message of its
/// own for the same fault, ours reads the same.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read (or written, for auto-TLS).
    #[error("open {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// etcd's check that a TLS side has both files.
    #[error("KeyFile and CertFile must both be present[key: {key}, cert: {cert}]")]
    CertAndKeyRequired {
        /// `--key-file` as given (empty if missing).
        key: String,
        /// `--cert-file` as given (empty if missing).
        cert: String,
    },
    /// A certificate file holds no usable PEM certificate.
    #[error("{path}: tls: failed to find any PEM data in certificate input")]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// A key file holds no usable PEM private key.
    #[error("{path}: tls: failed to find any PEM data in key input")]
    NoKey {
        /// The file.
        path: PathBuf,
    },
    /// A certificate or key file could not be parsed or used.
    #[error("{path}: {reason}")]
    BadPem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The private key is not the one of the certificate.
    #[error("tls: private key does not match public key (cert {cert}, key {key})")]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// The trusted CA file is unusable.
    #[error("trusted CA file {path}: {reason}")]
    BadCa {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The CRL file is unusable.
    #[error("CRL file {path}: {reason}")]
    BadCrl {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A cipher suite name neither Go nor rustls knows (etcd's message).
    #[error("unexpected TLS cipher suite {0:?}")]
    UnknownCipherSuite(String),
    /// A cipher suite Go knows but rustls deliberately does not implement.
    #[error(
        "TLS cipher suite {0:?} is not supported: rustls does not implement it (no CBC, RC4, 3DES or RSA key exchange)"
    )]
    UnsupportedCipherSuite(String),
    /// `--tls-min-version` / `--tls-max-version` names no version we serve.
    #[error("{flag}: unsupported TLS version {value:?} (use TLS1.2 or TLS1.3{extra})")]
    BadVersion {
        /// The flag.
        flag: &'static str,
        /// The value given.
        value: String,
        /// Why an older version is refused.
        extra: &'static str,
    },
    /// The version range or the cipher suites leave nothing to negotiate.
    #[error("{0}")]
    BadVersionRange(String),
    /// etcd's rule that the two client-certificate checks exclude each other.
    #[error(
        "AllowedCN and AllowedHostname are mutually exclusive (cn={cn:?}, hostname={hostname:?})"
    )]
    AllowedCnAndHostname {
        /// `--peer-cert-allowed-cn`.
        cn: String,
        /// `--*-cert-allowed-hostname`.
        hostname: String,
    },
    /// Client certificates are required but there is no CA to verify them against.
    #[error(
        "client certificate authentication needs a trusted CA file (--trusted-ca-file / --peer-trusted-ca-file): the system roots are not used"
    )]
    ClientAuthWithoutCa,
    /// Dialing with TLS needs something to verify the server against.
    #[error(
        "verifying servers needs a trusted CA file (--peer-trusted-ca-file) or auto-TLS: the system roots are not used"
    )]
    NoRootsToVerifyServers,
    /// Generating the auto-TLS certificate failed.
    #[error("auto TLS in {dir}: {reason}")]
    AutoTls {
        /// The fixtures directory.
        dir: PathBuf,
        /// What failed.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("tls config: {0}")]
    Config(#[from] rustls::Error),
    /// The TLS handshake failed (including an I/O error during it).
    #[error("tls handshake: {0}")]
    Handshake(#[source] std::io::Error),
    /// The handshake did not finish in time.
    #[error("tls handshake: timed out after {0:?}")]
    HandshakeTimeout(std::time::Duration),
    /// A certificate of the client's chain is listed in the CRL (etcd's message).
    #[error("transport: certificate serial {0} revoked")]
    Revoked(String),
    /// The client certificate fails the allowed-CN or allowed-hostname check (etcd's
    /// message, which etcd's tests wait for).
    #[error("client certificate authentication failed")]
    ClientCertNotAllowed,
    /// A certificate that must have an empty subject CN has one (etcd's `EmptyCN` check on
    /// the gRPC proxy's `--cert`; etcd's message).
    #[error("cert has non empty Common Name ({0})")]
    NonEmptyCommonName(String),
    /// The client certificate's SANs do not cover the address it connects from.
    #[error("{0}")]
    SanMismatch(String),
}

/// An error and its sources on one line, with a TLS alert from the other side in Go's
/// words (`remote error: tls: bad certificate`): etcd logs those words, and operators and
/// etcd's own tests look for them.
pub fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = String::new();
    let mut next = Some(error);
    while let Some(e) = next {
        if !text.is_empty() {
            text.push_str(": ");
        }
        if let Some(alert) = received_alert(e) {
            text.push_str("remote error: tls: ");
            text.push_str(alert);
            // What follows is the same error again, in rustls' words.
            break;
        }
        text.push_str(&e.to_string());
        next = e.source();
    }
    text
}

/// Go's words for the TLS alert `error` reports having received, if any. tokio-rustls
/// reports rustls' errors inside an `io::Error`; HTTP/2 keeps only their text (h2 stores
/// an I/O error as its kind and message), so the text is compared too.
fn received_alert(error: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    let received = error
        .downcast_ref::<rustls::Error>()
        .or_else(|| error.downcast_ref::<std::io::Error>()?.get_ref()?.downcast_ref());
    if let Some(rustls::Error::AlertReceived(alert)) = received {
        return GO_ALERTS.iter().find(|(a, _)| a == alert).map(|(_, words)| *words);
    }
    let text = error.to_string();
    GO_ALERTS
        .iter()
        .find(|(alert, _)| text == rustls::Error::AlertReceived(*alert).to_string())
        .map(|(_, words)| *words)
}

/// Go's `crypto/tls` words for the alerts a peer may send.
const GO_ALERTS: &[(rustls::AlertDescription, &str)] = {
    use rustls::AlertDescription as A;
    &[
        (A::CloseNotify, "close notify"),
        (A::UnexpectedMessage, "unexpected message"),
        (A::BadRecordMac, "bad record MAC"),
        (A::RecordOverflow, "record overflow"),
        (A::HandshakeFailure, "handshake failure"),
        (A::BadCertificate, "bad certificate"),
        (A::UnsupportedCertificate, "unsupported certificate"),
        (A::CertificateRevoked, "revoked certificate"),
        (A::CertificateExpired, "expired certificate"),
        (A::CertificateUnknown, "unknown certificate"),
        (A::IllegalParameter, "illegal parameter"),
        (A::UnknownCA, "unknown certificate authority"),
        (A::AccessDenied, "access denied"),
        (A::DecodeError, "error decoding message"),
        (A::DecryptError, "error decrypting message"),
        (A::ProtocolVersion, "protocol version not supported"),
        (A::InsufficientSecurity, "insufficient security level"),
        (A::InternalError, "internal error"),
        (A::UserCanceled, "user canceled"),
        (A::MissingExtension, "missing extension"),
        (A::UnsupportedExtension, "unsupported extension"),
        (A::UnrecognisedName, "unrecognized name"),
        (A::CertificateRequired, "certificate required"),
        (A::NoApplicationProtocol, "no application protocol"),
    ]
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_are_described_in_go_words_even_as_bare_text() {
        let alert = rustls::Error::AlertReceived(rustls::AlertDescription::BadCertificate);
        let typed = std::io::Error::new(std::io::ErrorKind::InvalidData, alert.clone());
        assert_eq!(describe(&typed), "remote error: tls: bad certificate");
        // What h2 keeps of an I/O error: its kind and text.
        let text_only = std::io::Error::other(alert.to_string());
        assert_eq!(describe(&text_only), "remote error: tls: bad certificate");
        let other = std::io::Error::other("connection reset");
        assert_eq!(describe(&other), "connection reset");
    }
}
