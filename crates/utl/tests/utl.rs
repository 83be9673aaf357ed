//! oxetcdutl against stores built with `oxetcd_mvcc::Store`: the binary's output and
//! refusals, and restored data dirs read back.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use oxetcd_api::etcdserverpb::{DeleteRangeRequest, PutRequest, RangeRequest};
use oxetcd_api::mvccpb::KeyValue;
use oxetcd_api::oxetcdpb::Metadata;
use oxetcd_etcdserver::id;
use oxetcd_lease::{LEASE_TABLE, StoredLease};
use oxetcd_mvcc::{ApplyIndex, HashKv, LeaseId, Lessor, NoLeases, Store, StoreConfig};
use oxetcd_raft::{ConfChange, ConfChangeType, EntryType, HardState};
use oxetcd_utl::file;
use oxetcd_wal::{Wal, WalOptions, WalSnapshot};
use prost::Message;

const LEASE: i64 = 0x1234;

/// A lessor that knows every lease (the source store's puts name one).
#[derive(Debug)]
struct AnyLease;

impl Lessor for AnyLease {
    fn lease_exists(&self, _: LeaseId) -> bool {
        true
    }
    fn attach(&self, _: LeaseId, _: &[u8]) {}
    fn detach(&self, _: LeaseId, _: &[u8]) {}
}

/// What the source store held when its snapshot was saved.
struct Source {
    /// The snapshot file, with its trailer.
    snapshot: PathBuf,
    /// The same backend without the trailer (a copied `member/snap/db`).
    plain: PathBuf,
    /// The same backend in oxetcd's own format (redb), with the trailer.
    native: PathBuf,
    kvs: Vec<KeyValue>,
    hash: HashKv,
    revision: i64,
}

fn all(store: &Store) -> Vec<KeyValue> {
    let req = RangeRequest { key: vec![0].into(), range_end: vec![0].into(), ..Default::default() };
    store.range(&req).unwrap().kvs
}

fn put(store: &Store, key: &str, value: &str, lease: i64, index: u64) {
    let (key, value) = (key.as_bytes().to_vec(), value.as_bytes().to_vec());
    let req = PutRequest { key: key.into(), value: value.into(), lease, ..Default::default() };
    store.put(&req, ApplyIndex { index, term: 7 }).unwrap();
}

/// Puts, overwrites, a delete, a leased key with its lease row, a compaction, and
/// writes after it, at raft indexes of an old cluster (100 on).
fn source(dir: &Path) -> Source {
    let store =
        Store::open_path(dir.join("src.db"), StoreConfig::default(), Arc::new(AnyLease)).unwrap();
    put(&store, "foo", "1", 0, 100); // 2
    put(&store, "bar", "1", 0, 101); // 3
    put(&store, "foo", "2", 0, 102); // 4
    let del = DeleteRangeRequest { key: b"bar".to_vec().into(), ..Default::default() };
    store.delete_range(&del, ApplyIndex { index: 103, term: 7 }).unwrap(); // 5
    let lease = StoredLease { id: LEASE, ttl: 60, remaining_ttl: 0 };
    store.aux_write(LEASE_TABLE, [lease.row()], ApplyIndex { index: 104, term: 7 }).unwrap();
    put(&store, "leased", "x", LEASE, 105); // 6
    let (_, handle) = store.compact(4, ApplyIndex { index: 106, term: 7 }).unwrap();
    handle.wait().unwrap();
    put(&store, "foo", "3", 0, 107); // 7
    for i in 0..50 {
        put(&store, &format!("k{i:02}"), &"v".repeat(i * 10), 0, 108 + i as u64); // 8..=57
    }
    // What `Maintenance.Snapshot` ships: etcd's format.
    let snapshot = dir.join("snapshot.db");
    store.pin_snapshot().unwrap().save_bbolt(&snapshot).unwrap();
    let plain = dir.join("plain.db");
    std::fs::copy(&snapshot, &plain).unwrap();
    file::append_trailer(&snapshot).unwrap();
    let native = dir.join("native.db");
    store.save_snapshot(&native).unwrap();
    file::append_trailer(&native).unwrap();
    let source = Source {
        snapshot,
        plain,
        native,
        kvs: all(&store),
        hash: store.hash_kv(0).unwrap(),
        revision: store.current_revision(),
    };
    assert_eq!(source.revision, 57);
    store.close().unwrap();
    source
}

