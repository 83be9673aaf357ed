//! JWT tokens from an `--auth-token` spec to a checked token: every key form etcd reads,
//! verify-only members, expiry against the caller's clock, and tokens that must be
//! refused (tampered, signed by another key or with another method, malformed).
//!
//! ECDSA and Ed25519 keys and all certificates are made here by rcgen. RSA keys cannot be
//! generated with ring, and rcgen writes no SEC1 keys, so `tests/keys/` ships those, made
//! with OpenSSL; they are test keys and protect nothing:
//!
//! ```text
//! openssl genrsa -traditional -out rsa.pkcs1.pem 2048
//! openssl pkcs8 -topk8 -nocrypt -in rsa.pkcs1.pem -out rsa.pkcs8.pem
//! openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa-other.pkcs8.pem
//! openssl ecparam -name prime256v1 -genkey -out ec-p256.sec1.pem
//! openssl genrsa -traditional 1024 | openssl rsa -pubout -out rsa-1024.pub.pem
//! ```

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{DecodingKey, Validation};
use oxetcd_auth::{AuthError, AuthInfo, JwtTokens, TokenSpec};
use proptest::prelude::*;
use rcgen::{
    CertificateParams, KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_ED25519,
};
use serde::Deserialize;
use tempfile::TempDir;

/// A shipped test key.
fn shipped(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/keys").join(name)
}

fn shipped_pem(name: &str) -> String {
    std::fs::read_to_string(shipped(name)).unwrap()
}

/// A directory for key files made by a test.
struct Files(TempDir);

impl Files {
    fn new() -> Files {
        Files(tempfile::tempdir().unwrap())
    }

    /// Writes `name` and answers its path, as a spec takes it.
    fn put(&self, name: &str, contents: impl AsRef<[u8]>) -> String {
        let path = self.0.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path.to_str().unwrap().to_owned()
    }
}

/// A self-signed certificate for `key`, in PEM.
fn cert(key: &KeyPair) -> String {
    CertificateParams::new(vec!["localhost".to_owned()]).unwrap().self_signed(key).unwrap().pem()
}

/// The tokens an `--auth-token=jwt,...` spec makes.
fn tokens(spec: &str) -> Result<JwtTokens, String> {
    match TokenSpec::parse(spec)? {
        TokenSpec::Jwt(opts) => JwtTokens::new(&opts),
        TokenSpec::Simple => panic!("{spec} is not a JWT spec"),
    }
}

fn ok(spec: &str) -> JwtTokens {
    tokens(spec).unwrap_or_else(|e| panic!("{spec}: {e}"))
}

fn err(spec: &str) -> String {
    match tokens(spec) {
        Ok(t) => panic!("{spec}: accepted as {t:?}"),
        Err(e) => e,
    }
}

/// A fixed wall clock: 2023-11-14T22:13:20.250Z.
fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(1_700_000_000_250)
}

fn alice(revision: u64) -> Option<AuthInfo> {
    Some(AuthInfo { user: "alice".to_owned(), revision })
}

/// `signer` signs a token that `verifier` (and `signer`) accept.
fn signs_for(signer: &JwtTokens, verifier: &JwtTokens) -> String {
    let token = signer.assign("alice", 7, t0()).unwrap();
    assert_eq!(signer.info(&token, t0()), alice(7));
    assert_eq!(verifier.info(&token, t0()), alice(7));
    token
}

#[test]
fn rs256_like_etcds_e2e_config_with_a_certificate_as_public_key() {
    // etcd's e2e suite runs `jwt,pub-key=server.crt,priv-key=server.key.insecure,
    // sign-method=RS256,ttl=1s`: a PKCS#1 key and the certificate of the same key.
    let f = Files::new();
    let crt = f.put("server.crt", cert(&KeyPair::from_pem(&shipped_pem("rsa.pkcs8.pem")).unwrap()));
    let key = shipped("rsa.pkcs1.pem").display().to_string();
    let both = ok(&format!("jwt,pub-key={crt},priv-key={key},sign-method=RS256,ttl=1s"));
    assert!(!both.is_verify_only());
    assert_eq!(both.ttl(), Duration::from_secs(1));
    // A member with only the certificate verifies the tokens and cannot sign.
    let verify_only = ok(&format!("jwt,pub-key={crt},sign-method=RS256"));
    assert!(verify_only.is_verify_only());
    signs_for(&both, &verify_only);
    assert_eq!(verify_only.assign("alice", 7, t0()), Err(AuthError::AuthFailed));
}

