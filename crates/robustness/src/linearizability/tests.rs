//! The checker accepts linearizable histories (concurrent and unanswered operations
//! included) and rejects a stale read, a lost write and a reordering.

use super::*;
use crate::history::{Compare, Kv, Operation, Outcome, Request, Response};

const LIMIT: usize = 100_000;

fn put(
    client: u32,
    invoke: u64,
    complete: u64,
    key: &str,
    value: &str,
    revision: i64,
) -> Operation {
    Operation {
        client,
        invoke,
        complete: Some(complete),
        request: Request::Put { key: key.into(), value: value.into() },
        outcome: Outcome::Ok(Response::Put { revision }),
    }
}

fn unanswered_put(client: u32, invoke: u64, key: &str, value: &str) -> Operation {
    Operation {
        client,
        invoke,
        complete: None,
        request: Request::Put { key: key.into(), value: value.into() },
        outcome: Outcome::Unknown("timed out".into()),
    }
}

/// A read of `key` that saw `seen` (value, mod_revision) at header revision `revision`.
fn get(
    client: u32,
    invoke: u64,
    complete: u64,
    key: &str,
    seen: Option<(&str, i64)>,
    revision: i64,
) -> Operation {
    let kvs = seen
        .map(|(value, mod_revision)| Kv { key: key.into(), value: value.into(), mod_revision })
        .into_iter()
        .collect();
    Operation {
        client,
        invoke,
        complete: Some(complete),
        request: Request::Range { key: key.into(), range_end: None },
        outcome: Outcome::Ok(Response::Range { revision, kvs }),
    }
}

fn cas(
    client: u32,
    invoke: u64,
    complete: Option<u64>,
    key: &str,
    expected_mod_revision: i64,
    value: &str,
    outcome: Outcome,
) -> Operation {
    Operation {
        client,
        invoke,
        complete,
        request: Request::Txn {
            key: key.into(),
            compare: Compare::ModRevision(expected_mod_revision),
            value: value.into(),
        },
        outcome,
    }
}

fn delete(
    client: u32,
    invoke: u64,
    complete: u64,
    key: &str,
    deleted: i64,
    revision: i64,
) -> Operation {
    Operation {
        client,
        invoke,
        complete: Some(complete),
        request: Request::Delete { key: key.into() },
        outcome: Outcome::Ok(Response::Delete { revision, deleted }),
    }
}

fn assert_linearizable(history: &[Operation]) {
    let report = check(history, LIMIT);
    assert!(report.is_linearizable(), "{report:#?}");
    assert!(report.inconclusive.is_empty(), "{report:#?}");
}

fn assert_violation(history: &[Operation], key: &str) {
    let report = check(history, LIMIT);
    assert!(
        matches!(report.violations.get(key), Some(KeyVerdict::Violation { .. })),
        "expected a violation on {key}: {report:#?}"
    );
}

#[test]
fn sequential_writes_and_reads_are_linearizable() {
    assert_linearizable(&[
        get(0, 0, 1, "k", None, 1),
        put(0, 2, 3, "k", "a", 2),
        get(1, 4, 5, "k", Some(("a", 2)), 2),
        put(0, 6, 7, "j", "b", 3),
        get(1, 8, 9, "k", Some(("a", 2)), 3),
        delete(0, 10, 11, "k", 1, 4),
        get(1, 12, 13, "k", None, 4),
        delete(0, 14, 15, "k", 0, 4),
    ]);
}

#[test]
fn concurrent_writes_may_take_effect_in_either_order() {
    // Two overlapping puts; the later revision wins, whichever was invoked first, and
    // reads overlapping them may see either.
    assert_linearizable(&[
        put(0, 0, 10, "k", "a", 3),
        put(1, 1, 9, "k", "b", 2),
        get(2, 2, 8, "k", Some(("b", 2)), 2),
        get(3, 3, 11, "k", Some(("a", 3)), 3),
        get(2, 12, 13, "k", Some(("a", 3)), 3),
    ]);
}

