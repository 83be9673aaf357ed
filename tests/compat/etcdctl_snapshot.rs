//! `etcdctl snapshot save` (etcdctl 3.4.23) against an oxetcd member, and the file it
//! writes restored by `oxetcdutl snapshot restore` into a new member that serves the
//! same history: every key at its revisions, the compaction, the lease with its keys,
//! HashKV at the snapshot's revision.
//!
//! `oxetcdutl` is taken from the target dir this test was built in (`target/<profile>/`):
//! `scripts/compat.sh` builds it first; the test fails, never skips, without it.

use std::path::{Path, PathBuf};
use std::process::Command;

use oxetcd_client::{Client, ClientOptions, EtcdErrorKind, GetOptions, KeyValue, PutOptions};
use oxetcd_tests::etcdctl::{Step, run_blocking, scheme_less};
use oxetcd_tests::member::{
    TestMember, free_port, init_test_logs, named_member_config, raft_snapshot_files,
};

fn oxetcdutl_bin() -> PathBuf {
    oxetcd_tests::workspace_bin("oxetcdutl", "oxetcd-utl")
}

async fn connect(endpoint: &str) -> Client {
    Client::connect([endpoint], ClientOptions::default()).await.expect("a client")
}

/// Key, value, create and mod revisions, version, lease.
type Summary = (Vec<u8>, Vec<u8>, i64, i64, i64, i64);

fn summary(kvs: &[KeyValue]) -> Vec<Summary> {
    kvs.iter()
        .map(|kv| {
            let (key, value) = (kv.key.to_vec(), kv.value.to_vec());
            (key, value, kv.create_revision, kv.mod_revision, kv.version, kv.lease)
        })
        .collect()
}

