//! PING acknowledgements on the client port. The server holds one for the next response
//! while requests are in flight (src/coalesce.rs), so that etcd's Go client, which sends
//! a PING with a request after each response, costs one write per request, not two;
//! a client's keepalive must still have its answer promptly. Spoken with h2's own client
//! to a member process, whose test build has failpoints to keep a request in flight.

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use oxetcd_api::etcdserverpb::PutRequest;
use prost::Message as _;
use support::{MemberConfig, Process};
use tokio::net::TcpStream;

/// The server's hold (`PING_ACK_HOLD` in src/coalesce.rs).
const HOLD: Duration = Duration::from_millis(200);

/// How long the failpoint keeps the put in flight: far longer than the hold.
const STUCK: Duration = Duration::from_secs(3);

/// An HTTP/2 connection to `process`'s client port, driven in the background.
async fn connect(process: &Process) -> (h2::client::SendRequest<Bytes>, h2::PingPong) {
    let address = process.endpoint().trim_start_matches("http://");
    let tcp = TcpStream::connect(address).await.unwrap();
    let (send, mut connection) = h2::client::handshake(tcp).await.unwrap();
    let ping_pong = connection.ping_pong().expect("the connection's ping handle");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    (send, ping_pong)
}

/// How long the server takes to acknowledge a PING (at most 10 s).
async fn ping(ping_pong: &mut h2::PingPong) -> Duration {
    let sent = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), ping_pong.ping(h2::Ping::opaque()))
        .await
        .expect("no acknowledgement of the PING within 10 s")
        .expect("the PING's acknowledgement");
    sent.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connections_ping_is_acknowledged_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let process = Process::start(&MemberConfig::single(dir.path(), "pings")).await;
    let (_send, mut ping_pong) = connect(&process).await;
    let mut fastest = Duration::MAX;
    for _ in 0..5 {
        fastest = fastest.min(ping(&mut ping_pong).await);
    }
    // Held until the hold's end, every acknowledgement would take at least `HOLD`.
    assert!(fastest < HOLD / 2, "the fastest of 5 PINGs took {fastest:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_is_acknowledged_within_the_hold_while_a_request_is_stuck() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = MemberConfig::single(dir.path(), "pings");
    // Starting up writes nothing to the key space: only the client's put sleeps.
    let stuck = format!("apply::store-write=sleep({})", STUCK.as_millis());
    config.env.push(("FAILPOINTS".into(), stuck));
    let process = Process::start(&config).await;
    let (mut send, mut ping_pong) = connect(&process).await;

    let put = PutRequest {
        key: Bytes::from_static(b"k"),
        value: Bytes::from_static(b"v"),
        ..Default::default()
    };
    let message = put.encode_to_vec();
    let mut body = vec![0];
    body.extend(u32::try_from(message.len()).unwrap().to_be_bytes());
    body.extend(message);
    let request = http::Request::post(format!("{}/etcdserverpb.KV/Put", process.endpoint()))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    let sent = Instant::now();
    let (response, mut stream) = send.send_request(request, false).unwrap();
    stream.send_data(body.into(), true).unwrap();
    // The put is surely in flight by then, waiting on the failpoint.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let acknowledged = ping(&mut ping_pong).await;
    assert!(
        acknowledged < HOLD + Duration::from_millis(800),
        "the PING took {acknowledged:?} with a request in flight"
    );
    let response = response.await.expect("the put's response");
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    while let Some(data) = body.data().await {
        data.unwrap();
    }
    let trailers = body.trailers().await.unwrap().expect("gRPC's trailers");
    assert_eq!(trailers.get("grpc-status").map(|v| v.as_bytes()), Some(&b"0"[..]));
    assert!(sent.elapsed() >= STUCK, "the put was not held up by the failpoint");
}
