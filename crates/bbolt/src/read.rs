//! The reader: positioned reads of single pages, never the whole file.

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::*;

/// A source of positioned reads: a file (pread), or bytes in memory (tests, fuzzing).
pub trait ReadAt {
    /// Fills `buf` from `offset`, or fails (an `UnexpectedEof` past the end).
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// The source's size in bytes.
    fn size(&self) -> io::Result<u64>;
}

impl ReadAt for File {
    #[cfg(unix)]
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(self, buf, offset)
    }

    #[cfg(windows)]
    fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        use std::os::windows::fs::FileExt;
        while !buf.is_empty() {
            match self.seek_read(buf, offset) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }
}

impl ReadAt for [u8] {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::UnexpectedEof)?;
        let end = start.checked_add(buf.len()).ok_or(io::ErrorKind::UnexpectedEof)?;
        let src = self.get(start..end).ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.len() as u64)
    }
}

impl ReadAt for Vec<u8> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.as_slice().read_exact_at(buf, offset)
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.len() as u64)
    }
}

impl<T: ReadAt + ?Sized> ReadAt for &T {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        (**self).read_exact_at(buf, offset)
    }

    fn size(&self) -> io::Result<u64> {
        (**self).size()
    }
}

impl<T: ReadAt + ?Sized> ReadAt for Arc<T> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        (**self).read_exact_at(buf, offset)
    }

    fn size(&self) -> io::Result<u64> {
        (**self).size()
    }
}

/// One element of a parsed page, with offsets validated against the page's bytes.
#[derive(Debug, Clone, Copy)]
struct Elem {
    key_start: usize,
    key_len: usize,
    value_len: usize,
    flags: u32,
    child: u64,
}

/// A parsed branch or leaf page (or an inline bucket's page).
#[derive(Debug)]
pub(crate) struct Node {
    id: u64,
    branch: bool,
    buf: Vec<u8>,
    elems: Vec<Elem>,
}

impl Node {
    /// Parses and validates a branch or leaf page. `id` is the page id (0 for an inline
    /// page, which must be a leaf); `pgid` is the high water mark branch children must be
    /// below.
    fn parse(buf: Vec<u8>, id: u64, inline: bool, pgid: u64) -> Result<Node> {
        let what = if inline { "inline bucket page" } else { "page" };
        if buf.len() < PAGE_HEADER_SIZE {
            return Err(Error::corrupt(id, format!("{what} shorter than a page header")));
        }
        let hdr = PageHeader::parse(&buf);
        let branch = match hdr.flags {
            LEAF_PAGE_FLAG => false,
            BRANCH_PAGE_FLAG if !inline => true,
            f => {
                let want = if inline { "a leaf" } else { "a branch or leaf" };
                return Err(Error::corrupt(
                    id,
                    format!("{what} has flags {f:#04x}, expected {want}"),
                ));
            }
        };
        let count = usize::from(hdr.count);
        if branch && count == 0 {
            return Err(Error::corrupt(id, "empty branch page"));
        }
        let table_end = PAGE_HEADER_SIZE + count * LEAF_ELEMENT_SIZE;
        if table_end > buf.len() {
            return Err(Error::corrupt(
                id,
                format!("{count} elements do not fit in the {what}'s {} bytes", buf.len()),
            ));
        }
        let mut elems = Vec::with_capacity(count);
        for i in 0..count {
            let off = PAGE_HEADER_SIZE + i * LEAF_ELEMENT_SIZE;
            let (flags, pos, key_len, value_len, child) = if branch {
                let child = u64_at(&buf, off + 8);
                if child < 2 || child >= pgid || child == id {
                    return Err(Error::corrupt(
                        id,
                        format!("element {i} points to page {child}, outside 2..{pgid} or itself"),
                    ));
                }
                (0, u32_at(&buf, off), u32_at(&buf, off + 4), 0, child)
            } else {
                let flags = u32_at(&buf, off);
                if flags & !BUCKET_LEAF_FLAG != 0 {
                    return Err(Error::corrupt(
                        id,
                        format!("element {i} has unknown flags {flags:#x}"),
                    ));
                }
                (flags, u32_at(&buf, off + 4), u32_at(&buf, off + 8), u32_at(&buf, off + 12), 0)
            };
            if key_len == 0 {
                return Err(Error::corrupt(id, format!("element {i} has an empty key")));
            }
            let start = off as u64 + u64::from(pos);
            let end = start + u64::from(key_len) + u64::from(value_len);
            if end > buf.len() as u64 {
                return Err(Error::corrupt(
                    id,
                    format!(
                        "element {i} runs to byte {end}, past the {what}'s {} bytes",
                        buf.len()
                    ),
                ));
            }
            elems.push(Elem {
                key_start: start as usize,
                key_len: key_len as usize,
                value_len: value_len as usize,
                flags,
                child,
            });
        }
        let node = Node { id, branch, buf, elems };
        for i in 1..node.len() {
            if node.key(i - 1) >= node.key(i) {
                return Err(Error::corrupt(id, format!("keys out of order at element {i}")));
            }
        }
        Ok(node)
    }

