//! A snapshot file: a backend file, then (in what `snapshot save` writes) etcd's trailer,
//! the SHA-256 of every byte before it.
//!
//! Like etcd, a file has a trailer when its size is 32 more than a multiple of 512: a
//! backend file is always a whole number of pages (redb's are 4 KiB, as bbolt's), so a
//! plain backend (a copied `member/snap/db`) never matches, and a saved snapshot always
//! does.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use oxetcd_mvcc::etcd_file;
use ring::digest::{Context, SHA256};

use crate::error::UtlError;
use crate::progress::Progress;

/// The trailer's length: one SHA-256 digest.
pub const TRAILER_BYTES: u64 = 32;
/// The sector size etcd's rule rests on: a backend file's size is a multiple of it.
const SECTOR_BYTES: u64 = 512;
/// The copy's read size.
const CHUNK_BYTES: usize = 1 << 20;

/// Whether a file of `size` bytes ends with the SHA-256 trailer (etcd's rule).
pub fn has_trailer(size: u64) -> bool {
    size % SECTOR_BYTES == TRAILER_BYTES
}

/// What [`copy_backend`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Copied {
    /// Bytes of backend copied: the file's size less the trailer.
    pub backend_bytes: u64,
    /// The trailer, if the file has one.
    pub trailer: Option<[u8; 32]>,
    /// The SHA-256 of the bytes copied.
    pub digest: [u8; 32],
}

impl Copied {
    /// etcd's check of the trailer: a file without one is refused unless `skip`; a
    /// trailer that is not the digest of the backend is refused unless `skip`.
    pub fn verify(&self, skip: bool) -> Result<(), UtlError> {
        match self.trailer {
            _ if skip => Ok(()),
            None => Err(UtlError::MissingHash),
            Some(expected) if expected != self.digest => {
                Err(UtlError::HashMismatch { expected, got: self.digest })
            }
            Some(_) => Ok(()),
        }
    }
}

/// The size of the file at `path` (etcd stats it first: `stat x: no such file`).
pub fn size(path: &Path) -> Result<u64, UtlError> {
    let meta = std::fs::metadata(path).map_err(UtlError::io("stat", path))?;
    Ok(meta.len())
}

/// Copies the backend part of the snapshot file `from` into a new file `to` (it must not
/// exist), hashing it on the way, reads the trailer if there is one, and syncs the copy.
pub fn copy_backend(from: &Path, to: &Path, progress: &Progress) -> Result<Copied, UtlError> {
    let total = size(from)?;
    let trailer_bytes = if has_trailer(total) { TRAILER_BYTES } else { 0 };
    let backend_bytes = total - trailer_bytes;
    let mut src = File::open(from).map_err(UtlError::io("open", from))?;
    let mut dst =
        File::options().write(true).create_new(true).open(to).map_err(UtlError::io("open", to))?;
    progress.start(backend_bytes);
    let mut sha = Context::new(&SHA256);
    let mut buf = vec![0; CHUNK_BYTES];
    let mut left = backend_bytes;
    while left > 0 {
        let want = left.min(CHUNK_BYTES as u64) as usize;
        let chunk = &mut buf[..want];
        src.read_exact(chunk).map_err(UtlError::io("read", from))?;
        sha.update(chunk);
        dst.write_all(chunk).map_err(UtlError::io("write", to))?;
        left -= want as u64;
        progress.advance(want as u64);
    }
    let trailer = if trailer_bytes > 0 {
        let mut trailer = [0; 32];
        src.read_exact(&mut trailer).map_err(UtlError::io("read", from))?;
        Some(trailer)
    } else {
        None
    };
    dst.sync_all().map_err(UtlError::io("sync", to))?;
    progress.finish();
    let mut digest = [0; 32];
    digest.copy_from_slice(sha.finish().as_ref());
    Ok(Copied { backend_bytes, trailer, digest })
}

/// Makes the backend copied from `source` to `copy` oxetcd's: an etcd backend (bbolt) is
/// converted in place (its buckets are oxetcd's tables, row for row); oxetcd's own is
/// left as it is.
pub fn to_native(copy: &Path, source: &Path) -> Result<(), UtlError> {
    etcd_file::convert_in_place(copy, None, |_, _| {}).map_err(UtlError::backend(source))?;
    Ok(())
}

/// Appends the trailer to the backend file at `path`: what `snapshot save` ships.
/// (For tests and for tools that make snapshot files from a store's
/// `save_snapshot`.)
pub fn append_trailer(path: &Path) -> Result<[u8; 32], UtlError> {
    let mut file =
        File::options().read(true).append(true).open(path).map_err(UtlError::io("open", path))?;
    let mut sha = Context::new(&SHA256);
    let mut buf = vec![0; CHUNK_BYTES];
    loop {
        let n = file.read(&mut buf).map_err(UtlError::io("read", path))?;
        if n == 0 {
            break;
        }
        sha.update(&buf[..n]);
    }
    let mut digest = [0; 32];
    digest.copy_from_slice(sha.finish().as_ref());
    file.write_all(&digest).map_err(UtlError::io("write", path))?;
    file.sync_all().map_err(UtlError::io("sync", path))?;
    Ok(digest)
}

/// Makes the entries of `dir` (a rename into it) durable.
pub fn sync_dir(dir: &Path) -> Result<(), UtlError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(UtlError::io("sync", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trailer_is_found_as_etcd_finds_it() {
        assert!(has_trailer(20480 + 32));
        assert!(!has_trailer(20480));
        assert!(!has_trailer(4096 * 3 + 31));
        assert!(has_trailer(32));
    }

    #[test]
    fn a_copy_checks_the_trailer() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("snap");
        std::fs::write(&src, vec![7u8; 8192]).unwrap();
        let copied = copy_backend(&src, &dir.path().join("a"), &Progress::hidden()).unwrap();
        assert_eq!((copied.backend_bytes, copied.trailer), (8192, None));
        assert!(matches!(copied.verify(false), Err(UtlError::MissingHash)));
        copied.verify(true).unwrap();

        let digest = append_trailer(&src).unwrap();
        let copied = copy_backend(&src, &dir.path().join("b"), &Progress::hidden()).unwrap();
        assert_eq!(copied.trailer, Some(digest));
        copied.verify(false).unwrap();
        assert_eq!(std::fs::read(dir.path().join("b")).unwrap(), vec![7u8; 8192]);
        assert!(copy_backend(&src, &dir.path().join("b"), &Progress::hidden()).is_err());
    }
}
