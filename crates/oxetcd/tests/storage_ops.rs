//! Storage operations on the real `oxetcd` binary, in child processes: `kill -9` in the
//! middle of a defragmentation, of a Snapshot stream and of a background compaction, then
//! a restart that loses no acknowledged write and leaves no temporary file behind; a
//! snapshot streamed by the client, checked and restored by `oxetcdutl` into a new
//! three-member cluster that serves the same history; a three-member cluster filled to
//! its backend quota by concurrent writers, then compacted, defragmented and disarmed.
//! Everything on 127.0.0.1 in temp dirs, bounded in time; processes die with the test,
//! and a failing test prints the tail of every member's log.

mod support;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oxetcd_client::{
    AlarmAction, AlarmType, Client, Compare, CompareOp, DeleteOptions, EtcdErrorKind, GetOptions,
    KeyValue, PutOptions, Txn, TxnOp,
};
use support::{MemberConfig, Process, member_client, oxetcdutl_bin};
use tokio::task::JoinHandle;

/// Fast elections keep cluster starts short.
const TIMING: &[&str] = &["--heartbeat-interval", "50", "--election-timeout", "500"];
/// How long any awaited condition may take.
const WAIT: Duration = Duration::from_secs(60);
/// One request's bound (a defragmentation or a snapshot is not bounded by it).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Polls `condition` until it yields a value; panics naming `what` after [`WAIT`].
async fn wait_until<T>(what: &str, condition: impl AsyncFnMut() -> Option<T>) -> T {
    support::poll_until(what, WAIT, condition).await
}

/// A client of the one member at `endpoint`, retries off, each call bounded.
async fn client(endpoint: &str) -> Client {
    member_client(endpoint, Some(CLIENT_TIMEOUT))
        .await
        .unwrap_or_else(|e| panic!("a client of {endpoint}: {e}"))
}

/// Everything a member holds (a serializable read: that member's own copy).
async fn all_keys(client: &Client) -> (Vec<KeyValue>, i64) {
    let all = GetOptions::new().with_prefix().with_serializable();
    let response = client.get("", Some(all)).await.expect("a serializable range of every key");
    (response.kvs, response.header.expect("a header").revision)
}

fn member_snap_dir(config: &MemberConfig) -> PathBuf {
    config.data_dir.join("member").join("snap")
}

/// Files in `member/snap` whose names end with `suffix`.
fn files_ending(config: &MemberConfig, suffix: &str) -> Vec<String> {
    let dir = member_snap_dir(config);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    entries
        .filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
        .filter(|name| name.ends_with(suffix))
        .collect()
}

/// A value of `size` bytes that differs between keys.
fn value(seed: usize, size: usize) -> Vec<u8> {
    (0..size).map(|i| b'a' + ((seed * 31 + i * 7) % 26) as u8).collect()
}

/// Writes `txns` transactions of `per_txn` puts, four at a time: transaction `t` puts
/// `{prefix}{k}` for `k` in `(t % key_groups) * per_txn ..` plus `per_txn`, with values of
/// `size` bytes (so with `key_groups < txns`, keys get a history). Returns each key's
/// last revision.
async fn fill(
    endpoint: &str,
    prefix: &str,
    txns: usize,
    per_txn: usize,
    key_groups: usize,
    size: usize,
) -> BTreeMap<String, i64> {
    const WRITERS: usize = 4;
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let client = client(endpoint).await;
        let prefix = prefix.to_string();
        tasks.push(tokio::spawn(async move {
            let mut written = Vec::new();
            for t in (w..txns).step_by(WRITERS) {
                let group = t % key_groups;
                let keys: Vec<String> =
                    (0..per_txn).map(|i| format!("{prefix}{:06}", group * per_txn + i)).collect();
                let ops = keys
                    .iter()
                    .enumerate()
                    .map(|(i, key)| TxnOp::put(key.clone(), value(t * per_txn + i, size), None));
                let response = client.txn(Txn::new().and_then(ops)).await.expect("a fill txn");
                let revision = response.header.expect("a header").revision;
                written.extend(keys.into_iter().map(|k| (k, revision)));
            }
            written
        }));
    }
    let mut last = BTreeMap::new();
    for task in tasks {
        for (key, revision) in task.await.expect("a fill task") {
            let at = last.entry(key).or_insert(revision);
            *at = (*at).max(revision);
        }
    }
    last
}

