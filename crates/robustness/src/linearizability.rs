//! A linearizability checker for etcd's key-value API: the Wing–Gong–Lowe search
//! (Lowe, "Testing for linearizability", 2017) with memoization of (set of linearized
//! operations, model state), run on each key of a history on its own.
//!
//! # Why checking key by key is sound here
//!
//! Linearizability is compositional (Herlihy and Wing): a history is linearizable iff
//! its restriction to each object is. Keys are objects, but etcd's revision is one
//! counter over all keys, so a key's history alone cannot say which revision a write
//! gets. The model of a key therefore does not predict revision values: it keeps only
//! what holds of any single key's restriction of a valid global order:
//!
//! - revisions along the order never go down, and every write gets a revision above
//!   every one observed before it (the model's `floor`: the highest revision seen so far
//!   in the candidate order, or a lower bound of it when a write of unknown outcome is in
//!   the order);
//! - a read at header revision `h` sees the key's latest write, whose mod_revision is at
//!   most `h` and equals the revision that write was answered with (or, for a write whose
//!   answer never came, lies above the floor at the moment it was placed).
//!
//! Every check is necessary for a global linearization, so a violation found on one key
//! is a real one; what key-by-key checking cannot see (two writes to different keys
//! answered with the same revision, a revision skipped) is checked against the committed
//! log by [`crate::checks`]. A range read over many keys is split into one read per key
//! (with its header revision): that loses its atomicity across keys but not soundness.
//!
//! Operations whose outcome is unknown may take effect at any time after they were
//! invoked, or never: their completion is at the end of time, and the search succeeds
//! once every operation with an answer is placed. Failed operations had no effect and
//! are left out. The search is bounded ([`MAX_EXPLORED`] by default): past the bound a
//! key is reported inconclusive instead of hanging.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use crate::history::{Compare, Kv, Operation, Outcome, Request, Response};

/// The default bound on search steps per key; past it the key is inconclusive. Sized so
/// a key costs at most a few seconds and some hundred megabytes of memoization.
pub const MAX_EXPLORED: usize = 500_000;

/// Which revision the key's current value was written at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum ModRevision {
    /// Known: a write's answer or a read said so (0 when the key does not exist).
    Exact(i64),
    /// Written by an operation whose answer never came: some revision above this.
    Above(i64),
}

/// The model's state of one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct KeyState {
    /// The value's id (values are interned per key); `None` when the key does not exist.
    value: Option<u32>,
    mod_revision: ModRevision,
    /// The highest revision observed so far in the candidate order (a lower bound).
    floor: i64,
}

const INITIAL: KeyState = KeyState { value: None, mod_revision: ModRevision::Exact(0), floor: 0 };

/// What a key's read saw: the value's id and mod_revision, or nothing.
type Observed = Option<(u32, i64)>;

/// One operation as it bears on one key.
#[derive(Clone, Debug)]
enum KeyOp {
    /// A put; `revision` is `None` when the answer never came.
    Put {
        value: u32,
        revision: Option<i64>,
    },
    /// A delete that removed the key (`Some`), or one whose answer never came (`None`).
    Delete {
        revision: Option<i64>,
    },
    /// A read (a range, a delete that found nothing, a txn's failed compare without its
    /// compare) at header revision `revision`.
    Read {
        observed: Observed,
        revision: i64,
    },
    Txn {
        compare: KeyCompare,
        value: u32,
        result: TxnResult,
    },
}

#[derive(Clone, Debug)]
enum KeyCompare {
    ModRevision(i64),
    Value(u32),
}

#[derive(Clone, Debug)]
enum TxnResult {
    Succeeded { revision: i64 },
    Failed { observed: Observed, revision: i64 },
    Unknown,
}

/// Whether a compare holds in a state: surely, surely not, or either (the key's
/// mod_revision is unknown).
fn compare_may(state: &KeyState, compare: &KeyCompare, holds: bool) -> bool {
    match compare {
        KeyCompare::Value(v) => (state.value == Some(*v)) == holds,
        KeyCompare::ModRevision(expected) => {
            let actual =
                if state.value.is_none() { ModRevision::Exact(0) } else { state.mod_revision };
            match actual {
                ModRevision::Exact(m) => (m == *expected) == holds,
                // The unknown revision may equal `expected` only if it lies above `low`.
                ModRevision::Above(low) => !holds || *expected > low,
            }
        }
    }
}

