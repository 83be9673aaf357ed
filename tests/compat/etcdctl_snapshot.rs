//! `etcdctl snapshot save` (etcdctl 3.4.23) against an oxetcd member, and the file it
//! writes restored by `oxetcdutl snapshot restore` into a new member that serves the
//! same history: every key at its revisions, the compaction, the lease with its keys,
//! HashKV at the snapshot's revision.
//!
//! `oxetcdutl` is taken from the target dir this test was built in (`target/<profile>/`):
//! `scripts/compat.sh` builds it first; the test fails, never skips, without it.

use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Parser;
use oxetcd::config::Flags;
use oxetcd_client::{Client, ClientOptions, EtcdErrorKind, GetOptions, KeyValue, PutOptions};
use oxetcd_tests::etcdctl::{Step, run_blocking, scheme_less};
use oxetcd_tests::member::{TestMember, free_port, init_test_logs};

/// `target/<profile>/oxetcdutl`, beside this test's `deps/` dir.
fn oxetcdutl_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps/<test>");
    let path = profile_dir.join(format!("oxetcdutl{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "{} is missing: build it first (`cargo build -p oxetcd-utl`; scripts/compat.sh does)",
        path.display()
    );
    path
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
    let flags = Flags::try_parse_from([
        "oxetcd",
        "--name",
        "restored",
        "--listen-client-urls",
        "http://127.0.0.1:0",
        "--advertise-client-urls",
        "http://127.0.0.1:2379",
        "--listen-peer-urls",
        &peer,
        "--initial-advertise-peer-urls",
        &peer,
        "--initial-cluster",
        &cluster,
        "--data-dir",
        &data_dir.display().to_string(),
    ]);
    let config = flags.expect("flags parse").into_config().expect("valid flags");
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
