//! oxetcdctl beside etcdctl 3.4.23: the same command lines, run by etcdctl against one
//! reference etcd and by oxetcdctl against another, started alike, must print the same
//! (after the normalization of `oxetcd_tests::etcdctl`: ids, names, URLs, lease ids,
//! timings) and exit alike, in every output format.
//!
//! One difference is taken out before comparing: etcdctl's client logs each failed call
//! as a JSON `warn` line on stderr (a time stamp, a random client name); oxetcdctl does
//! not log (docs/compatibility.md, "oxetcdctl").
//!
//! The protobuf format is left out: it carries the two servers' ids in binary, which
//! the normalization cannot replace.
//!
//! oxetcdctl is taken from `OXETCDCTL_BIN`, or from the target dir this test was built in
//! (`target/<profile>/oxetcdctl`; scripts/compat.sh builds it).

use std::path::PathBuf;

use oxetcd_tests::etcdctl::{Step, Target, compare_transcripts, steps, txn_input};
use oxetcd_tests::member::init_test_logs;
use oxetcd_tests::reference::ReferenceEtcd;

fn oxetcdctl_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("OXETCDCTL_BIN") {
        return PathBuf::from(bin);
    }
    oxetcd_tests::workspace_bin("oxetcdctl", "oxetcd-ctl")
}

/// Drops the log lines of etcdctl's client (JSON objects with a level).
fn without_client_logs(transcript: &str) -> String {
    transcript.lines().filter(|l| !l.starts_with("{\"level\":")).map(|l| format!("{l}\n")).collect()
}

