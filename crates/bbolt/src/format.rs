//! bbolt's on-disk layout: constants, little-endian field access, the meta page and its
//! checksum. Everything here is a fact of the format (bbolt 1.3, file format version 2).

/// The magic number at the start of every meta page (bbolt `db.go`, `magic`).
pub const MAGIC: u32 = 0xED0C_DAED;
/// The data file format version (bbolt `db.go`, `version`).
pub const VERSION: u32 = 2;
/// The page size the writer uses, and bbolt's default on 4 KiB-page systems.
pub const DEFAULT_PAGE_SIZE: u32 = 4096;
/// Smallest page size the reader accepts (a power of two that holds a meta page).
pub const MIN_PAGE_SIZE: u32 = 512;
/// Largest page size the reader accepts. bbolt takes the OS page size (up to 64 KiB in
/// practice) or an explicit option; 1 MiB bounds what one page read may allocate.
pub const MAX_PAGE_SIZE: u32 = 1 << 20;

/// Page header: `id u64, flags u16, count u16, overflow u32` (bbolt `page.go`, `page`).
pub const PAGE_HEADER_SIZE: usize = 16;
/// Branch element: `pos u32, ksize u32, pgid u64` (bbolt `page.go`, `branchPageElement`).
pub const BRANCH_ELEMENT_SIZE: usize = 16;
/// Leaf element: `flags u32, pos u32, ksize u32, vsize u32` (bbolt `page.go`, `leafPageElement`).
pub const LEAF_ELEMENT_SIZE: usize = 16;
/// Bucket header stored as a bucket's value: `root u64, sequence u64` (bbolt `bucket.go`, `bucket`).
pub const BUCKET_HEADER_SIZE: usize = 16;
/// Meta: `magic u32, version u32, page_size u32, flags u32, root bucket (root u64,
/// sequence u64), freelist u64, pgid u64, txid u64, checksum u64` (bbolt `db.go`, `meta`).
pub const META_SIZE: usize = 64;
/// The checksum covers the meta's bytes before it: FNV-1a 64 of bytes `0..56`.
pub const META_CHECKSUM_OFFSET: usize = 56;

/// Page flag of a branch page (bbolt `branchPageFlag`).
pub const BRANCH_PAGE_FLAG: u16 = 0x01;
/// Page flag of a leaf page (bbolt `leafPageFlag`).
pub const LEAF_PAGE_FLAG: u16 = 0x02;
/// Page flag of a meta page (bbolt `metaPageFlag`).
pub const META_PAGE_FLAG: u16 = 0x04;
/// Page flag of a freelist page (bbolt `freelistPageFlag`).
pub const FREELIST_PAGE_FLAG: u16 = 0x10;
/// Leaf element flag: the value is a bucket header (bbolt `bucketLeafFlag`).
pub const BUCKET_LEAF_FLAG: u32 = 0x01;

/// A meta's freelist field when the freelist is not stored (bbolt `pgidNoFreelist`,
/// written with `NoFreelistSync`, which etcd sets on Linux).
pub const NO_FREELIST: u64 = u64::MAX;
/// A freelist page's `count` at this value means the real count is the first u64 after
/// the header (bbolt `freelist.go`).
pub const FREELIST_COUNT_OVERFLOW: u16 = 0xFFFF;

/// Longest key bbolt accepts (bbolt `bucket.go`, `MaxKeySize`).
pub const MAX_KEY_SIZE: usize = 32768;
/// Longest value bbolt accepts (bbolt `bucket.go`, `MaxValueSize`).
pub const MAX_VALUE_SIZE: usize = (1 << 31) - 2;
/// A bucket is stored inline in its parent's leaf when it is one leaf of at most this
/// fraction of a page and holds no sub-buckets (bbolt `maxInlineBucketSize`: page/4).
pub const INLINE_BUCKET_DIVISOR: usize = 4;
/// bbolt's default fill percent (`DefaultFillPercent`).
pub const BBOLT_DEFAULT_FILL_PERCENT: f64 = 0.5;
/// The fill percent etcd sets for its sequential puts and for defragmentation
/// (`batch_tx.go` and `backend.go`): the writer's default.
pub const ETCD_FILL_PERCENT: f64 = 0.9;
/// Bounds of the fill percent (bbolt `minFillPercent`, `maxFillPercent`).
pub const MIN_FILL_PERCENT: f64 = 0.1;
/// See [`MIN_FILL_PERCENT`].
pub const MAX_FILL_PERCENT: f64 = 1.0;

/// Deepest B+tree the reader follows (ours). Every branch holds at least two children in
/// a tree bbolt writes, so 64 levels is far beyond any file that fits a 64-bit offset.
pub const MAX_TREE_DEPTH: usize = 64;
/// Deepest bucket nesting the reader follows (ours; etcd nests none).
pub const MAX_BUCKET_DEPTH: usize = 64;

pub(crate) fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

pub(crate) fn u32_at(b: &[u8], off: usize) -> u32 {
    let mut a = [0; 4];
    a.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(a)
}

