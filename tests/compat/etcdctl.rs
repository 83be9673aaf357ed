//! etcdctl 3.4.23 against the reference etcd and against oxetcd: the same commands,
//! outputs compared after normalizing what legitimately differs (ids, times).
//!
//! Each scenario is one list of etcdctl invocations, run in order against a fresh
//! reference etcd and a fresh single oxetcd member; every step's normalized
//! transcript (command, exit code, stdout, stderr) must be identical. Normalization
//! lives in `oxetcd_tests::etcdctl`: ids, names, URLs, endpoints, server version,
//! raft terms, db sizes and timings are replaced by placeholders; everything else
//! (revisions, values, counts, `more`, error messages, exit codes) is compared as is.
//!
//! etcdctl is given scheme-less endpoints (`127.0.0.1:PORT`), except in
//! `endpoint_commands_with_http_endpoints`: with an `http://` endpoint, etcdctl 3.4
//! puts the scheme into the gRPC `:authority` of `endpoint status` / `endpoint hashkv`
//! / `defrag` (accepted through oxetcd's patched h2, third_party/h2/OXETCD-PATCH.md).

use oxetcd_tests::etcdctl::{
    Output, SCENARIO_TIMEOUT, Step, Target, same_as_etcd, same_as_etcd_with_url_endpoints, steps,
    txn_input,
};
use oxetcd_tests::member::TestCluster;

/// etcd's default `--max-request-bytes`, 1.5 MiB.
const MAX_REQUEST_BYTES: usize = 3 * 1024 * 1024 / 2;

/// etcd's default `--max-txn-ops`.
const MAX_TXN_OPS: usize = 128;

/// Keys `foo`, `foo1`..`foo3`, `zoo`, … with several versions, so that every sort
/// target orders them differently and has ties (ties stay in key order).
fn seed_keys() -> Vec<Step> {
    let mut seed = steps(&[
        "put foo bar",
        "put --prev-kv foo bar2",
        "put --prev-kv -w json foo bar3",
        "put foo1 v1",
        "put foo2 v2",
        "put foo3 a3",
        "put zoo z",
        "put --prev-kv brand-new n",
        "put -w json foo2 v2b",
        "put -w fields foo1 v1c",
    ]);
    seed.push(Step::args(&["put", "spaced key", "a value, with a comma"]));
    seed
}

const SORT_TARGETS: [&str; 5] = ["KEY", "VERSION", "CREATE", "MODIFY", "VALUE"];
const SORT_ORDERS: [&str; 2] = ["ASCEND", "DESCEND"];

fn put_get_steps() -> Vec<Step> {
    let mut all = seed_keys();
    all.extend(steps(&[
        "get foo",
        "get foo -w json",
        "get foo -w fields",
        "get foo -w simple",
        "get missing",
        "get missing -w json",
        "get missing -w fields",
        "get --prefix foo",
        "get --prefix foo -w json",
        "get --prefix foo --limit 2",
        "get --prefix foo --limit 2 -w json",
        "get --prefix foo --limit 2 -w fields",
        "get --prefix foo --limit 4 -w json",
        "get --prefix foo --limit 5 -w json",
        "get --from-key foo2",
        "get --from-key foo2 -w json",
        "get --from-key foo2 --limit 1 -w json",
        "get foo foo3",
        "get foo foo3 -w json",
        "get --rev 2 foo",
        "get --rev 3 foo -w json",
        "get --rev 4 --prefix foo -w json",
        "get --rev 1 foo -w json",
        "get --rev 7 --from-key a -w json",
        "get --prefix foo --order DESCEND",
        "get --prefix foo --order ASCEND -w json",
        "get --prefix foo --keys-only",
        "get --prefix foo --keys-only -w json",
        "get --prefix foo --keys-only -w fields",
        "get --prefix foo --print-value-only",
        "get --prefix foo --print-value-only --keys-only",
        "get --prefix foo --consistency=s",
        "get --prefix foo --consistency=s -w json",
        "get --prefix foo --consistency=l --limit 1 -w json",
        "get --hex --prefix foo",
        "get --hex foo -w json",
        "get --prefix zo -w fields",
    ]));
    // Sorting: every target, both orders, alone and with a limit.
    for target in SORT_TARGETS {
        for order in SORT_ORDERS {
            all.push(Step::line(&format!("get --prefix foo --sort-by {target} --order {order}")));
            all.push(Step::line(&format!(
                "get --from-key a --sort-by {target} --order {order} --limit 3 -w json"
            )));
        }
        all.push(Step::line(&format!("get --prefix foo --sort-by {target} --keys-only")));
    }
    // Puts that keep the value or the lease of the key they update.
    all.extend(steps(&[
        "put --ignore-value zoo",
        "put --ignore-value --prev-kv -w json zoo",
        "put --ignore-lease zoo z2",
        "get zoo -w json",
        "get --rev 5 --prefix foo --keys-only --limit 2 -w json",
        "get --rev 9 --from-key foo --sort-by VALUE --order DESCEND --limit 3 -w json",
    ]));
    all.push(Step::line("put --ignore-value absent").fails());
    all.push(Step::line("put --ignore-lease absent v").fails());
    all.push(Step::line("put --ignore-value zoo value").fails());
    all.push(Step::args(&["get", "spaced key"]));
    all.push(Step::args(&["get", "--from-key", "", "-w", "json"]));
    all.push(Step::args(&["get", "--prefix", "", "--keys-only"]));
    // Failures decided by etcdctl itself, here so that they stay the same.
    all.extend(
        [
            // etcdctl 3.4 has no --count-only (3.5 added it).
            "get --prefix foo --count-only",
            "get --prefix foo --sort-by NAME",
            "get --prefix foo --order SIDEWAYS",
            "get foo -w table",
            "get --prefix",
        ]
        .into_iter()
        .map(|line| Step::line(line).fails()),
    );
    all
}