/// Runs `steps` with etcdctl and with oxetcdctl, each against a reference etcd of its own,
/// and fails showing both transcripts where they differ.
async fn same_as_etcdctl(steps: Vec<Step>) {
    init_test_logs();
    let bin = oxetcdctl_bin();
    let ours: Vec<Step> = steps.iter().map(|s| s.clone().with_bin(&bin)).collect();
    let (left, right) = tokio::join!(ReferenceEtcd::start(), ReferenceEtcd::start());
    let (left_target, right_target) = tokio::join!(
        Target::connect_via(&left.endpoint, &left.harness),
        Target::connect_via(&right.endpoint, &right.harness)
    );
    let (expected, actual) = tokio::join!(left_target.run_all(&steps), right_target.run_all(&ours));
    drop((left, right));
    // Whether each step succeeds is part of what is compared (the exit code), so the
    // steps need not say it.
    let expected: Vec<String> = expected.iter().map(|(_, t)| without_client_logs(t)).collect();
    let actual: Vec<String> = actual.iter().map(|(_, t)| without_client_logs(t)).collect();
    if let Some(report) =
        compare_transcripts(&steps, ("etcdctl 3.4.23", &expected), ("oxetcdctl", &actual))
    {
        panic!("oxetcdctl differs from etcdctl 3.4.23.\n{report}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kv_commands_in_every_format() {
    let mut all = steps(&[
        "put foo bar",
        "put foo bar2 --prev-kv",
        "put foo2 x -w json",
        "put foo3 y -w fields",
        "put --prev-kv foo baz -w json",
        "get foo",
        "get foo -w json",
        "get foo -w fields",
        "get foo -w table",
        "get --prefix foo",
        "get --prefix foo --keys-only",
        "get --prefix foo --print-value-only",
        "get --prefix foo --limit 2 -w json",
        "get --prefix foo --order=DESCEND --sort-by=MODIFY",
        "get --prefix foo --sort-by=VALUE --order=ascend -w fields",
        "get --from-key foo2",
        "get foo foo3",
        "get foo --rev 2",
        "get foo --hex",
        "get --prefix foo --consistency=s",
        "get '' --prefix -w json",
        "get nothing -w json",
        "del foo4 -w json",
        "del --prev-kv foo3",
        "del --prefix foo -w fields",
        "put a 1",
        "put b 2",
        "compaction 3",
        "get a --rev 2",
        "compaction --physical 4",
    ]);
    all.push(Step::line("put fromstdin").stdin("value from stdin"));
    all.push(Step::line("get fromstdin -w json"));
    all.push(Step::line("txn").stdin(txn_input(
        &["mod(\"a\") > \"0\"", "val(\"b\") = \"2\""],
        &["put a 10", "get b", "del fromstdin"],
        &["get a"],
    )));
    all.push(Step::line("txn -w json").stdin(txn_input(
        &["ver(\"a\") = \"9\""],
        &["get a"],
        &["get b", "put c 3"],
    )));
    all.push(Step::line("txn -w fields").stdin(txn_input(&["c(\"a\") > \"0\""], &["get a"], &[])));
    all.push(Step::line("txn -i").stdin(txn_input(
        &["value(\"a\") != \"x\""],
        &["get a --prefix"],
        &[],
    )));
    all.push(Step::line("watch --rev 1 a").stop_after(6));
    all.push(Step::line("watch --rev 1 --prefix a -w json").stop_after(2));
    all.push(Step::line("watch --rev 1 --prev-kv b -w fields").stop_after(5));
    same_as_etcdctl(all).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_is_refused_alike() {
    let mut all: Vec<Step> = [
        "get",
        "get --bad-flag k",
        "get k --limit=x",
        "get k --prefix --from-key",
        "get a b --prefix",
        "get k --order=up",
        "get k --sort-by=size",
        "get k --consistency=x",
        "get k -w yaml",
        "get k --print-value-only -w json",
        "bogus",
        "put",
        "put k v extra --ignore-value",
        "put k v --lease=zz",
        "del",
        "del a b c",
        "compaction",
        "compaction x",
        "compaction 1000",
        "lease grant",
        "lease grant x",
        "lease revoke",
        "lease revoke zz",
        "lease revoke 1234",
        "lease timetolive 1234",
        "lease keep-alive --once 1234",
        "member add",
        "member add m1 http://x",
        "member add m1",
        "member remove",
        "member remove zz",
        "member update 1",
        "member remove 1234",
        "move-leader",
        "move-leader zz",
        "move-leader 1234",
        "alarm list extra",
        "alarm disarm extra",
        "snapshot save",
        "txn extra",
        "watch",
        "watch a b --prefix",
        "watch a --",
        "user add",
        "user add :pw",
        "user get",
        "user grant-role u",
        "role add",
        "role grant-permission r read",
        "role grant-permission r badtype k",
        "role grant-permission r read k --prefix --from-key",
        "role revoke-permission r",
        "lock",
        "elect",
        "elect name",
        "elect -l name proposal",
        "version",
        "",
        "member",
        "lease --help",
        "get --help",
        "endpoint health -h",
        "check perf --load huge",
        "check datascale --load x",
        "put /etcdctl-check-perf/k v",
        "check perf",
        "check datascale --prefix /etcdctl-check-perf/",
        "check --help",
        "check perf --help",
        "check datascale -h",
        "completion --help",
    ]
    .iter()
    .map(|line| Step::line(line))
    .collect();
    all.push(Step::line("txn").stdin("bogus(\"a\") = \"1\"\n\n\n\n"));
    all.push(Step::line("txn").stdin("mod(\"a\") > \"0\"\n\nfoo a\n\n\n"));
    all.push(Step::line("txn").stdin("mod(\"a\") > \"0\"\n"));
    same_as_etcdctl(all).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cluster_lease_and_auth_commands() {
    let all = steps(&[
        "member list",
        "member list -w json",
        "member list -w fields",
        "member list -w table",
        "endpoint hashkv",
        "endpoint hashkv -w json",
        "endpoint hashkv -w fields",
        "endpoint hashkv -w table",
        "endpoint status -w table --cluster",
        "alarm list",
        "alarm list -w json",
        // (`alarm disarm -w fields` crashes etcdctl 3.4: nothing to compare.)
        "alarm disarm",
        "defrag",
        "lease grant 100",
        "lease grant 200 -w json",
        "lease grant 300 -w fields",
        "put --lease {L1} lk v",
        "lease list",
        "lease list -w json",
        "lease list -w fields",
        "lease keep-alive --once {L2}",
        "lease keep-alive --once {L2} -w json",
        "lease revoke {L3}",
        "lease revoke {L2} -w json",
        "lease timetolive {L3}",
        "role add r1",
        "role add r2 -w json",
        "role grant-permission r1 read k1",
        "role grant-permission r1 readwrite a --prefix",
        "role grant-permission r1 write z --from-key",
        "role grant-permission r1 write b c -w json",
        "role get r1",
        "role get r1 -w json",
        "role get r1 -w fields",
        "role list",
        "role list -w fields",
        "role list -w json",
        "role get nope",
        "user add u1:p1",
        "user add u2 --new-user-password=x -w json",
        "user add u3 --no-password",
        "user get u1",
        "user grant-role u1 r1",
        "user grant-role u1 r2 -w fields",
        "user get u1 --detail",
        "user get u1 -w json",
        "user list",
        "user list -w json",
        "user revoke-role u1 r2",
        "user revoke-role u1 nope",
        "role revoke-permission r1 k1",
        "role revoke-permission r1 a --prefix",
        "role revoke-permission r1 z --from-key",
        "role revoke-permission r1 b c",
        "role delete r2",
        "user delete u2",
        "user add root:rootpw",
        "auth enable",
        "get k --user u1:p1",
        "put k v --user u1:p1",
        "get k1 --user u1:p1 -w json",
        "get k1 --user u1:wrong",
        "user list --user root:rootpw",
        "auth disable --user root:rootpw",
    ]);
    // The two servers' db sizes differ with when each committed its start-up writes
    // (20 kB or 25 kB): the column is the servers', not the tools'.
    let mut all: Vec<Step> = all
        .into_iter()
        .map(|s| if s.describe().contains("endpoint status") { s.mask_columns(&[3]) } else { s })
        .collect();
    all.push(Step::line("user passwd u1 --interactive=false").stdin("newpw\n"));
    all.push(Step::line("user add u4 --interactive=false").stdin("pw4\n"));
    same_as_etcdctl(all).await;
}
