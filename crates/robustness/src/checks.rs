//! Checks of recorded watch streams and of the committed log against the history.
//!
//! The reference is the committed log: every event the cluster committed, read by a
//! watch over the whole key space ahead of each compaction and after the run. It is
//! itself checked: its revisions must be dense, every acknowledged write must be in it
//! at the revision it was answered with, and every change in it must come from a write
//! some client sent. Each watch stream is then held to etcd's documented guarantees
//! (<https://etcd.io/docs/v3.5/learning/api_guarantees/#watch-apis>):
//!
//! - ordered: events come in revision order, a later response never goes back;
//! - unique: no event comes twice;
//! - atomic: the events of one revision (a txn's) come in one response, all of them;
//! - reliable: no event of the watched range is skipped between two delivered ones;
//! - resumable: a watch from revision `r` starts with the first change at `r` or later;
//! - complete: a stream that ran to the end delivered every change up to the last
//!   revision (one canceled as compacted must have needed a revision the compaction
//!   removed);
//! - bookmarkable: a progress notification at revision `p` comes after every change up
//!   to `p` and before any change after it.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::history::{History, LeaseRecord, Outcome, Request, Response, WatchEvent, WatchStream};

/// One broken guarantee, said in a sentence that names the stream and revision.
pub type Anomaly = String;

/// Events of the committed log in the range of `stream`, from its start revision on.
fn expected_events<'a>(
    committed: &'a [WatchEvent],
    stream: &WatchStream,
    compactions: &[i64],
) -> Vec<&'a WatchEvent> {
    committed
        .iter()
        .filter(|e| e.revision >= stream.start_revision && stream.covers(&e.key))
        .filter(|e| !compacted_away(e, stream, compactions))
        .collect()
}

/// Whether `event` is one `stream` may lack, and is not held to: a delete at the very
/// revision the stream starts from, when a compaction was made at that revision.
/// Compacting at `c` removes a tombstone at `c`, so a watch from `c` cannot replay it;
/// etcd 3.4.23 does not either (`del a` at revision 4, `compact 4`, then `watch --rev 4`
/// shows nothing), while a put at `c` is kept and replayed.
fn compacted_away(event: &WatchEvent, stream: &WatchStream, compactions: &[i64]) -> bool {
    event.delete && event.revision == stream.start_revision && compactions.contains(&event.revision)
}