#[test]
fn rsa_pkcs8_with_a_public_key_for_every_rsa_method() {
    let f = Files::new();
    let public = f
        .put("rsa.pub", KeyPair::from_pem(&shipped_pem("rsa.pkcs8.pem")).unwrap().public_key_pem());
    let key = shipped("rsa.pkcs8.pem").display().to_string();
    for method in ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"] {
        let signer = ok(&format!("jwt,priv-key={key},sign-method={method}"));
        let both = ok(&format!("jwt,priv-key={key},pub-key={public},sign-method={method}"));
        let verify_only = ok(&format!("jwt,pub-key={public},sign-method={method}"));
        signs_for(&signer, &verify_only);
        signs_for(&both, &signer);
    }
}

#[test]
fn ecdsa_and_ed25519_with_public_keys_and_certificates() {
    let f = Files::new();
    for (method, alg) in [
        ("ES256", &PKCS_ECDSA_P256_SHA256),
        ("ES384", &PKCS_ECDSA_P384_SHA384),
        ("EdDSA", &PKCS_ED25519),
    ] {
        let pair = KeyPair::generate_for(alg).unwrap();
        let key = f.put(&format!("{method}.key"), pair.serialize_pem());
        let public = f.put(&format!("{method}.pub"), pair.public_key_pem());
        let crt = f.put(&format!("{method}.crt"), cert(&pair));
        let signer = ok(&format!("jwt,priv-key={key},pub-key={crt},sign-method={method}"));
        for verifier in [public, crt] {
            let verify_only = ok(&format!("jwt,pub-key={verifier},sign-method={method}"));
            assert!(verify_only.is_verify_only());
            signs_for(&signer, &verify_only);
        }
    }
}

#[test]
fn sec1_ec_key_as_openssl_writes_it() {
    // `openssl ecparam -genkey` writes an EC PARAMETERS block before the key.
    let key = shipped("ec-p256.sec1.pem").display().to_string();
    let signer = ok(&format!("jwt,priv-key={key},sign-method=ES256"));
    signs_for(&signer, &signer);
    assert!(err(&format!("jwt,priv-key={key},sign-method=ES384")).contains("ECDSA P-384"));
}

#[test]
fn hs256_secret_is_the_private_key_file_as_it_is() {
    let f = Files::new();
    let secret = f.put("secret", "s3cret\n");
    let trimmed = f.put("trimmed", "s3cret");
    let signer = ok(&format!("jwt,priv-key={secret},sign-method=HS256"));
    assert!(!signer.is_verify_only());
    let token = signs_for(&signer, &ok(&format!("jwt,priv-key={secret},sign-method=HS256")));
    assert_eq!(ok(&format!("jwt,priv-key={trimmed},sign-method=HS256")).info(&token, t0()), None);
    assert_eq!(ok(&format!("jwt,priv-key={secret},sign-method=HS512")).info(&token, t0()), None);
    // A shared secret cannot be verify-only: pub-key alone is no key at all, as in etcd.
    assert_eq!(err(&format!("jwt,pub-key={secret},sign-method=HS256")), "auth: missing key data");
    let empty = f.put("empty", "");
    assert_eq!(err(&format!("jwt,priv-key={empty},sign-method=HS256")), "auth: missing key data");
}

