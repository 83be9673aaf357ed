//! Runs the bench binary against a tiny in-process KV server (test scaffolding
//! that records what it is sent) and checks that the bench sends exactly what it
//! was asked to, reports it, and fails cleanly on services the server lacks; and
//! that it reaches the same server over TLS with etcd's TLS flags.

use std::net::SocketAddr;
use std::process::Output;
use std::sync::{Arc, Mutex};

use oxetcd_api::etcdserverpb::kv_server::{Kv, KvServer};
use oxetcd_api::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    PutResponse, RangeRequest, RangeResponse, RangeStreamResponse, TxnRequest, TxnResponse,
    request_op,
};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};

#[derive(Default)]
struct Seen {
    puts: Vec<PutRequest>,
    ranges: Vec<RangeRequest>,
    streamed_ranges: Vec<RangeRequest>,
    txns: Vec<TxnRequest>,
}

#[derive(Clone, Default)]
struct StubKv(Arc<Mutex<Seen>>);

#[tonic::async_trait]
impl Kv for StubKv {
    async fn range(&self, req: Request<RangeRequest>) -> Result<Response<RangeResponse>, Status> {
        self.0.lock().unwrap().ranges.push(req.into_inner());
        Ok(Response::new(RangeResponse::default()))
    }

    async fn put(&self, req: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        self.0.lock().unwrap().puts.push(req.into_inner());
        Ok(Response::new(PutResponse::default()))
    }

    async fn delete_range(
        &self,
        _: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        Err(Status::unimplemented("stub"))
    }

    async fn txn(&self, req: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        self.0.lock().unwrap().txns.push(req.into_inner());
        Ok(Response::new(TxnResponse::default()))
    }

    async fn compact(
        &self,
        _: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        Err(Status::unimplemented("stub"))
    }

    type RangeStreamStream =
        tokio_stream::Iter<std::vec::IntoIter<Result<RangeStreamResponse, Status>>>;

    /// Answers two chunks, which the bench must read to the end.
    async fn range_stream(
        &self,
        req: Request<RangeRequest>,
    ) -> Result<Response<Self::RangeStreamStream>, Status> {
        self.0.lock().unwrap().streamed_ranges.push(req.into_inner());
        let chunk = || Ok(RangeStreamResponse { range_response: Some(RangeResponse::default()) });
        Ok(Response::new(tokio_stream::iter(vec![chunk(), chunk()])))
    }
}

/// Serves only KV on 127.0.0.1 (every other service answers Unimplemented).
async fn serve() -> (SocketAddr, Arc<Mutex<Seen>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stub = StubKv::default();
    let seen = stub.0.clone();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(KvServer::new(stub))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    (addr, seen)
}

async fn bench(addr: SocketAddr, args: &[&str]) -> Output {
    bench_at(&addr.to_string(), args).await
}

async fn bench_at(endpoints: &str, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_oxetcd-bench"))
        .arg("--endpoints")
        .arg(endpoints)
        .args(args)
        .output()
        .await
        .unwrap()
}

fn json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "bench failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

#[tokio::test]
async fn put_sends_total_requests_of_the_given_sizes() {
    let (addr, seen) = serve().await;
    let out = bench(
        addr,
        &[
            "--conns=2",
            "--clients=5",
            "--total=57",
            "--json",
            "put",
            "--key-size=16",
            "--val-size=100",
            "--key-space-size=10",
        ],
    )
    .await;
    let report = json(&out);
    assert_eq!(report["workload"], "put");
    assert_eq!((report["ok"].as_u64(), report["errors_total"].as_u64()), (Some(57), Some(0)));
    assert!(report["requests_per_sec"].as_f64().unwrap() > 0.0);
    assert!(report["latency_ms"]["p99"].as_f64().unwrap() > 0.0);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.puts.len(), 57);
    assert!(seen.puts.iter().all(|p| p.key.len() == 16 && p.value.len() == 100));
    let mut keys: Vec<_> = seen.puts.iter().map(|p| p.key.clone()).collect();
    keys.sort();
    keys.dedup();
    assert!(keys.len() <= 10 && keys.len() > 1, "{} distinct keys", keys.len());
}

