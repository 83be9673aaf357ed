//! bcrypt password hashes, in the format etcd stores.

use std::sync::OnceLock;

/// The bcrypt cost etcd hashes with unless `--bcrypt-cost` says otherwise (Go's
/// `bcrypt.DefaultCost`).
pub const DEFAULT_BCRYPT_COST: u32 = 10;
/// The lowest cost bcrypt accepts (Go's `bcrypt.MinCost`, the Rust crate's too).
pub const MIN_BCRYPT_COST: u32 = 4;
/// The highest cost bcrypt accepts (Go's `bcrypt.MaxCost`).
pub const MAX_BCRYPT_COST: u32 = 31;

/// Hashes a password with a fresh random salt, as etcd's `bcrypt.GenerateFromPassword`.
///
/// The hash is written with the `$2a$` prefix Go's bcrypt writes (the Rust crate would
/// write `$2b$`; Go reads both, but `$2a$` keeps a data directory byte-compatible with
/// etcd's). As in Go, only the first 72 bytes of the password count. This is slow on
/// purpose (about 2^cost rounds): call it on the proposing side, so the log carries the
/// hash and apply never hashes. A cost outside `MIN_BCRYPT_COST..=MAX_BCRYPT_COST` is
/// replaced by `DEFAULT_BCRYPT_COST`, as etcd does at start.
pub fn hash_password(password: &str, cost: u32) -> String {
    let cost = if (MIN_BCRYPT_COST..=MAX_BCRYPT_COST).contains(&cost) {
        cost
    } else {
        DEFAULT_BCRYPT_COST
    };
    match bcrypt::hash_with_result(password, cost) {
        Ok(parts) => parts.format_for_version(bcrypt::Version::TwoA),
        // Only a cost out of range or a failing OS random source can fail; the cost was
        // checked, and without randomness no salt can be made safely.
        Err(e) => panic!("bcrypt hashing failed: {e}"),
    }
}

/// Whether `password` matches `hash`. An unreadable hash matches nothing.
pub(crate) fn verify(password: &str, hash: &[u8]) -> bool {
    std::str::from_utf8(hash).is_ok_and(|hash| bcrypt::verify(password, hash).unwrap_or(false))
}

/// A hash no password is checked against successfully in practice, compared for unknown
/// users so a failed login costs the same whether or not the user exists (etcd 3.4
/// answers at once for an unknown user, which tells an attacker which names exist). It is
/// made once, at `DEFAULT_BCRYPT_COST`: with another `--bcrypt-cost`, unknown users cost
/// what users hashed at the default cost do.
pub(crate) fn dummy_hash() -> &'static [u8] {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_password("oxetcd: no such user", DEFAULT_BCRYPT_COST)).as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_in_go_format_and_verifies() {
        let h = hash_password("secret", MIN_BCRYPT_COST);
        assert!(h.starts_with("$2a$04$"), "{h}");
        assert!(verify("secret", h.as_bytes()));
        assert!(!verify("Secret", h.as_bytes()));
        assert!(!verify("secret", b"not a hash"));
        assert!(!verify("secret", b""));
    }

    #[test]
    fn reads_go_and_rust_prefixes() {
        // A `$2a$` hash (what Go writes) and the same hash relabelled `$2b$` (what the Rust
        // crate writes by default): the version letter does not change the algorithm.
        let go = hash_password("password", MIN_BCRYPT_COST);
        let b = go.replacen("$2a$", "$2b$", 1);
        assert!(verify("password", go.as_bytes()));
        assert!(verify("password", b.as_bytes()));
    }
}
