//! etcd's TLS flags for one side ([`TlsInfo`]) and the settings shared by both sides
//! ([`TlsOptions`]).

use std::path::PathBuf;

/// etcd's TLS settings for one listener side: the client side (`--cert-file`,
/// `--key-file`, …) or the peer side (`--peer-cert-file`, …). All empty means plaintext.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsInfo {
    /// `--cert-file` / `--peer-cert-file`: PEM certificate chain served (and, on the peer
    /// side, presented as the client certificate when dialing other members).
    pub cert_file: Option<PathBuf>,
    /// `--key-file` / `--peer-key-file`: PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
    /// `--trusted-ca-file` / `--peer-trusted-ca-file`: PEM CA bundle that client (or peer)
    /// certificates must chain to; on the peer side also the roots for dialing peers. As in
    /// etcd 3.4, setting it makes a client certificate mandatory even without
    /// `client_cert_auth`.
    pub trusted_ca_file: Option<PathBuf>,
    /// `--client-cert-auth` / `--peer-client-cert-auth`: require a verified client
    /// certificate (needs `trusted_ca_file`: the system roots are not used).
    pub client_cert_auth: bool,
    /// `--client-crl-file` / `--peer-crl-file`: PEM or DER CRL; a client whose certificate
    /// chain holds a revoked serial is refused after the handshake. Re-read when it changes.
    pub crl_file: Option<PathBuf>,
    /// `--peer-cert-allowed-cn` (peer side only in etcd 3.4): the verified client
    /// certificate's CN must equal this.
    pub allowed_cn: Option<String>,
    /// `--client-cert-allowed-hostname` / `--peer-cert-allowed-hostname`: the verified client
    /// certificate must be valid for this host name.
    pub allowed_hostname: Option<String>,
    /// `--auto-tls` / `--peer-auto-tls`: with no `cert_file`, serve a self-signed
    /// certificate generated into the data dir. As in etcd, it then replaces this side's
    /// other settings (CA, client cert auth, CRL, allowed CN/hostname), and dialing with it
    /// does not verify the server.
    pub auto_tls: bool,
    /// `--experimental-peer-skip-client-san-verification` (peer side): do not check that a
    /// connecting peer's certificate names its source address.
    pub skip_client_san_verification: bool,
}

impl TlsInfo {
    /// Whether any TLS is configured on this side (a certificate or auto-TLS).
    pub fn is_enabled(&self) -> bool {
        self.cert_file.is_some() || self.auto_tls
    }
}

/// Settings common to both sides, as etcd applies them to every TLS configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// `--cipher-suites`: etcd's (Go's) cipher-suite names, e.g.
    /// `TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256`; empty means the library's defaults. As in Go,
    /// the list governs TLS 1.2; TLS 1.3 keeps its suites unless the list names some.
    /// Suites rustls does not implement (CBC, RC4, 3DES, RSA key exchange) are an error.
    pub cipher_suites: Vec<String>,
    /// `--tls-min-version` (etcd 3.5): `TLS1.2` or `TLS1.3`; `None` is TLS 1.2.
    pub min_version: Option<String>,
    /// `--tls-max-version` (etcd 3.5): `TLS1.2` or `TLS1.3`; `None` is the highest.
    pub max_version: Option<String>,
    /// `--self-signed-cert-validity`: years an auto-TLS certificate is valid (etcd: 1).
    pub self_signed_cert_validity_years: u32,
}

impl Default for TlsOptions {
    fn default() -> Self {
        TlsOptions {
            cipher_suites: Vec::new(),
            min_version: None,
            max_version: None,
            self_signed_cert_validity_years: 1,
        }
    }
}
