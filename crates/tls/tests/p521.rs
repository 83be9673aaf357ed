//! ECDSA P-521/SHA-512 peers (etcd 3.4's auto-TLS certificates, P-521 CAs): full handshakes
//! in which our side verifies a P-521 handshake signature and certificate chain.
//!
//! ring cannot sign with P-521, so the peer here signs with a test-only rustls signing key
//! backed by RustCrypto's `p521`; the certificates are the OpenSSL-made fixtures in
//! `tests/fixtures/p521`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use oxetcd_tls::{ClientTls, ListenAddr, Listener, ServerTls, TlsInfo, TlsOptions};
use p521::pkcs8::DecodePrivateKey;
use rustls::client::ResolvesClientCert;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{SignatureAlgorithm, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_stream::StreamExt;

mod common;
use common::{STEP, ask};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/p521").join(name)
}

/// A rustls signing key for a P-521 private key: ECDSA with SHA-512, DER signatures.
struct P521Key(p521::ecdsa::SigningKey);

impl std::fmt::Debug for P521Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("P521Key")
    }
}

impl rustls::sign::SigningKey for P521Key {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn rustls::sign::Signer>> {
        offered
            .contains(&SignatureScheme::ECDSA_NISTP521_SHA512)
            .then(|| Box::new(P521Signer(self.0.clone())) as Box<dyn rustls::sign::Signer>)
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::ECDSA
    }
}

struct P521Signer(p521::ecdsa::SigningKey);

impl std::fmt::Debug for P521Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("P521Signer")
    }
}

impl rustls::sign::Signer for P521Signer {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        use p521::ecdsa::signature::Signer;
        let signature: p521::ecdsa::Signature = self
            .0
            .try_sign(message)
            .map_err(|e| rustls::Error::General(format!("P-521 signing: {e}")))?;
        Ok(signature.to_der().as_bytes().to_vec())
    }

    fn scheme(&self) -> SignatureScheme {
        SignatureScheme::ECDSA_NISTP521_SHA512
    }
}

/// The fixture leaf (signed by the P-521 CA) with its P-521 key.
fn p521_leaf() -> Arc<CertifiedKey> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(fixture("server.crt"))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let pem = std::fs::read_to_string(fixture("server.key")).unwrap();
    let secret = p521::SecretKey::from_pkcs8_pem(&pem).unwrap();
    let key = p521::ecdsa::SigningKey::from_bytes(&secret.to_bytes()).unwrap();
    Arc::new(CertifiedKey::new(certs, Arc::new(P521Key(key))))
}

#[derive(Debug)]
struct Always(Arc<CertifiedKey>);

impl ResolvesServerCert for Always {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

impl ResolvesClientCert for Always {
    fn resolve(&self, _: &[&[u8]], _: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

#[allow(deprecated)]
fn plain_ring() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A plain rustls server (not ours) presenting the P-521 leaf, limited to `version`; each
/// connection gets "p521 hello\n".
async fn p521_server(version: &'static rustls::SupportedProtocolVersion) -> SocketAddr {
    let config = rustls::ServerConfig::builder_with_provider(plain_ring())
        .with_protocol_versions(&[version])
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Always(p521_leaf())));
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                let _ = tls.write_all(b"p521 hello\n").await;
                let _ = tls.shutdown().await;
                let mut rest = Vec::new();
                let _ = tokio::time::timeout(STEP, tls.read_to_end(&mut rest)).await;
            });
        }
    });
    addr
}

fn versions() -> [(&'static rustls::SupportedProtocolVersion, &'static str); 2] {
    [(&rustls::version::TLS12, "TLS1.2"), (&rustls::version::TLS13, "TLS1.3")]
}

#[test]
fn p521_is_advertised() {
    let dir = tempfile::tempdir().unwrap();
    let info = TlsInfo { auto_tls: true, ..TlsInfo::default() };
    let client = ClientTls::new(&info, &TlsOptions::default(), dir.path()).unwrap();
    let schemes =
        client.config().crypto_provider().signature_verification_algorithms.supported_schemes();
    assert!(schemes.contains(&SignatureScheme::ECDSA_NISTP521_SHA512), "{schemes:?}");
}