    fn len(&self) -> usize {
        self.elems.len()
    }

    fn key(&self, i: usize) -> &[u8] {
        let e = &self.elems[i];
        &self.buf[e.key_start..e.key_start + e.key_len]
    }

    fn value(&self, i: usize) -> &[u8] {
        let e = &self.elems[i];
        let start = e.key_start + e.key_len;
        &self.buf[start..start + e.value_len]
    }

    fn is_bucket(&self, i: usize) -> bool {
        self.elems[i].flags & BUCKET_LEAF_FLAG != 0
    }

    fn child(&self, i: usize) -> u64 {
        self.elems[i].child
    }

    /// The branch element to follow for `key`: the last whose key is <= `key`, or the
    /// first.
    fn branch_index(&self, key: &[u8]) -> usize {
        let mut lo = 0;
        let mut hi = self.len();
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.key(mid) <= key {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo.saturating_sub(1)
    }

    fn leaf_index(&self, key: &[u8]) -> Option<usize> {
        let mut lo = 0;
        let mut hi = self.len();
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.key(mid).cmp(key) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid),
            }
        }
        None
    }
}

/// An open bbolt file, read with positioned reads.
///
/// Memory stays flat in the file's size: a lookup holds one page per tree level and a
/// [`Cursor`] one page per level of the path it is on. A page that spans overflow pages
/// (a large value) is read whole.
#[derive(Debug)]
pub struct Db<R = File> {
    src: R,
    page_size: usize,
    meta: Meta,
    meta_note: Option<String>,
}

impl Db<File> {
    /// Opens the bbolt file at `path` read-only.
    pub fn open(path: impl AsRef<Path>) -> Result<Db<File>> {
        Db::from_reader(File::open(path)?)
    }
}

enum MetaCheck {
    Ok(Meta),
    Bad(String),
    /// Well-formed, but the file is shorter than it says (or than a meta page).
    Short(String, Option<u32>),
}

