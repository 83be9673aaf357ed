//! etcdctl 3.4.23 over TLS against the reference etcd and against oxetcd, both started
//! with the same client-side TLS flags and etcd's own test certificates (Debian's
//! golang-etcd-server-dev, `integration/fixtures`): the same etcdctl commands with the
//! same TLS flags, transcripts compared after normalization (see
//! `oxetcd_tests::etcdctl`). Where etcdctl must be refused, both servers must refuse it
//! the same way: same exit code, same error as etcdctl prints it.
//!
//! The fixtures' `server.crt` is valid for 127.0.0.1 and localhost, as a server and as a
//! client certificate; `server-revoked.crt` is revoked by `revoke.crl`;
//! `CommonName-root.crt` is another CA. Missing fixtures fail the tests.

use oxetcd_tests::etcdctl::{EtcdctlTls, SideBySide, Step, same_as_etcd_with, steps, txn_input};
use oxetcd_tests::reference::ServerTlsFlags;

/// How long etcdctl tries before a refused command gives up (etcdctl's default is 5 s).
const COMMAND_TIMEOUT: &str = "--command-timeout=3s";

/// Endpoint status columns: 3 is the db size, 6 the raft term.
const STATUS_MASK: [usize; 2] = [3, 6];
/// Endpoint health columns: 2 is the time taken.
const HEALTH_MASK: [usize; 1] = [2];
/// Where `lease timetolive` prints the remaining TTL, which depends on timing.
const REMAINING_TTL: [&str; 2] = ["remaining(", "\"ttl\":"];

/// `--cert-file server.crt --key-file server.key.insecure --trusted-ca-file ca.crt
/// --client-cert-auth`.
fn client_cert_auth() -> ServerTlsFlags {
    ServerTlsFlags::fixture_cert("server").trusted_ca("ca.crt").client_cert_auth()
}

/// `--cacert ca.crt --cert server.crt --key server.key.insecure`.
fn good_client() -> EtcdctlTls {
    EtcdctlTls::cacert("ca.crt").client_cert("server")
}

/// A refused `endpoint status` (which dials the endpoint directly, not through etcd's
/// balancer) reports the last connection error gRPC saw, which depends on timing
/// (`connection closed`, `write tcp …: write: broken pipe`, … from etcd alike): masked.
/// The status code and etcdctl's error stay strict; the other commands report etcd's
/// balancer's `all SubConns are in TransientFailure`, compared as is.
const BALANCER_ERROR: &str = "latest balancer error: ";

/// A command that the server (or etcdctl's TLS) must refuse: bounded, expected to fail.
fn refused(line: &str) -> Step {
    Step::line(&format!("{line} {COMMAND_TIMEOUT}")).fails()
}

/// The commands refused when the TLS handshake fails.
fn refused_steps() -> Vec<Step> {
    let mut all: Vec<Step> =
        ["put foo bar", "get foo", "get --prefix foo -w json", "endpoint health"]
            .map(refused)
            .into();
    all.push(refused("endpoint status").mask_strings_after(&[BALANCER_ERROR]));
    all
}

/// A write and a read with the good client certificate, to show the server serves.
fn served_steps() -> Vec<Step> {
    ["put served yes", "get served -w json"]
        .map(|line| Step::line(line).with_tls(good_client()))
        .into()
}

fn client_tls_steps() -> Vec<Step> {
    let mut all = steps(&[
        "put foo bar",
        "put --prev-kv -w json foo bar2",
        "put foo1 v1",
        "get foo",
        "get --prefix foo -w json",
        "del --prev-kv -w json foo1",
        "put w 1",
        "put w 2",
    ]);
    all.push(Step::line("txn -w json").stdin(txn_input(
        &[r#"value("foo") = "bar2""#],
        &["put t yes", "get foo"],
        &["put t no"],
    )));
    // A watch from revision 1 prints the two puts of `w` and is stopped.
    all.push(Step::line("watch --rev 1 w").stop_after(6));
    all.extend(steps(&[
        "lease grant 60",
        "put --lease {L1} leased v",
        "lease keep-alive --once {L1}",
    ]));
    all.push(Step::line("lease timetolive --keys {L1}").mask_numbers_after(&REMAINING_TTL));
    all.extend([
        Step::line("endpoint status").mask_columns(&STATUS_MASK),
        Step::line("endpoint status -w table").mask_columns(&STATUS_MASK),
        Step::line("endpoint status -w json"),
        Step::line("endpoint health").mask_columns(&HEALTH_MASK),
        Step::line("endpoint health -w json"),
        Step::line("member list"),
        Step::line("member list -w json"),
        Step::args(&["get", "--from-key", "", "-w", "json"]),
    ]);
    all
}

/// 1. Client TLS with client-certificate auth: etcdctl with the CA and a client
///    certificate sees the same answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_cert_auth_with_a_client_certificate() {
    same_as_etcd_with(&SideBySide::tls(client_cert_auth(), good_client()), client_tls_steps())
        .await;
}

/// 2. The same server, etcdctl without a client certificate: refused alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_cert_auth_without_a_client_certificate() {
    let mut all = refused_steps();
    all.extend(served_steps());
    same_as_etcd_with(&SideBySide::tls(client_cert_auth(), EtcdctlTls::cacert("ca.crt")), all)
        .await;
}

/// 3. etcdctl verifying the server against another CA: fails alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_certificate_from_another_ca() {
    let wrong_ca = EtcdctlTls::cacert("CommonName-root.crt").client_cert("server");
    let mut all = refused_steps();
    all.extend(served_steps());
    same_as_etcd_with(&SideBySide::tls(client_cert_auth(), wrong_ca), all).await;
}

/// 4. A client certificate revoked by the server's CRL is refused; a good one is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_client_certificate() {
    let server = client_cert_auth().crl("revoke.crl");
    let revoked = EtcdctlTls::cacert("ca.crt").client_cert("server-revoked");
    let mut all = refused_steps();
    all.extend(served_steps());
    all.push(refused("get served"));
    same_as_etcd_with(&SideBySide::tls(server, revoked), all).await;
}

/// 5. Auto-TLS: self-signed servers, etcdctl skipping verification; without skipping,
///    the self-signed certificate is refused alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_tls_with_insecure_skip_tls_verify() {
    let mut all = steps(&["put foo bar", "get foo", "get foo -w json"]);
    all.push(Step::line("endpoint health").mask_columns(&HEALTH_MASK));
    all.push(refused("get foo").with_tls(EtcdctlTls::none()));
    all.push(refused("get foo").with_tls(EtcdctlTls::cacert("ca.crt")));
    let how = SideBySide::tls(ServerTlsFlags::auto(), EtcdctlTls::insecure_skip_tls_verify());
    same_as_etcd_with(&how, all).await;
}

/// 6. Plaintext etcdctl (`http://` endpoints) against an https-only client port: fails
///    alike, with or without TLS flags.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_etcdctl_against_a_tls_port() {
    let mut all = refused_steps();
    all.push(refused("get foo").with_tls(good_client()));
    let how = SideBySide::tls(ServerTlsFlags::fixture_cert("server"), EtcdctlTls::none())
        .with_endpoint_scheme("http");
    same_as_etcd_with(&how, all).await;
}
