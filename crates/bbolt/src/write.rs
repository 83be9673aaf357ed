//! The streaming writer: builds each bucket's B+tree bottom-up as pairs arrive in key
//! order and writes every page once, in page id order.

use std::io::{self, Seek, SeekFrom, Write};

use crate::error::{Error, Result};
use crate::format::*;

/// Most elements the writer puts on one page (a page's `count` is a u16; bbolt refuses
/// 0xFFFF and more in `node.write`).
pub const MAX_ELEMENTS_PER_PAGE: usize = 0xFFFF - 1;

/// Fewest elements a page holds before it may be closed for size (bbolt `node.go`,
/// `minKeysPerPage`, which its split honours).
pub const MIN_KEYS_PER_PAGE: usize = 2;

/// The page the writer leaves the (empty) freelist on; data pages follow it.
pub const FREELIST_PAGE: u64 = 2;

/// How the writer lays out the file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WriterOptions {
    /// Page size, a power of two in `MIN_PAGE_SIZE..=MAX_PAGE_SIZE`; 4096 by default.
    pub page_size: u32,
    /// How full the writer fills a page before it starts the next, as bbolt's
    /// `Bucket.FillPercent` (clamped to 0.1..=1.0). Default [`ETCD_FILL_PERCENT`] (0.9),
    /// what etcd uses for its sequential puts and defragmentation.
    pub fill_percent: f64,
    /// The transaction id of the newer meta (at least 1); the other meta page gets
    /// `txid - 1`. Each sits on page `txid % 2`, where bbolt would have written it.
    pub txid: u64,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions { page_size: DEFAULT_PAGE_SIZE, fill_percent: ETCD_FILL_PERCENT, txid: 1 }
    }
}

/// Where the metas point: what a dry run computes so a plain `Write` can be given the
/// metas before the pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Page size.
    pub page_size: u32,
    /// The root bucket's root page.
    pub root: u64,
    /// Number of pages (the high water mark): the file is `pages * page_size` bytes.
    pub pages: u64,
}

impl Layout {
    /// The file's size in bytes.
    pub fn file_size(&self) -> u64 {
        self.pages * u64::from(self.page_size)
    }
}

/// One element waiting for its page: a leaf pair (or sub-bucket), or a branch entry.
struct Item {
    key: Vec<u8>,
    value: Vec<u8>,
    flags: u32,
    child: u64,
}

struct Level {
    items: Vec<Item>,
    /// The page's size so far: header plus elements plus data.
    size: usize,
}

impl Level {
    fn new() -> Level {
        Level { items: Vec::new(), size: PAGE_HEADER_SIZE }
    }
}

/// The open bucket's tree: one pending node per level (level 0 holds leaf pairs).
struct BucketBuilder {
    name: Vec<u8>,
    sequence: u64,
    levels: Vec<Level>,
    last_key: Option<Vec<u8>>,
    has_sub_buckets: bool,
}

impl BucketBuilder {
    fn new(name: Vec<u8>) -> BucketBuilder {
        BucketBuilder {
            name,
            sequence: 0,
            levels: vec![Level::new()],
            last_key: None,
            has_sub_buckets: false,
        }
    }

    fn check_order(&self, key: &[u8]) -> Result<()> {
        if key.is_empty() {
            return Err(Error::usage("empty key"));
        }
        if key.len() > MAX_KEY_SIZE {
            return Err(Error::usage(format!(
                "key of {} bytes, over bbolt's {MAX_KEY_SIZE}",
                key.len()
            )));
        }
        if let Some(last) = &self.last_key
            && last.as_slice() >= key
        {
            return Err(Error::usage(format!(
                "keys must be strictly increasing in a bucket: {key:02x?} after {last:02x?}"
            )));
        }
        Ok(())
    }