impl<R: ReadAt> Db<R> {
    /// Opens a bbolt database from a file or bytes: validates both meta pages (magic,
    /// version, checksum, page ids against the file's size) and uses the valid one with
    /// the higher transaction id, as bbolt does.
    pub fn from_reader(src: R) -> Result<Db<R>> {
        let size = src.size()?;
        let m0 = read_meta(&src, size, 0, None)?;
        let page_size = match &m0 {
            MetaCheck::Ok(m) => Some(m.page_size),
            MetaCheck::Short(_, Some(ps)) => Some(*ps),
            _ => {
                // Meta 0 is damaged, so its page size is unknown: look for meta 1 at the
                // page sizes bbolt may have used.
                let mut found = None;
                let mut ps = MIN_PAGE_SIZE;
                while ps <= MAX_PAGE_SIZE {
                    if let MetaCheck::Ok(_) | MetaCheck::Short(_, Some(_)) =
                        read_meta(&src, size, u64::from(ps), Some(ps))?
                    {
                        found = Some(ps);
                        break;
                    }
                    ps *= 2;
                }
                found
            }
        };
        let m1 = match page_size {
            Some(ps) => read_meta(&src, size, u64::from(ps), Some(ps))?,
            None => MetaCheck::Bad("no valid meta page at any page size".into()),
        };
        let (meta, meta_note) = match (m0, m1) {
            (MetaCheck::Ok(a), MetaCheck::Ok(b)) => (if b.txid > a.txid { b } else { a }, None),
            (MetaCheck::Ok(a), MetaCheck::Bad(r) | MetaCheck::Short(r, _)) => {
                (a, Some(format!("meta 1 refused ({r}); using meta 0")))
            }
            (MetaCheck::Bad(r) | MetaCheck::Short(r, _), MetaCheck::Ok(b)) => {
                (b, Some(format!("meta 0 refused ({r}); using meta 1")))
            }
            (MetaCheck::Short(a, _), MetaCheck::Short(b, _)) => {
                return Err(Error::Truncated(format!("meta 0: {a}; meta 1: {b}")));
            }
            (
                MetaCheck::Bad(meta0) | MetaCheck::Short(meta0, _),
                MetaCheck::Bad(meta1) | MetaCheck::Short(meta1, _),
            ) => return Err(Error::InvalidMeta { meta0, meta1 }),
        };
        Ok(Db { src, page_size: meta.page_size as usize, meta, meta_note })
    }

    /// The meta in use.
    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// The file's page size.
    pub fn page_size(&self) -> u32 {
        self.meta.page_size
    }

    /// The id of the transaction whose meta is in use.
    pub fn txid(&self) -> u64 {
        self.meta.txid
    }

    /// The database's size as bbolt counts it (`Tx.Size`): high water mark × page size.
    /// The file itself may be longer (bbolt grows files ahead).
    pub fn size(&self) -> u64 {
        self.meta.pgid * u64::from(self.meta.page_size)
    }

    /// Set when one meta page was refused and the other used: why (worth a warning).
    pub fn meta_note(&self) -> Option<&str> {
        self.meta_note.as_deref()
    }

