//! oxetcd's robustness harness (etcd's `tests/robustness`, in our own terms): a
//! multi-process cluster of the real binary under faults, a workload of concurrent
//! clients whose operations and watch streams are recorded, and checkers that judge the
//! recording afterwards.
//!
//! - [`history`]: the record (operations with invoke/return times and outcomes, watch
//!   streams, the committed log), serializable as JSON for replaying a check.
//! - [`linearizability`]: the Wing–Gong–Lowe checker over etcd's KV model, key by key.
//! - [`checks`]: watch guarantees, lease lifetimes, and the committed log against the
//!   history.
//! - [`cluster`]: members of the real binary as child processes (kill -9, SIGSTOP,
//!   restarts, failpoints through `FAILPOINTS` or armed while they run), on loopback or
//!   in namespaces.
//! - [`failpoints`]: a member's failpoint control over HTTP, and the transport's
//!   failpoints that drop peer messages by direction.
//! - [`nemesis`]: the faults, drawn from a seed.
//! - [`netns`]: a network of network namespaces on a bridge, for partitions and delays.
//! - [`workload`]: the clients, watchers and leases that make the history.
//! - [`compaction`]: compactions as the run goes, the committed log read ahead of each.
//! - [`scenario`]: one seeded run: cluster, workload and nemesis, end checks, and on an
//!   anomaly the history, member logs and seed kept in a directory.

pub mod checks;
pub mod cluster;
pub mod compaction;
pub mod failpoints;
pub mod history;
pub mod linearizability;
pub mod nemesis;
pub mod netns;
pub mod rng;
pub mod scenario;
pub mod workload;
