//! `oxetcd grpc-proxy start` in front of a member, as a client sees it: every service
//! through the proxy (KV, Watch, Lease, Cluster with MemberList answered by the proxy,
//! Maintenance, Auth with a token), the
//! cluster's errors passed back unchanged, the message-size limits, a dead endpoint passed
//! over, `/health` and `/metrics`, TLS on both sides, and the flags it refuses.

mod support;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use oxetcd_client::WatchOptions;
use oxetcd_client::auth::{Permission, PermissionType};
use oxetcd_client::{Client, ClientOptions, Compare, CompareOp, GetOptions, TlsFiles, Txn, TxnOp};
use support::{MemberConfig, Process, START_TIMEOUT, free_ports, member_client, poll_until};
use tonic::Code;

/// How long one call through the proxy may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// A running proxy, killed when dropped; its stderr goes to `log`.
struct Proxy {
    child: Child,
    log: std::path::PathBuf,
}

impl Proxy {
    fn spawn(dir: &Path, args: &[&str]) -> Proxy {
        let log = dir.join("proxy.log");
        let child = Command::new(env!("CARGO_BIN_EXE_oxetcd"))
            .args(["grpc-proxy", "start"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Proxy { child, log }
    }

    /// Spawns the proxy and waits for its start line.
    async fn start(dir: &Path, args: &[&str]) -> Proxy {
        let mut proxy = Proxy::spawn(dir, args);
        poll_until("the proxy's start line", START_TIMEOUT, async || {
            if let Some(status) = proxy.child.try_wait().unwrap() {
                panic!("the proxy exited with {status}: {}", proxy.log());
            }
            proxy.log().contains("started gRPC proxy").then_some(())
        })
        .await;
        proxy
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("=== proxy ===\n{}", self.log());
        }
    }
}

/// Runs the proxy with `args` to its exit; its code and stderr.
fn run_to_exit(args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_oxetcd"))
        .args(["grpc-proxy", "start"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + START_TIMEOUT;
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the proxy did not exit for {args:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    (child.wait().unwrap().code(), stderr)
}

/// A plain HTTP/1.1 GET: the status line and the body.
fn http_get(addr: &str, path: &str) -> (String, String) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(CALL_TIMEOUT)).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (head.lines().next().unwrap_or_default().to_string(), body.to_string())
}

fn code_and_message(error: &oxetcd_client::Error) -> (Code, String) {
    let status = error.status().unwrap_or_else(|| panic!("no status: {error:?}"));
    (status.code(), status.message().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_passes_through_the_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let config = MemberConfig::single(dir.path(), "m1");
    let mut process = Process::start(&config).await;
    let [dead, listen] = free_ports(2)[..] else { unreachable!() };
    let listen_addr = format!("127.0.0.1:{listen}");
    let advertised = format!("http://{listen_addr}");
    // A dead endpoint first: calls pass it over.
    let endpoints = format!("127.0.0.1:{dead},{}", config.client_url);
    let proxy = Proxy::start(
        dir.path(),
        &[
            "--endpoints",
            &endpoints,
            "--listen-addr",
            &listen_addr,
            "--max-send-bytes=4096",
            "--max-recv-bytes=8192",
            "--advertise-client-url",
            &advertised,
        ],
    )
    .await;
    let direct = member_client(&config.client_url, Some(CALL_TIMEOUT)).await.unwrap();
    let client = member_client(&listen_addr, Some(CALL_TIMEOUT)).await.unwrap();

    // KV, several times so that the dead endpoint's turn comes.
    for i in 0..4 {
        client.put(format!("k{i}"), format!("v{i}"), None).await.unwrap();
    }
    let got = client.get("k", Some(GetOptions::new().with_prefix())).await.unwrap();
    let values: Vec<_> = got.kvs.iter().map(|kv| kv.value.clone()).collect();
    assert_eq!(values, ["v0", "v1", "v2", "v3"]);
    assert_eq!(client.delete("k3", None).await.unwrap().deleted, 1);
    let txn = Txn::new()
        .when([Compare::value("k0", CompareOp::Equal, "v0")])
        .and_then([TxnOp::put("k0", "swapped", None)])
        .or_else([TxnOp::get("k0", None)]);
    assert!(client.txn(txn).await.unwrap().succeeded);
    assert_eq!(direct.get("k0", None).await.unwrap().kvs[0].value, "swapped");
    assert!(proxy.log().contains(&format!("127.0.0.1:{dead}")), "{}", proxy.log());

    // Watch: a stream that sees later writes.
    let mut watcher = client.watch("w", None::<WatchOptions>).await.unwrap();
    direct.put("w", "1", None).await.unwrap();
    let event = tokio::time::timeout(CALL_TIMEOUT, async {
        loop {
            let response = watcher.message().await.unwrap().unwrap();
            if let Some(event) = response.events.into_iter().next() {
                return event;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(event.kv.unwrap().value, "1");

    // Lease: grant, a keep-alive over its stream, revoke.
    let lease = client.lease_grant(30, 0).await.unwrap().id;
    assert_eq!(client.lease_keep_alive_once(lease).await.unwrap().ttl, 30);
    client.lease_revoke(lease).await.unwrap();
    let gone = direct.lease_time_to_live(lease, false).await.unwrap();
    assert_eq!(gone.ttl, -1);

    // Cluster: MemberList names the proxy itself, at its advertised URL, as etcd's does;
    // the other Cluster calls go to the cluster. Maintenance.
    let listed = client.cluster().member_list().await.unwrap();
    assert!(listed.header.is_none());
    assert_eq!(listed.members.len(), 1);
    assert_eq!(listed.members[0].client_ur_ls, [advertised.as_str()]);
    let member = direct.cluster().member_list().await.unwrap().members.remove(0);
    let refused = client.cluster().member_remove(member.id + 1).await.unwrap_err();
    assert_eq!(code_and_message(&refused), (Code::NotFound, "etcdserver: member not found".into()));
    let status = client.maintenance().status().await.unwrap();
    assert_eq!(status.header.unwrap().member_id, member.id);

    // An error passes back as the cluster gave it.
    let revision = direct.put("c", "x", None).await.unwrap().header.unwrap().revision;
    direct.compact(revision, false).await.unwrap();
    let old = GetOptions::new().with_revision(revision - 1);
    let through = client.get("c", Some(old.clone())).await.unwrap_err();
    let straight = direct.get("c", Some(old)).await.unwrap_err();
    assert_eq!(code_and_message(&through), code_and_message(&straight));
    assert_eq!(
        code_and_message(&through),
        (Code::OutOfRange, "etcdserver: mvcc: required revision has been compacted".into())
    );

    // Message sizes: a request over --max-send-bytes, a response over --max-recv-bytes.
    let refused = client.put("big", vec![b'x'; 5000], None).await.unwrap_err();
    let (code, message) = code_and_message(&refused);
    assert_eq!(code, Code::ResourceExhausted);
    assert!(message.starts_with("trying to send message larger than max ("), "{message}");
    assert!(message.ends_with(" vs. 4096)"), "{message}");
    for i in 0..3 {
        client.put(format!("big{i}"), vec![b'x'; 3000], None).await.unwrap();
    }
    let refused = client.get("big", Some(GetOptions::new().with_prefix())).await.unwrap_err();
    let (code, message) = code_and_message(&refused);
    assert_eq!(code, Code::ResourceExhausted);
    assert!(message.starts_with("grpc: received message larger than max ("), "{message}");
    assert!(message.ends_with(" vs. 8192)"), "{message}");

    // Auth: the token of a user authenticated through the proxy passes with each call,
    // and a refusal comes back with etcd's code and message.
    let auth = client.auth();
    auth.user_add("root", "rootpw", false).await.unwrap();
    auth.role_add("root").await.unwrap();
    auth.user_grant_role("root", "root").await.unwrap();
    auth.user_add("alice", "alicepw", false).await.unwrap();
    auth.role_add("reader").await.unwrap();
    let readable = Permission::new(PermissionType::Read, "public/").with_prefix();
    auth.role_grant_permission("reader", readable).await.unwrap();
    auth.user_grant_role("alice", "reader").await.unwrap();
    auth.auth_enable().await.unwrap();
    let as_user = |user: &str, password: &str| {
        let options = ClientOptions::default()
            .with_request_timeout(CALL_TIMEOUT)
            .with_max_retries(0)
            .with_user(user, password);
        Client::connect([listen_addr.clone()], options)
    };
    let root = as_user("root", "rootpw").await.unwrap();
    root.put("public/a", "for alice", None).await.unwrap();
    let alice = as_user("alice", "alicepw").await.unwrap();
    assert_eq!(alice.get("public/a", None).await.unwrap().kvs[0].value, "for alice");
    let denied = alice.put("public/a", "mine", None).await.unwrap_err();
    assert_eq!(
        code_and_message(&denied),
        (Code::PermissionDenied, "etcdserver: permission denied".into())
    );
    let anonymous = client.get("public/a", None).await.unwrap_err();
    assert_eq!(code_and_message(&anonymous).0, Code::InvalidArgument, "{anonymous:?}");
    root.auth().auth_disable().await.unwrap();

    // The HTTP endpoints on the same port.
    let (status_line, body) = http_get(&listen_addr, "/health");
    assert_eq!((status_line.as_str(), body.as_str()), ("HTTP/1.1 200 OK", r#"{"health":"true"}"#));
    let (status_line, body) = http_get(&listen_addr, "/metrics");
    assert_eq!(status_line, "HTTP/1.1 200 OK");
    assert!(body.contains("etcd_server_has_leader 1"), "{body}");
    assert_eq!(http_get(&listen_addr, "/nothing").0, "HTTP/1.1 404 Not Found");

    // With the cluster gone, calls fail as unavailable and /health says so.
    process.kill();
    let unreachable = client.get("k0", None).await.unwrap_err();
    assert_eq!(code_and_message(&unreachable).0, Code::Unavailable, "{unreachable:?}");
    let (status_line, body) = http_get(&listen_addr, "/health");
    assert_eq!(status_line, "HTTP/1.1 503 Service Unavailable");
    assert_eq!(body, "{\"health\":\"false\"}\n");
}

/// A CA and the certificates signed by it, written into a directory.
struct Certs {
    ca: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    dir: std::path::PathBuf,
}

impl Certs {
    fn new(dir: &Path) -> Certs {
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name.push(rcgen::DnType::CommonName, "proxy test CA");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages =
            vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::DigitalSignature];
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let ca = rcgen::CertifiedIssuer::self_signed(params, key).unwrap();
        std::fs::write(dir.join("ca.crt"), ca.pem()).unwrap();
        Certs { ca, dir: dir.to_owned() }
    }

    fn ca(&self) -> String {
        self.dir.join("ca.crt").display().to_string()
    }

    /// A certificate for 127.0.0.1 (server and client auth) with `cn`, if any, as
    /// `<name>.crt` and `<name>.key`; their paths.
    fn leaf(&self, name: &str, cn: Option<&str>) -> (String, String) {
        let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(cn) = cn {
            params.distinguished_name.push(rcgen::DnType::CommonName, cn);
        }
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        let (cert_path, key_path) =
            (self.dir.join(format!("{name}.crt")), self.dir.join(format!("{name}.key")));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path.display().to_string(), key_path.display().to_string())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_on_both_sides_and_a_certificate_with_a_common_name_refused() {
    let dir = tempfile::tempdir().unwrap();
    let certs = Certs::new(dir.path());
    let (member_cert, member_key) = certs.leaf("member", Some("member"));
    let (proxy_client_cert, proxy_client_key) = certs.leaf("proxy-client", None);
    let (proxy_server_cert, proxy_server_key) = certs.leaf("proxy-server", Some("proxy"));
    let (client_cert, client_key) = certs.leaf("client", Some("client"));
    let (named_cert, named_key) = certs.leaf("named", Some("proxy-user"));

    let mut config = MemberConfig::single(dir.path(), "tls");
    config.client_url = config.client_url.replace("http://", "https://");
    config.extra.extend(
        ["--cert-file", &member_cert, "--key-file", &member_key, "--trusted-ca-file", &certs.ca()]
            .map(String::from),
    );
    let _member = Process::spawn(&config);
    let ca = certs.ca();
    let listen_addr = format!("127.0.0.1:{}", free_ports(1)[0]);
    let cluster_tls = ["--cacert", &ca, "--cert", &proxy_client_cert, "--key", &proxy_client_key];
    let mut args = vec!["--endpoints", &config.client_url, "--listen-addr", &listen_addr];
    args.extend(cluster_tls);
    args.extend(["--cert-file", &proxy_server_cert, "--key-file", &proxy_server_key]);
    args.extend(["--trusted-ca-file", &ca]);
    let _proxy = Proxy::start(dir.path(), &args).await;

    let files = TlsFiles {
        cert: Some(client_cert.into()),
        key: Some(client_key.into()),
        trusted_ca: Some(certs.ca().into()),
        insecure_skip_verify: false,
    };
    let options = ClientOptions::default()
        .with_request_timeout(CALL_TIMEOUT)
        .with_max_retries(0)
        .with_tls_files(&files)
        .unwrap();
    let url = format!("https://{listen_addr}");
    // The member takes a moment to serve.
    let client = poll_until("a put through the TLS proxy", START_TIMEOUT, async || {
        let client = Client::connect([url.clone()], options.clone()).await.ok()?;
        client.put("secure", "yes", None).await.ok()?;
        Some(client)
    })
    .await;
    assert_eq!(client.get("secure", None).await.unwrap().kvs[0].value, "yes");
    // A client without a certificate is refused by the proxy's TLS.
    let anonymous_files = TlsFiles { trusted_ca: Some(certs.ca().into()), ..TlsFiles::default() };
    let anonymous = ClientOptions::default()
        .with_request_timeout(CALL_TIMEOUT)
        .with_dial_timeout(Duration::from_secs(2))
        .with_max_retries(0)
        .with_tls_files(&anonymous_files)
        .unwrap();
    let refused = match Client::connect([url.clone()], anonymous).await {
        Ok(client) => client.get("secure", None).await.is_err(),
        Err(_) => true,
    };
    assert!(refused, "a client without a certificate got through");

    // etcd's EmptyCN check: a --cert with a common name is refused at start.
    let (code, stderr) = run_to_exit(&[
        "--endpoints",
        &config.client_url,
        "--listen-addr",
        &format!("127.0.0.1:{}", free_ports(1)[0]),
        "--cacert",
        &certs.ca(),
        "--cert",
        &named_cert,
        "--key",
        &named_key,
    ]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("cert has non empty Common Name (proxy-user)"), "{stderr}");
}

#[test]
fn unbuilt_features_and_bad_flags_are_refused() {
    let listen = format!("--listen-addr=127.0.0.1:{}", free_ports(1)[0]);
    for (flag, named) in [
        ("--namespace=/tenant", "--namespace"),
        ("--experimental-leasing-prefix=/lease", "--experimental-leasing-prefix"),
        ("--enable-pprof", "--enable-pprof"),
        ("--discovery-srv=example.com", "--discovery-srv"),
    ] {
        let (code, stderr) = run_to_exit(&[&listen, flag]);
        assert_eq!(code, Some(1), "{flag}: {stderr}");
        assert!(stderr.contains(named) && stderr.contains("not built"), "{flag}: {stderr}");
    }
    let (code, stderr) = run_to_exit(&[&listen, "--resolver-prefix=/proxies"]);
    assert_eq!((code, stderr.trim()), (Some(1), "invalid resolver-ttl 0"));
    let (code, stderr) = run_to_exit(&[&listen, "--listen-cipher-suites=TLS_NO_SUCH_SUITE"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("unexpected TLS cipher suite \"TLS_NO_SUCH_SUITE\""), "{stderr}");
    let (code, stderr) = run_to_exit(&[&listen, "--no-such-flag"]);
    assert_eq!(code, Some(1), "{stderr}");
}
