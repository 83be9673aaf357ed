//! The real `oxetcd` binary stops when its storage fails: the write that met the
//! failure is refused, and the process exits with code 1 after one error line, as etcd
//! logs a fatal line and exits; restarted, it has every acknowledged write (a failed
//! entry write, lease revoke or compaction batch). A failed defragmentation is no such
//! failure: the member serves on. The failure is a failpoint, enabled through
//! `FAILPOINTS` (the test build of the binary has them).

mod support;

use std::time::Duration;

use support::{MemberConfig, Process, member_client};
use tonic::Code;

/// How long the member may take to close its listeners and exit.
const EXIT_TIMEOUT: Duration = Duration::from_secs(15);

/// The line the member logs when it stops on a storage failure.
const FATAL_LINE: &str = "storage failed; the member stops";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_whose_storage_fails_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = MemberConfig::single(dir.path(), "failing");
    // Starting up writes nothing to the key space: the first client write reaches the
    // backend, the second meets the failure.
    config.env.push(("FAILPOINTS".into(), "apply::store-write=1*off->return".into()));
    let mut process = Process::start(&config).await;

    // One endpoint, retries off: the member's own answer to the one write.
    let client = member_client(process.endpoint(), None).await.unwrap();
    client.put("a", "v", None).await.expect("a write before the failure");
    let err = client.put("b", "v", None).await.expect_err("the write that met the failure");
    let err = err.into_status();
    assert_eq!((err.code(), err.message()), (Code::Unavailable, "etcdserver: server stopped"));
    // An open connection would hold up the listeners' graceful close.
    drop(client);

    let status = process.wait_exit(EXIT_TIMEOUT).await;
    let log = config.last_run_log();
    assert_eq!(status.code(), Some(1), "{log}");
    let fatal: Vec<&str> = log.lines().filter(|line| line.contains(FATAL_LINE)).collect();
    assert_eq!(fatal.len(), 1, "one fatal line:\n{log}");
    for part in ["\"level\":\"ERROR\"", "applying an entry to the backend", "injected failure"] {
        assert!(fatal[0].contains(part), "{part} missing from {}", fatal[0]);
    }
    assert!(
        !log.lines().any(|line| line.contains("\"level\":\"ERROR\"") && !line.contains(FATAL_LINE)),
        "another error line:\n{log}"
    );
}

/// Starts a single member called `name` in `dir` with `failpoints` armed.
async fn start_armed(
    dir: &std::path::Path,
    name: &str,
    failpoints: &str,
) -> (MemberConfig, Process) {
    let mut config = MemberConfig::single(dir, name);
    config.env.push(("FAILPOINTS".into(), failpoints.into()));
    let process = Process::start(&config).await;
    (config, process)
}

/// Waits for the member to exit; asserts it took the fatal path: exit code 1 after one
/// error line, the fatal one, naming `during` and the injected failure.
async fn assert_fatal_exit(config: &MemberConfig, process: &mut Process, during: &str) {
    let status = process.wait_exit(EXIT_TIMEOUT).await;
    let log = config.last_run_log();
    assert_eq!(status.code(), Some(1), "{log}");
    let fatal: Vec<&str> = log.lines().filter(|line| line.contains(FATAL_LINE)).collect();
    assert_eq!(fatal.len(), 1, "one fatal line:\n{log}");
    for part in ["\"level\":\"ERROR\"", during, "injected"] {
        assert!(fatal[0].contains(part), "{part} missing from {}", fatal[0]);
    }
    assert!(
        !log.lines().any(|line| line.contains("\"level\":\"ERROR\"") && !line.contains(FATAL_LINE)),
        "another error line:\n{log}"
    );
}

/// Restarts the member without failpoints and returns a client of it.
async fn restart_disarmed(config: &mut MemberConfig) -> (Process, oxetcd_client::Client) {
    config.env.clear();
    let process = Process::start(config).await;
    let client = member_client(process.endpoint(), None).await.unwrap();
    (process, client)
}