/// Checks one watch stream against the committed log and the run's compaction
/// revisions; `name` says which it is.
pub fn check_watch(
    name: &str,
    stream: &WatchStream,
    committed: &[WatchEvent],
    compactions: &[i64],
) -> Vec<Anomaly> {
    let mut anomalies = Vec::new();
    if let Some(why) = &stream.ended_early {
        anomalies.push(format!("{name}: ended before the run did: {why}"));
    }
    let expected = expected_events(committed, stream, compactions);
    let mut delivered: Vec<&WatchEvent> = Vec::new();
    let mut seen: HashSet<(i64, &str)> = HashSet::new();
    // The response each revision's events came in.
    let mut response_of: HashMap<i64, usize> = HashMap::new();
    // The highest event revision delivered, and the last progress notification's.
    let (mut last_event, mut last_progress) = (0, 0);
    // Each notification's revision, with how many events had come before it.
    let mut notifications: Vec<(i64, usize)> = Vec::new();
    for (i, response) in stream.responses.iter().enumerate() {
        if response.progress_notify {
            let p = response.header_revision;
            if last_event > p {
                anomalies.push(format!(
                    "{name}: bookmarkable: progress notification at revision {p} after a \
                     change at revision {last_event}"
                ));
            }
            last_progress = last_progress.max(p);
            notifications.push((p, delivered.len()));
            continue;
        }
        if let Some(last) = response.events.last()
            && response.header_revision < last.revision
        {
            anomalies.push(format!(
                "{name}: response {i} has header revision {} behind its event at {}",
                response.header_revision, last.revision
            ));
        }
        for event in &response.events {
            if !seen.insert((event.revision, event.key.as_str())) {
                anomalies.push(format!(
                    "{name}: unique: event {}@{} delivered twice",
                    event.key, event.revision
                ));
                continue;
            }
            if event.revision <= last_progress {
                anomalies.push(format!(
                    "{name}: bookmarkable: event {}@{} after a progress notification at \
                     revision {last_progress}",
                    event.key, event.revision
                ));
            } else if event.revision < last_event
                || (event.revision == last_event && response_of.get(&event.revision) != Some(&i))
            {
                anomalies.push(format!(
                    "{name}: ordered/atomic: event {}@{} in response {i} after revision \
                     {last_event}",
                    event.key, event.revision
                ));
            }
            last_event = last_event.max(event.revision);
            response_of.entry(event.revision).or_insert(i);
            if event.revision < stream.start_revision {
                anomalies.push(format!(
                    "{name}: resumable: event at {} before the start revision {}",
                    event.revision, stream.start_revision
                ));
            }
            if !compacted_away(event, stream, compactions) {
                delivered.push(event);
            }
        }
    }
    // Canceled as compacted: only right if the watch still needed a revision before the
    // compaction's (it had delivered nothing at or past it).
    if let Some(compacted) = stream.compacted
        && last_event >= compacted
    {
        anomalies.push(format!(
            "{name}: canceled as compacted at revision {compacted} after delivering the \
             change at revision {last_event}"
        ));
    }
    if anomalies.len() > usize::from(stream.ended_early.is_some()) {
        // Order is broken: the comparisons below would only repeat it.
        return anomalies;
    }
    // Reliable, and no event that was not committed: what was delivered is the start of
    // what was committed, in the same order.
    for (i, event) in delivered.iter().enumerate() {
        match expected.get(i) {
            Some(want) if *want == *event => {}
            Some(want) if want.revision < event.revision => {
                anomalies.push(format!(
                    "{name}: reliable: the change {}@{} was skipped (next delivered {}@{})",
                    want.key, want.revision, event.key, event.revision
                ));
                return anomalies;
            }
            other => {
                anomalies.push(format!(
                    "{name}: delivered {event:?}, but the committed log has {other:?} there"
                ));
                return anomalies;
            }
        }
    }
    // Bookmarkable: a notification came after every change up to its revision.
    for (p, before) in notifications {
        let due = expected.iter().take_while(|e| e.revision <= p).count();
        if before < due {
            anomalies.push(format!(
                "{name}: bookmarkable: progress notification at revision {p} before the \
                 change at revision {} was delivered",
                expected[before].revision
            ));
        }
    }
    // Atomic: each delivered revision came whole, in one response.
    let mut per_revision: BTreeMap<i64, usize> = BTreeMap::new();
    for event in &expected {
        if response_of.contains_key(&event.revision) {
            *per_revision.entry(event.revision).or_default() += 1;
        }
    }
    for (revision, count) in per_revision {
        let got = delivered.iter().filter(|e| e.revision == revision).count();
        if got != count {
            anomalies.push(format!(
                "{name}: atomic: {got} of the {count} changes at revision {revision} delivered"
            ));
        }
    }
    if let Some(reached) = stream.reached {
        let due = expected.iter().take_while(|e| e.revision <= reached).count();
        if delivered.len() < due {
            anomalies.push(format!(
                "{name}: complete: {} of the {due} changes up to revision {reached} delivered",
                delivered.len()
            ));
        }
    }
    anomalies
}

