//! Picking up rewritten files without a restart.
//!
//! etcd re-reads the certificate and key on every handshake. We stat them instead (mtime and
//! length) and parse only when they changed: [`CertKeyFiles`] serves as rustls' server
//! certificate resolver and as its client certificate resolver. A pair that fails to load
//! (e.g. the certificate rewritten but not yet the key) is logged once and the previous pair
//! keeps being served; the next change is tried again.
//!
//! The CRL is checked after the handshake, as etcd does, against [`CrlFile`]'s list of revoked
//! serials, re-read when the file changes. A CRL that can no longer be read or parsed refuses
//! every client certificate (etcd fails the same way: it reads the file per connection).
//!
//! The CA bundle is read once, when the configuration is built, as in etcd 3.4.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use rustls::SignatureScheme;
use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::error::TlsError;
use crate::pem;

/// What tells us a file changed: its modification time and length (None: cannot stat).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp(Option<(SystemTime, u64)>);

impl Stamp {
    fn of(path: &Path) -> Stamp {
        Stamp(std::fs::metadata(path).ok().and_then(|m| Some((m.modified().ok()?, m.len()))))
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves a consistent value (it is only ever replaced
    // whole), so poisoning is no reason to stop serving.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A certificate file and its key file, reloaded when either changes.
#[derive(Debug)]
pub(crate) struct CertKeyFiles {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    state: Mutex<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    stamps: (Stamp, Stamp),
    current: Arc<CertifiedKey>,
}

impl CertKeyFiles {
    /// Loads the pair now; a failure here is a configuration error.
    pub(crate) fn load(
        cert: &Path,
        key: &Path,
        provider: Arc<CryptoProvider>,
    ) -> Result<CertKeyFiles, TlsError> {
        let stamps = (Stamp::of(cert), Stamp::of(key));
        let current = pem::certified_key(cert, key, &provider)?;
        Ok(CertKeyFiles {
            cert: cert.to_owned(),
            key: key.to_owned(),
            provider,
            state: Mutex::new(Loaded { stamps, current }),
        })
    }

    /// The pair to serve now: reloaded if the files changed since the last look.
    pub(crate) fn current(&self) -> Arc<CertifiedKey> {
        let stamps = (Stamp::of(&self.cert), Stamp::of(&self.key));
        let mut state = lock(&self.state);
        if state.stamps != stamps {
            state.stamps = stamps;
            match pem::certified_key(&self.cert, &self.key, &self.provider) {
                Ok(new) => {
                    tracing::info!(
                        cert_file = %self.cert.display(),
                        key_file = %self.key.display(),
                        "reloaded TLS certificate"
                    );
                    state.current = new;
                }
                Err(error) => tracing::warn!(
                    cert_file = %self.cert.display(),
                    key_file = %self.key.display(),
                    %error,
                    "failed to reload TLS certificate; serving the previous one"
                ),
            }
        }
        state.current.clone()
    }
}

impl ResolvesServerCert for CertKeyFiles {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

impl ResolvesClientCert for CertKeyFiles {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// A CRL file's revoked serial numbers, re-read when the file changes.
#[derive(Debug)]
pub(crate) struct CrlFile {
    path: PathBuf,
    state: Mutex<CrlState>,
}

#[derive(Debug)]
struct CrlState {
    stamp: Stamp,
    /// The revoked serials, or why the file is unusable now.
    revoked: Result<Arc<HashSet<Vec<u8>>>, String>,
}

impl CrlFile {
    /// Loads the CRL now; a failure here is a configuration error.
    pub(crate) fn load(path: &Path) -> Result<CrlFile, TlsError> {
        let stamp = Stamp::of(path);
        let revoked = pem::revoked_serials(path)?;
        Ok(CrlFile {
            path: path.to_owned(),
            state: Mutex::new(CrlState { stamp, revoked: Ok(Arc::new(revoked)) }),
        })
    }

    fn revoked(&self) -> Result<Arc<HashSet<Vec<u8>>>, String> {
        let stamp = Stamp::of(&self.path);
        let mut state = lock(&self.state);
        if state.stamp != stamp {
            state.stamp = stamp;
            state.revoked = match pem::revoked_serials(&self.path) {
                Ok(set) => {
                    tracing::info!(crl_file = %self.path.display(), revoked = set.len(), "reloaded CRL");
                    Ok(Arc::new(set))
                }
                Err(error) => {
                    tracing::warn!(%error, "failed to reload CRL; refusing client certificates until it is fixed");
                    Err(error.to_string())
                }
            };
        }
        state.revoked.clone()
    }

    /// Refuses the chain if any of its certificates is revoked (etcd checks every certificate
    /// the client sent, by serial number only).
    pub(crate) fn check(&self, chain: &[CertificateDer<'_>]) -> Result<(), TlsError> {
        let revoked = self
            .revoked()
            .map_err(|reason| TlsError::BadCrl { path: self.path.clone(), reason })?;
        for cert in chain {
            let Ok((_, parsed)) = x509_parser::parse_x509_certificate(cert) else {
                continue;
            };
            let serial = pem::serial_key(parsed.raw_serial());
            if revoked.contains(&serial) {
                let hex: String = serial.iter().map(|b| format!("{b:02x}")).collect();
                return Err(TlsError::Revoked(hex));
            }
        }
        Ok(())
    }
}