fn oxetcdutl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_oxetcdutl")).args(args).output().unwrap()
}

fn stdout(out: &Output) -> String {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn refused(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    let stderr = String::from_utf8(out.stderr.clone()).unwrap();
    stderr.lines().last().unwrap_or_default().to_string()
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Nothing but what the test made is left in `dir` (no staging dir of a restore).
fn no_leftovers(dir: &Path, expected: &[&str]) {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut expected: Vec<String> = expected.iter().map(|n| n.to_string()).collect();
    expected.sort();
    assert_eq!(names, expected);
}

#[test]
fn a_saved_snapshot_is_whole_pages_so_etcds_trailer_rule_holds() {
    let dir = tempfile::tempdir().unwrap();
    for n in [0usize, 1, 100, 3000] {
        let path = dir.path().join(format!("db{n}"));
        let store = Store::open_path(&path, StoreConfig::default(), Arc::new(NoLeases)).unwrap();
        for i in 0..n {
            put(&store, &format!("key{i}"), &"x".repeat(i % 700), 0, i as u64 + 1);
        }
        let saved = dir.path().join(format!("snap{n}"));
        let bytes = store.save_snapshot(&saved).unwrap().bytes;
        let bbolt = dir.path().join(format!("bbolt{n}"));
        let bbolt_bytes = store.pin_snapshot().unwrap().save_bbolt(&bbolt).unwrap().bytes;
        store.close().unwrap();
        assert_eq!(bytes % 4096, 0, "{n} keys: {bytes} bytes");
        assert_eq!(bbolt_bytes % 4096, 0, "{n} keys: {bbolt_bytes} bytes in bbolt");
        assert!(!file::has_trailer(bytes));
        assert!(!file::has_trailer(std::fs::metadata(&path).unwrap().len()));
        file::append_trailer(&saved).unwrap();
        assert!(file::has_trailer(std::fs::metadata(&saved).unwrap().len()));
    }
}

#[test]
fn status_prints_in_each_format() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path());
    let size = std::fs::metadata(&src.snapshot).unwrap().len() - 32;

    let json = stdout(&oxetcdutl(&["snapshot", "status", s(&src.snapshot), "-w", "json"]));
    let field = |name: &str| -> u64 {
        let at = json.find(&format!("\"{name}\":")).unwrap() + name.len() + 3;
        json[at..].split([',', '}']).next().unwrap().parse().unwrap()
    };
    let (hash, keys) = (field("hash"), field("totalKey"));
    assert_eq!(field("revision"), src.revision as u64);
    assert_eq!(field("totalSize"), size);
    assert_eq!(
        json,
        format!("{{\"hash\":{hash},\"revision\":57,\"totalKey\":{keys},\"totalSize\":{size}}}\n")
    );
    // The key table's rows (57 revisions, less the two compaction removed: foo@2,
    // bar@3), two meta rows at least, the lease row.
    assert!(keys > 55 + 2, "{keys}");

    let human = oxetcd_utl::print::humanize_bytes(size);
    let simple = stdout(&oxetcdutl(&["snapshot", "status", s(&src.snapshot)]));
    assert_eq!(simple, format!("{hash:x}, 57, {keys}, {human}\n"));
    let table = stdout(&oxetcdutl(&["snapshot", "status", s(&src.snapshot), "-w", "table"]));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 5, "{table}");
    assert!(lines[1].contains("| REVISION | TOTAL KEYS | TOTAL SIZE |"), "{table}");
    assert!(lines[3].starts_with(&format!("| {hash:x} |       57 |")), "{table}");
    assert!(lines[3].ends_with(&format!(" {human} |")), "{table}");

    // A plain backend file (no trailer) is the same backend.
    let plain = stdout(&oxetcdutl(&["snapshot", "status", s(&src.plain)]));
    assert_eq!(plain, simple);
    // So is oxetcd's own format: the same tables hash the same; only the size differs.
    let native = stdout(&oxetcdutl(&["snapshot", "status", s(&src.native)]));
    let without_size = |line: &str| line.rsplit_once(", ").unwrap().0.to_owned();
    assert_eq!(without_size(&native), without_size(&simple));
    // The files are left as they were.
    assert_eq!(std::fs::metadata(&src.snapshot).unwrap().len(), size + 32);

    let missing = oxetcdutl(&["snapshot", "status", s(&dir.path().join("nonexist.db"))]);
    assert!(refused(&missing).ends_with("nonexist.db: no such file or directory"));
    let none = oxetcdutl(&["snapshot", "status"]);
    assert_eq!(none.status.code(), Some(128));
    let bad = oxetcdutl(&["snapshot", "status", s(&src.snapshot), "-w", "yaml"]);
    assert_eq!(bad.status.code(), Some(4));
}

