//! The real `oxetcd` binary in child processes: crash with SIGKILL under concurrent
//! writes, restart, and check that every acknowledged write is there; a second process
//! on the same data dir is refused. Everything on 127.0.0.1, bounded in time.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oxetcd_client::GetOptions;
use support::{MemberConfig, Process, START_TIMEOUT, member_client};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = MemberConfig::single(dir.path(), "crash");
    let mut process = Process::start(&config).await;

    // Writers record every put the server acknowledged, with its revision.
    let acknowledged: Arc<Mutex<Vec<(String, i64)>>> = Arc::default();
    let mut writers = Vec::new();
    for writer in 0..4 {
        let endpoint = process.endpoint().to_string();
        let acknowledged = acknowledged.clone();
        writers.push(tokio::spawn(async move {
            // Retries off: each put is sent once, and the first failure ends the writer.
            let client = member_client(&endpoint, None).await.unwrap();
            for i in 0..100_000 {
                let key = format!("k/{writer}/{i:06}");
                match client.put(key.clone(), key.clone(), None).await {
                    Ok(resp) => {
                        acknowledged.lock().unwrap().push((key, resp.header.unwrap().revision))
                    }
                    Err(_) => return,
                }
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while acknowledged.lock().unwrap().len() < 400 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    process.kill();
    for writer in writers {
        writer.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= 400, "only {} writes before the deadline", acknowledged.len());

    let process = Process::start(&config).await;
    let client = member_client(process.endpoint(), None).await.unwrap();
    let all = client.get("k/", Some(GetOptions::new().with_prefix())).await.unwrap();
    let stored: std::collections::HashMap<Vec<u8>, i64> =
        all.kvs.iter().map(|kv| (kv.key.to_vec(), kv.mod_revision)).collect();
    for (key, revision) in &acknowledged {
        assert_eq!(
            stored.get(key.as_bytes()),
            Some(revision),
            "acknowledged write {key} at revision {revision}"
        );
    }
    // Revisions are dense: one per put, none lost in between.
    let mut revisions: Vec<i64> = stored.values().copied().collect();
    revisions.sort_unstable();
    assert_eq!(revisions.first(), Some(&2));
    assert!(revisions.windows(2).all(|w| w[1] == w[0] + 1), "revisions have gaps");
    assert_eq!(all.header.unwrap().revision, *revisions.last().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_on_the_same_data_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = MemberConfig::single(dir.path(), "crash");
    let first = Process::start(&config).await;

    // The same member on other ports, logging elsewhere, but on the same data dir.
    let second_dir = dir.path().join("second");
    std::fs::create_dir(&second_dir).unwrap();
    let second = MemberConfig {
        data_dir: config.data_dir.clone(),
        ..MemberConfig::single(&second_dir, "crash")
    };
    let status = Process::spawn(&second).wait_exit(START_TIMEOUT).await;
    assert!(!status.success());
    let message = second.log();
    assert!(message.contains("is locked by another process"), "{message}");

    // The first one is unharmed.
    let client = member_client(first.endpoint(), None).await.unwrap();
    client.put("still", "here", None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_go_to_every_log_output() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("member.log");
    let mut config = MemberConfig::single(dir.path(), "logs");
    config.extra = vec![format!("--log-outputs=stderr,{}", file.display())];
    let member = Process::start(&config).await;
    drop(member);
    let in_file = std::fs::read_to_string(&file).unwrap();
    assert!(in_file.contains("ready to serve client requests"), "{in_file}");
    assert!(config.log().contains("ready to serve client requests"), "stderr has it too");

    // A log file that cannot be opened stops the start, as in etcd.
    let unwritable = MemberConfig {
        extra: vec!["--log-outputs=/nonexistent/dir/member.log".into()],
        ..MemberConfig::single(&dir.path().join("second"), "unwritable")
    };
    std::fs::create_dir_all(dir.path().join("second")).unwrap();
    let status = Process::spawn(&unwritable).wait_exit(START_TIMEOUT).await;
    assert_eq!(status.code(), Some(1));
    assert!(unwritable.log().contains("cannot open log output"), "{}", unwritable.log());
}
