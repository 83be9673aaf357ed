//! [`ServerTls`]: the TLS side of a client or peer listener (etcd's `TLSInfo.ServerConfig`
//! plus the checks of its TLS listener).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::server::WebPkiClientVerifier;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsAcceptor;

use crate::check::{self, CertNames};
use crate::cipher;
use crate::error::TlsError;
use crate::reload::{CertKeyFiles, CrlFile};
use crate::verifier::{self, AllowedNames, EtcdClientVerifier};
use crate::{TlsInfo, TlsOptions, auto, pem};

/// How long a client may take to finish the TLS handshake. etcd sets no bound of its own
/// (grpc-go's default is 120 s); 10 s is Go's `http.Transport` TLS handshake timeout, ample
/// for a member or client on a sane network, and it frees the slot of a client that stalls.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// ALPN protocols offered: etcd's server config offers "h2" for gRPC; "http/1.1" too, since
/// the client port also serves plain HTTP (`/health`, `/metrics`, the JSON gateway) and
/// rustls, unlike Go, refuses a client whose ALPN list has no protocol in common.
const SERVER_ALPN: &[&[u8]] = &[b"h2", b"http/1.1"];

/// Who the client proved to be, from its verified certificate.
#[derive(Clone, Debug, Default)]
pub struct PeerIdentity {
    /// The subject CN of the verified client certificate (what etcd's CN-based auth uses);
    /// None when the client sent no certificate or its subject has no CN.
    pub common_name: Option<String>,
}

/// A TLS server configuration built from one side's flags, with etcd's post-handshake checks.
/// Cheap to clone.
#[derive(Clone)]
pub struct ServerTls {
    inner: Arc<Inner>,
}

struct Inner {
    config: Arc<rustls::ServerConfig>,
    acceptor: TlsAcceptor,
    crl: Option<CrlFile>,
    check_san: bool,
    cert_file: PathBuf,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("cert_file", &self.inner.cert_file)
            .field("crl", &self.inner.crl.is_some())
            .field("check_san", &self.inner.check_san)
            .finish()
    }
}

/// One side's flags after auto-TLS: what the configuration is built from.
pub(crate) struct Effective {
    pub info: TlsInfo,
    /// Auto-TLS is in use: peers' certificates are not verified (etcd's InsecureSkipVerify).
    pub self_signed: bool,
}

/// Applies auto-TLS as etcd does: with `auto_tls` and no certificate, the side's settings are
/// *replaced* by the generated pair alone (etcd's `SelfCert` returns a fresh `TLSInfo`, so the
/// CA, client-cert-auth, CRL and allowed CN/hostname are dropped; we log that).
pub(crate) fn effective(
    info: &TlsInfo,
    options: &TlsOptions,
    auto_tls_dir: &Path,
    hosts: &[String],
) -> Result<Effective, TlsError> {
    if !info.auto_tls || info.cert_file.is_some() || info.key_file.is_some() {
        if info.auto_tls {
            tracing::warn!("ignoring auto TLS since certs given");
        }
        return Ok(Effective { info: info.clone(), self_signed: false });
    }
    let ignored = info.trusted_ca_file.is_some()
        || info.client_cert_auth
        || info.crl_file.is_some()
        || info.allowed_cn.is_some()
        || info.allowed_hostname.is_some();
    if ignored {
        tracing::warn!(
            "auto TLS replaces the trusted CA, client cert auth, CRL and allowed CN/hostname settings, as in etcd"
        );
    }
    let (cert, key) =
        auto::self_cert(auto_tls_dir, hosts, options.self_signed_cert_validity_years)?;
    Ok(Effective {
        info: TlsInfo {
            cert_file: Some(cert),
            key_file: Some(key),
            auto_tls: true,
            ..TlsInfo::default()
        },
        self_signed: true,
    })
}

/// The certificate and key paths, or etcd's error when one is missing.
pub(crate) fn cert_and_key(info: &TlsInfo) -> Result<(&Path, &Path), TlsError> {
    match (&info.cert_file, &info.key_file) {
        (Some(c), Some(k)) => Ok((c, k)),
        (c, k) => Err(TlsError::CertAndKeyRequired {
            key: k.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
            cert: c.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
        }),
    }
}

impl ServerTls {
    /// Builds the server side of a **client** listener from its flags.
    ///
    /// With `info.auto_tls` and no `cert_file`, a self-signed ECDSA P-256 certificate for
    /// `hosts` (the listen URLs' `host:port`s) is generated into `auto_tls_dir` (etcd:
    /// `<data-dir>/fixtures/client`, `cert.pem` and `key.pem`), or reused if both files exist.
    ///
    /// Client certificates: with `client_cert_auth` *or* a `trusted_ca_file`, every client
    /// must present a certificate that chains to the CA — etcd 3.4's `ServerConfig` asks
    /// `RequireAndVerifyClientCert` in both cases. `client_cert_auth` without a CA is an error
    /// (etcd would fall back on the system roots, which we do not load).
    ///
    /// Errors: missing, unreadable or mismatched cert/key, an unusable CA or CRL, an unknown
    /// or unimplemented cipher suite, bad min/max versions, both allowed CN and hostname.
    pub fn new(
        info: &TlsInfo,
        options: &TlsOptions,
        auto_tls_dir: &Path,
        hosts: &[String],
    ) -> Result<ServerTls, TlsError> {
        Self::build(info, options, auto_tls_dir, hosts, false)
    }

