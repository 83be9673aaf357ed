//! A backend whose `key` table rows are damaged opens with an error, never a panic
//! (findings of the `backend_rows` fuzz target, `fuzz/`).

use std::sync::Arc;

use bytes::Bytes;
use oxetcd_api::mvccpb::KeyValue;
use oxetcd_mvcc::backend::KEY_TABLE;
use oxetcd_mvcc::backend::memory::MemoryBackend;
use oxetcd_mvcc::{Error, NoLeases, Revision, Store, StoreConfig};
use prost::Message;

fn row(rev: Revision, tombstone: bool, kv: &KeyValue) -> (String, Bytes, Bytes) {
    let key = Bytes::copy_from_slice(rev.to_key(tombstone).as_bytes());
    (KEY_TABLE.to_owned(), key, kv.encode_to_vec().into())
}

fn open(rows: Vec<(String, Bytes, Bytes)>) -> Result<Store<MemoryBackend>, Error> {
    Store::open(MemoryBackend::with_rows(rows), StoreConfig::default(), Arc::new(NoLeases))
}

#[test]
fn a_put_and_a_tombstone_of_one_key_at_one_revision_is_corruption() {
    let put = KeyValue {
        key: "a".into(),
        value: "1".into(),
        create_revision: 3,
        mod_revision: 3,
        version: 1,
        lease: 0,
    };
    let delete = KeyValue { key: "a".into(), mod_revision: 3, ..Default::default() };
    let at = Revision::at_main(3);
    let opened = open(vec![row(at, false, &put), row(at, true, &delete)]);
    assert!(matches!(opened, Err(Error::Corrupt(_))), "{opened:?}");
}

#[test]
fn rows_of_one_key_at_growing_revisions_open() {
    let kv = |main| KeyValue {
        key: "a".into(),
        value: "1".into(),
        create_revision: 2,
        mod_revision: main,
        version: main - 1,
        lease: 0,
    };
    let rows =
        vec![row(Revision::at_main(2), false, &kv(2)), row(Revision::at_main(3), false, &kv(3))];
    assert_eq!(open(rows).unwrap().current_revision(), 3);
}
