//! The proxy on loopback: connections reach the endpoints in turn, a refusing endpoint is
//! left out, then brought back by the monitor once it answers again.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

/// An endpoint that answers every connection with its `name`, then closes it.
async fn endpoint(name: &'static str) -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    (addr, answer_on(listener, name))
}

fn answer_on(listener: TcpListener, name: &'static str) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let mut request = [0u8; 4];
            if conn.read_exact(&mut request).await.is_ok() {
                let _ = conn.write_all(name.as_bytes()).await;
            }
        }
    })
}

/// A free port nobody listens on.
async fn closed_port() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().to_string()
}

async fn start(endpoints: Vec<String>, retry_delay: Duration) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(TcpProxy::new(endpoints, retry_delay).run(listener));
    addr
}

/// Who answered a connection through the proxy ("" if it was closed unanswered).
async fn ask(proxy: &str) -> String {
    let mut conn = TcpStream::connect(proxy).await.unwrap();
    let mut answer = String::new();
    if conn.write_all(b"ping").await.is_ok() {
        let _ = conn.read_to_string(&mut answer).await;
    }
    answer
}

#[tokio::test]
async fn connections_go_to_the_endpoints_in_turn() {
    let (a, _a) = endpoint("a").await;
    let (b, _b) = endpoint("b").await;
    let proxy = start(vec![a, b], Duration::from_secs(60)).await;
    let mut answers = Vec::new();
    for _ in 0..4 {
        answers.push(ask(&proxy).await);
    }
    assert_eq!(answers, ["a", "b", "a", "b"]);
}

#[tokio::test]
async fn a_refusing_endpoint_is_left_out_until_it_answers_again() {
    let down = closed_port().await;
    let (up, _up) = endpoint("up").await;
    let proxy = start(vec![down.clone(), up], Duration::from_millis(200)).await;
    // The first connection meets the refusal and goes on to the next endpoint.
    for _ in 0..3 {
        assert_eq!(ask(&proxy).await, "up");
    }
    // The endpoint comes up; the monitor brings it back within a retry delay or two.
    let answering = answer_on(TcpListener::bind(&down).await.unwrap(), "back");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut answers = Vec::new();
    while !answers.iter().any(|a| a == "back") {
        assert!(tokio::time::Instant::now() < deadline, "never back: {answers:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
        answers.push(ask(&proxy).await);
    }
    answering.abort();
}

#[tokio::test]
async fn with_every_endpoint_down_a_connection_is_closed() {
    let proxy = start(vec![closed_port().await], Duration::from_secs(60)).await;
    assert_eq!(ask(&proxy).await, "");
}
