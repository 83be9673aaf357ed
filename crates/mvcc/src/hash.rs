//! Hash and HashKV, as etcd computes them (crc32c, Castagnoli), over a committed snapshot.

use std::collections::HashSet;
use std::ops::ControlFlow;

use crate::backend::{META_CONSISTENT_INDEX, META_TERM, Snapshot};
use crate::error::Result;
use crate::revision::Revision;

/// Table names, hashed before their rows as etcd hashes bucket names.
const KEY_TABLE_NAME: &[u8] = b"key";
const META_TABLE_NAME: &[u8] = b"meta";

/// HashKV: the `key` table name, then every row with a main revision at or below `rev`,
/// except rows at or below `compact_rev` that a compaction at `rev` would not keep
/// (unless nothing is kept at all: etcd then hashes them all).
pub fn hash_kv(
    snapshot: &impl Snapshot,
    rev: i64,
    compact_rev: i64,
    keep: &HashSet<Revision>,
) -> Result<u32> {
    let mut crc = crc32c::crc32c(KEY_TABLE_NAME);
    snapshot.scan(&[], |k, v| {
        let Some((r, _)) = Revision::from_key(k) else {
            return ControlFlow::Continue(());
        };
        if r.main > rev {
            // Rows are in revision order: nothing after this one counts.
            return ControlFlow::Break(());
        }
        if r.main <= compact_rev && !keep.is_empty() && !keep.contains(&r) {
            return ControlFlow::Continue(());
        }
        crc = crc32c::crc32c_append(crc32c::crc32c_append(crc, k), v);
        ControlFlow::Continue(())
    })?;
    Ok(crc)
}

/// Hash: both tables, names first, without the consistent index and term (which differ
/// between members with the same data).
pub fn hash_all(snapshot: &impl Snapshot) -> Result<u32> {
    let mut crc = crc32c::crc32c(KEY_TABLE_NAME);
    snapshot.scan(&[], |k, v| {
        crc = crc32c::crc32c_append(crc32c::crc32c_append(crc, k), v);
        ControlFlow::Continue(())
    })?;
    crc = crc32c::crc32c_append(crc, META_TABLE_NAME);
    snapshot.scan_meta(|k, v| {
        if k != META_CONSISTENT_INDEX && k != META_TERM {
            crc = crc32c::crc32c_append(crc32c::crc32c_append(crc, k), v);
        }
    })?;
    Ok(crc)
}
