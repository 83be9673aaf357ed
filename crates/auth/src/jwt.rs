//! JSON Web Tokens (etcd's `--auth-token=jwt,...`): signed tokens that carry the user and
//! the auth revision, so any member holding the public key can check them without a table.
//!
//! A token's claims are etcd's: `username`, `revision` (the auth revision at login) and
//! `exp` (unix seconds). Any member can check a token; only a member with the private key
//! (or, for HS* methods, the shared secret) can sign one: with only `pub-key`, a member is
//! verify-only, as in etcd.
//!
//! Keys are PEM files, read once by [`JwtTokens::new`]: RSA (PKCS#1 or PKCS#8), ECDSA P-256
//! and P-384 (SEC1 or PKCS#8), Ed25519 (PKCS#8); the public key may be a bare
//! `PUBLIC KEY` or a `CERTIFICATE` carrying it, as etcd's own e2e configuration uses. The
//! PEM and DER parsing is ours (x509-parser, already in the workspace for TLS, reads the
//! public keys and certificates; its ASN.1 layer unwraps PKCS#8) and ring checks the
//! private keys and derives their public halves: the JWT library only ever sees DER in
//! the forms ring takes.

use std::fmt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::rand::SystemRandom;
use ring::signature::{self, KeyPair};
use serde::{Deserialize, Serialize};
use x509_parser::asn1_rs::{FromDer, OctetString, Oid, ParseResult, Sequence};
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION,
    OID_SIG_ED25519,
};
use x509_parser::pem::Pem;
use x509_parser::prelude::{SubjectPublicKeyInfo, X509Certificate};
use x509_parser::public_key::PublicKey;

use crate::options::{INVALID_AUTH_OPTS, JwtOptions};
use crate::{AuthError, AuthInfo, DEFAULT_JWT_TTL};

/// etcd's `ErrMissingKey`: the method needs a key file that was not given (or is empty).
const MISSING_KEY: &str = "auth: missing key data";
/// etcd's `ErrKeyMismatch`: `pub-key` is not the public half of `priv-key`.
const KEY_MISMATCH: &str = "auth: public and private keys don't match";
/// RSA modulus sizes ring verifies (its `RSA_*_2048_8192_*` parameters). A smaller
/// public key would load and then reject every token, so it is refused at start.
const RSA_BITS: std::ops::RangeInclusive<usize> = 2048..=8192;
/// Length of an Ed25519 public key (RFC 8032).
const ED25519_PUBLIC_LEN: usize = 32;
/// The PEM block OpenSSL's `ecparam -genkey` writes before the key; skipped, where etcd
/// (reading only the first block) fails on such a file.
const EC_PARAMETERS_LABEL: &str = "EC PARAMETERS";
/// DER tags used to wrap a SEC1 key in PKCS#8.
const DER_INTEGER: u8 = 0x02;
const DER_OCTET_STRING: u8 = 0x04;
const DER_OID: u8 = 0x06;
const DER_SEQUENCE: u8 = 0x30;

/// A token's claims, as etcd writes them (same names, integer values).
#[derive(Serialize, Deserialize)]
struct Claims {
    /// Expiry, unix seconds: the token is valid strictly before it (RFC 7519).
    exp: u64,
    /// The auth revision the user logged in at.
    revision: u64,
    username: String,
}

/// The curve an ES* method signs on.
struct Curve {
    name: &'static str,
    oid: Oid<'static>,
    signing: &'static signature::EcdsaSigningAlgorithm,
    /// Length of an uncompressed point (`04 || x || y`), the only form ring verifies.
    point_len: usize,
}

/// The kind of key pair an asymmetric method needs.
enum KeyKind {
    Rsa,
    Ec(Curve),
    Ed25519,
}

impl KeyKind {
    /// The key kind `method` signs with; `None` for the HS* methods (a shared secret).
    fn of(method: Algorithm) -> Option<KeyKind> {
        match method {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => None,
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => Some(KeyKind::Rsa),
            Algorithm::ES256 => Some(KeyKind::Ec(Curve {
                name: "P-256",
                oid: OID_EC_P256,
                signing: &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                point_len: 65,
            })),
            Algorithm::ES384 => Some(KeyKind::Ec(Curve {
                name: "P-384",
                oid: OID_NIST_EC_P384,
                signing: &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
                point_len: 97,
            })),
            Algorithm::EdDSA => Some(KeyKind::Ed25519),
        }
    }