/// The ids etcd derives for a member with `url` in a cluster of `urls` and `token`.
fn ids(url: &str, urls: &[String], token: &str) -> (u64, u64) {
    let members: Vec<u64> =
        urls.iter().map(|u| id::member_id(std::slice::from_ref(u), token, None)).collect();
    (id::member_id(&[url.to_string()], token, None), id::cluster_id(&members))
}

#[test]
fn a_snapshot_restores_into_three_members_of_a_new_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path());
    let urls: Vec<String> = (1..=3).map(|i| format!("http://127.0.0.{i}:12380")).collect();
    let names = ["m1", "m2", "m3"];
    let cluster: Vec<String> = names.iter().zip(&urls).map(|(n, u)| format!("{n}={u}")).collect();
    let cluster = cluster.join(",");
    let out = dir.path().join("restored");
    let mut cluster_ids = Vec::new();
    for (name, url) in names.iter().zip(&urls) {
        let data_dir = out.join(format!("{name}.etcd"));
        let restored = oxetcdutl(&[
            "snapshot",
            "restore",
            s(&src.snapshot),
            "--name",
            name,
            "--initial-cluster",
            &cluster,
            "--initial-cluster-token",
            "tok",
            "--initial-advertise-peer-urls",
            url,
            "--data-dir",
            s(&data_dir),
        ]);
        assert_eq!(stdout(&restored), "");
        let log = String::from_utf8(restored.stderr).unwrap();
        assert!(log.contains(r#""msg":"restoring snapshot""#), "{log}");
        assert!(log.contains(r#""msg":"restored snapshot""#), "{log}");

        // The backend: every key at its revision, HashKV equal, the lease kept, the
        // consistent index at the last bootstrap entry.
        let db = data_dir.join("member/snap/db");
        let store = Store::open_path(&db, StoreConfig::default(), Arc::new(AnyLease)).unwrap();
        assert_eq!(all(&store), src.kvs);
        assert_eq!(store.current_revision(), src.revision);
        assert_eq!(store.hash_kv(0).unwrap(), src.hash);
        assert_eq!(store.compact_revision(), 4);
        assert_eq!(store.consistent_index(), ApplyIndex { index: 3, term: 1 });
        let leases = store.aux_scan(LEASE_TABLE).unwrap();
        assert_eq!(leases.len(), 1);
        assert_eq!(StoredLease::decode(leases[0].1.clone()).unwrap().id, LEASE);
        store.close().unwrap();

        // The WAL: this member's id and the new cluster's, three committed adds in term 1.
        let (wal, recovered) =
            Wal::open(&data_dir.join("member/wal"), &WalSnapshot::origin(), WalOptions::default())
                .unwrap();
        drop(wal);
        let metadata = Metadata::decode(recovered.metadata).unwrap();
        assert_eq!((metadata.node_id, metadata.cluster_id), ids(url, &urls, "tok"));
        cluster_ids.push(metadata.cluster_id);
        assert_eq!(recovered.hard_state, HardState { term: 1, vote: 0, commit: 3 });
        let mut added: Vec<u64> = recovered
            .entries
            .iter()
            .map(|e| {
                assert_eq!((e.term, e.entry_type), (1, EntryType::EntryConfChange as i32));
                let cc = ConfChange::decode(e.data.clone()).unwrap();
                assert_eq!(cc.change_type, ConfChangeType::ConfChangeAddNode as i32);
                cc.node_id
            })
            .collect();
        added.sort_unstable();
        let mut expected: Vec<u64> =
            urls.iter().map(|u| id::member_id(std::slice::from_ref(u), "tok", None)).collect();
        expected.sort_unstable();
        assert_eq!(added, expected);

        // hashkv reads the same from the data dir as from the snapshot.
        let from_dir = stdout(&oxetcdutl(&["hashkv", s(&data_dir)]));
        assert_eq!(from_dir, format!("{}, 57, 4\n", src.hash.hash));
    }
    assert!(cluster_ids.iter().all(|&c| c == cluster_ids[0]));
    no_leftovers(&out, &["m1.etcd", "m2.etcd", "m3.etcd"]);
}

#[test]
fn restore_uses_etcds_defaults_and_a_separate_wal_dir() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path());
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let restored = Command::new(env!("CARGO_BIN_EXE_oxetcdutl"))
        .current_dir(&out)
        .args(["snapshot", "restore", s(&src.snapshot), "--wal-dir", "wal"])
        .output()
        .unwrap();
    stdout(&restored);
    assert!(out.join("default.etcd/member/snap/db").is_file());
    assert!(!out.join("default.etcd/member/wal").exists());
    let (wal, recovered) =
        Wal::open(&out.join("wal"), &WalSnapshot::origin(), WalOptions::default()).unwrap();
    drop(wal);
    let metadata = Metadata::decode(recovered.metadata).unwrap();
    let url = "http://localhost:2380";
    assert_eq!((metadata.node_id, metadata.cluster_id), ids(url, &[url.into()], "etcd-cluster"));

    // The WAL dir exists now: refused, as etcd does.
    let again = Command::new(env!("CARGO_BIN_EXE_oxetcdutl"))
        .current_dir(&out)
        .args(["snapshot", "restore", s(&src.snapshot), "--wal-dir", "wal", "--data-dir", "x"])
        .output()
        .unwrap();
    assert_eq!(refused(&again), r#"Error: wal-dir "wal" exists"#);
    // A name not in the default --initial-cluster.
    let named = oxetcdutl(&["snapshot", "restore", s(&src.snapshot), "--name", "n1"]);
    assert_eq!(
        refused(&named),
        r#"Error: couldn't find local name "n1" in the initial cluster configuration"#
    );
}

fn restore_into(snapshot: &Path, data_dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["snapshot", "restore", s(snapshot), "--data-dir", s(data_dir)];
    args.extend_from_slice(extra);
    oxetcdutl(&args)
}

#[test]
fn an_altered_or_truncated_snapshot_is_refused_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path());
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let bytes = std::fs::read(&src.snapshot).unwrap();

    let altered = dir.path().join("altered.db");
    let mut flipped = bytes.clone();
    flipped[bytes.len() / 2] ^= 1;
    std::fs::write(&altered, &flipped).unwrap();
    let err = refused(&restore_into(&altered, &out.join("a"), &[]));
    assert!(err.starts_with("Error: expected sha256 ["), "{err}");
    assert!(err.contains("], got ["), "{err}");

    // Cut by a page: the last 32 bytes are taken for a trailer, and do not match.
    let cut = dir.path().join("cut.db");
    std::fs::write(&cut, &bytes[..bytes.len() - 4096]).unwrap();
    let err = refused(&restore_into(&cut, &out.join("b"), &[]));
    assert!(err.starts_with("Error: expected sha256 ["), "{err}");
    // Cut anywhere else: no trailer at all.
    let cut = dir.path().join("cut2.db");
    std::fs::write(&cut, &bytes[..bytes.len() - 1000]).unwrap();
    let err = refused(&restore_into(&cut, &out.join("c"), &[]));
    assert_eq!(err, "Error: snapshot missing hash but --skip-hash-check=false");
    // With the check skipped, a cut backend does not open, and is refused all the same.
    let skipped = restore_into(&cut, &out.join("d"), &["--skip-hash-check"]);
    assert_eq!(skipped.status.code(), Some(1));
    no_leftovers(&out, &[]);
}

