//! Support for oxetcd's cross-crate tests: running the reference etcd, and scenarios
//! that run the same way against any etcd v3 endpoint (the reference etcd today,
//! oxetcd once its server lands), so one piece of code states the expected behaviour.

pub mod etcdctl;
pub mod lock_election_scenario;
pub mod member;
pub mod metrics;
pub mod reference;
pub mod refusals;
pub mod scenario;
pub mod watch_scenario;