    /// Adds `item` at `level`, writing out the level's node when the item would overfill
    /// it, which adds a branch entry one level up (and so on).
    fn push<W: Write>(
        &mut self,
        sink: &mut Sink<W>,
        mut level: usize,
        mut item: Item,
        threshold: usize,
    ) -> Result<()> {
        loop {
            if self.levels.len() == level {
                self.levels.push(Level::new());
            }
            let branch = level > 0;
            let elsize = element_size(branch, &item);
            let lvl = &mut self.levels[level];
            // A node keeps at least two elements whatever their size, as bbolt's do: a
            // branch so the tree's height is logarithmic, a leaf so large values pack as
            // etcd's files do (two 4 KiB values share three pages rather than taking two
            // pages each).
            let full = (lvl.items.len() >= MIN_KEYS_PER_PAGE && lvl.size + elsize > threshold)
                || lvl.items.len() >= MAX_ELEMENTS_PER_PAGE;
            if !full {
                lvl.items.push(item);
                lvl.size += elsize;
                return Ok(());
            }
            let items = std::mem::replace(&mut lvl.items, vec![item]);
            lvl.size = PAGE_HEADER_SIZE + elsize;
            let pgid = sink.write_node(branch, &items)?;
            item = branch_item(items, pgid);
            level += 1;
        }
    }

    /// Writes out what is pending, bottom-up, and returns the bucket's value: its header,
    /// plus the page itself for an inline bucket.
    fn finish<W: Write>(
        mut self,
        sink: &mut Sink<W>,
        inline_ok: bool,
        threshold: usize,
    ) -> Result<Vec<u8>> {
        let mut value = Vec::with_capacity(BUCKET_HEADER_SIZE);
        if inline_ok
            && self.levels.len() == 1
            && !self.has_sub_buckets
            && self.levels[0].size <= sink.page_size / INLINE_BUCKET_DIVISOR
        {
            value.extend_from_slice(&0u64.to_le_bytes());
            value.extend_from_slice(&self.sequence.to_le_bytes());
            let items = &self.levels[0].items;
            let (prefix, _) = node_prefix(false, items, 0, 0);
            value.extend_from_slice(&prefix);
            for it in items {
                value.extend_from_slice(&it.key);
                value.extend_from_slice(&it.value);
            }
            return Ok(value);
        }
        let mut level = 0;
        let root = loop {
            let top = level + 1 == self.levels.len();
            let items = std::mem::take(&mut self.levels[level].items);
            let pgid = sink.write_node(level > 0, &items)?;
            if top {
                break pgid;
            }
            if items.is_empty() {
                return Err(Error::usage("internal: empty node below the top level"));
            }
            self.push(sink, level + 1, branch_item(items, pgid), threshold)?;
            level += 1;
        };
        value.extend_from_slice(&root.to_le_bytes());
        value.extend_from_slice(&self.sequence.to_le_bytes());
        Ok(value)
    }
}

fn element_size(branch: bool, item: &Item) -> usize {
    if branch {
        BRANCH_ELEMENT_SIZE + item.key.len()
    } else {
        LEAF_ELEMENT_SIZE + item.key.len() + item.value.len()
    }
}

/// The branch entry for a written node: its first key and its page.
fn branch_item(items: Vec<Item>, pgid: u64) -> Item {
    let key = items.into_iter().next().map(|i| i.key).unwrap_or_default();
    Item { key, value: Vec::new(), flags: 0, child: pgid }
}

/// A node's header and element table, and the node's total size in bytes.
fn node_prefix(branch: bool, items: &[Item], id: u64, overflow: u32) -> (Vec<u8>, usize) {
    let n = items.len();
    let hdr = PageHeader {
        id,
        flags: if branch { BRANCH_PAGE_FLAG } else { LEAF_PAGE_FLAG },
        count: n as u16,
        overflow,
    };
    let mut out = Vec::with_capacity(PAGE_HEADER_SIZE + n * LEAF_ELEMENT_SIZE);
    out.extend_from_slice(&hdr.encode());
    let mut data_off = PAGE_HEADER_SIZE + n * LEAF_ELEMENT_SIZE;
    for (i, it) in items.iter().enumerate() {
        let elem_off = PAGE_HEADER_SIZE + i * LEAF_ELEMENT_SIZE;
        let pos = (data_off - elem_off) as u32;
        if branch {
            out.extend_from_slice(&pos.to_le_bytes());
            out.extend_from_slice(&(it.key.len() as u32).to_le_bytes());
            out.extend_from_slice(&it.child.to_le_bytes());
            data_off += it.key.len();
        } else {
            out.extend_from_slice(&it.flags.to_le_bytes());
            out.extend_from_slice(&pos.to_le_bytes());
            out.extend_from_slice(&(it.key.len() as u32).to_le_bytes());
            out.extend_from_slice(&(it.value.len() as u32).to_le_bytes());
            data_off += it.key.len() + it.value.len();
        }
    }
    (out, data_off)
}