    /// What a key of this kind is called in errors.
    fn name(&self) -> String {
        match self {
            KeyKind::Rsa => "RSA".to_owned(),
            KeyKind::Ec(curve) => format!("ECDSA {}", curve.name),
            KeyKind::Ed25519 => "Ed25519".to_owned(),
        }
    }

    /// Loads a private key from the DER of its PEM block: the key in the form the JWT
    /// library signs with, and its public half in the form [`KeyKind::public_key`] gives.
    fn private_key(&self, der: &[u8]) -> Result<(EncodingKey, Vec<u8>), String> {
        match self {
            KeyKind::Rsa => {
                // The library signs from PKCS#1; a PKCS#8 file carries it inside.
                let pkcs1 = pkcs8_rsa_key(der).unwrap_or_else(|| der.to_vec());
                let pair = signature::RsaKeyPair::from_der(&pkcs1)
                    .map_err(|e| format!("not a usable RSA private key (PKCS#1 or PKCS#8): {e}"))?;
                let public = pair.public_key().as_ref().to_vec();
                Ok((EncodingKey::from_rsa_der(&pkcs1), public))
            }
            KeyKind::Ec(curve) => {
                // PKCS#8 as it is, else SEC1 (`EC PRIVATE KEY`, which etcd also reads)
                // wrapped in PKCS#8, the only form ring takes.
                let rng = SystemRandom::new();
                let sec1 = sec1_to_pkcs8(&curve.oid, der);
                [der, sec1.as_slice()]
                    .into_iter()
                    .find_map(|pkcs8| {
                        let pair =
                            signature::EcdsaKeyPair::from_pkcs8(curve.signing, pkcs8, &rng).ok()?;
                        Some((EncodingKey::from_ec_der(pkcs8), pair.public_key().as_ref().to_vec()))
                    })
                    .ok_or_else(|| {
                        format!("not a usable {} private key (SEC1 or PKCS#8)", self.name())
                    })
            }
            KeyKind::Ed25519 => {
                // The library signs with this same constructor.
                let pair = signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
                    .map_err(|e| format!("not an Ed25519 private key (PKCS#8): {e}"))?;
                Ok((EncodingKey::from_ed_der(der), pair.public_key().as_ref().to_vec()))
            }
        }
    }

    /// Reads a public key from the DER of its PEM block, a SubjectPublicKeyInfo or, as
    /// etcd's JWT library also accepts, a certificate: the RSAPublicKey DER (RSA), the
    /// uncompressed point (ECDSA) or the 32 key bytes (Ed25519), as ring verifies with.
    fn public_key(&self, der: &[u8]) -> Result<Vec<u8>, String> {
        if let Ok((_, spki)) = SubjectPublicKeyInfo::from_der(der) {
            return self.spki_key(&spki);
        }
        let (_, cert) = X509Certificate::from_der(der)
            .map_err(|_| "neither a public key nor a certificate".to_owned())?;
        self.spki_key(cert.public_key())
    }