#[test]
fn claims_are_etcds() {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct EtcdClaims {
        username: String,
        revision: u64,
        exp: u64,
    }
    let f = Files::new();
    let secret = f.put("secret", "s3cret");
    let t = ok(&format!("jwt,priv-key={secret},sign-method=HS256,ttl=90s"));
    let token = t.assign("bob", 42, t0()).unwrap();
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!((header.alg, header.typ.as_deref()), (jsonwebtoken::Algorithm::HS256, Some("JWT")));
    let mut v = Validation::new(jsonwebtoken::Algorithm::HS256);
    v.validate_exp = false;
    let claims =
        jsonwebtoken::decode::<EtcdClaims>(&token, &DecodingKey::from_secret(b"s3cret"), &v)
            .unwrap()
            .claims;
    assert_eq!((claims.username.as_str(), claims.revision), ("bob", 42));
    // etcd's `time.Now().Add(ttl).Unix()`.
    assert_eq!(claims.exp, 1_700_000_090);
}

#[test]
fn expiry_is_checked_against_the_callers_clock() {
    let f = Files::new();
    let secret = f.put("secret", "s3cret");
    let t = ok(&format!("jwt,priv-key={secret},sign-method=HS256,ttl=1s"));
    let at = |ms: u64| UNIX_EPOCH + Duration::from_millis(ms);
    // Signed at ...000.250 with a 1 s TTL: exp is ...001, valid strictly before it.
    let token = t.assign("alice", 3, t0()).unwrap();
    assert_eq!(t.info(&token, at(1_699_990_000_000)), alice(3));
    assert_eq!(t.info(&token, at(1_700_000_000_999)), alice(3));
    assert_eq!(t.info(&token, at(1_700_000_001_000)), None);
    assert_eq!(t.info(&token, at(1_800_000_000_000)), None);
    // Sub-second TTLs count from the signing instant, then round down: ...000.250 +
    // 800 ms is ...001.050, so exp is ...001.
    let t = ok(&format!("jwt,priv-key={secret},sign-method=HS256,ttl=800ms"));
    let token = t.assign("alice", 3, t0()).unwrap();
    assert_eq!(t.info(&token, at(1_700_000_000_999)), alice(3));
    assert_eq!(t.info(&token, at(1_700_000_001_000)), None);
    // A clock before 1970 counts as the epoch rather than failing.
    let token = t.assign("alice", 3, UNIX_EPOCH - Duration::from_secs(10)).unwrap();
    assert_eq!(t.info(&token, UNIX_EPOCH), None);
    // The default TTL is etcd's 5 minutes.
    assert_eq!(
        ok(&format!("jwt,priv-key={secret},sign-method=HS256")).ttl(),
        oxetcd_auth::DEFAULT_JWT_TTL
    );
}

/// Replaces the `part`th dot-separated part of a token.
fn with_part(token: &str, part: usize, new: &str) -> String {
    let mut parts: Vec<&str> = token.split('.').collect();
    parts[part] = new;
    parts.join(".")
}

#[test]
fn tampered_tokens_are_refused() {
    let key = shipped("rsa.pkcs1.pem").display().to_string();
    let t = ok(&format!("jwt,priv-key={key},sign-method=RS256"));
    let token = t.assign("alice", 7, t0()).unwrap();
    let other = t.assign("root", 7, t0()).unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    // root's claims under alice's signature.
    let swapped = with_part(&token, 1, other.split('.').nth(1).unwrap());
    assert_eq!(t.info(&swapped, t0()), None);
    // One changed character anywhere.
    for (i, _) in token.char_indices().filter(|(_, c)| *c != '.').step_by(37) {
        let mut bytes = token.clone().into_bytes();
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let changed = String::from_utf8(bytes).unwrap();
        if changed != token {
            assert_eq!(t.info(&changed, t0()), None, "byte {i}");
        }
    }
    assert_eq!(t.info(&format!("{token}.x"), t0()), None);
    assert_eq!(t.info(&token[..token.len() - 1], t0()), None);
    assert_eq!(t.info(&with_part(&token, 2, ""), t0()), None);
}