/// Numbers and writes pages in order.
struct Sink<W> {
    out: W,
    page_size: usize,
    next_pgid: u64,
    scratch: Vec<u8>,
}

const ZEROS: [u8; 4096] = [0; 4096];

impl<W: Write> Sink<W> {
    fn write_zeros(&mut self, mut n: usize) -> io::Result<()> {
        while n > 0 {
            let k = n.min(ZEROS.len());
            self.out.write_all(&ZEROS[..k])?;
            n -= k;
        }
        Ok(())
    }

    /// Writes a branch or leaf node on the next page(s); returns its page id.
    fn write_node(&mut self, branch: bool, items: &[Item]) -> Result<u64> {
        let ps = self.page_size;
        let id = self.next_pgid;
        let (_, total) = node_prefix(branch, items, 0, 0);
        let pages = total.div_ceil(ps).max(1);
        let overflow = u32::try_from(pages - 1)
            .map_err(|_| Error::usage("node too large for one bbolt page run"))?;
        let (prefix, _) = node_prefix(branch, items, id, overflow);
        if pages == 1 {
            let mut buf = std::mem::take(&mut self.scratch);
            buf.clear();
            buf.extend_from_slice(&prefix);
            for it in items {
                buf.extend_from_slice(&it.key);
                if !branch {
                    buf.extend_from_slice(&it.value);
                }
            }
            buf.resize(ps, 0);
            let r = self.out.write_all(&buf);
            self.scratch = buf;
            r?;
        } else {
            // A large value: write its parts rather than copy it again.
            self.out.write_all(&prefix)?;
            for it in items {
                self.out.write_all(&it.key)?;
                if !branch {
                    self.out.write_all(&it.value)?;
                }
            }
            self.write_zeros(pages * ps - total)?;
        }
        self.next_pgid += pages as u64;
        Ok(id)
    }
}

enum Metas<W> {
    /// Placeholders were written; seek back at the end.
    Seek(fn(&mut W, &[u8]) -> io::Result<()>),
    /// The metas were written first from a dry run's layout; check it at the end.
    Planned(Layout),
    /// A dry run: nothing to write.
    Discard,
}

fn write_metas_at_start<W: Write + Seek>(w: &mut W, metas: &[u8]) -> io::Result<()> {
    let end = w.stream_position()?;
    w.seek(SeekFrom::Start(0))?;
    w.write_all(metas)?;
    w.seek(SeekFrom::Start(end))?;
    Ok(())
}

/// Writes a bbolt file from buckets given in key order, each bucket's pairs in key order,
/// page after page.
///
/// Memory is one pending page per tree level per open bucket (a pair larger than a page
/// is held until its page is written), never the data size. Every page is written once
/// and in id order, so the output can be a socket or a hasher.
///
/// The meta pages come first in the file but depend on the whole tree. Two ways:
/// - [`Writer::new`] on a `Write + Seek` writes placeholders and seeks back at the end.
/// - For a plain `Write`, run the same input through [`Writer::dry_run`] (no I/O, same
///   layout: it depends only on the sizes and order of keys and values) and give its
///   [`Layout`] to [`Writer::with_layout`], which writes the metas first and checks at
///   the end that the data produced the same layout.
///
/// ```
/// use oxetcd_bbolt::{Db, Writer, WriterOptions};
/// let mut w = Writer::new(std::io::Cursor::new(Vec::new()), WriterOptions::default())?;
/// w.begin_bucket(b"key")?;
/// w.put(b"k1", b"v1")?;
/// w.end_bucket()?;
/// let (out, _layout) = w.finish()?;
/// let db = Db::from_reader(out.into_inner())?;
/// assert_eq!(db.bucket(b"key")?.unwrap().get(b"k1")?, Some(b"v1".to_vec()));
/// # Ok::<(), oxetcd_bbolt::Error>(())
/// ```
pub struct Writer<W: Write> {
    sink: Sink<W>,
    opts: WriterOptions,
    threshold: usize,
    /// `stack[0]` is the root bucket; the last is the bucket being written.
    stack: Vec<BucketBuilder>,
    metas: Metas<W>,
    failed: bool,
}

