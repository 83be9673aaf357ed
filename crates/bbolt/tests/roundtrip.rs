//! Write with the crate's writer, read with its reader.

mod common;

use std::collections::BTreeMap;
use std::io::Cursor;

use common::*;
use oxetcd_bbolt::{Db, Error, Writer, WriterOptions};
use proptest::prelude::*;

fn opts(page_size: u32, fill_percent: f64) -> WriterOptions {
    WriterOptions { page_size, fill_percent, txid: 1 }
}

fn pair_bucket(pairs: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>) -> BucketModel {
    BucketModel {
        sequence: 0,
        entries: pairs.into_iter().map(|(k, v)| (k, Value::Pair(v))).collect(),
    }
}

#[test]
fn etcd_buckets_round_trip() {
    let model = etcd_like(20_000, &mut Rng(1));
    let bytes = write_model(&model, WriterOptions::default());
    let db = Db::from_reader(bytes).unwrap();
    assert_eq!(db.page_size(), 4096);
    assert_eq!(db.txid(), 1);
    assert!(db.meta_note().is_none());
    assert_eq!(read_model(&db).unwrap(), model);
    let names: Vec<Vec<u8>> = model.keys().cloned().collect();
    assert_eq!(db.buckets().unwrap(), names);
    let stats = db.check().unwrap();
    assert_eq!(stats.keys, 20_000 + 3 + 49 + 2);
    assert_eq!(stats.buckets, 10);
    assert_eq!(stats.free_pages, 0);
    // Empty buckets are stored inline, as bbolt stores them.
    assert!(db.bucket(b"alarm").unwrap().unwrap().is_inline());
    assert!(!db.bucket(b"key").unwrap().unwrap().is_inline());
}

#[test]
fn get_finds_every_key_in_a_deep_tree() {
    // A small page size makes a tree of several levels out of few keys.
    let mut rng = Rng(2);
    let pairs: BTreeMap<Vec<u8>, Vec<u8>> =
        (0..5000).map(|_| (rng.bytes(1, 24), rng.bytes(0, 60))).collect();
    let mut model = DbModel::new();
    model.insert(b"b".to_vec(), pair_bucket(pairs.clone()));
    for (ps, fill) in [(512, 0.1), (512, 1.0), (1024, 0.5), (4096, 0.9)] {
        let bytes = write_model(&model, opts(ps, fill));
        let db = Db::from_reader(bytes).unwrap();
        db.check().unwrap();
        let b = db.bucket(b"b").unwrap().unwrap();
        for (k, v) in &pairs {
            assert_eq!(b.get(k).unwrap().as_ref(), Some(v));
        }
        assert_eq!(b.get(b"").unwrap(), None);
        assert_eq!(b.get(&[0xff; 30]).unwrap(), None);
        let read: Vec<_> = b.iter().collect::<Result<_, _>>().unwrap();
        assert_eq!(read, pairs.clone().into_iter().collect::<Vec<_>>());
        assert!(db.bucket(b"missing").unwrap().is_none());
    }
}

#[test]
fn large_values_span_overflow_pages() {
    let mut model = DbModel::new();
    let mut pairs = Vec::new();
    for (i, len) in
        [0usize, 1, 4000, 4064, 4065, 4096, 4097, 100_000, 3 << 20].into_iter().enumerate()
    {
        pairs.push((vec![b'k', i as u8], vec![i as u8 ^ 0x5a; len]));
    }
    model.insert(b"big".to_vec(), pair_bucket(pairs));
    let bytes = write_model(&model, WriterOptions::default());
    let db = Db::from_reader(bytes).unwrap();
    db.check().unwrap();
    assert_eq!(read_model(&db).unwrap(), model);
}

#[test]
fn nested_and_empty_buckets() {
    let mut rng = Rng(3);
    let leaf = pair_bucket((0..300).map(|i| (format!("k{i:04}").into_bytes(), rng.bytes(0, 50))));
    let small = pair_bucket([(b"a".to_vec(), b"1".to_vec())]);
    let mut inner = BucketModel { sequence: 7, entries: BTreeMap::new() };
    inner.entries.insert(b"big".to_vec(), Value::Bucket(leaf.clone()));
    inner.entries.insert(b"empty".to_vec(), Value::Bucket(BucketModel::default()));
    inner.entries.insert(b"pair".to_vec(), Value::Pair(b"v".to_vec()));
    inner.entries.insert(b"small".to_vec(), Value::Bucket(small));
    let mut model = DbModel::new();
    model.insert(b"outer".to_vec(), inner);
    model.insert(b"plain".to_vec(), leaf);
    let bytes = write_model(&model, opts(1024, 0.9));
    let db = Db::from_reader(bytes).unwrap();
    assert_eq!(db.check().unwrap().buckets, 5);
    assert_eq!(read_model(&db).unwrap(), model);
    let outer = db.bucket(b"outer").unwrap().unwrap();
    assert_eq!(outer.sequence(), 7);
    assert_eq!(
        outer.buckets().unwrap(),
        vec![b"big".to_vec(), b"empty".to_vec(), b"small".to_vec()]
    );
    assert!(outer.bucket(b"small").unwrap().unwrap().is_inline());
    assert!(!outer.bucket(b"big").unwrap().unwrap().is_inline());
    // A bucket's key is no value, a value's key no bucket.
    assert_eq!(outer.get(b"small").unwrap(), None);
    assert!(outer.bucket(b"pair").unwrap().is_none());
}

