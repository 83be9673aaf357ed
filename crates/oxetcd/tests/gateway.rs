//! `oxetcd gateway start` as etcd's e2e `TestGateway` runs it, and more: a client talks
//! to a member through the gateway (a dead endpoint listed first is left out), SIGTERM
//! stops the gateway with status 0, and bad flags exit 1 with etcd's messages.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use support::{MemberConfig, Process, START_TIMEOUT, free_ports, member_client, poll_until};

fn gateway(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_oxetcd"));
    command.args(["gateway", "start"]).args(args).stdin(Stdio::null());
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_reaches_the_cluster_through_the_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let config = MemberConfig::single(dir.path(), "gw");
    let _member = Process::start(&config).await;
    let [dead, listen] = free_ports(2)[..] else { unreachable!() };
    let endpoints = format!("127.0.0.1:{dead},{}", config.client_url);
    let listen_addr = format!("127.0.0.1:{listen}");
    let log = dir.path().join("gateway.log");
    let mut child = gateway(&["--endpoints", &endpoints, "--listen-addr", &listen_addr])
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    poll_until("the gateway's ready line", START_TIMEOUT, async || {
        read_log().contains("ready to proxy client requests").then_some(())
    })
    .await;

    let client = member_client(&format!("http://{listen_addr}"), Some(Duration::from_secs(5)))
        .await
        .unwrap();
    for i in 0..3 {
        client.put(format!("k{i}"), "through the gateway", None).await.unwrap();
    }
    let got = client.get("k2", None).await.unwrap();
    assert_eq!(got.kvs[0].value, "through the gateway");
    let log_text = read_log();
    assert!(log_text.contains("deactivated endpoint"), "{log_text}");
    assert!(log_text.contains(&format!("127.0.0.1:{dead}")), "{log_text}");

    let sent = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(sent.success());
    let status =
        poll_until("the gateway to stop", START_TIMEOUT, async || child.try_wait().unwrap()).await;
    assert!(status.success(), "{status:?}: {}", read_log());
}

#[test]
fn bad_flags_exit_1_with_etcds_messages() {
    let run = |args: &[&str]| {
        let out = gateway(args).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, stderr) = run(&["--endpoints", "127.0.0.1"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("error parsing endpoint \"127.0.0.1\""), "{stderr}");
    let (code, stderr) =
        run(&["--listen-addr", "127.0.0.1:23790", "--endpoints", "localhost:23790"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("should not resolve to the gateway listen addr"), "{stderr}");
    let (code, stderr) = run(&["--discovery-srv", "example.com"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("not built yet"), "{stderr}");
    let (code, _) = run(&["--no-such-flag"]);
    assert_eq!(code, Some(1));
}
