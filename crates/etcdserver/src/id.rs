//! Member and cluster ids, derived the way etcd derives them, so the same flags give
//! the same ids as etcd; and unique request ids.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sha1::{Digest, Sha1};

/// A member, cluster or request id as etcd prints it: lowercase hex, unpadded.
#[derive(Debug, Clone, Copy)]
pub struct Hex(pub u64);

impl std::fmt::Display for Hex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:x}", self.0)
    }
}

/// A lease id as etcd prints it: 16 hex digits.
#[derive(Debug, Clone, Copy)]
pub struct LeaseHex(pub i64);

impl std::fmt::Display for LeaseHex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

fn first_eight_bytes(digest: &[u8]) -> u64 {
    u64::from_be_bytes(digest[..8].try_into().expect("a SHA-1 digest has 20 bytes"))
}

/// A member's id: SHA-1 of its sorted peer URLs joined, the cluster token, and (for a
/// member added at runtime) the time of adding in Unix seconds.
pub fn member_id(peer_urls: &[String], token: &str, added_at: Option<u64>) -> u64 {
    let mut urls = peer_urls.to_vec();
    urls.sort();
    let mut hash = Sha1::new();
    hash.update(urls.concat().as_bytes());
    hash.update(token.as_bytes());
    if let Some(secs) = added_at {
        hash.update(secs.to_string().as_bytes());
    }
    first_eight_bytes(&hash.finalize())
}

/// A cluster's id: SHA-1 of its initial members' ids, sorted, as big-endian bytes.
pub fn cluster_id(member_ids: &[u64]) -> u64 {
    let mut ids = member_ids.to_vec();
    ids.sort_unstable();
    let mut hash = Sha1::new();
    for id in ids {
        hash.update(id.to_be_bytes());
    }
    first_eight_bytes(&hash.finalize())
}

/// Request ids unique across members and restarts: the member id's low 16 bits, then
/// the start time in milliseconds (40 bits) and a counter (8 bits) that carries into it.
#[derive(Debug)]
pub struct IdGenerator {
    prefix: u64,
    suffix: AtomicU64,
}

const SUFFIX_BITS: u32 = 48;

impl IdGenerator {
    pub fn new(member_id: u64) -> IdGenerator {
        let millis =
            SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let start = (millis & ((1 << 40) - 1)) << 8;
        IdGenerator { prefix: (member_id & 0xffff) << SUFFIX_BITS, suffix: AtomicU64::new(start) }
    }

    pub fn next(&self) -> u64 {
        let suffix = self.suffix.fetch_add(1, Ordering::Relaxed) + 1;
        self.prefix | (suffix & ((1 << SUFFIX_BITS) - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_match_etcds_for_the_same_flags() {
        // `etcd --name infra --initial-advertise-peer-urls http://127.0.0.1:12380
        // --initial-cluster infra=http://127.0.0.1:12380` with the default token: etcd
        // 3.4.23's `etcdctl endpoint status -w json` reports these two ids.
        let member = member_id(&["http://127.0.0.1:12380".to_string()], "etcd-cluster", None);
        assert_eq!(member, 15985099378392235387);
        assert_eq!(cluster_id(&[member]), 12101053776118486841);
    }

    #[test]
    fn request_ids_are_unique_and_carry_the_member() {
        let ids = IdGenerator::new(0xabcd_1234);
        let (a, b) = (ids.next(), ids.next());
        assert_ne!(a, b);
        assert_eq!(a >> SUFFIX_BITS, 0x1234);
    }
}