async fn everything(client: &Client) -> (Vec<KeyValue>, i64) {
    let all = client.get("", Some(GetOptions::new().with_prefix())).await.expect("every key");
    (all.kvs, all.header.expect("a header").revision)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_snapshot_save_restores_with_oxetcdutl() {
    init_test_logs();
    let source = TestMember::start(&[]).await;
    let c = connect(&source.endpoint).await;
    c.put("a", "1", None).await.unwrap();
    c.put("b", "1", None).await.unwrap();
    c.put("a", "2", None).await.unwrap();
    c.delete("b", None).await.unwrap();
    let lease = c.lease_grant(3600, 0).await.unwrap().id;
    c.put("leased", "l", Some(PutOptions::new().with_lease(lease))).await.unwrap();
    let compacted_at = c.put("a", "3", None).await.unwrap().header.unwrap().revision;
    c.compact(compacted_at - 1, true).await.unwrap();
    for i in 0..200 {
        c.put(format!("bulk/{i:03}"), vec![b'v'; 1024], None).await.unwrap();
    }
    let (source_kvs, revision) = everything(&c).await;
    let source_hash = c.maintenance().hash_kv(revision).await.unwrap().hash;

    let dir = tempfile::tempdir().unwrap();
    let snapshot = dir.path().join("etcdctl.db");
    let path = snapshot.display().to_string();
    let save = Step::args(&["snapshot", "save", path.as_str()]);
    let saved = run_blocking(&scheme_less(&source.endpoint), &save, None);
    assert_eq!(saved.code, Some(0), "{saved:?}");
    assert!(saved.stdout.contains("Snapshot saved at"), "{saved:?}");
    drop(c);
    source.stop().await;

    let status = Command::new(oxetcdutl_bin())
        .args(["snapshot", "status", "-w", "json"])
        .arg(&snapshot)
        .output()
        .unwrap();
    assert!(status.status.success(), "{status:?}");
    let json = String::from_utf8(status.stdout).unwrap();
    assert!(json.contains(&format!("\"revision\":{revision},")), "{json}");

    // A new single-member cluster on the restored data dir.
    let member_dir = tempfile::tempdir().unwrap();
    let data_dir = member_dir.path().join("data");
    let peer = format!("http://127.0.0.1:{}", free_port());
    let cluster = format!("restored={peer}");
    let restored = Command::new(oxetcdutl_bin())
        .args(["snapshot", "restore"])
        .arg(&snapshot)
        .args(["--name", "restored", "--initial-cluster", &cluster])
        .args(["--initial-cluster-token", "etcdctl-restored"])
        .args(["--initial-advertise-peer-urls", &peer, "--data-dir"])
        .arg(&data_dir)
        .output()
        .unwrap();
    assert!(restored.status.success(), "{restored:?}");
    let config = named_member_config("restored", &peer, &data_dir, &[]);
    let member = TestMember::start_configured(member_dir, config).await;
    let c = connect(&member.endpoint).await;

    let (kvs, at) = everything(&c).await;
    assert_eq!(at, revision);
    assert_eq!(summary(&kvs), summary(&source_kvs));
    assert_eq!(c.maintenance().hash_kv(revision).await.unwrap().hash, source_hash);
    let below = c.get("a", Some(GetOptions::new().with_revision(compacted_at - 2))).await;
    assert_eq!(below.expect_err("compacted").etcd_kind(), Some(EtcdErrorKind::Compacted));
    let ttl = c.lease_time_to_live(lease, true).await.unwrap();
    assert!(ttl.ttl > 0, "{ttl:?}");
    assert_eq!(ttl.keys, [b"leased".to_vec()]);
    let written = c.put("after", "restore", None).await.unwrap();
    assert_eq!(written.header.unwrap().revision, revision + 1);
    drop(c);
    member.stop().await;
}

/// What a member serves, to compare across the moves: every key with its revisions, the
/// revision, HashKV there, the lease's keys, a user's roles and a role's permissions.
#[derive(Debug, PartialEq)]
struct Served {
    kvs: Vec<Summary>,
    revision: i64,
    /// HashKV at every revision after the compaction (etcd refuses HashKV at it).
    hashes: Vec<(i64, u32)>,
    leased_keys: Vec<bytes::Bytes>,
    user_roles: Vec<String>,
    role_perms: Vec<(i32, Vec<u8>, Vec<u8>)>,
    /// Active alarms: member and type.
    alarms: Vec<(u64, i32)>,
}

/// What [`lease_compaction_and_auth`] wrote that [`served`] reads back.
#[derive(Clone, Copy)]
struct Written {
    lease: i64,
    /// The revision of the put of `k/00`; the store is compacted at the one before.
    compacted_at: i64,
}

/// Writes what [`served`] reads besides the keys: a lease with a key, a compaction below
/// a put of `k/00`, user `alice` with role `reader` (read on `k/`).
async fn lease_compaction_and_auth(c: &Client) -> Written {
    use oxetcd_client::auth::{Permission, PermissionType};
    let lease = c.lease_grant(3600, 0).await.unwrap().id;
    c.put("leased", "l", Some(PutOptions::new().with_lease(lease))).await.unwrap();
    let compacted_at = c.put("k/00", "last", None).await.unwrap().header.unwrap().revision;
    c.compact(compacted_at - 1, true).await.unwrap();
    c.auth().user_add("alice", "pw", false).await.unwrap();
    c.auth().role_add("reader").await.unwrap();
    let perm = Permission::new(PermissionType::Read, "k/").with_prefix();
    c.auth().role_grant_permission("reader", perm).await.unwrap();
    c.auth().user_grant_role("alice", "reader").await.unwrap();
    Written { lease, compacted_at }
}

async fn served(client: &Client, written: Written) -> Served {
    use oxetcd_client::{AlarmAction, AlarmType};
    let (kvs, revision) = everything(client).await;
    let mut hashes = Vec::new();
    for rev in written.compacted_at..=revision {
        hashes.push((rev, client.maintenance().hash_kv(rev).await.unwrap().hash));
    }
    let leased_keys = client.lease_time_to_live(written.lease, true).await.unwrap().keys;
    let user_roles = client.auth().user_get("alice").await.unwrap().roles;
    let role_perms = (client.auth().role_get("reader").await.unwrap().perm.into_iter())
        .map(|p| (p.perm_type, p.key.to_vec(), p.range_end.to_vec()))
        .collect();
    let alarms = client.maintenance().alarm(AlarmAction::Get, 0, AlarmType::None).await.unwrap();
    let alarms = alarms.alarms.into_iter().map(|a| (a.member_id, a.alarm)).collect();
    Served { kvs: summary(&kvs), revision, hashes, leased_keys, user_roles, role_perms, alarms }
}

/// etcd 3.4.23 writes a data dir (keys, history, a compaction, a txn, a lease, a user and
/// a role) and is killed; oxetcd starts on that data dir as the same member and serves
/// all of it with the same HashKV, then writes more. etcdctl 3.4 saves a snapshot from
/// oxetcd and restores it, and etcd 3.4.23 serves the result with the same HashKV: out
/// and back, with etcd's own tools at both ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_etcd_data_dir_runs_on_oxetcd_and_goes_back_to_etcd_through_a_snapshot() {
    use oxetcd_client::{Compare, CompareOp, Txn, TxnOp};
    init_test_logs();
    let etcd_dir = tempfile::tempdir().unwrap();
    let data_dir = etcd_dir.path().join("data");
    let peer = format!("http://127.0.0.1:{}", free_port());

    let etcd = oxetcd_tests::reference::ReferenceEtcd::start_on(&data_dir, "m1", &peer).await;
    let c = connect(&etcd.endpoint).await;
    for i in 0..50 {
        c.put(format!("k/{i:02}"), format!("v{i}"), None).await.unwrap();
    }
    c.put("k/07", "again", None).await.unwrap();
    c.delete("k/1", Some(oxetcd_client::DeleteOptions::new().with_prefix())).await.unwrap();
    let txn = Txn::new()
        .when([Compare::value("k/07", CompareOp::Equal, "again")])
        .and_then([TxnOp::put("t/1", "x", None), TxnOp::put("t/2", "y", None)]);
    assert!(c.txn(txn).await.unwrap().succeeded);
    let written = lease_compaction_and_auth(&c).await;
    let compacted_at = written.compacted_at;
    let from_etcd = served(&c, written).await;
    let member_id = c.get("k/00", None).await.unwrap().header.unwrap().member_id;
    drop(c);
    drop(etcd); // SIGKILL: what the backend had not committed yet comes back from the WAL.

    let member =
        TestMember::start_configured(etcd_dir, named_member_config("m1", &peer, &data_dir, &[]))
            .await;
    let c = connect(&member.endpoint).await;
    assert_eq!(served(&c, written).await, from_etcd, "oxetcd serves what etcd did");
    let header = c.get("k/00", None).await.unwrap().header.unwrap();
    assert_eq!(header.member_id, member_id, "the same member");
    let below = c.get("k/00", Some(GetOptions::new().with_revision(compacted_at - 2))).await;
    assert_eq!(below.expect_err("compacted").etcd_kind(), Some(EtcdErrorKind::Compacted));
    assert!(data_dir.join("member/snap/db.etcd").is_file(), "etcd's backend is kept");
    c.put("after", "oxetcd", None).await.unwrap();
    let from_oxetcd = served(&c, written).await;
    assert_eq!(from_oxetcd.revision, from_etcd.revision + 1);

    let dir = tempfile::tempdir().unwrap();
    let snapshot = dir.path().join("from-oxetcd.db").display().to_string();
    let save = Step::args(&["snapshot", "save", snapshot.as_str()]);
    let saved = run_blocking(&scheme_less(&member.endpoint), &save, None);
    assert_eq!(saved.code, Some(0), "{saved:?}");
    drop(c);
    member.stop().await;
    let status = Step::args(&["-w", "json", "snapshot", "status", snapshot.as_str()]);
    let status = run_blocking("127.0.0.1:1", &status, None);
    assert!(
        status.stdout.contains(&format!("\"revision\":{},", from_oxetcd.revision)),
        "{status:?}"
    );

    let restored = dir.path().join("restored").display().to_string();
    let peer2 = format!("http://127.0.0.1:{}", free_port());
    let cluster2 = format!("m2={peer2}");
    let restore = Step::args(&[
        "snapshot",
        "restore",
        snapshot.as_str(),
        "--name",
        "m2",
        "--initial-cluster",
        &cluster2,
        "--initial-advertise-peer-urls",
        &peer2,
        "--data-dir",
        &restored,
    ]);
    let out = run_blocking("127.0.0.1:1", &restore, None);
    assert_eq!(out.code, Some(0), "{out:?}");
    let etcd =
        oxetcd_tests::reference::ReferenceEtcd::start_on(Path::new(&restored), "m2", &peer2).await;
    let c = connect(&etcd.endpoint).await;
    assert_eq!(served(&c, written).await, from_oxetcd, "etcd serves what oxetcd did");
    c.put("back", "etcd", None).await.unwrap();
}

