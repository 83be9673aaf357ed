//! Running the real etcdctl 3.4 against a server, and normalizing what it prints so
//! that the answers of two servers (the reference etcd and oxetcd) can be compared
//! line by line.
//!
//! etcdctl is given endpoints without a scheme (`127.0.0.1:PORT`), or, for the
//! scenarios that check it, as URLs (`http://127.0.0.1:PORT`): with a URL, etcdctl
//! 3.4's `endpoint status` / `endpoint hashkv` / `defrag` send a gRPC `:authority` that
//! still holds the scheme, which oxetcd accepts only through its patched h2
//! (third_party/h2/OXETCD-PATCH.md).
//!
//! Normalization replaces only what legitimately differs between two servers: cluster
//! and member ids (decimal and hex), member names, peer and client URLs, endpoints,
//! the server version, non-zero raft terms, db sizes, timings, log timestamps, the
//! client's random target name, and lease ids (random: each becomes `<LEASE_n>`, n
//! counting the leases in the order their grants appear). Everything else (revisions,
//! values, counts, `more`, error messages, exit codes, zero fields, field presence) is
//! compared as printed.
//!
//! Over TLS ([`SideBySide::tls`]), both servers get the same client-side TLS flags
//! ([`ServerTlsFlags`], with etcd's own test certificates) and etcdctl the same
//! `--cacert`/`--cert`/`--key` or `--insecure-skip-tls-verify` ([`EtcdctlTls`]), for a
//! whole target or for one step ([`Step::with_tls`]), with `https://` endpoints.
//!
//! Steps refer to the leases granted before them as `{L1}`, `{L2}`, …: each target
//! runs the step with its own ids there. Commands that do not end by themselves
//! (`watch`, `lease keep-alive`) are stopped once they printed a given number of lines,
//! and may run in the background of the steps after them.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oxetcd_api::etcdserverpb::Member;
use oxetcd_client::{Client, ClientOptions};
use oxetcd_tls::ClientTls;

use crate::member::{TestMember, free_port, init_test_logs};
use crate::reference::{Harness, ReferenceEtcd, ServerTlsFlags, ServerUrls, fixture};

/// Environment variable that names the etcdctl binary when it is not `etcdctl` on `PATH`.
pub const ETCDCTL_BIN_VAR: &str = "OXETCD_REFERENCE_ETCDCTL";

/// Set this environment variable to print every normalized transcript (with
/// `--nocapture`), to see what a scenario compares.
pub const SHOW_VAR: &str = "OXETCD_ETCDCTL_SHOW";

/// How long one etcdctl run may take before it is killed and the test fails.
const RUN_TIMEOUT: Duration = Duration::from_secs(30);

/// The placeholder for a masked table or simple-output column.
const MASKED: &str = "<MASKED>";

/// One etcdctl invocation: its arguments (after `--endpoints`), what it reads on
/// stdin, and which columns of its simple/table rows hold values that legitimately
/// differ between servers (db size, human-readable timings).
#[derive(Clone, Debug)]
pub struct Step {
    pub args: Vec<String>,
    pub stdin: Option<Vec<u8>>,
    pub masked_columns: Vec<usize>,
    /// Field prefixes (e.g. `"raftIndex":`) whose numbers are masked in this step.
    pub masked_numbers: Vec<String>,
    /// Prefixes inside JSON strings (e.g. `latest balancer error: `) after which the
    /// rest of the string is masked in this step.
    pub masked_strings: Vec<String>,
    /// Whether etcdctl is expected to fail (exit non-zero) against the reference etcd;
    /// checked so that a scenario cannot silently compare two identical usage errors.
    pub expect_failure: bool,
    /// For a command that does not end by itself: stop it once its stdout holds this
    /// many lines (and a short grace period showed nothing more). Its stdin stays open
    /// until then, so an interactive command does not see the end of its input.
    pub stop_after_lines: Option<usize>,
    /// Run beside the steps that follow; they start once its stdout holds this text
    /// (at once if empty). Its transcript keeps its place among the steps.
    pub background: Option<String>,
    /// etcdctl's TLS flags for this step, instead of its target's.
    pub tls: Option<EtcdctlTls>,
    /// The program to run instead of etcdctl (oxetcdctl, in the side-by-side test).
    pub bin: Option<PathBuf>,
}

impl Step {
    /// A step from explicit arguments (for arguments holding spaces).
    pub fn args<S: AsRef<str>>(args: &[S]) -> Step {
        Step {
            args: args.iter().map(|a| a.as_ref().to_string()).collect(),
            stdin: None,
            masked_columns: Vec::new(),
            masked_numbers: Vec::new(),
            masked_strings: Vec::new(),
            expect_failure: false,
            stop_after_lines: None,
            background: None,
            tls: None,
            bin: None,
        }
    }

    /// The same step, run by `bin` (an etcdctl stand-in) instead of etcdctl.
    pub fn with_bin(mut self, bin: &Path) -> Step {
        self.bin = Some(bin.to_path_buf());
        self
    }

    /// A step from a command line split on whitespace: `Step::line("get --prefix foo")`.
    pub fn line(command: &str) -> Step {
        Step::args(&command.split_whitespace().collect::<Vec<_>>())
    }

    /// The step with `input` on etcdctl's stdin.
    pub fn stdin(mut self, input: impl Into<Vec<u8>>) -> Step {
        self.stdin = Some(input.into());
        self
    }

    /// The step with the given 0-based columns of table / comma-separated rows masked.
    pub fn mask_columns(mut self, columns: &[usize]) -> Step {
        self.masked_columns = columns.to_vec();
        self
    }