#[test]
fn tokens_signed_by_another_key_are_refused() {
    let f = Files::new();
    let ours =
        ok(&format!("jwt,priv-key={},sign-method=RS256", shipped("rsa.pkcs1.pem").display()));
    let theirs =
        ok(&format!("jwt,priv-key={},sign-method=RS256", shipped("rsa-other.pkcs8.pem").display()));
    assert_eq!(ours.info(&theirs.assign("alice", 7, t0()).unwrap(), t0()), None);
    let a = f.put("a.key", KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap().serialize_pem());
    let b = f.put("b.key", KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap().serialize_pem());
    let (a, b) = (
        ok(&format!("jwt,priv-key={a},sign-method=ES256")),
        ok(&format!("jwt,priv-key={b},sign-method=ES256")),
    );
    assert_eq!(a.info(&b.assign("alice", 7, t0()).unwrap(), t0()), None);
}

#[test]
fn tokens_of_another_method_are_refused() {
    let f = Files::new();
    let key = shipped("rsa.pkcs8.pem").display().to_string();
    let rs256 = ok(&format!("jwt,priv-key={key},sign-method=RS256"));
    // The same key with another RSA method.
    for method in ["RS384", "PS256"] {
        let other = ok(&format!("jwt,priv-key={key},sign-method={method}"));
        assert_eq!(rs256.info(&other.assign("alice", 7, t0()).unwrap(), t0()), None, "{method}");
    }
    // The classic confusion: HS256 keyed with the RSA public key's PEM, which a verifier
    // that trusted the token's `alg` would check against the bytes it holds.
    let public_pem = KeyPair::from_pem(&shipped_pem("rsa.pkcs8.pem")).unwrap().public_key_pem();
    let public = f.put("rsa.pub", &public_pem);
    let hs = ok(&format!("jwt,priv-key={public},sign-method=HS256"));
    let verify_only = ok(&format!("jwt,pub-key={public},sign-method=RS256"));
    assert_eq!(verify_only.info(&hs.assign("root", 7, t0()).unwrap(), t0()), None);
    // An unsigned token (`alg: none`) naming root.
    let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.\
                eyJleHAiOjk5OTk5OTk5OTksInJldmlzaW9uIjoxLCJ1c2VybmFtZSI6InJvb3QifQ.";
    assert_eq!(verify_only.info(none, t0()), None);
}

#[test]
fn malformed_tokens_are_refused() {
    let f = Files::new();
    let t = ok(&format!("jwt,priv-key={},sign-method=HS256", f.put("s", "s")));
    for token in ["", ".", "..", "...", "a.b.c", "abcdefghijklmnop.42", "\u{1F600}.\u{0}.\u{FFFF}"]
    {
        assert_eq!(t.info(token, t0()), None, "{token:?}");
    }
    // Validly signed, but without the claims etcd's tokens carry.
    #[derive(serde::Serialize)]
    struct NoExp {
        username: &'static str,
        revision: u64,
    }
    let no_exp = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &NoExp { username: "root", revision: 1 },
        &jsonwebtoken::EncodingKey::from_secret(b"s"),
    )
    .unwrap();
    assert_eq!(t.info(&no_exp, t0()), None);
}

proptest! {
    #[test]
    fn arbitrary_tokens_never_panic(token in ".{0,200}", parts in prop::collection::vec("[A-Za-z0-9_-]{0,60}", 0..5)) {
        let key = shipped("rsa.pkcs1.pem").display().to_string();
        let t = ok(&format!("jwt,priv-key={key},sign-method=RS256"));
        prop_assert_eq!(t.info(&token, t0()), None);
        prop_assert_eq!(t.info(&parts.join("."), t0()), None);
    }
}

