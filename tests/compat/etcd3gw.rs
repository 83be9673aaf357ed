//! etcd3gw, the Python client OpenStack uses, which speaks only the JSON gateway: the same
//! session (`python/etcd3gw_session.py`: version discovery, status, members, put/get,
//! prefixes, sorted gets, create/replace transactions, deletes, a lease with its keys, a
//! lock, a prefix watch and a one-shot watch) runs against etcd 3.4.23 and against
//! oxetcd, and must print the same lines. `scripts/compat.sh` installs etcd3gw.

use std::path::Path;
use std::process::Command;

use oxetcd_tests::member::TestMember;
use oxetcd_tests::reference::ReferenceEtcd;

/// The session's transcript against `endpoint` (`http://host:port`).
fn session(endpoint: &str) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("compat/python/etcd3gw_session.py");
    let authority = endpoint.strip_prefix("http://").expect("a plaintext endpoint");
    let (host, port) = authority.rsplit_once(':').expect("host:port");
    let out = Command::new("timeout")
        .args(["120", "python3"])
        .arg(&script)
        .args([host, port])
        .output()
        .expect("python3 runs (scripts/compat.sh installs what the suite needs)");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "the etcd3gw session failed against {endpoint} ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_etcd3gw_session_goes_as_against_etcd() {
    let etcd = ReferenceEtcd::start().await;
    let etcd_endpoint = etcd.endpoint.clone();
    let expected = tokio::task::spawn_blocking(move || session(&etcd_endpoint)).await.unwrap();
    drop(etcd);
    assert!(expected.contains("watched: [('PUT'"), "the session ran to its end:\n{expected}");

    let member = TestMember::start(&[]).await;
    let endpoint = member.endpoint.clone();
    let got = tokio::task::spawn_blocking(move || session(&endpoint)).await.unwrap();
    member.stop().await;
    assert_eq!(got, expected, "oxetcd's transcript differs from etcd's");
}
