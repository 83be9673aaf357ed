//! Shared by the integration tests: a model of a bbolt database, writing it with the
//! crate's writer, reading it back, and the dump format the Go checker prints.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Cursor;

use oxetcd_bbolt::{Bucket, Db, ReadAt, Result, Writer, WriterOptions};

/// A bucket's contents: pairs and sub-buckets, in key order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BucketModel {
    pub sequence: u64,
    pub entries: BTreeMap<Vec<u8>, Value>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Pair(Vec<u8>),
    Bucket(BucketModel),
}

/// The top-level buckets.
pub type DbModel = BTreeMap<Vec<u8>, BucketModel>;

pub fn write_bucket<W: std::io::Write>(w: &mut Writer<W>, b: &BucketModel) -> Result<()> {
    w.set_sequence(b.sequence)?;
    for (k, v) in &b.entries {
        match v {
            Value::Pair(v) => w.put(k, v)?,
            Value::Bucket(sub) => {
                w.begin_bucket(k)?;
                write_bucket(w, sub)?;
                w.end_bucket()?;
            }
        }
    }
    Ok(())
}

pub fn write_all<W: std::io::Write>(w: &mut Writer<W>, db: &DbModel) -> Result<()> {
    for (name, b) in db {
        w.begin_bucket(name)?;
        write_bucket(w, b)?;
        w.end_bucket()?;
    }
    Ok(())
}

/// Writes `db` to bytes with the seeking writer.
pub fn write_model(db: &DbModel, opts: WriterOptions) -> Vec<u8> {
    let mut w = Writer::new(Cursor::new(Vec::new()), opts).unwrap();
    write_all(&mut w, db).unwrap();
    let (out, layout) = w.finish().unwrap();
    let bytes = out.into_inner();
    assert_eq!(bytes.len() as u64, layout.file_size());
    bytes
}

pub fn read_bucket<R: ReadAt>(b: &Bucket<'_, R>) -> Result<BucketModel> {
    let mut m = BucketModel { sequence: b.sequence(), entries: BTreeMap::new() };
    for e in b.cursor() {
        let e = e?;
        let v = if e.is_bucket {
            Value::Bucket(read_bucket(&b.open(&e)?)?)
        } else {
            Value::Pair(e.value)
        };
        m.entries.insert(e.key, v);
    }
    Ok(m)
}

pub fn read_model<R: ReadAt>(db: &Db<R>) -> Result<DbModel> {
    let root = read_bucket(&db.root())?;
    let mut out = DbModel::new();
    for (k, v) in root.entries {
        match v {
            Value::Bucket(b) => {
                out.insert(k, b);
            }
            Value::Pair(_) => panic!("pair in the root bucket"),
        }
    }
    Ok(out)
}

fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

fn dump_bucket(out: &mut String, path: &str, b: &BucketModel) {
    let _ = writeln!(out, "bucket {path} seq {}", b.sequence);
    for (k, v) in &b.entries {
        match v {
            Value::Pair(v) => {
                let _ = writeln!(out, "kv {path} {} {}", hex(k), hex(v));
            }
            Value::Bucket(sub) => dump_bucket(out, &format!("{path}/{}", hex(k)), sub),
        }
    }
}

/// The bucket lines of `bboltcheck dump` for a model.
pub fn dump(db: &DbModel) -> String {
    let mut out = String::new();
    for (name, b) in db {
        dump_bucket(&mut out, &hex(name), b);
    }
    out
}

/// A small deterministic PRNG (xorshift64*), so tests need no dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub fn bytes(&mut self, min: usize, max: usize) -> Vec<u8> {
        let n = min + self.below((max - min + 1) as u64) as usize;
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// etcd's buckets with etcd-like contents: `key` holds `n` revisions.
pub fn etcd_like(n: u64, rng: &mut Rng) -> DbModel {
    let mut db = DbModel::new();
    let pairs = |items: Vec<(Vec<u8>, Vec<u8>)>| BucketModel {
        sequence: 0,
        entries: items.into_iter().map(|(k, v)| (k, Value::Pair(v))).collect(),
    };
    let mut key = Vec::new();
    for rev in 1..=n {
        // etcd's revision key: 8-byte main, '_', 8-byte sub.
        let mut k = rev.to_be_bytes().to_vec();
        k.push(b'_');
        k.extend_from_slice(&0u64.to_be_bytes());
        let len = if rev % 997 == 0 { 10_000 } else { 40 + rng.below(200) as usize };
        key.push((k, rng.bytes(len, len)));
    }
    db.insert(b"key".to_vec(), pairs(key));
    db.insert(
        b"meta".to_vec(),
        pairs(vec![
            (b"consistent_index".to_vec(), n.to_be_bytes().to_vec()),
            (b"finishedCompactRev".to_vec(), 1u64.to_be_bytes().to_vec()),
            (b"term".to_vec(), 2u64.to_be_bytes().to_vec()),
        ]),
    );
    db.insert(
        b"lease".to_vec(),
        pairs((1..50u64).map(|i| (i.to_be_bytes().to_vec(), rng.bytes(20, 20))).collect()),
    );
    for name in ["alarm", "auth", "authRoles", "authUsers", "members_removed"] {
        db.insert(name.as_bytes().to_vec(), BucketModel::default());
    }
    db.insert(b"members".to_vec(), pairs(vec![(b"8e9e05c52164694d".to_vec(), rng.bytes(80, 80))]));
    db.insert(b"cluster".to_vec(), pairs(vec![(b"clusterVersion".to_vec(), b"3.4.0".to_vec())]));
    db
}