    /// The step with the number after each of `prefixes` masked.
    pub fn mask_numbers_after(mut self, prefixes: &[&str]) -> Step {
        self.masked_numbers.extend(prefixes.iter().map(|p| p.to_string()));
        self
    }

    /// The step with the rest of the JSON string after each of `prefixes` masked (for
    /// text that varies from run to run, as the last connection error gRPC saw).
    pub fn mask_strings_after(mut self, prefixes: &[&str]) -> Step {
        self.masked_strings.extend(prefixes.iter().map(|p| p.to_string()));
        self
    }

    /// The step, expected to fail.
    pub fn fails(mut self) -> Step {
        self.expect_failure = true;
        self
    }

    /// The step, stopped once its stdout has `lines` lines.
    pub fn stop_after(mut self, lines: usize) -> Step {
        self.stop_after_lines = Some(lines);
        self
    }

    /// The step, run beside the following ones, which wait until its stdout shows
    /// `ready_when` (e.g. a watch's first line), or start at once if it is empty.
    pub fn in_background(mut self, ready_when: &str) -> Step {
        self.background = Some(ready_when.to_string());
        self
    }

    /// The step, run with etcdctl's TLS flags `tls` instead of its target's.
    pub fn with_tls(mut self, tls: EtcdctlTls) -> Step {
        self.tls = Some(tls);
        self
    }

    /// The step with `{L1}`, `{L2}`, … replaced by the ids (in hex, as etcdctl takes
    /// them) of the leases granted so far.
    fn with_leases(&self, leases: &[i64]) -> Step {
        let fill = |text: &str| {
            let mut text = text.to_string();
            for (i, id) in leases.iter().enumerate().rev() {
                text = text.replace(&format!("{{L{}}}", i + 1), &format!("{id:016x}"));
            }
            text
        };
        let mut step = self.clone();
        step.args = step.args.iter().map(|a| fill(a)).collect();
        step.stdin = step.stdin.map(|input| fill(&String::from_utf8_lossy(&input)).into_bytes());
        step
    }

    /// Panics unless `output` succeeded or failed as this step expects.
    pub fn check_expectation(&self, server: &str, output: &Output) {
        let failed = output.code != Some(0) && !output.stopped;
        assert_eq!(
            failed,
            self.expect_failure,
            "{}: expected it to {} against {server}, but it exited with {:?}\nstdout:\n{}\nstderr:\n{}",
            self.describe(),
            if self.expect_failure { "fail" } else { "succeed" },
            output.code,
            output.stdout,
            output.stderr
        );
    }

    /// How the step reads in a transcript (TLS flags of its own with file names only:
    /// both servers' runs use the same files).
    pub fn describe(&self) -> String {
        let mut text = "$ etcdctl ".to_string();
        if let Some(tls) = &self.tls {
            let _ = write!(text, "{} ", tls.describe());
        }
        text.push_str(&self.args.join(" "));
        match &self.stdin {
            Some(input) if input.len() <= 400 => {
                let _ = write!(text, " <<EOF\n{}EOF", String::from_utf8_lossy(input));
            }
            Some(input) => {
                let _ = write!(text, " <<({} bytes on stdin)", input.len());
            }
            None => {}
        }
        if let Some(lines) = self.stop_after_lines {
            let _ = write!(text, "  (stopped after {lines} lines)");
        }
        text
    }
}

/// The stdin of an interactive `etcdctl txn`: compares, a blank line, the success
/// operations, a blank line, the failure operations, a blank line.
pub fn txn_input(compares: &[&str], success: &[&str], failure: &[&str]) -> String {
    let mut input = String::new();
    for block in [compares, success, failure] {
        for line in block {
            input.push_str(line);
            input.push('\n');
        }
        input.push('\n');
    }
    input
}

/// etcdctl's TLS flags: `--cacert`, `--cert`, `--key`, and
/// `--insecure-transport=false --insecure-skip-tls-verify` (etcdctl 3.4 applies
/// `--insecure-skip-tls-verify` only when it builds a TLS configuration, which, with no
/// certificate files, `--insecure-transport=false` asks for). The default is none:
/// plaintext, unless an endpoint says `https://`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EtcdctlTls {
    pub cacert: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub insecure_skip_tls_verify: bool,
}

impl EtcdctlTls {
    /// No TLS flags.
    pub fn none() -> EtcdctlTls {
        EtcdctlTls::default()
    }

    /// `--cacert <fixture>`: servers verified against one of etcd's test CAs.
    pub fn cacert(ca: &str) -> EtcdctlTls {
        EtcdctlTls { cacert: Some(fixture(ca)), ..EtcdctlTls::default() }
    }

    /// `--insecure-transport=false --insecure-skip-tls-verify`: TLS, servers unverified.
    pub fn insecure_skip_tls_verify() -> EtcdctlTls {
        EtcdctlTls { insecure_skip_tls_verify: true, ..EtcdctlTls::default() }
    }

    /// With `--cert <name>.crt --key <name>.key.insecure` from etcd's fixtures.
    pub fn client_cert(mut self, name: &str) -> EtcdctlTls {
        self.cert = Some(fixture(&format!("{name}.crt")));
        self.key = Some(fixture(&format!("{name}.key.insecure")));
        self
    }

    /// The flags, with `show` writing each file.
    fn flags(&self, show: impl Fn(&Path) -> String) -> Vec<String> {
        let mut flags = Vec::new();
        for (flag, path) in
            [("--cacert", &self.cacert), ("--cert", &self.cert), ("--key", &self.key)]
        {
            if let Some(path) = path {
                flags.push(format!("{flag}={}", show(path)));
            }
        }
        if self.insecure_skip_tls_verify {
            flags.push("--insecure-transport=false".to_string());
            flags.push("--insecure-skip-tls-verify".to_string());
        }
        flags
    }