/// Members as the cluster lists them: id, peer URLs, learner or not.
async fn membership(client: &Client) -> Vec<(u64, Vec<String>, bool)> {
    let mut members: Vec<_> = (client.cluster().member_list().await.unwrap().members.into_iter())
        .map(|m| (m.id, m.peer_ur_ls, m.is_learner))
        .collect();
    members.sort();
    members
}

/// oxetcd writes a data dir (history, a compaction, a lease, a user and a role, raft
/// snapshots, membership changes: a learner added, its peer URLs updated, and a NOSPACE
/// alarm) and stops;
/// `oxetcdutl migrate --to etcd` turns the dir into etcd's in place; etcd 3.4.23 starts
/// on it as the same member of the same cluster, serves all of it with the same HashKV
/// and writes more; killed, it leaves the dir to oxetcd, which starts on it again and
/// serves what etcd did. The way back without a snapshot, and round again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oxetcd_data_dir_goes_to_etcd_in_place_and_comes_back() {
    use oxetcd_client::{AlarmAction, AlarmType};
    init_test_logs();
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let peer = format!("http://127.0.0.1:{}", free_port());
    // Small, so the log holds raft snapshots and entries after the last one.
    let snapshot_count = ["--snapshot-count", "25"];
    let config = named_member_config("m1", &peer, &data_dir, &snapshot_count);
    let member = TestMember::start_configured(dir, config).await;
    let c = connect(&member.endpoint).await;
    let learner_peer = format!("http://127.0.0.1:{}", free_port());
    let added = c.cluster().member_add(vec![learner_peer], true).await.unwrap();
    let learner = added.member.expect("the added member").id;
    for i in 0..60 {
        c.put(format!("k/{i:02}"), format!("v{i}"), None).await.unwrap();
    }
    let moved_peer = format!("http://127.0.0.2:{}", free_port());
    c.cluster().member_update(learner, vec![moved_peer]).await.unwrap();
    let written = lease_compaction_and_auth(&c).await;
    let compacted_at = written.compacted_at;
    for i in 0..10 {
        c.put(format!("tail/{i}"), "t", None).await.unwrap();
    }
    let header = c.get("k/00", None).await.unwrap().header.unwrap();
    // An alarm goes across too (and must be disarmed there before etcd takes writes).
    let (member_id, nospace) = (header.member_id, AlarmType::Nospace);
    c.maintenance().alarm(AlarmAction::Activate, member_id, nospace).await.unwrap();
    let from_oxetcd = served(&c, written).await;
    assert_eq!(from_oxetcd.alarms.len(), 1);
    let members = membership(&c).await;
    drop(c);
    let dir = member.stop().await;
    assert!(raft_snapshot_files(&data_dir) > 0, "raft snapshots were taken");

    migrate_to_etcd(&data_dir);
    let again = Command::new(oxetcdutl_bin())
        .args(["migrate", "--to", "etcd", "--data-dir"])
        .arg(&data_dir)
        .output()
        .unwrap();
    assert!(!again.status.success(), "a second run finds etcd's format: {again:?}");
    for leftover in ["member/snap/db.etcd-migrating", "member/wal.etcd-migrating"] {
        assert!(!data_dir.join(leftover).exists(), "{leftover} is left behind");
    }

    let etcd = oxetcd_tests::reference::ReferenceEtcd::start_on(&data_dir, "m1", &peer).await;
    let c = connect(&etcd.endpoint).await;
    assert_eq!(served(&c, written).await, from_oxetcd, "etcd serves what oxetcd did");
    assert_eq!(membership(&c).await, members, "the same members");
    let etcd_header = c.get("k/00", None).await.unwrap().header.unwrap();
    assert_eq!(
        (etcd_header.cluster_id, etcd_header.member_id),
        (header.cluster_id, header.member_id),
        "the same member of the same cluster"
    );
    let below = c.get("k/00", Some(GetOptions::new().with_revision(compacted_at - 2))).await;
    assert_eq!(below.expect_err("compacted").etcd_kind(), Some(EtcdErrorKind::Compacted));
    let refused = c.put("after", "etcd", None).await.expect_err("the NOSPACE alarm holds");
    assert_eq!(refused.etcd_kind(), Some(EtcdErrorKind::NoSpace), "{refused:?}");
    c.maintenance().alarm(AlarmAction::Deactivate, member_id, nospace).await.unwrap();
    c.put("after", "etcd", None).await.unwrap();
    let from_etcd = served(&c, written).await;
    drop(c);
    drop(etcd); // SIGKILL

    let member =
        TestMember::start_configured(dir, named_member_config("m1", &peer, &data_dir, &[])).await;
    let c = connect(&member.endpoint).await;
    assert_eq!(served(&c, written).await, from_etcd, "oxetcd serves what etcd did");
    assert_eq!(membership(&c).await, members);
    c.put("again", "oxetcd", None).await.unwrap();
    drop(c);
    member.stop().await;
}

