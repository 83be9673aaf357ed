//! The two floor measurements: `floor` (an fdatasync and a loopback round trip, no
//! server) and `floor-server` (a gRPC server that syncs one record per put and serves
//! nothing else), each run as the binary is run by bench/compare.sh.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_oxetcd-bench")).args(args).output().unwrap()
}

fn json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "bench failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

/// A floor server on a port of the kernel's choosing; killed when dropped.
struct FloorServer {
    child: Child,
    addr: String,
}

impl FloorServer {
    fn start(dir: &std::path::Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_oxetcd-bench"))
            .args(["floor-server", "--listen", "127.0.0.1:0", "--dir"])
            .arg(dir)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // It says where it listens once it does.
        let mut line = String::new();
        BufReader::new(child.stderr.take().unwrap()).read_line(&mut line).unwrap();
        let addr = line.trim().rsplit(' ').next().unwrap().to_string();
        assert!(line.contains("serving KV.Put on 127.0.0.1:"), "{line}");
        Self { child, addr }
    }
}

impl Drop for FloorServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_floor_server_answers_every_put_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let server = FloorServer::start(dir.path());
    let put = bench(&[
        "--endpoints",
        &server.addr,
        "--total",
        "40",
        "--json",
        "put",
        "--val-size",
        "256",
    ]);
    let report = json(&put);
    assert_eq!(report["ok"], 40, "{report}");
    assert_eq!(report["errors_total"], 0, "{report}");

    let range = bench(&["--endpoints", &server.addr, "--total", "3", "--json", "range", "k"]);
    assert!(!range.status.success(), "a range was answered by a server of puts only");
    assert!(String::from_utf8_lossy(&range.stderr).contains("does not serve KV.Range"));
    // Its synced file is scratch: nothing is left in the directory.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn the_floor_server_refuses_an_address_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let server = FloorServer::start(dir.path());
    let out =
        bench(&["floor-server", "--listen", &server.addr, "--dir", dir.path().to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("listening on {}", server.addr))
    );
}

#[test]
fn the_floor_reports_its_two_parts() {
    let dir = tempfile::tempdir().unwrap();
    let report =
        json(&bench(&["--total", "20", "--json", "floor", "--dir", dir.path().to_str().unwrap()]));
    let phases: Vec<_> = report["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["workload"].as_str().unwrap())
        .collect();
    assert_eq!(phases, ["fdatasync", "round-trip"]);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