/// A lease revoke whose backend write fails stops the member; the revoke is committed,
/// so the restarted member applies it again from its log: the lease and its key are
/// gone, and every acknowledged write is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_whose_lease_revoke_fails_exits_and_revokes_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (mut config, mut process) =
        start_armed(dir.path(), "revoking", "apply::lease-revoke=return").await;
    let client = member_client(process.endpoint(), None).await.unwrap();
    let put = client.put("plain", "v", None).await.expect("a write before the failure");
    let acked = put.header.unwrap().revision;
    let lease = client.lease_grant(60, 0).await.expect("a grant").id;
    let with_lease = oxetcd_client::PutOptions::new().with_lease(lease);
    client.put("leased", "v", Some(with_lease)).await.expect("a write with the lease");
    let err = client.lease_revoke(lease).await.expect_err("the revoke that met the failure");
    let err = err.into_status();
    assert_eq!((err.code(), err.message()), (Code::Unavailable, "etcdserver: server stopped"));
    drop(client);
    assert_fatal_exit(&config, &mut process, "applying an entry to the backend").await;

    let (_process, client) = restart_disarmed(&mut config).await;
    let plain = client.get("plain", None).await.unwrap();
    assert_eq!(plain.kvs.len(), 1, "the acknowledged write is there");
    assert_eq!(plain.kvs[0].mod_revision, acked);
    let leased = client.get("leased", None).await.unwrap();
    assert!(leased.kvs.is_empty(), "the revoke was applied again: {:?}", leased.kvs);
    let ttl = client.lease_time_to_live(lease, false).await.unwrap();
    assert_eq!(ttl.ttl, -1, "the lease is gone");
}

/// A compaction whose batch commit fails stops the member; the restarted member resumes
/// the compaction from its scheduled revision, and every acknowledged write is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_whose_compaction_fails_exits_and_finishes_it_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (mut config, mut process) =
        start_armed(dir.path(), "compacting", "mvcc::compact=return").await;
    let client = member_client(process.endpoint(), None).await.unwrap();
    let mut acked = Vec::new();
    for i in 0..20 {
        let put = client.put(format!("k{}", i % 5), format!("v{i}"), None).await.unwrap();
        acked.push((format!("k{}", i % 5), format!("v{i}"), put.header.unwrap().revision));
    }
    let compact_at = acked[10].2;
    // The compaction is scheduled when its entry applies and its answer may come before
    // the background batch fails, or after the member stopped.
    match client.compact(compact_at, false).await {
        Ok(_) => {}
        Err(e) => assert_eq!(e.into_status().code(), Code::Unavailable),
    }
    drop(client);
    assert_fatal_exit(&config, &mut process, "committing to the backend").await;

    let (_process, client) = restart_disarmed(&mut config).await;
    for (key, value, revision) in &acked[15..] {
        let got = client.get(key.as_str(), None).await.unwrap();
        assert_eq!(got.kvs.len(), 1, "{key}");
        assert_eq!((&got.kvs[0].value[..], got.kvs[0].mod_revision), (value.as_bytes(), *revision));
    }
    let hash = client.maintenance().hash_kv(0).await.unwrap();
    assert_eq!(hash.compact_revision, compact_at, "the compaction is in place");
    let old = oxetcd_client::GetOptions::new().with_revision(compact_at - 1);
    let err = client.get("k0", Some(old)).await.expect_err("history before it is gone");
    assert_eq!(err.into_status().code(), Code::OutOfRange);
}

