//! The real `oxetcd` binary in child processes: crash with SIGKILL under concurrent
//! writes, restart, and check that every acknowledged write is there; a second process
//! on the same data dir is refused. Everything on 127.0.0.1, bounded in time.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oxetcd_api::etcdserverpb::kv_client::KvClient;
use oxetcd_api::etcdserverpb::{PutRequest, RangeRequest};

const START_TIMEOUT: Duration = Duration::from_secs(30);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One oxetcd process; killed (SIGKILL) when dropped.
struct Process {
    child: Child,
    endpoint: String,
    log: PathBuf,
}

fn spawn(data_dir: &Path, client_port: u16, peer_port: u16, log: &Path) -> Child {
    let client = format!("http://127.0.0.1:{client_port}");
    let peer = format!("http://127.0.0.1:{peer_port}");
    let log_file = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    Command::new(env!("CARGO_BIN_EXE_oxetcd"))
        .args(["--name", "crash"])
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
        .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
        .args(["--initial-cluster", &format!("crash={peer}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .expect("spawn oxetcd")
}

impl Process {
    async fn start(data_dir: &Path, client_port: u16, peer_port: u16, log: &Path) -> Process {
        let child = spawn(data_dir, client_port, peer_port, log);
        let mut process =
            Process { child, endpoint: format!("http://127.0.0.1:{client_port}"), log: log.into() };
        process.wait_serving().await;
        process
    }

    async fn wait_serving(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "oxetcd exited with {status}:\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            if let Ok(mut kv) = KvClient::connect(self.endpoint.clone()).await
                && kv
                    .range(RangeRequest { key: "probe".into(), ..Default::default() })
                    .await
                    .is_ok()
            {
                return;
            }
            assert!(Instant::now() < deadline, "oxetcd did not serve in time");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("oxetcd.log");
    let (client_port, peer_port) = (free_port(), free_port());
    let mut process = Process::start(&data, client_port, peer_port, &log).await;

    // Writers record every put the server acknowledged, with its revision.
    let acknowledged: Arc<Mutex<Vec<(String, i64)>>> = Arc::default();
    let mut writers = Vec::new();
    for writer in 0..4 {
        let endpoint = process.endpoint.clone();
        let acknowledged = acknowledged.clone();
        writers.push(tokio::spawn(async move {
            let mut kv = KvClient::connect(endpoint).await.unwrap();
            for i in 0..100_000 {
                let key = format!("k/{writer}/{i:06}");
                let put = PutRequest {
                    key: key.clone().into(),
                    value: key.clone().into(),
                    ..Default::default()
                };
                match kv.put(put).await {
                    Ok(resp) => acknowledged
                        .lock()
                        .unwrap()
                        .push((key, resp.into_inner().header.unwrap().revision)),
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

    let process = Process::start(&data, client_port, peer_port, &log).await;
    let mut kv = KvClient::connect(process.endpoint.clone()).await.unwrap();
    let all = kv
        .range(RangeRequest { key: "k/".into(), range_end: "k0".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
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
    let data = dir.path().join("data");
    let log = dir.path().join("first.log");
    let first = Process::start(&data, free_port(), free_port(), &log).await;

    let second_log = dir.path().join("second.log");
    let mut second = spawn(&data, free_port(), free_port(), &second_log);
    let deadline = Instant::now() + START_TIMEOUT;
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the second process kept running");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!status.success());
    let message = std::fs::read_to_string(&second_log).unwrap();
    assert!(message.contains("is locked by another process"), "{message}");

    // The first one is unharmed.
    let mut kv = KvClient::connect(first.endpoint.clone()).await.unwrap();
    kv.put(PutRequest { key: "still".into(), value: "here".into(), ..Default::default() })
        .await
        .unwrap();
}