impl<W: Write + Seek> Writer<W> {
    /// A writer on a seekable output: metas are written last, at the start.
    pub fn new(out: W, opts: WriterOptions) -> Result<Writer<W>> {
        Writer::start(out, opts, Metas::Seek(write_metas_at_start::<W>))
    }
}

impl Writer<io::Sink> {
    /// A writer that writes nothing, to compute the [`Layout`] for
    /// [`Writer::with_layout`].
    pub fn dry_run(opts: WriterOptions) -> Result<Writer<io::Sink>> {
        Writer::start(io::sink(), opts, Metas::Discard)
    }
}

impl<W: Write> Writer<W> {
    /// A writer on any output, given the layout a dry run of the same input produced:
    /// the metas go out first.
    pub fn with_layout(out: W, opts: WriterOptions, layout: Layout) -> Result<Writer<W>> {
        if layout.page_size != opts.page_size {
            return Err(Error::usage(format!(
                "layout page size {} differs from the options' {}",
                layout.page_size, opts.page_size
            )));
        }
        Writer::start(out, opts, Metas::Planned(layout))
    }

    fn start(out: W, opts: WriterOptions, metas: Metas<W>) -> Result<Writer<W>> {
        let ps = opts.page_size;
        if !ps.is_power_of_two() || !(MIN_PAGE_SIZE..=MAX_PAGE_SIZE).contains(&ps) {
            return Err(Error::usage(format!("unsupported page size {ps}")));
        }
        if opts.txid == 0 {
            return Err(Error::usage("txid must be at least 1"));
        }
        if opts.fill_percent.is_nan() {
            return Err(Error::usage("fill percent is NaN"));
        }
        let fill = opts.fill_percent.clamp(MIN_FILL_PERCENT, MAX_FILL_PERCENT);
        let mut w = Writer {
            sink: Sink {
                out,
                page_size: ps as usize,
                next_pgid: 0,
                scratch: Vec::with_capacity(ps as usize),
            },
            opts,
            threshold: (f64::from(ps) * fill) as usize,
            stack: vec![BucketBuilder::new(Vec::new())],
            metas,
            failed: false,
        };
        match w.metas {
            Metas::Planned(layout) => {
                let bytes = w.meta_pages(layout);
                w.sink.out.write_all(&bytes)?;
            }
            _ => w.sink.write_zeros(2 * ps as usize)?,
        }
        // An empty freelist page.
        let mut page =
            PageHeader { id: FREELIST_PAGE, flags: FREELIST_PAGE_FLAG, count: 0, overflow: 0 }
                .encode()
                .to_vec();
        page.resize(ps as usize, 0);
        w.sink.out.write_all(&page)?;
        w.sink.next_pgid = FREELIST_PAGE + 1;
        Ok(w)
    }

    /// The two meta pages for `layout`.
    fn meta_pages(&self, layout: Layout) -> Vec<u8> {
        let ps = self.opts.page_size as usize;
        let newest = self.opts.txid;
        let mut out = vec![0; 2 * ps];
        for id in 0..2u64 {
            let txid = if newest % 2 == id { newest } else { newest - 1 };
            let meta = Meta {
                magic: MAGIC,
                version: VERSION,
                page_size: self.opts.page_size,
                flags: 0,
                root: layout.root,
                sequence: 0,
                freelist: FREELIST_PAGE,
                pgid: layout.pages,
                txid,
                checksum: 0,
            };
            let hdr = PageHeader { id, flags: META_PAGE_FLAG, count: 0, overflow: 0 };
            let at = id as usize * ps;
            out[at..at + PAGE_HEADER_SIZE].copy_from_slice(&hdr.encode());
            out[at + PAGE_HEADER_SIZE..at + PAGE_HEADER_SIZE + META_SIZE]
                .copy_from_slice(&meta.encode());
        }
        out
    }

