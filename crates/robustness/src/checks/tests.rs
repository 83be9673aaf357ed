//! Each check passes a good record and fails on one made wrong on purpose.

use super::*;
use crate::history::{Operation, WatchResponse};

fn put(revision: i64, key: &str, value: &str) -> WatchEvent {
    WatchEvent { revision, key: key.into(), delete: false, value: value.into() }
}

fn del(revision: i64, key: &str) -> WatchEvent {
    WatchEvent { revision, key: key.into(), delete: true, value: String::new() }
}

/// Revision 2: a, 3: b, 4: a txn of c and d, 5: delete a, 6: x outside the range.
fn committed() -> Vec<WatchEvent> {
    vec![
        put(2, "k/a", "1"),
        put(3, "k/b", "2"),
        put(4, "k/c", "3"),
        put(4, "k/d", "4"),
        del(5, "k/a"),
        put(6, "x", "5"),
    ]
}

fn response(header_revision: i64, events: Vec<WatchEvent>) -> WatchResponse {
    WatchResponse { at: 0, header_revision, progress_notify: false, events }
}

fn progress(header_revision: i64) -> WatchResponse {
    WatchResponse { at: 0, header_revision, progress_notify: true, events: vec![] }
}

fn stream(start_revision: i64, responses: Vec<WatchResponse>, reached: Option<i64>) -> WatchStream {
    WatchStream {
        client: 0,
        key: "k/".into(),
        range_end: Some("k0".into()),
        start_revision,
        responses,
        reached,
        ended_early: None,
        compacted: None,
    }
}

fn good_responses() -> Vec<WatchResponse> {
    let c = committed();
    vec![
        response(2, vec![c[0].clone()]),
        progress(2),
        response(3, vec![c[1].clone()]),
        response(4, vec![c[2].clone(), c[3].clone()]),
        response(6, vec![c[4].clone()]),
        progress(6),
    ]
}

fn anomalies(s: &WatchStream) -> Vec<Anomaly> {
    check_watch("w", s, &committed(), &[])
}

fn assert_one_anomaly(s: &WatchStream, guarantee: &str) {
    let found = anomalies(s);
    assert!(found.iter().any(|a| a.contains(guarantee)), "{guarantee}: {found:?}");
}

#[test]
fn a_good_stream_passes() {
    assert_eq!(anomalies(&stream(1, good_responses(), Some(6))), Vec::<Anomaly>::new());
    // Resumed from revision 4: starts with the txn.
    let resumed = good_responses().split_off(3);
    assert_eq!(anomalies(&stream(4, resumed, Some(6))), Vec::<Anomaly>::new());
}

#[test]
fn out_of_order_events_fail() {
    let mut r = good_responses();
    r.swap(2, 3);
    assert_one_anomaly(&stream(1, r, Some(6)), "ordered");
}

#[test]
fn a_repeated_event_fails() {
    let mut r = good_responses();
    r.insert(3, response(3, vec![committed()[1].clone()]));
    assert_one_anomaly(&stream(1, r, Some(6)), "unique");
}

#[test]
fn a_txn_split_over_two_responses_fails() {
    let c = committed();
    let mut r = good_responses();
    r[3] = response(4, vec![c[2].clone()]);
    r.insert(4, response(4, vec![c[3].clone()]));
    assert_one_anomaly(&stream(1, r, Some(6)), "atomic");
    // Half a txn, the other half never delivered.
    let mut r = good_responses();
    r[3] = response(4, vec![c[2].clone()]);
    assert!(!anomalies(&stream(1, r, Some(6))).is_empty());
}

#[test]
fn a_gap_fails() {
    let mut r = good_responses();
    r.remove(2);
    assert_one_anomaly(&stream(1, r, Some(6)), "reliable");
}

#[test]
fn an_event_before_the_start_revision_fails() {
    assert_one_anomaly(&stream(3, good_responses(), Some(6)), "resumable");
}