/// The state after a read at `revision` that saw `observed`, if the read is possible.
fn observe(state: &KeyState, observed: Observed, revision: i64) -> Option<KeyState> {
    if revision < state.floor {
        return None;
    }
    match observed {
        None => state.value.is_none().then_some(KeyState { floor: revision, ..*state }),
        Some((value, mod_revision)) => {
            let same_write = match state.mod_revision {
                ModRevision::Exact(m) => m == mod_revision,
                ModRevision::Above(low) => mod_revision > low,
            };
            (state.value == Some(value) && same_write && mod_revision <= revision).then_some(
                KeyState {
                    value: Some(value),
                    mod_revision: ModRevision::Exact(mod_revision),
                    floor: revision,
                },
            )
        }
    }
}

/// A write of `value` (`None`: a delete) whose answer never came.
fn unanswered_write(state: &KeyState, value: Option<u32>) -> KeyState {
    let mod_revision =
        if value.is_some() { ModRevision::Above(state.floor) } else { ModRevision::Exact(0) };
    KeyState { value, mod_revision, floor: state.floor + 1 }
}

/// An answered write of `value` (`None`: a delete) at `revision`, if possible.
fn answered_write(state: &KeyState, value: Option<u32>, revision: i64) -> Option<KeyState> {
    let mod_revision = if value.is_some() { revision } else { 0 };
    (revision > state.floor).then_some(KeyState {
        value,
        mod_revision: ModRevision::Exact(mod_revision),
        floor: revision,
    })
}

/// Every state `op` may lead to from `state`.
fn step(state: &KeyState, op: &KeyOp, next: &mut Vec<KeyState>) {
    match op {
        KeyOp::Put { value, revision: Some(r) } => {
            next.extend(answered_write(state, Some(*value), *r))
        }
        KeyOp::Put { value, revision: None } => next.push(unanswered_write(state, Some(*value))),
        KeyOp::Delete { revision: Some(r) } => {
            if state.value.is_some() {
                next.extend(answered_write(state, None, *r));
            }
        }
        // Deleting a missing key changes nothing (and makes no revision).
        KeyOp::Delete { revision: None } => {
            next.push(if state.value.is_some() { unanswered_write(state, None) } else { *state })
        }
        KeyOp::Read { observed, revision } => next.extend(observe(state, *observed, *revision)),
        KeyOp::Txn { compare, value, result } => match result {
            TxnResult::Succeeded { revision } => {
                if compare_may(state, compare, true) {
                    next.extend(answered_write(state, Some(*value), *revision));
                }
            }
            TxnResult::Failed { observed, revision } => {
                // The read pins the mod_revision down, then the compare must fail on it.
                if let Some(seen) = observe(state, *observed, *revision)
                    && compare_may(&seen, compare, false)
                {
                    next.push(seen);
                }
            }
            TxnResult::Unknown => {
                if compare_may(state, compare, true) {
                    next.push(unanswered_write(state, Some(*value)));
                }
                if compare_may(state, compare, false) {
                    next.push(*state);
                }
            }
        },
    }
}

/// A non-deterministic step over a set of possible states (sorted, without repeats).
fn step_all(states: &[KeyState], op: &KeyOp) -> Vec<KeyState> {
    let mut next = Vec::new();
    for state in states {
        step(state, op, &mut next);
    }
    next.sort_unstable();
    next.dedup();
    next
}

/// One key's operations, with times and the index of each in the history.
#[derive(Debug, Default)]
struct Partition {
    ops: Vec<PartitionOp>,
    /// Value → id, so states compare and hash cheaply.
    values: HashMap<String, u32>,
}

#[derive(Debug)]
struct PartitionOp {
    history_index: usize,
    invoke: u64,
    /// When the answer came; `u64::MAX` (the end of time) when none came.
    complete: u64,
    /// Whether it took effect for sure (it was answered, or the committed log shows it),
    /// so the order must place it; unknown outcomes may also never have happened.
    required: bool,
    op: KeyOp,
}

impl Partition {
    fn value_id(&mut self, value: &str) -> u32 {
        let next = u32::try_from(self.values.len()).expect("fewer than 2^32 values");
        *self.values.entry(value.to_string()).or_insert(next)
    }

