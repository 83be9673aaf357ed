//! The JSON gateway over WebSocket, side by side: the same session (`websocket.rs`:
//! unary calls, a watch, lease keep-alives, bad bodies, a token as a subprotocol, bad
//! handshakes) against etcd 3.4.23 and against oxetcd must print the same transcript.

use oxetcd_tests::member::TestMember;
use oxetcd_tests::reference::ReferenceEtcd;
use oxetcd_tests::websocket::session;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_session_goes_as_against_etcd() {
    let etcd = ReferenceEtcd::start().await;
    let expected = session(&etcd.endpoint).await;
    drop(etcd);
    println!("etcd 3.4.23:\n{}", expected.join("\n"));
    assert!(expected.iter().any(|line| line.contains("\"canceled\":true")), "the session ran");

    let member = TestMember::start(&[]).await;
    let got = session(&member.endpoint).await;
    member.stop().await;
    assert_eq!(got.join("\n"), expected.join("\n"), "oxetcd's transcript differs from etcd's");
}