#[test]
fn a_stream_that_stops_short_fails() {
    let mut r = good_responses();
    r.truncate(4);
    assert_one_anomaly(&stream(1, r.clone(), Some(6)), "complete");
    // Cut short on purpose (no end revision): nothing is missing.
    assert_eq!(anomalies(&stream(1, r, None)), Vec::<Anomaly>::new());
}

#[test]
fn a_progress_notification_ahead_of_the_events_fails() {
    let mut r = good_responses();
    r[1] = progress(3);
    assert_one_anomaly(&stream(1, r, Some(6)), "bookmarkable");
}

fn history(operations: Vec<Operation>) -> History {
    History {
        seed: 1,
        operations,
        watches: vec![],
        committed: committed(),
        compactions: vec![],
        final_revision: 6,
        leases: vec![],
    }
}

fn write(request: Request, outcome: Outcome) -> Operation {
    Operation { client: 0, invoke: 0, complete: Some(1), request, outcome }
}

fn all_writes() -> Vec<Operation> {
    let put = |key: &str, value: &str, revision| {
        write(
            Request::Put { key: key.into(), value: value.into() },
            Outcome::Ok(Response::Put { revision }),
        )
    };
    vec![
        put("k/a", "1", 2),
        put("k/b", "2", 3),
        // The txn of c and d is a client's put of c; d stands for an unanswered one.
        put("k/c", "3", 4),
        write(
            Request::Put { key: "k/d".into(), value: "4".into() },
            Outcome::Unknown("timeout".into()),
        ),
        write(
            Request::Delete { key: "k/a".into() },
            Outcome::Ok(Response::Delete { revision: 5, deleted: 1 }),
        ),
    ]
}

#[test]
fn the_committed_log_matches_the_writes() {
    assert_eq!(check_committed(&history(all_writes()), "k/", 6), Vec::<Anomaly>::new());
}

#[test]
fn an_acknowledged_write_missing_from_the_log_fails() {
    let mut ops = all_writes();
    ops.push(write(
        Request::Put { key: "k/e".into(), value: "9".into() },
        Outcome::Ok(Response::Put { revision: 6 }),
    ));
    let found = check_committed(&history(ops), "k/", 6);
    assert!(found.len() == 1 && found[0].contains("acknowledged write k/e=9"), "{found:?}");
}

#[test]
fn a_change_nobody_sent_fails() {
    let mut ops = all_writes();
    ops.remove(1);
    let found = check_committed(&history(ops), "k/", 6);
    assert!(found.len() == 1 && found[0].contains("nobody sent"), "{found:?}");
}

#[test]
fn a_missing_revision_fails() {
    let found = check_committed(&history(all_writes()), "k/", 7);
    assert!(found.len() == 1 && found[0].contains("dense: revision 7"), "{found:?}");
}

#[test]
fn a_watch_that_ended_early_fails() {
    let mut s = stream(1, good_responses(), None);
    s.ended_early = Some("canceled".into());
    assert_one_anomaly(&s, "ended before the run did");
}

fn lease(refreshed: Vec<(u64, i64)>, revoke_invoked: Option<u64>) -> LeaseRecord {
    LeaseRecord { id: 7, key: "rbl/0".into(), refreshed, revoke_invoked, gone_by: None }
}

fn lease_watch(deleted_at: u64) -> WatchStream {
    let mut response = response(9, vec![del(9, "rbl/0")]);
    response.at = deleted_at;
    WatchStream {
        client: 0,
        key: "rbl/".into(),
        range_end: Some("rbl0".into()),
        start_revision: 1,
        responses: vec![response],
        reached: None,
        ended_early: None,
        compacted: None,
    }
}

const SECOND: u64 = 1_000_000_000;

#[test]
fn a_lease_that_lives_its_ttl_passes() {
    // Granted at 0 with 2 s, kept alive at 1 s with 2 s: may go from 3 s on.
    let leases = [lease(vec![(0, 2), (SECOND, 2)], None)];
    assert_eq!(check_leases(&leases, &[&lease_watch(3 * SECOND)]), Vec::<Anomaly>::new());
    // Revoked at 0.5 s: may go at once.
    let revoked = [lease(vec![(0, 2)], Some(SECOND / 2))];
    assert_eq!(check_leases(&revoked, &[&lease_watch(SECOND)]), Vec::<Anomaly>::new());
}

