//! Revisions and their on-disk encoding.
//!
//! Every write transaction gets one *main* revision; each change it makes gets a *sub*
//! revision, counting from 0. The `key` table is keyed by the revision in etcd's layout so
//! that hashes and imported etcd databases line up byte for byte:
//!
//! ```text
//! main (8 bytes, big-endian) | b'_' | sub (8 bytes, big-endian) [| b't' for a tombstone]
//! ```

use std::fmt;

/// Length of an encoded revision without the tombstone mark.
pub const REV_BYTES_LEN: usize = 17;
/// Length of an encoded tombstone revision.
pub const TOMBSTONE_REV_BYTES_LEN: usize = REV_BYTES_LEN + 1;
/// Separator between the main and sub parts of an encoded revision.
const SEPARATOR: u8 = b'_';
/// Trailing mark of a tombstone's key.
const TOMBSTONE_MARK: u8 = b't';

/// A point in the store's history: `main` is the write transaction, `sub` the change within it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Revision {
    /// The write transaction's revision.
    pub main: i64,
    /// The change's position within its transaction.
    pub sub: i64,
}

impl Revision {
    /// Builds a revision.
    pub const fn new(main: i64, sub: i64) -> Self {
        Self { main, sub }
    }

    /// The first revision of write transaction `main`.
    pub const fn at_main(main: i64) -> Self {
        Self { main, sub: 0 }
    }

    /// The 17-byte key-table encoding.
    pub fn to_bytes(self) -> [u8; REV_BYTES_LEN] {
        let mut out = [0u8; REV_BYTES_LEN];
        out[..8].copy_from_slice(&self.main.to_be_bytes());
        out[8] = SEPARATOR;
        out[9..].copy_from_slice(&self.sub.to_be_bytes());
        out
    }

    /// The key-table encoding, with the tombstone mark when `tombstone` is set.
    pub fn to_key(self, tombstone: bool) -> RevKey {
        let mut bytes = [0u8; TOMBSTONE_REV_BYTES_LEN];
        bytes[..REV_BYTES_LEN].copy_from_slice(&self.to_bytes());
        bytes[REV_BYTES_LEN] = TOMBSTONE_MARK;
        RevKey { bytes, tombstone }
    }

    /// Decodes a key-table key: the revision and whether it marks a tombstone.
    /// Returns `None` for anything that is not an encoded revision.
    pub fn from_key(key: &[u8]) -> Option<(Self, bool)> {
        let tombstone = match key.len() {
            REV_BYTES_LEN => false,
            TOMBSTONE_REV_BYTES_LEN if key[REV_BYTES_LEN] == TOMBSTONE_MARK => true,
            _ => return None,
        };
        if key[8] != SEPARATOR {
            return None;
        }
        let main = i64::from_be_bytes(key[..8].try_into().ok()?);
        let sub = i64::from_be_bytes(key[9..REV_BYTES_LEN].try_into().ok()?);
        Some((Self { main, sub }, tombstone))
    }
}

impl fmt::Debug for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.main, self.sub)
    }
}

/// An encoded key-table key (17 bytes, or 18 for a tombstone), kept on the stack.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RevKey {
    bytes: [u8; TOMBSTONE_REV_BYTES_LEN],
    tombstone: bool,
}

impl RevKey {
    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        if self.tombstone { &self.bytes } else { &self.bytes[..REV_BYTES_LEN] }
    }
}

impl fmt::Debug for RevKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match Revision::from_key(self.as_bytes()) {
            Some((rev, true)) => write!(f, "{rev:?}t"),
            Some((rev, false)) => write!(f, "{rev:?}"),
            None => write!(f, "{:?}", self.as_bytes()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_matches_etcd_layout() {
        let rev = Revision::new(0x0102, 3);
        assert_eq!(rev.to_bytes(), [0, 0, 0, 0, 0, 0, 1, 2, b'_', 0, 0, 0, 0, 0, 0, 0, 3]);
        assert_eq!(rev.to_key(true).as_bytes().len(), TOMBSTONE_REV_BYTES_LEN);
        assert_eq!(rev.to_key(true).as_bytes()[REV_BYTES_LEN], b't');
    }

    #[test]
    fn encoding_round_trips_and_sorts_like_revisions() {
        let revs = [
            Revision::new(1, 0),
            Revision::new(1, 1),
            Revision::new(2, 0),
            Revision::new(256, 7),
            Revision::new(i64::MAX, i64::MAX),
        ];
        for pair in revs.windows(2) {
            assert!(pair[0].to_bytes() < pair[1].to_bytes());
        }
        for rev in revs {
            for tomb in [false, true] {
                assert_eq!(Revision::from_key(rev.to_key(tomb).as_bytes()), Some((rev, tomb)));
            }
        }
        assert_eq!(Revision::from_key(b"short"), None);
        assert_eq!(Revision::from_key(&[0u8; 18]), None);
    }
}