/// Puts new keys `{prefix}{i}` one after another until stopped or refused, recording
/// each acknowledged put with its revision.
struct Writer {
    stop: Arc<AtomicBool>,
    acknowledged: Arc<Mutex<Vec<(String, i64)>>>,
    task: JoinHandle<()>,
}

impl Writer {
    async fn spawn(endpoint: &str, prefix: &str) -> Writer {
        let client = client(endpoint).await;
        let stop = Arc::new(AtomicBool::new(false));
        let acknowledged: Arc<Mutex<Vec<(String, i64)>>> = Arc::default();
        let (stopped, acked) = (Arc::clone(&stop), Arc::clone(&acknowledged));
        let prefix = prefix.to_string();
        let task = tokio::spawn(async move {
            for i in 0.. {
                if stopped.load(Ordering::Relaxed) {
                    return;
                }
                let key = format!("{prefix}{i:06}");
                match client.put(key.clone(), value(i, 64), None).await {
                    Ok(resp) => acked.lock().unwrap().push((key, resp.header.unwrap().revision)),
                    Err(_) => return,
                }
            }
        });
        Writer { stop, acknowledged, task }
    }

    fn count(&self) -> usize {
        self.acknowledged.lock().unwrap().len()
    }

    async fn wait_for(&self, n: usize) {
        wait_until("the writer's acknowledged puts", async || (self.count() >= n).then_some(()))
            .await;
    }

    /// Stops the writer (or waits for it to end on a failure); its acknowledged puts.
    async fn finish(self) -> Vec<(String, i64)> {
        self.stop.store(true, Ordering::Relaxed);
        tokio::time::timeout(WAIT, self.task).await.expect("the writer ends").unwrap();
        self.acknowledged.lock().unwrap().clone()
    }
}

/// Every `(key, revision)` is in `kvs` at that mod revision.
fn assert_acknowledged(what: &str, kvs: &[KeyValue], acknowledged: &[(String, i64)]) {
    let stored: BTreeMap<&[u8], i64> =
        kvs.iter().map(|kv| (kv.key.as_ref(), kv.mod_revision)).collect();
    for (key, revision) in acknowledged {
        assert_eq!(
            stored.get(key.as_bytes()),
            Some(revision),
            "{what}: the write of {key} acknowledged at revision {revision}"
        );
    }
}

async fn hash_kv(client: &Client, revision: i64) -> (u32, i64) {
    let response = client.maintenance().hash_kv(revision).await.expect("HashKV");
    (response.hash, response.header.expect("a header").revision)
}

/// Runs `oxetcdutl` with `args`.
fn oxetcdutl<S: AsRef<OsStr>>(args: &[S]) -> Output {
    Command::new(oxetcdutl_bin()).args(args).output().expect("run oxetcdutl")
}

/// The status line of a log message, as the member writes it (JSON).
fn msg(message: &str) -> String {
    format!("\"message\":\"{message}\"")
}

/// Starts `configs` as one cluster (all at once: a member serves only with a quorum).
async fn start_all(configs: &[MemberConfig]) -> Vec<Process> {
    let mut processes: Vec<Process> = configs.iter().map(Process::spawn).collect();
    for process in &mut processes {
        process.wait_serving().await;
    }
    processes
}

/// The member id of the member at `endpoint`, and the id of the leader it knows.
async fn member_and_leader(endpoint: &str) -> (u64, u64) {
    wait_until("a status with a leader", async || {
        let status = client(endpoint).await.maintenance().status().await.ok()?;
        let id = status.header?.member_id;
        (status.leader != 0).then_some((id, status.leader))
    })
    .await
}