#[test]
fn an_unanswered_write_may_take_effect_late_or_never() {
    // The put of "x" never got an answer: a read long after may see it...
    assert_linearizable(&[
        put(0, 0, 1, "k", "a", 2),
        unanswered_put(1, 2, "k", "x"),
        get(0, 3, 4, "k", Some(("a", 2)), 2),
        put(0, 5, 6, "j", "b", 3),
        get(0, 7, 8, "k", Some(("x", 4)), 4),
    ]);
    // ...or never.
    assert_linearizable(&[
        put(0, 0, 1, "k", "a", 2),
        unanswered_put(1, 2, "k", "x"),
        get(0, 30, 40, "k", Some(("a", 2)), 9),
    ]);
}

#[test]
fn compare_and_swap_follows_the_mod_revision() {
    assert_linearizable(&[
        put(0, 0, 1, "k", "a", 2),
        cas(
            0,
            2,
            Some(3),
            "k",
            2,
            "b",
            Outcome::Ok(Response::Txn { revision: 3, succeeded: true, kv: None }),
        ),
        // A second swap against the old revision fails and reads what is there.
        cas(
            1,
            4,
            Some(5),
            "k",
            2,
            "c",
            Outcome::Ok(Response::Txn {
                revision: 3,
                succeeded: false,
                kv: Some(Kv { key: "k".into(), value: "b".into(), mod_revision: 3 }),
            }),
        ),
        // One whose answer never came, and that did take effect.
        cas(1, 6, None, "k", 3, "d", Outcome::Unknown("connection reset".into())),
        get(0, 7, 8, "k", Some(("d", 5)), 5),
    ]);
    // A swap that succeeded although the compare could not hold.
    assert_violation(
        &[
            put(0, 0, 1, "k", "a", 2),
            cas(
                0,
                2,
                Some(3),
                "k",
                7,
                "b",
                Outcome::Ok(Response::Txn { revision: 3, succeeded: true, kv: None }),
            ),
        ],
        "k",
    );
}

#[test]
fn a_stale_read_is_rejected() {
    assert_violation(
        &[
            put(0, 0, 1, "k", "a", 2),
            put(0, 2, 3, "k", "b", 3),
            // Invoked after "b" was acknowledged, yet saw "a".
            get(1, 4, 5, "k", Some(("a", 2)), 3),
        ],
        "k",
    );
    // The same with the read's header revision behind the acknowledged write.
    assert_violation(
        &[
            put(0, 0, 1, "k", "a", 2),
            put(0, 2, 3, "k", "b", 3),
            get(1, 4, 5, "k", Some(("a", 2)), 2),
        ],
        "k",
    );
}

#[test]
fn a_lost_write_is_rejected() {
    assert_violation(
        &[
            put(0, 0, 1, "k", "a", 2),
            put(0, 2, 3, "j", "b", 3),
            // The acknowledged put of "a" is gone.
            get(1, 4, 5, "k", None, 3),
        ],
        "k",
    );
}

#[test]
fn a_reordering_is_rejected() {
    // Two overlapping puts; one reader sees "b" and then, later, "a" again: "a" cannot
    // come both before and after "b".
    assert_violation(
        &[
            put(0, 0, 10, "k", "a", 2),
            put(1, 0, 10, "k", "b", 3),
            get(2, 11, 12, "k", Some(("b", 3)), 3),
            get(2, 13, 14, "k", Some(("a", 2)), 3),
        ],
        "k",
    );
    // Revisions running backwards against real time: "b" was invoked after "a" was
    // acknowledged, yet got a lower revision.
    assert_violation(&[put(0, 0, 1, "k", "a", 5), put(1, 2, 3, "k", "b", 4)], "k");
}

#[test]
fn a_value_nobody_wrote_is_rejected() {
    assert_violation(&[get(0, 0, 1, "k", Some(("ghost", 2)), 2)], "k");
}