pub(crate) fn u64_at(b: &[u8], off: usize) -> u64 {
    let mut a = [0; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}

/// Bytes [`starts_like_bbolt`] needs: page 0's header and the meta's magic.
pub const SIGNATURE_LEN: usize = PAGE_HEADER_SIZE + 4;

/// Whether `head`, the first bytes of a file, look like a bbolt database: page 0 is a
/// meta page carrying bbolt's magic. Cheap enough to tell formats apart before opening;
/// [`crate::Db::open`] does the real validation (a damaged meta 0 fails this test even
/// where meta 1 would open the file).
pub fn starts_like_bbolt(head: &[u8]) -> bool {
    head.len() >= SIGNATURE_LEN
        && PageHeader::parse(head).flags == META_PAGE_FLAG
        && u32_at(head, PAGE_HEADER_SIZE) == MAGIC
}

/// FNV-1a, 64 bits: the meta page checksum (Go's `hash/fnv` `New64a`).
pub fn fnv1a64(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A page header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PageHeader {
    pub id: u64,
    pub flags: u16,
    pub count: u16,
    pub overflow: u32,
}

impl PageHeader {
    /// Reads a header from the first 16 bytes of `b` (which must hold them).
    pub fn parse(b: &[u8]) -> PageHeader {
        PageHeader {
            id: u64_at(b, 0),
            flags: u16_at(b, 8),
            count: u16_at(b, 10),
            overflow: u32_at(b, 12),
        }
    }

    pub fn encode(&self) -> [u8; PAGE_HEADER_SIZE] {
        let mut out = [0; PAGE_HEADER_SIZE];
        out[0..8].copy_from_slice(&self.id.to_le_bytes());
        out[8..10].copy_from_slice(&self.flags.to_le_bytes());
        out[10..12].copy_from_slice(&self.count.to_le_bytes());
        out[12..16].copy_from_slice(&self.overflow.to_le_bytes());
        out
    }
}

/// The fields of a meta page (what follows its page header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// Always [`MAGIC`] in a valid meta.
    pub magic: u32,
    /// Always [`VERSION`] in a valid meta.
    pub version: u32,
    /// The file's page size.
    pub page_size: u32,
    /// Unused by bbolt (always 0).
    pub flags: u32,
    /// The root bucket's root page.
    pub root: u64,
    /// The root bucket's sequence (unused by bbolt, 0).
    pub sequence: u64,
    /// The freelist page, or [`NO_FREELIST`].
    pub freelist: u64,
    /// The high water mark: the number of pages in use (ids `0..pgid`).
    pub pgid: u64,
    /// The id of the transaction that wrote this meta.
    pub txid: u64,
    /// FNV-1a 64 of the meta's first 56 bytes.
    pub checksum: u64,
}

impl Meta {
    /// Decodes a meta from the 64 bytes after a meta page's header.
    pub fn decode(b: &[u8; META_SIZE]) -> Meta {
        Meta {
            magic: u32_at(b, 0),
            version: u32_at(b, 4),
            page_size: u32_at(b, 8),
            flags: u32_at(b, 12),
            root: u64_at(b, 16),
            sequence: u64_at(b, 24),
            freelist: u64_at(b, 32),
            pgid: u64_at(b, 40),
            txid: u64_at(b, 48),
            checksum: u64_at(b, 56),
        }
    }

    /// Encodes the meta, recomputing the checksum.
    pub fn encode(&self) -> [u8; META_SIZE] {
        let mut b = [0; META_SIZE];
        b[0..4].copy_from_slice(&self.magic.to_le_bytes());
        b[4..8].copy_from_slice(&self.version.to_le_bytes());
        b[8..12].copy_from_slice(&self.page_size.to_le_bytes());
        b[12..16].copy_from_slice(&self.flags.to_le_bytes());
        b[16..24].copy_from_slice(&self.root.to_le_bytes());
        b[24..32].copy_from_slice(&self.sequence.to_le_bytes());
        b[32..40].copy_from_slice(&self.freelist.to_le_bytes());
        b[40..48].copy_from_slice(&self.pgid.to_le_bytes());
        b[48..56].copy_from_slice(&self.txid.to_le_bytes());
        let sum = fnv1a64(&b[..META_CHECKSUM_OFFSET]);
        b[56..64].copy_from_slice(&sum.to_le_bytes());
        b
    }

    /// The checksum the meta's fields call for.
    pub fn computed_checksum(&self) -> u64 {
        let b = self.encode();
        fnv1a64(&b[..META_CHECKSUM_OFFSET])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_known_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn meta_round_trip() {
        let m = Meta {
            magic: MAGIC,
            version: VERSION,
            page_size: 4096,
            flags: 0,
            root: 3,
            sequence: 0,
            freelist: 2,
            pgid: 4,
            txid: 1,
            checksum: 0,
        };
        let b = m.encode();
        let d = Meta::decode(&b);
        assert_eq!(d.checksum, m.computed_checksum());
        assert_eq!(Meta { checksum: d.checksum, ..m }, d);
    }
}
