//! `defrag --data-dir`: rewrites a stopped member's backend without its free pages.

use std::path::Path;
use std::sync::Arc;

use oxetcd_mvcc::{NoLeases, Store, StoreConfig};

use crate::error::UtlError;
use crate::file;
use crate::layout;
use crate::progress::Progress;

/// The file the compacted copy is written to, beside the backend, before it replaces
/// it. A leftover of an interrupted run is removed by the next.
const DEFRAG_FILE: &str = "db.defrag";

/// The backend's size before and after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defragmented {
    pub before: u64,
    pub after: u64,
}

/// Defragments `<data_dir>/member/snap/db`: takes the WAL directory's lock and the
/// backend's (refused while a member runs on the data dir), writes a compacted copy of
/// every table beside it, syncs it, and renames it over the backend. A crash leaves
/// either the old backend or the new one, both whole.
pub fn defrag(data_dir: &Path, progress: Progress) -> Result<Defragmented, UtlError> {
    let db = layout::backend_path(data_dir);
    let before = file::size(&db)?;
    let _wal_lock = layout::lock_wal(data_dir)?;
    let snap_dir = layout::snap_dir(data_dir);
    let copy = snap_dir.join(DEFRAG_FILE);
    let store = Store::open_path(&db, StoreConfig::default(), Arc::new(NoLeases))
        .map_err(UtlError::backend(&db))?;
    if copy.exists() {
        std::fs::remove_file(&copy).map_err(UtlError::io("remove", &copy))?;
    }
    let saved = {
        let _watch = progress.watch_file(copy.clone(), before);
        store.save_snapshot(&copy)
    };
    let closed = store.close();
    let saved = match saved.and_then(|saved| closed.map(|()| saved)) {
        Ok(saved) => saved,
        Err(e) => {
            let _ = std::fs::remove_file(&copy);
            return Err(e.into());
        }
    };
    std::fs::rename(&copy, &db).map_err(UtlError::io("rename", &copy))?;
    file::sync_dir(&snap_dir)?;
    Ok(Defragmented { before, after: saved.bytes })
}