    fn spki_key(&self, spki: &SubjectPublicKeyInfo<'_>) -> Result<Vec<u8>, String> {
        let wrong = || format!("not a valid {} public key", self.name());
        let algorithm = &spki.algorithm.algorithm;
        let key: &[u8] = spki.subject_public_key.data.as_ref();
        match self {
            KeyKind::Rsa => {
                let Ok(PublicKey::RSA(rsa)) = spki.parsed() else {
                    return Err(wrong());
                };
                if *algorithm != OID_PKCS1_RSAENCRYPTION {
                    return Err(wrong());
                }
                let bits = bit_len(rsa.modulus);
                if !RSA_BITS.contains(&bits) {
                    return Err(format!(
                        "a {bits}-bit RSA public key; {} to {} bits are supported",
                        RSA_BITS.start(),
                        RSA_BITS.end()
                    ));
                }
            }
            KeyKind::Ec(curve) => {
                let params = spki.algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok());
                if *algorithm != OID_KEY_TYPE_EC_PUBLIC_KEY || params.as_ref() != Some(&curve.oid) {
                    return Err(wrong());
                }
                if key.len() != curve.point_len || key.first() != Some(&0x04) {
                    return Err(format!(
                        "the {} public key is not an uncompressed point",
                        self.name()
                    ));
                }
            }
            KeyKind::Ed25519 => {
                if *algorithm != OID_SIG_ED25519 || key.len() != ED25519_PUBLIC_LEN {
                    return Err(wrong());
                }
            }
        }
        Ok(key.to_vec())
    }

    /// The verifying key for a public key as [`KeyKind::public_key`] gives it.
    fn decoding_key(&self, public: &[u8]) -> DecodingKey {
        match self {
            KeyKind::Rsa => DecodingKey::from_rsa_der(public),
            KeyKind::Ec(_) => DecodingKey::from_ec_der(public),
            KeyKind::Ed25519 => DecodingKey::from_ed_der(public),
        }
    }
}

/// The member's JWT signer and verifier (etcd's `tokenJWT`). Stateless: a token is valid
/// until its `exp`, whatever happens to its user meanwhile; a changed user or role is
/// caught by the auth revision the token carries, which the permission check compares
/// with the store's.
pub struct JwtTokens {
    method: Algorithm,
    /// `None` when the member only verifies (a public key and no private key).
    encoding: Option<EncodingKey>,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl fmt::Debug for JwtTokens {
    // Hand-written so that a key or secret never reaches a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtTokens")
            .field("method", &self.method)
            .field("ttl", &self.ttl)
            .field("verify_only", &self.is_verify_only())
            .finish_non_exhaustive()
    }
}

impl JwtTokens {
    /// Reads the key files `opts` names and checks them, as etcd does when it starts
    /// (its `NewTokenProvider`); an error means the member must not start.
    ///
    /// HS* methods use the bytes of `priv-key`, as they are, as the secret. The others
    /// need `priv-key`, `pub-key`, or both: with only `pub-key` the member verifies but
    /// cannot sign; with both, they must be one key pair (etcd's check for this never
    /// fires, so etcd silently verifies with the private key's half instead). An empty
    /// file counts as none, and a zero `ttl` as the default, as in etcd. Errors are
    /// etcd's texts (`auth: missing key data`, ...) or name the file and what is wrong
    /// with it.
    pub fn new(opts: &JwtOptions) -> Result<JwtTokens, String> {
        let method = opts.sign_method;
        // Both files are read whatever the method, as etcd does, so a wrong path fails
        // at start even where the file would not be used.
        let private = read_key_file("priv-key", opts.priv_key.as_deref())?;
        let public = read_key_file("pub-key", opts.pub_key.as_deref())?;
        let (encoding, decoding) = match KeyKind::of(method) {
            None => {
                let (_, secret) = private.ok_or_else(|| MISSING_KEY.to_owned())?;
                (Some(EncodingKey::from_secret(&secret)), DecodingKey::from_secret(&secret))
            }
            Some(kind) => {
                let private = private
                    .map(|(path, bytes)| {
                        pem_der(&bytes)
                            .and_then(|der| kind.private_key(&der))
                            .map_err(|e| key_error("priv-key", path, &e))
                    })
                    .transpose()?;
                let public = public
                    .map(|(path, bytes)| {
                        pem_der(&bytes)
                            .and_then(|der| kind.public_key(&der))
                            .map_err(|e| key_error("pub-key", path, &e))
                    })
                    .transpose()?;
                match (private, public) {
                    (None, None) => return Err(MISSING_KEY.to_owned()),
                    (Some((_, derived)), Some(given)) if derived != given => {
                        return Err(KEY_MISMATCH.to_owned());
                    }
                    (Some((encoding, derived)), _) => (Some(encoding), kind.decoding_key(&derived)),
                    (None, Some(given)) => (None, kind.decoding_key(&given)),
                }
            }
        };
        let mut validation = Validation::new(method);
        // `exp` is checked against the caller's `now` in `info`, not the library's clock;
        // no other claim is required or checked, as etcd checks none (it sets no `aud`).
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let ttl = if opts.ttl.is_zero() { DEFAULT_JWT_TTL } else { opts.ttl };
        Ok(JwtTokens { method, encoding, decoding, validation, ttl })
    }

