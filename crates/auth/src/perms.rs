//! A user's key permissions as sorted, merged, non-overlapping intervals (etcd's
//! `unifiedRangePermissions`, which keeps them in `adt.IntervalTree`s).
//!
//! Keys compare as bytes, with one exception taken from etcd's "affine" intervals: a
//! range end of `"\0"` means "no end" (every key from the start on), both in granted
//! permissions and in requests. A permission with an empty key grants nothing (etcd's
//! affine order puts an empty begin after every key; etcdctl sends `"\0"` for "all
//! keys"), and neither does one whose end is not after its key.

use std::cmp::Ordering;

use oxetcd_api::authpb::{Permission, permission};

/// Read, write or both, as a permission grants and as a request needs.
pub type PermType = permission::Type;

/// The end of an interval: a key (exclusive), or past every key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum End {
    Key(Vec<u8>),
    Unbounded,
}

impl End {
    /// An end as etcd reads it: `"\0"` is unbounded.
    fn from_range_end(range_end: &[u8]) -> End {
        if range_end == [0] { End::Unbounded } else { End::Key(range_end.to_vec()) }
    }

    fn is_after(&self, key: &[u8]) -> bool {
        match self {
            End::Unbounded => true,
            End::Key(end) => end.as_slice() > key,
        }
    }
}

/// The smallest key after `key`: the end of the one-key interval `[key, key\0)`.
fn point_end(key: &[u8]) -> End {
    let mut end = Vec::with_capacity(key.len() + 1);
    end.extend_from_slice(key);
    end.push(0);
    End::Key(end)
}

/// The interval a permission grants, or `None` if it grants no key.
fn granted(perm: &Permission) -> Option<(Vec<u8>, End)> {
    if perm.key.is_empty() {
        return None;
    }
    let end = if perm.range_end.is_empty() {
        point_end(&perm.key)
    } else {
        End::from_range_end(&perm.range_end)
    };
    end.is_after(&perm.key).then(|| (perm.key.to_vec(), end))
}

/// Sorted, non-overlapping, non-adjacent intervals `[begin, end)`.
#[derive(Debug, Default, Clone)]
struct IntervalSet(Vec<(Vec<u8>, End)>);

impl IntervalSet {
    fn from_unsorted(mut ivs: Vec<(Vec<u8>, End)>) -> IntervalSet {
        ivs.sort_by(|a, b| a.0.cmp(&b.0));
        let mut merged: Vec<(Vec<u8>, End)> = Vec::with_capacity(ivs.len());
        for (begin, end) in ivs {
            match merged.last_mut() {
                // Touching intervals merge too: `[a, b)` and `[b, c)` cover `[a, c)`.
                Some(last) if !matches!(&last.1, End::Key(e) if e.as_slice() < begin.as_slice()) => {
                    if end > last.1 {
                        last.1 = end;
                    }
                }
                _ => merged.push((begin, end)),
            }
        }
        IntervalSet(merged)
    }

    /// Whether one interval covers all of `[key, end)`. An empty or inverted request
    /// range needs `key` itself covered, as etcd's interval tree answers it.
    fn covers(&self, key: &[u8], end: &End) -> bool {
        // The last interval that begins at or before `key` is the only candidate.
        let idx = self.0.partition_point(|(b, _)| b.as_slice() <= key);
        let Some((_, iv_end)) = idx.checked_sub(1).map(|i| &self.0[i]) else { return false };
        iv_end.is_after(key) && iv_end.cmp(end) != Ordering::Less
    }
}

/// One user's merged read and write permissions.
#[derive(Debug, Default, Clone)]
pub(crate) struct UnifiedPerms {
    read: IntervalSet,
    write: IntervalSet,
}