    /// The root bucket: it holds the top-level buckets.
    pub fn root(&self) -> Bucket<'_, R> {
        Bucket {
            db: self,
            root: Root::Page(self.meta.root),
            sequence: self.meta.sequence,
            depth: 0,
        }
    }

    /// The top-level bucket `name`, if there is one.
    pub fn bucket(&self, name: &[u8]) -> Result<Option<Bucket<'_, R>>> {
        self.root().bucket(name)
    }

    /// The names of the top-level buckets, in order.
    pub fn buckets(&self) -> Result<Vec<Vec<u8>>> {
        self.root().buckets()
    }

    /// The stored free page ids, or `None` when the file keeps no freelist
    /// (`NoFreelistSync`, as etcd runs bbolt).
    pub fn freelist(&self) -> Result<Option<Vec<u64>>> {
        if self.meta.freelist == NO_FREELIST {
            return Ok(None);
        }
        let id = self.meta.freelist;
        let (hdr, buf) = self.read_page(id)?;
        if hdr.flags != FREELIST_PAGE_FLAG {
            return Err(Error::corrupt(id, format!("freelist page has flags {:#04x}", hdr.flags)));
        }
        let (start, count) = if hdr.count == FREELIST_COUNT_OVERFLOW {
            if buf.len() < PAGE_HEADER_SIZE + 8 {
                return Err(Error::corrupt(id, "freelist count missing"));
            }
            (PAGE_HEADER_SIZE + 8, u64_at(&buf, PAGE_HEADER_SIZE))
        } else {
            (PAGE_HEADER_SIZE, u64::from(hdr.count))
        };
        let room = ((buf.len() - start) / 8) as u64;
        if count > room {
            return Err(Error::corrupt(
                id,
                format!("freelist of {count} ids does not fit its {} bytes", buf.len()),
            ));
        }
        Ok(Some((0..count as usize).map(|i| u64_at(&buf, start + i * 8)).collect()))
    }

    /// Walks the whole database like bbolt's `Tx.Check`: every page below the high water
    /// mark is either reachable exactly once (metas, freelist, bucket trees) or free, no
    /// free page is reachable, every page has the type its place calls for, and keys are in
    /// order in every bucket. Returns what it counted.
    pub fn check(&self) -> Result<CheckStats> {
        let pgid = self.meta.pgid;
        let mut seen = Bitmap::new(pgid);
        let mut stats = CheckStats::default();
        seen.mark(0, 0, "meta")?;
        seen.mark(1, 0, "meta")?;
        let free = self.freelist()?;
        if let Some(free) = &free {
            let (hdr, _) = self.read_page(self.meta.freelist)?;
            seen.mark(self.meta.freelist, hdr.overflow, "freelist")?;
            for &id in free {
                if id < 2 || id >= pgid {
                    return Err(Error::corrupt(
                        self.meta.freelist,
                        format!("free page {id} outside 2..{pgid}"),
                    ));
                }
                seen.mark(id, 0, "free")?;
            }
            stats.free_pages = free.len() as u64;
        }
        self.check_bucket(&self.root(), &mut seen, &mut stats)?;
        if free.is_some() {
            if let Some(id) = seen.first_unmarked() {
                return Err(Error::corrupt(id, "page neither reachable nor free"));
            }
        } else {
            stats.free_pages = pgid - seen.count();
        }
        Ok(stats)
    }

    fn check_bucket(
        &self,
        bucket: &Bucket<'_, R>,
        seen: &mut Bitmap,
        stats: &mut CheckStats,
    ) -> Result<()> {
        let mut cursor = bucket.cursor();
        cursor.trace = Some(Vec::new());
        loop {
            let next = cursor.next();
            for (id, overflow) in cursor.trace.as_mut().map(std::mem::take).unwrap_or_default() {
                seen.mark(id, overflow, "tree")?;
                stats.tree_pages += u64::from(overflow) + 1;
            }
            let Some(entry) = next else { break };
            let entry = entry?;
            if entry.is_bucket {
                stats.buckets += 1;
                let child = bucket.open(&entry)?;
                self.check_bucket(&child, seen, stats)?;
            } else {
                stats.keys += 1;
            }
        }
        Ok(())
    }

    /// Reads page `id` with its overflow pages: its header and bytes.
    fn read_page(&self, id: u64) -> Result<(PageHeader, Vec<u8>)> {
        let pgid = self.meta.pgid;
        if id < 2 || id >= pgid {
            return Err(Error::corrupt(
                id,
                format!("page id outside the database's pages 2..{pgid}"),
            ));
        }
        let ps = self.page_size;
        let mut buf = vec![0; ps];
        self.src.read_exact_at(&mut buf, id * ps as u64)?;
        let hdr = PageHeader::parse(&buf);
        if hdr.id != id {
            return Err(Error::corrupt(id, format!("page header says id {}", hdr.id)));
        }
        let pages = u64::from(hdr.overflow) + 1;
        if id + pages > pgid {
            return Err(Error::corrupt(
                id,
                format!("{} overflow pages run past the high water mark {pgid}", hdr.overflow),
            ));
        }
        if pages > 1 {
            let total = usize::try_from(pages * ps as u64)
                .map_err(|_| Error::corrupt(id, "page too large for memory"))?;
            buf.resize(total, 0);
            self.src.read_exact_at(&mut buf[ps..], (id + 1) * ps as u64)?;
        }
        Ok((hdr, buf))
    }

    fn read_node(&self, id: u64) -> Result<(Arc<Node>, u32)> {
        let (hdr, buf) = self.read_page(id)?;
        Ok((Arc::new(Node::parse(buf, id, false, self.meta.pgid)?), hdr.overflow))
    }
}