    /// Signs a token for `user` at auth revision `revision`, valid until `now` plus the
    /// TTL (rounded down to a second, as etcd's `exp`). etcd signs when it applies the
    /// Authenticate entry, with the store's revision then and its wall clock.
    ///
    /// A verify-only member cannot sign: it answers [`AuthError::AuthFailed`] (etcd
    /// answers its own `auth: token signing attempted with verify-only key`, which it
    /// sends to clients with gRPC code Unknown).
    pub fn assign(&self, user: &str, revision: u64, now: SystemTime) -> Result<String, AuthError> {
        let key = self.encoding.as_ref().ok_or(AuthError::AuthFailed)?;
        let claims = Claims {
            exp: unix_time(now).saturating_add(self.ttl).as_secs(),
            revision,
            username: user.to_owned(),
        };
        // The key was checked by `new` with the same ring calls the library signs with,
        // so this fails only if the OS random source does.
        jsonwebtoken::encode(&Header::new(self.method), &claims, key)
            .map_err(|_| AuthError::AuthFailed)
    }

    /// Who a token names, and the auth revision it was signed at; `None` if it is not a
    /// token of ours: malformed, signed with another method or key, tampered with, or
    /// expired at `now` (valid strictly before `exp`, like the Go library etcd is built
    /// with here; the comparison is in whole seconds). A token without `exp` is refused
    /// (etcd's library would take it as never expiring; etcd never signs one).
    pub fn info(&self, token: &str, now: SystemTime) -> Option<AuthInfo> {
        let claims =
            jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).ok()?.claims;
        if unix_time(now).as_secs() >= claims.exp {
            return None;
        }
        Some(AuthInfo { user: claims.username, revision: claims.revision })
    }

    /// How long a new token is valid.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Whether the member only verifies tokens (it has a public key and no private key):
    /// logins through it fail.
    pub fn is_verify_only(&self) -> bool {
        self.encoding.is_none()
    }
}

/// Time since the unix epoch; a clock set before 1970 counts as the epoch.
fn unix_time(now: SystemTime) -> Duration {
    now.duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// The bytes of a key file, with its path; `None` for no path or an empty file (etcd
/// treats both as no key).
fn read_key_file<'p>(
    option: &str,
    path: Option<&'p Path>,
) -> Result<Option<(&'p Path, Vec<u8>)>, String> {
    let Some(path) = path else {
        return Ok(None);
    };
    let bytes = std::fs::read(path).map_err(|e| {
        format!("{INVALID_AUTH_OPTS}: cannot read {option} {}: {e}", path.display())
    })?;
    Ok((!bytes.is_empty()).then_some((path, bytes)))
}

/// The DER of a key file's first PEM block, skipping an `EC PARAMETERS` block.
fn pem_der(bytes: &[u8]) -> Result<Vec<u8>, String> {
    Pem::iter_from_buffer(bytes)
        .map_while(Result::ok)
        .find(|pem| pem.label != EC_PARAMETERS_LABEL)
        .map(|pem| pem.contents)
        .ok_or_else(|| "no PEM block found".to_owned())
}

/// `auth: bad <option> <path>: <why>`.
fn key_error(option: &str, path: &Path, why: &str) -> String {
    format!("auth: bad {option} {}: {why}", path.display())
}

/// The PKCS#1 `RSAPrivateKey` inside a PKCS#8 `PrivateKeyInfo` (RFC 5958) of an RSA key;
/// `None` for anything else.
fn pkcs8_rsa_key(der: &[u8]) -> Option<Vec<u8>> {
    let parsed: ParseResult<'_, _> = Sequence::from_der_and_then(der, |info| {
        let (rest, _version) = u32::from_der(info)?;
        let (rest, algorithm) = Sequence::from_der_and_then(rest, Oid::from_der)?;
        let (rest, key) = OctetString::from_der(rest)?;
        Ok((rest, (algorithm, key)))
    });
    let (_, (algorithm, key)) = parsed.ok()?;
    (algorithm == OID_PKCS1_RSAENCRYPTION).then(|| key.as_cow().to_vec())
}

