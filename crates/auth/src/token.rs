//! Simple tokens (etcd's `--auth-token=simple`): random strings a member maps to a user
//! until they go unused for a TTL.
//!
//! The proposing member draws the token's random prefix ([`gen_token_prefix`]) and puts
//! it in the Authenticate entry; every member assigns `<prefix>.<entry index>` when it
//! applies the entry. A member that gets a token it does not know yet waits until it has
//! applied the index the token names ([`token_index`]) before it looks the token up, as
//! etcd's `isValidSimpleToken` does.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A token's life after its last use (etcd's `--auth-token-ttl` default, 300 s).
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(300);
/// Random letters before a token's `.` (etcd's `defaultSimpleTokenLength`).
pub const SIMPLE_TOKEN_PREFIX_LEN: usize = 16;
/// Live tokens a member keeps at most; past it, assigning a token drops the one closest
/// to expiry. etcd has no bound, so a client logging in in a loop grows its map for a TTL;
/// a million tokens is about 100 MB and far above any real cluster's logins per TTL.
pub const MAX_SIMPLE_TOKENS: usize = 1 << 20;

/// The letters a token prefix is drawn from (etcd's).
const LETTERS: &[u8; 52] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// A new token's random prefix: [`SIMPLE_TOKEN_PREFIX_LEN`] letters from the OS's
/// cryptographic source, drawn without modulo bias.
pub fn gen_token_prefix() -> String {
    let mut out = String::with_capacity(SIMPLE_TOKEN_PREFIX_LEN);
    let mut buf = [0u8; 64];
    while out.len() < SIMPLE_TOKEN_PREFIX_LEN {
        // Without randomness a token could be guessed: refusing to make one is the only
        // safe answer, and the OS source does not fail on a working system.
        getrandom::fill(&mut buf).unwrap_or_else(|e| panic!("OS random source failed: {e}"));
        // 208 = 4 * 52: bytes from 208 up would favour the first letters.
        for b in buf.iter().filter(|b| **b < 208) {
            if out.len() == SIMPLE_TOKEN_PREFIX_LEN {
                break;
            }
            out.push(LETTERS[usize::from(*b) % LETTERS.len()] as char);
        }
    }
    out
}

/// The raft index a token names, if it is shaped as `<prefix>.<index>`; `None` means the
/// token is invalid (etcd's `ErrInvalidAuthToken`).
pub fn token_index(token: &str) -> Option<u64> {
    let (prefix, index) = token.split_once('.')?;
    if prefix.contains('.') || index.contains('.') {
        return None;
    }
    index.parse().ok()
}

#[derive(Debug)]
struct Entry {
    user: String,
    expiry: Instant,
}

/// The member's simple tokens: token → user, each with its expiry.
#[derive(Debug)]
pub struct SimpleTokens {
    tokens: Mutex<HashMap<String, Entry>>,
    ttl: Duration,
    /// [`MAX_SIMPLE_TOKENS`]; smaller in tests, which cannot afford a million tokens.
    max_tokens: usize,
}