/// A member that stops after writing a raft snapshot's file but before its WAL record
/// (as a crash there leaves it) starts again from the snapshot before, with every
/// acknowledged write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_stopped_between_a_snapshot_file_and_its_wal_record_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = MemberConfig::single(dir.path(), "snapshotting");
    config.extra.extend(["--snapshot-count".into(), "20".into()]);
    // The first snapshot passes; the second stops the member between its two writes.
    config.env.push(("FAILPOINTS".into(), "raft::snapshot-save-after=1*off->return".into()));
    let mut process = Process::start(&config).await;
    let client = member_client(process.endpoint(), Some(WRITE_TIMEOUT)).await.unwrap();
    let mut acked = Vec::new();
    for i in 0..200 {
        match client.put(format!("k{i}"), "v", None).await {
            Ok(put) => acked.push((format!("k{i}"), put.header.unwrap().revision)),
            Err(_) => break,
        }
    }
    drop(client);
    assert!(acked.len() > 20, "{} writes before the failure", acked.len());
    assert_fatal_exit(&config, &mut process, "saving a snapshot").await;

    let (_process, client) = restart_disarmed(&mut config).await;
    for (key, revision) in &acked {
        let got = client.get(key.as_str(), None).await.unwrap();
        assert_eq!(got.kvs.iter().map(|kv| kv.mod_revision).collect::<Vec<_>>(), [*revision]);
    }
}

/// A defragmentation that fails before its swap is no storage failure: Defragment
/// answers an error, the old file serves on, and the next defragmentation succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_defragmentation_leaves_the_member_serving() {
    let dir = tempfile::tempdir().unwrap();
    let (mut config, mut process) =
        start_armed(dir.path(), "defragmenting", "mvcc::defrag=1*return").await;
    let client = member_client(process.endpoint(), None).await.unwrap();
    let mut acked = Vec::new();
    for i in 0..20 {
        let put = client.put(format!("k{i}"), "v", None).await.unwrap();
        acked.push((format!("k{i}"), put.header.unwrap().revision));
    }
    let err = client.maintenance().defragment().await.expect_err("the failed defragmentation");
    assert!(err.to_string().contains("injected"), "{err}");
    let put = client.put("after", "v", None).await.expect("a write after the failure");
    acked.push(("after".into(), put.header.unwrap().revision));
    client.maintenance().defragment().await.expect("the next defragmentation");
    assert!(!process.has_exited(), "the member goes on");
    drop(client);

    // SIGTERM, then a restart without failpoints: everything acknowledged is there.
    process.signal("TERM");
    assert!(process.wait_exit(EXIT_TIMEOUT).await.success());
    let (_process, client) = restart_disarmed(&mut config).await;
    for (key, revision) in &acked {
        let got = client.get(key.as_str(), None).await.unwrap();
        assert_eq!(got.kvs.iter().map(|kv| kv.mod_revision).collect::<Vec<_>>(), [*revision]);
    }
}

/// How long a member that panicked may take to exit.
const PANIC_EXIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one write to the member that is to panic may take.
const WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// A panic in any of the member's threads ends the process, as a panic ends etcd's Go
/// process: a member whose raft loop or committer thread died must not live on,
/// answering serializable reads from a store that no longer changes or taking writes it
/// will never commit. Found by the robustness harness (panics at failpoints).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_whose_thread_panics_exits() {
    for failpoint in ["raft::wal-save", "mvcc::backend-commit", "apply::store-write"] {
        let dir = tempfile::tempdir().unwrap();
        let mut config = MemberConfig::single(dir.path(), "panicking");
        // Starting up passes the raft loop's and the committer's failpoints a few times;
        // the client's writes then reach the panic.
        config.env.push(("FAILPOINTS".into(), format!("{failpoint}=4*off->panic")));
        // Not waiting for it to serve: the panic may come while it starts.
        let mut process = Process::spawn(&config);
        let endpoint = process.endpoint().to_string();
        let deadline = std::time::Instant::now() + PANIC_EXIT_TIMEOUT;
        for i in 0.. {
            if process.has_exited() || std::time::Instant::now() > deadline {
                break;
            }
            // Answered or not: the panic comes at one of them.
            if let Ok(client) = member_client(&endpoint, Some(WRITE_TIMEOUT)).await {
                let _ = client.put(format!("k{i}"), "v", None).await;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let status = process.wait_exit(PANIC_EXIT_TIMEOUT).await;
        let log = config.last_run_log();
        assert!(!status.success(), "{failpoint}: exited with {status}:\n{log}");
        assert!(log.contains("panicked"), "{failpoint}: the panic is logged:\n{log}");
    }
}