    fn guard<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        if self.failed {
            return Err(Error::usage("an earlier call failed; the output is unusable"));
        }
        let r = f(self);
        if r.is_err() {
            self.failed = true;
        }
        r
    }

    /// Starts bucket `name` inside the current bucket (a top-level bucket when none is
    /// open). Its name must sort after the current bucket's previous key.
    pub fn begin_bucket(&mut self, name: &[u8]) -> Result<()> {
        self.guard(|w| {
            let parent = w.stack.last_mut().ok_or_else(|| Error::usage("finished"))?;
            parent.check_order(name)?;
            parent.last_key = Some(name.to_vec());
            w.stack.push(BucketBuilder::new(name.to_vec()));
            Ok(())
        })
    }

    /// Sets the open bucket's sequence (bbolt's `SetSequence`).
    pub fn set_sequence(&mut self, sequence: u64) -> Result<()> {
        self.guard(|w| {
            if w.stack.len() < 2 {
                return Err(Error::usage("set_sequence outside a bucket"));
            }
            if let Some(b) = w.stack.last_mut() {
                b.sequence = sequence;
            }
            Ok(())
        })
    }

    /// Adds a pair to the open bucket; keys strictly increasing.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.guard(|w| {
            if w.stack.len() < 2 {
                return Err(Error::usage("put outside a bucket (the root holds only buckets)"));
            }
            if value.len() > MAX_VALUE_SIZE {
                return Err(Error::usage(format!(
                    "value of {} bytes, over bbolt's {MAX_VALUE_SIZE}",
                    value.len()
                )));
            }
            let threshold = w.threshold;
            let b = w.stack.last_mut().ok_or_else(|| Error::usage("finished"))?;
            b.check_order(key)?;
            b.last_key = Some(key.to_vec());
            let item = Item { key: key.to_vec(), value: value.to_vec(), flags: 0, child: 0 };
            b.push(&mut w.sink, 0, item, threshold)
        })
    }

    /// Ends the open bucket, writing what is pending of its tree (or storing it inline in
    /// its parent when it is one small leaf without sub-buckets, as bbolt does).
    pub fn end_bucket(&mut self) -> Result<()> {
        self.guard(|w| {
            if w.stack.len() < 2 {
                return Err(Error::usage("end_bucket without an open bucket"));
            }
            let threshold = w.threshold;
            let Some(b) = w.stack.pop() else {
                return Err(Error::usage("end_bucket without an open bucket"));
            };
            let name = b.name.clone();
            let value = b.finish(&mut w.sink, true, threshold)?;
            let parent = w.stack.last_mut().ok_or_else(|| Error::usage("finished"))?;
            parent.has_sub_buckets = true;
            let item = Item { key: name, value, flags: BUCKET_LEAF_FLAG, child: 0 };
            parent.push(&mut w.sink, 0, item, threshold)
        })
    }

    /// Bytes written so far.
    pub fn bytes_written(&self) -> u64 {
        self.sink.next_pgid * self.sink.page_size as u64
    }

    /// Writes the root bucket's tree and the metas; returns the output and the layout.
    pub fn finish(mut self) -> Result<(W, Layout)> {
        if self.failed {
            return Err(Error::usage("an earlier call failed; the output is unusable"));
        }
        if self.stack.len() != 1 {
            let open = self.stack.last().map(|b| b.name.clone()).unwrap_or_default();
            return Err(Error::usage(format!("bucket {open:02x?} not ended before finish")));
        }
        let threshold = self.threshold;
        let root_builder = self.stack.pop().ok_or_else(|| Error::usage("finished"))?;
        let value = root_builder.finish(&mut self.sink, false, threshold)?;
        let layout = Layout {
            page_size: self.opts.page_size,
            root: u64_at(&value, 0),
            pages: self.sink.next_pgid,
        };
        match &self.metas {
            Metas::Seek(f) => {
                let bytes = self.meta_pages(layout);
                f(&mut self.sink.out, &bytes)?;
            }
            Metas::Planned(planned) => {
                if *planned != layout {
                    return Err(Error::usage(format!(
                        "the data differ from the dry run: planned {planned:?}, wrote {layout:?}"
                    )));
                }
            }
            Metas::Discard => {}
        }
        self.sink.out.flush()?;
        Ok((self.sink.out, layout))
    }
}