impl UnifiedPerms {
    /// Merges the permissions of all the user's roles.
    pub(crate) fn new<'a>(perms: impl IntoIterator<Item = &'a Permission>) -> UnifiedPerms {
        let (mut read, mut write) = (Vec::new(), Vec::new());
        for perm in perms {
            // A type this version does not know grants nothing, as in etcd.
            let (Some(iv), Ok(perm_type)) = (granted(perm), PermType::try_from(perm.perm_type))
            else {
                continue;
            };
            match perm_type {
                PermType::Read => read.push(iv),
                PermType::Write => write.push(iv),
                PermType::Readwrite => {
                    read.push(iv.clone());
                    write.push(iv);
                }
            }
        }
        UnifiedPerms {
            read: IntervalSet::from_unsorted(read),
            write: IntervalSet::from_unsorted(write),
        }
    }

    /// Whether the request on `key` (one key if `range_end` is empty, `[key, range_end)`
    /// otherwise, every key from `key` on if `range_end` is `"\0"`) is permitted `need`.
    /// A request for read-write needs both.
    pub(crate) fn permits(&self, key: &[u8], range_end: &[u8], need: PermType) -> bool {
        // An empty key is never a key a request may touch (etcd's affine order puts it
        // after every interval); v3rpc's validation refuses it before this anyway.
        if key.is_empty() {
            return false;
        }
        let end =
            if range_end.is_empty() { point_end(key) } else { End::from_range_end(range_end) };
        match need {
            PermType::Read => self.read.covers(key, &end),
            PermType::Write => self.write.covers(key, &end),
            PermType::Readwrite => self.read.covers(key, &end) && self.write.covers(key, &end),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perm(key: &str, end: &str, t: PermType) -> Permission {
        Permission {
            perm_type: t as i32,
            key: key.as_bytes().to_vec().into(),
            range_end: end.as_bytes().to_vec().into(),
        }
    }

    /// etcd's `range_perm_cache_test.go` cases, on read permissions.
    #[test]
    fn etcd_range_and_key_cases() {
        let r = PermType::Read;
        let p1 = UnifiedPerms::new(&[perm("a", "c", r), perm("x", "z", r)]);
        let p2 = UnifiedPerms::new(&[perm("a", "f", r), perm("c", "d", r), perm("f", "z", r)]);
        let p3 = UnifiedPerms::new(&[perm("a", "d", r), perm("a", "b", r), perm("c", "f", r)]);
        assert!(!p1.permits(b"a", b"z", r));
        assert!(p2.permits(b"a", b"z", r));
        assert!(p3.permits(b"a", b"f", r));
        assert!(!p1.permits(b"f", b"", r));
        assert!(p2.permits(b"b", b"", r));
        assert!(p3.permits(b"d", b"", r));
        assert!(!p3.permits(b"f", b"", r));
    }

    #[test]
    fn from_key_prefix_and_types() {
        let from_key = UnifiedPerms::new(&[perm("k", "\0", PermType::Readwrite)]);
        assert!(from_key.permits(b"k", b"\0", PermType::Read));
        assert!(from_key.permits(b"zzz", b"", PermType::Write));
        assert!(!from_key.permits(b"j", b"\0", PermType::Read));
        assert!(from_key.permits(b"k", b"", PermType::Readwrite));
        // etcdctl's "every key": key "\0", range end "\0".
        let all = UnifiedPerms::new(&[perm("\0", "\0", PermType::Read)]);
        assert!(all.permits(b"\0", b"\0", PermType::Read));
        assert!(all.permits(b"a", b"", PermType::Read));
        assert!(!all.permits(b"a", b"", PermType::Write));
        // A prefix: "foo" .. "fop".
        let prefix = UnifiedPerms::new(&[perm("foo", "fop", PermType::Write)]);
        assert!(prefix.permits(b"foo", b"fop", PermType::Write));
        assert!(prefix.permits(b"foo/bar", b"", PermType::Write));
        assert!(!prefix.permits(b"foo", b"\0", PermType::Write));
        assert!(!prefix.permits(b"fop", b"", PermType::Write));
        // A single key grants that key only.
        let key = UnifiedPerms::new(&[perm("a", "", PermType::Read)]);
        assert!(key.permits(b"a", b"", PermType::Read));
        assert!(key.permits(b"a", b"a\0", PermType::Read));
        assert!(!key.permits(b"a", b"b", PermType::Read));
        assert!(!key.permits(b"", b"", PermType::Read));
        // Empty-key and inverted grants grant nothing.
        let none =
            UnifiedPerms::new(&[perm("", "\0", PermType::Read), perm("b", "a", PermType::Read)]);
        assert!(!none.permits(b"a", b"", PermType::Read));
        assert!(!none.permits(b"b", b"", PermType::Read));
    }
}
