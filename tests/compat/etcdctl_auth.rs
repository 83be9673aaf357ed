//! etcdctl 3.4.23's `user`, `role` and `auth` commands, and the other commands run as a
//! user once authentication is enabled, against the reference etcd and against oxetcd,
//! outputs compared after normalization (see `oxetcd_tests::etcdctl`).
//!
//! Every scenario starts both servers without authentication; the ones after the first
//! create the same users and roles, then `auth enable`. A step runs as a user with
//! `--user name:password` after its command (where the harness still finds `lease
//! grant` and the lease ids it prints). Tokens never show in etcdctl's output; response
//! headers carry the mvcc revision, which auth changes do not move, so revisions stay
//! strict as in the other scenarios.
//!
//! The permissions of `r1`, the role of `u1`, are chosen so that every key says which
//! check it passes: `foo` is readable and writable, `b` (in `[a, c)`) only readable,
//! `k…` and `zzz` (from `k`) only writable, `pre/…` readable and, as it sorts after `k`,
//! writable too, `d` neither.

use oxetcd_tests::etcdctl::{Step, Target, same_as_etcd, start_oxetcd, steps, txn_input};
use oxetcd_tests::member::init_test_logs;

/// `u1`'s credentials, as `--user` takes them.
const U1: &str = "u1:pw";
/// `root`'s credentials.
const ROOT: &str = "root:pw";

/// Where `lease timetolive` prints the remaining TTL, which depends on timing: masked.
const REMAINING_TTL: [&str; 3] = ["remaining(", "\"ttl\":", "\"TTL\" : "];
/// Endpoint health columns: 2 is the time taken.
const HEALTH_MASK: [usize; 1] = [2];
/// Endpoint status columns: 3 the db size, 6 the raft term, 7 and 8 the raft index and
/// applied index (etcd proposes every Authenticate through raft).
const STATUS_MASK: [usize; 4] = [3, 6, 7, 8];
/// The raft index and applied index in endpoint status' json output.
const RAFT_INDEX_FIELDS: [&str; 2] = ["\"raftIndex\":", "\"raftAppliedIndex\":"];

/// `line` run as `user` (`name:password`).
fn as_user(user: &str, line: &str) -> Step {
    Step::line(&format!("{line} --user {user}"))
}

/// `line` run as `u1`.
fn u1(line: &str) -> Step {
    as_user(U1, line)
}

/// `line` run as `root`.
fn root(line: &str) -> Step {
    as_user(ROOT, line)
}

/// Steps that must fail against etcd, from command lines.
fn failing(lines: &[&str]) -> Vec<Step> {
    lines.iter().map(|line| Step::line(line).fails()).collect()
}

/// Users `root` (without the root role: `auth enable` creates and grants it), `u1` with
/// role `r1`, `u3` without a password; keys `b`, `pre/x`, `pre/y` and `d` written while
/// anyone may; then `auth enable`.
fn auth_setup() -> Vec<Step> {
    steps(&[
        "user add root:pw",
        "user add u1:pw",
        "user add u3 --no-password",
        "role add r1",
        "role grant-permission r1 readwrite foo",
        "role grant-permission r1 read --prefix=true pre/",
        "role grant-permission r1 write --from-key k",
        "role grant-permission r1 read a c",
        "user grant-role u1 r1",
        "put b 1",
        "put pre/x 1",
        "put pre/y 2",
        "put d 0",
        // etcd answers "root user does not have root role"; etcdctl 3.4 then adds role
        // root, grants it to root and enables.
        "auth enable",
    ])
}