    /// The arguments etcdctl gets.
    pub fn args(&self) -> Vec<String> {
        self.flags(|path| path.display().to_string())
    }

    /// The flags with file names only, for transcripts; `(no TLS flags)` if none.
    pub fn describe(&self) -> String {
        let name = |path: &Path| {
            path.file_name()
                .map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into())
        };
        let flags = self.flags(name);
        if flags.is_empty() { "(no TLS flags)".to_string() } else { flags.join(" ") }
    }
}

/// What one etcdctl run did.
#[derive(Clone, Debug)]
pub struct Output {
    /// The exit code; `None` if etcdctl died of a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// The run was stopped as its step asked ([`Step::stop_after`]).
    pub stopped: bool,
}

/// The etcdctl binary to run.
pub fn etcdctl_bin() -> String {
    std::env::var(ETCDCTL_BIN_VAR).unwrap_or_else(|_| "etcdctl".to_string())
}

/// `http://127.0.0.1:PORT` → `127.0.0.1:PORT` (see the module docs).
pub fn scheme_less(endpoint: &str) -> String {
    endpoint
        .strip_prefix("http://")
        .or_else(|| endpoint.strip_prefix("https://"))
        .unwrap_or(endpoint)
        .to_string()
}

/// How long a stopped command gets, after printing the lines it was waited for, to
/// show anything it should not print.
const STOP_GRACE: Duration = Duration::from_millis(300);

/// Runs `etcdctl --endpoints <endpoints> <step>` with `ETCDCTL_API=3`, blocking, and
/// kills it (failing the test) if it runs longer than [`RUN_TIMEOUT`]. Panics, saying
/// how to get it, when etcdctl cannot be run: the compatibility suite never skips.
/// `ready` hears once the output shows the step's background readiness text.
pub fn run_blocking(
    endpoints: &str,
    step: &Step,
    ready: Option<std::sync::mpsc::Sender<()>>,
) -> Output {
    let bin = match &step.bin {
        Some(bin) => bin.display().to_string(),
        None => etcdctl_bin(),
    };
    // Output goes to files, so a chatty etcdctl never blocks on a full pipe.
    let dir = tempfile::tempdir().expect("temp dir for an etcdctl run");
    let stdout_path = dir.path().join("stdout");
    let stderr_path = dir.path().join("stderr");
    let stdin = match &step.stdin {
        // Written through a pipe kept open while the command runs.
        _ if step.stop_after_lines.is_some() => Stdio::piped(),
        Some(input) => {
            let path = dir.path().join("stdin");
            std::fs::write(&path, input).expect("write etcdctl's stdin");
            Stdio::from(std::fs::File::open(&path).expect("open etcdctl's stdin"))
        }
        None => Stdio::null(),
    };
    let mut command = Command::new(&bin);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("ETCDCTL_") {
            command.env_remove(name);
        }
    }
    let mut child = command
        .env("ETCDCTL_API", "3")
        .arg("--endpoints")
        .arg(endpoints)
        .args(&step.args)
        .stdin(stdin)
        .stdout(std::fs::File::create(&stdout_path).expect("etcdctl stdout file"))
        .stderr(std::fs::File::create(&stderr_path).expect("etcdctl stderr file"))
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run etcdctl `{bin}`: {e}. The compatibility suite needs etcdctl 3.4.23: \
                 run scripts/compat.sh (it installs Debian's etcd-client), or set \
                 {ETCDCTL_BIN_VAR} to the etcdctl binary"
            )
        });
    // Dropped (closing etcdctl's stdin) only once the command ends.
    let _stdin = child.stdin.take().map(|mut pipe| {
        use std::io::Write as _;
        pipe.write_all(step.stdin.as_deref().unwrap_or_default()).expect("write etcdctl's stdin");
        pipe
    });
    let mut ready = ready.filter(|_| step.background.as_ref().is_some_and(|t| !t.is_empty()));
    let deadline = Instant::now() + RUN_TIMEOUT;
    let mut stopped = false;
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll etcdctl") {
            break status;
        }
        if ready.is_some() || step.stop_after_lines.is_some() {
            let stdout = read_lossy(&stdout_path);
            if let Some(text) = step.background.as_deref()
                && stdout.contains(text)
                && let Some(ready) = ready.take()
            {
                let _ = ready.send(());
            }
            if step.stop_after_lines.is_some_and(|lines| stdout.lines().count() >= lines) {
                std::thread::sleep(STOP_GRACE);
                let _ = child.kill();
                stopped = true;
                break child.wait().expect("reap etcdctl");
            }
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "etcdctl ran longer than {RUN_TIMEOUT:?} against {endpoints}: {}\nstdout:\n{}\nstderr:\n{}",
                step.describe(),
                read_lossy(&stdout_path),
                read_lossy(&stderr_path)
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Output {
        code: status.code(),
        stdout: read_lossy(&stdout_path),
        stderr: read_lossy(&stderr_path),
        stopped,
    }
}

fn read_lossy(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}

/// [`run_blocking`] on tokio's blocking pool, so in-process servers keep running.
pub async fn run(endpoints: &str, step: &Step) -> Output {
    spawn_run(endpoints, step, None).await.expect("the etcdctl runner panicked")
}

fn spawn_run(
    endpoints: &str,
    step: &Step,
    ready: Option<std::sync::mpsc::Sender<()>>,
) -> tokio::task::JoinHandle<Output> {
    let endpoints = endpoints.to_string();
    let step = step.clone();
    tokio::task::spawn_blocking(move || run_blocking(&endpoints, &step, ready))
}

