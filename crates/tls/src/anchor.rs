//! A trusted CA certificate presented as a peer's own certificate.
//!
//! etcd users run with one self-signed CA certificate as `--cert-file` *and*
//! `--trusted-ca-file`, presented by the server and by the clients alike (etcd's own e2e
//! tests do, with `CommonName-root.crt`, for CN-based auth). Go's `crypto/x509` accepts it:
//! a leaf that is itself in the root pool is trusted as it is. rustls-webpki refuses any
//! certificate with `basicConstraints CA:TRUE` as an end-entity (`CaUsedAsEndEntity`).
//!
//! [`TrustedCerts::rescue`] accepts such a certificate again, and only when webpki's
//! refusal was `CaUsedAsEndEntity` **and** the presented certificate is byte for byte one
//! of the certificates of the trusted CA file. That is safe: the certificate is explicitly
//! trusted, so the path is the anchor alone and there is no signature or issuer to check
//! (webpki checks none on an anchor either); the peer still proves it holds the key, by the
//! handshake signature the verifiers check with the certificate's key as for any leaf.
//! Everything else webpki checks of a leaf is still checked:
//! - webpki reports `CaUsedAsEndEntity` only after the checks it makes first (its
//!   distrusted keys, the validity period) have passed; any other refusal is kept as it is;
//! - what webpki checks after the basic constraints and would apply to this path is checked
//!   here: the validity period again (cheap, and independent of webpki's order) and the
//!   extended key usage, which must list the purpose when present (webpki's rule; Go's also
//!   accepts `anyExtendedKeyUsage`, which we do not);
//! - the callers go on with their own checks: the server name (client side), the allowed
//!   CN or host name, the CRL and the peer SANs (listener side).
//!
//! Not supported: a `CA:TRUE` leaf that is not itself trusted but *chains* to a trusted CA.
//! Go accepts that too; webpki offers no way to validate a path whose leaf is a CA (its
//! role check is on every path it builds), so accepting it would mean validating the path
//! here (signatures, name constraints, path lengths, key usages of each issuer): a second,
//! unaudited path validator, which is how verification gets weakened. Such a setup is rare,
//! and the workaround is to add that certificate to the trusted CA file.

use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::{CertificateError, OtherError};
use x509_parser::time::ASN1Time;

/// What the peer's certificate is used for: the extended key usage it must allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// A client certificate (`id-kp-clientAuth`), checked by a listener.
    ClientAuth,
    /// A server certificate (`id-kp-serverAuth`), checked when dialing.
    ServerAuth,
}

/// The certificates of a trusted CA file, as they are in the file (DER).
#[derive(Debug, Clone, Default)]
pub(crate) struct TrustedCerts(Vec<CertificateDer<'static>>);

impl TrustedCerts {
    pub(crate) fn new(certs: Vec<CertificateDer<'static>>) -> TrustedCerts {
        TrustedCerts(certs)
    }

    /// Given the error the chain verifier refused `end_entity` with, accepts the certificate
    /// if the only fault webpki found is that a trusted CA certificate is presented as the
    /// leaf (see the module's documentation); otherwise returns the error, or the first
    /// check that failed here. The caller still checks names.
    pub(crate) fn rescue(
        &self,
        error: rustls::Error,
        end_entity: &CertificateDer<'_>,
        now: UnixTime,
        purpose: Purpose,
    ) -> Result<(), rustls::Error> {
        if !ca_used_as_end_entity(&error) || !self.contains(end_entity) {
            return Err(error);
        }
        check_leaf(end_entity, now, purpose).map_err(rustls::Error::InvalidCertificate)
    }

    fn contains(&self, cert: &CertificateDer<'_>) -> bool {
        self.0.iter().any(|trusted| trusted.as_ref() == cert.as_ref())
    }
}

/// Whether rustls' WebPKI verifiers refused the certificate with webpki's
/// `CaUsedAsEndEntity` (which rustls passes on as an `OtherError`). Should rustls move to
/// another rustls-webpki than ours, the type no longer matches and nothing is rescued: the
/// tests of this case then fail, rather than verification getting any looser.
fn ca_used_as_end_entity(error: &rustls::Error) -> bool {
    matches!(
        error,
        rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(e)))
            if matches!(e.downcast_ref::<webpki::Error>(), Some(webpki::Error::CaUsedAsEndEntity))
    )
}

/// The checks webpki would still make of a leaf that is its own trust anchor: the validity
/// period at `now` and the extended key usage.
fn check_leaf(der: &[u8], now: UnixTime, purpose: Purpose) -> Result<(), CertificateError> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|_| CertificateError::BadEncoding)?;
    let now = i64::try_from(now.as_secs())
        .ok()
        .and_then(|secs| ASN1Time::from_timestamp(secs).ok())
        .ok_or(CertificateError::BadEncoding)?;
    let validity = cert.validity();
    if now < validity.not_before {
        return Err(CertificateError::NotValidYet);
    }
    if now > validity.not_after {
        return Err(CertificateError::Expired);
    }
    match cert.extended_key_usage().map_err(|_| CertificateError::BadEncoding)? {
        None => Ok(()),
        Some(eku) => {
            let listed = match purpose {
                Purpose::ClientAuth => eku.value.client_auth,
                Purpose::ServerAuth => eku.value.server_auth,
            };
            if listed { Ok(()) } else { Err(CertificateError::InvalidPurpose) }
        }
    }
}