#[test]
fn an_existing_data_dir_is_refused_unless_empty() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path());
    let data_dir = dir.path().join("existing");
    std::fs::create_dir_all(data_dir.join("member")).unwrap();
    let err = refused(&restore_into(&src.snapshot, &data_dir, &[]));
    assert_eq!(err, format!("Error: data-dir {:?} not empty or could not be read", s(&data_dir)));
    assert_eq!(std::fs::read_dir(&data_dir).unwrap().count(), 1, "left as it was");
    // An empty one is taken, as etcd 3.5 does.
    std::fs::remove_dir(data_dir.join("member")).unwrap();
    stdout(&restore_into(&src.snapshot, &data_dir, &[]));
    assert!(data_dir.join("member/snap/db").is_file());
}

#[test]
fn a_snapshot_in_oxetcds_own_format_restores_as_well() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path());
    let data_dir = dir.path().join("native");
    stdout(&restore_into(&src.native, &data_dir, &[]));
    let db = data_dir.join("member/snap/db");
    let store = Store::open_path(&db, StoreConfig::default(), Arc::new(AnyLease)).unwrap();
    assert_eq!(all(&store), src.kvs);
    assert_eq!(store.hash_kv(0).unwrap(), src.hash);
    store.close().unwrap();
}

#[test]
fn a_plain_backend_file_restores_with_skip_hash_check() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path());
    let err = refused(&restore_into(&src.plain, &dir.path().join("a"), &[]));
    assert_eq!(err, "Error: snapshot missing hash but --skip-hash-check=false");
    assert!(!dir.path().join("a").exists());
    let data_dir = dir.path().join("b");
    stdout(&restore_into(&src.plain, &data_dir, &["--skip-hash-check"]));
    let store = Store::open_path(
        data_dir.join("member/snap/db"),
        StoreConfig::default(),
        Arc::new(NoLeases),
    )
    .unwrap();
    assert_eq!(store.hash_kv(0).unwrap(), src.hash);
    store.close().unwrap();
}

