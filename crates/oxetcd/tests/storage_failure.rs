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
