//! bbolt's file format, read and written without Go: the foundation for taking etcd's
//! `member/snap/db` (and `etcdctl snapshot save` files) in, and handing them back out.
//!
//! - [`Db`] reads a bbolt file with positioned reads, one page at a time, and validates
//!   everything it touches: a malformed file is an [`Error`], never a panic or an endless
//!   walk. [`Db::check`] walks all of it like bbolt's `Tx.Check`.
//! - [`Writer`] writes a bbolt file from buckets given in key order, page after page, so it
//!   can stream to a socket or a hasher with memory bounded by the trees' height.
//!
//! Written from bbolt 1.3's format (Debian's `golang-github-coreos-bbolt-dev`, file format
//! version 2); the `compat` tests check files both ways against the real bbolt.
//!
//! # The format, as implemented here
//!
//! All integers are little-endian (bbolt writes its structs in host order; every platform
//! etcd ships for is little-endian). The file is an array of pages of `page_size` bytes
//! (from the meta; 4096 on most systems), page `n` at offset `n * page_size`.
//!
//! **Page header** (16 bytes, [`format::PAGE_HEADER_SIZE`]): `id u64` (the page's own id),
//! `flags u16`, `count u16` (elements on the page), `overflow u32` (how many further
//! contiguous pages this page's content runs into: a page holding a large value spans
//! `overflow + 1` pages). Flags: branch `0x01`, leaf `0x02`, meta `0x04`, freelist
//! `0x10` ([`format::BRANCH_PAGE_FLAG`] ...).
//!
//! **Meta pages** are pages 0 and 1; after the header, [`Meta`] (64 bytes): `magic u32`
//! ([`format::MAGIC`] `0xED0CDAED`), `version u32` (2), `page_size u32`, `flags u32` (0),
//! the root bucket's header (`root u64` page, `sequence u64`), `freelist u64` (page id, or
//! `u64::MAX` when not stored), `pgid u64` (the high water mark: pages `0..pgid` are in
//! use), `txid u64`, `checksum u64` = FNV-1a 64 over the 56 bytes before it. bbolt writes
//! transaction `t`'s meta on page `t % 2`; a reader uses the valid meta with the higher
//! txid, falling back to the other when one is torn.
//!
//! **Branch page** elements (16 bytes each, right after the header): `pos u32, ksize u32,
//! pgid u64`; **leaf page** elements: `flags u32, pos u32, ksize u32, vsize u32`. `pos` is
//! the offset of the element's key from the element itself; the value follows the key.
//! Keys are non-empty and strictly increasing; a branch element's key is its child's
//! first key. Leaf element flag `0x01` marks a sub-bucket.
//!
//! **Buckets**: the root bucket (from the meta) holds the top-level buckets as sub-bucket
//! elements. A sub-bucket's value is its header, `root u64, sequence u64`; `root == 0`
//! means an **inline bucket**: a leaf page (header with id 0, then elements and data) follows
//! the header inside the value. bbolt inlines a bucket that is one leaf of at most a quarter
//! page with no sub-buckets.
//!
//! **Freelist page**: `count` page ids (u64) after the header; when `count == 0xFFFF` the
//! real count is the first u64 and the ids follow it. bbolt's two freelist types (`array`,
//! `hashmap`) differ only in memory: both write this same sorted array. etcd runs bbolt
//! with `NoFreelistSync` on Linux, so its files usually store no freelist (`freelist ==
//! u64::MAX`): the free pages are then the unreachable ones. The reader needs no
//! freelist; [`Db::check`] handles both.
//!
//! Bytes past `pgid × page_size` are ignored: a live file is longer (bbolt grows it
//! ahead), and a snapshot from etcd's `Maintenance.Snapshot` (`etcdctl snapshot save`)
//! ends with a 32-byte SHA-256 of what precedes it, which opens as is (checking the hash
//! is the caller's). Checked by hand on etcd 3.4.23's `member/snap/db` and a snapshot of it.
//!
//! # Limits (named constants)
//!
//! From bbolt: [`format::MAX_KEY_SIZE`] (32768), [`format::MAX_VALUE_SIZE`] (2³¹−2),
//! [`write::MAX_ELEMENTS_PER_PAGE`] (0xFFFE, `count` is a u16), the fill percent's bounds
//! (0.1..=1.0), the inline bucket size (page/4). Ours: page sizes
//! [`format::MIN_PAGE_SIZE`]..=[`format::MAX_PAGE_SIZE`] (512 B..1 MiB, powers of two),
//! [`format::MAX_TREE_DEPTH`] (64 levels) and [`format::MAX_BUCKET_DEPTH`] (64 nested
//! buckets), and a walk of one bucket visits at most the file's page count.
//!
//! # What the reader refuses
//!
//! Both metas invalid (magic, version, checksum, page flags, page size, root or freelist
//! outside `2..pgid`) is [`Error::InvalidMeta`]; a file shorter than its meta's
//! `pgid * page_size` is [`Error::Truncated`] (if the other meta is intact and fits, it is
//! used and [`Db::meta_note`] says why). Any page: id outside `2..pgid`, header id not its
//! own, overflow running past `pgid`, a type other than the place calls for (branch/leaf
//! in trees, leaf inline, freelist), an element or its key/value outside the page, an
//! empty key, unknown element flags, keys out of order within a page or across pages, a
//! tree deeper than 64, a walk longer than the file's pages (cycles, shared pages): each is
//! [`Error::Corrupt`] with the page id. Unlike bbolt, a meta with a zero checksum is
//! refused (bbolt skips the check for it; it has written checksums since 2014).
//!
//! # Writer choices
//!
//! - Page size 4096 by default ([`WriterOptions`]); fill percent 0.9 by default, what etcd
//!   uses for sequential puts and defragmentation (bbolt's own default is 0.5, which
//!   leaves half-empty pages; 1.0 makes the first random insert split a page).
//!   A page takes pairs while they fit under `page_size × fill`, and at least two
//!   ([`write::MIN_KEYS_PER_PAGE`], bbolt's `minKeysPerPage`) whatever their size: large
//!   values run into overflow pages two by two, as in etcd's own files. A branch page
//!   likewise holds at least two children.
//! - Page 2 is an empty freelist page (a freshly compacted file has no free pages), data
//!   pages follow from 3 in write order: each leaf when full, each branch when full,
//!   the rest bottom-up when its bucket ends, the root bucket's tree last.
//! - Both metas describe the same tree, newest `txid` (default 1) on page `txid % 2` and
//!   `txid − 1` on the other, as bbolt's `Tx.WriteTo` makes them identical but for txid.
//! - Small buckets (one leaf, ≤ page/4, no sub-buckets) are stored inline, as bbolt does.
//!
//! # Architecture invariant
//!
//! `crates/bbolt` is the only code that knows bbolt's page format, and it knows nothing of
//! etcd: no bucket names, no key or value encodings, no server types, no dependency beyond
//! `std` and `thiserror`. Reading never loads a whole file: it reads pages by position,
//! holds a page per tree level, and treats the file as untrusted (every malformed input is
//! an `Error`, every walk bounded). Writing takes buckets and pairs in key order and emits
//! each page once, in page order, with memory bounded by the tree's height, so a snapshot
//! can stream to a client as it is generated. Mapping etcd's buckets to and from the
//! store lives with the store, not here.

#![deny(missing_docs)]

mod error;
pub mod format;
mod read;
pub mod write;

pub use error::{Error, Result};
pub use format::Meta;
pub use read::{Bucket, CheckStats, Cursor, Db, Entry, ReadAt};
pub use write::{Layout, Writer, WriterOptions};