#[test]
fn hashkv_prints_what_the_store_computes() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path());
    let out = stdout(&oxetcdutl(&["hashkv", s(&src.snapshot), "-w", "json"]));
    assert_eq!(
        out,
        format!("{{\"hash\":{},\"hashRevision\":57,\"compactRevision\":4}}\n", src.hash.hash)
    );
    let plain = stdout(&oxetcdutl(&["hashkv", s(&src.plain)]));
    assert_eq!(plain, format!("{}, 57, 4\n", src.hash.hash));
    let at = stdout(&oxetcdutl(&["hashkv", s(&src.plain), "--rev", "7"]));
    assert!(at.ends_with(", 7, 4\n"), "{at}");
    let table = stdout(&oxetcdutl(&["hashkv", s(&src.plain), "-w", "table", "--rev", "7"]));
    assert!(table.lines().nth(1).unwrap().ends_with(" | HASH REVISION | COMPACT REVISION |"));
    assert!(table.lines().nth(3).unwrap().ends_with(" |             7 |                4 |"));
    let compacted = oxetcdutl(&["hashkv", s(&src.plain), "--rev", "3"]);
    assert_eq!(refused(&compacted), "Error: mvcc: required revision has been compacted");
    let future = oxetcdutl(&["hashkv", s(&src.plain), "--rev", "99"]);
    assert_eq!(refused(&future), "Error: mvcc: required revision is a future revision");
    // The snapshot file is left as it was.
    assert!(file::has_trailer(std::fs::metadata(&src.snapshot).unwrap().len()));
}

