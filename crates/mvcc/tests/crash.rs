//! Crash test: a child process (this test binary, re-executed) applies numbered writes in
//! a loop and reports each durable commit on stdout; it is killed with SIGKILL. Reopening
//! must give a store whose consistent index is at least the last reported durable one and
//! whose key space is exactly what writes 1..=index produce. The child defragments its
//! store over and over meanwhile, so kills land before, during and after swaps.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use oxetcd_mvcc::{ApplyIndex, NoLeases, Store, StoreConfig};

const CHILD_ENV: &str = "OXETCD_MVCC_CRASH_CHILD_DIR";
const KEYS: u64 = 300;
const DURABLE_PREFIX: &str = "durable ";

/// Entries between compactions (which change no key).
const COMPACT_EVERY: u64 = 1000;

/// Entry number `i`: mostly puts, every seventh a delete, every thousandth a compaction
/// (left running in the background).
fn apply(store: &Store, i: u64) {
    let at = ApplyIndex { index: i, term: 1 };
    if i.is_multiple_of(COMPACT_EVERY) {
        if store.compact(store.current_revision() - 100, at).is_err() {
            store.set_consistent_index(at).expect("consistent index");
        }
    } else if i.is_multiple_of(7) {
        store.delete_range(&delete(&format!("k{:04}", (i * 3) % KEYS), ""), at).expect("delete");
    } else {
        store.put(&put(&format!("k{:04}", i % KEYS), &i.to_string()), at).expect("put");
    }
}

fn expected(upto: u64) -> BTreeMap<String, String> {
    let mut model = BTreeMap::new();
    for i in 1..=upto {
        if i.is_multiple_of(COMPACT_EVERY) {
            continue;
        }
        if i.is_multiple_of(7) {
            model.remove(&format!("k{:04}", (i * 3) % KEYS));
        } else {
            model.insert(format!("k{:04}", i % KEYS), i.to_string());
        }
    }
    model
}

fn config() -> StoreConfig {
    StoreConfig {
        batch_interval: Duration::from_millis(5),
        batch_limit: 200,
        ..StoreConfig::default()
    }
}

fn child(dir: &Path) {
    let store =
        Arc::new(Store::open_path(db_path(dir), config(), Arc::new(NoLeases)).expect("child open"));
    // Defragmentations back to back, so the kill often lands in one.
    {
        let store = Arc::clone(&store);
        std::thread::spawn(move || {
            loop {
                store.defragment().expect("defragment");
                std::thread::sleep(Duration::from_millis(5));
            }
        });
    }
    let mut reported = store.durable_index().index;
    let mut i = store.consistent_index().index;
    loop {
        i += 1;
        apply(&store, i);
        let durable = store.durable_index().index;
        if durable != reported {
            reported = durable;
            println!("{DURABLE_PREFIX}{durable}");
        }
    }
}

/// Runs a child until it has reported `min_durable`, kills it, and returns the last
/// durable index it reported.
fn run_and_kill(dir: &Path, min_durable: u64) -> u64 {
    let mut proc = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "kill_9_keeps_every_durable_write", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = proc.stdout.take().expect("child stdout");
    let mut last = 0;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("child output");
        if let Some(n) = line.strip_prefix(DURABLE_PREFIX) {
            last = n.parse().expect("durable index");
            if last >= min_durable {
                break;
            }
        }
    }
    proc.kill().expect("SIGKILL");
    proc.wait().expect("reap child");
    last
}

fn verify(dir: &Path, reported: u64) -> u64 {
    let store =
        Store::open_path(db_path(dir), config(), Arc::new(NoLeases)).expect("reopen after crash");
    assert!(!oxetcd_mvcc::backend::redb::defrag_path(&db_path(dir)).exists());
    let ci = store.consistent_index().index;
    assert!(ci >= reported, "consistent index {ci} is behind the reported durable {reported}");
    let got: BTreeMap<String, String> = store
        .range(&range("\0", "\0"))
        .expect("range")
        .kvs
        .into_iter()
        .map(|kv| {
            (
                String::from_utf8(kv.key.to_vec()).unwrap(),
                String::from_utf8(kv.value.to_vec()).unwrap(),
            )
        })
        .collect();
    assert_eq!(got, expected(ci), "key space after crash at consistent index {ci}");
    if let Some(resumed) = store.last_compaction() {
        resumed.wait().expect("compaction interrupted by the crash resumes");
    }
    store.close().expect("close");
    ci
}

#[test]
fn kill_9_keeps_every_durable_write() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        child(Path::new(&dir));
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut floor = 0;
    for round in 1..=3u64 {
        let reported = run_and_kill(dir.path(), floor + 2000 * round);
        floor = verify(dir.path(), reported);
    }
}
