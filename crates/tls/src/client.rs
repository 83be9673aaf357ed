//! [`ClientTls`]: dialing other members over TLS with the peer side's flags (etcd's
//! `TLSInfo.ClientConfig`), and dialing our own listeners in tests.

use std::path::Path;
use std::sync::Arc;

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{WebPkiServerVerifier, verify_server_name};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;

use crate::anchor::{Purpose, TrustedCerts};
use crate::error::TlsError;
use crate::reload::CertKeyFiles;
use crate::server::{cert_and_key, effective};
use crate::{TlsInfo, TlsOptions, cipher, pem};

/// TLS for dialing: presents the side's certificate (reloaded when its files change) and
/// verifies servers against the trusted CA. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ClientTls {
    config: Arc<rustls::ClientConfig>,
}

impl ClientTls {
    /// Builds the dialing side from one side's flags, as etcd's peer transport does:
    /// `cert_file`/`key_file` (or the auto-TLS pair in `auto_tls_dir`, generated without SANs
    /// if the server side has not made it yet) are presented as the client certificate; the
    /// server is verified against `trusted_ca_file` (a server presenting one of its
    /// certificates as its own is accepted, as Go does: `anchor.rs`); under auto-TLS the
    /// server is not verified at all (etcd's InsecureSkipVerify; signatures are still
    /// checked).
    ///
    /// Errors: unreadable or mismatched cert/key, an unusable CA, bad cipher suites or
    /// versions, or nothing to verify servers against (no CA and no auto-TLS: the system
    /// roots etcd would use are not loaded).
    pub fn new(
        info: &TlsInfo,
        options: &TlsOptions,
        auto_tls_dir: &Path,
    ) -> Result<ClientTls, TlsError> {
        let eff = effective(info, options, auto_tls_dir, &[])?;
        let info = &eff.info;
        let protocols = cipher::protocols(options)?;
        let provider = protocols.provider.clone();
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&protocols.versions)?;
        let builder = if eff.self_signed {
            builder.dangerous().with_custom_certificate_verifier(Arc::new(SkipServerVerification(
                provider.clone(),
            )))
        } else if let Some(ca) = &info.trusted_ca_file {
            let (roots, trusted) = pem::roots(ca)?;
            let chain =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| TlsError::BadCa { path: ca.clone(), reason: e.to_string() })?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(EtcdServerVerifier { chain, trusted }))
        } else {
            return Err(TlsError::NoRootsToVerifyServers);
        };
        finish(builder, info, provider)
    }

    /// A client that presents `cert_file`/`key_file` (if given) and accepts any server
    /// certificate, still checking the handshake's signatures: etcdctl's
    /// `--insecure-skip-tls-verify` (Go's InsecureSkipVerify), which needs no CA.
    pub fn skip_server_verification(info: &TlsInfo) -> Result<ClientTls, TlsError> {
        let protocols = cipher::protocols(&TlsOptions::default())?;
        let provider = protocols.provider.clone();
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&protocols.versions)?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(SkipServerVerification(provider.clone())));
        finish(builder, info, provider)
    }

    /// A client's TLS from etcdctl's (or the gRPC proxy's) `--cacert`, `--cert`, `--key`
    /// and `--insecure-skip-tls-verify`: with `insecure_skip_verify`, any server certificate
    /// ([`ClientTls::skip_server_verification`]), otherwise servers verified against
    /// `info.trusted_ca_file` ([`ClientTls::new`] without auto-TLS).
    pub fn for_client(info: &TlsInfo, insecure_skip_verify: bool) -> Result<ClientTls, TlsError> {
        if insecure_skip_verify {
            ClientTls::skip_server_verification(info)
        } else {
            // Auto-TLS is off, so no directory for it is read.
            ClientTls::new(info, &TlsOptions::default(), Path::new(""))
        }
    }

    /// The rustls configuration, with ALPN "h2" (for a gRPC channel's connector).
    pub fn config(&self) -> Arc<rustls::ClientConfig> {
        self.config.clone()
    }

    /// Runs the TLS handshake over `io` for `host` (an IP address, possibly in brackets, or a
    /// DNS name; the server's certificate must be valid for it unless under auto-TLS).
    pub async fn connect<IO>(
        &self,
        host: &str,
        io: IO,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<IO>>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(bare.to_owned()).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("invalid TLS server name {host:?}: {e}"),
            )
        })?;
        TlsConnector::from(self.config.clone()).connect(name, io).await
    }
}

/// rustls' WebPKI verifier, except that a server presenting one of the trusted CA
/// certificates as its own is accepted (as Go does; `anchor.rs`), its names still checked
/// against the name dialed.
#[derive(Debug)]
struct EtcdServerVerifier {
    chain: Arc<WebPkiServerVerifier>,
    trusted: TrustedCerts,
}

impl ServerCertVerifier for EtcdServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.chain.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(verified) => Ok(verified),
            Err(e) => {
                self.trusted.rescue(e, end_entity, now, Purpose::ServerAuth)?;
                // What the WebPKI verifier checks after the chain: the name (its SANs; an IP
                // only against IP SANs, no CN fallback), exactly as for any server.
                verify_server_name(&ParsedCertificate::try_from(end_entity)?, server_name)?;
                Ok(ServerCertVerified::assertion())
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chain.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chain.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.chain.supported_verify_schemes()
    }

    fn requires_raw_public_keys(&self) -> bool {
        self.chain.requires_raw_public_keys()
    }

    fn root_hint_subjects(&self) -> Option<&[rustls::DistinguishedName]> {
        self.chain.root_hint_subjects()
    }
}

/// Completes a dialing configuration: the side's certificate presented (if it has one),
/// ALPN "h2".
fn finish(
    builder: rustls::ConfigBuilder<rustls::ClientConfig, rustls::client::WantsClientCert>,
    info: &TlsInfo,
    provider: Arc<CryptoProvider>,
) -> Result<ClientTls, TlsError> {
    let mut config = if info.cert_file.is_none() && info.key_file.is_none() {
        builder.with_no_client_auth()
    } else {
        let (cert, key) = cert_and_key(info)?;
        builder.with_client_cert_resolver(Arc::new(CertKeyFiles::load(cert, key, provider)?))
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(ClientTls { config: Arc::new(config) })
}

/// Accepts any server certificate but still checks the handshake signatures with it: what
/// Go's InsecureSkipVerify does, used for auto-TLS peers as etcd does.
#[derive(Debug)]
struct SkipServerVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for SkipServerVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
