//! Runs the deterministic cluster simulator over many seeds.
//!
//! * `cargo test -p oxetcd-raft --test simulation` runs the default seeds (10,000, split in
//!   shards that run in parallel).
//! * `RAFT_SIM_SEED=123` runs only seed 123, with a trace of every event on stderr.
//! * `RAFT_SIM_SEEDS=n` changes how many seeds run, `RAFT_SIM_SEED_START=s` where they start
//!   (to explore beyond the default range); `RAFT_SIM_STEPS=n` the steps per seed.

mod sim;

use std::panic::{AssertUnwindSafe, catch_unwind};

const DEFAULT_SEEDS: u64 = 10_000;
const DEFAULT_STEPS: usize = 3000;
const SHARDS: u64 = 4;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name)
        .ok()
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name} must be a number, got {v:?}")))
}

fn steps() -> usize {
    env_u64("RAFT_SIM_STEPS").map_or(DEFAULT_STEPS, |s| s as usize)
}

fn run_seed(seed: u64, trace: bool) -> sim::Sim {
    let result = catch_unwind(AssertUnwindSafe(|| {
        let mut s = sim::Sim::new(seed);
        s.trace = trace;
        s.run(steps());
        s
    }));
    match result {
        Ok(s) => s,
        Err(_) => panic!(
            "simulation failed for seed {seed}; reproduce with:\n  \
             RAFT_SIM_SEED={seed} cargo test -p oxetcd-raft --test simulation"
        ),
    }
}

fn run_shard(shard: u64) {
    if let Some(seed) = env_u64("RAFT_SIM_SEED") {
        if shard == 0 {
            let s = run_seed(seed, true);
            eprintln!(
                "seed {seed}: ok ({} steps, {} ticks, {} entries applied, {} reads answered, \
                 recovered {} ticks after healing)",
                s.checker.step,
                s.checker.ticks,
                s.checker.entries_applied,
                s.checker.reads_answered,
                s.checker.recovery_ticks
            );
        }
        return;
    }
    let seeds = env_u64("RAFT_SIM_SEEDS").unwrap_or(DEFAULT_SEEDS);
    let start = env_u64("RAFT_SIM_SEED_START").unwrap_or(0);
    let (mut applied, mut reads, mut worst_recovery) = (0, 0, (0, 0));
    for seed in (start..start + seeds).filter(|s| s % SHARDS == shard) {
        let s = run_seed(seed, false);
        applied += s.checker.entries_applied;
        reads += s.checker.reads_answered;
        worst_recovery = worst_recovery.max((s.checker.recovery_ticks, seed));
    }
    eprintln!(
        "shard {shard}: {applied} entries applied, {reads} reads answered, slowest recovery \
         {} ticks (seed {})",
        worst_recovery.0, worst_recovery.1
    );
}

#[test]
fn simulate_shard_0() {
    run_shard(0);
}

#[test]
fn simulate_shard_1() {
    run_shard(1);
}

#[test]
fn simulate_shard_2() {
    run_shard(2);
}

#[test]
fn simulate_shard_3() {
    run_shard(3);
}