/// The id of the lease a `lease grant` step granted, from its output in any format.
fn granted_lease(step: &Step, output: &Output) -> Option<i64> {
    if step.args.first().map(String::as_str) != Some("lease")
        || step.args.get(1).map(String::as_str) != Some("grant")
    {
        return None;
    }
    let text = &output.stdout;
    if let Some(rest) = text.strip_prefix("lease ") {
        let hex: String = rest.chars().take_while(char::is_ascii_hexdigit).collect();
        return i64::from_str_radix(&hex, 16).ok();
    }
    ["\"ID\":", "\"ID\" : "].iter().find_map(|prefix| {
        let rest = &text[text.find(prefix)? + prefix.len()..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    })
}

/// A server as etcdctl sees it, with what its answers may legitimately differ in.
#[derive(Clone, Debug)]
pub struct Target {
    /// Comma-separated endpoints, as given to `--endpoints` (scheme-less unless
    /// [`Target::with_url_endpoints`]).
    pub endpoints: String,
    pub cluster_id: u64,
    /// Members in MemberList order.
    pub members: Vec<Member>,
    /// The version each endpoint's Status reports (e.g. `3.4.23`).
    pub versions: Vec<String>,
    /// The endpoints, in order.
    pub endpoint_list: Vec<String>,
    /// etcdctl's TLS flags for every step (unless a step has its own).
    pub etcdctl_tls: EtcdctlTls,
}

impl Target {
    /// Learns, through the gRPC API, the ids, names, URLs and versions of the server
    /// or cluster behind `endpoint_urls` (`http://host:port` each).
    pub async fn connect(endpoint_urls: &[String]) -> Target {
        Target::connect_with(endpoint_urls, None).await
    }

    /// [`Target::connect`] to a single server whose client URL is `endpoint_url`,
    /// learning its ids through `harness`.
    pub async fn connect_via(endpoint_url: &str, harness: &Harness) -> Target {
        let target = Target::connect_with(std::slice::from_ref(&harness.url), harness.tls.as_ref());
        let mut target = target.await;
        target.endpoint_list = vec![scheme_less(endpoint_url)];
        target.endpoints = target.endpoint_list.join(",");
        target
    }

    /// [`Target::connect`], dialing `https://` URLs with `tls`.
    pub async fn connect_with(endpoint_urls: &[String], tls: Option<&ClientTls>) -> Target {
        let options = match tls {
            Some(tls) => ClientOptions::default().with_tls(tls.config()),
            None => ClientOptions::default(),
        };
        // One client per endpoint: each Status must come from that endpoint.
        let connect = async |url: &String| {
            Client::connect([url], options.clone())
                .await
                .unwrap_or_else(|e| panic!("connect to {url}: {e}"))
        };
        let first = endpoint_urls.first().expect("at least one endpoint");
        let list = connect(first)
            .await
            .cluster()
            .member_list()
            .await
            .unwrap_or_else(|e| panic!("MemberList on {first}: {e}"));
        let cluster_id = list.header.as_ref().map_or(0, |h| h.cluster_id);
        let mut versions = Vec::new();
        for url in endpoint_urls {
            let status = connect(url)
                .await
                .maintenance()
                .status()
                .await
                .unwrap_or_else(|e| panic!("Status on {url}: {e}"));
            versions.push(status.version);
        }
        let endpoint_list: Vec<String> = endpoint_urls.iter().map(|u| scheme_less(u)).collect();
        Target {
            endpoints: endpoint_list.join(","),
            cluster_id,
            members: list.members,
            versions,
            endpoint_list,
            etcdctl_tls: EtcdctlTls::none(),
        }
    }

    /// The same server, with etcdctl given the endpoints as `http://` URLs, as users
    /// write them.
    pub fn with_url_endpoints(self) -> Target {
        self.with_endpoint_scheme("http")
    }

    /// The same server, with etcdctl given the endpoints as `<scheme>://` URLs.
    pub fn with_endpoint_scheme(mut self, scheme: &str) -> Target {
        self.endpoint_list =
            self.endpoint_list.iter().map(|e| format!("{scheme}://{}", scheme_less(e))).collect();
        self.endpoints = self.endpoint_list.join(",");
        self
    }

    /// The same server, with etcdctl given `tls` for every step without TLS flags of its
    /// own.
    pub fn with_etcdctl_tls(mut self, tls: EtcdctlTls) -> Target {
        self.etcdctl_tls = tls;
        self
    }

    /// `step` as etcdctl runs it here: its TLS flags (or the target's) before its
    /// arguments.
    fn with_tls_args(&self, step: &Step) -> Step {
        let tls = step.tls.as_ref().unwrap_or(&self.etcdctl_tls);
        let mut step = step.clone();
        step.args = tls.args().into_iter().chain(step.args).collect();
        step
    }

    /// Runs one step against this target.
    pub async fn run(&self, step: &Step) -> Output {
        run(&self.endpoints, &self.with_tls_args(step)).await
    }

    /// Runs the steps in order (background steps beside the ones after them); returns
    /// each one's output and normalized transcript.
    pub async fn run_all(&self, steps: &[Step]) -> Vec<(Output, String)> {
        enum Run {
            Done(Output),
            Background(tokio::task::JoinHandle<Output>),
        }
        let mut leases = Vec::new();
        let mut runs = Vec::with_capacity(steps.len());
        for step in steps {
            let concrete = step.with_leases(&leases);
            let Some(ready_when) = &step.background else {
                let output = self.run(&concrete).await;
                leases.extend(granted_lease(&concrete, &output));
                runs.push(Run::Done(output));
                continue;
            };
            let (ready, is_ready) = std::sync::mpsc::channel();
            let concrete = self.with_tls_args(&concrete);
            runs.push(Run::Background(spawn_run(&self.endpoints, &concrete, Some(ready))));
            if !ready_when.is_empty() {
                // An early end drops the sender: the steps after it go on, and the
                // transcripts show what happened.
                let _ =
                    tokio::task::spawn_blocking(move || is_ready.recv_timeout(RUN_TIMEOUT)).await;
            }
        }
        let lease_names: Vec<(String, String)> = leases
            .iter()
            .enumerate()
            .flat_map(|(i, id)| {
                let name = format!("<LEASE_{}>", i + 1);
                [format!("{id:016x}"), format!("{id:x}"), id.to_string()]
                    .map(|token| (token, name.clone()))
            })
            .collect();
        let mut all = Vec::with_capacity(runs.len());
        for (step, run) in steps.iter().zip(runs) {
            let output = match run {
                Run::Done(output) => output,
                Run::Background(handle) => handle.await.expect("the etcdctl runner panicked"),
            };
            let transcript = self.normalize(step, &output, &lease_names);
            if std::env::var_os(SHOW_VAR).is_some() {
                println!("[{}]\n{transcript}", self.endpoints);
            }
            all.push((output, transcript));
        }
        all
    }

    /// Exact tokens that differ between servers, with their placeholders; longer
    /// tokens first so a URL is replaced before the endpoint inside it. An endpoint
    /// given as a URL that is also a member's client URL becomes `<ENDPOINT>`.
    fn replacements(&self) -> Vec<(String, String)> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        let numbered = |what: &str, i: usize, n: usize| {
            if n == 1 { format!("<{what}>") } else { format!("<{what}_{i}>") }
        };
        let e = self.endpoint_list.len();
        for (i, endpoint) in self.endpoint_list.iter().enumerate() {
            pairs.push((endpoint.clone(), numbered("ENDPOINT", i, e)));
            // A URL's host:port too (in Go's network errors).
            pairs.push((scheme_less(endpoint), numbered("ENDPOINT", i, e)));
        }
        let n = self.members.len();
        for (i, member) in self.members.iter().enumerate() {
            for url in &member.peer_ur_ls {
                pairs.push((url.clone(), numbered("PEER_URL", i, n)));
            }
            for url in &member.client_ur_ls {
                pairs.push((url.clone(), numbered("CLIENT_URL", i, n)));
            }
            pairs.push((member.id.to_string(), numbered("MEMBER_ID", i, n)));
            pairs.push((format!("{:x}", member.id), numbered("MEMBER_ID", i, n)));
            if !member.name.is_empty() {
                pairs.push((member.name.clone(), numbered("NAME", i, n)));
            }
        }
        pairs.push((self.cluster_id.to_string(), "<CLUSTER_ID>".into()));
        pairs.push((format!("{:x}", self.cluster_id), "<CLUSTER_ID>".into()));
        for version in &self.versions {
            pairs.push((version.clone(), "<VERSION>".into()));
        }
        pairs.sort_by_key(|(token, _)| std::cmp::Reverse(token.len()));
        pairs.dedup();
        pairs
    }

    /// One step's output as a comparable transcript: the command, exit code, stdout
    /// and stderr, normalized; `extra` tokens (lease ids) are replaced too.
    pub fn normalize(&self, step: &Step, output: &Output, extra: &[(String, String)]) -> String {
        let mut replacements = self.replacements();
        replacements.extend_from_slice(extra);
        replacements.sort_by_key(|(token, _)| std::cmp::Reverse(token.len()));
        let text = |raw: &str| {
            let mut text = normalize_text(raw, &replacements, &step.masked_columns);
            for prefix in &step.masked_numbers {
                text = mask_number(&text, prefix, MASKED, true);
            }
            for prefix in &step.masked_strings {
                text = mask_after(&text, prefix, MASKED, json_string_len);
            }
            text
        };
        let code = match output.code {
            _ if output.stopped => "stopped".to_string(),
            Some(code) => code.to_string(),
            None => "killed by a signal".to_string(),
        };
        format!(
            "{}\nexit code: {code}\n--- stdout\n{}--- stderr\n{}",
            step.describe(),
            text(&output.stdout),
            text(&output.stderr)
        )
    }
}

