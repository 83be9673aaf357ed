//! A [`Backend`] in memory: nothing is durable and every commit copies the tables, so it
//! suits small stores only. The fuzz targets (`fuzz/`) run the store on it, and can fill
//! its tables with arbitrary rows before the store opens ([`MemoryBackend::with_rows`]),
//! as a damaged database file would present them.

use std::collections::BTreeMap;
use std::ops::{Bound, ControlFlow};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;

use super::{Backend, Batch, KEY_TABLE, META_TABLE, Snapshot};
use crate::error::Result;

/// Table name → key → value.
type Tables = BTreeMap<String, BTreeMap<Bytes, Bytes>>;

/// The backend; see the module's documentation.
#[derive(Debug, Default)]
pub struct MemoryBackend {
    committed: Mutex<MemorySnapshot>,
}

/// A read view of one commit of a [`MemoryBackend`].
#[derive(Clone, Debug, Default)]
pub struct MemorySnapshot {
    tables: Arc<Tables>,
}

impl MemoryBackend {
    /// A backend whose tables hold `rows` (table, key, value), the store's own
    /// (`key`, `meta`) always among them, as [`super::redb::RedbBackend::open`] creates them.
    pub fn with_rows(rows: impl IntoIterator<Item = (String, Bytes, Bytes)>) -> Self {
        let mut tables = Tables::new();
        for name in [KEY_TABLE, META_TABLE] {
            tables.insert(name.to_owned(), BTreeMap::new());
        }
        for (table, key, value) in rows {
            tables.entry(table).or_default().insert(key, value);
        }
        Self { committed: Mutex::new(MemorySnapshot { tables: Arc::new(tables) }) }
    }
}

impl Backend for MemoryBackend {
    type Snapshot = MemorySnapshot;

    fn snapshot(&self) -> Result<MemorySnapshot> {
        Ok(self.committed.lock().unwrap_or_else(PoisonError::into_inner).clone())
    }

    fn commit(&self, batch: &Batch, _durable: bool) -> Result<MemorySnapshot> {
        let mut committed = self.committed.lock().unwrap_or_else(PoisonError::into_inner);
        let tables = Arc::make_mut(&mut committed.tables);
        let key = table(tables, KEY_TABLE);
        for row in &batch.rows {
            let rev_key = Bytes::copy_from_slice(row.rev.to_key(row.tombstone).as_bytes());
            key.insert(rev_key, row.value.clone());
        }
        for rev_key in &batch.deletes {
            key.remove(rev_key.as_bytes());
        }
        let meta = table(tables, META_TABLE);
        for (name, value) in &batch.meta {
            meta.insert(Bytes::from_static(name), Bytes::copy_from_slice(value));
        }
        for (name, changes) in &batch.aux {
            let aux = table(tables, name);
            for (k, v) in changes {
                match v {
                    Some(v) => aux.insert(k.clone(), v.clone()),
                    None => aux.remove(k),
                };
            }
        }
        Ok(committed.clone())
    }
}

fn table<'a>(tables: &'a mut Tables, name: &str) -> &'a mut BTreeMap<Bytes, Bytes> {
    tables.entry(name.to_owned()).or_default()
}

impl Snapshot for MemorySnapshot {
    fn get<R>(&self, table: &str, key: &[u8], f: impl FnOnce(&[u8]) -> R) -> Result<Option<R>> {
        Ok(self.tables.get(table).and_then(|t| t.get(key)).map(|v| f(v)))
    }

    fn scan(
        &self,
        table: &str,
        from: &[u8],
        mut f: impl FnMut(&[u8], &[u8]) -> ControlFlow<()>,
    ) -> Result<()> {
        let from = (Bound::Included(from), Bound::Unbounded);
        let mut rows = self.tables.get(table).into_iter().flat_map(|t| t.range::<[u8], _>(from));
        // `f` breaking ends the walk; how it ended is no concern of the caller's.
        let _ = rows.try_for_each(|(k, v)| f(k, v));
        Ok(())
    }

    fn tables(&self) -> Result<Vec<String>> {
        Ok(self.tables.keys().cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use oxetcd_api::etcdserverpb::{PutRequest, RangeRequest};
    use oxetcd_api::mvccpb::KeyValue;
    use prost::Message;

    use super::*;
    use crate::{ApplyIndex, NoLeases, Revision, Store, StoreConfig};

    fn open(backend: MemoryBackend) -> Store<MemoryBackend> {
        Store::open(backend, StoreConfig::default(), Arc::new(NoLeases)).unwrap()
    }

    fn value_of(store: &Store<MemoryBackend>, key: &'static str) -> Bytes {
        let req = RangeRequest { key: key.into(), ..Default::default() };
        store.range(&req).unwrap().kvs.remove(0).value
    }

    #[test]
    fn a_store_on_it_reads_its_committed_writes() {
        let store = open(MemoryBackend::default());
        let put = PutRequest { key: "k".into(), value: "v".into(), ..Default::default() };
        store.put(&put, ApplyIndex { index: 1, term: 1 }).unwrap();
        store.force_commit().unwrap();
        assert_eq!(value_of(&store, "k"), "v");
        assert_eq!(store.durable_index(), ApplyIndex { index: 1, term: 1 });
    }

    #[test]
    fn a_store_opens_on_rows_given_up_front() {
        let kv = KeyValue {
            key: "k".into(),
            value: "v".into(),
            create_revision: 2,
            mod_revision: 2,
            version: 1,
            lease: 0,
        };
        let rev_key = Bytes::copy_from_slice(Revision::at_main(2).to_key(false).as_bytes());
        let rows = [(KEY_TABLE.to_owned(), rev_key, kv.encode_to_vec().into())];
        let store = open(MemoryBackend::with_rows(rows));
        assert_eq!(store.current_revision(), 2);
        assert_eq!(value_of(&store, "k"), "v");
    }
}