#[test]
fn a_value_nobody_wrote_is_rejected_however_large_the_search() {
    // Under faults most writes may have no answer: the search space is far past any
    // bound, yet a read of a value nobody wrote is a violation, not "inconclusive".
    let mut history: Vec<Operation> =
        (0..40).map(|i| unanswered_put(i, u64::from(i), "k", &format!("v{i}"))).collect();
    history.push(get(99, 100, 101, "k", Some(("never-written", 50)), 50));
    let report = check(&history, 1_000);
    assert!(report.inconclusive.is_empty(), "{report:#?}");
    assert!(report.violations.contains_key("k"), "{report:#?}");
}

#[test]
fn a_range_read_is_checked_on_every_key_it_covers() {
    let range = |invoke, complete, kvs: Vec<Kv>, revision| Operation {
        client: 9,
        invoke,
        complete: Some(complete),
        request: Request::Range { key: "k/".into(), range_end: Some("k0".into()) },
        outcome: Outcome::Ok(Response::Range { revision, kvs }),
    };
    let kv = |key: &str, value: &str, mod_revision| Kv {
        key: key.into(),
        value: value.into(),
        mod_revision,
    };
    let writes = [put(0, 0, 1, "k/a", "1", 2), put(0, 2, 3, "k/b", "2", 3)];
    let mut good = writes.to_vec();
    good.push(range(4, 5, vec![kv("k/a", "1", 2), kv("k/b", "2", 3)], 3));
    assert_linearizable(&good);
    // The range left out k/b, acknowledged before it began.
    let mut lost = writes.to_vec();
    lost.push(range(4, 5, vec![kv("k/a", "1", 2)], 3));
    assert_violation(&lost, "k/b");
}

#[test]
fn the_search_is_bounded() {
    // Many concurrent unanswered writes and no way to place the final read (it saw a
    // mod_revision above its own header revision): the search must give up within its
    // bound rather than run on.
    let mut history: Vec<Operation> =
        (0..40).map(|i| unanswered_put(i, u64::from(i), "k", &format!("v{i}"))).collect();
    history.push(get(99, 100, 101, "k", Some(("v0", 60)), 50));
    let report = check(&history, 1_000);
    assert_eq!(report.inconclusive, ["k"], "{report:#?}");
    assert!(report.violations.is_empty(), "{report:#?}");
}

fn committed_put(revision: i64, key: &str, value: &str) -> crate::history::WatchEvent {
    crate::history::WatchEvent { revision, key: key.into(), delete: false, value: value.into() }
}

#[test]
fn unanswered_writes_are_settled_by_the_committed_log() {
    let history = [
        put(0, 0, 1, "k", "a", 2),
        unanswered_put(1, 2, "k", "x"),
        unanswered_put(2, 3, "k", "never"),
        get(0, 10, 11, "k", Some(("x", 3)), 3),
    ];
    let committed = [committed_put(2, "k", "a"), committed_put(3, "k", "x")];
    let settled = settle_unknown_writes(&history, &committed);
    // "never" is not in the log: dropped; "x" is, at revision 3: required, unanswered.
    assert_eq!(settled.len(), 3);
    assert_eq!(settled[1].outcome, Outcome::Ok(Response::Put { revision: 3 }));
    assert_eq!(settled[1].complete, None);
    assert_linearizable(&settled);
}

#[test]
fn a_settled_write_must_be_placed() {
    // "x" took effect at revision 3 (the log says so), yet a later read at revision 4
    // still sees "a": unsettled, the checker could assume "x" never happened.
    let history = [
        put(0, 0, 1, "k", "a", 2),
        unanswered_put(1, 2, "k", "x"),
        get(0, 10, 11, "k", Some(("a", 2)), 4),
    ];
    assert_linearizable(&history);
    let committed = [committed_put(2, "k", "a"), committed_put(3, "k", "x")];
    assert_violation(&settle_unknown_writes(&history, &committed), "k");
}
