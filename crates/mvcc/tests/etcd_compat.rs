//! Byte-level compatibility with a real etcd: the same operations, sent to etcd 3.4 with
//! etcdctl and applied to our store, must give the same HashKV (crc32c of every stored
//! revision: key encoding, KeyValue encoding, tombstones, compaction) at every revision.
//! Part of the compatibility suite (`scripts/compat.sh`, feature `compat`): fails loudly
//! when `etcd`/`etcdctl` are not installed (Debian: etcd-server, etcd-client).

mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use oxetcd_api::etcdserverpb::TxnRequest;
use oxetcd_api::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use oxetcd_mvcc::{ApplyIndex, Store};

/// How long etcd gets to come up.
const STARTUP: Duration = Duration::from_secs(20);
const OPS: u64 = 120;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// A real etcd on loopback ports, killed when dropped.
struct Etcd {
    child: Child,
    endpoint: String,
    _dir: tempfile::TempDir,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Etcd {
    fn start() -> Self {
        let installed = |bin: &str| {
            Command::new(bin).arg("--version").output().is_ok_and(|o| o.status.success())
        };
        if !installed("etcd")
            || !Command::new("etcdctl").arg("version").output().is_ok_and(|o| o.status.success())
        {
            panic!(
                "etcd/etcdctl 3.4 are not installed: run scripts/compat.sh, which installs Debian's \
                 etcd-server and etcd-client"
            );
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let (client, peer) = (free_port(), free_port());
        let client_url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let child = Command::new("etcd")
            .arg("--data-dir")
            .arg(dir.path().join("etcd"))
            .args(["--listen-client-urls", &client_url, "--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url, "--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("default={peer_url}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start etcd");
        let etcd = Self { child, endpoint: format!("127.0.0.1:{client}"), _dir: dir };
        let deadline = Instant::now() + STARTUP;
        while etcd.ctl(&["endpoint", "health"], None).is_none() {
            assert!(Instant::now() < deadline, "etcd did not become healthy");
            std::thread::sleep(Duration::from_millis(100));
        }
        etcd
    }

    /// Runs etcdctl; `None` if it fails.
    fn ctl(&self, args: &[&str], stdin: Option<&str>) -> Option<String> {
        use std::io::Write;
        let mut child = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.endpoint))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run etcdctl");
        if let Some(input) = stdin {
            child.stdin.as_mut().expect("stdin").write_all(input.as_bytes()).expect("write stdin");
        }
        drop(child.stdin.take());
        let out = child.wait_with_output().expect("etcdctl output");
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn hash_kv(&self, rev: i64) -> u32 {
        let out = self
            .ctl(&["endpoint", "hashkv", &format!("--rev={rev}"), "-w", "json"], None)
            .expect("hashkv");
        let at = out.find("\"hash\":").expect("hash field") + "\"hash\":".len();
        out[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .expect("hash value")
    }
}

fn next(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

/// One pseudo-random operation, applied to both.
fn step(etcd: &Etcd, store: &Store, i: u64, x: &mut u64) {
    let key = format!("k{}", next(x) % 8);
    let value = format!("v{i}");
    match next(x) % 10 {
        0..=5 => {
            etcd.ctl(&["put", &key, &value], None).expect("etcd put");
            store.put(&put(&key, &value), ApplyIndex::ZERO).expect("put");
        }
        6 => {
            etcd.ctl(&["del", &key], None).expect("etcd del");
            store.delete_range(&delete(&key, ""), ApplyIndex::ZERO).expect("delete");
        }
        7 => {
            etcd.ctl(&["del", "k2", "k5"], None).expect("etcd del range");
            store.delete_range(&delete("k2", "k5"), ApplyIndex::ZERO).expect("delete range");
        }
        _ => {
            let script = format!(
                "version(\"{key}\") > \"1\"\n\nput {key} {value}\ndel k7\n\nput k0 {value}\n\n"
            );
            let req = TxnRequest {
                compare: vec![cmp(
                    &key,
                    CompareTarget::Version,
                    CompareResult::Greater,
                    TargetUnion::Version(1),
                )],
                success: vec![op_put(put(&key, &value)), op_delete(delete("k7", ""))],
                failure: vec![op_put(put("k0", &value))],
            };
            // With key "k7" both must refuse the txn (duplicate key).
            let theirs = etcd.ctl(&["txn"], Some(&script));
            let ours = store.txn(&req, ApplyIndex::ZERO);
            assert_eq!(theirs.is_some(), ours.is_ok(), "txn outcome for {key}: ours {ours:?}");
        }
    }
}

#[test]
fn hash_kv_matches_real_etcd() {
    let etcd = Etcd::start();
    let t = TempStore::new();
    let store = t.store();
    let mut x = 0x2545_F491_4F6C_DD1D;
    for i in 0..OPS {
        step(&etcd, store, i, &mut x);
    }
    let current = store.current_revision();
    for rev in [0, 1, 2, current / 3, current / 2, current - 1, current] {
        assert_eq!(store.hash_kv(rev).unwrap().hash, etcd.hash_kv(rev), "HashKV at {rev}");
    }
    let compact_at = current / 2;
    etcd.ctl(&["compact", &compact_at.to_string(), "--physical"], None).expect("etcd compact");
    store.compact(compact_at, ApplyIndex::ZERO).expect("compact").1.wait().expect("physical");
    for i in OPS..OPS + OPS / 2 {
        step(&etcd, store, i, &mut x);
    }
    let current = store.current_revision();
    for rev in [0, compact_at + 1, (compact_at + current) / 2, current] {
        assert_eq!(
            store.hash_kv(rev).unwrap().hash,
            etcd.hash_kv(rev),
            "HashKV at {rev} after compaction"
        );
    }
}