impl SimpleTokens {
    /// Tokens that live `ttl` after their last use; a zero TTL means the default, as
    /// etcd reads `--auth-token-ttl`. The table keeps no clock: callers pass `now`
    /// (the monotonic clock in the server, a chosen instant in tests), as raft is ticked.
    pub fn new(ttl: Duration) -> SimpleTokens {
        let ttl = if ttl.is_zero() { DEFAULT_TOKEN_TTL } else { ttl };
        SimpleTokens { tokens: Mutex::new(HashMap::new()), ttl, max_tokens: MAX_SIMPLE_TOKENS }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.tokens.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Assigns `<prefix>.<index>` to `user` (when applying the Authenticate entry at raft
    /// index `index`) and answers the token.
    pub fn assign(&self, user: &str, prefix: &str, index: u64, now: Instant) -> String {
        let token = format!("{prefix}.{index}");
        let mut tokens = self.lock();
        if tokens.len() >= self.max_tokens && !tokens.contains_key(&token) {
            tokens.retain(|_, e| e.expiry >= now);
            if tokens.len() >= self.max_tokens {
                // O(n), but only when a million live tokens are already held.
                let oldest = tokens.iter().min_by_key(|(_, e)| e.expiry).map(|(t, _)| t.clone());
                if let Some(oldest) = oldest {
                    tokens.remove(&oldest);
                }
            }
        }
        tokens.insert(token.clone(), Entry { user: user.to_owned(), expiry: now + self.ttl });
        token
    }

    /// The user a live token names; the use renews the token's TTL. An expired token is
    /// forgotten. The request is then checked at the store's current auth revision, as
    /// etcd's simple tokens carry none of their own.
    pub fn user(&self, token: &str, now: Instant) -> Option<String> {
        let mut tokens = self.lock();
        let entry = tokens.get_mut(token)?;
        if entry.expiry < now {
            tokens.remove(token);
            return None;
        }
        entry.expiry = now + self.ttl;
        Some(entry.user.clone())
    }

    /// Forgets every token of `user` (deleted, or its password changed).
    pub fn invalidate_user(&self, user: &str) {
        self.lock().retain(|_, e| e.user != user);
    }

    /// Forgets every token (auth disabled).
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// Forgets expired tokens; run it periodically (etcd sweeps every second) so unused
    /// tokens do not pile up.
    pub fn purge_expired(&self, now: Instant) {
        self.lock().retain(|_, e| e.expiry >= now);
    }

    /// Live and not yet purged tokens.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no token is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A token table and the instant a test starts from (its clock, moved by hand).
    fn tokens(ttl: Duration) -> (SimpleTokens, Instant) {
        (SimpleTokens::new(ttl), Instant::now())
    }

    #[test]
    fn prefix_is_random_letters() {
        let a = gen_token_prefix();
        assert_eq!(a.len(), SIMPLE_TOKEN_PREFIX_LEN);
        assert!(a.bytes().all(|b| b.is_ascii_alphabetic()));
        assert_ne!(a, gen_token_prefix());
    }

    #[test]
    fn token_index_parses_etcd_format() {
        assert_eq!(token_index("abcdefghijklmnop.42"), Some(42));
        assert_eq!(token_index("abc"), None);
        assert_eq!(token_index("a.b.3"), None);
        assert_eq!(token_index("a.x"), None);
    }

    #[test]
    fn expires_after_ttl_of_disuse_and_use_renews() {
        let (t, mut now) = tokens(Duration::from_secs(10));
        let tok = t.assign("alice", "abcdefghijklmnop", 7, now);
        assert_eq!(tok, "abcdefghijklmnop.7");
        now += Duration::from_secs(8);
        assert_eq!(t.user(&tok, now).as_deref(), Some("alice"));
        // Renewed at 8 s: still live at 16 s, gone past 18 s.
        now += Duration::from_secs(8);
        assert_eq!(t.user(&tok, now).as_deref(), Some("alice"));
        now += Duration::from_secs(11);
        assert_eq!(t.user(&tok, now), None);
        assert!(t.is_empty());
    }

    #[test]
    fn bounded_drops_expired_then_the_closest_to_expiry() {
        let (mut t, mut now) = tokens(Duration::from_secs(10));
        t.max_tokens = 2;
        let a = t.assign("a", "aaaaaaaaaaaaaaaa", 1, now);
        now += Duration::from_secs(1);
        let b = t.assign("b", "bbbbbbbbbbbbbbbb", 2, now);
        now += Duration::from_secs(1);
        let c = t.assign("c", "cccccccccccccccc", 3, now);
        assert_eq!((t.user(&a, now), t.len()), (None, 2));
        // Using b a second later renews it past c, so c is now the closest to expiry.
        now += Duration::from_secs(1);
        t.user(&b, now).unwrap();
        t.assign("d", "dddddddddddddddd", 4, now);
        assert_eq!(t.user(&c, now), None);
        assert_eq!(t.user(&b, now).as_deref(), Some("b"));
        // Expired tokens (b and d, both held still) go first.
        now += Duration::from_secs(11);
        assert_eq!(t.len(), 2);
        let e = t.assign("e", "eeeeeeeeeeeeeeee", 5, now);
        t.assign("f", "ffffffffffffffff", 6, now);
        assert_eq!((t.user(&e, now).as_deref(), t.len()), (Some("e"), 2));
    }

    #[test]
    fn purge_invalidate_and_clear() {
        let (t, mut now) = tokens(Duration::ZERO);
        let a = t.assign("alice", "aaaaaaaaaaaaaaaa", 1, now);
        let b = t.assign("bob", "bbbbbbbbbbbbbbbb", 2, now);
        let c = t.assign("alice", "cccccccccccccccc", 3, now);
        t.invalidate_user("alice");
        assert_eq!((t.user(&a, now), t.user(&c, now)), (None, None));
        assert_eq!(t.user(&b, now).as_deref(), Some("bob"));
        now += DEFAULT_TOKEN_TTL - Duration::from_secs(1);
        t.purge_expired(now);
        assert_eq!(t.len(), 1);
        now += DEFAULT_TOKEN_TTL;
        t.purge_expired(now);
        assert!(t.is_empty());
        t.assign("bob", "dddddddddddddddd", 4, now);
        t.clear();
        assert!(t.is_empty());
    }
}