fn users_and_roles_steps() -> Vec<Step> {
    // Without a root user, etcd refuses to enable authentication.
    let mut all = vec![Step::line("auth enable").fails()];
    all.push(Step::line("user add root --interactive=false").stdin("pw\n"));
    all.push(Step::line("role add root"));
    // The root role exists but root does not have it: etcdctl 3.4 tries to add the role
    // and reports that it exists.
    all.push(Step::line("auth enable").fails());
    all.extend(steps(&[
        "user grant-role root root",
        "user add u1:pw",
        "user add u2 --new-user-password=pw2",
        "user add u3 --no-password",
    ]));
    all.extend(failing(&["user add u1:pw", "user add u1:other", "user add"]));
    all.push(Step::args(&["user", "add", "", "--new-user-password=pw"]).fails());
    all.push(Step::args(&["user", "add", ":pw"]).fails());
    all.push(Step::line("role add r1"));
    all.push(Step::line("role add r1").fails());
    all.push(Step::args(&["role", "add", ""]).fails());
    all.extend(steps(&[
        "role grant-permission r1 readwrite foo",
        "role grant-permission r1 read --prefix=true pre/",
        "role grant-permission r1 write --from-key k",
        "role grant-permission r1 read a c",
        // Overlapping ranges are kept apart.
        "role grant-permission r1 read b d",
        // The same key again: its permission type is replaced.
        "role grant-permission r1 readwrite bar",
        "role grant-permission r1 read bar",
        "role get r1",
        "role get r1 -w json",
        "role get r1 -w fields",
        "role get root",
    ]));
    all.extend(failing(&[
        "role grant-permission r1 bogus x",
        "role grant-permission nosuch read x",
        "role grant-permission r1 read --prefix=true a b",
        "role grant-permission r1 read --from-key=true x y",
        "role grant-permission r1 read --from-key=true --prefix=true x",
        "role grant-permission r1 read",
        "role get r1 -w table",
        "role get nosuch",
    ]));
    all.push(Step::args(&["role", "get", ""]).fails());
    all.extend(steps(&[
        "user grant-role u1 r1",
        // Granted twice: etcd ignores it and answers as for the first.
        "user grant-role u1 r1",
        "user grant-role u2 r1",
        "user get u1",
        "user get u1 --detail",
        "user get u1 -w json",
        "user get u1 --detail -w json",
        "user get u3 -w json",
        "user list",
        "user list -w json",
        "role list",
        "role list -w json",
    ]));
    all.extend(failing(&[
        "user grant-role u1 nosuch",
        "user grant-role nosuch r1",
        "user get nosuch",
        "user get u1 -w table",
        "user get u1 -w fields",
        "user get u1 --detail -w table",
        "user list -w table",
        "user list -w fields",
        "role list -w table",
        // Not granted as such: `a` lies in the range [a, c), and zzz nowhere.
        "role revoke-permission r1 zzz",
        "role revoke-permission r1 a",
        "role revoke-permission nosuch foo",
    ]));
    all.push(Step::args(&["user", "get", ""]).fails());
    all.push(Step::args(&["user", "grant-role", "u1", ""]).fails());
    all.extend(steps(&[
        "role revoke-permission r1 a c",
        "role revoke-permission r1 --prefix=true pre/",
        "role revoke-permission r1 --from-key k",
        "role revoke-permission r1 bar",
        "role get r1",
        "role get r1 -w json",
        "user revoke-role u1 r1",
        "user get u1",
        "user get u1 --detail",
        "user get u1 -w json",
        "user get u2 --detail",
    ]));
    all.extend(failing(&["user revoke-role u1 r1", "user revoke-role nosuch r1"]));
    // --user while authentication is disabled: etcd refuses the client's Authenticate
    // ("authentication is not enabled", logged by etcdctl) and etcdctl goes on without a
    // token, whatever the credentials.
    all.extend([
        as_user("nosuch:bad", "user add u9:pw"),
        as_user("u1:wrong", "get foo"),
        as_user("u1:pw", "user list"),
    ]);
    all.extend(steps(&["user delete u9", "role delete r1", "user get u2", "user get u2 --detail"]));
    all.extend(failing(&[
        "user delete u9",
        "user delete nosuch",
        "role delete r1",
        "role delete nosuch",
        "auth enable extra",
    ]));
    all.extend(steps(&["user list", "role list -w json"]));
    all
}