/// `oxetcdutl migrate --to etcd` on a stopped member's data dir, checked to succeed.
fn migrate_to_etcd(data_dir: &Path) {
    let out = Command::new(oxetcdutl_bin())
        .args(["migrate", "--to", "etcd", "--data-dir"])
        .arg(data_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

/// A three-member etcd 3.4.23 cluster (puts, deletes, a txn, a lease, a compaction, a
/// user and a role) is killed; three oxetcd members start on its data dirs and serve all
/// of it as the same cluster, with the same HashKV at every revision held, and write
/// more; stopped, their dirs go back to etcd with `oxetcdutl migrate --to etcd`, and the
/// etcd cluster serves what oxetcd did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_etcd_cluster_moves_to_oxetcd_and_back_in_place() {
    use oxetcd_client::{Compare, CompareOp, Txn, TxnOp};
    use oxetcd_tests::member::cluster_member_config;
    use oxetcd_tests::reference::ReferenceEtcd;
    init_test_logs();
    let dir = tempfile::tempdir().unwrap();
    let names = ["e0", "e1", "e2"];
    let data_dirs: Vec<PathBuf> = names.iter().map(|n| dir.path().join(n)).collect();
    let peers: Vec<String> =
        names.iter().map(|_| format!("http://127.0.0.1:{}", free_port())).collect();
    let members: Vec<(&Path, &str, &str)> =
        (0..3).map(|i| (data_dirs[i].as_path(), names[i], peers[i].as_str())).collect();
    let cluster = |endpoints: Vec<String>| async move {
        Client::connect(endpoints, ClientOptions::default()).await.expect("a client")
    };

    let etcds = ReferenceEtcd::start_cluster_on(&members).await;
    let c = cluster(etcds.iter().map(|e| e.endpoint.clone()).collect()).await;
    for i in 0..40 {
        c.put(format!("k/{i:02}"), format!("v{i}"), None).await.unwrap();
    }
    c.delete("k/1", Some(oxetcd_client::DeleteOptions::new().with_prefix())).await.unwrap();
    let txn = Txn::new()
        .when([Compare::value("k/07", CompareOp::Equal, "v7")])
        .and_then([TxnOp::put("t/1", "x", None), TxnOp::delete("k/08", None)]);
    assert!(c.txn(txn).await.unwrap().succeeded);
    let written = lease_compaction_and_auth(&c).await;
    let from_etcd = served(&c, written).await;
    let members_before = membership(&c).await;
    let cluster_id = c.get("k/00", None).await.unwrap().header.unwrap().cluster_id;
    drop(c);
    drop(etcds); // SIGKILL, all three

    let initial: Vec<String> = (0..3).map(|i| format!("{}={}", names[i], peers[i])).collect();
    let mut oxetcds = Vec::new();
    for i in 0..3 {
        let config =
            cluster_member_config(names[i], &peers[i], &data_dirs[i], &initial.join(","), &[]);
        oxetcds.push(oxetcd::embed::Member::start(config).await.expect("member starts"));
    }
    let endpoints = oxetcds.iter().map(|m| format!("http://{}", m.client_addrs[0])).collect();
    let c = cluster(endpoints).await;
    assert_eq!(served(&c, written).await, from_etcd, "oxetcd serves what etcd did");
    assert_eq!(membership(&c).await, members_before, "the same members");
    let header = c.get("k/00", None).await.unwrap().header.unwrap();
    assert_eq!(header.cluster_id, cluster_id, "the same cluster");
    c.put("after", "oxetcd", None).await.unwrap();
    let from_oxetcd = served(&c, written).await;
    drop(c);
    for member in oxetcds {
        member.close().await;
    }

    for data_dir in &data_dirs {
        migrate_to_etcd(data_dir);
    }
    let etcds = ReferenceEtcd::start_cluster_on(&members).await;
    let c = cluster(etcds.iter().map(|e| e.endpoint.clone()).collect()).await;
    assert_eq!(served(&c, written).await, from_oxetcd, "etcd serves what oxetcd did");
    assert_eq!(membership(&c).await, members_before);
    c.put("back", "etcd", None).await.unwrap();
}