/// Checks the committed log against the history: revisions dense from 2 (a new
/// cluster's first write) to `final_revision`, every acknowledged write at its revision,
/// every committed change in `prefix` sent by some client.
pub fn check_committed(history: &History, prefix: &str, final_revision: i64) -> Vec<Anomaly> {
    let mut anomalies = Vec::new();
    let mut at: BTreeMap<i64, Vec<&WatchEvent>> = BTreeMap::new();
    for event in &history.committed {
        at.entry(event.revision).or_default().push(event);
    }
    for revision in 2..=final_revision {
        if !at.contains_key(&revision) {
            anomalies
                .push(format!("dense: revision {revision} has no change in the committed log"));
        }
    }
    // Nothing under the workload's prefix changes once its clients have stopped. (Keys
    // of leases still running may go after the final revision: their expiry.)
    let late =
        history.committed.iter().find(|e| e.revision > final_revision && e.key.starts_with(prefix));
    if let Some(late) = late {
        anomalies.push(format!(
            "the committed log has {}@{} after the run, past the store's {final_revision}",
            late.key, late.revision
        ));
    }
    let committed_at = |revision: i64, key: &str, value: Option<&str>| {
        at.get(&revision).is_some_and(|events| {
            events.iter().any(|e| {
                e.key == key && e.delete == value.is_none() && value.is_none_or(|v| e.value == v)
            })
        })
    };
    // Writes any client sent (answered or not), by key: what may appear in the log.
    let mut sent_puts: HashSet<(&str, &str)> = HashSet::new();
    let mut sent_deletes: HashSet<&str> = HashSet::new();
    for op in &history.operations {
        match (&op.request, &op.outcome) {
            (_, Outcome::Failed(_)) => {}
            (Request::Put { key, value }, outcome) | (Request::Txn { key, value, .. }, outcome) => {
                sent_puts.insert((key, value));
                let acknowledged = match outcome {
                    Outcome::Ok(Response::Put { revision }) => Some(*revision),
                    Outcome::Ok(Response::Txn { revision, succeeded: true, .. }) => Some(*revision),
                    _ => None,
                };
                if let Some(revision) = acknowledged
                    && !committed_at(revision, key, Some(value))
                {
                    anomalies.push(format!(
                        "acknowledged write {key}={value} at revision {revision} is not in the \
                         committed log"
                    ));
                }
            }
            (Request::Delete { key }, outcome) => {
                sent_deletes.insert(key);
                if let Outcome::Ok(Response::Delete { revision, deleted: 1.. }) = outcome
                    && !committed_at(*revision, key, None)
                {
                    anomalies.push(format!(
                        "acknowledged delete of {key} at revision {revision} is not in the \
                         committed log"
                    ));
                }
            }
            (Request::Range { .. }, _) => {}
        }
    }
    for event in history.committed.iter().filter(|e| e.key.starts_with(prefix)) {
        let sent = if event.delete {
            sent_deletes.contains(event.key.as_str())
        } else {
            sent_puts.contains(&(event.key.as_str(), event.value.as_str()))
        };
        if !sent {
            anomalies.push(format!("committed change nobody sent: {event:?}"));
        }
    }
    anomalies
}

/// Leases expire no sooner than their TTL: the key put with a lease may go (the watch
/// on the lease keys saw its delete, at the time it received it) only once the TTL of
/// the last successful grant or keep-alive has passed since that request was invoked,
/// or after a revoke was invoked. A keep-alive answered "gone" bounds it the same way.
pub fn check_leases(leases: &[LeaseRecord], watches: &[&WatchStream]) -> Vec<Anomaly> {
    let mut deleted_at: HashMap<&str, u64> = HashMap::new();
    for response in watches.iter().flat_map(|watch| &watch.responses) {
        for event in response.events.iter().filter(|e| e.delete) {
            deleted_at.entry(event.key.as_str()).or_insert(response.at);
        }
    }
    let mut anomalies = Vec::new();
    for lease in leases {
        let lives_until = lease
            .refreshed
            .iter()
            .map(|(invoke, ttl)| invoke + u64::try_from(*ttl).unwrap_or(0) * 1_000_000_000)
            .max()
            .unwrap_or(0);
        let gone = [deleted_at.get(lease.key.as_str()).copied(), lease.gone_by];
        for (how, at) in ["its key deleted", "a keep-alive answered gone"].iter().zip(gone) {
            let Some(at) = at else { continue };
            if at < lives_until && lease.revoke_invoked.is_none_or(|r| at < r) {
                anomalies.push(format!(
                    "lease {:x} ({}): {how} {} ms before its TTL ran out",
                    lease.id,
                    lease.key,
                    (lives_until - at) / 1_000_000
                ));
            }
        }
    }
    anomalies
}

#[cfg(test)]
mod tests;
