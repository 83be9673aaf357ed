//! etcd's backend file in and out: a bbolt database whose top-level buckets are the
//! backend's tables.
//!
//! The mapping is one to one because the store was laid out as etcd's backend from the
//! start: every table has the name of etcd's bucket and holds its keys and values in
//! etcd's encodings (`key`: 17-byte revisions → `mvccpb.KeyValue`; `meta`: etcd's key
//! names; `lease`, `auth`, `authUsers`, `authRoles`, `alarm` as the server writes them).
//! etcd's own buckets that oxetcd does not use (`members`, `members_removed`, `cluster`)
//! come in as tables and go back out as buckets unchanged. So a conversion copies rows
//! and never decodes them; the store's open (which decodes every row of `key`) is what
//! checks that the contents make sense.
//!
//! Both directions stream: [`write_bbolt`] walks a read view table by table into the
//! `oxetcd-bbolt` writer, [`import_bbolt`] walks the bbolt file bucket by bucket into a
//! new redb file in chunks. Memory stays flat in the database's size.

use std::io::{Seek, Write};
use std::ops::ControlFlow;
use std::path::Path;

/// A bbolt copy's layout, as [`bbolt_layout`] computes it for [`stream_bbolt`].
pub use oxetcd_bbolt::Layout;
use oxetcd_bbolt::{Db, Writer, WriterOptions};

use crate::backend::Snapshot;
use crate::backend::redb::NewFile;
use crate::error::{Error, Result};

/// The formats a backend file (`member/snap/db`, a snapshot file) can be in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendFormat {
    /// etcd's: bbolt.
    Bbolt,
    /// oxetcd's own: redb.
    Redb,
}

/// What the file at `path` holds, from its first page. A file that is neither (empty,
/// or too short to tell) is reported as redb, whose open then decides.
pub fn detect_format(path: &Path) -> Result<BackendFormat> {
    use std::io::Read;
    let mut head = [0u8; oxetcd_bbolt::format::SIGNATURE_LEN];
    let mut file = std::fs::File::open(path)
        .map_err(|e| Error::Backend(format!("opening {}: {e}", path.display())))?;
    let mut read = 0;
    while read < head.len() {
        match file.read(&mut head[read..]) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(e) => return Err(Error::Backend(format!("reading {}: {e}", path.display()))),
        }
    }
    Ok(if oxetcd_bbolt::format::starts_like_bbolt(&head[..read]) {
        BackendFormat::Bbolt
    } else {
        BackendFormat::Redb
    })
}

fn bbolt_error(what: &str, e: oxetcd_bbolt::Error) -> Error {
    Error::Corrupt(format!("{what}: {e}"))
}

/// Writes every table of `snapshot` as a bbolt database, one top-level bucket per table
/// (tables come in byte order, as bbolt needs), to `out`. Returns `out` and the bytes
/// written.
pub fn write_bbolt<S: Snapshot, W: Write + Seek>(snapshot: &S, out: W) -> Result<(W, u64)> {
    let writer = Writer::new(out, WriterOptions::default()).map_err(writing)?;
    let (out, layout) = copy_tables(snapshot, writer)?;
    Ok((out, layout.file_size()))
}

/// The layout a bbolt copy of `snapshot` will have, from a dry run that reads every row
/// and writes nothing: its size, and what [`stream_bbolt`] needs to send it front to
/// back.
pub fn bbolt_layout<S: Snapshot>(snapshot: &S) -> Result<Layout> {
    let writer = Writer::dry_run(WriterOptions::default()).map_err(writing)?;
    Ok(copy_tables(snapshot, writer)?.1)
}

/// Writes `snapshot` as a bbolt database to an output that cannot seek (a stream to a
/// client), page after page from the first, given the [`bbolt_layout`] of the same
/// snapshot (checked again at the end). Returns `out`.
pub fn stream_bbolt<S: Snapshot, W: Write>(snapshot: &S, layout: Layout, out: W) -> Result<W> {
    let writer = Writer::with_layout(out, WriterOptions::default(), layout).map_err(writing)?;
    Ok(copy_tables(snapshot, writer)?.0)
}

fn writing(e: oxetcd_bbolt::Error) -> Error {
    bbolt_error("writing etcd's backend format", e)
}

fn copy_tables<S: Snapshot, W: Write>(snapshot: &S, mut writer: Writer<W>) -> Result<(W, Layout)> {
    for name in snapshot.tables()? {
        writer.begin_bucket(name.as_bytes()).map_err(writing)?;
        let mut failure = None;
        snapshot.scan(&name, &[], |k, v| match writer.put(k, v) {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => {
                failure = Some(e);
                ControlFlow::Break(())
            }
        })?;
        if let Some(e) = failure {
            return Err(writing(e));
        }
        writer.end_bucket().map_err(writing)?;
    }
    writer.finish().map_err(writing)
}

/// Write buffer of [`save_bbolt`]: the bbolt writer emits a page (4 KiB) at a time;
/// 1 MiB turns that into few large writes.
const BBOLT_WRITE_BUFFER_BYTES: usize = 1 << 20;