/// Normalizes one output stream (see the module docs).
pub fn normalize_text(raw: &str, replacements: &[(String, String)], masked: &[usize]) -> String {
    let mut text = raw.to_string();
    for (token, placeholder) in replacements {
        text = replace_token(&text, token, placeholder);
    }
    // Values that vary from run to run, by the field that holds them.
    for prefix in ["took = ", "\"Took\" : "] {
        text = mask_rest_of_line(&text, prefix, "<TOOK>");
    }
    for (prefix, placeholder) in
        [("\"took\":\"", "<TOOK>"), ("\"ts\":\"", "<TS>"), ("\"target\":\"", "<TARGET>")]
    {
        text = mask_quoted(&text, prefix, placeholder);
    }
    for prefix in ["\"dbSize\":", "\"dbSizeInUse\":", "\"DBSize\" : ", "\"DBSizeInUse\" : "] {
        text = mask_number(&text, prefix, "<SIZE>", true);
    }
    // etcd lists a lease's keys in the order of a Go map: compare them sorted.
    text = sort_list_after(&text, "attached keys([", ' ');
    text = sort_list_after(&text, "\"keys\":[", ',');
    // Terms differ between servers; a zero term (inner txn headers) is kept as is.
    for prefix in ["\"raft_term\":", "\"raftTerm\":", "\"RaftTerm\" : "] {
        text = mask_number(&text, prefix, "<TERM>", false);
    }
    let mut out = String::new();
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if is_table_border(line) {
            // Column widths follow the content: keep only the column count.
            let columns = line.matches('+').count().saturating_sub(1);
            out.push('+');
            out.push_str(&"-+".repeat(columns));
        } else if line.starts_with('|') {
            // The header is the row right under a table's top border.
            let header = i >= 1
                && is_table_border(lines[i - 1])
                && (i < 2 || !lines[i - 2].starts_with('|'));
            let inner = line.trim_start_matches('|').trim_end_matches('|');
            let mut cells: Vec<&str> = inner.split('|').map(str::trim).collect();
            if !header {
                mask_cells(&mut cells, masked);
            }
            let _ = write!(out, "| {} |", cells.join(" | "));
        } else if !masked.is_empty() && line.contains(", ") {
            let mut cells: Vec<&str> = line.split(", ").collect();
            mask_cells(&mut cells, masked);
            out.push_str(&cells.join(", "));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

fn is_table_border(line: &str) -> bool {
    line.starts_with('+') && line.chars().all(|c| c == '+' || c == '-')
}

fn mask_cells(cells: &mut [&str], masked: &[usize]) {
    for &column in masked {
        if let Some(cell) = cells.get_mut(column) {
            *cell = MASKED;
        }
    }
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'.'
}

/// Replaces whole-token occurrences of `token` (not inside a longer word or number).
pub fn replace_token(text: &str, token: &str, placeholder: &str) -> String {
    if token.is_empty() {
        return text.to_string();
    }
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (start, _) in text.match_indices(token) {
        if start < last {
            continue;
        }
        let end = start + token.len();
        let before_ok =
            start == 0 || !is_word_byte(bytes[start - 1]) || !is_word_byte(token.as_bytes()[0]);
        let after_ok = end == bytes.len()
            || !is_word_byte(bytes[end])
            || !is_word_byte(token.as_bytes()[token.len() - 1]);
        if before_ok && after_ok {
            out.push_str(&text[last..start]);
            out.push_str(placeholder);
            last = end;
        }
    }
    out.push_str(&text[last..]);
    out
}

/// Replaces what follows `prefix` up to the end of its line.
fn mask_rest_of_line(text: &str, prefix: &str, placeholder: &str) -> String {
    mask_after(text, prefix, placeholder, |rest| rest.find('\n').unwrap_or(rest.len()))
}

/// Replaces the rest of a JSON string whose opening quote ends `prefix`.
fn mask_quoted(text: &str, prefix: &str, placeholder: &str) -> String {
    mask_after(text, prefix, placeholder, |rest| rest.find('"').unwrap_or(rest.len()))
}

/// The length of the rest of a JSON string: up to its first unescaped `"` (or the end
/// of the line).
fn json_string_len(rest: &str) -> usize {
    let bytes = rest.as_bytes();
    let mut i = 0;
    while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
        i += if bytes[i] == b'\\' { 2 } else { 1 };
    }
    i.min(bytes.len())
}

/// Replaces the number after `prefix`; a zero is kept unless `zero_too`.
fn mask_number(text: &str, prefix: &str, placeholder: &str, zero_too: bool) -> String {
    mask_after(text, prefix, placeholder, |rest| {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if !zero_too && &rest[..digits] == "0" { 0 } else { digits }
    })
}

/// Sorts the `separator`-separated items between `prefix` and the next `]`.
fn sort_list_after(text: &str, prefix: &str, separator: char) -> String {
    let span = |rest: &str| rest.find(']').unwrap_or(0);
    rewrite_after(text, prefix, span, |list| {
        let mut items: Vec<&str> = list.split(separator).collect();
        items.sort_unstable();
        items.join(&separator.to_string())
    })
}

/// Replaces, after each `prefix`, the `span(rest)` bytes that follow it (if any).
fn mask_after(text: &str, prefix: &str, placeholder: &str, span: impl Fn(&str) -> usize) -> String {
    rewrite_after(text, prefix, span, |_| placeholder.to_string())
}

/// Rewrites with `rewrite`, after each `prefix`, the `span(rest)` bytes that follow it
/// (if any).
fn rewrite_after(
    text: &str,
    prefix: &str,
    span: impl Fn(&str) -> usize,
    rewrite: impl Fn(&str) -> String,
) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(prefix) {
        let value_start = at + prefix.len();
        out.push_str(&rest[..value_start]);
        let len = span(&rest[value_start..]);
        if len > 0 {
            out.push_str(&rewrite(&rest[value_start..value_start + len]));
        }
        rest = &rest[value_start + len..];
    }
    out.push_str(rest);
    out
}