#[tokio::test]
async fn sequential_puts_cycle_through_the_key_space() {
    let (addr, seen) = serve().await;
    json(
        &bench(addr, &["--total=8", "--json", "put", "--sequential-keys", "--key-space-size=4"])
            .await,
    );
    let seen = seen.lock().unwrap();
    let last_bytes: Vec<u8> = seen.puts.iter().map(|p| p.key[7]).collect();
    assert_eq!(last_bytes, *b"01230123");
}

#[tokio::test]
async fn range_sends_the_requested_range() {
    let (addr, seen) = serve().await;
    let out = bench(
        addr,
        &[
            "--clients=3",
            "--total=20",
            "range",
            "foo",
            "fop",
            "--consistency=s",
            "--limit=2",
            "--keys-only",
            "--json",
        ],
    )
    .await;
    assert_eq!(json(&out)["ok"], 20);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.ranges.len(), 20);
    for r in &seen.ranges {
        assert_eq!((&r.key[..], &r.range_end[..]), (&b"foo"[..], &b"fop"[..]));
        assert!(r.serializable && r.keys_only);
        assert_eq!(r.limit, 2);
    }
}

#[tokio::test]
async fn range_stream_reads_every_chunk() {
    let (addr, seen) = serve().await;
    let out = bench(addr, &["--total=5", "range", "foo", "fop", "--stream", "--json"]).await;
    let report = json(&out);
    assert_eq!(report["ok"], 5);
    {
        let seen = seen.lock().unwrap();
        assert!(seen.ranges.is_empty(), "no unary Range is sent");
        assert_eq!(seen.streamed_ranges.len(), 5);
        let asked = |r: &RangeRequest| &r.key[..] == b"foo" && &r.range_end[..] == b"fop";
        assert!(seen.streamed_ranges.iter().all(asked));
    }
    let refused = bench(addr, &["--via-client", "range", "foo", "--stream"]).await;
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("range --stream has no --via-client form"), "{stderr}");
}

#[tokio::test]
async fn txn_put_sends_distinct_keys_per_txn() {
    let (addr, seen) = serve().await;
    let out =
        bench(addr, &["--total=4", "--json", "txn-put", "--txn-ops=3", "--key-space-size=10"])
            .await;
    assert_eq!(json(&out)["ok"], 4);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.txns.len(), 4);
    for txn in &seen.txns {
        let mut keys: Vec<_> = txn
            .success
            .iter()
            .map(|op| match &op.request {
                Some(request_op::Request::RequestPut(p)) => p.key.clone(),
                other => panic!("not a put: {other:?}"),
            })
            .collect();
        keys.dedup();
        assert_eq!(keys.len(), 3);
    }
}

#[tokio::test]
async fn text_report_has_the_summary() {
    let (addr, _) = serve().await;
    let out = bench(addr, &["--total=10", "put"]).await;
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for needle in ["Requests/sec:", "10 ok, 0 failed", "Latency distribution:", "p99.9 in"] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
}

#[tokio::test]
async fn unserved_services_fail_cleanly() {
    let (addr, _) = serve().await;
    for (args, rpc) in [
        (&["watch", "--streams=2", "--watchers-per-stream=2"][..], "Watch.Watch"),
        (&["watch-latency", "--watchers=2"][..], "Watch.Watch"),
        (&["watch-fanout", "--watchers=4", "--streams=2"][..], "Watch.Watch"),
        (&["--clients=3", "lease-keepalive"][..], "Lease.LeaseGrant"),
        (&["--target-leader", "put"][..], "Maintenance.Status"),
    ] {
        let out = bench(addr, args).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(
            stderr.contains(&format!("does not serve {rpc}")) && stderr.contains("Unimplemented"),
            "{args:?}: {stderr}"
        );
    }
}

#[tokio::test]
async fn unreachable_endpoint_is_reported() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let out = bench(addr, &["--dial-timeout=2", "put"]).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("cannot connect to http://{addr}")), "{stderr}");
}

#[tokio::test]
async fn max_seconds_stops_a_long_run() {
    let (addr, seen) = serve().await;
    let out = bench(addr, &["--total=1000000000", "--max-seconds=1", "--json", "put"]).await;
    let report = json(&out);
    let ok = report["ok"].as_u64().unwrap();
    assert!(ok > 0 && ok < 1_000_000_000);
    assert_eq!(seen.lock().unwrap().puts.len() as u64, ok);
}

