//! The real `oxetcd` binary stops when its storage fails: the write that met the
//! failure is refused, and the process exits with code 1 after one error line, as etcd
//! logs a fatal line and exits. The failure is a failpoint, enabled through
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