    /// Like [`ServerTls::new`], for a **peer** listener: additionally checks that a client
    /// certificate's SANs cover the address the peer connects from (etcd's `checkSAN` on
    /// peer listeners), unless `info.skip_client_san_verification`.
    pub fn new_peer(
        info: &TlsInfo,
        options: &TlsOptions,
        auto_tls_dir: &Path,
        hosts: &[String],
    ) -> Result<ServerTls, TlsError> {
        Self::build(info, options, auto_tls_dir, hosts, !info.skip_client_san_verification)
    }

    fn build(
        info: &TlsInfo,
        options: &TlsOptions,
        auto_tls_dir: &Path,
        hosts: &[String],
        check_san: bool,
    ) -> Result<ServerTls, TlsError> {
        let eff = effective(info, options, auto_tls_dir, hosts)?;
        let info = &eff.info;
        let (cert, key) = cert_and_key(info)?;
        if let (Some(cn), Some(hostname)) = (&info.allowed_cn, &info.allowed_hostname) {
            return Err(TlsError::AllowedCnAndHostname {
                cn: cn.clone(),
                hostname: hostname.clone(),
            });
        }
        let protocols = cipher::protocols(options)?;
        let resolver = Arc::new(CertKeyFiles::load(cert, key, protocols.provider.clone())?);
        let crl = info.crl_file.as_deref().map(CrlFile::load).transpose()?;
        let builder = rustls::ServerConfig::builder_with_provider(protocols.provider.clone())
            .with_protocol_versions(&protocols.versions)?;
        let builder = match (&info.trusted_ca_file, info.client_cert_auth) {
            (Some(ca), _) => {
                let (roots, trusted) = pem::roots(ca)?;
                let chain = WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    protocols.provider.clone(),
                )
                .build()
                .map_err(|e| TlsError::BadCa { path: ca.clone(), reason: e.to_string() })?;
                let allowed = AllowedNames {
                    cn: info.allowed_cn.clone(),
                    hostname: info.allowed_hostname.clone(),
                };
                builder.with_client_cert_verifier(Arc::new(EtcdClientVerifier {
                    chain,
                    trusted,
                    allowed,
                }))
            }
            (None, true) => return Err(TlsError::ClientAuthWithoutCa),
            (None, false) => builder.with_no_client_auth(),
        };
        let mut config = builder.with_cert_resolver(resolver);
        config.alpn_protocols = SERVER_ALPN.iter().map(|p| p.to_vec()).collect();
        let config = Arc::new(config);
        Ok(ServerTls {
            inner: Arc::new(Inner {
                acceptor: TlsAcceptor::from(config.clone()),
                config,
                crl,
                check_san,
                cert_file: cert.to_owned(),
            }),
        })
    }

    /// The rustls configuration (certificate resolver that reloads, client verifier, ALPN).
    pub fn config(&self) -> Arc<rustls::ServerConfig> {
        self.inner.config.clone()
    }

    /// The certificate file served (the generated one under auto-TLS).
    pub fn cert_file(&self) -> &Path {
        &self.inner.cert_file
    }

    /// Runs the TLS handshake on an accepted connection (bounded by [`HANDSHAKE_TIMEOUT`]),
    /// then etcd's checks on the client certificate, if one was presented: not revoked by
    /// the CRL (re-read when the file changes), the allowed CN or hostname, and on peer
    /// listeners that its SANs cover `remote`'s IP.
    pub async fn accept<IO>(
        &self,
        io: IO,
        remote: Option<SocketAddr>,
    ) -> Result<(tokio_rustls::server::TlsStream<IO>, PeerIdentity), TlsError>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let stream =
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, self.inner.acceptor.accept(io)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) if verifier::refused_names(&e) => {
                    return Err(TlsError::ClientCertNotAllowed);
                }
                Ok(Err(e)) => return Err(TlsError::Handshake(e)),
                Err(_) => return Err(TlsError::HandshakeTimeout(HANDSHAKE_TIMEOUT)),
            };
        let identity = self.check(stream.get_ref().1.peer_certificates(), remote).await?;
        Ok((stream, identity))
    }

    async fn check(
        &self,
        chain: Option<&[rustls::pki_types::CertificateDer<'static>]>,
        remote: Option<SocketAddr>,
    ) -> Result<PeerIdentity, TlsError> {
        let Some(chain) = chain.filter(|c| !c.is_empty()) else {
            // No client certificate: only possible when none was asked for, and then etcd
            // runs none of its checks either.
            return Ok(PeerIdentity::default());
        };
        if let Some(crl) = &self.inner.crl {
            crl.check(chain)?;
        }
        // The allowed CN and host name were checked in the handshake (`verifier.rs`).
        let names = CertNames::of(&chain[0]);
        if self.inner.check_san
            && let Some(remote) = remote
        {
            check::check_san(&names, remote.ip()).await?;
        }
        Ok(PeerIdentity { common_name: names.common_name })
    }
}
