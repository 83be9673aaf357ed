//! Members serving TLS in this process: a cluster whose client and peer URLs are all
//! `https://` (auto-TLS, as etcd's `--auto-tls --peer-auto-tls`), and one port serving
//! plaintext and TLS at once with etcd's host whitelist on plain HTTP. Certificate
//! authorities, client-certificate auth and CRLs are tested in `oxetcd-tls` and, against
//! etcd with etcdctl and etcd's own fixtures, in the compatibility suite.

use std::time::Duration;

use oxetcd_client::{Client, ClientOptions};
use oxetcd_tests::member::{TestCluster, TestMember, free_port};
use oxetcd_tls::{ClientTls, TlsInfo, TlsOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bound on each step that talks to a member.
const STEP: Duration = Duration::from_secs(20);

/// A client TLS configuration that accepts auto-TLS (self-signed) servers, as etcdctl's
/// `--insecure-skip-tls-verify`.
fn skip_verify(dir: &std::path::Path) -> ClientTls {
    let info = TlsInfo { auto_tls: true, ..TlsInfo::default() };
    ClientTls::new(&info, &TlsOptions::default(), dir).expect("client TLS")
}

async fn tls_client(endpoint: &str, tls: &ClientTls) -> Client {
    let options = ClientOptions::default().with_tls(tls.config()).with_dial_timeout(STEP);
    Client::connect([endpoint], options).await.expect("TLS client connects")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_over_tls_replicates_and_forwards_lease_keep_alives() {
    let cluster = TestCluster::start_secure(3, &["--auto-tls", "--peer-auto-tls"]).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let tls = skip_verify(dir.path());
    let leader = cluster.leader().await;
    let follower = (leader + 1) % 3;
    assert!(cluster.endpoint(follower).starts_with("https://"));

    let writer = tls_client(&cluster.endpoint(leader), &tls).await;
    let put = tokio::time::timeout(STEP, writer.put("over", "tls", None)).await;
    let revision = put.expect("bounded").expect("put over TLS").header.expect("header").revision;
    // Linearizable reads on every member: the followers ask the leader over peer TLS.
    for i in 0..3 {
        let reader = tls_client(&cluster.endpoint(i), &tls).await;
        let got = tokio::time::timeout(STEP, reader.get("over", None)).await;
        let got = got.expect("bounded").expect("get over TLS");
        assert_eq!(got.kvs[0].value, &b"tls"[..], "member {i}");
        assert!(got.header.expect("header").revision >= revision);
    }
    // A follower forwards a keep-alive to the leader's https client URL.
    let via_follower = tls_client(&cluster.endpoint(follower), &tls).await;
    let lease = via_follower.lease_grant(30, 0).await.expect("grant");
    let renewed = tokio::time::timeout(STEP, via_follower.lease_keep_alive_once(lease.id)).await;
    let renewed = renewed.expect("bounded").expect("keep-alive forwarded over TLS");
    assert!(renewed.ttl > 0, "the lease is alive: {renewed:?}");
    cluster.stop_all().await;
}

/// Sends one HTTP/1.1 GET over `stream` and returns the raw response.
async fn http_get<S>(mut stream: S, path: &str, host: &str) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send the request");
    let mut response = Vec::new();
    tokio::time::timeout(STEP, stream.read_to_end(&mut response))
        .await
        .expect("bounded")
        .expect("read the response");
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_port_serves_plaintext_and_tls_and_whitelists_hosts_on_plain_http() {
    let port = free_port();
    let urls = format!("http://127.0.0.1:{port},https://127.0.0.1:{port}");
    let member = TestMember::start(&[
        "--listen-client-urls",
        &urls,
        "--advertise-client-urls",
        &urls,
        "--auto-tls",
        "--host-whitelist",
        "example.com",
    ])
    .await;
    let dir = tempfile::tempdir().expect("temp dir");
    let tls = skip_verify(dir.path());
    let addr = format!("127.0.0.1:{port}");

    // gRPC both ways on the one port; the whitelist is for plain HTTP only, as in etcd.
    let plain = Client::connect([format!("http://{addr}")], ClientOptions::default())
        .await
        .expect("plaintext client connects");
    plain.put("k", "plain", None).await.expect("plaintext put");
    let secure = tls_client(&format!("https://{addr}"), &tls).await;
    assert_eq!(secure.get("k", None).await.expect("TLS get").kvs[0].value, &b"plain"[..]);

    // Plain HTTP with a Host not in the whitelist: etcd's 421 (DNS rebinding defence).
    let refused = http_get(TcpStream::connect(&addr).await.unwrap(), "/health", "127.0.0.1").await;
    assert!(refused.starts_with("HTTP/1.1 421"), "{refused}");
    assert!(refused.contains("the Host header was unrecognized"), "{refused}");
    let allowed =
        http_get(TcpStream::connect(&addr).await.unwrap(), "/health", "example.com").await;
    assert!(allowed.starts_with("HTTP/1.1 200"), "{allowed}");
    assert!(allowed.contains(r#"{"health":"true"}"#), "{allowed}");
    // The default CORS policy (`*`) answers every origin.
    assert!(allowed.to_ascii_lowercase().contains("access-control-allow-origin: *"), "{allowed}");
    // Over TLS any host is accepted.
    let tcp = TcpStream::connect(&addr).await.unwrap();
    let stream = tls.connect("127.0.0.1", tcp).await.expect("TLS handshake");
    let over_tls = http_get(stream, "/health", "127.0.0.1").await;
    assert!(over_tls.starts_with("HTTP/1.1 200"), "{over_tls}");
    member.stop().await;
}