#[test]
fn bad_key_files_are_errors() {
    let f = Files::new();
    let rsa = shipped("rsa.pkcs1.pem").display().to_string();
    let rsa_other_pub = f.put(
        "other.pub",
        KeyPair::from_pem(&shipped_pem("rsa-other.pkcs8.pem")).unwrap().public_key_pem(),
    );
    let p256 = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let p256_key = f.put("p256.key", p256.serialize_pem());
    let p256_pub = f.put("p256.pub", p256.public_key_pem());
    let p384_pub =
        f.put("p384.pub", KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).unwrap().public_key_pem());
    let ed_key = f.put("ed.key", KeyPair::generate_for(&PKCS_ED25519).unwrap().serialize_pem());
    let garbage = f.put("garbage", "not a key\n");
    let der = f.put("der", [0x30, 0x03, 0x02, 0x01, 0x00]);
    let missing = f.0.path().join("missing").display().to_string();
    let small = shipped("rsa-1024.pub.pem").display().to_string();
    for (spec, want) in [
        ("jwt,sign-method=RS256".to_owned(), "auth: missing key data".to_owned()),
        (
            format!("jwt,priv-key={missing},sign-method=RS256"),
            format!("auth: invalid auth options: cannot read priv-key {missing}: "),
        ),
        (
            format!("jwt,priv-key={rsa},pub-key={missing},sign-method=HS256"),
            format!("auth: invalid auth options: cannot read pub-key {missing}: "),
        ),
        (
            format!("jwt,priv-key={garbage},sign-method=RS256"),
            format!("auth: bad priv-key {garbage}: no PEM block"),
        ),
        (
            format!("jwt,pub-key={der},sign-method=ES256"),
            format!("auth: bad pub-key {der}: no PEM block"),
        ),
        (
            format!("jwt,pub-key={rsa},sign-method=RS256"),
            "neither a public key nor a certificate".to_owned(),
        ),
        (
            format!("jwt,priv-key={p256_key},sign-method=RS256"),
            "not a usable RSA private key".to_owned(),
        ),
        (
            format!("jwt,priv-key={rsa},sign-method=ES256"),
            "not a usable ECDSA P-256 private key".to_owned(),
        ),
        (
            format!("jwt,priv-key={ed_key},sign-method=ES256"),
            "not a usable ECDSA P-256 private key".to_owned(),
        ),
        (
            format!("jwt,priv-key={p256_key},sign-method=EdDSA"),
            "not an Ed25519 private key".to_owned(),
        ),
        (
            format!("jwt,pub-key={p256_pub},sign-method=RS256"),
            "not a valid RSA public key".to_owned(),
        ),
        (
            format!("jwt,pub-key={rsa_other_pub},sign-method=ES256"),
            "not a valid ECDSA P-256 public key".to_owned(),
        ),
        (
            format!("jwt,pub-key={p384_pub},sign-method=ES256"),
            "not a valid ECDSA P-256 public key".to_owned(),
        ),
        (
            format!("jwt,pub-key={p256_pub},sign-method=EdDSA"),
            "not a valid Ed25519 public key".to_owned(),
        ),
        (
            format!("jwt,pub-key={small},sign-method=RS256"),
            "a 1024-bit RSA public key; 2048 to 8192 bits are supported".to_owned(),
        ),
        (
            format!("jwt,priv-key={rsa},pub-key={rsa_other_pub},sign-method=RS256"),
            "auth: public and private keys don't match".to_owned(),
        ),
        (
            format!("jwt,priv-key={p256_key},pub-key={p384_pub},sign-method=ES256"),
            "not a valid ECDSA P-256 public key".to_owned(),
        ),
    ] {
        let e = err(&spec);
        assert!(e.contains(&want), "{spec}: {e}");
    }
    let other_p256 = f
        .put("other.pub", KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap().public_key_pem());
    assert_eq!(
        err(&format!("jwt,priv-key={p256_key},pub-key={other_p256},sign-method=ES256")),
        "auth: public and private keys don't match"
    );
}

#[test]
fn debug_shows_no_key() {
    let f = Files::new();
    let t = ok(&format!("jwt,priv-key={},sign-method=HS256", f.put("s", "very-secret-bytes")));
    let shown = format!("{t:?}");
    assert!(shown.contains("HS256") && !shown.contains("very-secret"), "{shown}");
}