    fn observed(&mut self, kv: Option<&Kv>) -> Observed {
        kv.map(|kv| (self.value_id(&kv.value), kv.mod_revision))
    }
}

/// Splits the history into one partition per key. Reads over a range give one read to
/// every key of the range that any operation names.
fn partition(operations: &[Operation]) -> BTreeMap<String, Partition> {
    let mut keys: BTreeMap<String, Partition> = BTreeMap::new();
    for op in operations {
        match &op.request {
            Request::Put { key, .. } | Request::Delete { key } | Request::Txn { key, .. } => {
                keys.entry(key.clone()).or_default();
            }
            Request::Range { key, range_end: None } => {
                keys.entry(key.clone()).or_default();
            }
            Request::Range { .. } => {}
        }
        // A key read back that nobody wrote is checked too (and fails: a phantom).
        if let Outcome::Ok(Response::Range { kvs, .. }) = &op.outcome {
            for kv in kvs {
                keys.entry(kv.key.clone()).or_default();
            }
        }
    }
    for (history_index, op) in operations.iter().enumerate() {
        let required = match &op.outcome {
            Outcome::Failed(_) => continue,
            Outcome::Unknown(_) if !op.request.is_write() => continue,
            Outcome::Unknown(_) => false,
            Outcome::Ok(_) => true,
        };
        let complete = op.complete.unwrap_or(u64::MAX);
        for (key, part) in keys.iter_mut().filter(|(key, _)| op.request.covers(key)) {
            let Some(key_op) = key_op(part, key, &op.request, &op.outcome) else { continue };
            let invoke = op.invoke;
            part.ops.push(PartitionOp { history_index, invoke, complete, required, op: key_op });
        }
    }
    keys
}

/// What an operation did to `key`, as the model reads it; `None` if the answer does not
/// fit the request (counted as nothing rather than guessed at).
fn key_op(part: &mut Partition, key: &str, request: &Request, outcome: &Outcome) -> Option<KeyOp> {
    let response = match outcome {
        Outcome::Ok(response) => Some(response),
        _ => None,
    };
    Some(match (request, response) {
        (Request::Put { value, .. }, None) => {
            KeyOp::Put { value: part.value_id(value), revision: None }
        }
        (Request::Put { value, .. }, Some(Response::Put { revision })) => {
            KeyOp::Put { value: part.value_id(value), revision: Some(*revision) }
        }
        (Request::Delete { .. }, None) => KeyOp::Delete { revision: None },
        (Request::Delete { .. }, Some(Response::Delete { revision, deleted })) => {
            if *deleted > 0 {
                KeyOp::Delete { revision: Some(*revision) }
            } else {
                KeyOp::Read { observed: None, revision: *revision }
            }
        }
        (Request::Range { .. }, Some(Response::Range { revision, kvs })) => {
            let kv = kvs.iter().find(|kv| kv.key == key);
            KeyOp::Read { observed: part.observed(kv), revision: *revision }
        }
        (Request::Txn { compare, value, .. }, response) => {
            let compare = match compare {
                Compare::ModRevision(r) => KeyCompare::ModRevision(*r),
                Compare::Value(v) => KeyCompare::Value(part.value_id(v)),
            };
            let result = match response {
                None => TxnResult::Unknown,
                Some(Response::Txn { revision, succeeded: true, .. }) => {
                    TxnResult::Succeeded { revision: *revision }
                }
                Some(Response::Txn { revision, succeeded: false, kv }) => {
                    TxnResult::Failed { observed: part.observed(kv.as_ref()), revision: *revision }
                }
                Some(_) => return None,
            };
            KeyOp::Txn { compare, value: part.value_id(value), result }
        }
        _ => return None,
    })
}

/// The outcome for one key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum KeyVerdict {
    Linearizable,
    /// No order fits. `linearized` is the longest order found (history indexes) and
    /// `stuck` the operation that could not be placed after it.
    Violation {
        linearized: Vec<usize>,
        stuck: usize,
    },
    /// The search gave up after `explored` steps.
    Inconclusive {
        explored: usize,
    },
}