/// A SEC1 `ECPrivateKey` (RFC 5915) wrapped in a PKCS#8 `PrivateKeyInfo` for `curve`.
/// ring checks the result: input that is not a SEC1 key of that curve fails there.
fn sec1_to_pkcs8(curve: &Oid<'_>, sec1: &[u8]) -> Vec<u8> {
    let algorithm = [
        der_tlv(DER_OID, OID_KEY_TYPE_EC_PUBLIC_KEY.as_bytes()),
        der_tlv(DER_OID, curve.as_bytes()),
    ]
    .concat();
    let info = [
        der_tlv(DER_INTEGER, &[0]),
        der_tlv(DER_SEQUENCE, &algorithm),
        der_tlv(DER_OCTET_STRING, sec1),
    ]
    .concat();
    der_tlv(DER_SEQUENCE, &info)
}

/// One DER tag-length-value.
fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    match u8::try_from(len) {
        Ok(short) if short < 0x80 => out.push(short),
        _ => {
            // Long form: 0x80 | the count of length bytes, then the length big-endian.
            let bytes = len.to_be_bytes();
            let skip = bytes.iter().take_while(|b| **b == 0).count();
            out.push(0x80 | (bytes.len() - skip) as u8);
            out.extend_from_slice(&bytes[skip..]);
        }
    }
    out.extend_from_slice(content);
    out
}

/// The bit length of a big-endian unsigned integer.
fn bit_len(be: &[u8]) -> usize {
    match be.iter().position(|b| *b != 0) {
        Some(first) => (be.len() - first) * 8 - be[first].leading_zeros() as usize,
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_lengths() {
        assert_eq!(der_tlv(0x04, &[7; 3]), [0x04, 3, 7, 7, 7]);
        assert_eq!(der_tlv(0x04, &[0; 0x7f])[..2], [0x04, 0x7f]);
        assert_eq!(der_tlv(0x04, &[0; 0x80])[..3], [0x04, 0x81, 0x80]);
        assert_eq!(der_tlv(0x04, &[0; 0x1234])[..4], [0x04, 0x82, 0x12, 0x34]);
    }

    #[test]
    fn bit_lengths() {
        assert_eq!(bit_len(&[]), 0);
        assert_eq!(bit_len(&[0, 0]), 0);
        assert_eq!(bit_len(&[0, 0x80, 0]), 16);
        assert_eq!(bit_len(&[0x01, 0xff]), 9);
    }

    #[test]
    fn pkcs8_unwrap_refuses_other_shapes() {
        assert_eq!(pkcs8_rsa_key(&[]), None);
        assert_eq!(pkcs8_rsa_key(&[0x30, 0x80]), None);
        // A PKCS#8 of another algorithm (Ed25519's OID) is not an RSA key.
        let ed = der_tlv(
            DER_SEQUENCE,
            &[
                der_tlv(DER_INTEGER, &[0]),
                der_tlv(DER_SEQUENCE, &der_tlv(DER_OID, OID_SIG_ED25519.as_bytes())),
                der_tlv(DER_OCTET_STRING, &[1, 2, 3]),
            ]
            .concat(),
        );
        assert_eq!(pkcs8_rsa_key(&ed), None);
        let rsa = der_tlv(
            DER_SEQUENCE,
            &[
                der_tlv(DER_INTEGER, &[0]),
                der_tlv(DER_SEQUENCE, &der_tlv(DER_OID, OID_PKCS1_RSAENCRYPTION.as_bytes())),
                der_tlv(DER_OCTET_STRING, &[1, 2, 3]),
            ]
            .concat(),
        );
        assert_eq!(pkcs8_rsa_key(&rsa), Some(vec![1, 2, 3]));
    }
}
