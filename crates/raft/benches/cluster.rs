//! Throughput of a 3-node in-memory cluster driven in one thread: 256-byte proposals are
//! proposed in batches on the leader, and every node persists (to `MemStorage`), exchanges
//! messages and applies until the batch is committed and applied everywhere.
//!
//! Run with `cargo bench -p oxetcd-raft --bench cluster`.

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use oxetcd_raft::{ConfState, Config, Entry, MemStorage, Message, RawNode, StateRole, Storage};
use std::hint::black_box;

const PAYLOAD: usize = 256;
/// Compact the in-memory logs once they hold this many entries, so memory stays flat.
const COMPACT_EVERY: u64 = 200_000;

struct Cluster {
    nodes: Vec<RawNode<MemStorage>>,
    applied: Vec<u64>,
}

impl Cluster {
    fn new() -> Self {
        let voters = ConfState { voters: vec![1, 2, 3], ..Default::default() };
        let nodes = (1..=3)
            .map(|id| {
                let mut c = Config::new(id);
                c.max_size_per_msg = 4 << 20;
                c.max_committed_size_per_ready = 64 << 20;
                RawNode::new(&c, MemStorage::new_with_conf_state(voters.clone()))
                    .expect("valid config")
            })
            .collect();
        let mut cluster = Cluster { nodes, applied: vec![0; 3] };
        cluster.nodes[0].campaign().expect("campaign");
        cluster.run_until_quiet();
        assert_eq!(cluster.nodes[0].raft().state(), StateRole::Leader);
        cluster
    }

    /// Persists, sends and applies until no node has anything left to do.
    fn run_until_quiet(&mut self) {
        let mut inbox: Vec<Message> = Vec::new();
        loop {
            for (i, node) in self.nodes.iter_mut().enumerate() {
                if !node.has_ready() {
                    continue;
                }
                let mut rd = node.ready();
                inbox.append(&mut rd.messages);
                let store = node.mut_store();
                if let Some(s) = rd.snapshot.take() {
                    store.apply_snapshot(s).expect("newer snapshot");
                }
                store.append(&rd.entries);
                if let Some(hs) = rd.hard_state {
                    store.set_hard_state(hs);
                }
                inbox.append(&mut rd.persisted_messages);
                if let Some(last) = rd.committed_entries.last() {
                    self.applied[i] = last.index;
                }
                black_box(&rd.committed_entries);
                node.advance(rd);
            }
            if inbox.is_empty() {
                if self.nodes.iter().all(|n| !n.has_ready()) {
                    return;
                }
                continue;
            }
            for m in inbox.drain(..) {
                let to = (m.to - 1) as usize;
                self.nodes[to].step(m).expect("peer message");
            }
        }
    }

    fn compact_if_large(&mut self) {
        for (i, node) in self.nodes.iter_mut().enumerate() {
            let store = node.mut_store();
            let first = store.first_index().expect("mem");
            if self.applied[i] - first > COMPACT_EVERY {
                store.compact(self.applied[i]).expect("compact applied prefix");
            }
        }
    }
}

fn proposals(c: &mut Criterion) {
    let payload = Bytes::from(vec![0xAB; PAYLOAD]);
    let mut group = c.benchmark_group("three_node_cluster");
    for batch in [64u64, 256, 1024] {
        group.throughput(Throughput::Elements(batch));
        group.bench_with_input(
            BenchmarkId::new("propose_commit_apply", batch),
            &batch,
            |b, &batch| {
                let mut cluster = Cluster::new();
                b.iter(|| {
                    let entries = (0..batch).map(|_| Entry::normal(payload.clone())).collect();
                    cluster.nodes[0].propose_entries(entries).expect("leader accepts");
                    cluster.run_until_quiet();
                    cluster.compact_if_large();
                });
            },
        );
    }
    group.finish();
}

criterion_group!(benches, proposals);
criterion_main!(benches);