#[test]
fn empty_database() {
    let bytes = write_model(&DbModel::new(), WriterOptions::default());
    assert_eq!(bytes.len(), 4 * 4096);
    let db = Db::from_reader(bytes).unwrap();
    assert!(db.buckets().unwrap().is_empty());
    assert_eq!(db.freelist().unwrap(), Some(vec![]));
    db.check().unwrap();
}

#[test]
fn dry_run_layout_streams_the_same_bytes() {
    let model = etcd_like(3000, &mut Rng(4));
    let o = WriterOptions { txid: 42, ..WriterOptions::default() };
    let seek = write_model(&model, o);
    let mut dry = Writer::dry_run(o).unwrap();
    write_all(&mut dry, &model).unwrap();
    let (_, layout) = dry.finish().unwrap();
    assert_eq!(layout.file_size(), seek.len() as u64);
    // A plain Write (a Vec is no Seek).
    let mut w = Writer::with_layout(Vec::new(), o, layout).unwrap();
    write_all(&mut w, &model).unwrap();
    let (streamed, l2) = w.finish().unwrap();
    assert_eq!(l2, layout);
    assert_eq!(streamed, seek);
    let db = Db::from_reader(streamed).unwrap();
    assert_eq!(db.txid(), 42);
    // Meta 0 holds the even txid.
    assert_eq!(u64::from_le_bytes(seek[64..72].try_into().unwrap()), 42);
    assert_eq!(u64::from_le_bytes(seek[4096 + 64..4096 + 72].try_into().unwrap()), 41);

    // Different data than planned is an error at the end.
    let mut other = model.clone();
    other.get_mut(&b"lease"[..]).unwrap().entries.insert(vec![0xff], Value::Pair(vec![1; 5000]));
    let mut w = Writer::with_layout(Vec::new(), o, layout).unwrap();
    write_all(&mut w, &other).unwrap();
    assert!(matches!(w.finish(), Err(Error::Usage(_))));
}

#[test]
fn writer_refuses_misuse() {
    let new = || Writer::new(Cursor::new(Vec::new()), WriterOptions::default()).unwrap();
    let mut w = new();
    assert!(w.put(b"k", b"v").is_err(), "put in the root");
    let mut w = new();
    w.begin_bucket(b"b").unwrap();
    w.put(b"b", b"").unwrap();
    assert!(w.put(b"a", b"").is_err(), "out of order");
    assert!(w.put(b"c", b"").is_err(), "poisoned after an error");
    let mut w = new();
    w.begin_bucket(b"b").unwrap();
    assert!(w.put(b"", b"").is_err(), "empty key");
    let mut w = new();
    w.begin_bucket(b"b").unwrap();
    assert!(w.put(&[1; 32769], b"").is_err(), "key too long");
    let mut w = new();
    w.begin_bucket(b"b").unwrap();
    w.end_bucket().unwrap();
    assert!(w.begin_bucket(b"b").is_err(), "duplicate bucket");
    let mut w = new();
    w.begin_bucket(b"b").unwrap();
    assert!(w.finish().is_err(), "bucket not ended");
    let mut w = new();
    assert!(w.end_bucket().is_err());
    for bad in [
        WriterOptions { page_size: 1000, ..Default::default() },
        WriterOptions { txid: 0, ..Default::default() },
        WriterOptions { fill_percent: f64::NAN, ..Default::default() },
    ] {
        assert!(Writer::new(Cursor::new(Vec::new()), bad).is_err());
    }
}

fn bucket_strategy(depth: u32) -> BoxedStrategy<BucketModel> {
    let key = prop::collection::vec(any::<u8>(), 1..12);
    let value = prop_oneof![
        8 => prop::collection::vec(any::<u8>(), 0..64),
        1 => prop::collection::vec(any::<u8>(), 500..6000),
    ];
    let leaf = value.prop_map(Value::Pair);
    let entry = if depth == 0 {
        leaf.boxed()
    } else {
        prop_oneof![40 => leaf, 1 => bucket_strategy(depth - 1).prop_map(Value::Bucket)].boxed()
    };
    (any::<u64>(), prop::collection::btree_map(key, entry, 0..150))
        .prop_map(|(sequence, entries)| BucketModel { sequence, entries })
        .boxed()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn random_databases_round_trip(
        model in prop::collection::btree_map(prop::collection::vec(any::<u8>(), 1..10), bucket_strategy(2), 0..5),
        page_size in prop_oneof![Just(512u32), Just(1024), Just(4096)],
        fill in prop_oneof![Just(0.1), Just(0.5), Just(0.9), Just(1.0)],
    ) {
        let bytes = write_model(&model, opts(page_size, fill));
        let db = Db::from_reader(bytes).unwrap();
        db.check().unwrap();
        prop_assert_eq!(read_model(&db).unwrap(), model.clone());
        for (name, b) in &model {
            let rb = db.bucket(name).unwrap().unwrap();
            for (k, v) in &b.entries {
                if let Value::Pair(v) = v {
                    let got = rb.get(k).unwrap();
                    prop_assert_eq!(got.as_ref(), Some(v));
                }
            }
        }
    }
}
