//! Damaged files: every one is an error or a clean read, never a panic or an endless walk.

mod common;

use std::collections::BTreeMap;

use common::*;
use oxetcd_bbolt::format::{BRANCH_PAGE_FLAG, LEAF_PAGE_FLAG, PAGE_HEADER_SIZE, fnv1a64};
use oxetcd_bbolt::{Db, Error, WriterOptions};
use proptest::prelude::*;

const PS: usize = 512;

/// A file of small pages: a multi-level tree, a nested bucket, an inline one, a large value.
fn sample() -> Vec<u8> {
    let mut rng = Rng(5);
    let mut b = BucketModel::default();
    for i in 0..600u32 {
        b.entries.insert(format!("key{i:05}").into_bytes(), Value::Pair(rng.bytes(0, 40)));
    }
    b.entries.insert(b"zbig".to_vec(), Value::Pair(rng.bytes(3000, 3000)));
    let mut sub = BucketModel::default();
    sub.entries.insert(b"x".to_vec(), Value::Pair(b"y".to_vec()));
    b.entries.insert(b"zsub".to_vec(), Value::Bucket(sub));
    let mut model = DbModel::new();
    model.insert(b"b".to_vec(), b);
    model.insert(b"c".to_vec(), BucketModel::default());
    write_model(&model, WriterOptions { page_size: PS as u32, ..Default::default() })
}

/// Reads everything every way: check, a full walk, point lookups.
fn walk(bytes: &[u8]) -> Result<(), Error> {
    let db = Db::from_reader(bytes)?;
    let check = db.check().map(|_| ());
    let model = read_model(&db);
    if let Some(b) = db.bucket(b"b")? {
        for i in (0..600u32).step_by(50) {
            b.get(format!("key{i:05}").as_bytes())?;
        }
    }
    check?;
    model.map(|_| ())
}

fn page_flags(bytes: &[u8], id: usize) -> u16 {
    u16::from_le_bytes([bytes[id * PS + 8], bytes[id * PS + 9]])
}

fn find_page(bytes: &[u8], flags: u16) -> usize {
    (3..bytes.len() / PS).find(|&id| page_flags(bytes, id) == flags).expect("page of that type")
}