fn read_meta<R: ReadAt>(
    src: &R,
    file_size: u64,
    offset: u64,
    expect_page_size: Option<u32>,
) -> Result<MetaCheck> {
    let need = offset + (PAGE_HEADER_SIZE + META_SIZE) as u64;
    if need > file_size {
        return Ok(MetaCheck::Short(
            format!("the file's {file_size} bytes end before the meta page at offset {offset}"),
            None,
        ));
    }
    let mut buf = [0u8; PAGE_HEADER_SIZE + META_SIZE];
    src.read_exact_at(&mut buf, offset)?;
    let hdr = PageHeader::parse(&buf);
    let mut raw = [0u8; META_SIZE];
    raw.copy_from_slice(&buf[PAGE_HEADER_SIZE..]);
    let m = Meta::decode(&raw);
    if m.magic != MAGIC {
        return Ok(MetaCheck::Bad(format!("magic {:#010x}, not bbolt's {MAGIC:#010x}", m.magic)));
    }
    if m.version != VERSION {
        return Ok(MetaCheck::Bad(format!("format version {}, expected {VERSION}", m.version)));
    }
    let sum = fnv1a64(&raw[..META_CHECKSUM_OFFSET]);
    if m.checksum != sum {
        return Ok(MetaCheck::Bad(format!("checksum {:#018x}, computed {sum:#018x}", m.checksum)));
    }
    if hdr.flags != META_PAGE_FLAG {
        return Ok(MetaCheck::Bad(format!("page flags {:#04x}, expected a meta page", hdr.flags)));
    }
    if !m.page_size.is_power_of_two() || !(MIN_PAGE_SIZE..=MAX_PAGE_SIZE).contains(&m.page_size) {
        return Ok(MetaCheck::Bad(format!("unsupported page size {}", m.page_size)));
    }
    if let Some(ps) = expect_page_size
        && m.page_size != ps
    {
        return Ok(MetaCheck::Bad(format!(
            "page size {} does not match its offset {offset}",
            m.page_size
        )));
    }
    if m.pgid < 3 {
        return Ok(MetaCheck::Bad(format!("high water mark {} too low", m.pgid)));
    }
    if m.root < 2 || m.root >= m.pgid {
        return Ok(MetaCheck::Bad(format!("root page {} outside 2..{}", m.root, m.pgid)));
    }
    if m.freelist != NO_FREELIST && (m.freelist < 2 || m.freelist >= m.pgid) {
        return Ok(MetaCheck::Bad(format!("freelist page {} outside 2..{}", m.freelist, m.pgid)));
    }
    match m.pgid.checked_mul(u64::from(m.page_size)) {
        Some(n) if n <= file_size => Ok(MetaCheck::Ok(m)),
        _ => Ok(MetaCheck::Short(
            format!(
                "meta (txid {}) needs {} pages of {} bytes, the file has {file_size} bytes",
                m.txid, m.pgid, m.page_size
            ),
            Some(m.page_size),
        )),
    }
}

/// What [`Db::check`] counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckStats {
    /// Buckets, nested ones included (not the root).
    pub buckets: u64,
    /// Key/value pairs (not bucket entries).
    pub keys: u64,
    /// Pages of bucket trees, overflow pages included.
    pub tree_pages: u64,
    /// Free pages (listed, or unreachable when no freelist is stored).
    pub free_pages: u64,
}

struct Bitmap {
    bits: Vec<u64>,
    len: u64,
}

impl Bitmap {
    fn new(len: u64) -> Bitmap {
        Bitmap { bits: vec![0; len.div_ceil(64) as usize], len }
    }

    fn mark(&mut self, id: u64, overflow: u32, what: &str) -> Result<()> {
        for p in id..=id + u64::from(overflow) {
            if p >= self.len {
                return Err(Error::corrupt(id, format!("{what} page beyond the high water mark")));
            }
            let (w, b) = ((p / 64) as usize, p % 64);
            if self.bits[w] & (1 << b) != 0 {
                return Err(Error::corrupt(
                    p,
                    format!("{what} page already used (referenced twice, or reachable and free)"),
                ));
            }
            self.bits[w] |= 1 << b;
        }
        Ok(())
    }