/// Auto-TLS dialing (etcd's InsecureSkipVerify) a P-521 server, as an etcd 3.4
/// `--peer-auto-tls` member: the chain is skipped but the handshake signature is verified.
#[tokio::test]
async fn auto_tls_client_completes_handshake_with_p521_server() {
    for (version, name) in versions() {
        let addr = p521_server(version).await;
        let dir = tempfile::tempdir().unwrap();
        let info = TlsInfo { auto_tls: true, ..TlsInfo::default() };
        let options = TlsOptions {
            max_version: Some(name.into()),
            min_version: Some(name.into()),
            ..TlsOptions::default()
        };
        let client = ClientTls::new(&info, &options, dir.path()).unwrap();
        assert_eq!(ask(&client, addr).await.unwrap(), "p521 hello\n", "{name}");
    }
}

/// Dialing with a trusted P-521 CA: the P-521/SHA-512 chain and the handshake signature.
#[tokio::test]
async fn client_verifies_p521_chain() {
    for (version, name) in versions() {
        let addr = p521_server(version).await;
        let info = TlsInfo { trusted_ca_file: Some(fixture("ca.crt")), ..TlsInfo::default() };
        let options = TlsOptions {
            max_version: Some(name.into()),
            min_version: Some(name.into()),
            ..TlsOptions::default()
        };
        let client = ClientTls::new(&info, &options, Path::new("/nonexistent")).unwrap();
        assert_eq!(ask(&client, addr).await.unwrap(), "p521 hello\n", "{name}");
    }
    // The chain is really checked: a CA that did not sign the leaf is refused.
    let addr = p521_server(&rustls::version::TLS13).await;
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other-ca.crt");
    let ca = rcgen::CertificateParams::new(vec![]).unwrap();
    let ca = ca.self_signed(&rcgen::KeyPair::generate().unwrap()).unwrap();
    std::fs::write(&other, ca.pem()).unwrap();
    let info = TlsInfo { trusted_ca_file: Some(other), ..TlsInfo::default() };
    let client = ClientTls::new(&info, &TlsOptions::default(), dir.path()).unwrap();
    let e = ask(&client, addr).await.unwrap_err();
    assert!(e.contains("UnknownIssuer"), "{e}");
}

/// Our listener with a P-521 client CA: a client presenting a P-521 certificate (and
/// signing CertificateVerify with P-521) is accepted and identified.
#[tokio::test]
async fn server_verifies_p521_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (cert_file, key_file) = (dir.path().join("s.crt"), dir.path().join("s.key"));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    let info = TlsInfo {
        cert_file: Some(cert_file),
        key_file: Some(key_file),
        trusted_ca_file: Some(fixture("ca.crt")),
        client_cert_auth: true,
        ..TlsInfo::default()
    };
    for (version, name) in versions() {
        let options = TlsOptions {
            max_version: Some(name.into()),
            min_version: Some(name.into()),
            ..TlsOptions::default()
        };
        let tls = ServerTls::new(&info, &options, Path::new("/nonexistent"), &[]).unwrap();
        let listener =
            Listener::bind(&ListenAddr::Tcp("127.0.0.1:0".parse().unwrap()), false, Some(tls))
                .await
                .unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut incoming = Box::pin(listener.into_incoming());
            while let Some(conn) = incoming.next().await {
                let Ok(mut conn) = conn else { continue };
                let cn = conn.info().identity.as_ref().and_then(|i| i.common_name.clone());
                let _ = conn.write_all(format!("cn={}\n", cn.unwrap_or_default()).as_bytes()).await;
                let _ = conn.shutdown().await;
                let mut rest = Vec::new();
                let _ = tokio::time::timeout(STEP, conn.read_to_end(&mut rest)).await;
            }
        });

        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.der().clone()).unwrap();
        let config = rustls::ClientConfig::builder_with_provider(plain_ring())
            .with_protocol_versions(&[version])
            .unwrap()
            .with_root_certificates(roots)
            .with_client_cert_resolver(Arc::new(Always(p521_leaf())));
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let run = async {
            let tcp = TcpStream::connect(addr).await.unwrap();
            let name = ServerName::try_from("127.0.0.1").unwrap();
            let mut tls = connector.connect(name, tcp).await.unwrap();
            let mut out = String::new();
            tls.read_to_string(&mut out).await.unwrap();
            out
        };
        let out = tokio::time::timeout(STEP, run).await.expect("bounded step");
        assert_eq!(out, "cn=p521-member\n", "{name}");
    }
}
