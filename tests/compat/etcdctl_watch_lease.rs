//! etcdctl 3.4.23's `watch` and `lease` commands against the reference etcd and against
//! oxetcd, outputs compared after normalization (see `oxetcd_tests::etcdctl`; lease
//! ids, which are random, become `<LEASE_n>` by the order of their grants).
//!
//! Watches are stopped once they printed what the scenario wrote for them; one runs in
//! the background while the writes it reports happen, and the interactive one is told
//! to watch, then asked for progress, whose answer shows it is in place.

use oxetcd_tests::etcdctl::{Step, same_as_etcd, steps, txn_input};

/// Where `lease timetolive` prints the remaining TTL, which depends on timing: masked.
/// The granted TTL, the keys and an expired lease's -1 stay strict.
const REMAINING_TTL: [&str; 3] = ["remaining(", "\"ttl\":", "\"TTL\" : "];

fn time_to_live(line: &str) -> Step {
    Step::line(line).mask_numbers_after(&REMAINING_TTL)
}

fn lease_steps() -> Vec<Step> {
    let mut all = steps(&[
        "lease grant 60",
        "lease grant 120 -w json",
        "lease grant 30 -w fields",
        // Below the minimum (1.5 election timeouts, rounded up to 2 s): raised to it.
        "lease grant 1",
        "lease revoke {L4}",
        "lease grant 0",
        "lease revoke {L5} -w json",
        "put --lease {L1} k1 v1",
        "put --lease={L1} k2 v2",
        "put --lease {L2} other o",
        "put --lease {L2} another a",
        "put plain p",
        "get k1 -w json",
        "get --prefix k -w fields",
        // Keeps the lease; a put without one detaches the key from it.
        "put --ignore-lease k1 v1b",
        "put k2 v2b",
        "get --prefix k -w json",
        "lease list",
        "lease list -w json",
        "lease list -w fields",
        "lease keep-alive --once {L1}",
        "lease keep-alive --once -w json {L2}",
        "lease keep-alive --once -w fields {L3}",
    ]);
    all.extend([
        time_to_live("lease timetolive {L1}"),
        time_to_live("lease timetolive --keys {L1}"),
        time_to_live("lease timetolive --keys {L2}"),
        time_to_live("lease timetolive --keys {L2} -w json"),
        time_to_live("lease timetolive {L3} -w fields"),
        time_to_live("lease timetolive --keys {L3} -w json"),
    ]);
    // Revoking deletes the lease's keys in one revision.
    all.extend(steps(&[
        "lease revoke {L2}",
        "get --from-key a -w json",
        "lease timetolive {L2}",
        "lease timetolive --keys {L2} -w json",
        "lease timetolive 1234",
        "lease list",
    ]));
    all.extend(
        [
            "lease revoke {L2}",
            "lease revoke 1234 -w json",
            "lease keep-alive --once {L2}",
            "put --lease {L2} k3 v",
            "put --lease 1234 k3 v",
            "lease grant 9000000001",
            "lease grant",
            "lease grant abc",
            "lease revoke",
            "lease timetolive",
            "lease timetolive zzz",
            "lease keep-alive",
        ]
        .into_iter()
        .map(|line| Step::line(line).fails()),
    );
    // A kept-alive lease: keep-alives every third of its TTL.
    all.push(Step::line("lease grant 5"));
    all.push(Step::line("lease keep-alive {L6}").stop_after(2));
    // An abandoned lease expires, and its key goes with it: the watch ends on the delete.
    all.extend(steps(&["lease grant 2", "put --lease {L7} expiring e"]));
    all.push(Step::line("watch --rev 1 expiring").stop_after(6));
    all.extend(steps(&["lease timetolive {L7}", "get expiring -w json"]));
    all
}

/// Revisions 2 to 8: a key's life (put, update, delete), a sibling prefix, a txn of two
/// puts, and a key elsewhere.
fn watch_seed() -> Vec<Step> {
    let mut all = steps(&["put foo a", "put foo b", "del foo", "put foo/x 1", "put fop y"]);
    all.push(Step::line("txn").stdin(txn_input(&[], &["put foo/y 1", "put foo/z 2"], &[])));
    all.push(Step::line("put bar z"));
    all
}

fn watch_steps() -> Vec<Step> {
    let mut all = watch_seed();
    // History: each event prints its type, key and value (3 lines); with --prev-kv an
    // event that has a previous value prints it first (5 lines).
    all.extend([
        Step::line("watch --rev 1 foo").stop_after(3 * 3),
        Step::line("watch --rev 1 --prefix foo").stop_after(6 * 3),
        Step::line("watch --rev 1 --prefix fo").stop_after(7 * 3),
        Step::line("watch --rev 3 --prefix foo --prev-kv").stop_after(2 * 5 + 3 * 3),
        Step::line("watch --rev 1 foo foo0 -w json").stop_after(1),
        Step::line("watch --rev 2 --prefix foo -w fields").stop_after(4 + 6 * 7),
        Step::line("watch --rev 7 --prefix foo/ --prev-kv -w json").stop_after(1),
    ]);
    // Live: from the next revision, while the writes happen.
    all.push(
        Step::line("watch --rev 9 --prefix live/ --prev-kv")
            .stop_after(3 + 5 + 5 + 3)
            .in_background(""),
    );
    all.extend(steps(&["put live/a 1", "put live/a 2", "del live/a", "put live/b 3"]));
    // Interactive, on stdin: bad lines are reported and skipped; the progress answer
    // shows the watch is in place before the writes.
    let commands = "bogus\nwatch\nwatch --prefix inter/ --prev-kv\nprogress\n";
    all.push(
        Step::line("watch -i")
            .stdin(commands)
            .stop_after(1 + 3 + 5)
            .in_background("progress notify"),
    );
    all.extend(steps(&["put inter/a 1", "put inter/a 2"]));
    // A start revision that was compacted cancels the watch; one at it is served.
    all.push(Step::line("compaction 5"));
    all.push(Step::line("watch --rev 2 foo").fails());
    all.push(Step::line("watch --rev 5 --prefix foo -w json").stop_after(1));
    all.extend(
        ["watch", "watch --prefix foo bar", "watch --rev x foo"]
            .into_iter()
            .map(|line| Step::line(line).fails()),
    );
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_grant_revoke_timetolive_list_keep_alive_and_put_with_a_lease() {
    same_as_etcd(lease_steps()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_prefix_rev_prev_kv_and_interactive() {
    same_as_etcd(watch_steps()).await;
}
