//! oxetcd members run in this process, on 127.0.0.1 ports the OS picks, each with
//! its own temporary data dir.

use clap::Parser;
use oxetcd_server::config::{Flags, ServerConfig};
use oxetcd_server::embed::Member;

/// A single-member cluster in a temp dir; closed and removed on [`TestMember::close`].
pub struct TestMember {
    pub member: Member,
    pub endpoint: String,
    pub dir: tempfile::TempDir,
}

/// The configuration of a single member on a free port, in `dir`.
pub fn single_member_config(dir: &std::path::Path, extra: &[&str]) -> ServerConfig {
    let peer = "http://127.0.0.1:2380";
    let mut args: Vec<String> = [
        "oxetcd",
        "--name",
        "test",
        "--listen-client-urls",
        "http://127.0.0.1:0",
        "--advertise-client-urls",
        "http://127.0.0.1:2379",
        "--initial-advertise-peer-urls",
        peer,
        "--initial-cluster",
        &format!("test={peer}"),
        "--data-dir",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(dir.join("data").display().to_string());
    args.extend(extra.iter().map(|s| s.to_string()));
    Flags::try_parse_from(args)
        .expect("test flags parse")
        .into_config()
        .expect("test flags are valid")
}

impl TestMember {
    pub async fn start(extra: &[&str]) -> TestMember {
        let dir = tempfile::tempdir().expect("temp dir");
        TestMember::start_in(dir, extra).await
    }

    /// Starts (or restarts) a member on the data dir inside `dir`.
    pub async fn start_in(dir: tempfile::TempDir, extra: &[&str]) -> TestMember {
        let member =
            Member::start(single_member_config(dir.path(), extra)).await.expect("member starts");
        let endpoint = format!("http://{}", member.client_addrs[0]);
        TestMember { member, endpoint, dir }
    }

    /// Stops the member, keeping its data dir.
    pub async fn stop(self) -> tempfile::TempDir {
        self.member.close().await;
        self.dir
    }
}
