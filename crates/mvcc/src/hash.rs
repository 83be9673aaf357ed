//! Hash and HashKV, as etcd computes them (crc32c, Castagnoli), over a committed snapshot.

use std::collections::HashSet;
use std::ops::ControlFlow;

use crate::backend::{KEY_TABLE, META_CONSISTENT_INDEX, META_TABLE, META_TERM, Snapshot};
use crate::error::Result;
use crate::revision::Revision;

/// HashKV: the `key` table name, then every row with a main revision at or below `rev`,
/// except rows at or below `compact_rev` that a compaction at `rev` would not keep
/// (unless nothing is kept at all: etcd then hashes them all).
pub fn hash_kv(
    snapshot: &impl Snapshot,
    rev: i64,
    compact_rev: i64,
    keep: &HashSet<Revision>,
) -> Result<u32> {
    let mut crc = crc32c::crc32c(KEY_TABLE.as_bytes());
    snapshot.scan(KEY_TABLE, &[], |k, v| {
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

/// Hash: every table in name order, each name then its rows, without the consistent
/// index and term (which differ between members with the same data), as etcd hashes its
/// buckets.
pub fn hash_all(snapshot: &impl Snapshot) -> Result<u32> {
    let mut crc = 0;
    for table in snapshot.tables()? {
        crc = crc32c::crc32c_append(crc, table.as_bytes());
        let is_meta = table == META_TABLE;
        snapshot.scan(&table, &[], |k, v| {
            if !(is_meta && (k == META_CONSISTENT_INDEX || k == META_TERM)) {
                crc = crc32c::crc32c_append(crc32c::crc32c_append(crc, k), v);
            }
            ControlFlow::Continue(())
        })?;
    }
    Ok(crc)
}