/// Waits until every member at `endpoints` has applied all it committed, at the same
/// applied index; returns their revision.
async fn caught_up(endpoints: &[&str]) -> i64 {
    wait_until("the members to apply the same entries", async || {
        let mut seen = Vec::new();
        for endpoint in endpoints {
            let status = client(endpoint).await.maintenance().status().await.ok()?;
            if status.raft_index != status.raft_applied_index {
                return None;
            }
            seen.push((status.raft_applied_index, status.header?.revision));
        }
        seen.iter().all(|s| *s == seen[0]).then_some(seen[0].1)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_defragment_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let config = MemberConfig::single(dir.path(), "defrag");
    let mut process = Process::start(&config).await;
    let endpoint = config.client_url.clone();
    let client = client(&endpoint).await;

    // ~40 MB of large values and 30k small rows: the copy takes far more than the
    // milliseconds the test needs to see it running.
    let filled = fill(&endpoint, "big/", 50, 100, 50, 8 << 10).await;
    let small = fill(&endpoint, "small/", 300, 100, 300, 16).await;
    let (all, filled_at) = all_keys(&client).await;
    let filled: Vec<(String, i64)> = filled.into_iter().chain(small).collect();
    assert_acknowledged("before the defragmentation", &all, &filled);
    let (hash_before, _) = hash_kv(&client, filled_at).await;

    let writer = Writer::spawn(&endpoint, "w/").await;
    writer.wait_for(20).await;
    let defragment = {
        let client = member_client(&endpoint, None).await.unwrap();
        tokio::spawn(async move { client.maintenance().defragment().await })
    };
    // The new file exists only while the defragmentation copies: kill the member then.
    let defrag_file = member_snap_dir(&config).join("db.defrag");
    let deadline = Instant::now() + WAIT;
    while !defrag_file.exists() {
        assert!(!defragment.is_finished(), "the defragmentation ended before it could be killed");
        assert!(Instant::now() < deadline, "no {} appeared", defrag_file.display());
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    process.kill();
    let log = config.last_run_log();
    assert!(log.contains(&msg("defragmenting")), "{log}");
    assert!(!log.contains(&msg("defragmented")), "killed after the defragmentation: {log}");
    let answer = defragment.await.unwrap();
    assert!(answer.is_err(), "a killed member answered the defragmentation: {answer:?}");
    let acknowledged = writer.finish().await;
    assert!(acknowledged.len() >= 20);

    let mut process = Process::start(&config).await;
    assert!(!defrag_file.exists(), "{} left after the restart", defrag_file.display());
    let client = member_client(&endpoint, Some(CLIENT_TIMEOUT)).await.unwrap();
    let (all, revision) = all_keys(&client).await;
    assert_acknowledged("after the restart", &all, &filled);
    assert_acknowledged("after the restart", &all, &acknowledged);
    assert_eq!(hash_kv(&client, filled_at).await.0, hash_before, "HashKV at {filled_at}");

    // A second defragmentation runs to its end, and changes no hash.
    let done = member_client(&endpoint, None).await.unwrap().maintenance().defragment().await;
    done.expect("a defragmentation after the restart");
    assert!(config.last_run_log().contains(&msg("defragmented")));
    assert!(!defrag_file.exists());
    let (hash_now, at) = hash_kv(&client, 0).await;
    assert_eq!(at, revision);
    assert_eq!(hash_kv(&client, filled_at).await.0, hash_before);

    // HashKV is the same after another restart.
    process.kill();
    let _process = Process::start(&config).await;
    let client = member_client(&endpoint, Some(CLIENT_TIMEOUT)).await.unwrap();
    assert_eq!(hash_kv(&client, revision).await, (hash_now, revision));
    assert_eq!(hash_kv(&client, filled_at).await.0, hash_before);
    let (all, _) = all_keys(&client).await;
    assert_acknowledged("after the second restart", &all, &acknowledged);
}

/// A snapshot streams from a read view with no copy on disk; a member killed mid-stream
/// loses nothing, and a whole stream afterwards carries etcd's SHA-256 of what it sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_snapshot_stream_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = MemberConfig::single(dir.path(), "snapshot");
    let mut process = Process::start(&config).await;
    let endpoint = config.client_url.clone();

    // ~20 MB: twenty 1 MiB chunks, far more than a client that stops reading buffers.
    let filled = fill(&endpoint, "big/", 25, 100, 25, 8 << 10).await;
    let filled: Vec<(String, i64)> = filled.into_iter().collect();
    let writer = Writer::spawn(&endpoint, "w/").await;
    writer.wait_for(20).await;

    let files_before = files_ending(&config, "");
    let reader = member_client(&endpoint, None).await.unwrap();
    let mut stream = reader.maintenance().snapshot().await.expect("a snapshot stream");
    let first = stream.message().await.expect("a first chunk").expect("a first chunk");
    assert!(first.remaining_bytes > 4 << 20, "only {} bytes to come", first.remaining_bytes);
    // A slow reader: the stream waits for it, and nothing is written to disk meanwhile.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = stream.message().await.expect("a second chunk").expect("a second chunk");
    assert!(second.remaining_bytes > 0);
    assert_eq!(files_ending(&config, ""), files_before, "no copy of the backend on disk");
    process.kill();
    // The stream ends, one way or another, once the member is gone.
    let rest =
        tokio::time::timeout(WAIT, async { while let Ok(Some(_)) = stream.message().await {} });
    rest.await.expect("the stream of a killed member ends");
    let acknowledged = writer.finish().await;

    let _process = Process::start(&config).await;
    let client = member_client(&endpoint, Some(CLIENT_TIMEOUT)).await.unwrap();
    let (all, _) = all_keys(&client).await;
    assert_acknowledged("after the restart", &all, &filled);
    assert_acknowledged("after the restart", &all, &acknowledged);

    // A whole snapshot streams after the restart: the bytes its messages announce, then
    // the SHA-256 of them.
    let mut stream = client.maintenance().snapshot().await.expect("a snapshot stream");
    let first = stream.message().await.expect("a chunk").expect("a first chunk");
    let total = first.remaining_bytes + first.blob.len() as u64;
    let mut sha = ring::digest::Context::new(&ring::digest::SHA256);
    sha.update(&first.blob);
    let mut sent = first.blob.len() as u64;
    let mut last = None;
    while let Some(chunk) = stream.message().await.expect("a chunk") {
        if sent == total {
            last = Some(chunk.blob);
            continue;
        }
        sent += chunk.blob.len() as u64;
        assert_eq!(chunk.remaining_bytes, total - sent);
        sha.update(&chunk.blob);
    }
    assert!(total > 16 << 20, "{total} bytes");
    let last = last.expect("the SHA-256 after the data");
    assert_eq!(last.as_ref(), sha.finish().as_ref(), "the trailing SHA-256 is of what was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_compaction_resumes_it_on_restart() {
    let dir = tempfile::tempdir().unwrap();
    // Small batches (each with a 10 ms pause): the compaction's ~50k rows take seconds.
    let mut flags = TIMING.to_vec();
    flags.extend(["--experimental-compaction-batch-limit", "100"]);
    let configs = MemberConfig::cluster(dir.path(), &["c0", "c1", "c2"], &flags);
    let mut processes = start_all(&configs).await;
    let endpoints: Vec<&str> = configs.iter().map(|c| c.client_url.as_str()).collect();

    let (_, leader_id) = member_and_leader(endpoints[0]).await;
    let mut ids = Vec::new();
    for endpoint in &endpoints {
        ids.push(member_and_leader(endpoint).await.0);
    }
    let leader = ids.iter().position(|&id| id == leader_id).expect("a leader among the members");
    let victim = (leader + 1) % 3;
    let survivor = (leader + 2) % 3;

    // 1000 keys with 50 versions each.
    let filled = fill(endpoints[leader], "k/", 500, 100, 10, 100).await;
    let filled: Vec<(String, i64)> = filled.into_iter().collect();
    let leader_client = client(endpoints[leader]).await;
    let writer = Writer::spawn(endpoints[leader], "w/").await;
    writer.wait_for(10).await;
    let compact_at = leader_client.get("k/", None).await.unwrap().header.unwrap().revision;
    leader_client.compact(compact_at, false).await.expect("a compaction");
    let marked = leader_client.put("marker", "m", None).await.unwrap().header.unwrap().revision;
    // No write after this one: the victim's whole-backend hash below then changes only
    // with its compaction.
    let acknowledged = writer.finish().await;

    let victim_client = client(endpoints[victim]).await;
    wait_until("the victim to apply the marker", async || {
        let got = victim_client.get("marker", Some(GetOptions::new().with_serializable())).await;
        (!got.ok()?.kvs.is_empty()).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let hash_kv_before = hash_kv(&victim_client, marked).await.0;
    let hash_before = victim_client.maintenance().hash().await.unwrap().hash;
    processes[victim].kill();

    processes[victim] = Process::start(&configs[victim]).await;
    let victim_client = client(endpoints[victim]).await;
    let revision = caught_up(&endpoints).await;

    // The compaction is logically in place at once, and physically finished later: the
    // whole backend then hashes as on the members that were not killed (their own
    // compactions done too), and differs from when it was killed halfway.
    let compacted = victim_client
        .get("k/000000", Some(GetOptions::new().with_revision(compact_at - 1).with_serializable()))
        .await
        .expect_err("a read below the compaction");
    assert_eq!(compacted.etcd_kind(), Some(EtcdErrorKind::Compacted), "{compacted}");
    assert_eq!(hash_kv(&victim_client, marked).await.0, hash_kv_before, "HashKV at {marked}");
    let hashes = wait_until("every member's backend to hash alike", async || {
        let mut hashes = Vec::new();
        for endpoint in &endpoints {
            hashes.push(client(endpoint).await.maintenance().hash().await.ok()?.hash);
        }
        hashes.iter().all(|h| *h == hashes[0]).then_some(hashes)
    })
    .await;
    // Still alike a moment later: no compaction was still running.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let hash_now = client(endpoints[survivor]).await.maintenance().hash().await.unwrap().hash;
    assert_eq!(hash_now, hashes[0], "the survivor's backend changed");
    assert_ne!(hash_before, hashes[0], "the victim's compaction had finished before the kill");

    for (i, endpoint) in endpoints.iter().enumerate() {
        let client = client(endpoint).await;
        assert_eq!(hash_kv(&client, 0).await, (hash_kv(&victim_client, 0).await.0, revision));
        assert_eq!(hash_kv(&client, marked).await.0, hash_kv_before, "member {i}: HashKV");
        let (all, at) = all_keys(&client).await;
        assert_eq!(at, revision);
        assert_acknowledged(&format!("member {i}"), &all, &filled);
        assert_acknowledged(&format!("member {i}"), &all, &acknowledged);
    }
}

/// The revisions and value of a key, what a restore must keep.
fn kv_summary(kvs: &[KeyValue]) -> Vec<(String, String, i64, i64, i64, i64)> {
    kvs.iter()
        .map(|kv| {
            (
                String::from_utf8_lossy(&kv.key).into_owned(),
                String::from_utf8_lossy(&kv.value).into_owned(),
                kv.create_revision,
                kv.mod_revision,
                kv.version,
                kv.lease,
            )
        })
        .collect()
}

/// `oxetcdutl` refused: exit code 1 and `Error: ...` on stderr, which it returns.
fn refused(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    String::from_utf8_lossy(&out.stderr).trim_end().lines().last().unwrap_or("").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_snapshot_restores_into_a_new_three_member_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let source_config = MemberConfig::single(dir.path(), "source");
    let mut source = Process::start(&source_config).await;
    let c = client(&source_config.client_url).await;

    // History: puts, overwrites, a delete, a txn, leased keys, a compaction, more puts.
    c.put("a", "1", None).await.unwrap();
    c.put("b", "1", None).await.unwrap();
    c.put("a", "2", None).await.unwrap();
    c.delete("b", None).await.unwrap();
    let txn = Txn::new()
        .when([Compare::version("a", CompareOp::Equal, 2)])
        .and_then([TxnOp::put("c", "3", None), TxnOp::put("d", "4", None)])
        .or_else([TxnOp::put("failed", "x", None)]);
    assert!(c.txn(txn).await.unwrap().succeeded);
    let lease = c.lease_grant(3600, 0).await.unwrap().id;
    for key in ["leased/1", "leased/2"] {
        c.put(key, "l", Some(PutOptions::new().with_lease(lease))).await.unwrap();
    }
    c.put("a", "3", None).await.unwrap();
    let compacted_at = c.put("c", "33", None).await.unwrap().header.unwrap().revision;
    c.compact(compacted_at - 1, true).await.unwrap();
    fill(&source_config.client_url, "bulk/", 20, 50, 10, 1 << 10).await;
    c.delete("bulk/000001", Some(DeleteOptions::new())).await.unwrap();
    let (source_kvs, revision) = all_keys(&c).await;
    let (source_hash, _) = hash_kv(&c, revision).await;
    let source_cluster = c.maintenance().status().await.unwrap().header.unwrap().cluster_id;

    // The stream, written as it comes: the backend, then its SHA-256.
    let snapshot = dir.path().join("snapshot.db");
    let mut stream = c.maintenance().snapshot().await.expect("a snapshot stream");
    let mut bytes = Vec::new();
    let mut last = Vec::new();
    while let Some(chunk) = stream.message().await.expect("a chunk") {
        bytes.extend_from_slice(&chunk.blob);
        last = chunk.blob.to_vec();
    }
    assert_eq!(last.len(), 32, "the last message is the SHA-256");
    std::fs::write(&snapshot, &bytes).unwrap();
    source.kill();

    // snapshot status reads the source's revision, and every row.
    let status = oxetcdutl(&[OsStr::new("snapshot"), "status".as_ref(), snapshot.as_os_str()]);
    assert!(status.status.success(), "{status:?}");
    let line = String::from_utf8(status.stdout).unwrap();
    let fields: Vec<&str> = line.trim_end().split(", ").collect();
    assert_eq!(fields.len(), 4, "{line}");
    assert_eq!(fields[1], revision.to_string(), "{line}");
    let total_keys: usize = fields[2].parse().unwrap();
    assert!(total_keys > source_kvs.len() + 10, "{line}");

    // A truncated or altered snapshot is refused, and leaves no data dir.
    let restored = dir.path().join("restored");
    std::fs::create_dir(&restored).unwrap();
    let truncated = dir.path().join("truncated.db");
    std::fs::write(&truncated, &bytes[..bytes.len() - 1000]).unwrap();
    let mut altered_bytes = bytes.clone();
    altered_bytes[bytes.len() / 2] ^= 0x10;
    let altered = dir.path().join("altered.db");
    std::fs::write(&altered, &altered_bytes).unwrap();
    for (file, error) in [
        (&truncated, "Error: snapshot missing hash but --skip-hash-check=false"),
        (&altered, "Error: expected sha256 ["),
    ] {
        let target = restored.join("refused");
        let args = [OsStr::new("snapshot"), "restore".as_ref(), file.as_os_str()];
        let out = oxetcdutl(&[&args[..], &["--data-dir".as_ref(), target.as_os_str()]].concat());
        let message = refused(&out);
        assert!(message.starts_with(error), "{}: {message}", file.display());
        assert!(!target.exists(), "{} left behind", target.display());
    }
    assert_eq!(std::fs::read_dir(&restored).unwrap().count(), 0);

    // Three members of a new cluster (the token is the dir's name, "restored").
    let configs = MemberConfig::cluster(&restored, &["r0", "r1", "r2"], TIMING);
    for config in &configs {
        let out = oxetcdutl(&[
            OsStr::new("snapshot"),
            "restore".as_ref(),
            snapshot.as_os_str(),
            "--name".as_ref(),
            config.name.as_ref(),
            "--initial-cluster".as_ref(),
            config.initial_cluster.as_ref(),
            "--initial-cluster-token".as_ref(),
            "restored".as_ref(),
            "--initial-advertise-peer-urls".as_ref(),
            config.peer_url.as_ref(),
            "--data-dir".as_ref(),
            config.data_dir.as_os_str(),
        ]);
        assert!(out.status.success(), "restoring {}: {out:?}", config.name);
    }
    let _processes = start_all(&configs).await;
    let endpoints: Vec<&str> = configs.iter().map(|c| c.client_url.as_str()).collect();
    assert_eq!(caught_up(&endpoints).await, revision);

    for config in &configs {
        let name = &config.name;
        let c = client(&config.client_url).await;
        let (kvs, at) = all_keys(&c).await;
        assert_eq!(at, revision, "{name}: revision");
        assert_eq!(kv_summary(&kvs), kv_summary(&source_kvs), "{name}: keys");
        assert_eq!(hash_kv(&c, revision).await.0, source_hash, "{name}: HashKV at {revision}");
        let below = c.get("a", Some(GetOptions::new().with_revision(compacted_at - 2))).await;
        let below = below.expect_err("a read below the compaction");
        assert_eq!(below.etcd_kind(), Some(EtcdErrorKind::Compacted), "{name}: {below}");
        let ttl = c.lease_time_to_live(lease, true).await.expect("the lease's TTL");
        assert!(ttl.ttl > 0, "{name}: lease {lease:x}: {ttl:?}");
        let mut keys: Vec<&[u8]> = ttl.keys.iter().map(|k| k.as_ref()).collect();
        keys.sort_unstable();
        assert_eq!(keys, [b"leased/1".as_ref(), b"leased/2".as_ref()], "{name}: leased keys");

        let members = c.cluster().member_list().await.unwrap();
        let cluster = members.header.unwrap().cluster_id;
        assert_ne!(cluster, source_cluster, "{name}: a new cluster id");
        let mut listed: Vec<(String, Vec<String>, Vec<String>)> =
            members.members.into_iter().map(|m| (m.name, m.peer_ur_ls, m.client_ur_ls)).collect();
        listed.sort();
        let expected: Vec<(String, Vec<String>, Vec<String>)> = configs
            .iter()
            .map(|c| (c.name.clone(), vec![c.peer_url.clone()], vec![c.client_url.clone()]))
            .collect();
        assert_eq!(listed, expected, "{name}: three started members");
    }

    // A new write, at the next revision, on every member.
    let c = client(endpoints[1]).await;
    let written = c.put("after", "restore", None).await.expect("a write after the restore");
    assert_eq!(written.header.unwrap().revision, revision + 1);
    assert_eq!(caught_up(&endpoints).await, revision + 1);
    for endpoint in &endpoints {
        let got = client(endpoint)
            .await
            .get("after", Some(GetOptions::new().with_serializable()))
            .await
            .unwrap();
        assert_eq!(got.kvs.len(), 1, "{endpoint}");
        assert_eq!(got.kvs[0].mod_revision, revision + 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_at_its_quota_refuses_writes_until_compacted_defragmented_and_disarmed() {
    const QUOTA: &str = "2097152";
    let dir = tempfile::tempdir().unwrap();
    let mut flags = TIMING.to_vec();
    flags.extend(["--quota-backend-bytes", QUOTA]);
    let configs = MemberConfig::cluster(dir.path(), &["q0", "q1", "q2"], &flags);
    let _processes = start_all(&configs).await;
    let endpoints: Vec<&str> = configs.iter().map(|c| c.client_url.as_str()).collect();

    // Six writers, two per member, overwrite 20 keys each with 4 KiB values until the
    // space runs out. Each records its acknowledged writes (key, revision, value seed).
    let mut writers = Vec::new();
    for w in 0..6 {
        let client = client(endpoints[w % 3]).await;
        writers.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut failures = Vec::new();
            for i in 0..5000 {
                let key = format!("q/{w}/{:02}", i % 20);
                let seed = w * 100_000 + i;
                match client.put(key.clone(), value(seed, 4 << 10), None).await {
                    Ok(resp) => acknowledged.push((key, resp.header.unwrap().revision, seed)),
                    Err(e) if e.etcd_kind() == Some(EtcdErrorKind::NoSpace) => {
                        return (acknowledged, failures, true);
                    }
                    Err(e) => failures.push(e.to_string()),
                }
                assert!(failures.len() < 50, "writer {w}: {failures:?}");
            }
            (acknowledged, failures, false)
        }));
    }
    let mut acknowledged = Vec::new();
    for (w, writer) in writers.into_iter().enumerate() {
        let (acked, failures, nospace) =
            tokio::time::timeout(WAIT, writer).await.expect("the writers end").unwrap();
        assert!(nospace, "writer {w} never met NOSPACE ({} writes, {failures:?})", acked.len());
        acknowledged.extend(acked);
    }
    assert!(acknowledged.len() > 100, "only {} writes fit", acknowledged.len());
    let revision = caught_up(&endpoints).await;

    // The alarm is listed alike on every member.
    let mut listed = Vec::new();
    for endpoint in &endpoints {
        let response =
            client(endpoint).await.maintenance().alarm(AlarmAction::Get, 0, AlarmType::None).await;
        let mut alarms: Vec<(u64, i32)> =
            response.unwrap().alarms.iter().map(|a| (a.member_id, a.alarm)).collect();
        alarms.sort_unstable();
        assert!(!alarms.is_empty(), "{endpoint}: no alarm listed");
        assert!(alarms.iter().all(|a| a.1 == AlarmType::Nospace as i32), "{alarms:?}");
        listed.push(alarms);
    }
    assert!(listed.iter().all(|l| *l == listed[0]), "alarms differ: {listed:?}");

    // Every acknowledged write, at its revision, on every member; and writes are refused.
    for endpoint in &endpoints {
        let c = client(endpoint).await;
        for (key, at, seed) in &acknowledged {
            let read = GetOptions::new().with_revision(*at).with_serializable();
            let got = c.get(key.clone(), Some(read)).await.unwrap();
            assert_eq!(got.kvs.len(), 1, "{endpoint}: {key} at {at}");
            assert_eq!(got.kvs[0].mod_revision, *at, "{endpoint}: {key} at {at}");
            assert!(got.kvs[0].value == value(*seed, 4 << 10), "{endpoint}: {key} at {at}");
        }
        let refused = c.put("refused", "x", None).await.expect_err("a write over the quota");
        assert_eq!(refused.etcd_kind(), Some(EtcdErrorKind::NoSpace), "{refused}");
    }

    // Compact, defragment every member, disarm every alarm: writes go on.
    client(endpoints[0]).await.compact(revision, true).await.expect("a compaction");
    for endpoint in &endpoints {
        let c = member_client(endpoint, None).await.unwrap();
        c.maintenance().defragment().await.expect("a defragmentation");
        let status = c.maintenance().status().await.unwrap();
        assert!(status.db_size < 2 << 20, "{endpoint}: {} bytes after defrag", status.db_size);
    }
    // As `etcdctl alarm disarm` does: every alarm listed now (the refused puts above
    // raised NOSPACE for the members that had not raised it yet).
    let c = client(endpoints[1]).await;
    let alarms = c.maintenance().alarm(AlarmAction::Get, 0, AlarmType::None).await.unwrap();
    assert!(alarms.alarms.len() >= listed[0].len(), "{:?}", alarms.alarms);
    for alarm in alarms.alarms {
        let (member, alarm) = (alarm.member_id, alarm.alarm());
        assert_eq!(alarm, AlarmType::Nospace);
        c.maintenance().alarm(AlarmAction::Deactivate, member, alarm).await.expect("a disarm");
    }
    for endpoint in &endpoints {
        let c = client(endpoint).await;
        let alarms = c.maintenance().alarm(AlarmAction::Get, 0, AlarmType::None).await.unwrap();
        assert!(alarms.alarms.is_empty(), "{endpoint}: {:?}", alarms.alarms);
        c.put("resumed", endpoint.to_string(), None).await.expect("a write after the disarm");
    }
}
