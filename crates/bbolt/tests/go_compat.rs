//! Checks against the real bbolt (Go, Debian's golang-github-coreos-bbolt-dev): files we
//! write pass bbolt's `tx.Check()` and hold what we wrote; files bbolt writes read the same
//! with our reader. Behind the `compat` feature (scripts/compat.sh); without Go it fails.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::*;
use oxetcd_bbolt::{Db, WriterOptions};

const GOPATH: &str = "/usr/share/gocode";

/// Builds tests/go/bboltcheck once (GOPATH mode) and returns the binary.
fn checker() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let bbolt = Path::new(GOPATH).join("src/go.etcd.io/bbolt/db.go");
        assert!(
            bbolt.exists(),
            "{} missing: install golang-go and golang-github-coreos-bbolt-dev \
             (scripts/compat.sh does)",
            bbolt.display()
        );
        let bin = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bboltcheck");
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/go/bboltcheck");
        let out = go_command()
            .arg("build")
            .arg("-o")
            .arg(&bin)
            .arg(".")
            .current_dir(&src)
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run `go` ({e}): install golang-go (scripts/compat.sh does)")
            });
        assert!(
            out.status.success(),
            "go build bboltcheck failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        bin
    })
}

fn go_command() -> Command {
    let mut c = Command::new("go");
    c.env("GOPATH", GOPATH).env("GO111MODULE", "off");
    if std::env::var_os("GOCACHE").is_none() {
        c.env("GOCACHE", Path::new(env!("CARGO_TARGET_TMPDIR")).join("gocache"));
    }
    c
}

fn run(args: &[&str]) -> String {
    let out = Command::new(checker()).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "bboltcheck {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Go's view of a file: `(pagesize, txid, size, bucket lines)`, after `tx.Check()` passed.
fn go_dump(path: &Path) -> (u64, u64, u64, String) {
    let out = run(&["dump", path.to_str().unwrap()]);
    let mut lines = out.lines();
    let mut header = |name: &str| -> u64 {
        let l = lines.next().unwrap();
        let v = l.strip_prefix(name).unwrap_or_else(|| panic!("expected {name}: {l}"));
        v.trim().parse().unwrap()
    };
    let (ps, txid, size) = (header("pagesize"), header("txid"), header("size"));
    let rest: String = lines.map(|l| format!("{l}\n")).collect();
    (ps, txid, size, rest)
}

#[test]
fn bbolt_checks_and_reads_what_we_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(11);
    let mut nested = etcd_like(2000, &mut rng);
    // Nested, inline, empty buckets and multi-page values, beyond what etcd uses.
    let mut inner = BucketModel { sequence: 99, ..Default::default() };
    for i in 0..400u32 {
        inner.entries.insert(i.to_be_bytes().to_vec(), Value::Pair(rng.bytes(0, 300)));
    }
    inner.entries.insert(b"zz-big".to_vec(), Value::Pair(rng.bytes(70_000, 70_000)));
    let mut outer = BucketModel::default();
    outer.entries.insert(b"a-pair".to_vec(), Value::Pair(b"x".to_vec()));
    outer.entries.insert(
        b"b-inline".to_vec(),
        Value::Bucket(BucketModel {
            sequence: 3,
            entries: [(b"k".to_vec(), Value::Pair(b"v".to_vec()))].into(),
        }),
    );
    outer.entries.insert(b"c-empty".to_vec(), Value::Bucket(BucketModel::default()));
    outer.entries.insert(b"d-tree".to_vec(), Value::Bucket(inner));
    nested.insert(b"nested".to_vec(), outer);

    let cases = [
        ("etcd", etcd_like(30_000, &mut rng), WriterOptions::default()),
        ("nested", nested.clone(), WriterOptions { txid: 8, ..Default::default() }),
        ("full-pages", nested.clone(), WriterOptions { fill_percent: 1.0, ..Default::default() }),
        ("bbolt-fill", nested.clone(), WriterOptions { fill_percent: 0.5, ..Default::default() }),
        ("small-pages", nested, WriterOptions { page_size: 1024, ..Default::default() }),
        ("empty", DbModel::new(), WriterOptions::default()),
    ];
    for (name, model, opts) in cases {
        let path = dir.path().join(format!("{name}.db"));
        let bytes = write_model(&model, opts);
        std::fs::write(&path, &bytes).unwrap();
        let (ps, txid, size, buckets) = go_dump(&path);
        assert_eq!(ps, u64::from(opts.page_size), "{name}");
        assert_eq!(txid, opts.txid, "{name}");
        assert_eq!(size, bytes.len() as u64, "{name}");
        assert!(buckets == dump(&model), "{name}: bbolt read other contents than we wrote");
    }
}

#[test]
fn we_read_what_bbolt_writes() {
    let dir = tempfile::tempdir().unwrap();
    let mut saw_free = false;
    for (seed, nofreelist) in [(1, false), (2, false), (3, true), (4, false), (5, true)] {
        let path = dir.path().join(format!("go-{seed}.db"));
        let p = path.to_str().unwrap();
        let seed_s = seed.to_string();
        let mut args = vec!["gen", p, &seed_s];
        if nofreelist {
            args.push("nofreelist");
        }
        run(&args);
        let (ps, txid, size, buckets) = go_dump(&path);

        let db = Db::open(&path).unwrap();
        assert_eq!(u64::from(db.page_size()), ps);
        assert_eq!(db.txid(), txid);
        assert_eq!(db.size(), size);
        let stats = db.check().unwrap();
        assert_eq!(db.freelist().unwrap().is_none(), nofreelist);
        saw_free |= stats.free_pages > 0;
        let model = read_model(&db).unwrap();
        assert!(buckets == dump(&model), "seed {seed}: we read other contents than bbolt");
        // Point lookups agree with the walk.
        for (name, b) in &model {
            let rb = db.bucket(name).unwrap().unwrap();
            for (k, v) in b.entries.iter().step_by(7) {
                if let Value::Pair(v) = v {
                    assert_eq!(rb.get(k).unwrap().as_ref(), Some(v));
                }
            }
        }

        // And back: what we read, rewritten by us, reads the same in bbolt.
        let out = dir.path().join(format!("ours-{seed}.db"));
        std::fs::write(&out, write_model(&model, WriterOptions::default())).unwrap();
        let (_, _, _, again) = go_dump(&out);
        assert!(again == buckets, "seed {seed}: the rewrite differs in bbolt");
    }
    assert!(saw_free, "no generated file had free pages");
}
