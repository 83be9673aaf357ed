//! The client-certificate verifier of a listener: the CA chain (rustls' WebPKI verifier,
//! or a trusted CA certificate presented as the client's own, as Go accepts: `anchor.rs`),
//! then etcd's allowed CN or host name, inside the handshake. A refused certificate is
//! answered with a `bad_certificate` alert, as Go answers etcd's `VerifyPeerCertificate`
//! failures: the dialing member logs `remote error: tls: bad certificate`, the words etcd's
//! tests and operators look for.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};

use crate::anchor::{Purpose, TrustedCerts};
use crate::check::CertNames;

/// Which client certificates a listener accepts beyond a valid chain.
#[derive(Debug, Clone, Default)]
pub(crate) struct AllowedNames {
    /// `--peer-cert-allowed-cn`: the subject CN must be exactly this.
    pub cn: Option<String>,
    /// `--client-cert-allowed-hostname` / `--peer-cert-allowed-hostname`: the certificate
    /// must be valid for this host name.
    pub hostname: Option<String>,
}

impl AllowedNames {
    fn allow(&self, names: &CertNames) -> bool {
        self.cn.as_ref().is_none_or(|cn| names.common_name.as_deref() == Some(cn.as_str()))
            && self.hostname.as_ref().is_none_or(|host| names.valid_for(host))
    }
}

/// The error a client's handshake fails with when [`EtcdClientVerifier`] refused its
/// certificate's names.
const REFUSED_NAMES: CertificateError = CertificateError::NotValidForName;

/// Whether a failed server handshake is the allowed-names refusal (the chain verifier
/// never checks a client certificate's names, so this error can only come from ours).
pub(crate) fn refused_names(handshake: &std::io::Error) -> bool {
    matches!(
        handshake.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()),
        Some(rustls::Error::InvalidCertificate(e)) if *e == REFUSED_NAMES
    )
}

/// A chain verifier followed by the allowed-names check.
#[derive(Debug)]
pub(crate) struct EtcdClientVerifier {
    pub chain: Arc<dyn ClientCertVerifier>,
    /// The trusted CA file's certificates: one of them presented as the client's own
    /// certificate is accepted (`anchor.rs`).
    pub trusted: TrustedCerts,
    pub allowed: AllowedNames,
}

impl ClientCertVerifier for EtcdClientVerifier {
    fn offer_client_auth(&self) -> bool {
        self.chain.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.chain.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.chain.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = match self.chain.verify_client_cert(end_entity, intermediates, now) {
            Ok(verified) => verified,
            Err(e) => {
                self.trusted.rescue(e, end_entity, now, Purpose::ClientAuth)?;
                ClientCertVerified::assertion()
            }
        };
        if self.allowed.allow(&CertNames::of(end_entity)) {
            Ok(verified)
        } else {
            // The alert rustls sends for this is `bad_certificate`, Go's for the same refusal.
            Err(rustls::Error::InvalidCertificate(REFUSED_NAMES))
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

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.chain.supported_verify_schemes()
    }
}