fn permission_steps() -> Vec<Step> {
    let mut all = auth_setup();
    all.extend([root("user get root"), root("role get root"), root("role get root -w json")]);
    // u1 within its permissions and outside them.
    all.extend([
        u1("put foo v1"),
        u1("get foo"),
        u1("get foo -w json"),
        u1("put b x").fails(),
        u1("get b"),
        u1("put zzz z"),
        u1("get zzz").fails(),
        u1("put d x").fails(),
        u1("get d").fails(),
        u1("put pre/z z"),
        u1("get --prefix pre/"),
        u1("get --prefix pre/ -w json"),
        u1("get a c"),
        // A range partly permitted is denied as a whole.
        u1("get --prefix pr").fails(),
        u1("get --from-key a").fails(),
        u1("get a d").fails(),
        u1("get --prefix foo").fails(),
    ]);
    // Credentials: wrong, unknown, none, split, an empty password (etcdctl then does
    // not authenticate), a password for a user created without one.
    all.extend([
        as_user("u1:wrong", "get foo").fails(),
        as_user("nosuch:pw", "get foo").fails(),
        Step::line("get foo").fails(),
        Step::line("put foo v").fails(),
        Step::line("get foo --user u1 --password pw"),
        as_user("u1:", "get foo").fails(),
        as_user("u3:x", "get foo").fails(),
    ]);
    // Txn: every compare and every operation of both branches must be permitted,
    // whichever branch runs.
    let txn = |compares: &[&str], success: &[&str], failure: &[&str]| {
        u1("txn").stdin(txn_input(compares, success, failure))
    };
    all.extend([
        txn(&[r#"value("foo") = "v1""#], &["put foo v2", "get b"], &["get foo"]),
        txn(&[r#"value("foo") = "nope""#], &["put foo v3"], &["get b", "get --prefix pre/"]),
        u1("txn -w json").stdin(txn_input(&[r#"mod("b") > "0""#], &["get foo"], &[])),
        txn(&[r#"value("d") = "0""#], &["put foo v3"], &[]).fails(),
        txn(&[r#"value("foo") = "v2""#], &["put foo v3"], &["put b x"]).fails(),
        txn(&[], &["get d"], &[]).fails(),
        txn(&[], &["del --prev-kv zzz"], &[]).fails(),
        txn(&[], &["put k1 1", "del zzz"], &[]),
    ]);
    // Watch: a permitted key's and prefix's history; a key or range not readable is
    // canceled by the server.
    all.extend([
        u1("watch --rev 1 foo").stop_after(2 * 3),
        u1("watch --rev 1 --prefix pre/").stop_after(3 * 3),
        u1("watch d").fails(),
        u1("watch --prefix pr").fails(),
        u1("watch --rev 1 a d").fails(),
    ]);
    // Delete: --prev-kv needs read permission too.
    all.extend([
        u1("del k1 --prev-kv").fails(),
        u1("del foo --prev-kv"),
        u1("del b").fails(),
        u1("del --prefix k"),
        u1("del --from-key k --prev-kv").fails(),
    ]);
    // What only root may do; what a user may learn about itself.
    all.extend([
        u1("user get u1"),
        u1("role get r1"),
        u1("user list").fails(),
        u1("role list").fails(),
        u1("user add x:y").fails(),
        u1("role add r9").fails(),
        u1("user get root").fails(),
        u1("role get root").fails(),
        u1("user grant-role u1 root").fails(),
        u1("role grant-permission r1 readwrite d").fails(),
        u1("auth enable").fails(),
        u1("auth disable").fails(),
        Step::line("user list").fails(),
        Step::line("auth disable").fails(),
    ]);
    // Root may do anything.
    all.extend([
        root("put d x"),
        root("watch --rev 1 d").stop_after(2 * 3),
        Step::args(&["get", "--from-key", "", "-w", "json", "--user", ROOT]),
        root("user list"),
        root("role list -w json"),
        root("user get u1 --detail"),
        root("role get r1 -w json"),
        // Already enabled: etcd ignores it.
        root("auth enable"),
        // Root's role cannot be taken from it while authentication is on.
        root("user delete root").fails(),
        root("role delete root").fails(),
        root("user revoke-role root root").fails(),
    ]);
    // etcd 3.4 checks no permission for compaction: any user, even none, compacts.
    all.extend([u1("compaction 3"), Step::line("compaction 4")]);
    // Disabled again (twice), the credentials no longer matter.
    all.extend([root("auth disable"), root("auth disable"), Step::line("auth disable")]);
    all.extend([
        Step::line("get d"),
        as_user("u1:wrong", "get d"),
        Step::line("user list"),
        Step::line("put d y"),
    ]);
    all
}

fn time_to_live(step: Step) -> Step {
    step.mask_numbers_after(&REMAINING_TTL)
}

fn lease_steps() -> Vec<Step> {
    let mut all = auth_setup();
    all.extend([
        u1("lease grant 60"),
        // etcd 3.4 checks no permission for grants: anyone may.
        Step::line("lease grant 60"),
        u1("put --lease {L1} foo lv"),
        u1("put --lease {L1} zzz lz"),
        u1("put --lease {L1} d x").fails(),
        // The keys' names take read permission on each in oxetcd (etcd 3.6's rule; 3.4
        // shows them to anyone): see `deliberate_differences_under_auth`.
        time_to_live(root("lease timetolive --keys {L1}")),
        time_to_live(root("lease timetolive --keys {L1} -w json")),
        u1("lease list"),
        u1("lease keep-alive --once {L1}"),
        // u2 may write foo but not zzz.
        root("role add r2"),
        root("role grant-permission r2 readwrite foo"),
        root("user add u2:pw"),
        root("user grant-role u2 r2"),
        // Revoking deletes the lease's keys: the user needs write permission on each.
        as_user("u2:pw", "lease revoke {L1}").fails(),
        Step::line("lease revoke {L1}").fails(),
        as_user("u2:pw", "lease revoke {L2}"),
        time_to_live(root("lease timetolive --keys {L1}")),
        u1("lease revoke {L1}"),
        Step::args(&["get", "--from-key", "", "-w", "json", "--user", ROOT]),
        u1("lease timetolive {L1}"),
        u1("lease revoke {L1}").fails(),
        u1("lease keep-alive --once {L1}").fails(),
        root("lease list"),
    ]);
    all
}

fn password_and_deletion_steps() -> Vec<Step> {
    let mut all = auth_setup();
    all.extend([
        u1("get foo"),
        root("user passwd u1 --interactive=false").stdin("newpw\n"),
        u1("get foo").fails(),
        as_user("u1:newpw", "get foo"),
        // Changing a password, even one's own, takes root.
        as_user("u1:newpw", "user passwd u1 --interactive=false").stdin("again\n").fails(),
        root("user passwd nosuch --interactive=false").stdin("x\n").fails(),
        // A deleted role leaves its users.
        root("role delete r1"),
        root("user get u1"),
        root("user get u1 --detail"),
        root("user get u1 -w json"),
        as_user("u1:newpw", "get foo").fails(),
        root("role get r1").fails(),
        root("role delete r1").fails(),
        // A deleted user can no longer authenticate; added again, it has no roles.
        root("user delete u1"),
        as_user("u1:newpw", "get foo").fails(),
        root("user get u1").fails(),
        root("user delete u1").fails(),
        root("user add u1:pw"),
        root("user get u1"),
        u1("get foo").fails(),
        root("user list"),
        root("role list"),
    ]);
    all
}

fn endpoint_steps() -> Vec<Step> {
    let mut all = auth_setup();
    let status =
        |step: Step| step.mask_columns(&STATUS_MASK).mask_numbers_after(&RAFT_INDEX_FIELDS);
    all.extend([
        // etcdctl 3.4's health check reads the key `health`: without a user it fails;
        // a user without permission on it is denied, which etcdctl counts as healthy.
        Step::line("endpoint health").fails(),
        u1("endpoint health"),
        u1("endpoint health -w json"),
        root("endpoint health"),
        root("endpoint health -w table").mask_columns(&HEALTH_MASK),
        as_user("u1:wrong", "endpoint health").fails(),
        status(Step::line("endpoint status")),
        status(u1("endpoint status -w json")),
        status(root("endpoint status -w table")),
        // HashKV takes root; etcd 3.4 reports its refusals with code Unknown, oxetcd with
        // etcd's codes: see `deliberate_differences_under_auth`.
        root("endpoint hashkv"),
        root("endpoint hashkv -w json"),
        Step::line("member list"),
        u1("member list -w json"),
        Step::line("alarm list"),
    ]);
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_and_roles_with_auth_disabled() {
    same_as_etcd(users_and_roles_steps()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_enabled_permissions_of_a_user_and_of_root() {
    same_as_etcd(permission_steps()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_under_auth() {
    same_as_etcd(lease_steps()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_change_and_deleted_users_and_roles() {
    same_as_etcd(password_and_deletion_steps()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_commands_under_auth() {
    same_as_etcd(endpoint_steps()).await;
}

/// Where oxetcd answers differently from etcd 3.4 on purpose (docs/compatibility.md,
/// "Auth"): a maintenance request refused for want of root carries etcd's code and
/// message (`PermissionDenied`, `etcdserver: permission denied`; etcd 3.4 sends its auth
/// package's text with code Unknown, which clients cannot map), and the names of a
/// lease's keys take read permission on each key (etcd 3.6's rule).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliberate_differences_under_auth() {
    tokio::time::timeout(std::time::Duration::from_secs(120), async {
        init_test_logs();
        let oxetcd = start_oxetcd().await;
        let target = Target::connect(std::slice::from_ref(&oxetcd.endpoint)).await;
        let mut all = auth_setup();
        all.extend([
            u1("lease grant 60"),
            u1("put --lease {L1} foo lv"),
            u1("put --lease {L1} zzz lz"),
        ]);
        let setup = all.len();
        let expected = [
            (Step::line("endpoint hashkv"), "Error: etcdserver: user name is empty"),
            (u1("endpoint hashkv"), "Error: etcdserver: permission denied"),
            (u1("lease timetolive --keys {L1}"), "Error: etcdserver: permission denied"),
            (Step::line("lease timetolive --keys {L1}"), "Error: etcdserver: user name is empty"),
            (u1("lease timetolive {L1}"), ""),
        ];
        all.extend(expected.iter().map(|(step, _)| step.clone()));
        let outputs = target.run_all(&all).await;
        for ((output, transcript), step) in outputs.iter().zip(&all).take(setup) {
            assert!(step.expect_failure || output.code == Some(0), "setup failed:\n{transcript}");
        }
        for ((output, transcript), (_, error)) in outputs[setup..].iter().zip(&expected) {
            if error.is_empty() {
                assert_eq!(output.code, Some(0), "{transcript}");
            } else {
                assert!(output.code != Some(0) && output.stderr.contains(error), "{transcript}");
            }
        }
        oxetcd.stop().await;
    })
    .await
    .expect("the scenario finishes within 2 minutes");
}