/// The outcome for a whole history.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// Keys checked, with the operations on each.
    pub keys: usize,
    pub operations: usize,
    pub violations: BTreeMap<String, KeyVerdict>,
    pub inconclusive: Vec<String>,
}

impl Report {
    pub fn is_linearizable(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Checks `operations` key by key with at most `max_explored` search steps per key.
pub fn check(operations: &[Operation], max_explored: usize) -> Report {
    let mut report = Report { operations: operations.len(), ..Report::default() };
    for (key, part) in partition(operations) {
        report.keys += 1;
        match search(&part, max_explored) {
            KeyVerdict::Linearizable => {}
            KeyVerdict::Inconclusive { .. } => report.inconclusive.push(key),
            violation => {
                report.violations.insert(key, violation);
            }
        }
    }
    report
}

/// An entry of the search's time line: an operation's call or its return.
#[derive(Clone, Copy, Debug)]
struct Entry {
    op: usize,
    is_call: bool,
}

/// The time line as a doubly linked list (index 0 is the head), so an operation's two
/// entries can be lifted out and put back in O(1) as the search goes and backtracks.
struct Timeline {
    entries: Vec<Entry>,
    next: Vec<usize>,
    prev: Vec<usize>,
    /// Entry index of each operation's call and return.
    call_of: Vec<usize>,
    return_of: Vec<usize>,
}

const END: usize = usize::MAX;
const HEAD: usize = 0;

impl Timeline {
    fn new(ops: &[PartitionOp]) -> Timeline {
        // Calls sort before returns at the same instant: operations that touch in time
        // count as concurrent, the lenient (never falsely failing) reading.
        let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * ops.len());
        for (i, op) in ops.iter().enumerate() {
            events.push((op.invoke, false, i));
            events.push((op.complete, true, i));
        }
        events.sort_unstable();
        let mut entries = vec![Entry { op: usize::MAX, is_call: false }];
        let (mut call_of, mut return_of) = (vec![0; ops.len()], vec![0; ops.len()]);
        for (_, is_return, op) in events {
            if is_return {
                return_of[op] = entries.len();
            } else {
                call_of[op] = entries.len();
            }
            entries.push(Entry { op, is_call: !is_return });
        }
        let n = entries.len();
        let next = (0..n).map(|i| if i + 1 < n { i + 1 } else { END }).collect();
        let prev = (0..n).map(|i| i.wrapping_sub(1)).collect();
        Timeline { entries, next, prev, call_of, return_of }
    }

    fn unlink(&mut self, i: usize) {
        let (p, n) = (self.prev[i], self.next[i]);
        self.next[p] = n;
        if n != END {
            self.prev[n] = p;
        }
    }

    fn relink(&mut self, i: usize) {
        let (p, n) = (self.prev[i], self.next[i]);
        self.next[p] = i;
        if n != END {
            self.prev[n] = i;
        }
    }

    fn lift(&mut self, op: usize) {
        self.unlink(self.call_of[op]);
        self.unlink(self.return_of[op]);
    }

    /// Undoes [`Timeline::lift`]; lifts are undone in reverse order, as the search does.
    fn unlift(&mut self, op: usize) {
        self.relink(self.return_of[op]);
        self.relink(self.call_of[op]);
    }
}

fn search(part: &Partition, max_explored: usize) -> KeyVerdict {
    let ops = &part.ops;
    if let Some(phantom) = read_of_unwritten_value(ops) {
        return KeyVerdict::Violation { linearized: Vec::new(), stuck: ops[phantom].history_index };
    }
    let mut timeline = Timeline::new(ops);
    let words = ops.len().div_ceil(64);
    let mut linearized = vec![0u64; words];
    let mut states = vec![INITIAL];
    let mut memo: HashSet<(Vec<u64>, Vec<KeyState>)> = HashSet::new();
    // (operation, the states before it)
    let mut stack: Vec<(usize, Vec<KeyState>)> = Vec::new();
    let mut required_left = ops.iter().filter(|op| op.required).count();
    let mut longest: (Vec<usize>, usize) = (Vec::new(), usize::MAX);
    let mut explored = 0usize;
    let mut entry = timeline.next[HEAD];
    loop {
        if required_left == 0 {
            return KeyVerdict::Linearizable;
        }
        let current = (entry != END).then(|| timeline.entries[entry]);
        let stuck = match current {
            Some(Entry { op, is_call: true }) => {
                explored += 1;
                if explored > max_explored {
                    return KeyVerdict::Inconclusive { explored };
                }
                let next = step_all(&states, &ops[op].op);
                if !next.is_empty() {
                    linearized[op / 64] |= 1 << (op % 64);
                    if memo.insert((linearized.clone(), next.clone())) {
                        stack.push((op, std::mem::replace(&mut states, next)));
                        timeline.lift(op);
                        required_left -= usize::from(ops[op].required);
                        entry = timeline.next[HEAD];
                        continue;
                    }
                    linearized[op / 64] &= !(1 << (op % 64));
                }
                entry = timeline.next[entry];
                continue;
            }
            // An operation that may never have happened need not be placed by its return.
            Some(Entry { op, is_call: false }) if !ops[op].required => {
                entry = timeline.next[entry];
                continue;
            }
            // A required operation returned before it could be placed.
            Some(Entry { op, .. }) => op,
            // The time line ran out with required operations unplaced (they never return).
            None => (0..ops.len())
                .find(|&o| ops[o].required && linearized[o / 64] & (1 << (o % 64)) == 0)
                .expect("a required operation is left"),
        };
        // Undo the last choice.
        if stack.len() >= longest.0.len() {
            longest = (stack.iter().map(|(o, _)| ops[*o].history_index).collect(), stuck);
        }
        let Some((undone, before)) = stack.pop() else {
            let stuck = ops[longest.1].history_index;
            return KeyVerdict::Violation { linearized: longest.0, stuck };
        };
        states = before;
        linearized[undone / 64] &= !(1 << (undone % 64));
        timeline.unlift(undone);
        required_left += usize::from(ops[undone].required);
        entry = timeline.next[timeline.call_of[undone]];
    }
}

/// A read that saw a value no operation in the history wrote (values are unique), if
/// any. No order explains it, and without this check the search would have to try
/// every order to learn that: under faults, with many writes of unknown outcome, it
/// would give up (inconclusive) instead of reporting the violation.
fn read_of_unwritten_value(ops: &[PartitionOp]) -> Option<usize> {
    let written: HashSet<u32> = ops
        .iter()
        .filter_map(|op| match op.op {
            KeyOp::Put { value, .. } | KeyOp::Txn { value, .. } => Some(value),
            _ => None,
        })
        .collect();
    ops.iter().position(|op| {
        let seen = match op.op {
            KeyOp::Read { observed, .. } => observed,
            KeyOp::Txn { result: TxnResult::Failed { observed, .. }, .. } => observed,
            _ => None,
        };
        seen.is_some_and(|(value, _)| !written.contains(&value))
    })
}

/// Settles writes whose answer never came with the committed log, as etcd's robustness
/// suite patches its history with the events it watched: values are unique, so a put or
/// swap whose value is in the log took effect, at the log's revision (it becomes
/// required, with that revision), and one whose value is not there never did (it is
/// dropped: a swap that failed its compare changed nothing either). This cuts the
/// search that every unanswered write would otherwise branch. Needs the complete log
/// (from revision 1 to the end, as [`crate::checks::check_committed`] verifies); unknown
/// deletes are left as they are (a delete event does not say whose it was).
pub fn settle_unknown_writes(
    operations: &[Operation],
    committed: &[crate::history::WatchEvent],
) -> Vec<Operation> {
    let written: HashMap<(&str, &str), i64> = committed
        .iter()
        .filter(|e| !e.delete)
        .map(|e| ((e.key.as_str(), e.value.as_str()), e.revision))
        .collect();
    operations
        .iter()
        .filter_map(|op| {
            let Outcome::Unknown(_) = op.outcome else { return Some(op.clone()) };
            let (key, value) = match &op.request {
                Request::Put { key, value } | Request::Txn { key, value, .. } => (key, value),
                _ => return Some(op.clone()),
            };
            let revision = *written.get(&(key.as_str(), value.as_str()))?;
            let response = match op.request {
                Request::Put { .. } => Response::Put { revision },
                _ => Response::Txn { revision, succeeded: true, kv: None },
            };
            Some(Operation { outcome: Outcome::Ok(response), complete: None, ..op.clone() })
        })
        .collect()
}

#[cfg(test)]
mod tests;