    fn count(&self) -> u64 {
        self.bits.iter().map(|w| u64::from(w.count_ones())).sum()
    }

    fn first_unmarked(&self) -> Option<u64> {
        (0..self.len).find(|&p| self.bits[(p / 64) as usize] & (1 << (p % 64)) == 0)
    }
}

#[derive(Debug, Clone)]
enum Root {
    Page(u64),
    Inline(Arc<Node>),
}

/// A bucket: a B+tree of its own, on pages or inline in its parent's value.
#[derive(Debug, Clone)]
pub struct Bucket<'db, R = File> {
    db: &'db Db<R>,
    root: Root,
    sequence: u64,
    depth: usize,
}

/// One entry of a bucket, in key order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key.
    pub key: Vec<u8>,
    /// The value; for a sub-bucket, its raw bucket header (and inline page).
    pub value: Vec<u8>,
    /// The entry is a sub-bucket (open it with [`Bucket::open`]).
    pub is_bucket: bool,
}

impl<'db, R: ReadAt> Bucket<'db, R> {
    /// The bucket's sequence (bbolt's `NextSequence` counter).
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// Whether the bucket is stored inline in its parent's leaf.
    pub fn is_inline(&self) -> bool {
        matches!(self.root, Root::Inline(_))
    }

    /// The value under `key`; `None` when absent or when `key` names a sub-bucket (as
    /// bbolt's `Get`).
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.lookup(key)?.filter(|(n, i)| !n.is_bucket(*i)).map(|(n, i)| n.value(i).to_vec()))
    }

    /// The sub-bucket `name`, if `name` is one.
    pub fn bucket(&self, name: &[u8]) -> Result<Option<Bucket<'db, R>>> {
        match self.lookup(name)? {
            Some((n, i)) if n.is_bucket(i) => Ok(Some(self.open_value(n.id, n.value(i))?)),
            _ => Ok(None),
        }
    }

    /// Opens the sub-bucket an entry of this bucket's cursor names.
    pub fn open(&self, entry: &Entry) -> Result<Bucket<'db, R>> {
        if !entry.is_bucket {
            return Err(Error::usage("entry is not a bucket"));
        }
        self.open_value(0, &entry.value)
    }

    /// The names of the sub-buckets, in order.
    pub fn buckets(&self) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        for e in self.cursor() {
            let e = e?;
            if e.is_bucket {
                out.push(e.key);
            }
        }
        Ok(out)
    }

    /// Every entry (pairs and sub-buckets) in key order.
    pub fn cursor(&self) -> Cursor<'db, R> {
        Cursor {
            db: self.db,
            root: self.root.clone(),
            stack: Vec::new(),
            started: false,
            done: false,
            last_key: None,
            visited: 0,
            trace: None,
        }
    }

    /// The key/value pairs in key order, sub-buckets left out.
    pub fn iter(&self) -> impl Iterator<Item = Result<(Vec<u8>, Vec<u8>)>> + use<'db, R> {
        self.cursor().filter_map(|e| match e {
            Ok(e) if e.is_bucket => None,
            Ok(e) => Some(Ok((e.key, e.value))),
            Err(e) => Some(Err(e)),
        })
    }

    fn open_value(&self, page: u64, value: &[u8]) -> Result<Bucket<'db, R>> {
        if self.depth >= MAX_BUCKET_DEPTH {
            return Err(Error::corrupt(
                page,
                format!("buckets nested deeper than {MAX_BUCKET_DEPTH}"),
            ));
        }
        if value.len() < BUCKET_HEADER_SIZE {
            return Err(Error::corrupt(
                page,
                format!("bucket value of {} bytes, shorter than its header", value.len()),
            ));
        }
        let root = u64_at(value, 0);
        let sequence = u64_at(value, 8);
        let root = if root == 0 {
            let node = Node::parse(value[BUCKET_HEADER_SIZE..].to_vec(), 0, true, 0)?;
            Root::Inline(Arc::new(node))
        } else {
            if root < 2 || root >= self.db.meta.pgid {
                return Err(Error::corrupt(
                    page,
                    format!("bucket root page {root} outside 2..{}", self.db.meta.pgid),
                ));
            }
            Root::Page(root)
        };
        Ok(Bucket { db: self.db, root, sequence, depth: self.depth + 1 })
    }

    fn load_root(&self) -> Result<Arc<Node>> {
        match &self.root {
            Root::Page(id) => Ok(self.db.read_node(*id)?.0),
            Root::Inline(n) => Ok(n.clone()),
        }
    }

    fn lookup(&self, key: &[u8]) -> Result<Option<(Arc<Node>, usize)>> {
        let mut node = self.load_root()?;
        let mut depth = 1;
        while node.branch {
            depth += 1;
            if depth > MAX_TREE_DEPTH {
                return Err(Error::corrupt(
                    node.id,
                    format!("tree deeper than {MAX_TREE_DEPTH} levels (a cycle?)"),
                ));
            }
            let child = node.child(node.branch_index(key));
            node = self.db.read_node(child)?.0;
        }
        Ok(node.leaf_index(key).map(|i| (node, i)))
    }
}