fn set_u64(bytes: &mut [u8], at: usize, v: u64) {
    bytes[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn fix_meta_checksums(bytes: &mut [u8]) {
    for id in 0..2 {
        let m = id * PS + PAGE_HEADER_SIZE;
        if bytes.len() >= m + 64 {
            let sum = fnv1a64(&bytes[m..m + 56]);
            bytes[m + 56..m + 64].copy_from_slice(&sum.to_le_bytes());
        }
    }
}

#[test]
fn the_sample_is_sound() {
    walk(&sample()).unwrap();
    let bytes = sample();
    assert!(Db::from_reader(&bytes[..]).unwrap().check().unwrap().tree_pages > 20);
}

#[test]
fn truncated_files_are_errors() {
    let bytes = sample();
    for len in (0..bytes.len()).step_by(61).chain([bytes.len() - 1, bytes.len() - PS]) {
        let err = Db::from_reader(&bytes[..len]).unwrap_err();
        if len >= 2 * PS {
            assert!(matches!(err, Error::Truncated(_)), "{len}: {err}");
        } else {
            assert!(matches!(err, Error::Truncated(_) | Error::InvalidMeta { .. }), "{len}: {err}");
        }
    }
}

#[test]
fn a_torn_meta_falls_back_to_the_other() {
    let mut bytes = sample();
    // Meta 1 holds the newer txid (1); damage it.
    bytes[PS + PAGE_HEADER_SIZE + 20] ^= 1;
    let db = Db::from_reader(&bytes[..]).unwrap();
    assert_eq!(db.txid(), 0);
    assert!(db.meta_note().unwrap().contains("meta 1"), "{:?}", db.meta_note());
    db.check().unwrap();
    // Both damaged.
    bytes[PAGE_HEADER_SIZE + 20] ^= 1;
    let err = Db::from_reader(&bytes[..]).unwrap_err();
    assert!(matches!(err, Error::InvalidMeta { .. }), "{err}");
    assert!(err.to_string().contains("checksum"), "{err}");
    // Not a bbolt file at all.
    let err = Db::from_reader(vec![7u8; 8192]).unwrap_err();
    assert!(err.to_string().contains("magic"), "{err}");
    // A meta whose checksum is right but whose root is past the end.
    let mut bytes = sample();
    for id in 0..2 {
        set_u64(&mut bytes, id * PS + PAGE_HEADER_SIZE + 16, 1 << 40);
    }
    fix_meta_checksums(&mut bytes);
    let err = Db::from_reader(&bytes[..]).unwrap_err();
    assert!(err.to_string().contains("root page"), "{err}");
}

/// A named edit of a file's bytes.
type Damage = Box<dyn Fn(&mut Vec<u8>)>;

#[test]
fn malformed_pages_are_errors() {
    let clean = sample();
    let branch = find_page(&clean, BRANCH_PAGE_FLAG);
    let leaf = find_page(&clean, LEAF_PAGE_FLAG);
    let child_at = branch * PS + PAGE_HEADER_SIZE + 8; // element 0's pgid
    let pgid = (clean.len() / PS) as u64;
    let cases: Vec<(&str, Damage)> = vec![
        ("child is itself", Box::new(move |b| set_u64(b, child_at, branch as u64))),
        ("child past the end", Box::new(move |b| set_u64(b, child_at, pgid + 5))),
        ("child is a meta page", Box::new(move |b| set_u64(b, child_at, 0))),
        ("child is the freelist", Box::new(move |b| set_u64(b, child_at, 2))),
        (
            "child is a sibling subtree",
            Box::new(move |b| {
                let next = u64::from_le_bytes(b[child_at + 16..child_at + 24].try_into().unwrap());
                set_u64(b, child_at, next);
            }),
        ),
        (
            "cycle to the branch from its child",
            Box::new(move |b| {
                // Make the child a branch pointing back up.
                let child =
                    u64::from_le_bytes(b[child_at..child_at + 8].try_into().unwrap()) as usize;
                let src = b[branch * PS..branch * PS + PS].to_vec();
                b[child * PS..child * PS + PS].copy_from_slice(&src);
                set_u64(b, child * PS, child as u64);
            }),
        ),
        ("leaf with freelist flags", Box::new(move |b| b[leaf * PS + 8] = 0x10)),
        ("leaf with unknown flags", Box::new(move |b| b[leaf * PS + 8] = 0x22)),
        ("page header id wrong", Box::new(move |b| set_u64(b, leaf * PS, 3 + leaf as u64))),
        (
            "overflow past the end",
            Box::new(move |b| {
                b[leaf * PS + 12..leaf * PS + 16].copy_from_slice(&(u32::MAX).to_le_bytes())
            }),
        ),
        (
            "count past the page",
            Box::new(move |b| {
                b[leaf * PS + 10..leaf * PS + 12].copy_from_slice(&500u16.to_le_bytes())
            }),
        ),
        (
            "element past the page",
            Box::new(move |b| {
                let e = leaf * PS + PAGE_HEADER_SIZE;
                b[e + 12..e + 16].copy_from_slice(&100_000u32.to_le_bytes())
            }),
        ),
        (
            "keys out of order",
            Box::new(move |b| {
                // Element 0's key starts after the element table; make it sort last.
                let e = leaf * PS + PAGE_HEADER_SIZE;
                let pos = u32::from_le_bytes(b[e + 4..e + 8].try_into().unwrap()) as usize;
                b[e + pos] = 0xff;
            }),
        ),
        (
            "empty key",
            Box::new(move |b| {
                let e = leaf * PS + PAGE_HEADER_SIZE;
                b[e + 8..e + 12].copy_from_slice(&0u32.to_le_bytes())
            }),
        ),
        (
            "freelist damaged",
            Box::new(move |b| {
                b[2 * PS + 10..2 * PS + 12].copy_from_slice(&0xffffu16.to_le_bytes());
                set_u64(b, 2 * PS + PAGE_HEADER_SIZE, u64::MAX);
            }),
        ),
        (
            "page unreachable and not free",
            Box::new(move |b| {
                // Drop the branch's last child: its subtree is orphaned.
                let count = u16::from_le_bytes([b[branch * PS + 10], b[branch * PS + 11]]);
                b[branch * PS + 10..branch * PS + 12].copy_from_slice(&(count - 1).to_le_bytes());
            }),
        ),
    ];
    for (name, damage) in cases {
        let mut bytes = clean.clone();
        damage(&mut bytes);
        let err = walk(&bytes).expect_err(name);
        assert!(matches!(err, Error::Corrupt { .. }), "{name}: not a Corrupt error: {err}");
    }
}

#[test]
fn a_damaged_inline_bucket_is_an_error() {
    let mut model = DbModel::new();
    let mut b = BucketModel::default();
    b.entries.insert(b"k".to_vec(), Value::Pair(b"v".to_vec()));
    model.insert(b"tiny".to_vec(), b);
    let mut bytes = write_model(&model, WriterOptions::default());
    let db = Db::from_reader(&bytes[..]).unwrap();
    assert!(db.bucket(b"tiny").unwrap().unwrap().is_inline());
    // The inline page's count, inside the root leaf's value: make it claim 200 elements.
    let at = bytes.windows(4).position(|w| w == b"tiny").map(|p| p + 4 + 16 + 10).unwrap();
    bytes[at] = 200;
    let err = Db::from_reader(&bytes[..]).unwrap().bucket(b"tiny").unwrap_err();
    assert!(err.to_string().contains("inline"), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn random_damage_never_panics(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..10),
        fix_checksums in any::<bool>(),
        cut in prop::option::weighted(0.1, any::<prop::sample::Index>()),
    ) {
        let mut bytes = sample();
        for (at, v) in edits {
            let i = at.index(bytes.len());
            bytes[i] = v;
        }
        if fix_checksums {
            fix_meta_checksums(&mut bytes);
        }
        if let Some(cut) = cut {
            bytes.truncate(cut.index(bytes.len()));
        }
        let _ = walk(&bytes);
    }

    #[test]
    fn damage_to_structure_never_panics(
        page in 3usize..60,
        field in prop_oneof![Just(0usize), Just(8), Just(10), Just(12), 16usize..200],
        v in prop_oneof![any::<u64>(), 0u64..80, Just(u64::MAX)],
    ) {
        // Aimed edits: header fields and element tables, with plausible numbers.
        let mut bytes = sample();
        let at = page * PS + field;
        if at + 8 <= bytes.len() {
            set_u64(&mut bytes, at, v);
            let _ = walk(&bytes);
        }
    }
}

#[test]
fn keys_and_values_read_back_unchanged_after_damage_elsewhere() {
    // Damage in a free region (past the used pages) changes nothing.
    let mut bytes = sample();
    bytes.extend_from_slice(&[0xAB; 4 * PS]);
    let model: BTreeMap<_, _> = read_model(&Db::from_reader(&sample()[..]).unwrap()).unwrap();
    assert_eq!(read_model(&Db::from_reader(&bytes[..]).unwrap()).unwrap(), model);
}
