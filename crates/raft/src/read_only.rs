//! Bookkeeping of pending read-index requests on the leader.

use crate::config::ReadOnlyOption;
use crate::types::Message;
use bytes::Bytes;
use std::collections::{BTreeMap, VecDeque};

/// A linearizable read that can be served once the state machine has applied `index`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadState {
    /// Commit index at the time the read was received by the leader.
    pub index: u64,
    /// The request context given to `read_index`.
    pub request_ctx: Bytes,
}

/// A request waiting for heartbeat acknowledgements.
#[derive(Debug)]
pub(crate) struct ReadIndexStatus {
    /// The original request (its `from` says whom to answer).
    pub(crate) req: Message,
    pub(crate) index: u64,
    acks: BTreeMap<u64, bool>,
}

/// Requests in arrival order. A heartbeat carries the context of the newest request queued
/// when it was sent; a quorum of acknowledgements for it confirms leadership for that request
/// and every older one, so a single round serves the whole batch.
#[derive(Debug)]
pub(crate) struct ReadOnly {
    pub(crate) option: ReadOnlyOption,
    pending: BTreeMap<Bytes, ReadIndexStatus>,
    queue: VecDeque<Bytes>,
}

impl ReadOnly {
    pub(crate) fn new(option: ReadOnlyOption) -> Self {
        ReadOnly { option, pending: BTreeMap::new(), queue: VecDeque::new() }
    }

    /// Queues `req` (whose context is `ctx`) to be answered with `index`. A duplicate context
    /// is ignored: the first request with it is already waiting.
    pub(crate) fn add_request(&mut self, index: u64, ctx: Bytes, req: Message) {
        if self.pending.contains_key(&ctx) {
            return;
        }
        self.pending.insert(ctx.clone(), ReadIndexStatus { req, index, acks: BTreeMap::new() });
        self.queue.push_back(ctx);
    }

    /// Records `id`'s acknowledgement of the heartbeat with `ctx`; returns the acks so far,
    /// or `None` for an unknown (already answered or foreign) context.
    pub(crate) fn recv_ack(&mut self, id: u64, ctx: &[u8]) -> Option<&BTreeMap<u64, bool>> {
        let status = self.pending.get_mut(ctx)?;
        status.acks.insert(id, true);
        Some(&status.acks)
    }

    /// Removes and returns every request up to and including the one with `ctx`.
    pub(crate) fn advance(&mut self, ctx: &[u8]) -> Vec<ReadIndexStatus> {
        let Some(pos) = self.queue.iter().position(|c| c.as_ref() == ctx) else {
            return Vec::new();
        };
        self.queue.drain(..=pos).filter_map(|c| self.pending.remove(&c)).collect()
    }

    /// Context of the newest pending request (sent along with periodic heartbeats).
    pub(crate) fn last_pending_request_ctx(&self) -> Option<Bytes> {
        self.queue.back().cloned()
    }

    pub(crate) fn pending_count(&self) -> usize {
        self.queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_is_answered_up_to_acknowledged_context() {
        let mut ro = ReadOnly::new(ReadOnlyOption::Safe);
        for (i, ctx) in [b"a", b"b", b"c"].iter().enumerate() {
            ro.add_request(10 + i as u64, Bytes::from_static(*ctx), Message::default());
        }
        ro.add_request(99, Bytes::from_static(b"a"), Message::default());
        assert_eq!(ro.pending_count(), 3);
        assert_eq!(ro.last_pending_request_ctx().as_deref(), Some(&b"c"[..]));
        assert_eq!(ro.recv_ack(2, b"b").map(|a| a.len()), Some(1));
        assert!(ro.recv_ack(2, b"zz").is_none());
        let done: Vec<u64> = ro.advance(b"b").iter().map(|s| s.index).collect();
        assert_eq!(done, vec![10, 11]);
        assert_eq!(ro.pending_count(), 1);
        assert!(ro.advance(b"a").is_empty());
    }
}