/// A data dir whose backend has many freed pages: many large values, then all deleted
/// and compacted.
fn fragmented(dir: &Path) -> (PathBuf, HashKv) {
    let data_dir = dir.join("member.etcd");
    let snap = data_dir.join("member/snap");
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::create_dir_all(data_dir.join("member/wal")).unwrap();
    let store =
        Store::open_path(snap.join("db"), StoreConfig::default(), Arc::new(NoLeases)).unwrap();
    for i in 0..600 {
        put(&store, &format!("big{i:03}"), &"x".repeat(8000), 0, i + 1);
    }
    store.force_commit().unwrap();
    let del =
        DeleteRangeRequest { key: "big".into(), range_end: "bih".into(), ..Default::default() };
    store.delete_range(&del, ApplyIndex { index: 700, term: 1 }).unwrap();
    put(&store, "kept", "v", 0, 701);
    let rev = store.current_revision();
    let (_, handle) = store.compact(rev, ApplyIndex { index: 702, term: 1 }).unwrap();
    handle.wait().unwrap();
    store.force_commit().unwrap();
    let hash = store.hash_kv(0).unwrap();
    store.close().unwrap();
    (data_dir, hash)
}

#[test]
fn defrag_shrinks_a_stopped_members_backend_and_refuses_a_running_one() {
    let dir = tempfile::tempdir().unwrap();
    let (data_dir, hash) = fragmented(dir.path());
    let db = data_dir.join("member/snap/db");
    let before = std::fs::metadata(&db).unwrap().len();

    // A member running on the data dir holds its WAL directory's lock.
    let wal_lock = oxetcd_utl::layout::lock_wal(&data_dir).unwrap();
    assert!(wal_lock.is_some());
    let err = refused(&oxetcdutl(&["defrag", "--data-dir", s(&data_dir)]));
    assert!(
        err.starts_with(&format!("Error: Failed to defragment etcd data[{}] (", s(&data_dir))),
        "{err}"
    );
    assert!(err.contains("is locked"), "{err}");
    drop(wal_lock);
    // So does its backend's file lock.
    let store = Store::open_path(&db, StoreConfig::default(), Arc::new(NoLeases)).unwrap();
    let err = refused(&oxetcdutl(&["defrag", "--data-dir", s(&data_dir)]));
    assert!(err.starts_with("Error: Failed to defragment etcd data["), "{err}");
    store.close().unwrap();

    let out = stdout(&oxetcdutl(&["defrag", "--data-dir", s(&data_dir)]));
    assert_eq!(out, "", "etcd prints nothing on success");
    let after = std::fs::metadata(&db).unwrap().len();
    assert!(after < before / 2, "{before} -> {after}");
    no_leftovers(&data_dir.join("member/snap"), &["db"]);
    let store = Store::open_path(&db, StoreConfig::default(), Arc::new(NoLeases)).unwrap();
    assert_eq!(store.hash_kv(0).unwrap(), hash);
    store.close().unwrap();

    let missing = oxetcdutl(&["defrag", "--data-dir", s(&dir.path().join("none"))]);
    assert!(refused(&missing).contains("no such file or directory"));
}

#[test]
fn migrate_finalize_removes_the_kept_etcd_backend_once() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path());
    let data_dir = dir.path().join("member.etcd");
    stdout(&restore_into(&src.snapshot, &data_dir, &[]));
    // What a member leaves when it converts etcd's data dir.
    let kept = data_dir.join("member/snap/db.etcd");
    std::fs::copy(&src.plain, &kept).unwrap();
    let bytes = std::fs::metadata(&kept).unwrap().len();

    let done = stdout(&oxetcdutl(&["migrate", "--data-dir", s(&data_dir), "--finalize"]));
    assert_eq!(done, format!("removed etcd's backend {} ({bytes} bytes)\n", kept.display()));
    assert!(!kept.exists());
    assert!(data_dir.join("member/snap/db").is_file(), "oxetcd's backend stays");

    let again = refused(&oxetcdutl(&["migrate", "--data-dir", s(&data_dir), "--finalize"]));
    assert!(again.contains("no etcd backend is kept in this data dir"), "{again}");
    let neither = refused(&oxetcdutl(&["migrate", "--data-dir", s(&data_dir)]));
    assert_eq!(neither, "Error: give exactly one of --finalize and --to etcd");
}

/// `src`'s snapshot restored into `member.etcd` in `dir`, and its `oxetcdutl hashkv`.
fn restored_member(dir: &Path, src: &Source) -> (PathBuf, String) {
    let data_dir = dir.join("member.etcd");
    stdout(&restore_into(&src.snapshot, &data_dir, &[]));
    let hash = stdout(&oxetcdutl(&["hashkv", s(&data_dir)]));
    (data_dir, hash)
}