fn del_steps() -> Vec<Step> {
    let mut all = steps(&[
        "put a 1",
        "put b 2",
        "put c 3",
        "put d 4",
        "put e 5",
        "put f 6",
        "put foo1 x",
        "put foo2 y",
        "put foo3 z",
        "put k1 1",
        "put k2 2",
        "put x1 1",
        "put x2 2",
        "put y 1",
        "put z 1",
        "put z 2",
    ]);
    all.extend(steps(&[
        "del a",
        "del a",
        "del missing",
        "del -w json missing",
        "del --prev-kv b",
        "del --prev-kv -w json c",
        "del -w fields d",
        "del e g",
        "del --prefix foo",
        "del --prefix -w json k",
        "del --prefix --prev-kv x",
        "get --from-key a -w json",
        "del --from-key y -w json",
        "del --from-key y",
        "get --from-key a -w json",
        "get --rev 17 --from-key a -w json",
        "get --rev 18 --from-key a -w json",
    ]));
    all.push(Step::args(&["del", "--from-key", "", "--prev-kv", "-w", "json"]));
    all.push(Step::args(&["get", "--from-key", "", "-w", "json"]));
    all.push(Step::line("del --prefix").fails());
    all
}

fn txn_steps() -> Vec<Step> {
    let txn = |flags: &str, compares: &[&str], success: &[&str], failure: &[&str]| {
        Step::line(&format!("txn {flags}")).stdin(txn_input(compares, success, failure))
    };
    let mut all = steps(&["put a 1", "put b 2", "put c 3", "put c 33"]);
    let succeeding: [&[&str]; 3] = [
        &[r#"value("a") = "1""#, r#"mod("b") > "0""#],
        &["put x y", "get a", "del b"],
        &["put z w"],
    ];
    let failing: [&[&str]; 3] =
        [&[r#"value("a") = "999""#], &["put x y2"], &["put z w", "get --prefix x", "del c"]];
    for flags in ["-i", "-i -w json", "", "-w json", "-w fields"] {
        all.push(txn(flags, succeeding[0], succeeding[1], succeeding[2]));
        all.push(txn(flags, failing[0], failing[1], failing[2]));
    }
    all.extend([
        // Every compare target and operator, on present and absent keys.
        txn(
            "-w json",
            &[
                r#"ver("a") = "1""#,
                r#"version("c") > "1""#,
                r#"create("a") < "3""#,
                r#"c("c") = "4""#,
                r#"mod("a") != "0""#,
                r#"m("z") > "1""#,
                r#"val("a") != "2""#,
                r#"value("x") = "y""#,
                r#"ver("absent") = "0""#,
                r#"create("absent") = "0""#,
            ],
            &["get --prefix a", "put --prev-kv a 11", "del --prev-kv z"],
            &["put fail 1"],
        ),
        txn("-w json", &[r#"value("absent") = """#], &["put wrong 1"], &["get absent"]),
        txn("-w json", &[r#"ver("c") < "2""#], &[], &["get --from-key a --limit 2"]),
        // No compares: the success branch runs.
        txn("-i", &[], &["put only-success 1", "get --from-key o"], &["put never 1"]),
        txn("-w json", &[], &[], &[]),
        // Ranges inside a txn, with every get flag.
        txn(
            "-w json",
            &[],
            &[
                "get --prefix a --keys-only",
                "get --from-key b --limit 1",
                "get --prefix x --sort-by VALUE --order DESCEND",
                "get --rev 2 a",
                "del --from-key y --prev-kv",
            ],
            &[],
        ),
    ]);
    all.extend([
        // Rejected by the server.
        txn("", &[], &["put dup 1", "put dup 2"], &[]).fails(),
        txn("", &[], &["put dup 1", "del dup"], &[]).fails(),
        txn("-w json", &[], &["get --rev 100 a"], &[]).fails(),
        // Rejected by etcdctl itself.
        txn("", &[r#"bogus("a") = "1""#], &[], &[]).fails(),
        txn("", &["not a compare"], &[], &[]).fails(),
        txn("", &[], &["frobnicate a"], &[]).fails(),
        Step::line("txn").stdin("").fails(),
        Step::line("txn extra-argument").fails(),
    ]);
    // At the limit of operations, and one over it.
    let ops = |n: usize| (0..n).map(|i| format!("put many{i} v{i}")).collect::<Vec<_>>();
    let max: Vec<String> = ops(MAX_TXN_OPS);
    let max: Vec<&str> = max.iter().map(String::as_str).collect();
    all.push(txn("", &[], &max, &[]));
    let over: Vec<String> = ops(MAX_TXN_OPS + 1);
    let over: Vec<&str> = over.iter().map(String::as_str).collect();
    all.push(txn("", &[], &[], &over).fails());
    all.push(txn("", &[], &over, &[]).fails());
    all.push(Step::args(&["get", "--from-key", "", "--keys-only", "--limit", "5", "-w", "json"]));
    all.push(Step::args(&["get", "--from-key", "", "-w", "json"]));
    all
}

fn compaction_steps() -> Vec<Step> {
    let ok = Step::line;
    let fail = |line: &str| Step::line(line).fails();
    vec![
        ok("put k v1"),
        ok("put k v2"),
        ok("put k v3"),
        ok("put other o"),
        ok("put k v4"),
        ok("del other"),
        ok("put k v5"),
        ok("compaction 3"),
        fail("get k --rev 2"),
        fail("get k --rev 1 -w json"),
        ok("get k --rev 3"),
        ok("get k --rev 3 -w json"),
        ok("get k --rev 4 -w json"),
        ok("get --from-key a --rev 5 -w json"),
        fail("compaction 3"),
        fail("compaction 2"),
        fail("compaction 100"),
        ok("endpoint hashkv -w json"),
        ok("endpoint hashkv --rev 5 -w json"),
        ok("endpoint hashkv --rev 8"),
        fail("endpoint hashkv --rev 2"),
        ok("compaction --physical 6"),
        fail("get k --rev 5"),
        fail("get --prefix k --rev 4 -w json"),
        fail("compaction 6"),
        ok("get k --rev 6 -w json"),
        ok("get --from-key a --rev 7 -w json"),
        ok("get --from-key a -w json"),
        ok("endpoint hashkv -w json"),
        ok("compaction 8"),
        fail("compaction 8"),
        fail("get k --rev 7"),
        ok("get k -w json"),
        ok("endpoint hashkv -w json"),
        ok("del --prev-kv -w json k"),
        ok("get k --rev 8 -w json"),
        fail("compaction not-a-number"),
        Step::line("txn -w json").stdin(txn_input(&[], &["get --rev 7 k"], &[])).fails(),
    ]
}

/// Endpoint status columns: 3 is the db size, 6 the raft term.
const STATUS_MASK: [usize; 2] = [3, 6];
/// Endpoint status columns 7 and 8: the raft index and applied index.
const RAFT_INDEX_COLUMNS: [usize; 2] = [7, 8];
/// The raft index and applied index in endpoint status' json and fields output.
const RAFT_INDEX_FIELDS: [&str; 4] =
    ["\"raftIndex\":", "\"raftAppliedIndex\":", "\"RaftIndex\" : ", "\"RaftAppliedIndex\" : "];
/// Endpoint health columns: 2 is the time taken.
const HEALTH_MASK: [usize; 1] = [2];
const FORMATS: [&str; 4] = ["simple", "json", "table", "fields"];

/// A few writes and a delete, so that hashes and revisions mean something.
fn status_seed() -> Vec<Step> {
    steps(&["put a 1", "put b 2", "del a", "put c 3", "put b 22"])
}

/// `endpoint status` in every format.
fn endpoint_status(format: &str) -> Step {
    Step::line(&format!("endpoint status -w {format}")).mask_columns(&STATUS_MASK)
}

/// The endpoint commands in every format, with `member list` if `member_list`.
fn endpoint_member_steps(member_list: bool) -> Vec<Step> {
    let mut all = status_seed();
    for format in FORMATS {
        // The raft index is compared by its own test (see endpoint_status_raft_index).
        let mut masked = STATUS_MASK.to_vec();
        masked.extend(RAFT_INDEX_COLUMNS);
        all.push(
            endpoint_status(format).mask_columns(&masked).mask_numbers_after(&RAFT_INDEX_FIELDS),
        );
        let w = format!("-w {format}");
        all.push(Step::line(&format!("endpoint health {w}")).mask_columns(&HEALTH_MASK));
        all.push(Step::line(&format!("endpoint hashkv {w}")));
        all.push(Step::line(&format!("endpoint hashkv --rev 3 {w}")));
        if member_list {
            all.push(Step::line(&format!("member list {w}")));
        }
    }
    // etcd 3.4 leaves the header out of Alarm responses, later versions fill it in
    // (as oxetcd does), so `alarm list -w json` is not compared.
    all.extend(steps(&["alarm list", "alarm disarm", "endpoint hashkv --rev 4 -w json"]));
    all.push(Step::line("endpoint hashkv --rev 100").fails());
    all
}

fn endpoint_status_raft_index_steps() -> Vec<Step> {
    let mut all = status_seed();
    all.extend(FORMATS.map(endpoint_status));
    all
}

/// A value of `len` bytes, for `etcdctl put <key>` to read from stdin.
fn value_of(len: usize) -> Vec<u8> {
    vec![b'v'; len]
}

fn error_steps() -> Vec<Step> {
    let mut all = vec![
        Step::args(&["put", "", "x"]).fails(),
        Step::args(&["get", ""]).fails(),
        Step::args(&["del", ""]).fails(),
        Step::line("get foo --rev 2").fails(),
        Step::line("put foo bar"),
        Step::line("get foo --rev 2"),
        Step::line("get foo --rev 3").fails(),
        Step::line("get --prefix foo --rev 100 -w json").fails(),
        Step::line("get foo --rev -1"),
        Step::line("get foo --limit -1"),
        Step::line("put no-value").fails(),
        Step::line("put --lease 1234 k v").fails(),
        Step::line("put no-value").stdin("").fails(),
        Step::line("put empty-value").stdin("\n"),
        Step::args(&["put", "empty-value-2", ""]),
        Step::line("get --prefix empty-value -w json"),
        // A value just under the request limit is accepted, one over it is refused by
        // the server, and a value over gRPC's 2 MiB is refused by the client.
        Step::line("put big").stdin(value_of(MAX_REQUEST_BYTES - 1024)),
        Step::line("get big --keys-only -w json"),
        Step::line("put too-big").stdin(value_of(MAX_REQUEST_BYTES + 1)).fails(),
        Step::line("put too-big").stdin(value_of(MAX_REQUEST_BYTES + 400 * 1024)).fails(),
        Step::line("put far-too-big").stdin(value_of(3 * 1024 * 1024)).fails(),
        Step::line("get --prefix too-big -w json"),
    ];
    let too_many: Vec<String> = (0..=MAX_TXN_OPS).map(|i| format!("get k{i}")).collect();
    let too_many: Vec<&str> = too_many.iter().map(String::as_str).collect();
    all.push(Step::line("txn").stdin(txn_input(&[], &too_many, &[])).fails());
    all.push(Step::args(&["get", "--from-key", "", "--keys-only"]));
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_and_get_with_every_flag() {
    same_as_etcd(put_get_steps()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn del_single_range_prefix_from_key_prev_kv() {
    same_as_etcd(del_steps()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn txn_interactive_succeeding_failing_and_limits() {
    same_as_etcd(txn_steps()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_and_reads_of_compacted_revisions() {
    same_as_etcd(compaction_steps()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_status_health_hashkv_and_member_list() {
    same_as_etcd(endpoint_member_steps(true)).await;
}

/// The same with `--endpoints http://127.0.0.1:PORT`: etcdctl 3.4 then sends Status and
/// HashKV with the scheme in the HTTP/2 `:authority`, which etcd's server takes. (Not
/// `member list`: the endpoint is etcd's client URL, but not the oxetcd test member's,
/// which advertises a URL of its own, so the two would be normalized apart.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_commands_with_http_endpoints() {
    same_as_etcd_with_url_endpoints(endpoint_member_steps(false)).await;
}

/// The raft index after the same writes: equal only if oxetcd puts into the log what etcd
/// does (bootstrap conf change, the leader's empty entry, the member's attributes, the
/// cluster version).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_status_raft_index() {
    same_as_etcd(endpoint_status_raft_index_steps()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_cases() {
    same_as_etcd(error_steps()).await;
}

/// `defrag` and `alarm list` answer as etcd's after writes and a compaction (the
/// snapshot commands are in `etcdctl_snapshot.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defrag_and_alarms() {
    same_as_etcd(steps(&[
        "put a 1",
        "put a 2",
        "put b 3",
        "compact 3 --physical",
        "defrag",
        "alarm list",
        "alarm disarm",
        "get a",
    ]))
    .await;
}

/// Three oxetcd members: `member list` shows all three started with their names from
/// any member, every member reports the same leader, and each serves reads and writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_member_cluster() {
    tokio::time::timeout(SCENARIO_TIMEOUT, async {
        let (cluster, all, each) = start_cluster().await;
        let leader = cluster.leader().await;

        // member list, from every member: three started members, named, in the same
        // order with the same URLs.
        let mut names: Vec<String> = all.members.iter().map(|m| m.name.clone()).collect();
        names.sort();
        assert_eq!(names, cluster.names, "MemberList names");
        let expected: String = all
            .members
            .iter()
            .map(|m| {
                format!(
                    "{:x}, started, {}, {}, {}, false\n",
                    m.id,
                    m.name,
                    m.peer_ur_ls.join(","),
                    m.client_ur_ls.join(",")
                )
            })
            .collect();
        for target in &each {
            let output = ok(target, &Step::line("member list")).await;
            assert_eq!(output.stdout, expected, "member list from {}", target.endpoints);
            let json = ok(target, &Step::line("member list -w json")).await.stdout;
            for member in &all.members {
                assert!(
                    json.contains(&format!("\"ID\":{},\"name\":\"{}\"", member.id, member.name)),
                    "member list -w json from {} lacks {} ({:x}):\n{json}",
                    target.endpoints,
                    member.name,
                    member.id
                );
            }
        }

        // endpoint status on all three: one leader, the same for all, and it is the
        // member the cluster agrees on.
        let leader_id = cluster.members[leader].as_ref().expect("leader runs").server.member_id();
        let json = ok(&all, &Step::line("endpoint status -w json")).await.stdout;
        let leaders = numbers_after(&json, "\"leader\":");
        assert_eq!(leaders, vec![leader_id; 3], "leaders in endpoint status -w json:\n{json}");
        let member_ids = numbers_after(&json, "\"member_id\":");
        let mut listed: Vec<u64> = all.members.iter().map(|m| m.id).collect();
        let mut reporting = member_ids.clone();
        listed.sort_unstable();
        reporting.sort_unstable();
        assert_eq!(reporting, listed, "every member answers endpoint status:\n{json}");
        let simple = ok(&all, &Step::line("endpoint status")).await.stdout;
        let leader_rows: Vec<&str> =
            simple.lines().filter(|l| l.split(", ").nth(4) == Some("true")).collect();
        assert_eq!(
            leader_rows,
            vec![
                simple
                    .lines()
                    .find(|l| l.split(", ").nth(1) == Some(&format!("{leader_id:x}")))
                    .expect("the leader's row")
            ],
            "exactly the leader says IS LEADER:\n{simple}"
        );
        // One member at a time: concurrent reads hit the bug that
        // cluster_endpoint_health_of_all_members_at_once shows.
        for target in &each {
            let health = ok(target, &Step::line("endpoint health")).await;
            assert!(
                health.stderr.contains("is healthy: successfully committed proposal"),
                "{} is healthy:\n{}",
                target.endpoints,
                health.stderr
            );
        }

        // Writes through every member, reads from every member (linearizable and, once
        // caught up, serializable) agree.
        for (i, target) in each.iter().enumerate() {
            ok(target, &Step::line(&format!("put from-{i} v{i}"))).await;
        }
        let reads: Vec<String> = {
            let mut reads = Vec::new();
            for target in &each {
                reads.push(ok(target, &Step::line("get --prefix from- -w json")).await.stdout);
            }
            reads
        };
        let bodies: Vec<&str> = reads.iter().map(|r| after_header(r)).collect();
        assert!(
            bodies.iter().all(|b| *b == bodies[0]) && bodies[0].contains("\"count\":3"),
            "every member reads the same three keys:\n{reads:#?}"
        );
        let expected_keys = "from-0\nv0\nfrom-1\nv1\nfrom-2\nv2\n";
        for target in &each {
            let output = ok(target, &Step::line("get --prefix from- --consistency=s")).await;
            assert_eq!(output.stdout, expected_keys, "serializable read on {}", target.endpoints);
        }
        let hashes: Vec<Vec<u64>> = {
            let mut hashes = Vec::new();
            for target in &each {
                let output = ok(target, &Step::line("endpoint hashkv -w json")).await.stdout;
                hashes.push(numbers_after(&output, "\"hash\":"));
            }
            hashes
        };
        assert!(hashes.iter().all(|h| *h == hashes[0]), "hashkv agrees: {hashes:?}");
        cluster.stop_all().await;
    })
    .await
    .unwrap_or_else(|_| panic!("the cluster scenario did not finish within {SCENARIO_TIMEOUT:?}"));
}

/// A 3-member oxetcd cluster, as one target (all endpoints) and as one per member.
async fn start_cluster() -> (TestCluster, Target, Vec<Target>) {
    let cluster = TestCluster::start(3).await;
    let urls: Vec<String> = (0..3).map(|i| cluster.endpoint(i)).collect();
    let all = Target::connect(&urls).await;
    let mut each = Vec::new();
    for url in &urls {
        each.push(Target::connect(std::slice::from_ref(url)).await);
    }
    (cluster, all, each)
}

/// `endpoint health` on all members at once sends a linearizable Get to each at the
/// same moment. oxetcd numbers its ReadIndex requests 1, 2, 3, … on every member, so
/// two followers send the leader ReadIndex requests with the same context; raft keeps
/// one pending request per context, so one follower never hears back and its read
/// times out ("context deadline exceeded" after 5 s). etcd uses its unique request
/// ids (member id in the high bits) as the context.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_endpoint_health_of_all_members_at_once() {
    tokio::time::timeout(SCENARIO_TIMEOUT, async {
        let (cluster, all, _) = start_cluster().await;
        cluster.leader().await;
        for _round in 0..5 {
            let health = ok(&all, &Step::line("endpoint health")).await;
            assert_eq!(
                health.stderr.matches("is healthy: successfully committed proposal").count(),
                3,
                "every member is healthy:\n{}",
                health.stderr
            );
        }
        cluster.stop_all().await;
    })
    .await
    .unwrap_or_else(|_| panic!("the cluster scenario did not finish within {SCENARIO_TIMEOUT:?}"));
}

/// Runs `step`, failing the test unless etcdctl succeeds.
async fn ok(target: &Target, step: &Step) -> Output {
    let output = target.run(step).await;
    step.check_expectation(&target.endpoints, &output);
    output
}

/// The numbers that follow each occurrence of `prefix`.
fn numbers_after(text: &str, prefix: &str) -> Vec<u64> {
    text.match_indices(prefix)
        .map(|(at, _)| {
            let rest = &text[at + prefix.len()..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().unwrap_or_else(|_| panic!("a number after {prefix} in {text}"))
        })
        .collect()
}

/// A JSON range response without its header (which names the member that answered).
fn after_header(json: &str) -> &str {
    json.find("},").map_or(json, |at| &json[at..])
}
