//! Counters of what the transport did, for metrics, logs and tests.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($(#[doc = $doc:literal])* $name:ident,)*) => {
        /// A point-in-time copy of the transport's counters (since it was created, summed
        /// over all peers).
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct TransportStats {
            $($(#[doc = $doc])* pub $name: u64,)*
        }

        /// The live counters behind [`TransportStats`].
        #[derive(Debug, Default)]
        pub(crate) struct Stats {
            $(pub $name: AtomicU64,)*
        }

        impl Stats {
            pub fn snapshot(&self) -> TransportStats {
                TransportStats { $($name: self.$name.load(Ordering::Relaxed),)* }
            }
        }
    };
}

counters! {
    /// Batches handed to outgoing streams.
    batches_sent,
    /// Raft messages handed to outgoing streams.
    messages_sent,
    /// Encoded raft message bytes handed to outgoing streams.
    bytes_sent,
    /// Outgoing raft messages dropped: queue full, peer unreachable, or too large.
    messages_dropped,
    /// Batches received on incoming streams.
    batches_received,
    /// Raft messages received and handed to the handler.
    messages_received,
    /// Encoded raft message bytes received.
    bytes_received,
    /// Incoming raft messages discarded: malformed, misaddressed, or refused by the
    /// handler.
    messages_discarded,
    /// Incoming calls refused (cluster or member mismatch, removed member, bad headers).
    calls_refused,
    /// Snapshots sent and acknowledged by the peer.
    snapshots_sent,
    /// Snapshot transfers that failed on the sending side.
    snapshots_failed,
    /// Snapshots received, verified and handed to the handler.
    snapshots_received,
    /// Incoming snapshot transfers rejected (truncated, corrupt, malformed, too large).
    snapshots_rejected,
}

impl Stats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}