#[test]
fn a_lease_that_expires_early_fails() {
    let leases = [lease(vec![(0, 2), (SECOND, 2)], None)];
    let found = check_leases(&leases, &[&lease_watch(2 * SECOND)]);
    assert!(found.len() == 1 && found[0].contains("1000 ms before its TTL"), "{found:?}");
    let mut gone = lease(vec![(0, 2)], None);
    gone.gone_by = Some(SECOND);
    let found = check_leases(&[gone], &[&lease_watch(5 * SECOND)]);
    assert!(found.len() == 1 && found[0].contains("keep-alive answered gone"), "{found:?}");
}

#[test]
fn a_lease_key_deleted_early_is_found_in_any_of_the_lease_streams() {
    let leases = [lease(vec![(0, 2), (SECOND, 2)], None)];
    let mut before_compaction = lease_watch(0);
    before_compaction.responses.clear();
    before_compaction.compacted = Some(8);
    let found = check_leases(&leases, &[&before_compaction, &lease_watch(2 * SECOND)]);
    assert!(found.len() == 1 && found[0].contains("1000 ms before its TTL"), "{found:?}");
}

#[test]
fn a_watch_canceled_as_compacted_before_what_it_still_needed_passes() {
    // Delivered up to revision 3, canceled at a compaction at 4; reopened from 4.
    let c = committed();
    let mut canceled =
        stream(1, vec![response(2, vec![c[0].clone()]), response(3, vec![c[1].clone()])], None);
    canceled.compacted = Some(4);
    assert_eq!(anomalies(&canceled), Vec::<Anomaly>::new());
    let reopened = stream(
        4,
        vec![response(4, vec![c[2].clone(), c[3].clone()]), response(6, vec![c[4].clone()])],
        Some(6),
    );
    assert_eq!(anomalies(&reopened), Vec::<Anomaly>::new());
}

#[test]
fn a_watch_from_a_compaction_revision_need_not_replay_a_delete_there() {
    // committed()[4] is the delete of k/a at revision 5; compacted at 5.
    let c = committed();
    let from_five = stream(5, vec![response(6, vec![])], Some(6));
    assert_eq!(check_watch("w", &from_five, &c, &[5]), Vec::<Anomaly>::new());
    // Without the compaction there, the delete is owed.
    let found = check_watch("w", &from_five, &c, &[]);
    assert!(found.iter().any(|a| a.contains("complete")), "{found:?}");
    // Delivered anyway (the compaction had not removed it yet): fine too.
    let replayed = stream(5, vec![response(5, vec![c[4].clone()])], Some(6));
    assert_eq!(check_watch("w", &replayed, &c, &[5]), Vec::<Anomaly>::new());
}

#[test]
fn a_watch_canceled_as_compacted_after_passing_the_compaction_fails() {
    let c = committed();
    let mut canceled = stream(
        1,
        vec![response(2, vec![c[0].clone()]), response(4, vec![c[2].clone(), c[3].clone()])],
        None,
    );
    canceled.compacted = Some(3);
    // It also skipped revision 3; the cancellation is what is named first.
    let found = anomalies(&canceled);
    assert!(found[0].contains("canceled as compacted at revision 3"), "{found:?}");
}

#[test]
fn a_change_after_the_run_fails_unless_a_lease_expired() {
    let mut late = history(all_writes());
    late.committed.push(del(7, "rbl/0"));
    assert_eq!(check_committed(&late, "k/", 6), Vec::<Anomaly>::new());
    late.committed.push(put(8, "k/z", "late"));
    let found = check_committed(&late, "k/", 6);
    assert!(found.iter().any(|a| a.contains("k/z@8 after the run")), "{found:?}");
}