/// The transcripts of two targets for the same steps, compared step by step: `None`
/// when they agree, else a report of every step that differs, showing both sides.
pub fn compare_transcripts(
    steps: &[Step],
    (left_name, left): (&str, &[String]),
    (right_name, right): (&str, &[String]),
) -> Option<String> {
    let mut report = String::new();
    let mut differing = 0;
    for (i, (step, (l, r))) in steps.iter().zip(left.iter().zip(right)).enumerate() {
        if l == r {
            continue;
        }
        differing += 1;
        let _ = writeln!(report, "==== step {i} differs: {}", step.describe());
        let l_lines: Vec<&str> = l.lines().collect();
        let r_lines: Vec<&str> = r.lines().collect();
        if let Some(line) =
            (0..l_lines.len().max(r_lines.len())).find(|&j| l_lines.get(j) != r_lines.get(j))
        {
            let _ = writeln!(
                report,
                "first difference at line {}:\n  {left_name}: {:?}\n  {right_name}: {:?}",
                line + 1,
                l_lines.get(line).copied().unwrap_or("<missing>"),
                r_lines.get(line).copied().unwrap_or("<missing>")
            );
        }
        let _ = writeln!(
            report,
            "---- {left_name} (normalized):\n{l}---- {right_name} (normalized):\n{r}"
        );
    }
    (differing > 0).then(|| format!("{differing} of {} steps differ:\n{report}", steps.len()))
}