/// Writes `snapshot` as a bbolt database to a new file at `path`, synced (the caller
/// syncs the directory); returns its size.
pub fn save_bbolt<S: Snapshot>(snapshot: &S, path: &Path) -> Result<u64> {
    let failed =
        |what: &str, e: std::io::Error| Error::Backend(format!("{what} {}: {e}", path.display()));
    let file = std::fs::File::options()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| failed("creating", e))?;
    let out = std::io::BufWriter::with_capacity(BBOLT_WRITE_BUFFER_BYTES, file);
    let (out, bytes) = write_bbolt(snapshot, out)?;
    let file = out.into_inner().map_err(|e| failed("writing", e.into_error()))?;
    file.sync_all().map_err(|e| failed("syncing", e))?;
    Ok(bytes)
}

/// What [`export_bbolt`] wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exported {
    /// The raft index the backend holds everything up to (`meta/consistent_index`).
    pub consistent_index: u64,
    /// The new file's size.
    pub bytes: u64,
}

/// Writes oxetcd's backend file at `src` (redb) as etcd's (bbolt) to a new file at
/// `dst`: the way out of [`convert_in_place`]. `src` must not be in use: the caller
/// holds the data dir's lock.
pub fn export_bbolt(src: &Path, dst: &Path) -> Result<Exported> {
    let backend = crate::RedbBackend::open(src)?;
    let snapshot = crate::backend::Backend::snapshot(&backend)?;
    let consistent_index =
        crate::store::meta_u64(&snapshot, crate::backend::META_CONSISTENT_INDEX)?;
    let bytes = save_bbolt(&snapshot, dst)?;
    Ok(Exported { consistent_index, bytes })
}

/// What [`import_bbolt`] copied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Imported {
    /// Top-level buckets (tables).
    pub tables: u64,
    /// Key/value pairs.
    pub rows: u64,
    /// The new file's size.
    pub bytes: u64,
}

/// Copies every bucket of the bbolt file at `src` into a new redb file at `dst` (which
/// must not exist), durable when this returns. `progress` hears each table's name and
/// its row count once copied. Refuses, with [`Error::Corrupt`], a file bbolt's format
/// check fails on and anything etcd never writes (nested buckets, pairs outside a
/// bucket); `dst` is then left for the caller to remove.
pub fn import_bbolt(
    src: &Path,
    dst: &Path,
    mut progress: impl FnMut(&str, u64),
) -> Result<Imported> {
    let reading = |e| bbolt_error(&format!("reading {}", src.display()), e);
    let db = Db::open(src).map_err(reading)?;
    let file = NewFile::create(dst)?;
    let mut imported = Imported::default();
    for entry in db.root().cursor() {
        let entry = entry.map_err(reading)?;
        let name = String::from_utf8(entry.key.clone()).map_err(|_| {
            Error::Corrupt(format!(
                "{}: a bucket name is not UTF-8: {:?}",
                src.display(),
                entry.key
            ))
        })?;
        if !entry.is_bucket {
            return Err(Error::Corrupt(format!(
                "{}: key {name:?} outside any bucket (etcd keeps every key in a bucket)",
                src.display()
            )));
        }
        let bucket = db.root().open(&entry).map_err(reading)?;
        let rows = bucket.cursor().map(|e| {
            let e = e.map_err(reading)?;
            if e.is_bucket {
                return Err(Error::Corrupt(format!(
                    "{}: bucket {name:?} holds a nested bucket (etcd's never do)",
                    src.display()
                )));
            }
            Ok((e.key, e.value))
        });
        let copied = file.write_table(&name, rows)?;
        progress(&name, copied);
        imported.tables += 1;
        imported.rows += copied;
    }
    imported.bytes = file.finish()?;
    Ok(imported)
}

/// What [`import_bbolt`] writes its file as, beside the backend it converts.
pub const IMPORTING_SUFFIX: &str = ".importing";

/// Converts the backend file at `db` to oxetcd's format in place if it is etcd's (bbolt);
/// `None` if it already is oxetcd's. With `keep`, the original stays at that path (a hard
/// link, so it costs no space until the new file is written over).
///
/// Crash-safe at every step: the new file is built at `<db>.importing` (a stale one is
/// removed first) and only renamed over `db` once durable, then the directory is synced;
/// until the rename, `db` is the untouched bbolt file and the conversion simply starts
/// again.
pub fn convert_in_place(
    db: &Path,
    keep: Option<&Path>,
    progress: impl FnMut(&str, u64),
) -> Result<Option<Imported>> {
    if detect_format(db)? != BackendFormat::Bbolt {
        return Ok(None);
    }
    let io = |what: &str, path: &Path, e: std::io::Error| {
        Error::Backend(format!("{what} {}: {e}", path.display()))
    };
    let mut importing = db.as_os_str().to_owned();
    importing.push(IMPORTING_SUFFIX);
    let importing = std::path::PathBuf::from(importing);
    match std::fs::remove_file(&importing) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("removing", &importing, e)),
    }
    let imported = match import_bbolt(db, &importing, progress) {
        Ok(imported) => imported,
        Err(e) => {
            let _ = std::fs::remove_file(&importing);
            return Err(e);
        }
    };
    if let Some(keep) = keep {
        match std::fs::remove_file(keep) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("removing", keep, e)),
        }
        std::fs::hard_link(db, keep).map_err(|e| io("linking", keep, e))?;
    }
    std::fs::rename(&importing, db).map_err(|e| io("renaming", &importing, e))?;
    let dir = match db.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io("syncing", dir, e))?;
    Ok(Some(imported))
}
