//! ECDSA P-521 with SHA-512 signature verification, which ring lacks, in pure Rust
//! (RustCrypto's `p521`).
//!
//! etcd 3.4's `--auto-tls`/`--peer-auto-tls` certificates are ECDSA P-521 keys signing with
//! SHA-512, and operators may run P-521 CAs. [`with_p521`] gives ring's list of verification
//! algorithms plus this one, so that the handshake signature of such a server or client
//! (TLS 1.2 and 1.3, including under auto-TLS where the chain is not verified) and P-521
//! certificate chains verify, and rustls offers `ecdsa_secp521r1_sha512` in its
//! `signature_algorithms`. Signing with P-521 is still not possible (our own keys are P-256).

use std::sync::OnceLock;

use p521::ecdsa::signature::Verifier;
use p521::ecdsa::{Signature, VerifyingKey};
use rustls::SignatureScheme;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{
    AlgorithmIdentifier, InvalidSignature, SignatureVerificationAlgorithm, alg_id,
};

/// ECDSA on P-521 with SHA-512: the key is the SEC1 point from the certificate's
/// SubjectPublicKeyInfo, the signature is DER (`ECDSA-Sig-Value`), as X.509 and TLS carry them.
#[derive(Debug)]
pub(crate) struct EcdsaP521Sha512;

/// The algorithm, as rustls and webpki take it.
pub(crate) static ECDSA_P521_SHA512: &dyn SignatureVerificationAlgorithm = &EcdsaP521Sha512;

impl SignatureVerificationAlgorithm for EcdsaP521Sha512 {
    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ECDSA_P521
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ECDSA_SHA512
    }

    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        let key = VerifyingKey::from_sec1_bytes(public_key).map_err(|_| InvalidSignature)?;
        let signature = Signature::from_der(signature).map_err(|_| InvalidSignature)?;
        // `Verifier::verify` hashes `message` with SHA-512 (the p521 wrapper's digest).
        key.verify(message, &signature).map_err(|_| InvalidSignature)
    }

    fn fips(&self) -> bool {
        false
    }
}

/// The TLS scheme's algorithms: a `'static` slice for the mapping.
static P521_ONLY: &[&dyn SignatureVerificationAlgorithm] = &[&EcdsaP521Sha512];

/// `base` plus ECDSA P-521/SHA-512, mapped from
/// `SignatureScheme::ECDSA_NISTP521_SHA512` right after P-384 (the mapping's order is the
/// preference order rustls advertises). The slices are leaked (see [`with_p521`]: once per process).
fn extend(base: WebPkiSupportedAlgorithms) -> WebPkiSupportedAlgorithms {
    let mut all = base.all.to_vec();
    let mut mapping = base.mapping.to_vec();
    if !mapping.iter().any(|(s, _)| *s == SignatureScheme::ECDSA_NISTP521_SHA512) {
        all.push(ECDSA_P521_SHA512);
        let at = mapping
            .iter()
            .position(|(s, _)| *s == SignatureScheme::ECDSA_NISTP384_SHA384)
            .map_or(mapping.len(), |i| i + 1);
        mapping.insert(at, (SignatureScheme::ECDSA_NISTP521_SHA512, P521_ONLY));
    }
    WebPkiSupportedAlgorithms { all: all.leak(), mapping: mapping.leak() }
}

/// `base` plus ECDSA P-521/SHA-512 (see the module docs). `base` is always ring's list: the
/// extended list is built from the first call's and kept for the process.
pub(crate) fn with_p521(base: WebPkiSupportedAlgorithms) -> WebPkiSupportedAlgorithms {
    static EXTENDED: OnceLock<WebPkiSupportedAlgorithms> = OnceLock::new();
    *EXTENDED.get_or_init(|| extend(base))
}

#[cfg(test)]
mod tests {
    use p521::ecdsa::signature::Signer;
    use p521::ecdsa::{DerSignature, SigningKey};

    use super::*;

    fn key() -> SigningKey {
        SigningKey::random(&mut p521::elliptic_curve::rand_core::OsRng)
    }

    fn public(key: &SigningKey) -> Vec<u8> {
        VerifyingKey::from(key).to_encoded_point(false).as_bytes().to_vec()
    }

    #[test]
    fn verifies_sha512_signatures_and_rejects_tampering() {
        let key = key();
        let message = b"etcd 3.4 auto-TLS handshake transcript";
        let signature: Signature = key.sign(message);
        let der: DerSignature = signature.to_der();
        let alg = ECDSA_P521_SHA512;
        alg.verify_signature(&public(&key), message, der.as_bytes()).unwrap();

        // (That the message is hashed with SHA-512 as X.509 and TLS mean it is shown by the
        // handshake tests: openssl signed their certificates with ecdsa-with-SHA512.)
        assert!(
            alg.verify_signature(
                &public(&key),
                b"etcd 3.4 auto-TLS handshake transcripT",
                der.as_bytes()
            )
            .is_err()
        );
        let mut bad = der.as_bytes().to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(alg.verify_signature(&public(&key), message, &bad).is_err());
        assert!(alg.verify_signature(&public(&self::key()), message, der.as_bytes()).is_err());
        // Raw (r||s) signatures and garbage keys are refused, not misread.
        assert!(alg.verify_signature(&public(&key), message, &signature.to_bytes()).is_err());
        assert!(alg.verify_signature(&[4; 133], message, der.as_bytes()).is_err());
    }

    #[test]
    fn ring_provider_maps_and_advertises_p521() {
        let provider = crate::cipher::ring_provider();
        let algs = provider.signature_verification_algorithms;
        let schemes = algs.supported_schemes();
        assert!(schemes.contains(&SignatureScheme::ECDSA_NISTP521_SHA512), "{schemes:?}");
        let p384 = schemes.iter().position(|s| *s == SignatureScheme::ECDSA_NISTP384_SHA384);
        let p521 = schemes.iter().position(|s| *s == SignatureScheme::ECDSA_NISTP521_SHA512);
        assert_eq!(p521, p384.map(|i| i + 1));
        assert!(algs.all.iter().any(|a| a.public_key_alg_id() == alg_id::ECDSA_P521));
        // ring's own algorithms are all still there, once.
        let ring = crate::cipher::ring_provider().signature_verification_algorithms;
        assert_eq!(ring.all.len(), algs.all.len());
        #[allow(deprecated)]
        let plain = rustls::crypto::ring::default_provider().signature_verification_algorithms;
        assert_eq!(plain.all.len() + 1, algs.all.len());
        assert_eq!(plain.mapping.len() + 1, algs.mapping.len());
    }
}