/// Bound on a whole scenario, servers' start and stop included.
pub const SCENARIO_TIMEOUT: Duration = Duration::from_secs(240);

/// Steps from command lines split on whitespace.
pub fn steps(lines: &[&str]) -> Vec<Step> {
    lines.iter().map(|line| Step::line(line)).collect()
}

/// A single oxetcd member. Its peer listener goes on a free 127.0.0.1 port: the
/// default (`localhost:2380`) would collide between tests running in parallel.
pub async fn start_oxetcd() -> TestMember {
    start_oxetcd_with(&ServerTlsFlags::plaintext()).await.0
}

/// [`start_oxetcd`], serving its client URL with `tls`, as [`ReferenceEtcd::start_with`]
/// does: on a free port it also advertises, so that `member list` shows both servers'
/// URLs alike; its `endpoint` is that URL. Returns how the harness reaches it.
pub async fn start_oxetcd_with(tls: &ServerTlsFlags) -> (TestMember, Harness) {
    let listen_peer = format!("http://127.0.0.1:{}", free_port());
    let mut args = vec!["--listen-peer-urls".to_string(), listen_peer];
    let urls = tls.info.is_enabled().then(|| tls.urls());
    if let Some(ServerUrls { listen, client, .. }) = &urls {
        args.extend(["--listen-client-urls".to_string(), listen.clone()]);
        args.extend(["--advertise-client-urls".to_string(), client.clone()]);
        args.extend(tls.flags());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut member = TestMember::start(&args).await;
    match urls {
        Some(ServerUrls { client, harness, .. }) => {
            member.endpoint = client;
            (member, harness)
        }
        None => {
            let harness = Harness::plain(member.endpoint.clone());
            (member, harness)
        }
    }
}

/// How a side-by-side comparison runs its two servers and etcdctl: the TLS flags both
/// servers get, etcdctl's TLS flags, and the scheme etcdctl's endpoints are written with.
/// The default is plaintext with scheme-less endpoints.
#[derive(Clone, Debug, Default)]
pub struct SideBySide {
    pub server: ServerTlsFlags,
    pub etcdctl: EtcdctlTls,
    /// `None`: `127.0.0.1:PORT`; `Some("https")`: `https://127.0.0.1:PORT`.
    pub endpoint_scheme: Option<&'static str>,
}

impl SideBySide {
    /// Both servers serving `server`'s TLS, etcdctl given `etcdctl` and `https://`
    /// endpoints.
    pub fn tls(server: ServerTlsFlags, etcdctl: EtcdctlTls) -> SideBySide {
        SideBySide { server, etcdctl, endpoint_scheme: Some("https") }
    }

    /// The same, with etcdctl's endpoints written `<scheme>://`.
    pub fn with_endpoint_scheme(mut self, scheme: &'static str) -> SideBySide {
        self.endpoint_scheme = Some(scheme);
        self
    }
}

/// Runs `steps` against a fresh reference etcd and a fresh oxetcd member and fails,
/// showing both normalized transcripts, for every step whose outputs differ.
pub async fn same_as_etcd(steps: Vec<Step>) {
    same_as_etcd_with(&SideBySide::default(), steps).await;
}

/// [`same_as_etcd`], with etcdctl given `http://` URLs as endpoints.
pub async fn same_as_etcd_with_url_endpoints(steps: Vec<Step>) {
    same_as_etcd_with(&SideBySide::default().with_endpoint_scheme("http"), steps).await;
}

/// [`same_as_etcd`], with the servers and etcdctl run as `how` says.
pub async fn same_as_etcd_with(how: &SideBySide, steps: Vec<Step>) {
    tokio::time::timeout(SCENARIO_TIMEOUT, async {
        init_test_logs();
        let (etcd, (oxetcd, oxetcd_harness)) =
            tokio::join!(ReferenceEtcd::start_with(&how.server), start_oxetcd_with(&how.server));
        let (etcd_target, oxetcd_target) = tokio::join!(
            Target::connect_via(&etcd.endpoint, &etcd.harness),
            Target::connect_via(&oxetcd.endpoint, &oxetcd_harness)
        );
        let prepare = |target: Target| {
            let target = target.with_etcdctl_tls(how.etcdctl.clone());
            match how.endpoint_scheme {
                Some(scheme) => target.with_endpoint_scheme(scheme),
                None => target,
            }
        };
        let (etcd_target, oxetcd_target) = (prepare(etcd_target), prepare(oxetcd_target));
        let (expected, actual) =
            tokio::join!(etcd_target.run_all(&steps), oxetcd_target.run_all(&steps));
        oxetcd.stop().await;
        drop(etcd);
        for (step, (output, _)) in steps.iter().zip(&expected) {
            step.check_expectation("the reference etcd", output);
        }
        let expected: Vec<String> = expected.into_iter().map(|(_, t)| t).collect();
        let actual: Vec<String> = actual.into_iter().map(|(_, t)| t).collect();
        if let Some(report) =
            compare_transcripts(&steps, ("etcd 3.4.23", &expected), ("oxetcd", &actual))
        {
            panic!("etcdctl sees oxetcd differ from etcd 3.4.23.\n{report}");
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the scenario did not finish within {SCENARIO_TIMEOUT:?}"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs() -> Vec<(String, String)> {
        vec![
            ("http://127.0.0.1:2379".into(), "<CLIENT_URL>".into()),
            ("127.0.0.1:2379".into(), "<ENDPOINT>".into()),
            ("13668033151171901709".into(), "<MEMBER_ID>".into()),
            ("bdae9bbc11dd390d".into(), "<MEMBER_ID>".into()),
            ("3.4.23".into(), "<VERSION>".into()),
        ]
    }

    #[test]
    fn tokens_are_replaced_whole_only() {
        assert_eq!(
            replace_token("a 3.4.23, 13.4.23 3.4.231", "3.4.23", "V"),
            "a V, 13.4.23 3.4.231"
        );
        assert_eq!(replace_token("127.0.0.1:23791", "127.0.0.1:2379", "E"), "127.0.0.1:23791");
        assert_eq!(replace_token("\"ID\":42}", "42", "X"), "\"ID\":X}");
    }

    #[test]
    fn json_keeps_revisions_and_zero_terms_masks_the_rest() {
        let raw = "{\"header\":{\"member_id\":13668033151171901709,\"revision\":3,\"raft_term\":2},\
                   \"dbSize\":20480,\"inner\":{\"raft_term\":0}}\n";
        assert_eq!(
            normalize_text(raw, &pairs(), &[]),
            "{\"header\":{\"member_id\":<MEMBER_ID>,\"revision\":3,\"raft_term\":<TERM>},\
             \"dbSize\":<SIZE>,\"inner\":{\"raft_term\":0}}\n"
        );
    }

    #[test]
    fn tables_lose_their_padding_and_masked_columns_but_not_headers() {
        let raw = "+-----------------+---------+---------+\n\
                   |    ENDPOINT     | VERSION | DB SIZE |\n\
                   +-----------------+---------+---------+\n\
                   | 127.0.0.1:2379  |  3.4.23 |   20 kB |\n\
                   +-----------------+---------+---------+\n";
        assert_eq!(
            normalize_text(raw, &pairs(), &[2]),
            "+-+-+-+\n| ENDPOINT | VERSION | DB SIZE |\n+-+-+-+\n\
             | <ENDPOINT> | <VERSION> | <MASKED> |\n+-+-+-+\n"
        );
    }

    #[test]
    fn simple_rows_timings_and_log_lines() {
        let raw = "127.0.0.1:2379, bdae9bbc11dd390d, 3.4.23, 2.8 MB, true\n\
                   127.0.0.1:2379 is healthy: successfully committed proposal: took = 1.2ms\n\
                   {\"level\":\"warn\",\"ts\":\"2026-11-21T00:50:55.995Z\",\"target\":\"endpoint://client-1/127.0.0.1:2379\",\"attempt\":0}\n";
        assert_eq!(
            normalize_text(raw, &pairs(), &[3]),
            "<ENDPOINT>, <MEMBER_ID>, <VERSION>, <MASKED>, true\n\
             <ENDPOINT> is healthy: successfully committed proposal: took = <TOOK>\n\
             {\"level\":\"warn\",\"ts\":\"<TS>\",\"target\":\"<TARGET>\",\"attempt\":0}\n"
        );
    }

    #[test]
    fn lease_keys_are_compared_sorted() {
        let raw = "lease 1 granted with TTL(60s), remaining(59s), attached keys([k2 k1 a])\n\
                   {\"id\":1,\"keys\":[\"azI=\",\"azE=\"]} {\"keys\":null}\n";
        assert_eq!(
            normalize_text(raw, &[], &[]),
            "lease 1 granted with TTL(60s), remaining(59s), attached keys([a k1 k2])\n\
             {\"id\":1,\"keys\":[\"azE=\",\"azI=\"]} {\"keys\":null}\n"
        );
    }

    #[test]
    fn steps_name_leases_by_the_order_of_their_grants() {
        let grant = |stdout: &str| {
            let output = Output {
                code: Some(0),
                stdout: stdout.into(),
                stderr: String::new(),
                stopped: false,
            };
            granted_lease(&Step::line("lease grant 60"), &output)
        };
        assert_eq!(
            grant("lease 390da1fbe2754b05 granted with TTL(60s)\n"),
            Some(0x390da1fbe2754b05)
        );
        assert_eq!(
            grant("{\"revision\":1,\"ID\":4111120138067331847,\"TTL\":120}\n"),
            Some(4111120138067331847)
        );
        assert_eq!(grant("\"Revision\" : 1\n\"ID\" : 42\n\"TTL\" : 30\n"), Some(42));
        let output = Output {
            code: Some(0),
            stdout: "lease 1f granted".into(),
            stderr: String::new(),
            stopped: false,
        };
        assert_eq!(granted_lease(&Step::line("lease list"), &output), None);

        let step = Step::line("put --lease {L2} k v").stdin("{L1} {L10}");
        let concrete = step.with_leases(&(1..=10).collect::<Vec<i64>>());
        assert_eq!(concrete.args, ["put", "--lease", "0000000000000002", "k", "v"]);
        assert_eq!(concrete.stdin.as_deref(), Some(&b"0000000000000001 000000000000000a"[..]));
        assert_eq!(
            concrete.describe().lines().next(),
            Some("$ etcdctl put --lease 0000000000000002 k v <<EOF")
        );
        assert!(
            step.describe().starts_with("$ etcdctl put --lease {L2} k v"),
            "transcripts show the template"
        );
    }

    #[test]
    fn strings_are_masked_up_to_their_unescaped_end() {
        let raw = r#"{"error":"rpc error: desc = latest balancer error: connection error: desc = \"x: y\"","n":1}"#;
        assert_eq!(
            mask_after(raw, "latest balancer error: ", MASKED, json_string_len),
            r#"{"error":"rpc error: desc = latest balancer error: <MASKED>","n":1}"#
        );
    }

    #[test]
    fn urls_are_replaced_before_the_endpoints_inside_them() {
        assert_eq!(
            normalize_text("x, http://127.0.0.1:2379, 127.0.0.1:2379\n", &pairs(), &[]),
            "x, <CLIENT_URL>, <ENDPOINT>\n"
        );
    }
}
