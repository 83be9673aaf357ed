//! Reading etcd's PEM files: certificate chains, private keys, CA bundles and CRLs.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use crate::anchor::TrustedCerts;
use crate::error::TlsError;

/// Reads a whole file, naming it in the error.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Io { path: path.to_owned(), source })
}

/// The certificates of a PEM file, in order (leaf first for a chain).
pub(crate) fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadPem { path: path.to_owned(), reason: e.to_string() })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { path: path.to_owned() });
    }
    Ok(certs)
}

/// The first private key of a PEM file (PKCS#8, PKCS#1 or SEC1, as Go accepts).
pub(crate) fn key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoKey { path: path.to_owned() },
        e => TlsError::BadPem { path: path.to_owned(), reason: e.to_string() },
    })
}

/// Loads a certificate chain and its key, checking that they belong together.
pub(crate) fn certified_key(
    cert: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = certs(cert)?;
    let key = key(key_path)?;
    match CertifiedKey::from_der(chain, key, provider) {
        Ok(ck) => Ok(Arc::new(ck)),
        Err(rustls::Error::InconsistentKeys(_)) => {
            Err(TlsError::KeyMismatch { cert: cert.to_owned(), key: key_path.to_owned() })
        }
        Err(e) => Err(TlsError::BadPem { path: key_path.to_owned(), reason: e.to_string() }),
    }
}

/// The roots of a CA bundle, and its certificates as they are in the file (to recognise
/// one presented as a peer's own certificate); every certificate must be usable as a root.
pub(crate) fn roots(path: &Path) -> Result<(RootCertStore, TrustedCerts), TlsError> {
    let certs = certs(path).map_err(|e| match e {
        TlsError::Io { .. } => e,
        other => TlsError::BadCa { path: path.to_owned(), reason: other.to_string() },
    })?;
    let mut store = RootCertStore::empty();
    for cert in &certs {
        store
            .add(cert.clone())
            .map_err(|e| TlsError::BadCa { path: path.to_owned(), reason: e.to_string() })?;
    }
    Ok((store, TrustedCerts::new(certs)))
}

/// The serial numbers a CRL (PEM or DER, as Go's `x509.ParseCRL` accepts) revokes, as
/// big-endian magnitudes without leading zeros (the form [`serial_key`] gives).
pub(crate) fn revoked_serials(path: &Path) -> Result<HashSet<Vec<u8>>, TlsError> {
    let bytes = read(path)?;
    let bad = |reason: String| TlsError::BadCrl { path: path.to_owned(), reason };
    let ders: Vec<Vec<u8>> =
        match CertificateRevocationListDer::pem_slice_iter(&bytes).collect::<Result<Vec<_>, _>>() {
            Ok(list) if !list.is_empty() => list.into_iter().map(|d| d.to_vec()).collect(),
            Ok(_) => vec![bytes.clone()],
            Err(e) => return Err(bad(e.to_string())),
        };
    let mut serials = HashSet::new();
    for der in &ders {
        let (_, crl) = x509_parser::parse_x509_crl(der).map_err(|e| bad(e.to_string()))?;
        for revoked in crl.iter_revoked_certificates() {
            serials.insert(serial_key(revoked.raw_serial()));
        }
    }
    Ok(serials)
}

/// A DER serial number (two's complement) as the magnitude Go's `big.Int.Bytes()` gives.
pub(crate) fn serial_key(raw: &[u8]) -> Vec<u8> {
    let start = raw.iter().position(|b| *b != 0).unwrap_or(raw.len());
    raw[start..].to_vec()
}