/// `migrate --to etcd` leaves etcd's backend (bbolt) with the same contents, and no
/// staging file; a second run is refused. (That etcd 3.4.23 then runs on the dir is the
/// compatibility suite's `an_oxetcd_data_dir_goes_to_etcd_in_place_and_comes_back`.)
#[test]
fn migrate_to_etcd_writes_etcds_backend_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path());
    let (data_dir, hash_before) = restored_member(dir.path(), &src);

    let done = stdout(&oxetcdutl(&["migrate", "--data-dir", s(&data_dir), "--to", "etcd"]));
    assert!(
        done.starts_with(&format!("migrated {} to etcd's format", data_dir.display())),
        "{done}"
    );
    let backend = data_dir.join("member/snap/db");
    let format = oxetcd_mvcc::etcd_file::detect_format(&backend).unwrap();
    assert_eq!(format, oxetcd_mvcc::etcd_file::BackendFormat::Bbolt);
    assert_eq!(stdout(&oxetcdutl(&["hashkv", s(&data_dir)])), hash_before);
    no_leftovers(&data_dir.join("member"), &["snap", "wal"]);
    no_leftovers(&data_dir.join("member/snap"), &["db"]);

    let again = refused(&oxetcdutl(&["migrate", "--data-dir", s(&data_dir), "--to", "etcd"]));
    assert!(again.contains("is already in etcd's format (bbolt)"), "{again}");

    // A member run with --wal-dir: the tool is told where its log is.
    let (data_dir, wal_dir) = (dir.path().join("apart"), dir.path().join("apart.wal"));
    stdout(&restore_into(&src.snapshot, &data_dir, &["--wal-dir", s(&wal_dir)]));
    let to_etcd = ["migrate", "--data-dir", s(&data_dir), "--to", "etcd"];
    let no_wal = refused(&oxetcdutl(&to_etcd));
    assert!(no_wal.contains("no WAL in") && no_wal.contains("--wal-dir"), "{no_wal}");
    stdout(&oxetcdutl(&[&to_etcd[..], &["--wal-dir", s(&wal_dir)]].concat()));
    assert_eq!(stdout(&oxetcdutl(&["hashkv", s(&data_dir)])), hash_before);
    let made = ["native.db", "plain.db", "snapshot.db", "src.db", "member.etcd"];
    no_leftovers(dir.path(), &[&made[..], &["apart", "apart.wal"]].concat());
}

/// A member killed between writing a snapshot's file and its WAL record leaves a snap
/// file newer than every snapshot its WAL records. `migrate --to etcd` measures the
/// backend against the recorded snapshot (the one a restart starts from), and removes the
/// newer file, which etcd 3.4 (taking the newest file) would fail to start on.
#[test]
fn migrate_to_etcd_drops_a_snap_file_its_wal_has_no_record_of() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path());
    let (data_dir, hash_before) = restored_member(dir.path(), &src);
    // Far past the backend's consistent index, and not cluster state: were it measured
    // or rewritten, the migration would be refused.
    let unrecorded = oxetcd_raft::Snapshot {
        data: b"never read".to_vec().into(),
        metadata: Some(oxetcd_raft::SnapshotMetadata {
            index: 1_000_000,
            term: 9,
            ..Default::default()
        }),
    };
    let snap_dir = data_dir.join("member/snap");
    let path = oxetcd_wal::Snapshotter::new(&snap_dir).unwrap().save(&unrecorded).unwrap();

    let done = stdout(&oxetcdutl(&["migrate", "--data-dir", s(&data_dir), "--to", "etcd"]));
    assert!(
        done.contains(&format!(
            "removed {}, a snapshot file its WAL has no record of",
            path.display()
        )),
        "{done}"
    );
    assert!(!path.exists());
    no_leftovers(&snap_dir, &["db"]);
    assert_eq!(stdout(&oxetcdutl(&["hashkv", s(&data_dir)])), hash_before);
}
