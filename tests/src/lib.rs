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
pub mod websocket;

/// `target/<profile>/<name>`, beside the running test's `deps/` dir: a binary of this
/// workspace the test runs (`package` builds it; scripts/compat.sh does). Panics saying
/// how to build it when it is missing: the suite never skips.
pub fn workspace_bin(name: &str, package: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let profile_dir =
        exe.parent().and_then(std::path::Path::parent).expect("target/<profile>/deps/<test>");
    let path = profile_dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "{} is missing: build it first (`cargo build -p {package}`; scripts/compat.sh does)",
        path.display()
    );
    path
}