/// An in-order walk of a bucket's entries. Holds one page per tree level. Stops at the
/// first error (keys out of order across pages, more pages than the file holds, a tree
/// too deep, a malformed page).
#[derive(Debug)]
pub struct Cursor<'db, R = File> {
    db: &'db Db<R>,
    root: Root,
    stack: Vec<(Arc<Node>, usize)>,
    started: bool,
    done: bool,
    last_key: Option<Vec<u8>>,
    visited: u64,
    /// Pages loaded since last drained (id, overflow), for [`Db::check`].
    trace: Option<Vec<(u64, u32)>>,
}

impl<R: ReadAt> Cursor<'_, R> {
    fn load(&mut self, id: u64) -> Result<Arc<Node>> {
        self.visited += 1;
        if self.visited > self.db.meta.pgid {
            return Err(Error::corrupt(
                id,
                "bucket visits more pages than the file holds (a cycle or a shared page)",
            ));
        }
        if self.stack.len() >= MAX_TREE_DEPTH {
            return Err(Error::corrupt(
                id,
                format!("tree deeper than {MAX_TREE_DEPTH} levels (a cycle?)"),
            ));
        }
        let (node, overflow) = self.db.read_node(id)?;
        if let Some(t) = &mut self.trace {
            t.push((id, overflow));
        }
        Ok(node)
    }

    fn step(&mut self) -> Result<Option<Entry>> {
        if !self.started {
            self.started = true;
            let root = match self.root.clone() {
                Root::Page(id) => self.load(id)?,
                Root::Inline(n) => n,
            };
            self.stack.push((root, 0));
        } else if let Some(top) = self.stack.last_mut() {
            top.1 += 1;
        }
        loop {
            let Some((node, idx)) = self.stack.last() else {
                return Ok(None);
            };
            let (node, idx) = (node.clone(), *idx);
            if idx >= node.len() {
                self.stack.pop();
                match self.stack.last_mut() {
                    Some(top) => top.1 += 1,
                    None => return Ok(None),
                }
                continue;
            }
            if node.branch {
                let child = self.load(node.child(idx))?;
                self.stack.push((child, 0));
                continue;
            }
            let key = node.key(idx);
            if let Some(last) = &self.last_key
                && last.as_slice() >= key
            {
                return Err(Error::corrupt(
                    node.id,
                    "keys out of order across pages (a cycle or a misplaced page)",
                ));
            }
            let entry = Entry {
                key: key.to_vec(),
                value: node.value(idx).to_vec(),
                is_bucket: node.is_bucket(idx),
            };
            self.last_key = Some(entry.key.clone());
            return Ok(Some(entry));
        }
    }
}

impl<R: ReadAt> Iterator for Cursor<'_, R> {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Result<Entry>> {
        if self.done {
            return None;
        }
        match self.step() {
            Ok(Some(e)) => Some(Ok(e)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}
