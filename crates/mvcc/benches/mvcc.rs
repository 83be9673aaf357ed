//! Store micro-benchmarks: batched put throughput, point-range throughput, and the key
//! index's memory per key at 1M keys (measured as resident-set growth, since the workspace
//! forbids the `unsafe` a counting allocator needs).
//!
//! Run: `cargo bench -p oxetcd-mvcc --bench mvcc` (memory only, quickly:
//! `cargo bench -p oxetcd-mvcc --bench mvcc -- --list`).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput};
use oxetcd_api::etcdserverpb::{PutRequest, RangeRequest};
use oxetcd_mvcc::index::Index;
use oxetcd_mvcc::{ApplyIndex, NoLeases, Revision, Store, StoreConfig};

/// Distinct keys the put and range benchmarks cycle through.
const KEY_SPACE: u64 = 100_000;
/// Value size for the put benchmark (bytes).
const VALUE_BYTES: usize = 128;
/// Keys in the index-memory measurement.
const INDEX_KEYS: usize = 1_000_000;

fn key(i: u64) -> Bytes {
    Bytes::from(format!("/registry/pods/default/pod-{:08}", i % KEY_SPACE))
}

/// A cheap deterministic sequence (no `rand` dependency needed).
fn next(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

fn open(dir: &tempfile::TempDir) -> Store {
    Store::open_path(dir.path().join("db"), StoreConfig::default(), Arc::new(NoLeases))
        .expect("open store")
}

fn bench_put(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let value = Bytes::from(vec![b'v'; VALUE_BYTES]);
    let mut n = 0u64;
    let mut group = c.benchmark_group("store");
    group.throughput(Throughput::Elements(1));
    group.bench_function("put_batched", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                n += 1;
                let req = PutRequest { key: key(n), value: value.clone(), ..Default::default() };
                black_box(store.put(&req, ApplyIndex { index: n, term: 1 }).expect("put"));
            }
            start.elapsed()
        })
    });
    group.finish();
    store.close().expect("close");
}

fn bench_range(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let value = Bytes::from(vec![b'v'; VALUE_BYTES]);
    for i in 0..KEY_SPACE {
        let req = PutRequest { key: key(i), value: value.clone(), ..Default::default() };
        store.put(&req, ApplyIndex::ZERO).expect("load");
    }
    store.force_commit().expect("commit");
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut group = c.benchmark_group("store");
    group.throughput(Throughput::Elements(1));
    group.bench_function("range_point", |b| {
        b.iter(|| {
            let req = RangeRequest { key: key(next(&mut x)), ..Default::default() };
            black_box(store.range(&req).expect("range"))
        })
    });
    group.finish();
    store.close().expect("close");
}

fn resident_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Builds an index of `INDEX_KEYS` keys with `revisions` puts each (or, `settled`, each
/// as a compaction leaves an updated key: one revision, version 3) and prints resident
/// bytes per key beyond the key bytes.
fn index_memory(revisions: i64, settled: bool) {
    let before = resident_bytes();
    let mut index = Index::new();
    let mut key_bytes = 0usize;
    let mut buf = String::new();
    let mut main = 1;
    for round in 0..revisions {
        for i in 0..INDEX_KEYS {
            buf.clear();
            use std::fmt::Write;
            let _ = write!(buf, "/registry/pods/default/pod-{i:08}");
            if round == 0 {
                key_bytes += buf.len();
            }
            main += 1;
            if settled {
                index
                    .restore(
                        buf.as_bytes(),
                        Revision::at_main(main),
                        false,
                        Revision::at_main(1),
                        3,
                    )
                    .expect("each key is restored once, at a new revision");
            } else {
                index.put(buf.as_bytes(), Revision::at_main(main));
            }
        }
    }
    let grown = resident_bytes().saturating_sub(before);
    let overhead = grown.saturating_sub(key_bytes) as f64 / INDEX_KEYS as f64;
    println!(
        "index_memory: {} keys x {} revision(s){}: {:.1} MiB resident, {:.1} bytes/key beyond {} key bytes/key",
        index.len(),
        revisions,
        if settled { " (settled, version 3)" } else { "" },
        grown as f64 / f64::from(1 << 20),
        overhead,
        key_bytes / INDEX_KEYS
    );
    drop(black_box(index));
}

fn main() {
    // Once, first: freed memory from an earlier measurement would hide later growth.
    // `MVCC_INDEX_REVISIONS=3` measures keys written three times instead of once;
    // `MVCC_INDEX_SETTLED=1` keys as compaction leaves updated ones.
    let revisions =
        std::env::var("MVCC_INDEX_REVISIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    index_memory(revisions, std::env::var_os("MVCC_INDEX_SETTLED").is_some());
    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .configure_from_args();
    bench_put(&mut c);
    bench_range(&mut c);
    c.final_summary();
}