/// A CA and a server certificate for 127.0.0.1 signed by it, as PEM files in a temp dir.
struct Certs {
    dir: tempfile::TempDir,
}

impl Certs {
    fn new() -> Certs {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, IsCa,
            KeyPair, KeyUsagePurpose, SanType,
        };
        let dir = tempfile::tempdir().unwrap();
        let mut ca = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "bench test ca");
        ca.distinguished_name = dn;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let issuer = CertifiedIssuer::self_signed(ca, ca_key).unwrap();
        let mut leaf = CertificateParams::default();
        leaf.subject_alt_names = vec![SanType::IpAddress("127.0.0.1".parse().unwrap())];
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = leaf.signed_by(&key, &issuer).unwrap();
        std::fs::write(dir.path().join("ca.crt"), issuer.pem()).unwrap();
        std::fs::write(dir.path().join("server.crt"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("server.key"), key.serialize_pem()).unwrap();
        Certs { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

/// Serves only KV over TLS (and only TLS) on 127.0.0.1, with the server certificate.
async fn serve_tls(certs: &Certs) -> (SocketAddr, Arc<Mutex<Seen>>) {
    use oxetcd_tls::{ListenAddr, Listener, ServerTls, TlsInfo, TlsOptions};
    let info = TlsInfo {
        cert_file: Some(certs.path("server.crt").into()),
        key_file: Some(certs.path("server.key").into()),
        ..TlsInfo::default()
    };
    let tls = ServerTls::new(&info, &TlsOptions::default(), certs.dir.path(), &[]).unwrap();
    let listener =
        Listener::bind(&ListenAddr::Tcp("127.0.0.1:0".parse().unwrap()), false, Some(tls))
            .await
            .unwrap();
    let addr = listener.local_addr().unwrap();
    let stub = StubKv::default();
    let seen = stub.0.clone();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(KvServer::new(stub))
            .serve_with_incoming(listener.into_incoming()),
    );
    (addr, seen)
}

#[tokio::test]
async fn https_endpoints_with_cacert() {
    let certs = Certs::new();
    let (addr, seen) = serve_tls(&certs).await;
    let ca = certs.path("ca.crt");
    let https = format!("https://{addr}");
    let report = json(
        &bench_at(&https, &["--cacert", &ca, "--conns=2", "--total=7", "--json", "put"]).await,
    );
    assert_eq!(report["ok"].as_u64(), Some(7));
    // A bare endpoint is dialed with TLS when a TLS flag is given, as etcd's clients do.
    let report = json(&bench(addr, &["--total=3", "--json", "range", "k", "--cacert", &ca]).await);
    assert_eq!(report["ok"].as_u64(), Some(3));
    let seen = seen.lock().unwrap();
    assert_eq!((seen.puts.len(), seen.ranges.len()), (7, 3));
}

#[tokio::test]
async fn https_endpoints_with_insecure_skip_tls_verify() {
    let certs = Certs::new();
    let (addr, seen) = serve_tls(&certs).await;
    let https = format!("https://{addr}");
    let report = json(
        &bench_at(&https, &["--insecure-skip-tls-verify", "--total=4", "--json", "put"]).await,
    );
    assert_eq!(report["ok"].as_u64(), Some(4));
    assert_eq!(seen.lock().unwrap().puts.len(), 4);
}

#[tokio::test]
async fn https_refusals_are_explained() {
    let certs = Certs::new();
    let (addr, _) = serve_tls(&certs).await;
    let https = format!("https://{addr}");
    let stderr = |out: Output| {
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    // No TLS flag for an https endpoint.
    let err = stderr(bench_at(&https, &["--total=1", "put"]).await);
    assert!(err.contains("give --cacert"), "{err}");
    // A CA that did not sign the server's certificate.
    let other = Certs::new();
    let err = stderr(
        bench_at(&https, &["--dial-timeout=3", "--cacert", &other.path("ca.crt"), "put"]).await,
    );
    assert!(err.contains(&format!("cannot connect to {https}")), "{err}");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    // Plaintext to a TLS-only port: the connection is refused at connect or at every
    // request (the TLS listener drops a client that does not start a handshake).
    let err = stderr(bench(addr, &["--dial-timeout=3", "--total=3", "put"]).await);
    assert!(
        err.contains(&format!("cannot connect to http://{addr}"))
            || err.contains("every request failed"),
        "{err}"
    );
}
